r"""``scratchdgm bench``: speed of the hot-path kernels and of one IWAE training step.

Benchmarks print tables (and, with ``--json``, machine-readable results); they assert nothing.
Three subcommands:

``logsumexp``
    Log-sum-exp over K of (K=50, B=200000) and (K=5000, B=2000) float64 arrays on one thread:
    GB/s read by the Numba kernel, by ``scipy.special.logsumexp`` and by the NumPy reference,
    against the one-core read bandwidth measured in the same run (a NumPy sum over the same
    bytes). Goal: at least 10x scipy and 60% of the bandwidth.
``iwae-step``
    The speed protocol of design.md §5: one training step (forward, backward, Adam update) of
    the IWAE paper's architecture, 784-200-200-50 (encoder 784-200-200-(mu, log sigma), decoder
    50-200-200-784, tanh, Bernoulli), batch 20, at K = 1, 5, 50, on the backends asked for and,
    when torch is importable, in PyTorch on the same number of threads, interleaved in the
    same process, with the ratio. The step is that of :class:`scratchdgm.models.vae.IWAE`
    (``objective(x, k, rng)``, ``backward``, :class:`scratchdgm.optim.Adam`), i.e. what users
    train. Median over ``--steps`` steps after warm-up.
``linear``
    The measurement behind the linear-layer design of :mod:`scratchdgm.kernels.cpu`: one BLAS
    GEMM over the K*B rows plus a fused Numba bias+activation pass, against a Numba matrix
    product with the bias and activation fused into it, and against NumPy (GEMM, then separate
    bias and activation passes).

Threads: BLAS via threadpoolctl, Numba via ``numba.set_num_threads``, torch via
``torch.set_num_threads``. Heavy imports happen inside :func:`run`.
"""

import json
import statistics
import sys
import time

HELP = "benchmark the kernels (logsumexp, linear) and the IWAE training step (iwae-step)"


def configure_parser(parser):
    """Add the ``logsumexp``, ``iwae-step`` and ``linear`` subcommands to ``parser``."""
    sub = parser.add_subparsers(dest="bench", metavar="BENCHMARK")
    sub.required = True
    p = sub.add_parser("logsumexp", help="log-sum-exp over K: GB/s vs scipy and the bandwidth")
    p.add_argument("--repeats", type=int, default=7, help="timed calls per case (median)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")

    p = sub.add_parser("iwae-step", help="one IWAE training step (784-200-200-50, Adam)")
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

    p = sub.add_parser("linear", help="linear-layer design: BLAS + fused pass vs alternatives")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    p.add_argument("--repeats", type=int, default=30)
    p.add_argument("--json", action="store_true")


def run(args):
    """Run the chosen benchmark; returns the exit status."""
    if args.bench == "logsumexp":
        return _run_logsumexp(args)
    if args.bench == "iwae-step":
        return _run_iwae_step(args)
    return _run_linear(args)


# ----------------------------------------------------------------------------- helpers
def _limit_threads(n):
    """Limit BLAS and Numba to ``n`` threads; returns the threadpoolctl context (keep it)."""
    if n < 1:
        raise ValueError(f"--threads must be >= 1, got {n}")
    from threadpoolctl import threadpool_limits

    ctx = threadpool_limits(limits=n)
    try:
        import numba

        numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
    except ImportError:
        pass
    return ctx


def _median_time(fn, repeats, warmup=1):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _table(headers, rows):
    widths = [max(len(str(h)), *(len(str(r[i])) for r in rows)) for i, h in enumerate(headers)]
    line = "  ".join(str(h).rjust(w) for h, w in zip(headers, widths))
    out = [line, "  ".join("-" * w for w in widths)]
    out += ["  ".join(str(c).rjust(w) for c, w in zip(r, widths)) for r in rows]
    return "\n".join(out)


