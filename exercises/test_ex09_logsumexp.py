r"""Exercise 09: the stable log-sum-exp (``logsumexp`` in ``scratchdgm/numerics.py``) and its
autodiff op ``LogSumExp`` (``scratchdgm/autodiff/ops.py``). Page: ``exercises/09_logsumexp.md``."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from scratchdgm import numerics
from scratchdgm.autodiff import ops

from exercises.checks import ex09_logsumexp as checks

pytestmark = pytest.mark.ex09


@pytest.mark.parametrize("shape, axis", checks.CASES)
@pytest.mark.parametrize("keepdims", [False, True])
def test_function_fixed_cases(shape, axis, keepdims):
    a = np.random.default_rng(0).normal(scale=3, size=shape)
    checks.check_function(numerics.logsumexp, a, axis, keepdims)


def test_function_on_integers_and_float32():
    checks.check_function(numerics.logsumexp, np.arange(6).reshape(2, 3), 1)
    checks.check_function(numerics.logsumexp, np.linspace(-3, 3, 6, dtype=np.float32), None)


def test_function_is_stable():
    checks.check_stability(numerics.logsumexp)


@st.composite
def arrays_and_axes(draw):
    a = draw(hnp.arrays(np.float64, hnp.array_shapes(min_dims=1, max_dims=3, max_side=4),
                        elements=st.floats(-700, 700) | st.just(-np.inf)))
    axis = draw(st.none() | st.integers(-a.ndim, a.ndim - 1))
    return a, axis


@given(arrays_and_axes(), st.booleans())
def test_function_on_any_array(case, keepdims):
    checks.check_function(numerics.logsumexp, *case, keepdims)


@pytest.mark.parametrize("shape, axis", checks.CASES)
@pytest.mark.parametrize("keepdims", [False, True])
def test_op_forward_and_backward(shape, axis, keepdims):
    a = np.random.default_rng(1).normal(scale=2, size=shape)
    checks.check_op_forward(ops.LogSumExp, a, axis, keepdims)
    checks.check_op_backward(ops.LogSumExp, a, axis, keepdims)


def test_op_at_extreme_log_weights():
    checks.check_op_extremes(ops.LogSumExp)


@given(arrays_and_axes(), st.booleans(), st.integers(0, 2**16))
def test_op_backward_on_any_array(case, keepdims, seed):
    a, axis = case
    a = np.clip(np.nan_to_num(a, neginf=-5.0), -5, 5)  # finite, for central differences
    checks.check_op_backward(ops.LogSumExp, a, axis, keepdims, seed)
