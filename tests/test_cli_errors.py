r"""The command line as a new user meets it: every mistake is one clear line (no traceback)
with a non-zero status, real bugs keep their traceback, nothing is lost (checkpoints, the data a
run was trained on) and nothing is left behind (empty ``--out`` folders, temporary files).

Runs are tiny (2-D latent, 8 hidden units, the numpy backend: no compilation) so that the whole
module stays in the fast lane.
"""

import json
import os

import numpy as np
import pytest

from scratchdgm import backend
from scratchdgm.checkpoint import load_npz, save_npz
from scratchdgm.cli import main
from scratchdgm.cli._runs import CommandError
from scratchdgm.models.deep import VAE

TINY = ["--epochs", "2", "--latent-dim", "2", "--hidden", "8", "--eval-k", "20",
        "--no-progress", "--backend", "numpy"]


def train(out, *extra, model="vae", data="digits"):
    args = ["train", model, "--data", data, "--out", str(out), *TINY, *extra]
    seen = set()
    for i in range(len(args) - 1, -1, -1):  # later options win: drop earlier duplicates
        if args[i].startswith("--") and args[i] in seen and i + 1 < len(args) \
                and not args[i + 1].startswith("--"):
            del args[i:i + 2]
        elif args[i].startswith("--"):
            seen.add(args[i])
    return main(args)


def one_line_error(capsys, command="train"):
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err
    assert len(lines) == 1 and lines[0].startswith(f"scratchdgm {command}: error: "), err
    return lines[0]


@pytest.fixture(scope="module")
def moons_run(tmp_path_factory):
    """A finished run on continuous 2-D data (--likelihood auto picks gaussian)."""
    out = tmp_path_factory.mktemp("runs") / "moons"
    assert train(out, model="iwae", data="moons") == 0
    return out


# ------------------------------------------------------------------------- divergence
def test_divergence_in_the_first_epoch_is_one_line_and_leaves_no_folder(tmp_path, capsys):
    out = tmp_path / "new" / "run"
    assert train(out, "--lr", "1e6") == 1
    line = one_line_error(capsys)
    assert "training diverged at epoch 1" in line and "Likely cause: the step size lr=1e+06" in line
    assert "initial values" in line and "smaller --lr" in line
    assert not (tmp_path / "new").exists()  # created for the run, empty, removed


def test_divergence_after_good_epochs_keeps_them_and_eval_finds_the_data(tmp_path, capsys,
                                                                        monkeypatch):
    out = tmp_path / "run"
    real = VAE.objective
    calls = {"n": 0}

    def objective(self, x, k=None, rng=None):  # NaN in the middle of epoch 2 (75 steps each)
        calls["n"] += 1
        loss = real(self, x, k, rng)
        return loss * float("nan") if calls["n"] == 80 else loss

    monkeypatch.setattr(VAE, "objective", objective)
    assert train(out) == 1
    line = one_line_error(capsys)
    assert "diverged at epoch 2, step 5/75: the loss became nan" in line
    assert "those of epoch 1, the last good one" in line and f"scratchdgm eval {out}" in line
    monkeypatch.undo()
    _, meta = load_npz(out / "checkpoint.npz", kind="dlvm", format_version=1)
    assert meta["training"]["epoch"] == 1 and not (out / "metrics.json").exists()
    # no metrics.json: eval reads the data spec from the checkpoint (it used to fall back to
    # the digits, which here happen to be right: the moons case below is the real check)
    assert main(["eval", str(out), "--k", "10", "--backend", "numpy"]) == 0
    assert json.loads((out / "metrics.json").read_text())["data"] == "digits"


# ------------------------------------------------------------------------- backends
@pytest.fixture
def no_gpu(monkeypatch):
    monkeypatch.setattr(backend, "_cuda_ok", False)  # as on a machine without a GPU
    monkeypatch.setattr(backend, "_default", None)   # re-read SCRATCHDGM_BACKEND
    monkeypatch.delenv("SCRATCHDGM_BACKEND", raising=False)


@pytest.mark.parametrize("command", ["train", "eval", "sample", "demo"])
def test_cuda_without_a_device_says_so_and_how_to_pick_another(tmp_path, capsys, monkeypatch,
                                                               no_gpu, moons_run, command):
    out = tmp_path / "out"
    argv = {"train": ["train", "vae", "--out", str(out)], "eval": ["eval", str(moons_run)],
            "sample": ["sample", str(moons_run), "--out", str(out / "s.png")],
            "demo": ["demo", "--quick", "--out", str(out)]}[command]
    assert main([*argv, "--backend", "cuda"]) == 2
    line = one_line_error(capsys, command)
    assert "--backend cuda: no CUDA device is available" in line
    assert "--backend numba or --backend numpy" in line
    monkeypatch.setenv("SCRATCHDGM_BACKEND", "cuda")
    assert main(argv) == 2
    line = one_line_error(capsys, command)
    assert "SCRATCHDGM_BACKEND=cuda: no CUDA device is available" in line
    assert "Unset SCRATCHDGM_BACKEND" in line
    assert not out.exists()  # refused before anything was written


