"""VAE / IWAE model properties: bound ordering, gradients, the two forms of the VAE bound,
observation models and priors against SciPy, fused ops against plain Tensor forms, persistence and
bad input."""

import math

import numpy as np
import pytest
from scipy import stats
from scipy.special import logsumexp as np_logsumexp

import scratchdgm as sd
from scratchdgm.models.deep import bounds
from scratchdgm.models.deep.observation import (BernoulliObservation, GaussianObservation,
                                           StudentTObservation)
from scratchdgm.models.deep.priors import GaussianMixturePrior, StandardNormalPrior
from scratchdgm.testing import check_model_gradients
from scratchdgm.testing import strategies as S


@pytest.fixture(scope="module")
def binary_data():
    rng = np.random.default_rng(0)
    # 8x8 blobs: a few prototypes with pixel noise, binary
    protos = rng.random((4, 64)) < 0.3
    idx = rng.integers(0, 4, size=120)
    flip = rng.random((120, 64)) < 0.05
    return (protos[idx] ^ flip).astype(np.float64)


def small_model(cls=sd.VAE, **kw):
    kw.setdefault("random_state", 0)
    return cls(64, kw.pop("latent_dim", 3), kw.pop("hidden", (16,)), **kw)


# -- bounds on a model ---------------------------------------------------------------------------

def test_bounds_ordered_l1_l5_l50_on_average(binary_data):
    model = small_model(sd.IWAE, k=5)
    model.fit(binary_data, epochs=2, batch_size=20, progress=False)
    x = binary_data[:40]
    draws = {k: np.array([model.bound_samples(x, k, random_state=s) for s in range(8)])
             for k in (1, 5, 50)}
    means = {k: d.mean() for k, d in draws.items()}
    # standard error of the mean over draws and points
    se = {k: d.std() / math.sqrt(d.size) for k, d in draws.items()}
    assert means[1] + 2 * (se[1] + se[5]) < means[5]
    assert means[5] + 2 * (se[5] + se[50]) < means[50]
    ll = model.score(x, k=2000, random_state=0)
    assert means[50] <= ll + 0.05


def test_vae_bound_two_forms_agree_in_expectation(binary_data):
    model = small_model(sd.VAE, kl="analytic")
    x = binary_data[:10]
    rng = np.random.default_rng(1)
    with sd.no_grad():
        s = model.weighted_samples(x, 20000, rng)
        mc = bounds.elbo_monte_carlo(s.log_w).data
        kl = model.prior.kl(s.q)
        analytic = bounds.elbo_analytic_kl(s.log_px_given_z, kl).data
    se = s.log_w.data.std(axis=0) / math.sqrt(20000)
    assert np.all(np.abs(mc - analytic) < 5 * se + 1e-9)


def test_log_weights_are_the_densities_of_scipy(binary_data):
    model = small_model()
    x = binary_data[:6]
    rng = np.random.default_rng(2)
    with sd.no_grad():
        q = model.encode(x)
        mu, log_sigma = q.mu, q.log_sigma
    eps = np.random.default_rng(2).standard_normal((4, 6, 3))
    z = mu.data + np.exp(log_sigma.data) * eps
    s = model.weighted_samples(x, 4, rng)
    log_w, log_px = s.log_w, s.log_px_given_z
    np.testing.assert_allclose(s.z.data, z, rtol=1e-12)
    log_pz = -0.5 * np.sum(z ** 2, -1) - 1.5 * math.log(2 * math.pi)
    log_q = stats.norm(mu.data, np.exp(log_sigma.data)).logpdf(z).sum(-1)
    np.testing.assert_allclose(log_w.data, log_px.data + log_pz - log_q, rtol=1e-10)


@pytest.mark.parametrize("cls, kw", [(sd.IWAE, dict(k=4)), (sd.VAE, dict(k=1)),
                                      (sd.VAE, dict(k=2, kl="mc"))],
                         ids=["iwae-k4", "vae-analytic-kl", "vae-mc-kl"])
def test_objective_gradient_matches_finite_differences(binary_data, cls, kw):
    # every parameter, entry by entry up to 8 entries, along 4 random directions beyond; the
    # objective's noise held fixed by a fresh rng from the same seed at every evaluation
    model = small_model(cls, hidden=(5,), latent_dim=2, **kw)
    report = check_model_gradients(model, binary_data[:3], k=kw["k"], seed=3, max_elements=8)
    assert [r["name"] for r in report] == [n for n, _ in model.named_parameters()]
    assert all(r["max_ratio"] < 1 for r in report)


