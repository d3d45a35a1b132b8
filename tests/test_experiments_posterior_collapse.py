r"""Experiment 9 (posterior collapse) and what it adds to the library: the KL weight ``beta`` of
the VAE bound, a decoder of its own width (``decoder_hidden``), the KL of each latent unit, a
unit forced to collapse counted inactive; the experiment's claims on one ``--quick`` run."""

import numpy as np
import pytest

from scratchdgm import IWAE, VAE
from scratchdgm import autodiff as ad
from scratchdgm.data import load_digits_protocol
from scratchdgm.experiments import EXPERIMENTS, run_experiment
from scratchdgm.experiments import posterior_collapse as exp
from scratchdgm.models.deep import bounds, load_model


# ---------------------------------------------------------------- the KL weight
def test_beta_weighs_the_kl_term_of_both_forms_of_the_bound():
    rng = np.random.default_rng(0)
    log_px, log_w, kl = rng.normal(size=(4, 3)), rng.normal(size=(4, 3)), rng.random(3)
    np.testing.assert_allclose(bounds.elbo_analytic_kl(log_px, kl, beta=2.5).data,
                               log_px.mean(axis=0) - 2.5 * kl)
    np.testing.assert_allclose(bounds.elbo_analytic_kl(log_px, kl, beta=1).data,
                               bounds.elbo_analytic_kl(log_px, kl).data)
    # the KL part of a log-weight is log w - log p(x|z): only it is scaled
    np.testing.assert_allclose(
        bounds.elbo_monte_carlo(bounds.kl_weighted_log_weights(log_w, log_px, 0.5)).data,
        (log_px + 0.5 * (log_w - log_px)).mean(axis=0))
    np.testing.assert_allclose(bounds.kl_weighted_log_weights(log_w, log_px, 1.0).data, log_w)


def test_beta_is_checked():
    with pytest.raises(ValueError, match="beta"):
        bounds.elbo_analytic_kl(np.zeros((2, 3)), np.zeros(3), beta=-1.0)
    with pytest.raises(ValueError, match="log_px_given_z has shape"):
        bounds.kl_weighted_log_weights(np.zeros((2, 3)), np.zeros((2, 4)), 2.0)
    with pytest.raises(ValueError, match="beta must be 1"):
        IWAE(6, 2, (4,), beta=2.0)
    with pytest.raises(ValueError, match="beta"):
        VAE(6, 2, (4,), beta=-0.5)


@pytest.mark.parametrize("prior", ["normal", "gmm:3"])
def test_vae_trains_on_the_beta_weighted_bound(prior):
    x = (np.random.default_rng(0).random((5, 6)) < 0.5).astype(float)
    plain = VAE(6, 2, (4,), prior=prior, random_state=0)
    weighted = VAE(6, 2, (4,), prior=prior, beta=3.0, random_state=0)
    with ad.no_grad():
        s = plain.weighted_samples(x, 7, np.random.default_rng(1))
        if plain.prior.has_analytic_kl:
            kl = plain.prior.kl(s.q).data
        else:
            kl = (s.log_px_given_z.data - s.log_w.data).mean(axis=0)
        recon = s.log_px_given_z.data.mean(axis=0)
        np.testing.assert_allclose(weighted.batch_bound(x, 7, np.random.default_rng(1)).data,
                                   recon - 3.0 * kl, rtol=1e-12)
        np.testing.assert_allclose(plain.batch_bound(x, 7, np.random.default_rng(1)).data,
                                   recon - kl, rtol=1e-12)
    # evaluation is the model's, not the objective's: the same bound for both
    assert weighted.bound(x, 3, 0) == plain.bound(x, 3, 0)


