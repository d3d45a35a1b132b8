"""Tests of scratchdgm.testing itself: the strategies keep their domains, the driver catches a
wrong backward and shrinks it to a minimal counterexample, the VJP and broadcast checks catch
what they are for, assert_allclose is dtype-aware, check_model_gradients catches a wrong model
gradient and refuses models outside its protocol, and Hypothesis is needed by this package only."""

import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import scratchdgm as sd
from scratchdgm.nn import Linear, Module
from scratchdgm.testing import (
    GradientCheckFailure,
    assert_allclose,
    check_broadcasting,
    check_gradients,
    check_gradients_at,
    check_model_gradients,
    check_vjp,
)
from scratchdgm.testing import strategies as S

# ------------------------------------------------------------------------------ strategies


@given(S.positive_arrays(S.shapes(), low=0.3, dtype=S.float_dtypes()),
       S.away_from_kinks_arrays(S.shapes(), kinks=(-1.0, 1.0), gap=0.2),
       S.distinct_arrays(S.shapes(), spacing=0.25))
def test_real_domains_hold(pos, kinked, distinct):
    assert pos.dtype in (np.float32, np.float64) and np.all(pos >= 0.3 * (1 - 1e-6))  # float32 rounding
    assert np.all(np.abs(kinked - 1.0) >= 0.2 - 1e-12) and np.all(np.abs(kinked + 1.0) >= 0.2 - 1e-12)
    assert np.all((kinked >= -3) & (kinked <= 3))
    flat = np.sort(distinct.ravel())
    assert np.all(np.diff(flat) >= 0.25 - 1e-12)


@given(S.probability_vectors(S.shapes(max_dims=3, max_side=5), min_prob=0.01),
       S.positive_definite_matrices(st.integers(1, 4), (2,), min_eigenvalue=0.2),
       S.cholesky_factors(3, low=0.5, high=2.0))
def test_structured_domains_hold(p, sigma, L):
    np.testing.assert_allclose(p.sum(-1), 1.0, rtol=1e-12)
    assert np.all(p >= 0.01 - 1e-15)
    np.testing.assert_array_equal(sigma, np.swapaxes(sigma, -1, -2))
    assert np.linalg.eigvalsh(sigma).min() >= 0.2 - 1e-9
    np.testing.assert_array_equal(L, np.tril(L))
    assert np.all((np.diagonal(L) >= 0.5) & (np.diagonal(L) <= 2.0))


@given(S.broadcastable_arrays(S.arrays, S.positive_arrays, S.arrays))
def test_broadcastable_arrays_broadcast_with_their_domains(arrays):
    a, b, c = arrays
    np.broadcast_shapes(a.shape, b.shape, c.shape)
    assert np.all(b > 0)


# ------------------------------------------------------------------------------ the driver


class WrongAbs(sd.Function):
    """|a| whose backward forgets the sign for negative inputs: right for half the domain."""

    @staticmethod
    def forward(ctx, a):
        ctx.save_for_backward(a)
        return np.abs(a)

    @staticmethod
    def backward(ctx, grad):
        return grad * np.ones_like(ctx.saved[0])


def test_driver_shrinks_a_wrong_backward_to_a_minimal_counterexample():
    with pytest.raises(GradientCheckFailure) as info:
        check_gradients(WrongAbs.apply, S.away_from_zero_arrays(S.shapes(), gap=0.1),
                        max_examples=100)
    failure = info.value
    assert failure.minimal and failure.check == "gradcheck"
    assert failure.argument == "argument 0"
    # shrunk to one entry, and a negative one (positive entries are right)
    (x,) = failure.inputs
    assert x.shape == (1,) and x[0] < 0
    assert failure.analytic == pytest.approx(-failure.numeric, rel=1e-6)
    assert "minimal counterexample" in str(failure) and "argument 0" in str(failure)
    # the printed counterexample reproduces the failure at one point
    with pytest.raises(GradientCheckFailure):
        check_gradients_at(WrongAbs.apply, failure.inputs)


