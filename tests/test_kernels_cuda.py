r"""The numba.cuda kernels (:mod:`scratchdgm.kernels.cuda`) equal the NumPy reference.

What is covered where:

* Without a GPU -- :func:`test_cuda_kernels_under_simulator` runs every kernel in the CUDA
  simulator of the installed CUDA target for Numba (numba's built-in ``numba.cuda`` or NVIDIA's
  ``numba-cuda``), which executes each CUDA thread as a Python thread: the kernels' *logic* --
  thread and block indexing, the shared-memory reductions with their barriers, the online
  log-sum-exp, broadcasting, the tiled GEMM, bounds checks -- against the reference, at tiny
  sizes, edge cases (infinities, huge magnitudes) included. It also runs ``scratchdgm bench gpu
  --small`` there. Not covered without a GPU: compilation to PTX, the hardware's own rounding
  (fused multiply-add) and speed. A CUDA target without a simulator (newer numba-cuda releases
  drop it) makes the test skip, saying so.
* On a GPU -- :func:`test_cuda_kernels_on_a_real_gpu` (marked ``gpu``) runs the same checks at
  realistic sizes; ``scratchdgm bench gpu`` also times them against the memory bandwidth.

The simulator must be switched on before numba.cuda is first imported in a process, and other
test modules may already have imported it, so the simulator test re-runs this module in a
subprocess with ``NUMBA_ENABLE_CUDASIM=1`` (the "inner" run, where the ``sim_`` tests execute).
The checks themselves are :mod:`scratchdgm.kernels.conformance`, shared with the benchmark.
"""

import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from scratchdgm.kernels import KERNEL_NAMES, conformance
from scratchdgm.kernels.conformance import edge_log_weights

INNER = os.environ.get("SCRATCHDGM_CUDA_INNER") == "1"
SIM = os.environ.get("NUMBA_ENABLE_CUDASIM", "0") == "1"
DTYPES = (np.float32, np.float64)
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

inner = pytest.mark.skipif(not (INNER and SIM), reason="runs in the simulator subprocess")
if INNER:
    settings.register_profile("cudasim", settings.get_profile("ci"), max_examples=3)
    settings.load_profile("cudasim")


def _ck():
    from scratchdgm.kernels import cuda as ck  # imports numba.cuda: only where wanted

    return ck


def _ok(worst):
    assert worst <= 1.0, f"error {worst:.3g} x the tolerance"


def check_logsumexp(ck, a, seed=0):
    _ok(conformance.check_logsumexp(ck, a, seed))


def check_bernoulli(ck, logits, x, seed=0):
    _ok(conformance.check_bernoulli(ck, logits, x))


def check_gaussian(ck, z, mu, ls, seed=0):
    _ok(conformance.check_gaussian(ck, z, mu, ls, seed))


def check_linear(ck, x, W, b, act, seed=0):
    _ok(conformance.check_linear(ck, x, W, b, act, seed))


def check_adam(ck, n, dtype, seed=0, **kw):
    rng = np.random.default_rng(seed)
    data, grad, m = (rng.normal(size=n).astype(dtype) for _ in range(3))
    v = rng.random(n).astype(dtype)
    _ok(conformance.check_adam(ck, data, grad, m, v, **kw))


def test_every_kernel_has_a_conformance_check():
    assert set(conformance.CHECKS) == set(KERNEL_NAMES)


def test_conformance_checks_catch_a_wrong_kernel():
    # the measure the CUDA tests rely on must see a wrong result, a NaN, a dtype change
    from scratchdgm.kernels import reference as ref

    a = np.random.default_rng(0).normal(size=(4, 3))

    class Wrong:
        logsumexp = staticmethod(lambda x: ref.logsumexp(x) * (1 + 1e-9))
        logsumexp_backward = staticmethod(ref.logsumexp_backward)

    assert conformance.check_logsumexp(ref, a) == 0.0
    assert conformance.check_logsumexp(Wrong, a) > 1.0
    Wrong.logsumexp = staticmethod(lambda x: np.where(np.arange(3) == 1, np.nan,
                                                      ref.logsumexp(x)))
    assert conformance.check_logsumexp(Wrong, a) == np.inf
    Wrong.logsumexp = staticmethod(lambda x: ref.logsumexp(x).astype(np.float32))
    assert conformance.check_logsumexp(Wrong, a) == np.inf


# ----------------------------------------------------------------- the simulator run
@inner
@pytest.mark.parametrize("dtype", DTYPES)
def test_sim_logsumexp_edge_cases(dtype):
    check_logsumexp(_ck(), edge_log_weights(dtype))


