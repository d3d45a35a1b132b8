r"""The CUDA kernels on a GPU: each checked against the NumPy reference, then timed against the
device's memory bandwidth; one table.

For every kernel of :mod:`scratchdgm.kernels.cuda` (all of :data:`scratchdgm.kernels.KERNEL_NAMES`)
at sizes of the course's models (the IWAE at K = 50 and the K = 5000 evaluation, large enough
to load the memory system), in float32 and float64:

1. *check*: the host function against :mod:`scratchdgm.kernels.reference` on the same inputs,
   with the tolerances of :mod:`scratchdgm.kernels.conformance` (the tests' own);
2. *device time*: the kernel alone on arrays already on the GPU (its ``launch_*`` function),
   median of ``--repeats`` launches timed with CUDA events;
3. *bandwidth*: the bytes the kernel must move at least (each input read once, each output
   written once) over that time, in GB/s and as a fraction of the device's memory bandwidth,
   both the peak (memory clock x bus width, from the driver) and a device-to-device copy
   measured in the same run; the GEMMs (linear layer) are compute-bound and also get GFLOP/s;
4. *host call*: the whole host function, transfers to and from the GPU included -- what the
   ``cuda`` backend costs the autodiff per call.

Run ``scratchdgm bench gpu [--repeats 20] [--dtype float32 float64] [--json]`` on a machine with
an NVIDIA GPU (``pip install "scratchdgm[cuda]"``). Without one it says so and exits cleanly.
``--small`` runs tiny sizes (the tests run it in numba's CUDA simulator, whose timings mean
nothing).
"""

import json
import statistics
import sys
import warnings

from scratchdgm.benchmarks.common import machine_info, median_time, table
from scratchdgm.progress import progress

HELP = "CUDA kernels on a GPU: checked against the reference, timed against memory bandwidth"


def configure_parser(p):
    p.add_argument("--repeats", type=int, default=20,
                   help="timed launches per kernel, median (default %(default)s)")
    p.add_argument("--dtype", nargs="+", choices=["float32", "float64"],
                   default=["float32", "float64"], help="(default: both)")
    p.add_argument("--small", action="store_true",
                   help="tiny sizes: a smoke test of the script (as in the CUDA simulator)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")


# ------------------------------------------------------------------------------ the device
def find_device():
    r"""``(cuda module, None)`` when a CUDA device (or numba's simulator) is usable, else
    ``(None, why)``."""
    try:
        from numba import cuda
    except Exception as exc:  # numba without a CUDA target, a broken toolkit
        return None, f"numba.cuda cannot be imported ({type(exc).__name__}: {exc})"
    try:
        if cuda.is_available():
            return cuda, None
    except Exception as exc:  # a driver that fails to initialise
        return None, f"the CUDA driver failed to initialise ({type(exc).__name__}: {exc})"
    return None, "numba.cuda finds no CUDA device (no NVIDIA GPU, or no driver)"


def _simulated(cuda):
    from numba import config

    return bool(getattr(config, "ENABLE_CUDASIM", False))


def describe_device(cuda):
    r"""Name, compute capability, memory and peak memory bandwidth of the current device (what
    the driver reports; None where it reports nothing, e.g. in the simulator)."""
    info = {"simulator": _simulated(cuda), "name": None, "compute_capability": None,
            "memory_gb": None, "peak_bandwidth_gbs": None}
    ctx = cuda.current_context()  # (the simulator has no get_current_device)
    dev = ctx.device
    name = getattr(dev, "name", None)
    info["name"] = name.decode() if isinstance(name, bytes) else name
    if info["simulator"]:
        info["name"] = "numba CUDA simulator"
    try:
        info["compute_capability"] = ".".join(str(c) for c in dev.compute_capability)
    except Exception:
        pass
    try:
        info["memory_gb"] = ctx.get_memory_info()[1] / 1e9
        if info["memory_gb"] == float("inf"):
            info["memory_gb"] = None
    except Exception:
        pass
    try:
        # double data rate: two transfers per clock on a bus of this many bits
        clock_khz, bus_bits = dev.MEMORY_CLOCK_RATE, dev.GLOBAL_MEMORY_BUS_WIDTH
        if clock_khz and bus_bits:
            info["peak_bandwidth_gbs"] = 2 * clock_khz * 1e3 * bus_bits / 8 / 1e9
    except Exception:
        pass
    return info