def test_beta_and_decoder_widths_are_part_of_the_saved_config(tmp_path):
    model = VAE(6, 2, (8, 5), beta=4.0, decoder_hidden=(3,), random_state=0)
    assert model.decoder.sizes == [2, 3, 6] and model.encoder.sizes == [6, 8, 5, 4]
    assert VAE(6, 2, (8, 5)).decoder.sizes == [2, 5, 8, 6]        # default: the mirror image
    assert VAE(6, 2, (8, 5), decoder_hidden=()).decoder.sizes == [2, 6]
    model.save(tmp_path / "m.npz")
    again = load_model(tmp_path / "m.npz")
    assert again.beta == 4.0 and again.decoder_hidden == (3,)
    assert again.config() == model.config()


# ---------------------------------------------------------------- measuring collapse
@pytest.fixture(scope="module")
def trained():
    data = load_digits_protocol()
    model = VAE(64, 4, hidden=(32,), random_state=0)
    model.fit(data.x_train[:600], epochs=8, progress=False)
    return model, data.x_test_binary


def test_kl_per_dimension_adds_up_to_the_kl(trained):
    # the per-unit terms the experiment reports are the summands of the bound's closed-form KL
    model, X = trained
    per_unit = model.kl_per_dimension(X)["z"]
    with ad.no_grad():
        total = model.prior.kl(model.encode(X)).data.mean()
    assert per_unit.shape == (4,) and np.all(per_unit >= 0)
    assert per_unit.sum() == pytest.approx(total, rel=1e-10)


def test_collapse_report_needs_a_factorised_prior():
    with pytest.raises(ValueError, match="closed-form KL"):
        exp.collapse_report(VAE(6, 2, (4,), prior="gmm:2"), np.zeros((3, 6)))


def test_a_unit_forced_to_collapse_is_counted_inactive(trained):
    model, X = trained
    before = exp.collapse_report(model, X)
    u = int(np.argmax(before["kl_per_unit"]))               # the most informative unit
    assert before["activity"][u] > 0.02 and before["kl_per_unit"][u] > 0.1   # counted active
    # collapse it: q(z_u | x) = N(0, 1) = p(z_u) for every x (the encoder's mu_u and
    # log sigma_u outputs are 0), and the decoder ignores z_u
    collapsed = VAE(**{k: v for k, v in model.config().items() if k != "class"})
    collapsed.load_state_dict(model.state_dict())
    out = collapsed.encoder.layers[-1]
    for col in (u, model.latent_dim + u):
        out.weight.data[:, col] = 0.0
        out.bias.data[col] = 0.0
    collapsed.decoder.layers[0].weight.data[u, :] = 0.0
    after = exp.collapse_report(collapsed, X)
    assert after["activity"][u] == 0.0 and after["kl_per_unit"][u] == 0.0
    assert after["active_units"] == before["active_units"] - 1
    others = [v for v in range(model.latent_dim) if v != u]
    np.testing.assert_allclose(np.array(after["kl_per_unit"])[others],
                               np.array(before["kl_per_unit"])[others])


# ---------------------------------------------------------------- the experiment's claims
@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    return run_experiment(exp.NAME, tmp_path_factory.mktemp("collapse"), quick=True, seed=0)


def test_registered():
    assert EXPERIMENTS[exp.NAME] == "scratchdgm.experiments.posterior_collapse"


@pytest.mark.slow
def test_quick_run_writes_its_figure(quick_run):
    (figure,) = quick_run.figures
    assert figure.name == "posterior-collapse.png" and figure.stat().st_size > 10_000


@pytest.mark.slow
def test_units_collapse_as_the_kl_weight_grows(quick_run):
    # margins checked once over seeds 0-19 of the quick run: active units 10, 10, 6-10, 0 at
    # beta = 0.5, 1, 2, 8 (never increasing); KL 6.9-8.0, 3.1-3.7, 0.72-1.08, 0.006-0.008
    # nats, each at least 2.06 times the next
    rows = quick_run.numbers["by_beta"]
    units = [r["active_units"] for r in rows]
    kl = [r["kl"] for r in rows]
    assert all(a >= b for a, b in zip(units, units[1:]))
    assert all(a > b for a, b in zip(kl, kl[1:]))
    assert units[0] == exp.LATENT_DIM and units[-1] <= 2