@inner
@given(st.sampled_from(DTYPES), st.integers(1, 12), st.integers(1, 4), st.integers(0, 10**6))
def test_sim_logsumexp_random(dtype, K, B, seed):
    a = np.random.default_rng(seed).normal(scale=30, size=(K, B)).astype(dtype)
    check_logsumexp(_ck(), a, seed)


@inner
@given(st.sampled_from(DTYPES), st.integers(1, 2), st.integers(1, 9), st.integers(0, 10**6))
def test_sim_bernoulli(dtype, B, D, seed):
    rng = np.random.default_rng(seed)
    logits = (rng.normal(scale=10, size=(1, B, D))).astype(dtype)
    logits.flat[0] = 1e4 if dtype == np.float64 else 100.0  # saturated logit
    x = (rng.random((B, D)) < 0.5).astype(dtype)
    check_bernoulli(_ck(), logits, x, seed)


@inner
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", ["encoder", "prior", "full"])
def test_sim_gaussian(dtype, case):
    rng = np.random.default_rng(1)
    K, B, d = 2, 2, 3
    shapes = {"encoder": [(1, B, d), (1, B, d)], "prior": [(1, 1, 1), (1, 1, 1)],
              "full": [(K, B, d), (1, 1, d)]}[case]
    z = rng.normal(size=(K, B, d)).astype(dtype)
    mu, ls = (rng.normal(scale=0.5, size=s).astype(dtype) for s in shapes)
    check_gaussian(_ck(), z, mu, ls)


@inner
@pytest.mark.parametrize("dtype", DTYPES)
def test_sim_reparam(dtype):
    rng = np.random.default_rng(2)
    eps = rng.normal(size=(3, 2, 4)).astype(dtype)
    mu, ls = (rng.normal(scale=0.5, size=(2, 4)).astype(dtype) for _ in range(2))
    _ok(conformance.check_reparam(_ck(), eps, mu, ls))


@inner
@given(st.sampled_from(DTYPES), st.sampled_from([None, "tanh", "relu", "sigmoid"]),
       hnp.array_shapes(min_dims=1, max_dims=2, max_side=3), st.integers(1, 5),
       st.integers(1, 5), st.booleans(), st.integers(0, 10**6))
def test_sim_linear(dtype, act, lead, n, m, bias, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=lead + (n,)).astype(dtype)
    W = rng.normal(size=(n, m)).astype(dtype)
    b = rng.normal(size=m).astype(dtype) if bias else None
    check_linear(_ck(), x, W, b, act, seed)


@inner
@given(st.sampled_from(DTYPES), st.integers(1, 300), st.integers(1, 50), st.booleans(),
       st.integers(0, 10**6))
def test_sim_adam(dtype, n, step, decay, seed):
    check_adam(_ck(), n, dtype, seed, step=step, weight_decay=0.01 if decay else 0.0)


@inner
@given(st.sampled_from(DTYPES), st.integers(0, 41), st.integers(0, 2**64 - 1))
def test_sim_box_muller(dtype, n, seed):
    _ok(conformance.check_box_muller(_ck(), seed, n, dtype))


@inner
def test_sim_gpu_benchmark_runs_every_case(capsys):
    from scratchdgm.cli import main

    # one dtype, one repeat: the simulator runs every CUDA thread as a Python thread
    assert main(["bench", "gpu", "--small", "--repeats", "1", "--dtype", "float32",
                 "--json"]) == 0
    import json

    out = json.loads(capsys.readouterr().out)
    assert out["device"]["simulator"] is True
    kernels = {r["kernel"] for r in out["results"]}
    assert kernels == set(KERNEL_NAMES)
    assert all(r["passed"] for r in out["results"]), out["results"]


@inner
def test_sim_fused_ops_through_the_autodiff():
    """The cuda backend behind the autodiff: gradients equal finite differences."""
    import scratchdgm as sd
    from scratchdgm.autodiff import fused
    from scratchdgm.testing import check_gradients_at

    assert "cuda" in sd.backend.available_backends()
    rng = np.random.default_rng(2)
    a = rng.normal(size=(3, 2))
    check_gradients_at(lambda t: fused.iw_logsumexp(t, backend="cuda"), [a])
    x = (rng.random((1, 3)) < 0.5).astype(float)
    check_gradients_at(lambda t: fused.bernoulli_log_prob(t, x, backend="cuda"),
                       [rng.normal(size=(1, 1, 3))])
    check_gradients_at(lambda xx, W: fused.linear(xx, W, None, "tanh", backend="cuda"),
                       [rng.normal(size=(1, 2)), rng.normal(size=(2, 1))])
    with sd.use_backend("cuda"):
        z = sd.tensor(rng.normal(size=(2, 1, 2)), requires_grad=True)
        out = fused.diag_gaussian_log_prob(z, 0.0, 0.0)
        out.sum().backward()
        np.testing.assert_allclose(z.grad, -z.data, rtol=1e-12)  # d/dz log N(z; 0, 1) = -z


