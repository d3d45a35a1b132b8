"""ex04: the checkers accept the library's kernels, reject plausible wrong ones with a hint, and
run on the student's file once it is written."""

import numpy as np
import pytest

from exercises import attempted
from exercises.ex04_bernoulli_kernel import checks, student
from scratchdgm.kernels import cpu

pytestmark = pytest.mark.exercise


def _cpu_grad(logits, x):
    return cpu.bernoulli_log_prob_with_grad(logits, x)[1]


@pytest.mark.parametrize("log_prob_fn, grad_fn", [
    (checks.library_log_prob, checks.library_grad),       # the NumPy reference
    (cpu.bernoulli_log_prob, _cpu_grad),                  # the Numba kernel
])
def test_checks_accept_the_library_solutions(log_prob_fn, grad_fn):
    assert checks.check_log_prob(log_prob_fn)
    assert checks.check_grad(grad_fn)
    assert checks.check_grad_is_the_derivative(log_prob_fn, grad_fn)


def _sigmoid(l):
    return 1.0 / (1.0 + np.exp(-l))


@pytest.mark.parametrize("wrong, hint", [
    (lambda l, x: x * l - np.log1p(np.exp(l)), "sum over the last axis"),
    (lambda l, x: -checks.library_log_prob(l, x), "cross-entropy"),
    (lambda l, x: checks.library_log_prob(l, 1 - x), "1 - x"),
    (lambda l, x: (x * np.log(_sigmoid(l)) + (1 - x) * np.log(1 - _sigmoid(l))).sum(-1),
     "under/overflows"),
    (lambda l, x: (x * l - np.log1p(np.exp(l))).sum(-1), "under/overflows"),
    (lambda l, x: (x * l - np.maximum(l, 0)).sum(-1), "differs|expected"),
])
def test_checks_reject_wrong_log_probs(wrong, hint):
    with pytest.raises(AssertionError, match=hint):
        checks.check_log_prob(wrong)


@pytest.mark.parametrize("wrong, hint", [
    (lambda l, x: _sigmoid(l) - x, "wrong sign"),
    (lambda l, x: x - l, "differs"),
    (lambda l, x: x - np.exp(l) / (1 + np.exp(l)), "without overflow"),
])
def test_checks_reject_wrong_gradients(wrong, hint):
    with pytest.raises(AssertionError, match=hint):
        checks.check_grad(wrong)


def test_derivative_property_catches_a_mismatched_pair():
    with pytest.raises(AssertionError, match="derivative"):
        checks.check_grad_is_the_derivative(checks.library_log_prob,
                                            lambda l, x: 0.5 * checks.library_grad(l, x))


_ARGS = (np.zeros((1, 2, 3)), np.zeros((2, 3)))


def test_student_log_prob():
    if not attempted(student.bernoulli_log_prob, *_ARGS):
        pytest.skip("exercise ex04 not attempted yet")
    checks.check_log_prob(student.bernoulli_log_prob)


def test_student_grad():
    if not attempted(student.bernoulli_log_prob_grad, *_ARGS):
        pytest.skip("exercise ex04 not attempted yet")
    checks.check_grad(student.bernoulli_log_prob_grad)


def test_student_grad_is_the_derivative():
    if not (attempted(student.bernoulli_log_prob, *_ARGS)
            and attempted(student.bernoulli_log_prob_grad, *_ARGS)):
        pytest.skip("exercise ex04 not attempted yet")
    checks.check_grad_is_the_derivative(student.bernoulli_log_prob,
                                        student.bernoulli_log_prob_grad)
