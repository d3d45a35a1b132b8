r"""Priors :math:`p(z)` of deep latent variable models: the standard Gaussian, and a learnable
Gaussian mixture trained with the rest of the model.

A prior is a :class:`~scratchdgm.nn.Module` (it may own parameters) whose
:meth:`~StandardNormalPrior.distribution` is a distribution of :mod:`scratchdgm.distributions`:
``prior.distribution().log_prob(z)``, ``prior.distribution().sample((n,), random_state)``.

Lecture (keys in ``docs/lectures.md``): [Mattei-DGM, "Deep latent variable models: the role of
the prior"] (the isotropic Gaussian); [Mattei-S2D, "The role of the prior"] (learnable mixtures
of K Gaussians, :math:`p(z) = \sum_k \pi_k \mathcal N(z \mid \mu_k, \Sigma_k)`), and
[Mattei-DGM, "More on this KL regulariser"] (a GMM prior makes the code space more
discriminative).
"""

import numpy as np

from scratchdgm.distributions import GaussianMixture, StandardNormal, kl_divergence
from scratchdgm.nn import Module, Parameter
from scratchdgm.validation import check_float_dtype, check_positive_int, check_rng

__all__ = ["StandardNormalPrior", "GaussianMixturePrior", "make_prior"]


class StandardNormalPrior(Module):
    r"""The isotropic Gaussian prior :math:`p(z) = \mathcal N(z \mid 0_d, I_d)` (no parameters).

    Parameters
    ----------
    latent_dim : int
        :math:`d \ge 1`.
    dtype : {numpy.float64, numpy.float32}

    Notes
    -----
    .. math::

        \log p(z) = -\frac12 \lVert z \rVert^2 - \frac d2 \log 2\pi .

    Because both :math:`q_\gamma(z \mid x)` and this prior are Gaussian, the KL regulariser of
    the VAE bound has a closed form (:meth:`kl`).
    """

    has_analytic_kl = True
    kind = "normal"

    def __init__(self, latent_dim, dtype=np.float64, *, backend=None):
        super().__init__()
        self.latent_dim = check_positive_int(latent_dim, "latent_dim", "StandardNormalPrior")
        self.dtype = check_float_dtype(dtype, "StandardNormalPrior")
        self.backend = backend

    def distribution(self):
        """The prior as a :class:`~scratchdgm.distributions.StandardNormal`."""
        return StandardNormal(self.latent_dim, self.dtype, backend=self.backend)

    def log_prob(self, z):
        r""":math:`\log p(z)` for ``z`` of shape (..., d) (Tensor or ndarray); returns shape (...)."""
        return self.distribution().log_prob(z)

    def kl(self, q):
        r"""Closed-form :math:`\mathrm{KL}(q \,\|\, \mathcal N(0, I_d))` for a diagonal Gaussian
        ``q`` = :math:`\mathcal N(\mu, \mathrm{diag}\,\sigma^2)`:
        :math:`\tfrac12 \sum_j (\mu_j^2 + \sigma_j^2 - 1) - \log\sigma_j`, shape ``q.batch_shape``
        ([Mattei-DGM, "More on this KL regulariser"]); computed by
        :func:`scratchdgm.distributions.kl_divergence`."""
        return kl_divergence(q, self.distribution())

    def config(self):
        return {"kind": self.kind}

    def extra_repr(self):
        return f"latent_dim={self.latent_dim}"


