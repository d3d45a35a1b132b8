r"""How many threads the BLAS library may use, around a block of code."""

import contextlib

__all__ = ["blas_threads"]


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
