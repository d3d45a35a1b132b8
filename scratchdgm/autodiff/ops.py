r"""Every differentiable operation of the autodiff, as a :class:`Function` with its forward and
backward side by side.

Notation: ``grad`` is the upstream gradient :math:`\bar y = \partial L / \partial y` of the op's
output :math:`y`; each backward returns :math:`\bar x = \bar y\, \partial y / \partial x` for each
input :math:`x`. Gradients of broadcast inputs are summed back to their shapes centrally
(:func:`unbroadcast`), never inside a backward.

The numerically stable forms (softplus, sigmoid, log-sum-exp) are those of
:mod:`scratchdgm.numerics`, written once there.
"""

import numpy as np
from scipy import special

from scratchdgm import numerics as _num

from scratchdgm.autodiff.function import Function
from scratchdgm.autodiff.tensor import (
    Tensor, _as_operand, _check_dtype, _normalize_shape, unbroadcast, value_of,
)

__all__ = [
    "unbroadcast", "concatenate", "stack", "where", "logsumexp", "log_sigmoid",
    "binary_cross_entropy_with_logits",
]


# ---------------------------------------------------------------------------- helpers
def normalize_axis(axis, ndim):
    """Turn ``axis`` (None, int or sequence of ints, negatives allowed) into None or a sorted
    tuple of non-negative ints, with a clear error when out of range."""
    if axis is None:
        return None
    if isinstance(axis, (int, np.integer)):
        axes = (axis,)
    elif isinstance(axis, (tuple, list)):
        axes = tuple(axis)
    else:
        raise TypeError(f"axis must be an int or a tuple of ints, got {axis!r}")
    out = []
    for a in axes:
        if not isinstance(a, (int, np.integer)):
            raise TypeError(f"axis must be an int or a tuple of ints, got {axis!r}")
        if not -ndim <= a < max(ndim, 1):
            raise ValueError(f"axis {a} is out of range for a tensor with {ndim} dimensions")
        out.append(int(a) % max(ndim, 1))
    if len(set(out)) != len(out):
        raise ValueError(f"repeated axis in {axis!r}")
    return tuple(sorted(out))


def normalize_index(index):
    """Replace tensors inside an index by their arrays (tensors index like NumPy arrays)."""
    if isinstance(index, tuple):
        return tuple(value_of(i) for i in index)
    return value_of(index)


def _is_advanced(index):
    parts = index if isinstance(index, tuple) else (index,)
    return any(isinstance(p, (list, np.ndarray)) for p in parts)


def _expand_reduced(grad, shape, axis, keepdims):
    """Give ``grad`` of a reduction back the reduced axes (length 1) so it broadcasts to ``shape``."""
    if axis is None:
        return grad.reshape((1,) * len(shape)) if not keepdims else grad
    if not keepdims:
        grad = np.expand_dims(grad, axis)
    return grad


# ---------------------------------------------------------------------------- arithmetic
class Add(Function):
    r""":math:`y = a + b`; :math:`\bar a = \bar y`, :math:`\bar b = \bar y`."""

    @staticmethod
    def forward(ctx, a, b):
        return a + b

    @staticmethod
    def backward(ctx, grad):
        return grad, grad


class Sub(Function):
    r""":math:`y = a - b`; :math:`\bar a = \bar y`, :math:`\bar b = -\bar y`."""

    @staticmethod
    def forward(ctx, a, b):
        return a - b

    @staticmethod
    def backward(ctx, grad):
        return grad, (-grad if ctx.needs_input_grad[1] else None)


class Mul(Function):
    r""":math:`y = a b`; :math:`\bar a = \bar y\, b`, :math:`\bar b = \bar y\, a`."""

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return a * b

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.saved
        ga = grad * b if ctx.needs_input_grad[0] else None
        gb = grad * a if ctx.needs_input_grad[1] else None
        return ga, gb


