r"""Checks of exercise 08: the closed-form KL divergence between Gaussians, ``_kl_diag_diag`` and
``_kl_full_full`` in ``scratchdgm/distributions/kl.py``, reached through
``kl_divergence(q, p)``.

The reference is the lecture's formula ([Mattei-DGM, "More on this KL regulariser"]) written
here with dense covariance matrices and ``np.linalg`` (never the diagonal shortcut), a Monte
Carlo estimate from SciPy's samplers and densities, and central differences of the reference
for the gradients (taken through the recorded graph by :func:`path_sum_grad`, not
``Tensor.backward``).
"""

import numpy as np
from scipy import stats

from scratchdgm import tensor
from scratchdgm.distributions import DiagNormal, FullNormal, StandardNormal

from ._common import central_difference, connected, max_error, path_sum_grad, show, values


def reference_kl(mu0, cov0, mu1, cov1):
    r""":math:`\tfrac12[\mathrm{tr}(\Sigma_1^{-1}\Sigma_0) + (\mu_1 - \mu_0)^\top \Sigma_1^{-1}
    (\mu_1 - \mu_0) - d + \log\det\Sigma_1 - \log\det\Sigma_0]`, for one pair."""
    d = mu0.shape[-1]
    diff = mu1 - mu0
    trace = np.trace(np.linalg.solve(cov1, cov0))
    maha = diff @ np.linalg.solve(cov1, diff)
    logdet = np.linalg.slogdet(cov1)[1] - np.linalg.slogdet(cov0)[1]
    return 0.5 * (trace + maha - d + logdet)


def _diag_cov(log_sigma):
    return np.diag(np.exp(2.0 * np.asarray(log_sigma, np.float64)))


def reference_diag(mu_q, ls_q, mu_p, ls_p):
    r"""KL between batches of diagonal Gaussians, row by row, through :func:`reference_kl`."""
    mu_q, ls_q, mu_p, ls_p = np.broadcast_arrays(*(np.asarray(v, np.float64)
                                                   for v in (mu_q, ls_q, mu_p, ls_p)))
    out = np.empty(mu_q.shape[:-1])
    for i in np.ndindex(out.shape):
        out[i] = reference_kl(mu_q[i], _diag_cov(ls_q[i]), mu_p[i], _diag_cov(ls_p[i]))
    return out


def _value(kl, q, p):
    out = kl(q, p)
    return out, values(out)


def check_diagonal(kl, mu_q, ls_q, mu_p=None, ls_p=None):
    r"""``kl(DiagNormal(mu_q, ls_q), p)`` -- ``p`` a DiagNormal, or the StandardNormal when
    ``mu_p`` is None -- equals the reference, has the batch shape and the parameters' dtype, and
    its gradients in all four parameters equal central differences."""
    dtype = np.asarray(mu_q).dtype
    d = np.shape(mu_q)[-1]
    tq = [tensor(mu_q, requires_grad=True), tensor(ls_q, requires_grad=True)]
    q = DiagNormal(*tq)
    if mu_p is None:
        p, tp = StandardNormal(d, dtype=dtype), []
        ref_p = (np.zeros(d), np.zeros(d))
    else:
        tp = [tensor(mu_p, requires_grad=True), tensor(ls_p, requires_grad=True)]
        p = DiagNormal(*tp)
        ref_p = (mu_p, ls_p)
    out, got = _value(kl, q, p)
    want = reference_diag(mu_q, ls_q, *ref_p)
    against = "N(0, I)" if mu_p is None else "a diagonal Gaussian"
    if got.shape != want.shape:
        hint = ""
        if got.shape == np.broadcast_shapes(np.shape(mu_q), np.shape(ls_q)):
            hint = ": sum the per-dimension terms over the last (event) axis"
        raise AssertionError(f"KL of a batch {np.shape(mu_q)} against {against} has shape "
                             f"{got.shape}, expected the batch shape {want.shape}{hint}")
    if got.dtype != dtype:
        raise AssertionError(f"KL of {dtype} parameters came back as {got.dtype}: keep the dtype")
    rtol = 2e-5 if dtype == np.float32 else 1e-10
    if not np.allclose(got, want, rtol=rtol, atol=rtol):
        raise AssertionError(f"KL(q || {against}) = {show(got)}, expected {show(want)}: "
                             f"{_diag_hint(got, want, mu_q, ls_q, *ref_p)}")
    if dtype != np.float64:
        return
    leaves = tq + tp
    if not all(connected(out, t) for t in tq):
        raise AssertionError("the KL is not connected to q.mu and q.log_sigma in the graph: use "
                             "Tensor operations on the parameters (no .data, np.asarray or "
                             "np.exp on them), so that gradients can flow")
    grads = path_sum_grad(out, leaves)
    params = [np.asarray(mu_q, np.float64), np.asarray(ls_q, np.float64)]
    if tp:
        params += [np.asarray(mu_p, np.float64), np.asarray(ls_p, np.float64)]
    names = ["q.mu", "q.log_sigma", "p.mu", "p.log_sigma"]
    for i, (g, name) in enumerate(zip(grads, names)):
        def f(v, i=i):
            args = list(params) + ([] if tp else list(ref_p))
            args[i] = v
            return np.sum(reference_diag(*args))

        fd = central_difference(f, params[i])
        if not np.allclose(g, fd, rtol=1e-5, atol=1e-7):
            raise AssertionError(f"the gradient of the KL in {name} is {show(g)}, central "
                                 f"differences give {show(fd)}: write the KL with Tensor ops on "
                                 f"the parameters")


