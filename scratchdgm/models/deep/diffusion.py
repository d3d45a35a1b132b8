r"""Diffusion models as hierarchical VAEs: the denoising diffusion probabilistic model (DDPM,
Ho, Jain & Abbeel 2020) on low-dimensional data, with its ELBO written as the sum of its
per-step KL terms.

The model ([Mattei-DGM, "Diffusion models as hierarchical VAEs"] and [VAE-HVAE-Diffusion,
"Diffusion Models"] in ``docs/lectures.md``) is a hierarchical VAE with latents
:math:`x_1, \dots, x_T`, each of the data's dimension :math:`d`, and a *fixed* encoder that only
adds noise:

.. math::

    q(x_t \mid x_{t-1}) = \mathcal N\big(x_t \mid \sqrt{1 - \beta_t}\, x_{t-1},\ \beta_t I\big),
    \qquad t = 1, \dots, T,

with a schedule :math:`0 < \beta_t < 1`. Writing :math:`\alpha_t = 1 - \beta_t` and
:math:`\bar\alpha_t = \prod_{s \le t} \alpha_s`, the composition of Gaussian steps is Gaussian
(Ho et al. 2020, eq. 4):

.. math::

    q(x_t \mid x_0) = \mathcal N\big(x_t \mid \sqrt{\bar\alpha_t}\, x_0,\ (1 - \bar\alpha_t) I
    \big),

so when :math:`\bar\alpha_T \approx 0`, :math:`q(x_T \mid x_0) \approx \mathcal N(0, I)`
whatever :math:`x_0`: the encoder ends in pure noise. The decoder is learned and runs the other
way: :math:`p(x_T) = \mathcal N(0, I)` and, for every :math:`t`, one network shared over
:math:`t`,

.. math::

    p_\theta(x_{t-1} \mid x_t) = \mathcal N\big(x_{t-1} \mid \mu_\theta(x_t, t),\
    \sigma_t^2 I\big).

**The ELBO as a sum of KL terms.** As for any hierarchical VAE ([VAE-HVAE-Diffusion,
"Hierarchical Variational Autoencoders"]), :math:`\log p_\theta(x_0) \ge \mathbb E_q[\log
p_\theta(x_{0:T}) - \log q(x_{1:T} \mid x_0)]`, and because the encoder's steps are Gaussian,
conditioning each on :math:`x_0` turns the bound into closed-form Gaussian KLs (Sohl-Dickstein
et al. 2015, eq. 14; Ho et al. 2020, eq. 5):

.. math::

    -\mathrm{ELBO}(x_0) = \underbrace{\mathrm{KL}\big(q(x_T \mid x_0) \,\|\, p(x_T)\big)}_{L_T}
    + \sum_{t=2}^{T} \underbrace{\mathbb E_{q(x_t \mid x_0)} \mathrm{KL}\big(q(x_{t-1} \mid x_t,
    x_0) \,\|\, p_\theta(x_{t-1} \mid x_t)\big)}_{L_{t-1}}
    \underbrace{- \mathbb E_{q(x_1 \mid x_0)} \log p_\theta(x_0 \mid x_1)}_{L_0},

where the encoder's posterior given :math:`x_0` is (Ho et al. 2020, eq. 6-7)

.. math::

    q(x_{t-1} \mid x_t, x_0) = \mathcal N(\tilde\mu_t, \tilde\beta_t I), \quad
    \tilde\mu_t = \frac{\sqrt{\bar\alpha_{t-1}}\,\beta_t}{1 - \bar\alpha_t} x_0
    + \frac{\sqrt{\alpha_t}\,(1 - \bar\alpha_{t-1})}{1 - \bar\alpha_t} x_t, \quad
    \tilde\beta_t = \frac{1 - \bar\alpha_{t-1}}{1 - \bar\alpha_t}\beta_t .

:meth:`DiffusionModel.elbo_terms` computes exactly these :math:`T + 1` terms with the library's
Gaussians (:class:`~scratchdgm.distributions.DiagNormal`,
:func:`~scratchdgm.distributions.kl_divergence`).

**Noise prediction, and how it maps to the ELBO.** Write :math:`x_t = \sqrt{\bar\alpha_t}\, x_0 +
\sqrt{1 - \bar\alpha_t}\,\varepsilon` with :math:`\varepsilon \sim \mathcal N(0, I)`, and let the
network predict that noise, :math:`\mu_\theta(x_t, t) = \big(x_t - \frac{\beta_t}{\sqrt{1 -
\bar\alpha_t}} \varepsilon_\theta(x_t, t)\big) / \sqrt{\alpha_t}` (Ho et al. 2020, eq. 11). Then
:math:`\tilde\mu_t - \mu_\theta = \frac{\beta_t}{\sqrt{\alpha_t}\sqrt{1 - \bar\alpha_t}}
(\varepsilon_\theta - \varepsilon)`, and every term of the sum, :math:`L_0` included, is a
weighted squared error plus a constant (their eq. 12):

.. math::

    L_{t-1} = \lambda_t\, \mathbb E \big\lVert \varepsilon - \varepsilon_\theta(x_t, t)
    \big\rVert^2 + C_t, \qquad \lambda_t = \frac{\beta_t^2}{2 \sigma_t^2 \alpha_t (1 -
    \bar\alpha_t)},

with :math:`C_t = \frac d2 \big(\tilde\beta_t / \sigma_t^2 - 1 - \log(\tilde\beta_t /
\sigma_t^2)\big)` for :math:`t \ge 2` (zero when :math:`\sigma_t^2 = \tilde\beta_t`) and
:math:`C_1 = \frac d2 \log(2\pi\sigma_1^2)` (the Gaussian decoder's normaliser). Training with
``loss='elbo'`` (the default) draws :math:`t \sim \mathcal U\{1, \dots, T\}` and minimises
:math:`T(\lambda_t \lVert \varepsilon - \varepsilon_\theta \rVert^2 + C_t) + L_T`, an unbiased
estimate of :math:`-\mathrm{ELBO}`. ``loss='simple'`` is Ho et al.'s :math:`L_\text{simple}`
(eq. 14): the weights :math:`\lambda_t` replaced by 1 and the constants :math:`C_t`,
:math:`L_T` dropped. It reweights the bound's terms (Ho et al. call it a weighted variational
bound) and is neither the ELBO nor a bound on :math:`\log p_\theta`: both losses are minimised
by the same :math:`\varepsilon_\theta` when the network can fit every :math:`t` exactly, and
they differ in how a network that cannot spends its capacity across :math:`t`.

**The decoder's variance.** :math:`\sigma_t^2` is fixed, not learned. Ho et al. found
:math:`\sigma_t^2 = \beta_t` and :math:`\sigma_t^2 = \tilde\beta_t` to give similar samples;
for the *likelihood* of continuous low-dimensional data they are far apart, and the default
here is :math:`\beta_t`. :math:`\tilde\beta_t` is the reverse step's variance when :math:`x_0`
is known; the decoder does not know it, and at small :math:`t` its uncertainty about
:math:`x_0` adds about as much variance again, so a decoder with :math:`\tilde\beta_t` is
over-confident at every step and each KL term charges for it. With the exact denoiser of
Gaussian data, where :math:`\log p_\theta(x_0)` is known (``tests/test_diffusion.py``), the
ELBO falls 1.06-1.29 nats short of it with :math:`\tilde\beta_t` and 0.05-0.16 with
:math:`\beta_t` (T = 25); trained on two moons the test ELBO is about 2 nats better with
:math:`\beta_t` (``docs/diffusion_and_flows.md``).

References
----------
Sohl-Dickstein, J., Weiss, E., Maheswaranathan, N. & Ganguli, S. (2015). Deep unsupervised
learning using nonequilibrium thermodynamics. ICML, eq. 14 (the bound as KL terms).
Ho, J., Jain, A. & Abbeel, P. (2020). Denoising diffusion probabilistic models. NeurIPS,
eq. 4-7, 11, 12, 14 and Algorithm 2 (sampling).
Nichol, A. & Dhariwal, P. (2021). Improved denoising diffusion probabilistic models. ICML,
eq. 17 (the cosine schedule).
"""

