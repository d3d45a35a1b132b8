r"""One IWAE training step against PyTorch: the speed protocol of ``docs/protocols.md``.

One training step (forward, backward, Adam update) of the IWAE paper's architecture,
784-200-200-50 (encoder 784-200-200-(mu, log sigma), decoder 50-200-200-784, tanh, Bernoulli),
batch 20, at K = 1, 5, 50, on the backends asked for and, when torch is importable, in PyTorch
on the same number of threads, interleaved in the same process, with the ratio. The step is that
of :class:`scratchdgm.IWAE` (``objective(x, k, rng)``, ``backward``, :class:`scratchdgm.optim.Adam`
on the model's backend, the compiled kernels serial as in ``fit``), i.e. what users train.
Median over ``--steps`` steps after warm-up. PyTorch is an optional peer: without it the table
has our columns only.
Run ``scratchdgm bench iwae-step [--k 1 5 50] [--threads 1] [--dtype float32]``.
"""

import json
import statistics
import sys
import time

from scratchdgm.benchmarks.common import (
    IWAE_PAPER_ARCH,
    limit_threads,
    machine_info,
    machine_line,
    table,
    torch_iwae_networks,
    torch_log_weights,
)
from scratchdgm.progress import progress

HELP = "one IWAE training step (784-200-200-50, Adam) against PyTorch"


def configure_parser(p):
    p.add_argument("--k", type=int, nargs="+", default=[1, 5, 50], metavar="K",
                   help="importance samples (several allowed; default 1 5 50)")
    p.add_argument("--batch", type=int, default=20)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    p.add_argument("--backend", nargs="+", default=["numpy", "numba"], metavar="B",
                   help="numpy | numba | cuda | auto (several allowed; default numpy numba)")
    p.add_argument("--steps", type=int, default=60, help="timed steps per configuration")
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--no-torch", action="store_true", help="skip the PyTorch peer")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")


ARCH = IWAE_PAPER_ARCH


def _our_step(backend, k, batch, dtype, seed=0):
    """Build the speed-protocol model and return a function doing one training step."""
    import numpy as np

    from scratchdgm.models.deep import IWAE
    from scratchdgm.optim import Adam
    from scratchdgm.threads import kernel_threads

    model = IWAE(ARCH["input_dim"], latent_dim=ARCH["latent_dim"], hidden=ARCH["hidden"],
                 k=k, dtype=dtype, random_state=seed, backend=backend)
    opt = Adam(model.parameters(), lr=1e-3, backend=backend)
    rng = np.random.default_rng(seed)
    # Synthetic binary "images" (about 13% ones, like binarised MNIST): the step's cost does
    # not depend on the pixel values.
    x = (rng.random((batch, ARCH["input_dim"])) < 0.13).astype(dtype)

    def step():
        # as fit runs its steps: the compiled kernels serial, the BLAS on --threads threads
        # (scratchdgm.models.deep.training.fit, blas_threads)
        with kernel_threads(1):
            opt.zero_grad()
            loss = model.objective(x, k, rng)
            loss.backward()
            opt.step()
        return loss

    step.model = model
    return step


def _torch_step(k, batch, dtype, seed=0, init_from=None):
    """The same step in PyTorch (an optional peer; None when torch is not importable).

    ``init_from``: one of our IWAE models whose initial weights the torch networks copy, so
    that both sides start from the same point (the weights set the spread of the log weights,
    hence how many tiny -- and slow, subnormal -- numbers the backward pass meets).
    """
    try:
        import torch
    except ImportError:
        return None
    import math

    import numpy as np

    torch.manual_seed(seed)
    p = ARCH["input_dim"]
    enc, dec = torch_iwae_networks(torch, dtype, init_from, ARCH)
    opt = torch.optim.Adam(list(enc.parameters()) + list(dec.parameters()), lr=1e-3)
    rng = np.random.default_rng(seed)
    x = torch.from_numpy((rng.random((batch, p)) < 0.13).astype(dtype))

    def step():
        opt.zero_grad()
        log_w = torch_log_weights(torch, enc, dec, x, k)
        loss = -(torch.logsumexp(log_w, 0) - math.log(k)).mean()
        loss.backward()
        opt.step()
        return loss

    return step, torch


def _with_ftz(torch, step):
    """Run ``step`` with flush-to-zero / denormals-are-zero on, restoring the mode after."""
    def wrapped():
        torch.set_flush_denormal(True)
        try:
            return step()
        finally:
            torch.set_flush_denormal(False)
    return wrapped


def measure(args):
    """Run the protocol; returns a dict (machine, one row per K and backend)."""
    for k in args.k:
        if k < 1:
            raise ValueError(f"--k must be >= 1, got {k}")
    if args.batch < 1 or args.steps < 1:
        raise ValueError("--batch and --steps must be >= 1")
    from scratchdgm.backend import resolve_backend

    backends = [resolve_backend(b) for b in args.backend]
    _ctx = limit_threads(args.threads)  # noqa: F841
    torch_mod = None
    if not args.no_torch:
        try:
            import torch as torch_mod

            torch_mod.set_num_threads(args.threads)
        except ImportError:
            torch_mod = None
            print("(torch is not importable: the PyTorch peer is skipped)", file=sys.stderr)

    # As in fit: freed memory is kept for the next step (scratchdgm.memory). The setting is
    # the process's, so the peer, run in this process, gets it too.
    from scratchdgm.memory import reuse_freed_memory

    with reuse_freed_memory() as kept:
        rows = _measure_steps(args, backends, torch_mod)
    return {"machine": machine_info(args.threads), "results": rows,
            "has_torch": torch_mod is not None, "freed_memory_kept": kept}


