r"""Property-based gradient checks: every differentiable op of the public autodiff API, on
Hypothesis-generated shapes and values (broadcasting pairs included), against central finite
differences (:func:`scratchdgm.gradcheck`).

Domains are restricted in the strategies (tests/strategies.py), never inside the ops.
"""

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import scratchdgm as sd
from tests import strategies as S


def check(fn, *inputs):
    assert sd.gradcheck(fn, list(inputs)) is True


# ------------------------------------------------------------------ binary arithmetic


BINARY = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
}


@pytest.mark.parametrize("name", sorted(BINARY))
@given(data=st.data(), shapes=S.broadcast_pairs())
def test_binary_broadcast(name, data, shapes):
    a = data.draw(S.arrays(shapes[0]))
    b = data.draw(S.arrays(shapes[1]))
    check(BINARY[name], a, b)


@given(data=st.data(), shapes=S.broadcast_pairs())
def test_div_broadcast(data, shapes):
    a = data.draw(S.arrays(shapes[0]))
    b = data.draw(S.away_from_zero_arrays(shapes[1], gap=0.5))  # 1/b smooth where checked
    check(lambda x, y: x / y, a, b)


@given(data=st.data(), shapes=S.broadcast_pairs())
def test_pow_positive_base_broadcast(data, shapes):
    base = data.draw(S.positive_arrays(shapes[0], 0.5, 2.0))
    expo = data.draw(S.arrays(shapes[1], -2.0, 2.0))
    check(lambda x, y: x ** y, base, expo)


@given(data=st.data(), shape=S.shapes(), c=S.bounded_floats(0.5, 2.0))
def test_ops_with_python_scalars_on_both_sides(data, shape, c):
    x = data.draw(S.positive_arrays(shape, 0.5, 2.0))
    check(lambda t: c + t, x)
    check(lambda t: t + c, x)
    check(lambda t: c - t, x)
    check(lambda t: t - c, x)
    check(lambda t: c * t, x)
    check(lambda t: c / t, x)
    check(lambda t: t / c, x)
    check(lambda t: t ** c, x)
    check(lambda t: c ** t, x)  # __rpow__: the exponent is the tensor
    check(lambda t: -t, x)
    check(lambda t: +t * 1.0, x)


@given(data=st.data(), shapes=S.broadcast_pairs())
def test_ops_with_constant_ndarrays_on_both_sides(data, shapes):
    x = data.draw(S.arrays(shapes[0]))
    c = data.draw(S.away_from_zero_arrays(shapes[1], gap=0.5))
    check(lambda t: t * c + c, x)
    check(lambda t: c * t - t / c, x)
    check(lambda t: c - t, x)
    check(lambda t: c / (t * t + 1.0), x)


@given(data=st.data(), shapes=S.matmul_shapes())
def test_matmul_every_case(data, shapes):
    a = data.draw(S.arrays(shapes[0]))
    b = data.draw(S.arrays(shapes[1]))
    check(lambda x, y: x @ y, a, b)


@given(data=st.data(), shapes=S.matmul_shapes())
def test_matmul_with_constant_operand(data, shapes):
    a = data.draw(S.arrays(shapes[0]))
    b = data.draw(S.arrays(shapes[1]))
    check(lambda x: x @ b, a)   # only the left operand needs a gradient
    check(lambda y: a @ y, b)   # ndarray @ Tensor goes through __rmatmul__


# ------------------------------------------------------------------ elementwise functions


UNARY = {
    # name: (function, strategy for the input given a shape)
    "exp": (lambda t: t.exp(), lambda s: S.arrays(s, -3, 3)),
    "log": (lambda t: t.log(), lambda s: S.positive_arrays(s)),
    "log1p": (lambda t: t.log1p(), lambda s: S.arrays(s, -0.8, 3)),
    "tanh": (lambda t: t.tanh(), lambda s: S.arrays(s)),
    "sigmoid": (lambda t: t.sigmoid(), lambda s: S.arrays(s, -6, 6)),
    "relu": (lambda t: t.relu(), lambda s: S.away_from_zero_arrays(s)),
    "softplus": (lambda t: t.softplus(), lambda s: S.arrays(s, -6, 6)),
    "sqrt": (lambda t: t.sqrt(), lambda s: S.positive_arrays(s)),
    "square": (lambda t: t.square(), lambda s: S.arrays(s)),
    "abs": (lambda t: t.abs(), lambda s: S.away_from_zero_arrays(s)),
    "lgamma": (lambda t: t.lgamma(), lambda s: S.positive_arrays(s, 0.3, 6.0)),
    "neg": (lambda t: -t, lambda s: S.arrays(s)),
    "log_sigmoid": (lambda t: sd.log_sigmoid(t), lambda s: S.arrays(s, -6, 6)),
    "astype_float64": (lambda t: t.astype(np.float64) * 2.0, lambda s: S.arrays(s)),
}


@pytest.mark.parametrize("name", sorted(UNARY))
@given(data=st.data(), shape=S.shapes())
def test_unary(name, data, shape):
    fn, strategy = UNARY[name]
    check(fn, data.draw(strategy(shape)))


