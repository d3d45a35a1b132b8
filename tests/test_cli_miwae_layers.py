"""`scratchdgm train miwae`, `scratchdgm train iwae --layers 2` and `scratchdgm bench
miwae-imputation` end to end on tiny settings in temporary directories."""

import json

import numpy as np
import pytest

from scratchdgm.cli import main

PNG = b"\x89PNG\r\n\x1a\n"
TINY_MIWAE = ["--epochs", "3", "--hidden", "8", "--latent-dim", "2", "--impute-k", "20",
              "--backend", "numpy", "--no-progress"]


def test_train_miwae_on_a_bundled_table(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "miwae", "--data", "iris", "--out", str(out), *TINY_MIWAE]) == 0
    assert "imputation MSE" in capsys.readouterr().out
    m = json.loads((out / "metrics.json").read_text())
    for key in ("mse_miwae", "mse_mean_imputation", "observed_log_likelihood",
                "missing_fraction", "train_seconds", "history"):
        assert key in m, key
    assert 0.4 < m["missing_fraction"] < 0.5 and m["likelihood"] == "gaussian"
    imputed = np.load(out / "imputed.npy")
    assert imputed.shape == (150, 4) and not np.isnan(imputed).any()
    assert (out / "imputations.png").read_bytes()[:8] == PNG
    # the run exists: refused without --resume, nothing overwritten
    before = (out / "checkpoint.npz").read_bytes()
    assert main(["train", "miwae", "--data", "iris", "--out", str(out), *TINY_MIWAE]) == 2
    assert "--resume" in capsys.readouterr().err
    assert (out / "checkpoint.npz").read_bytes() == before


def test_train_miwae_on_a_csv_file_with_missing_entries(tmp_path):
    X = np.random.default_rng(0).random((25, 3))
    X[X < 0.2] = np.nan
    path = tmp_path / "data.csv"
    np.savetxt(path, X, delimiter=",")
    out = tmp_path / "run"
    assert main(["train", "miwae", "--data", str(path), "--out", str(out), *TINY_MIWAE]) == 0
    imputed = np.load(out / "imputed.npy")
    observed = ~np.isnan(X)
    np.testing.assert_allclose(imputed[observed], X[observed])
    assert not np.isnan(imputed).any()
    assert "mse_miwae" not in json.loads((out / "metrics.json").read_text())


@pytest.mark.parametrize("change, message", [
    ({"--missing-rate": "1.5"}, "--missing-rate must be in (0, 1)"),
    ({"--k": "0"}, "--k must be >= 1"),
    ({"--data": "nope.csv"}, "no such file"),
    ({"--data": "mnist"}, "no such file"),
    ({"--data": "empty-row"}, "every entry missing"),
])
def test_train_miwae_bad_input_writes_nothing(tmp_path, capsys, change, message):
    args = {"--data": "iris", **change}
    if args["--data"] == "empty-row":
        X = np.ones((5, 3))
        X[2] = np.nan
        args["--data"] = str(tmp_path / "bad.csv")
        np.savetxt(args["--data"], X, delimiter=",")
    out = tmp_path / "run"
    argv = ["train", "miwae", "--out", str(out), *TINY_MIWAE]
    for flag, value in args.items():
        argv += [flag, value]
    assert main(argv) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_train_two_layer_iwae_then_eval_and_sample(tmp_path, capsys):
    out = tmp_path / "h"
    assert main(["train", "iwae", "--layers", "2", "--data", "digits", "--epochs", "1",
                 "--latent-dim", "3", "--latent-dim2", "2", "--hidden", "8", "--hidden2", "4",
                 "--k", "3", "--eval-k", "20", "--backend", "numpy", "--no-progress",
                 "--out", str(out)]) == 0
    assert "(2 layers)" in capsys.readouterr().out
    m = json.loads((out / "metrics.json").read_text())
    assert m["layers"] == 2 and m["config"]["class"] == "HierarchicalIWAE"
    assert m["config"]["latent_dims"] == [3, 2] and m["config"]["hidden"] == [[8], [4]]
    assert m["latent_dim"] == 5 and 0 <= m["active_units"] <= 5
    assert main(["eval", str(out), "--k", "10"]) == 0
    assert main(["sample", str(out), "--n", "4", "--out", str(tmp_path / "s.png")]) == 0
    assert (tmp_path / "s.png").read_bytes()[:8] == PNG


def test_two_layers_refuse_a_mixture_prior(tmp_path, capsys):
    out = tmp_path / "h"
    assert main(["train", "vae", "--layers", "2", "--prior", "gmm", "--epochs", "1",
                 "--out", str(out)]) == 2
    assert "--prior applies to one stochastic layer" in capsys.readouterr().err
    assert not out.exists()


def test_bench_miwae_imputation_quick_json(tmp_path, capsys):
    assert main(["bench", "miwae-imputation", "--quick", "--datasets", "iris", "--seeds", "1",
                 "--steps", "20", "--impute-k", "20", "--out", str(tmp_path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out["mse"]["iris"]) == {"mean", "KNN", "ICE", "missForest", "MIWAE", "MIWAE-t"}
    assert all(len(v) == 1 and v[0] > 0 for v in out["mse"]["iris"].values())
    assert out["steps"] == 20 and out["machine"]["threads"] == 1
    for path in out["figures"]:
        with open(path, "rb") as f:
            assert f.read(8) == PNG
    assert main(["bench", "miwae-imputation", "--datasets", "mnist", "--out",
                 str(tmp_path)]) == 2
    assert "unknown table" in capsys.readouterr().err
