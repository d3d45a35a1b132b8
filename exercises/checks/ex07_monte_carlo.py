r"""Checks of exercise 07: simple Monte Carlo and importance sampling, and their variance --
``monte_carlo``, ``_log_mean``, ``importance_sampling``, ``self_normalised_importance_sampling``
and ``effective_sample_size`` in ``scratchdgm/estimators.py``. Page:
``exercises/07_monte_carlo.md``.

References, none of them the code being checked: the checks' own Gaussian (:class:`Normal`, drawn
with NumPy and scored with ``scipy.stats.norm``), which records its draws so that every estimate
can be recomputed here from the very draws it used; closed-form moments
(:math:`\mathbb E[x^2] = \mu^2 + s^2`, :math:`\mathrm{Var}[x^2] = 2s^4 + 4\mu^2 s^2` under
:math:`\mathcal N(\mu, s^2)`); the variance of an importance-sampling estimate,
:math:`\frac1K(\int f^2 p^2 / q - I^2)`, in closed form for a Gaussian tail;
``scipy.special.logsumexp``.

Statistical checks put R independent replicates of one estimate in the batch axis (one call, R
estimates) and compare their mean and variance with the closed forms; their margins were checked
on seeds 0-19 (the worst of the twenty is said next to each).
"""

import math

import numpy as np
from scipy import special, stats

from ._common import show


class Normal:
    r"""The checks' own diagonal Gaussian :math:`\mathcal N(\mu, \operatorname{diag} s^2)`,
    batch shape ``mu.shape[:-1]``: ``sample(sample_shape, random_state)`` and ``log_prob(x)``
    (summed over the last axis), the two methods the estimators use. ``last`` is its latest
    draw."""

    def __init__(self, mu, sigma):
        self.mu = np.asarray(mu, np.float64)
        self.sigma = np.broadcast_to(np.asarray(sigma, np.float64), self.mu.shape)
        self.last = None

    def sample(self, sample_shape=(), random_state=None):
        rng = (random_state if isinstance(random_state, np.random.Generator)
               else np.random.default_rng(random_state))
        shape = tuple(np.atleast_1d(sample_shape)) + self.mu.shape
        self.last = self.mu + self.sigma * rng.standard_normal(shape)
        return self.last.copy()

    def log_prob(self, x):
        return stats.norm.logpdf(np.asarray(x), self.mu, self.sigma).sum(axis=-1)


def logsumexp(a, axis=None, keepdims=False):
    r"""SciPy's log-sum-exp, standing in for ``scratchdgm.numerics.logsumexp`` (exercise 09) while
    these checks run, so that they do not depend on exercise 09."""
    with np.errstate(all="ignore"):
        return special.logsumexp(np.asarray(a, np.float64), axis=axis, keepdims=keepdims)


def square(x):
    r""":math:`f(x) = \lVert x \rVert^2`, shape (K, *batch, d) -> (K, *batch)."""
    return np.sum(np.asarray(x) ** 2, axis=-1)


def _fields(est, what):
    for name in ("value", "log_value", "standard_error", "samples", "log_w"):
        if not hasattr(est, name):
            raise AssertionError(f"{what} returned {type(est).__name__}, which has no "
                                 f"'{name}': return an Estimate(value, log_value, "
                                 f"standard_error, samples, log_w)")
    return (np.asarray(est.value, np.float64), np.asarray(est.log_value, np.float64),
            np.asarray(est.standard_error, np.float64), np.asarray(est.samples, np.float64))


def _same(got, want, rtol=1e-9):
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    return got.shape == want.shape and np.allclose(got, want, rtol=rtol, atol=1e-12,
                                                   equal_nan=True)


def _check_log_value(log_value, value, what):
    with np.errstate(divide="ignore", invalid="ignore"):
        want = np.where(value > 0, np.log(np.where(value > 0, value, 1.0)), np.nan)
    if not _same(log_value, want):
        raise AssertionError(f"{what}: log_value is {show(log_value)}, expected log(value) = "
                             f"{show(want)} (NaN where the value is <= 0)")