@pytest.mark.parametrize("likelihood, prior", [
    ("gaussian:learned", "normal"), ("gaussian:decoder", "normal"), ("gaussian:fixed", "gmm:3"),
    ("student_t", "normal"), ("bernoulli", "gmm:3")])
def test_objective_gradient_for_every_likelihood_and_prior(likelihood, prior):
    # the observation model's and the prior's own parameters (sigma, df, mixture weights,
    # means and scales) are parameters of the objective too
    model = sd.IWAE(6, 2, (4,), k=3, likelihood=likelihood, prior=prior, random_state=1,
                    backend="numpy")
    x = np.random.default_rng(2).normal(size=(3, 6))
    if likelihood == "bernoulli":
        x = (x > 0).astype(float)
    report = check_model_gradients(model, x, k=3, seed=5, max_elements=8)
    assert [r["name"] for r in report] == [n for n, _ in model.named_parameters()]


def test_objective_gradient_on_generated_batches():
    # Hypothesis draws the minibatch (1 to 3 binary rows); the numpy backend keeps it cheap
    model = sd.IWAE(64, 2, (5,), k=3, random_state=0, backend="numpy")
    check_model_gradients(model, S.batches(64, max_rows=3), k=3, max_elements=8,
                          max_examples=3)


def test_iwae_k1_objective_equals_vae_mc_objective(binary_data):
    a = small_model(sd.IWAE, k=1)
    b = small_model(sd.VAE, k=1, kl="mc")
    x = binary_data[:8]
    la = a.objective(x, 1, np.random.default_rng(4)).item()
    lb = b.objective(x, 1, np.random.default_rng(4)).item()
    assert la == pytest.approx(lb, rel=1e-12)


# -- fused ops against the plain Tensor forms ----------------------------------------------------

def test_fused_ops_agree_with_plain_forms(binary_data):
    from scratchdgm.autodiff import fused
    rng = np.random.default_rng(5)
    logits = sd.tensor(rng.normal(size=(3, 4, 64)) * 3, requires_grad=True)
    x = binary_data[:4]
    a = fused.bernoulli_log_prob(logits, x)
    b = -sd.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(axis=-1)
    np.testing.assert_allclose(a.data, b.data, rtol=1e-10)
    lw = rng.normal(size=(5, 4)) * 10
    np.testing.assert_allclose(fused.iw_logsumexp(sd.tensor(lw)).data, np_logsumexp(lw, 0),
                               rtol=1e-12)
    mu, ls = rng.normal(size=(2, 4, 3))
    z = rng.normal(size=(2, 4, 3))
    ref = stats.norm(mu, np.exp(ls)).logpdf(z).sum(-1)
    np.testing.assert_allclose(fused.diag_gaussian_log_prob(z, mu, ls).data, ref, rtol=1e-10)
    model = small_model()
    h = rng.random((4, 64))
    plain = sd.tensor(h)
    for i, layer in enumerate(model.encoder.layers):
        plain = plain @ layer.weight + layer.bias
        if i < len(model.encoder.layers) - 1:
            plain = plain.tanh()
    with sd.no_grad():
        np.testing.assert_allclose(model.encoder(sd.tensor(h)).data, plain.data, rtol=1e-10)


def test_bernoulli_log_prob_matches_distributions_module(binary_data):
    from scratchdgm import distributions
    logits = np.random.default_rng(6).normal(size=(2, 5, 64))
    ours = BernoulliObservation(64).log_prob(binary_data[:5], sd.tensor(logits)).data
    theirs = distributions.Bernoulli(sd.tensor(logits)).log_prob(binary_data[:5])
    np.testing.assert_allclose(ours, getattr(theirs, "data", theirs), rtol=1e-10)


# -- observation models and priors against SciPy --------------------------------------------------

