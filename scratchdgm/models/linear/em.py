r"""The EM algorithm for factor analysis and PPCA on the sample covariance, and SQUAREM, its
accelerated form.

The model (lecture [Mattei-DGM, "Linear latent-variable models"]):

.. math::

    z \sim \mathcal N(0, I_d), \qquad x \mid z \sim \mathcal N(W z + \mu, \Psi), \qquad
    \Psi = \mathrm{diag}(\psi_1, \dots, \psi_p)

(:math:`\Psi = \sigma^2 I_p` for PPCA). With :math:`\mu` at its maximum-likelihood value, the
sample mean, the data enter the likelihood only through the 1/n sample covariance
:math:`S = \frac1n \sum_i (x_i - \bar x)(x_i - \bar x)^\top`:

.. math::

    \frac1n \ell(W, \Psi) = -\frac12 \Big(p \log 2\pi + \log |C|
    + \mathrm{tr}\big(C^{-1} S\big)\Big), \qquad C = W W^\top + \Psi .

Everything here works on S, so an iteration costs :math:`O(p^2 d)` whatever the number of
data points n (the per-point forms cost :math:`O(n p d)`):

* :func:`e_step` -- the posterior moments of the codes, summed over the data;
* :func:`m_step` -- the new :math:`(W, \Psi)` from them;
* :func:`em` -- plain EM, the two steps in turn: the readable reference;
* :func:`squarem` -- the same two steps, accelerated by squared extrapolation (Varadhan &
  Roland 2008) and made monotone by construction. ``FactorAnalysis`` fits with it by default;
  ``FactorAnalysis(algorithm='em')`` and ``PPCA(method='em')`` use :func:`em`.

References
----------
Rubin, D. B. and Thayer, D. T. (1982). EM algorithms for ML factor analysis. Psychometrika
47(1), 69-76 (EM for factor analysis from the sample covariance).
Ghahramani, Z. and Hinton, G. E. (1996). The EM algorithm for mixtures of factor analyzers.
Technical report CRG-TR-96-1, University of Toronto, §2 (the E-step
:math:`\mathbb E[z \mid x] = \beta x`, :math:`\mathbb E[z z^\top \mid x] = I - \beta W +
\beta x x^\top \beta^\top`, :math:`\beta = W^\top (\Psi + W W^\top)^{-1}`, and the M-step
:math:`W^{new} = (\sum_i x_i \mathbb E[z_i]^\top)(\sum_i \mathbb E[z_i z_i^\top])^{-1}`,
:math:`\Psi^{new} = \frac1n \mathrm{diag}(\sum_i x_i x_i^\top - W^{new} \mathbb E[z_i]
x_i^\top)`).
Tipping, M. E. and Bishop, C. M. (1999). Probabilistic principal component analysis. JRSS B
61(3), the EM algorithm for PPCA (the isotropic M-step).
Varadhan, R. and Roland, C. (2008). Simple and globally convergent methods for accelerating the
convergence of any EM algorithm. Scandinavian Journal of Statistics 35(2), 335-353 (SQUAREM,
steplength S3, the stabilising EM step and the backtracking that make it monotone).
McLachlan, G. J. and Krishnan, T. (2008). The EM Algorithm and Extensions, 2nd ed., ch. 4
(Aitken's acceleration, used here only to decide when to stop).
"""

import math
from typing import NamedTuple

import numpy as np

from scratchdgm.models.linear._linalg import chol_solve, cholesky_geq_identity, identity, spd_solve

__all__ = ["Moments", "EMResult", "e_step", "m_step", "loglike", "em", "squarem"]

_LOG_2PI = float(np.log(2.0 * np.pi))
_EPS = float(np.finfo(np.float64).eps)


class Moments(NamedTuple):
    r"""What the E-step computes: the posterior moments of the codes averaged over the data, and
    the log-likelihood of the parameters it was computed at.

    Attributes
    ----------
    xz : ndarray, shape (p, d)
        :math:`\frac1n \sum_i (x_i - \bar x)\, \mathbb E[z_i \mid x_i]^\top = S \beta^\top`.
    zz : ndarray, shape (d, d)
        :math:`\frac1n \sum_i \mathbb E[z_i z_i^\top \mid x_i] = M^{-1} + \beta S \beta^\top`.
    loglike : float
        :math:`\frac1n \ell(W, \Psi)`, the mean log-likelihood per sample at the E-step's
        :math:`(W, \Psi)`.
    """

    xz: np.ndarray
    zz: np.ndarray
    loglike: float


