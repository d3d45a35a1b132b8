r"""Closed-form KL divergences between the library's distributions, each pair written once."""

import numpy as np

from scratchdgm import autodiff as _ad
from scratchdgm.autodiff.linalg import solve_triangular
from scratchdgm.distributions.base import Distribution, _bcast_to
from scratchdgm.distributions.bernoulli import Bernoulli
from scratchdgm.distributions.categorical import Categorical
from scratchdgm.distributions.normal import DiagNormal, FullNormal, StandardNormal, _solve_vec

__all__ = ["kl_divergence"]


def _as_full(dist):
    if isinstance(dist, FullNormal):
        return dist
    # Diag(sigma) as a Cholesky factor: eye * sigma broadcast along rows
    sigma = dist.stddev
    eye = np.eye(dist.d, dtype=dist.dtype)
    return FullNormal(dist.mean, sigma.reshape(*sigma.shape[:-1], 1, dist.d) * eye)


def _kl_diag_diag(q, p):
    r""":math:`\mathrm{KL}(q \,\Vert\, p)` between diagonal Gaussians, summed over the last axis.

    Parameters
    ----------
    q, p : DiagNormal
        Read their parameters as Tensors: ``q.mu`` and ``q.log_sigma`` (:math:`\log\sigma`, the
        log standard deviation), broadcastable to ``q._shape == batch_shape + (d,)``; ``p`` may
        be a :class:`StandardNormal` (:math:`\mu = 0`, :math:`\log\sigma = 0`).

    Returns
    -------
    Tensor, shape: the broadcast batch shape
        Differentiable in the parameters of both.

    Notes
    -----
    .. math::

        \mathrm{KL} = \sum_{j=1}^d \Big[\log\frac{\sigma_{pj}}{\sigma_{qj}}
        + \frac{\sigma_{qj}^2 + (\mu_{qj} - \mu_{pj})^2}{2\sigma_{pj}^2} - \frac12\Big],

    which against :math:`\mathcal N(0, I_d)` is the VAE's
    :math:`\tfrac12 \sum_j (\mu_j^2 + \sigma_j^2 - 1) - \log\sigma_j` (Kingma & Welling 2014,
    Appendix B).
    """
    # BEGIN EXERCISE 08: the diagonal-Gaussian KL, from log sigma, summed over the event axis
    if isinstance(p, StandardNormal):
        # 1/2 sum (mu^2 + sigma^2 - 1) - log sigma: the VAE's KL (Kingma & Welling 2014, App. B)
        per = 0.5 * (q.mu * q.mu + (2.0 * q.log_sigma).exp() - 1.0) - q.log_sigma
        return _bcast_to(per, np.broadcast_shapes(per.shape, q._shape)).sum(axis=-1)
    # ratios formed in log space: exp(2(log s_q - log s_p)) never overflows where s_q ~ s_p
    ratio = (2.0 * (q.log_sigma - p.log_sigma)).exp()
    dm = (q.mu - p.mu) * (-p.log_sigma).exp()
    per = 0.5 * (ratio + dm * dm - 1.0) - (q.log_sigma - p.log_sigma)
    shape = np.broadcast_shapes(per.shape, q._shape, p._shape)
    return _bcast_to(per, shape).sum(axis=-1)
    # END EXERCISE 08


def _kl_full_full(q, p):
    r""":math:`\mathrm{KL}(q \,\Vert\, p)` between full-covariance Gaussians.

    Parameters
    ----------
    q, p : FullNormal
        ``mu`` of shape ``(..., d)`` and ``scale_tril`` :math:`L` of shape ``(..., d, d)``
        (lower triangular, :math:`\Sigma = L L^\top`), as Tensors.

    Returns
    -------
    Tensor, shape: the broadcast batch shape

    Notes
    -----
    [Mattei-DGM, "More on this KL regulariser"], with :math:`\Sigma_0 = L_q L_q^\top`,
    :math:`\Sigma_1 = L_p L_p^\top`:

    .. math::

        \mathrm{KL} = \tfrac12 \Big[\operatorname{tr}(\Sigma_1^{-1}\Sigma_0)
        + (\mu_1 - \mu_0)^\top \Sigma_1^{-1} (\mu_1 - \mu_0) - d
        + \log\frac{\det\Sigma_1}{\det\Sigma_0}\Big]
        = \tfrac12 \Big[\lVert L_p^{-1} L_q \rVert_F^2 + \lVert L_p^{-1}(\mu_p - \mu_q)
        \rVert^2 - d\Big] + \sum_j (\log L_{p,jj} - \log L_{q,jj}),

    with triangular solves (:func:`solve_triangular`), never an inverse.
    """
    # BEGIN EXERCISE 08: the full-covariance KL through triangular solves
    Lq, Lp = q.scale_tril, p.scale_tril
    d = q.d
    M = solve_triangular(Lp, Lq)  # L_p^{-1} L_q: tr(S_p^-1 S_q) = ||M||_F^2
    trace = (M * M).sum(axis=(-2, -1))
    y = _solve_vec(Lp, p.mu - q.mu)
    maha = (y * y).sum(axis=-1)
    log_det_ratio = 2.0 * (p._half_log_det() - q._half_log_det())
    kl = 0.5 * (trace + maha - d + log_det_ratio)
    return _bcast_to(kl, np.broadcast_shapes(kl.shape, q.batch_shape, p.batch_shape))
    # END EXERCISE 08


