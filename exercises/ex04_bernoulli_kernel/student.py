r"""Exercise ex04: the Bernoulli log-likelihood from logits, summed over the pixels, and its
gradient with respect to the logits ([Mattei-DGM, "Deep latent
variable models: the role of the observation model"]).

Write the two functions below; ``pytest exercises/ex04_bernoulli_kernel -v`` checks them.
"""

import numpy as np  # noqa: F401  (you will need it)


def bernoulli_log_prob(logits, x):
    r"""Bernoulli log-likelihood of binary data from decoder logits, summed over the D pixels.

    Parameters
    ----------
    logits : ndarray, shape (K, B, D)
        Decoder outputs :math:`\ell`, for K samples of each of B data points.
    x : ndarray, shape (B, D)
        Binary data (0/1), the same for every one of the K samples.

    Returns
    -------
    ndarray, shape (K, B)
        :math:`\sum_j x_j \ell_j - \operatorname{softplus}(\ell_j)`, stable for any logit.

    Notes
    -----
    .. math::

        \operatorname{softplus}(\ell) = \log(1 + e^{\ell}) = \max(\ell, 0) + \log(1 + e^{-|\ell|}).
    """
    raise NotImplementedError("exercise ex04: write this")


def bernoulli_log_prob_grad(logits, x):
    r"""Derivative of :func:`bernoulli_log_prob` with respect to each logit.

    Parameters
    ----------
    logits : ndarray, shape (K, B, D)
    x : ndarray, shape (B, D)

    Returns
    -------
    ndarray, shape (K, B, D)
        :math:`x_j - \sigma(\ell_j)`, with :math:`\sigma(\ell) = 1 / (1 + e^{-\ell})`.
    """
    raise NotImplementedError("exercise ex04: write this")
