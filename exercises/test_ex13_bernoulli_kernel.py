r"""Exercise 13: the Bernoulli log-likelihood as fused Numba kernels, ``_bernoulli_kernel`` and
``_bernoulli_grad_kernel`` in ``kernels/cpu.py`` (``scratchdgm.kernels.cpu``). Page:
``exercises/13_bernoulli_kernel.md``."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from scratchdgm.kernels import cpu

from exercises.checks import ex13_bernoulli_kernel as checks

pytestmark = pytest.mark.ex13


def _case(seed, K, B, D, dtype=np.float64, scale=4.0):
    rng = np.random.default_rng(seed)
    logits = rng.normal(scale=scale, size=(K, B, D)).astype(dtype)
    x = (rng.random((B, D)) < 0.4).astype(dtype)
    return logits, x


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_log_prob_and_gradient(dtype):
    logits, x = _case(0, 3, 4, 10, dtype)
    checks.check_log_prob(cpu.bernoulli_log_prob, logits, x)
    checks.check_with_grad(cpu.bernoulli_log_prob_with_grad, logits, x)
    checks.check_compiled(cpu._bernoulli_kernel)
    checks.check_compiled(cpu._bernoulli_grad_kernel)


def test_iwae_sized_input():
    # K x B x D = 50 x 20 x 784: the largest array of an IWAE step on binary MNIST
    logits, x = _case(1, 50, 20, 784)
    checks.check_log_prob(cpu.bernoulli_log_prob, logits, x)
    checks.check_with_grad(cpu.bernoulli_log_prob_with_grad, logits, x)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_extreme_logits(dtype):
    checks.check_extreme_logits(cpu.bernoulli_log_prob, cpu.bernoulli_log_prob_with_grad, dtype)


def test_gradient_is_the_derivative():
    checks.check_gradient_is_the_derivative(cpu.bernoulli_log_prob,
                                            cpu.bernoulli_log_prob_with_grad)


@given(K=st.integers(1, 4), B=st.integers(1, 4), D=st.integers(1, 12),
       scale=st.sampled_from([0.1, 3.0, 50.0]), seed=st.integers(0, 2**16))
def test_any_shape(K, B, D, scale, seed):
    logits, x = _case(seed, K, B, D, scale=scale)
    checks.check_log_prob(cpu.bernoulli_log_prob, logits, x)
    checks.check_with_grad(cpu.bernoulli_log_prob_with_grad, logits, x)
