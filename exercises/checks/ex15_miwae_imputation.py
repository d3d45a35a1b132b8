r"""Checks of exercise 15: MIWAE's imputation weights, ``self_normalised_weights`` and
``resample_indices`` in ``scratchdgm/models/deep/miwae.py``. Page:
``exercises/15_miwae_imputation.md``.

References, none of them the code being checked: ``scipy.special.softmax`` for the weights; a
linear-Gaussian model with missing entries (:class:`LinearGaussianMIWAE`), :math:`z \sim
\mathcal N(0, I_d)`, :math:`x \mid z \sim \mathcal N(W z + \mu, \operatorname{diag}\psi)`, whose
conditional :math:`p(x^{\mathrm m} \mid x^{\mathrm o})` is Gaussian in closed form
(:func:`exact_conditional`, from the joint covariance :math:`C = W W^\top + \Psi`:
mean :math:`\mu_m + C_{mo} C_{oo}^{-1} (x_o - \mu_o)`, covariance :math:`C_{mm} - C_{mo}
C_{oo}^{-1} C_{om}`); the log-weights of that model computed here with ``scipy.stats``; and
chi-square tests of the resampling frequencies.

:class:`LinearGaussianMIWAE` stands in for a trained MIWAE when the checks run
:meth:`MIWAE.transform` and :meth:`MIWAE.impute` themselves: it provides the few methods those
two call (the log-weights, the decoder's mean, a sampler) in plain NumPy, so that the checks
need neither the encoder and decoder networks nor reparametrised sampling (exercises 01-04, 12)
-- only this exercise's two functions. Statistical margins were checked on seeds 0-19 (the worst
is said next to each).
"""

import types

import numpy as np
from scipy import special, stats

from scratchdgm import autodiff as _ad

from ._common import show


# ----------------------------------------------------------------------------- the weights
def _weights(snw, log_w):
    got = np.asarray(snw(np.array(log_w, dtype=np.float64)), dtype=np.float64)
    if got.shape != np.shape(log_w):
        raise AssertionError(f"self_normalised_weights returned shape {got.shape} for log-weights "
                             f"of shape {np.shape(log_w)} (K, B): one weight per log-weight")
    return got


def check_weights_values(snw, seed=0, k=6, b=4):
    r"""On random log-weights (K, B): each column is the softmax over the K samples (axis 0),
    non-negative and summing to 1."""
    rng = np.random.default_rng(seed)
    log_w = rng.normal(0.0, 3.0, size=(k, b))
    got = _weights(snw, log_w)
    want = special.softmax(log_w, axis=0)
    if np.allclose(got, want, rtol=1e-10, atol=1e-14):
        return
    hint = ""
    if np.allclose(got, special.softmax(log_w, axis=1), rtol=1e-10):
        hint = (" -- you normalised across the B points (axis 1): normalise each point's K "
                "samples, axis 0")
    elif np.allclose(got, np.exp(log_w), rtol=1e-10):
        hint = " -- those are the raw weights exp(log w): divide by their sum over the K samples"
    elif np.allclose(got, special.log_softmax(log_w, axis=0), rtol=1e-10):
        hint = " -- those are the log of the weights: exponentiate"
    elif np.allclose(got, special.softmax(-log_w, axis=0), rtol=1e-10):
        hint = " -- the sign is wrong: w_k is proportional to exp(+log w_k)"
    elif np.allclose(got, np.full_like(log_w, 1.0 / k)):
        hint = " -- the weights are all 1/K: they must follow the log-weights"
    raise AssertionError(f"self_normalised_weights: got {show(got)}, expected the softmax over "
                         f"axis 0, w_k / sum_l w_l = {show(want)}{hint}")


