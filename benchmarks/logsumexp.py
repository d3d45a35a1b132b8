r"""Log-sum-exp over the K importance samples: the Numba kernel against SciPy, NumPy, the
memory bandwidth and the arithmetic ceiling of its exponential.

(K=50, B=200000) and (K=5000, B=2000) float64 arrays: GB/s read by the Numba kernel
(:func:`scratchdgm.kernels.cpu.logsumexp`), by ``scipy.special.logsumexp`` and by the NumPy
reference, against, measured in the same run:

* the **read bandwidth** of ``--threads`` cores: NumPy sums over the same bytes (one slice of
  rows per thread);
* the **exponential's ceiling**: the kernel's own inner pass
  (:func:`scratchdgm.kernels.cpu._lse_add_rows`: eight rows of ``s[j] += exp(min(a[k, j] -
  shift[j], hi))`` at once, the same vectorised exponential) run over an input of 8 x 256
  float64 (16 KiB) per thread that stays in the L1 cache with its shifts and sums (4 KiB), so
  that memory costs nothing: the most GB/s the log-sum-exp could reach on ``--threads`` cores
  if every load were free. It is timed in the same rounds as the kernel. When this ceiling is
  below the bandwidth, the kernel is bound by arithmetic, not by memory;
* the **no-overlap rate**, :math:`1 / (1/\text{ceiling} + 1/\text{bandwidth})`: the GB/s of a
  kernel whose arithmetic and loads never run at the same time (its time the sum of the two).
  A kernel near it overlaps nothing; one above it hides part of its memory time behind the
  arithmetic, and only such a kernel can approach the smaller of the two.

Goal (issue 14): at least 10x SciPy and 60% of the bandwidth, or a measured explanation of why
not: the ceiling column is that explanation when it is itself below 60%.
Each figure is measured on one thread and on every core (``--threads``), the bandwidth and
the ceiling on as many threads as the kernel.
Run ``scratchdgm bench logsumexp [--repeats 7] [--threads 1 2] [--json]``.
"""

import functools
import statistics
import sys
import time

from scratchdgm.benchmarks.common import (
    limit_threads,
    machine_info,
    machine_line,
    print_result,
    table,
)
from scratchdgm.progress import progress

HELP = "log-sum-exp over K: GB/s against scipy, the read bandwidth and the exp's ceiling"


def configure_parser(p):
    p.add_argument("--repeats", type=int, default=7, help="timed calls per case (median)")
    from scratchdgm.threads import available_cores

    p.add_argument("--threads", type=int, nargs="+", default=sorted({1, available_cores()}),
                   help="thread counts to measure (default: 1 and every core)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")


#: Columns of the in-cache array of the ceiling: LSE_ROWS x 256 float64 (16 KiB) with 256
#: shifts and sums (4 KiB) stay in L1.
CEILING_ENTRIES = 256
CEILING_SWEEPS = 1000


@functools.lru_cache(maxsize=None)
def _ceiling_kernel():
    """The log-sum-exp's inner pass on in-cache arrays, repeated (compiled on first use, once
    per process)."""
    from numba import njit, prange

    from scratchdgm.kernels.cpu import _lse_add_rows

    @njit(error_model="numpy", nogil=True, parallel=True)
    def sweeps(a, sh, s, hi, n_sweeps):
        # one private (a, sh, s) per thread, each swept n_sweeps times
        for t in prange(a.shape[0]):
            rows, shift, acc = a[t], sh[t], s[t]
            for _ in range(n_sweeps):
                _lse_add_rows(rows, 0, 0, rows.shape[1], shift, acc, hi)

    return sweeps


