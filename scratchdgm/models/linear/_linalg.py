r"""Small dense linear algebra for the linear-Gaussian models: a Cholesky factor that cannot fail
for a matrix known to be :math:`\succeq I`, and triangular / Cholesky solves through LAPACK
directly (the d x d systems of an EM iteration are so small that scipy.linalg's checking
wrappers would cost more than the arithmetic)."""

import functools

import numpy as np
from scipy.linalg.lapack import dposv, dpotrf, dpotrs, dtrtrs

__all__ = ["cholesky_geq_identity", "tri_solve", "chol_solve", "spd_solve", "identity"]


def cholesky_geq_identity(N):
    r"""Lower-triangular L with :math:`L L^\top = N` for a symmetric N known to satisfy N >= I.

    Plain Cholesky first. When N's entries are so large (noise variances at the floor) that
    round-off makes it look indefinite, fall back to its eigendecomposition with the eigenvalues
    clipped at the exact lower bound 1, and triangularise :math:`Q \Lambda^{1/2}` by QR -- both
    backward stable, so this never raises.
    """
    L, info = dpotrf(N, lower=1, clean=1)
    if info == 0:
        return L
    if info < 0:  # pragma: no cover - an argument error, never expected
        raise ValueError(f"Cholesky factorisation failed (LAPACK info={info})")
    # info > 0: not positive definite in floating point
    evals, Q = np.linalg.eigh(0.5 * (N + N.T))
    B = Q * np.sqrt(np.maximum(evals, 1.0))
    R = np.linalg.qr(B.T, mode="r")          # B B^T = R^T R
    signs = np.where(np.diag(R) < 0, -1.0, 1.0)
    return (R * signs[:, None]).T


def tri_solve(L, B):
    """:math:`L^{-1} B` for lower-triangular L (float64, LAPACK trtrs)."""
    X, info = dtrtrs(L, B, lower=1)
    if info != 0:  # pragma: no cover - L has a positive diagonal by construction
        raise ValueError(f"triangular solve failed (LAPACK info={info})")
    return X


def chol_solve(L, B):
    """:math:`(L L^\\top)^{-1} B` for lower-triangular L (float64, LAPACK potrs)."""
    X, info = dpotrs(L, B, lower=1)
    if info != 0:  # pragma: no cover
        raise ValueError(f"Cholesky solve failed (LAPACK info={info})")
    return X


def spd_solve(A, B):
    r""":math:`A^{-1} B` for a symmetric positive definite A, by Cholesky (LAPACK posv).

    Half the work of an LU solve and, for the d x d systems of an EM iteration, a third of
    ``np.linalg.solve``'s time (its checks and dispatch cost more than the arithmetic). An A
    that is not positive definite in floating point goes to ``np.linalg.solve`` instead.
    """
    _, X, info = dposv(A, B, lower=1)
    if info == 0:
        return X
    return np.linalg.solve(A, B)


@functools.lru_cache(maxsize=None)
def identity(d):
    """The d x d identity, read-only and shared (an EM iteration needs it every step)."""
    eye = np.eye(d)
    eye.flags.writeable = False
    return eye