def check_weights_shift_invariance(snw, seed=1):
    r"""A constant added to a column's log-weights (the unknown normaliser of an unnormalised
    density) leaves its weights unchanged; the sum over each column is 1."""
    rng = np.random.default_rng(seed)
    log_w = rng.normal(size=(5, 3))
    base = _weights(snw, log_w)
    if not np.allclose(base.sum(axis=0), 1.0, rtol=1e-12):
        raise AssertionError(f"self_normalised_weights: the columns sum to "
                             f"{show(base.sum(axis=0))}, expected 1 (normalise over axis 0)")
    for shift in (np.array([37.0, -12.5, 250.0]), 600.0, -600.0):
        shifted = _weights(snw, log_w + shift)
        if not np.allclose(shifted, base, rtol=1e-9, atol=1e-15):
            raise AssertionError(f"self_normalised_weights changed when the log-weights moved by "
                                 f"a constant {show(shift)}: got {show(shifted)}, expected "
                                 f"{show(base)} -- subtract each column's maximum (or its "
                                 f"log-sum-exp) before exponentiating")


def check_weights_stable(snw):
    r"""Log-weights of :math:`\pm 1000` nats (hundreds of observed pixels give that much):
    finite weights equal to those of the shifted log-weights, and a column of equal weights
    where one is :math:`-\infty` gives it weight 0."""
    cases = [np.array([[1000.0, -1000.0], [999.0, -1001.0], [998.0, -1002.0]]),
             np.array([[-np.inf], [0.0], [0.0]])]
    for log_w in cases:
        with np.errstate(all="ignore"):
            got = _weights(snw, log_w)
        want = special.softmax(log_w, axis=0)
        if not np.all(np.isfinite(got)):
            raise AssertionError(f"self_normalised_weights({show(log_w[:, 0])}, ...) gives "
                                 f"{show(got)}: exp overflows at log w = 1000 (or underflows "
                                 f"to 0/0 at -1000); subtract each column's maximum first")
        if not np.allclose(got, want, rtol=1e-10, atol=1e-300):
            raise AssertionError(f"self_normalised_weights({show(log_w[:, 0])}, ...) = "
                                 f"{show(got)}, expected {show(want)}")