class GaussianMixturePrior(Module):
    r"""A learnable mixture of C diagonal Gaussians, :math:`p_\psi(z) = \sum_c \pi_c
    \mathcal N(z \mid \mu_c, \mathrm{diag}\,\sigma_c^2)`, trained jointly with the decoder.

    Parameters
    ----------
    latent_dim : int
        :math:`d \ge 1`.
    n_components : int
        :math:`C \ge 1` mixture components.
    rng : numpy.random.Generator
        Initialises the component means (standard normal, so that the initial mixture covers
        the region a standard-normal prior would).
    dtype : {numpy.float64, numpy.float32}

    Attributes
    ----------
    logits : Parameter, shape (C,)
        Unnormalised log mixing weights, :math:`\pi = \mathrm{softmax}(\text{logits})`.
    means : Parameter, shape (C, d)
    log_sigma : Parameter, shape (C, d)
        Log standard deviations of the components (initialised at 0).

    Notes
    -----
    .. math::

        \log p_\psi(z) = \operatorname{logsumexp}_c \Big( \log \pi_c - \frac12 \sum_j
        \Big[ \Big(\frac{z_j - \mu_{cj}}{\sigma_{cj}}\Big)^2 + 2 \log \sigma_{cj} + \log 2\pi
        \Big] \Big).

    :math:`\mathrm{KL}(q \| p_\psi)` has no closed form, so a VAE with this prior uses the Monte
    Carlo form of the bound.

    References
    ----------
    [Mattei-S2D, "The role of the prior"]; Dilokthanakul et al. (2016),
    *Deep unsupervised clustering with Gaussian mixture VAEs*; Tomczak & Welling (2018), *VAE with
    a VampPrior*, eq. 8 (the mixture prior inside the bound).
    """

    has_analytic_kl = False
    kind = "gmm"

    def __init__(self, latent_dim, n_components=10, *, rng, dtype=np.float64, backend=None):
        super().__init__()
        where = "GaussianMixturePrior"
        self.latent_dim = check_positive_int(latent_dim, "latent_dim", where)
        self.n_components = check_positive_int(n_components, "n_components", where)
        check_rng(rng, where)
        self.dtype = check_float_dtype(dtype, where)
        self.backend = backend
        c, d = self.n_components, self.latent_dim
        self.logits = Parameter(np.zeros(c, dtype=self.dtype))
        self.means = Parameter(rng.standard_normal((c, d)).astype(self.dtype))
        self.log_sigma = Parameter(np.zeros((c, d), dtype=self.dtype))

    def distribution(self):
        """The prior as a :class:`~scratchdgm.distributions.GaussianMixture` over the current
        parameters (gradients flow back to them)."""
        return GaussianMixture(self.logits, self.means, self.log_sigma, backend=self.backend)

    def log_prob(self, z):
        r""":math:`\log p_\psi(z)` for ``z`` of shape (..., d) (Tensor or ndarray); returns shape (...)."""
        return self.distribution().log_prob(z)

    def config(self):
        return {"kind": self.kind, "n_components": self.n_components}

    def extra_repr(self):
        return f"latent_dim={self.latent_dim}, n_components={self.n_components}"


def make_prior(spec, latent_dim, *, rng, dtype=np.float64, backend=None):
    r"""Build a prior from ``'normal'``, ``'gmm'``, ``'gmm:C'`` or a config dict (see
    ``config()``)."""
    if isinstance(spec, Module):
        return spec
    if isinstance(spec, dict):
        kind = spec.get("kind")
        if kind == "normal":
            return StandardNormalPrior(latent_dim, dtype=dtype, backend=backend)
        if kind == "gmm":
            return GaussianMixturePrior(latent_dim, spec.get("n_components", 10), rng=rng,
                                        dtype=dtype, backend=backend)
        raise ValueError(f"unknown prior config {spec!r}; expected kind 'normal' or 'gmm'")
    if isinstance(spec, str):
        s = spec.lower()
        if s in ("normal", "gaussian", "standard_normal"):
            return StandardNormalPrior(latent_dim, dtype=dtype, backend=backend)
        if s == "gmm" or s.startswith("gmm:"):
            c = 10
            if ":" in s:
                try:
                    c = int(s.split(":", 1)[1])
                except ValueError:
                    raise ValueError(f"prior {spec!r}: expected 'gmm:C' with an int C") from None
            return GaussianMixturePrior(latent_dim, c, rng=rng, dtype=dtype, backend=backend)
    raise ValueError(f"unknown prior {spec!r}; expected 'normal', 'gmm' or 'gmm:C' "
                     f"(C mixture components)")
