r"""Gaussian distributions: diagonal (:class:`DiagNormal`, parametrised by the log standard
deviation), the standard normal prior (:class:`StandardNormal`) and full covariance
(:class:`FullNormal`, parametrised by its Cholesky factor).

The parametrisation is in the names: ``log_sigma`` is :math:`\log \sigma`, the log *standard
deviation* (not the log variance); ``rsample``, ``log_prob`` and
:func:`~scratchdgm.distributions.kl_divergence` all read it the same way, which the tests check
(empirical moments of samples, Monte Carlo KL against the closed form) -- the classic VAE bug is
a sampler that reads a variance where the KL reads a log-variance.

Lecture ([Mattei-DGM] in ``docs/lectures.md``): "Reparametrisation trick for
$\nabla_{\gamma}$" and "More on this KL regulariser" (full-covariance Gaussians).
"""

import math

import numpy as np

from scratchdgm import autodiff as _ad
from scratchdgm.autodiff import fused as _fused
from scratchdgm.autodiff.linalg import solve_triangular
from scratchdgm.distributions.base import (
    Distribution,
    _bcast_to,
    _broadcast,
    _params,
    _result_dtype,
)
from scratchdgm.validation import check_float_dtype, check_positive_int

__all__ = ["DiagNormal", "StandardNormal", "FullNormal"]

_LOG_2PI = math.log(2.0 * math.pi)


