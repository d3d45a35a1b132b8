r"""The Monte Carlo estimators of scratchdgm.estimators, against expectations and gradients known
in closed form.

Statistical checks use R independent replicates in one batch (a distribution of batch shape
(R, ...)) and a fixed seed. Each margin was checked once over seeds 0..19 (the ``_check_*``
helpers take the seed; none failed, and the recorded worst case is in each comment).
"""

import json
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import scratchdgm as sd
from scratchdgm import estimators as est
from scratchdgm.distributions import Bernoulli, DiagNormal, StandardNormal, StudentT

SEED = 0


def _normals(mean, sd_, reps):
    return DiagNormal(np.full((reps, 1), mean), np.full((reps, 1), math.log(sd_)),
                      backend="numpy")


def _exp(x):
    return np.exp(np.asarray(x)[..., 0])


# ----------------------------------------------------------------------------- simple MC


def _check_simple_monte_carlo(seed):
    # E_N(0,1)[e^x] = e^{1/2}, Var[e^x] = e(e - 1): 4000 runs of K = 50
    reps, k = 4000, 50
    e = est.monte_carlo(_exp, _normals(0.0, 1.0, reps), k, seed)
    I, var = math.exp(0.5), math.e * (math.e - 1)
    z = (e.value.mean() - I) / math.sqrt(var / k / reps)
    assert abs(z) < 4, z                                  # worst |z| over 20 seeds: 1.7
    ratio = e.value.var() / (var / k)
    assert 0.85 < ratio < 1.15, ratio                     # over 20 seeds: 0.97..1.03
    # its standard error estimates the spread of the estimate (root mean square over runs)
    se_ratio = math.sqrt(np.mean(e.standard_error**2)) / math.sqrt(var / k)
    assert 0.9 < se_ratio < 1.1, se_ratio                 # over 20 seeds: 0.98..1.01


def test_simple_monte_carlo_is_unbiased_with_variance_var_over_k():
    _check_simple_monte_carlo(SEED)


def test_monte_carlo_shapes_and_log_value():
    p = DiagNormal(np.zeros((3, 2)), np.zeros((3, 2)), backend="numpy")
    e = est.monte_carlo(lambda x: np.sum(np.asarray(x) ** 2, axis=-1), p, 7, 0)
    assert e.value.shape == (3,) and e.samples.shape == (7, 3, 2) and e.log_w is None
    np.testing.assert_allclose(e.log_value, np.log(e.value))


# ----------------------------------------------------------------------- importance sampling


def _check_importance_sampling_unbiased(seed):
    # the wide proposal N(1, 1.5^2) for E_N(0,1)[e^x]: per-draw variance 0.5509 (exact)
    reps, k = 4000, 20
    e = est.importance_sampling(_exp, _normals(0.0, 1.0, reps), _normals(1.0, 1.5, reps), k,
                                seed)
    I = math.exp(0.5)
    z = (e.value.mean() - I) / (e.value.std() / math.sqrt(reps))
    assert abs(z) < 4, z                                  # worst |z| over 20 seeds: 1.7
    ratio = k * e.value.var() / 0.5509293695796851
    assert 0.85 < ratio < 1.15, ratio                     # over 20 seeds: 0.95..1.03


def test_importance_sampling_is_unbiased():
    _check_importance_sampling_unbiased(SEED)


@given(a=st.floats(-2.0, 2.0), seed=st.integers(0, 2**32 - 1))
def test_the_optimal_proposal_has_zero_variance(a, seed):
    # q* = f p / I = N(a, 1) for f = e^{a x}, p = N(0, 1): every weighted draw equals I
    f = lambda x: np.exp(a * np.asarray(x)[..., 0])  # noqa: E731
    e = est.importance_sampling(f, StandardNormal(1, backend="numpy"),
                                DiagNormal([a], [0.0], backend="numpy"), 16, seed)
    assert e.value == pytest.approx(math.exp(a * a / 2), rel=1e-12)
    assert e.standard_error <= 1e-12 * e.value