import math

import numpy as np

from scratchdgm import autodiff as _ad
from scratchdgm.distributions import DiagNormal, StandardNormal, kl_divergence
from scratchdgm.models.deep import evaluation as _evaluation
from scratchdgm.models.deep import persistence as _persistence
from scratchdgm.models.deep import training as _training
from scratchdgm.models.deep.checks import check_observations
from scratchdgm.nn import ACTIVATIONS, MLP, Module
from scratchdgm.progress import progress as _progress
from scratchdgm.validation import (
    check_float_dtype,
    check_int,
    check_positive_int,
    check_random_state,
)

__all__ = ["NoiseSchedule", "DiffusionModel", "make_betas", "check_betas", "time_embedding"]

_LOG_2PI = math.log(2.0 * math.pi)
_HIDDEN_ACTIVATIONS = tuple(name for name in ACTIVATIONS if name != "identity")
SCHEDULES = ("linear", "cosine")
REVERSE_VARIANCES = ("posterior", "beta")
LOSSES = ("elbo", "simple")


def check_betas(betas, where="NoiseSchedule"):
    r"""Validate a noise schedule :math:`\beta_1, \dots, \beta_T`: a non-empty 1-D sequence of
    finite numbers strictly between 0 and 1 (:math:`\beta_t = 0` would make a step of the
    encoder deterministic, :math:`\beta_t \ge 1` would leave :math:`\sqrt{1 - \beta_t}` zero or
    imaginary). Returns it as a float64 array."""
    b = np.asarray(betas, dtype=np.float64)
    if b.ndim != 1 or b.size == 0:
        raise ValueError(f"{where}: betas must be a non-empty 1-D sequence (one beta_t per step "
                         f"t = 1..T), got shape {b.shape}")
    bad = np.flatnonzero(~(np.isfinite(b) & (b > 0.0) & (b < 1.0)))
    if bad.size:
        t = int(bad[0])
        raise ValueError(f"{where}: every beta_t must lie strictly between 0 and 1; beta_{t + 1} "
                         f"= {b[t]!r} (step {t + 1} of {b.size})")
    return b


