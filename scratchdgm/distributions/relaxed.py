r"""The Concrete, or Gumbel-softmax, distribution: a continuous relaxation of a one-hot
categorical variable that can be reparametrised, so that gradients reach the probabilities of a
discrete latent.

The Gumbel-max trick draws a category of :math:`\mathrm{Cat}(\pi)` as
:math:`\arg\max_k (\log \pi_k + g_k)`, with :math:`g_k` i.i.d. standard Gumbel. The arg max has no
useful gradient. Replacing it by a softmax at temperature :math:`\tau`,

.. math::

    y_k = \frac{\exp((\log \pi_k + g_k) / \tau)}{\sum_{j=1}^K \exp((\log \pi_j + g_j) / \tau)},
    \qquad g_k = -\log(-\log u_k),\ u_k \sim \mathcal U(0, 1),

gives a point of the simplex that is a smooth function of :math:`\pi` for fixed noise. As
:math:`\tau \to 0` the sample tends to the one-hot vector of the Gumbel-max category; as
:math:`\tau \to \infty` it tends to the centre :math:`(1/K, \dots, 1/K)`.

The decks derive the KL of a categorical latent ([Isachenko-L4, "Discrete VAE latents"] in
``docs/lectures.md``) but give no reparametrisation for it; the relaxation is from the two
papers below.
"""

import math

import numpy as np

from scratchdgm import autodiff as _ad
from scratchdgm.distributions.base import Distribution, _param
from scratchdgm.validation import check_positive_float

__all__ = ["RelaxedOneHotCategorical"]


