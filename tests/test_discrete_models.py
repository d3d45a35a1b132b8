r"""The categorical VAE and the GMVAE (scratchdgm.models.deep.discrete): their bounds against
exact values (enumeration, Bayes' rule, quadrature over a 1-D code), their importance weights
against the exact likelihood, the two estimators of the expectation over c, training through
``training.fit`` with the temperature hook and exact resume, persistence, the evaluator protocol,
and clear errors for bad input."""

import math

import numpy as np
import pytest
from scipy.special import log_softmax, logsumexp

from scratchdgm.distributions import DiagNormal, kl_divergence
from scratchdgm.models.deep import load_model
from scratchdgm.models.deep.discrete import GMVAE, CategoricalVAE
from scratchdgm.models.deep.evaluation import cluster_purity, contingency_table

P = 6


def _binary(n, p=P, seed=0):
    return (np.random.default_rng(seed).random((n, p)) < 0.5).astype(float)


def _clustered(n=150, p=16, k=3, flip=0.1, seed=0):
    """Binary data from k prototype images with each pixel flipped with probability ``flip``:
    a mixture of Bernoullis with well-separated components, and its labels."""
    rng = np.random.default_rng(seed)
    protos = (rng.random((k, p)) < 0.5).astype(float)
    labels = rng.integers(0, k, size=n)
    x = np.abs(protos[labels] - (rng.random((n, p)) < flip))
    return x, labels


def _bound(model, x, k=1, seed=0):
    return model.batch_bound(x, k, np.random.default_rng(seed)).data


# ------------------------------------------------------------------ categorical VAE: exact


def test_categorical_vae_likelihood_is_the_mixture_of_bernoullis():
    model = CategoricalVAE(P, n_categories=3, hidden=(8,), random_state=1)
    x = _binary(10)
    probs = 1.0 / (1.0 + np.exp(-model.decode(np.eye(3)).data))          # (K, p)
    per_c = (x[:, None, :] * np.log(probs) + (1 - x[:, None, :]) * np.log1p(-probs)).sum(-1)
    np.testing.assert_allclose(model.score_samples(x), logsumexp(per_c, axis=1) - math.log(3),
                               rtol=1e-12)
    np.testing.assert_allclose(model.posterior(x), np.exp(log_softmax(per_c, axis=1)),
                               rtol=1e-10)


def test_enumeration_bound_gap_is_the_kl_to_the_exact_posterior():
    # log p(x) - L(x) = KL(q(c|x) || p(c|x)), exactly: [Isachenko-L4, "ELBO derivation 2"]
    model = CategoricalVAE(P, n_categories=4, hidden=(8,), random_state=2)
    x = _binary(12, seed=1)
    q, post = model.predict_proba(x), model.posterior(x)
    gap = (q * (np.log(q) - np.log(post))).sum(axis=1)
    np.testing.assert_allclose(_bound(model, x), model.score_samples(x) - gap, rtol=1e-10)
    # and the KL part is -H(q) + log K
    np.testing.assert_allclose(model.kl_c(x), (q * np.log(q)).sum(1) + math.log(4), rtol=1e-10)


def test_categorical_log_weights_are_unbiased():
    # E[w] = p(x) and E[log w] = L(x) for c ~ q(c|x). Margin: over seeds 0..19 the largest
    # deviation was 2.4 standard errors; we allow 5.
    model = CategoricalVAE(P, n_categories=3, hidden=(8,), random_state=3)
    x = _binary(4, seed=2)
    log_w = model.log_weights(x, 20000, np.random.default_rng(0)).data      # (k, B)
    w = np.exp(log_w - model.score_samples(x))                              # E = 1
    assert np.all(np.abs(w.mean(0) - 1) < 5 * w.std(0) / math.sqrt(len(w)))
    elbo = _bound(model, x)
    assert np.all(np.abs(log_w.mean(0) - elbo) < 5 * log_w.std(0) / math.sqrt(len(log_w)) + 1e-9)


