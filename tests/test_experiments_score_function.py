r"""Experiment 3 (score-function): both gradient estimators unbiased, the score function's far
larger variance, the baseline, and the bias of "estimate first, then differentiate"; asserted on
the quick run with seed 0.

Every statistical margin was checked once on the quick runs with seeds 0..19 (worst case over
the 20 in each comment)."""

import numpy as np
import pytest

from scratchdgm.experiments import run_experiment
from scratchdgm.experiments import score_function as sf


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    return run_experiment("score-function", tmp_path_factory.mktemp("sf"), quick=True, seed=0)


@pytest.mark.slow
def test_writes_its_figure(result):
    (path,) = result.figures
    assert path.name == "score-function.png" and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_exact_references():
    # the Gauss-Hermite variances against the ones known by hand: the reparametrised mu-term
    # c - mu - sigma eps has variance sigma^2, its log-sigma term (mu - c) sigma eps ... has
    # (mu - c)^2 sigma^2 + 2 sigma^4
    v = sf.exact_per_draw_variance()["reparam"]
    np.testing.assert_allclose(v["mu"], sf.SIGMA**2, rtol=1e-12)
    np.testing.assert_allclose(v["log_sigma"],
                               (sf.MU - sf.C) ** 2 * sf.SIGMA**2 + 2 * sf.SIGMA**4, rtol=1e-12)


@pytest.mark.slow
def test_both_estimators_are_unbiased_on_the_gaussian(result):
    g = result.numbers["gaussian"]["estimators"]
    for name in ("reparam", "score", "score_loo"):
        for param, zs in g[name]["max_abs_z"].items():
            assert max(zs) < 4.5, (name, param, zs)          # over 20 seeds: max 3.6


@pytest.mark.slow
def test_variances_fall_as_one_over_k_at_their_exact_values(result):
    g = result.numbers["gaussian"]
    exact = g["exact_per_draw_variance"]
    rp = np.array(g["estimators"]["reparam"]["k_times_variance"]["mu"]) / exact["reparam"]["mu"]
    assert np.all((0.8 < rp) & (rp < 1.25)), rp              # over 20 seeds: 0.90..1.10
    sc = np.array(g["estimators"]["score"]["k_times_variance"]["mu"]) / exact["score"]["mu"]
    assert np.all((0.65 < sc) & (sc < 1.5)), sc              # over 20 seeds: 0.78..1.21


@pytest.mark.slow
def test_the_score_function_has_far_larger_variance_and_a_baseline_cuts_it(result):
    g, v = result.numbers["gaussian"], result.numbers["vae"]
    # Gaussian: exact ratios average 449x (mu) and 307x (log sigma); over 20 seeds >= 290x
    assert min(g["variance_ratio_score_over_reparam"].values()) > 100
    # the leave-one-out baseline at K = 10 (over 20 seeds: keeps at most 53%)
    assert max(g["variance_ratio_loo_over_score_at_k10"].values()) < 0.7
    # VAE: over 20 seeds >= 1310x; with the baseline at K = 10, 11x..16x
    assert min(v["variance_ratio_score_over_reparam"]) > 200
    assert v["variance_ratio_loo_over_reparam_at_k10"] < 0.1 * v["variance_ratio_score_over_reparam"][1]


@pytest.mark.slow
def test_the_two_estimators_agree_on_a_vae(result):
    v = result.numbers["vae"]
    # z-scores of the difference of the means, per coordinate: mean z^2 ~ 1 when both are
    # unbiased (over 20 seeds: 0.58..1.30), few |z| > 3 (over 20 seeds: at most 3%)
    for name, z2 in v["mean_z_squared"].items():
        assert all(0.4 < x < 1.8 for x in z2), (name, z2)
    for name, frac in v["fraction_abs_z_above_3"].items():
        assert all(x < 0.08 for x in frac), (name, frac)


@pytest.mark.slow
def test_estimate_then_differentiate_is_biased_for_q_but_not_for_f(result):
    g = result.numbers["gaussian"]
    naive, exact = g["estimators"]["naive"], g["exact_gradient"]
    # no path from q's parameters to the draws: the gradient is exactly 0, whatever the truth
    assert np.all(np.array(naive["mean"]["mu"]) == 0) and np.any(np.array(exact["mu"]) != 0)
    assert np.all(np.array(naive["mean"]["log_sigma"]) == 0)
    # ... while for a parameter of f it is unbiased (over 20 seeds: |z| <= 3.0)
    assert max(naive["max_abs_z"]["c"]) < 4.5
