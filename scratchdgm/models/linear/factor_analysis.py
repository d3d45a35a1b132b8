r"""Factor analysis fitted by the EM algorithm (Rubin & Thayer 1982; Ghahramani & Hinton 1996).

Lecture [Mattei-DGM, "Linear latent-variable models"] (EM for
factor analysis) and [Mattei-S2D, "Factor analysis and probabilistic PCA"].

The estimator is :class:`FactorAnalysis`; its EM iteration works on the p x p sample covariance
(:func:`scratchdgm.models.linear.gaussian.em_step`), so after one O(n p^2) pass over the data an
iteration costs O(p^2 d), whatever n. The per-point forms of the two steps, :func:`e_step` and
:func:`m_step`, are the reference solutions of exercise ``ex02_factor_analysis_em``; they compute
the same update from the data matrix.
"""

import numpy as np

from scratchdgm.models.linear.gaussian import (
    _canonical_sign,
    _check_n_components,
    _LinearGaussianModel,
    _mean_and_covariance,
    _validate_fit_data,
    _warn_not_converged,
    posterior_params,
    run_em,
)
from scratchdgm.validation import check_int, check_positive_float, check_random_state

__all__ = ["FactorAnalysis", "e_step", "m_step"]


def e_step(X, W, psi, mu):
    r"""E-step of EM for factor analysis: the posterior moments of every latent code.

    Parameters
    ----------
    X : ndarray, shape (n_samples, p)
    W : ndarray, shape (p, d)
        Current loadings.
    psi : ndarray, shape (p,)
        Current noise variances (the diagonal of :math:`\Psi`).
    mu : ndarray, shape (p,)
        Mean of x (its maximum-likelihood estimate is the sample mean).

    Returns
    -------
    Ez : ndarray, shape (n_samples, d)
        :math:`\mathbb E[z_i \mid x_i] = M^{-1} W^\top \Psi^{-1} (x_i - \mu)`.
    cov_z : ndarray, shape (d, d)
        :math:`\mathrm{Cov}[z_i \mid x_i] = M^{-1}`, :math:`M = I_d + W^\top \Psi^{-1} W`, the
        same for every i; the second moment is
        :math:`\mathbb E[z_i z_i^\top \mid x_i] = M^{-1} + \mathbb E[z_i] \mathbb E[z_i]^\top`.

    References
    ----------
    Ghahramani & Hinton (1996), E-step: :math:`\mathbb E[z \mid x] = \beta x`,
    :math:`\beta = W^\top (\Psi + W W^\top)^{-1}`, and
    :math:`\mathbb E[z z^\top \mid x] = I - \beta W + \beta x x^\top \beta^\top`
    (equal to the forms above by the Woodbury identity).
    """
    X = np.asarray(X, dtype=np.float64)
    B, cov_z = posterior_params(np.asarray(W, np.float64), np.asarray(psi, np.float64))
    return (X - np.asarray(mu, np.float64)) @ B, cov_z


def m_step(X, Ez, cov_z, mu, *, min_noise_variance=1e-12):
    r"""M-step of EM for factor analysis, from the E-step moments.

    Parameters
    ----------
    X : ndarray, shape (n_samples, p)
    Ez : ndarray, shape (n_samples, d)
        Posterior means from :func:`e_step`.
    cov_z : ndarray, shape (d, d)
        Posterior covariance from :func:`e_step`.
    mu : ndarray, shape (p,)
    min_noise_variance : float
        Floor of the new noise variances.

    Returns
    -------
    W_new : ndarray, shape (p, d)
    psi_new : ndarray, shape (p,)

    Notes
    -----
    With centred :math:`x_i` (Ghahramani & Hinton 1996, M-step):

    .. math::

        W^{new} = \Big(\sum_i x_i \mathbb E[z_i]^\top\Big)
                  \Big(\sum_i \mathbb E[z_i z_i^\top]\Big)^{-1}, \qquad
        \Psi^{new} = \frac1n \mathrm{diag}\Big(\sum_i x_i x_i^\top
                     - W^{new} \mathbb E[z_i] x_i^\top\Big),

    where :math:`\sum_i \mathbb E[z_i z_i^\top] = n\, \mathrm{Cov}[z \mid x] + \sum_i
    \mathbb E[z_i] \mathbb E[z_i]^\top`.
    """
    Xc = np.asarray(X, dtype=np.float64) - np.asarray(mu, np.float64)
    Ez = np.asarray(Ez, np.float64)
    n = Xc.shape[0]
    xz = Xc.T @ Ez / n                               # (p, d)
    zz = np.asarray(cov_z, np.float64) + Ez.T @ Ez / n  # (d, d)
    zz = 0.5 * (zz + zz.T)
    W_new = np.linalg.solve(zz, xz.T).T              # zz is symmetric, so this is xz zz^{-1}
    psi_new = np.einsum("ij,ij->j", Xc, Xc) / n - np.einsum("ij,ij->i", W_new, xz)
    return W_new, np.maximum(psi_new, min_noise_variance)