# ------------------------------------------------------------------ reductions


@pytest.mark.parametrize("method", ["sum", "mean", "logsumexp"])
@given(data=st.data(), shape=S.shapes(), keepdims=st.booleans())
def test_smooth_reductions(method, data, shape, keepdims):
    x = data.draw(S.arrays(shape))
    axis = data.draw(S.axes_for(len(shape)))
    check(lambda t: getattr(t, method)(axis=axis, keepdims=keepdims), x)


@given(data=st.data(), shape=S.shapes(), keepdims=st.booleans())
def test_logsumexp_function_form(data, shape, keepdims):
    x = data.draw(S.arrays(shape))
    axis = data.draw(S.axes_for(len(shape)))
    check(lambda t: sd.logsumexp(t, axis=axis, keepdims=keepdims), x)


@pytest.mark.parametrize("method", ["max", "min"])
@given(data=st.data(), shape=S.shapes(), keepdims=st.booleans())
def test_max_min_without_ties(method, data, shape, keepdims):
    # distinct values, spaced far more than eps: the arg-max is unique and stays put
    x = data.draw(S.distinct_arrays(shape))
    axis = data.draw(S.axes_for(len(shape)))
    check(lambda t: getattr(t, method)(axis=axis, keepdims=keepdims), x)


@pytest.mark.parametrize("method", ["softmax", "log_softmax"])
@given(data=st.data(), shape=S.shapes())
def test_softmax_and_log_softmax(method, data, shape):
    x = data.draw(S.arrays(shape))
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    check(lambda t: getattr(t, method)(axis=axis), x)


# ------------------------------------------------------------------ shape ops


@given(data=st.data(), shape=S.shapes())
def test_reshape(data, shape):
    x = data.draw(S.arrays(shape))
    size = x.size
    target = data.draw(st.sampled_from([(size,), (-1,), (1, size), (size, 1), (-1, 1)]))
    check(lambda t: t.reshape(*target) * np.arange(1.0, size + 1).reshape(target), x)
    check(lambda t: t.reshape(target), x)  # a tuple works as well as separate ints


@given(data=st.data(), shape=S.shapes())
def test_transpose(data, shape):
    x = data.draw(S.arrays(shape))
    perm = data.draw(st.permutations(range(len(shape))))
    weights = np.arange(1.0, x.size + 1).reshape(x.shape)
    check(lambda t: (t * weights).transpose(*perm), x)
    check(lambda t: (t * weights).transpose(), x)
    check(lambda t: (t * weights).T, x)


@given(data=st.data(), shapes=S.broadcast_pairs(min_dims=1))
def test_broadcast_to(data, shapes):
    target = np.broadcast_shapes(*shapes)
    x = data.draw(S.arrays(shapes[0]))
    check(lambda t: t.broadcast_to(target), x)


@given(data=st.data(), shape=S.shapes())
def test_getitem(data, shape):
    x = data.draw(S.arrays(shape))
    index = data.draw(S.index_for(shape))
    assume(np.asarray(x[index]).size > 0)
    check(lambda t: t[index], x)


@given(data=st.data(), shape=S.shapes(min_dims=1, max_dims=2))
def test_getitem_with_repeated_integer_array_accumulates(data, shape):
    x = data.draw(S.arrays(shape))
    idx = np.array([0, 0, -1, 0, shape[0] - 1])
    check(lambda t: t[idx], x)


@given(data=st.data(), shape=S.shapes(min_dims=2, max_dims=3, min_side=2))
def test_getitem_tuple_of_integer_arrays(data, shape):
    x = data.draw(S.arrays(shape))
    rows = np.array([0, 1, 1, 0])
    cols = np.array([1, 0, 1, 1])
    check(lambda t: t[rows, cols], x)
    check(lambda t: t[:, cols], x)


@given(data=st.data(), shape=S.shapes(max_dims=3), n=st.integers(1, 3))
def test_concatenate(data, shape, n):
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    parts = []
    for _ in range(n):
        s = list(shape)
        s[axis] = data.draw(st.integers(1, 3))
        parts.append(data.draw(S.arrays(tuple(s))))
    check(lambda *ts: sd.concatenate(ts, axis=axis), *parts)


@given(data=st.data(), shape=S.shapes(max_dims=3), n=st.integers(1, 3))
def test_stack(data, shape, n):
    axis = data.draw(st.integers(-len(shape) - 1, len(shape)))
    parts = [data.draw(S.arrays(shape)) for _ in range(n)]
    check(lambda *ts: sd.stack(ts, axis=axis), *parts)


@given(data=st.data(), shapes=S.broadcast_pairs())
def test_where_broadcast(data, shapes):
    a = data.draw(S.arrays(shapes[0]))
    b = data.draw(S.arrays(shapes[1]))
    cond = data.draw(S.hnp.arrays(np.bool_, np.broadcast_shapes(*shapes)))
    check(lambda x, y: sd.where(cond, x, y), a, b)
    check(lambda x, y: sd.where(cond.astype(np.float64), x * y, y), a, b)  # non-bool cond


