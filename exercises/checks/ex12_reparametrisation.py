r"""Checks of exercise 12: reparametrised sampling, ``DiagNormal.rsample`` and
``FullNormal.rsample`` in ``scratchdgm/distributions/normal.py``.

What is checked: the shape and dtype of a draw; that the randomness comes from the given
``random_state`` only; the moments of many draws against the parameters (statistical checks with
fixed seeds, margins stated where they are made); and the reparametrisation itself -- the
gradient of a draw with respect to the parameters, :math:`\partial z / \partial \mu = 1`,
:math:`\partial z / \partial \log\sigma = \sigma\varepsilon = z - \mu`,
:math:`\partial z_i / \partial L_{ij} = \varepsilon_j` -- taken through the recorded graph by
:func:`path_sum_grad` (not ``Tensor.backward``).
"""

import numpy as np
from scipy import stats

from scratchdgm import tensor
from scratchdgm.distributions import DiagNormal, FullNormal

from ._common import connected, path_sum_grad, show, values


def check_shapes_and_dtype(rsample, mu, log_sigma, sample_shape):
    r"""A draw has shape ``sample_shape + batch_shape + (d,)`` (an int ``sample_shape`` n meaning
    (n,)) and the parameters' dtype."""
    q = DiagNormal(mu, log_sigma)
    z = values(rsample(q, sample_shape, 0))
    lead = (sample_shape,) if isinstance(sample_shape, int) else tuple(sample_shape)
    want = lead + np.broadcast_shapes(np.shape(mu), np.shape(log_sigma))
    if z.shape != want:
        raise AssertionError(f"rsample({sample_shape!r}) of a DiagNormal with mu {np.shape(mu)} "
                             f"and log_sigma {np.shape(log_sigma)} has shape {z.shape}, expected "
                             f"{want} = sample_shape + batch_shape + (d,)")
    if z.dtype != q.dtype:
        raise AssertionError(f"a draw of a {q.dtype} distribution came back as {z.dtype}: draw "
                             f"eps in the distribution's dtype (standard_normal(..., dtype=))")


def check_randomness(rsample):
    r"""Same seed, same draw; a Generator is advanced (two calls differ); NumPy's global random
    state is not touched."""
    q = DiagNormal(np.zeros(3), np.zeros(3))
    a, b = values(rsample(q, (4,), 123)), values(rsample(q, (4,), 123))
    if not np.array_equal(a, b):
        raise AssertionError("two draws with random_state=123 differ: draw eps from the "
                             "generator of random_state (self._draw_setup gives it), never from "
                             "np.random")
    rng = np.random.default_rng(5)
    a, b = values(rsample(q, (4,), rng)), values(rsample(q, (4,), rng))
    if np.array_equal(a, b):
        raise AssertionError("two draws from the same Generator are equal: use the Generator "
                             "itself, do not re-seed from it")
    state = np.random.get_state()[1].copy()
    rsample(q, (4,), 7)
    if not np.array_equal(np.random.get_state()[1], state):
        raise AssertionError("rsample changed NumPy's global random state: draw from the "
                             "random_state's generator only")


