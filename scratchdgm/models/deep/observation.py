r"""Observation models :math:`\Phi(x \mid \eta)`, :math:`\eta = f_\theta(z)`, of deep latent
variable models: Bernoulli (logits), Gaussian (fixed, learned, isotropic or decoder-output
sigma) and Student's t (decoder-output location, scale and degrees of freedom).

Each is a :class:`~scratchdgm.nn.Module` (it may own parameters, e.g. a learned noise level)
that says how many decoder outputs it needs per observed dimension and turns decoder outputs
into a distribution of :mod:`scratchdgm.distributions` (:meth:`ObservationModel.distribution`):
the densities, means and samplers are those of the distributions, written once there.

Lecture ([Mattei-DGM] in ``docs/lectures.md``): "Deep latent variable models: the role of the
observation model" (Gaussian, Bernoulli and Student's t observation models whose parameters are
the output of the decoder) and "Why is this a reconstruction error?" (the Gaussian case gives
the squared error, the Bernoulli case the cross-entropy).
"""

import math

import numpy as np

from scratchdgm import autodiff as _ad
from scratchdgm.distributions import Bernoulli, DiagNormal, StudentT
from scratchdgm.models.deep.checks import check_observations
from scratchdgm.nn import Module, Parameter
from scratchdgm.validation import (
    check_float_dtype,
    check_mask,
    check_positive_float,
    check_positive_int,
)

__all__ = [
    "ObservationModel",
    "BernoulliObservation",
    "GaussianObservation",
    "StudentTObservation",
    "make_observation",
    "LIKELIHOOD_NAMES",
]


def _as_tensor(x):
    return x if isinstance(x, _ad.Tensor) else _ad.tensor(np.asarray(x))


