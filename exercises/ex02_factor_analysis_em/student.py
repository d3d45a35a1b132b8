r"""Exercise ex02: the E-step and the M-step of EM for factor analysis (Ghahramani & Hinton 1996;
lecture [Mattei-DGM, "Linear latent-variable models"]).

Write the two functions below; ``pytest exercises/ex02_factor_analysis_em -v`` checks them.
"""

import numpy as np  # noqa: F401  (you will need it)


def e_step(X, W, psi, mu):
    r"""Posterior moments of the latent codes under the current parameters.

    Parameters
    ----------
    X : ndarray, shape (n, p)
        Data, one row per point.
    W : ndarray, shape (p, d)
        Loadings.
    psi : ndarray, shape (p,)
        Noise variances, the diagonal of :math:`\Psi`.
    mu : ndarray, shape (p,)
        Mean of x.

    Returns
    -------
    Ez : ndarray, shape (n, d)
        :math:`\mathbb E[z_i \mid x_i] = M^{-1} W^\top \Psi^{-1} (x_i - \mu)`.
    cov_z : ndarray, shape (d, d)
        :math:`\mathrm{Cov}[z_i \mid x_i] = M^{-1}`, the same for every point.

    Notes
    -----
    .. math::

        M = I_d + W^\top \Psi^{-1} W.
    """
    raise NotImplementedError("exercise ex02: write this")


def m_step(X, Ez, cov_z, mu, min_noise_variance=1e-12):
    r"""New loadings and noise variances from the E-step moments.

    Parameters
    ----------
    X : ndarray, shape (n, p)
    Ez : ndarray, shape (n, d)
        Posterior means from :func:`e_step`.
    cov_z : ndarray, shape (d, d)
        Posterior covariance from :func:`e_step`.
    mu : ndarray, shape (p,)
    min_noise_variance : float
        Floor of the returned noise variances.

    Returns
    -------
    W_new : ndarray, shape (p, d)
    psi_new : ndarray, shape (p,)

    Notes
    -----
    With :math:`\tilde x_i = x_i - \mu` and
    :math:`\mathbb E[z_i z_i^\top] = \mathrm{cov}_z + \mathbb E[z_i] \mathbb E[z_i]^\top`:

    .. math::

        W^{new} = \Big(\sum_i \tilde x_i \mathbb E[z_i]^\top\Big)
                  \Big(\sum_i \mathbb E[z_i z_i^\top]\Big)^{-1}, \qquad
        \psi^{new} = \max\Big(\frac1n \mathrm{diag}\Big(\sum_i \tilde x_i \tilde x_i^\top
                     - W^{new} \mathbb E[z_i] \tilde x_i^\top\Big),\ \psi_{min}\Big).
    """
    raise NotImplementedError("exercise ex02: write this")
