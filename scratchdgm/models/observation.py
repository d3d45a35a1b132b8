r"""Observation models :math:`\Phi(x \mid \eta)`, :math:`\eta = f_\theta(z)`, of deep latent
variable models: Bernoulli (logits), Gaussian (fixed, learned or decoder-output sigma) and
Student's t (decoder-output location, scale and degrees of freedom).

Each is a :class:`~scratchdgm.nn.Module` (it may own parameters, e.g. a learned noise level) that
says how many decoder outputs it needs per observed dimension, and turns decoder outputs into a
log-density (a :class:`~scratchdgm.Tensor`, for training), a mean and samples (ndarrays).

Lecture: ``shared/seeds/000_dd8cf90fba7bcfac.txt``, "Deep latent variable models: the role of the
observation model" (Gaussian, Bernoulli and Student's t observation models whose parameters are
the output of the decoder) and "Why is this a reconstruction error?" (the Gaussian case gives the
squared error, the Bernoulli case the cross-entropy).
"""

import math

import numpy as np

from scratchdgm import autodiff as _ad
from scratchdgm.autodiff import fused as _fused
from scratchdgm.nn import Module, Parameter

__all__ = [
    "BernoulliObservation",
    "GaussianObservation",
    "StudentTObservation",
    "make_observation",
]

_LOG_2PI = math.log(2.0 * math.pi)


def _as_tensor(x):
    return x if isinstance(x, _ad.Tensor) else _ad.tensor(np.asarray(x))


def _check_p(p):
    if isinstance(p, bool) or not isinstance(p, (int, np.integer)) or p < 1:
        raise ValueError(f"input_dim must be an int >= 1, got {p!r}")
    return int(p)


class _Observation(Module):
    #: decoder outputs per observed dimension
    params_per_dim = 1
    kind = "?"

    def __init__(self, input_dim, dtype=np.float64):
        super().__init__()
        self.input_dim = _check_p(input_dim)
        self.dtype = np.dtype(dtype)

    @property
    def n_outputs(self):
        r"""Size of the decoder's output layer, :math:`\dim H`."""
        return self.params_per_dim * self.input_dim

    def _split(self, eta):
        p = self.input_dim
        if eta.shape[-1] != self.n_outputs:
            raise ValueError(f"{type(self).__name__}: decoder output has {eta.shape[-1]} "
                             f"columns, expected {self.n_outputs}")
        return [eta[..., i * p:(i + 1) * p] for i in range(self.params_per_dim)]

    def check_data(self, x, where="X"):
        r"""Raise ValueError if ``x`` cannot be observations of this model (default: finite)."""
        return None

    def config(self):
        return {"kind": self.kind}

    def extra_repr(self):
        return f"input_dim={self.input_dim}"


class BernoulliObservation(_Observation):
    r"""Product of Bernoullis with logits :math:`\eta = f_\theta(z) \in \mathbb R^p`.

    Notes
    -----
    .. math::

        \log \mathcal B(x \mid \pi = \mathrm{sigmoid}(\eta)) = \sum_{j=1}^p \big( x_j \eta_j
        - \log(1 + e^{\eta_j}) \big),

    evaluated with the stable softplus :math:`\log(1+e^{\eta}) = \max(\eta, 0) +
    \log(1 + e^{-|\eta|})`: minus the binary cross-entropy of lecture 000, "Why is this a
    reconstruction error?". Data must be binary; continuous data in [0, 1] is binarised
    (dynamically, during training) before it gets here.
    """

    params_per_dim = 1
    kind = "bernoulli"

    def check_data(self, x, where="X"):
        x = np.asarray(x)
        bad = ~((x == 0) | (x == 1))
        if bad.any():
            i = tuple(int(v) for v in np.argwhere(bad)[0])
            raise ValueError(f"{where} is not binary (e.g. {where}[{i}] = {x[i]!r}): a Bernoulli "
                             f"likelihood needs 0/1 data; binarise it first (or train with "
                             f"binarize='dynamic' on data in [0, 1])")

    def log_prob(self, x, eta):
        r""":math:`\log p_\theta(x \mid z)`.

        Parameters
        ----------
        x : ndarray, shape (B, p)
            Binary observations.
        eta : Tensor, shape (K, B, p)
            Decoder outputs (logits) for K codes per observation.

        Returns
        -------
        Tensor, shape (K, B)
        """
        eta = _as_tensor(eta)
        if eta.ndim == 3:  # (K, B, p) against (B, p): the fused kernel's layout
            return _fused.bernoulli_log_prob(eta, np.asarray(x, dtype=eta.dtype))
        return self.log_prob_plain(x, eta)

    def log_prob_plain(self, x, eta):
        r"""The same as :meth:`log_prob` with plain Tensor ops (the reference for the fused op)."""
        eta = _as_tensor(eta)
        return (eta * np.asarray(x, dtype=eta.dtype) - eta.softplus()).sum(axis=-1)

    def mean(self, eta):
        r"""Success probabilities :math:`\mathrm{sigmoid}(\eta)`, an ndarray like ``eta``."""
        e = np.asarray(eta.data if isinstance(eta, _ad.Tensor) else eta)
        return 0.5 * (1.0 + np.tanh(0.5 * e))  # the stable sigmoid

    def sample(self, eta, rng):
        r"""Binary draws, an ndarray like ``eta``."""
        m = self.mean(eta)
        return (rng.random(m.shape) < m).astype(m.dtype)