def make_betas(schedule, n_steps):
    r"""A named noise schedule of ``n_steps`` values.

    Parameters
    ----------
    schedule : {'linear', 'cosine'}
        ``'linear'``: Ho et al.'s :math:`\beta_t` from :math:`10^{-4}` to :math:`0.02` over
        :math:`T = 1000` steps, rescaled by :math:`1000 / T` for a shorter chain (as Nichol &
        Dhariwal 2021 do): from :math:`0.1 / T` to :math:`20 / T`, so it needs :math:`T > 20`.
        ``'cosine'``: :math:`\bar\alpha_t = f(t) / f(0)`, :math:`f(t) = \cos^2\big(\frac{t/T +
        s}{1 + s} \frac\pi2\big)`, :math:`s = 0.008`, and :math:`\beta_t = 1 - \bar\alpha_t /
        \bar\alpha_{t-1}` capped at 0.999 (Nichol & Dhariwal 2021, eq. 17).
    n_steps : int
        :math:`T`.

    Returns
    -------
    ndarray, shape (n_steps,)
        Checked by :func:`check_betas`.
    """
    T = check_positive_int(n_steps, "n_steps", "make_betas")
    if schedule == "linear":
        betas = np.linspace(0.1 / T, 20.0 / T, T)
        if betas[-1] >= 1.0:
            raise ValueError(f"make_betas: the linear schedule reaches beta_T = {betas[-1]:g} "
                             f">= 1 with T = {T} steps; it needs T > 20 (or use 'cosine')")
    elif schedule == "cosine":
        s = 0.008
        f = np.cos((np.arange(T + 1) / T + s) / (1 + s) * np.pi / 2) ** 2
        alpha_bar = f / f[0]
        betas = np.minimum(1.0 - alpha_bar[1:] / alpha_bar[:-1], 0.999)
    else:
        raise ValueError(f"make_betas: unknown schedule {schedule!r}; expected one of "
                         f"{SCHEDULES} or an explicit sequence of betas")
    return check_betas(betas, "make_betas")


def time_embedding(t, n_steps, n_features):
    r"""Sinusoidal features of the step :math:`t` (Vaswani et al. 2017, §3.5, as Ho et al. use
    them): :math:`(\sin \omega_j t, \cos \omega_j t)_j` with frequencies :math:`\omega_j` from 1
    down to :math:`1/T` radians per step, geometrically spaced.

    The highest frequency stays below :math:`\pi` per step, so neighbouring integer steps
    never alias; the lowest changes slowly enough to say where in the chain :math:`t` is.

    Parameters
    ----------
    t : ndarray of int, shape (n,)
    n_steps : int
    n_features : int
        Even, :math:`\ge 2`.

    Returns
    -------
    ndarray, shape (n, n_features), float64
    """
    m = n_features // 2
    omega = np.float64(n_steps) ** (-np.arange(m) / max(m - 1, 1))
    angle = np.asarray(t, dtype=np.float64)[:, None] * omega[None, :]
    return np.concatenate([np.sin(angle), np.cos(angle)], axis=1)


