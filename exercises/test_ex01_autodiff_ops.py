r"""Exercise 01: ``Tanh``, ``Sigmoid`` (forward and backward) and ``MatMul.backward`` in
``scratchdgm/autodiff/ops.py``. Page: ``exercises/01_autodiff_ops.md``."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from scratchdgm.autodiff import ops

from exercises.checks import ex01_autodiff_ops as checks

pytestmark = pytest.mark.ex01

OPS = {"tanh": ops.Tanh, "sigmoid": ops.Sigmoid}

arrays = st.sampled_from([np.float64, np.float32]).flatmap(
    lambda dt: hnp.arrays(dt, hnp.array_shapes(min_dims=0, max_dims=3, max_side=4),
                          elements=st.floats(-6, 6, width=32)))


@pytest.mark.parametrize("name", ["tanh", "sigmoid"])
def test_forward_fixed_cases(name):
    x = np.linspace(-4, 4, 9).reshape(3, 3)
    checks.check_elementwise_forward(OPS[name], name, x)
    checks.check_elementwise_forward(OPS[name], name, x.astype(np.float32))


@pytest.mark.parametrize("name", ["tanh", "sigmoid"])
@given(x=arrays)
def test_forward_on_any_array(name, x):
    checks.check_elementwise_forward(OPS[name], name, x)


def test_sigmoid_is_stable_at_large_logits():
    checks.check_sigmoid_is_stable(ops.Sigmoid)
    checks.check_sigmoid_backward_is_stable(ops.Sigmoid)


@pytest.mark.parametrize("name", ["tanh", "sigmoid"])
def test_backward_fixed_cases(name):
    rng = np.random.default_rng(0)
    x = rng.normal(scale=2, size=(4, 3))
    checks.check_elementwise_backward(OPS[name], name, x, rng.normal(size=(4, 3)))


@pytest.mark.parametrize("name", ["tanh", "sigmoid"])
@given(x=arrays, seed=st.integers(0, 2**16))
def test_backward_on_any_array(name, x, seed):
    grad = np.random.default_rng(seed).normal(size=x.shape).astype(x.dtype)
    checks.check_elementwise_backward(OPS[name], name, x, grad)


@pytest.mark.parametrize("a_shape, b_shape", checks.MATMUL_CASES)
def test_matmul_backward_fixed_cases(a_shape, b_shape):
    checks.check_matmul_backward(ops.MatMul, a_shape, b_shape)


def test_matmul_backward_computes_only_what_is_needed_or_all():
    # a backward may skip a gradient nobody needs (None); computing it anyway is fine too
    checks.check_matmul_backward(ops.MatMul, (2, 3, 4), (4, 5), needs=(False, True))
    checks.check_matmul_backward(ops.MatMul, (2, 3, 4), (4, 5), needs=(True, False))


@st.composite
def matmul_shapes(draw):
    n, k, m = (draw(st.integers(1, 4)) for _ in range(3))
    batch = draw(hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=2,
                                                    max_side=3)).input_shapes
    kind = draw(st.sampled_from(["matrices", "vector left", "vector right"]))
    a = (k,) if kind == "vector left" else batch[0] + (n, k)
    b = (k,) if kind == "vector right" else batch[1] + (k, m)
    return a, b


@given(shapes=matmul_shapes(), seed=st.integers(0, 2**16))
def test_matmul_backward_on_any_shapes(shapes, seed):
    checks.check_matmul_backward(ops.MatMul, *shapes, seed=seed)
