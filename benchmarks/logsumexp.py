r"""Log-sum-exp over the K importance samples: the Numba kernel against SciPy, NumPy and the
memory bandwidth.

(K=50, B=200000) and (K=5000, B=2000) float64 arrays: GB/s read by the Numba kernel
(:func:`scratchdgm.kernels.cpu.logsumexp`), by ``scipy.special.logsumexp`` and by the NumPy
reference, against the one-core read bandwidth measured in the same run (a NumPy sum over the
same bytes). Goal: at least 10x SciPy and 60% of the bandwidth.
Run ``scratchdgm bench logsumexp [--repeats 7] [--threads 1] [--json]``.
"""

import json
import statistics
import sys
import time

from scratchdgm.benchmarks.common import limit_threads, machine_info, machine_line, table
from scratchdgm.progress import progress

HELP = "log-sum-exp over K: GB/s against scipy and the read bandwidth"


def configure_parser(p):
    p.add_argument("--repeats", type=int, default=7, help="timed calls per case (median)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")


def run(args):
    import numpy as np
    from scipy.special import logsumexp as scipy_lse

    from scratchdgm.kernels import cpu, reference

    _ctx = limit_threads(args.threads)  # noqa: F841 (kept alive for the run)
    rng = np.random.default_rng(0)
    results = []
    cases = [(50, 200_000), (5000, 2000)]
    # a bar over the timed rounds (stderr; its updates fall between the timings)
    bar = progress(total=len(cases) * args.repeats, desc="logsumexp", unit="round", leave=False)
    for K, B in cases:
        a = rng.standard_normal((K, B)) * 3.0
        cpu.logsumexp(a[:, :8].copy())  # compile outside the timing
        gb = a.nbytes / 1e9
        # Interleave the four measurements so that a noisy neighbour affects all alike.
        t = {"numba": [], "scipy": [], "numpy": [], "bandwidth": []}
        fns = {"numba": lambda: cpu.logsumexp(a), "scipy": lambda: scipy_lse(a, axis=0),
               "numpy": lambda: reference.logsumexp(a), "bandwidth": lambda: a.sum()}
        for fn in fns.values():
            fn()
        for _ in range(args.repeats):
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
        results.append({
            "K": K, "B": B, "bytes": a.nbytes,
            "numba_gbs": gb / med["numba"], "scipy_gbs": gb / med["scipy"],
            "numpy_gbs": gb / med["numpy"], "read_bandwidth_gbs": bw,
            "x_scipy": med["scipy"] / med["numba"],
            "fraction_of_bandwidth": (gb / med["numba"]) / bw,
            "numba_seconds": med["numba"], "max_abs_diff_vs_scipy": err,
        })
    bar.close()
    info = {"machine": machine_info(args.threads), "threads": args.threads,
            "wide_vectors": bool(cpu.WIDE_VECTORS), "results": results}
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(machine_line(args.threads))
    print(f"log-sum-exp over K, float64, {args.threads} thread(s), median of {args.repeats}; "
          f"512-bit vectors: {'yes' if cpu.WIDE_VECTORS else 'no'}")
    rows = [(f"{r['K']} x {r['B']}", f"{r['numba_gbs']:.2f}", f"{r['scipy_gbs']:.2f}",
             f"{r['numpy_gbs']:.2f}", f"{r['read_bandwidth_gbs']:.2f}", f"{r['x_scipy']:.1f}x",
             f"{100 * r['fraction_of_bandwidth']:.0f}%") for r in results]
    print(table(["K x B", "numba GB/s", "scipy GB/s", "numpy GB/s", "read BW GB/s",
                  "x scipy", "% of BW"], rows))
    return 0


if __name__ == "__main__":
    from scratchdgm.cli import main

    sys.exit(main(["bench", "logsumexp", *sys.argv[1:]]))
