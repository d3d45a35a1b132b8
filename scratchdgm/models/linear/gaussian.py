r"""Shared maths of the linear-Gaussian latent-variable models: factor analysis and PPCA.

Both models (lecture [Mattei-DGM, "Linear latent-variable models"];
lecture [Mattei-S2D, "Factor analysis and probabilistic PCA"]) are

.. math::

    z \sim \mathcal N(0, I_d), \qquad x \mid z \sim \mathcal N(W z + \mu, \Psi),
    \qquad \Psi = \mathrm{diag}(\psi_1, \dots, \psi_p),

with :math:`\Psi = \sigma^2 I_p` for PPCA. Everything that does not depend on how
:math:`(W, \Psi)` were fitted lives here, written once:

* the marginal :math:`x \sim \mathcal N(\mu, C)`, :math:`C = W W^\top + \Psi`, its exact
  log-density through the Woodbury identity and the matrix determinant lemma (O(p d^2) once,
  then O(p d) per point; no p x p matrix is ever inverted);
* the Gaussian posterior :math:`p(z \mid x)`;
* ancestral sampling, :math:`C` and :math:`C^{-1}`;
* the EM iteration on the p x p sample covariance (Rubin & Thayer 1982; Ghahramani & Hinton
  1996), used by :class:`~scratchdgm.FactorAnalysis` and by ``PPCA(method='em')``, and its
  *variational* form whose E-step is restricted to factorised (mean-field) Gaussians, the
  family a VAE's encoder outputs (:func:`em_step` with ``posterior='mean_field'``,
  :func:`mean_field_gap`).

The EM algorithm that fits them (on the p x p sample covariance) is
:mod:`scratchdgm.models.linear.em`.

With :math:`M = I_d + W^\top \Psi^{-1} W = L L^\top` (Cholesky; :math:`M \succeq I_d`, so it
always exists):

.. math::

    C^{-1} = \Psi^{-1} - \Psi^{-1} W M^{-1} W^\top \Psi^{-1}, \qquad
    \log |C| = \log |M| + \sum_{j=1}^p \log \psi_j,

    p(z \mid x) = \mathcal N\big(z \mid M^{-1} W^\top \Psi^{-1} (x - \mu),\; M^{-1}\big).

The posterior covariance :math:`M^{-1}` is the same for every data point.

References
----------
Rubin, D. B. and Thayer, D. T. (1982). EM algorithms for ML factor analysis. Psychometrika 47(1).
Ghahramani, Z. and Hinton, G. E. (1996). The EM algorithm for mixtures of factor analyzers.
Technical report CRG-TR-96-1, University of Toronto (E-step: E[z|x], E[zz^T|x]; M-step: the
updates of Lambda and Psi).
Tipping, M. E. and Bishop, C. M. (1999). Probabilistic principal component analysis. JRSS B 61(3).
"""

import warnings

import numpy as np
from sklearn.base import (
    BaseEstimator,
    ClassNamePrefixFeaturesOutMixin,
    TransformerMixin,
)
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.validation import check_is_fitted, validate_data

from scratchdgm.models.linear import em as _em
from scratchdgm.models.linear._linalg import chol_solve as _chol_solve
from scratchdgm.models.linear._linalg import cholesky_geq_identity as _cholesky_geq_identity
from scratchdgm.models.linear._linalg import tri_solve as _tri_solve
from scratchdgm.validation import check_int, check_random_state

__all__ = [
    "em_step",
    "gaussian_loglike_from_cov",
    "log_density",
    "mean_field_gap",
    "posterior_params",
]

_LOG_2PI = float(np.log(2.0 * np.pi))
_FLOAT_DTYPES = (np.float64, np.float32)


# ---------------------------------------------------------------------------------------------
# input validation shared by both estimators


def _check_n_components(n_components, n_features, *, strict, owner):
    r"""Return ``n_components`` as an int after checking ``1 <= d <= p`` (``< p`` if strict).

    The message names ``n_features=<p>`` so that scikit-learn's ``check_fit2d_1feature``
    recognises it as the deliberate refusal of a 1-column X.
    """
    d = check_int(n_components, "n_components", 1)
    upper = n_features - 1 if strict else n_features
    if d > upper:
        why = (" (PPCA estimates sigma^2 from the n_features - n_components discarded "
               "directions, so at least one must remain)" if strict else "")
        raise ValueError(
            f"{owner}: n_components={d} is too large for X with n_features={n_features}; "
            f"expected 1 <= n_components <= {upper}{why}")
    return d