class Div(Function):
    r""":math:`y = a / b`; :math:`\bar a = \bar y / b`, :math:`\bar b = -\bar y\, a / b^2 = -\bar y\, y / b`."""

    @staticmethod
    def forward(ctx, a, b):
        out = a / b
        ctx.save_for_backward(b, out)
        return out

    @staticmethod
    def backward(ctx, grad):
        b, out = ctx.saved
        ga = grad / b if ctx.needs_input_grad[0] else None
        gb = -grad * out / b if ctx.needs_input_grad[1] else None
        return ga, gb


class Pow(Function):
    r""":math:`y = a^b`; :math:`\bar a = \bar y\, b\, a^{b-1}`, :math:`\bar b = \bar y\, y \log a`
    (the exponent's gradient needs :math:`a > 0`)."""

    @staticmethod
    def forward(ctx, a, b):
        out = a**b
        ctx.save_for_backward(a, b, out)
        return out

    @staticmethod
    def backward(ctx, grad):
        a, b, out = ctx.saved
        ga = grad * b * a ** (b - 1) if ctx.needs_input_grad[0] else None
        gb = grad * out * np.log(a) if ctx.needs_input_grad[1] else None
        return ga, gb


class Neg(Function):
    r""":math:`y = -a`; :math:`\bar a = -\bar y`."""

    @staticmethod
    def forward(ctx, a):
        return -a

    @staticmethod
    def backward(ctx, grad):
        return -grad


class MatMul(Function):
    r"""Matrix product with NumPy's ``@`` semantics, including stacks of matrices.

    For :math:`Y = A B` with :math:`A` of shape ``(..., n, k)`` and :math:`B` of shape
    ``(..., k, m)``:

    .. math::

        \bar A = \bar Y B^\top, \qquad \bar B = A^\top \bar Y,

    and broadcast batch axes are summed by :func:`unbroadcast`. The common deep-model case
    ``(K, B, n) @ (n, m)`` (a layer applied to K x B stacked samples) computes :math:`\bar B`
    as one matrix product over the K*B rows instead of K products followed by a sum.
    1-D operands are treated as NumPy does (a row vector on the left, a column on the right).
    """

    @staticmethod
    def forward(ctx, a, b):
        a, b = np.asarray(a), np.asarray(b)
        if a.ndim == 0 or b.ndim == 0:
            raise ValueError("matmul needs operands with at least one dimension, got a scalar")
        k_a = a.shape[-1]
        k_b = b.shape[0] if b.ndim == 1 else b.shape[-2]
        if k_a != k_b:
            raise ValueError(
                f"shapes {a.shape} and {b.shape} are not aligned for matmul: the last axis of "
                f"the left operand ({k_a}) must equal the "
                f"{'only' if b.ndim == 1 else 'second-to-last'} axis of the right one ({k_b})"
            )
        ctx.save_for_backward(a, b)
        return a @ b

    @staticmethod
    def backward(ctx, grad):
        r"""The gradients of ``Y = A @ B``, from the operands that ``forward`` saved.

        Parameters
        ----------
        ctx : Context
            ``ctx.saved == (a, b)``; ``ctx.needs_input_grad`` says which gradients are wanted.
        grad : ndarray, shape of ``Y``
            :math:`\bar Y = \partial L / \partial Y`.

        Returns
        -------
        (ga, gb) : ndarray or None each
            :math:`\bar A = \bar Y B^\top` and :math:`\bar B = A^\top \bar Y` (transposing the
            last two axes); either may keep broadcast batch axes, which the engine sums away
            (:func:`unbroadcast`). A 1-D ``a`` acts as a row ``(1, k)`` and a 1-D ``b`` as a
            column ``(k, 1)``, and their gradients are 1-D again.
        """
        # BEGIN EXERCISE 01: the gradients of A @ B for stacked and 1-D operands
        a, b = ctx.saved
        A = a[None, :] if a.ndim == 1 else a  # (..., n, k)
        B = b[:, None] if b.ndim == 1 else b  # (..., k, m)
        G = grad
        if a.ndim == 1:
            G = np.expand_dims(G, -2 if b.ndim > 1 else -1)
        if b.ndim == 1:
            G = np.expand_dims(G, -1)
        ga = gb = None
        if ctx.needs_input_grad[0]:
            ga = G @ np.swapaxes(B, -1, -2)
            if a.ndim == 1:
                ga = ga[..., 0, :]
        if ctx.needs_input_grad[1]:
            if B.ndim == 2 and A.ndim > 2:
                # (K, B, n) @ (n, m): one GEMM over all K*B rows
                k = A.shape[-1]
                gb = A.reshape(-1, k).T @ G.reshape(-1, G.shape[-1])
            else:
                gb = np.swapaxes(A, -1, -2) @ G
            if b.ndim == 1:
                gb = gb[..., 0]
        return ga, gb
        # END EXERCISE 01


