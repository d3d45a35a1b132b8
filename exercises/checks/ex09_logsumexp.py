r"""Checks of exercise 09: the stable log-sum-exp, ``logsumexp`` in ``scratchdgm/numerics.py``,
and the autodiff op ``LogSumExp`` (forward and backward) in ``scratchdgm/autodiff/ops.py``.

References: ``scipy.special.logsumexp`` and ``scipy.special.softmax``; the op is called directly
(``forward(ctx, ...)``, ``backward(ctx, grad)``), not through ``Tensor.backward`` (exercise 02).
"""

import numpy as np
from scipy import special

from scratchdgm.autodiff import Context

from ._common import central_difference, close, show

#: (shape, axis) pairs: all axes, one, a negative one, several, length-1 axes
CASES = [((5,), None), ((4, 3), -1), ((4, 3), 0), ((2, 3, 4), 1), ((2, 3, 4), (0, 2)),
         ((3, 1, 2), -2), ((1, 6), 1), ((2, 3), None)]


def _reference(a, axis, keepdims=False):
    with np.errstate(all="ignore"):
        return np.asarray(special.logsumexp(np.asarray(a, np.float64), axis=axis,
                                            keepdims=keepdims))


def _normalise(axis, ndim):
    if axis is None:
        return None
    axes = (axis,) if isinstance(axis, int) else axis
    return tuple(sorted(a % ndim for a in axes))


def check_function(logsumexp, a, axis, keepdims=False):
    r"""``logsumexp(a, axis, keepdims)`` equals SciPy's, with the reduced shape and ``a``'s
    float dtype."""
    with np.errstate(all="ignore"):
        got = np.asarray(logsumexp(a.copy(), axis=axis, keepdims=keepdims))
    want = _reference(a, axis, keepdims)
    case = f"an array of shape {a.shape}, axis={axis}, keepdims={keepdims}"
    if got.shape != want.shape:
        hint = ""
        if not keepdims and got.ndim == a.ndim:
            hint = " -- you kept the reduced axes: squeeze them unless keepdims"
        elif keepdims and got.ndim < a.ndim:
            hint = " -- with keepdims=True the reduced axes stay, with length 1"
        raise AssertionError(f"logsumexp of {case} has shape {got.shape}, expected "
                             f"{want.shape}{hint}")
    dtype = a.dtype if np.issubdtype(a.dtype, np.floating) else np.dtype(np.float64)
    if got.dtype != dtype:
        raise AssertionError(f"logsumexp of a {a.dtype} array returned {got.dtype}, expected "
                             f"{dtype}")
    rtol = 1e-6 if dtype == np.float32 else 1e-12
    if not close(got, want, rtol, rtol):
        hint = _value_hint(got, a, axis, keepdims)
        raise AssertionError(f"logsumexp of {case} gives {show(got)}, expected "
                             f"{show(want)}{hint}")


def _value_hint(got, a, axis, keepdims):
    with np.errstate(all="ignore"):
        a64 = np.asarray(a, np.float64)
        n = a64.size if axis is None else np.prod([a64.shape[i] for i in np.atleast_1d(axis)])
        lme = _reference(a64, axis, keepdims) - np.log(n)
        if got.shape == lme.shape and close(got, lme, 1e-9, 1e-9):
            return " -- that is the log-MEAN-exp: the log of the SUM here"
        s = np.sum(np.exp(a64), axis=axis, keepdims=keepdims)
        if got.shape == s.shape and close(got, s, 1e-9, 1e-9):
            return " -- you forgot the log"
    return ""


def check_stability(logsumexp):
    r"""Log-weights of +-1000 and +-1e300, ``-inf`` (a zero weight), all ``-inf`` (log 0),
    ``+inf`` and NaN: no overflow, no NaN where there is a number, ``float32`` too."""
    a = np.array([[1000.0, 1000.0, 999.0], [-1000.0, -1001.0, -1002.0],
                  [0.0, -np.inf, 1.0], [1e300, -1e300, 0.0]])
    with np.errstate(all="ignore"):
        got = np.asarray(logsumexp(a.copy(), axis=-1))
    want = _reference(a, -1)
    if not np.all(np.isfinite(got)):
        raise AssertionError(f"logsumexp of rows of huge log-weights gives {show(got)}, expected "
                             f"{show(want)}: exp(1000) overflows to inf and exp(-1000) underflows "
                             f"to 0. Shift by the maximum: log sum exp(a) = m + log sum "
                             f"exp(a - m), m = max(a)")
    if not close(got, want, 1e-12, 0):
        raise AssertionError(f"logsumexp of huge log-weights gives {show(got)}, expected "
                             f"{show(want)}: did you add the maximum m back after the log?")
    special_rows = np.array([[-np.inf, -np.inf], [np.inf, 0.0], [np.nan, 0.0], [np.inf, np.inf]])
    with np.errstate(all="ignore"):
        got = np.asarray(logsumexp(special_rows.copy(), axis=1))
    want = np.array([-np.inf, np.inf, np.nan, np.inf])
    if not close(got, want, 0, 0):
        hint = ""
        if np.isnan(got[0]):
            hint = (" An all -inf row is log(0) = -inf: with m = max = -inf, a - m is "
                    "-inf - (-inf) = NaN; shift by 0 where the maximum is not finite")
        elif np.isnan(got[1]) or np.isnan(got[3]):
            hint = " A +inf entry makes the sum +inf (inf - inf is NaN: treat m = +inf apart)"
        raise AssertionError(f"logsumexp of the rows [-inf, -inf], [inf, 0], [nan, 0], [inf, inf] "
                             f"gives {got.tolist()}, expected [-inf, inf, nan, inf].{hint}")
    a32 = np.array([[80.0, 81.0, -90.0]], dtype=np.float32)  # exp(90) overflows float32
    with np.errstate(all="ignore"):
        got = np.asarray(logsumexp(a32, axis=1))
    if got.dtype != np.float32 or not close(got, _reference(a32, 1), 1e-6, 0):
        raise AssertionError(f"in float32, logsumexp([80, 81, -90]) gives {show(got)} "
                             f"({got.dtype}), expected {show(_reference(a32, 1))} (float32)")


