r"""Full Jacobian matrices by reverse-mode differentiation, one backward pass per output entry.

The backward pass of :mod:`~scratchdgm.autodiff.tensor` computes a *vector-Jacobian product*
:math:`\bar y^\top J`: seeding it with the unit vector :math:`e_i` of the output gives row
:math:`i` of the Jacobian,

.. math::

    J_{i\,\cdot} = e_i^\top \frac{\partial y}{\partial x}, \qquad i = 1, \dots, m,

so :math:`m` backward passes over one recorded graph give the whole :math:`m \times n` matrix.
That is the honest cost of reverse mode for a Jacobian, fine for the small maps it is used on
here: the change-of-variables term :math:`\log|\det J_f|` of a normalizing flow
(:mod:`scratchdgm.models.deep.flow`) is checked against ``numpy.linalg.slogdet`` of the
Jacobian computed this way ([Isachenko-L4, "Forward KL for flow model"] in
``docs/lectures.md``).

:func:`batch_jacobian` is the per-row version for functions that act on each row of a batch
separately (a flow's layers, an MLP): :math:`m` backward passes give all :math:`B` Jacobians at
once, because row :math:`b` of the output depends on row :math:`b` of the input only.
"""

import numpy as np

from scratchdgm.autodiff.tensor import Tensor, _to_array

__all__ = ["jacobian", "batch_jacobian"]


def _leaf_and_output(fn, x, where):
    if not callable(fn):
        raise TypeError(f"{where}: fn must be callable, got {type(fn).__name__}")
    data = _to_array(x, None, where)
    leaf = Tensor(data, requires_grad=True)
    out = fn(leaf)
    if not isinstance(out, Tensor):
        raise TypeError(f"{where}: fn must return a Tensor, got {type(out).__name__}")
    return leaf, out


def _pullback(leaf, out, seed):
    """Row of the Jacobian selected by ``seed``: :math:`\\text{seed}^\\top J` as an array of the
    input's shape (zeros where the output does not depend on the input)."""
    leaf.grad = None
    if out.requires_grad:
        out.backward(seed)
    return np.zeros_like(leaf.data) if leaf.grad is None else leaf.grad


def jacobian(fn, x):
    r"""The Jacobian :math:`\partial\, \mathrm{fn}(x) / \partial x` by reverse mode.

    Parameters
    ----------
    fn : callable
        Takes one :class:`Tensor` of ``x``'s shape and returns a :class:`Tensor`.
    x : array_like or Tensor
        The point (float32 or float64; integers become float64). Only its values are used.

    Returns
    -------
    ndarray, shape ``out.shape + x.shape``
        ``J[i..., j...] = d out[i...] / d x[j...]``; for a map :math:`\mathbb R^n \to \mathbb
        R^m` on vectors, the usual :math:`m \times n` matrix.

    Notes
    -----
    One backward pass per output entry, each seeded with a unit vector :math:`e_i`, which
    returns row :math:`i`, :math:`e_i^\top J` (see the module docstring). The graph is recorded
    once and walked :math:`m` times.

    Examples
    --------
    >>> import numpy as np
    >>> from scratchdgm.autodiff import jacobian
    >>> A = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    >>> jacobian(lambda v: v @ A.T, np.array([0.5, -1.0]))
    array([[1., 2.],
           [3., 4.],
           [5., 6.]])
    """
    leaf, out = _leaf_and_output(fn, x, "jacobian")
    J = np.zeros(out.shape + leaf.shape, dtype=np.result_type(out.dtype, leaf.dtype))
    for i in np.ndindex(out.shape):
        seed = np.zeros(out.shape, dtype=out.dtype)
        seed[i] = 1.0
        J[i] = _pullback(leaf, out, seed)
    return J


def batch_jacobian(fn, x):
    r"""The Jacobian of each row: for ``fn`` mapping a batch ``(B, n)`` to ``(B, m)`` row by
    row, the ``B`` matrices :math:`\partial\, \mathrm{fn}(x)_b / \partial x_b`.

    Parameters
    ----------
    fn : callable
        Takes a :class:`Tensor` of shape ``(B, n)``, returns one of shape ``(B, m)`` whose row
        ``b`` depends on row ``b`` of the input only (a layer, an MLP, a flow). This is assumed,
        not checked: for a function that mixes rows (a mean over the batch) the result is the
        sum over ``b'`` of :math:`\partial\, \mathrm{fn}(x)_b / \partial x_{b'}`, not a
        Jacobian; use :func:`jacobian` then.
    x : array_like or Tensor, shape (B, n)

    Returns
    -------
    ndarray, shape (B, m, n)

    Notes
    -----
    Seeding the backward pass with :math:`e_i` in *every* row gives, in row :math:`b` of the
    input's gradient, :math:`\sum_{b'} \partial\, \mathrm{fn}(x)_{b' i} / \partial x_b =
    \partial\, \mathrm{fn}(x)_{b i} / \partial x_b` when rows do not interact: row :math:`i`
    of every Jacobian in one pass, :math:`m` passes in all.
    """
    leaf, out = _leaf_and_output(fn, x, "batch_jacobian")
    if leaf.ndim != 2 or out.ndim != 2 or out.shape[0] != leaf.shape[0]:
        raise ValueError(f"batch_jacobian: expected fn to map (B, n) to (B, m) with the same B; "
                         f"got input {leaf.shape} and output {out.shape}")
    B, m = out.shape
    J = np.zeros((B, m, leaf.shape[1]), dtype=np.result_type(out.dtype, leaf.dtype))
    for i in range(m):
        seed = np.zeros(out.shape, dtype=out.dtype)
        seed[:, i] = 1.0
        J[:, i, :] = _pullback(leaf, out, seed)
    return J
