r"""The autodiff's behaviour beyond single-op derivatives: graph semantics (reused nodes, shared
sub-expressions, deep chains, accumulation), grad modes, dtypes, numerically stable forms at
extreme inputs, and the error messages of the public boundary."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import scratchdgm as sd
from scratchdgm.testing import strategies as S

# one representative call of every differentiable op, for the dtype-preservation check
OPS = {
    "add": lambda t: t + 1.5,
    "radd": lambda t: 1.5 + t,
    "sub": lambda t: t - t.sum(),
    "rsub": lambda t: 2.0 - t,
    "mul": lambda t: t * np.float64(3.0),  # NumPy scalars are weak like Python floats
    "div": lambda t: t / 3.0,
    "rdiv": lambda t: 1.0 / t,
    "pow": lambda t: t ** 2.5,
    "rpow": lambda t: 2.0 ** t,
    "neg": lambda t: -t,
    "matmul": lambda t: t @ t.T,
    "batched_matmul": lambda t: t.reshape(1, 2, 3) @ t.T,
    "exp": lambda t: t.exp(),
    "log": lambda t: t.log(),
    "log1p": lambda t: t.log1p(),
    "tanh": lambda t: t.tanh(),
    "sigmoid": lambda t: t.sigmoid(),
    "relu": lambda t: t.relu(),
    "softplus": lambda t: t.softplus(),
    "sqrt": lambda t: t.sqrt(),
    "square": lambda t: t.square(),
    "abs": lambda t: t.abs(),
    "lgamma": lambda t: t.lgamma(),
    "sum": lambda t: t.sum(axis=0),
    "mean": lambda t: t.mean(axis=(0, 1)),
    "max": lambda t: t.max(axis=1, keepdims=True),
    "min": lambda t: t.min(),
    "logsumexp": lambda t: t.logsumexp(axis=-1),
    "softmax": lambda t: t.softmax(axis=0),
    "log_softmax": lambda t: t.log_softmax(),
    "reshape": lambda t: t.reshape(3, 2),
    "transpose": lambda t: t.transpose(1, 0),
    "T": lambda t: t.T,
    "broadcast_to": lambda t: t.broadcast_to((4, 2, 3)),
    "getitem_slice": lambda t: t[:, 1:],
    "getitem_array": lambda t: t[np.array([1, 1, 0])],
    "getitem_mask": lambda t: t[t > 0.5],
    "concatenate": lambda t: sd.concatenate([t, t * 2], axis=1),
    "stack": lambda t: sd.stack([t, t], axis=-1),
    "where": lambda t: sd.where(t > 0.5, t, 0.0),
    "logsumexp_fn": lambda t: sd.logsumexp(t, axis=0),
    "log_sigmoid": lambda t: sd.log_sigmoid(t),
    "bce": lambda t: sd.binary_cross_entropy_with_logits(t, np.ones((2, 3), t.dtype)),
    "astype_same": lambda t: t.astype(t.dtype),
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", sorted(OPS))
def test_every_op_preserves_dtype_forward_and_backward(name, dtype):
    x = sd.tensor(np.array([[0.3, 0.9, 1.7], [0.6, 1.2, 2.5]], dtype=dtype), requires_grad=True)
    out = OPS[name](x)
    assert out.dtype == dtype, f"{name} turned {np.dtype(dtype)} into {out.dtype}"
    out.sum().backward()
    assert x.grad.dtype == dtype
    assert x.grad.shape == x.shape
    assert np.all(np.isfinite(x.grad))


def test_astype_casts_and_sends_the_gradient_back_in_the_input_dtype():
    x = sd.tensor([1.0, 2.0], requires_grad=True)
    y = x.astype(np.float32)
    assert y.dtype == np.float32
    (y * y).sum().backward()
    assert x.grad.dtype == np.float64
    np.testing.assert_allclose(x.grad, [2.0, 4.0])


# ------------------------------------------------------------------ construction and dtypes


def test_tensor_construction_and_dtype_rules():
    assert sd.tensor([1, 2]).dtype == np.float64          # ints -> float64
    assert sd.tensor([True, False]).dtype == np.float64   # bools -> float64
    assert sd.tensor(np.ones(2, np.float32)).dtype == np.float32
    assert sd.tensor([1.0], dtype="float32").dtype == np.float32
    src = np.ones(3)
    t = sd.tensor(src)
    src[0] = 5.0
    assert t.data[0] == 1.0  # a copy: the tensor owns its data
    t2 = sd.tensor(sd.tensor([1.0, 2.0], requires_grad=True))
    assert not t2.requires_grad and t2.is_leaf


@pytest.mark.parametrize("data, kw, pattern", [
    (np.ones(2, np.float16), {}, "unsupported dtype float16; expected float32 or float64"),
    (np.ones(2, np.complex128), {}, "unsupported dtype complex128"),
    (["a", "b"], {}, "unsupported dtype <U1"),
    ([1.0], {"dtype": np.int64}, "unsupported dtype int64"),
    ([1.0j], {"dtype": np.float64}, "unsupported dtype complex128"),
    ([[1.0], [1.0, 2.0]], {}, "cannot make"),
    ([object()], {}, "cannot make a numeric array"),
])
def test_unsupported_dtypes_and_data_raise_type_error(data, kw, pattern):
    with pytest.raises(TypeError, match=pattern):
        sd.tensor(data, **kw)


def test_requires_grad_must_be_bool():
    with pytest.raises(TypeError, match="requires_grad must be a bool"):
        sd.tensor([1.0], requires_grad="yes")


def test_operands_of_unsupported_dtype_are_refused():
    x = sd.tensor([1.0, 2.0])
    with pytest.raises(TypeError, match="unsupported dtype complex128"):
        x + np.array([1j, 2j])
    with pytest.raises(TypeError, match="unsupported dtype float16"):
        x * np.ones(2, np.float16)
    with pytest.raises(TypeError, match="unsupported dtype"):
        x.astype(np.int32)


def test_mixed_operands():
    x = sd.tensor([1.0, 2.0], requires_grad=True)
    y = x * [2, 3] + np.array([1, 1]) + True  # lists, int arrays and bools become float64
    np.testing.assert_allclose(y.data, [4.0, 8.0])
    y.sum().backward()
    np.testing.assert_allclose(x.grad, [2.0, 3.0])


def test_array_like_properties_and_conversions():
    t = sd.tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
    assert t.shape == (2, 3) and t.ndim == 2 and t.size == 6 and len(t) == 2
    assert t.dtype == np.float64 and t.is_leaf
    assert t.numpy() is t.data
    np.testing.assert_array_equal(np.asarray(t), t.data)
    assert np.asarray(t, dtype=np.float32).dtype == np.float32
    assert sd.tensor([[2.5]]).item() == 2.5
    with pytest.raises(ValueError, match=r"item\(\) needs a tensor with one element"):
        t.item()
    with pytest.raises(TypeError, match="len\\(\\) of a 0-d tensor"):
        len(sd.tensor(1.0))
    assert bool(sd.tensor([1.0])) and not bool(sd.tensor(0.0))
    with pytest.raises(ValueError, match="ambiguous"):
        bool(t)
    assert +t is t


def test_comparisons_give_plain_boolean_arrays():
    a, b = sd.tensor([1.0, 2.0, 3.0]), sd.tensor([2.0, 2.0, 2.0])
    for result, expected in [(a < b, [1, 0, 0]), (a <= b, [1, 1, 0]), (a > b, [0, 0, 1]),
                             (a >= b, [0, 1, 1]), (a == b, [0, 1, 0]), (a != 2.0, [1, 0, 1])]:
        assert isinstance(result, np.ndarray) and result.dtype == bool
        np.testing.assert_array_equal(result, np.array(expected, bool))
    assert len({a, b}) == 2  # hashable by identity


def test_repr():
    assert repr(sd.tensor([1.0, 2.0])) == "tensor([1., 2.])"
    assert "dtype=float32" in repr(sd.tensor([1.0], dtype=np.float32))
    assert "requires_grad=True" in repr(sd.tensor([1.0], requires_grad=True))
    assert "grad_fn=Mul" in repr(sd.tensor([1.0], requires_grad=True) * 2)


# ------------------------------------------------------------------ graph semantics


def test_reused_node_gets_the_sum_of_its_gradients():
    x = sd.tensor([1.5, -2.0], requires_grad=True)
    (x * x * x).sum().backward()  # d/dx x^3 = 3x^2 through a node used three times
    np.testing.assert_allclose(x.grad, 3 * x.data ** 2)


def test_shared_sub_expression_is_differentiated_once_per_use():
    x = sd.tensor([0.3, 0.8], requires_grad=True)
    h = x.tanh()                        # shared by both branches
    y = (h * 2.0 + h.exp() * h).sum()   # h used three times
    y.backward()
    t = np.tanh(x.data)
    expected = (2.0 + np.exp(t) * t + np.exp(t)) * (1 - t ** 2)
    np.testing.assert_allclose(x.grad, expected, rtol=1e-12)


def test_diamond_graph_with_broadcast_reuse():
    w = sd.tensor(np.array([[1.0, 2.0], [3.0, 4.0]]), requires_grad=True)
    b = sd.tensor([0.5, -0.5], requires_grad=True)
    a = w + b            # b broadcast over rows
    y = (a * a).sum() + (a @ b).sum()
    y.backward()
    an = w.data + b.data
    np.testing.assert_allclose(w.grad, 2 * an + b.data)
    # a @ b adds b's direct use: d(a @ b)/db_j = sum_i a_ij
    np.testing.assert_allclose(b.grad, (2 * an + b.data).sum(0) + an.sum(0))


def test_backward_twice_on_fresh_graphs_gives_the_same_gradient_and_accumulates():
    x = sd.tensor([0.2, 0.4, 0.6], requires_grad=True)

    def loss():
        return (x.exp() * x).sum()

    loss().backward()
    first = x.grad.copy()
    loss().backward()
    np.testing.assert_allclose(x.grad, 2 * first)  # accumulates, as in PyTorch
    x.zero_grad()
    assert x.grad is None
    loss().backward()
    np.testing.assert_array_equal(x.grad, first)   # bit-identical on a fresh graph


def test_ten_thousand_deep_chain_does_not_hit_the_recursion_limit():
    x = sd.tensor([1.0, 2.0], requires_grad=True)
    y = x
    for _ in range(10_000):
        y = y * 1.0001 + 0.0
    y.sum().backward()
    np.testing.assert_allclose(x.grad, np.full(2, 1.0001 ** 10_000), rtol=1e-10)
    del y  # freeing a deep graph must not crash either


def test_backward_with_explicit_gradient_and_on_a_leaf():
    x = sd.tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = x * x
    y.backward(np.array([1.0, 0.0, 2.0]))
    np.testing.assert_allclose(x.grad, [2.0, 0.0, 12.0])
    x.zero_grad()
    y = x * x
    y.backward(sd.tensor([1.0, 1.0, 1.0]))  # a Tensor works as the seed too
    np.testing.assert_allclose(x.grad, [2.0, 4.0, 6.0])
    s = sd.tensor(3.0, requires_grad=True)
    s.backward()
    assert s.grad == 1.0


def test_only_leaves_that_require_grad_get_gradients():
    x = sd.tensor([1.0, 2.0], requires_grad=True)
    c = sd.tensor([3.0, 4.0])
    h = x * c
    (h * h).sum().backward()
    assert c.grad is None and h.grad is None
    np.testing.assert_allclose(x.grad, 2 * x.data * c.data ** 2)


def test_requires_grad_propagation():
    x = sd.tensor([1.0], requires_grad=True)
    c = sd.tensor([2.0])
    assert (x * c).requires_grad and (c * x).requires_grad
    assert not (c * c).requires_grad
    assert (c * 2.0).is_leaf  # ops on constants record nothing
    assert not (x * c).is_leaf


def test_no_grad_and_is_grad_enabled():
    x = sd.tensor([1.0, 2.0], requires_grad=True)
    assert sd.is_grad_enabled()
    with sd.no_grad():
        assert not sd.is_grad_enabled()
        y = (x * 3).sum()
        with sd.no_grad():  # nests
            assert not sd.is_grad_enabled()
        assert not sd.is_grad_enabled()
    assert sd.is_grad_enabled()
    assert not y.requires_grad and y.is_leaf
    with pytest.raises(ValueError, match="does not require grad"):
        y.backward()

    @sd.no_grad()
    def evaluate(t):
        return (t * t).sum()

    assert not evaluate(x).requires_grad
    assert sd.is_grad_enabled()


def test_no_grad_restores_mode_after_an_exception():
    with pytest.raises(RuntimeError):
        with sd.no_grad():
            raise RuntimeError("boom")
    assert sd.is_grad_enabled()


def test_detach_cuts_the_graph_and_shares_data():
    x = sd.tensor([1.0, 2.0], requires_grad=True)
    h = x * 2
    d = h.detach()
    assert not d.requires_grad and d.is_leaf and d.data is h.data
    (x * d).sum().backward()  # d is a constant: dx = d
    np.testing.assert_allclose(x.grad, [2.0, 4.0])


# ------------------------------------------------------------------ numerically stable forms


def test_stable_forms_at_huge_magnitudes():
    x = sd.tensor([-1000.0, -50.0, 0.0, 50.0, 1000.0], requires_grad=True)
    with np.errstate(over="raise", divide="raise", invalid="raise"):  # no overflow warnings either
        sig = x.sigmoid()
        sp = x.softplus()
        ls = sd.log_sigmoid(x)
        bce = sd.binary_cross_entropy_with_logits(x, np.array([1.0, 0.0, 1.0, 0.0, 1.0]),
                                                  reduction="none")
    np.testing.assert_allclose(sig.data, [0.0, np.exp(-50.0), 0.5, 1.0, 1.0], rtol=1e-12)
    np.testing.assert_allclose(sp.data, [0.0, np.exp(-50.0), np.log(2.0), 50.0, 1000.0],
                               rtol=1e-12)
    np.testing.assert_allclose(ls.data, [-1000.0, -50.0, -np.log(2.0), -np.exp(-50.0), 0.0],
                               rtol=1e-12)
    np.testing.assert_allclose(bce.data, [1000.0, np.exp(-50.0), np.log(2.0), 50.0, 0.0],
                               rtol=1e-12)
    (sig.sum() + sp.sum() + ls.sum() + bce.sum()).backward()
    assert np.all(np.isfinite(x.grad))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_logsumexp_and_softmax_at_huge_magnitudes(dtype):
    big = np.array([[1000.0, 1000.0], [-1000.0, -1001.0], [3e4, 0.0]], dtype=dtype)
    x = sd.tensor(big, requires_grad=True)
    lse = x.logsumexp(axis=1)
    expected = np.array([1000.0 + np.log(2.0), -1000.0 + np.log1p(np.exp(-1.0)), 3e4])
    np.testing.assert_allclose(lse.data, expected, rtol=1e-6)
    sm = x.softmax(axis=1)
    # softmax = exp(x - lse(x)): x - lse carries the rounding of |x| ~ 1e3, a relative error of
    # about 1e3 * machine epsilon (3e-5 in float32) in the probabilities, but never inf or NaN
    rtol = 1e3 * np.finfo(dtype).eps
    np.testing.assert_allclose(sm.data, [[0.5, 0.5], [1 / (1 + np.exp(-1.0)),
                                                      np.exp(-1.0) / (1 + np.exp(-1.0))],
                                         [1.0, 0.0]], rtol=rtol, atol=1e-30)
    lse.sum().backward()
    np.testing.assert_allclose(x.grad, sm.data, rtol=rtol)  # d lse = softmax


def test_logsumexp_with_minus_inf_entries_and_all_minus_inf_rows():
    x = sd.tensor([[0.0, -np.inf, np.log(3.0)], [-np.inf, -np.inf, -np.inf]], requires_grad=True)
    with np.errstate(over="raise", divide="raise", invalid="raise"):
        out = x.logsumexp(axis=1)
    np.testing.assert_allclose(out.data[0], np.log(4.0))
    assert out.data[1] == -np.inf          # log 0
    out.sum().backward()
    np.testing.assert_allclose(x.grad, [[0.25, 0.0, 0.75], [0.0, 0.0, 0.0]])  # no NaN
    # softmax with a -inf entry: that entry has probability 0 and a zero, finite gradient
    y = sd.tensor([0.0, -np.inf, 1.0], requires_grad=True)
    p = y.softmax()
    np.testing.assert_allclose(p.data, [1 / (1 + np.e), 0.0, np.e / (1 + np.e)])
    (p * np.array([1.0, 2.0, 3.0])).sum().backward()
    assert np.all(np.isfinite(y.grad)) and y.grad[1] == 0.0


def test_logsumexp_accepts_plain_numbers_and_arrays():
    assert sd.logsumexp(2.0).item() == 2.0
    np.testing.assert_allclose(sd.logsumexp(np.zeros(4)).item(), np.log(4.0))
    assert sd.logsumexp([0.0, 0.0], keepdims=True).shape == (1,)


def test_max_ties_send_the_gradient_to_the_first_argmax():
    x = sd.tensor([[1.0, 3.0, 3.0], [2.0, 2.0, 0.0]], requires_grad=True)
    x.max(axis=1).sum().backward()
    np.testing.assert_array_equal(x.grad, [[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])


def test_where_with_tensor_condition_and_scalar_branches():
    x = sd.tensor([-1.0, 2.0], requires_grad=True)
    y = sd.where(sd.tensor([1.0, 0.0]), x, 7.0)
    np.testing.assert_array_equal(y.data, [-1.0, 7.0])
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, [1.0, 0.0])


def test_custom_function_without_backward_names_the_op():
    class Halve(sd.Function):
        @staticmethod
        def forward(ctx, x):
            return x / 2

    y = Halve.apply(sd.tensor([1.0], requires_grad=True))
    np.testing.assert_array_equal(y.data, [0.5])
    with pytest.raises(NotImplementedError, match="Halve"):
        y.sum().backward()


def test_custom_function_without_forward():
    class Nothing(sd.Function):
        pass

    with pytest.raises(NotImplementedError, match="forward"):
        Nothing.apply(sd.tensor([1.0]))


def test_custom_function_kwargs_broadcast_and_none_gradients():
    class ScaledAdd(sd.Function):
        @staticmethod
        def forward(ctx, a, b, scale):
            ctx.save_for_backward(scale)
            return scale * (a + b)

        @staticmethod
        def backward(ctx, grad):
            (scale,) = ctx.saved
            return scale * grad, None  # b gets no gradient, on purpose

    a = sd.tensor([[1.0], [2.0]], requires_grad=True)   # (2, 1), broadcast to (2, 3)
    b = sd.tensor([1.0, 2.0, 3.0], requires_grad=True)
    ScaledAdd.apply(a, b, scale=2.0).sum().backward()
    np.testing.assert_array_equal(a.grad, [[6.0], [6.0]])  # un-broadcast centrally
    assert b.grad is None


def test_backward_returning_the_wrong_number_or_shape_of_gradients():
    class TwoGrads(sd.Function):
        @staticmethod
        def forward(ctx, x):
            return x

        @staticmethod
        def backward(ctx, grad):
            return grad, grad

    class BadShape(sd.Function):
        @staticmethod
        def forward(ctx, x):
            return x

        @staticmethod
        def backward(ctx, grad):
            return np.ones((5, 7))

    x = sd.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="returned 2 gradients for 1 inputs"):
        TwoGrads.apply(x).sum().backward()
    with pytest.raises(RuntimeError, match="cannot be reduced to the input shape"):
        BadShape.apply(x).sum().backward()


def test_unbroadcast():
    g = np.ones((4, 2, 3))
    np.testing.assert_array_equal(sd.autodiff.unbroadcast(g, (3,)), np.full(3, 8.0))
    np.testing.assert_array_equal(sd.autodiff.unbroadcast(g, (2, 1)), np.full((2, 1), 12.0))
    assert sd.autodiff.unbroadcast(g, (4, 2, 3)) is g


# ------------------------------------------------------------------ error messages


def test_matmul_shape_mismatch_message():
    a, b = sd.tensor(np.ones((2, 3))), sd.tensor(np.ones((4, 5)))
    with pytest.raises(ValueError, match=r"MatMul: shapes \(2, 3\) and \(4, 5\) are not aligned "
                                         r"for matmul: the last axis of the left operand \(3\) "
                                         r"must equal the second-to-last axis"):
        a @ b
    with pytest.raises(ValueError, match=r"the only axis of the right one \(4\)"):
        a @ np.ones(4)
    with pytest.raises(ValueError, match="at least one dimension"):
        a @ 2.0


def test_broadcast_mismatch_names_the_op_and_shapes():
    with pytest.raises(ValueError, match=r"Add: .*operand shapes: \(3,\), \(4, 2\)"):
        sd.tensor(np.ones(3)) + np.ones((4, 2))


def test_backward_on_non_scalar_message():
    y = sd.tensor(np.ones((2, 3)), requires_grad=True) * 2
    with pytest.raises(ValueError, match=r"needs a scalar output, but this tensor has shape "
                                         r"\(2, 3\); reduce it first"):
        y.backward()
    with pytest.raises(ValueError, match=r"gradient of shape \(3,\); expected the output's "
                                         r"shape \(2, 3\)"):
        y.backward(np.ones(3))


@pytest.mark.parametrize("call, exc, pattern", [
    (lambda t: t.sum(axis=2), ValueError, "axis 2 is out of range for a tensor with 2 dim"),
    (lambda t: t.sum(axis=(0, 0)), ValueError, "repeated axis"),
    (lambda t: t.mean(axis=1.5), TypeError, "axis must be an int or a tuple of ints"),
    (lambda t: t.max(axis=(0, 1.5)), TypeError, "axis must be an int or a tuple of ints"),
    (lambda t: t.transpose(0, 0), ValueError, "not a permutation"),
    (lambda t: t.reshape(7), ValueError, "Reshape"),
    (lambda t: t[:0].max(), ValueError, "max of an empty tensor"),
    (lambda t: sd.concatenate(t), TypeError, "concatenate takes a sequence of tensors"),
    (lambda t: sd.stack([]), ValueError, "stack needs at least one tensor"),
    (lambda t: sd.concatenate([sd.tensor(1.0)]), ValueError, "zero-dimensional"),
    (lambda t: sd.binary_cross_entropy_with_logits(t, t, reduction="avg"), ValueError,
     "reduction must be 'mean', 'sum' or 'none', got 'avg'"),
])
def test_bad_arguments_raise_clear_errors(call, exc, pattern):
    with pytest.raises(exc, match=pattern):
        call(sd.tensor(np.ones((2, 3))))


# ------------------------------------------------------------------ properties on generated data


@given(data=st.data(), shape=S.shapes())
def test_softmax_sums_to_one_and_log_softmax_agrees(data, shape):
    x = data.draw(S.arrays(shape, -50, 50))
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    p = sd.tensor(x).softmax(axis=axis).data
    np.testing.assert_allclose(p.sum(axis=axis), 1.0, rtol=1e-12)
    np.testing.assert_allclose(np.log(p), sd.tensor(x).log_softmax(axis=axis).data,
                               rtol=1e-9, atol=1e-9)


@given(data=st.data(), shape=S.shapes(), shift=st.floats(-700, 700))
def test_logsumexp_is_shift_equivariant(data, shape, shift):
    x = data.draw(S.arrays(shape))
    a = sd.logsumexp(sd.tensor(x + shift)).item()
    b = sd.logsumexp(sd.tensor(x)).item() + shift
    assert a == pytest.approx(b, rel=1e-12, abs=1e-9)


@given(data=st.data(), shapes=S.broadcast_pairs())
def test_forward_matches_numpy(data, shapes):
    a = data.draw(S.arrays(shapes[0]))
    b = data.draw(S.away_from_zero_arrays(shapes[1], gap=0.5))
    ta, tb = sd.tensor(a), sd.tensor(b)
    np.testing.assert_array_equal((ta + tb).data, a + b)
    np.testing.assert_array_equal((ta * tb).data, a * b)
    np.testing.assert_array_equal((ta / tb).data, a / b)
    np.testing.assert_array_equal((ta - tb).data, a - b)


# ------------------------------------------------------------------ fused ops: boundary and dtypes


def test_fused_ops_accept_arrays_keep_dtype_and_skip_unneeded_gradients():
    from scratchdgm.autodiff import fused

    for dtype in (np.float32, np.float64):
        lw = np.array([[0.0, -np.inf], [np.log(3.0), -np.inf]], dtype)
        out = fused.iw_logsumexp(lw, backend="numpy")   # an ndarray: no graph, right values
        assert out.dtype == dtype and not out.requires_grad
        np.testing.assert_allclose(out.data, [np.log(4.0), -np.inf], rtol=1e-6)
        x = np.array([[1.0, 0.0]])
        bern = fused.bernoulli_log_prob(np.zeros((1, 2), dtype), x, backend="numpy")
        assert bern.dtype == dtype
        np.testing.assert_allclose(bern.data, [2 * np.log(0.5)], rtol=1e-6)
    # gradients only where asked: z and log_sigma constants, mu a leaf
    mu = sd.tensor(np.zeros((2, 3)), requires_grad=True)
    lp = fused.diag_gaussian_log_prob(np.ones((4, 2, 3)), mu, np.zeros(3), backend="numpy")
    lp.sum().backward()
    np.testing.assert_allclose(mu.grad, np.full((2, 3), 4.0))  # sum over K of (z - mu)/sigma^2
    W = sd.tensor(np.eye(2), requires_grad=True)
    y = fused.linear(np.ones((3, 2)), W, None, "sigmoid", backend="numpy")
    y.sum().backward()
    assert W.grad.shape == (2, 2)


@pytest.mark.parametrize("call, pattern", [
    (lambda f: f.iw_logsumexp(np.float64(1.0)), r"shape \(K, B\) with K >= 1"),
    (lambda f: f.iw_logsumexp(np.zeros((0, 2))), r"shape \(K, B\) with K >= 1"),
    (lambda f: f.bernoulli_log_prob(np.zeros((2, 3)), np.zeros(3)), r"data must have shape "
                                                                     r"\(B, D\)"),
    (lambda f: f.bernoulli_log_prob(np.zeros((2, 4)), np.zeros((2, 3))), "do not match data"),
    (lambda f: f.diag_gaussian_log_prob(np.zeros((2, 3)), np.zeros(4)), "do not broadcast"),
    (lambda f: f.diag_gaussian_log_prob(np.float64(0.0)), "at least one axis"),
    (lambda f: f.linear(np.zeros((2, 3)), np.zeros((3, 2)), activation="gelu"),
     "unknown activation 'gelu'"),
    (lambda f: f.linear(np.zeros((2, 3)), np.zeros(3)), r"W must have shape \(n, m\)"),
    (lambda f: f.linear(np.zeros((2, 4)), np.zeros((3, 2))), r"expected x of shape \(\.\.\., 3\)"),
    (lambda f: f.linear(np.zeros((2, 3)), np.zeros((3, 2)), np.zeros(3)), r"b must have shape "
                                                                           r"\(2,\)"),
])
def test_fused_ops_validate_shapes(call, pattern):
    from scratchdgm.autodiff import fused

    with pytest.raises(ValueError, match=pattern):
        call(fused)


def test_fused_ops_refuse_unsupported_dtypes():
    from scratchdgm.autodiff import fused

    with pytest.raises(TypeError, match="unsupported dtype float16: expected float32 or float64"):
        fused.iw_logsumexp(np.zeros((2, 2), np.float16))
