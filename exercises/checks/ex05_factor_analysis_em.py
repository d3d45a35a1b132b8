r"""Checks of exercise 05: the E-step and the M-step of EM for factor analysis on the sample
covariance, ``e_step`` and ``m_step`` in ``scratchdgm/models/linear/em.py``. Page:
``exercises/05_factor_analysis_em.md``.

References, none of them the code being checked (nor exercise 06's PPCA closed form):

* the per-point textbook moments (Ghahramani & Hinton 1996, §2) on generated data, with
  :math:`\beta = W^\top (\Psi + W W^\top)^{-1}` from an explicit inverse of C,
  :math:`\mathbb E[z_i] = \beta (x_i - \bar x)` and :math:`\mathbb E[z_i z_i^\top] = I - \beta W
  + \mathbb E[z_i] \mathbb E[z_i]^\top`, averaged over the points;
* the log-likelihood by ``scipy.stats.multivariate_normal`` at the sample mean;
* the expected complete-data log-likelihood :math:`Q(W, \Psi)` written out here
  (:func:`expected_complete_loglike`): the M-step must maximise it (perturbations lower it);
* EM's monotonicity, by a loop of the checks' own over the two steps;
* scikit-learn's ``FactorAnalysis`` fitted to convergence, a fixed point of one EM step;
* for PPCA, the checks' own eigendecomposition of S (Tipping & Bishop 1999, eqs. 7-8), a fixed
  point of the isotropic step.
"""

import numpy as np
from scipy import stats

from ._common import show

_LOG_2PI = float(np.log(2 * np.pi))


def make_problem(seed=0, n=400, p=6, d=2, heteroscedastic=True):
    r"""Data from a factor-analysis model and a (W, psi) away from the truth to take steps at:
    ``X`` (n, p), its 1/n covariance ``S``, ``W`` (p, d), ``psi`` (p,)."""
    rng = np.random.default_rng(seed)
    W_true = rng.normal(size=(p, d))
    psi_true = rng.uniform(0.2, 1.5, p) if heteroscedastic else np.full(p, 0.5)
    X = rng.normal(size=(n, d)) @ W_true.T + rng.normal(size=(n, p)) * np.sqrt(psi_true) + 3.0
    Xc = X - X.mean(axis=0)
    S = Xc.T @ Xc / n
    W = rng.normal(size=(p, d))
    psi = rng.uniform(0.3, 2.0, p)
    return X, S, W, psi


def textbook_moments(X, W, psi):
    r"""The per-point posterior moments of Ghahramani & Hinton (1996, §2), averaged over the
    points: :math:`\frac1n \sum_i (x_i - \bar x) \mathbb E[z_i]^\top` (p, d) and
    :math:`\frac1n \sum_i \mathbb E[z_i z_i^\top]` (d, d)."""
    Xc = X - X.mean(axis=0)
    C = W @ W.T + np.diag(psi)
    beta = W.T @ np.linalg.inv(C)                                   # (d, p)
    Ez = Xc @ beta.T                                                # (n, d)
    cov = np.eye(W.shape[1]) - beta @ W
    Ezz = cov[None] + Ez[:, :, None] * Ez[:, None, :]               # (n, d, d)
    return Xc.T @ Ez / len(X), Ezz.mean(axis=0)


def scipy_loglike(X, W, psi):
    r"""Mean log-likelihood per point, by ``scipy.stats.multivariate_normal``, mean at
    :math:`\bar x`, covariance :math:`W W^\top + \Psi`."""
    C = W @ W.T + np.diag(psi)
    return float(stats.multivariate_normal(X.mean(axis=0), C).logpdf(X).mean())


def expected_complete_loglike(S, xz, zz, W, psi):
    r""":math:`Q(W, \Psi) = \frac1n \sum_i \mathbb E[\log p(x_i \mid z_i) + \log p(z_i)]` up to
    a constant that does not depend on (W, psi):

    .. math::

        -\frac12 \Big(\sum_j \log \psi_j + \mathrm{tr}\big(\Psi^{-1} (S - 2 W\, xz^\top
        + W\, zz\, W^\top)\big)\Big).
    """
    R = S - 2 * W @ xz.T + W @ zz @ W.T
    return float(-0.5 * (np.sum(np.log(psi)) + np.sum(np.diag(R) / psi)))


def _same(got, want, rtol=1e-8, atol=1e-10):
    got = np.asarray(got, np.float64)
    return got.shape == np.shape(want) and np.allclose(got, want, rtol=rtol, atol=atol)


def _moments(e_step, S, W, psi, posterior="exact"):
    got = e_step(S, W.copy(), psi.copy(), posterior=posterior)
    for field in ("xz", "zz", "loglike"):
        if not hasattr(got, field):
            raise AssertionError(f"e_step returned {type(got).__name__}; expected Moments(xz, "
                                 f"zz, loglike)")
    return got


