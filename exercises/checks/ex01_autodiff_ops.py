r"""Checks of exercise 01: the forward and backward of ``Tanh`` and ``Sigmoid``, and the backward
of ``MatMul`` (``scratchdgm/autodiff/ops.py``).

Each op is called directly -- ``op.forward(ctx, x)`` then ``op.backward(ctx, grad)`` with a
:class:`~scratchdgm.autodiff.Context` made here -- never through ``Tensor.backward`` (exercise
02). Values are compared with NumPy/SciPy (``np.tanh``, ``scipy.special.expit``) and gradients
with central differences of those references, computed here.
"""

import numpy as np
from scipy import special

from scratchdgm.autodiff import Context
from scratchdgm.autodiff.tensor import unbroadcast

from ._common import close, expect_array, max_error, show

#: name -> (reference function, its derivative written from the output y)
ELEMENTWISE = {
    "tanh": (np.tanh, lambda y: 1 - y * y),
    "sigmoid": (special.expit, lambda y: y * (1 - y)),
}


def _fd_derivative(f, x, h=1e-6):
    # derivative of the reference by central differences, in float64
    x = np.asarray(x, np.float64)
    return (f(x + h) - f(x - h)) / (2 * h)


def _forward(op, x):
    ctx = Context((True,))
    out = op.forward(ctx, x.copy())
    return ctx, np.asarray(out)


def check_elementwise_forward(op, name, x):
    r"""``op.forward`` on ``x`` equals the reference, with ``x``'s shape and dtype."""
    f, _ = ELEMENTWISE[name]
    _, y = _forward(op, x)
    expect_array(y, x.shape, x.dtype, f"{name} forward of a {x.dtype} input",
                 ": an elementwise op keeps the shape",
                 "keep the input's dtype (float32 models stay float32)")
    want = f(x.astype(np.float64))
    rtol = 1e-6 if x.dtype == np.float32 else 1e-12
    if not close(y, want, rtol, rtol):
        hint = ""
        if name == "sigmoid" and close(y, special.expit(-x.astype(np.float64)), 1e-6, 1e-9):
            hint = " -- that is sigmoid(-x): sigma(x) = 1 / (1 + exp(-x))"
        elif name == "tanh" and close(y, np.tanh(x.astype(np.float64)) ** 2, 1e-6, 1e-9):
            hint = " -- that is tanh(x)^2"
        raise AssertionError(f"{name} forward gives {show(y)} at x = {show(x)}, expected "
                             f"{show(want)}{hint}")


def check_sigmoid_is_stable(op):
    r"""The sigmoid at logits of +-1000 and +-50: finite, exact, and no overflow on the way
    (``exp(1000)`` is ``inf`` in float64)."""
    x = np.array([-1000.0, -50.0, -1.0, 0.0, 1.0, 50.0, 1000.0])
    try:
        with np.errstate(over="raise", invalid="raise"):
            _, y = _forward(op, x)
    except FloatingPointError as exc:
        raise AssertionError(
            f"sigmoid forward overflows at x = -1000 or +1000 ({exc}): exp(1000) is inf. Use the "
            f"library's scratchdgm.numerics.sigmoid, or compute from e = exp(-|x|) <= 1: "
            f"1 / (1 + e) for x >= 0 and e / (1 + e) below") from None
    want = special.expit(x)
    if not close(y, want, 1e-12, 0.0):
        raise AssertionError(f"sigmoid forward at x = {x.tolist()} gives {y.tolist()}, expected "
                             f"{want.tolist()} (note the relative precision of the tiny values)")