# ----------------------------------------------------------------------------- the model
class LinearGaussianMIWAE:
    r"""A linear-Gaussian latent-variable model, :math:`z \sim \mathcal N(0, I_d)`,
    :math:`x \mid z \sim \mathcal N(W z + \mu, \operatorname{diag}\psi)`, with the proposal
    :math:`q(z \mid x^{\mathrm o}) = \mathcal N(m, s^2 I)` (deliberately not the posterior), in
    the shape :meth:`MIWAE.transform` and :meth:`MIWAE.impute` expect: ``_forward``,
    ``weighted_samples``, ``decode``, ``observation.distribution(eta)`` with ``mean`` and
    ``sample``, ``check_data``, ``_rows``. Log-weights by ``scipy.stats``."""

    dtype = np.float64

    def __init__(self, seed=0, p=5, d=2, proposal_mean=0.0, proposal_scale=1.5):
        rng = np.random.default_rng(seed)
        self.W = rng.normal(size=(p, d))
        self.mu = rng.normal(size=p)
        self.psi = rng.uniform(0.1, 0.5, p)
        self.proposal = (proposal_mean, proposal_scale)
        self.observation = types.SimpleNamespace(distribution=self._distribution)

    # what MIWAE.transform and MIWAE.impute call
    def check_data(self, X, where="X"):
        return np.array(X, dtype=np.float64)

    def _rows(self, n, k, chunk_size):
        k_chunk = min(k, chunk_size)
        return max(1, chunk_size // k_chunk), k_chunk

    def log_weights(self, x, z, observed):
        r""":math:`\log p(x^{\mathrm o} \mid z) + \log p(z) - \log q(z)`, shape (k, B)."""
        mean = z @ self.W.T + self.mu                                         # (k, B, p)
        x0 = np.where(observed, x, 0.0)
        log_px = np.where(observed, stats.norm.logpdf(x0, mean, np.sqrt(self.psi)), 0.0)
        m, s = self.proposal
        return (log_px.sum(axis=-1) + stats.norm.logpdf(z).sum(axis=-1)
                - stats.norm.logpdf(z, m, s).sum(axis=-1))

    def weighted_samples(self, x, k, rng, observed=None):
        observed = ~np.isnan(x) if observed is None else observed
        m, s = self.proposal
        z = m + s * rng.standard_normal((k, len(x), self.W.shape[1]))
        return types.SimpleNamespace(log_w=_ad.tensor(self.log_weights(x, z, observed)),
                                     z=_ad.tensor(z))

    def _forward(self, x, k, rng, observed=None):
        samples = self.weighted_samples(x, k, rng, observed)
        return samples, self.decode(samples.z)

    def decode(self, z):
        return _ad.tensor(np.asarray(z.data) @ self.W.T + self.mu)

    def _distribution(self, eta):
        mean = np.asarray(eta.data)
        scale = np.sqrt(self.psi)

        def sample(sample_shape=(), random_state=None):
            return mean + scale * random_state.standard_normal(mean.shape)
        return types.SimpleNamespace(mean=_ad.tensor(mean), sample=sample)

    # the references
    def exact_conditional(self, x, observed):
        r"""Mean and covariance of :math:`p(x^{\mathrm m} \mid x^{\mathrm o})` for one row, from
        the joint covariance :math:`C = W W^\top + \Psi`."""
        C = self.W @ self.W.T + np.diag(self.psi)
        o, m = observed, ~observed
        gain = C[np.ix_(m, o)] @ np.linalg.inv(C[np.ix_(o, o)])
        mean = self.mu[m] + gain @ (x[o] - self.mu[o])
        cov = C[np.ix_(m, m)] - gain @ C[np.ix_(o, m)]
        return mean, cov

    def exact_posterior_mean(self, x, observed):
        r""":math:`\mathbb E[z \mid x^{\mathrm o}] = W_o^\top C_{oo}^{-1} (x_o - \mu_o)`."""
        o = observed
        C_oo = self.W[o] @ self.W[o].T + np.diag(self.psi[o])
        return self.W[o].T @ np.linalg.solve(C_oo, x[o] - self.mu[o])

    def draw(self, n, missing_rate, rng):
        r"""n rows of the model with entries missing completely at random (at least one
        observed and one missing per row)."""
        z = rng.standard_normal((n, self.W.shape[1]))
        X = z @ self.W.T + self.mu + rng.standard_normal((n, len(self.mu))) * np.sqrt(self.psi)
        miss = rng.random(X.shape) < missing_rate
        miss[:, 0] = False
        miss[:, -1] = True
        return np.where(miss, np.nan, X)


def check_conditional_mean(snw, seed=0, k=4000):
    r"""The self-normalised estimate :math:`\sum_k \tilde w_k (W_m z_k + \mu_m)` with the
    weights of ``snw``, on one row of the linear-Gaussian model, is within 5 delta-method
    standard errors of the exact :math:`\mathbb E[x^{\mathrm m} \mid x^{\mathrm o}]` (worst of
    seeds 0-19: 2.0)."""
    model = LinearGaussianMIWAE(seed)
    rng = np.random.default_rng(seed + 1)
    x = model.draw(1, 0.4, rng)
    observed = ~np.isnan(x)
    samples = model.weighted_samples(x, k, rng, observed)
    log_w, z = samples.log_w.data, samples.z.data
    w = _weights(snw, log_w)[:, 0]
    f = (z[:, 0] @ model.W.T + model.mu)[:, ~observed[0]]                   # (k, missing)
    got = w @ f
    se = np.sqrt(np.sum((w ** 2)[:, None] * (f - got) ** 2, axis=0))
    want, _ = model.exact_conditional(x[0], observed[0])
    z_scores = (got - want) / se
    if np.all(np.abs(z_scores) < 5):
        return
    hint = ""
    if np.allclose(w, w[0]):
        hint = " -- your weights are uniform: that is the mean under q, not under the posterior"
    raise AssertionError(f"with your weights, sum_k w_k E[x_miss | z_k] = {show(got)}, but the "
                         f"exact E[x_miss | x_obs] of a linear-Gaussian model is {show(want)} "
                         f"({show(z_scores)} standard errors away){hint}")


def check_transform(seed=0, n=4, k=3000, chunk_size=1000):
    r""":meth:`MIWAE.transform` on the linear-Gaussian model, its K samples in chunks of 1000
    (so chunk totals are combined by weights too): observed entries unchanged, each missing one
    within 5 standard errors of the exact conditional mean (one standard error:
    :math:`\sqrt{\mathrm{Var}(x^{\mathrm m}_j \mid x^{\mathrm o}) / \mathrm{ESS}}`, the ESS
    measured here on K samples of the same proposal; worst of seeds 0-19: 1.5)."""
    from scratchdgm.models.deep.miwae import MIWAE

    model = LinearGaussianMIWAE(seed)
    rng = np.random.default_rng(seed + 1)
    X = model.draw(n, 0.4, rng)
    got = MIWAE.transform(model, X, k=k, random_state=seed + 2, chunk_size=chunk_size)
    got = np.asarray(got)
    observed = ~np.isnan(X)
    if got.shape != X.shape or not np.array_equal(got[observed], X[observed]):
        raise AssertionError("MIWAE.transform must return X with its observed entries unchanged")
    for i in range(n):
        mean, cov = model.exact_conditional(X[i], observed[i])
        lw = model.weighted_samples(X[i:i + 1], k, np.random.default_rng(seed + 3 + i),
                                    observed[i:i + 1]).log_w.data[:, 0]
        w = special.softmax(lw)
        ess = 1.0 / np.sum(w ** 2)
        z_scores = (got[i, ~observed[i]] - mean) / np.sqrt(np.diag(cov) / ess)
        if np.any(np.abs(z_scores) > 5):
            raise AssertionError(f"MIWAE.transform (K = {k} in chunks of {chunk_size}) imputes "
                                 f"row {i} as {show(got[i, ~observed[i]])}, the exact conditional "
                                 f"mean is {show(mean)} ({show(z_scores)} standard errors away)")


# ----------------------------------------------------------------------------- resampling
def _picks(resample, w, n_draws, rng):
    got = np.asarray(resample(np.array(w, np.float64), n_draws, rng))
    k, b = np.shape(w)
    if got.shape != (n_draws, b):
        raise AssertionError(f"resample_indices returned shape {got.shape}, expected "
                             f"(n_draws, B) = {(n_draws, b)}")
    if not np.issubdtype(got.dtype, np.integer):
        raise AssertionError(f"resample_indices returned dtype {got.dtype}; expected integer "
                             f"indices into the K samples")
    if got.min() < 0 or got.max() >= k:
        raise AssertionError(f"resample_indices returned indices from {got.min()} to {got.max()}; "
                             f"they index K = {k} samples: 0 .. {k - 1}")
    return got


def check_resampling_frequencies(resample, seed=0, n_draws=20000):
    r"""Index k is picked with frequency :math:`\tilde w_k` in each column (chi-square test,
    p-value above 1e-6; the smallest of seeds 0-19: 0.0014), a zero weight is never picked, and
    weights that do not sum to exactly 1 are normalised."""
    w = np.array([[0.5, 0.1, 0.0, 2.0],
                  [0.3, 0.1, 0.97, 1.0],
                  [0.2, 0.1, 0.03, 0.0],
                  [0.0, 0.7, 0.0, 1.0]])
    picks = _picks(resample, w, n_draws, np.random.default_rng(seed))
    for b in range(w.shape[1]):
        counts = np.bincount(picks[:, b], minlength=len(w))
        p = w[:, b] / w[:, b].sum()
        freq = counts / n_draws
        hint = ""
        if np.allclose(freq, 1 / len(w), atol=0.02):
            hint = " -- every sample about equally often: the weights are ignored"
        elif np.count_nonzero(counts) == 1 and np.count_nonzero(p) > 1:
            hint = " -- always the same sample: draw at random, do not take the largest"
        elif np.allclose(freq, np.roll(p, 1), atol=0.02) or np.allclose(freq, np.roll(p, -1),
                                                                         atol=0.02):
            hint = " -- off by one: sample k is the smallest k with cumsum(w)_k > u"
        if np.any(counts[p == 0] > 0):
            zero = np.flatnonzero(counts * (p == 0))
            hint = hint or (": invert the cumulative weights with searchsorted(..., "
                            "side='right'), which never lands on a flat step")
            raise AssertionError(f"resample_indices picked sample(s) {zero} of weight 0 in "
                                 f"column {b} (weights {show(p, 4)}, frequencies "
                                 f"{show(freq, 4)}){hint}")
        pos = p > 0
        if pos.sum() < 2:
            continue
        pval = stats.chisquare(counts[pos], n_draws * p[pos]).pvalue
        if pval < 1e-6:
            raise AssertionError(f"resample_indices: in column {b} with weights {show(p, 4)} "
                                 f"the {n_draws} picks have frequencies {show(freq, 4)} "
                                 f"(chi-square p-value {pval:.2g}){hint}")


def check_resampling_randomness(resample):
    r"""Randomness only from ``rng``: the same seed gives the same picks, another seed other
    picks, and NumPy's global state neither matters nor moves."""
    w = np.full((50, 3), 1.0 / 50)
    state = np.random.get_state()
    try:
        np.random.seed(0)
        a = _picks(resample, w, 20, np.random.default_rng(7))
        after = np.random.get_state()
        np.random.seed(0)
        fresh = np.random.get_state()
        np.random.seed(1)
        b = _picks(resample, w, 20, np.random.default_rng(7))
    finally:
        np.random.set_state(state)
    untouched = np.array_equal(after[1], fresh[1]) and after[2] == fresh[2]
    c = _picks(resample, w, 20, np.random.default_rng(8))
    if not np.array_equal(a, b) or not untouched:
        raise AssertionError("resample_indices must draw from the rng it is given (rng.random), "
                             "not from np.random's global state")
    if np.array_equal(a, c):
        raise AssertionError("resample_indices gives the same picks for two different rngs: "
                             "draw the uniforms from rng")


def _ess(model, x, observed, k, seed):
    r"""Kish's effective sample size of K weights of one row, from the checks' own softmax."""
    lw = model.weighted_samples(x[None], k, np.random.default_rng(seed), observed[None])
    return 1.0 / np.sum(special.softmax(lw.log_w.data[:, 0]) ** 2)


def check_impute(seed=0, n_draws=3000, k=5000):
    r""":meth:`MIWAE.impute` on the linear-Gaussian model: the draws of the missing entries of
    each row have the exact conditional mean and variance, within 5 standard errors, one being
    :math:`\sigma \sqrt{1/\mathrm{ESS} + 1/R}` for the mean and :math:`\sqrt{2/\mathrm{ESS} +
    2/R}` for the variance ratio (R draws resampled from K samples whose effective sample size
    is ESS, measured here; worst of seeds 0-19: 1.5 for the mean, 1.5 for the variance); and
    the observed entries are kept."""
    from scratchdgm.models.deep.miwae import MIWAE

    model = LinearGaussianMIWAE(seed)
    rng = np.random.default_rng(seed + 1)
    X = model.draw(2, 0.4, rng)
    draws = np.asarray(MIWAE.impute(model, X, n_draws=n_draws, k=k, random_state=seed + 2))
    observed = ~np.isnan(X)
    if draws.shape != (n_draws, *X.shape):
        raise AssertionError(f"MIWAE.impute returned shape {draws.shape}, expected "
                             f"{(n_draws, *X.shape)}")
    if not np.all(draws[:, observed] == X[observed]):
        raise AssertionError("MIWAE.impute must keep the observed entries in every draw")
    for i in range(len(X)):
        mean, cov = model.exact_conditional(X[i], observed[i])
        sd = np.sqrt(np.diag(cov))
        ess = _ess(model, X[i], observed[i], k, seed + 3 + i)
        d = draws[:, i, ~observed[i]]
        off = (d.mean(axis=0) - mean) / (sd * np.sqrt(1 / ess + 1 / n_draws))
        ratio = d.var(axis=0) / sd ** 2
        spread = (ratio - 1) / np.sqrt(2 / ess + 2 / n_draws)
        if np.any(np.abs(off) > 5) or np.any(np.abs(spread) > 5):
            hint = ""
            if np.all(spread > 5):
                hint = (" -- far too spread out: the codes are picked regardless of their "
                        "weights (draws from q, not from the posterior)")
            raise AssertionError(f"MIWAE.impute: the {n_draws} draws of row {i}'s missing "
                                 f"entries have mean {show(d.mean(axis=0))} and variance "
                                 f"{show(d.var(axis=0))}; p(x_miss | x_obs) has mean "
                                 f"{show(mean)} and variance {show(sd ** 2)} ({show(off)} and "
                                 f"{show(spread)} standard errors away){hint}")
