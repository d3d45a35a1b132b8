r"""Probability distributions of deep latent variable models, differentiable through
:mod:`scratchdgm.autodiff`: log-densities, reparametrised samples and closed-form KL divergences.

=========================  =====================================  ============================
class                      role in a DLVM                         parameters (names say how)
=========================  =====================================  ============================
:class:`DiagNormal`        encoder :math:`q_\gamma(z \mid x)`;    ``mu``, ``log_sigma`` (log
                           Gaussian observation model             standard deviation)
:class:`StandardNormal`    prior :math:`\mathcal N(0, I_d)`        ``d``
:class:`FullNormal`        full-covariance Gaussian               ``mu``, ``scale_tril``
                                                                  (:math:`\Sigma = L L^\top`)
:class:`Bernoulli`         observation model for binary data      ``logits``
:class:`StudentT`          heavy-tailed observation model         ``loc``, ``log_scale``,
                                                                  ``log_df``
:class:`GaussianMixture`   learnable prior                        ``logits``, ``mu``,
                                                                  ``log_sigma``
:class:`Categorical`       discrete latent / mixture component    ``logits``
=========================  =====================================  ============================

Conventions. The *last axis* is the event axis (dimension :math:`d` of :math:`z`, or :math:`p`
of :math:`x`); ``log_prob`` sums over it and returns a tensor of the batch shape. Parameters may
be :class:`~scratchdgm.autodiff.Tensor` (gradients flow into them) or arrays (constants). Every
sampler takes a ``numpy.random.Generator``. Densities use the stable forms (softplus,
log-sigmoid, log-sum-exp, ``lgamma``) so that no intermediate overflows.

The parametrisation is in the names: ``log_sigma`` is :math:`\log \sigma`, the log *standard
deviation* (not the log variance); sampling, ``log_prob`` and :func:`kl_divergence` all read it
the same way, which the tests check (empirical standard deviation of samples, Monte Carlo KL).

Lecture: ``shared/seeds/000_dd8cf90fba7bcfac.txt``, "Deep latent variable models: the role of the
observation model" (Gaussian, Bernoulli, Student's t), "Reparametrisation trick for
:math:`\nabla_\gamma`", "More on this KL regulariser" (KL between full-covariance Gaussians);
``001_6c8d427d4ea74748.txt``, "The role of the prior" (learnable Gaussian-mixture priors).
"""

import math

import numpy as np

from scratchdgm import autodiff as _ad
from scratchdgm.autodiff import Function, Tensor
from scratchdgm.autodiff import fused as _fused

__all__ = [
    "Distribution",
    "DiagNormal",
    "StandardNormal",
    "FullNormal",
    "Bernoulli",
    "StudentT",
    "GaussianMixture",
    "Categorical",
    "kl_divergence",
    "TriangularSolve",
]

_LOG_2PI = math.log(2.0 * math.pi)
_LOG_PI = math.log(math.pi)


# ------------------------------------------------------------------------------ helpers
def _param(x, name, cls, dtype=None):
    """A parameter as a Tensor (arrays become constants), finite, of a float dtype. Arrays and
    numbers take ``dtype`` (that of the tensor parameters) so a float32 model stays float32."""
    if isinstance(x, Tensor):
        t = x
    else:
        arr = np.asarray(x)
        if arr.dtype.kind not in "biuf":
            raise TypeError(f"{cls}: {name} must be numeric (float32 or float64), "
                            f"got dtype {arr.dtype}")
        t = _ad.tensor(arr, dtype=dtype)
    if not np.all(np.isfinite(t.data)):
        raise ValueError(f"{cls}: {name} contains NaN or infinite values; expected finite numbers")
    return t


def _params(cls, **named):
    """Convert several parameters with :func:`_param`; non-tensors follow the tensors' dtype."""
    tensors = [v.dtype for v in named.values() if isinstance(v, Tensor)]
    dtype = np.result_type(*tensors) if tensors else None
    return [_param(v, k, cls, dtype) for k, v in named.items()]


