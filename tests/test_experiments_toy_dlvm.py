r"""Experiment 6 (the lecture's 1-D toy DLVM): the quadrature of a fitted model's marginal and
the true decoder's importance-sampled estimate, each against an exact answer; the experiment's
claims on one ``--quick`` run."""

import numpy as np
import pytest

from scratchdgm import PPCA
from scratchdgm.data import toy_dlvm_log_likelihood, toy_dlvm_sample
from scratchdgm.experiments import EXPERIMENTS, run_experiment
from scratchdgm.experiments import toy_dlvm as exp
from scratchdgm.experiments.shallow_to_deep import linear_vae


def test_quadrature_of_a_model_is_its_exact_marginal():
    # a VAE with d = 1 and an affine decoder is PPCA: its marginal is Gaussian in closed form
    rng = np.random.default_rng(0)
    X = rng.standard_normal((400, 1)) @ [[2.0, -1.0, 0.5]] + 0.3 * rng.standard_normal((400, 3))
    ppca = PPCA(1).fit(X)
    model = linear_vae(3, 1)
    (dec,) = model.decoder.layers
    dec.weight.data[:] = ppca.components_
    dec.bias.data[:] = ppca.mean_
    model.observation.log_sigma.data[:] = 0.5 * np.log(ppca.noise_variance_)
    np.testing.assert_allclose(exp.quadrature_log_likelihood(model, X[:25]),
                               ppca.score_samples(X[:25]), rtol=1e-9)


def test_quadrature_needs_one_latent_dimension():
    with pytest.raises(ValueError, match="latent_dim = 1"):
        exp.quadrature_log_likelihood(linear_vae(3, 2), np.zeros((2, 3)))


def test_true_decoder_estimate_converges_to_the_quadrature():
    X, _ = toy_dlvm_sample(40, 3)
    exact = toy_dlvm_log_likelihood(X)
    rng = np.random.default_rng(0)
    err = {k: np.abs(exp.true_decoder_is_log_likelihood(X, k, rng) - exact).mean()
           for k in (10, 30_000)}
    # measured over seeds 0-19 of the data: mean error 1.2-37 nats at K = 10, 0.018-0.053 at
    # K = 3e4
    assert err[10] > 0.5
    assert err[30_000] < 0.15


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    return run_experiment(exp.NAME, tmp_path_factory.mktemp("toy"), quick=True, seed=0)


def test_registered():
    assert EXPERIMENTS[exp.NAME] == "scratchdgm.experiments.toy_dlvm"


@pytest.mark.slow
def test_quick_run_writes_its_figure(quick_run):
    (figure,) = quick_run.figures
    assert figure.name == "toy-dlvm.png" and figure.stat().st_size > 10_000


@pytest.mark.slow
def test_importance_sampling_converges_to_the_quadrature(quick_run):
    # margins checked once over seeds 0-19 of the quick run: mean |error| at K = 5000 at most
    # 0.005 (VAE) and 0.016 (IWAE), 15-18 times below K = 10; |IS - quadrature| of the mean at
    # most 0.0032; the true decoder's at K = 1e4 at most 0.060, always decreasing in K; at
    # K = 1000 the VAE's encoder is at least 28 times closer than the prior
    n = quick_run.numbers
    for name in ("vae", "iwae"):
        mae = n[name]["is"]["mae"]
        assert mae[-1] < 0.05                       # K = 5000, encoder as proposal
        assert mae[-1] < mae[1] / 3                 # ... far below K = 10
        assert abs(n[name]["test_ll_is"] - n[name]["test_ll_quadrature"]) < 0.01
    true_mae = n["true_is"]["mae"]
    assert true_mae[-1] < 0.2                       # K = 1e4, the prior as proposal
    assert all(a > b for a, b in zip(true_mae, true_mae[1:]))
    # the encoder is the better proposal: at K = 1000 it is far closer than the prior
    k_true, k_model = n["true_is"]["k"], n["vae"]["is"]["k"]
    assert n["vae"]["is"]["mae"][k_model.index(1000)] < true_mae[k_true.index(1000)] / 5


@pytest.mark.slow
def test_fitted_models_do_not_beat_the_truth(quick_run):
    n = quick_run.numbers
    for name in ("vae", "iwae"):
        # KL(p || p_theta) >= 0, up to the sampling error of 200 test points; and a fit, not
        # noise: within 3 nats of the truth (quick runs, seeds 0-19: 0.76-1.53)
        assert -0.1 < n[name]["gap_to_truth"] < 3.0
