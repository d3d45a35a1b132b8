r"""Exercise 02: the backward pass, ``Tensor._topological_order`` and ``Tensor._backward_pass``
in ``scratchdgm/autodiff/tensor.py``. Page: ``exercises/02_backward_pass.md``."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from scratchdgm.autodiff import Tensor

from exercises.checks import ex02_backward_pass as checks

pytestmark = pytest.mark.ex02


def backward(t, grad):
    return t.backward(grad)


def test_topological_order():
    checks.check_topological_order(Tensor._topological_order)


def test_backward_on_a_graph_with_shared_nodes():
    checks.check_backward(backward)


def test_backward_sums_broadcast_gradients_and_keeps_dtypes():
    checks.check_broadcast_and_dtype(backward)


def test_backward_through_a_long_chain():
    checks.check_long_chain(backward)


@st.composite
def programs(draw):
    n_leaves = draw(st.integers(1, 3))
    program = []
    for n in range(draw(st.integers(1, 8))):
        available = n_leaves + n
        op = draw(st.sampled_from(["add", "mul", "sin"]))
        program.append((op, draw(st.integers(0, available - 1)),
                        draw(st.integers(0, available - 1))))
    leaves = [np.random.default_rng(draw(st.integers(0, 2**16))).uniform(-1.5, 1.5, size=2)
              for _ in range(n_leaves)]
    return program, leaves


@given(programs())
def test_backward_on_random_graphs(case):
    checks.check_random_graph(backward, *case)