# ----------------------------------------------------------------------------- logsumexp
def _run_logsumexp(args):
    import numpy as np
    from scipy.special import logsumexp as scipy_lse

    from scratchdgm.kernels import cpu, reference

    _ctx = _limit_threads(args.threads)  # noqa: F841 (kept alive for the run)
    rng = np.random.default_rng(0)
    results = []
    for K, B in [(50, 200_000), (5000, 2000)]:
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
    info = {"threads": args.threads, "wide_vectors": bool(cpu.WIDE_VECTORS),
            "results": results}
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"log-sum-exp over K, float64, {args.threads} thread(s), median of {args.repeats}; "
          f"512-bit vectors: {'yes' if cpu.WIDE_VECTORS else 'no'}")
    rows = [(f"{r['K']} x {r['B']}", f"{r['numba_gbs']:.2f}", f"{r['scipy_gbs']:.2f}",
             f"{r['numpy_gbs']:.2f}", f"{r['read_bandwidth_gbs']:.2f}", f"{r['x_scipy']:.1f}x",
             f"{100 * r['fraction_of_bandwidth']:.0f}%") for r in results]
    print(_table(["K x B", "numba GB/s", "scipy GB/s", "numpy GB/s", "read BW GB/s",
                  "x scipy", "% of BW"], rows))
    return 0


# ----------------------------------------------------------------------------- IWAE step
ARCH = dict(input_dim=784, hidden=(200, 200), latent_dim=50)


def _our_step(backend, k, batch, dtype, seed=0):
    """Build the speed-protocol model and return a function doing one training step."""
    import numpy as np

    from scratchdgm.backend import use_backend
    from scratchdgm.models.vae import IWAE
    from scratchdgm.optim import Adam

    model = IWAE(ARCH["input_dim"], latent_dim=ARCH["latent_dim"], hidden=ARCH["hidden"],
                 k=k, dtype=dtype, random_state=seed, backend=backend)
    opt = Adam(model.parameters(), lr=1e-3)
    rng = np.random.default_rng(seed)
    # Synthetic binary "images" (about 13% ones, like binarised MNIST): the step's cost does
    # not depend on the pixel values.
    x = (rng.random((batch, ARCH["input_dim"])) < 0.13).astype(dtype)

    def step():
        # The optimiser follows the process backend: set it too, so that the "numpy" row is
        # NumPy throughout and the "numba" row uses the fused Adam kernel.
        with use_backend(backend):
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
    tdt = torch.float32 if dtype == "float32" else torch.float64
    p, (h1, h2), d = ARCH["input_dim"], ARCH["hidden"], ARCH["latent_dim"]
    nn = torch.nn
    enc = nn.Sequential(nn.Linear(p, h1), nn.Tanh(), nn.Linear(h1, h2), nn.Tanh(),
                        nn.Linear(h2, 2 * d)).to(tdt)
    dec = nn.Sequential(nn.Linear(d, h2), nn.Tanh(), nn.Linear(h2, h1), nn.Tanh(),
                        nn.Linear(h1, p)).to(tdt)
    if init_from is not None:
        with torch.no_grad():
            for ours, theirs in ((init_from.encoder, enc), (init_from.decoder, dec)):
                lin = [m for m in theirs if isinstance(m, nn.Linear)]
                for layer, t in zip(ours.layers, lin):
                    t.weight.copy_(torch.from_numpy(np.ascontiguousarray(layer.weight.data.T)))
                    t.bias.copy_(torch.from_numpy(layer.bias.data))
    opt = torch.optim.Adam(list(enc.parameters()) + list(dec.parameters()), lr=1e-3)
    rng = np.random.default_rng(seed)
    x = torch.from_numpy((rng.random((batch, p)) < 0.13).astype(dtype))
    half_log_2pi = 0.5 * math.log(2 * math.pi)

    def step():
        opt.zero_grad()
        h = enc(x)
        mu, log_sigma = h[:, :d], h[:, d:]
        eps = torch.randn(k, batch, d, dtype=tdt)
        z = mu + log_sigma.exp() * eps
        logits = dec(z)
        log_px = -nn.functional.binary_cross_entropy_with_logits(
            logits, x.expand_as(logits), reduction="none").sum(-1)
        log_pz = (-0.5 * z * z - half_log_2pi).sum(-1)
        log_qz = (-0.5 * eps * eps - log_sigma - half_log_2pi).sum(-1)
        loss = -(torch.logsumexp(log_px + log_pz - log_qz, 0) - math.log(k)).mean()
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


