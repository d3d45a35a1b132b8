"""`scratchdgm bench`: the benchmarks run and report what they promise (no timing is asserted).

Speed is measured by the benchmarks themselves, not by tests; these only check that each
subcommand runs end to end on small settings and that its JSON carries the documented fields.
"""

import json
import os

import numpy as np
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
    out = _json(capsys, ["bench", "logsumexp", "--repeats", "1", "--threads", "2", "1",
                         "--json"])
    assert out["threads"] == [1, 2]
    assert [(r["threads"], r["K"], r["B"]) for r in out["results"]] == [
        (1, 50, 200_000), (1, 5000, 2000), (2, 50, 200_000), (2, 5000, 2000)]
    for r in out["results"]:
        assert r["numba_gbs"] > 0 and r["read_bandwidth_gbs"] > 0 and r["x_scipy"] > 0
        assert r["max_abs_diff_vs_scipy"] < 1e-10  # the kernel computes the same thing
        # the ceiling and the fractions are the measured figures, related as printed
        assert r["exp_ceiling_gbs"] > 0
        assert r["fraction_of_ceiling"] == pytest.approx(r["numba_gbs"] / r["exp_ceiling_gbs"])
        assert r["ceiling_fraction_of_bandwidth"] == pytest.approx(
            r["exp_ceiling_gbs"] / r["read_bandwidth_gbs"])
        assert r["no_overlap_gbs"] == pytest.approx(
            1 / (1 / r["exp_ceiling_gbs"] + 1 / r["read_bandwidth_gbs"]))
        assert r["no_overlap_gbs"] < min(r["exp_ceiling_gbs"], r["read_bandwidth_gbs"])
        assert r["fraction_of_no_overlap"] == pytest.approx(r["numba_gbs"] / r["no_overlap_gbs"])


@pytest.mark.parametrize("argv, match", [
    (["--k", "0"], "--k"),
    (["--threads", "0"], "--threads"),
    (["--backend", "tpu"], "backend"),
])
def test_bad_arguments_are_clear_errors(argv, match, capsys):
    assert main(["bench", "iwae-step", "--no-torch", "--steps", "1", *argv]) == 2
    err = capsys.readouterr().err
    assert "scratchdgm bench: error:" in err and match in err


@compiled
def test_eval_json_reports_the_floor_and_both_thread_counts(capsys):
    out = _json(capsys, ["bench", "eval", "--n", "3", "--k", "40", "--dtype", "float32",
                         "--threads", "2", "--no-torch", "--json"])
    (r,) = out["results"]
    assert r["flops"] == 3 * 40 * 2 * (50 * 200 + 200 * 200 + 200 * 784) + 3 * 2 * (
        784 * 200 + 200 * 200 + 200 * 100)
    assert r["floor_seconds"] > 0 and r["seconds_1_thread"] > 0 and r["seconds_n_threads"] > 0
    assert r["ratio_to_floor"] == pytest.approx(r["seconds_1_thread"] / r["floor_seconds"])
    # the floor is timed in rounds between those of the one-thread run, at the faster blocking
    assert r["rounds"] == 3 and r["gemm_block_rows"] in (1024, 4096)
    assert r["gemm_gflops"] * 1e9 * r["floor_seconds"] == pytest.approx(r["flops"], rel=1e-9)
    assert np.isfinite(r["mean_log_likelihood"]) and r["mean_log_likelihood"] < 0
    assert r["draws_per_image"] == 40 * 50 and r["draw_seconds"] > 0
    assert r["numpy_draw_seconds"] > 0


def test_eval_rejects_zero_rounds(capsys):
    assert main(["bench", "eval", "--n", "2", "--k", "10", "--rounds", "0", "--no-torch"]) == 2
    assert "--rounds" in capsys.readouterr().err