def _diag_hint(got, want, mu_q, ls_q, mu_p, ls_p):
    d = np.shape(mu_q)[-1]
    variants = {
        "you read log_sigma as a log-VARIANCE: it is the log standard deviation, so sigma^2 = "
        "exp(2 log_sigma)": reference_diag(mu_q, np.asarray(ls_q) / 2, mu_p,
                                           np.asarray(ls_p) / 2),
        "that is KL(p || q): the first argument q is the one the expectation is over":
            reference_diag(mu_p, ls_p, mu_q, ls_q),
        "forgot the -1 per dimension (the -d of the lecture's formula)": want + d / 2,
        "forgot the factor 1/2": 2 * want,
        "the log-determinant term has the wrong sign: it is log(sigma_p / sigma_q)":
            want - 2 * np.sum(np.broadcast_to(np.asarray(ls_p) - np.asarray(ls_q),
                                              np.broadcast_shapes(np.shape(ls_q),
                                                                  np.shape(mu_q))), axis=-1),
    }
    for hint, value in variants.items():
        if np.shape(value) == got.shape and np.allclose(got, value, rtol=1e-6, atol=1e-9):
            return hint
    return ("KL = sum_j log(sigma_pj / sigma_qj) + (sigma_qj^2 + (mu_qj - mu_pj)^2) / "
            "(2 sigma_pj^2) - 1/2")


def check_diagonal_is_stable(kl):
    r"""Two identical Gaussians with :math:`\sigma = e^{360}` (:math:`\sigma^2` overflows float64):
    the KL is 0, not NaN -- form the variance ratio in log space."""
    mu = np.array([[1.0, -2.0]])
    ls = np.array([[360.0, -360.0]])
    with np.errstate(all="ignore"):
        got = values(kl(DiagNormal(mu, ls), DiagNormal(mu, ls)))
    if not np.allclose(got, 0.0, atol=1e-9):
        raise AssertionError(f"KL(q || q) with log_sigma = +-360 is {show(got)}, expected 0: "
                             f"sigma^2 = exp(720) overflows; form the ratios in log space: sigma_q^2 / sigma_p^2 as "
                             f"exp(2 (log_sigma_q - log_sigma_p)) and (mu_q - mu_p) / sigma_p as "
                             f"(mu_q - mu_p) exp(-log_sigma_p)")


def check_monte_carlo(kl, seed=0, n=200_000):
    r"""The closed form agrees with :math:`\mathbb E_q[\log q(z) - \log p(z)]` estimated with
    SciPy's sampler and densities, within 5 standard errors (the margin was checked on 20 seeds:
    the largest deviation was 3.0 standard errors)."""
    rng = np.random.default_rng(seed)
    mu_q, ls_q = rng.normal(size=3), rng.normal(scale=0.5, size=3)
    mu_p, ls_p = rng.normal(size=3), rng.normal(scale=0.5, size=3)
    got = float(values(kl(DiagNormal(mu_q, ls_q), DiagNormal(mu_p, ls_p))))
    q = stats.multivariate_normal(mu_q, _diag_cov(ls_q))
    p = stats.multivariate_normal(mu_p, _diag_cov(ls_p))
    z = q.rvs(size=n, random_state=np.random.default_rng(seed + 1))
    terms = q.logpdf(z) - p.logpdf(z)
    mc, se = terms.mean(), terms.std(ddof=1) / np.sqrt(n)
    if abs(got - mc) > 5 * se:
        raise AssertionError(f"the closed form gives {got:.5f}, a Monte Carlo estimate of "
                             f"E_q[log q(z) - log p(z)] gives {mc:.5f} +- {se:.5f}")


def _random_tril(rng, d, batch=()):
    L = np.tril(rng.normal(scale=0.5, size=batch + (d, d)), -1)
    idx = np.arange(d)
    L[..., idx, idx] = np.exp(rng.normal(scale=0.3, size=batch + (d,)))
    return L


