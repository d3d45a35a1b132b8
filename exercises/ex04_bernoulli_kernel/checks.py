r"""Checkers for ex04: they call the student's functions on generated inputs and compare with the
library's NumPy reference (:func:`scratchdgm.kernels.reference.bernoulli_log_prob` and
:func:`scratchdgm.kernels.reference.bernoulli_log_prob_with_grad`), raising AssertionError with
a hint when something is off."""

import math

import numpy as np

from scratchdgm.kernels import reference


def library_log_prob(logits, x):
    """The library's Bernoulli log-likelihood (the solution of part 1)."""
    return reference.bernoulli_log_prob(np.asarray(logits, dtype=np.float64), x)


def library_grad(logits, x):
    """The library's gradient with respect to the logits (the solution of part 2)."""
    return reference.bernoulli_log_prob_with_grad(np.asarray(logits, dtype=np.float64), x)[1]


def _call(fn, logits, x):
    l_copy, x_copy = np.array(logits, dtype=np.float64), np.array(x, dtype=np.float64)
    with np.errstate(all="ignore"):
        out = np.asarray(fn(l_copy, x_copy), dtype=np.float64)
    if not (np.array_equal(l_copy, logits) and np.array_equal(x_copy, x)):
        raise AssertionError("your function changed its input arrays in place: work on copies")
    return out


def _case(rng, K=3, B=4, D=10, scale=3.0):
    logits = rng.normal(scale=scale, size=(K, B, D))
    x = (rng.random((B, D)) < 0.4).astype(np.float64)
    return logits, x


def check_log_prob(fn):
    r"""Check ``fn(logits, x) -> (K, B)`` against the reference."""
    rng = np.random.default_rng(0)
    logits, x = _case(rng)
    got, want = _call(fn, logits, x), library_log_prob(logits, x)
    if got.shape != want.shape:
        hint = ""
        if got.shape == logits.shape:
            hint = ": sum over the last axis, the D pixels (one log-likelihood per sample)"
        raise AssertionError(f"your bernoulli_log_prob returned shape {got.shape}, expected "
                             f"{want.shape} for logits of shape (K, B, D) = {logits.shape} and "
                             f"x of shape (B, D) = {x.shape}{hint}")
    if np.allclose(got, -want, rtol=1e-9):
        raise AssertionError("your result is the binary cross-entropy, the NEGATIVE "
                             "log-likelihood: return sum_j x_j l_j - softplus(l_j) (<= 0)")
    flipped = library_log_prob(logits, 1.0 - x)
    if np.allclose(got, flipped, rtol=1e-9):
        raise AssertionError("your result is the likelihood of 1 - x: the probability of a "
                             "1-pixel is sigmoid(l), so its term is log sigmoid(l) = l - "
                             "softplus(l)")
    if not np.allclose(got, want, rtol=1e-10, atol=1e-10):
        raise AssertionError(f"your bernoulli_log_prob gives\n{got}\nexpected\n{want}")
    if np.any(got > 0):
        raise AssertionError("a log-probability of binary data must be <= 0")

    # a confident decoder and a diverging one: logits of +-30 and +-1000
    extreme = np.array([[[30.0, -30.0, 1000.0, -1000.0, 0.0, 745.0]]])
    for xs in ([1.0, 0.0, 1.0, 0.0, 1.0, 1.0], [0.0, 1.0, 0.0, 1.0, 0.0, 0.0]):
        xe = np.array([xs])
        got, want = _call(fn, extreme, xe), library_log_prob(extreme, xe)
        if not np.all(np.isfinite(got)):
            raise AssertionError(f"for logits {extreme.ravel().tolist()} and x = {xs} your "
                                 f"result is {got.ravel()[0]}, expected {want.ravel()[0]:.6g}: "
                                 f"log(sigmoid(l)) or log(1 + exp(l)) under/overflows; use "
                                 f"softplus(l) = max(l, 0) + log1p(exp(-|l|))")
        if not np.allclose(got, want, rtol=1e-12):
            raise AssertionError(f"for logits {extreme.ravel().tolist()} and x = {xs} your "
                                 f"result is {got.ravel()[0]:.12g}, expected "
                                 f"{want.ravel()[0]:.12g}: check the softplus at large |l|")
    return True


def check_grad(fn):
    r"""Check ``fn(logits, x) -> (K, B, D)``, the derivative x - sigmoid(l), against the
    reference."""
    rng = np.random.default_rng(1)
    logits, x = _case(rng)
    got, want = _call(fn, logits, x), library_grad(logits, x)
    if got.shape != want.shape:
        raise AssertionError(f"your bernoulli_log_prob_grad returned shape {got.shape}, "
                             f"expected {want.shape}: one derivative per logit")
    if np.allclose(got, -want, rtol=1e-9):
        raise AssertionError("your gradient has the wrong sign: d/dl [x l - softplus(l)] = "
                             "x - sigmoid(l)")
    if not np.allclose(got, want, rtol=1e-10, atol=1e-12):
        raise AssertionError(f"your gradient differs from x - sigmoid(l) by up to "
                             f"{np.max(np.abs(got - want)):.3g}")
    extreme = np.array([[[1000.0, -1000.0, 745.0, -745.0]]])
    xe = np.array([[0.0, 1.0, 1.0, 0.0]])
    got, want = _call(fn, extreme, xe), library_grad(extreme, xe)
    if not np.all(np.isfinite(got)) or not np.allclose(got, want, atol=1e-12):
        raise AssertionError(f"for logits {extreme.ravel().tolist()} your gradient is "
                             f"{got.ravel().tolist()}, expected {want.ravel().tolist()}: "
                             f"compute sigmoid without overflow, 1 / (1 + exp(-l))")
    return True


def check_grad_is_the_derivative(log_prob_fn, grad_fn, h=1e-6):
    r"""Property: the gradient equals central differences of the log-likelihood, per logit."""
    rng = np.random.default_rng(2)
    logits, x = _case(rng, K=2, B=2, D=5)
    g = _call(grad_fn, logits, x)
    for idx in [(0, 0, 0), (1, 1, 4), (0, 1, 2), (1, 0, 3)]:
        up, down = logits.copy(), logits.copy()
        up[idx] += h
        down[idx] -= h
        k, b = idx[0], idx[1]
        numeric = (_call(log_prob_fn, up, x)[k, b] - _call(log_prob_fn, down, x)[k, b]) / (2 * h)
        if not math.isclose(numeric, g[idx], rel_tol=1e-5, abs_tol=1e-8):
            raise AssertionError(f"d log p / d logits{list(idx)} by central differences is "
                                 f"{numeric:.8f}, your gradient is {g[idx]:.8f}: the gradient "
                                 f"must be the derivative of your log-likelihood")
    return True
