r"""The discrete-gradients experiment: its three estimators of the gradient of
:math:`\mathbb E_{q(c|x)}[\log p(x|c)]` in the logits, and the claims its figure makes
(enumeration exact, score function unbiased with a large variance, Gumbel-softmax biased with a
bias that falls with the temperature), on a small trained categorical VAE."""

import json

import numpy as np
import pytest

from scratchdgm.experiments import EXPERIMENTS, run_experiment
from scratchdgm.experiments.discrete_gradients import (
    exact_gradient,
    greedy_baseline,
    gumbel_gradients,
    score_function_gradients,
    summarise,
)
from scratchdgm.models.deep.discrete import CategoricalVAE
from tests.test_discrete_models import _clustered


@pytest.fixture(scope="module")
def trained():
    x, _ = _clustered(n=120, p=16, k=4, flip=0.15, seed=3)
    model = CategoricalVAE(16, n_categories=4, hidden=(16,), random_state=0)
    model.fit(x, epochs=8, batch_size=10, lr=3e-3, progress=False, random_state=0)
    x = x[:12]
    logits = np.array(model.encoder(x).data)
    return model, x, logits, model.log_px_given_c(x)


def test_exact_gradient_is_the_closed_form(trained):
    _, _, logits, f = trained
    pi = np.exp(logits - logits.max(1, keepdims=True))
    pi /= pi.sum(1, keepdims=True)
    expected = pi * (f - (pi * f).sum(1, keepdims=True))
    np.testing.assert_allclose(exact_gradient(f, logits), expected, rtol=1e-10, atol=1e-14)


def test_the_claims_of_the_figure(trained):
    model, x, logits, f = trained
    exact = exact_gradient(f, logits)
    rng = np.random.default_rng(0)
    sf = summarise(score_function_gradients(f, logits, 4000, rng), exact)
    sfb = summarise(score_function_gradients(f, logits, 4000, rng,
                                             baseline=greedy_baseline(f, logits)), exact)
    hot = summarise(gumbel_gradients(model, x, logits, 1.0, 4000, rng), exact)
    cold = summarise(gumbel_gradients(model, x, logits, 0.1, 4000, rng), exact)
    # Margins checked over rng seeds 0..19: the score functions' bias estimates never exceeded
    # 0.74 times their Monte Carlo floor; tau = 1 had a bias of at least 27 floors; the bias at
    # tau = 0.1 was at most 0.25 of that at tau = 1; the plain score function's spread was at
    # least 62 times that of tau = 1, and the baseline cut it at least 15-fold.
    assert sf["rel_bias"] < 2.5 * sf["mc_floor"], sf                 # unbiased
    assert sfb["rel_bias"] < 2.5 * sfb["mc_floor"], sfb              # still unbiased
    assert sfb["rel_std"] < 0.5 * sf["rel_std"], (sfb, sf)           # a baseline helps
    assert hot["rel_bias"] > 4 * hot["mc_floor"], hot                # biased
    assert cold["rel_bias"] < 0.7 * hot["rel_bias"], (cold, hot)     # less so when colder
    assert sf["rel_std"] > 4 * hot["rel_std"], (sf, hot)             # but far noisier


def test_summarise_sees_an_unbiased_and_a_biased_estimator():
    rng = np.random.default_rng(1)
    exact = rng.normal(size=(5, 3))
    noise = rng.normal(size=(2000, 5, 3))
    fair = summarise(exact + noise, exact)
    off = summarise(exact + 0.5 + noise, exact)
    norm = np.sqrt((exact ** 2).sum())
    assert fair["rel_bias"] < 2 * fair["mc_floor"]
    assert off["rel_bias"] == pytest.approx(0.5 * np.sqrt(15) / norm, rel=0.1)
    assert fair["rel_std"] == pytest.approx(np.sqrt(15) / norm, rel=0.05)


def test_experiment_is_registered():
    assert EXPERIMENTS["discrete-gradients"] == "scratchdgm.experiments.discrete_gradients"


@pytest.mark.slow
def test_quick_run_writes_its_figure_and_numbers(tmp_path):
    result = run_experiment("discrete-gradients", tmp_path, quick=True, seed=0)
    assert [p.name for p in map(__import__("pathlib").Path, result.figures)] == [
        "discrete_gradients.png"]
    assert (tmp_path / "discrete_gradients.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    numbers = json.loads(json.dumps(result.numbers))
    assert numbers["K"] == [2, 8, 32]
    sf = numbers["estimators"]["score function"]
    gs = numbers["estimators"]["Gumbel-softmax tau=0.5"]
    assert all(s > g for s, g in zip(sf["rel_std"], gs["rel_std"]))
    assert all(len(v) == 3 for v in numbers["time_ms"].values())
    sfb = numbers["estimators"]["score function, greedy baseline"]
    assert all(b < s for b, s in zip(sfb["rel_std"], sf["rel_std"]))
    assert "score function" in result.text
