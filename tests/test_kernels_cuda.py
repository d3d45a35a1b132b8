r"""The numba.cuda kernels (:mod:`scratchdgm.kernels.cuda`) equal the NumPy reference.

Without a GPU they run in numba's CUDA simulator. The simulator must be switched on before
numba.cuda is first imported in a process, and other test modules may already have imported
it, so :func:`test_cuda_kernels_under_simulator` re-runs this module in a subprocess with
``NUMBA_ENABLE_CUDASIM=1`` (the "inner" run, where the other tests execute). Sizes are tiny:
the simulator runs every CUDA thread as a Python thread.

:func:`test_cuda_kernels_on_a_real_gpu` (marked ``gpu``) runs the same checks at realistic
sizes on a CUDA device, and is skipped when none is present.
"""

import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from scratchdgm.kernels import reference as ref

INNER = os.environ.get("SCRATCHDGM_CUDA_INNER") == "1"
SIM = os.environ.get("NUMBA_ENABLE_CUDASIM", "0") == "1"
RTOL = {np.float32: 1e-5, np.float64: 1e-12}
DTYPES = (np.float32, np.float64)

inner = pytest.mark.skipif(not (INNER and SIM), reason="runs in the simulator subprocess")
if INNER:
    settings.register_profile("cudasim", settings.get_profile("ci"), max_examples=3)
    settings.load_profile("cudasim")


def _ck():
    from scratchdgm.kernels import cuda as ck  # imports numba.cuda: only where wanted

    return ck


def _close(actual, expected, dtype, scale=None):
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape and actual.dtype == np.dtype(dtype)
    fin = np.isfinite(expected)
    np.testing.assert_array_equal(np.isfinite(actual), fin)
    np.testing.assert_array_equal(actual[~fin], expected[~fin])
    s = np.abs(expected[fin].astype(np.float64))
    if scale is not None:
        s = s + np.broadcast_to(scale, expected.shape)[fin]
    err = np.abs(actual[fin].astype(np.float64) - expected[fin])
    assert np.all(err <= RTOL[dtype] * np.maximum(s, 1.0)), f"max error {err.max()}"


def check_logsumexp(ck, a, seed=0):
    dt = a.dtype.type
    lse = ref.logsumexp(a)
    _close(ck.logsumexp(a), lse, dt)
    g = np.random.default_rng(seed).standard_normal(a.shape[1]).astype(a.dtype)
    _close(ck.logsumexp_backward(a, lse, g), ref.logsumexp_backward(a, lse, g), dt,
           scale=np.abs(g)[None, :])


def check_bernoulli(ck, logits, x, seed=0):
    dt = logits.dtype.type
    scale = np.abs(x * logits.astype(np.float64) - np.logaddexp(0, logits)).sum(-1)
    _close(ck.bernoulli_log_prob(logits, x), ref.bernoulli_log_prob(logits, x), dt, scale)
    v1, d1 = ck.bernoulli_log_prob_with_grad(logits, x)
    v2, d2 = ref.bernoulli_log_prob_with_grad(logits, x)
    _close(v1, v2, dt, scale)
    _close(d1, d2, dt)


def check_gaussian(ck, z, mu, ls, seed=0):
    dt = z.dtype.type
    full = np.broadcast_shapes(z.shape, mu.shape, ls.shape)
    inv = np.exp(-ls.astype(np.float64))
    eps = (z - mu.astype(np.float64)) * inv
    scale = np.broadcast_to(0.5 * eps**2 + np.abs(ls) + 1, full).sum(-1)
    _close(ck.diag_gaussian_log_prob(z, mu, ls), ref.diag_gaussian_log_prob(z, mu, ls), dt,
           scale)
    g = np.random.default_rng(seed).standard_normal(full[:-1]).astype(z.dtype)
    term = np.broadcast_to(np.abs(g)[..., None] * (np.abs(eps) * inv + eps**2 + 1), full)
    for a, b, inp in zip(ck.diag_gaussian_log_prob_backward(z, mu, ls, g),
                         ref.diag_gaussian_log_prob_backward(z, mu, ls, g), (z, mu, ls)):
        _close(a, b, dt, scale=ref._reduce_to(term, inp.shape))


