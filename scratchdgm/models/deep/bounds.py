r"""Variational bounds of deep latent variable models: the IWAE bound, the VAE bound (two forms)
and the importance-sampled log-likelihood estimate.

Algorithm: *importance-weighted variational inference* (Burda, Grosse & Salakhutdinov 2016). For
a DLVM :math:`z \sim p(z)`, :math:`x \mid z \sim p_\theta(x \mid z)` with an amortised proposal
:math:`q_\gamma(z \mid x)`, draw :math:`z_1, \dots, z_K \sim q_\gamma(z \mid x)` and form the
log importance weights

.. math::

    \log w_k = \log p_\theta(x \mid z_k) + \log p(z_k) - \log q_\gamma(z_k \mid x).

Everything here is a pure function of those log-weights (or of the Gaussian parameters), so that
the same code serves training (with :class:`scratchdgm.Tensor` inputs, gradients flowing back),
evaluation (with ``no_grad``) and the course exercise ``exercises/10_iwae_bound.md``.

Lecture: [Mattei-DGM, "Maximum likelihood for DLVM"] (the
bound :math:`\mathcal L_K`), "What about VAEs?" (:math:`\mathcal L_1` as reconstruction minus KL;
the closed-form KL itself is :func:`scratchdgm.distributions.kl_divergence`); [Mattei-S2D,
"Amortised variational inference"].
"""

import math

import numpy as np

from scratchdgm import autodiff as _ad
from scratchdgm import numerics as _num
from scratchdgm.autodiff import fused as _fused
from scratchdgm.progress import progress as _progress
from scratchdgm.validation import check_real

#: seconds a small evaluation runs before it draws a progress bar: quick ones stay silent
EVAL_BAR_DELAY = 1.0
#: importance samples from which the log-likelihood's bar is drawn at once (K = 5000 on 20
#: points): such an evaluation is long, and its first chunk may wait for kernels to compile
EVAL_BAR_AT_ONCE = 100_000

__all__ = [
    "log_mean_exp",
    "iwae_bound",
    "elbo_monte_carlo",
    "kl_weighted_log_weights",
    "elbo_analytic_kl",
    "importance_sampled_log_likelihood",
]


def _as_tensor(x):
    return x if isinstance(x, _ad.Tensor) else _ad.tensor(np.asarray(x))


def _check_log_weights(log_w):
    if log_w.ndim != 2:
        raise ValueError(f"log-weights must have shape (K, batch) with the K importance samples "
                         f"on axis 0, got an array of shape {log_w.shape}")
    if log_w.shape[0] < 1:
        raise ValueError("log-weights have K = 0 importance samples; expected K >= 1")


def _check_beta(beta):
    return check_real(beta, "beta", "the VAE bound's KL weight", low=0.0)


def log_mean_exp(log_w, axis=0):
    r"""Numerically stable :math:`\log \frac1K \sum_k \exp(\log w_k)` along ``axis``.

    Parameters
    ----------
    log_w : Tensor or ndarray
        Log-weights; ``axis`` has length :math:`K \ge 1`.
    axis : int
        The axis to average over.

    Returns
    -------
    Tensor
        ``log_w`` with ``axis`` removed.

    Notes
    -----
    .. math::

        \log \frac1K \sum_{k=1}^K e^{a_k} = m + \log \sum_k e^{a_k - m} - \log K,
        \qquad m = \max_k a_k,

    so no exponential overflows; the gradient is the vector of normalised weights
    :math:`\tilde w_k = e^{a_k} / \sum_j e^{a_j}`.
    """
    log_w = _as_tensor(log_w)
    k = log_w.shape[axis]
    return _ad.logsumexp(log_w, axis=axis) - math.log(k)


