r"""Property-based gradient checks: every differentiable op of the public autodiff API, on
Hypothesis-generated shapes and values (broadcasting pairs included), through
:func:`scratchdgm.testing.check_gradients`: each example is checked for dtype preservation
(float32 and float64 inputs), entry by entry against central differences, by a random
vector-Jacobian product, and -- for ops that broadcast their inputs -- for the summed gradient
of broadcast copies.

Domains are restricted in the strategies (:mod:`scratchdgm.testing.strategies`), never inside
the ops.
"""

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import scratchdgm as sd
from scratchdgm.testing import check_gradients
from scratchdgm.testing import strategies as S
from scratchdgm.testing.strategies import Case

#: every array strategy below draws float32 or float64: the driver checks that ops keep it
ANY = S.float_dtypes()


# ------------------------------------------------------------------ binary arithmetic


BINARY = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
}


@pytest.mark.parametrize("name", sorted(BINARY))
def test_binary_broadcast(name):
    check_gradients(BINARY[name], inputs=S.broadcastable_arrays(
        lambda s: S.arrays(s, dtype=ANY), lambda s: S.arrays(s, dtype=ANY)), broadcast=True)


def test_div_broadcast():
    # 1/b smooth where checked
    check_gradients(lambda x, y: x / y, inputs=S.broadcastable_arrays(
        lambda s: S.arrays(s, dtype=ANY),
        lambda s: S.away_from_zero_arrays(s, gap=0.5, dtype=ANY)), broadcast=True)


def test_pow_positive_base_broadcast():
    check_gradients(lambda x, y: x ** y, inputs=S.broadcastable_arrays(
        lambda s: S.positive_arrays(s, 0.5, 2.0, dtype=ANY),
        lambda s: S.arrays(s, -2.0, 2.0, dtype=ANY)), broadcast=True)


SCALAR_OPS = {
    "c + t": lambda t, c: c + t,
    "t + c": lambda t, c: t + c,
    "c - t": lambda t, c: c - t,
    "t - c": lambda t, c: t - c,
    "c * t": lambda t, c: c * t,
    "c / t": lambda t, c: c / t,
    "t / c": lambda t, c: t / c,
    "t ** c": lambda t, c: t ** c,
    "c ** t": lambda t, c: c ** t,  # __rpow__: the exponent is the tensor
    "-t": lambda t, c: -t,
    "+t * 1.0": lambda t, c: +t * 1.0,
}


def test_ops_with_python_scalars_on_both_sides():
    # every form on each generated (t, c): a failure names the form
    check_gradients(SCALAR_OPS, S.positive_arrays(S.shapes(), 0.5, 2.0, dtype=ANY),
                    params={"c": S.bounded_floats(0.5, 2.0)})


CONSTANT_OPS = {
    "t * c + c": lambda t, c: t * c + c,
    "c * t - t / c": lambda t, c: c * t - t / c,
    "c - t": lambda t, c: c - t,
    "c / (t * t + 1)": lambda t, c: c / (t * t + 1.0),
}


@st.composite
def _with_constant(draw):
    """An array t and a constant float64 ndarray c of a shape broadcasting with t's."""
    t = draw(S.arrays(S.shapes(min_dims=0), dtype=ANY))
    (c_shape,) = draw(S.broadcastable_shapes(1, base_shape=t.shape))
    return Case((t,), {"c": draw(S.away_from_zero_arrays(c_shape, gap=0.5))})


def test_ops_with_constant_ndarrays_on_both_sides():
    # a float64 constant promotes a float32 t: NumPy's rule, not a dtype bug
    check_gradients(CONSTANT_OPS, inputs=_with_constant(), check_dtype=False)


def test_matmul_every_case():
    check_gradients(lambda x, y: x @ y, inputs=S.matmul_shapes().flatmap(
        lambda shapes: st.tuples(S.arrays(shapes[0], dtype=ANY),
                                 S.arrays(shapes[1], dtype=ANY))))


@st.composite
def _matmul_with_constant(draw, left):
    """One operand of ``a @ b`` to differentiate, the other a constant ndarray."""
    shape_a, shape_b = draw(S.matmul_shapes())
    a, b = draw(S.arrays(shape_a)), draw(S.arrays(shape_b))
    return Case((a,), {"b": b}) if left else Case((b,), {"a": a})