def check_linear(ck, x, W, b, act, seed=0):
    dt = x.dtype.type
    scale = np.abs(x) @ np.abs(W) + (0 if b is None else np.abs(b))
    y = ref.linear(x, W, b, act)
    _close(ck.linear(x, W, b, act), y, dt, scale)
    g = np.random.default_rng(seed).standard_normal(y.shape).astype(x.dtype)
    n, m = W.shape
    ag = 2 * np.abs(g).reshape(-1, m)
    gx1, gW1, gb1 = ck.linear_backward(x, W, y, g, act)
    gx2, gW2, gb2 = ref.linear_backward(x, W, y, g, act)
    _close(gx1, gx2, dt, scale=(ag @ np.abs(W).T).reshape(x.shape))
    _close(gW1, gW2, dt, scale=np.abs(x).reshape(-1, n).T @ ag)
    _close(gb1, gb2, dt, scale=ag.sum(0))
    assert ck.linear_backward(x, W, y, g, act, need_x_grad=False)[0] is None


def _edge_log_weights(dtype, K=7, B=5, seed=0):
    a = np.random.default_rng(seed).normal(scale=20, size=(K, B)).astype(dtype)
    a[:, 0] = -np.inf          # all -inf column
    a[1::2, 1] = -np.inf       # some -inf entries
    big = 1e30 if dtype == np.float32 else 1e300
    a[0, 2], a[1, 2] = big, -big  # huge magnitudes
    a[3, 3] = np.inf
    return a


# ----------------------------------------------------------------- the simulator run
@inner
@pytest.mark.parametrize("dtype", DTYPES)
def test_sim_logsumexp_edge_cases(dtype):
    check_logsumexp(_ck(), _edge_log_weights(dtype))


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
def test_sim_fused_ops_through_the_autodiff():
    """The cuda backend behind the autodiff: gradients equal finite differences."""
    import scratchdgm as sd
    from scratchdgm.autodiff import fused

    assert "cuda" in sd.backend.available_backends()
    rng = np.random.default_rng(2)
    a = rng.normal(size=(3, 2))
    assert sd.gradcheck(lambda t: fused.iw_logsumexp(t, backend="cuda"), [a])
    x = (rng.random((1, 3)) < 0.5).astype(float)
    assert sd.gradcheck(lambda t: fused.bernoulli_log_prob(t, x, backend="cuda"),
                        [rng.normal(size=(1, 1, 3))])
    assert sd.gradcheck(lambda xx, W: fused.linear(xx, W, None, "tanh", backend="cuda"),
                        [rng.normal(size=(1, 2)), rng.normal(size=(2, 1))])
    with sd.use_backend("cuda"):
        z = sd.tensor(rng.normal(size=(2, 1, 2)), requires_grad=True)
        out = fused.diag_gaussian_log_prob(z, 0.0, 0.0)
        out.sum().backward()
        np.testing.assert_allclose(z.grad, -z.data, rtol=1e-12)  # d/dz log N(z; 0, 1) = -z


# ----------------------------------------------------------------- the outer run
@pytest.mark.skipif(INNER, reason="this is the simulator subprocess")
@pytest.mark.slow
def test_cuda_kernels_under_simulator():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1", SCRATCHDGM_CUDA_INNER="1")
    env.pop("NUMBA_DISABLE_JIT", None)
    res = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs",
         os.path.abspath(__file__), "-k", "sim_"],
        env=env, capture_output=True, text=True, timeout=600, cwd=root)
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
        check_logsumexp(ck, _edge_log_weights(dtype, K=300, B=1000))
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