# ---------------------------------------------------------------------------- elementwise
class Exp(Function):
    r""":math:`y = e^x`; :math:`\bar x = \bar y\, y`."""

    @staticmethod
    def forward(ctx, x):
        out = np.exp(x)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad):
        return grad * ctx.saved[0]


class Log(Function):
    r""":math:`y = \log x`; :math:`\bar x = \bar y / x`."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.log(x)

    @staticmethod
    def backward(ctx, grad):
        return grad / ctx.saved[0]


class Log1p(Function):
    r""":math:`y = \log(1 + x)`; :math:`\bar x = \bar y / (1 + x)`."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.log1p(x)

    @staticmethod
    def backward(ctx, grad):
        return grad / (1 + ctx.saved[0])


class Tanh(Function):
    r""":math:`y = \tanh x`; :math:`\bar x = \bar y\,(1 - y^2)`."""

    @staticmethod
    def forward(ctx, x):
        # BEGIN EXERCISE 01: y = tanh(x), saving what the backward needs
        out = np.tanh(x)
        ctx.save_for_backward(out)
        return out
        # END EXERCISE 01

    @staticmethod
    def backward(ctx, grad):
        # BEGIN EXERCISE 01: the gradient of tanh from what the forward saved
        (out,) = ctx.saved
        return grad * (1 - out * out)
        # END EXERCISE 01


class Sigmoid(Function):
    r""":math:`y = \sigma(x) = 1/(1+e^{-x})`; :math:`\bar x = \bar y\, y (1 - y)`."""

    @staticmethod
    def forward(ctx, x):
        # BEGIN EXERCISE 01: y = sigmoid(x), stable at x = -1000 and +1000
        out = _num.sigmoid(x)
        ctx.save_for_backward(out)
        return out
        # END EXERCISE 01

    @staticmethod
    def backward(ctx, grad):
        # BEGIN EXERCISE 01: the gradient of the sigmoid from what the forward saved
        (out,) = ctx.saved
        return grad * out * (1 - out)
        # END EXERCISE 01


class Relu(Function):
    r""":math:`y = \max(x, 0)`; :math:`\bar x = \bar y\,[x > 0]`."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return np.maximum(x, 0)

    @staticmethod
    def backward(ctx, grad):
        return grad * (ctx.saved[0] > 0)


class Softplus(Function):
    r""":math:`y = \log(1 + e^x)`; :math:`\bar x = \bar y\,\sigma(x)`."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return _num.softplus(x)

    @staticmethod
    def backward(ctx, grad):
        return grad * _num.sigmoid(ctx.saved[0])


class LogSigmoid(Function):
    r""":math:`y = \log\sigma(x) = -\operatorname{softplus}(-x)`; :math:`\bar x = \bar y\,\sigma(-x)`."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return -_num.softplus(-x)

    @staticmethod
    def backward(ctx, grad):
        return grad * _num.sigmoid(-ctx.saved[0])


class Sqrt(Function):
    r""":math:`y = \sqrt x`; :math:`\bar x = \bar y / (2 y)`."""

    @staticmethod
    def forward(ctx, x):
        out = np.sqrt(x)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad):
        return grad * 0.5 / ctx.saved[0]


class Square(Function):
    r""":math:`y = x^2`; :math:`\bar x = 2 \bar y\, x`."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx, grad):
        return 2 * grad * ctx.saved[0]


