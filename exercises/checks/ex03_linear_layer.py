r"""Checks of exercise 03: the affine layer with a fused activation, ``linear``,
``activation_grad`` and ``linear_backward`` (``kernels/reference.py``, installed as
``scratchdgm.kernels.reference``: what ``nn.Linear`` runs on the ``numpy`` backend).

References are written here: the layer with ``np.einsum`` and NumPy's activations, gradients by
central differences of that reference.
"""

import numpy as np
from scipy import special

from ._common import central_difference, close, expect_array, max_error, show

ACTS = {None: lambda a: a, "tanh": np.tanh, "relu": lambda a: np.maximum(a, 0.0),
        "sigmoid": special.expit}


def reference_layer(x, W, b, act):
    r""":math:`f(x W + b)` in float64, rows on the last axis of ``x``."""
    a = np.einsum("...n,nm->...m", np.asarray(x, np.float64), np.asarray(W, np.float64))
    if b is not None:
        a = a + b
    return ACTS[act](a)


def check_forward(linear, x, W, b, act):
    r"""``linear(x, W, b, act)`` equals :math:`f(xW + b)`, of shape ``x.shape[:-1] + (m,)`` and
    of ``x``'s dtype."""
    y = np.asarray(linear(x.copy(), W.copy(), None if b is None else b.copy(), act))
    m = W.shape[1]
    want_shape = x.shape[:-1] + (m,)
    case = f"x {x.shape}, W {W.shape}, b {None if b is None else b.shape}, activation {act!r}"
    expect_array(y, want_shape, x.dtype, f"linear({case})",
                 lambda shape: (": you flattened the leading axes for the product (good) but "
                                "did not reshape back to x.shape[:-1] + (m,)")
                 if len(shape) == 2 and x.ndim != 2 else "")
    want = reference_layer(x, W, b, act)
    rtol = 1e-5 if x.dtype == np.float32 else 1e-12
    scale = 1 + np.abs(np.einsum("...n,nm->...m", np.abs(x.astype(np.float64)), np.abs(W)))
    if np.all(np.abs(y - want) <= rtol * scale):
        return
    hint = ""
    if b is not None and close(y, reference_layer(x, W, None, act), rtol, rtol):
        hint = " -- you forgot the bias b"
    elif act is not None and close(y, reference_layer(x, W, b, None), rtol, rtol):
        hint = f" -- you forgot the activation {act!r} (apply it after adding b)"
    elif act is not None and b is not None and close(
            y, reference_layer(x, W, None, act) + b, rtol, rtol):
        hint = " -- the bias goes INSIDE the activation: f(xW + b), not f(xW) + b"
    raise AssertionError(f"linear gives {show(y)} for {case}, expected {show(want)}{hint}")


def check_activation_grad(activation_grad, act, a, grad):
    r"""``activation_grad(y, grad, act)`` with ``y = f(a)`` equals ``grad * f'(a)`` (central
    differences of the reference activation)."""
    f = ACTS[act]
    y = f(a)
    got = np.asarray(activation_grad(y.copy(), grad.copy(), act))
    want = grad * np.array([central_difference(lambda v: f(v), ai) for ai in a.ravel()]
                           ).reshape(a.shape)
    if got.shape != a.shape:
        raise AssertionError(f"activation_grad returned shape {got.shape}, expected {a.shape}")
    if close(got, want, 1e-6, 1e-8):
        return
    hint = {"tanh": "tanh'(a) = 1 - tanh(a)^2 = 1 - y^2",
            "sigmoid": "sigma'(a) = sigma(a)(1 - sigma(a)) = y (1 - y)",
            "relu": "relu'(a) = 1 where a > 0 (that is, y > 0), else 0",
            None: "the identity's derivative is 1: return grad"}[act]
    if close(got, want / np.where(grad == 0, 1, grad), 1e-6, 1e-8) and not np.allclose(grad, 1):
        hint = "you forgot to multiply by grad"
    elif act is not None and close(got, grad * np.array(
            [central_difference(lambda v: f(v), yi) for yi in y.ravel()]).reshape(a.shape),
            1e-6, 1e-8):
        hint = (f"you took f' at y; the argument is the OUTPUT y = f(a): write f'(a) in terms "
                f"of y ({hint})")
    raise AssertionError(f"activation_grad(y, grad, {act!r}) gives {show(got)}, expected "
                         f"{show(want)}: {hint}")


