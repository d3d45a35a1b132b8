r"""Checks of exercise 11: the score-function (REINFORCE) gradient estimator with a baseline,
``score_function_gradient`` and ``_baseline`` in ``scratchdgm/estimators.py``. Page:
``exercises/11_score_function.md``.

References, none of them the code being checked: the checks' own Gaussian
:math:`q_\gamma = \mathcal N(\mu, \operatorname{diag} \sigma^2)`, :math:`\gamma = (\mu,
\log\sigma)` (:class:`TensorNormal`: draws by NumPy, recorded; ``log_prob`` from Tensor
arithmetic); its score in closed form, :math:`\nabla_\mu \log q = (z - \mu)/\sigma^2`,
:math:`\nabla_{\log\sigma} \log q = (z - \mu)^2/\sigma^2 - 1`, from which every estimate is
recomputed from the very draws it used; the exact gradient of a Gaussian expectation of a
quadratic, :math:`\nabla_\mu \mathbb E[a z^2 + c z] = 2a\mu + c`, :math:`\nabla_{\log\sigma} =
2a\sigma^2`; the exact variance of one draw of the estimator, by ``scipy.stats.norm.expect``.
Gradients through the graph are taken by :func:`gradient` below (the chain rule path by path,
:func:`~exercises.checks._common.path_sum_grad`), which stands in for
``scratchdgm.estimators.gradient`` while the checks run, so that they do not need
``Tensor.backward`` (exercise 02).

Statistical checks put R independent replicates in the batch axis: the gradient in a batch of R
copies of :math:`\mu` is R independent estimates, one per row. Their margins were checked on
seeds 0-19 (the worst of the twenty is said next to each).
"""

import math

import numpy as np
from scipy import stats

from scratchdgm import tensor
from scratchdgm.autodiff.tensor import Tensor

from ._common import path_sum_grad, show

_LOG_2PI = math.log(2 * math.pi)


def gradient(output, params, where="gradient"):
    r"""``scratchdgm.estimators.gradient`` without ``Tensor.backward``: the gradient of the scalar
    ``output`` in each of ``params`` (leaf Tensors), as arrays."""
    params = list(params)
    if not isinstance(output, Tensor):
        raise AssertionError(f"{where}: the surrogate whose gradient is taken is a "
                             f"{type(output).__name__}, not a Tensor: build it from q.log_prob(z) "
                             f"with Tensor arithmetic")
    if output.shape != ():
        raise AssertionError(f"{where}: the surrogate has shape {output.shape}; take the mean "
                             f"over the K draws and the sum over the batch, a scalar")
    return path_sum_grad(output, params)


class TensorNormal:
    r"""The checks' own :math:`q_\gamma = \mathcal N(\mu, \operatorname{diag} \sigma^2)` with
    Tensor parameters ``mu`` and ``log_sigma`` (shape ``batch + (d,)``): ``sample`` draws an
    array with NumPy (and keeps it in ``last``), ``log_prob`` is a Tensor of the parameters."""

    def __init__(self, mu, log_sigma):
        self.mu, self.log_sigma = mu, log_sigma
        self.last = None

    def sample(self, sample_shape=(), random_state=None):
        rng = (random_state if isinstance(random_state, np.random.Generator)
               else np.random.default_rng(random_state))
        shape = tuple(np.atleast_1d(sample_shape)) + self.mu.shape
        self.last = self.mu.data + np.exp(self.log_sigma.data) * rng.standard_normal(shape)
        return self.last.copy()

    def log_prob(self, z):
        z = z if isinstance(z, Tensor) else tensor(np.asarray(z, np.float64))
        u = (z - self.mu) * (-self.log_sigma).exp()
        return (u * u * -0.5 - self.log_sigma - 0.5 * _LOG_2PI).sum(axis=-1)


def quadratic(a, c):
    r""":math:`g(z) = \sum_j a_j z_j^2 + c_j z_j` on a Tensor or an array ``z`` of shape
    (K, *batch, d), shape (K, *batch)."""
    a, c = np.asarray(a, np.float64), np.asarray(c, np.float64)
    return lambda z: (z * z * a + z * c).sum(axis=-1)