def check_diag_moments(rsample, seed=0, n=100_000):
    r"""Draws of :math:`\mathcal N(\mu, \mathrm{diag}\,\sigma^2)`: sample means within 6
    standard errors of :math:`\mu`, sample standard deviations within 2% of :math:`\sigma`, and
    a Kolmogorov-Smirnov test of one coordinate with p > 1e-4 (checked on seeds 0-19 with the
    library's sampler: the largest mean deviation was 2.5 standard errors, the largest relative
    standard-deviation error 0.5%, the smallest p-value 0.006)."""
    mu = np.array([1.0, -2.0, 0.5])
    log_sigma = np.array([0.3, -1.0, 1.2])
    sigma = np.exp(log_sigma)
    z = values(rsample(DiagNormal(mu, log_sigma), (n,), seed))
    mean, std = z.mean(axis=0), z.std(axis=0)
    if np.any(np.abs(mean - mu) > 6 * sigma / np.sqrt(n)):
        raise AssertionError(f"the mean of {n} draws is {show(mean)}, expected mu = {show(mu)}: "
                             f"z = mu + sigma * eps")
    if not np.allclose(std, sigma, rtol=0.02):
        hint = ""
        for label, guess in (("exp(2 log_sigma) = sigma^2: log_sigma is the log standard "
                              "deviation, sigma = exp(log_sigma)", np.exp(2 * log_sigma)),
                             ("exp(log_sigma / 2): log_sigma is the log STANDARD DEVIATION, not "
                              "the log-variance; sigma = exp(log_sigma)", np.exp(log_sigma / 2)),
                             ("|log_sigma|: you forgot the exp", np.abs(log_sigma)),
                             ("1: you forgot to scale eps by sigma", np.ones(3))):
            if np.allclose(std, guess, rtol=0.02):
                hint = f" -- the spread matches {label}"
                break
        raise AssertionError(f"the standard deviation of {n} draws is {show(std)}, expected "
                             f"sigma = exp(log_sigma) = {show(sigma)}{hint}")
    p = stats.kstest(z[:, 0], stats.norm(mu[0], sigma[0]).cdf).pvalue
    if p < 1e-4:
        raise AssertionError(f"the draws of the first coordinate do not look Gaussian "
                             f"(Kolmogorov-Smirnov p = {p:.2g}): draw eps with standard_normal")


def check_diag_reparametrisation(rsample, mu, log_sigma, sample_shape=(5,), seed=0):
    r"""The draw is a differentiable function of the parameters:
    :math:`\partial \sum z / \partial \mu` counts the draws per coordinate and
    :math:`\partial \sum z / \partial \log\sigma = \sum (z - \mu)` -- exactly, whatever eps
    was drawn."""
    t_mu, t_ls = tensor(mu, requires_grad=True), tensor(log_sigma, requires_grad=True)
    z = rsample(DiagNormal(t_mu, t_ls), sample_shape, seed)
    if not (connected(z, t_mu) and connected(z, t_ls)):
        raise AssertionError("the draw is not connected to mu and log_sigma in the graph: compute "
                             "z = mu + exp(log_sigma) * eps with Tensor operations on the "
                             "parameters (that is the reparametrisation trick: gradients flow "
                             "through z), not on .data")
    zv = values(z)
    g_mu, g_ls = path_sum_grad(z, [t_mu, t_ls])
    full = np.broadcast_to(np.ones_like(zv), zv.shape)
    want_mu = _sum_to(full, np.shape(mu))
    want_ls = _sum_to(zv - np.asarray(mu), np.shape(log_sigma))
    if not np.allclose(g_mu, want_mu, rtol=1e-10):
        raise AssertionError(f"d sum(z) / d mu = {show(g_mu)}, expected {show(want_mu)} (dz/dmu "
                             f"= 1 for every draw)")
    if not np.allclose(g_ls, want_ls, rtol=1e-8, atol=1e-10):
        hint = ""
        if np.allclose(g_ls, 0.5 * want_ls, rtol=1e-8):
            hint = " -- half of it: you used exp(log_sigma / 2)"
        raise AssertionError(f"d sum(z) / d log_sigma = {show(g_ls)}, expected sum(z - mu) = "
                             f"{show(want_ls)} (dz/dlog_sigma = sigma eps){hint}")


def _sum_to(g, shape):
    g = np.asarray(g, np.float64)
    while g.ndim > len(shape):
        g = g.sum(axis=0)
    for i, n in enumerate(shape):
        if n == 1 and g.shape[i] != 1:
            g = g.sum(axis=i, keepdims=True)
    return g


def _tril(rng, d, batch=()):
    L = np.tril(rng.normal(scale=0.6, size=batch + (d, d)), -1)
    idx = np.arange(d)
    L[..., idx, idx] = np.exp(rng.normal(scale=0.3, size=batch + (d,)))
    return L