# ----------------------------------------------------------------------------- the op
def _forward(op, a, axis, keepdims):
    ctx = Context((True,))
    with np.errstate(all="ignore"):
        out = np.asarray(op.forward(ctx, a.copy(), _normalise(axis, a.ndim), keepdims))
    return ctx, out


def check_op_forward(op, a, axis, keepdims=False):
    r"""``op.forward(ctx, a, axis, keepdims)`` (axes as :func:`normalize_axis` gives them: None
    or a sorted tuple) equals SciPy's."""
    _, got = _forward(op, a, axis, keepdims)
    want = _reference(a, axis, keepdims)
    if got.shape != want.shape:
        raise AssertionError(f"LogSumExp.forward on shape {a.shape}, axis={axis}, "
                             f"keepdims={keepdims} returned shape {got.shape}, expected "
                             f"{want.shape}")
    if got.dtype != a.dtype:
        raise AssertionError(f"LogSumExp.forward returned {got.dtype} for a {a.dtype} input")
    if not close(got, want, 1e-12, 1e-12):
        raise AssertionError(f"LogSumExp.forward gives {show(got)}, expected {show(want)}"
                             f"{_value_hint(got, a, axis, keepdims)}")


def check_op_backward(op, a, axis, keepdims=False, seed=0):
    r"""``op.backward(ctx, grad)`` returns ``grad`` times the softmax of ``a`` over the axes, of
    ``a``'s shape: central differences of SciPy's log-sum-exp."""
    ctx, out = _forward(op, a, axis, keepdims)
    grad = np.random.default_rng(seed).normal(size=out.shape)
    try:
        g = op.backward(ctx, grad.copy())
    except ValueError as exc:
        raise AssertionError(f"LogSumExp.backward failed on shape {a.shape}, axis={axis}, "
                             f"keepdims={keepdims} ({exc}): grad lacks the reduced axes; put "
                             f"them back (np.expand_dims(grad, axis)) so that it broadcasts "
                             f"against a") from None
    if isinstance(g, tuple):
        g = g[0]
    g = np.asarray(g)
    if g.shape != a.shape:
        hint = ""
        if g.shape == out.shape:
            hint = ": you returned grad's shape; multiply it (with the reduced axes put back) " \
                   "by the softmax of a"
        raise AssertionError(f"LogSumExp.backward returned shape {g.shape}, expected a's shape "
                             f"{a.shape}{hint}")

    def loss(v):
        return float(np.sum(grad * _reference(v, axis, keepdims)))

    want = central_difference(loss, a)
    if close(g, want, 1e-6, 1e-8):
        return
    hint = ("the derivative of log sum exp(a) is the softmax exp(a_k - y), which sums to 1 over "
            "the reduced axes")
    axes = tuple(range(a.ndim)) if axis is None else _normalise(axis, a.ndim)
    expanded = grad if keepdims else np.expand_dims(grad, axes)
    with np.errstate(all="ignore"):
        if close(g, expanded * np.exp(a), 1e-9, 1e-12):
            hint = ("you returned grad times exp(a): divide by the sum, i.e. use exp(a - y), "
                    "the softmax")
    raise AssertionError(f"LogSumExp.backward disagrees with central differences on shape "
                         f"{a.shape}, axis={axis}, keepdims={keepdims}: got {show(g)}, expected "
                         f"{show(want)}. Hint: {hint}")


def check_op_extremes(op):
    r"""The backward at log-weights [[1000, 999], [-1000, -inf]] and at an all ``-inf`` row:
    the softmax computed as ``exp(a - y)`` from the saved output, zero for the all ``-inf``
    row."""
    a = np.array([[1000.0, 999.0], [-1000.0, -np.inf]])
    ctx, _ = _forward(op, a, -1, False)
    with np.errstate(all="ignore"):
        g = np.asarray(op.backward(ctx, np.ones(2)))
    want = special.softmax(a, axis=-1)
    if not close(g, want, 1e-12, 1e-300):
        raise AssertionError(f"LogSumExp.backward gives {g.tolist()} for log-weights [[1000, "
                             f"999], [-1000, -inf]], expected {want.tolist()}: compute the "
                             f"softmax as exp(a - y) with the saved output y, not exp(a) / "
                             f"sum(exp(a))")
    ctx, _ = _forward(op, np.full((1, 3), -np.inf), 1, False)
    with np.errstate(all="ignore"):
        g = np.asarray(op.backward(ctx, np.ones(1)))
    if not np.array_equal(g, np.zeros((1, 3))):
        raise AssertionError(f"LogSumExp.backward gives {g.tolist()} for a row of all -inf, "
                             f"expected zeros: that row's log-sum-exp does not depend on its "
                             f"entries (replace the NaN of exp(-inf - (-inf)) by 0)")
