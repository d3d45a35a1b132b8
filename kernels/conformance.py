r"""How a kernel module is checked against :mod:`scratchdgm.kernels.reference`: one function per
kernel, shared by the tests (the CUDA kernels in numba's simulator, and on a real GPU) and by
``scratchdgm bench gpu``.

Each ``check_*(km, ...)`` runs the kernel of module ``km`` (e.g. :mod:`scratchdgm.kernels.cuda`)
and the reference on the same inputs and returns the worst error *in units of the tolerance*:
0 for identical results, at most 1 for a pass, ``inf`` when the two disagree on what is finite
(NaN / inf in different places), on the shape or on the dtype. The tolerance of an entry is
:data:`RTOL` of the dtype times ``max(|expected| + scale, 1)``, where ``scale`` bounds the
rounding error a correct kernel may make (e.g. the sum of the absolute values of the terms of a
reduction, which cancellation can leave far above the result).

:data:`CHECKS` names the check of every kernel of :data:`scratchdgm.kernels.KERNEL_NAMES`, so a
kernel added without one is noticed.
"""

import numpy as np

from . import reference as _ref

__all__ = ["RTOL", "error_ratio", "check_logsumexp", "check_bernoulli", "check_gaussian",
           "check_reparam", "check_linear", "check_adam", "check_box_muller", "CHECKS",
           "edge_log_weights"]

#: relative tolerance of a kernel against the reference, per dtype (float64 reductions in both)
RTOL = {np.float32: 1e-5, np.float64: 1e-12}