class GaussianObservation(_Observation):
    r"""Diagonal Gaussian :math:`\mathcal N(x \mid \mu_\theta(z), \mathrm{diag}\,\sigma^2)`.

    Parameters
    ----------
    input_dim : int
        :math:`p`.
    sigma : {'fixed', 'learned', 'decoder'}
        ``'fixed'``: :math:`\sigma` = ``sigma_value`` for every dimension (the squared-error
        autoencoder of lecture 000, "Why is this a reconstruction error?"). ``'learned'``: one
        learned :math:`\sigma_j` per dimension, shared by all codes. ``'decoder'``: the decoder
        outputs :math:`(\mu, \text{raw})` with :math:`\sigma = \sigma_{\min} +
        \mathrm{softplus}(\text{raw})` (the floor keeps the likelihood bounded: a Gaussian whose
        variance can go to 0 on a training point has an unbounded likelihood, Mattei & Frellsen
        2018).
    sigma_value : float
        Initial (``'learned'``) or fixed (``'fixed'``) noise standard deviation.
    min_sigma : float
        The floor :math:`\sigma_{\min}` for ``'decoder'``.
    dtype : {numpy.float64, numpy.float32}

    Notes
    -----
    .. math::

        \log p_\theta(x \mid z) = -\sum_{j=1}^p \Big( \frac{(x_j - \mu_j)^2}{2 \sigma_j^2}
        + \log \sigma_j + \frac12 \log 2\pi \Big).
    """

    kind = "gaussian"
    _MODES = ("fixed", "learned", "decoder")

    def __init__(self, input_dim, sigma="learned", sigma_value=1.0, min_sigma=1e-3,
                 dtype=np.float64):
        super().__init__(input_dim, dtype)
        if sigma not in self._MODES:
            raise ValueError(f"GaussianObservation: sigma must be one of {self._MODES}, "
                             f"got {sigma!r}")
        if not (np.isfinite(sigma_value) and sigma_value > 0):
            raise ValueError(f"sigma_value must be a positive finite float, got {sigma_value!r}")
        if not (np.isfinite(min_sigma) and min_sigma >= 0):
            raise ValueError(f"min_sigma must be a non-negative float, got {min_sigma!r}")
        self.sigma_mode = sigma
        self.sigma_value = float(sigma_value)
        self.min_sigma = float(min_sigma)
        self.params_per_dim = 2 if sigma == "decoder" else 1
        if sigma == "learned":
            self.log_sigma = Parameter(np.full(self.input_dim, math.log(sigma_value),
                                               dtype=self.dtype))

    def check_data(self, x, where="X"):
        return None

    def _loc_log_sigma(self, eta):
        eta = _as_tensor(eta)
        parts = self._split(eta)
        mu = parts[0]
        if self.sigma_mode == "fixed":
            log_sigma = math.log(self.sigma_value)
        elif self.sigma_mode == "learned":
            log_sigma = self.log_sigma
        else:
            log_sigma = (parts[1].softplus() + self.min_sigma).log()
        return mu, log_sigma

    def log_prob(self, x, eta):
        r""":math:`\log p_\theta(x \mid z)`: ``x`` (B, p) ndarray, ``eta`` (..., B, m) Tensor
        -> Tensor (..., B)."""
        mu, log_sigma = self._loc_log_sigma(eta)
        x = np.asarray(x, dtype=mu.dtype)
        if isinstance(log_sigma, float):
            u = (mu - x) * math.exp(-log_sigma)
            return -0.5 * (u * u).sum(axis=-1) - self.input_dim * (log_sigma + 0.5 * _LOG_2PI)
        u = (mu - x) * (-log_sigma).exp()
        return (-0.5 * (u * u) - log_sigma).sum(axis=-1) - 0.5 * self.input_dim * _LOG_2PI

    def mean(self, eta):
        with _ad.no_grad():
            return np.array(self._loc_log_sigma(eta)[0].data)

    def sample(self, eta, rng):
        with _ad.no_grad():
            mu, log_sigma = self._loc_log_sigma(eta)
            sigma = np.exp(log_sigma if isinstance(log_sigma, float) else log_sigma.data)
            return mu.data + sigma * rng.standard_normal(mu.shape).astype(mu.dtype)

    def config(self):
        return {"kind": self.kind, "sigma": self.sigma_mode, "sigma_value": self.sigma_value,
                "min_sigma": self.min_sigma}

    def extra_repr(self):
        return f"input_dim={self.input_dim}, sigma={self.sigma_mode!r}"