# ------------------------------------------------------------------------- help and data
def test_help_lists_defaults_choices_and_which_likelihood_each_dataset_takes(capsys):
    with pytest.raises(SystemExit):
        main(["train", "vae", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for expected in ("(default 100)", "(default 0.001)", "(default 20)", "default digits)",
                     "tanh, relu, sigmoid, softplus", "auto, bernoulli, gaussian",
                     "student_t", "moons two moons (2-D) (continuous: gaussian",
                     "mnist:DIR MNIST from the IDX files", "(binary: bernoulli)"):
        assert expected in text, expected


def test_continuous_data_train_with_the_default_likelihood(moons_run):
    metrics = json.loads((moons_run / "metrics.json").read_text())
    assert metrics["config"]["likelihood"]["kind"] == "gaussian"
    assert metrics["epochs"] == 2 and np.isfinite(metrics["test_log_likelihood"])


def test_a_corrupt_file_behind_a_known_spec_is_not_an_unknown_spec(tmp_path, capsys):
    mnist = tmp_path / "mnist"
    mnist.mkdir()
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                 "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        (mnist / name).write_bytes(b"\x00\x00\x08\x03garbage")
    assert train(tmp_path / "out", data=f"mnist:{mnist}") == 2
    line = one_line_error(capsys)
    assert f"--data mnist:{mnist}: could not load the data: " in line
    assert "train-images-idx3-ubyte" in line and "unknown" not in line
    assert train(tmp_path / "out", data="cifar") == 2
    assert "unknown --data 'cifar'; expected one of digits" in one_line_error(capsys)
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------------- eval
def test_eval_without_metrics_uses_the_data_the_checkpoint_records(moons_run, tmp_path,
                                                                   capsys):
    run = tmp_path / "copy"
    run.mkdir()
    (run / "checkpoint.npz").write_bytes((moons_run / "checkpoint.npz").read_bytes())
    # (the moons have 2 columns: the old fallback to the digits failed with a column count)
    assert main(["eval", str(run), "--k", "10", "--backend", "numpy"]) == 0
    assert "test log-likelihood" in capsys.readouterr().out
    assert json.loads((run / "metrics.json").read_text())["data"] == "moons"
    # other data than recorded (here: the checkpoint says seed 1 drew them): a warning
    arrays, meta = load_npz(run / "checkpoint.npz", kind="dlvm", format_version=1)
    meta["training"]["metadata"]["data_seed"] = 1
    save_npz(run / "checkpoint.npz", arrays, kind="dlvm", format_version=1, metadata=meta)
    (run / "metrics.json").unlink()
    assert main(["eval", str(run), "--k", "10", "--backend", "numpy", "--no-write"]) == 0
    err = capsys.readouterr().err
    assert "warning: the data of --data moons are not those" in err and "fingerprint" in err


def test_eval_errors_name_the_file(moons_run, tmp_path, capsys):
    run = tmp_path / "copy"
    run.mkdir()
    (run / "checkpoint.npz").write_bytes((moons_run / "checkpoint.npz").read_bytes())
    (run / "metrics.json").write_text('{"data": "moons", ')
    assert main(["eval", str(run), "--backend", "numpy"]) == 2
    line = one_line_error(capsys, "eval")
    assert f"{run / 'metrics.json'} is not valid JSON" in line
    (run / "metrics.json").write_text("[1, 2]")
    assert main(["eval", str(run), "--backend", "numpy"]) == 2
    assert "holds a JSON list, expected an object" in one_line_error(capsys, "eval")
    (run / "metrics.json").unlink()
    assert main(["eval", str(run), "--data", "digits", "--backend", "numpy"]) == 2
    assert "--data digits has 64 columns but the model" in one_line_error(capsys, "eval")


def test_a_checkpoint_holding_nan_is_refused_clearly(moons_run, tmp_path, capsys):
    run = tmp_path / "nan"
    run.mkdir()
    arrays, meta = load_npz(moons_run / "checkpoint.npz", kind="dlvm", format_version=1)
    name = next(k for k in arrays if k.startswith("model.") and k.endswith("weight"))
    arrays[name] = arrays[name].copy()
    arrays[name].flat[0] = np.nan
    save_npz(run / "checkpoint.npz", arrays, kind="dlvm", format_version=1, metadata=meta)
    assert main(["eval", str(run), "--backend", "numpy"]) == 2
    line = one_line_error(capsys, "eval")
    assert "holds 1 NaN or infinite value(s)" in line and "diverged" in line


# ------------------------------------------------------------------------- sample
def test_sample_writes_where_it_says(moons_run, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["sample", str(moons_run), "--out", "foo", "--n", "4", "--backend",
                 "numpy"]) == 0
    assert "wrote foo.png" in capsys.readouterr().out and "foo.npy" in os.listdir()
    assert (tmp_path / "foo.png").read_bytes()[:4] == b"\x89PNG"
    assert main(["sample", str(moons_run), "--out", "x.txt", "--backend", "numpy"]) == 2
    assert "expected an image path ending in .png" in one_line_error(capsys, "sample")
    assert sorted(os.listdir()) == ["foo.npy", "foo.png"]  # nothing written for x.txt


# ------------------------------------------------------------------------- resume
def test_resume_refuses_fewer_epochs_and_other_data(moons_run, tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "checkpoint.npz").write_bytes((moons_run / "checkpoint.npz").read_bytes())
    before = (run / "checkpoint.npz").read_bytes()
    assert train(run, "--resume", "--epochs", "1", model="iwae", data="moons") == 2
    assert "already holds 2 epochs, more than the 1 asked for" in one_line_error(capsys)
    # the ring has the same size as the moons (1500 x 2): only the fingerprint tells them apart
    assert train(run, "--resume", "--epochs", "3", model="iwae", data="ring") == 2
    line = one_line_error(capsys)
    assert "the training data differ from those the run was trained on" in line
    assert "same number of rows 1500" in line
    assert (run / "checkpoint.npz").read_bytes() == before
    assert sorted(os.listdir(run)) == ["checkpoint.npz"]


def test_resume_cleans_up_the_temporaries_of_killed_writes(moons_run, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "checkpoint.npz").write_bytes((moons_run / "checkpoint.npz").read_bytes())
    # what SIGKILL during a checkpoint and a metrics.json write leaves (pid long gone), and a
    # file of the user's that only looks similar
    stale = [".checkpoint.npz.999999999.k2j4h5g6.tmp", ".metrics.json.999999999.a_b_c_d1.tmp"]
    for name in [*stale, "notes.tmp"]:
        (run / name).write_bytes(b"x")
    assert train(run, "--resume", "--epochs", "3", model="iwae", data="moons") == 0
    assert sorted(os.listdir(run)) == ["checkpoint.npz", "metrics.json", "notes.tmp"]
    assert json.loads((run / "metrics.json").read_text())["epochs"] == 3


def test_interrupt_says_how_to_resume(tmp_path, capsys, monkeypatch):
    real = VAE.fit

    def fit_then_ctrl_c(self, X, **kw):
        real(self, X, **dict(kw, epochs=1))
        raise KeyboardInterrupt

    monkeypatch.setattr(VAE, "fit", fit_then_ctrl_c)
    out = tmp_path / "run"
    assert train(out) == 130
    err = capsys.readouterr().err
    assert "holds the last finished epoch; run the same command with --resume" in err
    assert "scratchdgm train: interrupted" in err and "Traceback" not in err
    assert (out / "checkpoint.npz").exists()


# ------------------------------------------------------------------------- bugs and paths
def test_out_that_is_a_file_is_a_clear_error(tmp_path, capsys):
    (tmp_path / "f").write_text("mine")
    assert train(tmp_path / "f") == 2
    assert "--out" in one_line_error(capsys) and (tmp_path / "f").read_text() == "mine"
    assert train(tmp_path / "f" / "sub") == 2  # an OSError from the file system: one line
    assert "f" in one_line_error(capsys)


def test_real_bugs_keep_their_traceback(tmp_path, monkeypatch):
    def broken(self, X, **kw):
        raise KeyError("a bug in the library")

    monkeypatch.setattr(VAE, "fit", broken)
    with pytest.raises(KeyError, match="a bug in the library"):
        train(tmp_path / "run")
    assert not (tmp_path / "run").exists()
    monkeypatch.undo()
    monkeypatch.setenv("SCRATCHDGM_TRACEBACK", "1")  # and any error, when asked for
    with pytest.raises(CommandError, match="unknown --data 'cifar'"):
        train(tmp_path / "run", data="cifar")


def test_experiment_that_fails_leaves_no_folder_and_numbers_are_written_whole(
        tmp_path, capsys, monkeypatch):
    import sys
    import types

    from scratchdgm import experiments

    fake = types.ModuleType("fake_experiment")
    fake.NAME, fake.SUMMARY = "fake", "a stand-in"

    def run(out_dir, quick=False, seed=0):
        if seed:
            raise ValueError("the stand-in fails for seed 1")
        return experiments.ExperimentResult("fake", {"x": np.float64(1.5)}, [], "x = 1.5")

    fake.run = run
    monkeypatch.setitem(sys.modules, "fake_experiment", fake)
    monkeypatch.setitem(experiments.EXPERIMENTS, "fake", "fake_experiment")
    out = tmp_path / "exp" / "fake"
    assert main(["experiment", "fake", "--out", str(out), "--seed", "1"]) == 2
    assert "the stand-in fails" in one_line_error(capsys, "experiment")
    assert not (tmp_path / "exp").exists()
    assert main(["experiment", "fake", "--out", str(out)]) == 0
    assert json.loads((out / "numbers.json").read_text()) == {"x": 1.5}
    assert sorted(os.listdir(out)) == ["numbers.json"]


def test_a_reader_that_stops_early_is_not_an_error():
    # `scratchdgm experiment --list | head -1`: the pipe closes before we finish writing
    import subprocess
    import sys

    code = ("import sys; from scratchdgm.cli import main; sys.exit(main(['experiment', '--list']))")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    proc.stdout.read(10)
    proc.stdout.close()  # the reader goes away
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 0
    assert "Broken pipe" not in err and "Traceback" not in err, err
