r"""Independent Bernoulli variables parametrised by logits: the observation model of binary
data ([Mattei-DGM, "Illustrative example of a DLVM for binary images"] in ``docs/lectures.md``)."""

import numpy as np

from scratchdgm import autodiff as _ad
from scratchdgm.autodiff import fused as _fused
from scratchdgm.distributions.base import Distribution, _param

__all__ = ["Bernoulli"]


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

    with the stable softplus of :mod:`scratchdgm.numerics`, which never forms
    :math:`\log \sigma(l)` from a rounded :math:`\sigma(l)` (for :math:`l = 40`,
    :math:`1 - \sigma(l)` is exactly 0 in float64 and its log is :math:`-\infty`). When the
    logits have the decoder's layout, (K, B, p) or (B, p) for data (B, p), the sum runs in one
    fused pass (:func:`scratchdgm.autodiff.fused.bernoulli_log_prob`); other broadcasts go
    through the elementwise op :func:`~scratchdgm.autodiff.binary_cross_entropy_with_logits`.
    Both compute the formula above; the tests hold them together.

    References
    ----------
    [Mattei-DGM, "Illustrative example of a DLVM for binary images"] (decoder
    :math:`\mathrm{Sigmoid}(V \tanh(Wz + b) + \beta)`) and "Deep latent variable models: the role
    of the observation model"; Kingma & Welling (2014), Appendix C.1.
    """

    def __init__(self, logits, *, backend=None):
        self.backend = backend
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
        if x.ndim == 2 and self.logits.ndim in (2, 3) and self.logits.shape[-2:] == x.shape:
            return _fused.bernoulli_log_prob(self.logits, x.data, backend=self.backend)
        return -_ad.binary_cross_entropy_with_logits(self.logits, x, reduction="none").sum(axis=-1)

    def sample(self, sample_shape=(), random_state=None):
        r"""0.0 / 1.0 ndarray of shape ``sample_shape + batch_shape + (p,)``."""
        shape, rng = self._draw_setup(sample_shape, random_state, "sample")
        p = self.probs.data
        return (rng.random(shape + self.logits.shape) < p).astype(self.dtype)

    def entropy(self):
        r""":math:`H = \sum_j [\operatorname{softplus}(l_j) - l_j \sigma(l_j)]`."""
        return (self.logits.softplus() - self.logits * self.logits.sigmoid()).sum(axis=-1)

    def factors(self):
        r"""The p independent coordinates as a batch of single Bernoulli variables: batch shape
        ``batch_shape + (p,)``, event shape ``(1,)``; ``factors().log_prob(x[..., None])`` is the
        log-probability of each entry, whose sum over the last axis is ``log_prob(x)``."""
        return Bernoulli(self.logits.reshape(*self.logits.shape, 1), backend=self.backend)