class ObservationModel(Module):
    r"""Base class: :math:`p_\theta(x \mid z) = \Phi(x \mid \eta)` with :math:`\eta = f_\theta(z)`.

    Parameters
    ----------
    input_dim : int
        :math:`p`, the observed dimension.
    dtype : {numpy.float64, numpy.float32}
    backend : {None, 'numpy', 'numba', 'cuda', 'auto'}
        Kernel backend of the fused densities (None: the process default).

    Subclasses set :attr:`params_per_dim` (decoder outputs per observed dimension), ``kind``
    (the name stored in checkpoints), :attr:`binary_data` and implement :meth:`distribution`.
    """

    #: decoder outputs per observed dimension
    params_per_dim = 1
    #: whether observations must be 0/1 (data in [0, 1] is then binarised before training)
    binary_data = False
    #: the name in ``config()`` (and in checkpoints)
    kind = "?"

    def __init__(self, input_dim, dtype=np.float64, *, backend=None):
        super().__init__()
        self.input_dim = check_positive_int(input_dim, "input_dim", type(self).__name__)
        self.dtype = check_float_dtype(dtype, type(self).__name__)
        self.backend = backend

    @property
    def n_outputs(self):
        r"""Size of the decoder's output layer: ``params_per_dim * input_dim``."""
        return self.params_per_dim * self.input_dim

    def _split(self, eta):
        p = self.input_dim
        if eta.shape[-1] != self.n_outputs:
            raise ValueError(f"{type(self).__name__}: decoder output has {eta.shape[-1]} "
                             f"columns, expected {self.n_outputs}")
        return [eta[..., i * p:(i + 1) * p] for i in range(self.params_per_dim)]

    def distribution(self, eta):  # pragma: no cover - interface
        r"""The distribution :math:`\Phi(\cdot \mid \eta)` of x for decoder outputs ``eta``
        (Tensor, shape (..., n_outputs)), batch shape ``eta.shape[:-1]``."""
        raise NotImplementedError(f"{type(self).__name__} does not define distribution()")

    def log_prob(self, x, eta, mask=None):
        r""":math:`\log p_\theta(x \mid z)`, or with ``mask`` the log-likelihood of the observed
        entries only, :math:`\log p_\theta(x^{\mathrm{obs}} \mid z)`.

        Parameters
        ----------
        x : ndarray, shape (B, p)
            Observations. With a ``mask``, the entries it marks missing are ignored (they may be
            NaN).
        eta : Tensor, shape (K, B, n_outputs) or (B, n_outputs)
            Decoder outputs for K codes per observation.
        mask : ndarray of bool, shape (B, p), optional
            True where :math:`x_{ij}` is observed.

        Returns
        -------
        Tensor, shape (K, B) or (B,)

        Notes
        -----
        The observation model factorises over the p entries, so the density of the observed
        entries is the product of their factors (the missing ones integrate to one):

        .. math::

            \log p_\theta(x^{\mathrm{obs}} \mid z) = \sum_{j=1}^p m_j \log \Phi(x_j \mid
            \eta_j), \qquad m_j = 1 \text{ if } x_j \text{ is observed, else } 0,

        computed from the per-entry log-densities of the distribution's
        :meth:`~scratchdgm.distributions.DiagNormal.factors` (Mattei & Frellsen 2019, eq. 3).
        """
        dist = self.distribution(_as_tensor(eta))
        if mask is None:
            return dist.log_prob(np.asarray(x, dtype=self.dtype))
        x = np.asarray(x, dtype=self.dtype)
        mask = check_mask(mask, x.shape, "mask", "observed", f"{type(self).__name__}.log_prob")
        # any valid value stands in for a missing entry (0 is one for every model): its
        # log-density is multiplied by 0, so neither it nor its gradient counts
        x = np.where(mask, x, 0.0)
        per_entry = dist.factors().log_prob(x[..., None])            # (K, B, p)
        return (per_entry * mask.astype(self.dtype)).sum(axis=-1)

    def check_data(self, x, where="X"):
        r"""Raise ValueError if ``x`` cannot be observations of this model (default: any
        finite data, which the model checks before calling this)."""
        return None

    def validate_data(self, X, where="X", *, allow_unit_interval=False, allow_missing=False):
        r"""Validate observations of this model and return them as a C-contiguous array of its
        dtype: the ``check_data`` of every deep model of the library.

        Parameters
        ----------
        X : array_like or Tensor, shape (n, p)
        where : str
            The name the error messages give ``X``.
        allow_unit_interval : bool
            For a binary observation model, also accept values in [0, 1] (grey levels, to be
            binarised dynamically during training).
        allow_missing : bool
            Accept NaN as a missing entry (models that train on incomplete data, MIWAE): it is
            skipped by the value checks.

        Raises
        ------
        TypeError
            Non-numeric data.
        ValueError
            Not 2-D, wrong number of columns, no rows, NaN / inf, or (binary models) values
            other than 0/1 (or outside [0, 1] when ``allow_unit_interval``).
        """
        arr = check_observations(X, self.input_dim, self.dtype, where, allow_missing=allow_missing)
        if self.binary_data:
            if allow_unit_interval:
                lo, hi = np.nanmin(arr), np.nanmax(arr)
                if lo < 0 or hi > 1:
                    raise ValueError(f"{where} has values outside [0, 1] (min {lo:g}, max "
                                     f"{hi:g}); a Bernoulli likelihood needs binary data, or "
                                     f"intensities in [0, 1] to binarise dynamically")
            else:
                self.check_data(arr, where)
        return arr

    def config(self):
        r"""The constructor settings, JSON-serialisable (stored in checkpoints)."""
        return {"kind": self.kind}

    def extra_repr(self):
        return f"input_dim={self.input_dim}"


class BernoulliObservation(ObservationModel):
    r"""Product of Bernoullis with logits :math:`\eta = f_\theta(z) \in \mathbb R^p`.

    Notes
    -----
    .. math::

        \log \mathcal B(x \mid \pi = \mathrm{sigmoid}(\eta)) = \sum_{j=1}^p \big( x_j \eta_j
        - \log(1 + e^{\eta_j}) \big),

    minus the binary cross-entropy of [Mattei-DGM, "Why is this a reconstruction error?"]:
    :class:`~scratchdgm.distributions.Bernoulli`, evaluated in one fused pass. Data must be
    binary; continuous data in [0, 1] is binarised (dynamically, during training) before it
    gets here.
    """

    binary_data = True
    kind = "bernoulli"

    def check_data(self, x, where="X"):
        x = np.asarray(x)
        # NaN marks a missing entry (models that accept missing data, MIWAE); the others
        # reject NaN before they get here
        bad = ~((x == 0) | (x == 1) | np.isnan(x))
        if bad.any():
            i = tuple(int(v) for v in np.argwhere(bad)[0])
            raise ValueError(f"{where} is not binary (e.g. {where}[{i}] = {x[i]!r}): a Bernoulli "
                             f"likelihood needs 0/1 data; binarise it first (or train with "
                             f"binarize='dynamic' on data in [0, 1])")

    def distribution(self, eta):
        return Bernoulli(eta, backend=self.backend)


