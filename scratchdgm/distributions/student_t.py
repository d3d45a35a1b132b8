r"""Independent Student's t variables: the heavy-tailed observation model
([Mattei-DGM, "Deep latent variable models: the role of the observation model"] in
``docs/lectures.md``), used by the Student's t decoder and by MIWAE on continuous data."""

import math

import numpy as np

from scratchdgm.distributions.base import (
    Distribution,
    _bcast_to,
    _broadcast,
    _params,
    _result_dtype,
)

__all__ = ["StudentT"]

_LOG_PI = math.log(math.pi)


class StudentT(Distribution):
    r"""Product of independent Student's t distributions (location, scale, degrees of freedom).

    Parameters
    ----------
    loc : Tensor or array_like, shape (..., p)
        Location :math:`\mu` (the mean where :math:`\nu > 1`, the median always).
    scale : Tensor or array_like, broadcastable, > 0
        Scale :math:`s` (not a standard deviation: the variance is :math:`s^2 \nu / (\nu - 2)`
        for :math:`\nu > 2`, infinite for :math:`1 < \nu \le 2`).
    df : Tensor or array_like, broadcastable, > 0
        Degrees of freedom :math:`\nu`.

    Notes
    -----
    .. math::

        \log \mathrm{St}(x \mid \mu, s, \nu) = \sum_{j=1}^p \Big[
        \log\Gamma\big(\tfrac{\nu_j + 1}{2}\big) - \log\Gamma\big(\tfrac{\nu_j}{2}\big)
        - \tfrac12 \log(\nu_j \pi) - \log s_j
        - \tfrac{\nu_j + 1}{2} \log\Big(1 + \frac{1}{\nu_j}\Big(\frac{x_j - \mu_j}{s_j}\Big)^2
        \Big)\Big],

    with :math:`\log\Gamma` from ``Tensor.lgamma`` (so :math:`\nu` is learnable) and ``log1p``.
    ``sample`` draws :math:`x = \mu + s\, \epsilon / \sqrt{c / \nu}` with
    :math:`\epsilon \sim \mathcal N(0, 1)`, :math:`c \sim \chi^2_\nu` (the t distribution as a
    scale mixture of Gaussians). As :math:`\nu \to \infty` it tends to
    :math:`\mathcal N(\mu, s^2)`.

    References
    ----------
    Takahashi, Iwata, Yamanaka, Yamada & Yagi (2018), "Student-t variational autoencoder for
    robust density estimation", IJCAI, eq. 4; Mattei & Frellsen (2019), "MIWAE", ICML, §4
    (the Student's t decoder for continuous data).
    """

    def __init__(self, loc, scale, df):
        cls = "StudentT"
        self.loc, self.scale, self.df = _params(cls, loc=loc, scale=scale, df=df)
        for name, t in (("scale", self.scale), ("df", self.df)):
            if not np.all(t.data > 0):
                raise ValueError(f"{cls}: {name} must be > 0 everywhere, found "
                                 f"min {t.data.min():.3g}")
        shape = _broadcast([self.loc.shape, self.scale.shape, self.df.shape],
                           ["loc", "scale", "df"], cls)
        if len(shape) == 0:
            raise ValueError(f"{cls}: all parameters are scalars; expected at least one axis, "
                             f"the event axis (use shape (1,) for p = 1)")
        self._shape = shape
        self.batch_shape, self.event_shape = shape[:-1], shape[-1:]
        self.dtype = _result_dtype(self.loc, self.scale, self.df)

    @property
    def mean(self):
        r""":math:`E[x] = \mu` (Tensor); only defined where :math:`\nu > 1`."""
        return _bcast_to(self.loc, self._shape)

    def log_prob(self, x):
        r"""Log-density of ``x`` (..., p) summed over the last axis."""
        x = self._value(x)
        df = self.df
        r = (x - self.loc) / self.scale
        per = (((df + 1.0) * 0.5).lgamma() - (df * 0.5).lgamma()
               - 0.5 * (df.log() + _LOG_PI) - self.scale.log()
               - 0.5 * (df + 1.0) * (r * r / df).log1p())
        return _bcast_to(per, np.broadcast_shapes(per.shape, self._shape)).sum(axis=-1)

    def factors(self):
        r"""The p independent coordinates as a batch of one-dimensional Student's t
        distributions: batch shape ``batch_shape + (p,)``, event shape ``(1,)``;
        ``factors().log_prob(x[..., None])`` is the log-density of each entry, whose sum over
        the last axis is ``log_prob(x)``."""
        one = [_bcast_to(t, self._shape).reshape(*self._shape, 1)
               for t in (self.loc, self.scale, self.df)]
        return StudentT(*one)

    def sample(self, sample_shape=(), random_state=None):
        r"""ndarray of shape ``sample_shape + batch_shape + (p,)`` (no graph)."""
        shape, rng = self._draw_setup(sample_shape, random_state, "sample")
        shape = shape + self._shape
        df = np.broadcast_to(self.df.data, shape)
        eps = rng.standard_normal(shape)
        chi2 = 2.0 * rng.standard_gamma(df / 2.0)
        t = eps / np.sqrt(chi2 / df)
        return (self.loc.data + self.scale.data * t).astype(self.dtype)