def _params(mu, sigma):
    mu = tensor(np.array(mu, np.float64), requires_grad=True)
    log_sigma = tensor(np.log(np.broadcast_to(np.asarray(sigma, np.float64), mu.shape)).copy(),
                       requires_grad=True)
    return mu, log_sigma


def _reference(z, mu, sigma, fz, b):
    r"""The estimate from the draws: :math:`\frac1K \sum_k (f(z_k) - b_k) \nabla \log q(z_k)`
    for :math:`\mu` and :math:`\log\sigma`, with the score in closed form."""
    d = (z - mu) / sigma
    weight = (fz - b)[..., None]
    return (weight * d / sigma).mean(axis=0), (weight * (d * d - 1)).mean(axis=0)


def _same(got, want):
    return np.shape(got) == np.shape(want) and np.allclose(got, want, rtol=1e-8, atol=1e-10)


def _loo(fz, k):
    return (fz.sum(axis=0) - fz) / (k - 1)


def _call(sfg, f, q, params, k, seed, baseline):
    got = sfg(f, q, params, k, seed, baseline=baseline)
    if not isinstance(got, (list, tuple)) or len(got) != len(params):
        raise AssertionError(f"score_function_gradient returned {type(got).__name__}; expected "
                             f"a list of {len(params)} arrays, one per tensor of params")
    return [np.asarray(g, np.float64) for g in got]


def check_score_function_arithmetic(sfg, k=7, seed=0):
    r"""On a batch of two 3-d Gaussians and :math:`f(z) = \theta g(z)` with a parameter
    :math:`\theta` of its own: for each baseline (none, a constant, an array, leave-one-out) the
    gradients in :math:`\mu` and :math:`\log\sigma` are :math:`\frac1K \sum_k (f(z_k) - b_k)
    \nabla \log q(z_k)` from the draws the estimator made, and the one in :math:`\theta` is
    :math:`\frac1K \sum_k g(z_k)` (the gradient of :math:`f` itself)."""
    mu0 = [[0.5, -1.0, 2.0], [0.0, 0.3, -0.7]]
    sigma = np.array([[0.8, 1.3, 0.5], [1.0, 2.0, 0.7]])
    g = quadratic([1.0, -0.5, 0.2], [0.3, 2.0, -1.0])
    theta_value = 1.5
    for baseline in (None, 2.5, np.array([1.0, -2.0]), "loo"):
        mu, log_sigma = _params(mu0, sigma)
        theta = tensor(np.array(theta_value), requires_grad=True)
        q = TensorNormal(mu, log_sigma)
        got_mu, got_ls, got_theta = _call(sfg, lambda z: g(z) * theta, q,
                                          [mu, log_sigma, theta], k, seed, baseline)
        if q.last is None or q.last.shape != (k, 2, 3):
            raise AssertionError(f"score_function_gradient must draw K = {k} samples from q, "
                                 f"q.sample((k,), rng), shape {(k, 2, 3)}")
        z = q.last
        fz = theta_value * g(z)
        if baseline is None:
            b = np.zeros_like(fz)
        elif isinstance(baseline, str):
            b = _loo(fz, k)
        else:
            b = np.broadcast_to(baseline, fz.shape)
        want_mu, want_ls = _reference(z, mu.data, sigma, fz, b)
        what = f"with baseline={baseline!r}"
        for name, got, want in (("mu", got_mu, want_mu), ("log_sigma", got_ls, want_ls)):
            if _same(got, want):
                continue
            hint = ""
            alternatives = [(-want, " -- the sign is wrong: the gradient is + (f - b) grad log q"),
                            (k * want, " -- that is K times too large: you forgot the 1/K "
                                       "(mean over the draws, not sum)"),
                            (np.zeros_like(want), " -- nothing reached gamma: log q_gamma(z_k) "
                                                  "must be q.log_prob(z) of the draws, a Tensor "
                                                  "of the parameters")]
            if baseline is not None:
                no_b = _reference(z, mu.data, sigma, fz, 0.0)[name == "log_sigma"]
                plus = _reference(z, mu.data, sigma, fz, -b)[name == "log_sigma"]
                alternatives += [(no_b, " -- that is the estimate without the baseline: "
                                        "subtract b_k from f(z_k)"),
                                 (plus, " -- you added the baseline: subtract it")]
            if isinstance(baseline, str):
                mean_all = np.broadcast_to(fz.mean(axis=0), fz.shape)
                over_k = (fz.sum(axis=0) - fz) / k
                alternatives += [
                    (_reference(z, mu.data, sigma, fz, mean_all)[name == "log_sigma"],
                     " -- that baseline is the mean of ALL K draws, z_k included: it depends on "
                     "z_k and biases the estimate; leave z_k out"),
                    (_reference(z, mu.data, sigma, fz, over_k)[name == "log_sigma"],
                     " -- the leave-one-out mean divides the other draws' sum by K - 1, not K")]
            for value, text in alternatives:
                if _same(got, value):
                    hint = text
                    break
            raise AssertionError(f"score_function_gradient {what}: the gradient in {name} is "
                                 f"{show(got)}, expected (1/K) sum_k (f(z_k) - b_k) "
                                 f"grad_{name} log q(z_k) = {show(want)}{hint}")
        want_theta = np.mean(g(z).sum(axis=-1))
        if not _same(got_theta, want_theta):
            hint = ""
            if _same(got_theta, 0.0):
                hint = (" -- f's own parameters got no gradient: the surrogate needs the term "
                        "f(z_k) itself (the gradient of f), besides (f(z_k) - b_k) log q(z_k)")
            else:
                log_q = q.log_prob(z).data
                if _same(got_theta, np.mean((g(z) * (1 + log_q)).sum(axis=-1))):
                    hint = (" -- the gradient flowed through the factor (f(z_k) - b_k) of "
                            "log q: it must enter as plain numbers, not a Tensor")
            raise AssertionError(f"score_function_gradient {what}: the gradient in theta, a "
                                 f"parameter of f, is {show(got_theta)}, expected the mean of "
                                 f"grad_theta f(z_k), {show(want_theta)}{hint}")


