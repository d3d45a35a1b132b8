r"""Monte Carlo estimators, as the lectures teach them: simple Monte Carlo, importance sampling
(plain and self-normalised), the effective sample size of importance weights, and the two
unbiased estimators of the gradient of an expectation -- the score function (REINFORCE) and the
reparametrisation trick.

Everything in a deep latent-variable model rests on these few lines. The likelihood
:math:`p_\theta(x) = \mathbb E_{p(z)}[p_\theta(x \mid z)]` is an integral estimated by importance
sampling with the proposal :math:`q_\gamma(z \mid x)` (:func:`importance_sampling`; the IWAE bound
is the log of that estimate), and training needs the gradient in :math:`\gamma` of an expectation
under :math:`q_\gamma` (:func:`score_function_gradient`, :func:`reparametrised_gradient`).

* :func:`monte_carlo` -- :math:`I = \mathbb E_p[f(x)]` from draws :math:`x_k \sim p`;
* :func:`importance_sampling` -- the same :math:`I` (or :math:`\int \tilde p` for an
  unnormalised :math:`\tilde p`) from draws :math:`x_k \sim q`;
* :func:`self_normalised_importance_sampling` -- :math:`\mathbb E_p[f]` when :math:`p` is known
  only up to its normalising constant;
* :func:`effective_sample_size` -- how many draws from :math:`p` the K weighted draws are worth;
* :func:`score_function_gradient` -- :math:`\nabla_\gamma \mathbb E_{q_\gamma}[f(z)]` by the
  log-derivative trick, with an optional baseline;
* :func:`reparametrised_gradient` -- the same gradient through
  :math:`z = \mu_\gamma + \sigma_\gamma \odot \varepsilon`;
* :func:`gradient` -- the gradient of a scalar Tensor as arrays (what both return).

The distributions are those of :mod:`scratchdgm.distributions` (anything with ``sample`` and
``log_prob``; ``rsample`` for the reparametrisation), every sample shape is ``(K, *batch, d)``
(K draws on axis 0, the event on the last axis) and every function of the samples returns shape
``(K, *batch)``. Randomness is explicit: ``random_state`` (None, an int seed or a
``numpy.random.Generator``).

Lecture (keys in ``docs/lectures.md``): [Mattei-DGM, "Beyond simple MC: importance sampling"],
[Mattei-DGM, "The optimal importance sampling proposal"], [Mattei-S2D, "Aparté: Monte Carlo and
importance sampling"] (the proposal must have heavier tails than the target),
[Mattei-DGM, "Now the tricky part: $\nabla_{\gamma}$"] (the score-function estimator),
[Mattei-DGM, "Reparametrisation trick for $\nabla_{\gamma}$"], and
[Su-DGM, "Estimating $\partial \mathbb{E}_{q_{\phi}(z|x)}[\ln p_{\theta}(x|z)]/\partial \phi$"].
The effective sample size is not on the slides: Kong (1992), Liu (1996), Owen (2013, §9.3).
"""

from typing import NamedTuple, Optional

import numpy as np

from scratchdgm import autodiff as _ad
from scratchdgm import numerics as _num
from scratchdgm.validation import check_positive_int, check_random_state

__all__ = [
    "Estimate",
    "monte_carlo",
    "importance_sampling",
    "self_normalised_importance_sampling",
    "effective_sample_size",
    "score_function_gradient",
    "reparametrised_gradient",
    "gradient",
]


class Estimate(NamedTuple):
    r"""A Monte Carlo estimate and what it was made of.

    Attributes
    ----------
    value : ndarray, shape batch
        The estimate :math:`\hat I_K`.
    log_value : ndarray, shape batch
        :math:`\log \hat I_K`, computed without forming :math:`\hat I_K` when it would under- or
        overflow (the importance-sampled :math:`\log p(x)` needs this); NaN where
        :math:`\hat I_K \le 0`.
    standard_error : ndarray, shape batch
        :math:`\hat\sigma / \sqrt K` with :math:`\hat\sigma^2` the sample variance of the K
        averaged terms (for simple and plain importance sampling: the estimated standard
        deviation of :math:`\hat I_K`; for the self-normalised estimator, the delta-method one).
    samples : ndarray, shape (K, *batch, d)
        The draws :math:`x_k`.
    log_w : ndarray, shape (K, *batch), or None
        The log importance weights :math:`\log p(x_k) - \log q(x_k)` (None for simple Monte
        Carlo).
    """

    value: np.ndarray
    log_value: np.ndarray
    standard_error: np.ndarray
    samples: np.ndarray
    log_w: Optional[np.ndarray]