class Abs(Function):
    r""":math:`y = |x|`; :math:`\bar x = \bar y \operatorname{sign}(x)`."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return np.abs(x)

    @staticmethod
    def backward(ctx, grad):
        return grad * np.sign(ctx.saved[0])


class Lgamma(Function):
    r""":math:`y = \log\Gamma(x)`; :math:`\bar x = \bar y\,\psi(x)` (digamma). Used by the
    Student's t log-density with learned degrees of freedom."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return special.gammaln(x).astype(x.dtype, copy=False)

    @staticmethod
    def backward(ctx, grad):
        x = ctx.saved[0]
        return grad * special.digamma(x).astype(x.dtype, copy=False)


class AsType(Function):
    """Cast to another float dtype; the gradient is cast back to the input's dtype."""

    @staticmethod
    def forward(ctx, x, dtype):
        ctx.save_for_backward(x.dtype)
        return x.astype(dtype)

    @staticmethod
    def backward(ctx, grad):
        return grad.astype(ctx.saved[0])


# ---------------------------------------------------------------------------- reductions
class Sum(Function):
    r""":math:`y = \sum_{\text{axis}} x`; :math:`\bar x` is :math:`\bar y` copied along the summed axes."""

    @staticmethod
    def forward(ctx, x, axis, keepdims):
        ctx.save_for_backward(x.shape, axis, keepdims)
        return np.sum(x, axis=axis, keepdims=keepdims)

    @staticmethod
    def backward(ctx, grad):
        shape, axis, keepdims = ctx.saved
        return np.broadcast_to(_expand_reduced(grad, shape, axis, keepdims), shape)


class Mean(Function):
    r""":math:`y = \frac1N \sum_{\text{axis}} x` over the :math:`N` reduced entries;
    :math:`\bar x = \bar y / N` copied along the reduced axes."""

    @staticmethod
    def forward(ctx, x, axis, keepdims):
        n = x.size if axis is None else int(np.prod([x.shape[a] for a in axis]))
        ctx.save_for_backward(x.shape, axis, keepdims, n)
        return np.mean(x, axis=axis, keepdims=keepdims)

    @staticmethod
    def backward(ctx, grad):
        shape, axis, keepdims, n = ctx.saved
        return np.broadcast_to(_expand_reduced(grad, shape, axis, keepdims) / n, shape)


class Max(Function):
    r""":math:`y = \max_{\text{axis}} x`; :math:`\bar x` is :math:`\bar y` at the first arg-max, 0 elsewhere."""

    @staticmethod
    def forward(ctx, x, axis, keepdims):
        if x.size == 0:
            raise ValueError("max of an empty tensor")
        ctx.save_for_backward(x, axis, keepdims)
        return np.max(x, axis=axis, keepdims=keepdims)

    @staticmethod
    def backward(ctx, grad):
        x, axis, keepdims = ctx.saved
        axes = tuple(range(x.ndim)) if axis is None else axis
        kept = tuple(a for a in range(x.ndim) if a not in axes)
        # move the reduced axes last and flatten them, so one argmax finds the winner
        moved = np.transpose(x, kept + axes).reshape([x.shape[a] for a in kept] + [-1])
        winner = np.argmax(moved, axis=-1)
        g = _expand_reduced(grad, x.shape, axis, keepdims)
        g = np.broadcast_to(g, [x.shape[a] if a in kept else 1 for a in range(x.ndim)])
        g = np.transpose(g, kept + axes).reshape(winner.shape)
        out = np.zeros_like(moved)
        np.put_along_axis(out, winner[..., None], g[..., None], axis=-1)
        out = out.reshape([x.shape[a] for a in kept + axes])
        return np.transpose(out, np.argsort(kept + axes))