def check_black_box_f(sfg, k=5, seed=1):
    r"""``f`` may be a black box returning a plain array: the estimator never differentiates it
    in :math:`z`."""
    mu, log_sigma = _params([0.2, -0.4], [1.0, 0.5])
    q = TensorNormal(mu, log_sigma)

    def f(z):
        return np.sin(np.asarray(z.data if isinstance(z, Tensor) else z)).sum(axis=-1)

    got_mu, got_ls = _call(sfg, f, q, [mu, log_sigma], k, seed, None)
    z = q.last
    want_mu, want_ls = _reference(z, mu.data, np.exp(log_sigma.data), f(z), 0.0)
    if not (_same(got_mu, want_mu) and _same(got_ls, want_ls)):
        raise AssertionError(f"score_function_gradient with f returning a plain array gives "
                             f"{show(got_mu)}, {show(got_ls)}, expected {show(want_mu)}, "
                             f"{show(want_ls)}")


def check_baseline_errors(sfg):
    r"""``baseline='loo'`` needs K >= 2, and an unknown string is refused: ValueError, each
    with a message."""
    for k, baseline, needle in ((1, "loo", "k"), (4, "mean", "baseline")):
        mu, log_sigma = _params([0.0], [1.0])
        try:
            sfg(quadratic([1.0], [0.0]), TensorNormal(mu, log_sigma), [mu, log_sigma], k, 0,
                baseline=baseline)
        except ValueError as exc:
            if needle not in str(exc).lower():
                raise AssertionError(f"baseline={baseline!r} with k = {k}: the ValueError says "
                                     f"{str(exc)!r}; say what was wrong") from None
            continue
        why = ("the leave-one-out mean needs K >= 2" if k == 1
               else "a baseline is None, a number, an array or 'loo'")
        raise AssertionError(f"baseline={baseline!r} with k = {k} must raise ValueError ({why})")


