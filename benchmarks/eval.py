r"""The importance-sampled log-likelihood with K = 5000 against its matrix-product floor, on one
thread and on every core, and against PyTorch.

Protocol (issue 14, goal 2): the IWAE paper's architecture, 784-200-200-50 (tanh, Bernoulli), at
its initial weights; ``--n`` binary MNIST-sized images (:func:`~scratchdgm.benchmarks.common.
mnist_sized_data`); :meth:`scratchdgm.IWAE.score_samples` with K = ``--k``, in float32 and
float64. Measured in the same run, interleaved:

* **the GEMM floor** -- the flops of the decoder's layers for every sample and of the encoder's
  for every image, :math:`2 K n (d h_2 + h_2 h_1 + h_1 p) + 2 n (p h_1 + h_1 h_2 + 2 h_2 d)`, at
  the rate one core's BLAS reaches on exactly those layer shapes (blocks of the row count, of
  :attr:`~scratchdgm.models.deep.VAE.EVAL_BLOCK_ROWS` and 4096, where it is fastest; into
  preallocated outputs): the time of the matrix products alone, with nothing else. The
  one-thread run is split into ``--rounds`` rounds, each followed by the floor's products for
  the same flops, so that both are timed over the same minutes: on this shared host the same
  command runs 10-25% slower at one hour than at another, and a floor timed in a few seconds
  at another moment than our minute-long run would move the ratio by as much;
* ours on one thread (``n_jobs=1``) and on ``--threads`` threads (default: every core);
* PyTorch (optional peer, skipped with a note when absent) on the same weights and images,
  chunked the same way under ``torch.no_grad()``, on the same numbers of threads;
* one part of ours on its own: the K d standard normal draws of one image, by the compiled
  Box--Muller sampler the evaluation uses (:func:`scratchdgm.autodiff.fused.box_muller_normal`)
  and by NumPy's ``Generator.standard_normal`` (its ziggurat), one thread, best of 15.

Goals: ours within 1.3x of the floor, and at least 1.8x faster on 2 cores than on one.
Run ``scratchdgm bench eval [--n 2000] [--k 5000] [--dtype float32 float64] [--json]``.
"""

import statistics
import sys
import time

from scratchdgm.benchmarks.common import (
    IWAE_PAPER_ARCH,
    import_torch,
    limit_threads,
    machine_info,
    machine_line,
    mnist_sized_data,
    print_result,
    table,
    torch_iwae_networks,
    torch_log_likelihood,
)

HELP = "importance-sampled log-likelihood (K=5000): against the GEMM floor, 1 vs all cores, PyTorch"

ARCH = IWAE_PAPER_ARCH


def configure_parser(p):
    from scratchdgm.threads import available_cores

    p.add_argument("--n", type=int, default=2000, help="images (default 2000, issue 14)")
    p.add_argument("--k", type=int, default=5000, help="importance samples per image")
    p.add_argument("--dtype", nargs="+", choices=["float32", "float64"],
                   default=["float32", "float64"])
    p.add_argument("--threads", type=int, default=available_cores(),
                   help="threads of the parallel run (default: every core)")
    p.add_argument("--repeats", type=int, default=1, help="timed runs of each (median)")
    p.add_argument("--rounds", type=int, default=8,
                   help="rounds of the one-thread run, each followed by the floor's products")
    p.add_argument("--mnist", default=None, metavar="DIR", help="real MNIST IDX files in DIR")
    p.add_argument("--no-torch", action="store_true", help="skip the PyTorch peer")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")


def _layer_shapes():
    """The decoder's three weight shapes, (d, h2), (h2, h1), (h1, p)."""
    p, (h1, h2), d = ARCH["input_dim"], ARCH["hidden"], ARCH["latent_dim"]
    return [(d, h2), (h2, h1), (h1, p)]


def _flops(n, k):
    """(flops of the whole evaluation, flops of one decoder pass for one sample)."""
    p, (h1, h2), d = ARCH["input_dim"], ARCH["hidden"], ARCH["latent_dim"]
    decoder = 2 * sum(a * b for a, b in _layer_shapes())
    encoder = 2 * (p * h1 + h1 * h2 + h2 * 2 * d)
    return n * k * decoder + n * encoder, decoder


def _gemm_blocks(dtype, rows):
    """``(A, B, C)`` for the decoder's three layer products on a block of ``rows`` samples."""
    import numpy as np

    rng = np.random.default_rng(0)
    return [(rng.standard_normal((rows, a)).astype(dtype),
             rng.standard_normal((a, b)).astype(dtype),
             np.empty((rows, b), dtype)) for a, b in _layer_shapes()]


def _gemm_seconds(blocks, n_blocks):
    """Seconds for ``n_blocks`` passes of the three products of :func:`_gemm_blocks`."""
    import numpy as np

    t0 = time.perf_counter()
    for _ in range(n_blocks):
        for a, b, c in blocks:
            np.matmul(a, b, out=c)
    return time.perf_counter() - t0