class LogSumExp(Function):
    r"""Stable :math:`y = \log \sum_{\text{axis}} e^{x}`.

    .. math::

        y = m + \log \sum_k e^{x_k - m}, \quad m = \max_k x_k, \qquad
        \bar x_k = \bar y\, e^{x_k - y} = \bar y\, \operatorname{softmax}(x)_k .

    In the IWAE bound (Burda et al. 2016, eq. 8; [Mattei-DGM, "Maximum likelihood
    for DLVM"]) :math:`x_k = \log w_k` and the softmax is the vector of *normalised importance
    weights* :math:`\tilde w_k`: the gradient of :math:`\mathcal L_K` is a
    :math:`\tilde w`-weighted average of the per-sample gradients (Burda et al. eq. 14).

    Conventions: a reduction over only ``-inf`` entries gives ``-inf`` (log 0) with zero
    gradient; a ``+inf`` entry gives ``+inf``; NaN propagates.
    """

    @staticmethod
    def forward(ctx, x, axis, keepdims):
        r"""The log-sum-exp of ``x`` over ``axis``.

        Parameters
        ----------
        ctx : Context
            Save what :meth:`backward` needs with ``ctx.save_for_backward(...)``.
        x : ndarray
            Entries may be ``-inf``.
        axis : None or tuple of int
            Sorted, non-negative axes to reduce (None: all of them), as
            :func:`normalize_axis` gives them.
        keepdims : bool
            Keep the reduced axes with length 1.

        Returns
        -------
        ndarray
            :math:`\log\sum e^x` over ``axis``, through :func:`scratchdgm.numerics.logsumexp`.
        """
        # BEGIN EXERCISE 09: y = log sum exp(x) over axis, saving what the backward needs
        out = _num.logsumexp(x, axis=axis, keepdims=True)
        ctx.save_for_backward(x, out, axis, keepdims)
        if not keepdims:
            out = np.squeeze(out, axis=axis) if axis is not None else out.reshape(())
        return out
        # END EXERCISE 09

    @staticmethod
    def backward(ctx, grad):
        r"""The gradient :math:`\bar x = \bar y\, e^{x - y}` (the softmax of ``x`` over
        ``axis``), of ``x``'s shape; zero where a whole slice was ``-inf``.

        Parameters
        ----------
        ctx : Context
            Holds what :meth:`forward` saved, in ``ctx.saved``.
        grad : ndarray
            :math:`\bar y`, of the output's shape (without the reduced axes unless
            ``keepdims``).
        """
        # BEGIN EXERCISE 09: the softmax times grad, with the reduced axes put back
        x, out, axis, keepdims = ctx.saved
        with np.errstate(invalid="ignore"):
            weights = np.exp(x - out)
        weights = np.where(np.isneginf(out), 0.0, weights)  # all -inf: no gradient
        return _expand_reduced(grad, x.shape, axis, keepdims) * weights
        # END EXERCISE 09


# ---------------------------------------------------------------------------- shape
class Reshape(Function):
    """Same data in a new shape; the gradient is reshaped back."""

    @staticmethod
    def forward(ctx, x, shape):
        ctx.save_for_backward(x.shape)
        return np.reshape(x, shape)

    @staticmethod
    def backward(ctx, grad):
        return np.reshape(grad, ctx.saved[0])


class Transpose(Function):
    """Permute axes; the gradient is permuted by the inverse permutation."""

    @staticmethod
    def forward(ctx, x, axes):
        if axes is not None and sorted(axes) != list(range(x.ndim)):
            raise ValueError(f"axes {axes} are not a permutation of the {x.ndim} axes")
        ctx.save_for_backward(axes)
        return np.transpose(x, axes)

    @staticmethod
    def backward(ctx, grad):
        (axes,) = ctx.saved
        return np.transpose(grad, None if axes is None else np.argsort(axes))


class BroadcastTo(Function):
    """NumPy broadcasting made explicit; the backward is :func:`unbroadcast` (done centrally)."""

    @staticmethod
    def forward(ctx, x, shape):
        return np.broadcast_to(x, shape)

    @staticmethod
    def backward(ctx, grad):
        return grad