class NoiseSchedule:
    r"""The fixed encoder of a diffusion model: its steps, its marginals and its posteriors,
    as distributions of :mod:`scratchdgm.distributions`.

    Parameters
    ----------
    betas : array_like, shape (T,)
        :math:`\beta_1, \dots, \beta_T`, each in (0, 1) (:func:`check_betas`).
    reverse_variance : {'beta', 'posterior'}
        The decoder's fixed variance :math:`\sigma_t^2`: :math:`\beta_t` (the upper of Ho et
        al.'s two choices, the default: the tighter ELBO on continuous data, see the module
        docstring) or :math:`\tilde\beta_t` (the encoder's posterior variance, the lower).
        :math:`\tilde\beta_1 = 0`, so :math:`\sigma_1^2 = \beta_1` in both cases.
    dtype : {numpy.float64, numpy.float32}
        Dtype of the coefficients it hands out (the schedule itself is computed in float64).
    backend : {None, 'numpy', 'numba', 'cuda', 'auto'}
        Kernel backend of the Gaussian densities it returns.

    Attributes
    ----------
    betas, alphas, alpha_bars : ndarray, shape (T,)
        :math:`\beta_t`, :math:`\alpha_t = 1 - \beta_t`, :math:`\bar\alpha_t = \prod_{s \le t}
        \alpha_s`; entry ``t - 1`` is step :math:`t`.
    alpha_bars_prev : ndarray, shape (T,)
        :math:`\bar\alpha_{t-1}`, with :math:`\bar\alpha_0 = 1`.
    posterior_variance : ndarray, shape (T,)
        :math:`\tilde\beta_t = \frac{1 - \bar\alpha_{t-1}}{1 - \bar\alpha_t} \beta_t` (Ho et al.
        2020, eq. 7).
    sigma2 : ndarray, shape (T,)
        :math:`\sigma_t^2`.

    Notes
    -----
    Every method takes the step as ``t``: an int in 1..T, or an int array of shape (B,) (one
    step per row of its other arguments).
    """

    def __init__(self, betas, reverse_variance="beta", *, dtype=np.float64, backend=None):
        self.betas = check_betas(betas)
        self.dtype = check_float_dtype(dtype, "NoiseSchedule")
        self.backend = backend
        if reverse_variance not in REVERSE_VARIANCES:
            raise ValueError(f"NoiseSchedule: reverse_variance must be one of "
                             f"{REVERSE_VARIANCES}, got {reverse_variance!r}")
        self.reverse_variance = reverse_variance
        self.n_steps = self.betas.size
        self.alphas = 1.0 - self.betas
        self.alpha_bars = np.cumprod(self.alphas)
        self.alpha_bars_prev = np.concatenate([[1.0], self.alpha_bars[:-1]])
        self.posterior_variance = ((1.0 - self.alpha_bars_prev) / (1.0 - self.alpha_bars)
                                   * self.betas)
        with np.errstate(divide="ignore"):  # log(beta~_1) = log 0 = -inf, never used
            self._half_log_posterior_variance = 0.5 * np.log(self.posterior_variance)
        if reverse_variance == "beta":
            self.sigma2 = self.betas.copy()
        else:
            self.sigma2 = np.concatenate([self.betas[:1], self.posterior_variance[1:]])

    def _index(self, t):
        """``t - 1`` as an int array, with a clear error for a step outside 1..T."""
        t = np.asarray(t)
        if t.dtype.kind not in "iu" or np.any(t < 1) or np.any(t > self.n_steps):
            raise ValueError(f"step t must be an int (or int array) in 1..{self.n_steps}, got "
                             f"{t if t.size < 6 else f'values in [{t.min()}, {t.max()}]'}")
        return t - 1

    def _coef(self, values, t):
        """A per-step coefficient for ``t``: a scalar, or shape (B, 1) to scale rows."""
        v = values[self._index(t)].astype(self.dtype)
        return v if np.ndim(v) == 0 else v[:, None]

    @staticmethod
    def _check_rows(t, *arrays):
        """An array ``t`` gives one step per row: it must match the rows of every argument."""
        if np.ndim(t) > 1:
            raise ValueError(f"t must be an int or a 1-D array of ints (one step per row), got "
                             f"shape {np.shape(t)}")
        if np.ndim(t) == 1:
            for a in arrays:
                if np.ndim(a) != 2 or np.shape(a)[0] != len(t):
                    raise ValueError(f"t holds {len(t)} steps but an argument has shape "
                                     f"{np.shape(a)}; expected shape ({len(t)}, d): one step "
                                     f"per row")

    def q_step(self, x_prev, t):
        r""":math:`q(x_t \mid x_{t-1}) = \mathcal N(\sqrt{1 - \beta_t}\, x_{t-1}, \beta_t I)`,
        the encoder's step, as a :class:`~scratchdgm.distributions.DiagNormal`."""
        self._check_rows(t, x_prev)
        return DiagNormal(self._coef(np.sqrt(self.alphas), t) * np.asarray(x_prev),
                          self._coef(0.5 * np.log(self.betas), t), backend=self.backend)

    def q_marginal(self, x0, t):
        r""":math:`q(x_t \mid x_0) = \mathcal N(\sqrt{\bar\alpha_t}\, x_0, (1 - \bar\alpha_t)
        I)` (Ho et al. 2020, eq. 4)."""
        self._check_rows(t, x0)
        return DiagNormal(self._coef(np.sqrt(self.alpha_bars), t) * np.asarray(x0),
                          self._coef(0.5 * np.log1p(-self.alpha_bars), t), backend=self.backend)

    def perturb(self, x0, t, eps):
        r""":math:`x_t = \sqrt{\bar\alpha_t}\, x_0 + \sqrt{1 - \bar\alpha_t}\, \varepsilon`:
        a draw of :math:`q(x_t \mid x_0)` from given noise ``eps`` (the reparametrisation that
        lets the network be trained to predict :math:`\varepsilon`)."""
        self._check_rows(t, x0, eps)
        return (self._coef(np.sqrt(self.alpha_bars), t) * np.asarray(x0)
                + self._coef(np.sqrt(1.0 - self.alpha_bars), t) * np.asarray(eps))

    def q_posterior(self, x_t, x0, t):
        r""":math:`q(x_{t-1} \mid x_t, x_0) = \mathcal N(\tilde\mu_t, \tilde\beta_t I)` for
        :math:`t \ge 2` (Ho et al. 2020, eq. 6-7; at :math:`t = 1` it is a point mass on
        :math:`x_0`)."""
        self._check_rows(t, x_t, x0)
        i = self._index(t)
        if np.any(i < 1):
            raise ValueError("q_posterior needs t >= 2: q(x_0 | x_1, x_0) is a point mass")
        c0 = self._coef(np.sqrt(self.alpha_bars_prev) * self.betas / (1.0 - self.alpha_bars), t)
        ct = self._coef(np.sqrt(self.alphas) * (1.0 - self.alpha_bars_prev)
                        / (1.0 - self.alpha_bars), t)
        return DiagNormal(c0 * np.asarray(x0) + ct * np.asarray(x_t),
                          self._coef(self._half_log_posterior_variance, t),
                          backend=self.backend)

    def mean_from_noise(self, x_t, eps, t):
        r""":math:`\mu = \big(x_t - \frac{\beta_t}{\sqrt{1 - \bar\alpha_t}} \varepsilon\big) /
        \sqrt{\alpha_t}` (Ho et al. 2020, eq. 11): the decoder's mean from a noise prediction
        ``eps`` (Tensor or ndarray, differentiable in ``eps``)."""
        self._check_rows(t, x_t, eps)
        a = self._coef(1.0 / np.sqrt(self.alphas), t)
        c = self._coef(self.betas / np.sqrt(1.0 - self.alpha_bars), t)
        return (np.asarray(x_t) - c * eps) * a

    def elbo_weight(self, t):
        r""":math:`\lambda_t = \beta_t^2 / (2 \sigma_t^2 \alpha_t (1 - \bar\alpha_t))`, the
        weight of :math:`\lVert \varepsilon - \varepsilon_\theta \rVert^2` in :math:`L_{t-1}`
        (Ho et al. 2020, eq. 12); an array of ``t``'s shape."""
        i = self._index(t)
        return (self.betas[i] ** 2
                / (2.0 * self.sigma2[i] * self.alphas[i] * (1.0 - self.alpha_bars[i])))

    def elbo_constant(self, t, d):
        r""":math:`C_t`: the part of :math:`L_{t-1}` that does not depend on the network,
        :math:`\frac d2 (r - 1 - \log r)` with :math:`r = \tilde\beta_t / \sigma_t^2` for
        :math:`t \ge 2`, and :math:`\frac d2 \log(2\pi\sigma_1^2)` for :math:`t = 1`."""
        i = self._index(t)
        with np.errstate(divide="ignore"):
            r = self.posterior_variance[i] / self.sigma2[i]
            kl_part = 0.5 * d * (r - 1.0 - np.log(r))
        return np.where(i == 0, 0.5 * d * (_LOG_2PI + np.log(self.sigma2[0])), kl_part)


