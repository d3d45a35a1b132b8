r"""``jacobian`` and ``batch_jacobian`` (scratchdgm.autodiff.jacobian): exact on linear maps,
equal to central finite differences on smooth ones (an independent reference), the per-row
version equal to the diagonal blocks of the full one, and clear errors."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import scratchdgm as sd
from scratchdgm.autodiff import batch_jacobian, jacobian
from scratchdgm.testing import strategies as S


def _finite_difference_jacobian(f, x, eps=1e-6):
    """Central differences of a NumPy function, column by column: the reference."""
    x = np.asarray(x, dtype=np.float64)
    out = np.asarray(f(x))
    J = np.zeros(out.shape + x.shape)
    for j in np.ndindex(x.shape):
        e = np.zeros_like(x)
        e[j] = eps
        J[(Ellipsis,) + j] = (f(x + e) - f(x - e)) / (2 * eps)
    return J


@given(data=st.data(), n=st.integers(1, 4), m=st.integers(1, 4))
def test_jacobian_of_a_linear_map_is_its_matrix(data, n, m):
    A = data.draw(S.arrays((m, n)))
    x = data.draw(S.arrays((n,)))
    np.testing.assert_array_equal(jacobian(lambda v: v @ A.T, x), A)


@given(data=st.data(), shape=S.shapes(max_dims=2, max_side=3))
def test_jacobian_matches_finite_differences(data, shape):
    x = data.draw(S.arrays(shape, -2, 2))
    w = data.draw(S.arrays(shape, -2, 2))

    def f_tensor(v):  # mixes every entry with every other: a full Jacobian
        return (v * w).tanh() * (v * v).sum() + v.exp() / 3.0

    def f_numpy(v):
        return np.tanh(v * w) * (v * v).sum() + np.exp(v) / 3.0

    J = jacobian(f_tensor, x)
    assert J.shape == shape + shape
    np.testing.assert_allclose(J, _finite_difference_jacobian(f_numpy, x), rtol=1e-6,
                               atol=1e-8)


@given(data=st.data(), B=st.integers(1, 4), n=st.integers(1, 3), m=st.integers(1, 3))
def test_batch_jacobian_is_the_diagonal_blocks_of_the_full_jacobian(data, B, n, m):
    x = data.draw(S.arrays((B, n)))
    W = data.draw(S.arrays((n, m)))

    def layer(v):
        return (v @ W).tanh() * v.sum(axis=-1, keepdims=True)

    full = jacobian(layer, x)                                     # (B, m, B, n)
    rows = batch_jacobian(layer, x)                               # (B, m, n)
    assert rows.shape == (B, m, n)
    for b in range(B):
        np.testing.assert_allclose(rows[b], full[b, :, b, :], rtol=0, atol=1e-14)
        for c in range(B):
            if c != b:  # rows do not interact
                assert np.all(full[b, :, c, :] == 0)


def test_jacobian_of_a_constant_function_is_zero():
    J = jacobian(lambda v: sd.tensor(np.ones(3)), np.zeros(2))
    assert J.shape == (3, 2) and not J.any()


def test_jacobian_keeps_float32():
    x = np.array([0.5, -0.25], dtype=np.float32)
    J = jacobian(lambda v: v.exp(), x)
    assert J.dtype == np.float32
    np.testing.assert_allclose(J, np.diag(np.exp(x)), rtol=1e-6)


def test_jacobian_errors():
    with pytest.raises(TypeError, match="callable"):
        jacobian("not a function", np.zeros(2))
    with pytest.raises(TypeError, match="return a Tensor"):
        jacobian(lambda v: v.data, np.zeros(2))
    with pytest.raises(ValueError, match=r"map \(B, n\) to \(B, m\)"):
        batch_jacobian(lambda v: v.sum(axis=0), np.zeros((3, 2)))
    with pytest.raises(ValueError, match=r"map \(B, n\) to \(B, m\)"):
        batch_jacobian(lambda v: v, np.zeros(3))
