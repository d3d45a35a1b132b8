r"""Checkers for exercise 01 (the log-sum-exp op): each runs the student's op on generated inputs
and raises AssertionError with a hint when it is wrong.

The references are the library's :func:`scratchdgm.logsumexp` (values and gradients) and
:func:`scratchdgm.gradcheck` (central finite differences).
"""

import numpy as np

import scratchdgm as sd
from scratchdgm.autodiff import Context

# (shape, axis) pairs covering first / middle / last / negative axes and length-1 axes
CASES = [((5,), 0), ((4, 3), -1), ((4, 3), 0), ((2, 3, 4), 1), ((3, 1, 2), -2), ((1, 6), 1)]


def _forward(op, a, axis):
    ctx = Context((True,))
    out = op.forward(ctx, a.copy(), axis)
    return ctx, out


def _expected_shape(shape, axis):
    shape = list(shape)
    del shape[axis]
    return tuple(shape)


def check_forward(op, seed=0):
    r"""Values and shape of ``op.forward`` against :func:`scratchdgm.logsumexp` on moderate
    inputs (no stability issue yet)."""
    rng = np.random.default_rng(seed)
    for shape, axis in CASES:
        a = rng.normal(scale=2.0, size=shape)
        _, out = _forward(op, a, axis)
        out = np.asarray(out)
        want = _expected_shape(shape, axis)
        if out.shape != want:
            hint = ""
            if out.shape == tuple(1 if i == axis % len(shape) else n
                                  for i, n in enumerate(shape)):
                hint = (" -- you kept the reduced axis: remove it (np.squeeze(y, axis) or "
                        "keepdims=False)")
            elif out.shape == ():
                hint = " -- you reduced over every axis: pass axis=axis to np.max / np.sum"
            raise AssertionError(f"forward on input of shape {shape} with axis={axis} returned "
                                 f"shape {out.shape}, expected {want}{hint}")
        if out.dtype != a.dtype:
            raise AssertionError(f"forward returned dtype {out.dtype} for a {a.dtype} input; "
                                 f"keep the input's dtype")
        ref = sd.logsumexp(a, axis=axis).data
        if not np.allclose(out, ref, rtol=1e-10, atol=1e-12):
            hint = ""
            if np.allclose(out, np.log(np.mean(np.exp(a), axis=axis))):
                hint = " -- that is the log-MEAN-exp: the op is the log of the SUM"
            elif np.allclose(out, np.sum(np.exp(a), axis=axis)):
                hint = " -- you forgot the log"
            raise AssertionError(f"forward values are wrong on input of shape {shape}, "
                                 f"axis={axis}: got {out.ravel()[:3]}..., expected "
                                 f"{ref.ravel()[:3]}...{hint}")


def check_stability(op):
    r"""Huge, tiny and ``-inf`` inputs: no overflow, no NaN."""
    a = np.array([[1000.0, 1000.0, 999.0], [-1000.0, -1001.0, -1002.0], [0.0, -np.inf, 1.0]])
    with np.errstate(all="ignore"):
        _, out = _forward(op, a, -1)
    out = np.asarray(out)
    ref = sd.logsumexp(a, axis=-1).data
    if not np.all(np.isfinite(out)):
        raise AssertionError(
            f"forward gave {out} for rows of huge (+-1000) log-weights, expected {ref}: "
            f"exp(1000) overflows to inf and exp(-1000) underflows to 0. Subtract the "
            f"maximum first: log sum exp(a) = m + log sum exp(a - m), m = max(a)")
    if not np.allclose(out, ref, rtol=1e-12):
        raise AssertionError(f"forward gave {out} for huge log-weights, expected {ref}: did you "
                             f"add the maximum m back after the log?")
    all_neg_inf = np.full((2, 3), -np.inf)
    with np.errstate(all="ignore"):
        _, out = _forward(op, all_neg_inf, 1)
    out = np.asarray(out)
    if not np.all(out == -np.inf):
        raise AssertionError(
            f"forward gave {out} for rows where every entry is -inf, expected [-inf, -inf] "
            f"(log of a sum of zeros). With m = max = -inf, a - m is -inf - (-inf) = NaN: use "
            f"m = 0 where the maximum is not finite (np.where(np.isfinite(m), m, 0))")