def check_backward(linear_backward, x, W, b, act, grad, need_x_grad=True):
    r"""``linear_backward(x, W, y, grad, act, need_x_grad)`` equals central differences of
    :math:`L = \sum \bar y \odot f(xW + b)` for x, W and b, each of its input's shape and dtype;
    ``grad_x`` is None when ``need_x_grad`` is False."""
    y = reference_layer(x, W, b, act).astype(x.dtype)
    out = linear_backward(x.copy(), W.copy(), y.copy(), grad.copy(), act, need_x_grad)
    if not isinstance(out, tuple) or len(out) != 3:
        raise AssertionError("linear_backward must return (grad_x, grad_W, grad_b)")
    gx, gW, gb = out
    x64, W64, g64 = (np.asarray(v, np.float64) for v in (x, W, grad))
    b64 = np.zeros(W.shape[1]) if b is None else np.asarray(b, np.float64)

    def loss(xv, Wv, bv):
        return float(np.sum(g64 * reference_layer(xv, Wv, bv, act)))

    want = {"W": central_difference(lambda v: loss(x64, v, b64), W64),
            "b": central_difference(lambda v: loss(x64, W64, v), b64)}
    if need_x_grad:
        want["x"] = central_difference(lambda v: loss(v, W64, b64), x64)
    elif gx is not None:
        raise AssertionError("need_x_grad=False, but grad_x is not None: skip that product (the "
                             "first layer's input is the data, which needs no gradient)")
    case = f"x {x.shape}, W {W.shape}, activation {act!r}"
    tol = 2e-3 if x.dtype == np.float32 else 1e-6
    for name, got in (("x", gx), ("W", gW), ("b", gb)):
        if name not in want:
            continue
        w = want[name]
        if got is None:
            raise AssertionError(f"grad_{name} is None for {case}")
        got = expect_array(got, w.shape, x.dtype, f"grad_{name} for {case}",
                           lambda shape, name=name, w=w: _grad_shape_hint(name, shape, w.shape))
        if not np.allclose(got, w, rtol=tol, atol=tol):
            hint = ("with delta = grad * f'(a): grad_x = delta W^T, grad_W = x^T delta, "
                    "grad_b = sum of delta over the rows")
            affine_only = loss_affine_grad(name, x64, W64, g64)
            if act is not None and affine_only is not None and np.allclose(got, affine_only,
                                                                           rtol=tol, atol=tol):
                hint = ("you left out the activation's derivative: multiply grad by f'(a) "
                        "(activation_grad, from the output y) before the products")
            raise AssertionError(f"grad_{name} is off by up to {max_error(got, w):.3g} for "
                                 f"{case}: {hint}")


def _grad_shape_hint(name, got, want):
    if name == "W" and got == want[::-1]:
        return ": that is grad_W transposed; grad_W = x^T delta, of W's shape (n, m)"
    if name == "b":
        return ": sum delta over EVERY row (all leading axes of x), one entry per output"
    if name == "W":
        return (": flatten the leading axes of x and delta to rows first (x.reshape(-1, n), "
                "delta.reshape(-1, m)), then x^T delta")
    return ""


def loss_affine_grad(name, x, W, g):
    """The gradients of sum(g * (xW + b)) -- the layer without its activation."""
    n, m = W.shape
    if name == "x":
        return g @ W.T
    if name == "W":
        return x.reshape(-1, n).T @ g.reshape(-1, m)
    return g.reshape(-1, m).sum(axis=0)
