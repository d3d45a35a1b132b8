"""`scratchdgm demo --quick` end to end: every part runs, prints its table, writes its figures."""

import pytest

from scratchdgm.cli import main


@pytest.mark.slow
def test_quick_demo_writes_every_figure_and_the_results(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("SCRATCHDGM_PROGRESS", "1")  # draw the bars, as on a terminal
    out = tmp_path / "demo"
    assert main(["demo", "--quick", "--out", str(out)]) == 0
    printed, bars = capsys.readouterr()
    # every long stretch of each section shows a bar (stderr), the tables go to stdout
    for bar in ("MLP, Adam", "fits:", "VAE epoch 3/3", "IWAE epoch 3/3"):
        assert bar in bars, bar
    assert "VAE epoch" not in printed and "fits:" not in printed
    for title in ("1. Autodiff", "2. Linear latent-variable models", "3. Deep latent-variable"):
        assert title in printed
    assert "gradcheck: passed" in printed
    pngs = {p.relative_to(out).as_posix() for p in out.rglob("*.png")}
    assert {"autodiff/autodiff_fit.png", "linear/linear_geometry.png",
            "linear/linear_loadings.png", "deep/iwae_samples.png", "deep/latent_2d.png",
            "deep/bound_vs_k.png", "deep/training_curves.png"} <= pngs
    assert all((out / p).stat().st_size > 1000 for p in pngs)  # real images, not empty files
    results = (out / "results.txt").read_text()
    assert "FA (EM)" in results and "IWAE" in results
    assert not list(out.glob("*.tmp"))


def test_figures_command_regenerates_a_chosen_folder(tmp_path, capsys):
    from scratchdgm.cli import main

    assert main(["figures", "--out", str(tmp_path), "--quick", "--only", "autodiff"]) == 0
    assert (tmp_path / "autodiff" / "autodiff_fit.png").stat().st_size > 1000
    assert "autodiff" in (tmp_path / "figures.txt").read_text()
    # an experiment's figure lands where docs/experiments.md shows it, beside the others
    assert main(["figures", "--out", str(tmp_path), "--quick", "--only", "monte-carlo"]) == 0
    assert (tmp_path / "experiments" / "monte-carlo.png").stat().st_size > 1000
    assert not (tmp_path / "experiments" / "numbers.json").exists()
    assert main(["figures", "--out", str(tmp_path), "--only", "nonsense"]) == 2
    assert "unknown ['nonsense']" in capsys.readouterr().err