class DiagNormal(Distribution):
    r"""Gaussian with diagonal covariance, parametrised by the log standard deviation.

    Parameters
    ----------
    mu : Tensor or array_like, shape (..., d)
        Mean :math:`\mu`.
    log_sigma : Tensor or array_like, broadcastable with ``mu``
        :math:`\log \sigma`, the log of the *standard deviation* (a scalar gives a fixed shared
        :math:`\sigma`, shape ``(d,)`` a learned one per coordinate, ``(..., d)`` a
        decoder-output diagonal).

    Notes
    -----
    .. math::

        \log \mathcal N(x \mid \mu, \operatorname{Diag}(\sigma^2))
        = \sum_{j=1}^d \Big[-\tfrac12 \Big(\frac{x_j - \mu_j}{\sigma_j}\Big)^2
        - \log \sigma_j - \tfrac12 \log 2\pi\Big].

    ``rsample`` is the reparametrisation :math:`z = \mu + \sigma \odot \epsilon`,
    :math:`\epsilon \sim \mathcal N(0, I_d)` ([Mattei-DGM, "Reparametrisation trick for
    $\nabla_{\gamma}$"]), so gradients reach :math:`\mu` and :math:`\log\sigma`.

    References
    ----------
    Kingma & Welling (2014), "Auto-encoding variational Bayes", ICLR, §2.4 (eq. 10) and
    Appendix C.2 (Gaussian encoder and decoder).

    Examples
    --------
    >>> import numpy as np, scratchdgm as sd
    >>> from scratchdgm.distributions import DiagNormal
    >>> q = DiagNormal(sd.tensor([0.0, 1.0]), sd.tensor([0.0, 0.0]))
    >>> round(float(q.log_prob(np.array([0.0, 1.0])).item()), 4)
    -1.8379
    """

    def __init__(self, mu, log_sigma, *, backend=None):
        cls = type(self).__name__
        self.backend = backend
        self.mu, self.log_sigma = _params(cls, mu=mu, log_sigma=log_sigma)
        shape = _broadcast([self.mu.shape, self.log_sigma.shape], ["mu", "log_sigma"], cls)
        if len(shape) == 0:
            raise ValueError(f"{cls}: mu and log_sigma are scalars; expected at least one axis, "
                             f"the event axis of dimension d (use shape (1,) for d = 1)")
        self._shape = shape
        self.batch_shape, self.event_shape = shape[:-1], shape[-1:]
        self.dtype = _result_dtype(self.mu, self.log_sigma)

    @property
    def mean(self):
        r""":math:`\mu`, shape ``batch_shape + (d,)``."""
        return _bcast_to(self.mu, self._shape)

    @property
    def stddev(self):
        r""":math:`\sigma = e^{\log\sigma}`, shape ``batch_shape + (d,)``."""
        return _bcast_to(self.log_sigma.exp(), self._shape)

    @property
    def variance(self):
        r""":math:`\sigma^2`."""
        return _bcast_to((2.0 * self.log_sigma).exp(), self._shape)

    def log_prob(self, x):
        r"""Log-density summed over the last axis.

        Parameters
        ----------
        x : Tensor or array_like, shape (..., d)
            Broadcastable with ``batch_shape + (d,)``; e.g. ``(K, *batch, d)`` for K samples.

        Returns
        -------
        Tensor, shape: the broadcast shape without its last axis

        Notes
        -----
        .. math::

            \log \mathcal N(x \mid \mu, \operatorname{diag}\sigma^2)
            = \sum_j -\tfrac12 \Big(\frac{x_j - \mu_j}{\sigma_j}\Big)^2 - \log\sigma_j
              - \tfrac12 \log 2\pi,

        computed in one pass by the fused op
        :func:`scratchdgm.autodiff.fused.diag_gaussian_log_prob` on the current backend (its
        NumPy reference, :func:`scratchdgm.kernels.reference.diag_gaussian_log_prob`, is this
        formula line by line).
        """
        x = self._value(x)
        return _fused.diag_gaussian_log_prob(x, self.mu, self.log_sigma, backend=self.backend)

    def rsample(self, sample_shape=(), random_state=None):
        r"""Reparametrised sample :math:`\mu + e^{\log\sigma} \odot \epsilon` (differentiable).

        Parameters
        ----------
        sample_shape : int or tuple of int, default ()
        random_state : None, int or numpy.random.Generator
            Source of :math:`\epsilon \sim \mathcal N(0, I)`.

        Returns
        -------
        Tensor, shape ``sample_shape + batch_shape + (d,)``
        """
        # BEGIN EXERCISE 12: z = mu + sigma * eps with eps ~ N(0, I) from the given generator
        shape, rng = self._draw_setup(sample_shape, random_state, "rsample")
        eps = rng.standard_normal(shape + self._shape, dtype=self.dtype)
        return self.mu + self.log_sigma.exp() * eps
        # END EXERCISE 12

    def sample(self, sample_shape=(), random_state=None):
        r"""A sample as a plain ndarray (no graph), shape ``sample_shape + batch_shape + (d,)``."""
        with _ad.no_grad():
            return self.rsample(sample_shape, random_state).data

    def sample_box_muller(self, sample_shape=(), random_state=None):
        r"""A sample as a plain ndarray, :math:`\mu + \sigma \odot \epsilon` as :meth:`sample`,
        with :math:`\epsilon` drawn by the compiled Box--Muller sampler seeded from the
        generator (:func:`scratchdgm.autodiff.fused.box_muller_normal`) instead of its
        ``standard_normal``: the same distribution, other numbers, the draws in about a fifth of
        the time. The sampler of evaluations that draw thousands of samples per point
        (:meth:`scratchdgm.models.deep.VAE.log_weights` without a graph).

        Returns
        -------
        ndarray, shape ``sample_shape + batch_shape + (d,)``
        """
        shape, rng = self._draw_setup(sample_shape, random_state, "sample_box_muller")
        z = _fused.box_muller_normal(shape + self._shape, rng, self.dtype, backend=self.backend)
        z *= np.exp(self.log_sigma.data)  # in place: two passes over the draws, no temporaries
        z += self.mu.data
        return z

    def sample_box_muller_with_log_probs(self, sample_shape=(), random_state=None):
        r"""The sample of :meth:`sample_box_muller` (the same draws for the same generator
        state) with its log-density under this distribution and under the standard normal,
        from one compiled pass over the draws (:func:`scratchdgm.autodiff.fused.
        gaussian_reparam`): what an importance-sampled evaluation with a standard normal prior
        needs -- :math:`z \sim q`, :math:`\log q(z)` and :math:`\log p(z)` -- without two
        more passes for the two densities.

        Returns
        -------
        z : ndarray, shape ``sample_shape + batch_shape + (d,)``
        log_q : ndarray, shape ``sample_shape + batch_shape``
            :meth:`log_prob` of ``z``, up to rounding (computed from :math:`\epsilon`:
            :math:`(z - \mu)/\sigma = \epsilon`).
        log_p : ndarray, shape ``sample_shape + batch_shape``
            :math:`\log \mathcal N(z; 0, I)`, :class:`StandardNormal`'s ``log_prob`` of ``z``
            up to rounding.
        """
        shape, rng = self._draw_setup(sample_shape, random_state,
                                      "sample_box_muller_with_log_probs")
        d = self._shape[-1]
        eps = _fused.box_muller_normal(shape + self._shape, rng, self.dtype, backend=self.backend)
        mu, log_sigma = (np.broadcast_to(t.data, self._shape).reshape(-1, d)
                         for t in (self.mu, self.log_sigma))
        z, log_q, log_p = _fused.gaussian_reparam(eps.reshape(-1, len(mu), d), mu, log_sigma,
                                                  backend=self.backend)
        lead = shape + self._shape[:-1]
        return z.reshape(shape + self._shape), log_q.reshape(lead), log_p.reshape(lead)

    def entropy(self):
        r""":math:`H = \sum_j (\tfrac12 \log(2\pi e) + \log\sigma_j)`, shape ``batch_shape``."""
        return (_bcast_to(self.log_sigma, self._shape) + 0.5 * (1.0 + _LOG_2PI)).sum(axis=-1)

    def factors(self):
        r"""The d independent coordinates as a batch of one-dimensional Gaussians
        :math:`\mathcal N(\mu_j, \sigma_j^2)`: batch shape ``batch_shape + (d,)``, event
        shape ``(1,)``.

        A diagonal Gaussian is the product of its factors, so
        ``factors().log_prob(x[..., None])`` holds the log-density of each coordinate (its sum
        over the last axis is ``log_prob(x)``) and ``kl_divergence(q.factors(), p.factors())``
        the KL of each coordinate: the per-entry terms a mask or a per-unit statistic needs.
        """
        one = [_bcast_to(t, self._shape).reshape(*self._shape, 1)
               for t in (self.mu, self.log_sigma)]
        return DiagNormal(*one, backend=self.backend)


