r"""The fused autodiff ops (:mod:`scratchdgm.autodiff.fused`) on every backend.

* Their gradients equal central finite differences, and broadcast operands get the summed
  gradient of their copies (:func:`scratchdgm.testing.check_gradients_at`, float64).
* Their values and gradients agree across backends: 1e-12 in float64, 1e-5 (relative to the
  scale of the terms) in float32.
* They equal the same computation written with plain Tensor ops.
* Inputs are validated at the public boundary.

The ``cuda`` backend is exercised under numba's simulator in ``tests/test_kernels_cuda.py``.
"""

import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import scratchdgm as sd
from scratchdgm.autodiff import fused
from scratchdgm.testing import assert_allclose, check_gradients_at, tolerances

if os.environ.get("SCRATCHDGM_TEST_FEW_EXAMPLES"):
    settings.register_profile("few", settings.get_profile("ci"), max_examples=8)
    settings.load_profile("few")

BACKENDS = ("numpy", "numba")
ACTS = (None, "tanh", "relu", "sigmoid")


def _rng(seed=0):
    return np.random.default_rng(seed)


@pytest.mark.parametrize("backend", BACKENDS)
def test_gradcheck_iw_logsumexp(backend):
    a = _rng(0).normal(size=(5, 3)) * 3
    a[1, 2] = -np.inf  # a zero-weight sample: no gradient to it, others still checked
    fn = lambda t: fused.iw_logsumexp(t, backend=backend)  # noqa: E731
    assert check_gradients_at(fn, [np.where(np.isfinite(a), a, -30.0)])
    w = sd.tensor(a, requires_grad=True)
    fused.iw_logsumexp(w, backend=backend).sum().backward()
    assert w.grad[1, 2] == 0.0
    np.testing.assert_allclose(w.grad.sum(axis=0), 1.0, rtol=1e-12)  # normalised weights


@pytest.mark.parametrize("backend", BACKENDS)
def test_gradcheck_bernoulli_log_prob(backend):
    rng = _rng(1)
    x = (rng.random((3, 6)) < 0.5).astype(float)
    fn = lambda t: fused.bernoulli_log_prob(t, x, backend=backend)  # noqa: E731
    assert check_gradients_at(fn, [rng.normal(size=(4, 3, 6)) * 3])
    assert check_gradients_at(fn, [rng.normal(size=(3, 6))])  # (B, D) logits


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", ["encoder", "prior", "full", "scalar-sigma", "2d"])
def test_gradcheck_diag_gaussian(backend, case):
    rng = _rng(2)
    K, B, d = 3, 2, 4
    z = rng.normal(size=(K, B, d))
    shapes = {"encoder": [(B, d), (B, d)], "prior": [(), ()], "full": [(K, B, d), (K, B, d)],
              "scalar-sigma": [(B, d), ()], "2d": [(B, d), (1, d)]}[case]
    if case == "2d":
        z = z[0]
    mu, ls = (rng.normal(size=s) * 0.5 for s in shapes)
    fn = lambda z_, m_, s_: fused.diag_gaussian_log_prob(z_, m_, s_, backend=backend)  # noqa
    # mu and log_sigma broadcast against z in every case but "full"
    assert check_gradients_at(fn, [z, mu, ls], broadcast=True)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("activation", ACTS)
def test_gradcheck_linear(backend, activation):
    rng = _rng(3)
    x, W, b = rng.normal(size=(2, 3, 4)), rng.normal(size=(4, 5)), rng.normal(size=5)
    fn = lambda x_, W_, b_: fused.linear(x_, W_, b_, activation, backend=backend)  # noqa
    assert check_gradients_at(fn, [x, W, b])
    fn2 = lambda x_, W_: fused.linear(x_, W_, None, activation, backend=backend)  # noqa
    assert check_gradients_at(fn2, [x[0], W])


def _iwae_like(backend, dtype, seed):
    """A small IWAE objective built from the four fused ops; returns loss and gradients."""
    rng = _rng(seed)
    K, B, p, h, d = 4, 3, 12, 7, 2
    f = lambda *s: sd.tensor(rng.normal(size=s).astype(dtype) * 0.5, requires_grad=True)  # noqa
    W1, b1, Wm, Ws, W2, b2, W3 = f(p, h), f(h), f(h, d), f(h, d), f(d, h), f(h), f(h, p)
    x = (rng.random((B, p)) < 0.5).astype(dtype)
    eps = rng.standard_normal((K, B, d)).astype(dtype)
    with sd.use_backend(backend):
        hx = fused.linear(x, W1, b1, "tanh")
        mu, ls = fused.linear(hx, Wm, None), fused.linear(hx, Ws, None)
        z = mu + ls.exp() * eps
        logits = fused.linear(fused.linear(z, W2, b2, "tanh"), W3, None)
        log_w = (fused.bernoulli_log_prob(logits, x) + fused.diag_gaussian_log_prob(z)
                 - fused.diag_gaussian_log_prob(z, mu, ls))
        loss = -(fused.iw_logsumexp(log_w) - np.log(K)).mean()
    loss.backward()
    return loss.item(), [t.grad for t in (W1, b1, Wm, Ws, W2, b2, W3)]