def test_driver_passes_a_correct_op_in_both_dtypes():
    check_gradients(lambda a: a.abs(), S.away_from_zero_arrays(S.shapes(), dtype=S.float_dtypes()),
                    max_examples=10)


def test_driver_names_the_failing_function_of_several():
    with pytest.raises(GradientCheckFailure) as info:
        check_gradients({"right": lambda a: a.abs(), "wrong": WrongAbs.apply},
                        S.away_from_zero_arrays(S.shapes()), max_examples=50)
    assert info.value.fn_name == "wrong" and "of fn 'wrong'" in str(info.value)


def test_driver_rejects_fixed_inputs_and_unknown_options():
    with pytest.raises(TypeError, match="check_gradients_at"):
        check_gradients(lambda a: a, np.ones(3))
    with pytest.raises(TypeError, match="unknown arguments"):
        check_gradients(lambda a: a, S.arrays(S.shapes()), tolerance=1e-3)


class MulFirstCopy(sd.Function):
    """a * b whose backward for b keeps the first copy of a broadcast b instead of the sum of
    its copies (reducing by indexing): right whenever b is not broadcast."""

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return a * b

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.saved
        gb = np.broadcast_to(grad * a, np.broadcast_shapes(a.shape, b.shape))
        lead = gb.ndim - b.ndim
        gb = gb[(0,) * lead]
        gb = gb[tuple(slice(0, 1) if n == 1 else slice(None) for n in b.shape)]
        return grad * b, gb


def test_broadcast_check_catches_a_backward_that_does_not_sum_copies():
    a, b = np.arange(1.0, 7.0).reshape(2, 3), np.array([0.5, -1.0, 2.0])
    assert check_broadcasting(MulFirstCopy.apply, [a, a.copy()])     # equal shapes: fine
    with pytest.raises(GradientCheckFailure) as info:
        check_broadcasting(MulFirstCopy.apply, [a, b])
    assert info.value.check == "broadcast" and info.value.argument == "argument 1"
    assert info.value.where == "index (0,)"       # b[0]: its gradient is one copy's, not two


class SlightlyWrongExp(sd.Function):
    """exp with a backward 0.1 % too large: invisible entry by entry at a loose tolerance,
    caught by the projected check at the default one."""

    @staticmethod
    def forward(ctx, a):
        y = np.exp(a)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad):
        return grad * ctx.saved[0] * 1.001


def test_vjp_check_catches_a_wrong_backward_on_a_big_input():
    x = np.linspace(-1, 1, 3000).reshape(30, 100)
    assert check_vjp(lambda a: a.exp(), [x])
    with pytest.raises(sd.GradcheckError) as info:
        check_vjp(SlightlyWrongExp.apply, [x])
    assert info.value.argument == "argument 0"


# ------------------------------------------------------------------------------ assert_allclose

def test_assert_allclose_is_dtype_aware():
    x = np.linspace(1, 2, 5)
    assert_allclose(sd.tensor(x).exp(), np.exp(x))                       # a Tensor and an array
    assert_allclose(np.float32(1.0) + np.float32(3e-7), np.float32(1.0))  # float32 rounding
    with pytest.raises(AssertionError, match=r"worst at index \(2,\)"):
        y = x.copy()
        y[2] += 1e-9                                                      # not float64 rounding
        assert_allclose(y, x)
    with pytest.raises(AssertionError, match="shapes differ"):
        assert_allclose(x[:, None], x)                                    # no broadcasting
    with pytest.raises(AssertionError, match="dtypes differ"):
        assert_allclose(x.astype(np.float32), x, check_dtype=True)


# ------------------------------------------------------------------------------ models


class WrongSquare(sd.Function):
    """a ** 2 with the factor 2 missing from its backward."""

    @staticmethod
    def forward(ctx, a):
        ctx.save_for_backward(a)
        return a * a

    @staticmethod
    def backward(ctx, grad):
        return grad * ctx.saved[0]


