r"""A mixture of diagonal Gaussians: the learnable prior of a DLVM."""

import numpy as np

from scratchdgm.autodiff import fused as _fused
from scratchdgm.distributions.base import Distribution, _params, _result_dtype
from scratchdgm.distributions.categorical import Categorical

__all__ = ["GaussianMixture"]


class GaussianMixture(Distribution):
    r"""Mixture of :math:`M` diagonal Gaussians in :math:`d` dimensions: a learnable prior.

    Parameters
    ----------
    logits : Tensor or array_like, shape (M,)
        Unnormalised log mixture weights, :math:`\pi = \operatorname{softmax}(\text{logits})`.
    mu : Tensor or array_like, shape (M, d)
        Component means.
    log_sigma : Tensor or array_like, broadcastable to (M, d)
        Log standard deviations of the components.

    Notes
    -----
    .. math::

        \log p(z) = \log \sum_{m=1}^M \pi_m\, \mathcal N(z \mid \mu_m,
        \operatorname{Diag}(\sigma_m^2))
        = \operatorname{logsumexp}_m \big[\log\pi_m + \log \mathcal N(z \mid \mu_m,
        \operatorname{Diag}(\sigma_m^2))\big].

    Pass parameters as tensors with ``requires_grad=True`` to learn them with the rest of the
    model. ``sample`` is ancestral: :math:`m \sim \mathrm{Cat}(\pi)`, then
    :math:`z \sim \mathcal N(\mu_m, \operatorname{Diag}(\sigma_m^2))` (not reparametrisable in
    :math:`\pi`, which a prior does not need). The KL from a Gaussian encoder to this prior has
    no closed form; estimate it by Monte Carlo with ``log_prob``.

    References
    ----------
    [Mattei-S2D, "The role of the prior"]
    (:math:`p(z) = \sum_k \pi_k \mathcal N(z \mid \mu_k, \Sigma_k)`, parameters learned);
    [Mattei-DGM, "More on this KL regulariser"] ("use a GMM prior"), both in
    ``docs/lectures.md``;
    Dilokthanakul et al. (2016), "Deep unsupervised clustering with Gaussian mixture VAEs".
    """

    def __init__(self, logits, mu, log_sigma, *, backend=None):
        cls = "GaussianMixture"
        self.backend = backend
        self.logits, self.mu, self.log_sigma = _params(cls, logits=logits, mu=mu,
                                                       log_sigma=log_sigma)
        if self.logits.ndim != 1 or self.logits.shape[0] < 1:
            raise ValueError(f"{cls}: logits must have shape (M,) with M >= 1 components, got "
                             f"{self.logits.shape}")
        m = self.logits.shape[0]
        if self.mu.ndim != 2 or self.mu.shape[0] != m:
            raise ValueError(f"{cls}: mu must have shape (M, d) = ({m}, d) to match logits of "
                             f"shape ({m},), got {self.mu.shape}")
        try:
            np.broadcast_to(self.log_sigma.data, self.mu.shape)
        except ValueError:
            raise ValueError(f"{cls}: log_sigma of shape {self.log_sigma.shape} does not "
                             f"broadcast to the shape of mu {self.mu.shape}") from None
        self.n_components = m
        self.batch_shape, self.event_shape = (), (self.mu.shape[1],)
        self.dtype = _result_dtype(self.logits, self.mu, self.log_sigma)

    @property
    def weights(self):
        r"""Mixture weights :math:`\pi = \operatorname{softmax}(\text{logits})` (Tensor, (M,))."""
        return self.logits.softmax(axis=-1)

    def component_log_prob(self, z):
        r""":math:`\log \mathcal N(z \mid \mu_m, \operatorname{Diag}(\sigma_m^2))` for every
        component: ``z`` (..., d) gives shape (..., M) (the diagonal-Gaussian density of
        :class:`~scratchdgm.distributions.DiagNormal`, broadcast over the components)."""
        z = self._value(z, "z")
        zc = z.reshape(*z.shape[:-1], 1, self.d)  # (..., 1, d) against (M, d)
        return _fused.diag_gaussian_log_prob(zc, self.mu, self.log_sigma, backend=self.backend)

    def log_prob(self, z):
        r"""Log-density of ``z`` (..., d); returns shape (...)."""
        return (self.component_log_prob(z) + self.logits.log_softmax(axis=-1)).logsumexp(axis=-1)

    def sample(self, sample_shape=(), random_state=None):
        r"""Ancestral sample, ndarray of shape ``sample_shape + (d,)``."""
        shape, rng = self._draw_setup(sample_shape, random_state, "sample")
        k = Categorical(self.logits.data).sample(shape, rng)
        sigma = np.broadcast_to(np.exp(self.log_sigma.data), self.mu.shape)
        eps = rng.standard_normal(shape + (self.d,))
        return (self.mu.data[k] + sigma[k] * eps).astype(self.dtype)


