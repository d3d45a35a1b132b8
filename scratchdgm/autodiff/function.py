r"""Differentiable operations as :class:`Function` classes: forward and backward side by side.

Reverse-mode automatic differentiation rests on one rule. If :math:`y = f(a, b)` and the final
scalar is :math:`L`, then given the *upstream gradient* :math:`\bar y = \partial L / \partial y`,
each op must return the *vector-Jacobian products*

.. math::

    \bar a = \bar y \, \frac{\partial y}{\partial a}, \qquad
    \bar b = \bar y \, \frac{\partial y}{\partial b}.

A :class:`Function` states exactly that: ``forward(ctx, *arrays)`` computes :math:`y` from NumPy
arrays and stores what the backward needs on ``ctx``; ``backward(ctx, grad)`` receives
:math:`\bar y` and returns :math:`(\bar a, \bar b, \dots)`, one per input (``None`` where an input
needs no gradient).

Broadcasting is undone in exactly one place, :func:`~scratchdgm.autodiff.tensor.unbroadcast`,
called by the backward pass: a backward may return a gradient of the *broadcast* shape, and the
engine sums it back down to each input's own shape.
"""

import numpy as np

from scratchdgm.autodiff import grad_mode
from scratchdgm.autodiff.tensor import Tensor, _as_operand


class Context:
    """Scratch space shared by one call of ``forward`` and the matching ``backward``.

    Attributes
    ----------
    saved : tuple
        Whatever ``forward`` passed to :meth:`save_for_backward`.
    needs_input_grad : tuple of bool
        For each input of the op, whether its gradient will be used; a backward may skip
        computing gradients that nobody needs.
    """

    def __init__(self, needs_input_grad):
        self.needs_input_grad = needs_input_grad
        self.saved = ()

    def save_for_backward(self, *values):
        """Keep ``values`` (arrays, usually) for the backward pass."""
        self.saved = values


class Function:
    r"""Base class of every differentiable operation.

    Subclasses define two static methods:

    ``forward(ctx, *inputs, **params) -> ndarray``
        ``inputs`` arrive as NumPy arrays (or Python scalars, left as they are so that NumPy
        keeps the array's dtype); ``params`` are non-differentiable keyword arguments.
    ``backward(ctx, grad) -> ndarray | tuple``
        ``grad`` is :math:`\partial L / \partial \text{output}`; return one gradient per input
        (``None`` for inputs without one). Gradients may have the broadcast shape.

    Call an op with ``MyOp.apply(*inputs, **params)``, which returns a :class:`Tensor` and, when
    any input requires a gradient, records the op in the graph.

    Examples
    --------
    >>> import numpy as np, scratchdgm as sd
    >>> class Cube(sd.Function):
    ...     @staticmethod
    ...     def forward(ctx, x):
    ...         ctx.save_for_backward(x)
    ...         return x ** 3
    ...     @staticmethod
    ...     def backward(ctx, grad):
    ...         (x,) = ctx.saved
    ...         return grad * 3 * x ** 2
    >>> x = sd.tensor([1.0, 2.0], requires_grad=True)
    >>> Cube.apply(x).sum().backward()
    >>> x.grad
    array([ 3., 12.])
    """

    @staticmethod
    def forward(ctx, *inputs, **params):
        raise NotImplementedError("Function subclasses must define a static forward(ctx, ...)")

    @staticmethod
    def backward(ctx, grad):
        raise NotImplementedError("Function subclasses must define a static backward(ctx, grad)")

    @classmethod
    def apply(cls, *inputs, **params):
        """Run ``forward`` on the inputs' data and record the op for the backward pass."""
        operands = [_as_operand(x) for x in inputs]
        datas = [x.data if isinstance(x, Tensor) else x for x in operands]
        needs = tuple(isinstance(x, Tensor) and x.requires_grad for x in operands)
        track = grad_mode.enabled and any(needs)
        ctx = Context(needs)
        try:
            out = cls.forward(ctx, *datas, **params)
        except ValueError as exc:
            shapes = ", ".join(str(np.shape(d)) for d in datas)
            raise ValueError(f"{cls.__name__}: {exc} (operand shapes: {shapes})") from exc
        result = Tensor._wrap(out, requires_grad=track)
        if track:
            result._fn = cls
            result._ctx = ctx
            result._parents = tuple(x if isinstance(x, Tensor) else None for x in operands)
        return result