def _validate_fit_data(estimator, X):
    """Validate training data: 2-D, finite, real, at least 2 samples. Sets ``n_features_in_``."""
    return validate_data(estimator, X, dtype=list(_FLOAT_DTYPES), ensure_min_samples=2,
                         ensure_min_features=1)


def _mean_and_covariance(X):
    r"""Mean and maximum-likelihood (1/n) covariance of the rows of X, both float64.

    Returns
    -------
    mean : ndarray, shape (n_features,)
    S : ndarray, shape (n_features, n_features)
        :math:`S = \frac1n \sum_i (x_i - \bar x)(x_i - \bar x)^\top`.
    """
    X = np.asarray(X, dtype=np.float64)
    n = X.shape[0]
    mean = X.mean(axis=0)
    # One pass over the data for the Gram matrix, then the rank-one mean correction: this is
    # what makes a fit cost one O(n p^2) product. It loses relative precision in a column whose
    # mean is large against its spread (error ~ eps * mean^2 / var), so such data are centred
    # explicitly first (an extra copy of X, but exact).
    with np.errstate(over="ignore", invalid="ignore"):  # overflow is reported below, clearly
        S = X.T @ X
        S /= n
        S -= np.outer(mean, mean)
        var = np.diag(S)
        if np.any(mean**2 > 1e4 * np.maximum(var, 0.0)):
            Xc = X - mean
            S = Xc.T @ Xc
            S /= n
        S = 0.5 * (S + S.T)
    if not np.all(np.isfinite(S)):
        raise ValueError("the sample covariance of X overflows float64; rescale X (e.g. divide "
                         "by its largest absolute value) before fitting")
    return mean, S


# ---------------------------------------------------------------------------------------------
# linear algebra of C = W W^T + Psi


def _cholesky_M(W, psi):
    r"""Return ``(Wp, M, L)``: ``Wp = Psi^{-1} W``, ``M = I + W^T Psi^{-1} W = L L^T``."""
    Wp = W / psi[:, None]
    M = W.T @ Wp
    M = 0.5 * (M + M.T)
    M[np.diag_indices_from(M)] += 1.0
    return Wp, M, _cholesky_geq_identity(M)


def posterior_params(W, psi):
    r"""Posterior of the latent code: :math:`p(z \mid x) = \mathcal N(B^\top (x - \mu), \Sigma_z)`.

    Parameters
    ----------
    W : ndarray, shape (p, d)
        Loadings (``components_.T``).
    psi : ndarray, shape (p,)
        Noise variances (the diagonal of :math:`\Psi`).

    Returns
    -------
    B : ndarray, shape (p, d)
        :math:`B = \Psi^{-1} W M^{-1}`, so that the posterior means of a batch are ``Xc @ B``.
    cov : ndarray, shape (d, d)
        :math:`\Sigma_z = M^{-1}`, shared by every data point.

    Notes
    -----
    .. math::

        M = I_d + W^\top \Psi^{-1} W, \qquad
        \mathbb E[z \mid x] = M^{-1} W^\top \Psi^{-1} (x - \mu), \qquad
        \mathrm{Cov}[z \mid x] = M^{-1}.

    This is Bayes' rule for the jointly Gaussian :math:`(z, x)`; it equals the textbook
    :math:`W^\top C^{-1} (x - \mu)` and :math:`I - W^\top C^{-1} W` by the Woodbury identity, but
    only needs d x d solves. The E-step of Ghahramani & Hinton (1996) writes the same mean as
    :math:`\beta (x - \mu)`, :math:`\beta = W^\top (\Psi + W W^\top)^{-1} = B^\top`.
    """
    Wp, _, L = _cholesky_M(W, psi)
    d = W.shape[1]
    cov = _chol_solve(L, np.eye(d))
    cov = 0.5 * (cov + cov.T)
    return Wp @ cov, cov


