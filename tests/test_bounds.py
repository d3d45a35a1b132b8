"""Properties of scratchdgm.models.deep.bounds: the IWAE bound, the two forms of the VAE bound, the
closed-form Gaussian KLs (against Monte Carlo), and the chunked importance-sampled likelihood."""

import math

import numpy as np
import pytest
from scipy.special import logsumexp as np_logsumexp

import scratchdgm as sd
from scratchdgm.models.deep import bounds
from scratchdgm.testing import check_gradients, check_gradients_at
from scratchdgm.testing import strategies as S


def _log_w(rng, k=7, b=5, scale=3.0):
    return rng.normal(size=(k, b)) * scale


def test_iwae_bound_is_log_mean_exp():
    rng = np.random.default_rng(0)
    lw = _log_w(rng)
    got = bounds.iwae_bound(sd.tensor(lw)).data
    np.testing.assert_allclose(got, np_logsumexp(lw, axis=0) - math.log(lw.shape[0]),
                               rtol=1e-12, atol=1e-12)


def test_iwae_bound_is_stable_for_huge_log_weights():
    lw = np.array([[-1e4, 1e4], [-1e4 - 1.0, 1e4 + 2.0]])
    got = bounds.iwae_bound(lw).data
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(got, np_logsumexp(lw, axis=0) - math.log(2), rtol=1e-12)


def test_iwae_bound_k1_equals_monte_carlo_elbo():
    lw = _log_w(np.random.default_rng(1), k=1)
    np.testing.assert_allclose(bounds.iwae_bound(lw).data, bounds.elbo_monte_carlo(lw).data)


def test_iwae_gradient_is_normalised_weights():
    # Burda et al. (2016) eq. 14: d L_K / d log w_k = w_k / sum_j w_j
    rng = np.random.default_rng(2)
    lw = sd.tensor(_log_w(rng), requires_grad=True)
    bounds.iwae_bound(lw).sum().backward()
    w = np.exp(lw.data - lw.data.max(axis=0))
    np.testing.assert_allclose(lw.grad, w / w.sum(axis=0), rtol=1e-10)
    np.testing.assert_allclose(lw.grad.sum(axis=0), 1.0, rtol=1e-12)


def test_iwae_bound_gradcheck():
    rng = np.random.default_rng(3)
    assert check_gradients_at(lambda t: bounds.iwae_bound(t), [_log_w(rng, 4, 3)])
    # generated log-weights (K, B) spread over [-30, 30] as on a real model: the gradient (the
    # normalised weights) matches differences (float64 only: a float32 kernel costs a compile)
    check_gradients(bounds.iwae_bound, S.arrays(S.shapes(min_dims=2, max_dims=2), -30.0, 30.0),
                    max_examples=20)


def test_bounds_reject_bad_log_weights():
    with pytest.raises(ValueError, match=r"shape \(K, batch\)"):
        bounds.iwae_bound(np.zeros(3))
    with pytest.raises(ValueError, match="K = 0"):
        bounds.elbo_monte_carlo(np.zeros((0, 3)))


def test_iwae_bound_is_jensen_ordered():
    # for every draw, log-mean-exp >= mean: L_K estimate >= the MC-ELBO of the same samples
    lw = _log_w(np.random.default_rng(4), k=50, b=20)
    assert np.all(bounds.iwae_bound(lw).data >= bounds.elbo_monte_carlo(lw).data - 1e-12)


def test_chunked_log_likelihood_equals_one_shot():
    rng = np.random.default_rng(9)
    k, n = 1000, 7
    table = rng.normal(size=(k, n)) * 4.0
    calls = []

    # feed chunks in order: a position counter per batch of points
    pos = {}

    def fn_ordered(idx, kc):
        key = int(idx[0])
        s = pos.get(key, 0)
        pos[key] = s + kc
        calls.append((len(idx), kc))
        return table[s:s + kc][:, idx]

    got = bounds.importance_sampled_log_likelihood(fn_ordered, n, k, chunk_size=300)
    np.testing.assert_allclose(got, np_logsumexp(table, axis=0) - math.log(k), rtol=1e-12)
    assert max(m * kc for m, kc in calls) <= 300


def test_log_likelihood_exact_with_the_true_posterior_as_proposal():
    # z ~ N(0,1), x | z ~ N(z, 1): p(x) = N(x; 0, 2) and p(z | x) = N(x/2, 1/2). With the true
    # posterior as proposal every weight equals p(x): the estimate is exact for any K.
    x = np.array([-2.0, 0.3, 1.7])
    rng = np.random.default_rng(10)

    def fn(idx, kc):
        xi = x[idx]
        z = xi / 2 + math.sqrt(0.5) * rng.standard_normal((kc, len(idx)))
        log_px_z = -0.5 * (xi - z) ** 2 - 0.5 * math.log(2 * math.pi)
        log_pz = -0.5 * z ** 2 - 0.5 * math.log(2 * math.pi)
        log_q = -(z - xi / 2) ** 2 - 0.5 * math.log(math.pi)
        return log_px_z + log_pz - log_q

    got = bounds.importance_sampled_log_likelihood(fn, 3, 500, chunk_size=200)
    exact = -0.25 * x ** 2 - 0.5 * math.log(4 * math.pi)
    np.testing.assert_allclose(got, exact, rtol=1e-10)


def test_log_likelihood_rejects_bad_k():
    with pytest.raises(ValueError, match="k"):
        bounds.importance_sampled_log_likelihood(lambda i, k: None, 3, 0)
