r"""A small reverse-mode automatic differentiation engine over NumPy arrays.

Read it in this order:

1. :mod:`~scratchdgm.autodiff.tensor` -- the :class:`Tensor` and the backward pass
   (reverse topological order, gradient accumulation, broadcasting undone in one place);
2. :mod:`~scratchdgm.autodiff.function` -- what an op is (forward and backward side by side);
3. :mod:`~scratchdgm.autodiff.ops` -- every op's derivative, and the Tensor methods that call
   them (``+``, ``@``, ``exp``, ``sum``, ...);
4. :mod:`~scratchdgm.autodiff.gradcheck` -- how we know the derivatives are right;
5. :mod:`~scratchdgm.autodiff.jacobian` -- whole Jacobian matrices, one backward pass per row.
"""

from scratchdgm.autodiff.grad_mode import is_grad_enabled, no_grad
from scratchdgm.autodiff.tensor import Tensor, tensor, unbroadcast
from scratchdgm.autodiff.function import Context, Function
from scratchdgm.autodiff.ops import (
    binary_cross_entropy_with_logits,
    concatenate,
    log_sigmoid,
    logsumexp,
    stack,
    where,
)
from scratchdgm.autodiff.gradcheck import GradcheckError, gradcheck
from scratchdgm.autodiff.jacobian import batch_jacobian, jacobian

__all__ = [
    "Tensor", "tensor", "Function", "Context", "unbroadcast", "no_grad", "is_grad_enabled",
    "concatenate", "stack", "where", "logsumexp", "log_sigmoid",
    "binary_cross_entropy_with_logits", "gradcheck", "GradcheckError",
    "jacobian", "batch_jacobian",
]
