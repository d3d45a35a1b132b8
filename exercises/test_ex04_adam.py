r"""Exercise 04: one Adam step, ``adam_update`` in ``kernels/reference.py``
(``scratchdgm.kernels.reference``), which ``scratchdgm.optim.Adam`` runs on the numpy backend.
Page: ``exercises/04_adam.md``."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from scratchdgm.kernels import reference
from scratchdgm.optim import Adam

from exercises.checks import ex04_adam as checks

pytestmark = pytest.mark.ex04


def test_first_step_moves_each_coordinate_by_lr():
    checks.check_first_step(reference.adam_update)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_steps_follow_algorithm_1(dtype):
    checks.check_steps(reference.adam_update, dtype)


def test_weight_decay():
    checks.check_steps(reference.adam_update, weight_decay=0.1)


@given(seed=st.integers(0, 2**16), n_steps=st.integers(1, 8))
def test_steps_with_any_gradients(seed, n_steps):
    checks.check_steps(reference.adam_update, n_steps=n_steps, seed=seed)


def test_the_optimiser_runs_your_step():
    checks.check_optimiser_converges(Adam)