def test_gumbel_bound_approaches_the_enumeration_bound_as_the_temperature_falls():
    model = CategoricalVAE(P, n_categories=3, hidden=(8,), random_state=4)
    x = _binary(6, seed=3)
    exact = _bound(model, x)
    model.estimator = "gumbel"
    gaps = {}
    for tau in (0.02, 1.0):
        model.current_temperature = tau
        gaps[tau] = np.abs(_bound(model, x, k=20000, seed=5) - exact).max()
    # at tau = 0.02 the relaxed samples are one-hot to about 1e-10: only Monte Carlo noise is
    # left (over seeds 0..19 at most 0.006 nats); at tau = 1 the bias dominates (at least
    # 0.045 nats over the same seeds)
    assert gaps[0.02] < 0.03, gaps
    assert gaps[1.0] > 3 * gaps[0.02], gaps


# ------------------------------------------------------------------ GMVAE: quadrature in d = 1


def _gmvae_1d(seed=0, **kw):
    return GMVAE(4, n_categories=2, latent_dim=1, hidden=(6,), random_state=seed, **kw)


def _exact_gmvae_quantities(model, x, grid=np.linspace(-12, 12, 6001)):
    """log p(x) and the ELBO of a GMVAE with d = 1 by quadrature over z (trapezoid on a grid)."""
    z = grid[:, None]
    log_px_z = model.observation.log_prob(x, model.decode(z).data[:, None, :]).data   # (G, B)
    mu, ls = model.prior_mu.data[:, 0], model.prior_log_sigma.data[:, 0]
    log_pz_c = (-0.5 * ((grid[:, None] - mu) / np.exp(ls)) ** 2 - ls
                - 0.5 * math.log(2 * math.pi))                                       # (G, K)
    log_pz = logsumexp(log_pz_c, axis=1) - math.log(2)
    from scipy.integrate import trapezoid
    log_px = np.log(trapezoid(np.exp(log_px_z + log_pz[:, None]), grid, axis=0))
    # ELBO = sum_c q(c|x) int q(z|x,c) [log p(x|z) + log p(z|c) - log q(z|x,c)] dz - KL_c
    q_c = model.predict_proba(x)                                                     # (B, K)
    q_z = model.encode_z(x, np.eye(2)[:, None, :])                                   # (K, B)
    qm, qs = q_z.mu.data[..., 0], q_z.log_sigma.data[..., 0]
    log_q = (-0.5 * ((grid[:, None, None] - qm) / np.exp(qs)) ** 2 - qs
             - 0.5 * math.log(2 * math.pi))                                          # (G, K, B)
    inner = log_px_z[:, None, :] + log_pz_c[:, :, None] - log_q
    ell = trapezoid(np.exp(log_q) * inner, grid, axis=0)                             # (K, B)
    elbo = (q_c.T * ell).sum(0) - model.kl_c(x)
    return log_px, elbo


def test_gmvae_importance_weights_recover_the_likelihood_by_quadrature():
    model = _gmvae_1d(seed=5)
    x = _binary(5, p=4, seed=4)
    log_px, _ = _exact_gmvae_quantities(model, x)
    est = model.score_samples(x, k=20000, random_state=0)
    # over seeds 0..19 of the estimate the largest error was 0.030 nats (an untrained encoder
    # is a poor proposal); a wrong mixture weight would be off by log 2 = 0.69
    np.testing.assert_allclose(est, log_px, atol=0.08)


def test_gmvae_bounds_are_the_elbo_by_quadrature():
    model = _gmvae_1d(seed=6)
    x = _binary(5, p=4, seed=5)
    log_px, elbo = _exact_gmvae_quantities(model, x)
    assert np.all(elbo < log_px)
    # enumeration over c, k draws of z per category: an unbiased estimate of the ELBO
    # (over seeds 0..19 the largest error was 0.016 nats)
    np.testing.assert_allclose(_bound(model, x, k=20000), elbo, atol=0.04)
    # the relaxed bound at a low temperature: the same value up to Monte Carlo noise (over
    # seeds 0..19 at most 0.034 nats)
    model.estimator, model.current_temperature = "gumbel", 0.02
    np.testing.assert_allclose(_bound(model, x, k=20000), elbo, atol=0.08)


