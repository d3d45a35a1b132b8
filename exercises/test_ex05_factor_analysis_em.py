r"""Checks of exercise 05: the E-step and the M-step of EM for factor analysis, ``e_step`` and
``m_step`` in ``scratchdgm/models/linear/em.py``. Page: ``exercises/05_factor_analysis_em.md``.

They call only those two functions (and the library's ``Moments`` container): no other
exercise's code, and not exercise 06's PPCA closed form, which the checks compute themselves.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scratchdgm.models.linear import em

from exercises.checks import ex05_factor_analysis_em as checks

pytestmark = pytest.mark.ex05


def test_e_step_moments_are_the_per_point_textbook_ones_and_loglike_is_scipys():
    checks.check_e_step_moments(em.e_step)
    checks.check_e_step_moments(em.e_step, seed=1, n=50, p=4, d=3)


def test_mean_field_e_step():
    checks.check_e_step_mean_field(em.e_step)


@pytest.mark.parametrize("isotropic", [False, True])
def test_m_step_maximises_the_expected_complete_data_loglikelihood(isotropic):
    checks.check_m_step_maximises_q(em.m_step, em.Moments, isotropic=isotropic)


def test_m_step_floors_the_noise():
    checks.check_noise_floor(em.m_step, em.Moments)


def test_em_never_lowers_the_likelihood():
    X, S, W, psi = checks.make_problem(2, 300, 8, 3)
    checks.check_monotone(em.e_step, em.m_step, X, S, W, psi)


def test_sklearns_solution_is_a_fixed_point():
    checks.check_fixed_point_at_sklearn(em.e_step, em.m_step)


def test_ppca_case():
    checks.check_isotropic(em.e_step, em.m_step)


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 2**31 - 1), st.integers(3, 8), st.integers(1, 3), st.booleans())
def test_steps_for_any_data(seed, p, d, isotropic):
    d = min(d, p - 1)
    X, S, W, psi = checks.make_problem(seed, 40, p, d)
    if isotropic:
        psi = np.full(p, psi.mean())
    got = em.e_step(S, W, psi)
    xz, zz = checks.textbook_moments(X, W, psi)
    assert np.allclose(got.xz, xz, rtol=1e-7, atol=1e-9), "xz differs from the per-point sums"
    assert np.allclose(got.zz, zz, rtol=1e-7, atol=1e-9), "zz differs from the per-point sums"
    assert np.isclose(got.loglike, checks.scipy_loglike(X, W, psi), rtol=1e-9), (
        "loglike differs from scipy.stats.multivariate_normal")
    W1, psi1 = em.m_step(S, got, isotropic=isotropic)
    q = checks.expected_complete_loglike
    assert q(S, xz, zz, W1, psi1) >= q(S, xz, zz, W, psi) - 1e-10, (
        "the M-step lowered Q below its value at the old parameters")
    assert checks.scipy_loglike(X, W1, psi1) >= got.loglike - 1e-9 * abs(got.loglike), (
        "one EM step lowered the log-likelihood")