def check_e_step_moments(e_step, seed=0, n=400, p=6, d=2):
    r"""The averaged moments equal the per-point textbook ones, and ``loglike`` equals SciPy's
    mean log-density, on generated data."""
    X, S, W, psi = make_problem(seed, n, p, d)
    got = _moments(e_step, S, W, psi)
    xz, zz = textbook_moments(X, W, psi)
    if np.shape(got.xz) != (p, d):
        raise AssertionError(f"e_step: xz has shape {np.shape(got.xz)}, expected (p, d) = "
                             f"{(p, d)}: (1/n) sum_i (x_i - mean) E[z_i]^T = S beta^T")
    if not _same(got.xz, xz):
        hint = ""
        if _same(got.xz, S @ W):
            hint = (" -- that is S W: beta = M^{-1} W^T Psi^{-1}, not W^T (the posterior mean "
                    "shrinks towards 0)")
        elif _same(got.xz, S @ (W / psi[:, None])):
            hint = " -- that is S Psi^{-1} W: you forgot the M^{-1} in beta = M^{-1} W^T Psi^{-1}"
        raise AssertionError(f"e_step: xz = {show(got.xz)}, expected (1/n) sum_i (x_i - mean) "
                             f"E[z_i | x_i]^T = {show(xz)}{hint}")
    if np.shape(got.zz) != (d, d):
        raise AssertionError(f"e_step: zz has shape {np.shape(got.zz)}, expected (d, d) = "
                             f"{(d, d)}")
    if not _same(got.zz, zz):
        beta = W.T @ np.linalg.inv(W @ W.T + np.diag(psi))
        hint = ""
        if _same(got.zz, beta @ S @ beta.T):
            hint = (" -- that is beta S beta^T alone: E[z z^T | x] also has the posterior "
                    "covariance M^{-1} (E[z z^T] = Cov + E[z] E[z]^T)")
        elif _same(got.zz, np.eye(d) + beta @ S @ beta.T):
            hint = " -- the posterior covariance is M^{-1} = (I + W^T Psi^{-1} W)^{-1}, not I"
        raise AssertionError(f"e_step: zz = {show(got.zz)}, expected (1/n) sum_i E[z_i z_i^T | "
                             f"x_i] = {show(zz)}{hint}")
    want = scipy_loglike(X, W, psi)
    if not np.isclose(got.loglike, want, rtol=1e-9, atol=1e-9):
        hint = ""
        if np.isclose(got.loglike, want * len(X), rtol=1e-9):
            hint = " -- that is the sum over the n points: return the mean per point"
        elif np.isclose(got.loglike, want + 0.5 * p * _LOG_2PI, rtol=1e-9):
            hint = " -- the constant -p/2 log(2 pi) is missing"
        raise AssertionError(f"e_step: loglike = {got.loglike!r}, expected the mean "
                             f"log-likelihood per point of N(mean, W W^T + Psi) = {want!r} "
                             f"(scipy.stats.multivariate_normal){hint}")


def check_e_step_mean_field(e_step, seed=1, p=5, d=3):
    r"""``posterior='mean_field'``: the same xz and loglike, and zz with the posterior
    covariance replaced by the diagonal :math:`\mathrm{diag}(1 / M_{jj})`."""
    X, S, W, psi = make_problem(seed, 300, p, d)
    exact = _moments(e_step, S, W, psi)
    got = _moments(e_step, S, W, psi, posterior="mean_field")
    M = np.eye(d) + W.T @ (W / psi[:, None])
    cov = np.linalg.inv(M)
    want_zz = np.asarray(exact.zz) - cov + np.diag(1 / np.diag(M))
    if not (_same(got.xz, exact.xz) and np.isclose(got.loglike, exact.loglike, rtol=1e-12)):
        raise AssertionError("e_step(posterior='mean_field'): xz and loglike must be those of "
                             "the exact posterior (only the covariance part of zz changes)")
    if not _same(got.zz, want_zz):
        hint = ""
        if _same(got.zz, np.asarray(exact.zz) - cov + np.diag(np.diag(cov))):
            hint = (" -- that is diag(M^{-1}), the marginal variances: the mean-field q has "
                    "variances 1 / M_jj, the inverse of M's diagonal (smaller)")
        raise AssertionError(f"e_step(posterior='mean_field'): zz = {show(got.zz)}, expected "
                             f"diag(1 / M_jj) + beta S beta^T = {show(want_zz)}{hint}")
    try:
        e_step(S, W, psi, posterior="diagonal")
    except ValueError:
        return
    raise AssertionError("e_step(posterior='diagonal') must raise ValueError: the posterior is "
                         "'exact' or 'mean_field'")


