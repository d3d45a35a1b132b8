r"""Checks of exercise 14: the log-sum-exp over K as a numba.cuda kernel, ``_lse_kernel`` and its
launcher ``logsumexp`` in ``kernels/cuda.py`` (``scratchdgm.kernels.cuda``).

Without a GPU the kernel runs in numba's CUDA simulator, which must be switched on
(``NUMBA_ENABLE_CUDASIM=1``) before numba.cuda is first imported: :func:`run_in_simulator` runs
:func:`check_logsumexp` in a fresh interpreter that imports the same repository
(:func:`scratchdgm.cli._exercises.python_bootstrap`) and reports back. The simulator runs every
CUDA thread as a Python thread, so the arrays are small; they are chosen to cross the block
boundaries (more than 32 columns, more than 8 rows). On a machine with a GPU,
:func:`check_logsumexp` also runs on the device at realistic sizes.

The reference is ``scipy.special.logsumexp``.
"""

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
from scipy import special

from ._common import show

#: (K, B) shapes for the simulator: one block, K < 8, B > 32 (two blocks), K > 8, K = 1
SIM_SHAPES = [(3, 5), (1, 4), (11, 33), (20, 2)]


def _reference(a):
    with np.errstate(all="ignore"):
        return special.logsumexp(np.asarray(a, np.float64), axis=0)


def edge_log_weights(dtype, K=9, B=6, seed=0):
    r"""Log-weights with an all ``-inf`` column, some ``-inf`` entries, huge magnitudes, a
    ``+inf`` and a NaN."""
    a = np.random.default_rng(seed).normal(scale=20, size=(K, B)).astype(dtype)
    a[:, 0] = -np.inf
    a[1::2, 1] = -np.inf
    big = 1e30 if dtype == np.float32 else 1e300
    a[0, 2], a[1, 2] = big, -big
    a[3, 3] = np.inf
    a[2, 4] = np.nan
    return a


def check_logsumexp(logsumexp, a):
    r"""``logsumexp(a)`` for ``a`` of shape (K, B): shape (B,), ``a``'s dtype, equal to SciPy's
    log-sum-exp over axis 0 (relative 1e-12 in float64, 1e-5 in float32), infinities and NaNs
    where SciPy has them."""
    got = np.asarray(logsumexp(a.copy()))
    K, B = a.shape
    want = _reference(a)
    case = f"a ({a.dtype}) of shape (K, B) = {a.shape}"
    if got.shape != (B,):
        raise AssertionError(f"logsumexp of {case} returned shape {got.shape}, expected ({B},): "
                             f"one value per column, the K samples reduced")
    if got.dtype != a.dtype:
        raise AssertionError(f"logsumexp of {case} returned {got.dtype}: keep a's dtype")
    special_ = ~np.isfinite(want)
    if not (np.array_equal(np.isnan(got), np.isnan(want))
            and np.array_equal(got[special_ & ~np.isnan(want)],
                               want[special_ & ~np.isnan(want)])):
        raise AssertionError(f"logsumexp of {case} gives {got.tolist()}, expected "
                             f"{want.tolist()}: a column of all -inf is -inf (log 0), a +inf "
                             f"entry makes +inf, a NaN makes NaN -- keep the running maximum "
                             f"m = -inf apart (exp(v - m) would be NaN)")
    fin = np.isfinite(want)
    rtol = 1e-5 if a.dtype == np.float32 else 1e-12
    err = np.abs(got[fin].astype(np.float64) - want[fin])
    bad = err > rtol * np.maximum(np.abs(want[fin]), 1.0)
    if np.any(bad):
        cols = np.flatnonzero(fin)[bad]
        hint = "each column's value is m + log(sum_k exp(a[k, b] - m))"
        if np.all(cols >= 32) and B > 32:
            hint = ("only columns from 32 on are wrong: launch ceil(B / 32) blocks of 32 columns "
                    "(b = blockIdx.x * 32 + threadIdx.x) and guard b < B")
        elif K > 8 and np.allclose(got[fin], _reference(a[:8])[fin], rtol=1e-9):
            hint = ("only the first 8 rows were summed: each thread walks its rows ty, ty + 8, "
                    "ty + 16, ... down the K samples")
        elif np.allclose(got[fin], _reference(a[:1])[fin], rtol=1e-9) and K > 1:
            hint = ("you kept one thread's partial result: combine the 8 partial (max, sum) "
                    "pairs of a column in shared memory, rescaling each sum to the common max")
        raise AssertionError(f"logsumexp of {case} is wrong in columns {cols.tolist()} (got "
                             f"{show(got[cols])}, expected {show(_reference(a)[cols])}): {hint}")