def _array(v):
    """Values of a Tensor or array-like as a float ndarray (no graph)."""
    return np.asarray(v.data if isinstance(v, _ad.Tensor) else v, dtype=np.float64)


def _evaluate(fn, x, name, where):
    r"""``fn(x)`` for ``x`` of shape (K, *batch, d), checked to have shape (K, *batch): ``fn`` is
    a callable or a distribution (its ``log_prob``)."""
    call = getattr(fn, "log_prob", fn)
    if not callable(call):
        raise TypeError(f"{where}: {name} must be a callable or a distribution, got "
                        f"{type(fn).__name__}")
    with _ad.no_grad():
        out = _array(call(x))
    if out.shape != x.shape[:-1]:
        raise ValueError(f"{where}: {name} returned shape {out.shape} for samples of shape "
                         f"{x.shape}; expected {x.shape[:-1]} (one value per draw, the event "
                         f"axis reduced)")
    return out


def _draw(q, k, rng, where):
    k = check_positive_int(k, "k", where)
    if not hasattr(q, "sample"):
        raise TypeError(f"{where}: expected a distribution with sample(sample_shape, "
                        f"random_state), got {type(q).__name__}")
    return q.sample((k,), rng)


def _log_mean(log_w, fx):
    r"""``(value, log_value, standard_error)`` of :math:`\frac1K \sum_k e^{\log w_k} f_k`,
    with the weights scaled by :math:`e^{-m}`, :math:`m = \max_k \log w_k`, so that the largest
    is 1 and none overflows (the log-sum-exp trick); ``log_value`` never forms :math:`e^m`."""
    m = np.max(log_w, axis=0)
    m = np.where(np.isfinite(m), m, 0.0)
    scaled = np.exp(log_w - m) * fx                 # w_k f(x_k) e^{-m}: never overflows
    mean = scaled.mean(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_value = np.where(mean > 0, m + np.log(np.where(mean > 0, mean, 1.0)), np.nan)
    k = log_w.shape[0]
    spread = scaled.std(axis=0, ddof=1) if k > 1 else np.full(mean.shape, np.inf)
    return mean * np.exp(m), log_value, spread * np.exp(m) / np.sqrt(k)


def monte_carlo(f, p, k, random_state=None):
    r"""Simple Monte Carlo: :math:`\hat I_K = \frac1K \sum_{k=1}^K f(x_k)`, :math:`x_k \sim p`.

    Parameters
    ----------
    f : callable
        ``f(x)`` for ``x`` of shape (K, *batch, d) returns shape (K, *batch) (a Tensor or an
        array).
    p : Distribution
        The distribution of the expectation, batch shape ``batch``.
    k : int
        :math:`K \ge 1` draws.
    random_state : None, int or numpy.random.Generator

    Returns
    -------
    Estimate
        ``log_w`` is None.

    Notes
    -----
    .. math::

        I = \mathbb E_{x \sim p}[f(x)] \approx \hat I_K = \frac1K \sum_{k=1}^K f(x_k), \qquad
        \mathbb E[\hat I_K] = I, \qquad \mathrm{Var}[\hat I_K] = \frac{\mathrm{Var}_p[f(x)]}{K}:

    unbiased, consistent, asymptotically normal -- and its variance, although it falls as
    :math:`1/K`, can be large when :math:`f` is large where :math:`p` rarely goes.

    References
    ----------
    [Mattei-DGM, "Beyond simple MC: importance sampling"]; [Mattei-S2D, "Aparté: Monte Carlo
    and importance sampling"].
    """
    rng = check_random_state(random_state, "monte_carlo")
    x = _draw(p, k, rng, "monte_carlo")             # x_k ~ p, shape (K, *batch, d)
    fx = _evaluate(f, x, "f", "monte_carlo")        # f(x_k), shape (K, *batch)
    value = fx.mean(axis=0)
    se = fx.std(axis=0, ddof=1) / np.sqrt(len(fx)) if len(fx) > 1 else np.full(value.shape,
                                                                               np.inf)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_value = np.where(value > 0, np.log(np.where(value > 0, value, 1.0)), np.nan)
    return Estimate(value, log_value, se, x, None)


def importance_sampling(f, log_p, q, k, random_state=None):
    r"""Importance sampling: :math:`\hat I_K = \frac1K \sum_k w_k f(x_k)`,
    :math:`w_k = p(x_k) / q(x_k)`, :math:`x_k \sim q`.

    Parameters
    ----------
    f : callable or None
        ``f(x)``, shape (K, *batch, d) -> (K, *batch); None for :math:`f \equiv 1` (then the
        estimate is :math:`\int p`, e.g. the likelihood :math:`p_\theta(x) = \int
        p_\theta(x, z)\, dz` when ``log_p`` is :math:`z \mapsto \log p_\theta(x, z)`).
    log_p : callable or Distribution
        :math:`\log p(x)` of the target (a distribution's ``log_prob``, or a callable returning
        shape (K, *batch)); it need not be normalised.
    q : Distribution
        The proposal, batch shape ``batch``; it must put mass wherever :math:`f p` does, with
        tails at least as heavy as :math:`f p`'s.
    k : int
        :math:`K \ge 1` draws from ``q``.
    random_state : None, int or numpy.random.Generator

    Returns
    -------
    Estimate
        ``log_value`` is :math:`\log \hat I_K` computed from the log-weights without
        exponentiating them, so it is exact even when every :math:`w_k` underflows
        (:math:`\log p_\theta(x) \approx -100` nats for a binary image).

    Notes
    -----
    .. math::

        I = \int f(x) p(x)\, dx = \mathbb E_{x \sim q}\Big[f(x) \frac{p(x)}{q(x)}\Big]
        \approx \frac1K \sum_{k=1}^K w_k f(x_k), \qquad
        \mathrm{Var}[\hat I_K] = \frac1K \mathrm{Var}_q\Big[\frac{f(x) p(x)}{q(x)}\Big].

    Unbiased for any :math:`q` with :math:`q > 0` where :math:`f p \ne 0`. For :math:`f \ge 0`
    the variance is zero for :math:`q^\star = f p / I` -- which needs the unknown :math:`I`, but
    shows what a good proposal is. A proposal with lighter tails than :math:`f p` gives weights
    of infinite variance: the estimate is still unbiased but usually far too small, with rare
    huge values (:func:`effective_sample_size` shows it). With
    :math:`m = \max_k \log w_k`,

    .. math::

        \log \hat I_K = m + \log \frac1K \sum_k e^{\log w_k - m} f(x_k)
        \quad (f \ge 0),

    the log-sum-exp trick of :mod:`scratchdgm.numerics`.

    References
    ----------
    [Mattei-DGM, "Beyond simple MC: importance sampling"], [Mattei-DGM, "The optimal importance
    sampling proposal"], [Mattei-S2D, "Aparté: Monte Carlo and importance sampling"] (the
    heavier-tails condition); Owen (2013), *Monte Carlo theory, methods and examples*, ch. 9,
    §9.1 (basic importance sampling: its variance and the optimal proposal :math:`q \propto |f|
    p`).
    """
    rng = check_random_state(random_state, "importance_sampling")
    x = _draw(q, k, rng, "importance_sampling")                 # x_k ~ q
    log_w = (_evaluate(log_p, x, "log_p", "importance_sampling")
             - _evaluate(q, x, "q", "importance_sampling"))     # log p(x_k) - log q(x_k)
    fx = 1.0 if f is None else _evaluate(f, x, "f", "importance_sampling")
    value, log_value, se = _log_mean(log_w, fx)                 # (1/K) sum_k w_k f(x_k)
    return Estimate(value, log_value, se, x, log_w)


def self_normalised_importance_sampling(f, log_p, q, k, random_state=None):
    r"""Self-normalised importance sampling: :math:`\hat I_K = \sum_k \tilde w_k f(x_k)`,
    :math:`\tilde w_k = w_k / \sum_j w_j`, :math:`x_k \sim q`.

    Parameters
    ----------
    f : callable
        ``f(x)``, shape (K, *batch, d) -> (K, *batch).
    log_p : callable or Distribution
        :math:`\log \tilde p(x)` up to an additive constant (an unnormalised target: a posterior
        :math:`p_\theta(z \mid x) \propto p_\theta(x, z)`).
    q : Distribution
        The proposal.
    k : int
        :math:`K \ge 1`.
    random_state : None, int or numpy.random.Generator

    Returns
    -------
    Estimate

    Notes
    -----
    .. math::

        \mathbb E_p[f] = \frac{\mathbb E_q[w f]}{\mathbb E_q[w]}
        \approx \sum_{k=1}^K \tilde w_k f(x_k), \qquad
        \tilde w_k = \frac{e^{\log w_k}}{\sum_j e^{\log w_j}} = \operatorname{softmax}_k(\log w),

    so the unknown normalising constant cancels. A ratio of two unbiased estimates: biased
    (:math:`O(1/K)`), consistent. Its standard error is the delta-method one,
    :math:`\big(\sum_k \tilde w_k^2 (f(x_k) - \hat I_K)^2\big)^{1/2}` (Owen 2013, §9.2).

    References
    ----------
    Owen (2013), *Monte Carlo theory, methods and examples*, §9.2 (self-normalised importance
    sampling: the estimate and its delta-method variance); the
    normalised weights are those of the IWAE gradient (Burda et al. 2016, eq. 14).
    """
    rng = check_random_state(random_state, "self_normalised_importance_sampling")
    where = "self_normalised_importance_sampling"
    x = _draw(q, k, rng, where)
    log_w = _evaluate(log_p, x, "log_p", where) - _evaluate(q, x, "q", where)
    fx = _evaluate(f, x, "f", where)
    w_tilde = np.exp(log_w - _num.logsumexp(log_w, axis=0, keepdims=True))  # softmax over k
    value = np.sum(w_tilde * fx, axis=0)
    se = np.sqrt(np.sum(w_tilde**2 * (fx - value) ** 2, axis=0))
    with np.errstate(divide="ignore", invalid="ignore"):
        log_value = np.where(value > 0, np.log(np.where(value > 0, value, 1.0)), np.nan)
    return Estimate(value, log_value, se, x, log_w)


def effective_sample_size(log_w, axis=0):
    r"""Kish's effective sample size of importance weights, from their logarithms.

    Parameters
    ----------
    log_w : array_like
        Log importance weights, the K draws along ``axis`` (any scale: the ESS does not change
        when every weight is multiplied by the same constant).
    axis : int

    Returns
    -------
    ndarray
        ``log_w`` with ``axis`` removed; values in :math:`[1, K]`.

    Notes
    -----
    .. math::

        \mathrm{ESS} = \frac{\big(\sum_k w_k\big)^2}{\sum_k w_k^2}
        = \frac{1}{\sum_k \tilde w_k^2}
        = \exp\big(2 \operatorname{logsumexp}_k(\log w_k)
        - \operatorname{logsumexp}_k(2 \log w_k)\big):

    K for equal weights, 1 when one weight carries everything. For weights of finite variance,
    :math:`\mathrm{ESS}/K \to (\mathbb E_q w)^2 / \mathbb E_q[w^2]` as K grows; for weights of
    infinite variance (a proposal with lighter tails than the target) :math:`\mathrm{ESS}/K
    \to 0`.

    References
    ----------
    Kong (1992), *A note on importance sampling using standardized weights*, Tech. rep. 348,
    University of Chicago; Liu (1996), *Metropolized independent sampling with comparisons to
    rejection sampling and importance sampling*, Statistics and Computing 6; Owen (2013),
    *Monte Carlo theory, methods and examples*, §9.3 (importance sampling diagnostics).
    """
    log_w = np.asarray(log_w, dtype=np.float64)
    if log_w.ndim == 0 or log_w.shape[axis] < 1:
        raise ValueError(f"effective_sample_size: log_w needs at least one weight along axis "
                         f"{axis}, got shape {log_w.shape}")
    return np.exp(2.0 * _num.logsumexp(log_w, axis=axis) - _num.logsumexp(2.0 * log_w, axis=axis))


# ----------------------------------------------------------------- gradients of expectations


def gradient(output, params, where="gradient"):
    r"""The gradient of a scalar Tensor with respect to each Tensor of ``params``, as arrays.

    Parameters
    ----------
    output : Tensor, shape ()
    params : list of Tensor
    where : str
        Named in error messages.

    Returns
    -------
    list of ndarray
        One array per tensor of ``params``, of its shape (zeros where ``output`` does not
        depend on it).

    Notes
    -----
    The ``.grad`` of ``params`` is left as it was; like any ``backward()``, the call accumulates
    into the ``.grad`` of the *other* leaves ``output`` depends on (call ``zero_grad`` on a model
    whose weights are not among ``params``).
    """
    params = list(params)
    if not params or not all(isinstance(t, _ad.Tensor) for t in params):
        raise TypeError(f"{where}: params must be a non-empty list of Tensors (the parameters "
                        f"of q, or the weights they are computed from)")
    saved = [t.grad for t in params]
    for t in params:
        t.grad = None
    if output.requires_grad:
        output.backward()
    grads = [np.zeros_like(t.data) if t.grad is None else t.grad for t in params]
    for t, g in zip(params, saved):
        t.grad = g
    return grads


def _baseline(f_z, baseline, where):
    r"""The control variate :math:`b_k` subtracted from :math:`f(z_k)`, shape (K, *batch)."""
    if baseline is None:
        return np.zeros_like(f_z)
    if isinstance(baseline, str):
        if baseline != "loo":
            raise ValueError(f"{where}: baseline must be None, a number, an array or 'loo', "
                             f"got {baseline!r}")
        k = f_z.shape[0]
        if k < 2:
            raise ValueError(f"{where}: baseline='loo' (the mean of the other K - 1 draws) "
                             f"needs k >= 2, got k = {k}")
        return (f_z.sum(axis=0) - f_z) / (k - 1)
    return np.broadcast_to(_array(baseline), f_z.shape)


def score_function_gradient(f, q, params, k, random_state=None, *, baseline=None):
    r"""The score-function (REINFORCE) estimate of :math:`\nabla \sum_{\text{batch}}
    \mathbb E_{z \sim q}[f(z)]`.

    Parameters
    ----------
    f : callable
        ``f(z)`` for a Tensor ``z`` of shape (K, *batch, d) returns shape (K, *batch): a Tensor
        (it may depend on parameters of its own, :math:`\theta`) or a plain array (a black box:
        this estimator never differentiates :math:`f` in :math:`z`).
    q : Distribution
        :math:`q_\gamma`, whose parameters are Tensors computed from ``params`` (e.g.
        ``DiagNormal(mu, log_sigma)`` with ``mu``, ``log_sigma`` requiring gradients, or an
        encoder's output).
    params : list of Tensor
        The tensors to differentiate with respect to (:math:`\gamma`, and :math:`\theta` if
        ``f`` uses it).
    k : int
        :math:`K \ge 1` draws (:math:`K \ge 2` for ``baseline='loo'``).
    random_state : None, int or numpy.random.Generator
    baseline : None, float, array or 'loo'
        A control variate :math:`b` subtracted from :math:`f(z_k)`: a constant (unbiased because
        :math:`\mathbb E_q[\nabla_\gamma \log q_\gamma(z)] = 0`), or ``'loo'``, the mean of the
        *other* K - 1 draws, :math:`b_k = \frac{1}{K-1} \sum_{j \ne k} f(z_j)` (unbiased because
        it is independent of :math:`z_k`).

    Returns
    -------
    list of ndarray
        One gradient per tensor of ``params``, of its shape.

    Notes
    -----
    :math:`\gamma` is in the sampling density, so the gradient cannot simply go inside the
    expectation. The product rule and :math:`\nabla_\gamma q_\gamma = q_\gamma \nabla_\gamma
    \log q_\gamma` give

    .. math::

        \nabla \mathbb E_{q_\gamma}[f(z)] = \mathbb E_{q_\gamma}\big[\nabla f(z)
        + (f(z) - b)\, \nabla \log q_\gamma(z)\big]
        \approx \frac1K \sum_{k=1}^K \big[\nabla f(z_k) + (f(z_k) - b_k)\, \nabla \log
        q_\gamma(z_k)\big], \qquad z_k \sim q_\gamma,

    with the draws :math:`z_k` held fixed (no path from :math:`\gamma` to :math:`z_k`). The
    code builds the surrogate :math:`\frac1K \sum_k [f(z_k) + (f(z_k) - b_k)_{\text{const}}
    \log q_\gamma(z_k)]`, whose autodiff gradient is this estimate. General -- :math:`f` need not
    be differentiable, :math:`q` need not be reparametrisable -- but of large variance: every
    draw moves :math:`\gamma` in the direction of its score, scaled by :math:`f(z_k)`, which
    cancels only on average.

    References
    ----------
    Williams (1992), *Simple statistical gradient-following algorithms for connectionist
    reinforcement learning*, Machine Learning 8 (REINFORCE, with a baseline); Mohamed, Rosca,
    Figurnov & Mnih (2020), *Monte Carlo gradient estimation in machine learning*, JMLR 21,
    §4 (score-function estimators) and §7 (variance reduction, control variates); Kool, van Hoof & Welling (2019), *Buy 4
    REINFORCE samples, get a baseline for free!*, ICLR workshop (the leave-one-out baseline).
    Lecture [Mattei-DGM, "Now the tricky part: $\nabla_{\gamma}$"];
    [Su-DGM, "Estimating $\partial \mathbb{E}_{q_{\phi}(z|x)}[\ln p_{\theta}(x|z)]/\partial \phi$"].
    """
    where = "score_function_gradient"
    rng = check_random_state(random_state, where)
    z = _draw(q, k, rng, where)                     # z_k ~ q: constants, no path from gamma
    f_z = f(_ad.tensor(z))                          # f(z_k), shape (K, *batch)
    f_values = _array(f_z)
    b = _baseline(f_values, baseline, where)
    log_q = q.log_prob(z)                           # log q_gamma(z_k): depends on gamma
    surrogate = f_z + (f_values - b) * log_q        # grad: grad f + (f - b) grad log q
    return gradient(surrogate.mean(axis=0).sum(), params, where)


def reparametrised_gradient(f, q, params, k, random_state=None):
    r"""The reparametrised (pathwise) estimate of :math:`\nabla \sum_{\text{batch}}
    \mathbb E_{z \sim q}[f(z)]`.

    Parameters
    ----------
    f : callable
        ``f(z)`` for a Tensor ``z`` of shape (K, *batch, d) returns a Tensor of shape
        (K, *batch), differentiable in ``z``.
    q : Distribution with ``rsample``
        :math:`q_\gamma` (:class:`~scratchdgm.distributions.DiagNormal`,
        :class:`~scratchdgm.distributions.FullNormal`), parameters computed from ``params``.
    params : list of Tensor
    k : int
        :math:`K \ge 1`.
    random_state : None, int or numpy.random.Generator

    Returns
    -------
    list of ndarray
        One gradient per tensor of ``params``.

    Notes
    -----
    Write the draw as a differentiable function of :math:`\gamma` and parameter-free noise,
    :math:`z = \mu_\gamma + \sigma_\gamma \odot \varepsilon`, :math:`\varepsilon \sim
    \mathcal N(0, I)` (``q.rsample``). The expectation is then over :math:`\varepsilon`, which
    does not depend on :math:`\gamma`, and the gradient goes inside:

    .. math::

        \nabla_\gamma \mathbb E_{q_\gamma}[f(z)]
        = \mathbb E_{\varepsilon}\big[\nabla_\gamma f(\mu_\gamma + \sigma_\gamma \odot
        \varepsilon)\big]
        \approx \frac1K \sum_{k=1}^K \nabla_\gamma f(\mu_\gamma + \sigma_\gamma \odot
        \varepsilon_k).

    It uses the derivative of :math:`f`, which the score function ignores, and usually has far
    lower variance; it needs :math:`f` differentiable and :math:`q` reparametrisable.

    References
    ----------
    Kingma & Welling (2014), *Auto-encoding variational Bayes*, ICLR, §2.4; Mohamed et al.
    (2020), JMLR 21, §5 (pathwise estimators). Lecture [Mattei-DGM, "Reparametrisation trick
    for $\nabla_{\gamma}$"]; [Su-DGM, "Estimating Derivatives with the Re-parameterization
    Trick"].
    """
    where = "reparametrised_gradient"
    rng = check_random_state(random_state, where)
    k = check_positive_int(k, "k", where)
    if not hasattr(q, "rsample"):
        raise TypeError(f"{where}: {type(q).__name__} has no rsample; the reparametrisation "
                        f"trick needs a distribution drawn as a differentiable function of its "
                        f"parameters (DiagNormal, FullNormal). Use score_function_gradient")
    z = q.rsample((k,), rng)                        # z_k = mu + sigma * eps_k: a path to gamma
    return gradient(f(z).mean(axis=0).sum(), params, where)