def test_fa_convergence_json_covers_the_bundled_data_sets(capsys):
    out = _json(capsys, ["bench", "fa-convergence", "--repeats", "1", "--d", "2", "--json"])
    assert [r["data"] for r in out["results"]] == ["iris", "wine", "breast_cancer", "diabetes",
                                                  "digits", "linnerud"]
    for r in out["results"]:
        assert not r["ours"]["warning"]  # the goal of issue 14, at the defaults
        assert r["loglike_minus_sklearn"] >= 0
        assert r["time_ratio"] > 0 and r["em"]["n_iter"] >= 1


@pytest.mark.slow
@compiled
def test_train_runs_fresh_processes_cold_then_warm(capsys):
    out = _json(capsys, ["bench", "train", "--k", "2", "--n-train", "60", "--n-val", "10",
                         "--eval-n", "2", "--eval-k", "20", "--no-torch", "--json"])
    (r,) = out["results"]
    cold, warm = r["cold"], r["warm"]
    for run in (cold, warm):
        assert set(run) >= {"import", "data", "compile", "steps", "validation", "evaluation",
                            "total"}
        assert run["total"] == pytest.approx(sum(run[p] for p in ("import", "data", "compile",
                                                                  "steps", "validation",
                                                                  "evaluation")))
        assert run["kernel_cache"] == "on"
    # the first run compiled the kernels into the fresh cache, the second loaded them
    assert cold["compile"] > 0 and warm["compile"] < 0.1 * cold["compile"]
    assert cold["test_log_likelihood"] == warm["test_log_likelihood"]


@pytest.mark.slow
@compiled
def test_all_writes_one_table(tmp_path, capsys):
    path = tmp_path / "benchmarks.md"
    assert main(["bench", "all", "--quick", "--only", "fa-convergence", "eval", "--no-torch",
                 "--out", str(path)]) == 0
    text = path.read_text()
    assert text.startswith("# Benchmarks") and "--quick" in text
    assert "| figure | ours | peer (same run) | ratio | goal |" in text
    assert "FA d=2 on iris" in text and "GEMM floor" in text and "## eval" in text
    assert "logical cores" in text  # the machine line: CPU model, threads, date


def test_all_says_when_figures_were_taken_under_load_or_at_reduced_sizes():
    from scratchdgm.benchmarks.run_all import conditions

    cores = os.cpu_count() or 1
    assert conditions([0.1 * cores, None], {}, quick=False) == []  # quiet, full protocols
    busy = conditions([0.5, 6.0 * cores], {"eval": ["--n", "40"]}, quick=False)
    assert len(busy) == 2 and "under load" in busy[0] and f"{6.0 * cores:.1f}" in busy[0]
    assert "Reduced sizes" in busy[1] and "--set 'eval=--n 40'" in busy[1]
    assert conditions([None], {}, quick=True) == ["**--quick: tiny sizes, not a measurement.**"]


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


def test_train_repeats_report_the_run_of_median_total(capsys):
    """--repeats N keeps one real run per row (its phases add up), the one of median total,
    and lists every round's total."""
    import argparse

    from scratchdgm.benchmarks import train

    def run(total):
        phases = dict(zip(train.PHASES, (total / 6.0,) * 6))
        return dict(phases, total=total, test_log_likelihood=-100.0)

    assert train._median_run([run(3.0), run(1.0), run(2.0)])["total"] == 2.0
    assert train._median_run([run(4.0), run(1.0), run(3.0), run(2.0)])["total"] == 3.0
    out = {"settings": {"epochs": 1, "n_train": 10, "n_val": 2, "eval_n": 2, "eval_k": 5,
                        "threads": 1, "repeats": 3, "data": "generated"},
           "results": [{"k": 5, "cold": run(2.0), "cold_totals": [3.0, 1.0, 2.0],
                        "warm": run(1.5), "warm_totals": [1.5, 1.4, 1.6]}]}
    train.report(out, argparse.Namespace(threads=1))
    text = capsys.readouterr().out
    assert "3 interleaved rounds" in text and "all totals" in text
    assert "3.0 1.0 2.0" in text and "1.5 1.4 1.6" in text