class FactorAnalysis(_LinearGaussianModel):
    r"""Factor analysis, :math:`z \sim \mathcal N(0, I_d)`,
    :math:`x \mid z \sim \mathcal N(Wz + \mu, \Psi)`, fitted by maximum likelihood with EM.

    Parameters
    ----------
    n_components : int
        Latent dimension d, ``1 <= d <= n_features``.
    max_iter : int, default=1000
        Maximum number of EM iterations; a :class:`~sklearn.exceptions.ConvergenceWarning` is
        issued when it is reached before convergence.
    tol : float, default=1e-7
        Convergence tolerance on the mean log-likelihood *per sample*: EM stops when the last
        increase and the Aitken-extrapolated remaining increase are both below ``tol`` (see
        Notes), so the fit ends about ``tol`` short of the converged log-likelihood. The default
        is one decade below the 1e-6 per sample we promise against scikit-learn's
        ``FactorAnalysis(tol=1e-8)``, because the extrapolation is only an estimate.
    init : {'pca', 'random'}, default='pca'
        'pca': start from the PPCA maximum-likelihood solution (Tipping & Bishop 1999, eq. 7)
        with :math:`\Psi` the diagonal of the residual covariance; 'random': Gaussian loadings
        drawn with ``random_state`` and :math:`\Psi = \frac12 \mathrm{diag}(S)`.
    min_noise_variance : float, default=1e-12
        Floor on each :math:`\psi_j`. A zero-variance feature drives :math:`\psi_j \to 0`, where
        the likelihood is unbounded; the floor keeps every quantity finite. The default is
        scikit-learn's, so log-likelihoods on data with constant columns (the digits' blank
        corner pixels) are comparable. Data on a tiny scale should be standardised first.
    random_state : None, int or numpy.random.Generator, default=None
        Only used by ``init='random'``.

    Attributes
    ----------
    components_ : ndarray, shape (n_components, n_features)
        :math:`W^\top`. Rotated so that :math:`W^\top \Psi^{-1} W` is diagonal with decreasing
        entries and each column's largest entry is positive (FA's likelihood is invariant under
        :math:`W \to W R`, :math:`R` orthogonal; this fixes R).
    noise_variance_ : ndarray, shape (n_features,)
        :math:`\psi`, the diagonal of :math:`\Psi`.
    mean_ : ndarray, shape (n_features,)
        :math:`\mu`, the sample mean.
    loglike_ : ndarray, shape (n_iter_,)
        Mean log-likelihood per sample of the training data after each EM iteration;
        non-decreasing, and ``loglike_[-1] == score(X_train)``. (scikit-learn's ``loglike_`` is
        the total, not the mean.)
    n_iter_ : int
        Number of EM iterations run.
    n_features_in_ : int
    feature_names_in_ : ndarray of str, only when X has string column names

    Notes
    -----
    The log-likelihood of centred data with 1/n sample covariance :math:`S` is

    .. math::

        \frac1n \ell(W, \Psi) = -\frac12 \Big(p \log 2\pi + \log |W W^\top + \Psi|
        + \mathrm{tr}\big((W W^\top + \Psi)^{-1} S\big)\Big).

    **E-step** (posterior of each code; Ghahramani & Hinton 1996), with
    :math:`M = I_d + W^\top \Psi^{-1} W` and :math:`\beta = M^{-1} W^\top \Psi^{-1}`:

    .. math::

        \mathbb E[z_i \mid x_i] = \beta (x_i - \mu), \qquad
        \mathbb E[z_i z_i^\top \mid x_i] = M^{-1} + \beta (x_i - \mu)(x_i - \mu)^\top \beta^\top.

    **M-step**, the sums over i written with :math:`S`:

    .. math::

        W^{new} = S \beta^\top \big(M^{-1} + \beta S \beta^\top\big)^{-1}, \qquad
        \Psi^{new} = \max\Big(\mathrm{diag}\big(S - W^{new} \beta S\big),\ \psi_{min}\Big).

    Each iteration costs one O(p^2 d) product (:math:`S \Psi^{-1} W`, shared with the
    log-likelihood) plus O(p d^2 + d^3). EM never decreases :math:`\ell` (the test suite checks
    ``loglike_`` to machine precision); it converges linearly, often slowly, so the stopping rule
    extrapolates the remaining gain :math:`\delta_t r / (1 - r)`, :math:`r = \delta_t /
    \delta_{t-1}` (Aitken) instead of stopping at the first small increment, which would leave
    the fit ~10-30 x ``tol`` short of the optimum on the digits.

    scikit-learn's ``FactorAnalysis`` maximises the same likelihood by a different fixed point
    (the optimal W for fixed :math:`\Psi` through an SVD of the whitened data, then the
    :math:`\Psi` update; Barber 2012, alg. 21.1), with an O(n p d) SVD per iteration.

    References
    ----------
    Rubin, D. B. and Thayer, D. T. (1982). EM algorithms for ML factor analysis. Psychometrika 47.
    Ghahramani, Z. and Hinton, G. E. (1996). The EM algorithm for mixtures of factor analyzers.
    Tech. rep. CRG-TR-96-1 (its E-step and M-step with a single factor analyser).
    Lecture [Mattei-DGM, "Linear latent-variable models"];
    [Mattei-S2D, "Factor analysis and probabilistic PCA"].

    Examples
    --------
    >>> import numpy as np
    >>> from scratchdgm import FactorAnalysis
    >>> X = np.random.default_rng(0).standard_normal((200, 5))
    >>> fa = FactorAnalysis(2).fit(X)
    >>> fa.transform(X).shape
    (200, 2)
    """

    def __init__(self, n_components, *, max_iter=1000, tol=1e-7, init="pca",
                 min_noise_variance=1e-12, random_state=None):
        self.n_components = n_components
        self.max_iter = max_iter
        self.tol = tol
        self.init = init
        self.min_noise_variance = min_noise_variance
        self.random_state = random_state

    def _noise_vector(self):
        return np.asarray(self.noise_variance_, dtype=np.float64)

    def _initial_params(self, S, d, floor):
        p = S.shape[0]
        if self.init == "pca":
            lam, U = np.linalg.eigh(S)
            lam, U = np.maximum(lam[::-1], 0.0), U[:, ::-1]
            sigma2 = lam[d:].mean() if d < p else 0.0
            W = U[:, :d] * np.sqrt(np.maximum(lam[:d] - sigma2, 0.0))
            # diag(S - W W^T) >= 0: the residual variance of each feature under the PPCA fit
            psi = np.diag(S) - np.einsum("ij,ij->i", W, W)
        else:
            rng = check_random_state(self.random_state)
            # half of each feature's variance to the loadings (in expectation), half to the noise
            W = rng.standard_normal((p, d)) * np.sqrt(np.diag(S) / (2.0 * d))[:, None]
            psi = 0.5 * np.diag(S)
        return W, np.maximum(psi, floor)

    def fit(self, X, y=None):
        r"""Fit W, Psi and mu by maximum likelihood (EM).

        Parameters
        ----------
        X : array-like, shape (n_samples, n_features)
            Finite, at least 2 rows.
        y : ignored

        Returns
        -------
        self
        """
        X = _validate_fit_data(self, X)
        n, p = X.shape
        d = _check_n_components(self.n_components, p, strict=False, owner="FactorAnalysis")
        max_iter = check_int(self.max_iter, "max_iter", 1)
        tol = check_positive_float(self.tol, "tol", allow_zero=True)
        floor = check_positive_float(self.min_noise_variance, "min_noise_variance",
                                      allow_zero=False)
        if self.init not in ("pca", "random"):
            raise ValueError(f"init must be 'pca' or 'random', got {self.init!r}")
        mean, S = _mean_and_covariance(X)
        W, psi = self._initial_params(S, d, floor)
        W, psi, loglike, n_iter, converged = run_em(
            S, W, psi, isotropic=False, max_iter=max_iter, tol=tol, min_noise_variance=floor)
        if not converged:
            _warn_not_converged("FactorAnalysis", max_iter)
        # canonical rotation: W^T Psi^{-1} W diagonal, decreasing
        Wp = W / np.sqrt(psi)[:, None]
        evals, R = np.linalg.eigh(Wp.T @ Wp)
        W = _canonical_sign(W @ R[:, ::-1])
        self.components_ = W.T.copy()
        self.noise_variance_ = psi
        self.mean_ = mean
        self.loglike_ = loglike
        self.n_iter_ = n_iter
        return self