class StandardNormal(DiagNormal):
    r"""The standard Gaussian prior :math:`p(z) = \mathcal N(z \mid 0_d, I_d)`.

    Parameters
    ----------
    d : int
        Latent dimension.
    dtype : {numpy.float64, numpy.float32}

    Notes
    -----
    .. math:: \log p(z) = -\tfrac12 \lVert z \rVert^2 - \tfrac d2 \log 2\pi.

    It is a :class:`DiagNormal` with :math:`\mu = 0`, :math:`\log\sigma = 0` (so it has the same
    methods, and :func:`kl_divergence` treats it as one); ``log_prob`` takes any batch of
    points of shape ``(..., d)``.

    References
    ----------
    [Mattei-DGM, "Deep latent variable models: the role of the prior"]; Kingma & Welling (2014),
    Appendix B (the KL to this prior in closed form).
    """

    def __init__(self, d, dtype=np.float64, *, backend=None):
        d = check_positive_int(d, "d", "StandardNormal")
        dtype = check_float_dtype(dtype, "StandardNormal")
        super().__init__(np.zeros(d, dtype=dtype), np.zeros(d, dtype=dtype), backend=backend)

    def log_prob(self, z):
        r""":math:`\log \mathcal N(z \mid 0, I_d)` for ``z`` of shape ``(..., d)``; returns
        shape ``(...)``."""
        z = self._value(z, "z")
        return _fused.diag_gaussian_log_prob(z, 0.0, 0.0, backend=self.backend)

    def __repr__(self):
        return f"StandardNormal(d={self.d}, dtype={self.dtype})"


def _solve_vec(L, b):
    """L^{-1} b for b of shape (..., d), through :func:`solve_triangular`."""
    y = solve_triangular(L, b.reshape(*b.shape, 1))
    return y.reshape(*y.shape[:-1])


def _diag_part(M):
    """Diagonal of a (..., d, d) tensor as (..., d), with elementwise ops (differentiable)."""
    return (M * np.eye(M.shape[-1], dtype=M.dtype)).sum(axis=-1)