def device_time(cuda, launch, repeats):
    r"""Median seconds of ``launch()`` over ``repeats`` launches, each between two CUDA events
    (after one untimed launch: compilation, first touch)."""
    launch()
    cuda.synchronize()
    times = []
    for _ in range(repeats):
        start, end = cuda.event(), cuda.event()
        start.record()
        launch()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / 1e3)  # ms
    return statistics.median(times)


def copy_bandwidth(cuda, n_bytes, repeats):
    r"""GB/s of a device-to-device copy of ``n_bytes`` (read once, written once)."""
    import numpy as np

    src = cuda.device_array(n_bytes // 8, dtype=np.float64)
    dst = cuda.device_array_like(src)
    seconds = device_time(cuda, lambda: dst.copy_to_device(src), repeats)
    return 2 * src.nbytes / seconds / 1e9 if seconds > 0 else None


# ------------------------------------------------------------------------------ the cases
#: the sizes of the cases: the IWAE on MNIST (784-200-200-50, minibatches of 20 points x 50
#: samples; here 1000 points, so that the memory system is loaded) and the K = 5000 evaluation
SIZES = {"K_eval": 5000, "B_eval": 10_000, "K": 50, "B": 1000, "D": 784, "d": 50, "n": 200,
         "K_gauss": 500, "n_adam": 20_000_000,
         "n_normal": 50_000_000}
#: the same, tiny (--small): what the tests run in the CUDA simulator
#: (few blocks: the simulator runs each of their threads as a Python thread)
SMALL = {"K_eval": 7, "B_eval": 5, "K": 1, "B": 2, "D": 9, "d": 3, "n": 4, "K_gauss": 1,
         "n_adam": 200, "n_normal": 40}


def cases(small):
    r"""``(kernel, shape label, make(rng, dtype) -> Case)`` for every kernel (:data:`SIZES`)."""
    s = SMALL if small else SIZES
    lse = f"{s['K_eval']} x {s['B_eval']}"
    bern = f"{s['K']} x {s['B']} x {s['D']}"
    gauss = f"{s['K_gauss']} x {s['B']} x {s['d']}"
    lin = f"{s['K'] * s['B']} x {s['n']} @ {s['n']} x {s['D']}, tanh"
    return [
        ("logsumexp", lse, lambda rng, dt: _lse(rng, dt, s["K_eval"], s["B_eval"], False)),
        ("logsumexp_backward", lse,
         lambda rng, dt: _lse(rng, dt, s["K_eval"], s["B_eval"], True)),
        ("bernoulli_log_prob", bern,
         lambda rng, dt: _bernoulli(rng, dt, s["K"], s["B"], s["D"], False)),
        ("bernoulli_log_prob_with_grad", bern,
         lambda rng, dt: _bernoulli(rng, dt, s["K"], s["B"], s["D"], True)),
        ("diag_gaussian_log_prob", gauss,
         lambda rng, dt: _gauss(rng, dt, s["K_gauss"], s["B"], s["d"], False)),
        ("diag_gaussian_log_prob_backward", gauss,
         lambda rng, dt: _gauss(rng, dt, s["K_gauss"], s["B"], s["d"], True)),
        ("diag_gaussian_reparam", gauss,
         lambda rng, dt: _reparam(rng, dt, s["K_gauss"], s["B"], s["d"])),
        ("linear", lin,
         lambda rng, dt: _linear(rng, dt, s["K"] * s["B"], s["n"], s["D"], False)),
        ("linear_backward", lin,
         lambda rng, dt: _linear(rng, dt, s["K"] * s["B"], s["n"], s["D"], True)),
        ("adam_update", f"{s['n_adam']}", lambda rng, dt: _adam(rng, dt, s["n_adam"])),
        ("box_muller", f"{s['n_normal']} draws",
         lambda rng, dt: _box_muller(rng, dt, s["n_normal"])),
    ]


class Case:
    """What one row needs: the check, the device launch, the host call, bytes and flops."""

    def __init__(self, check, launch, host, nbytes, flops=None):
        self.check, self.launch, self.host = check, launch, host
        self.nbytes, self.flops = nbytes, flops


def _lse(rng, dt, K, B, backward):
    from numba import cuda

    from scratchdgm.kernels import conformance, reference
    from scratchdgm.kernels import cuda as ck

    a = (rng.standard_normal((K, B)) * 3).astype(dt)
    lse = reference.logsumexp(a)
    g = rng.standard_normal(B).astype(dt)
    d_a, d_lse, d_g = cuda.to_device(a), cuda.to_device(lse), cuda.to_device(g)
    if not backward:
        out = cuda.device_array(B, dtype=dt)
        return Case(lambda: conformance.check_logsumexp(ck, a),
                    lambda: ck.launch_logsumexp(d_a, out), lambda: ck.logsumexp(a),
                    a.nbytes + lse.nbytes)
    out = cuda.device_array((K, B), dtype=dt)
    return Case(lambda: conformance.check_logsumexp(ck, a),
                lambda: ck.launch_logsumexp_backward(d_a, d_lse, d_g, out),
                lambda: ck.logsumexp_backward(a, lse, g), 2 * a.nbytes + 2 * lse.nbytes)


def _bernoulli(rng, dt, K, B, D, grad):
    from numba import cuda

    from scratchdgm.kernels import conformance
    from scratchdgm.kernels import cuda as ck

    logits = rng.normal(scale=4, size=(K, B, D)).astype(dt)
    x = (rng.random((B, D)) < 0.3).astype(dt)
    d_l, d_x = cuda.to_device(logits), cuda.to_device(x)
    out = cuda.device_array((K, B), dtype=dt)
    dl = cuda.device_array((K, B, D) if grad else (1, 1, 1), dtype=dt)
    host = (lambda: ck.bernoulli_log_prob_with_grad(logits, x)) if grad else (
        lambda: ck.bernoulli_log_prob(logits, x))
    nbytes = logits.nbytes * (2 if grad else 1) + x.nbytes + out.nbytes
    return Case(lambda: conformance.check_bernoulli(ck, logits, x),
                lambda: ck.launch_bernoulli(d_l, d_x, out, dl, grad), host, nbytes)


def _gauss(rng, dt, K, B, d, backward):
    from numba import cuda

    from scratchdgm.kernels import conformance
    from scratchdgm.kernels import cuda as ck

    z = rng.standard_normal((K, B, d)).astype(dt)
    mu = rng.standard_normal((1, B, d)).astype(dt)
    ls = rng.normal(scale=0.3, size=(1, B, d)).astype(dt)
    dz, dm, ds = cuda.to_device(z), cuda.to_device(mu), cuda.to_device(ls)
    check = lambda: conformance.check_gaussian(ck, z, mu, ls)  # noqa: E731
    if not backward:
        out = cuda.device_array((K, B), dtype=dt)
        return Case(check, lambda: ck.launch_diag_gaussian(dz, dm, ds, out),
                    lambda: ck.diag_gaussian_log_prob(z, mu, ls),
                    z.nbytes + mu.nbytes + ls.nbytes + out.nbytes)
    g = rng.standard_normal((K, B)).astype(dt)
    dg = cuda.to_device(g)
    outs = [cuda.device_array((K, B, d), dtype=dt) for _ in range(3)]
    return Case(check, lambda: ck.launch_diag_gaussian_backward(dz, dm, ds, dg, *outs),
                lambda: ck.diag_gaussian_log_prob_backward(z, mu, ls, g),
                z.nbytes + mu.nbytes + ls.nbytes + g.nbytes + 3 * z.nbytes)


def _reparam(rng, dt, K, B, d):
    from numba import cuda

    from scratchdgm.kernels import conformance
    from scratchdgm.kernels import cuda as ck

    eps = rng.standard_normal((K, B, d)).astype(dt)
    mu = rng.standard_normal((B, d)).astype(dt)
    ls = (0.3 * rng.standard_normal((B, d))).astype(dt)
    dev = [cuda.to_device(a) for a in (eps, mu, ls)]
    outs = [cuda.device_array((K, B, d), dtype=dt)] + [cuda.device_array((K, B), dtype=dt)
                                                       for _ in range(2)]
    return Case(lambda: conformance.check_reparam(ck, eps, mu, ls),
                lambda: ck.launch_diag_gaussian_reparam(*dev, *outs),
                lambda: ck.diag_gaussian_reparam(eps, mu, ls),
                2 * eps.nbytes + 2 * mu.nbytes + 2 * K * B * eps.itemsize)


def _linear(rng, dt, rows, n, m, backward):
    from numba import cuda

    from scratchdgm.kernels import conformance, reference
    from scratchdgm.kernels import cuda as ck

    x = rng.standard_normal((rows, n)).astype(dt)
    W = (rng.standard_normal((n, m)) / n ** 0.5).astype(dt)
    b = rng.standard_normal(m).astype(dt)
    code = reference.ACTIVATION_CODES["tanh"]
    dx, dW, db = cuda.to_device(x), cuda.to_device(W), cuda.to_device(b)
    check = lambda: conformance.check_linear(ck, x, W, b, "tanh")  # noqa: E731
    if not backward:
        C = cuda.device_array((rows, m), dtype=dt)
        return Case(check, lambda: ck.launch_gemm(dx, dW, C, False, False, db, code),
                    lambda: ck.linear(x, W, b, "tanh"),
                    x.nbytes + W.nbytes + b.nbytes + C.nbytes, flops=2.0 * rows * n * m)
    y = reference.linear(x, W, b, "tanh")
    g = rng.standard_normal(y.shape).astype(dt)
    dy, dg = cuda.to_device(y), cuda.to_device(g)
    delta = cuda.device_array((rows, m), dtype=dt)
    gW = cuda.device_array((n, m), dtype=dt)
    gx = cuda.device_array((rows, n), dtype=dt)

    def launch():
        ck.launch_activation_grad(dy, dg, delta, code)
        ck.launch_gemm(dx, delta, gW, True, False)
        ck.launch_gemm(delta, dW, gx, False, True)

    return Case(check, launch, lambda: ck.linear_backward(x, W, y, g, "tanh"),
                y.nbytes + g.nbytes + x.nbytes + W.nbytes + gW.nbytes + gx.nbytes,
                flops=4.0 * rows * n * m)


def _adam(rng, dt, n):
    from numba import cuda

    from scratchdgm.kernels import conformance
    from scratchdgm.kernels import cuda as ck

    data, grad, m = (rng.standard_normal(n).astype(dt) for _ in range(3))
    v = rng.random(n).astype(dt)
    dev = [cuda.to_device(a) for a in (data, grad, m, v)]
    host = [a.copy() for a in (data, grad, m, v)]
    return Case(lambda: conformance.check_adam(ck, data, grad, m, v),
                lambda: ck.launch_adam(*dev, 1e-3, 0.9, 0.999, 1e-8, 3),
                lambda: ck.adam_update(*host, 1e-3, 0.9, 0.999, 1e-8, 3),
                7 * data.nbytes)


def _box_muller(rng, dt, n):
    from numba import cuda

    from scratchdgm.kernels import conformance
    from scratchdgm.kernels import cuda as ck

    seed = int(rng.bit_generator.random_raw())
    out = cuda.device_array(n, dtype=dt)
    return Case(lambda: conformance.check_box_muller(ck, seed, n, dt),
                lambda: ck.launch_box_muller(seed, out),
                lambda: ck.box_muller(seed, n, dt),
                out.nbytes)


# ------------------------------------------------------------------------------ the run
def run(args):
    import numpy as np

    if args.repeats < 1:
        raise ValueError(f"--repeats must be >= 1, got {args.repeats}")
    cuda, why = find_device()
    if cuda is None:
        print(f"scratchdgm bench gpu: no CUDA device is available: {why}. Nothing to measure; "
              f"on a machine with an NVIDIA GPU and its driver: pip install \"scratchdgm[cuda]\""
              f" && scratchdgm bench gpu")
        return 0
    device = describe_device(cuda)
    if device["simulator"] and not args.small:
        raise ValueError("numba's CUDA simulator is on (NUMBA_ENABLE_CUDASIM=1): full sizes would "
                         "take hours there and its timings mean nothing; pass --small")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Simulator timings are bogus")
        copy_gbs = copy_bandwidth(cuda, (1 << 12) if args.small else (1 << 30), args.repeats)
    rng = np.random.default_rng(0)
    todo = [(c, dt) for c in cases(args.small) for dt in args.dtype]
    rows = []
    with progress(todo, desc="bench gpu", unit="kernel", leave=False) as bar, \
            warnings.catch_warnings():
        if device["simulator"]:  # said once, in the report
            warnings.filterwarnings("ignore", message="Simulator timings are bogus")
        for (name, shape, make), dt in bar:
            bar.set_postfix_str(f"{name} {dt}")
            case = make(rng, np.dtype(dt))
            worst = case.check()
            seconds = device_time(cuda, case.launch, args.repeats)
            host = median_time(case.host, max(1, min(args.repeats, 5)))
            gbs = case.nbytes / seconds / 1e9 if seconds > 0 else None
            rows.append({
                "kernel": name, "shape": shape, "dtype": dt,
                "error_over_tolerance": worst, "passed": bool(worst <= 1.0),
                "device_seconds": seconds, "bytes": case.nbytes, "gbs": gbs,
                "fraction_of_peak": (gbs / device["peak_bandwidth_gbs"]
                                     if gbs and device["peak_bandwidth_gbs"] else None),
                "fraction_of_copy": gbs / copy_gbs if gbs and copy_gbs else None,
                "gflops": case.flops / seconds / 1e9 if case.flops and seconds > 0 else None,
                "host_call_seconds": host,
            })
            del case  # free its device arrays before the next
    out = {"machine": machine_info(1), "device": device, "copy_bandwidth_gbs": copy_gbs,
           "repeats": args.repeats, "results": rows}
    if args.json:
        print(json.dumps(out, indent=2))
        return 0 if all(r["passed"] for r in rows) else 1
    print(_report(out))
    return 0 if all(r["passed"] for r in rows) else 1


def _fmt(value, spec, scale=1.0):
    return "-" if value is None else format(value * scale, spec)


def _report(out):
    dev = out["device"]
    head = [f"{dev['name']} (compute capability {dev['compute_capability'] or '?'}, "
            f"{_fmt(dev['memory_gb'], '.0f')} GB); peak memory bandwidth "
            f"{_fmt(dev['peak_bandwidth_gbs'], '.0f')} GB/s (clock x bus width), "
            f"device-to-device copy {_fmt(out['copy_bandwidth_gbs'], '.0f')} GB/s (measured); "
            f"median of {out['repeats']} launches"]
    if dev["simulator"]:
        head.append("(numba's CUDA simulator: the checks hold, the timings mean nothing)")
    rows = [(r["kernel"], r["shape"], r["dtype"],
             "ok" if r["passed"] else "FAIL", f"{r['error_over_tolerance']:.2g}",
             _fmt(r["device_seconds"], ".3f", 1e3), _fmt(r["gbs"], ".0f"),
             _fmt(r["fraction_of_peak"], ".0%"), _fmt(r["fraction_of_copy"], ".0%"),
             _fmt(r["gflops"], ".0f"), _fmt(r["host_call_seconds"], ".1f", 1e3))
            for r in out["results"]]
    text = table(["kernel", "shape", "dtype", "check", "err/tol", "device ms", "GB/s",
                  "% peak BW", "% copy BW", "GFLOP/s", "host call ms"], rows)
    note = ("check: against the NumPy reference (err/tol <= 1 passes). device ms: the kernel "
            "alone on device arrays.\nGB/s: the bytes it must move (inputs read once, outputs "
            "written once) per second. host call: the cuda backend's call, transfers "
            "included.")
    return "\n".join([*head, machine_line_short(out["machine"]), text, note])


def machine_line_short(m):
    return (f"host: {m['cpu']}, {m['logical_cores']} logical cores; {m['date']}; Python "
            f"{m['python']}, NumPy {m['numpy']}, Numba {m['numba']}")


if __name__ == "__main__":
    from scratchdgm.cli import main

    sys.exit(main(["bench", "gpu", *sys.argv[1:]]))