def test_gmvae_kl_per_dimension_adds_up_to_the_kl_of_the_bound():
    model = GMVAE(P, n_categories=3, latent_dim=2, hidden=(8,), random_state=7)
    x = _binary(9, seed=6)
    kls = model.kl_per_dimension(x)
    assert set(kls) == {"c", "z"} and kls["c"].shape == (1,) and kls["z"].shape == (2,)
    q_c = model.predict_proba(x)
    q_z = model.encode_z(x, np.eye(3)[:, None, :])
    full = kl_divergence(q_z, DiagNormal(model.prior_mu.data[:, None, :],
                                         model.prior_log_sigma.data[:, None, :])).data
    assert kls["z"].sum() == pytest.approx((q_c.T * full).sum(0).mean(), rel=1e-10)
    assert kls["c"][0] == pytest.approx(model.kl_c(x).mean(), rel=1e-12)
    means = model.posterior_means(x)
    np.testing.assert_allclose(means["z"], np.einsum("nk,knd->nd", q_c, q_z.mu.data))
    assert means["c"].shape == (9, 3) and model.transform(x).shape == (9, 2)


# ------------------------------------------------------------------ training


@pytest.mark.parametrize("estimator", ["enumerate", "gumbel"])
def test_categorical_vae_finds_the_clusters_of_a_mixture_of_bernoullis(estimator):
    # three prototypes, 10% of pixels flipped: the model is a mixture of Bernoullis, and any
    # sensible fit separates them. Margin: over seeds 0..19 the purity was never below 0.99
    # for these settings; we ask for 0.9.
    x, labels = _clustered()
    model = CategoricalVAE(16, n_categories=3, hidden=(16,), estimator=estimator,
                           random_state=0)
    model.fit(x, epochs=25, batch_size=10, lr=3e-3, progress=False, random_state=0)
    assert cluster_purity(model.predict(x), labels) > 0.9
    assert model.history_["train_bound"][-1] > model.history_["train_bound"][0]


@pytest.mark.parametrize("estimator", ["enumerate", "gumbel"])
def test_gmvae_training_raises_the_bound(estimator):
    x, _ = _clustered(n=60)
    model = GMVAE(16, n_categories=3, latent_dim=2, hidden=(16,), estimator=estimator,
                  random_state=0)
    before = model.bound(x, k=20, random_state=0)
    model.fit(x, epochs=8, batch_size=10, lr=3e-3, progress=False, random_state=0)
    assert model.bound(x, k=20, random_state=0) > before + 1.0


def test_temperature_schedule_is_recorded_and_resumes_exactly(tmp_path):
    x, _ = _clustered(n=40)
    kw = dict(n_categories=3, latent_dim=2, hidden=(8,), estimator="gumbel", temperature=2.0,
              min_temperature=0.5, anneal_rate=0.7)
    model = GMVAE(16, random_state=0, **kw)
    assert [model.temperature_at(e) for e in (1, 2, 3)] == pytest.approx(
        [2.0, 2.0 * math.exp(-0.7), 0.5])
    model.fit(x, epochs=3, progress=False, random_state=1)
    assert model.history_["temperature"] == pytest.approx([2.0, 2.0 * math.exp(-0.7), 0.5])
    ckpt = tmp_path / "ckpt.npz"
    half = GMVAE(16, random_state=0, **kw)
    half.fit(x, epochs=2, progress=False, random_state=1, checkpoint=ckpt)
    resumed = GMVAE(16, random_state=0, **kw)
    resumed.fit(x, epochs=3, progress=False, random_state=1, checkpoint=ckpt, resume=True)
    for (name, a), (_, b) in zip(model.state_dict().items(), resumed.state_dict().items()):
        np.testing.assert_array_equal(a, b, err_msg=name)
    assert resumed.history_["temperature"] == model.history_["temperature"]