class FullNormal(Distribution):
    r"""Gaussian with full covariance :math:`\Sigma = L L^\top`.

    Parameters
    ----------
    mu : Tensor or array_like, shape (..., d)
    scale_tril : Tensor or array_like, shape (..., d, d)
        Lower-triangular Cholesky factor :math:`L` with a positive diagonal (entries above the
        diagonal must be zero).

    Notes
    -----
    .. math::

        \log \mathcal N(x \mid \mu, L L^\top) = -\tfrac12 \lVert L^{-1}(x - \mu) \rVert^2
        - \sum_{j} \log L_{jj} - \tfrac d2 \log 2\pi,

    and ``rsample`` is :math:`z = \mu + L \epsilon` ([Mattei-DGM, "Reparametrisation trick
    for $\nabla_{\gamma}$"]: ":math:`C_\gamma` is the Cholesky decomposition of the
    covariance").

    References
    ----------
    [Mattei-DGM, "More on this KL regulariser"] (full-covariance Gaussians).
    """

    def __init__(self, mu, scale_tril):
        cls = "FullNormal"
        self.mu, self.scale_tril = _params(cls, mu=mu, scale_tril=scale_tril)
        L = self.scale_tril.data
        if self.mu.ndim < 1:
            raise ValueError(f"{cls}: mu must have shape (..., d), got a scalar")
        d = self.mu.shape[-1]
        if L.ndim < 2 or L.shape[-1] != L.shape[-2] or L.shape[-1] != d:
            raise ValueError(f"{cls}: scale_tril has shape {L.shape}; expected (..., {d}, {d}) "
                             f"to match mu of shape {self.mu.shape}")
        if np.any(np.triu(L, 1) != 0):
            raise ValueError(f"{cls}: scale_tril must be lower triangular (zeros above the "
                             f"diagonal); found non-zero entries above it")
        if not np.all(np.diagonal(L, axis1=-2, axis2=-1) > 0):
            raise ValueError(f"{cls}: scale_tril must have a positive diagonal (a Cholesky "
                             f"factor of a positive-definite covariance); found "
                             f"min {np.diagonal(L, axis1=-2, axis2=-1).min():.3g}")
        batch = _broadcast([self.mu.shape[:-1], L.shape[:-2]], ["mu batch", "scale_tril batch"],
                           cls)
        self.batch_shape, self.event_shape = batch, (d,)
        self.dtype = _result_dtype(self.mu, self.scale_tril)

    @property
    def mean(self):
        return _bcast_to(self.mu, self.batch_shape + self.event_shape)

    @property
    def covariance_matrix(self):
        r""":math:`\Sigma = L L^\top`, shape ``batch_shape + (d, d)``."""
        L = self.scale_tril
        return L @ L.transpose(*range(L.ndim - 2), L.ndim - 1, L.ndim - 2)

    def _half_log_det(self):
        # log det Sigma = 2 sum_j log L_jj
        return _diag_part(self.scale_tril).log().sum(axis=-1)

    def log_prob(self, x):
        r"""Log-density; ``x`` of shape (..., d) broadcastable with the batch; returns (...)."""
        x = self._value(x)
        y = _solve_vec(self.scale_tril, x - self.mu)
        return -0.5 * (y * y).sum(axis=-1) - self._half_log_det() - 0.5 * self.d * _LOG_2PI

    def rsample(self, sample_shape=(), random_state=None):
        r"""Reparametrised :math:`\mu + L\epsilon`, shape ``sample_shape + batch_shape + (d,)``."""
        # BEGIN EXERCISE 12: z = mu + L eps with eps ~ N(0, I), by broadcasting (not @)
        shape, rng = self._draw_setup(sample_shape, random_state, "rsample")
        eps = rng.standard_normal(shape + self.batch_shape + self.event_shape, dtype=self.dtype)
        # (L eps)_i = sum_j L_ij eps_j, with broadcasting instead of a batched matmul
        return self.mu + (self.scale_tril * eps[..., None, :]).sum(axis=-1)
        # END EXERCISE 12

    def sample(self, sample_shape=(), random_state=None):
        r"""A sample as an ndarray, shape ``sample_shape + batch_shape + (d,)``."""
        with _ad.no_grad():
            return self.rsample(sample_shape, random_state).data

    def entropy(self):
        r""":math:`H = \tfrac d2 (1 + \log 2\pi) + \sum_j \log L_{jj}`, shape ``batch_shape``."""
        return _bcast_to(self._half_log_det() + 0.5 * self.d * (1.0 + _LOG_2PI), self.batch_shape)