@settings(max_examples=10)
@given(st.integers(0, 10**6), st.sampled_from([np.float32, np.float64]))
@pytest.mark.slow
def test_backends_agree_on_an_iwae_objective(seed, dtype):
    l0, g0 = _iwae_like("numpy", dtype, seed)
    l1, g1 = _iwae_like("numba", dtype, seed)
    # the dtype's tolerances of scratchdgm.testing (1e-12 in float64, 1e-5 in float32), atol
    # relative to the largest gradient entry (over 200 seeds the worst seen was 3.4e-14 in
    # float64 and 2.4e-6 in float32)
    rtol, _ = tolerances(dtype)
    assert abs(l0 - l1) <= rtol * max(1.0, abs(l0))
    for a, b in zip(g0, g1):
        assert a.dtype == np.dtype(dtype)
        assert_allclose(a, b, check_dtype=True)


@pytest.mark.parametrize("backend", BACKENDS)
def test_fused_ops_equal_plain_tensor_ops(backend):
    rng = _rng(4)
    K, B, D = 3, 2, 5
    a = sd.tensor(rng.normal(size=(K, B)))
    np.testing.assert_allclose(fused.iw_logsumexp(a, backend=backend).data,
                               sd.logsumexp(a, axis=0).data, rtol=1e-12)
    logits = sd.tensor(rng.normal(size=(K, B, D)))
    x = (rng.random((B, D)) < 0.5).astype(float)
    plain = (x * logits - logits.softplus()).sum(axis=-1)
    np.testing.assert_allclose(fused.bernoulli_log_prob(logits, x, backend=backend).data,
                               plain.data, rtol=1e-12)
    z, mu, ls = (sd.tensor(rng.normal(size=s)) for s in [(K, B, D), (B, D), (B, D)])
    eps = (z - mu) * (-ls).exp()
    plain = (-0.5 * eps * eps - ls - 0.5 * np.log(2 * np.pi)).sum(axis=-1)
    np.testing.assert_allclose(fused.diag_gaussian_log_prob(z, mu, ls, backend=backend).data,
                               plain.data, rtol=1e-12)
    W, b = sd.tensor(rng.normal(size=(D, 4))), sd.tensor(rng.normal(size=4))
    np.testing.assert_allclose(fused.linear(z, W, b, "tanh", backend=backend).data,
                               (z @ W + b).tanh().data, rtol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fused_ops_preserve_dtype(dtype):
    rng = _rng(5)
    t = sd.tensor(rng.normal(size=(3, 2, 4)).astype(dtype), requires_grad=True)
    W = sd.tensor(rng.normal(size=(4, 4)).astype(dtype), requires_grad=True)
    x = np.ones((2, 4), dtype)
    outs = [fused.iw_logsumexp(t[..., 0]), fused.bernoulli_log_prob(t, x),
            fused.diag_gaussian_log_prob(t), fused.linear(t, W, None, "relu")]
    assert all(o.dtype == dtype for o in outs)
    sum(o.sum() for o in outs).backward()
    assert t.grad.dtype == dtype and W.grad.dtype == dtype


def test_no_grad_skips_the_gradient_pass():
    logits = sd.tensor(np.zeros((2, 3, 4)), requires_grad=True)
    with sd.no_grad():
        out = fused.bernoulli_log_prob(logits, np.ones((3, 4)))
    assert not out.requires_grad


def test_fused_ops_validate_input():
    t = sd.tensor(np.zeros((2, 3, 4)))
    with pytest.raises(ValueError, match="do not match data"):
        fused.bernoulli_log_prob(t, np.zeros((3, 5)))
    with pytest.raises(ValueError, match=r"shape \(B, D\)"):
        fused.bernoulli_log_prob(t, np.zeros(4))
    with pytest.raises(ValueError, match="do not broadcast"):
        fused.diag_gaussian_log_prob(t, np.zeros((5, 4)))
    with pytest.raises(ValueError, match="unknown activation"):
        fused.linear(t, np.zeros((4, 2)), None, "gelu")
    with pytest.raises(ValueError, match="does not match W"):
        fused.linear(t, np.zeros((3, 2)))
    with pytest.raises(ValueError, match="b must have shape"):
        fused.linear(t, np.zeros((4, 2)), np.zeros(3))
    with pytest.raises(ValueError, match="K >= 1"):
        fused.iw_logsumexp(np.zeros((0, 3)))
    with pytest.raises(ValueError, match="unknown backend"):
        fused.iw_logsumexp(np.zeros((2, 3)), backend="tpu")