def _fastest_rows(dtype, rows_list, repeats=5):
    """The block row count of ``rows_list`` at which the three products run fastest."""
    best = {}
    for rows in rows_list:
        blocks = _gemm_blocks(dtype, rows)
        _gemm_seconds(blocks, 1)
        best[rows] = rows / min(_gemm_seconds(blocks, 1) for _ in range(repeats))
    return max(best, key=best.get)


def _one_thread_against_floor(model, x, k, rounds, dtype, rows):
    """Ours on one thread and the GEMM floor, interleaved in ``rounds`` rounds over the images:
    (our seconds, floor seconds, GEMM flops per second, our values). Each round's products
    cover that round's decoder rows, in whole blocks; the floor is all the flops (encoder
    included) at the rate they reached over the rounds."""
    import numpy as np

    n = len(x)
    flops_per_sample = _flops(1, 1)[1]
    blocks = _gemm_blocks(dtype, rows)
    ours = gemm_flops = gemm_seconds = 0.0
    values = []
    edges = np.linspace(0, n, min(rounds, n) + 1).astype(int)
    for r, (i0, i1) in enumerate(zip(edges[:-1], edges[1:])):
        t0 = time.perf_counter()
        values.append(model.score_samples(x[i0:i1], k=k, random_state=r, n_jobs=1))
        ours += time.perf_counter() - t0
        n_blocks = -(-(i1 - i0) * k // rows)
        gemm_seconds += _gemm_seconds(blocks, n_blocks)
        gemm_flops += n_blocks * rows * flops_per_sample
    rate = gemm_flops / gemm_seconds
    return ours, _flops(n, k)[0] / rate, rate, np.concatenate(values)


def _draw_times(dtype, n_draws, repeats=15):
    """Seconds for ``n_draws`` standard normals of ``dtype`` on one thread: (ours, NumPy's)."""
    import numpy as np

    from scratchdgm.autodiff.fused import box_muller_normal
    from scratchdgm.threads import kernel_threads

    rng = np.random.default_rng(0)
    with kernel_threads(1):
        box_muller_normal(n_draws, rng, dtype)  # compiled already by the warm-up; cheap if not
        best = {"ours": np.inf, "numpy": np.inf}
        for _ in range(repeats):  # interleaved
            for key, draw in (("ours", lambda: box_muller_normal(n_draws, rng, dtype)),
                              ("numpy", lambda: rng.standard_normal(n_draws, dtype=dtype))):
                t0 = time.perf_counter()
                draw()
                best[key] = min(best[key], time.perf_counter() - t0)
    return best["ours"], best["numpy"]


def _torch_scorer(torch, model, dtype):
    """PyTorch's importance-sampled log-likelihood with the weights of our ``model``."""
    enc, dec = torch_iwae_networks(torch, dtype, model, ARCH)
    block = type(model).EVAL_BLOCK_ROWS

    def score(x_np, k, seed=0):
        torch.manual_seed(seed)
        return torch_log_likelihood(torch, enc, dec, torch.from_numpy(x_np), k, block)

    return score


def measure(args):
    """Run the protocol; returns a dict (machine, settings, one result per dtype)."""
    import numpy as np

    from scratchdgm.models.deep import IWAE

    if min(args.n, args.k, args.threads, args.rounds, args.repeats) < 1:
        raise ValueError("--n, --k, --threads, --rounds and --repeats must be >= 1")
    _ctx = limit_threads(1)  # noqa: F841 (BLAS on one thread; our threads are n_jobs)
    torch = import_torch(1, not args.no_torch)
    results = []
    for dtype in args.dtype:
        _, x = mnist_sized_data(n_train=0, n_test=args.n, seed=1, dtype=dtype,
                                mnist_dir=args.mnist)
        model = IWAE(ARCH["input_dim"], latent_dim=ARCH["latent_dim"], hidden=ARCH["hidden"],
                     k=5, dtype=dtype, random_state=0)
        model.score_samples(x[:2], k=50, n_jobs=args.threads)  # compile, warm the pools
        flops, _ = _flops(args.n, args.k)
        rows = _fastest_rows(getattr(np, dtype), [model.EVAL_BLOCK_ROWS, 4096])
        runs = {"1": [], "floor": [], "rate": [], "N": [], "torch1": [], "torchN": []}
        torch_score = _torch_scorer(torch, model, dtype) if torch is not None else None
        values = {}
        for _ in range(args.repeats):
            # ours on one thread interleaved with the floor, then ours on N threads and the
            # peer on 1 and N
            ours, floor, rate, values["1"] = _one_thread_against_floor(
                model, x, args.k, args.rounds, getattr(np, dtype), rows)
            runs["1"].append(ours)
            runs["floor"].append(floor)
            runs["rate"].append(rate)
            t0 = time.perf_counter()
            values["N"] = model.score_samples(x, k=args.k, random_state=0, n_jobs=args.threads)
            runs["N"].append(time.perf_counter() - t0)
            if torch_score is not None:
                for key, threads in (("torch1", 1), ("torchN", args.threads)):
                    torch.set_num_threads(threads)
                    t0 = time.perf_counter()
                    values[key] = torch_score(x, args.k)
                    runs[key].append(time.perf_counter() - t0)
                torch.set_num_threads(1)
        med = {key: statistics.median(v) for key, v in runs.items() if v}
        floor = med["floor"]
        n_draws = args.k * ARCH["latent_dim"]
        draw_ours, draw_numpy = _draw_times(getattr(np, dtype), n_draws)
        r = {"dtype": dtype, "n": args.n, "k": args.k, "threads": args.threads,
             "rounds": min(args.rounds, args.n), "gemm_block_rows": rows, "flops": flops,
             "gemm_gflops": med["rate"] / 1e9, "floor_seconds": floor,
             "seconds_1_thread": med["1"], "seconds_n_threads": med["N"],
             "ratio_to_floor": med["1"] / floor, "speedup": med["1"] / med["N"],
             "mean_log_likelihood": float(np.mean(values["1"])),
             "draws_per_image": n_draws, "draw_seconds": draw_ours,
             "numpy_draw_seconds": draw_numpy}
        if "torch1" in med:
            r.update(torch_seconds_1_thread=med["torch1"], torch_seconds_n_threads=med["torchN"],
                     ratio_to_torch=med["1"] / med["torch1"],
                     ratio_to_torch_n_threads=med["N"] / med["torchN"],
                     torch_mean_log_likelihood=float(np.mean(values["torch1"])))
        results.append(r)
    return {"machine": machine_info(args.threads), "results": results}


def summary_rows(out):
    """Rows ``(figure, ours, peer, ratio, goal)`` for the one table of ``scratchdgm bench all``."""
    rows = []
    for r in out["results"]:
        what = f"eval K={r['k']}, {r['n']} images, {r['dtype']}"
        rows.append((f"{what}: 1 thread vs GEMM floor", f"{r['seconds_1_thread']:.2f} s",
                     f"floor {r['floor_seconds']:.2f} s ({r['gemm_gflops']:.0f} GFLOP/s)",
                     f"{r['ratio_to_floor']:.2f}x", "<= 1.3x"))
        rows.append((f"{what}: {r['threads']} threads vs 1", f"{r['seconds_n_threads']:.2f} s",
                     f"1 thread {r['seconds_1_thread']:.2f} s", f"{r['speedup']:.2f}x faster",
                     ">= 1.8x on 2 cores" if r["threads"] >= 2 else "-"))
        if "torch_seconds_1_thread" in r:
            rows.append((f"{what}: 1 thread vs PyTorch", f"{r['seconds_1_thread']:.2f} s",
                         f"PyTorch {r['torch_seconds_1_thread']:.2f} s",
                         f"{r['ratio_to_torch']:.2f}x", "-"))
        rows.append((f"{what}: the {r['draws_per_image']:,} normal draws of one image, 1 thread",
                     f"{r['draw_seconds'] * 1e3:.2f} ms",
                     f"NumPy standard_normal {r['numpy_draw_seconds'] * 1e3:.2f} ms",
                     f"{r['draw_seconds'] / r['numpy_draw_seconds']:.2f}x", "-"))
    return rows


def run(args):
    return print_result(measure(args), args, report)


def report(out, args):
    """Print the table of :func:`measure`'s results."""
    print(machine_line(args.threads))
    print(f"importance-sampled log-likelihood, IWAE 784-200-200-50 at its initial weights, "
          f"K = {args.k}, {args.n} images; BLAS on one thread per worker")
    headers = ["dtype", "GEMM GFLOP/s", "floor s", "1 thread s", "x floor",
               f"{args.threads} threads s", "speedup"]
    has_torch = any("torch_seconds_1_thread" in r for r in out["results"])
    if has_torch:
        headers += ["torch 1 thr s", "ours / torch", f"torch {args.threads} thr s"]
    rows = []
    for r in out["results"]:
        row = [r["dtype"], f"{r['gemm_gflops']:.1f}", f"{r['floor_seconds']:.2f}",
               f"{r['seconds_1_thread']:.2f}", f"{r['ratio_to_floor']:.2f}",
               f"{r['seconds_n_threads']:.2f}", f"{r['speedup']:.2f}"]
        if has_torch:
            row += [f"{r['torch_seconds_1_thread']:.2f}", f"{r['ratio_to_torch']:.2f}",
                    f"{r['torch_seconds_n_threads']:.2f}"]
        rows.append(row)
    print(table(headers, rows))
    print("(floor: the flops of every decoder and encoder product at the GEMM rate one core "
          f"reaches on those shapes, measured in {out['results'][0]['rounds']} rounds interleaved "
          "with the one-thread run)")
    for r in out["results"]:
        print(f"{r['dtype']}: the {r['draws_per_image']:,} normal draws of one image take "
              f"{r['draw_seconds'] * 1e3:.2f} ms by the Box-Muller kernel, "
              f"{r['numpy_draw_seconds'] * 1e3:.2f} ms by NumPy's standard_normal (one thread)")


if __name__ == "__main__":
    from scratchdgm.cli import main

    sys.exit(main(["bench", "eval", *sys.argv[1:]]))
