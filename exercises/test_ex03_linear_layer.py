r"""Exercise 03: the affine layer ``linear``, ``activation_grad`` and ``linear_backward`` in
``kernels/reference.py`` (``scratchdgm.kernels.reference``). Page:
``exercises/03_linear_layer.md``."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import scratchdgm as sd
from scratchdgm.kernels import reference

from exercises.checks import ex03_linear_layer as checks
from exercises.checks._common import central_difference, path_sum_grad

pytestmark = pytest.mark.ex03

ACTIVATIONS = [None, "tanh", "relu", "sigmoid"]


def _case(seed, lead, n, m, bias, dtype=np.float64):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=lead + (n,)).astype(dtype)
    W = rng.normal(scale=0.7, size=(n, m)).astype(dtype)
    b = rng.normal(size=m).astype(dtype) if bias else None
    g = rng.normal(size=lead + (m,)).astype(dtype)
    return x, W, b, g


@pytest.mark.parametrize("act", ACTIVATIONS)
def test_forward_on_stacked_samples(act):
    x, W, b, _ = _case(0, (3, 2), 4, 5, True)    # (K, B, n): K samples of B points
    checks.check_forward(reference.linear, x, W, b, act)
    checks.check_forward(reference.linear, x[0, 0], W, None, act)   # one row, no bias
    checks.check_forward(reference.linear, *_case(1, (6,), 3, 2, True, np.float32)[:3], act)


@pytest.mark.parametrize("act", ACTIVATIONS)
def test_activation_grad(act):
    rng = np.random.default_rng(2)
    a = rng.normal(scale=2, size=(3, 4))
    a = np.where(np.abs(a) < 1e-2, 0.5, a)  # away from relu's kink
    checks.check_activation_grad(reference.activation_grad, act, a, rng.normal(size=(3, 4)))


@pytest.mark.parametrize("act", ACTIVATIONS)
def test_backward_on_stacked_samples(act):
    x, W, b, g = _case(3, (2, 3), 4, 3, True)
    checks.check_backward(reference.linear_backward, x, W, b, act, g)
    checks.check_backward(reference.linear_backward, x, W, b, act, g, need_x_grad=False)
    x, W, b, g = _case(4, (5,), 3, 2, False, np.float32)
    checks.check_backward(reference.linear_backward, x, W, b, act, g)


@given(act=st.sampled_from(ACTIVATIONS), lead=hnp.array_shapes(min_dims=1, max_dims=3,
                                                                 max_side=3),
       n=st.integers(1, 4), m=st.integers(1, 4), bias=st.booleans(), seed=st.integers(0, 2**16))
def test_forward_and_backward_on_any_shapes(act, lead, n, m, bias, seed):
    x, W, b, g = _case(seed, lead, n, m, bias)
    checks.check_forward(reference.linear, x, W, b, act)
    checks.check_backward(reference.linear_backward, x, W, b, act, g)


def test_the_layer_runs_your_kernels_on_the_numpy_backend():
    """nn.Linear on backend='numpy' gives the layer's value, and the optimiser-free gradient of
    its weight equals central differences (taken through the fused op's own backward)."""

    layer = sd.nn.Linear(3, 2, rng=np.random.default_rng(0), activation="tanh", backend="numpy")
    x = np.random.default_rng(1).normal(size=(4, 3))
    y = layer(x)
    want = np.tanh(x @ layer.weight.data + layer.bias.data)
    assert np.allclose(y.data, want, rtol=1e-12), "nn.Linear(backend='numpy') gives wrong values"
    (gW,) = path_sum_grad(y, [layer.weight])
    fd = central_difference(
        lambda w: np.sum(np.tanh(x @ w + layer.bias.data)), layer.weight.data)
    assert np.allclose(gW, fd, rtol=1e-6), "nn.Linear's weight gradient is wrong"