def check_elementwise_backward(op, name, x, grad):
    r"""``op.backward`` returns ``grad`` times the derivative at ``x`` (central differences of
    the reference), with ``x``'s shape and dtype."""
    f, from_output = ELEMENTWISE[name]
    ctx, y = _forward(op, x)
    g = op.backward(ctx, grad.copy())
    if isinstance(g, tuple):
        if len(g) != 1:
            raise AssertionError(f"{name} backward returned {len(g)} gradients for its one input")
        g = g[0]
    g = expect_array(g, x.shape, x.dtype, f"{name} backward of a {x.dtype} input",
                     " (one gradient per input entry)")
    x64, g64 = x.astype(np.float64), grad.astype(np.float64)
    want = g64 * _fd_derivative(f, x64)
    tol = 1e-5 if x.dtype == np.float32 else 1e-7
    if close(g, want, tol, tol):
        return
    y64 = f(x64)
    hint = f"the derivative of {name} is {'1 - y^2' if name == 'tanh' else 'y (1 - y)'}"
    if close(g, from_output(y64), 1e-6, 1e-9) and not np.allclose(g64, 1):
        hint = "you forgot to multiply by grad (the chain rule: x_bar = y_bar dy/dx)"
    elif close(g, -want, 1e-6, 1e-9):
        hint = "wrong sign"
    elif name == "tanh" and close(g, g64 * (1 - x64 * x64), 1e-6, 1e-9):
        hint = "you used 1 - x^2; the derivative of tanh is 1 - tanh(x)^2 = 1 - y^2"
    elif name == "tanh" and close(g, g64 * (1 - y64), 1e-6, 1e-9):
        hint = "the derivative of tanh is 1 - y^2 (y squared)"
    elif name == "sigmoid" and close(g, g64 * y64, 1e-6, 1e-9):
        hint = "the derivative of the sigmoid is y (1 - y)"
    elif name == "sigmoid" and close(g, g64 * x64 * (1 - x64), 1e-6, 1e-9):
        hint = "you used x (1 - x); the derivative is sigma(x) (1 - sigma(x)) = y (1 - y)"
    raise AssertionError(f"{name} backward disagrees with central differences by "
                         f"{max_error(g, want):.3g} at x = {show(x)}: {hint}. Save what you need "
                         f"(the output y) in forward with ctx.save_for_backward and read it from "
                         f"ctx.saved")


def check_sigmoid_backward_is_stable(op):
    r"""The sigmoid's gradient at +-1000: finite (0), not NaN."""
    x = np.array([-1000.0, 1000.0])
    with np.errstate(all="ignore"):
        ctx, _ = _forward(op, x)
        g = np.asarray(op.backward(ctx, np.ones(2)))
    if not np.all(np.isfinite(g)) or not np.allclose(g, 0.0, atol=1e-300):
        raise AssertionError(f"sigmoid backward at x = [-1000, 1000] gives {g.tolist()}, expected "
                             f"[0, 0]: compute it from the saved output y (y (1 - y))")


# ----------------------------------------------------------------------------- matmul
#: (shape of a, shape of b) pairs: matrices, stacks, a layer on K x B samples, 1-D operands,
#: broadcast batch axes
MATMUL_CASES = [
    ((3, 4), (4, 2)),
    ((2, 3, 4), (4, 5)),          # (K, B, n) @ (n, m): a layer applied to stacked samples
    ((2, 3, 4), (2, 4, 5)),       # batched
    ((1, 3, 4), (2, 4, 5)),       # broadcast batch axis on the left
    ((2, 1, 3, 4), (5, 4, 2)),    # broadcast on both sides
    ((4,), (4, 3)),               # row vector
    ((3, 4), (4,)),               # column vector
    ((2, 3, 4), (4,)),
    ((4,), (2, 4, 3)),
    ((4,), (4,)),                 # dot product
]


def _matmul_fd(a, b, g):
    # gradient of L = sum(g * (a @ b)) by central differences (L is bilinear: exact up to rounding)
    def loss_a(x):
        return np.sum(g * (x @ b))

    def loss_b(x):
        return np.sum(g * (a @ x))

    return _fd_grad(loss_a, a), _fd_grad(loss_b, b)


