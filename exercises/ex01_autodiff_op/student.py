r"""Exercise 01: the log-sum-exp as an autodiff op (forward and backward side by side).

Fill in :meth:`LogSumExp.forward` and :meth:`LogSumExp.backward`; see README.md for the maths,
then run ``pytest exercises/ex01_autodiff_op -v``.
"""

import numpy as np  # noqa: F401  (you will need it)

import scratchdgm as sd


class LogSumExp(sd.Function):
    r"""Stable :math:`y = \log\sum_k e^{a_k}` over one axis.

    Use it as ``LogSumExp.apply(a, axis=-1)`` with ``a`` a Tensor.

    References
    ----------
    Burda, Grosse & Salakhutdinov (2016). Importance weighted autoencoders. ICLR, eq. 8 (the
    bound) and eq. 14 (its gradient: the normalised importance weights). Lecture
    [Mattei-DGM, "Maximum likelihood for DLVM"].
    """

    @staticmethod
    def forward(ctx, a, axis):
        r"""The log-sum-exp of ``a`` along ``axis``, computed stably.

        Parameters
        ----------
        ctx : scratchdgm.autodiff.Context
            Call ``ctx.save_for_backward(...)`` with what the backward needs.
        a : ndarray, shape (..., K, ...)
            Log-weights; may contain ``-inf`` (a weight of zero).
        axis : int
            The axis to reduce (may be negative).

        Returns
        -------
        y : ndarray, shape of ``a`` without ``axis``

        Notes
        -----
        .. math::

            y = m + \log \sum_k e^{a_k - m}, \qquad m = \max_k a_k

        (use :math:`m = 0` where the maximum is not finite, so that an all ``-inf`` axis gives
        ``-inf`` instead of NaN).
        """
        raise NotImplementedError("exercise ex01: write this")

    @staticmethod
    def backward(ctx, grad):
        r"""The gradient with respect to ``a``.

        Parameters
        ----------
        ctx : scratchdgm.autodiff.Context
            Holds what ``forward`` saved, in ``ctx.saved``.
        grad : ndarray, shape of ``y``
            :math:`\bar y = \partial L / \partial y`.

        Returns
        -------
        ndarray, shape of ``a``

        Notes
        -----
        .. math::

            \bar a_k = \bar y\, e^{a_k - y} = \bar y \operatorname{softmax}(a)_k,

        with ``grad`` given back the reduced axis so that it broadcasts against ``a``, and zero
        where the whole axis was ``-inf``.
        """
        raise NotImplementedError("exercise ex01: write this")
