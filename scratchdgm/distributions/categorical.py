r"""Categorical distributions: :class:`Categorical` from logits (a discrete latent's posterior
or a mixture component), and :class:`UniformCategorical`, the uniform prior of a discrete latent."""

import numpy as np

from scratchdgm.autodiff import Tensor
from scratchdgm.distributions.base import Distribution, _param
from scratchdgm.validation import check_float_dtype, check_int

__all__ = ["Categorical", "UniformCategorical"]


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
    [Isachenko-L4, "Discrete VAE latents"] in ``docs/lectures.md``
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

    def sample(self, sample_shape=(), random_state=None):
        r"""int64 ndarray of shape ``sample_shape + batch_shape`` (inverse-CDF sampling)."""
        shape, rng = self._draw_setup(sample_shape, random_state, "sample")
        shape = shape + self.batch_shape
        cdf = np.cumsum(self.probs.data.astype(np.float64), axis=-1)
        u = rng.random(shape + (1,)) * cdf[..., -1:]
        k = (cdf < u).sum(axis=-1)
        return np.minimum(k, self.n_categories - 1).astype(np.int64)

    def entropy(self):
        r""":math:`-\sum_k \pi_k \log \pi_k`, shape ``batch_shape``."""
        log_p = self.logits.log_softmax(axis=-1)
        return -(log_p.exp() * log_p).sum(axis=-1)




class UniformCategorical(Categorical):
    r"""The uniform prior of a discrete latent, :math:`p(c) = 1/K` for :math:`c \in \{0, \dots,
    K-1\}`.

    Parameters
    ----------
    n_categories : int
        :math:`K \ge 2` (a latent with one category carries no information).
    dtype : {numpy.float64, numpy.float32}

    Notes
    -----
    A :class:`Categorical` with all logits 0, so it has the same methods; its entropy is
    :math:`\log K`, the largest of any distribution on K categories, and
    :func:`~scratchdgm.distributions.kl_divergence` uses the closed form

    .. math::

        \mathrm{KL}(q \,\Vert\, \mathcal U_K) = \sum_k q_k \log \frac{q_k}{1/K}
        = -H(q) + \log K .

    References
    ----------
    [Isachenko-L4, "Discrete VAE latents"] in ``docs/lectures.md``; [Su-DGM, "Generative
    Models"] (the categorical latent of a Gaussian mixture, here with equal weights).
    """

    def __init__(self, n_categories, dtype=np.float64):
        k = check_int(n_categories, "n_categories", 2, "UniformCategorical")
        super().__init__(np.zeros(k, dtype=check_float_dtype(dtype, "UniformCategorical")))

    def __repr__(self):
        return f"UniformCategorical(n_categories={self.n_categories}, dtype={self.dtype})"
