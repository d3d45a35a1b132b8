r"""Exercise 06: the closed-form PPCA, ``closed_form_mle`` in
``scratchdgm/models/linear/ppca.py``. Page: ``exercises/06_ppca_closed_form.md``."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scratchdgm.models.linear import ppca

from exercises.checks import ex06_ppca_closed_form as checks

pytestmark = pytest.mark.ex06


def test_more_points_than_features():
    checks.check_closed_form(ppca.closed_form_mle, checks.make_data(0, 200, 6, 2), 2)


def test_fewer_points_than_features():
    # n = 5 < p = 12: only 5 eigenvalues are listed, the 7 others are zero
    checks.check_closed_form(ppca.closed_form_mle, checks.make_data(1, 5, 12, 2), 2)


def test_data_in_a_subspace_hit_the_noise_floor():
    checks.check_closed_form(ppca.closed_form_mle, checks.make_data(2, 50, 5, 2, noise=0.0), 2,
                             floor=1e-6)


def test_agrees_with_scikit_learn_pca():
    checks.check_against_sklearn(ppca.closed_form_mle, checks.make_data(3, 300, 8, 3), 3)


def test_the_estimator_runs_your_function():
    checks.check_estimator(ppca.PPCA, ppca.closed_form_mle, checks.make_data(4, 100, 5, 2), 2)


@given(seed=st.integers(0, 2**16), n=st.integers(3, 40), p=st.integers(2, 7),
       d=st.integers(1, 6))
def test_any_shape(seed, n, p, d):
    d = min(d, p - 1, n - 1)
    checks.check_closed_form(ppca.closed_form_mle, checks.make_data(seed, n, p, d), d)
