r"""A linear-Gaussian latent-variable model read as a DLVM: factor analysis or PPCA with a
Gaussian proposal :math:`q(z \mid x)`, whose log-likelihood, posterior and ELBO are all exact.

A deep latent-variable model's :math:`\log p_\theta(x)` is only ever estimated, so a bound or an
evaluator checked on a VAE alone is checked against another estimate. The linear-Gaussian model
([Mattei-DGM, "Linear latent-variable models"] in ``docs/lectures.md``)

.. math::

    z \sim \mathcal N(0, I_d), \qquad x \mid z \sim \mathcal N(W z + \mu, \Psi),
    \qquad \Psi = \mathrm{diag}(\psi_1, \dots, \psi_p),

is a DLVM whose decoder is affine: everything the deep models estimate is known in closed form
here -- :math:`\log p(x)` (the Woodbury log-density of the fitted :class:`~scratchdgm.PPCA` or
:class:`~scratchdgm.FactorAnalysis`), the posterior :math:`p(z \mid x) = \mathcal N(M^{-1}
W^\top \Psi^{-1}(x - \mu), M^{-1})`, and the ELBO of any Gaussian :math:`q`. :class:`LinearGaussianLVM`
gives it the protocol of the deep models (``log_weights``, ``check_data``, ``transform``, the
KL terms), with a choice of proposal, so that :math:`\mathcal L_K`, the evaluator
(:func:`scratchdgm.evaluation.evaluate`) and the variational decomposition
([Isachenko-L4, "Variational decomposition"])

.. math::

    \log p(x) = \mathcal L_1(q; x) + \mathrm{KL}\big(q(z \mid x) \,\|\, p(z \mid x)\big)

can be checked against exact numbers.

This module reads a fitted linear model through its public attributes and methods
(``components_``, ``mean_``, ``noise_variance_``, ``posterior``, ``score_samples``); the maths
of those lives once, in :mod:`scratchdgm.models.linear.gaussian`.
"""

import numpy as np

from scratchdgm import autodiff as _ad
from scratchdgm.distributions import DiagNormal, FullNormal, StandardNormal, kl_divergence
from scratchdgm.validation import check_positive_float

__all__ = ["LinearGaussianLVM", "PROPOSALS"]

#: proposal name -> what q(z | x) is
PROPOSALS = {
    "posterior": "the exact posterior p(z | x) (the E-step of EM: the bound is tight)",
    "prior": "the prior N(0, I_d) whatever x (naive Monte Carlo)",
}