def _broadcast(shapes, names, cls):
    try:
        return tuple(np.broadcast_shapes(*shapes))
    except ValueError:
        desc = ", ".join(f"{n} {s}" for n, s in zip(names, shapes))
        raise ValueError(f"{cls}: parameter shapes do not broadcast together: {desc}") from None


def _sample_shape(sample_shape, where):
    if isinstance(sample_shape, (int, np.integer)) and not isinstance(sample_shape, bool):
        sample_shape = (int(sample_shape),)
    try:
        if isinstance(sample_shape, (str, bytes)):
            raise TypeError
        shape = tuple(int(s) for s in sample_shape)
    except (TypeError, ValueError):
        raise TypeError(f"{where}: sample_shape must be an int or a tuple of ints, "
                        f"got {sample_shape!r}") from None
    if any(s < 0 for s in shape):
        raise ValueError(f"{where}: sample_shape must not hold negative sizes, got {shape}")
    return shape


def _check_rng(rng, where):
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"{where}: rng must be a numpy.random.Generator, got {type(rng).__name__}")
    return rng


def _bcast_to(t, shape):
    return t if t.shape == tuple(shape) else t.broadcast_to(shape)


def _result_dtype(*tensors):
    return np.result_type(*[t.dtype for t in tensors])


class Distribution:
    r"""Base class: a batch of distributions over vectors (the last axis is the event axis).

    Attributes
    ----------
    batch_shape : tuple of int
    event_shape : tuple of int
        ``(d,)``: the dimension of one draw.
    dtype : numpy.dtype
    """

    batch_shape = ()
    event_shape = ()
    dtype = np.dtype(np.float64)

    @property
    def d(self):
        """Dimension of one draw (the event axis)."""
        return self.event_shape[0] if self.event_shape else 1

    def _value(self, x, name="x"):
        """Validate a point at which to evaluate ``log_prob``: shape ``(..., d)`` broadcastable
        with ``batch_shape + (d,)``, finite; arrays are cast to the distribution's dtype."""
        cls = type(self).__name__
        if isinstance(x, Tensor):
            data = x.data
        else:
            data = np.asarray(x)
            if data.dtype.kind not in "biuf":
                raise TypeError(f"{cls}.log_prob: {name} must be numeric, got dtype {data.dtype}")
            data = data.astype(self.dtype)
            x = _ad.tensor(data)
        full = self.batch_shape + self.event_shape
        if data.ndim < 1 or data.shape[-1] != self.d:
            raise ValueError(f"{cls}.log_prob: {name} has shape {data.shape}; expected "
                             f"(..., {self.d}) (the last axis is the event dimension d={self.d})")
        try:
            np.broadcast_shapes(data.shape, full)
        except ValueError:
            raise ValueError(f"{cls}.log_prob: {name} of shape {data.shape} does not broadcast "
                             f"with the distribution's shape {full} (batch {self.batch_shape}, "
                             f"event ({self.d},)); expected (..., *batch, {self.d})") from None
        if not np.all(np.isfinite(data)):
            raise ValueError(f"{cls}.log_prob: {name} contains NaN or infinite values")
        return x

    def log_prob(self, x):  # pragma: no cover - documented interface
        raise NotImplementedError(f"{type(self).__name__} does not define log_prob")

    def sample(self, rng, sample_shape=()):  # pragma: no cover - documented interface
        raise NotImplementedError(f"{type(self).__name__} does not define sample")

    def __repr__(self):
        return (f"{type(self).__name__}(batch_shape={self.batch_shape}, "
                f"event_shape={self.event_shape}, dtype={self.dtype})")