class EMResult(NamedTuple):
    r"""The outcome of :func:`em` or :func:`squarem`.

    Attributes
    ----------
    W : ndarray, shape (p, d)
    psi : ndarray, shape (p,)
    loglike : ndarray, shape (n_iter,)
        Mean log-likelihood per sample after each iteration (for :func:`squarem`, each cycle);
        never decreasing, and its last entry is the log-likelihood of ``(W, psi)``.
    n_iter : int
        ``len(loglike)``.
    n_em_steps : int
        How many times the M-step ran (one per iteration for :func:`em`; two or three per cycle
        for :func:`squarem`).
    converged : bool
    """

    W: np.ndarray
    psi: np.ndarray
    loglike: np.ndarray
    n_iter: int
    n_em_steps: int
    converged: bool


def e_step(S, W, psi, posterior="exact"):
    r"""E-step of EM for factor analysis: the posterior moments of the codes, summed over the
    data through their covariance S.

    Parameters
    ----------
    S : ndarray, shape (p, p)
        Maximum-likelihood (1/n) sample covariance of the data.
    W : ndarray, shape (p, d)
        Current loadings.
    psi : ndarray, shape (p,)
        Current noise variances, the diagonal of :math:`\Psi` (all > 0).
    posterior : {'exact', 'mean_field'}
        The :math:`q(z \mid x)` whose moments are taken: the exact posterior (EM), or the best
        factorised Gaussian (*variational* EM: the family a VAE's encoder outputs).

    Returns
    -------
    Moments
        ``xz`` (p, d), ``zz`` (d, d) and ``loglike`` (the log-likelihood of ``(W, psi)``).

    Notes
    -----
    The posterior of each code is Gaussian (Ghahramani & Hinton 1996, §2), with
    :math:`M = I_d + W^\top \Psi^{-1} W` and :math:`\beta = M^{-1} W^\top \Psi^{-1}`
    (:math:`= W^\top (\Psi + W W^\top)^{-1}` by the Woodbury identity):

    .. math::

        \mathbb E[z_i \mid x_i] = \beta (x_i - \mu), \qquad
        \mathbb E[z_i z_i^\top \mid x_i] = M^{-1} + \beta (x_i - \mu)(x_i - \mu)^\top \beta^\top.

    The M-step needs them only summed over i, and those sums involve the data only through S:

    .. math::

        \frac1n \sum_i (x_i - \mu)\, \mathbb E[z_i]^\top = S \beta^\top, \qquad
        \frac1n \sum_i \mathbb E[z_i z_i^\top] = M^{-1} + \beta S \beta^\top,

    one :math:`O(p^2 d)` product instead of :math:`O(n p d)`. The log-likelihood of
    :math:`(W, \Psi)` comes almost free: :math:`C^{-1} = \Psi^{-1} (I - W \beta)`, so
    :math:`\mathrm{tr}(C^{-1} S) = \sum_j (S - W \beta S)_{jj} / \psi_j`, and
    :math:`\log |C| = \log |M| + \sum_j \log \psi_j` (matrix determinant lemma).

    M is factored by a Cholesky decomposition that cannot fail: :math:`M \succeq I`, and when
    some :math:`\psi_j` sit at their floor its entries are so large that round-off can make it
    look indefinite; :func:`~scratchdgm.models.linear._linalg.cholesky_geq_identity` then uses
    the eigenvalues clipped at their exact lower bound 1.

    **Variational EM** (``posterior='mean_field'``). Both steps then maximise the ELBO
    :math:`\log p_\theta(x) - \mathrm{KL}(q \,\|\, p_\theta(z \mid x))`, the E-step over q
    and the M-step over :math:`(W, \Psi)` ([Isachenko-L4, "Variational EM-algorithm"]). Among
    factorised Gaussians the KL to the posterior :math:`\mathcal N(\beta (x - \mu), M^{-1})` is
    smallest at the same mean and the variances :math:`1 / M_{jj}` (Bishop 2006, §10.1.2), so
    only the covariance term changes: :math:`M^{-1} \to \mathrm{diag}(1 / M_{jj})` in
    :math:`\frac1n \sum_i \mathbb E[z_i z_i^\top]`; the M-step is unchanged given the moments.
    ``loglike`` is still the exact log-likelihood; the ELBO is lower by
    :func:`scratchdgm.models.linear.gaussian.mean_field_gap`.
    """
    # BEGIN EXERCISE 05: M = L L^T, beta, the two averaged moments and the log-likelihood from S
    if posterior not in ("exact", "mean_field"):
        raise ValueError(f"e_step: posterior must be 'exact' or 'mean_field', got {posterior!r}")
    d = W.shape[1]
    W_over_psi = W / psi[:, None]                          # Psi^{-1} W
    M = W.T @ W_over_psi
    M.flat[::d + 1] += 1.0                                 # M = I + W^T Psi^{-1} W
    L = cholesky_geq_identity(M)                           # M = L L^T
    beta = chol_solve(L, W_over_psi.T)                     # (d, p): E[z | x] = beta (x - mu)
    xz = S @ beta.T                                        # (1/n) sum_i x_i E[z_i]^T
    if posterior == "exact":
        cov = chol_solve(L, identity(d))                   # M^{-1}
    else:
        M_diag = 1.0 + (W * W_over_psi).sum(axis=0)        # M_jj = 1 + sum_p W_pj^2 / psi_p
        cov = np.diag(1.0 / M_diag)
    zz = cov + beta @ xz                                   # (1/n) sum_i E[z_i z_i^T]
    residual = S.diagonal() - (W * xz).sum(axis=1)         # diag(S - W beta S)
    log_det_C = 2.0 * np.log(L.diagonal()).sum() + np.log(psi).sum()
    loglike = -0.5 * (len(psi) * _LOG_2PI + log_det_C + (residual / psi).sum())
    return Moments(xz, 0.5 * (zz + zz.T), float(loglike))
    # END EXERCISE 05