class LinearGaussianLVM:
    r"""Factor analysis or PPCA with a Gaussian proposal, exposing the deep models' protocol.

    Parameters
    ----------
    linear_model : fitted :class:`~scratchdgm.PPCA` or :class:`~scratchdgm.FactorAnalysis`
        Gives :math:`W` (``components_.T``), :math:`\mu` (``mean_``), :math:`\Psi`
        (``noise_variance_``: a scalar :math:`\sigma^2` or one variance per feature), the exact
        posterior (``posterior``) and the exact log-density (``score_samples``).
    proposal : {'posterior', 'prior'}
        The Gaussian :math:`q(z \mid x) = \mathcal N(m(x), S)` (see :data:`PROPOSALS`).
    scale : float, default 1
        Multiplies the standard deviations of ``q`` (:math:`S \to \text{scale}^2 S`):
        above 1 an over-dispersed proposal with heavier tails than the target, below 1 a lighter
        tailed one (for the exact posterior the weights have infinite variance once
        :math:`\text{scale}^2 \le 1/2`).
    backend : {None, 'numpy', 'numba', 'cuda', 'auto'}
        Kernel backend of the Gaussian log-densities (None: the process default).

    Attributes
    ----------
    W : ndarray, shape (p, d)
    mu : ndarray, shape (p,)
    psi : ndarray, shape (p,)
    input_dim, latent_dim : int
        p and d.

    Notes
    -----
    For :math:`q = \mathcal N(m, S)` the ELBO is exact (:meth:`elbo`):

    .. math::

        \mathcal L_1(q; x) = \log \mathcal N(x \mid W m + \mu, \Psi)
        - \tfrac12 \operatorname{tr}(W^\top \Psi^{-1} W S)
        + \log \mathcal N(m \mid 0, I_d) - \tfrac12 \operatorname{tr} S + \mathcal H[q],

    the expected log-densities of two Gaussians under a Gaussian (the log-density at the mean
    minus half a trace) plus the entropy :math:`\mathcal H[q] = \tfrac d2 (1 + \log 2\pi) +
    \tfrac12 \log\det S`.

    References
    ----------
    Tipping & Bishop (1999), *Probabilistic principal component analysis*, JRSS B 61(3) (the
    model and its posterior); Neal & Hinton (1998), *A view of the EM algorithm that justifies
    incremental, sparse, and other variants*, Lemmas 1 and 2 (EM as coordinate ascent on the
    ELBO: the E-step sets q to the posterior, where the bound equals the log-likelihood). Lecture [Isachenko-L4,
    "Variational decomposition"], [Isachenko-L4, "ELBO derivation 2 (equality)"].

    Examples
    --------
    >>> import numpy as np, scratchdgm as sd
    >>> from scratchdgm.models.deep import LinearGaussianLVM
    >>> X = np.random.default_rng(0).standard_normal((100, 5))
    >>> model = LinearGaussianLVM(sd.PPCA(2).fit(X), proposal="posterior")
    >>> bool(np.allclose(model.elbo(X), model.exact_log_likelihood(X)))
    True
    """

    def __init__(self, linear_model, proposal="posterior", scale=1.0, *, backend=None):
        for name in ("components_", "mean_", "noise_variance_"):
            if not hasattr(linear_model, name):
                raise TypeError(f"LinearGaussianLVM: expected a fitted PPCA or FactorAnalysis "
                                f"(with {name}), got {type(linear_model).__name__}")
        if proposal not in PROPOSALS:
            raise ValueError(f"LinearGaussianLVM: proposal must be one of "
                             f"{', '.join(PROPOSALS)}, got {proposal!r}")
        self.linear_model = linear_model
        self.proposal = proposal
        self.scale = check_positive_float(scale, "scale", "LinearGaussianLVM")
        self.backend = backend
        self.W = np.asarray(linear_model.components_, dtype=np.float64).T
        self.mu = np.asarray(linear_model.mean_, dtype=np.float64)
        self.input_dim, self.latent_dim = self.W.shape
        self.psi = np.broadcast_to(np.asarray(linear_model.noise_variance_, dtype=np.float64),
                                   (self.input_dim,)).copy()
        _, cov = linear_model.posterior(self.mu[None, :])
        self._posterior_tril = np.linalg.cholesky(np.asarray(cov, dtype=np.float64))
        tril = self._posterior_tril if proposal == "posterior" else np.eye(self.latent_dim)
        self._q_tril = self.scale * tril

    def __repr__(self):
        return (f"LinearGaussianLVM({type(self.linear_model).__name__}, p={self.input_dim}, "
                f"d={self.latent_dim}, proposal={self.proposal!r}, scale={self.scale:g})")

    # -- the model and its proposal ----------------------------------------------------------

    def check_data(self, X, where="X"):
        r"""``X`` as a float64 array of shape (n, p); ValueError if it is not 2-D with p finite
        columns."""
        arr = np.asarray(X.data if isinstance(X, _ad.Tensor) else X, dtype=np.float64)
        if arr.ndim != 2 or arr.shape[1] != self.input_dim or arr.shape[0] == 0:
            raise ValueError(f"{where} has shape {arr.shape}; expected (n_samples, "
                             f"{self.input_dim}) with n_samples >= 1, the p of the linear model")
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{where} contains NaN or inf; expected finite values")
        return arr

    def exact_posterior(self, X):
        r"""The posterior :math:`p(z \mid x_i)` as a :class:`~scratchdgm.distributions.FullNormal`
        of batch shape (n,)."""
        X = self.check_data(X)
        mean, _ = self.linear_model.posterior(X)
        return FullNormal(np.asarray(mean, dtype=np.float64), self._posterior_tril)

    def encode(self, X):
        r"""The proposal :math:`q(z \mid x_i)` as a :class:`~scratchdgm.distributions.FullNormal`
        of batch shape (n,)."""
        X = self.check_data(X)
        if self.proposal == "prior":
            mean = np.zeros((len(X), self.latent_dim))
        else:
            mean = np.asarray(self.linear_model.posterior(X)[0], dtype=np.float64)
        return FullNormal(mean, self._q_tril)

    def log_joint(self, x, z):
        r""":math:`\log p(x, z) = \log \mathcal N(x \mid W z + \mu, \Psi) + \log \mathcal N(z
        \mid 0, I_d)` for ``x`` (B, p) and ``z`` (..., B, d); returns shape (..., B)."""
        z = z if isinstance(z, _ad.Tensor) else _ad.tensor(np.asarray(z, dtype=np.float64))
        likelihood = DiagNormal(z @ self.W.T + self.mu, 0.5 * np.log(self.psi),
                                backend=self.backend)
        prior = StandardNormal(self.latent_dim, backend=self.backend)
        return likelihood.log_prob(x) + prior.log_prob(z)

    def log_weights(self, x, k, rng):
        r"""Log importance weights :math:`\log p(x_i, z_{ik}) - \log q(z_{ik} \mid x_i)`,
        :math:`z_{ik} \sim q(z \mid x_i)`: a Tensor of shape (k, B) (the protocol of
        :mod:`scratchdgm.evaluation`)."""
        x = self.check_data(x)
        q = self.encode(x)
        z = q.sample((k,), rng)                                     # (k, B, d)
        return self.log_joint(x, z) - q.log_prob(z)

    def transform(self, X):
        r"""The mean of :math:`q(z \mid x)`, shape (n, d) (the posterior mean
        :math:`\mathbb E[z \mid x]` for the 'posterior' proposal, whatever its scale)."""
        return np.array(self.encode(X).mu.data)

    def posterior_means(self, X):
        r"""``{"z": transform(X)}``: one latent layer."""
        return {"z": self.transform(X)}

    # -- exact quantities --------------------------------------------------------------------

    def exact_log_likelihood(self, X):
        r"""Exact :math:`\log p(x_i) = \log \mathcal N(x_i \mid \mu, W W^\top + \Psi)`, shape
        (n,) (the linear model's ``score_samples``)."""
        return np.asarray(self.linear_model.score_samples(self.check_data(X)), dtype=np.float64)

    def elbo(self, X):
        r"""Exact :math:`\mathcal L_1(q; x_i)`, shape (n,) (formula in the class Notes)."""
        X = self.check_data(X)
        q = self.encode(X)
        m, L = q.mu.data, self._q_tril
        with _ad.no_grad():
            log_px_at_mean = DiagNormal(m @ self.W.T + self.mu, 0.5 * np.log(self.psi),
                                        backend=self.backend).log_prob(X)
            log_pz_at_mean = StandardNormal(self.latent_dim, backend=self.backend).log_prob(m)
            entropy = q.entropy()
        WL = self.W @ L                                       # tr(W^T Psi^-1 W S), S = L L^T
        trace_likelihood = np.sum(WL * WL / self.psi[:, None])
        trace_prior = np.sum(L * L)                           # tr S
        return (log_px_at_mean.data - 0.5 * trace_likelihood + log_pz_at_mean.data
                - 0.5 * trace_prior + entropy.data)

    def kl_to_posterior(self, X):
        r""":math:`\mathrm{KL}(q(z \mid x_i) \,\|\, p(z \mid x_i))`, shape (n,), in closed form
        (:func:`scratchdgm.distributions.kl_divergence`)."""
        with _ad.no_grad():
            return np.array(kl_divergence(self.encode(X), self.exact_posterior(X)).data)

    # -- the KL terms of the evaluator's protocol --------------------------------------------

    def kl_per_dimension(self, X, random_state=None):
        r"""``{"z": ndarray (d,)}``: the mean over the data of
        :math:`\mathrm{KL}(q(z_j \mid x) \,\|\, \mathcal N(0, 1))`, the KL of each marginal of
        :math:`q` to the prior's. When :math:`S` is not diagonal these do not add up to the
        total KL (:meth:`kl_total`): the correlations of q carry the rest. ``random_state`` is unused (closed form)."""
        q = self.encode(X)
        sd = np.sqrt(np.sum(self._q_tril**2, axis=1))         # marginal standard deviations
        m = q.mu.data
        with _ad.no_grad():
            marginals = DiagNormal(m[..., None], np.log(sd)[:, None])  # batch (n, d), event 1
            per = kl_divergence(marginals, StandardNormal(1))          # (n, d)
        return {"z": np.asarray(per.data).mean(axis=0)}

    def kl_total(self, X, random_state=None):
        r"""``{"z": float}``: the mean over the data of :math:`\mathrm{KL}(q(z \mid x) \,\|\,
        \mathcal N(0, I_d))`, in closed form."""
        with _ad.no_grad():
            kl = kl_divergence(self.encode(X), StandardNormal(self.latent_dim))
        return {"z": float(np.mean(kl.data))}
