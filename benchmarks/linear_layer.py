r"""The measurement behind the linear-layer design of :mod:`scratchdgm.kernels.cpu`.

One BLAS GEMM over the K*B rows plus a fused Numba bias+activation pass (what
:func:`scratchdgm.kernels.cpu.linear` does), against a Numba matrix product with the bias and
activation fused into it (the design it was chosen over, kept here as the peer), and against
NumPy (GEMM, then separate bias and activation passes).
Run ``scratchdgm bench linear-layer [--dtype float32] [--threads 1]``.
"""

import json
import sys

from scratchdgm.benchmarks.common import limit_threads, machine_info, machine_line, median_time, table
from scratchdgm.progress import progress

HELP = "linear-layer design: BLAS GEMM + fused pass against a fused Numba matmul and NumPy"


def configure_parser(p):
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    p.add_argument("--repeats", type=int, default=30)
    p.add_argument("--json", action="store_true")


def run(args):
    import numpy as np

    from scratchdgm.kernels import cpu, reference

    _ctx = limit_threads(args.threads)  # noqa: F841
    dt = np.dtype(args.dtype)
    rng = np.random.default_rng(0)
    alt = _build_fused_matmul(dt)
    rows = []
    # the decoder's layers at K = 50, batch 20 (1000 rows), and the encoder's at batch 20
    shapes = [(1000, 50, 200), (1000, 200, 200), (1000, 200, 784), (20, 784, 200)]
    for N, n, m in progress(shapes, desc="linear-layer", unit="shape", leave=False):
        x = rng.standard_normal((N, n)).astype(dt)
        W = (rng.standard_normal((n, m)) / np.sqrt(n)).astype(dt)
        b = rng.standard_normal(m).astype(dt)
        out = np.empty((N, m), dt)
        t_blas = median_time(lambda: cpu.linear(x, W, b, "tanh"), args.repeats)
        t_alt = median_time(lambda: alt(x, W, b, out), args.repeats)
        t_np = median_time(lambda: reference.linear(x, W, b, "tanh"), args.repeats)
        t_gemm = median_time(lambda: x @ W, args.repeats)
        assert np.allclose(out, reference.linear(x, W, b, "tanh"), atol=1e-4)
        flop = 2.0 * N * n * m
        rows.append({"shape": f"{N}x{n} @ {n}x{m}", "blas_fused_ms": 1e3 * t_blas,
                     "numba_matmul_fused_ms": 1e3 * t_alt, "numpy_ms": 1e3 * t_np,
                     "gemm_only_ms": 1e3 * t_gemm, "gemm_gflops": flop / t_gemm / 1e9,
                     "numba_matmul_gflops": flop / t_alt / 1e9})
    if args.json:
        print(json.dumps({"machine": machine_info(args.threads), "dtype": args.dtype,
                          "threads": args.threads, "results": rows}, indent=2))
        return 0
    print(machine_line(args.threads))
    print(f"linear + bias + tanh, {args.dtype}, {args.threads} thread(s), median of "
          f"{args.repeats}")
    print(table(["shape", "cpu.linear (GEMM + pass) ms", "Numba fused matmul ms",
                  "NumPy (3 passes) ms", "GEMM alone ms", "GEMM GFLOP/s",
                  "Numba matmul GFLOP/s"],
                 [(r["shape"], f"{r['blas_fused_ms']:.3f}", f"{r['numba_matmul_fused_ms']:.3f}",
                   f"{r['numpy_ms']:.3f}", f"{r['gemm_only_ms']:.3f}",
                   f"{r['gemm_gflops']:.0f}", f"{r['numba_matmul_gflops']:.0f}")
                  for r in rows]))
    return 0


def _build_fused_matmul(dtype):
    """A Numba matrix product, bias and tanh fused into its output loop (the alternative).

    Rows of x times W accumulate in a row buffer (the inner loop over the m outputs is
    contiguous and vectorises), then bias and tanh are applied before the single store.
    """
    import numba
    import numpy as np

    from scratchdgm.kernels._vmath import vtanh

    @numba.njit(error_model="numpy", fastmath={"contract", "reassoc"})
    def fused(x, W, b, out):
        N, n = x.shape
        m = W.shape[1]
        acc = np.empty(m, dtype=x.dtype)
        for r in range(N):
            xr = x[r]
            for j in range(m):
                acc[j] = b[j]
            for i in range(n):
                xi = xr[i]
                Wi = W[i]
                for j in range(m):
                    acc[j] += xi * Wi[j]
            o = out[r]
            for j in range(m):
                o[j] = vtanh(acc[j])
        return out

    return fused


if __name__ == "__main__":
    from scratchdgm.cli import main

    sys.exit(main(["bench", "linear-layer", *sys.argv[1:]]))