def _check_standard_error(se, terms, what, term_name):
    r"""``se`` must be the sample standard deviation (ddof = 1) of the K averaged ``terms``
    divided by :math:`\sqrt K`."""
    k = terms.shape[0]
    want = terms.std(axis=0, ddof=1) / math.sqrt(k)
    if _same(se, want):
        return
    hint = ""
    if _same(se, terms.std(axis=0, ddof=0) / math.sqrt(k)):
        hint = (" -- that uses the biased standard deviation (ddof=0); the sample variance "
                "divides by K - 1")
    elif _same(se, want * math.sqrt(k)):
        hint = (f" -- that is the standard deviation of one {term_name}; the estimate averages "
                f"K of them, so divide by sqrt(K)")
    elif _same(se, want**2):
        hint = " -- that is the variance of the estimate; the standard error is its square root"
    elif _same(se, want / math.sqrt(k)):
        hint = " -- you divided by K instead of sqrt(K)"
    raise AssertionError(f"{what}: standard_error is {show(se)}, expected {show(want)} = "
                         f"std({term_name}, ddof=1) / sqrt(K){hint}")


# ----------------------------------------------------------------------------- simple MC
def check_monte_carlo_arithmetic(monte_carlo, k=50, seed=0):
    r"""On a batch of three 2-d Gaussians: the draws come from ``p`` (through ``random_state``),
    the value is the mean of :math:`f(x_k)` over axis 0, the standard error is
    :math:`\hat\sigma / \sqrt K`, ``log_value`` its log and ``log_w`` None."""
    p = Normal([[0.0, 1.0], [2.0, -1.0], [0.5, 0.5]], [[1.0, 0.5], [2.0, 1.0], [0.3, 3.0]])
    est = monte_carlo(square, p, k, seed)
    value, log_value, se, x = _fields(est, "monte_carlo")
    if p.last is None or x.shape != p.last.shape or not np.array_equal(x, p.last):
        raise AssertionError(f"monte_carlo: samples has shape {x.shape}, expected the K = {k} "
                             f"draws of p, shape {(k, 3, 2)}, drawn by p.sample((k,), rng) "
                             f"with rng from random_state")
    fx = square(x)
    want = fx.mean(axis=0)
    if not _same(value, want):
        hint = ""
        if _same(value, fx.sum(axis=0)):
            hint = " -- that is the sum over the K draws: you forgot the 1/K"
        elif np.shape(value) == (k,):
            hint = " -- you averaged over the batch axis; average over axis 0, the K draws"
        raise AssertionError(f"monte_carlo: value is {show(value)}, expected the mean of f "
                             f"over the K draws, {show(want)}{hint}")
    _check_standard_error(se, fx, "monte_carlo", "f(x_k)")
    _check_log_value(log_value, value, "monte_carlo")
    if est.log_w is not None:
        raise AssertionError("monte_carlo: log_w must be None (simple Monte Carlo has no weights)")


def check_monte_carlo_statistics(monte_carlo, seed=0, r=4000, k=20):
    r"""R = 4000 replicates of :math:`\hat I_K`, K = 20, of :math:`\mathbb E[x^2] = \mu^2 + s^2
    = 5` under :math:`\mathcal N(1, 2^2)`: their mean is within 4 standard errors of 5 (worst of
    seeds 0-19: 1.8), their variance within 15 % of :math:`\mathrm{Var}[x^2]/K = 48/20` (worst:
    5 %), and the mean of the reported squared standard errors within 10 % of it (worst: 2.3 %)."""
    mu, s = 1.0, 2.0
    p = Normal(np.full((r, 1), mu), s)
    est = monte_carlo(square, p, k, seed)
    value, _, se, _ = _fields(est, "monte_carlo")
    exact, var_f = mu**2 + s**2, 2 * s**4 + 4 * mu**2 * s**2
    z = (value.mean() - exact) / math.sqrt(var_f / k / r)
    if abs(z) > 4:
        raise AssertionError(f"monte_carlo is biased: {r} estimates of E[x^2] = {exact} under "
                             f"N({mu}, {s}^2) average {value.mean():.4f}, {z:.1f} standard "
                             f"errors away")
    ratio = value.var() / (var_f / k)
    if not 0.85 < ratio < 1.15:
        raise AssertionError(f"monte_carlo: the variance of the estimate over {r} replicates is "
                             f"{ratio:.3f} times Var[f]/K = {var_f / k}; simple Monte Carlo's "
                             f"variance is Var[f]/K")
    ratio = np.mean(se**2) / (var_f / k)
    if not 0.9 < ratio < 1.1:
        raise AssertionError(f"monte_carlo: the squared standard errors average {ratio:.3f} "
                             f"times the true variance of the estimate, Var[f]/K")


