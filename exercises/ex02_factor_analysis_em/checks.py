r"""Checkers for ex02: they call the student's E-step and M-step on generated factor-analysis
problems, compare with the library (:func:`scratchdgm.models.linear.factor_analysis.e_step`, and
:func:`scratchdgm.models.linear.gaussian.em_step`, the covariance-form iteration that
``FactorAnalysis.fit`` runs), and check that EM with them never decreases the exact
log-likelihood. A mismatch raises AssertionError with a hint at the likely mistake."""

import numpy as np

from scratchdgm.models.linear.gaussian import (
    _mean_and_covariance,
    em_step,
    gaussian_loglike_from_cov,
)
from scratchdgm.models.linear.factor_analysis import e_step as _ref_e_step

RTOL, ATOL = 1e-7, 1e-9


def _close(a, b):
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return a.shape == b.shape and np.allclose(a, b, rtol=RTOL, atol=ATOL)


def _problem(seed, n=100, p=6, d=3):
    """Data from a d-factor model, and *other* (current) parameters W, psi to run a step from."""
    rng = np.random.default_rng(seed)
    W_true = rng.standard_normal((p, d))
    mu_true = 2.0 * rng.standard_normal(p)
    X = (rng.standard_normal((n, d)) @ W_true.T + mu_true
         + rng.standard_normal((n, p)) * rng.uniform(0.3, 1.0, p))
    W = rng.standard_normal((p, d))
    psi = rng.uniform(0.2, 2.0, p)
    return X, W, psi, X.mean(axis=0)


def _as_pair(out, name, what):
    if not (isinstance(out, (tuple, list)) and len(out) == 2):
        raise AssertionError(f"your {name} must return a tuple {what}, got {type(out).__name__}")
    return np.asarray(out[0], dtype=float), np.asarray(out[1], dtype=float)


def check_e_step(fn):
    r"""Check ``fn(X, W, psi, mu) -> (Ez, cov_z)`` against the library's E-step."""
    for seed, (n, p, d) in ((0, (100, 6, 3)), (1, (7, 4, 1))):
        X, W, psi, mu = _problem(seed, n, p, d)
        Ez, cov = _as_pair(fn(X.copy(), W.copy(), psi.copy(), mu.copy()), "e_step",
                           "(Ez, cov_z)")
        Ez_ref, cov_ref = _ref_e_step(X, W, psi, mu)
        if Ez.shape != (n, d):
            hint = (": did you forget a transpose? One row per data point" if Ez.shape == (d, n)
                    else "")
            raise AssertionError(f"your e_step mean has shape {Ez.shape}, expected (n, d) = "
                                 f"({n}, {d}) for X of shape {X.shape} and W of shape "
                                 f"{W.shape}{hint}")
        if cov.shape != (d, d):
            hint = (": the posterior covariance M^{-1} does not depend on x, return it once"
                    if cov.shape == (n, d, d) else "")
            raise AssertionError(f"your e_step covariance has shape {cov.shape}, expected (d, d) "
                                 f"= ({d}, {d}){hint}")
        M = np.eye(d) + W.T @ (W / psi[:, None])
        if not _close(cov, cov_ref):
            M_psi = np.eye(d) + W.T @ (W * psi[:, None])
            if _close(cov, np.linalg.inv(M_psi)):
                raise AssertionError("your posterior covariance is (I + W^T Psi W)^{-1}: did you "
                                     "use Psi instead of Psi^{-1}? (divide W by psi)")
            if _close(cov, M):
                raise AssertionError("your posterior covariance is M = I + W^T Psi^{-1} W: the "
                                     "covariance is its inverse M^{-1}")
            if _close(cov, np.eye(d)):
                raise AssertionError("your posterior covariance is I, the prior's: conditioning "
                                     "on x shrinks it to M^{-1} = (I + W^T Psi^{-1} W)^{-1}")
            raise AssertionError(f"your posterior covariance differs from M^{{-1}} = "
                                 f"(I + W^T Psi^{{-1}} W)^{{-1}} by up to "
                                 f"{np.abs(cov - cov_ref).max():.3e}")
        if not _close(Ez, Ez_ref):
            Xc = X - mu
            candidates = [
                (_ref_e_step(X, W, psi, np.zeros(p))[0],
                 "did you subtract mu from x? The mean is M^{-1} W^T Psi^{-1} (x - mu)"),
                (Xc @ (W / psi[:, None]),
                 "did you forget M^{-1}? The mean is M^{-1} W^T Psi^{-1} (x - mu)"),
                (Xc @ W @ cov_ref,
                 "did you forget Psi^{-1}? The mean is M^{-1} W^T Psi^{-1} (x - mu)"),
                (Xc @ W, "W^T (x - mu) is a projection, not the posterior mean "
                         "M^{-1} W^T Psi^{-1} (x - mu)"),
            ]
            for value, hint in candidates:
                if _close(Ez, value):
                    raise AssertionError(f"your posterior mean is wrong: {hint}")
            raise AssertionError(f"your posterior mean differs from M^{{-1}} W^T Psi^{{-1}} "
                                 f"(x - mu) by up to {np.abs(Ez - Ez_ref).max():.3e}")
    return True


