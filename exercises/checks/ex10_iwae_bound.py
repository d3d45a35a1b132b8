r"""Checks of exercise 10: the IWAE bound :math:`\mathcal L_K` and the K-sample VAE bound
:math:`\mathcal L_1`, ``iwae_bound`` and ``elbo_monte_carlo`` in
``scratchdgm/models/deep/bounds.py`` (Burda et al. 2016, eq. 8).

References: ``scipy.special.logsumexp`` minus :math:`\log K`; Theorem 1 of Burda et al.
(:math:`\mathcal L_1 \le \mathcal L_5 \le \mathcal L_{50}` on average over draws) on a toy model
whose log-weights are computed here; gradients through the recorded graph by
:func:`path_sum_grad` (not ``Tensor.backward``).
"""

import math

import numpy as np
from scipy import special

from scratchdgm import tensor

from ._common import close, connected, expect_array, path_sum_grad, show, values


def reference_iwae(log_w):
    with np.errstate(all="ignore"):
        return special.logsumexp(np.asarray(log_w, np.float64), axis=0) - math.log(len(log_w))


def toy_log_weights(k, n, rng):
    r"""Log-weights of a toy DLVM: z ~ N(0, 1), x | z ~ N(z, 1), at n fixed points x, with a
    poor proposal q(z | x) = N(x/2 + 1/2, 1.5^2) (the posterior is N(x/2, 1/2)), so that the
    bounds are clearly ordered: E L_1 ~ -3.27 < E L_5 ~ -2.11 < E L_50 ~ -2.02."""
    x = np.linspace(-3.0, 3.0, n)
    s, b = 1.5, 0.5
    z = x / 2 + b + s * rng.standard_normal((k, n))
    log_joint = -0.5 * (x - z) ** 2 - 0.5 * z ** 2 - math.log(2 * math.pi)
    log_q = -0.5 * ((z - x / 2 - b) / s) ** 2 - math.log(s) - 0.5 * math.log(2 * math.pi)
    return log_joint - log_q


def check_iwae_values(iwae, log_w):
    r"""``iwae(log_w)`` for ``log_w`` of shape (K, B): one bound per data point,
    :math:`\log \frac1K \sum_k w_k`, with the input's dtype."""
    log_w = np.asarray(log_w)
    K = log_w.shape[0]
    with np.errstate(all="ignore"):
        got = values(iwae(log_w.copy()))
    want = reference_iwae(log_w)

    def hint(shape):
        if shape == (K,):
            return ": you reduced over axis 1 (the data points) instead of axis 0 (the K samples)"
        if shape == ():
            return ": you averaged over the data points too; return one bound per point"
        return ""

    expect_array(got, want.shape, log_w.dtype,
                 f"the IWAE bound of log-weights of shape (K, B) = {log_w.shape}", hint)
    rtol = 1e-5 if log_w.dtype == np.float32 else 1e-10
    if close(got, want, rtol, rtol):
        return
    hint = " (log (1/K) sum_k exp(log_w[k]), computed stably)"
    if close(got, want + math.log(K), 1e-8, 1e-8):
        hint = " -- that is log sum_k w_k: you forgot the 1/K (subtract log K)"
    elif close(got, np.mean(log_w, axis=0), 1e-8, 1e-8):
        hint = (" -- that is the mean of the log-weights, the K-sample VAE bound: the IWAE bound "
                "is the log of the MEAN WEIGHT")
    elif not np.all(np.isfinite(got)) and np.all(np.isfinite(want)):
        hint = (" -- exp() under/overflows: shift by the maximum over k before exp (the fused "
                "scratchdgm.autodiff.fused.iw_logsumexp does it for you)")
    raise AssertionError(f"the IWAE bound gives {show(got)}, expected {show(want)}{hint}")


def check_iwae_gradient(iwae, log_w):
    r"""The bound is a Tensor connected to ``log_w``, and its gradient is the vector of
    normalised importance weights :math:`\tilde w_k = w_k / \sum_j w_j` (Burda et al. 2016,
    eq. 14) -- the softmax over K."""
    leaf = tensor(log_w, requires_grad=True)
    out = iwae(leaf)
    if not connected(out, leaf):
        raise AssertionError("the bound is not connected to the log-weights in the graph: keep "
                             "to Tensor operations (no np.asarray or .data), so that training "
                             "can take its gradient")
    (g,) = path_sum_grad(out, [leaf])
    want = special.softmax(log_w, axis=0)
    if not np.allclose(g, want, rtol=1e-8, atol=1e-12):
        raise AssertionError(f"d L_K / d log w is {show(g)}, expected the normalised weights "
                             f"{show(want)}")


def check_theorem_1(iwae, seed=0, n=4000):
    r"""Averaged over draws, :math:`\mathcal L_1 < \mathcal L_5 < \mathcal L_{50}` (Burda et al.
    2016, Theorem 1) on the toy model. With n = 4000 the gaps (1.2 and 0.09 nats) are over 15
    standard errors."""
    rng = np.random.default_rng(seed)
    means = {k: float(np.mean(values(iwae(toy_log_weights(k, n, rng))))) for k in (1, 5, 50)}
    if not (means[1] < means[5] < means[50]):
        raise AssertionError(f"averaged over draws your bounds are L_1 = {means[1]:.4f}, L_5 = "
                             f"{means[5]:.4f}, L_50 = {means[50]:.4f}; they must increase with K")


def check_elbo(elbo, log_w):
    r"""``elbo(log_w)``: the mean of the K log-weights of each point, connected to ``log_w``,
    with gradient 1/K."""
    log_w = np.asarray(log_w)
    leaf = tensor(log_w, requires_grad=True)
    out = elbo(leaf)
    got = values(out)
    want = np.mean(log_w, axis=0)
    if got.shape != want.shape:
        raise AssertionError(f"the K-sample VAE bound of log-weights of shape {log_w.shape} has "
                             f"shape {got.shape}, expected {want.shape} (average over axis 0, "
                             f"the K samples)")
    if not np.allclose(got, want, rtol=1e-12, atol=1e-12):
        hint = ""
        if np.allclose(got, reference_iwae(log_w)):
            hint = (" -- that is the IWAE bound; the K-sample VAE bound averages the log-weights "
                    "themselves")
        raise AssertionError(f"the K-sample VAE bound gives {show(got)}, expected {show(want)}"
                             f"{hint}")
    if not connected(out, leaf):
        raise AssertionError("the VAE bound is not connected to the log-weights in the graph")
    (g,) = path_sum_grad(out, [leaf])
    if not np.allclose(g, 1.0 / len(log_w)):
        raise AssertionError(f"d L_1 / d log w is {show(g)}, expected 1/K everywhere")


def check_k1_is_the_vae_bound(iwae, elbo, seed=0):
    r"""With K = 1 the two bounds are one number."""
    log_w = np.random.default_rng(seed).normal(scale=5, size=(1, 6))
    a, b = values(iwae(log_w)), values(elbo(log_w))
    if not np.allclose(a, b, rtol=1e-12):
        raise AssertionError(f"with K = 1, L_K = {show(a)} and the VAE bound = {show(b)} differ; "
                             f"both are log w_1")
