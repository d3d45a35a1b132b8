r"""How many threads the BLAS library and the compiled kernels may use, around a block of code."""

import contextlib
import os
import threading

__all__ = ["blas_threads", "kernel_threads", "kernel_thread_limit", "available_cores"]


def blas_threads(n=1):
    r"""Context manager limiting the BLAS thread pool to ``n`` threads (a no-op if ``n`` is None,
    or if threadpoolctl, a scikit-learn dependency, is missing).

    The course's matrices are small (20 to 20000 rows by 100 columns): a multi-threaded BLAS
    spends more time synchronising than computing on them, and on a shared machine it can be
    several times slower than one thread (measured: 5 epochs of IWAE K=50 on digits, 2.4 s on
    one thread against 16 s with the default pool on 2 busy cores).
    """
    if n is None:
        return contextlib.nullcontext()
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - a scikit-learn dependency
        return contextlib.nullcontext()
    return threadpool_limits(limits=int(n), user_api="blas")


_local = threading.local()


@contextlib.contextmanager
def kernel_threads(n):
    r"""Context manager: the compiled kernels called from *this* thread use at most ``n``
    threads (``n = 1``: their serial versions).

    For code that runs kernels from several threads at once (the thread pool of
    :func:`scratchdgm.models.deep.evaluation.score_samples`): the parallelism is then the pool's,
    and a kernel must not start its own threads -- with Numba's ``workqueue`` threading layer,
    two parallel kernels launched concurrently from two threads abort the process. Thread-local:
    other threads are not affected.
    """
    previous = getattr(_local, "limit", None)
    _local.limit = None if n is None else int(n)
    try:
        yield
    finally:
        _local.limit = previous


def kernel_thread_limit():
    r"""The limit set by the innermost :func:`kernel_threads` of this thread, or None."""
    return getattr(_local, "limit", None)


def available_cores():
    r"""The number of cores this process may run on (its CPU affinity where the OS reports it,
    else ``os.cpu_count()``)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)