def _backward(op, a, axis, grad):
    ctx, _ = _forward(op, a, axis)
    try:
        return np.asarray(op.backward(ctx, grad))
    except NotImplementedError:
        raise AssertionError("your forward works; backward still raises NotImplementedError: "
                             "write it next") from None


def check_backward_shape(op, seed=0):
    r"""``backward`` returns one gradient of the input's shape (it must put the reduced axis
    back itself)."""
    rng = np.random.default_rng(seed)
    for shape, axis in CASES:
        a = rng.normal(size=shape)
        grad = rng.normal(size=_expected_shape(shape, axis))
        try:
            g = _backward(op, a, axis, grad)
        except ValueError as exc:
            raise AssertionError(
                f"backward failed on input of shape {shape}, axis={axis} ({exc}): grad has "
                f"shape {grad.shape} without the reduced axis; put it back with "
                f"np.expand_dims(grad, axis) so that it broadcasts against a") from None
        if g.shape != shape:
            raise AssertionError(f"backward returned shape {g.shape}, expected {shape} (the "
                                 f"input's shape): expand grad along axis {axis} and multiply by "
                                 f"the softmax of a")


def check_gradient(op, seed=0):
    r"""``backward`` against central finite differences (:func:`scratchdgm.gradcheck`) and
    against the library's gradient."""
    rng = np.random.default_rng(seed)
    for shape, axis in CASES:
        a = rng.normal(size=shape)
        try:
            sd.gradcheck(lambda t: op.apply(t, axis=axis), [a])
        except sd.GradcheckError as exc:
            ctx, out = _forward(op, a, axis)
            g = np.asarray(op.backward(ctx, np.ones_like(out)))
            hint = ("the derivative of log sum exp(a) is the softmax exp(a_k - y), which sums "
                    "to 1 along the axis")
            if np.allclose(g, np.exp(a)):
                hint = ("you returned grad * exp(a): divide by the sum, i.e. use exp(a - y), "
                        "the softmax")
            raise AssertionError(f"backward disagrees with finite differences on input of "
                                 f"shape {shape}, axis={axis}: {exc}. Hint: {hint}") from None
    # large magnitudes: the gradient must not be NaN where the forward was fine
    a = np.array([[1000.0, 999.0], [-1000.0, -np.inf]])
    with np.errstate(all="ignore"):
        g = _backward(op, a, -1, np.ones(2))
    ref = np.array([[1 / (1 + np.exp(-1.0)), np.exp(-1.0) / (1 + np.exp(-1.0))], [1.0, 0.0]])
    if not np.allclose(g, ref, rtol=1e-12):
        raise AssertionError(f"backward gave {g.tolist()} for log-weights [[1000, 999], "
                             f"[-1000, -inf]], expected {ref.tolist()}: compute the softmax as "
                             f"exp(a - y) with the saved output y, not exp(a) / sum(exp(a))")
    with np.errstate(all="ignore"):
        g = _backward(op, np.full((1, 3), -np.inf), 1, np.ones(1))
    if not np.array_equal(g, np.zeros((1, 3))):
        raise AssertionError(f"backward gave {g.tolist()} for a row of all -inf, expected "
                             f"zeros: that row does not depend on its entries (replace the NaN "
                             f"of exp(-inf - (-inf)) by 0)")


def check_logsumexp(op):
    r"""Run every check on the student's ``LogSumExp`` class, in teaching order."""
    check_forward(op)
    check_stability(op)
    check_backward_shape(op)
    check_gradient(op)