def _step(m_step, S, moments, **kw):
    got = m_step(S, moments, **kw)
    if not isinstance(got, tuple) or len(got) != 2:
        raise AssertionError(f"m_step returned {type(got).__name__}; expected (W_new, psi_new)")
    return np.asarray(got[0], np.float64), np.asarray(got[1], np.float64)


def check_m_step_maximises_q(m_step, Moments, seed=0, p=6, d=2, isotropic=False, trials=40):
    r"""Given moments computed here (:func:`textbook_moments`), the new (W, psi) maximise
    :math:`Q`: equal to the stationary point written out, and every one of ``trials`` random
    perturbations of W or psi (psi kept isotropic for PPCA) lowers Q."""
    X, S, W, psi = make_problem(seed, 400, p, d)
    xz, zz = textbook_moments(X, W, psi)
    W_new, psi_new = _step(m_step, S, Moments(xz, zz, 0.0), isotropic=isotropic)
    want_W = xz @ np.linalg.inv(zz)
    resid = np.diag(S) - np.sum(want_W * xz, axis=1)
    want_psi = np.full(p, resid.mean()) if isotropic else resid
    what = "m_step(isotropic=True)" if isotropic else "m_step"
    if W_new.shape != (p, d) or psi_new.shape != (p,):
        raise AssertionError(f"{what}: shapes {W_new.shape}, {psi_new.shape}; expected W_new "
                             f"{(p, d)} and psi_new {(p,)}")
    if not _same(W_new, want_W):
        hint = ""
        if _same(W_new, xz):
            hint = " -- that is xz alone: multiply by the inverse of zz"
        elif _same(W_new, xz @ zz):
            hint = " -- that is xz zz: it is xz zz^{-1}"
        raise AssertionError(f"{what}: W_new = {show(W_new)}, expected xz zz^(-1) = "
                             f"{show(want_W)}{hint}")
    if not _same(psi_new, want_psi):
        hint = ""
        if _same(psi_new, np.diag(S)):
            hint = " -- that is diag(S): subtract what the factors explain, diag(W_new xz^T)"
        elif isotropic and _same(psi_new, resid):
            hint = (" -- that is one variance per feature: PPCA's Psi = sigma^2 I, sigma^2 the "
                    "mean of them")
        elif not isotropic and _same(psi_new, np.full(p, resid.mean())):
            hint = " -- that is the isotropic (PPCA) update: factor analysis keeps each psi_j"
        formula = ("the mean of diag(S - W_new xz^T), on every feature" if isotropic
                   else "diag(S - W_new xz^T)")
        raise AssertionError(f"{what}: psi_new = {show(psi_new)}, expected {formula} = "
                             f"{show(want_psi)}{hint}")
    rng = np.random.default_rng(seed + 100)
    best = expected_complete_loglike(S, xz, zz, W_new, psi_new)
    for t in range(trials):
        W_t, psi_t = W_new.copy(), psi_new.copy()
        if t % 2:
            W_t = W_t + 1e-3 * rng.normal(size=W_t.shape)
        else:
            step = 1e-3 * (rng.normal() if isotropic else rng.normal(size=p))
            psi_t = psi_t * np.exp(step)
        if expected_complete_loglike(S, xz, zz, W_t, psi_t) > best + 1e-12:
            raise AssertionError(f"{what}: a small change of the new "
                                 f"{'W' if t % 2 else 'psi'} raises the expected complete-data "
                                 f"log-likelihood Q: the M-step must maximise it")


def check_noise_floor(m_step, Moments):
    r"""A feature that the factor explains exactly has no residual variance: psi_new is floored
    at ``min_noise_variance``, not 0 or negative."""
    S = np.array([[1.0, 1.0], [1.0, 1.0 + 1e-3]])
    W = np.array([[1.0], [1.0]])
    xz = S[:, :1]                      # moments for which W_new = W and diag(S) - ... = 0
    zz = np.array([[1.0]])
    W_new, psi_new = _step(m_step, S, Moments(xz, zz, 0.0), min_noise_variance=1e-6)
    if not (_same(W_new, W) and np.all(psi_new >= 1e-6) and psi_new[0] == 1e-6):
        raise AssertionError(f"m_step(min_noise_variance=1e-6) on a feature with no residual "
                             f"variance gives psi_new = {show(psi_new)}: floor it, "
                             f"np.maximum(psi_new, min_noise_variance)")


def run_em(e_step, m_step, S, W, psi, n_iter, isotropic=False):
    r"""The checks' own EM loop: the mean log-likelihood at the start and after each step, and
    the last (W, psi)."""
    lls = []
    for _ in range(n_iter):
        moments = e_step(S, W, psi)
        lls.append(float(moments.loglike))
        W, psi = m_step(S, moments, isotropic=isotropic)
    lls.append(float(e_step(S, W, psi).loglike))
    return np.array(lls), W, psi