# ----------------------------------------------------------------- the outer run
def simulator_available():
    r"""``(True, version)`` when the installed CUDA target for Numba has a simulator, else
    ``(False, why)``; checked in a subprocess (the simulator is chosen at first import)."""
    code = ("import numba, importlib.util as u\n"
            "spec = u.find_spec('numba_cuda')\n"
            "target = 'numba-cuda' if spec else 'numba ' + numba.__version__ + ' (built-in)'\n"
            "try:\n"
            "    import numba.cuda.simulator\n"
            "    from numba import cuda\n"
            "    assert cuda.is_available()\n"
            "except Exception as exc:\n"
            "    print('no:', target, type(exc).__name__, exc)\n"
            "else:\n"
            "    print('yes:', target)\n")
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
    env.pop("NUMBA_DISABLE_JIT", None)
    try:
        res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                             text=True, timeout=300, cwd=ROOT)
    except subprocess.TimeoutExpired:
        return False, "importing numba.cuda with NUMBA_ENABLE_CUDASIM=1 timed out"
    line = (res.stdout.strip().splitlines() or [res.stderr.strip()[-300:]])[-1]
    return line.startswith("yes:"), line


def test_simulator_probe_reports_a_missing_simulator(monkeypatch):
    # as with a CUDA target that dropped it: the probe says so, and why
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: subprocess.CompletedProcess(
        a, 0, "no: numba-cuda ModuleNotFoundError No module named 'numba.cuda.simulator'\n",
        ""))
    ok, why = simulator_available()
    assert not ok and "numba.cuda.simulator" in why


@pytest.mark.skipif(INNER, reason="this is the simulator subprocess")
@pytest.mark.slow
def test_cuda_kernels_under_simulator():
    """Every CUDA kernel's logic against the reference, in the simulator (see the module
    docstring for what that covers and what it does not)."""
    ok, why = simulator_available()
    if not ok:
        pytest.skip(f"the CUDA kernels' logic is NOT checked on this machine: the installed "
                    f"CUDA target has no simulator ({why}); run `pytest -m gpu` and `scratchdgm "
                    f"bench gpu` on a GPU")
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1", SCRATCHDGM_CUDA_INNER="1")
    env.pop("NUMBA_DISABLE_JIT", None)
    res = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs",
         os.path.abspath(__file__), "-k", "sim_"],
        env=env, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert res.returncode == 0, res.stdout[-5000:] + res.stderr[-2000:]
    assert " passed" in res.stdout and "skipped" not in res.stdout, res.stdout[-2000:]


def _real_gpu():
    if SIM:
        return False
    try:
        from numba import cuda

        return cuda.is_available()
    except Exception:  # no driver, no toolkit
        return False


@pytest.mark.gpu
@pytest.mark.skipif(INNER, reason="simulator subprocess")
def test_cuda_kernels_on_a_real_gpu():
    if not _real_gpu():
        pytest.skip("no CUDA device")
    ck = _ck()
    rng = np.random.default_rng(3)
    for dtype in DTYPES:
        check_logsumexp(ck, edge_log_weights(dtype, K=300, B=1000))
        check_logsumexp(ck, rng.normal(size=(5000, 64)).astype(dtype))
        logits = rng.normal(scale=5, size=(50, 20, 784)).astype(dtype)
        check_bernoulli(ck, logits, (rng.random((20, 784)) < 0.5).astype(dtype))
        z = rng.normal(size=(50, 20, 50)).astype(dtype)
        check_gaussian(ck, z, rng.normal(size=(1, 20, 50)).astype(dtype),
                       rng.normal(scale=0.3, size=(1, 20, 50)).astype(dtype))
        for act in (None, "tanh", "relu", "sigmoid"):
            check_linear(ck, rng.normal(size=(50, 20, 200)).astype(dtype),
                         rng.normal(scale=0.1, size=(200, 784)).astype(dtype),
                         rng.normal(size=784).astype(dtype), act)
        check_adam(ck, 157_000, dtype, step=7, weight_decay=1e-4)
        _ok(conformance.check_box_muller(ck, 2**64 - 1, 1_000_001, dtype))