def check_full_moments(rsample, seed=0, n=100_000):
    r"""Draws of :math:`\mathcal N(\mu, L L^\top)`: the sample covariance within 0.05 (in each
    entry, relative to the largest variance) of :math:`L L^\top` and the mean within 6 standard
    errors (on seeds 0-19 with the library's sampler the largest covariance error was 0.011 and
    the largest mean deviation 2.5 standard errors)."""
    rng = np.random.default_rng(42)
    mu, L = rng.normal(size=3), _tril(rng, 3)
    cov = L @ L.T
    z = values(rsample(FullNormal(mu, L), (n,), seed))
    if z.shape != (n, 3):
        raise AssertionError(f"rsample(({n},)) of a FullNormal with d = 3 has shape {z.shape}, "
                             f"expected {(n, 3)}")
    emp = np.cov(z, rowvar=False)
    scale = np.max(np.diag(cov))
    if not np.allclose(emp, cov, atol=0.05 * scale):
        hint = ""
        if np.allclose(emp, L.T @ L, atol=0.05 * scale):
            hint = (" -- it matches L^T L: you multiplied by L transposed; z_i = mu_i + "
                    "sum_j L_ij eps_j")
        raise AssertionError(f"the covariance of {n} draws is\n{np.round(emp, 3)}\nexpected "
                             f"L L^T =\n{np.round(cov, 3)}{hint}")
    se = np.sqrt(np.diag(cov) / n)
    if np.any(np.abs(z.mean(axis=0) - mu) > 6 * se):
        raise AssertionError(f"the mean of {n} draws is {show(z.mean(axis=0))}, expected "
                             f"mu = {show(mu)}")


def check_full_reparametrisation(rsample, batch=(2,), sample_shape=(4,), seed=0):
    r""":math:`z = \mu + L\varepsilon` is differentiable in :math:`\mu` and :math:`L`:
    :math:`\partial \langle v, z\rangle / \partial L_{ij} = \sum v_i \varepsilon_j` with
    :math:`\varepsilon = L^{-1}(z - \mu)` recovered here."""
    rng = np.random.default_rng(seed)
    d = 3
    mu, L = rng.normal(size=batch + (d,)), _tril(rng, d, batch)
    t_mu, t_L = tensor(mu, requires_grad=True), tensor(L, requires_grad=True)
    z = rsample(FullNormal(t_mu, t_L), sample_shape, seed)
    zv = values(z)
    want_shape = tuple(sample_shape) + batch + (d,)
    if zv.shape != want_shape:
        raise AssertionError(f"rsample({sample_shape}) of a FullNormal with batch {batch}, d = "
                             f"{d} has shape {zv.shape}, expected {want_shape}")
    if not (connected(z, t_mu) and connected(z, t_L)):
        raise AssertionError("the draw is not connected to mu and scale_tril in the graph: use "
                             "Tensor operations (broadcasting and .sum, not @: MatMul's backward "
                             "is exercise 01)")
    v = rng.normal(size=zv.shape)
    g_mu, g_L = path_sum_grad(z, [t_mu, t_L], seed=v)
    eps = np.linalg.solve(np.broadcast_to(L, zv.shape + (d,)), (zv - mu)[..., None])[..., 0]
    want_L = (v[..., :, None] * eps[..., None, :]).reshape(-1, *batch, d, d).sum(axis=0)
    want_mu = v.reshape(-1, *batch, d).sum(axis=0)
    if not np.allclose(g_mu, want_mu, rtol=1e-10):
        raise AssertionError(f"d <v, z> / d mu = {show(g_mu)}, expected {show(want_mu)}")
    if not np.allclose(np.tril(g_L), np.tril(want_L), rtol=1e-8, atol=1e-10):
        raise AssertionError(f"d <v, z> / d L = {show(np.tril(g_L))} (lower triangle), expected "
                             f"{show(np.tril(want_L))}: z_i = mu_i + sum_j L_ij eps_j")
