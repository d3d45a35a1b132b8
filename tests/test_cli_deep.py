"""`scratchdgm train / eval / sample` end to end on a tiny digits run in a temporary directory."""

import json

import pytest

from scratchdgm.cli import main

TINY = ["--data", "digits", "--epochs", "1", "--latent-dim", "2", "--hidden", "8",
        "--eval-k", "20", "--no-progress"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "iwae"
    assert main(["train", "iwae", "--k", "3", "--seed", "1", "--out", str(out), *TINY]) == 0
    return out


def test_train_writes_checkpoint_and_metrics(run_dir):
    assert (run_dir / "checkpoint.npz").is_file()
    m = json.loads((run_dir / "metrics.json").read_text())
    for key in ("test_log_likelihood", "train_seconds", "test_bounds", "active_units",
                "history", "k"):
        assert key in m, key
    assert m["k"] == 3 and m["eval_k"] == 20
    b = m["test_bounds"]
    assert b["1"] < b["50"]  # L_1 <= L_50, a wide margin on an untrained model
    assert m["test_log_likelihood"] < 0
    # the report names the data it ran on, in train as in eval
    assert "data: data=digits, split=test" in m["evaluation_text"]
    assert "binarised once" in m["evaluation_text"]


def test_eval_updates_metrics(run_dir, capsys):
    assert main(["eval", str(run_dir), "--k", "30"]) == 0
    assert "test log-likelihood" in capsys.readouterr().out
    m = json.loads((run_dir / "metrics.json").read_text())
    assert m["eval_k"] == 30
    assert "data: data=digits, split=test" in m["evaluation_text"]


def test_sample_writes_png(run_dir, tmp_path):
    out = tmp_path / "s.png"
    assert main(["sample", str(run_dir), "--n", "9", "--out", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_train_refuses_to_overwrite_and_resumes(run_dir, capsys):
    before = (run_dir / "checkpoint.npz").read_bytes()
    assert main(["train", "iwae", "--k", "3", "--seed", "1", "--out", str(run_dir), *TINY]) == 2
    assert "--resume" in capsys.readouterr().err
    assert (run_dir / "checkpoint.npz").read_bytes() == before
    # a resumed run with another architecture is refused before anything is written
    args = ["train", "iwae", "--k", "3", "--seed", "1", "--out", str(run_dir), "--resume",
            *TINY]
    args[args.index("--latent-dim") + 1] = "3"
    assert main(args) == 2
    assert "different architecture" in capsys.readouterr().err
    assert (run_dir / "checkpoint.npz").read_bytes() == before


@pytest.mark.parametrize("bad, message", [
    (["--k", "0"], "--k must be >= 1"),
    (["--latent-dim", "0"], "latent-dim must be >= 1"),
    (["--data", "nope"], "unknown --data"),
])
def test_train_bad_arguments(tmp_path, capsys, bad, message):
    out = tmp_path / "x"
    args = ["train", "vae", "--out", str(out), *TINY]
    for i in range(0, len(bad), 2):
        if bad[i] in args:
            args[args.index(bad[i]) + 1] = bad[i + 1]
        else:
            args += bad[i:i + 2]
    assert main(args) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_eval_missing_dir(tmp_path, capsys):
    assert main(["eval", str(tmp_path / "none")]) == 2
    assert "not found" in capsys.readouterr().err
