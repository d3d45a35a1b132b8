r"""Exercise 07: simple Monte Carlo and importance sampling, and their variance --
``monte_carlo``, ``_log_mean``, ``importance_sampling``, ``self_normalised_importance_sampling``
and ``effective_sample_size`` in ``scratchdgm/estimators.py``. Page:
``exercises/07_monte_carlo.md``.

While these checks run, ``scratchdgm.numerics.logsumexp`` is SciPy's: the library's own is
exercise 09, and this exercise's checks must pass whatever the state of the others.
"""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy import special

from scratchdgm import estimators, numerics

from exercises.checks import ex07_monte_carlo as checks

pytestmark = pytest.mark.ex07


@pytest.fixture(autouse=True, scope="module")
def _scipy_logsumexp():
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(numerics, "logsumexp", checks.logsumexp)
        yield


def test_monte_carlo_mean_and_standard_error():
    checks.check_monte_carlo_arithmetic(estimators.monte_carlo)
    checks.check_monte_carlo_arithmetic(estimators.monte_carlo, k=2, seed=5)


def test_monte_carlo_is_unbiased_with_variance_var_f_over_k():
    checks.check_monte_carlo_statistics(estimators.monte_carlo)


def test_importance_sampling_weights_and_standard_error():
    checks.check_importance_sampling_arithmetic(estimators.importance_sampling)


def test_importance_sampling_log_value_does_not_under_or_overflow():
    checks.check_importance_sampling_is_stable(estimators.importance_sampling)


def test_importance_sampling_beats_simple_monte_carlo_on_a_tail_probability():
    checks.check_importance_sampling_statistics(estimators.importance_sampling,
                                                estimators.monte_carlo)


def test_self_normalised_importance_sampling():
    checks.check_self_normalised_arithmetic(estimators.self_normalised_importance_sampling)


def test_effective_sample_size():
    checks.check_effective_sample_size(estimators.effective_sample_size)


@given(hnp.arrays(np.float64, hnp.array_shapes(min_dims=1, max_dims=2, max_side=8),
                  elements=st.floats(-500, 500)))
def test_effective_sample_size_on_any_log_weights(log_w):
    got = np.asarray(estimators.effective_sample_size(log_w), np.float64)
    want = np.exp(2 * special.logsumexp(log_w, axis=0) - special.logsumexp(2 * log_w, axis=0))
    assert got.shape == want.shape, (f"effective_sample_size of log-weights of shape "
                                     f"{log_w.shape} has shape {got.shape}, expected {want.shape}")
    assert np.allclose(got, want, rtol=1e-9), (f"effective_sample_size gives {got}, expected "
                                               f"(sum w)^2 / sum w^2 = {want}")
    assert np.all((got >= 1 - 1e-9) & (got <= len(log_w) + 1e-9)), (
        f"the ESS of K = {len(log_w)} weights must lie in [1, K], got {got}")
