r"""The check every deep model makes of its data at the public boundary, written once: a 2-D
numeric array with the model's number of columns, at least one row, finite values (or NaN for a
missing entry, in a model that accepts missing data), converted to the model's dtype. Model-specific rules (binary data for a Bernoulli likelihood) are added by
the model on top.
"""

import numpy as np

from scratchdgm import autodiff as _ad

__all__ = ["check_observations"]


def check_observations(X, input_dim, dtype, where="X", *, allow_missing=False):
    r"""Validate observations and return them as a C-contiguous array of ``dtype``.

    Parameters
    ----------
    X : array_like or Tensor, shape (n_samples, input_dim)
    input_dim : int
        The number of columns the model was built for (:math:`p`).
    dtype : numpy.dtype
    where : str
        The argument's name in error messages.
    allow_missing : bool
        Accept NaN as the marker of a missing entry (MIWAE); inf is refused either way.

    Returns
    -------
    ndarray, shape (n_samples, input_dim)

    Raises
    ------
    TypeError
        Non-numeric data.
    ValueError
        Not 2-D, the wrong number of columns, no rows, or NaN / inf (the first bad entry is
        named).
    """
    if isinstance(X, _ad.Tensor):
        X = X.data
    try:
        arr = np.asarray(X)
    except Exception as exc:  # pragma: no cover - exotic inputs
        raise TypeError(f"{where} must be array-like, got {type(X).__name__}") from exc
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{where} must be a numeric array of shape (n_samples, {input_dim}), "
                        f"got dtype {arr.dtype}")
    if arr.ndim != 2:
        raise ValueError(f"{where} must be 2-D, shape (n_samples, {input_dim}); got shape "
                         f"{arr.shape}")
    if arr.shape[1] != input_dim:
        raise ValueError(f"{where} has {arr.shape[1]} columns but the model was built with "
                         f"input_dim = {input_dim}")
    if arr.shape[0] == 0:
        raise ValueError(f"{where} has no rows; expected at least one sample")
    arr = np.ascontiguousarray(arr, dtype=dtype)
    if allow_missing:
        if np.isinf(arr).any():
            bad = tuple(int(v) for v in np.argwhere(np.isinf(arr))[0])
            raise ValueError(f"{where} contains an infinite value ({where}[{bad}] = {arr[bad]}); "
                             f"expected finite values, with NaN marking a missing entry")
    elif not np.all(np.isfinite(arr)):
        bad = tuple(int(v) for v in np.argwhere(~np.isfinite(arr))[0])
        raise ValueError(f"{where} contains NaN or inf (e.g. {where}[{bad}] = {arr[bad]}); "
                         f"expected finite values")
    return arr
