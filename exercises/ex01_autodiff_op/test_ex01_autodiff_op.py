r"""Exercise 01 tests: the checkers accept the library's solution, reject plausible mistakes with
the right hint, and run on the student's op once it is written."""

import numpy as np
import pytest

from scratchdgm.autodiff import Context, ops

from exercises import attempted

from . import checks, student

pytestmark = pytest.mark.exercise


class Reference(ops.LogSumExp):
    """The library's op, with the exercise's signature (one int axis, reduced axis removed)."""

    @staticmethod
    def forward(ctx, a, axis):
        return ops.LogSumExp.forward(ctx, a, axis=(axis % a.ndim,), keepdims=False)


class Naive(Reference):
    """Forgets the max shift: overflows at large log-weights."""

    @staticmethod
    def forward(ctx, a, axis):
        Reference.forward(ctx, a, axis)  # keep the reference backward working
        with np.errstate(all="ignore"):
            return np.log(np.sum(np.exp(a), axis=axis))


class KeepsDims(Reference):
    @staticmethod
    def forward(ctx, a, axis):
        return np.expand_dims(Reference.forward(ctx, a, axis), axis)


class LogMeanExp(Reference):
    @staticmethod
    def forward(ctx, a, axis):
        return Reference.forward(ctx, a, axis) - np.log(a.shape[axis])


class NoNegInfGuard(Reference):
    """Stable for finite inputs, but an all -inf axis gives NaN."""

    @staticmethod
    def forward(ctx, a, axis):
        Reference.forward(ctx, a, axis)
        m = np.max(a, axis=axis, keepdims=True)
        with np.errstate(all="ignore"):
            return np.squeeze(m + np.log(np.sum(np.exp(a - m), axis=axis, keepdims=True)), axis)


class _Mine(Reference):
    """Correct forward saving (a, out, axis); subclasses vary the backward."""

    @staticmethod
    def forward(ctx, a, axis):
        out = Reference.forward(ctx, a, axis)
        ctx.save_for_backward(a, out, axis)
        return out


class UnnormalisedBackward(_Mine):
    @staticmethod
    def backward(ctx, grad):
        a, _, axis = ctx.saved
        return np.expand_dims(grad, axis) * np.exp(a)


class ForgetsToExpand(_Mine):
    @staticmethod
    def backward(ctx, grad):
        a, out, axis = ctx.saved
        return grad * np.exp(a - np.expand_dims(out, axis))  # grad not expanded


class ReturnsReducedShape(_Mine):
    @staticmethod
    def backward(ctx, grad):
        return grad


class SoftmaxByDivision(_Mine):
    @staticmethod
    def backward(ctx, grad):
        a, _, axis = ctx.saved
        with np.errstate(all="ignore"):
            e = np.exp(a)
            return np.expand_dims(grad, axis) * e / e.sum(axis=axis, keepdims=True)


class NaNOnAllMinusInf(_Mine):
    @staticmethod
    def backward(ctx, grad):
        a, out, axis = ctx.saved
        with np.errstate(all="ignore"):
            return np.expand_dims(grad, axis) * np.exp(a - np.expand_dims(out, axis))


class ForwardOnly(_Mine):
    @staticmethod
    def backward(ctx, grad):
        raise NotImplementedError("exercise ex01: write this")


def test_checks_accept_the_library_solution():
    checks.check_logsumexp(Reference)


@pytest.mark.parametrize("wrong, hint", [
    (Naive, "Subtract the maximum first"),
    (KeepsDims, "you kept the reduced axis"),
    (LogMeanExp, "log-MEAN-exp"),
    (NoNegInfGuard, "use m = 0 where the maximum is not finite"),
    (UnnormalisedBackward, "you returned grad \\* exp\\(a\\): divide by the sum"),
    (ForgetsToExpand, "put it back with np.expand_dims\\(grad, axis\\)"),
    (ReturnsReducedShape, "backward returned shape"),
    (SoftmaxByDivision, "compute the softmax as exp\\(a - y\\)"),
    (NaNOnAllMinusInf, "row of all -inf, expected zeros"),
    (ForwardOnly, "backward still raises NotImplementedError"),
])
def test_checks_reject_plausible_mistakes(wrong, hint):
    with pytest.raises(AssertionError, match=hint):
        checks.check_logsumexp(wrong)


def test_student_solution():
    if not attempted(student.LogSumExp.forward, Context((True,)), np.zeros((2, 3)), -1):
        pytest.skip("exercise ex01 not attempted yet")
    checks.check_logsumexp(student.LogSumExp)