def _log_density(Xc, W, psi):
    r"""Exact :math:`\log \mathcal N(x \mid \mu, W W^\top + \Psi)` of the centred rows ``Xc``
    (float64)."""
    Wp, _, L = _cholesky_M(W, psi)
    p = W.shape[0]
    logdet = 2.0 * np.sum(np.log(np.diag(L))) + np.sum(np.log(psi))
    # x^T C^{-1} x = x^T Psi^{-1} x - |L^{-1} W^T Psi^{-1} x|^2  (Woodbury)
    quad = np.einsum("ij,ij->i", Xc, Xc / psi)
    U = _tri_solve(L, (Xc @ Wp).T)
    quad -= np.einsum("ij,ij->j", U, U)
    # the quadratic form is >= 0; clip the round-off of the subtraction above
    np.maximum(quad, 0.0, out=quad)
    return -0.5 * (p * _LOG_2PI + logdet + quad)


def log_density(X, W, psi, mean):
    r"""Exact :math:`\log \mathcal N(x_i \mid \mu, W W^\top + \Psi)` of each row of ``X``: the
    marginal log-likelihood of any linear-Gaussian model, however it was fitted.

    Parameters
    ----------
    X : ndarray, shape (n, p)
    W : ndarray, shape (p, d)
    psi : ndarray, shape (p,) or scalar
        Noise variances (a scalar :math:`\sigma^2` for PPCA).
    mean : ndarray, shape (p,)

    Returns
    -------
    ndarray, shape (n,), float64

    Notes
    -----
    The Woodbury form of :meth:`_LinearGaussianModel.score_samples` (see its Notes), for
    parameters that did not come from an estimator of this package, e.g. the affine decoder of
    a VAE trained by its ELBO.
    """
    X = np.asarray(X, dtype=np.float64)
    W = np.asarray(W, dtype=np.float64)
    psi = np.broadcast_to(np.asarray(psi, dtype=np.float64), (W.shape[0],)).copy()
    return _log_density(X - np.asarray(mean, dtype=np.float64), W, psi)


def mean_field_gap(W, psi):
    r"""The gap :math:`\log p(x) - \mathrm{ELBO}(q^\star)` left by the best factorised Gaussian
    :math:`q^\star(z) = \prod_j \mathcal N(z_j \mid m_j, s_j^2)`; the same for every x.

    Parameters
    ----------
    W : ndarray, shape (p, d)
    psi : ndarray, shape (p,)

    Returns
    -------
    float
        :math:`\mathrm{KL}(q^\star \,\|\, p(z \mid x)) = \tfrac12 \big(\sum_j \log M_{jj}
        - \log |M|\big) \ge 0`, :math:`M = I_d + W^\top \Psi^{-1} W`.

    Notes
    -----
    The posterior is :math:`\mathcal N(m, M^{-1})`, of precision M. Among factorised Gaussians
    the KL to it is smallest at the exact mean :math:`m` and the variances :math:`s_j^2 =
    1 / M_{jj}` (Bishop 2006, *Pattern recognition and machine learning*, §10.1.2,
    eqs. 10.12-10.13), where it equals the expression above. By Hadamard's inequality it is 0
    exactly when M is diagonal, i.e. when the columns of :math:`\Psi^{-1/2} W` are orthogonal,
    as they are in the PPCA solution with :math:`R = I` (Tipping & Bishop 1999, eq. 7). The
    ELBO of that q is :math:`\log p(x)` minus this gap ([Isachenko-L4, "Variational
    decomposition"]).
    """
    _, M, L = _cholesky_M(np.asarray(W, np.float64), np.asarray(psi, np.float64))
    return float(0.5 * np.sum(np.log(np.diag(M))) - np.sum(np.log(np.diag(L))))


def gaussian_loglike_from_cov(S, W, psi):
    r"""Mean log-likelihood per sample of data with 1/n covariance ``S`` (mean at the MLE).

    Parameters
    ----------
    S : ndarray, shape (p, p)
        The maximum-likelihood sample covariance
        :math:`\frac1n \sum_i (x_i - \bar x)(x_i - \bar x)^\top`.
    W : ndarray, shape (p, d)
    psi : ndarray, shape (p,)

    Returns
    -------
    float
        :math:`\frac1n \ell = -\frac12 \big(p \log 2\pi + \log|C| + \mathrm{tr}(C^{-1} S)\big)`,
        :math:`C = W W^\top + \Psi` (Tipping & Bishop 1999; the same expression for FA), as
        computed by the E-step (:func:`scratchdgm.models.linear.em.loglike`).
    """
    return _em.loglike(S, W, psi)


