r"""Checks of exercise 06: the closed-form maximum-likelihood PPCA, ``closed_form_mle`` in
``scratchdgm/models/linear/ppca.py`` (Tipping & Bishop 1999, eqs. 7-8).

The spectrum is computed here from an SVD of the centred data; the answer is compared with
scikit-learn's ``PCA`` (whose variances use 1/(n - 1): rescaled by (n - 1)/n they are the
maximum-likelihood ones) and checked to be a maximum of the log-likelihood, evaluated with
``scipy.stats.multivariate_normal``.
"""

import numpy as np
from scipy import stats

from ._common import show


def make_data(seed, n, p, d, noise=0.3):
    r"""n points of a p-dimensional PPCA with d latent dimensions, plus an offset."""
    rng = np.random.default_rng(seed)
    W = rng.normal(size=(p, d)) * rng.uniform(0.5, 3.0, size=d)
    X = rng.normal(size=(n, d)) @ W.T + noise * rng.normal(size=(n, p)) + rng.normal(size=p)
    return X


def spectrum(X, d):
    r"""Eigenvalues of the 1/n covariance (decreasing, min(n, p) of them) and its d leading axes,
    from the SVD of the centred data: :math:`\lambda_j = s_j^2 / n`."""
    Xc = X - X.mean(axis=0)
    _, s, Vt = np.linalg.svd(Xc, full_matrices=False)
    return s ** 2 / X.shape[0], Vt[:d].T.copy()


def loglike(X, W, sigma2):
    r"""Mean log-likelihood of the rows of X under :math:`\mathcal N(\bar x, W W^\top +
    \sigma^2 I)`."""
    C = W @ W.T + sigma2 * np.eye(X.shape[1])
    return float(np.mean(stats.multivariate_normal(X.mean(axis=0), C).logpdf(X)))


def _call(mle, lam, axes, p, floor):
    out = mle(lam.copy(), axes.copy(), p, floor)
    if not isinstance(out, tuple) or len(out) != 2:
        raise AssertionError("closed_form_mle must return the pair (W, sigma2)")
    W, sigma2 = out
    W = np.asarray(W, dtype=np.float64)
    try:
        sigma2 = float(sigma2)
    except (TypeError, ValueError):
        raise AssertionError(f"sigma2 must be a number, got {sigma2!r}") from None
    return W, sigma2