# ------------------------------------------------------------------ losses


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@given(data=st.data(), shapes=S.broadcast_pairs())
def test_bce_with_logits_both_arguments(reduction, data, shapes):
    logits = data.draw(S.arrays(shapes[0], -6, 6))
    targets = data.draw(S.arrays(shapes[1], 0.0, 1.0))
    check(lambda l, t: sd.binary_cross_entropy_with_logits(l, t, reduction=reduction),
          logits, targets)


# ------------------------------------------------------------------ compositions


@given(data=st.data(), n=st.integers(1, 4), k=st.integers(1, 4), m=st.integers(1, 4))
def test_composite_layer_with_shared_input(data, n, k, m):
    x = data.draw(S.arrays((n, k)))
    w = data.draw(S.arrays((k, m)))
    b = data.draw(S.arrays((m,)))

    def f(x, w, b):
        h = (x @ w + b).tanh()
        return (h * h).sum(axis=-1) + h.logsumexp(axis=-1) - x.mean()  # x used twice
    check(f, x, w, b)


@given(data=st.data(), K=st.integers(1, 3), B=st.integers(1, 3), n=st.integers(1, 3))
def test_iwae_style_logsumexp_over_samples(data, K, B, n):
    # log mean_k exp(log w_k) over K importance samples: the IWAE bound's reduction
    log_w = data.draw(S.arrays((K, B), -5, 5))
    z = data.draw(S.arrays((K, B, n)))
    check(lambda lw, zz: (lw + (zz * zz).sum(axis=-1)).logsumexp(axis=0) - np.log(K),
          log_w, z)


# ------------------------------------------------------------------ fused ops (NumPy backend)
# scratchdgm.autodiff.fused: one Function per hot path of the deep models, over the kernel
# backends. The NumPy reference backend is checked here; the compiled backends are held to it
# by the kernel tests.

from scratchdgm.autodiff import fused  # noqa: E402


@given(data=st.data(), shape=S.shapes(min_dims=1, max_dims=3))
def test_fused_iw_logsumexp(data, shape):
    log_w = data.draw(S.arrays(shape, -5, 5))
    check(lambda t: fused.iw_logsumexp(t, backend="numpy"), log_w)


@given(data=st.data(), K=st.integers(1, 3), B=st.integers(1, 3), D=st.integers(1, 4),
       batched=st.booleans())
def test_fused_bernoulli_log_prob(data, K, B, D, batched):
    logits = data.draw(S.arrays((K, B, D) if batched else (B, D), -6, 6))
    x = data.draw(S.hnp.arrays(np.float64, (B, D), elements=st.sampled_from([0.0, 1.0])))
    check(lambda t: fused.bernoulli_log_prob(t, x, backend="numpy"), logits)


@given(data=st.data(), K=st.integers(1, 3), B=st.integers(1, 3), d=st.integers(1, 3),
       layout=st.sampled_from(["encoder", "decoder", "prior", "four_axes"]))
def test_fused_diag_gaussian_log_prob(data, K, B, d, layout):
    shapes = {"encoder": ((K, B, d), (B, d), (B, d)),      # q(z | x): mu, log_sigma per point
              "decoder": ((B, d), (K, B, d), (1, d)),      # a Gaussian decoder's mean per sample
              "prior": ((K, B, d), (d,), ()),              # broadcast scalar log_sigma
              "four_axes": ((2, K, B, d), (B, d), (d,))}[layout]
    z = data.draw(S.arrays(shapes[0]))
    mu = data.draw(S.arrays(shapes[1]))
    log_sigma = data.draw(S.arrays(shapes[2], -1, 1))
    check(lambda a, b, c: fused.diag_gaussian_log_prob(a, b, c, backend="numpy"),
          z, mu, log_sigma)


@given(data=st.data(), lead=S.shapes(min_dims=1, max_dims=2, max_side=3),
       n=st.integers(1, 4), m=st.integers(1, 4),
       activation=st.sampled_from(fused.ACTIVATIONS), bias=st.booleans())
def test_fused_linear(data, lead, n, m, activation, bias):
    x = data.draw(S.arrays(lead + (n,)))
    W = data.draw(S.arrays((n, m)))
    b = data.draw(S.arrays((m,)))
    if activation == "relu":  # keep pre-activations away from the kink
        assume(np.all(np.abs(x @ W + (b if bias else 0)) > 0.05))
    if bias:
        check(lambda a, w, c: fused.linear(a, w, c, activation, backend="numpy"), x, W, b)
    else:
        check(lambda a, w: fused.linear(a, w, None, activation, backend="numpy"), x, W)


@given(data=st.data(), n=st.integers(1, 4), m=st.integers(1, 4))
def test_fused_linear_matches_the_unfused_graph(data, n, m):
    x = data.draw(S.arrays((2, 3, n)))
    W = data.draw(S.arrays((n, m)))
    b = data.draw(S.arrays((m,)))
    fused_out = fused.linear(sd.tensor(x), sd.tensor(W), sd.tensor(b), "tanh",
                             backend="numpy").data
    np.testing.assert_allclose(fused_out, np.tanh(x @ W + b), rtol=1e-12, atol=1e-14)