@pytest.mark.parametrize("cls", [CategoricalVAE, GMVAE])
def test_save_and_load_round_trip(cls, tmp_path):
    model = cls(P, n_categories=3, hidden=(8,), estimator="gumbel", anneal_rate=0.1,
                random_state=3)
    x = _binary(7, seed=8)
    path = tmp_path / "m.npz"
    model.save(path)
    back = load_model(path)
    assert type(back) is cls and back.config() == model.config()
    np.testing.assert_array_equal(back.predict_proba(x), model.predict_proba(x))
    np.testing.assert_allclose(back.score_samples(x, k=50, random_state=0),
                               model.score_samples(x, k=50, random_state=0))


def test_sampling_shapes_and_float32():
    model = GMVAE(P, n_categories=3, latent_dim=2, hidden=(8,), dtype=np.float32)
    x, latents = model.sample(5, random_state=0, return_latent=True)
    assert x.shape == (5, P) and x.dtype == np.float32 and set(np.unique(x)) <= {0.0, 1.0}
    assert latents["c"].shape == (5,) and latents["z"].shape == (5, 2)
    assert model.component_means(4, random_state=0).shape == (3, 4, P)
    assert model.batch_bound(_binary(3), 2, np.random.default_rng(0)).dtype == np.float32
    cat = CategoricalVAE(P, n_categories=3, hidden=(8,))
    means = cat.component_means(2, random_state=0)
    np.testing.assert_array_equal(means[:, 0], means[:, 1])   # the mean given c is one image
    np.testing.assert_array_equal(cat.sample_means(4, random_state=1),
                                  cat.sample_means(4, random_state=1))


# ------------------------------------------------------------------ clusters


def test_purity_and_contingency_table():
    clusters = np.array([0, 0, 0, 1, 1, 2])
    labels = np.array([5, 5, 3, 3, 3, 1])
    table = contingency_table(clusters, labels)
    assert table.shape == (3, 6) and table[0, 5] == 2 and table.sum() == 6
    assert cluster_purity(clusters, labels) == pytest.approx(5 / 6)
    assert cluster_purity(labels, labels) == 1.0
    with pytest.raises(ValueError, match="same length"):
        cluster_purity(clusters, labels[:-1])
    with pytest.raises(ValueError, match="non-negative integers"):
        cluster_purity(clusters - 1, labels)


# ------------------------------------------------------------------ bad input


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(n_categories=1), ValueError, "n_categories must be an int >= 2"),
    (dict(n_categories=0), ValueError, "n_categories must be an int >= 2"),
    (dict(n_categories=2.0), TypeError, "n_categories must be an int"),
    (dict(temperature=0.0), ValueError, "temperature must be a finite float > 0"),
    (dict(temperature=-1.0), ValueError, "temperature must be a finite float > 0"),
    (dict(min_temperature=0.0), ValueError, "min_temperature must be a finite float > 0"),
    (dict(temperature=0.4), ValueError, "min_temperature .* must be <= temperature"),
    (dict(anneal_rate=-0.1), ValueError, "anneal_rate must be finite"),
    (dict(estimator="reinforce"), ValueError, "estimator must be one of"),
    (dict(k=0), ValueError, "k must be an int >= 1"),
])
@pytest.mark.parametrize("cls", [CategoricalVAE, GMVAE])
def test_bad_settings_are_rejected(cls, kwargs, error, message):
    with pytest.raises(error, match=message):
        cls(P, **kwargs)


def test_bad_data_is_rejected():
    model = GMVAE(P, n_categories=3, latent_dim=2, hidden=(8,))
    with pytest.raises(ValueError, match="has 5 columns but the model was built with "
                                         "input_dim = 6"):
        model.predict(np.zeros((2, 5)))
    with pytest.raises(ValueError, match="not binary"):
        model.score_samples(np.full((2, P), 0.5), k=2)
    with pytest.raises(ValueError, match="latent_dim must be an int >= 1"):
        GMVAE(P, latent_dim=0)
