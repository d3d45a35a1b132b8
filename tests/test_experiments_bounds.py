r"""Experiment 4 (bounds): L_1 <= L_K <= L_K' -> log p(x), the variational decomposition and
the tight E-step, on PPCA where every target is exact; asserted on the quick run with seed 0.

Every statistical margin was checked once on the quick runs with seeds 0..19 (worst case over
the 20 in each comment)."""

import pytest

from scratchdgm.experiments import run_experiment


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    return run_experiment("bounds", tmp_path_factory.mktemp("bounds"), quick=True, seed=0)


@pytest.mark.slow
def test_writes_its_figure(result):
    (path,) = result.figures
    assert path.name == "bounds.png" and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "E-step" in result.text


@pytest.mark.slow
def test_log_p_is_elbo_plus_kl_to_the_posterior(result):
    # deterministic: three closed forms agree per test image (over 20 seeds: 4.3e-14)
    for name, r in result.numbers["proposals"].items():
        assert r["max_decomposition_error"] < 1e-8, name
        assert r["exact_kl_to_posterior"] >= 0


@pytest.mark.slow
def test_the_e_step_makes_the_bound_tight(result):
    r = result.numbers["proposals"]["posterior"]
    assert r["exact_kl_to_posterior"] < 1e-10
    assert max(r["max_abs_gap"]) < 1e-9               # every K, every image (3.8e-13)
    assert r["ess_fraction"] == pytest.approx(1.0)


@pytest.mark.slow
def test_bounds_increase_with_k_towards_log_p(result):
    for name, r in result.numbers["proposals"].items():
        if name == "posterior":
            continue
        gap, se = r["gap"], r["gap_se"]
        # the Monte Carlo L_1 estimates the exact ELBO (over 20 seeds: |z| <= 2.4)
        assert abs(r["l1_minus_exact_elbo"] / r["l1_minus_exact_elbo_se"]) < 4, name
        # L_1 <= L_5 <= ... in every image (a chain of divisors) and so on average
        assert r["min_step"] >= -1e-9, name
        assert all(a > b for a, b in zip(gap, gap[1:])), (name, gap)
        # log p - L_K >= 0 up to Monte Carlo error (over 20 seeds: z >= -1.6) ...
        assert all(g / s > -3 for g, s in zip(gap, se) if s > 0), (name, gap, se)
        # ... and it closes: the gap at K = 1000 is a small part of the gap at K = 1
        # (over 20 seeds: at most 12% for the light-tailed proposal, 2% for the prior)
        assert gap[-1] < 0.25 * gap[0], (name, gap)


@pytest.mark.slow
def test_lighter_tails_mean_fewer_effective_draws(result):
    p = result.numbers["proposals"]
    # ESS / K at K = 1000 (over 20 seeds: light <= 0.092 < 0.27 <= narrow, wide ~ 0.40)
    assert p["light"]["ess_fraction"] < p["narrow"]["ess_fraction"] < p["wide"]["ess_fraction"]
    assert p["prior"]["ess_fraction"] < 0.01
