r"""Exercise ex04: the log-sum-exp over the K importance samples and its backward, the normalised
importance weights (Burda et al. 2016, eq. 8 and 14).

Write the two functions below; ``pytest exercises/ex04_logsumexp_kernel -v`` checks them.
"""

import numpy as np  # noqa: F401  (you will need it)


def logsumexp_over_k(a):
    r"""Log-sum-exp over axis 0 of a (K, B) array, in one pass per column.

    Parameters
    ----------
    a : ndarray, shape (K, B), float64
        Log importance weights; ``-inf`` entries allowed (no NaN).

    Returns
    -------
    ndarray, shape (B,)
        :math:`\log \sum_{k=1}^K e^{a_{kb}}`; ``-inf`` for an all ``-inf`` column, ``+inf``
        where a column holds ``+inf``.

    Notes
    -----
    Online form, for each column: start with :math:`m = -\infty, s = 0`; for each entry v,

    .. math::

        v > m:\ s \leftarrow s\,e^{m - v} + 1,\ m \leftarrow v; \qquad
        \text{else}:\ s \leftarrow s + e^{v - m}; \qquad
        \operatorname{LSE} = m + \log s.
    """
    raise NotImplementedError("exercise ex04: write this")


def normalised_weights(a, lse):
    r"""The backward of :func:`logsumexp_over_k`: :math:`\tilde w_{kb} = e^{a_{kb} - \mathrm{LSE}_b}`.

    Parameters
    ----------
    a : ndarray, shape (K, B)
    lse : ndarray, shape (B,)
        ``logsumexp_over_k(a)``.

    Returns
    -------
    ndarray, shape (K, B)
        :math:`\partial\,\mathrm{LSE}_b / \partial a_{kb}`; columns sum to 1, and are 0 where
        ``lse`` is ``-inf``.
    """
    raise NotImplementedError("exercise ex04: write this")
