r"""Exercise ex03: the IWAE bound (Burda et al. 2016, eq. 8) and the closed-form KL between two
Gaussians (lecture [Mattei-DGM, "More on this KL regulariser"]).

Write the two functions below; ``pytest exercises/ex03_iwae_bound -v`` checks them.
"""

import numpy as np  # noqa: F401  (you will need it)


def iwae_bound(log_w):
    r"""Single-draw estimate of the IWAE bound :math:`\mathcal L_K` for each data point.

    Parameters
    ----------
    log_w : ndarray, shape (K, B)
        Log importance weights :math:`\log w_{ki} = \log p_\theta(x_i \mid z_{ki}) + \log p(z_{ki})
        - \log q_\gamma(z_{ki} \mid x_i)`, K samples (axis 0) for each of B points (axis 1).

    Returns
    -------
    ndarray, shape (B,)
        :math:`\log \frac1K \sum_{k=1}^K w_{ki}`, computed stably (logsumexp trick).

    Notes
    -----
    .. math::

        \mathcal L_K(x) = \mathbb E\Big[\log \frac1K \sum_{k=1}^K w_k\Big], \qquad
        \log \sum_k e^{a_k} = m + \log \sum_k e^{a_k - m},\ m = \max_k a_k.
    """
    raise NotImplementedError("exercise ex03: write this")


def gaussian_kl(mu0, cov0, mu1, cov1):
    r"""Closed-form :math:`\mathrm{KL}(\mathcal N(\mu_0, \Sigma_0) \,\|\, \mathcal N(\mu_1,
    \Sigma_1))`.

    Parameters
    ----------
    mu0 : ndarray, shape (p,)
    cov0 : ndarray, shape (p, p)
    mu1 : ndarray, shape (p,)
    cov1 : ndarray, shape (p, p)
        Means and symmetric positive-definite covariances.

    Returns
    -------
    float

    Notes
    -----
    .. math::

        \frac12 \Big( \mathrm{tr}(\Sigma_1^{-1}\Sigma_0) + (\mu_1 - \mu_0)^\top \Sigma_1^{-1}
        (\mu_1 - \mu_0) + \log\frac{\det\Sigma_1}{\det\Sigma_0} - p \Big)
    """
    raise NotImplementedError("exercise ex03: write this")