# ------------------------------------------------------------------------------ Gaussians
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
    :math:`\epsilon \sim \mathcal N(0, I_d)` (lecture 000, "Reparametrisation trick for
    :math:`\nabla_\gamma`"), so gradients reach :math:`\mu` and :math:`\log\sigma`.

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

    def __init__(self, mu, log_sigma):
        cls = type(self).__name__
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
        return _fused.diag_gaussian_log_prob(x, self.mu, self.log_sigma)

    def rsample(self, rng, sample_shape=()):
        r"""Reparametrised sample :math:`\mu + e^{\log\sigma} \odot \epsilon` (differentiable).

        Parameters
        ----------
        rng : numpy.random.Generator
        sample_shape : int or tuple of int, default ()

        Returns
        -------
        Tensor, shape ``sample_shape + batch_shape + (d,)``
        """
        rng = _check_rng(rng, f"{type(self).__name__}.rsample")
        shape = _sample_shape(sample_shape, f"{type(self).__name__}.rsample") + self._shape
        eps = rng.standard_normal(shape, dtype=self.dtype)
        return self.mu + self.log_sigma.exp() * eps

    def sample(self, rng, sample_shape=()):
        r"""A sample as a plain ndarray (no graph), shape ``sample_shape + batch_shape + (d,)``."""
        rng = _check_rng(rng, f"{type(self).__name__}.sample")
        shape = _sample_shape(sample_shape, f"{type(self).__name__}.sample") + self._shape
        eps = rng.standard_normal(shape, dtype=self.dtype)
        return (self.mu.data + np.exp(self.log_sigma.data) * eps).astype(self.dtype, copy=False)

    def entropy(self):
        r""":math:`H = \sum_j (\tfrac12 \log(2\pi e) + \log\sigma_j)`, shape ``batch_shape``."""
        return (_bcast_to(self.log_sigma, self._shape) + 0.5 * (1.0 + _LOG_2PI)).sum(axis=-1)


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
    Lecture 000, "Deep latent variable models: the role of the prior"; Kingma & Welling (2014),
    Appendix B (the KL to this prior in closed form).
    """

    def __init__(self, d, dtype=np.float64):
        if isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < 1:
            raise ValueError(f"StandardNormal: d must be an int >= 1, got {d!r}")
        dtype = np.dtype(dtype)
        if dtype not in (np.dtype(np.float32), np.dtype(np.float64)):
            raise TypeError(f"StandardNormal: dtype must be float32 or float64, got {dtype}")
        super().__init__(np.zeros(int(d), dtype=dtype), np.zeros(int(d), dtype=dtype))

    def log_prob(self, z):
        r""":math:`\log \mathcal N(z \mid 0, I_d)` for ``z`` of shape ``(..., d)``; returns
        shape ``(...)``."""
        z = self._value(z, "z")
        return _fused.diag_gaussian_log_prob(z, 0.0, 0.0)

    def __repr__(self):
        return f"StandardNormal(d={self.d}, dtype={self.dtype})"


class TriangularSolve(Function):
    r"""Solve :math:`L Y = B` for lower-triangular :math:`L`: :math:`Y = L^{-1} B`.

    Shapes: ``L`` (..., d, d), ``B`` (..., d, k), batch axes broadcast; only the lower triangle
    of ``L`` is read. Backward, from :math:`dY = L^{-1}(dB - dL\,Y)`:

    .. math::

        \bar B = L^{-\top} \bar Y, \qquad \bar L = -\operatorname{tril}(\bar B\, Y^\top).

    Used for the Mahalanobis term :math:`\lVert L^{-1}(x - \mu) \rVert^2` and the trace term
    :math:`\operatorname{tr}(\Sigma_1^{-1}\Sigma_0) = \lVert L_1^{-1} L_0 \rVert_F^2` of the
    full-covariance Gaussian.
    """

    @staticmethod
    def forward(ctx, L, B):
        L = np.tril(L)
        # a batched LU solve: no batched triangular solver in NumPy, and d is small here
        Y = np.linalg.solve(L, B)
        ctx.save_for_backward(L, Y)
        return Y

    @staticmethod
    def backward(ctx, grad):
        L, Y = ctx.saved
        gB = np.linalg.solve(np.swapaxes(L, -1, -2), grad)
        gL = -np.tril(gB @ np.swapaxes(Y, -1, -2)) if ctx.needs_input_grad[0] else None
        return gL, (gB if ctx.needs_input_grad[1] else None)


def _solve_vec(L, b):
    """L^{-1} b for b of shape (..., d), through :class:`TriangularSolve`."""
    shape = b.shape
    y = TriangularSolve.apply(L, b.reshape(*shape, 1))
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

    and ``rsample`` is :math:`z = \mu + L \epsilon` (lecture 000, "Reparametrisation trick for
    :math:`\nabla_\gamma`": ":math:`C_\gamma` is the Cholesky decomposition of the
    covariance").

    References
    ----------
    Lecture 000, "More on this KL regulariser" (full-covariance Gaussians).
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

    def rsample(self, rng, sample_shape=()):
        r"""Reparametrised :math:`\mu + L\epsilon`, shape ``sample_shape + batch_shape + (d,)``."""
        rng = _check_rng(rng, "FullNormal.rsample")
        shape = (_sample_shape(sample_shape, "FullNormal.rsample") + self.batch_shape
                 + self.event_shape)
        eps = rng.standard_normal(shape, dtype=self.dtype)
        # (L eps)_i = sum_j L_ij eps_j, with broadcasting instead of a batched matmul
        return self.mu + (self.scale_tril * eps[..., None, :]).sum(axis=-1)

    def sample(self, rng, sample_shape=()):
        r"""A sample as an ndarray, shape ``sample_shape + batch_shape + (d,)``."""
        with _ad.no_grad():
            return self.rsample(rng, sample_shape).data

    def entropy(self):
        r""":math:`H = \tfrac d2 (1 + \log 2\pi) + \sum_j \log L_{jj}`, shape ``batch_shape``."""
        return _bcast_to(self._half_log_det() + 0.5 * self.d * (1.0 + _LOG_2PI), self.batch_shape)


# ------------------------------------------------------------------------------ Bernoulli
class Bernoulli(Distribution):
    r"""Product of independent Bernoulli variables, parametrised by logits.

    Parameters
    ----------
    logits : Tensor or array_like, shape (..., p)
        :math:`l = \log \frac{\pi}{1 - \pi}`; a decoder's last layer before the sigmoid.

    Notes
    -----
    .. math::

        \log \mathcal B(x \mid \sigma(l)) = \sum_{j=1}^p \big[x_j \log \sigma(l_j)
        + (1 - x_j) \log \sigma(-l_j)\big]
        = \sum_{j=1}^p \big[x_j l_j - \operatorname{softplus}(l_j)\big],

    computed as minus :func:`~scratchdgm.autodiff.binary_cross_entropy_with_logits`, which never
    forms :math:`\log \sigma(l)` from a rounded :math:`\sigma(l)` (for :math:`l = 40`,
    :math:`1 - \sigma(l)` is exactly 0 in float64 and its log is :math:`-\infty`).

    References
    ----------
    Lecture 000, "Illustrative example of a DLVM for binary images" (decoder
    :math:`\mathrm{Sigmoid}(V \tanh(Wz + b) + \beta)`) and "Deep latent variable models: the role
    of the observation model"; Kingma & Welling (2014), Appendix C.1.
    """

    def __init__(self, logits):
        self.logits = _param(logits, "logits", "Bernoulli")
        if self.logits.ndim < 1:
            raise ValueError("Bernoulli: logits is a scalar; expected shape (..., p) with the "
                             "event axis last")
        self.batch_shape, self.event_shape = self.logits.shape[:-1], self.logits.shape[-1:]
        self.dtype = self.logits.dtype

    @property
    def probs(self):
        r""":math:`\pi = \sigma(l)` (Tensor)."""
        return self.logits.sigmoid()

    @property
    def mean(self):
        r""":math:`E[x] = \sigma(l)` (Tensor)."""
        return self.logits.sigmoid()

    def log_prob(self, x):
        r"""Log-probability of binary ``x`` (..., p), summed over the last axis.

        Raises
        ------
        ValueError
            If ``x`` holds anything other than 0 and 1.
        """
        x = self._value(x)
        bad = (x.data != 0) & (x.data != 1)
        if np.any(bad):
            raise ValueError(f"Bernoulli.log_prob: x must be binary (0 or 1); found "
                             f"{x.data[bad].ravel()[0].item()!r} ({int(bad.sum())} non-binary "
                             f"entries). Binarise grey-level data first, e.g. with "
                             f"scratchdgm.data.dynamic_binarize")
        return -_ad.binary_cross_entropy_with_logits(self.logits, x, reduction="none").sum(axis=-1)

    def sample(self, rng, sample_shape=()):
        r"""0.0 / 1.0 ndarray of shape ``sample_shape + batch_shape + (p,)``."""
        rng = _check_rng(rng, "Bernoulli.sample")
        shape = _sample_shape(sample_shape, "Bernoulli.sample") + self.logits.shape
        p = self.probs.data
        return (rng.random(shape) < p).astype(self.dtype)

    def entropy(self):
        r""":math:`H = \sum_j [\operatorname{softplus}(l_j) - l_j \sigma(l_j)]`."""
        return (self.logits.softplus() - self.logits * self.logits.sigmoid()).sum(axis=-1)


# ------------------------------------------------------------------------------ Student's t
class StudentT(Distribution):
    r"""Product of independent Student's t distributions (location, scale, degrees of freedom).

    Parameters
    ----------
    loc : Tensor or array_like, shape (..., p)
        Location :math:`\mu`.
    log_scale : Tensor or array_like, broadcastable
        :math:`\log s`, the log of the scale (not of a standard deviation: the variance is
        :math:`s^2 \nu / (\nu - 2)` for :math:`\nu > 2`).
    log_df : Tensor or array_like, broadcastable
        :math:`\log \nu`, the log degrees of freedom.

    Notes
    -----
    .. math::

        \log \mathrm{St}(x \mid \mu, s, \nu) = \sum_{j=1}^p \Big[
        \log\Gamma\big(\tfrac{\nu_j + 1}{2}\big) - \log\Gamma\big(\tfrac{\nu_j}{2}\big)
        - \tfrac12 \log(\nu_j \pi) - \log s_j
        - \tfrac{\nu_j + 1}{2} \log\Big(1 + \frac{1}{\nu_j}\Big(\frac{x_j - \mu_j}{s_j}\Big)^2
        \Big)\Big],

    with :math:`\log\Gamma` from ``Tensor.lgamma`` (so :math:`\nu` is learnable) and
    ``log1p``. ``sample`` draws :math:`x = \mu + s\, \epsilon / \sqrt{c / \nu}` with
    :math:`\epsilon \sim \mathcal N(0, 1)`, :math:`c \sim \chi^2_\nu` (the definition of the t
    distribution as a scale mixture of Gaussians).

    References
    ----------
    Lecture 000, "Deep latent variable models: the role of the observation model" (Student's t
    observation model with decoder-output :math:`\mu_\theta, \Sigma_\theta, \nu_\theta`);
    Takahashi, Iwata, Yamanaka, Yamada & Yagi (2018), "Student-t variational autoencoder for
    robust density estimation", IJCAI, eq. 4.
    """

    def __init__(self, loc, log_scale, log_df):
        cls = "StudentT"
        self.loc, self.log_scale, self.log_df = _params(cls, loc=loc, log_scale=log_scale,
                                                        log_df=log_df)
        shape = _broadcast([self.loc.shape, self.log_scale.shape, self.log_df.shape],
                           ["loc", "log_scale", "log_df"], cls)
        if len(shape) == 0:
            raise ValueError(f"{cls}: all parameters are scalars; expected at least one axis, "
                             f"the event axis (use shape (1,) for p = 1)")
        self._shape = shape
        self.batch_shape, self.event_shape = shape[:-1], shape[-1:]
        self.dtype = _result_dtype(self.loc, self.log_scale, self.log_df)

    @property
    def df(self):
        r""":math:`\nu = e^{\log\nu}` (Tensor)."""
        return _bcast_to(self.log_df.exp(), self._shape)

    @property
    def scale(self):
        r""":math:`s = e^{\log s}` (Tensor)."""
        return _bcast_to(self.log_scale.exp(), self._shape)

    @property
    def mean(self):
        r""":math:`E[x] = \mu` (Tensor); only defined where :math:`\nu > 1`."""
        return _bcast_to(self.loc, self._shape)

    def log_prob(self, x):
        r"""Log-density of ``x`` (..., p) summed over the last axis."""
        x = self._value(x)
        df = self.log_df.exp()
        r = (x - self.loc) * (-self.log_scale).exp()
        per = (((df + 1.0) * 0.5).lgamma() - (df * 0.5).lgamma()
               - 0.5 * (self.log_df + _LOG_PI) - self.log_scale
               - 0.5 * (df + 1.0) * (r * r / df).log1p())
        return _bcast_to(per, np.broadcast_shapes(per.shape, self._shape)).sum(axis=-1)

    def sample(self, rng, sample_shape=()):
        r"""ndarray of shape ``sample_shape + batch_shape + (p,)`` (no graph)."""
        rng = _check_rng(rng, "StudentT.sample")
        shape = _sample_shape(sample_shape, "StudentT.sample") + self._shape
        df = np.broadcast_to(np.exp(self.log_df.data), shape)
        eps = rng.standard_normal(shape)
        chi2 = 2.0 * rng.standard_gamma(df / 2.0)
        t = eps / np.sqrt(chi2 / df)
        return (self.loc.data + np.exp(self.log_scale.data) * t).astype(self.dtype)


# ------------------------------------------------------------------------------ mixtures
class Categorical(Distribution):
    r"""Categorical distribution over :math:`\{0, \dots, M-1\}` from unnormalised logits.

    Parameters
    ----------
    logits : Tensor or array_like, shape (..., M)

    Notes
    -----
    .. math::

        \log P(k) = l_k - \log \sum_{m} e^{l_m} = \operatorname{log\_softmax}(l)_k,
        \qquad H = -\sum_k \pi_k \log \pi_k.

    The event is a single integer, so ``log_prob(k)`` takes ``k`` of the batch shape and
    ``event_shape`` is ``()``.

    References
    ----------
    Lecture 002 (``shared/seeds/002_f57a632ddca4a995.txt``), discrete latents
    (:math:`KL(q \Vert \mathcal U) = -H(q) + \log K`).
    """

    def __init__(self, logits):
        self.logits = _param(logits, "logits", "Categorical")
        if self.logits.ndim < 1 or self.logits.shape[-1] < 1:
            raise ValueError(f"Categorical: logits must have shape (..., M) with M >= 1, got "
                             f"{self.logits.shape}")
        self.batch_shape, self.event_shape = self.logits.shape[:-1], ()
        self.n_categories = self.logits.shape[-1]
        self.dtype = self.logits.dtype

    @property
    def probs(self):
        r""":math:`\pi = \operatorname{softmax}(l)` (Tensor)."""
        return self.logits.softmax(axis=-1)

    def log_prob(self, k):
        r"""Log-probability of the integer categories ``k`` (batch-broadcastable shape).

        Raises
        ------
        ValueError
            For non-integers, or values outside :math:`[0, M)`.
        """
        k = np.asarray(k.data if isinstance(k, Tensor) else k)
        if k.dtype.kind == "f":
            if not np.all(np.isfinite(k)) or np.any(k != np.round(k)):
                raise ValueError("Categorical.log_prob: k must hold integer category indices")
            k = k.astype(np.int64)
        if k.dtype.kind not in "iub":
            raise TypeError(f"Categorical.log_prob: k must hold integers, got dtype {k.dtype}")
        m = self.n_categories
        if k.size and (k.min() < 0 or k.max() >= m):
            raise ValueError(f"Categorical.log_prob: k must lie in [0, {m}), found values in "
                             f"[{k.min()}, {k.max()}]")
        try:
            np.broadcast_shapes(k.shape, self.batch_shape)
        except ValueError:
            raise ValueError(f"Categorical.log_prob: k of shape {k.shape} does not broadcast "
                             f"with the batch shape {self.batch_shape}") from None
        one_hot = (k[..., None] == np.arange(m)).astype(self.dtype)
        return (self.logits.log_softmax(axis=-1) * one_hot).sum(axis=-1)

    def sample(self, rng, sample_shape=()):
        r"""int64 ndarray of shape ``sample_shape + batch_shape`` (inverse-CDF sampling)."""
        rng = _check_rng(rng, "Categorical.sample")
        shape = _sample_shape(sample_shape, "Categorical.sample") + self.batch_shape
        cdf = np.cumsum(self.probs.data.astype(np.float64), axis=-1)
        u = rng.random(shape + (1,)) * cdf[..., -1:]
        k = (cdf < u).sum(axis=-1)
        return np.minimum(k, self.n_categories - 1).astype(np.int64)

    def entropy(self):
        r""":math:`-\sum_k \pi_k \log \pi_k`, shape ``batch_shape``."""
        log_p = self.logits.log_softmax(axis=-1)
        return -(log_p.exp() * log_p).sum(axis=-1)


class GaussianMixture(Distribution):
    r"""Mixture of :math:`M` diagonal Gaussians in :math:`d` dimensions: a learnable prior.

    Parameters
    ----------
    logits : Tensor or array_like, shape (M,)
        Unnormalised log mixture weights, :math:`\pi = \operatorname{softmax}(\text{logits})`.
    mu : Tensor or array_like, shape (M, d)
        Component means.
    log_sigma : Tensor or array_like, broadcastable to (M, d)
        Log standard deviations of the components.

    Notes
    -----
    .. math::

        \log p(z) = \log \sum_{m=1}^M \pi_m\, \mathcal N(z \mid \mu_m,
        \operatorname{Diag}(\sigma_m^2))
        = \operatorname{logsumexp}_m \big[\log\pi_m + \log \mathcal N(z \mid \mu_m,
        \operatorname{Diag}(\sigma_m^2))\big].

    Pass parameters as tensors with ``requires_grad=True`` to learn them with the rest of the
    model. ``sample`` is ancestral: :math:`m \sim \mathrm{Cat}(\pi)`, then
    :math:`z \sim \mathcal N(\mu_m, \operatorname{Diag}(\sigma_m^2))` (not reparametrisable in
    :math:`\pi`, which a prior does not need). The KL from a Gaussian encoder to this prior has
    no closed form; estimate it by Monte Carlo with ``log_prob``.

    References
    ----------
    Lecture 001 (``shared/seeds/001_6c8d427d4ea74748.txt``), "The role of the prior"
    (:math:`p(z) = \sum_k \pi_k \mathcal N(z \mid \mu_k, \Sigma_k)`, parameters learned);
    lecture 000, "More on this KL regulariser" ("One solution is to use a GMM prior");
    Dilokthanakul et al. (2016), "Deep unsupervised clustering with Gaussian mixture VAEs".
    """

    def __init__(self, logits, mu, log_sigma):
        cls = "GaussianMixture"
        self.logits, self.mu, self.log_sigma = _params(cls, logits=logits, mu=mu,
                                                       log_sigma=log_sigma)
        if self.logits.ndim != 1 or self.logits.shape[0] < 1:
            raise ValueError(f"{cls}: logits must have shape (M,) with M >= 1 components, got "
                             f"{self.logits.shape}")
        m = self.logits.shape[0]
        if self.mu.ndim != 2 or self.mu.shape[0] != m:
            raise ValueError(f"{cls}: mu must have shape (M, d) = ({m}, d) to match logits of "
                             f"shape ({m},), got {self.mu.shape}")
        try:
            np.broadcast_to(self.log_sigma.data, self.mu.shape)
        except ValueError:
            raise ValueError(f"{cls}: log_sigma of shape {self.log_sigma.shape} does not "
                             f"broadcast to the shape of mu {self.mu.shape}") from None
        self.n_components = m
        self.batch_shape, self.event_shape = (), (self.mu.shape[1],)
        self.dtype = _result_dtype(self.logits, self.mu, self.log_sigma)

    @property
    def weights(self):
        r"""Mixture weights :math:`\pi = \operatorname{softmax}(\text{logits})` (Tensor, (M,))."""
        return self.logits.softmax(axis=-1)

    def component_log_prob(self, z):
        r""":math:`\log \mathcal N(z \mid \mu_m, \operatorname{Diag}(\sigma_m^2))` for every
        component: ``z`` (..., d) gives shape (..., M)."""
        z = self._value(z, "z")
        zc = z.reshape(*z.shape[:-1], 1, self.d)  # (..., 1, d) against (M, d)
        r = (zc - self.mu) * (-self.log_sigma).exp()
        per = -0.5 * (r * r) - self.log_sigma - 0.5 * _LOG_2PI
        return _bcast_to(per, np.broadcast_shapes(per.shape, self.mu.shape)).sum(axis=-1)

    def log_prob(self, z):
        r"""Log-density of ``z`` (..., d); returns shape (...)."""
        return (self.component_log_prob(z) + self.logits.log_softmax(axis=-1)).logsumexp(axis=-1)

    def sample(self, rng, sample_shape=()):
        r"""Ancestral sample, ndarray of shape ``sample_shape + (d,)``."""
        rng = _check_rng(rng, "GaussianMixture.sample")
        shape = _sample_shape(sample_shape, "GaussianMixture.sample")
        k = Categorical(self.logits.data).sample(rng, shape)
        sigma = np.broadcast_to(np.exp(self.log_sigma.data), self.mu.shape)
        eps = rng.standard_normal(shape + (self.d,))
        return (self.mu.data[k] + sigma[k] * eps).astype(self.dtype)


# ------------------------------------------------------------------------------ KL
def _as_full(dist):
    if isinstance(dist, FullNormal):
        return dist
    # Diag(sigma) as a Cholesky factor: eye * sigma broadcast along rows
    sigma = dist.stddev
    eye = np.eye(dist.d, dtype=dist.dtype)
    return FullNormal(dist.mean, sigma.reshape(*sigma.shape[:-1], 1, dist.d) * eye)


def _kl_diag_diag(q, p):
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


def _kl_full_full(q, p):
    Lq, Lp = q.scale_tril, p.scale_tril
    d = q.d
    M = TriangularSolve.apply(Lp, Lq)  # L_p^{-1} L_q: tr(S_p^-1 S_q) = ||M||_F^2
    trace = (M * M).sum(axis=(-2, -1))
    y = _solve_vec(Lp, p.mu - q.mu)
    maha = (y * y).sum(axis=-1)
    log_det_ratio = 2.0 * (p._half_log_det() - q._half_log_det())
    kl = 0.5 * (trace + maha - d + log_det_ratio)
    return _bcast_to(kl, np.broadcast_shapes(kl.shape, q.batch_shape, p.batch_shape))


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
        ``q.log_prob(z) - p.log_prob(z)`` averaged over ``z = q.rsample(rng, K)``).
    ValueError
        If the event dimensions differ.

    Notes
    -----
    Full covariance (lecture 000, "More on this KL regulariser"), with :math:`\Sigma = L L^\top`:

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
    lecture 000, "More on this KL regulariser".
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
        f"p.log_prob(z) over z = q.rsample(rng, K)")