def exact_gradient(a, c, mu, sigma):
    r""":math:`\nabla_\mu \mathbb E[a z^2 + c z] = 2a\mu + c`, :math:`\nabla_{\log\sigma} =
    2a\sigma^2` (from :math:`\mathbb E[z^2] = \mu^2 + \sigma^2`)."""
    return 2 * a * mu + c, 2 * a * sigma**2


def check_unbiased(sfg, seed=0, r=2000, k=10):
    r"""R = 2000 estimates (K = 10) of the gradient of :math:`\mathbb E[a z^2 + c z]` under a
    2-d Gaussian, without a baseline and with the leave-one-out one: each of the four means is
    within 4 standard errors of the exact gradient (worst of seeds 0-19: 2.3)."""
    a, c = np.array([1.0, -0.5]), np.array([0.3, 2.0])
    mu0, sigma = np.array([0.5, -1.0]), np.array([0.8, 1.3])
    want_mu, want_ls = exact_gradient(a, c, mu0, sigma)
    for baseline in (None, "loo"):
        mu, log_sigma = _params(np.tile(mu0, (r, 1)), np.tile(sigma, (r, 1)))
        got_mu, got_ls = _call(sfg, quadratic(a, c), TensorNormal(mu, log_sigma),
                               [mu, log_sigma], k, seed, baseline)
        for name, got, want in (("mu", got_mu, want_mu), ("log_sigma", got_ls, want_ls)):
            mean = got.mean(axis=0)
            z = (mean - want) / (got.std(axis=0, ddof=1) / math.sqrt(r))
            if np.any(np.abs(z) > 4):
                raise AssertionError(f"score_function_gradient (baseline={baseline!r}) is "
                                     f"biased: {r} estimates of the gradient in {name} average "
                                     f"{show(mean)}, the exact gradient is {show(want)} ("
                                     f"{show(z)} standard errors away)")


def one_draw_variance(mu, sigma, offset, b):
    r"""The variance of one draw :math:`(f(z) - b)(z - \mu)/\sigma^2` of the estimate of
    :math:`\nabla_\mu \mathbb E[z^2 + \text{offset}]`, by ``scipy.stats.norm.expect``."""
    second = stats.norm(mu, sigma).expect(lambda z: ((z * z + offset - b) * (z - mu)
                                                     / sigma**2) ** 2)
    return second - (2 * mu) ** 2


def check_baseline_reduces_variance(sfg, seed=0, r=4000, k=10):
    r""":math:`f(z) = z^2 + 10` under :math:`\mathcal N(0.5, 0.8^2)`: R = 4000 estimates (K =
    10) of the gradient in :math:`\mu`. Without a baseline their variance is within 20 % of the
    exact one-draw variance over K (worst of seeds 0-19: 6 %), with the constant baseline
    :math:`b = \mathbb E f` within 20 % of its own (worst: 8.3 %) -- 28 times smaller -- and
    with the leave-one-out baseline under a fifth of the variance without (worst: 1/25)."""
    mu0, sigma, offset = 0.5, 0.8, 10.0
    mean_f = mu0**2 + sigma**2 + offset

    def f(z):
        return (z * z).sum(axis=-1) + offset

    variances = {}
    for baseline in (None, mean_f, "loo"):
        mu, log_sigma = _params(np.full((r, 1), mu0), sigma)
        got_mu, _ = _call(sfg, f, TensorNormal(mu, log_sigma), [mu, log_sigma], k, seed,
                          baseline)
        variances[baseline] = got_mu.var()
    for b in (None, mean_f):
        want = one_draw_variance(mu0, sigma, offset, 0.0 if b is None else b) / k
        ratio = variances[b] / want
        if not 0.8 < ratio < 1.2:
            raise AssertionError(f"score_function_gradient with baseline={b!r}: the variance "
                                 f"of {r} estimates is {variances[b]:.4g}, {ratio:.2f} times the "
                                 f"exact {want:.4g} (one draw's variance / K)")
    if not variances["loo"] < variances[None] / 5:
        raise AssertionError(f"the leave-one-out baseline should cut the variance of the "
                             f"gradient of E[z^2 + 10] over five times; it went from "
                             f"{variances[None]:.4g} to {variances['loo']:.4g}")
