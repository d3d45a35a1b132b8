r"""What the experiments share: a row of figure panels (matplotlib on its Agg backend, no window),
one way to write the PNG (named after the experiment, so file names are stable), and the
single-threaded BLAS every experiment runs under."""

import functools
import pathlib
import time

from scratchdgm.threads import blas_threads

__all__ = ["panels", "save", "experiment_run", "Stopwatch"]


def experiment_run(run):
    r"""Decorate an experiment's ``run(out_dir, quick=False, seed=0)``: it runs with one BLAS
    thread (the experiments' matrices are small; a thread pool only adds synchronisation, see
    :func:`scratchdgm.threads.blas_threads`) and ``out_dir`` is a :class:`pathlib.Path`."""

    @functools.wraps(run)
    def wrapper(out_dir, quick=False, seed=0):
        with blas_threads(1):
            return run(pathlib.Path(out_dir), quick=quick, seed=seed)

    return wrapper


class Stopwatch:
    r"""Wall-clock and CPU seconds since creation (``.seconds()``, ``.cpu_seconds()``): the CPU
    time is what a run costs on one core, whatever else the machine is doing."""

    def __init__(self):
        self._wall, self._cpu = time.perf_counter(), time.process_time()

    def seconds(self):
        return time.perf_counter() - self._wall

    def cpu_seconds(self):
        return time.process_time() - self._cpu


def panels(n, *, width=4.6, height=3.6):
    r"""A figure with ``n`` panels side by side; returns ``(fig, axes)`` with ``axes`` a list."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, n, figsize=(width * n, height), squeeze=False)
    return fig, list(axes[0])


def save(fig, out_dir, name):
    r"""Write ``fig`` to ``out_dir/name.png`` (folder created if missing), close it, return the
    path."""
    import matplotlib.pyplot as plt

    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.png"
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path