class RelaxedOneHotCategorical(Distribution):
    r"""The Concrete (Gumbel-softmax) distribution over the simplex :math:`\Delta^{K-1}`,
    parametrised by logits and a temperature.

    Parameters
    ----------
    logits : Tensor or array_like, shape (..., K)
        Unnormalised log-probabilities :math:`l` of the categorical variable being relaxed,
        :math:`\pi = \operatorname{softmax}(l)`; :math:`K \ge 2`.
    temperature : float
        :math:`\tau > 0`. Small values give nearly one-hot samples, with gradients of high
        variance; large values give smooth samples far from one-hot (a biased relaxation).

    Notes
    -----
    Sampling (``rsample``; Jang et al. 2017, eq. 2):

    .. math::

        y = \operatorname{softmax}\big((\log \pi + g) / \tau\big), \qquad
        g_k \overset{iid}{\sim} \mathrm{Gumbel}(0, 1).

    Density on the simplex (``log_prob``; Maddison et al. 2017, Definition 1; the same density
    is eq. 3 of Jang et al. 2017):

    .. math::

        p_{\pi, \tau}(y) = (K - 1)!\, \tau^{K-1} \prod_{k=1}^K
        \frac{\pi_k\, y_k^{-\tau - 1}}{\sum_{i=1}^K \pi_i\, y_i^{-\tau}},

    computed as

    .. math::

        \log p = \log \Gamma(K) + (K - 1) \log \tau
        + \sum_k \big(\log \pi_k - (\tau + 1) \log y_k\big)
        - K \operatorname{logsumexp}_i \big(\log \pi_i - \tau \log y_i\big).

    It is a density with respect to the Lebesgue measure on the first :math:`K - 1`
    coordinates (the last one is :math:`1 - \sum_{k<K} y_k`). Its key property: the arg max
    of a sample is distributed as :math:`\mathrm{Cat}(\pi)`, whatever :math:`\tau`
    (Maddison et al. 2017, Proposition 1).

    At low temperature a coordinate of a sample can underflow to 0 in floating point;
    ``log_prob`` then refuses it (the density needs every :math:`y_k > 0`). Keep
    :math:`\tau \gtrsim 0.05` when you need the density of your own samples.

    References
    ----------
    Jang, Gu & Poole (2017), *Categorical reparameterization with Gumbel-softmax*, ICLR, eq. 2
    (the sample) and eq. 3 (its density).
    Maddison, Mnih & Teh (2017), *The Concrete distribution: a continuous relaxation of discrete
    random variables*, ICLR, Definition 1 (the density) and Proposition 1.

    Examples
    --------
    >>> import numpy as np
    >>> from scratchdgm.distributions import RelaxedOneHotCategorical
    >>> d = RelaxedOneHotCategorical(np.log([0.2, 0.3, 0.5]), temperature=0.5)
    >>> y = d.sample((4,), random_state=0)
    >>> y.shape, bool(np.allclose(y.sum(axis=-1), 1.0))
    ((4, 3), True)
    """

    def __init__(self, logits, temperature):
        cls = "RelaxedOneHotCategorical"
        self.logits = _param(logits, "logits", cls)
        if self.logits.ndim < 1 or self.logits.shape[-1] < 2:
            raise ValueError(f"{cls}: logits must have shape (..., K) with K >= 2 categories, "
                             f"got shape {self.logits.shape}")
        self.temperature = check_positive_float(temperature, "temperature", cls)
        self.n_categories = self.logits.shape[-1]
        self.batch_shape, self.event_shape = self.logits.shape[:-1], (self.n_categories,)
        self.dtype = self.logits.dtype

    @property
    def probs(self):
        r""":math:`\pi = \operatorname{softmax}(l)`, the probabilities of the categorical
        variable the distribution relaxes (Tensor, shape ``batch_shape + (K,)``)."""
        return self.logits.softmax(axis=-1)

    def rsample(self, sample_shape=(), random_state=None):
        r"""Reparametrised sample :math:`y = \operatorname{softmax}((\log\pi + g)/\tau)`,
        differentiable in the logits.

        Parameters
        ----------
        sample_shape : int or tuple of int, default ()
        random_state : None, int or numpy.random.Generator
            Source of the Gumbel noise :math:`g`.

        Returns
        -------
        Tensor, shape ``sample_shape + batch_shape + (K,)``
            Points of the simplex: positive entries summing to 1.
        """
        shape, rng = self._draw_setup(sample_shape, random_state, "rsample")
        g = rng.gumbel(size=shape + self.batch_shape + self.event_shape).astype(self.dtype)
        return ((self.logits.log_softmax(axis=-1) + g) / self.temperature).softmax(axis=-1)

    def sample(self, sample_shape=(), random_state=None):
        r"""A sample as a plain ndarray (no graph), shape ``sample_shape + batch_shape + (K,)``."""
        with _ad.no_grad():
            return self.rsample(sample_shape, random_state).data

    def log_prob(self, y):
        r"""Log-density of points ``y`` of the simplex (see the class Notes).

        Parameters
        ----------
        y : Tensor or array_like, shape (..., K)
            Broadcastable with ``batch_shape + (K,)``; every entry :math:`> 0`, each row summing
            to 1.

        Returns
        -------
        Tensor, shape: the broadcast shape without its last axis

        Raises
        ------
        ValueError
            If ``y`` is not in the open simplex (an entry :math:`\le 0`, or a row that does not
            sum to 1).
        """
        y = self._value(y, "y")
        if np.any(y.data <= 0):
            raise ValueError("RelaxedOneHotCategorical.log_prob: y has entries <= 0; the "
                             "density is defined on the open simplex (every y_k > 0). At a low "
                             "temperature samples can underflow to 0: raise the temperature")
        tol = 100 * np.finfo(self.dtype).eps * self.n_categories
        err = np.max(np.abs(y.data.sum(axis=-1) - 1.0))
        if err > tol:
            raise ValueError(f"RelaxedOneHotCategorical.log_prob: the rows of y must sum to 1 "
                             f"(points of the simplex); found a row off by {err:.3g}")
        k, tau = self.n_categories, self.temperature
        log_pi = self.logits.log_softmax(axis=-1)
        log_y = y.log()
        const = math.lgamma(k) + (k - 1) * math.log(tau)
        return (const + (log_pi - (tau + 1.0) * log_y).sum(axis=-1)
                - k * (log_pi - tau * log_y).logsumexp(axis=-1))

    def __repr__(self):
        return (f"RelaxedOneHotCategorical(batch_shape={self.batch_shape}, "
                f"n_categories={self.n_categories}, temperature={self.temperature}, "
                f"dtype={self.dtype})")
