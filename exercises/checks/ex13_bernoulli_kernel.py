r"""Checks of exercise 13: the Bernoulli log-likelihood from logits as fused Numba kernels,
``_bernoulli_kernel`` and ``_bernoulli_grad_kernel`` in ``kernels/cpu.py``, called through
``bernoulli_log_prob(logits, x)`` and ``bernoulli_log_prob_with_grad(logits, x)`` of the same
module.

The reference is written here with NumPy's ``logaddexp`` and SciPy's ``expit`` (not the
library's reference kernels), in float64; float32 results are held to that reference correctly
rounded, within a tolerance scaled by the size of the terms summed.
"""

import numpy as np
from scipy import special

from ._common import expect_array, show


def reference(logits, x):
    r""":math:`\sum_j x_j \ell_j - \log(1 + e^{\ell_j})` and :math:`x - \sigma(\ell)`, float64."""
    l64 = np.asarray(logits, np.float64)
    x64 = np.asarray(x, np.float64)
    terms = x64 * l64 - np.logaddexp(0.0, l64)
    return terms.sum(axis=-1), x64 - special.expit(l64), np.abs(terms).sum(axis=-1)


def _call(fn, logits, x):
    l_copy, x_copy = logits.copy(), x.copy()
    with np.errstate(all="ignore"):
        out = fn(l_copy, x_copy)
    if not (np.array_equal(l_copy, logits) and np.array_equal(x_copy, x)):
        raise AssertionError("the kernel changed its input arrays: write only to out (and dl)")
    return out


def check_log_prob(log_prob, logits, x):
    r"""``log_prob(logits, x)``: shape ``logits.shape[:-1]``, dtype of ``logits``, equal to the
    reference (relative 1e-12 in float64, 1e-5 of the summed magnitudes in float32)."""
    got = np.asarray(_call(log_prob, logits, x))
    want, _, scale = reference(logits, x)
    case = f"logits of shape {logits.shape} ({logits.dtype}) and x of shape {x.shape}"
    expect_array(got, want.shape, logits.dtype, f"bernoulli_log_prob of {case}",
                 dtype_hint="out has the logits' dtype (accumulate in a float64 scalar, store "
                            "once)")
    rtol = 1e-5 if logits.dtype == np.float32 else 1e-12
    err = np.abs(got.astype(np.float64) - want)
    if np.all(err <= rtol * np.maximum(scale, 1.0)):
        return
    hint = "out[k, b] = sum_j x[b, j] l[k, b, j] - softplus(l[k, b, j])"
    flipped, _, _ = reference(logits, 1.0 - x)
    if not np.all(np.isfinite(got)):
        hint = ("it is not finite: log(sigmoid(l)) or log(1 + exp(l)) under/overflows at large "
                "|l|; use softplus(l) = max(l, 0) + log1p(exp(-|l|))")
    elif np.allclose(got, -want, rtol=1e-4):
        hint = ("that is the binary cross-entropy, the NEGATIVE log-likelihood: return "
                "sum_j x_j l_j - softplus(l_j) (<= 0)")
    elif np.allclose(got, flipped, rtol=1e-4):
        hint = ("that is the likelihood of 1 - x: a 1-pixel has probability sigmoid(l), its term "
                "is l - softplus(l)")
    elif got.size > 1 and np.allclose(got, got.reshape(-1)[0]) and not np.allclose(
            want, want.reshape(-1)[0]):
        hint = "every (k, b) got the same value: write out[k, b] for each row (k, b)"
    raise AssertionError(f"bernoulli_log_prob is off by up to {err.max():.3g} for {case} (got "
                         f"{show(got)}, expected {show(want)}): {hint}")


def check_with_grad(with_grad, logits, x):
    r"""``with_grad(logits, x)`` returns the same log-likelihood and
    :math:`\partial / \partial \ell_j = x_j - \sigma(\ell_j)`, of the logits' shape and dtype."""
    out = _call(with_grad, logits, x)
    if not isinstance(out, tuple) or len(out) != 2:
        raise AssertionError("bernoulli_log_prob_with_grad must return (log_px, dlogits)")
    check_log_prob(lambda l, xx: out[0], logits, x)
    got = expect_array(out[1], logits.shape, logits.dtype, "dlogits")
    _, want, _ = reference(logits, x)
    tol = 1e-6 if logits.dtype == np.float32 else 1e-14
    if np.all(np.abs(got - want) <= tol):
        return
    hint = "dl = x - sigmoid(l)"
    if np.allclose(got, -want, atol=1e-5):
        hint = "wrong sign: d/dl [x l - softplus(l)] = x - sigmoid(l)"
    elif not np.all(np.isfinite(got)):
        hint = ("sigmoid overflowed: from e = exp(-|l|) <= 1, sigmoid(l) = 1 / (1 + e) for "
                "l >= 0 and e / (1 + e) below -- the exponential you already have")
    raise AssertionError(f"dlogits is off by up to {np.max(np.abs(got - want)):.3g} for logits "
                         f"of shape {logits.shape} ({logits.dtype}): {hint}")


def check_extreme_logits(log_prob, with_grad, dtype=np.float64):
    r"""Logits of a confident decoder (+-30) and a diverging one (+-1000, 745): finite and
    exact."""
    extreme = np.array([[[30.0, -30.0, 1000.0, -1000.0, 0.0, 745.0, -745.0]]], dtype=dtype)
    for xs in ([1.0, 0.0, 1.0, 0.0, 1.0, 1.0, 0.0], [0.0, 1.0, 0.0, 1.0, 0.0, 0.0, 1.0]):
        x = np.array([xs], dtype=dtype)
        check_log_prob(log_prob, extreme, x)
        check_with_grad(with_grad, extreme, x)


def check_gradient_is_the_derivative(log_prob, with_grad, seed=0, h=1e-6):
    r"""The returned gradient is the derivative of the returned log-likelihood: central
    differences of ``log_prob`` at a few logits."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(scale=3, size=(2, 2, 5))
    x = (rng.random((2, 5)) < 0.4).astype(np.float64)
    _, g = with_grad(logits.copy(), x.copy())
    for idx in [(0, 0, 0), (1, 1, 4), (0, 1, 2), (1, 0, 3)]:
        up, down = logits.copy(), logits.copy()
        up[idx] += h
        down[idx] -= h
        k, b = idx[:2]
        numeric = (log_prob(up, x)[k, b] - log_prob(down, x)[k, b]) / (2 * h)
        if not np.isclose(numeric, g[idx], rtol=1e-5, atol=1e-8):
            raise AssertionError(f"d log p / d logits{list(idx)} by central differences is "
                                 f"{numeric:.8f}, the gradient kernel gives {g[idx]:.8f}")


def check_compiled(kernel):
    r"""The kernel compiled (nopython mode): Numba recorded a signature for it."""
    import numba

    if numba.config.DISABLE_JIT:
        return
    if not getattr(kernel, "signatures", None):
        raise AssertionError(f"{getattr(kernel, '__name__', kernel)} has not been compiled by "
                             f"Numba: keep its @njit decorator")