def test_observation_log_probs_match_scipy():
    rng = np.random.default_rng(7)
    p = 5
    x = rng.normal(size=(3, p))
    xb = (rng.random((3, p)) < 0.5).astype(float)
    logits = rng.normal(size=(2, 3, p)) * 4
    ref = stats.bernoulli(1 / (1 + np.exp(-logits))).logpmf(xb).sum(-1)
    np.testing.assert_allclose(BernoulliObservation(p).log_prob(xb, sd.tensor(logits)).data, ref,
                               rtol=1e-9)
    mu = rng.normal(size=(2, 3, p))
    fixed = GaussianObservation(p, sigma="fixed", sigma_value=0.7)
    np.testing.assert_allclose(fixed.log_prob(x, sd.tensor(mu)).data,
                               stats.norm(mu, 0.7).logpdf(x).sum(-1), rtol=1e-10)
    learned = GaussianObservation(p, sigma="learned", sigma_value=1.3)
    np.testing.assert_allclose(learned.log_prob(x, sd.tensor(mu)).data,
                               stats.norm(mu, 1.3).logpdf(x).sum(-1), rtol=1e-10)
    dec = GaussianObservation(p, sigma="decoder", min_sigma=0.0)
    raw = rng.normal(size=(2, 3, p))
    sig = np.log1p(np.exp(raw))
    np.testing.assert_allclose(dec.log_prob(x, sd.tensor(np.concatenate([mu, raw], -1))).data,
                               stats.norm(mu, sig).logpdf(x).sum(-1), rtol=1e-10)
    st = StudentTObservation(p, min_scale=0.0, min_df=0.0)
    raw_s, raw_df = rng.normal(size=(2, 2, 3, p))
    s, df = np.log1p(np.exp(raw_s)), np.log1p(np.exp(raw_df))
    eta = sd.tensor(np.concatenate([mu, raw_s, raw_df], -1))
    np.testing.assert_allclose(st.log_prob(x, eta).data,
                               stats.t(df, mu, s).logpdf(x).sum(-1), rtol=1e-9)


def test_observation_samples_have_the_right_moments():
    rng = np.random.default_rng(8)
    n, p = 20000, 2
    eta = sd.tensor(np.tile(np.array([[1.0, -2.0]]), (n, 1)))
    xb = BernoulliObservation(p).distribution(eta).sample(random_state=rng)
    np.testing.assert_allclose(xb.mean(0), 1 / (1 + np.exp([-1.0, 2.0])), atol=0.02)
    g = GaussianObservation(p, sigma="fixed", sigma_value=0.5)
    xg = g.distribution(eta).sample(random_state=rng)
    np.testing.assert_allclose(xg.mean(0), [1.0, -2.0], atol=0.02)
    np.testing.assert_allclose(xg.std(0), 0.5, atol=0.02)
    st = StudentTObservation(p, min_scale=0.0, min_df=0.0)
    eta_t = sd.tensor(np.tile(np.array([[1.0, -2.0, 0.3, 0.3, 3.0, 3.0]]), (n, 1)))
    xt = st.distribution(eta_t).sample(random_state=rng)
    np.testing.assert_allclose(np.median(xt, 0), [1.0, -2.0], atol=0.03)


def test_gmm_prior_log_prob_matches_scipy_and_trains(binary_data):
    rng = np.random.default_rng(9)
    prior = GaussianMixturePrior(2, 3, rng=rng)
    prior.logits.data[:] = [0.1, -0.5, 0.7]
    prior.log_sigma.data[:] = rng.normal(size=(3, 2)) * 0.3
    z = rng.normal(size=(4, 5, 2))
    pi = np.exp(prior.logits.data) / np.exp(prior.logits.data).sum()
    covs = [np.diag(np.exp(2 * prior.log_sigma.data[c])) for c in range(3)]
    ref = np.log(sum(pi[c] * stats.multivariate_normal(prior.means.data[c], covs[c]).pdf(z)
                     for c in range(3)))
    np.testing.assert_allclose(prior.log_prob(z).data, ref, rtol=1e-10)
    assert prior.distribution().sample(7, rng).shape == (7, 2)
    model = small_model(sd.IWAE, k=5, prior="gmm:3")
    before = model.prior.means.data.copy()
    model.fit(binary_data, epochs=1, progress=False)
    assert not np.allclose(model.prior.means.data, before)  # the prior is learned
    assert np.isfinite(model.bound(binary_data[:10], 5, random_state=0))


def test_standard_prior_and_analytic_kl_rules():
    prior = StandardNormalPrior(3)
    z = np.random.default_rng(10).normal(size=(4, 3))
    np.testing.assert_allclose(prior.log_prob(z).data, stats.norm().logpdf(z).sum(-1))
    with pytest.raises(ValueError, match="kl='mc'"):
        small_model(sd.VAE, prior="gmm", kl="analytic")


@pytest.mark.parametrize("likelihood", ["gaussian:fixed", "gaussian:learned", "gaussian:decoder",
                                        "student_t"])
def test_continuous_likelihoods_train(likelihood):
    rng = np.random.default_rng(11)
    z = rng.normal(size=(200, 1))
    x = np.column_stack([np.sin(2 * z[:, 0]), z[:, 0] ** 2]) + 0.1 * rng.normal(size=(200, 2))
    model = sd.IWAE(2, 1, (16,), likelihood=likelihood, k=5, random_state=0)
    model.fit(x, epochs=6, batch_size=20, progress=False, lr=3e-3)
    h = model.history_["train_bound"]
    assert np.all(np.isfinite(h)) and h[-1] > h[0]
    assert model.sample(5, random_state=0).shape == (5, 2)