def check_monotone(e_step, m_step, X, S, W, psi, n_iter=60, isotropic=False):
    r"""Over ``n_iter`` EM iterations from a poor start, SciPy's log-likelihood never
    decreases (beyond round-off)."""
    lls, W_end, psi_end = run_em(e_step, m_step, S, W, psi, n_iter, isotropic)
    drops = np.diff(lls)
    if np.any(drops < -1e-9 * np.abs(lls[1:])):
        t = int(np.argmin(drops))
        raise AssertionError(f"EM lowered the log-likelihood at iteration {t + 1}: "
                             f"{lls[t]:.10g} -> {lls[t + 1]:.10g}; EM never does (Dempster et "
                             f"al. 1977): the E-step must use the same (W, psi) as the M-step "
                             f"that follows, and the M-step maximise Q")
    final = scipy_loglike(X, np.asarray(W_end), np.asarray(psi_end))
    if not lls[-1] > lls[0] + 0.1:
        raise AssertionError(f"{n_iter} EM iterations from a poor start raised the "
                             f"log-likelihood only from {lls[0]:.6g} to {lls[-1]:.6g}")
    return final


def sklearn_solution(X, d, seed=0):
    r"""scikit-learn's factor analysis fitted to convergence: (W, psi)."""
    from sklearn.decomposition import FactorAnalysis

    fa = FactorAnalysis(d, tol=1e-12, max_iter=20000, random_state=seed).fit(X)
    return fa.components_.T, fa.noise_variance_


def check_fixed_point_at_sklearn(e_step, m_step, seed=0, n=500, p=6, d=2):
    r"""At scikit-learn's maximum-likelihood (W, psi), one E-step and M-step change
    :math:`W W^\top` and psi by less than 1e-5 (relative) -- a fixed point of EM -- and the
    E-step's log-likelihood is SciPy's."""
    X, S, _, _ = make_problem(seed, n, p, d)
    W, psi = sklearn_solution(X, d, seed)
    moments = e_step(S, W.copy(), psi.copy())
    W1, psi1 = _step(m_step, S, moments)
    for name, got, want in (("W W^T", W1 @ W1.T, W @ W.T), ("psi", psi1, psi)):
        if not np.allclose(got, want, rtol=1e-5, atol=1e-7):
            raise AssertionError(f"one EM step from scikit-learn's maximum-likelihood solution "
                                 f"moved {name} from {show(want)} to {show(got)}: the optimum "
                                 f"is a fixed point of EM")
    want = scipy_loglike(X, W, psi)
    if not np.isclose(moments.loglike, want, rtol=1e-9):
        raise AssertionError(f"e_step's loglike at scikit-learn's solution is "
                             f"{moments.loglike!r}, SciPy's {want!r}")


def ppca_solution(S, d):
    r"""The PPCA maximum-likelihood solution from the eigendecomposition of S (Tipping & Bishop
    1999, eqs. 7-8): :math:`\sigma^2` the mean of the p - d smallest eigenvalues,
    :math:`W = U_d (\Lambda_d - \sigma^2 I)^{1/2}`."""
    lam, U = np.linalg.eigh(S)
    lam, U = lam[::-1], U[:, ::-1]
    s2 = lam[d:].mean()
    return U[:, :d] * np.sqrt(lam[:d] - s2), np.full(len(lam), s2)


def check_isotropic(e_step, m_step, seed=3, n=400, p=7, d=2):
    r"""PPCA: the isotropic step keeps :math:`\Psi = \sigma^2 I`, never lowers the
    log-likelihood, and has the closed-form solution as a fixed point."""
    X, S, W, _ = make_problem(seed, n, p, d, heteroscedastic=False)
    psi = np.full(p, 1.3)
    lls, W_end, psi_end = run_em(e_step, m_step, S, W, psi, 40, isotropic=True)
    psi_end = np.asarray(psi_end)
    if not np.allclose(psi_end, psi_end[0]):
        raise AssertionError(f"m_step(isotropic=True) returned psi = {show(psi_end)}: PPCA's "
                             f"noise is sigma^2 I, every psi_j equal")
    if np.any(np.diff(lls) < -1e-9 * np.abs(lls[1:])):
        raise AssertionError("isotropic EM (PPCA) lowered the log-likelihood")
    W_ml, psi_ml = ppca_solution(S, d)
    W1, psi1 = _step(m_step, S, e_step(S, W_ml, psi_ml), isotropic=True)
    if not (np.allclose(W1 @ W1.T, W_ml @ W_ml.T, rtol=1e-8, atol=1e-10)
            and np.allclose(psi1, psi_ml, rtol=1e-8)):
        raise AssertionError(f"one isotropic EM step from PPCA's closed-form solution moved "
                             f"sigma^2 from {psi_ml[0]:.8g} to {show(psi1)}: it is a fixed "
                             f"point of EM")
