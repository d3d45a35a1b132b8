r"""What every benchmark shares: thread limits, interleaved median timing, a plain-text table,
and a description of the machine (CPU model, thread count, date) printed with every table."""

import datetime
import os
import platform
import statistics
import time

__all__ = ["limit_threads", "median_time", "table", "machine_info", "machine_line"]


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