# ----------------------------------------------------------------------------- importance sampling
def check_importance_sampling_arithmetic(importance_sampling, k=40, seed=1):
    r"""Target :math:`\mathcal N(\mu, 1)`, proposal :math:`\mathcal N(0, 2^2)`, batch of three
    in 2-d: the draws come from ``q``; :math:`\log w_k = \log p(x_k) - \log q(x_k)`; the value
    is :math:`\frac1K \sum_k w_k f(x_k)`, its standard error that of the terms
    :math:`w_k f(x_k)`; with ``f=None`` the value is the mean weight."""
    p = Normal([[0.0, 1.0], [2.0, -1.0], [0.5, 0.5]], 1.0)
    q = Normal(np.zeros((3, 2)), 2.0)
    for f in (square, None):
        est = importance_sampling(f, p.log_prob, q, k, seed)
        value, log_value, se, x = _fields(est, "importance_sampling")
        if q.last is None or not np.array_equal(x, q.last):
            raise AssertionError(f"importance_sampling: samples must be the K = {k} draws of "
                                 f"the proposal q, shape {(k, 3, 2)} (draw from q, not p: p "
                                 f"may be known only through log p)")
        log_w = p.log_prob(x) - q.log_prob(x)
        got_log_w = np.asarray(est.log_w, np.float64)
        if not _same(got_log_w, log_w):
            hint = ""
            if _same(got_log_w, -log_w):
                hint = " -- that is log q - log p: the weight is p / q"
            raise AssertionError(f"importance_sampling: log_w is {show(got_log_w)}, expected "
                                 f"log p(x_k) - log q(x_k) = {show(log_w)}{hint}")
        fx = np.ones_like(log_w) if f is None else f(x)
        terms = np.exp(log_w) * fx
        want = terms.mean(axis=0)
        if not _same(value, want):
            hint = ""
            if f is not None and _same(value, fx.mean(axis=0)):
                hint = (" -- that is the mean of f over draws from q, without the weights "
                        "p/q: it estimates E_q[f], not E_p[f]")
            elif _same(value, terms.sum(axis=0)):
                hint = " -- that is the sum over the K draws: you forgot the 1/K"
            elif _same(value, terms.sum(axis=0) / np.exp(log_w).sum(axis=0)):
                hint = (" -- that divides by the sum of the weights: the self-normalised "
                        "estimator; plain importance sampling divides by K")
            raise AssertionError(f"importance_sampling{'' if f else ' with f=None'}: value is "
                                 f"{show(value)}, expected (1/K) sum_k w_k f(x_k) = "
                                 f"{show(want)}{hint}")
        _check_standard_error(se, terms, "importance_sampling", "w_k f(x_k)")
        _check_log_value(log_value, value, "importance_sampling")


def check_importance_sampling_is_stable(importance_sampling, k=30, seed=2):
    r"""With :math:`\log \tilde p = \log p - 1000` (or :math:`+ 800`), every weight under- (or
    over-)flows, but ``log_value`` is still :math:`\log \hat I_K`, computed from the log-weights
    (here by SciPy's log-sum-exp)."""
    p, q = Normal(np.zeros((2, 3)), 1.0), Normal(np.full((2, 3), 0.5), 1.5)
    for shift in (-1000.0, 800.0):
        with np.errstate(all="ignore"):
            est = importance_sampling(None, lambda x: p.log_prob(x) + shift, q, k, seed)
        x = np.asarray(est.samples, np.float64)
        log_w = p.log_prob(x) + shift - q.log_prob(x)
        want = special.logsumexp(log_w, axis=0) - math.log(k)
        got = np.asarray(est.log_value, np.float64)
        if not _same(got, want, rtol=1e-10):
            raise AssertionError(f"importance_sampling: with log-weights near {shift:+g} "
                                 f"log_value is {show(got)}, expected {show(want)} -- exp(log w) "
                                 f"{'underflows to 0' if shift < 0 else 'overflows to inf'}: "
                                 f"shift the log-weights by their maximum m over K, average "
                                 f"exp(log w - m) f, and add m back after the log")