def _kl_categorical(q, p):
    lq, lp = q.logits.log_softmax(axis=-1), p.logits.log_softmax(axis=-1)
    return (lq.exp() * (lq - lp)).sum(axis=-1)


def _kl_bernoulli(q, p):
    lq, lp = q.logits, p.logits
    pq = lq.sigmoid()
    per = (pq * (_ad.log_sigmoid(lq) - _ad.log_sigmoid(lp))
           + (1.0 - pq) * (_ad.log_sigmoid(-lq) - _ad.log_sigmoid(-lp)))
    return per.sum(axis=-1)


def kl_divergence(q, p):
    r"""Closed-form :math:`\mathrm{KL}(q \,\Vert\, p)`, differentiable in both arguments.

    Parameters
    ----------
    q, p : Distribution
        Supported pairs: :class:`DiagNormal` / :class:`StandardNormal` / :class:`FullNormal` in
        any combination, :class:`Categorical` with :class:`Categorical`, :class:`Bernoulli`
        with :class:`Bernoulli`.

    Returns
    -------
    Tensor, shape: the broadcast batch shape (summed over the event axis)

    Raises
    ------
    NotImplementedError
        For any other pair (e.g. a :class:`GaussianMixture` prior: use a Monte Carlo estimate,
        ``q.log_prob(z) - p.log_prob(z)`` averaged over ``z = q.rsample(K, rng)``).
    ValueError
        If the event dimensions differ.

    Notes
    -----
    Full covariance ([Mattei-DGM, "More on this KL regulariser"]), with :math:`\Sigma = L L^\top`:

    .. math::

        \mathrm{KL}(\mathcal N(\mu_0, \Sigma_0) \Vert \mathcal N(\mu_1, \Sigma_1))
        = \tfrac12 \Big[\operatorname{tr}(\Sigma_1^{-1}\Sigma_0)
        + (\mu_1 - \mu_0)^\top \Sigma_1^{-1} (\mu_1 - \mu_0) - d
        + \log\frac{\det\Sigma_1}{\det\Sigma_0}\Big],

    computed as :math:`\tfrac12[\lVert L_1^{-1} L_0 \rVert_F^2 + \lVert L_1^{-1}(\mu_1 - \mu_0)
    \rVert^2 - d] + \sum_j (\log L_{1,jj} - \log L_{0,jj})`. Diagonal case:

    .. math::

        \mathrm{KL} = \sum_{j=1}^d \Big[\log\frac{\sigma_{1j}}{\sigma_{0j}}
        + \frac{\sigma_{0j}^2 + (\mu_{0j} - \mu_{1j})^2}{2\sigma_{1j}^2} - \frac12\Big],

    and against :math:`\mathcal N(0, I_d)`:
    :math:`\tfrac12 \sum_j (\mu_j^2 + \sigma_j^2 - 1) - \log \sigma_j`.

    References
    ----------
    Kingma & Welling (2014), "Auto-encoding variational Bayes", ICLR, Appendix B (eq. 10);
    [Mattei-DGM, "More on this KL regulariser"].
    """
    if not isinstance(q, Distribution) or not isinstance(p, Distribution):
        raise TypeError(f"kl_divergence: expected two Distribution objects, got "
                        f"{type(q).__name__} and {type(p).__name__}")
    if q.event_shape != p.event_shape:
        raise ValueError(f"kl_divergence: event dimensions differ: q has {q.event_shape}, "
                         f"p has {p.event_shape}; expected the same")
    gaussians = (DiagNormal, FullNormal)
    if isinstance(q, DiagNormal) and isinstance(p, DiagNormal):
        return _kl_diag_diag(q, p)
    if isinstance(q, gaussians) and isinstance(p, gaussians):
        return _kl_full_full(_as_full(q), _as_full(p))
    if type(q) is Categorical and type(p) is Categorical:
        if q.n_categories != p.n_categories:
            raise ValueError(f"kl_divergence: Categorical with {q.n_categories} and "
                             f"{p.n_categories} categories; expected the same number")
        return _kl_categorical(q, p)
    if type(q) is Bernoulli and type(p) is Bernoulli:
        return _kl_bernoulli(q, p)
    raise NotImplementedError(
        f"kl_divergence: no closed form for KL({type(q).__name__} || {type(p).__name__}); "
        f"supported: DiagNormal/StandardNormal/FullNormal pairs, Categorical||Categorical, "
        f"Bernoulli||Bernoulli. Estimate it by Monte Carlo: mean of q.log_prob(z) - "
        f"p.log_prob(z) over z = q.rsample(K, rng)")