class GetItem(Function):
    r"""Indexing and slicing, ``y = x[index]``.

    The gradient scatters :math:`\bar y` back into a zero array of :math:`x`'s shape. With an
    integer-array index the same entry may be picked several times, so the scatter must *add*
    (``np.add.at``), not assign.
    """

    @staticmethod
    def forward(ctx, x, index):
        ctx.save_for_backward(x.shape, x.dtype, index)
        return x[index]

    @staticmethod
    def backward(ctx, grad):
        shape, dtype, index = ctx.saved
        out = np.zeros(shape, dtype=dtype)
        if _is_advanced(index):
            np.add.at(out, index, grad)
        else:
            out[index] = grad  # basic slicing never repeats an entry
        return out


class Concatenate(Function):
    """Join tensors along an existing axis; the gradient is split at the same places."""

    @staticmethod
    def forward(ctx, *arrays, axis):
        arrays = [np.asarray(a) for a in arrays]
        ctx.save_for_backward([a.shape[axis] for a in arrays], axis)
        return np.concatenate(arrays, axis=axis)

    @staticmethod
    def backward(ctx, grad):
        sizes, axis = ctx.saved
        return tuple(np.split(grad, np.cumsum(sizes)[:-1], axis=axis))


class Stack(Function):
    """Join tensors along a new axis; the gradient is unstacked."""

    @staticmethod
    def forward(ctx, *arrays, axis):
        out = np.stack(arrays, axis=axis)
        ctx.save_for_backward(axis % out.ndim, len(arrays))
        return out

    @staticmethod
    def backward(ctx, grad):
        axis, n = ctx.saved
        return tuple(np.take(grad, i, axis=axis) for i in range(n))


class Where(Function):
    r""":math:`y = c\,?\,a : b` elementwise; :math:`\bar a = \bar y [c]`, :math:`\bar b = \bar y [\lnot c]`."""

    @staticmethod
    def forward(ctx, a, b, cond):
        ctx.save_for_backward(cond)
        return np.where(cond, a, b)

    @staticmethod
    def backward(ctx, grad):
        (cond,) = ctx.saved
        zero = np.zeros((), dtype=grad.dtype)
        ga = np.where(cond, grad, zero) if ctx.needs_input_grad[0] else None
        gb = np.where(cond, zero, grad) if ctx.needs_input_grad[1] else None
        return ga, gb


class BCEWithLogits(Function):
    r"""Binary cross-entropy from logits, elementwise, stable:

    .. math::

        \ell(l, t) = -[t \log\sigma(l) + (1-t)\log(1-\sigma(l))]
                   = \max(l, 0) - l\,t + \log(1 + e^{-|l|}),

    with :math:`\partial\ell/\partial l = \sigma(l) - t` and :math:`\partial\ell/\partial t = -l`.
    It is minus the Bernoulli log-likelihood of [Mattei-DGM, "Deep latent
    variable models: the role of the observation model"].
    """

    @staticmethod
    def forward(ctx, logits, targets):
        ctx.save_for_backward(logits, targets)
        return _num.softplus(logits) - logits * targets

    @staticmethod
    def backward(ctx, grad):
        logits, targets = ctx.saved
        gl = grad * (_num.sigmoid(np.asarray(logits)) - targets) if ctx.needs_input_grad[0] else None
        gt = -grad * logits if ctx.needs_input_grad[1] else None
        return gl, gt


# ---------------------------------------------------------------------------- functional API
def _tensors(seq, name):
    if isinstance(seq, (Tensor, np.ndarray)) or not hasattr(seq, "__iter__"):
        raise TypeError(f"{name} takes a sequence of tensors, got {type(seq).__name__}")
    items = [_as_operand(x) for x in seq]
    if not items:
        raise ValueError(f"{name} needs at least one tensor")
    return items


def concatenate(tensors, axis=0):
    """Join a sequence of tensors along an existing ``axis`` (as :func:`numpy.concatenate`)."""
    items = _tensors(tensors, "concatenate")
    ndim = np.ndim(value_of(items[0]))
    if ndim == 0:
        raise ValueError("concatenate: zero-dimensional tensors cannot be concatenated; use stack")
    return Concatenate.apply(*items, axis=normalize_axis(axis, ndim)[0])


