r"""The distributions of a discrete latent: the uniform prior :class:`UniformCategorical` with its
closed-form KL, and the Concrete / Gumbel-softmax relaxation :class:`RelaxedOneHotCategorical`
(its density against independent formulas and quadrature, its samples against its density and
against the Gumbel-max property, its gradients against finite differences on
Hypothesis-generated logits)."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import integrate, stats

import scratchdgm as sd
from scratchdgm.distributions import (
    Categorical,
    RelaxedOneHotCategorical,
    UniformCategorical,
    kl_divergence,
)
from scratchdgm.testing import strategies as S


def _logits(n_categories, lead=st.just(())):
    """Strategy: logits of shape lead + (K,) with entries in [-3, 3]."""
    return lead.flatmap(lambda shape: S.arrays(tuple(shape) + (n_categories,)))


# ------------------------------------------------------------------ KL to the uniform prior


@given(data=st.data(), k=st.integers(2, 6), lead=S.shapes(min_dims=0, max_dims=2))
def test_kl_to_uniform_is_minus_entropy_plus_log_k(data, k, lead):
    logits = data.draw(S.arrays(tuple(lead) + (k,)))
    q = Categorical(logits)
    kl = kl_divergence(q, UniformCategorical(k)).data
    # the generic formula sum_k q_k log(q_k / p_k), in NumPy, with p_k = 1/K
    log_q = logits - np.log(np.exp(logits).sum(axis=-1, keepdims=True))
    generic = (np.exp(log_q) * (log_q - math.log(1.0 / k))).sum(axis=-1)
    np.testing.assert_allclose(kl, generic, rtol=1e-10, atol=1e-12)
    # the same value through the general Categorical || Categorical pair
    np.testing.assert_allclose(kl, kl_divergence(q, Categorical(np.zeros(k))).data,
                               rtol=1e-10, atol=1e-12)
    assert np.all(kl >= -1e-12) and np.all(kl <= math.log(k) + 1e-12)


@given(data=st.data(), k=st.integers(2, 5), lead=S.shapes(min_dims=0, max_dims=2))
def test_kl_to_uniform_gradient(data, k, lead):
    logits = data.draw(S.arrays(tuple(lead) + (k,)))
    assert sd.gradcheck(lambda a: kl_divergence(Categorical(a), UniformCategorical(k)), [logits])


def test_uniform_categorical_is_uniform_with_entropy_log_k():
    u = UniformCategorical(4)
    np.testing.assert_allclose(u.probs.data, 0.25)
    assert u.entropy().item() == pytest.approx(math.log(4), rel=1e-14)
    assert kl_divergence(u, u).item() == pytest.approx(0.0, abs=1e-15)
    assert UniformCategorical(3, dtype=np.float32).probs.dtype == np.float32


@pytest.mark.parametrize("k, error, message", [
    (1, ValueError, "n_categories must be an int >= 2"),
    (0, ValueError, "n_categories must be an int >= 2"),
    (2.5, TypeError, "n_categories must be an int"),
])
def test_uniform_categorical_needs_two_categories(k, error, message):
    with pytest.raises(error, match=message):
        UniformCategorical(k)


# ------------------------------------------------------------------ the Concrete density


def _binary_concrete_density(t, p1, tau):
    """Density of y_1 for K = 2 written independently of the library (Maddison et al. 2017,
    the binary Concrete of their Section 3.3, with alpha = p1 / (1 - p1))."""
    a = p1 / (1.0 - p1)
    return (tau * a * t ** (-tau - 1) * (1 - t) ** (-tau - 1)
            / (a * t ** (-tau) + (1 - t) ** (-tau)) ** 2)


@given(p1=S.bounded_floats(0.05, 0.95), tau=S.bounded_floats(0.2, 3.0),
       t=S.bounded_floats(0.01, 0.99))
def test_density_for_two_categories_is_the_binary_concrete(p1, tau, t):
    d = RelaxedOneHotCategorical(np.log([p1, 1.0 - p1]), tau)
    got = math.exp(d.log_prob(np.array([t, 1.0 - t])).item())
    assert got == pytest.approx(_binary_concrete_density(t, p1, tau), rel=1e-10)


@pytest.mark.parametrize("tau", [0.3, 1.0, 2.5])
def test_density_integrates_to_one_for_two_categories(tau):
    d = RelaxedOneHotCategorical(np.log([0.3, 0.7]), tau)
    # in the logit u = log(t / (1 - t)) (dt = t (1 - t) du) the integrand is smooth and decays
    # like exp(-tau |u|): a fine trapezoid over |u| < 80 / tau leaves out less than 1e-30
    u = np.linspace(-80 / tau, 80 / tau, 40001)
    t, one_minus_t = 1.0 / (1.0 + np.exp(-u)), 1.0 / (1.0 + np.exp(u))  # both > 0 here
    dens = np.exp(d.log_prob(np.stack([t, one_minus_t], axis=-1)).data) * t * one_minus_t
    assert integrate.trapezoid(dens, u) == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("k, tau", [(3, 0.5), (3, 2.0), (5, 1.0)])
def test_density_integrates_to_one_and_matches_the_sampler(k, tau):
    # E_{y ~ p}[r(y) / p(y)] = int r = 1 for the Dirichlet(2, ..., 2) density r: this holds
    # only if log_prob is normalised *and* is the density of the samples rsample draws.
    # r / p is bounded, so the Monte Carlo error is small: over seeds 0..19 the estimate was
    # never more than 2.7 standard errors from 1 (the standard error at most 0.09); we allow 5.
    logits = np.linspace(-1.0, 1.0, k)
    d = RelaxedOneHotCategorical(logits, tau)
    y = d.sample(20000, random_state=4)
    ratio = np.exp(stats.dirichlet(np.full(k, 2.0)).logpdf(y.T) - d.log_prob(y).data)
    se = ratio.std() / math.sqrt(len(ratio))
    assert abs(ratio.mean() - 1.0) < 5 * se, (ratio.mean(), se)
    assert se < 0.15


def test_density_does_not_depend_on_the_scale_of_the_logits():
    # logits + c: the same probabilities, the same density (Maddison et al., Proposition 1a)
    y = np.array([0.1, 0.6, 0.3])
    a = RelaxedOneHotCategorical(np.array([0.2, -1.0, 0.5]), 0.7).log_prob(y).item()
    b = RelaxedOneHotCategorical(np.array([5.2, 4.0, 5.5]), 0.7).log_prob(y).item()
    assert a == pytest.approx(b, rel=1e-12)


# ------------------------------------------------------------------ its samples


def test_samples_follow_the_density():
    # K = 2: the sampled y_1 against the CDF obtained by integrating log_prob (a KS test).
    # Margin: over seeds 0..19 the p-value was never below 0.1; we ask for > 1e-3.
    p1, tau = 0.3, 0.6
    d = RelaxedOneHotCategorical(np.log([p1, 1 - p1]), tau)
    y1 = np.sort(d.sample(4000, random_state=0)[:, 0])

    def cdf(t):
        return integrate.quad(lambda s: _binary_concrete_density(s, p1, tau), 0, t)[0]

    grid = np.linspace(1e-6, 1 - 1e-6, 401)
    table = np.array([cdf(t) for t in grid])
    p_value = stats.kstest(y1, lambda t: np.interp(t, grid, table)).pvalue
    assert p_value > 1e-3, p_value


@pytest.mark.parametrize("tau", [0.1, 1.0, 5.0])
def test_argmax_of_a_sample_is_categorical_at_any_temperature(tau):
    # Maddison et al. (2017), Proposition 1b; a chi-square test, 20000 draws. Margin: over
    # seeds 0..19 and these three temperatures the p-value was never below 0.04; we ask > 1e-4.
    pi = np.array([0.1, 0.2, 0.3, 0.4])
    y = RelaxedOneHotCategorical(np.log(pi), tau).sample(20000, random_state=1)
    counts = np.bincount(y.argmax(axis=-1), minlength=4)
    assert stats.chisquare(counts, 20000 * pi).pvalue > 1e-4


def test_temperature_moves_samples_between_one_hot_and_the_centre():
    logits = np.log([0.25, 0.25, 0.5])
    cold = RelaxedOneHotCategorical(logits, 0.02).sample(500, random_state=2)
    hot = RelaxedOneHotCategorical(logits, 50.0).sample(500, random_state=2)
    assert np.median(cold.max(axis=-1)) > 0.999     # nearly one-hot
    assert np.abs(hot - 1 / 3).max() < 0.1          # nearly (1/3, 1/3, 1/3)
    for y in (cold, hot):
        assert np.all(y >= 0) and np.allclose(y.sum(axis=-1), 1.0)


def test_shapes_seeds_and_dtype():
    logits = np.zeros((2, 3, 4), dtype=np.float32)
    d = RelaxedOneHotCategorical(logits, 0.5)
    assert d.batch_shape == (2, 3) and d.event_shape == (4,)
    y = d.rsample((5,), random_state=3)
    assert y.shape == (5, 2, 3, 4) and y.dtype == np.float32
    assert d.log_prob(y).shape == (5, 2, 3) and d.log_prob(y).dtype == np.float32
    np.testing.assert_array_equal(d.sample(2, random_state=7), d.sample(2, random_state=7))


# ------------------------------------------------------------------ gradients (property-based)


@given(data=st.data(), k=st.integers(2, 4), lead=S.shapes(min_dims=0, max_dims=2, max_side=3),
       tau=st.sampled_from([0.5, 1.0, 2.0]), seed=st.integers(0, 2 ** 16))
def test_rsample_gradient_is_the_reparametrised_derivative(data, k, lead, tau, seed):
    # fixed Gumbel noise (same seed for every evaluation): y is a smooth function of the logits
    logits = data.draw(S.arrays(tuple(lead) + (k,)))
    assert sd.gradcheck(lambda a: RelaxedOneHotCategorical(a, tau).rsample((2,), seed),
                        [logits])


@given(data=st.data(), k=st.integers(2, 4), lead=S.shapes(min_dims=0, max_dims=2, max_side=3),
       tau=st.sampled_from([0.5, 1.0, 2.0]))
def test_log_prob_gradient_in_the_logits(data, k, lead, tau):
    logits = data.draw(S.arrays(tuple(lead) + (k,)))
    raw = data.draw(S.arrays(tuple(lead) + (k,), low=-1.0, high=1.0))
    y = np.exp(raw) / np.exp(raw).sum(axis=-1, keepdims=True)   # a point inside the simplex
    assert sd.gradcheck(lambda a: RelaxedOneHotCategorical(a, tau).log_prob(y), [logits])


@given(data=st.data(), k=st.integers(2, 4), seed=st.integers(0, 2 ** 16))
def test_gradient_of_the_log_density_of_a_reparametrised_sample(data, k, seed):
    # the pathwise derivative of log q(y(l)) (the relaxed ELBO of Maddison et al. needs it)
    logits = data.draw(S.arrays((2, k), low=-2.0, high=2.0))

    def f(a):
        d = RelaxedOneHotCategorical(a, 1.0)
        return d.log_prob(d.rsample((), seed))

    assert sd.gradcheck(f, [logits])


# ------------------------------------------------------------------ bad input


@pytest.mark.parametrize("temperature, error, message", [
    (0.0, ValueError, "temperature must be a finite float > 0"),
    (-1.0, ValueError, "temperature must be a finite float > 0"),
    (float("nan"), ValueError, "temperature must be finite"),
    (float("inf"), ValueError, "temperature must be finite"),
    ("1", TypeError, "temperature must be a real number"),
])
def test_bad_temperature_is_rejected(temperature, error, message):
    with pytest.raises(error, match=message):
        RelaxedOneHotCategorical(np.zeros(3), temperature)


def test_fewer_than_two_categories_and_bad_points_are_rejected():
    with pytest.raises(ValueError, match="K >= 2 categories"):
        RelaxedOneHotCategorical(np.zeros(1), 1.0)
    with pytest.raises(ValueError, match="K >= 2 categories"):
        RelaxedOneHotCategorical(np.float64(0.0), 1.0)
    d = RelaxedOneHotCategorical(np.zeros(3), 1.0)
    with pytest.raises(ValueError, match="entries <= 0"):
        d.log_prob(np.array([0.0, 0.5, 0.5]))
    with pytest.raises(ValueError, match="must sum to 1"):
        d.log_prob(np.array([0.2, 0.2, 0.2]))
    with pytest.raises(ValueError, match=r"expected \(\.\.\., 3\)"):
        d.log_prob(np.array([0.5, 0.5]))