class GaussianObservation(ObservationModel):
    r"""Diagonal Gaussian :math:`\mathcal N(x \mid \mu_\theta(z), \mathrm{diag}\,\sigma^2)`.

    Parameters
    ----------
    input_dim : int
        :math:`p`.
    sigma : {'fixed', 'learned', 'isotropic', 'decoder'}
        ``'fixed'``: :math:`\sigma` = ``sigma_value`` for every dimension (the squared-error
        autoencoder of [Mattei-DGM, "Why is this a reconstruction error?"]). ``'learned'``: one
        learned :math:`\sigma_j` per dimension, shared by all codes. ``'isotropic'``: one
        learned :math:`\sigma` shared by every dimension and every code, :math:`\Sigma =
        \sigma^2 I_p` (with an affine decoder this is PPCA's observation model, [Mattei-DGM,
        "Linear latent-variable models"]). ``'decoder'``: the decoder
        outputs :math:`(\mu, \text{raw})` with :math:`\sigma = \sigma_{\min} +
        \mathrm{softplus}(\text{raw})` (the floor keeps the likelihood bounded: a Gaussian whose
        variance can go to 0 on a training point has an unbounded likelihood, Mattei & Frellsen
        2018).
    sigma_value : float
        Initial (``'learned'``, ``'isotropic'``) or fixed (``'fixed'``) noise standard
        deviation.
    min_sigma : float
        The floor :math:`\sigma_{\min}` for ``'decoder'``.
    dtype : {numpy.float64, numpy.float32}
    backend : {None, 'numpy', 'numba', 'cuda', 'auto'}

    Notes
    -----
    .. math::

        \log p_\theta(x \mid z) = -\sum_{j=1}^p \Big( \frac{(x_j - \mu_j)^2}{2 \sigma_j^2}
        + \log \sigma_j + \frac12 \log 2\pi \Big),

    the density of :class:`~scratchdgm.distributions.DiagNormal` with
    ``log_sigma`` :math:`= \log\sigma`.
    """

    kind = "gaussian"
    _MODES = ("fixed", "learned", "isotropic", "decoder")

    def __init__(self, input_dim, sigma="learned", sigma_value=1.0, min_sigma=1e-3,
                 dtype=np.float64, *, backend=None):
        super().__init__(input_dim, dtype, backend=backend)
        if sigma not in self._MODES:
            raise ValueError(f"GaussianObservation: sigma must be one of {self._MODES}, "
                             f"got {sigma!r}")
        self.sigma_mode = sigma
        self.sigma_value = check_positive_float(sigma_value, "sigma_value", "GaussianObservation")
        self.min_sigma = check_positive_float(min_sigma, "min_sigma", "GaussianObservation",
                                              allow_zero=True)
        self.params_per_dim = 2 if sigma == "decoder" else 1
        if sigma in ("learned", "isotropic"):
            # shape (p,) or (1,): DiagNormal broadcasts a (1,) log-sigma over the p dimensions,
            # so the isotropic model's one parameter gets the gradient summed over them
            size = self.input_dim if sigma == "learned" else 1
            self.log_sigma = Parameter(np.full(size, math.log(self.sigma_value),
                                               dtype=self.dtype))

    def distribution(self, eta):
        parts = self._split(_as_tensor(eta))
        mu = parts[0]
        if self.sigma_mode == "fixed":
            log_sigma = np.full(1, math.log(self.sigma_value), dtype=mu.dtype)
        elif self.sigma_mode in ("learned", "isotropic"):
            log_sigma = self.log_sigma
        else:
            log_sigma = (parts[1].softplus() + self.min_sigma).log()
        return DiagNormal(mu, log_sigma, backend=self.backend)

    def config(self):
        return {"kind": self.kind, "sigma": self.sigma_mode, "sigma_value": self.sigma_value,
                "min_sigma": self.min_sigma}

    def extra_repr(self):
        return f"input_dim={self.input_dim}, sigma={self.sigma_mode!r}"