def iwae_bound(log_w, *, backend=None):
    r"""The importance-weighted bound :math:`\mathcal L_K` of each data point.

    Parameters
    ----------
    log_w : Tensor or ndarray, shape (K, batch)
        Log importance weights :math:`\log w_{k,i} = \log p_\theta(x_i \mid z_{ik}) + \log
        p(z_{ik}) - \log q_\gamma(z_{ik} \mid x_i)` with :math:`z_{ik} \sim q_\gamma(z \mid x_i)`.
    backend : {None, 'numpy', 'numba', 'cuda', 'auto'}
        Kernel backend of the fused log-sum-exp (None: the process default).

    Returns
    -------
    Tensor, shape (batch,)
        A single-draw, unbiased estimate of :math:`\mathcal L_K(x_i)` for each point.

    Notes
    -----
    .. math::

        \mathcal L_K(\theta, \gamma; x) = \mathbb E_{z_1..z_K \sim q_\gamma(z|x)}
        \left[ \log \frac1K \sum_{k=1}^K w_k \right] \le \log p_\theta(x),
        \qquad \mathcal L_1 \le \mathcal L_2 \le \dots \le \mathcal L_K \to \log p_\theta(x).

    With reparametrised :math:`z_k = \mu_\gamma(x) + \sigma_\gamma(x) \odot \varepsilon_k`, the
    gradient is :math:`\sum_k \tilde w_k \nabla \log w_k` with the normalised weights
    :math:`\tilde w_k = w_k / \sum_j w_j` (Burda et al. 2016, eq. 14): it flows through the
    backward of logsumexp. For :math:`K = 1` this is the VAE bound in its Monte Carlo form.

    References
    ----------
    Burda, Grosse & Salakhutdinov (2016), *Importance weighted autoencoders*, ICLR, eq. 8
    (bound), Theorem 1 (monotone in K), eq. 14 (gradient).
    Lecture [Mattei-DGM, "Maximum likelihood for DLVM"].
    """
    # BEGIN EXERCISE 10: log of the MEAN importance weight over the K samples, stably
    log_w = _as_tensor(log_w)
    _check_log_weights(log_w)
    # log_mean_exp(log_w, axis=0) in one fused, stable pass on the current backend (its NumPy
    # reference is scratchdgm.kernels.reference.logsumexp; tests hold the two together)
    return _fused.iw_logsumexp(log_w, backend=backend) - math.log(log_w.shape[0])
    # END EXERCISE 10


def elbo_monte_carlo(log_w):
    r"""The VAE bound :math:`\mathcal L_1` estimated by averaging K single-sample log-weights.

    Parameters
    ----------
    log_w : Tensor or ndarray, shape (K, batch)

    Returns
    -------
    Tensor, shape (batch,)

    Notes
    -----
    .. math::

        \mathcal L_1(\theta, \gamma; x) = \mathbb E_{z \sim q_\gamma(z|x)}
        [\log p_\theta(x \mid z) + \log p(z) - \log q_\gamma(z \mid x)]
        \approx \frac1K \sum_{k=1}^K \log w_k .

    This is the "VAE with K samples" objective of Burda et al. (2016, Table 1): K samples reduce
    the variance of the gradient but do not tighten the bound (contrast :func:`iwae_bound`).

    References
    ----------
    Kingma & Welling (2014), *Auto-encoding variational Bayes*, ICLR, eq. 6 (SGVB estimator A).
    Lecture [Mattei-DGM, "What about VAEs?"].
    """
    # BEGIN EXERCISE 10: the mean of the log-weights over the K samples
    log_w = _as_tensor(log_w)
    _check_log_weights(log_w)
    return log_w.mean(axis=0)
    # END EXERCISE 10


