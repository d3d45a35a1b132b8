r"""End to end, in fresh processes: training the IWAE paper's architecture on MNIST-sized data, then
evaluating it, against the same protocol in PyTorch -- compilation, imports and data included.

Protocol (issue 14, goal 1): 784-200-200-50 (tanh, Bernoulli likelihood, standard normal prior),
float32, K = 5 and K = 50, Adam (lr 1e-3), batch 20, ``--epochs`` epochs over ``--n-train``
binary 28 x 28 images (generated, :func:`~scratchdgm.benchmarks.common.mnist_sized_data`, or the
real MNIST with ``--mnist DIR``), the bound :math:`\mathcal L_K` of the ``--n-val`` validation
images after every epoch, then the importance-sampled log-likelihood with ``--eval-k`` samples of
``--eval-n`` test images. Ours is the Python API (``IWAE(...).fit(...)``, ``score``); PyTorch runs
the same loop written in PyTorch (an optional peer, skipped with a note when absent). Each run is
a new Python process on ``--threads`` threads (default 1), timed from its start to its end:

* ours, **first run after installation**: an empty kernel cache (a new ``SCRATCHDGM_CACHE_DIR``),
  so the kernels compile;
* ours, **later runs**: the same cache, now filled (the second run of the same command);
* PyTorch, as its users run it: with the C library's default allocator settings. Ours keeps
  freed memory for the next step (:mod:`scratchdgm.memory`, part of ``fit``); PyTorch's steps
  gain from the same setting too (``scratchdgm bench iwae-step`` runs both with it, in one
  process), but a PyTorch user does not get it by default, so the peer here runs without it.

Every run reports its phases: ``import`` (the rest of the process's time: interpreter start,
imports, exit), ``data``,
``compile`` (Numba's compile time, measured by its event listener; the loading of cached kernels
is part of the first step, hence of ``steps``), ``steps``, ``validation``, ``evaluation``.
Goal: ours at most 0.8x PyTorch's total, for the first and for later runs. On a shared machine
one run of each can be 10-25% off another of the same command: ``--repeats N`` runs N
interleaved rounds (first run, PyTorch, later run; a new cache each round) and reports the run
of median total (``scratchdgm bench all`` uses 3).
Run ``scratchdgm bench train [--k 5 50] [--epochs 1] [--n-train 60000] [--repeats 1] [--json]``.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

from scratchdgm.benchmarks.common import IWAE_PAPER_ARCH

HELP = "end-to-end training + evaluation in fresh processes (compile included) against PyTorch"

ARCH = IWAE_PAPER_ARCH
PHASES = ("import", "data", "compile", "steps", "validation", "evaluation")


def configure_parser(p):
    p.add_argument("--k", type=int, nargs="+", default=[5, 50], metavar="K")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--n-train", type=int, default=60000)
    p.add_argument("--n-val", type=int, default=10000)
    p.add_argument("--eval-n", type=int, default=500)
    p.add_argument("--eval-k", type=int, default=5000)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=1,
                   help="rounds of (first run, PyTorch, later run), each with a new kernel cache; "
                        "each figure is the run of median total (default 1)")
    p.add_argument("--mnist", default=None, metavar="DIR", help="real MNIST IDX files in DIR")
    p.add_argument("--no-torch", action="store_true", help="skip the PyTorch peer")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--worker", choices=["ours", "torch"], help=argparse.SUPPRESS)


# --------------------------------------------------------------------------- the two workers
def _data(args):
    from scratchdgm.benchmarks.common import mnist_sized_data

    x_train, x_test = mnist_sized_data(n_train=args.n_train,
                                       n_test=max(args.n_val, args.eval_n), seed=0,
                                       dtype="float32", mnist_dir=args.mnist)
    return x_train, x_test[:args.n_val], x_test[:args.eval_n]


def _compile_clock():
    """A Numba event listener adding up the wall time of (outermost) compilations."""
    from numba.core import event

    class CompileClock(event.Listener):
        total = 0.0
        _depth = 0

        def on_start(self, ev):
            if self._depth == 0:
                self._t0 = time.perf_counter()
            self._depth += 1

        def on_end(self, ev):
            self._depth -= 1
            if self._depth == 0:
                self.total += time.perf_counter() - self._t0

    clock = CompileClock()
    event.register("numba:compile", clock)
    return clock


def _worker_ours(args):
    import numpy as np

    import scratchdgm  # noqa: F401
    from scratchdgm.kernels import _cache
    from scratchdgm.models.deep import IWAE
    from scratchdgm.threads import kernel_threads

    clock = _compile_clock()
    t_import = time.perf_counter()
    x_train, x_val, x_eval = _data(args)
    t_data = time.perf_counter()
    with kernel_threads(args.threads):
        model = IWAE(ARCH["input_dim"], latent_dim=ARCH["latent_dim"], hidden=ARCH["hidden"],
                     k=args.k, dtype=np.float32, random_state=0)
        validation = {"wall": 0.0, "compile": 0.0}
        bound = model.bound

        def timed_bound(*a, **kw):  # fit's validation: its time and its compilations
            t0, c0 = time.perf_counter(), clock.total
            try:
                return bound(*a, **kw)
            finally:
                validation["wall"] += time.perf_counter() - t0
                validation["compile"] += clock.total - c0

        model.bound = timed_bound
        c_fit = clock.total
        model.fit(x_train, epochs=args.epochs, batch_size=20, lr=1e-3, X_val=x_val,
                  progress=False, random_state=0, blas_threads=args.threads)
        steps_compile = clock.total - c_fit - validation["compile"]
        t_fit, c_eval = time.perf_counter(), clock.total
        score = model.score(x_eval, k=args.eval_k, random_state=0)
        t_eval = time.perf_counter()
    h = model.history_
    return {"data": t_data - t_import, "compile": clock.total,
            "steps": h["train_seconds"] - steps_compile,
            "validation": validation["wall"] - validation["compile"],
            "evaluation": (t_eval - t_fit) - (clock.total - c_eval),
            "train_bound": h["train_bound"][-1], "val_bound": h["val_bound"][-1],
            "test_log_likelihood": score, "kernel_cache": _cache.info()["reason"]}


def _worker_torch(args):
    import math

    import numpy as np
    import torch

    from scratchdgm.benchmarks.common import (
        torch_iwae_networks,
        torch_log_likelihood,
        torch_log_weights,
    )

    torch.set_num_threads(args.threads)
    t_import = time.perf_counter()
    x_train, x_val, x_eval = _data(args)
    t_data = time.perf_counter()
    torch.manual_seed(0)
    enc, dec = torch_iwae_networks(torch, "float32", None, ARCH)
    opt = torch.optim.Adam(list(enc.parameters()) + list(dec.parameters()), lr=1e-3)

    def log_weights(x, k):
        return torch_log_weights(torch, enc, dec, x, k)

    def bound(x, k):
        with torch.no_grad():
            out = []
            batch = max(1, 20_000 // k)
            for s in range(0, len(x), batch):
                lw = log_weights(x[s:s + batch], k)
                out.append(torch.logsumexp(lw, 0) - math.log(k))
            return float(torch.cat(out).mean())

    rng = np.random.default_rng(0)
    xt, xv, xe = (torch.from_numpy(a) for a in (x_train, x_val, x_eval))
    steps_s = val_s = 0.0
    for _ in range(args.epochs):
        t0 = time.perf_counter()
        perm = torch.from_numpy(rng.permutation(len(xt)))
        total = 0.0
        for s in range(0, len(xt), 20):
            xb = xt[perm[s:s + 20]]
            loss = -(torch.logsumexp(log_weights(xb, args.k), 0) - math.log(args.k)).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += -float(loss) * len(xb)
        t1 = time.perf_counter()
        val = bound(xv, args.k)
        steps_s += t1 - t0
        val_s += time.perf_counter() - t1
    t_fit = time.perf_counter()
    scores = torch_log_likelihood(torch, enc, dec, xe, args.eval_k)
    t_eval = time.perf_counter()
    return {"data": t_data - t_import, "compile": 0.0,
            "steps": steps_s, "validation": val_s, "evaluation": t_eval - t_fit,
            "train_bound": total / len(xt), "val_bound": val,
            "test_log_likelihood": float(np.mean(scores))}


# --------------------------------------------------------------------------- the parent
def _spawn(args, worker, k, cache_dir):
    argv = [sys.executable, "-m", "scratchdgm.benchmarks.train", "--worker", worker,
            "--k", str(k), "--epochs", str(args.epochs), "--n-train", str(args.n_train),
            "--n-val", str(args.n_val), "--eval-n", str(args.eval_n),
            "--eval-k", str(args.eval_k), "--threads", str(args.threads)]
    if args.mnist:
        argv += ["--mnist", args.mnist]
    env = dict(os.environ, SCRATCHDGM_CACHE_DIR=cache_dir,
               OMP_NUM_THREADS=str(args.threads), OPENBLAS_NUM_THREADS=str(args.threads),
               NUMBA_NUM_THREADS=str(max(1, args.threads)))
    env.pop("SCRATCHDGM_NUMBA_CACHE", None)
    t0 = time.perf_counter()
    out = subprocess.run(argv, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if out.returncode != 0:
        raise RuntimeError(f"the {worker} run failed:\n{out.stderr[-3000:]}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["total"] = wall
    # everything else: the interpreter's start and exit, and the imports
    result["import"] = wall - sum(result[p] for p in PHASES if p != "import")
    return result


def _median_run(runs):
    """The run whose total time is the median (the upper one of an even number): its phases
    stay those of one real run."""
    return sorted(runs, key=lambda r: r["total"])[len(runs) // 2]


def measure(args):
    from scratchdgm.benchmarks.common import import_torch, machine_info

    for name in ("epochs", "n_train", "n_val", "eval_n", "eval_k", "threads", "repeats"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1")
    for k in args.k:
        if k < 1:
            raise ValueError(f"--k must be >= 1, got {k}")
    has_torch = import_torch(1, not args.no_torch) is not None
    results = []
    for k in args.k:
        runs = {"cold": [], "torch": [], "warm": []}
        for _ in range(args.repeats):
            # interleaved rounds, each with an empty kernel cache for its first run
            with tempfile.TemporaryDirectory(prefix="scratchdgm-bench-cache-") as cache:
                runs["cold"].append(_spawn(args, "ours", k, cache))
                if has_torch:
                    runs["torch"].append(_spawn(args, "torch", k, cache))
                runs["warm"].append(_spawn(args, "ours", k, cache))
        row = {"k": k, "repeats": args.repeats}
        for key, found in runs.items():
            if found:
                row[key] = _median_run(found)
                row[key + "_totals"] = [r["total"] for r in found]
        if has_torch:
            row["ratio_cold"] = row["cold"]["total"] / row["torch"]["total"]
            row["ratio_warm"] = row["warm"]["total"] / row["torch"]["total"]
        results.append(row)
    settings = {key: getattr(args, key) for key in
                ("epochs", "n_train", "n_val", "eval_n", "eval_k", "threads", "repeats")}
    settings["data"] = "mnist" if args.mnist else "generated (mnist_sized_data)"
    return {"machine": machine_info(args.threads), "settings": settings, "results": results}


def summary_rows(out):
    """Rows ``(figure, ours, peer, ratio, goal)`` for the one table of ``scratchdgm bench all``."""
    s = out["settings"]
    rows = []
    for r in out["results"]:
        for key, label in (("cold", "first run"), ("warm", "later runs")):
            what = (f"train+eval K={r['k']}, {s['epochs']} epoch(s) x {s['n_train']}, "
                    f"{label}")
            if "torch" in r:
                rows.append((what, f"{r[key]['total']:.1f} s", f"PyTorch {r['torch']['total']:.1f} s",
                             f"{r['ratio_' + key]:.2f}x", "<= 0.8x"))
            else:
                rows.append((what, f"{r[key]['total']:.1f} s", "(no PyTorch)", "-", "<= 0.8x"))
    return rows


def run(args):
    if args.worker:
        args.k = args.k[0]  # a worker runs one K
        work = _worker_ours if args.worker == "ours" else _worker_torch
        print(json.dumps(work(args)))
        return 0
    from scratchdgm.benchmarks.common import print_result

    return print_result(measure(args), args, report)


def report(out, args):
    """Print the table of :func:`measure`'s results."""
    from scratchdgm.benchmarks.common import machine_line, table

    s = out["settings"]
    print(machine_line(args.threads))
    print(f"IWAE 784-200-200-50 float32, batch 20, {s['epochs']} epoch(s) of {s['n_train']} "
          f"{s['data']} images, validation L_K on {s['n_val']}, evaluation K={s['eval_k']} on "
          f"{s['eval_n']}; fresh processes, {args.threads} thread(s)")
    repeats = s.get("repeats", 1)
    if repeats > 1:
        print(f"{repeats} interleaved rounds; each row is the round of median total, 'all "
              f"totals' lists every round")
    headers = ["K", "run", *PHASES, "total s", "x PyTorch", "test LL"]
    if repeats > 1:
        headers.append("all totals")
    rows = []
    for r in out["results"]:
        for key, label in (("cold", "ours, first run"), ("warm", "ours, later run"),
                           ("torch", "PyTorch")):
            if key not in r:
                continue
            ph = r[key]
            ratio = (f"{r['ratio_' + key]:.2f}" if key in ("cold", "warm") and "torch" in r
                     else "")
            line = [r["k"], label, *(f"{ph[p]:.2f}" for p in PHASES), f"{ph['total']:.2f}",
                    ratio, f"{ph['test_log_likelihood']:.2f}"]
            if repeats > 1:
                line.append(" ".join(f"{t:.1f}" for t in r.get(key + "_totals", [])))
            rows.append(line)
    print(table(headers, rows))
    print("(phases in seconds; total from the process's launch to its exit, import = the rest: "
          "interpreter start, imports, exit; compile is Numba's, the loading of cached kernels "
          "is part of steps)")
    print("(PyTorch with the C library's default allocator settings, as its users run it; ours "
          "keeps freed memory for the next step, as fit does: scratchdgm.memory)")


if __name__ == "__main__":
    if "--worker" in sys.argv:  # a timed run: straight here, not through the whole CLI
        _parser = argparse.ArgumentParser()
        configure_parser(_parser)
        sys.exit(run(_parser.parse_args()))
    from scratchdgm.cli import main

    sys.exit(main(["bench", "train", *sys.argv[1:]]))