def test_log_value_is_exact_when_every_weight_underflows():
    # an unnormalised target with integral e^{-2000}: the weights are ~e^{-2000} = 0.0 in
    # float64, the log of the estimate is still right
    log_p = lambda x: StandardNormal(1, backend="numpy").log_prob(x).data - 2000.0  # noqa: E731
    e = est.importance_sampling(None, log_p, DiagNormal([0.0], [0.3], backend="numpy"), 1000, 0)
    assert e.value == 0.0
    assert e.log_value == pytest.approx(-2000.0, abs=0.1)
    assert np.all(np.isfinite(e.log_w))


@given(shift=st.floats(-500.0, 500.0))
def test_self_normalised_importance_sampling_ignores_the_normaliser(shift):
    q = StudentT([0.0], [1.5], [4.0])
    f = lambda x: np.asarray(x)[..., 0] ** 2  # noqa: E731
    p = StandardNormal(1, backend="numpy")
    base = est.self_normalised_importance_sampling(f, p, q, 200, 3)
    shifted = est.self_normalised_importance_sampling(
        f, lambda x: p.log_prob(x).data + shift, q, 200, 3)
    assert shifted.value == pytest.approx(base.value, rel=1e-9)


def _check_self_normalised(seed):
    # E_N(0,1)[x^2] = 1 from a heavier-tailed Student's t proposal; the bias is O(1/K)
    q = StudentT(np.zeros((1000, 1)), np.full((1000, 1), 1.5), np.full((1000, 1), 4.0))
    e = est.self_normalised_importance_sampling(lambda x: np.asarray(x)[..., 0] ** 2,
                                                StandardNormal(1, backend="numpy"), q, 200,
                                                seed)
    z = (e.value.mean() - 1.0) / (e.value.std() / math.sqrt(1000))
    assert abs(z) < 4, z                                  # worst |z| over 20 seeds: 2.4
    assert 0.8 < np.median(e.standard_error) / e.value.std() < 1.2  # over 20 seeds: 0.96..1.03


def test_self_normalised_importance_sampling_is_consistent():
    _check_self_normalised(SEED)


def test_estimators_say_what_is_wrong():
    p = StandardNormal(1, backend="numpy")
    with pytest.raises(ValueError, match="expected \\(4,\\)"):
        est.monte_carlo(lambda x: np.zeros(3), p, 4, 0)
    with pytest.raises(TypeError, match="callable or a distribution"):
        est.importance_sampling(None, 3.0, p, 4, 0)
    with pytest.raises(ValueError, match="k must be an int >= 1"):
        est.monte_carlo(_exp, p, 0, 0)


# ------------------------------------------------------------------- effective sample size


@given(log_w=st.lists(st.floats(-50.0, 50.0), min_size=1, max_size=30),
       shift=st.floats(-1e3, 1e3))
def test_effective_sample_size_is_kish_and_scale_free(log_w, shift):
    log_w = np.array(log_w)
    ess = est.effective_sample_size(log_w)
    assert 1.0 - 1e-9 <= ess <= len(log_w) * (1 + 1e-9)
    assert est.effective_sample_size(log_w + shift) == pytest.approx(ess, rel=1e-9)
    w = np.exp(log_w - log_w.max())
    assert ess == pytest.approx(w.sum() ** 2 / np.sum(w**2), rel=1e-9)


def test_effective_sample_size_extremes_and_axis():
    assert est.effective_sample_size(np.zeros(50)) == pytest.approx(50.0)
    assert est.effective_sample_size(np.array([0.0, -800.0, -900.0])) == pytest.approx(1.0)
    log_w = np.random.default_rng(0).normal(size=(10, 4))
    np.testing.assert_allclose(est.effective_sample_size(log_w, axis=0),
                               [est.effective_sample_size(log_w[:, j]) for j in range(4)])


# --------------------------------------------------------------------------------- gradients
# q = N(mu, diag sigma^2), f(z) = -||z - c||^2 / 2: E_q f = -(||mu - c||^2 + sum sigma^2) / 2,
# so d/dmu = c - mu, d/dlog sigma = -sigma^2, d/dc = mu - c. R copies of the problem in one
# batch give R independent estimates.

MU, SIGMA, C = np.array([0.5, -1.0]), np.array([0.7, 1.3]), np.array([1.0, 0.5])
EXACT = (C - MU, -SIGMA**2, MU - C)


