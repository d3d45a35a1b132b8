r"""The diffusion model as a hierarchical VAE (scratchdgm.models.deep.diffusion): the noising
encoder and its closed-form marginal (q(x_T | x_0) close to N(0, I) for the schedules used),
the posterior by Bayes' rule, the noise-prediction form of each ELBO term against its KL form,
the three estimates of the ELBO against each other and against an exact log-likelihood (a
Gaussian case where everything is linear), sampling, saving, and clear errors."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import scratchdgm as sd
from scratchdgm.data import pinwheel, ring_of_gaussians, two_moons
from scratchdgm.distributions import StandardNormal, kl_divergence
from scratchdgm.models.deep import load_model
from scratchdgm.models.deep.diffusion import (
    DiffusionModel,
    NoiseSchedule,
    check_betas,
    make_betas,
    time_embedding,
)
from scratchdgm.models.deep.evaluation import energy_distance
from scratchdgm.testing import strategies as S


def random_model(n_steps=20, seed=0, schedule="cosine", **kwargs):
    """A small model with every weight drawn at random (an untrained network is close to zero
    and would make the identities below hold trivially)."""
    m = DiffusionModel(2, n_steps, hidden=(16,), schedule=schedule, random_state=seed,
                       backend="numpy", **kwargs)
    rng = np.random.default_rng(seed + 100)
    for p in m.parameters():
        p.data[...] = 0.5 * rng.standard_normal(p.shape)
    return m


class GaussianDenoiser:
    r"""The exact noise prediction for data :math:`x_0 \sim \mathcal N(m, s^2 I)`:
    :math:`\mathbb E[\varepsilon \mid x_t] = \sqrt{1 - \bar\alpha_t}\,(x_t - \sqrt{\bar\alpha_t}
    m) / (\bar\alpha_t s^2 + 1 - \bar\alpha_t)`. Plugged into a model, every step of the decoder
    is linear-Gaussian, so :math:`p_\theta(x_0)` is a Gaussian known in closed form
    (:meth:`marginal`): an exact log-likelihood to hold the bounds and the sampler to."""

    def __init__(self, model, mean, s):
        self.schedule, self.mean, self.s = model.schedule, np.asarray(mean, float), float(s)

    def _parts(self, t):
        ab = self.schedule.alpha_bars[np.asarray(t) - 1]
        return ab, ab * self.s ** 2 + 1.0 - ab

    def __call__(self, x_t, t):
        t = np.broadcast_to(np.asarray(t), (len(x_t),))
        ab, v = (a[:, None] for a in self._parts(t))
        return sd.tensor(np.sqrt(1 - ab) * (x_t - np.sqrt(ab) * self.mean) / v)

    def marginal(self):
        """Mean and variance (per coordinate) of p_theta(x_0)."""
        sch = self.schedule
        M, V = np.zeros_like(self.mean), 1.0
        for t in range(sch.n_steps, 0, -1):
            ab, v = self._parts(t)
            c = sch.betas[t - 1] / np.sqrt(1 - ab) * np.sqrt(1 - ab) / v
            a = 1 / np.sqrt(sch.alphas[t - 1])
            A, B = a * (1 - c), a * c * np.sqrt(ab) * self.mean
            M, V = A * M + B, A * A * V + sch.sigma2[t - 1]
        return M, V


# ------------------------------------------------------------------ the schedule


@pytest.mark.parametrize("schedule, n_steps, alpha_bar_T", [("linear", 100, 1e-4),
                                                           ("linear", 1000, 1e-4),
                                                           ("cosine", 20, 1e-5),
                                                           ("cosine", 100, 1e-5)])
def test_named_schedules(schedule, n_steps, alpha_bar_T):
    b = make_betas(schedule, n_steps)
    assert b.shape == (n_steps,) and np.all((b > 0) & (b < 1))
    assert np.prod(1 - b) < alpha_bar_T
    if schedule == "linear":
        assert math.isclose(b[0], 0.1 / n_steps) and math.isclose(b[-1], 20.0 / n_steps)
        if n_steps == 1000:  # Ho et al.'s own numbers
            assert math.isclose(b[0], 1e-4) and math.isclose(b[-1], 0.02)
    else:  # Nichol & Dhariwal's alpha-bar
        f = np.cos((np.arange(1, n_steps) / n_steps + 0.008) / 1.008 * np.pi / 2) ** 2
        np.testing.assert_allclose(np.cumprod(1 - b)[:-1], f / np.cos(0.008 / 1.008 * np.pi / 2)
                                   ** 2, rtol=1e-12)


@pytest.mark.parametrize("bad", [0.0, 1.0, -0.1, 1.5, float("nan"), float("inf")])
def test_beta_outside_the_open_unit_interval_is_refused(bad):
    betas = [0.01, 0.02, bad, 0.03]
    with pytest.raises(ValueError, match=r"strictly between 0 and 1; beta_3 = "):
        check_betas(betas)
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        DiffusionModel(2, 4, schedule=betas, backend="numpy")
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        NoiseSchedule(betas)


@pytest.mark.parametrize("kwargs, message", [
    (dict(n_steps=20, schedule="linear"), r"needs T > 20"),
    (dict(schedule="quadratic"), "unknown schedule 'quadratic'"),
    (dict(n_steps=3, schedule=[0.1, 0.2]), "2 betas given for n_steps = 3"),
    (dict(n_steps=2, schedule=[[0.1, 0.2]]), "non-empty 1-D sequence"),
    (dict(reverse_variance="learned"), "reverse_variance must be one of"),
    (dict(loss="mse"), "loss must be one of"),
    (dict(n_time_features=7), "n_time_features must be even"),
    (dict(activation="gelu"), "activation must be one of"),
])
def test_bad_configurations_are_refused(kwargs, message):
    args = dict(input_dim=2, n_steps=30, backend="numpy")
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        DiffusionModel(**args)


def test_steps_outside_1_to_T_are_refused():
    m = random_model(10)
    x = np.zeros((3, 2))
    for t in (0, 11, np.array([1, 2, 12])):
        with pytest.raises(ValueError, match=r"in 1\.\.10"):
            m.epsilon(x, t)
    with pytest.raises(ValueError, match="needs t >= 2"):
        m.schedule.q_posterior(x, x, 1)


def test_steps_and_points_of_different_lengths_are_refused():
    m = random_model(10)
    x = np.zeros((3, 2))
    t = np.array([1, 2])
    for call in (lambda: m.schedule.q_marginal(x, t), lambda: m.schedule.q_step(x, t),
                 lambda: m.schedule.perturb(x, t, x), lambda: m.epsilon(x, t),
                 lambda: m.schedule.q_posterior(x, x, t + 1),
                 lambda: m.schedule.mean_from_noise(x, x, t)):
        with pytest.raises(ValueError, match=r"t holds 2 steps but an argument has shape "
                                             r"\(3, 2\)"):
            call()
    with pytest.raises(ValueError, match="1-D array of ints"):
        m.schedule.q_marginal(x, np.ones((3, 1), dtype=int))
    with pytest.raises(ValueError, match=r"x_t has 3 columns"):
        m.epsilon(np.zeros((2, 3)), 1)


# ------------------------------------------------------------------ the encoder


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
def test_closed_form_marginal_is_the_composition_of_the_steps(schedule):
    # Gaussian steps compose exactly: propagate the moments of q(x_t | x_0) through q_step
    sch = NoiseSchedule(make_betas(schedule, 100), backend="numpy")
    x0 = np.array([[1.5, -2.0], [0.0, 3.0]])
    mean, var = x0, np.zeros_like(x0)
    for t in range(1, 101):
        step = sch.q_step(mean, t)              # its mean is linear in x_{t-1}
        a = np.sqrt(sch.alphas[t - 1])
        mean, var = step.mean.data, a * a * var + step.variance.data
        q = sch.q_marginal(x0, t)
        np.testing.assert_allclose(mean, q.mean.data, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(var, q.variance.data, rtol=1e-12)


def test_closed_form_marginal_matches_simulated_chains():
    # 4000 chains from each of 3 starting points, run step by step through q(x_t | x_{t-1});
    # empirical mean and covariance at several t against q(x_t | x_0) of Ho et al. eq. 4
    sch = NoiseSchedule(make_betas("linear", 100), backend="numpy")
    rng = np.random.default_rng(0)
    x0 = np.array([[2.0, -1.0], [0.0, 0.0], [-3.0, 4.0]])
    n = 4000
    x = np.repeat(x0[:, None, :], n, axis=1)                    # (3, n, 2)
    for t in range(1, 101):
        x = sch.q_step(x, t).sample(random_state=rng)
        if t in (1, 10, 40, 100):
            q = sch.q_marginal(x0, t)
            var = q.variance.data[0, 0]
            for i in range(3):
                se_mean = math.sqrt(var / n)
                np.testing.assert_array_less(np.abs(x[i].mean(axis=0) - q.mean.data[i]),
                                             5 * se_mean)
                cov = np.cov(x[i].T)
                se_var = var * math.sqrt(2 / (n - 1))          # Gaussian: sd of a variance
                np.testing.assert_array_less(np.abs(np.diag(cov) - var), 5 * se_var)
                assert abs(cov[0, 1]) < 5 * var / math.sqrt(n)
    # measured once over seeds 0-19: the largest deviation was 3.2 standard errors


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
@pytest.mark.parametrize("dataset", [two_moons, pinwheel, ring_of_gaussians])
def test_q_T_given_x0_is_close_to_the_standard_normal(schedule, dataset):
    x0, _ = dataset(2000, 0)
    sch = NoiseSchedule(make_betas(schedule, 100), backend="numpy")
    q_T = sch.q_marginal(x0, 100)
    # the mean is sqrt(alpha_bar_T) x_0: at most 0.03 for these data (|x_0| < 6)
    assert np.abs(q_T.mean.data).max() < 0.03
    np.testing.assert_allclose(q_T.variance.data, 1.0, atol=1e-4)
    kl = kl_divergence(q_T, StandardNormal(2, backend="numpy")).data
    assert kl.max() < 1e-3
    # and the marginal over the data, E_x0 q(x_T | x_0): mean 0, covariance I
    x_T = q_T.sample(random_state=1)
    assert np.abs(x_T.mean(axis=0)).max() < 5 / math.sqrt(len(x0))
    np.testing.assert_allclose(np.cov(x_T.T), np.eye(2), atol=5 * math.sqrt(2 / len(x0)))


@given(data=st.data(), t=st.integers(2, 30))
def test_posterior_is_bayes_rule(data, t):
    # q(x_{t-1} | x_t, x_0) = q(x_t | x_{t-1}) q(x_{t-1} | x_0) / q(x_t | x_0)
    sch = NoiseSchedule(make_betas("cosine", 30), backend="numpy")
    x0, x_prev, x_t = (data.draw(S.arrays((4, 2), -3, 3)) for _ in range(3))
    lhs = sch.q_posterior(x_t, x0, t).log_prob(x_prev).data
    rhs = (sch.q_step(x_prev, t).log_prob(x_t).data + sch.q_marginal(x0, t - 1).log_prob(
        x_prev).data - sch.q_marginal(x0, t).log_prob(x_t).data)
    np.testing.assert_allclose(lhs, rhs, rtol=1e-9, atol=1e-9)


# ------------------------------------------------------------------ the ELBO


@pytest.mark.parametrize("reverse_variance", ["posterior", "beta"])
@given(data=st.data(), t=st.integers(1, 20))
def test_noise_prediction_form_equals_each_kl_term(reverse_variance, data, t):
    # Ho et al. eq. 12: L_{t-1} = lambda_t ||eps - eps_theta||^2 + C_t, for one draw of x_t
    m = random_model(20, reverse_variance=reverse_variance)
    sch = m.schedule
    x0 = data.draw(S.arrays((5, 2), -3, 3))
    eps = data.draw(S.arrays((5, 2), -3, 3))
    x_t = sch.perturb(x0, t, eps)
    err = ((m.epsilon(x_t, t).data - eps) ** 2).sum(axis=1)
    noise_form = sch.elbo_weight(t) * err + sch.elbo_constant(t, 2)
    if t == 1:
        kl_form = -m.reverse(x_t, t).log_prob(x0).data              # L_0
    else:
        kl_form = kl_divergence(sch.q_posterior(x_t, x0, t), m.reverse(x_t, t)).data
    np.testing.assert_allclose(noise_form, kl_form, rtol=1e-9, atol=1e-9)


@pytest.mark.slow
def test_three_estimates_of_the_elbo_agree():
    # the training objective (one random step per point), the sum of the KL terms, and the mean
    # log-weight of whole chains are three unbiased estimates of the same -ELBO
    m = random_model(25, seed=3, schedule="linear")
    x, _ = two_moons(100, 0)
    rng = np.random.default_rng(0)
    # 20 independent estimates of the mean ELBO from the terms (one draw of x_t per term)
    terms = np.array([-m.elbo_terms(x, k=1, random_state=r).sum(axis=1).mean()
                      for r in range(20)])
    objective = -np.array([m.objective(x, 1, rng).data for _ in range(400)])
    log_w = m.log_weights(x, 200, rng).data.mean(axis=1)              # 200 chains' means

    def mean_se(a):
        return a.mean(), a.std(ddof=1) / math.sqrt(len(a))
    (e, se_e), (o, se_o), (w, se_w) = mean_se(terms), mean_se(objective), mean_se(log_w)
    # measured once over seeds 0-19 of all the draws: at most 1.7 (objective) and 2.9
    # (log-weights) combined standard errors apart
    assert abs(o - e) < 5 * math.hypot(se_o, se_e), (o, e, se_o, se_e)
    assert abs(w - e) < 5 * math.hypot(se_w, se_e), (w, e, se_w, se_e)
    # and the per-point ELBO of the terms is score_samples
    np.testing.assert_allclose(m.score_samples(x, k=2, random_state=1),
                               -m.elbo_terms(x, k=2, random_state=1).sum(axis=1))


@pytest.mark.slow
@pytest.mark.parametrize("reverse_variance", ["posterior", "beta"])
def test_bounds_against_an_exact_log_likelihood(reverse_variance):
    # Gaussian data and the exact denoiser: p_theta(x_0) is a known Gaussian. The bounds lie
    # below it, L_K climbs to it as K grows (Burda et al. 2016, Theorem 1), and the samples
    # follow it.
    m = DiffusionModel(2, 25, schedule="cosine", reverse_variance=reverse_variance,
                       backend="numpy")
    mean, s = np.array([1.0, -2.0]), 0.3
    denoiser = GaussianDenoiser(m, mean, s)
    m.epsilon = denoiser
    M, V = denoiser.marginal()
    x = np.random.default_rng(0).normal(mean, s, size=(200, 2))
    exact = (-0.5 * (x - M) ** 2 / V - 0.5 * np.log(2 * np.pi * V)).sum(axis=1).mean()
    elbo = m.score(x, k=8, random_state=0)
    L = {k: m.bound(x, k, random_state=k) for k in (1, 300)}
    # measured once over seeds 0-19 (data and draws): exact - ELBO in [1.06, 1.29] nats with
    # the posterior variance, [0.05, 0.16] with beta; exact - L_1 in [0.99, 1.51] and
    # [0.09, 0.17]; exact - L_300 in [-0.002, 0.017] and [-0.004, 0.004]
    if reverse_variance == "posterior":
        assert exact - elbo > 0.5
    assert L[1] < L[300] - 0.04
    assert abs(L[300] - exact) < 0.04, (L, exact)
    samples = m.sample(4000, random_state=1)
    # the same 20 seeds: at most 3.0 standard errors from M and V
    np.testing.assert_allclose(samples.mean(axis=0), M, atol=5 * np.sqrt(V / 4000))
    np.testing.assert_allclose(samples.var(axis=0), V, rtol=5 * math.sqrt(2 / 4000))


# ------------------------------------------------------------------ sampling and the rest


def test_sampling_shapes_and_reproducibility():
    m = random_model(10)
    x, traj = m.sample(50, random_state=0, return_trajectory=True)
    assert x.shape == (50, 2) and traj.shape == (11, 50, 2)
    np.testing.assert_array_equal(traj[0], x)
    np.testing.assert_array_equal(m.sample(7, random_state=3), m.sample(7, random_state=3))


def test_time_embedding_has_no_aliasing_and_is_bounded():
    f = time_embedding(np.arange(1, 101), 100, 16)
    assert f.shape == (100, 16) and np.abs(f).max() <= 1.0
    assert len({tuple(np.round(r, 12)) for r in f}) == 100                 # steps distinguishable


def test_save_load_round_trip_with_a_custom_schedule(tmp_path):
    betas = list(np.linspace(0.05, 0.5, 12))
    m = DiffusionModel(2, 12, hidden=(8,), schedule=betas, backend="numpy", random_state=1)
    x, _ = two_moons(200, 0)
    m.fit(x, epochs=1, batch_size=50, progress=False, checkpoint=tmp_path / "d.npz")
    with sd.use_backend("numpy"):
        again = load_model(tmp_path / "d.npz")
        assert isinstance(again, DiffusionModel) and again.config() == m.config()
        np.testing.assert_allclose(again.schedule.betas, betas, rtol=0, atol=0)
        np.testing.assert_array_equal(again.sample(5, random_state=0), m.sample(5, random_state=0))


def test_float32_stays_float32():
    m = DiffusionModel(2, 10, hidden=(8,), schedule="cosine", dtype=np.float32,
                       backend="numpy")
    assert m.sample(3, random_state=0).dtype == np.float32
    loss = m.objective(np.zeros((4, 2), dtype=np.float32), 1, np.random.default_rng(0))
    assert loss.dtype == np.float32


def test_simple_loss_is_the_unweighted_noise_error():
    m = random_model(20, loss="simple")
    x = np.random.default_rng(0).standard_normal((6, 2))
    rng = np.random.default_rng(5)
    value = m.objective(x, 2, rng).data
    rng = np.random.default_rng(5)  # the same draws, by hand
    x0 = np.tile(x, (2, 1))
    t = rng.integers(1, 21, size=12)
    eps = rng.standard_normal(x0.shape)
    err = ((m.epsilon(m.schedule.perturb(x0, t, eps), t).data - eps) ** 2).sum(axis=1)
    np.testing.assert_allclose(value, err.mean(), rtol=1e-12)


def test_bad_data_is_refused_clearly():
    m = random_model(10)
    with pytest.raises(ValueError, match="has 3 columns but the model was built with input_dim"):
        m.score_samples(np.zeros((4, 3)))
    with pytest.raises(ValueError, match="NaN or inf"):
        m.fit(np.array([[0.0, np.inf]]), epochs=1, progress=False)


# ------------------------------------------------------------------ the two-sample statistic


def test_energy_distance_against_scipy_in_one_dimension():
    from scipy.stats import energy_distance as scipy_ed
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(40, 1)), rng.normal(0.5, 2.0, size=(30, 1))
    # scipy's is the square root of the V-statistic (the zero diagonal included in the means)
    ours = energy_distance(x, y)
    from scipy.spatial.distance import cdist
    v = ours + cdist(x, x).sum() / (40 * 39) / 40 + cdist(y, y).sum() / (30 * 29) / 30
    assert math.isclose(math.sqrt(v), scipy_ed(x[:, 0], y[:, 0]), rel_tol=1e-12)


def test_energy_distance_tells_distributions_apart():
    a, b = two_moons(800, 1)[0], two_moons(800, 2)[0]
    shifted = b + np.array([0.5, 0.0])
    same, moved = energy_distance(a, b), energy_distance(a, shifted)
    assert abs(same) < 0.01 and moved > 0.05, (same, moved)
    with pytest.raises(ValueError, match="same number of columns"):
        energy_distance(a, a[:, :1])
    with pytest.raises(ValueError, match="at least 2 rows"):
        energy_distance(a, a[:1])