def _fd_grad(f, x, h=1e-3):
    x = np.asarray(x, np.float64)
    out = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        up, down = x.copy(), x.copy()
        up[i] += h
        down[i] -= h
        out[i] = (f(up) - f(down)) / (2 * h)
    return out


def check_matmul_backward(op, a_shape, b_shape, seed=0, needs=(True, True)):
    r"""``op.backward`` of ``a @ b`` equals central differences of
    :math:`L = \sum \bar Y \odot (A B)` for both operands, once the engine has summed broadcast
    axes (:func:`unbroadcast`)."""
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=a_shape), rng.normal(size=b_shape)
    ctx = Context(tuple(needs))
    y = np.asarray(op.forward(ctx, a.copy(), b.copy()))
    g = rng.normal(size=y.shape)
    try:
        out = op.backward(ctx, g.copy())
    except ValueError as exc:
        one_d = [_matmul_shape_hint(n, None, a_shape, b_shape)
                 for n, shape in (("a", a_shape), ("b", b_shape)) if len(shape) == 1]
        hint = one_d[0] if one_d else _matmul_shape_hint("a", None, (1, 1), (1, 1))
        raise AssertionError(f"MatMul backward failed for a of shape {a_shape} @ b of shape "
                             f"{b_shape} ({exc}){hint}") from None
    if not isinstance(out, tuple) or len(out) != 2:
        raise AssertionError(f"MatMul backward must return a pair (grad_a, grad_b), got "
                             f"{type(out).__name__}")
    want = _matmul_fd(a, b, g)
    case = f"a of shape {a_shape} @ b of shape {b_shape}"
    for i, (name, got, shape, w) in enumerate(zip("ab", out, (a_shape, b_shape), want)):
        if got is None:
            if needs[i]:
                raise AssertionError(f"MatMul backward returned None for grad_{name} although "
                                     f"ctx.needs_input_grad[{i}] is True ({case})")
            continue
        got = np.asarray(got)
        try:
            summed = unbroadcast(got, shape)
        except (RuntimeError, ValueError):
            hint = _matmul_shape_hint(name, got.shape, a_shape, b_shape)
            raise AssertionError(f"MatMul backward: grad_{name} has shape {got.shape}, which "
                                 f"cannot be summed to {name}'s shape {shape} ({case}){hint}") \
                from None
        if not close(summed, w, 1e-6, 1e-8):
            hint = _matmul_value_hint(name, got, a, b, g)
            raise AssertionError(f"MatMul backward: grad_{name} is wrong for {case} (off by up "
                                 f"to {max_error(summed, w):.3g}){hint}")


def _matmul_shape_hint(name, got_shape, a_shape, b_shape):
    if name == "a" and len(a_shape) == 1:
        return (": a 1-D a (k,) acts as a row (1, k); give the gradient back its 1-D shape "
                "(drop that axis)")
    if name == "b" and len(b_shape) == 1:
        return (": a 1-D b (k,) acts as a column (k, 1); give the gradient back its 1-D shape "
                "(drop that axis)")
    return (": grad_A = grad @ B^T and grad_B = A^T @ grad, transposing the LAST TWO axes "
            "(np.swapaxes(x, -1, -2)); broadcast batch axes may stay, the engine sums them")


def _matmul_value_hint(name, got, a, b, g):
    if a.ndim >= 2 and b.ndim >= 2:
        if name == "a":
            alt = g @ b if g.shape[-1] == b.shape[-2] and b.shape[-1] == a.shape[-1] else None
        else:
            alt = a @ g if a.shape[-1] == g.shape[-2] and a.shape[-2] == b.shape[-2] else None
        if alt is not None and got.shape == alt.shape and np.allclose(got, alt):
            return ": you forgot to transpose (grad_A = grad @ B^T, grad_B = A^T @ grad)"
    return (": grad_A = grad @ B^T, grad_B = A^T @ grad (last two axes transposed; a 1-D "
            "operand is a row on the left, a column on the right)")