def m_step(S, moments, *, isotropic=False, min_noise_variance=1e-12):
    r"""M-step of EM for factor analysis (or PPCA): the new loadings and noise variances.

    Parameters
    ----------
    S : ndarray, shape (p, p)
        Maximum-likelihood (1/n) sample covariance (only its diagonal is used).
    moments : Moments
        The output of :func:`e_step`.
    isotropic : bool
        PPCA: :math:`\Psi = \sigma^2 I`, the noise update averaged over the features.
    min_noise_variance : float
        Floor of the new noise variances (a feature that never varies has :math:`\psi_j = 0`,
        where :math:`\Psi^{-1}` does not exist).

    Returns
    -------
    W_new : ndarray, shape (p, d)
    psi_new : ndarray, shape (p,)

    Notes
    -----
    The maximiser of the expected complete-data log-likelihood (Ghahramani & Hinton 1996, §2;
    Rubin & Thayer 1982), with the sums of :func:`e_step`:

    .. math::

        W^{new} = \Big(\frac1n \sum_i x_i \mathbb E[z_i]^\top\Big)
                  \Big(\frac1n \sum_i \mathbb E[z_i z_i^\top]\Big)^{-1}, \qquad
        \Psi^{new} = \mathrm{diag}\Big(S - W^{new}\, \frac1n \sum_i \mathbb E[z_i]\, x_i^\top
        \Big),

    and for PPCA :math:`\sigma^{2,new} = \frac1p \mathrm{tr}(\cdot)` of the same matrix
    (Tipping & Bishop 1999).
    """
    # BEGIN EXERCISE 05: W_new = xz zz^{-1}, psi_new = diag(S - W_new xz^T), floored
    xz, zz = moments.xz, moments.zz
    W_new = spd_solve(zz, xz.T).T                             # xz zz^{-1} (zz is SPD)
    psi_new = S.diagonal() - (W_new * xz).sum(axis=1)         # diag(S - W_new xz^T)
    if isotropic:
        psi_new = np.full_like(psi_new, psi_new.mean())
    return W_new, np.maximum(psi_new, min_noise_variance)
    # END EXERCISE 05


def loglike(S, W, psi):
    r"""Mean log-likelihood per sample of data with 1/n covariance ``S`` (mean at the MLE),
    :math:`-\frac12 (p \log 2\pi + \log|C| + \mathrm{tr}(C^{-1} S))`, :math:`C = W W^\top +
    \Psi`: the by-product of :func:`e_step`."""
    S = np.asarray(S, dtype=np.float64)
    return e_step(S, np.asarray(W, np.float64), np.asarray(psi, np.float64)).loglike


def _roundoff(S_diag, psi, ll):
    r"""How precisely :func:`e_step` evaluates the log-likelihood: its trace term subtracts
    numbers of size :math:`S_{jj} / \psi_j`, huge when a noise variance nears its floor (a
    feature the factors explain exactly)."""
    return _EPS * (64.0 * abs(ll) + 4.0 * float(np.sum(S_diag / psi)))