def reference_full(mu_q, L_q, mu_p, L_p):
    mu_q, mu_p = np.asarray(mu_q, np.float64), np.asarray(mu_p, np.float64)
    L_q, L_p = np.asarray(L_q, np.float64), np.asarray(L_p, np.float64)
    batch = np.broadcast_shapes(mu_q.shape[:-1], L_q.shape[:-2], mu_p.shape[:-1],
                                L_p.shape[:-2])
    d = mu_q.shape[-1]
    mu_q, mu_p = (np.broadcast_to(m, batch + (d,)) for m in (mu_q, mu_p))
    L_q, L_p = (np.broadcast_to(L, batch + (d, d)) for L in (L_q, L_p))
    out = np.empty(batch)
    for i in np.ndindex(batch):
        out[i] = reference_kl(mu_q[i], L_q[i] @ L_q[i].T, mu_p[i], L_p[i] @ L_p[i].T)
    return out


def check_full(kl, seed=0, batch_q=(2,), batch_p=()):
    r"""``kl(FullNormal, FullNormal)`` with batch shapes that broadcast: values, shape, and the
    gradients in both means and both Cholesky factors against central differences."""
    rng = np.random.default_rng(seed)
    d = 3
    mu_q, L_q = rng.normal(size=batch_q + (d,)), _random_tril(rng, d, batch_q)
    mu_p, L_p = rng.normal(size=batch_p + (d,)), _random_tril(rng, d, batch_p)
    leaves = [tensor(v, requires_grad=True) for v in (mu_q, L_q, mu_p, L_p)]
    out = kl(FullNormal(leaves[0], leaves[1]), FullNormal(leaves[2], leaves[3]))
    got = values(out)
    want = reference_full(mu_q, L_q, mu_p, L_p)
    if got.shape != want.shape:
        raise AssertionError(f"KL of full-covariance Gaussians with batch shapes {batch_q} and "
                             f"{batch_p} has shape {got.shape}, expected {want.shape}")
    if not np.allclose(got, want, rtol=1e-9, atol=1e-10):
        hint = ("tr(S_p^-1 S_q) = ||L_p^-1 L_q||_F^2, the Mahalanobis term ||L_p^-1 (mu_p - "
                "mu_q)||^2, and log det S = 2 sum_j log L_jj")
        swapped = reference_full(mu_p, L_p, mu_q, L_q)
        if got.shape == swapped.shape and np.allclose(got, swapped, rtol=1e-8):
            hint = "that is KL(p || q): solve with q's factor inside p's, L_p^-1 L_q"
        elif np.allclose(got, want + d / 2, rtol=1e-8):
            hint = "forgot the -d"
        raise AssertionError(f"KL between full-covariance Gaussians = {show(got)}, expected "
                             f"{show(want)} (off by {max_error(got, want):.3g}): {hint}")
    if not all(connected(out, t) for t in leaves):
        raise AssertionError("the KL is not connected to all four parameters in the graph: use "
                             "Tensor operations (solve_triangular, Tensor methods), not NumPy on "
                             ".data")
    grads = path_sum_grad(out, leaves)
    params = [mu_q, L_q, mu_p, L_p]
    for i, (g, name) in enumerate(zip(grads, ["q.mu", "q.scale_tril", "p.mu", "p.scale_tril"])):
        def f(v, i=i):
            args = list(params)
            args[i] = np.tril(v) if i % 2 else v
            return np.sum(reference_full(*args))

        fd = central_difference(f, params[i])
        if i % 2:  # only the lower triangle is a parameter of a Cholesky factor
            g, fd = np.tril(g), np.tril(fd)
        if not np.allclose(g, fd, rtol=1e-5, atol=1e-7):
            raise AssertionError(f"the gradient of the KL in {name} is {show(g)}, central "
                                 f"differences give {show(fd)}")


def check_mixed(kl, seed=0):
    r"""Diagonal against full and full against the standard normal (both go through the
    full-covariance form) agree with the reference."""
    rng = np.random.default_rng(seed)
    d = 3
    mu, ls = rng.normal(size=d), rng.normal(scale=0.3, size=d)
    mu_f, L_f = rng.normal(size=d), _random_tril(rng, d)
    got = float(values(kl(DiagNormal(mu, ls), FullNormal(mu_f, L_f))))
    want = reference_kl(mu, _diag_cov(ls), mu_f, L_f @ L_f.T)
    if not np.isclose(got, want, rtol=1e-9):
        raise AssertionError(f"KL(diagonal || full) = {got:.8g}, expected {want:.8g}")
    got = float(values(kl(FullNormal(mu_f, L_f), StandardNormal(d))))
    want = reference_kl(mu_f, L_f @ L_f.T, np.zeros(d), np.eye(d))
    if not np.isclose(got, want, rtol=1e-9):
        raise AssertionError(f"KL(full || N(0, I)) = {got:.8g}, expected {want:.8g}")
