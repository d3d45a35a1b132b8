r"""Checkers for ex03: they call the student's functions on generated inputs and compare with the
library (:func:`scratchdgm.models.deep.bounds.iwae_bound`,
:func:`scratchdgm.distributions.kl_divergence`), raising AssertionError with a hint when
something is off."""

import math

import numpy as np

from scratchdgm.distributions import DiagNormal, FullNormal, StandardNormal, kl_divergence
from scratchdgm.models.deep import bounds


def library_gaussian_kl(mu0, cov0, mu1, cov1):
    """The library's KL(N(mu0, cov0) || N(mu1, cov1)) as a float (the exercise's solution)."""
    q = FullNormal(mu0, np.linalg.cholesky(cov0))
    p = FullNormal(mu1, np.linalg.cholesky(cov1))
    return kl_divergence(q, p).item()


def _reference_iwae(log_w):
    return np.asarray(bounds.iwae_bound(log_w).data)


def _toy_log_weights(k, n, rng):
    r"""Log-weights of a toy DLVM: z ~ N(0, 1), x | z ~ N(z, 1), at n fixed points x, with a
    poor proposal q(z|x) = N(x/2 + 1/2, 1.5^2) (the true posterior is N(x/2, 1/2)), so that the
    bounds are clearly ordered: E L_1 ~ -3.27 < E L_5 ~ -2.11 < E L_50 ~ -2.02."""
    x = np.linspace(-3.0, 3.0, n)
    s, b = 1.5, 0.5
    z = x / 2 + b + s * rng.standard_normal((k, n))
    log_joint = -0.5 * (x - z) ** 2 - 0.5 * z ** 2 - math.log(2 * math.pi)
    log_q = -0.5 * ((z - x / 2 - b) / s) ** 2 - math.log(s) - 0.5 * math.log(2 * math.pi)
    return log_joint - log_q


def check_iwae_bound(fn):
    r"""Check ``fn(log_w) -> (B,)`` against the library's IWAE bound; raise AssertionError with a
    hint when it differs."""
    rng = np.random.default_rng(0)
    log_w = rng.normal(size=(7, 5)) * 2.0
    got = np.asarray(fn(log_w.copy()), dtype=float)
    want = _reference_iwae(log_w)
    if got.shape != want.shape:
        hint = ""
        if got.shape == (7,):
            hint = (": did you reduce over axis 1 (the data points) instead of axis 0 "
                    "(the K samples)?")
        elif got.shape == ():
            hint = ": did you average over the data points too? Return one bound per point"
        raise AssertionError(f"your iwae_bound returned shape {got.shape}, expected {want.shape} "
                             f"for log_w of shape (K, B) = {log_w.shape}{hint}")
    if np.allclose(got, want + math.log(7), rtol=1e-9, atol=1e-9):
        raise AssertionError("your iwae_bound is log sum_k w_k: did you forget the 1/K? Subtract "
                             "log K")
    if np.allclose(got, log_w.mean(axis=0), rtol=1e-9, atol=1e-9):
        raise AssertionError("your iwae_bound is the mean of the log-weights (the VAE bound, "
                             "L_1 averaged over K): the IWAE bound is the log of the MEAN WEIGHT")
    if not np.allclose(got, want, rtol=1e-9, atol=1e-9):
        raise AssertionError(f"your iwae_bound gives {got}, expected {want} "
                             f"(log (1/K) sum_k exp(log_w[k]))")
    big = np.array([[-1000.0, 800.0], [-1001.0, 801.0], [-1002.0, 799.0]])
    with np.errstate(all="ignore"):
        got_big = np.asarray(fn(big.copy()), dtype=float)
    if not np.all(np.isfinite(got_big)) or not np.allclose(got_big, _reference_iwae(big),
                                                           rtol=1e-9):
        raise AssertionError(f"your iwae_bound gives {got_big} for log-weights near -1000 and "
                             f"+800, expected {_reference_iwae(big)}: exp() under/overflows; use "
                             f"the logsumexp trick (subtract the max over k before exp)")
    # Theorem 1 of Burda et al.: L_1 <= L_5 <= L_50 on average over draws
    means = {}
    for k in (1, 5, 50):
        means[k] = float(np.mean(fn(_toy_log_weights(k, 4000, rng))))
    if not (means[1] < means[5] < means[50]):
        raise AssertionError(f"averaged over draws your bounds are L_1 = {means[1]:.4f}, L_5 = "
                             f"{means[5]:.4f}, L_50 = {means[50]:.4f}; they must increase with K")
    return True


def check_gaussian_kl(fn):
    r"""Check ``fn(mu0, cov0, mu1, cov1) -> float`` against the library's closed form."""
    rng = np.random.default_rng(1)
    p = 3
    a0, a1 = rng.normal(size=(2, p, p))
    cov0 = a0 @ a0.T + 0.5 * np.eye(p)
    cov1 = a1 @ a1.T + 0.5 * np.eye(p)
    mu0, mu1 = rng.normal(size=(2, p))
    want = library_gaussian_kl(mu0, cov0, mu1, cov1)
    got = float(np.asarray(fn(mu0.copy(), cov0.copy(), mu1.copy(), cov1.copy())))
    same = float(np.asarray(fn(mu0.copy(), cov0.copy(), mu0.copy(), cov0.copy())))
    if abs(same) > 1e-8:
        raise AssertionError(f"your gaussian_kl(p, p) = {same:.6g}, expected 0: "
                             f"did you forget the '- p' term, or mix up tr(S1^-1 S0)?")
    swapped = library_gaussian_kl(mu1, cov1, mu0, cov0)
    if abs(got - swapped) < 1e-8 * max(1, abs(swapped)) and abs(want - swapped) > 1e-6:
        raise AssertionError("your gaussian_kl computes KL(N1 || N0): the arguments are in the "
                             "order (mu0, cov0, mu1, cov1) and the inverse is of cov1")
    logdet_flip = want - np.linalg.slogdet(cov1)[1] + np.linalg.slogdet(cov0)[1]
    if abs(got - logdet_flip) < 1e-8 * max(1, abs(want)):
        raise AssertionError("your log-determinant term has the wrong sign: it is "
                             "1/2 log(det S1 / det S0)")
    if not np.isclose(got, want, rtol=1e-8, atol=1e-10):
        raise AssertionError(f"your gaussian_kl gives {got:.8g}, expected {want:.8g}")
    # the VAE special case: diagonal q against N(0, I)
    mu, log_sigma = rng.normal(size=(2, p))
    vae = kl_divergence(DiagNormal(mu, log_sigma), StandardNormal(p)).item()
    got_vae = float(np.asarray(fn(mu, np.diag(np.exp(2 * log_sigma)), np.zeros(p), np.eye(p))))
    if not np.isclose(got_vae, vae, rtol=1e-8):
        raise AssertionError(f"for q = N(mu, diag sigma^2) and p = N(0, I) your KL is "
                             f"{got_vae:.8g}, expected the VAE regulariser {vae:.8g}")
    return True