def _stop(history, noise, tol):
    r"""The stopping rule, after a step that raised the log-likelihood by ``history[-1] -
    history[-2]``: see :func:`em`."""
    delta = history[-1] - history[-2]
    if delta <= noise:
        return True
    if len(history) < 3:
        return False
    previous = history[-2] - history[-3]
    ratio = delta / previous if previous > 0 else np.nan
    remaining = delta * ratio / (1.0 - ratio) if 0.0 <= ratio < 1.0 else np.inf
    return delta < tol and remaining < tol


def _take(history, new, S_diag, psi_new, tol):
    r"""After a step to parameters whose E-step is ``new``: ``(taken, stop)``.

    A step whose computed log-likelihood does not exceed the last one -- round-off, once the
    steps are below its precision -- is not taken and ends the run (the first step always
    counts), so the history never decreases. A step taken is appended to ``history``, and the
    run stops when :func:`_stop` says so.
    """
    _check_finite(new.loglike)
    if len(history) > 1 and new.loglike <= history[-1]:
        return False, True
    history.append(new.loglike)
    return True, _stop(history, _roundoff(S_diag, psi_new, new.loglike), tol)


def _start(S, W, psi, min_noise_variance):
    S = np.asarray(S, dtype=np.float64)
    W = np.asarray(W, dtype=np.float64)
    psi = np.maximum(np.asarray(psi, dtype=np.float64), min_noise_variance)
    return S, np.diag(S).copy(), W, psi


def _norm(v):
    """The Euclidean norm of a vector (``np.linalg.norm`` without its dispatch)."""
    return math.sqrt(v @ v)


def _check_finite(ll):
    if not np.isfinite(ll):
        raise ValueError("EM produced a non-finite log-likelihood: X is probably badly scaled "
                         "(standardise it) or min_noise_variance is too small")


def em(S, W, psi, *, isotropic=False, max_iter=1000, tol=1e-7, min_noise_variance=1e-12):
    r"""Plain EM: :func:`e_step` and :func:`m_step` in turn, until the log-likelihood stops
    growing.

    Parameters
    ----------
    S : ndarray, shape (p, p)
        Maximum-likelihood (1/n) sample covariance.
    W : ndarray, shape (p, d)
        Initial loadings.
    psi : ndarray, shape (p,)
        Initial noise variances.
    isotropic : bool
        PPCA's :math:`\Psi = \sigma^2 I`.
    max_iter : int
        At most this many iterations.
    tol : float
        Tolerance on the mean log-likelihood per sample (see Notes).
    min_noise_variance : float
        Floor of the noise variances.

    Returns
    -------
    EMResult

    Notes
    -----
    EM never lowers the likelihood (Dempster, Laird & Rubin 1977); the computed log-likelihood
    can, by round-off, once the steps are below its precision, and such a step is not taken:
    the run ends there, so the history never decreases.

    Stopping rule. EM converges linearly: near the optimum the increments shrink by a nearly
    constant factor :math:`r = \delta_t / \delta_{t-1}`, so the gain still to come after
    iteration t is about :math:`\delta_t\, r / (1 - r)` (Aitken's extrapolation; McLachlan &
    Krishnan 2008, ch. 4). When r is close to 1 this is many times the last increment, so the
    naive rule ":math:`\delta_t < tol`" stops well short of the optimum. EM stops when both the
    last increment and the extrapolated remaining gain are below ``tol`` (per sample), or when
    the increment is below the precision of the computed log-likelihood.
    """
    S, S_diag, W, psi = _start(S, W, psi, min_noise_variance)
    moments = e_step(S, W, psi)
    history = [moments.loglike]  # the start; not part of the returned history
    converged = False
    for _ in range(max_iter):
        W_new, psi_new = m_step(S, moments, isotropic=isotropic,
                                min_noise_variance=min_noise_variance)
        new = e_step(S, W_new, psi_new)
        taken, converged = _take(history, new, S_diag, psi_new, tol)
        if taken:
            W, psi, moments = W_new, psi_new, new
        if converged:
            break
    n_iter = len(history) - 1
    return EMResult(W, psi, np.asarray(history[1:]), n_iter, n_iter, converged)


#: SQUAREM never extrapolates a noise variance below this fraction of the plain EM iterate's.
SQUAREM_MAX_SHRINK = 10.0


