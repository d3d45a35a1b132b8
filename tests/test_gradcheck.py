r"""``gradcheck`` itself: it must accept right gradients, catch wrong ones, and say where."""

import re

import numpy as np
import pytest

import scratchdgm as sd


class WrongSquare(sd.Function):
    """x**2 with a deliberately wrong backward (forgets the factor 2)."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved
        return grad * x


class WrongSecondArgument(sd.Function):
    """a * b whose gradient for b (argument 1) is wrong in one entry only."""

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return a * b

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.saved
        gb = grad * a
        gb = gb.copy()
        gb[1, 2] += 0.5
        return grad * b, gb


class NoGradient(sd.Function):
    """An op that claims its input has no gradient (a 'silent zero')."""

    @staticmethod
    def forward(ctx, x):
        return np.sin(x)

    @staticmethod
    def backward(ctx, grad):
        return None


def test_accepts_correct_gradients():
    x = np.linspace(-1, 1, 6).reshape(2, 3)
    assert sd.gradcheck(lambda t: (t * t).tanh().sum(axis=0), [x]) is True
    assert sd.gradcheck(lambda t: t.exp(), [sd.tensor(x)]) is True  # Tensor inputs work too


def test_catches_wrong_backward_and_names_argument_index_and_values():
    x = np.array([[0.5, -1.0, 2.0]])
    with pytest.raises(sd.GradcheckError) as info:
        sd.gradcheck(lambda t: WrongSquare.apply(t), [x])
    msg = str(info.value)
    assert "argument 0" in msg
    assert "index (0, 0)" in msg
    # analytic is grad*x, numeric grad*2x: both values are printed, and they differ by 2x
    found = re.findall(r"analytic gradient (\S+), numeric.*?\) (\S+),", msg)[0]
    numbers = [float(v) for v in found]
    assert numbers[1] == pytest.approx(2 * numbers[0], rel=1e-6)


def test_names_the_second_argument_and_the_exact_index():
    a = np.arange(1.0, 7.0).reshape(2, 3)
    b = np.arange(2.0, 8.0).reshape(2, 3) / 3
    with pytest.raises(sd.GradcheckError, match=r"argument 1 at index \(1, 2\)"):
        sd.gradcheck(lambda x, y: WrongSecondArgument.apply(x, y), [a, b])


def test_catches_a_silent_zero_gradient():
    with pytest.raises(sd.GradcheckError, match="analytic gradient 0"):
        sd.gradcheck(lambda t: NoGradient.apply(t), [np.array([0.3, 0.7])])


def test_large_inputs_use_random_directions():
    x = np.linspace(-1, 1, 600)
    assert sd.gradcheck(lambda t: (t * t).sum(), [x]) is True
    with pytest.raises(sd.GradcheckError, match="argument 0 at random direction 0"):
        sd.gradcheck(lambda t: WrongSquare.apply(t), [x])
    # the threshold is a parameter
    with pytest.raises(sd.GradcheckError, match="random direction"):
        sd.gradcheck(lambda t: WrongSquare.apply(t), [x[:10]], max_elements=4)


def test_is_deterministic_and_leaves_inputs_unchanged():
    x = np.array([0.1, 0.2, 0.3])
    before = x.copy()
    for _ in range(2):
        with pytest.raises(sd.GradcheckError) as info:
            sd.gradcheck(lambda t: WrongSquare.apply(t), [x], seed=3)
        assert "argument 0" in str(info.value)
    np.testing.assert_array_equal(x, before)


def test_a_function_that_does_not_depend_on_its_input_passes():
    # zero analytic gradient (no graph at all) equals zero numeric gradient
    assert sd.gradcheck(lambda t: sd.tensor([1.0, 2.0]), [np.ones(2)]) is True


def test_float32_inputs_are_checked_in_float64():
    x = np.array([0.25, 0.5], dtype=np.float32)
    assert sd.gradcheck(lambda t: t.log() * t, [x]) is True


def test_gradcheck_error_is_an_assertion_error():
    assert issubclass(sd.GradcheckError, AssertionError)


@pytest.mark.parametrize("fn, inputs, kw, exc, pattern", [
    ("not callable", [np.ones(2)], {}, TypeError, "fn must be callable"),
    (lambda t: t, np.ones(2), {}, TypeError, "inputs must be a list"),
    (lambda t: t, sd.tensor(np.ones(2)), {}, TypeError, "inputs must be a list"),
    (lambda t: t, 3.0, {}, TypeError, "inputs must be a list"),
    (lambda t: t, [], {}, ValueError, "inputs is empty"),
    (lambda t: t, [np.ones(2)], {"eps": 0.0}, ValueError, "eps > 0"),
    (lambda t: t, [np.ones(2)], {"rtol": -1.0}, ValueError, "rtol >= 0"),
    (lambda t: t, [np.ones(2)], {"atol": -1.0}, ValueError, "atol >= 0"),
    (lambda t: t.data, [np.ones(2)], {}, TypeError, "must return a Tensor"),
])
def test_bad_arguments(fn, inputs, kw, exc, pattern):
    with pytest.raises(exc, match=pattern):
        sd.gradcheck(fn, inputs, **kw)