def kl_weighted_log_weights(log_w, log_px_given_z, beta):
    r"""Log-weights whose KL part is weighted by :math:`\beta`: the :math:`\beta`-VAE's
    Monte Carlo objective is their mean, :func:`elbo_monte_carlo`.

    Parameters
    ----------
    log_w : Tensor or ndarray, shape (K, batch)
        :math:`\log w_k = \log p_\theta(x \mid z_k) + \log p(z_k) - \log q_\gamma(z_k \mid x)`.
    log_px_given_z : Tensor or ndarray, shape (K, batch)
        :math:`\log p_\theta(x \mid z_k)`, the reconstruction part of each log-weight.
    beta : float
        Weight :math:`\beta \ge 0` of the KL part (1 returns ``log_w``).

    Returns
    -------
    Tensor, shape (K, batch)

    Notes
    -----
    The KL part of a log-weight is :math:`\log p(z_k) - \log q_\gamma(z_k \mid x) = \log w_k -
    \log p_\theta(x \mid z_k)`, whose mean over :math:`z_k \sim q_\gamma` estimates
    :math:`-\mathrm{KL}(q_\gamma \,\|\, p)`; scaling it alone,

    .. math::

        \log \tilde w_k = \log p_\theta(x \mid z_k) + \beta\,(\log w_k - \log p_\theta(x
        \mid z_k)), \qquad \frac1K \sum_k \log \tilde w_k \approx \mathbb E_q[\log
        p_\theta(x \mid z)] - \beta\, \mathrm{KL}(q_\gamma(z \mid x) \,\|\, p(z)),

    is the Monte Carlo form of :func:`elbo_analytic_kl` with ``beta``.

    References
    ----------
    Higgins et al. (2017), *beta-VAE: learning basic visual concepts with a constrained
    variational framework*, ICLR, eq. 4. Lecture [VAE-HVAE-Diffusion, "Strengths and weaknesses
    of VAEs"].
    """
    log_w = _as_tensor(log_w)
    _check_log_weights(log_w)
    beta = _check_beta(beta)
    log_px_given_z = _as_tensor(log_px_given_z)
    if log_px_given_z.shape != log_w.shape:
        raise ValueError(f"log_px_given_z has shape {log_px_given_z.shape}, expected the shape "
                         f"of log_w, {log_w.shape}")
    if beta == 1.0:
        return log_w
    return log_px_given_z + beta * (log_w - log_px_given_z)


def elbo_analytic_kl(log_px_given_z, kl, *, beta=1.0):
    r"""The VAE bound :math:`\mathcal L_1` as reconstruction term minus the closed-form KL.

    Parameters
    ----------
    log_px_given_z : Tensor or ndarray, shape (K, batch)
        :math:`\log p_\theta(x_i \mid z_{ik})` for :math:`z_{ik} \sim q_\gamma(z \mid x_i)`.
    kl : Tensor or ndarray, shape (batch,)
        :math:`\mathrm{KL}(q_\gamma(z \mid x_i) \,\|\, p(z))`, e.g. from
        :func:`scratchdgm.distributions.kl_divergence`.
    beta : float, default 1
        Weight :math:`\beta \ge 0` of the KL term. 1 is the ELBO; any other value is the
        :math:`\beta`-VAE objective of Higgins et al. (2017, *beta-VAE*, ICLR, eq. 4), a lower
        bound of :math:`\log p_\theta(x)` only for :math:`\beta \ge 1`. A larger
        :math:`\beta` pulls :math:`q_\gamma(z \mid x)` harder towards the prior: the route to
        posterior collapse ([VAE-HVAE-Diffusion, "Strengths and weaknesses of VAEs"]).

    Returns
    -------
    Tensor, shape (batch,)

    Notes
    -----
    .. math::

        \mathcal L_1(\theta, \gamma; x) = \underbrace{\mathbb E_{z \sim q_\gamma(z|x)}
        [\log p_\theta(x \mid z)]}_{\text{minus reconstruction error}}
        - \underbrace{\mathrm{KL}(q_\gamma(z \mid x) \,\|\, p(z))}_{\text{KL regulariser}} .

    Same expectation as :func:`elbo_monte_carlo`, lower variance (only the reconstruction term is
    estimated). With a KL weight the second term is :math:`\beta\,\mathrm{KL}`.

    References
    ----------
    Kingma & Welling (2014), ICLR, eq. 7 and 10 (SGVB estimator B).
    Lecture [Mattei-DGM, "What about VAEs?"], "More on this KL regulariser".
    """
    log_px_given_z = _as_tensor(log_px_given_z)
    _check_log_weights(log_px_given_z)
    beta = _check_beta(beta)
    kl = _as_tensor(kl)
    return log_px_given_z.mean(axis=0) - (kl if beta == 1.0 else beta * kl)


