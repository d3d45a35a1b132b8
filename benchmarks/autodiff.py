r"""How much does the autodiff cost on top of NumPy?

Two measurements, each against the same computation written directly in NumPy (the backward
by hand), printed as a table (a benchmark, not a test: nothing is asserted):

1. *Python overhead per op*: ``a + b`` on two 1-element arrays, forward only and forward +
   backward. At this size the arithmetic is free, so the time is bookkeeping: building the
   Tensor, the graph node, the topological sort.
2. *An MLP at batch 1000*: forward and backward of ``mean((MLP(x) - y)^2)`` for a tanh MLP
   784-200-200-50 (the IWAE paper's encoder widths), float32 and float64. Here the matrix
   products dominate and the overhead should almost vanish.

Timings are medians over repeats after a warm-up, on ``--threads`` BLAS threads (default 1).
Run ``scratchdgm bench autodiff [--repeats N] [--threads T]``.
"""

import sys
import time

import numpy as np

import scratchdgm as sd
from scratchdgm import nn
from scratchdgm.benchmarks.common import limit_threads, machine_line
from scratchdgm.progress import progress

HELP = "autodiff overhead: a tiny op and an MLP forward+backward against hand-written NumPy"


def configure_parser(parser):
    parser.add_argument("--repeats", type=int, default=30, help="timed repeats per row (median)")
    parser.add_argument("--threads", type=int, default=1, help="BLAS threads (default 1)")
    parser.add_argument("--batch", type=int, default=1000, help="MLP batch size")



def median_time(fn, repeats, inner=1, warmup=3):
    r"""Median over ``repeats`` of the mean time of ``inner`` calls of ``fn``, in seconds."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(inner):
            fn()
        times.append((time.perf_counter() - start) / inner)
    return float(np.median(times))


def bench_tiny_op(repeats):
    a_np, b_np = np.ones(1), np.ones(1)
    a = sd.tensor(a_np, requires_grad=True)
    b = sd.tensor(b_np, requires_grad=True)
    g = np.ones(1)

    def numpy_fwd():
        return a_np + b_np

    def numpy_fwd_bwd():
        out = a_np + b_np
        return out, g.copy(), g.copy()  # d(a+b)/da, d(a+b)/db

    def ad_fwd():
        return a + b

    def ad_fwd_bwd():
        out = a + b
        out.backward(g)
        a.grad = b.grad = None

    inner = 2000
    rows = []
    for name, ours, ref in [("add, 1 element, forward", ad_fwd, numpy_fwd),
                            ("add, 1 element, forward+backward", ad_fwd_bwd, numpy_fwd_bwd)]:
        t_ours = median_time(ours, repeats, inner)
        t_ref = median_time(ref, repeats, inner)
        rows.append((name, t_ours * 1e6, t_ref * 1e6))
    return rows


def numpy_mlp_loss_and_grads(x, y, params):
    r"""Forward and hand-written backward of mean((tanh-MLP(x) - y)^2) in plain NumPy."""
    hs = [x]
    h = x
    n_layers = len(params)
    for i, (w, b) in enumerate(params):
        h = h @ w + b
        if i < n_layers - 1:
            h = np.tanh(h)
        hs.append(h)
    diff = h - y
    loss = np.mean(diff * diff)
    g = (2.0 / diff.size) * diff
    grads = []
    for i in range(n_layers - 1, -1, -1):
        w, _ = params[i]
        if i < n_layers - 1:
            g = g * (1 - hs[i + 1] * hs[i + 1])
        grads.append((hs[i].T @ g, g.sum(axis=0)))
        if i > 0:
            g = g @ w.T
    return loss, grads[::-1]


def bench_mlp(repeats, batch, dtype):
    rng = np.random.default_rng(0)
    sizes = [784, 200, 200, 50]
    net = nn.MLP(sizes, "tanh", rng=rng, dtype=dtype)
    x = rng.standard_normal((batch, sizes[0])).astype(dtype)
    y = rng.standard_normal((batch, sizes[-1])).astype(dtype)
    params = [(l.weight.data, l.bias.data) for l in net.layers]

    def ours():
        net.zero_grad()
        out = net(x) - y
        loss = (out * out).mean()
        loss.backward()
        return loss

    def ref():
        return numpy_mlp_loss_and_grads(x, y, params)

    # the two must compute the same thing, or the comparison means nothing
    loss = ours()
    ref_loss, ref_grads = ref()
    tol = 1e-4 if dtype == np.float32 else 1e-10
    assert abs(loss.item() - ref_loss) <= tol * abs(ref_loss)
    for layer, (gw, gb) in zip(net.layers, ref_grads):
        np.testing.assert_allclose(layer.weight.grad, gw, rtol=tol * 100, atol=tol)
        np.testing.assert_allclose(layer.bias.grad, gb, rtol=tol * 100, atol=tol)

    name = f"MLP 784-200-200-50 tanh, batch {batch}, {np.dtype(dtype).name}, fwd+bwd"
    return [(name, median_time(ours, repeats) * 1e6, median_time(ref, repeats) * 1e6)]


def format_table(rows):
    header = f"{'benchmark':<58} {'autodiff (us)':>14} {'numpy (us)':>12} {'ratio':>7}"
    lines = [header, "-" * len(header)]
    for name, ours, ref in rows:
        lines.append(f"{name:<58} {ours:>14.2f} {ref:>12.2f} {ours / ref:>7.2f}")
    return "\n".join(lines)


def run(args):
    if args.repeats < 1 or args.batch < 1:
        raise ValueError("--repeats and --batch must be >= 1")
    _ctx = limit_threads(args.threads)  # noqa: F841 (kept alive for the run)
    with progress(total=3, desc="autodiff", unit="case", leave=False) as bar:
        rows = bench_tiny_op(args.repeats)
        bar.update()
        for dtype in (np.float32, np.float64):
            rows += bench_mlp(max(3, args.repeats // 3), args.batch, dtype)
            bar.update()
    print(machine_line(args.threads))
    print(f"scratchdgm autodiff vs NumPy (median of repeats; BLAS threads = {args.threads}; "
          f"numpy {np.__version__})")
    print(format_table(rows))
    tiny = rows[0][1] - rows[0][2]
    print(f"\nPython overhead of one tiny op: about {tiny:.1f} us forward, "
          f"{rows[1][1] - rows[1][2]:.1f} us forward+backward.")
    return 0


if __name__ == "__main__":
    from scratchdgm.cli import main

    sys.exit(main(["bench", "autodiff", *sys.argv[1:]]))
