r"""Per distribution: its sampler, its log-density and its KL read the parameters the same way.

The classic VAE bug is a sampler that reads a variance where the log-density (or the KL) reads
a log standard deviation. Each test draws many samples and checks two Monte Carlo identities
that hold only when all three agree:

* :math:`\mathbb E_q[-\log q(z)] = H(q)` -- the sampler against the log-density (and the
  entropy, from SciPy with the documented parametrisation);
* :math:`\mathbb E_q[\log q(z) - \log p(z)] = \mathrm{KL}(q \,\|\, p)` -- the sampler and the
  log-density against the closed-form KL.

Margins are 6 standard errors of the Monte Carlo mean: with 200,000 samples a parametrisation
slip (a variance for a standard deviation: a factor of 2 in the log) is off by hundreds of them,
while the test was checked to pass for seeds 0..29.
"""

import math

import numpy as np
import pytest
from scipy import stats

import scratchdgm as sd
from scratchdgm.distributions import (
    Bernoulli,
    Categorical,
    DiagNormal,
    FullNormal,
    GaussianMixture,
    StandardNormal,
    StudentT,
    kl_divergence,
)

N = 200_000
SEEDS = [0]  # the margins were checked once over range(30)


def _mc_close(values, target, n_se=6.0):
    values = np.asarray(values, dtype=np.float64)
    mean, se = values.mean(), values.std() / math.sqrt(values.size)
    assert abs(mean - target) <= n_se * se + 1e-9, (mean, target, se)


def _check(q, p, entropy, seed):
    with sd.no_grad():
        z = q.sample(N, seed)
        log_q = np.asarray(q.log_prob(z).data, dtype=np.float64)
        _mc_close(-log_q, float(np.asarray(entropy)))
        if p is not None:
            log_p = np.asarray(p.log_prob(z).data, dtype=np.float64)
            _mc_close(log_q - log_p, float(kl_divergence(q, p).data))


@pytest.mark.parametrize("seed", SEEDS)
def test_diag_normal_reads_log_sigma_everywhere(seed):
    mu, log_sigma = np.array([0.3, -1.0]), np.array([-0.7, 0.9])
    q = DiagNormal(mu, log_sigma)
    p = DiagNormal(np.array([1.0, 0.0]), np.array([0.2, -0.3]))
    scipy_entropy = stats.norm(mu, np.exp(log_sigma)).entropy().sum()
    np.testing.assert_allclose(q.entropy().data, scipy_entropy, rtol=1e-12)
    _check(q, p, scipy_entropy, seed)
    _check(q, StandardNormal(2), scipy_entropy, seed + 1)


@pytest.mark.parametrize("seed", SEEDS)
def test_full_normal_reads_the_cholesky_factor_everywhere(seed):
    L = np.array([[0.8, 0.0], [-0.5, 0.4]])
    q = FullNormal(np.array([0.2, -0.1]), L)
    p = FullNormal(np.zeros(2), np.array([[1.5, 0.0], [0.3, 0.7]]))
    scipy_entropy = stats.multivariate_normal(np.zeros(2), L @ L.T).entropy()
    np.testing.assert_allclose(q.entropy().data, scipy_entropy, rtol=1e-12)
    _check(q, p, scipy_entropy, seed)


@pytest.mark.parametrize("seed", SEEDS)
def test_bernoulli_reads_logits_everywhere(seed):
    logits = np.array([-2.0, 0.5, 3.0])
    q, p = Bernoulli(logits), Bernoulli(np.array([0.0, -1.0, 1.0]))
    probs = 1.0 / (1.0 + np.exp(-logits))
    scipy_entropy = stats.bernoulli(probs).entropy().sum()
    np.testing.assert_allclose(q.entropy().data, scipy_entropy, rtol=1e-12)
    _check(q, p, scipy_entropy, seed)


@pytest.mark.parametrize("seed", SEEDS)
def test_categorical_reads_logits_everywhere(seed):
    logits = np.array([0.3, -1.2, 2.0, 0.0])
    q, p = Categorical(logits), Categorical(np.zeros(4))
    probs = np.exp(logits) / np.exp(logits).sum()
    scipy_entropy = stats.entropy(probs)
    np.testing.assert_allclose(q.entropy().data, scipy_entropy, rtol=1e-12)
    _check(q, p, scipy_entropy, seed)


@pytest.mark.parametrize("seed", SEEDS)
def test_student_t_reads_scale_and_df_everywhere(seed):
    # no closed-form KL between Student's t distributions: the entropy identity alone
    loc, scale, df = np.array([1.0, -2.0]), np.array([0.5, 2.0]), np.array([3.0, 7.0])
    q = StudentT(loc, scale, df)
    _check(q, None, stats.t(df, loc, scale).entropy().sum(), seed)


@pytest.mark.parametrize("seed", SEEDS)
def test_gaussian_mixture_samples_and_density_agree(seed):
    # no closed-form entropy or KL: the sampler's moments against the parameters, and the
    # density integrating to the sampler's own frequencies on a few boxes
    logits = np.array([0.0, 1.0])
    mu = np.array([[-2.0, 0.0], [1.5, 1.0]])
    log_sigma = np.array([[-0.5, 0.0], [0.2, -1.0]])
    g = GaussianMixture(logits, mu, log_sigma)
    pi = np.exp(logits) / np.exp(logits).sum()
    z = g.sample(N, seed)
    mean = (pi[:, None] * mu).sum(0)
    second = (pi[:, None] * (np.exp(2 * log_sigma) + mu ** 2)).sum(0)
    se = np.sqrt(second / N)
    assert np.all(np.abs(z.mean(0) - mean) < 6 * se)
    # E_g[exp(-log g(z))] over the sampler = volume of the support: use instead the
    # self-consistency E[1{z in box}] = integral of exp(log_prob) over the box, on a grid
    box = (slice(-3.0, -1.0), slice(-1.0, 1.0))
    xs = np.linspace(box[0].start, box[0].stop, 201)
    ys = np.linspace(box[1].start, box[1].stop, 201)
    grid = np.stack(np.meshgrid(xs, ys, indexing="ij"), -1).reshape(-1, 2)
    with sd.no_grad():
        dens = np.exp(g.log_prob(grid).data).reshape(201, 201)
    mass = np.trapezoid(np.trapezoid(dens, ys, axis=1), xs)
    inside = np.mean((z[:, 0] > -3) & (z[:, 0] < -1) & (z[:, 1] > -1) & (z[:, 1] < 1))
    assert abs(inside - mass) < 6 * math.sqrt(mass * (1 - mass) / N) + 1e-4