class StudentTObservation(ObservationModel):
    r"""Product of Student's t distributions with decoder-output location, scale and degrees of
    freedom, :math:`\eta = (\mu, \text{raw}_s, \text{raw}_\nu)`.

    Parameters
    ----------
    input_dim : int
    min_scale : float
        :math:`s = s_{\min} + \mathrm{softplus}(\text{raw}_s)` (a floor keeps the likelihood
        bounded, as for the Gaussian).
    min_df : float
        :math:`\nu = \nu_{\min} + \mathrm{softplus}(\text{raw}_\nu)`. The default 0.5 only
        bounds the tails; a floor of 1 would keep the mean defined, 2 the variance.
    dtype : {numpy.float64, numpy.float32}
    backend : {None, 'numpy', 'numba', 'cuda', 'auto'}

    Notes
    -----
    .. math::

        \log \mathrm{St}(x \mid \mu, s, \nu) = \sum_j \Big( \log\Gamma\big(\tfrac{\nu_j+1}{2}\big)
        - \log\Gamma\big(\tfrac{\nu_j}{2}\big) - \tfrac12 \log(\nu_j \pi) - \log s_j
        - \tfrac{\nu_j+1}{2} \log\Big(1 + \frac{(x_j - \mu_j)^2}{\nu_j s_j^2}\Big) \Big),

    the density of :class:`~scratchdgm.distributions.StudentT`. Heavy tails make the model
    robust to outlying values; as :math:`\nu \to \infty` it tends to the Gaussian observation
    model ([Mattei-DGM, "Deep latent variable models: the role of the observation model"];
    Takahashi et al. 2018, *Student-t variational autoencoder for robust density estimation*).
    """

    kind = "student_t"
    params_per_dim = 3

    def __init__(self, input_dim, min_scale=1e-3, min_df=0.5, dtype=np.float64, *,
                 backend=None):
        super().__init__(input_dim, dtype, backend=backend)
        self.min_scale = check_positive_float(min_scale, "min_scale", "StudentTObservation",
                                              allow_zero=True)
        self.min_df = check_positive_float(min_df, "min_df", "StudentTObservation",
                                           allow_zero=True)

    def distribution(self, eta):
        loc, raw_s, raw_df = self._split(_as_tensor(eta))
        return StudentT(loc, raw_s.softplus() + self.min_scale, raw_df.softplus() + self.min_df)

    def config(self):
        return {"kind": self.kind, "min_scale": self.min_scale, "min_df": self.min_df}


#: the names :func:`make_observation` takes (besides aliases such as ``'student'``)
LIKELIHOOD_NAMES = ("bernoulli", "gaussian", "gaussian:fixed", "gaussian:learned", "gaussian:isotropic",
                    "gaussian:decoder", "student_t")


def make_observation(spec, input_dim, *, dtype=np.float64, backend=None):
    r"""Build an observation model from a name or a ``config()`` dict.

    Names: ``'bernoulli'``; ``'gaussian'`` (learned per-dimension sigma), ``'gaussian:fixed'``,
    ``'gaussian:learned'``, ``'gaussian:isotropic'`` (one learned sigma),
    ``'gaussian:decoder'``; ``'student_t'`` (alias ``'student'``).
    """
    if isinstance(spec, ObservationModel):
        return spec
    kinds = {"bernoulli": BernoulliObservation, "gaussian": GaussianObservation,
             "student_t": StudentTObservation}
    if isinstance(spec, dict):
        cfg = dict(spec)
        cls = kinds.get(cfg.pop("kind", None))
        if cls is None:
            raise ValueError(f"unknown observation-model config {spec!r}")
        return cls(input_dim, dtype=dtype, backend=backend, **cfg)
    if isinstance(spec, str):
        s = spec.lower()
        if s == "bernoulli":
            return BernoulliObservation(input_dim, dtype=dtype, backend=backend)
        if s == "gaussian" or s.startswith("gaussian:"):
            mode = s.split(":", 1)[1] if ":" in s else "learned"
            return GaussianObservation(input_dim, sigma=mode, dtype=dtype, backend=backend)
        if s in ("student_t", "student", "studentt", "t"):
            return StudentTObservation(input_dim, dtype=dtype, backend=backend)
    raise ValueError(f"unknown likelihood {spec!r}; expected one of "
                     f"{', '.join(repr(n) for n in LIKELIHOOD_NAMES)}")
