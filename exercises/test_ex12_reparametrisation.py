r"""Exercise 12: reparametrised sampling, ``DiagNormal.rsample`` and ``FullNormal.rsample`` in
``scratchdgm/distributions/normal.py``. Page: ``exercises/12_reparametrisation.md``."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from exercises.checks import ex12_reparametrisation as checks

pytestmark = pytest.mark.ex12


def rsample(dist, sample_shape, random_state):
    return dist.rsample(sample_shape, random_state)


def test_shapes_and_dtype():
    rng = np.random.default_rng(0)
    mu, ls = rng.normal(size=(2, 3)), rng.normal(size=(2, 3))
    checks.check_shapes_and_dtype(rsample, mu, ls, (4,))
    checks.check_shapes_and_dtype(rsample, mu, ls, 5)
    checks.check_shapes_and_dtype(rsample, mu, ls, ())
    checks.check_shapes_and_dtype(rsample, mu, ls[0], (2, 2))   # one sigma per coordinate
    checks.check_shapes_and_dtype(rsample, mu.astype(np.float32), ls.astype(np.float32), (3,))


def test_randomness_comes_from_random_state():
    checks.check_randomness(rsample)


def test_diagonal_draws_have_the_right_distribution():
    checks.check_diag_moments(rsample)


def test_diagonal_draws_are_differentiable_in_the_parameters():
    rng = np.random.default_rng(1)
    checks.check_diag_reparametrisation(rsample, rng.normal(size=(2, 3)),
                                        rng.normal(size=(2, 3)))
    checks.check_diag_reparametrisation(rsample, rng.normal(size=3), np.array([0.5]))


@given(shapes=hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=1, max_dims=3,
                                                max_side=3),
       sample_shape=hnp.array_shapes(min_dims=0, max_dims=2, max_side=3),
       seed=st.integers(0, 2**16))
def test_any_shapes_are_differentiable(shapes, sample_shape, seed):
    rng = np.random.default_rng(seed)
    mu, ls = (rng.normal(size=s) for s in shapes.input_shapes)
    checks.check_shapes_and_dtype(rsample, mu, ls, sample_shape)
    checks.check_diag_reparametrisation(rsample, mu, ls, sample_shape, seed)


def test_full_covariance_draws_have_the_right_distribution():
    checks.check_full_moments(rsample)


@pytest.mark.parametrize("batch, sample_shape", [((), (5,)), ((2,), (4,)), ((2,), ())])
def test_full_covariance_draws_are_differentiable(batch, sample_shape):
    checks.check_full_reparametrisation(rsample, batch, sample_shape)
