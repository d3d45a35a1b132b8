r"""Keeping freed memory for the next training step instead of handing it back to the system.

Why this module exists. A training step allocates the same large temporaries every time: at
K = 50 and batch 20 the decoder's logits alone are 50 x 20 x 784 floats (3 MB), and the
backward pass allocates as many again. On Linux, NumPy gets its memory from the C library's
``malloc`` (glibc). When the step ends and the temporaries are freed, glibc returns whatever
lies free at the top of its heap to the operating system as soon as that exceeds its *trim
threshold* -- a few MB after its automatic adjustment -- and the next step asks the system for
the same memory again. Those system calls, and the fresh pages that follow them, cost about a
fifth of a K = 50 step on this project's machine. Measured with ``scratchdgm bench
iwae-step``'s step, in one process, glibc's defaults first and then this module's setting,
three processes: 24.8 / 23.4 / 24.0 ms against 18.9 / 18.6 / 18.8 ms per step at K = 50. At
K = 5 and K = 1, whose temporaries are ten to fifty times smaller, the difference was within the
run-to-run noise (3.3 - 4.1 against 3.6 - 4.1 ms; 2.0 - 2.7 against 2.2 ms), and in evaluation
(K = 5000, blocks of 1024 samples) a few per cent.

What it does. :func:`reuse_freed_memory` (a context manager; :func:`~scratchdgm.models.deep.
training.fit` and the evaluation functions run inside it) sets two of glibc's ``mallopt``
parameters, once per process:

* ``M_MMAP_THRESHOLD`` = :data:`MMAP_THRESHOLD` (32 MiB): blocks below it come from the heap,
  where freed memory can be reused, rather than each from its own ``mmap``;
* ``M_TRIM_THRESHOLD`` = :data:`TRIM_THRESHOLD` (64 MiB): the heap keeps up to this much free
  memory at its top instead of trimming it after every step.

These are the largest values glibc's own automatic adjustment reaches (it raises the mmap
threshold to the size of the largest mapped block freed so far, at most 32 MiB, and keeps the
trim threshold at twice that), fixed from the start so that the heap is never trimmed between
two steps. On leaving the outermost block, :func:`release_freed_memory`
(``malloc_trim(0)``) hands what the heap kept back to the system once. Nothing changes off
glibc (macOS, Windows, musl), where the functions do nothing and return False, or when the
environment variable ``SCRATCHDGM_MALLOC_TUNING=0`` is set.

The settings are process-wide (the C library has one allocator per process) and last after the
block ends: other code of the process then also keeps up to 64 MiB of freed memory, which is
the price of not paying for it again on every step.
"""

import contextlib
import ctypes
import ctypes.util
import os
import platform
import threading

__all__ = ["reuse_freed_memory", "keep_freed_memory", "release_freed_memory", "MMAP_THRESHOLD",
           "TRIM_THRESHOLD"]

#: Blocks of at least this many bytes get their own ``mmap`` (glibc's largest automatic value).
MMAP_THRESHOLD = 32 << 20
#: Free memory at the top of the heap beyond this many bytes is returned to the system.
TRIM_THRESHOLD = 64 << 20

# glibc's <malloc.h>
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3

_lock = threading.Lock()
_state = {"libc": None, "loaded": False, "set": False, "depth": 0}


def _glibc():
    """The C library as a ctypes handle when it is glibc and tuning is allowed, else None."""
    if not _state["loaded"]:
        _state["loaded"] = True
        libc = None
        if platform.system() == "Linux" and platform.libc_ver()[0] == "glibc":
            try:
                libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
                libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
                libc.malloc_trim.argtypes = [ctypes.c_size_t]
            except (OSError, AttributeError):  # pragma: no cover - exotic libc
                libc = None
        _state["libc"] = libc
    if os.environ.get("SCRATCHDGM_MALLOC_TUNING", "1").strip() == "0":
        return None
    return _state["libc"]


def keep_freed_memory():
    r"""Set glibc's mmap and trim thresholds (module docstring), once per process.

    Returns
    -------
    bool
        Whether the setting is in effect (False off glibc or with
        ``SCRATCHDGM_MALLOC_TUNING=0``).
    """
    libc = _glibc()
    if libc is None:
        return False
    with _lock:
        if not _state["set"]:
            ok = (libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
                  and libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1)
            _state["set"] = ok
        return _state["set"]


def release_freed_memory():
    r"""Return the heap's free memory to the system now (``malloc_trim(0)``); True if glibc
    released any."""
    libc = _glibc()
    return bool(libc.malloc_trim(0)) if libc is not None else False


@contextlib.contextmanager
def reuse_freed_memory():
    r"""Context manager: inside it, memory freed by one step is kept for the next
    (:func:`keep_freed_memory`); leaving the outermost one releases it
    (:func:`release_freed_memory`). Re-entrant and thread-safe; yields whether the setting is in
    effect."""
    active = keep_freed_memory()
    with _lock:
        _state["depth"] += 1
    try:
        yield active
    finally:
        with _lock:
            _state["depth"] -= 1
            outermost = _state["depth"] == 0
        if outermost and active:
            release_freed_memory()