def simulator_cases():
    """The arrays the simulator run checks: random log-weights of :data:`SIM_SHAPES` (float64)
    and the edge cases in both dtypes."""
    rng = np.random.default_rng(0)
    out = [rng.normal(scale=30, size=shape) for shape in SIM_SHAPES]
    out += [edge_log_weights(np.float64), edge_log_weights(np.float32)]
    return out


def _child_main():
    """In the simulator subprocess: run the checks, print one JSON line saying how it went."""
    from scratchdgm.kernels import cuda as ck

    try:
        for a in simulator_cases():
            check_logsumexp(ck.logsumexp, a)
    except NotImplementedError as exc:
        result = {"outcome": "stub", "message": str(exc)}
    except AssertionError as exc:
        result = {"outcome": "failed", "message": str(exc)}
    else:
        result = {"outcome": "passed"}
    print("RESULT " + json.dumps(result), flush=True)


def run_in_simulator(timeout=600):
    r"""Run :func:`check_logsumexp` on :func:`simulator_cases` in numba's CUDA simulator, in a
    fresh interpreter importing this repository; re-raise what it found here (the stub's
    ``NotImplementedError`` or the check's ``AssertionError``)."""
    from scratchdgm.cli._exercises import python_bootstrap

    repo = pathlib.Path(__file__).resolve().parents[2]
    code = python_bootstrap(repo) + (
        "from exercises.checks import ex14_cuda_logsumexp as c\nc._child_main()\n")
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
    env.pop("NUMBA_DISABLE_JIT", None)
    res = subprocess.run([sys.executable, "-c", code], cwd=repo, env=env, capture_output=True,
                         text=True, timeout=timeout)
    lines = [ln for ln in res.stdout.splitlines() if ln.startswith("RESULT ")]
    if not lines:
        raise RuntimeError("the simulator run did not report (exit status "
                           f"{res.returncode}):\n{res.stdout[-2000:]}\n{res.stderr[-3000:]}")
    result = json.loads(lines[-1][len("RESULT "):])
    if result["outcome"] == "stub":
        raise NotImplementedError(result["message"])
    if result["outcome"] == "failed":
        raise AssertionError("in numba's CUDA simulator: " + result["message"])


def real_gpu():
    """Whether a CUDA device is usable (never under the simulator)."""
    if os.environ.get("NUMBA_ENABLE_CUDASIM", "0") == "1":
        return False
    try:
        from numba import cuda

        return bool(cuda.is_available())
    except Exception:  # no driver, no toolkit
        return False


def check_on_gpu(logsumexp):
    r"""On a real device: IWAE-sized arrays (K = 5000 samples of 64 points, 50 of 10,000) and the
    edge cases, in both dtypes."""
    rng = np.random.default_rng(3)
    for dtype in (np.float64, np.float32):
        check_logsumexp(logsumexp, edge_log_weights(dtype, K=300, B=1000))
        check_logsumexp(logsumexp, rng.normal(scale=30, size=(5000, 64)).astype(dtype))
        check_logsumexp(logsumexp, rng.normal(scale=30, size=(50, 10_000)).astype(dtype))