def error_ratio(actual, expected, dtype, scale=None):
    r"""Worst :math:`|a - e| / (\mathrm{rtol} \max(|e| + s, 1))` over the finite entries;
    ``inf`` if the shape, the dtype or the pattern of non-finite values differ."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    if actual.shape != expected.shape or actual.dtype != np.dtype(dtype):
        return np.inf
    fin = np.isfinite(expected)
    if not np.array_equal(np.isfinite(actual), fin) or not np.array_equal(
            actual[~fin], expected[~fin], equal_nan=True):  # same NaN and same signed infs
        return np.inf
    if not fin.any():
        return 0.0
    s = np.abs(expected[fin].astype(np.float64))
    if scale is not None:
        s = s + np.broadcast_to(scale, expected.shape)[fin]
    err = np.abs(actual[fin].astype(np.float64) - expected[fin])
    return float(np.max(err / (RTOL[np.dtype(dtype).type] * np.maximum(s, 1.0))))


def check_logsumexp(km, a, seed=0):
    r"""``logsumexp`` and ``logsumexp_backward`` of a (K, B) array (the backward with a random
    incoming gradient)."""
    dt = a.dtype.type
    lse = _ref.logsumexp(a)
    worst = error_ratio(km.logsumexp(a), lse, dt)
    g = np.random.default_rng(seed).standard_normal(a.shape[1]).astype(a.dtype)
    return max(worst, error_ratio(km.logsumexp_backward(a, lse, g),
                                  _ref.logsumexp_backward(a, lse, g), dt,
                                  scale=np.abs(g)[None, :]))


def check_bernoulli(km, logits, x):
    r"""``bernoulli_log_prob`` and ``bernoulli_log_prob_with_grad`` of logits (K, B, D) and
    binary x (B, D)."""
    dt = logits.dtype.type
    scale = np.abs(x * logits.astype(np.float64) - np.logaddexp(0, logits)).sum(-1)
    worst = error_ratio(km.bernoulli_log_prob(logits, x), _ref.bernoulli_log_prob(logits, x),
                        dt, scale)
    v1, d1 = km.bernoulli_log_prob_with_grad(logits, x)
    v2, d2 = _ref.bernoulli_log_prob_with_grad(logits, x)
    return max(worst, error_ratio(v1, v2, dt, scale), error_ratio(d1, d2, dt))


def check_gaussian(km, z, mu, log_sigma, seed=0):
    r"""``diag_gaussian_log_prob`` and its backward for z (K, B, d) and mu, log_sigma that
    broadcast against it."""
    dt = z.dtype.type
    full = np.broadcast_shapes(z.shape, mu.shape, log_sigma.shape)
    inv = np.exp(-log_sigma.astype(np.float64))
    eps = (z - mu.astype(np.float64)) * inv
    scale = np.broadcast_to(0.5 * eps**2 + np.abs(log_sigma) + 1, full).sum(-1)
    worst = error_ratio(km.diag_gaussian_log_prob(z, mu, log_sigma),
                        _ref.diag_gaussian_log_prob(z, mu, log_sigma), dt, scale)
    g = np.random.default_rng(seed).standard_normal(full[:-1]).astype(z.dtype)
    term = np.broadcast_to(np.abs(g)[..., None] * (np.abs(eps) * inv + eps**2 + 1), full)
    for a, b, inp in zip(km.diag_gaussian_log_prob_backward(z, mu, log_sigma, g),
                         _ref.diag_gaussian_log_prob_backward(z, mu, log_sigma, g),
                         (z, mu, log_sigma)):
        worst = max(worst, error_ratio(a, b, dt, scale=_ref._reduce_to(term, inp.shape)))
    return worst


def check_reparam(km, eps, mu, log_sigma):
    r"""``diag_gaussian_reparam`` for eps (K, B, d) and mu, log_sigma (B, d): the samples, and
    each log-density against the sum of the absolute values of its terms."""
    dt = eps.dtype.type
    z, log_q, log_p = _ref.diag_gaussian_reparam(eps, mu, log_sigma)
    got = km.diag_gaussian_reparam(eps, mu, log_sigma)
    if len(got) != 3:
        return np.inf
    z64 = z.astype(np.float64)
    d = eps.shape[-1]
    return max(error_ratio(got[0], z, dt, scale=np.abs(mu) + np.exp(log_sigma) * np.abs(eps)),
               error_ratio(got[1], log_q, dt, scale=0.5 * (eps.astype(np.float64) ** 2).sum(-1)
                           + np.abs(log_sigma).sum(-1) + d),
               error_ratio(got[2], log_p, dt, scale=0.5 * (z64 ** 2).sum(-1) + d))


def check_linear(km, x, W, b, activation, seed=0):
    r"""``linear`` and ``linear_backward`` (with and without the input's gradient) for x
    (..., n), W (n, m), b (m,) or None."""
    dt = x.dtype.type
    scale = np.abs(x) @ np.abs(W) + (0 if b is None else np.abs(b))
    y = _ref.linear(x, W, b, activation)
    worst = error_ratio(km.linear(x, W, b, activation), y, dt, scale)
    g = np.random.default_rng(seed).standard_normal(y.shape).astype(x.dtype)
    n, m = W.shape
    ag = 2 * np.abs(g).reshape(-1, m)
    gx1, gW1, gb1 = km.linear_backward(x, W, y, g, activation)
    gx2, gW2, gb2 = _ref.linear_backward(x, W, y, g, activation)
    worst = max(worst, error_ratio(gx1, gx2, dt, scale=(ag @ np.abs(W).T).reshape(x.shape)),
                error_ratio(gW1, gW2, dt, scale=np.abs(x).reshape(-1, n).T @ ag),
                error_ratio(gb1, gb2, dt, scale=ag.sum(0)))
    if km.linear_backward(x, W, y, g, activation, need_x_grad=False)[0] is not None:
        return np.inf  # need_x_grad=False must skip that product
    return worst


def check_adam(km, data, grad, m, v, step=3, lr=1e-3, betas=(0.9, 0.999), eps=1e-8,
               weight_decay=0.0):
    r"""``adam_update`` (in place) on copies of the same parameter, gradient and moments."""
    dt = data.dtype.type
    mine = [a.copy() for a in (data, grad, m, v)]
    ref = [a.copy() for a in (data, grad, m, v)]
    km.adam_update(*mine, lr, betas[0], betas[1], eps, step, weight_decay)
    _ref.adam_update(*ref, lr, betas[0], betas[1], eps, step, weight_decay)
    # the update is lr * O(1): its rounding is relative to lr, not to the parameter
    worst = error_ratio(mine[0], ref[0], dt, scale=lr * 100)
    for a, b in zip(mine[2:], ref[2:]):
        worst = max(worst, error_ratio(a, b, dt))
    return worst


def check_box_muller(km, seed, n, dtype):
    r"""``box_muller`` of the same seed and count in ``dtype``. The kernels may take the
    logarithm, cosine and sine to within a few ulps of NumPy's: the draws agree to the tolerance
    of the dtype."""
    return error_ratio(km.box_muller(seed, n, dtype), _ref.box_muller(seed, n, dtype), dtype)


#: kernel name -> the check that covers it (every name of scratchdgm.kernels.KERNEL_NAMES)
CHECKS = {
    "logsumexp": check_logsumexp, "logsumexp_backward": check_logsumexp,
    "bernoulli_log_prob": check_bernoulli, "bernoulli_log_prob_with_grad": check_bernoulli,
    "diag_gaussian_log_prob": check_gaussian, "diag_gaussian_log_prob_backward": check_gaussian,
    "diag_gaussian_reparam": check_reparam,
    "linear": check_linear, "linear_backward": check_linear,
    "adam_update": check_adam, "box_muller": check_box_muller,
}


def edge_log_weights(dtype, K=7, B=5, seed=0):
    r"""Log-weights (K, B) with the cases a log-sum-exp must get right: a column of -inf, some
    -inf entries, huge magnitudes of both signs, a +inf."""
    a = np.random.default_rng(seed).normal(scale=20, size=(K, B)).astype(dtype)
    a[:, 0] = -np.inf          # all -inf column
    a[1::2, 1] = -np.inf       # some -inf entries
    big = 1e30 if dtype == np.float32 else 1e300
    a[0, 2], a[1, 2] = big, -big  # huge magnitudes
    a[3, 3] = np.inf
    return a
