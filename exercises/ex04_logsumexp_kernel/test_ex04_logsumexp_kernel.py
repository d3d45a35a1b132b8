"""ex04: the checkers accept the library's kernels, reject plausible wrong ones with a hint, and
run on the student's file once it is written."""

import numpy as np
import pytest
from scipy.special import logsumexp, softmax

from exercises.ex04_logsumexp_kernel import checks, student
from scratchdgm.kernels import cpu

pytestmark = pytest.mark.exercise


def _cpu_weights(a, lse):
    return cpu.logsumexp_backward(a, lse, np.ones(a.shape[1]))


@pytest.mark.parametrize("lse_fn, w_fn", [
    (checks.library_logsumexp, checks.library_normalised_weights),  # the NumPy reference
    (cpu.logsumexp, _cpu_weights),                                   # the Numba kernels
])
def test_checks_accept_the_library_solutions(lse_fn, w_fn):
    assert checks.check_logsumexp(lse_fn)
    assert checks.check_normalised_weights(w_fn)
    assert checks.check_weights_are_the_gradient(lse_fn, w_fn)


def _naive(a):
    return np.log(np.sum(np.exp(a), axis=0))


def _shift_without_care(a):
    m = a.max(axis=0)
    return m + np.log(np.sum(np.exp(a - m), axis=0))  # NaN for an all -inf column


@pytest.mark.parametrize("wrong, hint", [
    (lambda a: logsumexp(a, axis=1), "axis 1"),
    (lambda a: logsumexp(a, axis=0) - np.log(a.shape[0]), "IWAE bound"),
    (_naive, "overflows"),
    (_shift_without_care, "all -inf column"),
])
def test_checks_reject_wrong_logsumexps(wrong, hint):
    with pytest.raises(AssertionError, match=hint):
        checks.check_logsumexp(wrong)


@pytest.mark.parametrize("wrong, hint", [
    (lambda a, lse: softmax(a, axis=1), "axis 1"),
    (lambda a, lse: np.exp(a), "subtract lse"),
    (lambda a, lse: np.exp(a - lse), "NaN"),  # right formula, wrong at lse = -inf
])
def test_checks_reject_wrong_weights(wrong, hint):
    with pytest.raises(AssertionError, match=hint):
        checks.check_normalised_weights(wrong)


def test_gradient_property_catches_weights_of_the_wrong_function():
    with pytest.raises(AssertionError, match="gradient"):
        checks.check_weights_are_the_gradient(checks.library_logsumexp,
                                              lambda a, lse: np.full(a.shape, 1 / a.shape[0]))


def _attempted(fn, *args):
    try:
        fn(*args)
    except NotImplementedError:
        return False
    except Exception:
        return True
    return True


def test_student_logsumexp():
    if not _attempted(student.logsumexp_over_k, np.zeros((2, 3))):
        pytest.skip("exercise ex04 not attempted yet")
    checks.check_logsumexp(student.logsumexp_over_k)


def test_student_normalised_weights():
    if not _attempted(student.normalised_weights, np.zeros((2, 3)), np.zeros(3)):
        pytest.skip("exercise ex04 not attempted yet")
    checks.check_normalised_weights(student.normalised_weights)


def test_student_weights_are_the_gradient():
    if not (_attempted(student.logsumexp_over_k, np.zeros((2, 3)))
            and _attempted(student.normalised_weights, np.zeros((2, 3)), np.zeros(3))):
        pytest.skip("exercise ex04 not attempted yet")
    checks.check_weights_are_the_gradient(student.logsumexp_over_k, student.normalised_weights)