def test_matmul_with_constant_operand():
    # only the left operand needs a gradient
    check_gradients(lambda x, b: x @ b, inputs=_matmul_with_constant(left=True))
    # ndarray @ Tensor goes through __rmatmul__
    check_gradients(lambda y, a: a @ y, inputs=_matmul_with_constant(left=False))


# ------------------------------------------------------------------ elementwise functions


UNARY = {
    # name: (function, strategy for the input given a shape)
    "exp": (lambda t: t.exp(), lambda s: S.arrays(s, -3, 3, dtype=ANY)),
    "log": (lambda t: t.log(), lambda s: S.positive_arrays(s, dtype=ANY)),
    "log1p": (lambda t: t.log1p(), lambda s: S.arrays(s, -0.8, 3, dtype=ANY)),
    "tanh": (lambda t: t.tanh(), lambda s: S.arrays(s, dtype=ANY)),
    "sigmoid": (lambda t: t.sigmoid(), lambda s: S.arrays(s, -6, 6, dtype=ANY)),
    "relu": (lambda t: t.relu(), lambda s: S.away_from_zero_arrays(s, dtype=ANY)),
    "softplus": (lambda t: t.softplus(), lambda s: S.arrays(s, -6, 6, dtype=ANY)),
    "sqrt": (lambda t: t.sqrt(), lambda s: S.positive_arrays(s, dtype=ANY)),
    "square": (lambda t: t.square(), lambda s: S.arrays(s, dtype=ANY)),
    "abs": (lambda t: t.abs(), lambda s: S.away_from_zero_arrays(s, dtype=ANY)),
    "lgamma": (lambda t: t.lgamma(), lambda s: S.positive_arrays(s, 0.3, 6.0, dtype=ANY)),
    "neg": (lambda t: -t, lambda s: S.arrays(s, dtype=ANY)),
    "log_sigmoid": (lambda t: sd.log_sigmoid(t), lambda s: S.arrays(s, -6, 6, dtype=ANY)),
}


@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary(name):
    fn, strategy = UNARY[name]
    check_gradients(fn, strategy(S.shapes()))


def test_astype_float64():
    # the one op that changes dtype on purpose
    check_gradients(lambda t: t.astype(np.float64) * 2.0, S.arrays(S.shapes(), dtype=ANY),
                    check_dtype=False)


# ------------------------------------------------------------------ reductions


def _axis_keepdims(x):
    return st.fixed_dictionaries({"axis": S.axes_for(x.ndim), "keepdims": st.booleans()})


@pytest.mark.parametrize("method", ["sum", "mean", "logsumexp"])
def test_smooth_reductions(method):
    check_gradients(lambda t, axis, keepdims: getattr(t, method)(axis=axis, keepdims=keepdims),
                    S.arrays(S.shapes(), dtype=ANY), params=_axis_keepdims)


def test_logsumexp_function_form():
    check_gradients(lambda t, axis, keepdims: sd.logsumexp(t, axis=axis, keepdims=keepdims),
                    S.arrays(S.shapes(), dtype=ANY), params=_axis_keepdims)


@pytest.mark.parametrize("method", ["max", "min"])
def test_max_min_without_ties(method):
    # distinct values, spaced far more than eps: the arg-max is unique and stays put
    check_gradients(lambda t, axis, keepdims: getattr(t, method)(axis=axis, keepdims=keepdims),
                    S.distinct_arrays(S.shapes(), dtype=ANY), params=_axis_keepdims)


@pytest.mark.parametrize("method", ["softmax", "log_softmax"])
def test_softmax_and_log_softmax(method):
    check_gradients(lambda t, axis: getattr(t, method)(axis=axis),
                    S.arrays(S.shapes(), dtype=ANY),
                    params=lambda x: {"axis": st.integers(-x.ndim, x.ndim - 1)})


# ------------------------------------------------------------------ shape ops


def test_reshape():
    def targets(x):
        size = x.size
        return {"target": st.sampled_from([(size,), (-1,), (1, size), (size, 1), (-1, 1)])}

    def weighted(t, target):
        return t.reshape(*target) * np.arange(1.0, t.size + 1, dtype=t.dtype).reshape(target)

    check_gradients({"reshape(*target), weighted": weighted,
                     # a tuple works as well as separate ints
                     "reshape(target)": lambda t, target: t.reshape(target)},
                    S.arrays(S.shapes(), dtype=ANY), params=targets)


def _weighted(t):
    return t * np.arange(1.0, t.size + 1, dtype=t.dtype).reshape(t.shape)


