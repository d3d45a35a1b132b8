r"""Exercise 11: the score-function (REINFORCE) gradient estimator with a baseline,
``score_function_gradient`` and ``_baseline`` in ``scratchdgm/estimators.py``. Page:
``exercises/11_score_function.md``.

While these checks run, ``scratchdgm.estimators.gradient`` takes its gradients by the checks' own
chain rule: the library's goes through ``Tensor.backward``, exercise 02, and this exercise's
checks must pass whatever the state of the others.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scratchdgm import estimators

from exercises.checks import ex11_score_function as checks

pytestmark = pytest.mark.ex11


@pytest.fixture(autouse=True, scope="module")
def _gradient_without_backward():
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(estimators, "gradient", checks.gradient)
        yield


def test_estimate_from_the_draws_with_each_baseline():
    checks.check_score_function_arithmetic(estimators.score_function_gradient)
    checks.check_score_function_arithmetic(estimators.score_function_gradient, k=2, seed=3)


def test_f_may_be_a_black_box():
    checks.check_black_box_f(estimators.score_function_gradient)


def test_bad_baselines_are_refused():
    checks.check_baseline_errors(estimators.score_function_gradient)


def test_unbiased_for_the_gradient_of_a_gaussian_expectation_of_a_quadratic():
    checks.check_unbiased(estimators.score_function_gradient)


def test_a_baseline_reduces_the_variance():
    checks.check_baseline_reduces_variance(estimators.score_function_gradient)


@settings(max_examples=20)
@given(st.integers(2, 9), st.integers(0, 2**31 - 1),
       st.one_of(st.none(), st.floats(-5, 5), st.just("loo")))
def test_estimate_from_the_draws_for_any_k_seed_and_baseline(k, seed, baseline):
    mu, log_sigma = checks._params([0.3, -0.2], [0.7, 1.4])
    q = checks.TensorNormal(mu, log_sigma)
    f = checks.quadratic([0.5, 1.0], [-1.0, 0.0])
    got = estimators.score_function_gradient(f, q, [mu, log_sigma], k, seed, baseline=baseline)
    z = q.last
    fz = f(z)
    b = (checks._loo(fz, k) if baseline == "loo"
         else np.zeros_like(fz) if baseline is None else np.full_like(fz, baseline))
    want = checks._reference(z, mu.data, np.exp(log_sigma.data), fz, b)
    for g, w in zip(got, want):
        assert np.allclose(g, w, rtol=1e-8, atol=1e-10), (
            f"k = {k}, baseline = {baseline!r}: the gradient is {g}, expected (1/K) sum_k "
            f"(f(z_k) - b_k) grad log q(z_k) = {w}")
