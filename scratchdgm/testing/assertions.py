r"""Comparing arrays and tensors with tolerances that follow their dtype.

Two computations of the same quantity (a fused op and its plain form, the Numba and the NumPy
backend, a model and a reference implementation) differ by rounding: in float64 by a few units
in :math:`10^{-16}` per operation, in float32 by a few in :math:`10^{-7}`. :func:`tolerances`
gives the library's convention for "equal up to rounding" in each dtype, and
:func:`assert_allclose` applies it, names the worst entry, and accepts
:class:`~scratchdgm.autodiff.Tensor` as well as arrays.
"""

import numpy as np

from scratchdgm.autodiff import Tensor

__all__ = ["TOLERANCES", "tolerances", "assert_allclose"]

#: default relative tolerance per dtype: the tolerances of the library's own agreement tests
#: (Numba against NumPy backends, fused ops against plain ones)
TOLERANCES = {np.dtype(np.float64): 1e-12, np.dtype(np.float32): 1e-5,
              np.dtype(np.float16): 1e-2}


def tolerances(*dtypes):
    r"""``(rtol, atol)`` for comparing values of these dtypes: those of the least precise one.

    ``atol`` equals ``rtol``; :func:`assert_allclose` multiplies it by the scale of the values
    (:math:`\max(1, \max |\text{desired}|)`), so an entry that is near 0 only because large
    terms cancelled is held to the precision of those terms.

    Parameters
    ----------
    *dtypes : numpy dtype-like
        Integer and boolean dtypes count as exact (float64).

    Returns
    -------
    (float, float)
    """
    rtol = min(TOLERANCES.values()) if not dtypes else 0.0
    for dt in dtypes:
        dt = np.dtype(dt)
        if dt.kind == "f":
            if dt not in TOLERANCES:
                raise ValueError(f"no default tolerance for dtype {dt}; pass rtol and atol")
            rtol = max(rtol, TOLERANCES[dt])
        elif dt.kind in "biu":
            rtol = max(rtol, TOLERANCES[np.dtype(np.float64)])
        else:
            raise TypeError(f"cannot compare values of dtype {dt}; expected numbers")
    return rtol, rtol


def _values(x, name):
    arr = np.asarray(x.data if isinstance(x, Tensor) else x)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"assert_allclose: {name} has dtype {arr.dtype}; expected numbers")
    return arr


def assert_allclose(actual, desired, *, rtol=None, atol=None, check_dtype=False, equal_nan=True,
                    err_msg=""):
    r"""Assert that ``actual`` equals ``desired`` up to rounding in their dtype.

    Passes when, entry by entry,

    .. math::

        |a - d| \le \text{atol} \cdot \max(1, \max_j |d_j|) + \text{rtol}\,|d|,

    with ``rtol`` and ``atol`` from :func:`tolerances` of the two dtypes unless given. The
    shapes must be equal (no broadcasting: a shape slip is a bug, not a pass).

    Parameters
    ----------
    actual, desired : array_like or Tensor
    rtol, atol : float, optional
        Override the dtype's defaults (``atol`` is still scaled by :math:`\max(1, \max|d|)`).
    check_dtype : bool, default False
        Also require equal dtypes.
    equal_nan : bool, default True
        NaN in the same places counts as equal.
    err_msg : str
        Prepended to the error message.

    Raises
    ------
    AssertionError
        Saying how many entries differ, the worst one's index, both values, the difference and
        the tolerance.

    Examples
    --------
    >>> import numpy as np, scratchdgm as sd
    >>> from scratchdgm.testing import assert_allclose
    >>> assert_allclose(sd.tensor([1.0, 2.0]).exp(), np.exp([1.0, 2.0]))
    >>> assert_allclose(np.float32(1.0) + np.float32(3e-7), np.float32(1.0))  # float32 rounding
    """
    a, d = _values(actual, "actual"), _values(desired, "desired")
    prefix = f"{err_msg}: " if err_msg else ""
    if a.shape != d.shape:
        raise AssertionError(f"{prefix}shapes differ: actual {a.shape}, desired {d.shape}")
    if check_dtype and a.dtype != d.dtype:
        raise AssertionError(f"{prefix}dtypes differ: actual {a.dtype}, desired {d.dtype}")
    default_rtol, default_atol = tolerances(a.dtype, d.dtype)
    rtol = default_rtol if rtol is None else float(rtol)
    atol = default_atol if atol is None else float(atol)
    a64, d64 = a.astype(np.float64), d.astype(np.float64)
    finite = np.isfinite(d64)
    scale = max(1.0, float(np.max(np.abs(d64[finite]), initial=0.0)))
    limit = atol * scale + rtol * np.abs(d64)
    with np.errstate(invalid="ignore"):
        diff = np.abs(a64 - d64)
        ok = diff <= limit
    same = (a64 == d64) | (equal_nan & np.isnan(a64) & np.isnan(d64))
    ok = ok | same
    if np.all(ok):
        return
    bad = np.argwhere(~ok)
    ratio = np.where(ok, 0.0, np.where(np.isfinite(diff), diff / np.maximum(limit, 1e-300),
                                        np.inf))
    worst = tuple(int(v) for v in np.unravel_index(int(np.argmax(ratio)), a.shape)) \
        if a.ndim else ()
    where = f"index {worst}" if a.ndim else "the value"
    raise AssertionError(
        f"{prefix}{len(bad)} of {a.size} entries differ beyond rtol={rtol:g}, "
        f"atol={atol:g} x max(1, max|desired|) = {atol * scale:.3g} ({a.dtype} vs {d.dtype}); "
        f"worst at {where}: actual {a64[worst]:.10g}, desired {d64[worst]:.10g}, |difference| "
        f"{diff[worst]:.3g} > {limit[worst]:.3g}")