def _run_iwae_step(args):
    for k in args.k:
        if k < 1:
            raise ValueError(f"--k must be >= 1, got {k}")
    if args.batch < 1 or args.steps < 1:
        raise ValueError("--batch and --steps must be >= 1")
    from scratchdgm.backend import resolve_backend

    backends = [resolve_backend(b) for b in args.backend]
    _ctx = _limit_threads(args.threads)  # noqa: F841
    torch_mod = None
    if not args.no_torch:
        try:
            import torch as torch_mod

            torch_mod.set_num_threads(args.threads)
        except ImportError:
            torch_mod = None
            print("(torch is not importable: the PyTorch peer is skipped)", file=sys.stderr)

    rows = []
    # interleave in rounds of `chunk` steps, so that both sides see the same machine load
    chunk = 10
    rounds = max(1, -(-args.steps // chunk))
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

    if args.json:
        out = rows[0] if len(rows) == 1 else {"results": rows}
        print(json.dumps(out, indent=2))
        return 0
    print(f"IWAE step 784-200-200-50, batch {args.batch}, {args.dtype}, {args.threads} "
          f"thread(s), median of {args.steps} steps (interleaved with the peer)")
    headers = ["K", "backend", "step ms", "1st step s"]
    if torch_mod is not None:
        headers += ["torch ms", "ours / torch", "torch FTZ ms", "ours / torch FTZ"]
    table = []
    for r in rows:
        line = [r["k"], r["backend"], f"{1e3 * r['step_seconds']:.2f}",
                f"{r['first_step_seconds']:.2f}"]
        if "torch_step_seconds" in r:
            line += [f"{1e3 * r['torch_step_seconds']:.2f}", f"{r['ratio_to_torch']:.2f}",
                     f"{1e3 * r['torch_ftz_step_seconds']:.2f}",
                     f"{r['ratio_to_torch_ftz']:.2f}"]
        table.append(line)
    print(_table(headers, table))
    print("(1st step: the first step of a fresh model; for numba in a fresh process it includes "
          "compiling the kernels)")
    return 0


# ----------------------------------------------------------------------------- linear design
def _run_linear(args):
    import numpy as np

    from scratchdgm.kernels import cpu, reference

    _ctx = _limit_threads(args.threads)  # noqa: F841
    dt = np.dtype(args.dtype)
    rng = np.random.default_rng(0)
    alt = _build_fused_matmul(dt)
    rows = []
    # the decoder's layers at K = 50, batch 20 (1000 rows), and the encoder's at batch 20
    for N, n, m in [(1000, 50, 200), (1000, 200, 200), (1000, 200, 784), (20, 784, 200)]:
        x = rng.standard_normal((N, n)).astype(dt)
        W = (rng.standard_normal((n, m)) / np.sqrt(n)).astype(dt)
        b = rng.standard_normal(m).astype(dt)
        out = np.empty((N, m), dt)
        t_blas = _median_time(lambda: cpu.linear(x, W, b, "tanh"), args.repeats)
        t_alt = _median_time(lambda: alt(x, W, b, out), args.repeats)
        t_np = _median_time(lambda: reference.linear(x, W, b, "tanh"), args.repeats)
        t_gemm = _median_time(lambda: x @ W, args.repeats)
        assert np.allclose(out, reference.linear(x, W, b, "tanh"), atol=1e-4)
        flop = 2.0 * N * n * m
        rows.append({"shape": f"{N}x{n} @ {n}x{m}", "blas_fused_ms": 1e3 * t_blas,
                     "numba_matmul_fused_ms": 1e3 * t_alt, "numpy_ms": 1e3 * t_np,
                     "gemm_only_ms": 1e3 * t_gemm, "gemm_gflops": flop / t_gemm / 1e9,
                     "numba_matmul_gflops": flop / t_alt / 1e9})
    if args.json:
        print(json.dumps({"dtype": args.dtype, "threads": args.threads, "results": rows},
                         indent=2))
        return 0
    print(f"linear + bias + tanh, {args.dtype}, {args.threads} thread(s), median of "
          f"{args.repeats}")
    print(_table(["shape", "cpu.linear (GEMM + pass) ms", "Numba fused matmul ms",
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
