"""The flow-versus-VAE experiment (scratchdgm.experiments.flow_vs_vae), quick version: it
writes its figure, and its numbers say what the lecture says -- the flow's log-likelihood is
one exact number, the VAE's (and the diffusion model's) bounds rise with K."""

import json

import pytest

from scratchdgm.cli import main


@pytest.mark.slow
def test_quick_run_writes_the_figure_and_the_bounds_rise_with_k(tmp_path, capsys):
    assert main(["experiment", "flow-vs-vae", "--quick", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "flow_vs_vae.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    numbers = json.loads((tmp_path / "numbers.json").read_text())
    vae = {int(k): v["mean"] for k, v in numbers["vae_bounds"].items()}
    diffusion = {int(k): v["mean"] for k, v in numbers["diffusion_bounds"].items()}
    # the same test points at every K: measured once over seeds 0-19 (data, weights, draws),
    # L_1000 - L_1 of the VAE in [0.014, 0.062] nats, L_10 - L_1 of the diffusion model in
    # [0.044, 0.168]
    assert vae[1000] > vae[1] + 0.005
    assert diffusion[10] > diffusion[1] + 0.02
    assert -5.0 < numbers["flow_test_log_likelihood"] < 0.0
    assert "RealNVP exact log-likelihood" in capsys.readouterr().out