def stack(tensors, axis=0):
    """Join a sequence of same-shape tensors along a new ``axis`` (as :func:`numpy.stack`)."""
    items = _tensors(tensors, "stack")
    return Stack.apply(*items, axis=normalize_axis(axis, np.ndim(value_of(items[0])) + 1)[0])


def where(cond, a, b):
    """Elementwise ``a`` where ``cond`` is true, else ``b``; ``cond`` is not differentiated."""
    cond = np.asarray(value_of(cond))
    if cond.dtype != bool:
        cond = cond != 0
    return Where.apply(a, b, cond=cond)


def logsumexp(x, axis=None, keepdims=False):
    r"""Stable :math:`\log\sum_{\text{axis}} e^{x}` (see :class:`LogSumExp` for the maths)."""
    x = _as_operand(x)
    if not isinstance(x, Tensor):
        x = Tensor._wrap(np.asarray(x))
    return x.logsumexp(axis=axis, keepdims=keepdims)


def log_sigmoid(x):
    r"""Stable :math:`\log\sigma(x) = -\log(1 + e^{-x})`."""
    return LogSigmoid.apply(x)


def binary_cross_entropy_with_logits(logits, targets, reduction="mean"):
    r"""Binary cross-entropy between ``targets`` in [0, 1] and ``sigmoid(logits)``, stably.

    Parameters
    ----------
    logits : Tensor or array_like
        Unnormalised log-odds :math:`l`.
    targets : Tensor or array_like
        Targets :math:`t` (0/1 data, or probabilities), broadcastable with ``logits``.
    reduction : {'mean', 'sum', 'none'}
        How the elementwise losses are combined (``'mean'`` as PyTorch's default).

    Notes
    -----
    .. math::

        \ell(l, t) = \max(l, 0) - l\,t + \log(1 + e^{-|l|})
                   = -\log \mathrm{Bernoulli}(t \mid \sigma(l)),

    so ``-binary_cross_entropy_with_logits(f(z), x, 'sum')`` is the Bernoulli decoder's
    :math:`\log p_\theta(x \mid z)` ([Mattei-DGM, "Deep latent variable models: the role of the observation model"]).
    """
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    loss = BCEWithLogits.apply(logits, targets)
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss

