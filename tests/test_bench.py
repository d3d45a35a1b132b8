"""`scratchdgm bench`: the benchmarks run and report what they promise (no timing is asserted).

Speed is measured by the benchmarks themselves, not by tests; these only check that each
subcommand runs end to end on small settings and that its JSON carries the documented fields.
"""

import json
import os

import pytest

from scratchdgm.cli import main

# Timing the Numba kernels as Python loops would take minutes and mean nothing.
compiled = pytest.mark.skipif(os.environ.get("NUMBA_DISABLE_JIT", "0") not in ("", "0"),
                              reason="benchmarks of compiled kernels need the JIT")


def _json(capsys, argv):
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("bars", ["off a terminal", "forced on"])
def test_iwae_step_json_has_the_median_step_time(capsys, monkeypatch, bars):
    monkeypatch.setenv("SCRATCHDGM_PROGRESS", "1" if bars == "forced on" else "")
    argv = ["bench", "iwae-step", "--k", "2", "--backend", "numpy", "--steps", "2",
            "--warmup", "0", "--no-torch", "--json"]
    assert main(argv) == 0
    printed, err = capsys.readouterr()
    out = json.loads(printed)  # the bar goes to stderr: stdout stays valid JSON
    assert out["k"] == 2 and out["backend"] == "numpy" and out["dtype"] == "float32"
    assert out["step_seconds"] > 0 and out["first_step_seconds"] > 0 and out["steps"] == 2
    # tqdm redraws at most every 0.1 s, so only its first frame ("0/1") is certain to appear
    assert ("iwae-step" in err and "/1 " in err) if bars == "forced on" else err == ""


@pytest.mark.slow
@compiled
def test_iwae_step_table_for_several_backends(capsys):
    assert main(["bench", "iwae-step", "--k", "1", "--backend", "numpy", "numba", "--steps", "2",
                 "--warmup", "0", "--no-torch", "--dtype", "float64"]) == 0
    text = capsys.readouterr().out
    assert "float64" in text and "numba" in text and "numpy" in text


@pytest.mark.slow
@compiled
def test_logsumexp_json_reports_bandwidth_and_scipy_ratio(capsys):
    out = _json(capsys, ["bench", "logsumexp", "--repeats", "1", "--json"])
    assert [(r["K"], r["B"]) for r in out["results"]] == [(50, 200_000), (5000, 2000)]
    for r in out["results"]:
        assert r["numba_gbs"] > 0 and r["read_bandwidth_gbs"] > 0 and r["x_scipy"] > 0
        assert r["max_abs_diff_vs_scipy"] < 1e-10  # the kernel computes the same thing


@pytest.mark.parametrize("argv, match", [
    (["--k", "0"], "--k"),
    (["--threads", "0"], "--threads"),
    (["--backend", "tpu"], "backend"),
])
def test_bad_arguments_are_clear_errors(argv, match, capsys):
    assert main(["bench", "iwae-step", "--no-torch", "--steps", "1", *argv]) == 2
    err = capsys.readouterr().err
    assert "scratchdgm bench: error:" in err and match in err


def test_gpu_benchmark_without_a_device_says_so_and_exits_cleanly(capsys, monkeypatch):
    from scratchdgm.benchmarks import gpu

    monkeypatch.setattr(gpu, "find_device", lambda: (None, "numba.cuda finds no CUDA device"))
    assert main(["bench", "gpu"]) == 0
    out, err = capsys.readouterr()
    assert "no CUDA device is available: numba.cuda finds no CUDA device" in out
    assert 'pip install "scratchdgm[cuda]"' in out and err == ""


def test_gpu_benchmark_finds_no_device_on_this_machine():
    import importlib.util

    from scratchdgm.benchmarks import gpu

    if importlib.util.find_spec("numba") is not None:
        from numba import cuda

        if cuda.is_available():
            pytest.skip("this machine has a CUDA device (or the simulator is on)")
    device, why = gpu.find_device()
    assert device is None and "CUDA" in why


def test_gpu_benchmark_covers_every_kernel():
    from scratchdgm.benchmarks import gpu
    from scratchdgm.kernels import KERNEL_NAMES

    for small in (False, True):
        assert [c[0] for c in gpu.cases(small)] == list(KERNEL_NAMES)
