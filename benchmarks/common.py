r"""What every benchmark shares: thread limits, interleaved median timing, a plain-text table,
and a description of the machine (CPU model, thread count, date) printed with every table."""

import datetime
import os
import platform
import statistics
import time

__all__ = ["limit_threads", "median_time", "table", "machine_info", "machine_line",
           "print_result", "import_torch", "torch_iwae_networks", "torch_log_weights",
           "torch_log_likelihood", "mnist_sized_data", "IWAE_PAPER_ARCH"]

#: The IWAE paper's MNIST architecture (Burda et al. 2016, §5): encoder 784-200-200-(2 x 50),
#: decoder 50-200-200-784, tanh.
IWAE_PAPER_ARCH = dict(input_dim=784, hidden=(200, 200), latent_dim=50)


def limit_threads(n):
    """Limit BLAS and Numba to ``n`` threads; returns the threadpoolctl context (keep it alive
    for the run)."""
    if n < 1:
        raise ValueError(f"--threads must be >= 1, got {n}")
    from threadpoolctl import threadpool_limits

    ctx = threadpool_limits(limits=n)
    try:
        import numba

        numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
    except ImportError:  # pragma: no cover - numba is a dependency
        pass
    return ctx


def median_time(fn, repeats, warmup=1):
    """Median wall time of ``repeats`` calls of ``fn`` after ``warmup`` untimed ones."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def table(headers, rows):
    """Right-aligned plain-text table."""
    widths = [max(len(str(h)), *(len(str(r[i])) for r in rows)) for i, h in enumerate(headers)]
    line = "  ".join(str(h).rjust(w) for h, w in zip(headers, widths))
    out = [line, "  ".join("-" * w for w in widths)]
    out += ["  ".join(str(c).rjust(w) for c, w in zip(r, widths)) for r in rows]
    return "\n".join(out)


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:  # pragma: no cover - not Linux
        pass
    return platform.processor() or platform.machine()


def machine_info(threads):
    """A dict describing where and when a benchmark ran: CPU model, logical cores, the
    threads it used, the date (UTC), and the versions of Python, NumPy and Numba."""
    import numpy as np

    try:
        import numba

        numba_version = numba.__version__
    except ImportError:  # pragma: no cover
        numba_version = None
    return {
        "cpu": _cpu_model(),
        "logical_cores": os.cpu_count(),
        "threads": int(threads),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "numba": numba_version,
    }


def machine_line(threads):
    """:func:`machine_info` as one line for the head of a table."""
    m = machine_info(threads)
    return (f"{m['cpu']}, {m['logical_cores']} logical cores, {m['threads']} thread(s) used; "
            f"{m['date']}; Python {m['python']}, NumPy {m['numpy']}, Numba {m['numba']}")


def import_torch(threads, wanted=True):
    """PyTorch limited to ``threads`` threads, or None (with a note on stderr) when it is not
    installed or not ``wanted``: an optional peer, never a dependency."""
    if not wanted:
        return None
    try:
        import torch
    except ImportError:
        import sys

        print("(torch is not importable: the PyTorch peer is skipped)", file=sys.stderr)
        return None
    torch.set_num_threads(int(threads))
    return torch


def mnist_sized_data(n_train=60000, n_test=10000, seed=0, dtype="float32", mnist_dir=None):
    r"""Binary 28 x 28 images of MNIST's size: ``(x_train, x_test)``, shapes (n_train, 784) and
    (n_test, 784).

    With ``mnist_dir`` (a folder holding the four IDX files): the real MNIST, binarised once
    (:func:`scratchdgm.data.load_mnist`). Without: generated offline from scikit-learn's bundled
    8 x 8 digits, each upsampled to 24 x 24 (bilinear), placed at a random offset in a 28 x 28
    frame and binarised stochastically -- digit-like strokes with about MNIST's share of ones,
    so that a model learns from them as it would from MNIST (the cost of a training step does
    not depend on the pixels, but how fast the weights and the importance weights evolve does).
    """
    import numpy as np

    if mnist_dir is not None:
        from scratchdgm.data import load_mnist

        ds = load_mnist(mnist_dir, binarize=True, dtype=dtype)
        rng = np.random.default_rng(seed)
        x_train = (rng.random(ds.x_train.shape) < ds.x_train).astype(dtype)
        return x_train[:n_train], ds.x_test_binary[:n_test].astype(dtype)
    from scipy.ndimage import zoom
    from sklearn.datasets import load_digits

    rng = np.random.default_rng(seed)
    small = load_digits().images / 16.0                              # (1797, 8, 8)
    big = np.clip(zoom(small, (1, 3, 3), order=1), 0.0, 1.0) ** 2    # thinner strokes
    big = big.astype(np.float32)                                     # (1797, 24, 24)
    n = n_train + n_test
    pick = rng.integers(0, len(big), size=n)
    offset = rng.integers(0, 5, size=(n, 2))
    frames = np.zeros((n, 28, 28), dtype=np.float32)
    for dy in range(5):
        for dx in range(5):
            sel = np.flatnonzero((offset[:, 0] == dy) & (offset[:, 1] == dx))
            frames[sel, dy:dy + 24, dx:dx + 24] = big[pick[sel]]
    x = (rng.random(frames.shape, dtype=np.float32) < frames).astype(dtype).reshape(n, 784)
    return x[:n_train], x[n_train:]


def print_result(out, args, report):
    """``run``'s ending: the results as JSON with ``--json``, else ``report``'s table."""
    import json

    if getattr(args, "json", False):
        print(json.dumps(out, indent=2))
    else:
        report(out, args)
    return 0


def torch_iwae_networks(torch, dtype="float32", init_from=None, arch=IWAE_PAPER_ARCH):
    """PyTorch's encoder and decoder of ``arch`` (``nn.Sequential``, tanh), optionally with the
    weights of one of our models (``init_from``: a :class:`scratchdgm.IWAE`), so that both
    sides start from the same point."""
    import numpy as np

    tdt = torch.float32 if dtype == "float32" else torch.float64
    p, (h1, h2), d = arch["input_dim"], arch["hidden"], arch["latent_dim"]
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
    return enc, dec


def torch_log_weights(torch, enc, dec, x, k):
    r"""PyTorch's log importance weights, shape (k, B), of the Bernoulli-decoder DLVM with a
    standard normal prior and :math:`q = \mathcal N(\mu(x), \sigma(x)^2)`: the peer's version
    of :meth:`scratchdgm.IWAE.log_weights` (``x``: a (B, p) tensor)."""
    import math

    half_log_2pi = 0.5 * math.log(2 * math.pi)
    h = enc(x)
    d = h.shape[-1] // 2
    mu, log_sigma = h[:, :d], h[:, d:]
    eps = torch.randn(k, x.shape[0], d, dtype=h.dtype)
    z = mu + log_sigma.exp() * eps
    logits = dec(z)
    log_px = -torch.nn.functional.binary_cross_entropy_with_logits(
        logits, x.expand_as(logits), reduction="none").sum(-1)
    log_pz = (-0.5 * z * z - half_log_2pi).sum(-1)
    log_qz = (-0.5 * eps * eps - log_sigma - half_log_2pi).sum(-1)
    return log_px + log_pz - log_qz


def torch_log_likelihood(torch, enc, dec, x, k, block=1024):
    r"""PyTorch's importance-sampled :math:`\log \hat p(x_i)` with ``k`` samples per point,
    ``block`` samples at a time (bounded memory, as ours), under ``torch.no_grad()``; a float64
    ndarray of shape (n,)."""
    import math

    import numpy as np

    out = np.empty(len(x))
    with torch.no_grad():
        for i in range(len(x)):
            parts = [torch.logsumexp(torch_log_weights(torch, enc, dec, x[i:i + 1],
                                                       min(block, k - k0))[:, 0], 0)
                     for k0 in range(0, k, block)]
            out[i] = float(torch.logsumexp(torch.stack(parts).double(), 0)) - math.log(k)
    return out
