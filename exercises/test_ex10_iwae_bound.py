r"""Exercise 10: the IWAE bound and the K-sample VAE bound, ``iwae_bound`` and
``elbo_monte_carlo`` in ``scratchdgm/models/deep/bounds.py``. Page: ``exercises/10_iwae_bound.md``.

The bound runs on the ``numba`` backend here: the ``numpy`` backend's log-sum-exp is exercise 09,
and this exercise's checks must pass whatever the state of the others.
"""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from scratchdgm.models.deep import bounds

from exercises.checks import ex10_iwae_bound as checks

pytestmark = pytest.mark.ex10


def iwae(log_w):
    return bounds.iwae_bound(log_w, backend="numba")


def test_values():
    rng = np.random.default_rng(0)
    checks.check_iwae_values(iwae, rng.normal(scale=2, size=(7, 5)))
    checks.check_iwae_values(iwae, rng.normal(scale=2, size=(1, 3)))


def test_log_weights_of_a_real_model_do_not_overflow():
    big = np.array([[-1000.0, 800.0, -np.inf], [-1001.0, 801.0, -3.0], [-1002.0, 799.0, -5.0]])
    checks.check_iwae_values(iwae, big)


def test_gradient_is_the_normalised_weights():
    checks.check_iwae_gradient(iwae, np.random.default_rng(1).normal(scale=3, size=(5, 4)))


def test_bounds_increase_with_k():
    checks.check_theorem_1(iwae)


def test_vae_bound_with_k_samples():
    checks.check_elbo(bounds.elbo_monte_carlo, np.random.default_rng(2).normal(size=(6, 3)))
    checks.check_k1_is_the_vae_bound(iwae, bounds.elbo_monte_carlo)


@given(hnp.arrays(np.float64, hnp.array_shapes(min_dims=2, max_dims=2, max_side=6),
                  elements=st.floats(-500, 500)))
def test_values_on_any_log_weights(log_w):
    checks.check_iwae_values(iwae, log_w)
