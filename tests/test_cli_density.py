"""`scratchdgm train flow` and `scratchdgm train diffusion` end to end on tiny runs in a
temporary directory: metrics, figures, sampling from the run, resuming, and clear errors."""

import json

import pytest

from scratchdgm import use_backend
from scratchdgm.cli import main

FLOW = ["train", "flow", "--data", "moons", "--epochs", "2", "--layers", "2", "--hidden", "8",
        "--no-progress"]
DIFFUSION = ["train", "diffusion", "--data", "ring", "--epochs", "2", "--steps", "25",
             "--hidden", "8", "--eval-k", "2", "--no-progress"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    assert main([*FLOW, "--out", str(root / "flow")]) == 0
    assert main([*DIFFUSION, "--out", str(root / "ddpm")]) == 0
    return root


def test_flow_run_writes_metrics_and_figure(runs):
    m = json.loads((runs / "flow" / "metrics.json").read_text())
    assert m["config"]["class"] == "RealNVP" and m["epochs"] == 2
    assert m["test_log_likelihood"] < 0 and len(m["history"]["train_bound"]) == 2
    ed = m["energy_distance"]
    assert set(ed) == {"model", "train_subsample", "gaussian_fit", "n"} and ed["n"] == 500
    assert (runs / "flow" / "flow.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_diffusion_run_writes_metrics_and_figures(runs):
    m = json.loads((runs / "ddpm" / "metrics.json").read_text())
    assert m["config"]["class"] == "DiffusionModel" and m["config"]["n_steps"] == 25
    terms = m["test_elbo_terms"]
    assert len(terms["per_step_mean"]) == 26
    total = terms["L_0"] + terms["sum L_1..L_{T-1}"] + terms["L_T"]
    assert m["test_elbo"] == pytest.approx(-total)
    assert "2" in m["test_bound"]
    for name in ("diffusion.png", "samples.png"):
        assert (runs / "ddpm" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("family", ["flow", "ddpm"])
def test_sample_from_a_run(runs, tmp_path, family):
    out = tmp_path / "s.png"
    with use_backend("numpy"):  # a run's backend is not saved: the default would compile
        assert main(["sample", str(runs / family), "--n", "20", "--out", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_resume_continues_and_overwrite_is_refused(runs, capsys):
    before = (runs / "flow" / "checkpoint.npz").read_bytes()
    assert main([*FLOW, "--out", str(runs / "flow")]) == 2
    assert "--resume" in capsys.readouterr().err
    assert (runs / "flow" / "checkpoint.npz").read_bytes() == before
    args = [*FLOW, "--out", str(runs / "flow"), "--resume"]
    args[args.index("--epochs") + 1] = "3"
    assert main(args) == 0
    m = json.loads((runs / "flow" / "metrics.json").read_text())
    assert m["history"]["epoch"] == [1, 2, 3]


@pytest.mark.parametrize("argv, message", [
    ([*FLOW[:3], "digits", *FLOW[4:]], "is binary"),
    ([*FLOW, "--layers", "0"], "--layers must be >= 1"),
    ([*DIFFUSION, "--steps", "0"], "--steps must be >= 1"),
    ([*DIFFUSION, "--lr", "0"], "--lr must be > 0"),
    ([*DIFFUSION, "--steps", "10"], "needs T > 20"),
    ([*FLOW, "--hidden", "a,b"], "--hidden must be comma-separated ints"),
])
def test_bad_arguments(tmp_path, capsys, argv, message):
    out = tmp_path / "x"
    assert main([*argv, "--out", str(out)]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_eval_of_a_flow_run_is_its_exact_log_likelihood(runs, capsys):
    # every L_K of a flow is its exact log-likelihood, so any K gives what train wrote
    m = json.loads((runs / "flow" / "metrics.json").read_text())
    assert main(["eval", str(runs / "flow"), "--k", "3", "--backend", "numpy",
                 "--no-write"]) == 0
    out = capsys.readouterr().out
    assert f"test log-likelihood {m['test_log_likelihood']:.3f} (K=3)" in out


def test_eval_of_a_diffusion_run_says_where_its_bounds_are(runs, capsys):
    assert main(["eval", str(runs / "ddpm"), "--backend", "numpy"]) == 2
    err = capsys.readouterr().err
    assert "DiffusionModel" in err and "metrics.json" in err