def squarem(S, W, psi, *, isotropic=False, max_iter=1000, tol=1e-7, min_noise_variance=1e-12):
    r"""EM accelerated by squared extrapolation (SQUAREM, Varadhan & Roland 2008), monotone by
    construction.

    Parameters and returns as :func:`em`; ``max_iter`` counts cycles (each runs the E- and
    M-step two or three times), and ``loglike`` has one entry per cycle.

    Notes
    -----
    With :math:`F` one EM iteration (:func:`m_step` after :func:`e_step`) and
    :math:`\theta = (W, \Psi)`, a cycle from :math:`\theta_0` is

    .. math::

        \theta_1 = F(\theta_0), \quad \theta_2 = F(\theta_1), \quad
        r = \theta_1 - \theta_0, \quad v = \theta_2 - 2\theta_1 + \theta_0, \quad
        \alpha = \min\big(-\|r\| / \|v\|,\ -1\big),

    .. math::

        \theta' = \theta_0 - 2 \alpha r + \alpha^2 v, \qquad \theta_{new} = F(\theta').

    (:math:`\alpha = -1` gives :math:`\theta' = \theta_2`: plain EM. EM's error shrinks like
    :math:`\rho^t` along its slowest direction; the extrapolation cancels that direction, which
    is what makes EM slow when :math:`\rho` is near 1, as for strongly correlated features.)

    Monotone by construction: :math:`\theta'` is kept only if its log-likelihood is at least
    that of :math:`\theta_1`; otherwise :math:`\alpha` is halved towards -1
    (:math:`\alpha \leftarrow (\alpha - 1) / 2`) a few times, and if no extrapolation helps
    the cycle ends at :math:`\theta_2`. As EM never lowers the likelihood,
    :math:`\ell(\theta_{new}) \ge \ell(\theta') \ge \ell(\theta_1) \ge \ell(\theta_0)` either
    way; a cycle whose computed log-likelihood does not exceed the last one (round-off) is not
    taken and ends the run. Each noise variance of :math:`\theta'` is kept above
    :math:`\psi^{(2)}_j / 10` (:data:`SQUAREM_MAX_SHRINK`) and the floor: :math:`\psi_j = 0` is
    a fixed point of EM (once the model explains feature j exactly, the M-step sees no residual
    variance), so an extrapolation overshooting to the floor would trap EM there. Stopping rule
    as in :func:`em`, on the per-cycle gains.
    """
    S, S_diag, W, psi = _start(S, W, psi, min_noise_variance)
    steps = dict(isotropic=isotropic, min_noise_variance=min_noise_variance)
    moments = e_step(S, W, psi)
    _check_finite(moments.loglike)
    history = [moments.loglike]
    n_em_steps = 0
    converged = False
    for _ in range(max_iter):
        W1, psi1 = m_step(S, moments, **steps)
        moments1 = e_step(S, W1, psi1)
        W2, psi2 = m_step(S, moments1, **steps)
        n_em_steps += 2
        r = np.concatenate([(W1 - W).ravel(), psi1 - psi])
        v = np.concatenate([(W2 - 2 * W1 + W).ravel(), psi2 - 2 * psi1 + psi])
        # alpha = -|r| / |v| (Varadhan & Roland 2008, SqS3), with both norms taken of the
        # vectors scaled by their largest entry: on badly scaled data |v|^2 overflows
        scale = max(np.abs(r).max(), np.abs(v).max())
        norm_v = _norm(v / scale) if 0 < scale < np.inf else 0.0
        alpha = min(-_norm(r / scale) / norm_v, -1.0) if norm_v > 0 else -1.0
        W_new, psi_new = W2, psi2
        for _ in range(4):  # backtracking towards alpha = -1 (plain EM)
            if alpha > -1.0 - 1e-3:
                break
            step = -2.0 * alpha * r + alpha ** 2 * v
            W_x = W + step[:W.size].reshape(W.shape)
            psi_x = np.maximum(psi + step[W.size:],
                               np.maximum(psi2 / SQUAREM_MAX_SHRINK, min_noise_variance))
            if isotropic:
                psi_x = np.full_like(psi_x, psi_x.mean())
            moments_x = e_step(S, W_x, psi_x)
            if np.isfinite(moments_x.loglike) and moments_x.loglike >= moments1.loglike:
                W_new, psi_new = m_step(S, moments_x, **steps)  # the stabilising EM step
                n_em_steps += 1
                break
            alpha = (alpha - 1.0) / 2.0
        new = e_step(S, W_new, psi_new)
        taken, converged = _take(history, new, S_diag, psi_new, tol)
        if taken:
            W, psi, moments = W_new, psi_new, new
        if converged:
            break
    n_iter = len(history) - 1
    return EMResult(W, psi, np.asarray(history[1:]), n_iter, n_em_steps, converged)