class _Ceiling:
    """The kernel's inner loop on L1-resident data (arithmetic only), on ``threads`` threads:
    call it to time one run; :attr:`bytes` is what one run reads."""

    def __init__(self, threads):
        import numpy as np

        from scratchdgm.kernels.cpu import LSE_ROWS

        rng = np.random.default_rng(1)
        self.a = rng.standard_normal((threads, LSE_ROWS, CEILING_ENTRIES)) * 3.0
        self.sh = self.a[:, 0, :1] + np.zeros((threads, CEILING_ENTRIES))
        self.s = np.zeros((threads, CEILING_ENTRIES))
        self.sweeps = _ceiling_kernel()
        self.sweeps(self.a, self.sh, self.s, 700.0, 1)  # compile
        self.bytes = self.a.nbytes * CEILING_SWEEPS

    def __call__(self):
        self.sweeps(self.a, self.sh, self.s, 700.0, CEILING_SWEEPS)


def _threaded_sum(a, threads, pool):
    """Sum of ``a`` read by ``threads`` threads, one contiguous slice of rows each (NumPy's
    reductions release the GIL): the read bandwidth of that many cores."""
    if pool is None:
        return a.sum()
    edges = [len(a) * t // threads for t in range(threads + 1)]
    parts = [a[e0:e1] for e0, e1 in zip(edges[:-1], edges[1:]) if e1 > e0]
    return sum(pool.map(lambda part: part.sum(), parts))


def _thread_counts(args):
    counts = sorted(set(args.threads))
    if counts[0] < 1:
        raise ValueError(f"--threads must be >= 1, got {counts[0]}")
    return counts


def measure(args):
    """Run the protocol; returns a dict (machine, thread counts, one result per thread count
    and shape)."""
    counts = _thread_counts(args)
    results = []
    for threads in counts:
        results += _measure_on(threads, args.repeats)
    return {"machine": machine_info(max(counts)), "threads": counts,
            "wide_vectors": _wide_vectors(),
            "results": results}


def _wide_vectors():
    from scratchdgm.kernels import cpu

    return bool(cpu.WIDE_VECTORS)


def _measure_on(threads, repeats):
    from concurrent.futures import ThreadPoolExecutor

    import numpy as np
    from scipy.special import logsumexp as scipy_lse

    from scratchdgm.kernels import cpu, reference

    _ctx = limit_threads(threads)  # noqa: F841 (kept alive for the run)
    pool = ThreadPoolExecutor(threads) if threads > 1 else None
    ceiling = _Ceiling(threads)
    rng = np.random.default_rng(0)
    results = []
    cases = [(50, 200_000), (5000, 2000)]
    # a bar over the timed rounds (stderr; its updates fall between the timings)
    bar = progress(total=len(cases) * repeats, desc=f"logsumexp, {threads} thread(s)",
                   unit="round", leave=False)
    for K, B in cases:
        a = rng.standard_normal((K, B)) * 3.0
        cpu.logsumexp(a)  # compile outside the timing
        gb = a.nbytes / 1e9
        # Interleave the five measurements so that a noisy neighbour (or a change of clock
        # speed) affects all alike.
        t = {"numba": [], "scipy": [], "numpy": [], "bandwidth": [], "ceiling": []}
        fns = {"numba": lambda: cpu.logsumexp(a), "scipy": lambda: scipy_lse(a, axis=0),
               "numpy": lambda: reference.logsumexp(a),
               "bandwidth": lambda: _threaded_sum(a, threads, pool), "ceiling": ceiling}
        for fn in fns.values():
            fn()
        for _ in range(repeats):
            for name, fn in fns.items():
                # One untimed call first: the peer just before (scipy's and NumPy's 80 MB
                # temporaries) leaves the allocator and the TLB in a state that slows the
                # next call, whichever it is, by about 10%; time each in its own steady state.
                fn()
                t0 = time.perf_counter()
                fn()
                t[name].append(time.perf_counter() - t0)
            bar.update()
        med = {k: statistics.median(v) for k, v in t.items()}
        err = float(np.max(np.abs(cpu.logsumexp(a) - scipy_lse(a, axis=0))))
        bw = gb / med["bandwidth"]
        ceiling_gbs = ceiling.bytes / 1e9 / med["ceiling"]
        no_overlap = 1.0 / (1.0 / ceiling_gbs + 1.0 / bw)
        results.append({
            "K": K, "B": B, "threads": threads, "bytes": a.nbytes,
            "numba_gbs": gb / med["numba"], "scipy_gbs": gb / med["scipy"],
            "numpy_gbs": gb / med["numpy"], "read_bandwidth_gbs": bw,
            "x_scipy": med["scipy"] / med["numba"],
            "fraction_of_bandwidth": (gb / med["numba"]) / bw,
            "exp_ceiling_gbs": ceiling_gbs, "ceiling_fraction_of_bandwidth": ceiling_gbs / bw,
            "fraction_of_ceiling": (gb / med["numba"]) / ceiling_gbs,
            "no_overlap_gbs": no_overlap,
            "fraction_of_no_overlap": (gb / med["numba"]) / no_overlap,
            "numba_seconds": med["numba"], "max_abs_diff_vs_scipy": err,
        })
    bar.close()
    if pool is not None:
        pool.shutdown()
    return results


def summary_rows(out):
    """Rows ``(figure, ours, peer, ratio, goal)`` for the one table of ``scratchdgm bench all``."""
    return [(f"log-sum-exp over K, {r['K']} x {r['B']} float64, {r['threads']} thread(s)",
             f"{r['numba_gbs']:.2f} GB/s",
             f"read bandwidth {r['read_bandwidth_gbs']:.2f} GB/s; exp ceiling "
             f"{r['exp_ceiling_gbs']:.2f} GB/s ({100 * r['ceiling_fraction_of_bandwidth']:.0f}%"
             f" of BW); no overlap {r['no_overlap_gbs']:.2f}; scipy {r['scipy_gbs']:.2f}",
             f"{100 * r['fraction_of_bandwidth']:.0f}% of BW, "
             f"{100 * r['fraction_of_ceiling']:.0f}% of ceiling, "
             f"{100 * r['fraction_of_no_overlap']:.0f}% of no overlap, {r['x_scipy']:.1f}x scipy",
             ">= 60% of BW, or a ceiling below it") for r in out["results"]]


def run(args):
    return print_result(measure(args), args, report)


def report(info, args):
    """Print the table of :func:`measure`'s results."""
    results = info["results"]
    print(machine_line(max(info["threads"])))
    print(f"log-sum-exp over K, float64, median of {args.repeats}; "
          f"512-bit vectors: {'yes' if info['wide_vectors'] else 'no'}; read BW and exp ceiling "
          "on as many threads as the kernel")
    rows = [(f"{r['K']} x {r['B']}", str(r["threads"]), f"{r['numba_gbs']:.2f}", f"{r['scipy_gbs']:.2f}",
             f"{r['numpy_gbs']:.2f}", f"{r['read_bandwidth_gbs']:.2f}",
             f"{r['exp_ceiling_gbs']:.2f}", f"{r['x_scipy']:.1f}x",
             f"{100 * r['fraction_of_bandwidth']:.0f}%",
             f"{100 * r['ceiling_fraction_of_bandwidth']:.0f}%",
             f"{100 * r['fraction_of_ceiling']:.0f}%", f"{r['no_overlap_gbs']:.2f}",
             f"{100 * r['fraction_of_no_overlap']:.0f}%") for r in results]
    print(table(["K x B", "threads", "numba GB/s", "scipy GB/s", "numpy GB/s", "read BW GB/s",
                 "exp ceiling GB/s", "x scipy", "% of BW", "ceiling % of BW",
                 "% of ceiling", "no overlap GB/s", "% of no overlap"], rows))
    print("(exp ceiling: the kernel's inner loop on data in the L1 cache -- its arithmetic "
          "alone; when it is below 60% of the bandwidth, so is any kernel built on this "
          "exponential. no overlap: 1 / (1/ceiling + 1/BW), the rate if loads and arithmetic "
          "took turns)")


if __name__ == "__main__":
    from scratchdgm.cli import main

    sys.exit(main(["bench", "logsumexp", *sys.argv[1:]]))