def test_transpose():
    check_gradients({"transpose(*perm)": lambda t, perm: _weighted(t).transpose(*perm),
                     "transpose()": lambda t, perm: _weighted(t).transpose(),
                     "T": lambda t, perm: _weighted(t).T},
                    S.arrays(S.shapes(), dtype=ANY),
                    params=lambda x: {"perm": st.permutations(range(x.ndim))})


@st.composite
def _broadcast_to_case(draw):
    shape, other = draw(S.broadcast_pairs(min_dims=1))
    return Case((draw(S.arrays(shape, dtype=ANY)),),
                {"target": np.broadcast_shapes(shape, other)})


def test_broadcast_to():
    check_gradients(lambda t, target: t.broadcast_to(target), inputs=_broadcast_to_case())


def test_getitem():
    def index(x):
        def nonempty(i):
            return np.asarray(x[i]).size > 0
        return {"index": S.index_for(x.shape).filter(nonempty)}

    check_gradients(lambda t, index: t[index], S.arrays(S.shapes(), dtype=ANY), params=index)


def test_getitem_with_repeated_integer_array_accumulates():
    def fn(t):
        return t[np.array([0, 0, -1, 0, t.shape[0] - 1])]
    check_gradients(fn, S.arrays(S.shapes(min_dims=1, max_dims=2), dtype=ANY))


def test_getitem_tuple_of_integer_arrays():
    rows = np.array([0, 1, 1, 0])
    cols = np.array([1, 0, 1, 1])
    check_gradients({"t[rows, cols]": lambda t: t[rows, cols], "t[:, cols]": lambda t: t[:, cols]},
                    S.arrays(S.shapes(min_dims=2, max_dims=3, min_side=2), dtype=ANY))


@st.composite
def _concatenable(draw):
    shape = draw(S.shapes(max_dims=3))
    axis = draw(st.integers(-len(shape), len(shape) - 1))
    dtype = draw(ANY)
    parts = []
    for _ in range(draw(st.integers(1, 3))):
        s = list(shape)
        s[axis] = draw(st.integers(1, 3))
        parts.append(draw(S.arrays(tuple(s), dtype=dtype)))
    return Case(tuple(parts), {"axis": axis})


def test_concatenate():
    check_gradients(lambda *ts, axis: sd.concatenate(ts, axis=axis), inputs=_concatenable())


@st.composite
def _stackable(draw):
    shape = draw(S.shapes(max_dims=3))
    n = draw(st.integers(1, 3))
    dtype = draw(ANY)
    return tuple(draw(S.arrays(shape, dtype=dtype)) for _ in range(n))


def test_stack():
    check_gradients(lambda *ts, axis: sd.stack(ts, axis=axis), inputs=_stackable(),
                    params=lambda *xs: {"axis": st.integers(-xs[0].ndim - 1, xs[0].ndim)})


def test_where_broadcast():
    def cond(a, b):
        return {"cond": hnp.arrays(np.bool_, np.broadcast_shapes(a.shape, b.shape))}

    pairs = S.broadcastable_arrays(lambda s: S.arrays(s, dtype=ANY),
                                   lambda s: S.arrays(s, dtype=ANY))
    check_gradients({"boolean cond": lambda x, y, cond: sd.where(cond, x, y),
                     "float cond": lambda x, y, cond: sd.where(cond.astype(np.float64), x * y, y)},
                    inputs=pairs, params=cond, broadcast=True)


# ------------------------------------------------------------------ losses


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_bce_with_logits_both_arguments(reduction):
    check_gradients(
        lambda l, t: sd.binary_cross_entropy_with_logits(l, t, reduction=reduction),
        inputs=S.broadcastable_arrays(lambda s: S.arrays(s, -6, 6, dtype=ANY),
                                      lambda s: S.arrays(s, 0.0, 1.0, dtype=ANY)),
        broadcast=reduction == "none")


# ------------------------------------------------------------------ compositions


@st.composite
def _layer_inputs(draw):
    n, k, m = (draw(st.integers(1, 4)) for _ in range(3))
    dtype = draw(ANY)
    return (draw(S.arrays((n, k), dtype=dtype)), draw(S.arrays((k, m), dtype=dtype)),
            draw(S.arrays((m,), dtype=dtype)))


