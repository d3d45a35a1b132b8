"""ex03: the checkers accept the library's solution, reject plausible wrong ones with a hint,
and run on the student's file once it is written."""

import math

import numpy as np
import pytest
from scipy.special import logsumexp

from exercises import attempted
from exercises.ex03_iwae_bound import checks, student
from scratchdgm.models.deep import bounds

pytestmark = pytest.mark.exercise


def reference_iwae(log_w):
    return bounds.iwae_bound(log_w).data


def test_checks_accept_the_library_solution():
    assert checks.check_iwae_bound(reference_iwae)
    assert checks.check_gaussian_kl(checks.library_gaussian_kl)


@pytest.mark.parametrize("wrong, hint", [
    (lambda lw: logsumexp(lw, axis=0), "forget the 1/K"),
    (lambda lw: lw.mean(axis=0), "mean of the log-weights"),
    (lambda lw: logsumexp(lw, axis=1) - math.log(lw.shape[1]), "axis 1"),
    (lambda lw: np.log(np.mean(np.exp(lw), axis=0)), "logsumexp trick"),
])
def test_checks_reject_wrong_iwae_bounds(wrong, hint):
    with pytest.raises(AssertionError, match=hint):
        with np.errstate(all="ignore"):
            checks.check_iwae_bound(wrong)


def _kl_no_minus_p(m0, c0, m1, c1):
    return checks.library_gaussian_kl(m0, c0, m1, c1) + 0.5 * len(m0)


def _kl_swapped(m0, c0, m1, c1):
    return checks.library_gaussian_kl(m1, c1, m0, c0)


def _kl_logdet_flipped(m0, c0, m1, c1):
    return (checks.library_gaussian_kl(m0, c0, m1, c1) - np.linalg.slogdet(c1)[1]
            + np.linalg.slogdet(c0)[1])


@pytest.mark.parametrize("wrong, hint", [
    (_kl_no_minus_p, "expected 0"),
    (_kl_swapped, "KL\\(N1 \\|\\| N0\\)"),
    (_kl_logdet_flipped, "wrong sign"),
])
def test_checks_reject_wrong_kls(wrong, hint):
    with pytest.raises(AssertionError, match=hint):
        checks.check_gaussian_kl(wrong)


def test_student_iwae_bound():
    if not attempted(student.iwae_bound, np.zeros((2, 3))):
        pytest.skip("exercise ex03 not attempted yet")
    checks.check_iwae_bound(student.iwae_bound)


def test_student_gaussian_kl():
    if not attempted(student.gaussian_kl, np.zeros(2), np.eye(2), np.zeros(2), np.eye(2)):
        pytest.skip("exercise ex03 not attempted yet")
    checks.check_gaussian_kl(student.gaussian_kl)