def _problem(reps):
    mu = sd.tensor(np.tile(MU, (reps, 1)), requires_grad=True)
    log_sigma = sd.tensor(np.tile(np.log(SIGMA), (reps, 1)), requires_grad=True)
    c = sd.tensor(np.tile(C, (reps, 1)), requires_grad=True)

    def f(z):
        d = z - c
        return -0.5 * (d * d).sum(axis=-1)

    return f, DiagNormal(mu, log_sigma, backend="numpy"), [mu, log_sigma, c]


def _max_z(grads):
    return max(float(np.max(np.abs((g.mean(axis=0) - e) / (g.std(axis=0) / math.sqrt(len(g))))))
               for g, e in zip(grads, EXACT))


def _check_gradients_unbiased(seed):
    reps = 4000
    f, q, params = _problem(reps)
    rp = est.reparametrised_gradient(f, q, params, 3, seed)
    sf = est.score_function_gradient(f, q, params, 3, seed)
    loo = est.score_function_gradient(f, q, params, 3, seed, baseline="loo")
    const = est.score_function_gradient(f, q, params, 3, seed, baseline=-2.0)
    for grads in (rp, sf, loo, const):
        assert _max_z(grads) < 4.5                        # worst over 20 seeds: 3.1
    # the score function's variance of the mu-gradient is far larger (exact: 58x and 9.9x)
    ratio = sf[0].var(axis=0) / rp[0].var(axis=0)
    assert np.all(ratio > 5), ratio                       # over 20 seeds: min 9.1
    # the leave-one-out baseline removes part of it
    assert np.all(loo[0].var(axis=0) < 0.85 * sf[0].var(axis=0))  # over 20 seeds: max 0.75


def test_score_function_and_reparametrised_gradients_are_unbiased():
    _check_gradients_unbiased(SEED)


def test_reparametrised_variance_is_exact():
    # d f(mu + sigma eps) / d mu = c - mu - sigma eps: per-draw variance sigma^2, exactly 1/K
    f, q, params = _problem(20000)
    g = est.reparametrised_gradient(f, q, params, 4, 1)[0]
    np.testing.assert_allclose(4 * g.var(axis=0), SIGMA**2, rtol=0.05)


def test_score_function_takes_a_black_box_f():
    # f returns a plain array (not differentiable): the estimator never needs its derivative
    mu = sd.tensor(np.zeros((3000, 1)), requires_grad=True)
    q = DiagNormal(mu, np.zeros((3000, 1)), backend="numpy")
    g, = est.score_function_gradient(lambda z: (np.asarray(z.data)[..., 0] > 0) * 1.0, q, [mu],
                                     20, 0)
    # d/dmu P(z > 0) at mu = 0 is the N(0, 1) density at 0
    assert g.mean() == pytest.approx(1 / math.sqrt(2 * math.pi), abs=0.03)


def test_gradients_leave_the_parameters_grad_alone():
    f, q, params = _problem(2)
    for t in params:
        t.grad = np.full(t.shape, 7.0)
    est.reparametrised_gradient(f, q, params, 2, 0)
    est.score_function_gradient(f, q, params, 2, 0)
    assert all(np.all(t.grad == 7.0) for t in params)


def test_gradient_estimators_say_what_is_wrong():
    f, q, params = _problem(2)
    with pytest.raises(ValueError, match="needs k >= 2"):
        est.score_function_gradient(f, q, params, 1, 0, baseline="loo")
    with pytest.raises(ValueError, match="baseline must be"):
        est.score_function_gradient(f, q, params, 2, 0, baseline="mean")
    with pytest.raises(TypeError, match="has no rsample"):
        est.reparametrised_gradient(lambda z: z.sum(axis=-1), Bernoulli(np.zeros(3)),
                                    params, 2, 0)
    with pytest.raises(TypeError, match="list of Tensors"):
        est.reparametrised_gradient(f, q, [np.zeros(2)], 2, 0)


def test_estimate_fields_are_json_ready_as_lists():
    e = est.importance_sampling(None, StandardNormal(1, backend="numpy"),
                                DiagNormal([0.0], [0.5], backend="numpy"), 5, 0)
    json.dumps({k: np.asarray(v).tolist() for k, v in e._asdict().items()})
