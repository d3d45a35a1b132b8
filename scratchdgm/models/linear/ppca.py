r"""Probabilistic PCA: the closed-form maximum-likelihood solution of Tipping & Bishop (1999)
through the SVD of the centred data, and their EM algorithm.

Lecture [Mattei-DGM, "Linear latent-variable models"] (the
closed-form MLE of PPCA from the SVD of the data matrix) and [Mattei-S2D,
"Factor analysis and probabilistic PCA"]. The estimator is :class:`PPCA`; it shares the posterior,
the Woodbury log-density, sampling and the EM iteration with factor analysis
(:mod:`scratchdgm.models.linear.gaussian`).
"""

import numpy as np
from scipy.linalg import svd as _svd

from scratchdgm.models.linear.gaussian import (
    _LOG_2PI,
    _canonical_sign,
    _check_n_components,
    _LinearGaussianModel,
    _mean_and_covariance,
    _validate_fit_data,
    _warn_not_converged,
    run_em,
)
from scratchdgm.validation import check_int, check_positive_float, check_random_state

__all__ = ["PPCA", "closed_form_mle"]


def _closed_form_loglike(lam_top, total_var, sigma2, p):
    r"""Mean log-likelihood per sample at the closed-form solution, from eigenvalues only.

    C has eigenvalue :math:`c_j = \max(\lambda_j, \sigma^2)` along the j-th principal axis (j <= d)
    and :math:`\sigma^2` on the rest, so :math:`\mathrm{tr}(C^{-1} S) = \sum_{j \le d} \lambda_j
    / c_j + (\mathrm{tr} S - \sum_{j \le d} \lambda_j) / \sigma^2`; without the floor on
    :math:`\sigma^2` this is the familiar :math:`d + (p - d)`.
    """
    d = lam_top.shape[0]
    c = np.maximum(lam_top, sigma2)
    trace = np.sum(lam_top / c) + max(total_var - lam_top.sum(), 0.0) / sigma2
    logdet = np.sum(np.log(c)) + (p - d) * np.log(sigma2)
    return -0.5 * (p * _LOG_2PI + logdet + trace)


def closed_form_mle(eigenvalues, axes, n_features, min_noise_variance):
    r"""Tipping & Bishop's maximum-likelihood :math:`W` and :math:`\sigma^2` from the spectrum of
    the sample covariance.

    Parameters
    ----------
    eigenvalues : ndarray, shape (r,)
        :math:`\lambda_1 \ge \dots \ge \lambda_r \ge 0`, eigenvalues of the 1/n sample
        covariance :math:`S = \frac1n X_c^\top X_c` (:math:`\lambda_j = s_j^2 / n` from the
        singular values of the centred data), :math:`d < r \le p`; the :math:`p - r` missing
        ones (when n < p) are 0.
    axes : ndarray, shape (p, d)
        The leading eigenvectors :math:`u_1, \dots, u_d` of :math:`S` as columns (the first d
        right singular vectors of :math:`X_c`).
    n_features : int
        :math:`p`.
    min_noise_variance : float
        Floor on :math:`\sigma^2` (data in a d-dimensional subspace have
        :math:`\sigma^2_{ML} = 0` and an unbounded likelihood).

    Returns
    -------
    W : ndarray, shape (p, d)
        :math:`U_d (\Lambda_d - \sigma^2 I_d)^{1/2}`, column j is
        :math:`\sqrt{\max(\lambda_j - \sigma^2, 0)}\, u_j` (the rotation R = I).
    sigma2 : float

    Notes
    -----
    Tipping & Bishop (1999), eqs. 7-8:

    .. math::

        \sigma^2_{ML} = \frac{1}{p - d} \sum_{j = d + 1}^{p} \lambda_j, \qquad
        W_{ML} = U_d (\Lambda_d - \sigma^2_{ML} I_d)^{1/2} R,

    the variance lost in the discarded directions, averaged over them, and the leading axes
    scaled so that the model's variance along :math:`u_j` is :math:`\|w_j\|^2 + \sigma^2 =
    \lambda_j`.
    """
    # BEGIN EXERCISE 06: sigma^2 from the discarded eigenvalues, then W from the leading axes
    d = axes.shape[1]
    # Sum the discarded eigenvalues directly (not trace minus the leading ones): no
    # cancellation when the spectrum decays fast.
    sigma2 = max(eigenvalues[d:].sum() / (n_features - d), min_noise_variance)
    W = axes * np.sqrt(np.maximum(eigenvalues[:d] - sigma2, 0.0))
    return W, float(sigma2)
    # END EXERCISE 06