def em_step(S, W, psi, *, isotropic=False, min_noise_variance=1e-12, posterior="exact"):
    r"""One EM iteration from the covariance: :func:`scratchdgm.models.linear.em.m_step` after
    :func:`scratchdgm.models.linear.em.e_step` (read their Notes for the maths).

    Parameters
    ----------
    S : ndarray, shape (p, p)
        Maximum-likelihood (1/n) sample covariance of the data.
    W : ndarray, shape (p, d)
    psi : ndarray, shape (p,)
    isotropic : bool
        PPCA's :math:`\Psi = \sigma^2 I`.
    min_noise_variance : float
    posterior : {'exact', 'mean_field'}
        The E-step's :math:`q(z \mid x)`: the exact posterior (EM), or the best factorised
        Gaussian (*variational* EM, see the Notes of :func:`~scratchdgm.models.linear.em.e_step`).

    Returns
    -------
    W_new : ndarray, shape (p, d)
    psi_new : ndarray, shape (p,)
    """
    if posterior not in ("exact", "mean_field"):
        raise ValueError(f"em_step: posterior must be 'exact' or 'mean_field', got "
                         f"{posterior!r}")
    S = np.asarray(S, dtype=np.float64)
    moments = _em.e_step(S, np.asarray(W, np.float64), np.asarray(psi, np.float64),
                         posterior=posterior)
    return _em.m_step(S, moments, isotropic=isotropic, min_noise_variance=min_noise_variance)


def _warn_not_converged(owner, max_iter):
    warnings.warn(f"{owner}: EM did not converge in max_iter={max_iter} iterations; increase "
                  f"max_iter or tol", ConvergenceWarning, stacklevel=3)


def _canonical_sign(W):
    """Flip each column of W so that its largest-magnitude entry is positive (deterministic)."""
    idx = np.argmax(np.abs(W), axis=0)
    signs = np.sign(W[idx, np.arange(W.shape[1])])
    signs[signs == 0] = 1.0
    return W * signs


# ---------------------------------------------------------------------------------------------
# the estimator base class