class StudentTObservation(_Observation):
    r"""Product of Student's t distributions with decoder-output location, scale and degrees of
    freedom, :math:`\eta = (\mu, \text{raw}_s, \text{raw}_\nu)`.

    Parameters
    ----------
    input_dim : int
    min_scale : float
        :math:`s = s_{\min} + \mathrm{softplus}(\text{raw}_s)` (bounded likelihood, as for the
        Gaussian).
    min_df : float
        :math:`\nu = \nu_{\min} + \mathrm{softplus}(\text{raw}_\nu)` (a floor of 1 would keep
        the mean defined; the default only bounds the tails).
    dtype : {numpy.float64, numpy.float32}

    Notes
    -----
    .. math::

        \log \mathrm{St}(x \mid \mu, s, \nu) = \sum_j \Big( \log\Gamma\big(\tfrac{\nu_j+1}{2}\big)
        - \log\Gamma\big(\tfrac{\nu_j}{2}\big) - \tfrac12 \log(\nu_j \pi) - \log s_j
        - \tfrac{\nu_j+1}{2} \log\Big(1 + \frac{(x_j - \mu_j)^2}{\nu_j s_j^2}\Big) \Big).

    Heavy tails make the model robust to outlying pixels; as :math:`\nu \to \infty` it tends to
    the Gaussian observation model. Lecture ``000_dd8cf90fba7bcfac.txt``, "Deep latent variable
    models: the role of the observation model" (Student's t observation model); Takahashi et al.
    (2018), *Student-t variational autoencoder for robust density estimation*.
    """

    kind = "student_t"
    params_per_dim = 3

    def __init__(self, input_dim, min_scale=1e-3, min_df=0.5, dtype=np.float64):
        super().__init__(input_dim, dtype)
        if not (np.isfinite(min_scale) and min_scale >= 0):
            raise ValueError(f"min_scale must be a non-negative float, got {min_scale!r}")
        if not (np.isfinite(min_df) and min_df >= 0):
            raise ValueError(f"min_df must be a non-negative float, got {min_df!r}")
        self.min_scale = float(min_scale)
        self.min_df = float(min_df)

    def params(self, eta):
        r"""``(loc, scale, df)`` Tensors, each of shape (..., p), from decoder outputs."""
        loc, raw_s, raw_df = self._split(_as_tensor(eta))
        return loc, raw_s.softplus() + self.min_scale, raw_df.softplus() + self.min_df

    def log_prob(self, x, eta):
        r""":math:`\log p_\theta(x \mid z)`: ``x`` (B, p) ndarray, ``eta`` (..., B, 3p) Tensor
        -> Tensor (..., B)."""
        loc, scale, df = self.params(eta)
        x = np.asarray(x, dtype=loc.dtype)
        u = (x - loc) / scale
        half = 0.5 * (df + 1.0)
        lp = (half.lgamma() - (0.5 * df).lgamma() - 0.5 * (df * math.pi).log() - scale.log()
              - half * (u * u / df).log1p())
        return lp.sum(axis=-1)

    def mean(self, eta):
        r"""The location :math:`\mu` (the mean where :math:`\nu > 1`, the median always)."""
        with _ad.no_grad():
            return np.array(self.params(eta)[0].data)

    def sample(self, eta, rng):
        with _ad.no_grad():
            loc, scale, df = (t.data for t in self.params(eta))
        return (loc + scale * rng.standard_t(df)).astype(loc.dtype, copy=False)

    def config(self):
        return {"kind": self.kind, "min_scale": self.min_scale, "min_df": self.min_df}


def make_observation(spec, input_dim, *, dtype=np.float64):
    r"""Build an observation model from a name or a ``config()`` dict.

    Names: ``'bernoulli'``; ``'gaussian'`` (learned per-dimension sigma), ``'gaussian:fixed'``,
    ``'gaussian:learned'``, ``'gaussian:decoder'``; ``'student_t'`` (alias ``'student'``).
    """
    if isinstance(spec, _Observation):
        return spec
    if isinstance(spec, dict):
        cfg = dict(spec)
        kind = cfg.pop("kind", None)
        if kind == "bernoulli":
            return BernoulliObservation(input_dim, dtype=dtype)
        if kind == "gaussian":
            return GaussianObservation(input_dim, dtype=dtype, **cfg)
        if kind == "student_t":
            return StudentTObservation(input_dim, dtype=dtype, **cfg)
        raise ValueError(f"unknown observation-model config {spec!r}")
    if isinstance(spec, str):
        s = spec.lower()
        if s == "bernoulli":
            return BernoulliObservation(input_dim, dtype=dtype)
        if s == "gaussian" or s.startswith("gaussian:"):
            mode = s.split(":", 1)[1] if ":" in s else "learned"
            return GaussianObservation(input_dim, sigma=mode, dtype=dtype)
        if s in ("student_t", "student", "studentt", "t"):
            return StudentTObservation(input_dim, dtype=dtype)
    raise ValueError(f"unknown likelihood {spec!r}; expected 'bernoulli', 'gaussian', "
                     f"'gaussian:fixed', 'gaussian:learned', 'gaussian:decoder' or 'student_t'")