class PPCA(_LinearGaussianModel):
    r"""Probabilistic PCA, :math:`z \sim \mathcal N(0, I_d)`,
    :math:`x \mid z \sim \mathcal N(W z + \mu, \sigma^2 I_p)`, fitted by maximum likelihood.

    Parameters
    ----------
    n_components : int
        Latent dimension d, ``1 <= d < n_features`` (:math:`\sigma^2` is estimated from the
        ``n_features - d`` discarded directions).
    method : {'closed_form', 'em'}, default='closed_form'
        'closed_form': Tipping & Bishop's exact maximiser (Notes). 'em': their EM algorithm from a
        random start (``random_state``), the same iteration as :class:`FactorAnalysis` with the
        noise update averaged over features; it converges to the same likelihood.
    svd_solver : {'auto', 'full', 'covariance_eigh'}, default='auto'
        How the closed form gets the SVD :math:`X_c = U \Sigma V^\top` of the centred data.
        'full': LAPACK's SVD of the n x p matrix :math:`X_c` (the textbook route, accurate for any
        conditioning). 'covariance_eigh': the eigendecomposition :math:`X_c^\top X_c = V
        \Sigma^2 V^\top` of the p x p Gram matrix -- the same right singular vectors and squared
        singular values from one O(n p^2) product, about 10 x faster when n >> p, at the price of
        squaring the condition number (harmless for the leading eigenvalues used here).
        'auto': 'covariance_eigh' when ``n_samples >= 10 * n_features`` and
        ``n_features <= 1000``, else 'full' (scikit-learn's ``PCA`` rule).
    max_iter : int, default=1000
        EM only; :class:`~sklearn.exceptions.ConvergenceWarning` when reached.
    tol : float, default=1e-7
        EM only; tolerance on the mean log-likelihood per sample (Aitken rule, see
        :class:`FactorAnalysis`).
    min_noise_variance : float, default=1e-12
        Floor on :math:`\sigma^2` (data lying exactly in a d-dimensional subspace have
        :math:`\sigma^2_{ML} = 0` and an unbounded likelihood).
    random_state : None, int or numpy.random.Generator, default=None
        EM only: the random initial W.

    Attributes
    ----------
    components_ : ndarray, shape (n_components, n_features)
        :math:`W^\top` with :math:`R = I`: row j is :math:`\sqrt{\lambda_j - \sigma^2}\, u_j^\top`,
        its largest entry positive.
    noise_variance_ : float
        :math:`\sigma^2`.
    mean_ : ndarray, shape (n_features,)
    explained_variance_ : ndarray, shape (n_components,)
        :math:`\lambda_1 \ge \dots \ge \lambda_d`, the leading eigenvalues of the **1/n**
        (maximum-likelihood) sample covariance; they are also the model's variances
        :math:`\|w_j\|^2 + \sigma^2` along the principal axes. For 'em', the latter.
    loglike_ : ndarray, shape (n_iter_,)
        Mean log-likelihood per sample of the training data after each EM iteration; for the
        closed form, the single maximum.
    n_iter_ : int
        EM iterations; 1 for the closed form.
    n_features_in_ : int
    feature_names_in_ : ndarray of str, only when X has string column names

    Notes
    -----
    With :math:`S = \frac1n X_c^\top X_c = \sum_j \lambda_j u_j u_j^\top` (eigenvalues in
    decreasing order, :math:`\lambda_j = s_j^2 / n` from the singular values :math:`s_j` of
    :math:`X_c`), the log-likelihood
    :math:`\frac1n \ell = -\frac12 (p \log 2\pi + \log |C| + \mathrm{tr}(C^{-1} S))`,
    :math:`C = W W^\top + \sigma^2 I`, is maximised by (Tipping & Bishop 1999, eqs. 7-8)

    .. math::

        \sigma^2_{ML} = \frac{1}{p - d} \sum_{j = d + 1}^{p} \lambda_j, \qquad
        W_{ML} = U_d (\Lambda_d - \sigma^2_{ML} I_d)^{1/2} R,

    for any orthogonal R (we take :math:`R = I`). :math:`\sigma^2` is the mean variance lost in
    the discarded directions.

    **Relation to scikit-learn's PCA.** ``sklearn.decomposition.PCA`` stores
    ``explained_variance_`` and ``noise_variance_`` from the *unbiased* n - 1 covariance, and its
    ``score`` evaluates the PPCA density with those, i.e. with :math:`\frac{n}{n-1} C_{ML}`. It
    is therefore not the maximum of the likelihood, and is slightly lower than :meth:`score`
    on the training data. Multiplying that ``PCA``'s ``explained_variance_`` and
    ``noise_variance_`` by :math:`(n-1)/n` gives exactly this model (the test suite checks the
    log-likelihoods agree to 1e-8 relative). Also, ``PCA.transform`` is the projection
    :math:`U_d^\top (x - \mu)`, whereas :meth:`transform` is the posterior mean
    :math:`M^{-1} W^\top (x - \mu) / \sigma^2`.

    References
    ----------
    Tipping, M. E. and Bishop, C. M. (1999). Probabilistic principal component analysis.
    J. R. Statist. Soc. B 61(3), 611-622: eq. 7 (W), eq. 8 (sigma^2), and their EM algorithm.
    Lecture [Mattei-DGM, "Linear latent-variable models"];
    [Mattei-S2D, "Factor analysis and probabilistic PCA"].

    Examples
    --------
    >>> import numpy as np
    >>> from scratchdgm import PPCA
    >>> X = np.random.default_rng(0).standard_normal((200, 5))
    >>> ppca = PPCA(2).fit(X)
    >>> ppca.components_.shape, float(ppca.noise_variance_) > 0
    ((2, 5), True)
    """

    def __init__(self, n_components, *, method="closed_form", svd_solver="auto", max_iter=1000,
                 tol=1e-7, min_noise_variance=1e-12, random_state=None):
        self.n_components = n_components
        self.method = method
        self.svd_solver = svd_solver
        self.max_iter = max_iter
        self.tol = tol
        self.min_noise_variance = min_noise_variance
        self.random_state = random_state

    def _noise_vector(self):
        return np.full(self.components_.shape[1], float(self.noise_variance_))

    def fit(self, X, y=None):
        r"""Fit W, sigma^2 and mu by maximum likelihood.

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
        d = _check_n_components(self.n_components, p, strict=True, owner="PPCA")
        floor = check_positive_float(self.min_noise_variance, "min_noise_variance",
                                      allow_zero=False)
        if self.method not in ("closed_form", "em"):
            raise ValueError(f"method must be 'closed_form' or 'em', got {self.method!r}")
        if self.svd_solver not in ("auto", "full", "covariance_eigh"):
            raise ValueError("svd_solver must be 'auto', 'full' or 'covariance_eigh', got "
                             f"{self.svd_solver!r}")
        if self.method == "closed_form":
            self._fit_closed_form(X, d, floor)
        else:
            self._fit_em(X, d, floor)
        return self

    def _fit_closed_form(self, X, d, floor):
        n, p = X.shape
        solver = self.svd_solver
        if solver == "auto":
            solver = "covariance_eigh" if (n >= 10 * p and p <= 1000) else "full"
        if solver == "full":
            X = np.asarray(X, dtype=np.float64)
            mean = X.mean(axis=0)
            _, s, Vt = _svd(X - mean, full_matrices=False, check_finite=False,
                            lapack_driver="gesdd")
            lam = s**2 / n                       # eigenvalues of the 1/n covariance
            axes = Vt[:d].T
        else:
            mean, S = _mean_and_covariance(X)
            lam, V = np.linalg.eigh(S)
            lam, V = np.maximum(lam[::-1], 0.0), V[:, ::-1]
            axes = V[:, :d]
        W, sigma2 = closed_form_mle(lam, axes, p, floor)
        W = _canonical_sign(W)
        self.components_ = W.T.copy()
        self.noise_variance_ = float(sigma2)
        self.mean_ = mean
        self.explained_variance_ = lam[:d].copy()
        self.loglike_ = np.array([_closed_form_loglike(lam[:d], lam.sum(), sigma2, p)])
        self.n_iter_ = 1

    def _fit_em(self, X, d, floor):
        max_iter = check_int(self.max_iter, "max_iter", 1)
        tol = check_positive_float(self.tol, "tol", allow_zero=True)
        mean, S = _mean_and_covariance(X)
        p = S.shape[0]
        rng = check_random_state(self.random_state)
        var = max(np.trace(S) / p, floor)
        W = rng.standard_normal((p, d)) * np.sqrt(var / (2.0 * d))
        psi = np.full(p, 0.5 * var)
        W, psi, loglike, n_iter, converged = run_em(
            S, W, psi, isotropic=True, max_iter=max_iter, tol=tol, min_noise_variance=floor)
        if not converged:
            _warn_not_converged("PPCA", max_iter)
        sigma2 = float(psi[0])
        # Rotate to R = I (orthogonal columns, decreasing norms) so components_ compare with the
        # closed form: W = U diag(s) V^T  ->  W V = U diag(s).
        U, s, _ = np.linalg.svd(W, full_matrices=False)
        W = _canonical_sign(U * s)
        self.components_ = W.T.copy()
        self.noise_variance_ = sigma2
        self.mean_ = mean
        self.explained_variance_ = s**2 + sigma2
        self.loglike_ = loglike
        self.n_iter_ = n_iter