class _LinearGaussianModel(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    r"""Methods shared by :class:`FactorAnalysis` and :class:`PPCA` once they are fitted.

    A subclass's ``fit`` sets ``components_`` (d, p) = :math:`W^\top`, ``mean_`` (p,) and its
    noise attribute, and implements :meth:`_noise_vector` returning :math:`\psi` of shape (p,).
    """

    def _noise_vector(self):  # pragma: no cover - abstract
        raise NotImplementedError

    # -- helpers --------------------------------------------------------------------------------
    def _check_X(self, X):
        check_is_fitted(self)
        return validate_data(self, X, reset=False, dtype=list(_FLOAT_DTYPES))

    def _params(self):
        check_is_fitted(self)
        W = np.asarray(self.components_, dtype=np.float64).T
        return W, self._noise_vector(), np.asarray(self.mean_, dtype=np.float64)

    @property
    def _n_features_out(self):
        return self.components_.shape[0]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags

    # -- public API -----------------------------------------------------------------------------
    def posterior(self, X):
        r"""Posterior :math:`p(z \mid x)` of the latent code of each row of X.

        Parameters
        ----------
        X : array-like, shape (n_samples, n_features)

        Returns
        -------
        mean : ndarray, shape (n_samples, n_components)
            :math:`\mathbb E[z \mid x_i] = M^{-1} W^\top \Psi^{-1} (x_i - \mu)`.
        cov : ndarray, shape (n_components, n_components)
            :math:`\mathrm{Cov}[z \mid x] = M^{-1}`, :math:`M = I + W^\top \Psi^{-1} W`; the same
            for every row (it does not depend on x).

        Both in X's floating dtype (computed in float64).
        """
        X = self._check_X(X)
        W, psi, mean = self._params()
        B, cov = posterior_params(W, psi)
        Z = (np.asarray(X, np.float64) - mean) @ B
        return Z.astype(X.dtype, copy=False), cov.astype(X.dtype, copy=False)

    def transform(self, X):
        r"""Posterior mean :math:`\mathbb E[z \mid x] = M^{-1} W^\top \Psi^{-1} (x - \mu)`.

        This is *not* scikit-learn's ``PCA.transform``, which is the orthogonal projection
        :math:`U_d^\top (x - \mu)` onto the principal axes. The posterior mean shrinks the code
        towards the prior mean 0 (for PPCA by the factors
        :math:`\sqrt{\lambda_j - \sigma^2} / \lambda_j`) and, for FA, weighs each feature by its
        noise precision :math:`1/\psi_j`.

        Parameters
        ----------
        X : array-like, shape (n_samples, n_features)

        Returns
        -------
        Z : ndarray, shape (n_samples, n_components), X's floating dtype
        """
        return self.posterior(X)[0]

    def score_samples(self, X):
        r"""Exact log-density :math:`\log p(x_i) = \log \mathcal N(x_i \mid \mu, W W^\top + \Psi)`.

        Parameters
        ----------
        X : array-like, shape (n_samples, n_features)

        Returns
        -------
        log_density : ndarray, shape (n_samples,), X's floating dtype

        Notes
        -----
        With :math:`M = I + W^\top \Psi^{-1} W = L L^\top` and :math:`r = x - \mu`,

        .. math::

            \log p(x) = -\frac12 \Big(p \log 2\pi + 2 \sum_k \log L_{kk} + \sum_j \log \psi_j
            + \sum_j \frac{r_j^2}{\psi_j} - \big\| L^{-1} W^\top \Psi^{-1} r \big\|^2\Big)

        (Woodbury identity for :math:`C^{-1}`, matrix determinant lemma for :math:`|C|`): O(p d^2)
        once for :math:`L`, then O(p d) per point; :math:`C` is never formed or inverted.
        """
        X = self._check_X(X)
        W, psi, mean = self._params()
        out = _log_density(np.asarray(X, np.float64) - mean, W, psi)
        return out.astype(X.dtype, copy=False)

    def score(self, X, y=None):
        r"""Mean log-density per sample, :math:`\frac1n \sum_i \log p(x_i)` (float).

        Parameters
        ----------
        X : array-like, shape (n_samples, n_features)
        y : ignored
        """
        return float(np.mean(self.score_samples(X), dtype=np.float64))

    def sample(self, n_samples=1, random_state=None, *, return_latent=False):
        r"""Draw from the model by ancestral sampling: :math:`z \sim \mathcal N(0, I_d)`, then
        :math:`x = W z + \mu + \Psi^{1/2} \varepsilon`, :math:`\varepsilon \sim \mathcal N(0, I_p)`.

        Parameters
        ----------
        n_samples : int, >= 1
        random_state : None, int or numpy.random.Generator
        return_latent : bool
            Also return the latent codes z.

        Returns
        -------
        X : ndarray, shape (n_samples, n_features), float64
        Z : ndarray, shape (n_samples, n_components), only if ``return_latent``
        """
        W, psi, mean = self._params()
        n = check_int(n_samples, "n_samples", 1)
        rng = check_random_state(random_state)
        Z = rng.standard_normal((n, W.shape[1]))
        X = Z @ W.T + mean + rng.standard_normal((n, W.shape[0])) * np.sqrt(psi)
        return (X, Z) if return_latent else X

    def get_covariance(self):
        r"""Model covariance :math:`C = W W^\top + \Psi`, shape (n_features, n_features)."""
        W, psi, _ = self._params()
        C = W @ W.T
        C[np.diag_indices_from(C)] += psi
        return C

    def get_precision(self):
        r"""Model precision :math:`C^{-1} = \Psi^{-1} - \Psi^{-1} W M^{-1} W^\top \Psi^{-1}`
        (Woodbury: O(p^2 d), no p x p inverse), shape (n_features, n_features)."""
        W, psi, _ = self._params()
        B, _ = posterior_params(W, psi)          # B = Psi^{-1} W M^{-1}
        P = -(B @ (W / psi[:, None]).T)
        P = 0.5 * (P + P.T)
        P[np.diag_indices_from(P)] += 1.0 / psi
        return P