def check_m_step(fn):
    r"""Check ``fn(X, Ez, cov_z, mu) -> (W_new, psi_new)`` against the library's M-step."""
    for seed, (n, p, d) in ((2, (100, 6, 3)), (3, (9, 5, 1))):
        X, W, psi, mu = _problem(seed, n, p, d)
        Ez, cov = _ref_e_step(X, W, psi, mu)
        W_new, psi_new = _as_pair(fn(X.copy(), Ez.copy(), cov.copy(), mu.copy()), "m_step",
                                  "(W_new, psi_new)")
        _, S = _mean_and_covariance(X)
        # the covariance-form EM iteration FactorAnalysis.fit runs, from the same (W, psi)
        W_ref, psi_ref = em_step(S, W, psi)
        if W_new.shape != (p, d):
            hint = ": did you return W_new transposed?" if W_new.shape == (d, p) else ""
            raise AssertionError(f"your W_new has shape {W_new.shape}, expected (p, d) = "
                                 f"({p}, {d}){hint}")
        if psi_new.shape != (p,):
            hint = (": return only the diagonal of Psi" if psi_new.shape == (p, p) else "")
            raise AssertionError(f"your psi_new has shape {psi_new.shape}, expected (p,) = "
                                 f"({p},){hint}")
        Xc = X - mu
        if not _close(W_new, W_ref):
            candidates = [
                (Xc.T @ Ez @ np.linalg.inv(Ez.T @ Ez),
                 "did you forget the posterior covariance? E[z z^T | x] = cov_z + E[z] E[z]^T, "
                 "so sum_i E[z_i z_i^T] = n cov_z + Ez^T Ez"),
                (X.T @ Ez @ np.linalg.inv(n * cov + Ez.T @ Ez),
                 "did you centre x? Use x_i - mu in sum_i x_i E[z_i]^T"),
                (Xc.T @ Ez @ np.linalg.inv(cov + Ez.T @ Ez),
                 "sum_i E[z_i z_i^T] has n copies of cov_z: n cov_z + Ez^T Ez"),
            ]
            for value, hint in candidates:
                if _close(W_new, value):
                    raise AssertionError(f"your W_new is wrong: {hint}")
            raise AssertionError(f"your W_new differs from (sum x E[z]^T)(sum E[z z^T])^{{-1}} "
                                 f"by up to {np.abs(W_new - W_ref).max():.3e}")
        if not _close(psi_new, psi_ref):
            candidates = [
                (psi_ref * n, "did you forget to divide by n?"),
                (np.diag(S) - np.sum(W_new**2, axis=1),
                 "psi_new is (1/n) diag(sum_i x_i x_i^T - W_new E[z_i] x_i^T), not "
                 "diag(S - W_new W_new^T)"),
                (np.einsum("ij,ij->j", X, X) / n - np.einsum("ij,ij->i", W_new, X.T @ Ez / n),
                 "did you centre x? Use x_i - mu"),
            ]
            for value, hint in candidates:
                # with or without the floor
                if _close(psi_new, value) or _close(psi_new, np.maximum(value, 1e-12)):
                    raise AssertionError(f"your psi_new is wrong: {hint}")
            raise AssertionError(f"your psi_new differs from (1/n) diag(sum x x^T - W_new E[z] "
                                 f"x^T) by up to {np.abs(psi_new - psi_ref).max():.3e}")
    # a feature that never varies: its psi_j is 0 in exact arithmetic and must be floored
    X, W, psi, mu = _problem(4, 50, 5, 2)
    X[:, 2] = 1.5
    mu = X.mean(axis=0)
    Ez, cov = _ref_e_step(X, W, psi, mu)
    with np.errstate(all="ignore"):
        _, psi_new = _as_pair(fn(X.copy(), Ez.copy(), cov.copy(), mu.copy()), "m_step",
                              "(W_new, psi_new)")
    if not (np.all(np.isfinite(psi_new)) and np.all(psi_new >= 1e-12 * (1 - 1e-9))):
        raise AssertionError(f"for data with a constant feature your psi_new is {psi_new}: a "
                             f"feature that never varies has psi_j = 0, and Psi^{{-1}} no longer "
                             f"exists; floor psi_new at min_noise_variance (1e-12)")
    return True


def check_em_monotone(e_step_fn, m_step_fn, n_iter=25):
    r"""Run ``n_iter`` EM iterations with the student's steps from a random start; the exact
    log-likelihood must never decrease and must improve overall."""
    X, W, psi, mu = _problem(5, 300, 8, 2)
    _, S = _mean_and_covariance(X)
    ll = [gaussian_loglike_from_cov(S, W, psi)]
    for t in range(1, n_iter + 1):
        with np.errstate(all="ignore"):
            Ez, cov = _as_pair(e_step_fn(X.copy(), W, psi, mu.copy()), "e_step", "(Ez, cov_z)")
            W, psi = _as_pair(m_step_fn(X.copy(), Ez, cov, mu.copy()), "m_step",
                              "(W_new, psi_new)")
        if not (np.all(np.isfinite(W)) and np.all(np.isfinite(psi)) and np.all(psi > 0)):
            raise AssertionError(f"after EM iteration {t} the parameters are not finite with "
                                 f"psi > 0 (psi = {psi})")
        ll.append(gaussian_loglike_from_cov(S, W, psi))
        if ll[-1] < ll[-2] - 1e-9 * (1.0 + abs(ll[-2])):
            raise AssertionError(f"EM decreased the log-likelihood at iteration {t}: "
                                 f"{ll[-2]:.8f} -> {ll[-1]:.8f} per sample. An exact E-step "
                                 f"followed by an exact M-step can never do that: check both")
    if ll[-1] <= ll[0] + 1e-6:
        raise AssertionError(f"{n_iter} EM iterations did not improve the log-likelihood "
                             f"({ll[0]:.6f} -> {ll[-1]:.6f}): are the steps updating W and psi?")
    return True