def check_closed_form(mle, X, d, floor=1e-12):
    r"""On data ``X`` with ``d`` components: :math:`\sigma^2` and :math:`W W^\top` equal the
    maximum-likelihood ones, ``W`` has R = I (column j along the j-th axis), and when n > p the
    log-likelihood is a maximum (it drops when W or sigma^2 is perturbed)."""
    n, p = X.shape
    lam, axes = spectrum(X, d)
    W, sigma2 = _call(mle, lam, axes, p, floor)
    if W.shape != (p, d):
        hint = " (that is W transposed: W is p x d, one column per latent dimension)" \
            if W.shape == (d, p) else ""
        raise AssertionError(f"W has shape {W.shape}, expected (p, d) = {(p, d)}{hint}")
    lam_all = np.concatenate([lam, np.zeros(max(p - lam.size, 0))])
    want_s2 = max(lam_all[d:].sum() / (p - d), floor)
    if not np.isclose(sigma2, want_s2, rtol=1e-9, atol=1e-300):
        hint = ("sigma^2 is the mean of the p - d DISCARDED eigenvalues, "
                "sum(lam[d:]) / (p - d)")
        if lam.size < p and np.isclose(sigma2, lam[d:].sum() / (lam.size - d), rtol=1e-9):
            hint = (f"with n = {n} < p = {p} only {lam.size} eigenvalues are listed; the other "
                    f"{p - lam.size} are 0 and count: divide by p - d = {p - d}")
        elif np.isclose(sigma2, lam_all.mean(), rtol=1e-9):
            hint = "that is the mean of ALL the eigenvalues; average the discarded ones only"
        elif d >= 1 and np.isclose(sigma2, lam_all[d - 1:].sum() / (p - d), rtol=1e-9):
            hint = "off by one: the discarded eigenvalues are lam[d:], after the d leading ones"
        elif want_s2 == floor and sigma2 < floor:
            hint = (f"the data lie in a {d}-dimensional subspace: floor sigma^2 at "
                    f"min_noise_variance = {floor:g}")
        raise AssertionError(f"sigma2 = {sigma2:.10g}, expected {want_s2:.10g} for n = {n}, "
                             f"p = {p}, d = {d}: {hint}")
    scale = np.sqrt(np.maximum(lam[:d] - want_s2, 0.0))
    want_C = (axes * scale) @ (axes * scale).T
    if not np.allclose(W @ W.T, want_C, rtol=1e-8, atol=1e-10 * max(1.0, lam[0])):
        hint = "W = U_d (Lambda_d - sigma^2 I)^(1/2): the axes scaled by sqrt(lambda_j - sigma^2)"
        if np.allclose(W @ W.T, (axes * np.sqrt(lam[:d])) @ (axes * np.sqrt(lam[:d])).T):
            hint = ("W = U_d Lambda_d^(1/2) is PCA's scaling; the model's variance along u_j is "
                    "||w_j||^2 + sigma^2, so subtract sigma^2 first: sqrt(lambda_j - sigma^2)")
        elif np.allclose(W @ W.T, (axes * (lam[:d] - want_s2)) @ (axes * (lam[:d] - want_s2)).T):
            hint = "take the square root: W = U_d (Lambda_d - sigma^2 I)^(1/2)"
        raise AssertionError(f"W W^T is wrong for n = {n}, p = {p}, d = {d} (the norms of W's "
                             f"columns are {show(np.linalg.norm(W, axis=0))}, expected "
                             f"{show(scale)}): {hint}")
    if not np.allclose(W, axes * scale, rtol=1e-8, atol=1e-10 * max(1.0, lam[0])):
        raise AssertionError("W W^T is right but W is rotated: return R = I, column j = "
                             "sqrt(lambda_j - sigma^2) times the j-th axis as given")
    if n > p + 1 and want_s2 > 1e3 * floor:
        best = loglike(X, W, sigma2)
        for label, Wp, s2p in (("sigma^2 x 1.02", W, sigma2 * 1.02),
                               ("sigma^2 x 0.98", W, sigma2 * 0.98),
                               ("W x 1.02", W * 1.02, sigma2), ("W x 0.98", W * 0.98, sigma2)):
            if loglike(X, Wp, s2p) > best + 1e-9:
                raise AssertionError(f"the log-likelihood rises with {label}: not the maximum")


def check_against_sklearn(mle, X, d):
    r"""The model :math:`C = W W^\top + \sigma^2 I` equals scikit-learn's PCA covariance times
    (n - 1)/n (n > p: scikit-learn then averages the same discarded eigenvalues)."""
    from sklearn.decomposition import PCA

    n, p = X.shape
    lam, axes = spectrum(X, d)
    W, sigma2 = _call(mle, lam, axes, p, 1e-12)
    pca = PCA(n_components=d, svd_solver="full").fit(X)
    want = pca.get_covariance() * (n - 1) / n
    C = W @ W.T + sigma2 * np.eye(p)
    if not np.allclose(C, want, rtol=1e-7, atol=1e-9):
        raise AssertionError("W W^T + sigma^2 I differs from scikit-learn's PCA covariance "
                             "rescaled to 1/n")


def check_estimator(ppca_class, mle, X, d):
    r"""``PPCA(d).fit(X)`` (which calls ``closed_form_mle``) has the noise variance and the mean
    log-likelihood of the checks above."""
    model = ppca_class(n_components=d, svd_solver="full").fit(X)
    lam, axes = spectrum(X, d)
    W, sigma2 = _call(mle, lam, axes, X.shape[1], 1e-12)
    if not np.isclose(model.noise_variance_, sigma2, rtol=1e-8):
        raise AssertionError(f"PPCA.fit gives noise_variance_ {model.noise_variance_:.8g}, "
                             f"expected {sigma2:.8g}")
    if not np.isclose(model.score(X), loglike(X, W, sigma2), rtol=1e-8):
        raise AssertionError("PPCA.score on the training data is not the log-likelihood of your "
                             "W and sigma^2")
