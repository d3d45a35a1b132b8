r"""Differentiable linear algebra: the triangular solve behind full-covariance Gaussians."""

import numpy as np

from scratchdgm.autodiff.function import Function

__all__ = ["TriangularSolve", "solve_triangular"]


class TriangularSolve(Function):
    r"""Solve :math:`L Y = B` for lower-triangular :math:`L`: :math:`Y = L^{-1} B`.

    Shapes: ``L`` (..., d, d), ``B`` (..., d, k), batch axes broadcast; only the lower triangle
    of ``L`` is read. Backward, from :math:`dY = L^{-1}(dB - dL\,Y)`:

    .. math::

        \bar B = L^{-\top} \bar Y, \qquad \bar L = -\operatorname{tril}(\bar B\, Y^\top).

    Used for the Mahalanobis term :math:`\lVert L^{-1}(x - \mu) \rVert^2` and the trace term
    :math:`\operatorname{tr}(\Sigma_1^{-1}\Sigma_0) = \lVert L_1^{-1} L_0 \rVert_F^2` of the
    full-covariance Gaussian.
    """

    @staticmethod
    def forward(ctx, L, B):
        L = np.tril(L)
        # a batched LU solve: no batched triangular solver in NumPy, and d is small here
        Y = np.linalg.solve(L, B)
        ctx.save_for_backward(L, Y)
        return Y

    @staticmethod
    def backward(ctx, grad):
        L, Y = ctx.saved
        gB = np.linalg.solve(np.swapaxes(L, -1, -2), grad)
        gL = -np.tril(gB @ np.swapaxes(Y, -1, -2)) if ctx.needs_input_grad[0] else None
        return gL, (gB if ctx.needs_input_grad[1] else None)




def solve_triangular(L, B):
    r""":math:`L^{-1} B` for lower-triangular ``L`` (..., d, d) and ``B`` (..., d, k), with
    gradients to both (see :class:`TriangularSolve`)."""
    return TriangularSolve.apply(L, B)