@_persistence.register_model
class DiffusionModel(_persistence.SaveLoadMixin, Module):
    r"""A DDPM on :math:`\mathbb R^d`: a fixed Gaussian noising encoder over T steps and an MLP
    noise predictor :math:`\varepsilon_\theta(x_t, t)`, trained on the ELBO (or on Ho et al.'s
    simplified loss).

    Parameters
    ----------
    input_dim : int
        :math:`d`.
    n_steps : int
        :math:`T`, the number of noising steps (latent layers).
    hidden : sequence of int
        Hidden widths of the noise predictor.
    schedule : {'linear', 'cosine'} or array_like of shape (n_steps,)
        The betas (:func:`make_betas`), or an explicit sequence of them in (0, 1).
    reverse_variance : {'beta', 'posterior'}
        :math:`\sigma_t^2` of the decoder (see :class:`NoiseSchedule`).
    loss : {'elbo', 'simple'}
        The training loss: the ELBO (the weighted noise-prediction error, see the module
        docstring) or :math:`L_\text{simple}` (Ho et al. 2020, eq. 14).
    n_time_features : int
        Size of the sinusoidal embedding of :math:`t` fed to the network with :math:`x_t`
        (:func:`time_embedding`; even).
    activation : {'relu', 'tanh', 'softplus', 'sigmoid'}
    k : int
        Draws of :math:`(t, \varepsilon)` per data point in one training step.
    dtype : {numpy.float64, numpy.float32}
    random_state : None, int or numpy.random.Generator
        Initialises the weights.
    backend : {None, 'numpy', 'numba', 'cuda', 'auto'}
        Kernel backend of the network, the densities and the optimiser in :meth:`fit`.

    Attributes
    ----------
    schedule : NoiseSchedule
        The encoder (no parameters).
    denoiser : MLP, sizes ``[d + n_time_features, *hidden, d]``
        :math:`\varepsilon_\theta`: its weights are :math:`\theta`.

    Notes
    -----
    The score of a point is its ELBO, a lower bound on :math:`\log p_\theta(x)`
    (:meth:`score_samples`); :meth:`bound` is the importance-weighted :math:`\mathcal L_K` with
    whole noising chains as the K samples (:meth:`log_weights`), which tightens towards
    :math:`\log p_\theta(x)` as K grows, as a VAE's does.

    References
    ----------
    Ho, Jain & Abbeel (2020), NeurIPS, eq. 4-7, 11, 12, 14, Algorithm 2. Sohl-Dickstein et al.
    (2015), ICML, eq. 14. [Mattei-DGM, "Diffusion models as hierarchical VAEs"],
    [VAE-HVAE-Diffusion, "Diffusion Models"].
    """

    def __init__(self, input_dim, n_steps=100, hidden=(128, 128, 128), *, schedule="linear",
                 reverse_variance="beta", loss="elbo", n_time_features=16,
                 activation="relu", k=1, dtype=np.float64, random_state=0, backend=None):
        super().__init__()
        where = type(self).__name__
        self.input_dim = check_positive_int(input_dim, "input_dim", where)
        self.n_steps = check_positive_int(n_steps, "n_steps", where)
        if isinstance(hidden, (int, np.integer)):
            hidden = (hidden,)
        self.hidden = tuple(check_positive_int(h, "each hidden size", where) for h in hidden)
        if isinstance(schedule, str):
            betas = make_betas(schedule, self.n_steps)
        else:
            betas = check_betas(schedule, where)
            if betas.size != self.n_steps:
                raise ValueError(f"{where}: {betas.size} betas given for n_steps = "
                                 f"{self.n_steps}; expected one per step")
        self.schedule_name = schedule if isinstance(schedule, str) else None
        self.dtype = check_float_dtype(dtype, where)
        self.schedule = NoiseSchedule(betas, reverse_variance, dtype=self.dtype, backend=backend)
        if loss not in LOSSES:
            raise ValueError(f"{where}: loss must be one of {LOSSES}, got {loss!r}")
        self.loss = loss
        self.n_time_features = check_int(n_time_features, "n_time_features", 2, where)
        if self.n_time_features % 2:
            raise ValueError(f"{where}: n_time_features must be even (sine and cosine pairs), "
                             f"got {self.n_time_features}")
        if not isinstance(activation, str) or activation.lower() not in _HIDDEN_ACTIVATIONS:
            raise ValueError(f"{where}: activation must be one of {_HIDDEN_ACTIVATIONS}, got "
                             f"{activation!r}")
        self.activation = activation.lower()
        self.k = check_positive_int(k, "k", where)
        self.backend = backend
        rng = check_random_state(random_state, where)
        self.denoiser = MLP([self.input_dim + self.n_time_features, *self.hidden,
                             self.input_dim], self.activation, rng=rng, dtype=self.dtype,
                            backend=backend)
        self.history_ = None

    # -- the decoder p_theta(x_{t-1} | x_t) ----------------------------------------------------

    def epsilon(self, x_t, t):
        r"""The noise prediction :math:`\varepsilon_\theta(x_t, t)`, a Tensor of shape (B, d).

        Parameters
        ----------
        x_t : ndarray, shape (B, d)
        t : int or ndarray of int, shape (B,)
            Steps in 1..T.
        """
        x_t = check_observations(x_t, self.input_dim, self.dtype, "x_t")
        self.schedule._check_rows(t, x_t)
        t = np.broadcast_to(np.asarray(t), (x_t.shape[0],))
        self.schedule._index(t)  # a step outside 1..T is an error, not an extrapolation
        features = time_embedding(t, self.n_steps, self.n_time_features).astype(self.dtype)
        return self.denoiser(np.concatenate([x_t, features], axis=1))

    def reverse(self, x_t, t):
        r"""The decoder's step :math:`p_\theta(x_{t-1} \mid x_t) = \mathcal N(\mu_\theta(x_t,
        t), \sigma_t^2 I)` as a :class:`~scratchdgm.distributions.DiagNormal` of batch shape
        (B,), differentiable in :math:`\theta`, with :math:`\mu_\theta` from the noise
        prediction (:meth:`NoiseSchedule.mean_from_noise`)."""
        mu = self.schedule.mean_from_noise(x_t, self.epsilon(x_t, t), t)
        return DiagNormal(mu, self.schedule._coef(0.5 * np.log(self.schedule.sigma2), t),
                          backend=self.backend)

    # -- the ELBO --------------------------------------------------------------------------------

    def _prior_kl(self, x0):
        r""":math:`L_T = \mathrm{KL}(q(x_T \mid x_0) \,\|\, \mathcal N(0, I))`, shape (B,)."""
        q_T = self.schedule.q_marginal(x0, self.n_steps)
        return kl_divergence(q_T, StandardNormal(self.input_dim, self.dtype,
                                                backend=self.backend)).data

    def objective(self, x, k=None, rng=None):
        r"""The loss of one training step on a minibatch ``x`` (B, d), a scalar Tensor.

        ``loss='elbo'``: with :math:`k` draws :math:`t \sim \mathcal U\{1..T\}`,
        :math:`\varepsilon \sim \mathcal N(0, I)` per point,

        .. math::

            \frac{1}{kB} \sum \Big[ T \big(\lambda_t \lVert \varepsilon - \varepsilon_\theta(
            \sqrt{\bar\alpha_t}\, x_0 + \sqrt{1 - \bar\alpha_t}\,\varepsilon, t) \rVert^2 +
            C_t\big) + L_T \Big],

        an unbiased estimate of :math:`-\mathrm{ELBO}` (so minus it is the "bound" the training
        loop reports). ``loss='simple'``: :math:`\frac{1}{kB} \sum \lVert \varepsilon -
        \varepsilon_\theta \rVert^2` (Ho et al. 2020, eq. 14), not a bound.
        """
        k = self.k if k is None else check_positive_int(k, "k", "objective")
        if not isinstance(rng, np.random.Generator):
            raise TypeError("objective needs rng, a numpy.random.Generator (randomness is "
                            "explicit)")
        x0 = np.asarray(x.data if isinstance(x, _ad.Tensor) else x, dtype=self.dtype)
        x0 = np.tile(x0, (k, 1))
        t = rng.integers(1, self.n_steps + 1, size=len(x0))
        eps = rng.standard_normal(x0.shape).astype(self.dtype, copy=False)
        x_t = self.schedule.perturb(x0, t, eps)
        err = (self.epsilon(x_t, t) - eps).square().sum(axis=-1)
        if self.loss == "simple":
            return err.mean()
        s, dt = self.schedule, self.dtype
        weight = s.elbo_weight(t).astype(dt)
        constant = s.elbo_constant(t, self.input_dim).astype(dt)
        per_point = self.n_steps * (err * weight + constant) + self._prior_kl(x0).astype(dt)
        return per_point.mean()

    def elbo_terms(self, X, k=1, random_state=None, chunk_size=20_000):
        r"""The :math:`T + 1` terms of :math:`-\mathrm{ELBO}` for each row, in the KL form.

        Parameters
        ----------
        X : array_like, shape (n, d)
        k : int
            Draws of :math:`x_t \sim q(x_t \mid x_0)` averaged in each expectation.
        random_state : None, int or numpy.random.Generator
        chunk_size : int
            About this many (point, step, draw) rows go through the network at once.

        Returns
        -------
        ndarray, shape (n, T + 1)
            Column 0: :math:`L_0 = -\mathbb E \log p_\theta(x_0 \mid x_1)`; column
            :math:`t - 1` for :math:`t = 2..T`: :math:`L_{t-1} = \mathbb E\, \mathrm{KL}(q(x_{t-1}
            \mid x_t, x_0) \,\|\, p_\theta(x_{t-1} \mid x_t))`; column :math:`T`: :math:`L_T =
            \mathrm{KL}(q(x_T \mid x_0) \,\|\, \mathcal N(0, I))`. Their row sums are
            :math:`-\mathrm{ELBO}(x_0)`.

        Notes
        -----
        Each term is computed as written, with :class:`~scratchdgm.distributions.DiagNormal`
        densities and :func:`~scratchdgm.distributions.kl_divergence`: the definition that
        the noise-prediction form of :meth:`objective` is tested against.
        """
        X = self.check_data(X)
        k = check_positive_int(k, "k", "elbo_terms")
        rng = check_random_state(random_state, "elbo_terms")
        n, T = len(X), self.n_steps
        terms = np.zeros((n, T + 1))
        per_point = T * k
        rows = max(1, chunk_size // per_point)
        with _ad.no_grad():
            for s in range(0, n, rows):
                x0 = X[s:s + rows]
                m = len(x0)
                # rows ordered (step, draw, point): step t = 1..T
                t = np.repeat(np.arange(1, T + 1), k * m)
                x0_rep = np.tile(x0, (T * k, 1))
                x_t = self.schedule.q_marginal(x0_rep, t).sample(random_state=rng)
                first = t == 1
                out = np.empty(len(t))
                p1 = self.reverse(x_t[first], t[first])
                out[first] = -p1.log_prob(x0_rep[first]).data
                rest = ~first
                if rest.any():
                    q = self.schedule.q_posterior(x_t[rest], x0_rep[rest], t[rest])
                    p = self.reverse(x_t[rest], t[rest])
                    out[rest] = kl_divergence(q, p).data
                terms[s:s + m, :T] = out.reshape(T, k, m).mean(axis=1).T
                terms[s:s + m, T] = self._prior_kl(x0)
        return terms

    def log_weights(self, x, k, rng):
        r"""Importance log-weights with whole noising chains as the samples, shape (k, B).

        .. math::

            \log w = \log p(x_T) + \sum_{t=1}^T \log p_\theta(x_{t-1} \mid x_t)
            - \sum_{t=1}^T \log q(x_t \mid x_{t-1}), \qquad x_{1:T} \sim q(x_{1:T} \mid x_0),

        the hierarchical VAE's :math:`\log p_\theta(x_0, x_{1:T}) - \log q(x_{1:T} \mid x_0)`:
        its mean is the ELBO, and :math:`\log \frac1K \sum_k w_k` is the bound
        :math:`\mathcal L_K` of Burda et al. (2016) for this model, read by the evaluation
        functions written for VAEs.
        """
        k = check_positive_int(k, "k", "log_weights")
        x0 = np.asarray(x.data if isinstance(x, _ad.Tensor) else x, dtype=self.dtype)
        B, d, T = x0.shape[0], self.input_dim, self.n_steps
        chain = np.empty((T + 1, k * B, d), dtype=self.dtype)
        chain[0] = np.tile(x0, (k, 1))
        log_q = np.zeros(k * B)
        for t in range(1, T + 1):
            step = self.schedule.q_step(chain[t - 1], t)
            chain[t] = step.sample(random_state=rng)
            log_q += step.log_prob(chain[t]).data
        t = np.repeat(np.arange(1, T + 1), k * B)
        log_p_steps = self.reverse(chain[1:].reshape(-1, d), t).log_prob(
            chain[:-1].reshape(-1, d)).reshape(T, k * B).sum(axis=0)
        log_p = (StandardNormal(d, self.dtype, backend=self.backend).log_prob(chain[T])
                 + log_p_steps)
        return (log_p - log_q).reshape(k, B)

    # -- the public boundary -----------------------------------------------------------------

    def check_data(self, X, where="X", *, allow_unit_interval=False):
        r"""Validate data: 2-D, ``input_dim`` columns, finite; returns an array of the model's
        dtype. (``allow_unit_interval`` belongs to the training loop's protocol: continuous
        data is never binarised.)"""
        return check_observations(X, self.input_dim, self.dtype, where)

    def fit(self, X, *, epochs=100, batch_size=128, lr=1e-3, X_val=None, checkpoint=None,
            resume=False, progress=True, random_state=0, val_k=None, callback=None,
            blas_threads=1, metadata=None):
        r"""Train by minibatch Adam on :meth:`objective`, through
        :func:`scratchdgm.models.deep.training.fit` (checkpoints with exact resume, a progress
        bar, the NaN guard; the validation column is :meth:`bound` with ``val_k`` chains,
        which costs T network passes per point of ``X_val``: keep it small). Returns
        ``self``."""
        _training.fit(self, X, epochs=epochs, batch_size=batch_size, lr=lr, X_val=X_val,
                      binarize="none", checkpoint=checkpoint, resume=resume,
                      progress=progress, random_state=random_state, val_k=val_k,
                      callback=callback, blas_threads=blas_threads, metadata=metadata)
        return self

    def score_samples(self, X, k=1, random_state=None):
        r"""The ELBO of each row, shape (n,): a *lower bound* on :math:`\log p_\theta(x_i)`
        (nats), the row sums of :meth:`elbo_terms` with the sign flipped."""
        return -self.elbo_terms(X, k, random_state).sum(axis=1)

    def score(self, X, k=1, random_state=None):
        r"""The mean ELBO over the rows of ``X`` (a lower bound on the mean log-likelihood)."""
        return float(np.mean(self.score_samples(X, k, random_state)))

    def bound_samples(self, X, k=None, random_state=None, *, progress=True):
        r"""One draw of :math:`\mathcal L_K(x_i)` per row (default K: the model's ``k``) with
        :meth:`log_weights`; see :func:`scratchdgm.models.deep.evaluation.bound_samples`."""
        k = self.k if k is None else check_positive_int(k, "k", "bound")
        # a batch of B points costs k * T rows of the network: keep that near 20000
        return _evaluation.bound_samples(self, X, k, random_state,
                                         batch_size=max(1, 20_000 // (k * self.n_steps)),
                                         progress=progress)

    def bound(self, X, k=None, random_state=None, *, progress=True):
        r"""The mean of :meth:`bound_samples`."""
        return float(np.mean(self.bound_samples(X, k, random_state, progress=progress)))

    def sample(self, n_samples=1, random_state=None, *, return_trajectory=False,
               progress=False):
        r"""Ancestral sampling (Ho et al. 2020, Algorithm 2): :math:`x_T \sim \mathcal N(0,
        I)`, then :math:`x_{t-1} \sim p_\theta(x_{t-1} \mid x_t)` for :math:`t = T, \dots, 1`.

        The last step draws from :math:`p_\theta(x_0 \mid x_1)` too (Algorithm 2 shows its mean
        instead), so the samples follow the model whose ELBO :meth:`score_samples` reports.

        Parameters
        ----------
        n_samples : int
        random_state : None, int or numpy.random.Generator
        return_trajectory : bool
            Also return every :math:`x_t`.
        progress : bool
            A progress bar over the T steps.

        Returns
        -------
        X : ndarray, shape (n_samples, d)
        trajectory : ndarray, shape (T + 1, n_samples, d)
            Only if ``return_trajectory``: ``trajectory[t]`` holds :math:`x_t`.
        """
        n = check_positive_int(n_samples, "n_samples", "sample")
        rng = check_random_state(random_state, "sample")
        T = self.n_steps
        x = StandardNormal(self.input_dim, self.dtype, backend=self.backend).sample((n,), rng)
        trajectory = np.empty((T + 1, n, self.input_dim), dtype=self.dtype)
        trajectory[T] = x
        with _ad.no_grad():
            for t in _progress(range(T, 0, -1), total=T, desc="sampling", enabled=progress):
                x = self.reverse(x, t).sample(random_state=rng)
                trajectory[t - 1] = x
        return (x, trajectory) if return_trajectory else x

    # -- persistence -------------------------------------------------------------------------

    def config(self):
        r"""The constructor arguments that rebuild this architecture (JSON-serialisable)."""
        return {
            "class": type(self).__name__,
            "input_dim": self.input_dim,
            "n_steps": self.n_steps,
            "hidden": list(self.hidden),
            "schedule": (self.schedule_name if self.schedule_name is not None
                         else self.schedule.betas.tolist()),
            "reverse_variance": self.schedule.reverse_variance,
            "loss": self.loss,
            "n_time_features": self.n_time_features,
            "activation": self.activation,
            "k": self.k,
            "dtype": self.dtype.name,
        }

    def extra_repr(self):
        return (f"input_dim={self.input_dim}, n_steps={self.n_steps}, "
                f"hidden={list(self.hidden)}, loss={self.loss!r}, "
                f"schedule={self.schedule_name or 'custom'!r}")
