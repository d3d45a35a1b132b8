r"""Exercise 08: the closed-form Gaussian KL, ``_kl_diag_diag`` and ``_kl_full_full`` in
``scratchdgm/distributions/kl.py`` (through ``kl_divergence``). Page:
``exercises/08_gaussian_kl.md``."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from scratchdgm.distributions import kl_divergence

from exercises.checks import ex08_gaussian_kl as checks

pytestmark = pytest.mark.ex08


def _params(seed, shape, dtype=np.float64):
    rng = np.random.default_rng(seed)
    return rng.normal(size=shape).astype(dtype), rng.normal(scale=0.5, size=shape).astype(dtype)


def test_diagonal_against_the_standard_normal():
    checks.check_diagonal(kl_divergence, *_params(0, (4, 3)))


def test_diagonal_against_a_diagonal_gaussian():
    checks.check_diagonal(kl_divergence, *_params(1, (4, 3)), *_params(2, (3,)))


def test_diagonal_in_float32():
    checks.check_diagonal(kl_divergence, *_params(3, (5, 2), np.float32))
    checks.check_diagonal(kl_divergence, *_params(4, (5, 2), np.float32),
                          *_params(5, (5, 2), np.float32))


def test_diagonal_is_stable_at_huge_scales():
    checks.check_diagonal_is_stable(kl_divergence)


def test_diagonal_agrees_with_monte_carlo():
    checks.check_monte_carlo(kl_divergence)


@given(shapes=hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=1, max_dims=3,
                                                max_side=3),
       standard=st.booleans(), seed=st.integers(0, 2**16))
def test_diagonal_with_any_batch_shapes(shapes, standard, seed):
    (sq, sp) = shapes.input_shapes
    d = shapes.result_shape[-1]
    sq, sp = sq[:-1] + (d,), sp[:-1] + (d,)  # the event axis is the full d on both sides
    if standard:
        checks.check_diagonal(kl_divergence, *_params(seed, sq))
    else:
        checks.check_diagonal(kl_divergence, *_params(seed, sq), *_params(seed + 1, sp))


@pytest.mark.parametrize("batch_q, batch_p", [((), ()), ((2,), ()), ((2,), (2,)),
                                              ((1, 3), (2, 1))])
def test_full_covariance(batch_q, batch_p):
    checks.check_full(kl_divergence, seed=len(batch_q) + len(batch_p), batch_q=batch_q,
                      batch_p=batch_p)


def test_diagonal_against_full_and_full_against_standard():
    checks.check_mixed(kl_divergence)