class NoisyRegression(Module):
    """A user's model in the protocol: objective(x, k, rng) = sum over the batch and k noise
    draws of ||W x + b + eps||^2 (or its wrong-backward twin)."""

    def __init__(self, p, wrong=False, dtype=np.float64):
        super().__init__()
        self.linear = Linear(p, 2, rng=np.random.default_rng(0), dtype=dtype,
                             backend="numpy")
        self.wrong = wrong

    def objective(self, x, k=1, rng=None):
        eps = rng.standard_normal((k, len(x), 2))
        r = self.linear(sd.tensor(x)) + sd.tensor(eps)
        return (WrongSquare.apply(r) if self.wrong else r * r).sum()


def test_model_helper_passes_a_right_model_on_generated_batches():
    report = check_model_gradients(NoisyRegression(3), S.batches(3, binary=False), k=2,
                                   max_examples=5)
    assert [r["name"] for r in report] == ["linear.weight", "linear.bias"]
    assert all(r["max_ratio"] < 1 for r in report)


def test_model_helper_catches_a_wrong_gradient_with_a_minimal_batch():
    with pytest.raises(GradientCheckFailure) as info:
        check_model_gradients(NoisyRegression(3, wrong=True),
                              S.batches(3, max_rows=2, binary=False), k=2,
                              max_examples=20)
    failure = info.value
    assert failure.minimal and failure.argument.startswith("parameter 'linear.")
    assert failure.inputs[0].shape == (1, 3)                      # one row is enough to fail
    assert failure.analytic == pytest.approx(failure.numeric / 2, rel=1e-4)
    assert "minimal one" in str(failure)


def test_model_helper_takes_a_custom_loss_and_a_subset_of_parameters():
    model = NoisyRegression(3)
    x = np.ones((2, 3))
    report = check_model_gradients(model, x, parameters="linear.bias",
                                   loss=lambda m, x, rng: m.objective(x, 3, rng).tanh())
    assert [r["name"] for r in report] == ["linear.bias"]
    with pytest.raises(ValueError, match="no parameters named"):
        check_model_gradients(model, x, parameters="decoder.bias")


class GlobalNoise(NoisyRegression):
    def objective(self, x, k=1, rng=None):
        return super().objective(x, k, np.random.default_rng())   # ignores rng


def test_model_helper_refuses_models_outside_the_protocol():
    x = np.ones((2, 3))
    with pytest.raises(ValueError, match="same rng seed"):
        check_model_gradients(GlobalNoise(3), x)
    with pytest.raises(ValueError, match="float64"):
        check_model_gradients(NoisyRegression(3, dtype=np.float32), x)
    with pytest.raises(ValueError, match="expected a scalar"):
        check_model_gradients(NoisyRegression(3), x,
                              loss=lambda m, x, rng: m.linear(sd.tensor(x)))
    with pytest.raises(TypeError, match="named_parameters"):
        check_model_gradients(object(), x)


# ------------------------------------------------------------------------------ optional dependency

BLOCK_HYPOTHESIS = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name == "hypothesis" or name.startswith("hypothesis."):
            raise ImportError(f"No module named {name!r} (hidden by the test)")
sys.meta_path.insert(0, Block())
"""


def test_the_core_works_without_hypothesis_and_testing_names_the_extra():
    code = BLOCK_HYPOTHESIS + """
import numpy as np
import scratchdgm as sd
import scratchdgm.autodiff.gradcheck, scratchdgm.models.deep, scratchdgm.nn
model = sd.IWAE(4, 2, (3,), k=2, backend="numpy")
x = (np.random.default_rng(0).random((3, 4)) < 0.5).astype(float)
assert np.isfinite(model.objective(x, 2, np.random.default_rng(0)).item())
assert sd.gradcheck(lambda a: a.tanh(), [np.ones(3)])
assert not any(m == "hypothesis" or m.startswith("hypothesis.") for m in sys.modules)
try:
    import scratchdgm.testing
except ImportError as exc:
    print(exc)
else:
    raise SystemExit("scratchdgm.testing imported without Hypothesis")
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert 'pip install "scratchdgm[test]"' in out.stdout