def importance_sampled_log_likelihood(log_weights_fn, n, k=5000, *, chunk_size=50_000,
                                      progress=True):
    r"""Importance-sampled :math:`\log p_\theta(x_i)` with K samples, in bounded memory.

    Parameters
    ----------
    log_weights_fn : callable ``(idx, k_chunk) -> ndarray, shape (k_chunk, len(idx))``
        Draws ``k_chunk`` fresh samples :math:`z \sim q_\gamma(z \mid x_i)` for the data points
        ``idx`` (an int array) and returns their log-weights. Called with no gradient recording
        by the caller's choice; this function only combines the chunks.
    n : int
        Number of data points.
    k : int
        Total importance samples per point (Burda et al. use 5000).
    chunk_size : int
        At most about this many (sample, point) pairs are materialised at a time.
    progress : bool
        Show a progress bar (importance samples drawn so far, time left) on a terminal (see
        :mod:`scratchdgm.progress`): at once for :data:`EVAL_BAR_AT_ONCE` samples or more, else
        once the evaluation has lasted :data:`EVAL_BAR_DELAY` seconds; removed when done.

    Returns
    -------
    ndarray, shape (n,)
        :math:`\log \frac1K \sum_{k=1}^K w_{ik}` for each point.

    Notes
    -----
    .. math::

        \log \hat p(x_i) = \log \frac1K \sum_{k=1}^K
        \frac{p_\theta(x_i \mid z_{ik}) \, p(z_{ik})}{q_\gamma(z_{ik} \mid x_i)},
        \qquad z_{ik} \sim q_\gamma(z \mid x_i).

    The K samples are split into chunks; each chunk contributes its log-sum-exp
    :math:`\log \sum_{k \in c} w_k` (:func:`scratchdgm.numerics.logsumexp`) and the chunks are
    combined by one more log-sum-exp, so the result equals the
    one-shot estimate up to rounding while memory stays :math:`O(\text{chunk\_size})`. This is a
    single draw of :math:`\mathcal L_K`, a lower bound on average that is consistent as
    :math:`K \to \infty`.

    References
    ----------
    Burda et al. (2016), ICLR, Section 5 ("log-likelihood ... estimated with k = 5000");
    lecture [Mattei-DGM, "Maximum likelihood for DLVMs via importance sampling"].
    """
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k (the number of importance samples) must be an int >= 1, got {k!r}")
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"n must be a non-negative int, got {n!r}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size!r}")
    k, n = int(k), int(n)
    out = np.empty(n)
    # Points per batch and samples per chunk so that one call holds <= ~chunk_size pairs.
    k_chunk = min(k, chunk_size)
    batch = max(1, chunk_size // k_chunk)
    with likelihood_bar(n, k, progress) as bar:
        for start in range(0, n, batch):
            idx = np.arange(start, min(n, start + batch))
            partial = []
            done = 0
            while done < k:
                kc = min(k_chunk, k - done)
                lw = np.asarray(log_weights_fn(idx, kc), dtype=np.float64)
                if lw.shape != (kc, len(idx)):
                    raise ValueError(f"log_weights_fn returned shape {lw.shape}, expected "
                                     f"({kc}, {len(idx)})")
                partial.append(_num.logsumexp(lw, axis=0))
                done += kc
                bar.update(kc * len(idx))
            out[idx] = _num.logsumexp(np.stack(partial), axis=0) - math.log(k)
    return out


def likelihood_bar(n, k, enabled=True):
    r"""The progress bar of an importance-sampled log-likelihood of ``n`` points with ``k``
    samples each: importance samples drawn and time left, drawn at once from
    :data:`EVAL_BAR_AT_ONCE` samples, else after :data:`EVAL_BAR_DELAY` seconds; removed when
    done (a :func:`scratchdgm.progress.progress` bar, quiet off a terminal)."""
    delay = 0.0 if n * k >= EVAL_BAR_AT_ONCE else EVAL_BAR_DELAY
    return _progress(total=n * k, desc=f"log p(x), K={k}", unit="sample", unit_scale=True,
                     enabled=enabled, leave=False, delay=delay)