def _measure_steps(args, backends, torch_mod):
    rows = []
    # interleave in rounds of `chunk` steps, so that both sides see the same machine load
    chunk = 10
    rounds = max(1, -(-args.steps // chunk))
    # a bar over the rounds of every K (stderr; its updates fall between the timings)
    bar = progress(total=len(args.k) * rounds, desc="iwae-step", unit="round", leave=False)
    for k in args.k:
        runners = {b: _our_step(b, k, args.batch, args.dtype) for b in backends}
        if torch_mod is not None:
            runners["torch"] = _torch_step(k, args.batch, args.dtype,
                                           init_from=runners[backends[0]].model)[0]
            # PyTorch again with flush-to-zero (torch.set_flush_denormal), which PyTorch users
            # may switch on: subnormal numbers slow its backward pass badly at large K. Our
            # kernels avoid most of them by flushing negligible importance weights instead.
            runners["torch-ftz"] = _with_ftz(torch_mod, _torch_step(
                k, args.batch, args.dtype, init_from=runners[backends[0]].model)[0])
        times = {name: [] for name in runners}
        first = {}
        for name, fn in runners.items():
            # the first step of a backend includes its kernels' compilation (lazy, per dtype)
            t0 = time.perf_counter()
            fn()
            first[name] = time.perf_counter() - t0
            for _ in range(args.warmup):
                fn()
        for _ in range(rounds):
            for name, fn in runners.items():
                for _ in range(chunk):
                    t0 = time.perf_counter()
                    fn()
                    times[name].append(time.perf_counter() - t0)
            bar.update()
        med = {name: statistics.median(t[:args.steps]) for name, t in times.items()}
        for b in backends:
            row = {"k": k, "batch": args.batch, "threads": args.threads, "dtype": args.dtype,
                   "backend": b, "step_seconds": med[b], "steps": len(times[b][:args.steps]),
                   "first_step_seconds": first[b]}
            if "torch" in med:
                row["torch_step_seconds"] = med["torch"]
                row["ratio_to_torch"] = med[b] / med["torch"]
                row["torch_ftz_step_seconds"] = med["torch-ftz"]
                row["ratio_to_torch_ftz"] = med[b] / med["torch-ftz"]
            rows.append(row)
    bar.close()
    return rows


def summary_rows(out):
    """Rows ``(figure, ours, peer, ratio, goal)`` for the one table of ``scratchdgm bench all``."""
    rows = []
    for r in out["results"]:
        if r["backend"] != "numba":
            continue
        what = (f"one IWAE step K={r['k']}, batch {r['batch']}, {r['dtype']}, "
                f"{r['threads']} thread(s)")
        if "torch_step_seconds" in r:
            rows.append((what, f"{1e3 * r['step_seconds']:.2f} ms",
                         f"PyTorch {1e3 * r['torch_step_seconds']:.2f} ms",
                         f"{r['ratio_to_torch']:.2f}x", "-"))
        else:
            rows.append((what, f"{1e3 * r['step_seconds']:.2f} ms", "(no PyTorch)", "-", "-"))
    return rows


def run(args):
    out = measure(args)
    rows = out["results"]
    if args.json:
        res = dict(rows[0]) if len(rows) == 1 else {"results": rows}
        res["machine"] = out["machine"]
        print(json.dumps(res, indent=2))
        return 0
    report(out, args)
    return 0


def report(out, args):
    """Print the table of :func:`measure`'s results."""
    rows = out["results"]
    torch_mod = out["has_torch"] or None
    print(machine_line(args.threads))
    print(f"IWAE step 784-200-200-50, batch {args.batch}, {args.dtype}, {args.threads} "
          f"thread(s), median of {args.steps} steps (interleaved with the peer)")
    headers = ["K", "backend", "step ms", "1st step s"]
    if torch_mod is not None:
        headers += ["torch ms", "ours / torch", "torch FTZ ms", "ours / torch FTZ"]
    lines = []
    for r in rows:
        line = [r["k"], r["backend"], f"{1e3 * r['step_seconds']:.2f}",
                f"{r['first_step_seconds']:.2f}"]
        if "torch_step_seconds" in r:
            line += [f"{1e3 * r['torch_step_seconds']:.2f}", f"{r['ratio_to_torch']:.2f}",
                     f"{1e3 * r['torch_ftz_step_seconds']:.2f}",
                     f"{r['ratio_to_torch_ftz']:.2f}"]
        lines.append(line)
    print(table(headers, lines))
    print("(1st step: the first step of a fresh model; for numba in a fresh process it includes "
          "compiling the kernels)")
    if out.get("freed_memory_kept"):
        print("(freed memory kept for the next step, as fit does -- scratchdgm.memory -- for "
              "every column: the setting is the process's)")
    print("(ours as fit runs a step: the compiled kernels serial, the BLAS on the threads "
          "given)")
    if args.threads > 1 and torch_mod is not None:
        print("(on several threads, in this one process, each side's idle threads spin while the "
              "other runs and slow it: the ratio is not PyTorch's speed alone; --no-torch "
              "measures ours alone)")


if __name__ == "__main__":
    from scratchdgm.cli import main

    sys.exit(main(["bench", "iwae-step", *sys.argv[1:]]))