def tail_is_variance(threshold, shift):
    r""":math:`\mathrm{Var}_q[f p / q]` for :math:`f = 1\{x > t\}`, :math:`p = \mathcal N(0, 1)`,
    :math:`q = \mathcal N(m, 1)`: :math:`p^2/q = \varphi(x + m)\, e^{m^2}`, so
    :math:`\mathbb E_q[(fp/q)^2] = e^{m^2}\, \bar\Phi(t + m)`, minus :math:`\bar\Phi(t)^2`."""
    return math.exp(shift**2) * stats.norm.sf(threshold + shift) - stats.norm.sf(threshold) ** 2


def check_importance_sampling_statistics(importance_sampling, monte_carlo=None, seed=0,
                                         r=20000, k=20):
    r"""A tail probability, :math:`P(x > 3) \approx 1.35 \cdot 10^{-3}` under
    :math:`\mathcal N(0, 1)`, by importance sampling from :math:`\mathcal N(3.5, 1)`: R = 20000
    estimates with K = 20 are unbiased (within 4 standard errors; worst of seeds 0-19: 2.5) and
    their variance is within 15 % of the closed form :math:`\mathrm{Var}_q[fp/q]/K`
    (:func:`tail_is_variance`; worst: 2 %), some 200 times below simple Monte Carlo's
    :math:`P(1-P)/K`. With ``monte_carlo`` given, its variance on the same problem is checked too
    (within 20 %; worst: 6.5 %), and it must be over 100 times IS's (worst: 190)."""
    threshold, shift = 3.0, 3.5
    exact = stats.norm.sf(threshold)

    def f(x):
        return (np.asarray(x)[..., 0] > threshold).astype(np.float64)

    p, q = Normal(np.zeros((r, 1)), 1.0), Normal(np.full((r, 1), shift), 1.0)
    var_is = tail_is_variance(threshold, shift)
    var_mc = exact * (1 - exact)
    est = importance_sampling(f, p.log_prob, q, k, seed)
    value = np.asarray(est.value, np.float64)
    z = (value.mean() - exact) / math.sqrt(var_is / k / r)
    if abs(z) > 4:
        raise AssertionError(f"importance_sampling is biased: {r} estimates of P(x > 3) = "
                             f"{exact:.6g} average {value.mean():.6g}, {z:.1f} standard errors "
                             f"away")
    ratio = value.var() / (var_is / k)
    if not 0.85 < ratio < 1.15:
        raise AssertionError(f"importance_sampling: the variance of the estimate over {r} "
                             f"replicates is {ratio:.3f} times Var_q[f p / q] / K (in "
                             f"closed form); it should be that")
    if monte_carlo is not None:
        mc = np.asarray(monte_carlo(f, p, k, seed + 1).value, np.float64)
        ratio = mc.var() / (var_mc / k)
        if not 0.8 < ratio < 1.25:
            raise AssertionError(f"monte_carlo: on P(x > 3) its variance is {ratio:.3f} times "
                                 f"P(1 - P)/K")
        if not mc.var() > 100 * value.var():
            raise AssertionError(f"importance sampling should beat simple Monte Carlo on a "
                                 f"tail probability by a factor of about {var_mc / var_is:.0f}; "
                                 f"the variances were {value.var():.3g} and {mc.var():.3g}")