# -- API: encode, reconstruct, sample, save / load ----------------------------------------------

def test_api_shapes_and_ranges(binary_data):
    model = small_model(sd.IWAE, k=5)
    assert model.transform(binary_data).shape == (120, 3)
    rec = model.reconstruct(binary_data[:5])
    assert rec.shape == (5, 64) and rec.min() >= 0 and rec.max() <= 1
    xs, zs = model.sample_means(6, random_state=0, return_latent=True)
    assert xs.shape == (6, 64) and zs.shape == (6, 3) and 0 <= xs.min() <= xs.max() <= 1
    xb, zb = model.sample(6, random_state=0, return_latent=True)
    assert set(np.unique(xb)) <= {0.0, 1.0}
    np.testing.assert_array_equal(zb, zs)  # the same codes: only the decoding step differs
    assert 0 <= model.active_units(binary_data) <= 3
    np.testing.assert_array_equal(model.sample(4, random_state=1), model.sample(4, random_state=1))


def test_float32_model_keeps_dtype(binary_data):
    model = small_model(sd.IWAE, k=3, dtype=np.float32)
    loss = model.objective(binary_data[:4], 3, np.random.default_rng(0))
    assert loss.dtype == np.float32
    loss.backward()
    assert all(p.grad.dtype == np.float32 for p in model.parameters())


def test_save_load_roundtrip(tmp_path, binary_data):
    model = small_model(sd.IWAE, k=5, prior="gmm:2")
    model.fit(binary_data, epochs=1, progress=False)
    path = tmp_path / "m.npz"
    model.save(path)
    back = sd.IWAE.load(path)
    assert type(back) is sd.IWAE and back.config() == model.config()
    assert back.bound(binary_data[:10], 5, random_state=3) == model.bound(binary_data[:10], 5,
                                                                           random_state=3)


# -- bad input -----------------------------------------------------------------------------------

def test_bad_input_is_refused(tmp_path, binary_data):
    model = small_model()
    with pytest.raises(ValueError, match="not binary"):
        model.bound(binary_data * 0.5 + 0.25)
    bad = binary_data.copy()
    bad[3, 4] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        model.bound(bad)
    with pytest.raises(ValueError, match="input_dim = 64"):
        model.bound(binary_data[:, :10])
    with pytest.raises(ValueError, match="k must be an int >= 1"):
        model.bound(binary_data, k=0)
    with pytest.raises(ValueError, match="k must be an int >= 1"):
        model.score(binary_data, k=0)
    with pytest.raises(ValueError, match="latent_dim must be an int >= 1"):
        sd.VAE(64, 0)
    with pytest.raises(ValueError, match="k must be"):
        sd.IWAE(64, 2, k=0)
    with pytest.raises(ValueError, match="unknown likelihood"):
        sd.VAE(64, 2, likelihood="poisson")


def test_checkpoint_of_another_architecture_is_refused(tmp_path, binary_data):
    path = tmp_path / "a.npz"
    small_model(latent_dim=3).fit(binary_data, epochs=1, checkpoint=path, progress=False)
    other = small_model(latent_dim=4)
    before = {k: v.copy() for k, v in other.state_dict().items()}
    with pytest.raises(ValueError, match="different architecture"):
        other.fit(binary_data, epochs=1, checkpoint=path, resume=True, progress=False)
    for k, v in other.state_dict().items():
        np.testing.assert_array_equal(v, before[k])


def test_truncated_checkpoint_is_refused(tmp_path):
    path = tmp_path / "a.npz"
    small_model().save(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="truncated|corrupt"):
        sd.VAE.load(path)


def test_backend_override_agrees_with_numpy_reference(binary_data):
    from scratchdgm.backend import available_backends

    x = binary_data[:8]
    ref = small_model(sd.IWAE, k=5, backend="numpy")
    ref_loss = ref.objective(x, 5, np.random.default_rng(0))
    ref_loss.backward()
    for name in available_backends():
        if name in ("numpy", "cuda"):
            continue
        other = small_model(sd.IWAE, k=5, backend=name)
        loss = other.objective(x, 5, np.random.default_rng(0))
        loss.backward()
        assert loss.item() == pytest.approx(ref_loss.item(), rel=1e-10), name
        for (pn, a), (_, b) in zip(ref.named_parameters(), other.named_parameters()):
            np.testing.assert_allclose(b.grad, a.grad, rtol=1e-8, atol=1e-10, err_msg=pn)
    with pytest.raises(ValueError, match="unknown backend"):
        small_model(backend="fortran")
