"""`scratchdgm train catvae / gmvae`, then `eval` and `sample`, end to end on a tiny digits run."""

import json
import subprocess
import sys

import pytest

from scratchdgm.cli import main

TINY = ["--data", "digits", "--epochs", "1", "--hidden", "8", "--n-categories", "3",
        "--eval-k", "20", "--no-progress"]


@pytest.fixture(scope="module")
def gmvae_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "gmvae"
    assert main(["train", "gmvae", "--latent-dim", "2", "--seed", "1", "--out", str(out),
                 *TINY]) == 0
    return out


def test_train_gmvae_writes_metrics_purity_and_figures(gmvae_dir, capsys):
    m = json.loads((gmvae_dir / "metrics.json").read_text())
    for key in ("test_log_likelihood", "purity_train", "purity_test", "contingency_train",
                "cluster_sizes_train", "active_units", "history"):
        assert key in m, key
    assert m["config"]["class"] == "GMVAE" and m["config"]["latent_dim"] == 2
    # purity is at least the share of the most common digit (about 0.1) and at most 1
    assert 0.1 <= m["purity_train"] <= 1 and sum(m["cluster_sizes_train"]) == 1500
    assert sum(map(sum, m["contingency_train"])) == 1500
    for name in ("components.png", "confusion.png"):
        assert (gmvae_dir / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["eval", str(gmvae_dir), "--k", "10"]) == 0
    assert "test log-likelihood" in capsys.readouterr().out
    assert main(["sample", str(gmvae_dir), "--n", "4"]) == 0
    assert (gmvae_dir / "samples.png").is_file()


def test_a_fresh_process_can_load_a_run(gmvae_dir):
    # `scratchdgm eval RUN` imports only the package, not scratchdgm.models.deep.discrete: the
    # class must be registered by then (above, main() ran in a process that had imported it)
    code = ("import sys; from scratchdgm.models.deep import load_model; "
            "print(type(load_model(sys.argv[1])).__name__)")
    out = subprocess.run([sys.executable, "-c", code, str(gmvae_dir / "checkpoint.npz")],
                         capture_output=True, text=True, check=True).stdout
    assert out.strip() == "GMVAE"


def test_train_catvae_with_an_annealed_gumbel_softmax(tmp_path):
    out = tmp_path / "cat"
    args = ["train", "catvae", "--estimator", "gumbel", "--temperature", "2",
            "--anneal-rate", "0.5", "--out", str(out), *TINY]
    args[args.index("--epochs") + 1] = "2"
    assert main(args) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["history"]["temperature"] == pytest.approx([2.0, 2.0 * 0.6065306597126334])
    assert m["config"]["estimator"] == "gumbel" and "purity_test" in m


@pytest.mark.parametrize("family, bad, message", [
    ("catvae", ["--n-categories", "1"], "--n-categories must be >= 2"),
    ("gmvae", ["--temperature", "0"], "temperature must be a finite float > 0"),
    ("gmvae", ["--latent-dim", "0"], "latent_dim must be an int >= 1"),
    ("catvae", ["--estimator", "reinforce"], None),
])
def test_bad_arguments_are_refused_before_anything_is_written(tmp_path, capsys, family, bad,
                                                               message):
    out = tmp_path / "x"
    args = ["train", family, "--out", str(out), *TINY]
    for i in range(0, len(bad), 2):
        if bad[i] in args:
            args[args.index(bad[i]) + 1] = bad[i + 1]
        else:
            args += bad[i:i + 2]
    if message is None:   # argparse refuses a choice it does not know
        with pytest.raises(SystemExit):
            main(args)
    else:
        assert main(args) == 2
        assert message in capsys.readouterr().err
    assert not out.exists()