# ----------------------------------------------------------------------------- self-normalised
def check_self_normalised_arithmetic(snis, k=40, seed=3):
    r"""Target known up to a constant (:math:`\log \tilde p = \log p + 7`): the value is
    :math:`\sum_k \tilde w_k f(x_k)` with :math:`\tilde w = \operatorname{softmax}_k(\log w)`,
    unchanged by the constant and by a shift of 800 nats (no overflow), its standard error
    :math:`(\sum_k \tilde w_k^2 (f(x_k) - \hat I)^2)^{1/2}`."""
    p = Normal([[0.0, 1.0], [2.0, -1.0]], 1.0)
    q = Normal(np.zeros((2, 2)), 2.0)

    def first(x):
        return np.asarray(x)[..., 0]

    est = snis(first, lambda x: p.log_prob(x) + 7.0, q, k, seed)
    value, log_value, se, x = _fields(est, "self_normalised_importance_sampling")
    if q.last is None or not np.array_equal(x, q.last):
        raise AssertionError("self_normalised_importance_sampling: samples must be the K draws "
                             "of the proposal q")
    log_w = p.log_prob(x) + 7.0 - q.log_prob(x)
    if not _same(est.log_w, log_w):
        raise AssertionError(f"self_normalised_importance_sampling: log_w is {show(est.log_w)}, "
                             f"expected log p~(x_k) - log q(x_k) = {show(log_w)}")
    w_tilde = special.softmax(log_w, axis=0)
    fx = first(x)
    want = np.sum(w_tilde * fx, axis=0)
    if not _same(value, want):
        hint = ""
        if _same(value, np.mean(np.exp(log_w) * fx, axis=0)):
            hint = (" -- that is plain importance sampling, (1/K) sum w_k f: with p known up to "
                    "a constant, divide by the sum of the weights instead of K")
        elif _same(value, np.mean(fx, axis=0)):
            hint = " -- that is the unweighted mean of f over draws from q"
        raise AssertionError(f"self_normalised_importance_sampling: value is {show(value)}, "
                             f"expected sum_k w~_k f(x_k) = {show(want)}{hint}")
    want_se = np.sqrt(np.sum(w_tilde**2 * (fx - want) ** 2, axis=0))
    if not _same(se, want_se):
        raise AssertionError(f"self_normalised_importance_sampling: standard_error is "
                             f"{show(se)}, expected the delta-method (sum_k w~_k^2 (f(x_k) - "
                             f"value)^2)^(1/2) = {show(want_se)}")
    _check_log_value(log_value, value, "self_normalised_importance_sampling")
    with np.errstate(all="ignore"):
        far = snis(first, lambda x: p.log_prob(x) + 800.0, q, k, seed)
    if not _same(far.value, want):
        raise AssertionError(f"self_normalised_importance_sampling: with log-weights near 800 "
                             f"the value is {show(far.value)}, expected {show(want)}: the "
                             f"constant cancels, but exp(log w) overflows -- normalise the "
                             f"weights from the log-weights (softmax via log-sum-exp)")


# ----------------------------------------------------------------------------- ESS
def check_effective_sample_size(ess, seed=4):
    r""":math:`(\sum_k w_k)^2 / \sum_k w_k^2` from log-weights: K for equal weights, 1 for a
    single non-zero weight, SciPy's log-sum-exp form on random ones, unchanged by a shift of
    :math:`\pm 1000` nats, along the given axis."""
    rng = np.random.default_rng(seed)
    log_w = rng.normal(scale=2.0, size=(12, 5))
    want = np.exp(2 * special.logsumexp(log_w, axis=0) - special.logsumexp(2 * log_w, axis=0))
    got = np.asarray(ess(log_w), np.float64)
    if not _same(got, want):
        hint = ""
        k = log_w.shape[0]
        if _same(got, 1 / want):
            hint = " -- that is 1 / ESS: sum w^2 / (sum w)^2 is upside down"
        elif _same(got, want / k):
            hint = " -- that is ESS / K, the efficiency; return the ESS itself"
        elif got.shape == (k,):
            hint = " -- you reduced over the wrong axis: the K weights are along `axis`"
        raise AssertionError(f"effective_sample_size of log-weights of shape {log_w.shape} is "
                             f"{show(got)}, expected (sum w)^2 / sum w^2 = {show(want)}{hint}")
    got = np.asarray(ess(np.zeros((7, 3))), np.float64)
    if not _same(got, np.full(3, 7.0)):
        raise AssertionError(f"effective_sample_size: seven equal weights give {show(got)}, "
                             f"expected 7")
    one = np.array([-np.inf, 3.0, -np.inf, -np.inf])
    with np.errstate(all="ignore"):
        got = np.asarray(ess(one), np.float64)
    if not _same(got, 1.0):
        raise AssertionError(f"effective_sample_size: weights (0, e^3, 0, 0) give {show(got)}, "
                             f"expected 1 (log-weights of -inf are zero weights)")
    for shift in (-1000.0, 1000.0):
        with np.errstate(all="ignore"):
            got = np.asarray(ess(log_w + shift), np.float64)
        if not _same(got, want):
            raise AssertionError(f"effective_sample_size: log-weights shifted by {shift:+g} "
                                 f"give {show(got)}, expected {show(want)} (the ESS does not "
                                 f"change when every weight is multiplied by one constant): "
                                 f"exp(log w) {'underflows' if shift < 0 else 'overflows'} -- "
                                 f"work with log-sum-exps")
    got = np.asarray(ess(log_w.T, axis=1), np.float64)
    if not _same(got, want):
        raise AssertionError(f"effective_sample_size(log_w.T, axis=1) gives {show(got)}, "
                             f"expected {show(want)}: reduce over `axis`")