def test_composite_layer_with_shared_input():
    def f(x, w, b):
        h = (x @ w + b).tanh()
        return (h * h).sum(axis=-1) + h.logsumexp(axis=-1) - x.mean()  # x used twice
    check_gradients(f, inputs=_layer_inputs())


@st.composite
def _iwae_inputs(draw):
    K, B, n = (draw(st.integers(1, 3)) for _ in range(3))
    return draw(S.arrays((K, B), -5, 5)), draw(S.arrays((K, B, n)))


def test_iwae_style_logsumexp_over_samples():
    # log mean_k exp(log w_k) over K importance samples: the IWAE bound's reduction
    check_gradients(lambda lw, zz: (lw + (zz * zz).sum(axis=-1)).logsumexp(axis=0)
                    - np.log(lw.shape[0]), inputs=_iwae_inputs())


# ------------------------------------------------------------------ fused ops (NumPy backend)
# scratchdgm.autodiff.fused: one Function per hot path of the deep models, over the kernel
# backends. The NumPy reference backend is checked here; the compiled backends are held to it
# by the kernel tests.

from scratchdgm.autodiff import fused  # noqa: E402


def test_fused_iw_logsumexp():
    check_gradients(lambda t: fused.iw_logsumexp(t, backend="numpy"),
                    S.arrays(S.shapes(min_dims=1, max_dims=3), -5, 5, dtype=ANY))


@st.composite
def _bernoulli_case(draw):
    K, B, D = draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 4))
    batched = draw(st.booleans())
    dtype = draw(ANY)
    logits = draw(S.arrays((K, B, D) if batched else (B, D), -6, 6, dtype=dtype))
    return Case((logits,), {"x": draw(S.binary_arrays((B, D), dtype=dtype))})


def test_fused_bernoulli_log_prob():
    check_gradients(lambda t, x: fused.bernoulli_log_prob(t, x, backend="numpy"),
                    inputs=_bernoulli_case())


@st.composite
def _gaussian_case(draw):
    K, B, d = (draw(st.integers(1, 3)) for _ in range(3))
    layout = draw(st.sampled_from(["encoder", "decoder", "prior", "four_axes"]))
    shapes = {"encoder": ((K, B, d), (B, d), (B, d)),      # q(z | x): mu, log_sigma per point
              "decoder": ((B, d), (K, B, d), (1, d)),      # a Gaussian decoder's mean per sample
              "prior": ((K, B, d), (d,), ()),              # broadcast scalar log_sigma
              "four_axes": ((2, K, B, d), (B, d), (d,))}[layout]
    dtype = draw(ANY)
    return (draw(S.arrays(shapes[0], dtype=dtype)), draw(S.arrays(shapes[1], dtype=dtype)),
            draw(S.arrays(shapes[2], -1, 1, dtype=dtype)))


def test_fused_diag_gaussian_log_prob():
    check_gradients(lambda a, b, c: fused.diag_gaussian_log_prob(a, b, c, backend="numpy"),
                    inputs=_gaussian_case())


@st.composite
def _linear_case(draw):
    lead = draw(S.shapes(min_dims=1, max_dims=2, max_side=3))
    n, m = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    activation = draw(st.sampled_from(fused.ACTIVATIONS))
    bias = draw(st.booleans())
    dtype = draw(ANY)
    x = draw(S.arrays(lead + (n,), dtype=dtype))
    W = draw(S.arrays((n, m), dtype=dtype))
    b = draw(S.arrays((m,), dtype=dtype))
    if activation == "relu":  # keep pre-activations away from the kink
        assume(np.all(np.abs(x.astype(np.float64) @ W + (b if bias else 0)) > 0.05))
    return Case((x, W, b) if bias else (x, W), {"activation": activation})


def test_fused_linear():
    check_gradients(lambda x, W, b=None, *, activation: fused.linear(
        x, W, b, activation, backend="numpy"), inputs=_linear_case())


@given(data=st.data(), n=st.integers(1, 4), m=st.integers(1, 4))
def test_fused_linear_matches_the_unfused_graph(data, n, m):
    x = data.draw(S.arrays((2, 3, n)))
    W = data.draw(S.arrays((n, m)))
    b = data.draw(S.arrays((m,)))
    fused_out = fused.linear(sd.tensor(x), sd.tensor(W), sd.tensor(b), "tanh",
                             backend="numpy").data
    np.testing.assert_allclose(fused_out, np.tanh(x @ W + b), rtol=1e-12, atol=1e-14)