# ---------------------------------------------------------------------------- Tensor methods
class _TensorMethods:
    """The differentiable methods and operators of :class:`Tensor`, each a thin call of the op
    above that defines its derivative. They are bound to :class:`Tensor` below (the tensor
    module itself knows no op, which keeps the imports one-way)."""

    # ------------------------------------------------------------------ arithmetic
    def __add__(self, other):
        return Add.apply(self, other)

    def __radd__(self, other):
        return Add.apply(other, self)

    def __sub__(self, other):
        return Sub.apply(self, other)

    def __rsub__(self, other):
        return Sub.apply(other, self)

    def __mul__(self, other):
        return Mul.apply(self, other)

    def __rmul__(self, other):
        return Mul.apply(other, self)

    def __truediv__(self, other):
        return Div.apply(self, other)

    def __rtruediv__(self, other):
        return Div.apply(other, self)

    def __pow__(self, other):
        return Pow.apply(self, other)

    def __rpow__(self, other):
        return Pow.apply(other, self)

    def __matmul__(self, other):
        return MatMul.apply(self, other)

    def __rmatmul__(self, other):
        return MatMul.apply(other, self)

    def __neg__(self):
        return Neg.apply(self)

    def __pos__(self):
        return self

    # ------------------------------------------------------------------ elementwise functions
    def exp(self):
        r""":math:`e^x`."""
        return Exp.apply(self)

    def log(self):
        r"""Natural logarithm :math:`\log x` (``-inf`` at 0, NaN below, as NumPy)."""
        return Log.apply(self)

    def log1p(self):
        r""":math:`\log(1 + x)`, accurate for small :math:`x`."""
        return Log1p.apply(self)

    def tanh(self):
        r""":math:`\tanh x`; derivative :math:`1 - \tanh^2 x`."""
        return Tanh.apply(self)

    def sigmoid(self):
        r"""Logistic sigmoid :math:`\sigma(x) = 1 / (1 + e^{-x})`, stable for any :math:`x`."""
        return Sigmoid.apply(self)

    def relu(self):
        r""":math:`\max(x, 0)` (derivative 0 at 0)."""
        return Relu.apply(self)

    def softplus(self):
        r""":math:`\log(1 + e^x)`, computed as :math:`\max(x,0) + \log(1 + e^{-|x|})`."""
        return Softplus.apply(self)

    def sqrt(self):
        r""":math:`\sqrt{x}`."""
        return Sqrt.apply(self)

    def square(self):
        r""":math:`x^2`."""
        return Square.apply(self)

    def abs(self):
        r""":math:`|x|` (derivative taken as 0 at 0)."""
        return Abs.apply(self)

    def lgamma(self):
        r""":math:`\log\Gamma(x)`; derivative the digamma function :math:`\psi(x)`."""
        return Lgamma.apply(self)

    def astype(self, dtype):
        """Cast to float32 or float64; the gradient is cast back."""
        return AsType.apply(self, dtype=_check_dtype(dtype, "astype"))

    # ------------------------------------------------------------------ reductions
    def sum(self, axis=None, keepdims=False):
        r""":math:`\sum` over ``axis`` (an int, a tuple, or None for all)."""
        return Sum.apply(self, axis=normalize_axis(axis, self.ndim), keepdims=keepdims)

    def mean(self, axis=None, keepdims=False):
        r"""Arithmetic mean over ``axis``."""
        return Mean.apply(self, axis=normalize_axis(axis, self.ndim), keepdims=keepdims)

    def max(self, axis=None, keepdims=False):
        r"""Maximum over ``axis``; the gradient goes to the (first) arg-max only."""
        return Max.apply(self, axis=normalize_axis(axis, self.ndim), keepdims=keepdims)

    def min(self, axis=None, keepdims=False):
        r"""Minimum over ``axis``: :math:`\min x = -\max(-x)`."""
        return -((-self).max(axis=axis, keepdims=keepdims))

    def logsumexp(self, axis=None, keepdims=False):
        r""":math:`\log \sum \exp x` over ``axis``, stable; see :func:`scratchdgm.logsumexp`."""
        return LogSumExp.apply(
            self, axis=normalize_axis(axis, self.ndim), keepdims=keepdims
        )

    def log_softmax(self, axis=-1):
        r""":math:`x_i - \log\sum_j e^{x_j}` along ``axis``.

        Computed on :math:`x - \max x` (detached): log-softmax is unchanged by a shift, so the
        gradient is the same, and the subtraction of two large nearly equal numbers
        (float32 inputs near 1000) is avoided.
        """
        shifted = self - self.max(axis=axis, keepdims=True).detach()
        return shifted - shifted.logsumexp(axis=axis, keepdims=True)

    def softmax(self, axis=-1):
        r""":math:`e^{x_i} / \sum_j e^{x_j}` along ``axis`` (computed as exp of log_softmax)."""
        return self.log_softmax(axis=axis).exp()

    # ------------------------------------------------------------------ shape
    def reshape(self, *shape):
        """Same data, new shape (one entry may be -1)."""
        return Reshape.apply(self, shape=_normalize_shape(shape))

    def transpose(self, *axes):
        """Permute axes (reverse them when none are given)."""
        axes = _normalize_shape(axes) if axes else None
        return Transpose.apply(self, axes=axes)

    @property
    def T(self):
        """The transpose (axes reversed)."""
        return self.transpose()

    def broadcast_to(self, shape):
        """Broadcast to ``shape`` by NumPy's rules; the gradient sums over the copies."""
        return BroadcastTo.apply(self, shape=_normalize_shape((shape,)))

    def __getitem__(self, index):
        return GetItem.apply(self, index=normalize_index(index))


for _name, _member in list(vars(_TensorMethods).items()):
    if (callable(_member) or isinstance(_member, property)) and _name not in (
            "__dict__", "__weakref__", "__module__", "__doc__", "__qualname__"):
        setattr(Tensor, _name, _member)
del _name, _member
