r"""Deep latent-variable models with a discrete latent :math:`c \in \{1, \dots, K\}`: the
categorical VAE and the Gaussian-mixture VAE (GMVAE). The expectation over c in the bound is
taken by exact enumeration, or through the Gumbel-softmax (Concrete) relaxation.

**Categorical VAE** ([Isachenko-L4, "Discrete VAE latents"] in ``docs/lectures.md``):

.. math::

    c \sim \mathcal U\{1, \dots, K\}, \qquad x \mid c \sim \Phi(x \mid f_\theta(e_c)), \qquad
    q_\phi(c \mid x) = \mathrm{Cat}\big(\operatorname{softmax} g_\phi(x)\big),

with :math:`e_c` the one-hot vector of c, :math:`f_\theta` the decoder MLP and :math:`g_\phi` the
encoder MLP. With one categorical latent, :math:`p_\theta(x) = \frac1K \sum_c \Phi(x \mid
f_\theta(e_c))` is a mixture of K fully factorised distributions (a mixture of Bernoullis on
binary data). Its log-likelihood and its posterior :math:`p_\theta(c \mid x)` are exact by
enumeration; :math:`q_\phi(c \mid x)` is an amortised version of the responsibilities of EM.

**GMVAE**: [Su-DGM, "Generative Models"] writes the Gaussian mixture as a latent-variable model
with a categorical latent. Here the mixture is over a continuous code z, and a decoder maps z to x:

.. math::

    c \sim \mathcal U\{1, \dots, K\}, \quad z \mid c \sim \mathcal N(\mu_c,
    \operatorname{diag}\sigma_c^2), \quad x \mid z \sim \Phi(x \mid f_\theta(z)), \qquad
    q_\phi(c, z \mid x) = q_\phi(c \mid x)\, \mathcal N\big(z \mid \mu_\phi(x, e_c),
    \operatorname{diag}\sigma_\phi(x, e_c)^2\big).

**The bound** of both models ([Isachenko-L4, "Discrete VAE latents"]: the KL of c in closed
form):

.. math::

    \mathcal L(x) = \mathbb E_{q_\phi(c \mid x)}\big[\ell_c(x)\big]
    - \mathrm{KL}\big(q_\phi(c \mid x) \,\Vert\, \mathcal U_K\big), \qquad
    \mathrm{KL}\big(q \,\Vert\, \mathcal U_K\big) = -H(q) + \log K,

with :math:`\ell_c(x) = \log p_\theta(x \mid c)` for the categorical VAE, and for the GMVAE the
ELBO of the inner model :math:`p_\theta(x \mid c) = \int p_\theta(x \mid z) p(z \mid c)\, dz`:

.. math::

    \ell_c(x) = \mathbb E_{q_\phi(z \mid x, c)}\big[\log p_\theta(x \mid z) + \log p(z \mid c)
    - \log q_\phi(z \mid x, c)\big].

**The expectation over c** (``estimator=``):

* ``'enumerate'`` -- :math:`\sum_{c=1}^K q_\phi(c \mid x)\, \ell_c(x)`: exact in c, its gradient
  exact too; it costs K evaluations of :math:`\ell` (K decoder passes) per data point.
* ``'gumbel'`` -- :math:`\ell` evaluated at a relaxed one-hot :math:`y \sim
  \mathrm{Concrete}(q_\phi(c \mid x), \tau)` in place of :math:`e_c` (the networks accept any
  point of the simplex; :class:`~scratchdgm.distributions.RelaxedOneHotCategorical`): one
  evaluation per sample, with gradients reparametrised through y (Jang et al. 2017; Maddison et
  al. 2017). The estimate is biased: the bias vanishes as :math:`\tau \to 0`, while the
  variance of the gradient grows. The temperature can be annealed per epoch,
  :math:`\tau_e = \max(\tau_{\min}, \tau_0 e^{-r (e - 1)})` (the schedule of Jang et al.,
  there per step).

A third estimator, the score function :math:`\ell_c(x) \nabla_\phi \log q_\phi(c \mid x)`, is
unbiased but has a high variance ([Su-DGM, "Estimating $\partial
\mathbb{E}_{q_{\phi}(z|x)}[\ln p_{\theta}(x|z)]/\partial \phi$"]). The experiment
:mod:`scratchdgm.experiments.discrete_gradients` compares the bias and variance of all three
against K.

Both models follow the protocol of :mod:`~scratchdgm.models.deep.evaluation`: ``log_weights``,
``check_data``, ``transform``; they are trained by :func:`scratchdgm.models.deep.training.fit`,
and saved and loaded through :mod:`~scratchdgm.models.deep.persistence`.
"""

import math

import numpy as np

from scratchdgm import autodiff as _ad
from scratchdgm.distributions import (
    DiagNormal,
    GaussianMixture,
    RelaxedOneHotCategorical,
    UniformCategorical,
    kl_divergence,
)
from scratchdgm.distributions.categorical import Categorical
from scratchdgm.models.deep import evaluation as _evaluation
from scratchdgm.models.deep import persistence as _persistence
from scratchdgm.models.deep import training as _training
from scratchdgm.models.deep.observation import make_observation
from scratchdgm.models.deep.vae import check_networks
from scratchdgm.nn import MLP, Module, Parameter
from scratchdgm.numerics import logsumexp
from scratchdgm.validation import (
    check_float_dtype,
    check_int,
    check_positive_float,
    check_positive_int,
    check_random_state,
    check_real,
)

__all__ = ["DiscreteLatentVAE", "CategoricalVAE", "GMVAE", "ESTIMATORS"]

#: the ways the expectation over c is taken (see the module docstring)
ESTIMATORS = ("enumerate", "gumbel")


def _apply(mlp, h):
    """``mlp`` on inputs of any leading shape (..., n_in): one matrix product over all rows."""
    lead = h.shape[:-1]
    out = mlp(h.reshape(-1, h.shape[-1]))
    return out.reshape(*lead, out.shape[-1])


def _as_array(x, dtype):
    return np.asarray(x.data if isinstance(x, _ad.Tensor) else x, dtype=dtype)


class DiscreteLatentVAE(Module):
    r"""What the categorical VAE and the GMVAE share: the encoder :math:`q_\phi(c \mid x)`, the
    uniform prior on c, the bound with its two estimators and the temperature schedule, and the
    evaluation methods. Not a model by itself: see :class:`CategoricalVAE` and :class:`GMVAE`.

    A subclass builds its networks after calling ``__init__`` here and defines
    :meth:`category_term` (:math:`\ell_c(x)` at a one-hot or relaxed :math:`y`),
    :meth:`log_weights`, :meth:`transform`, :meth:`_sample_given_c` and :meth:`config`.
    """

    default_k = 1
    #: whether :math:`\ell_c(x)` is random given c (the GMVAE samples z); enumeration then
    #: averages ``k`` draws per category
    stochastic_given_c = False

    def __init__(self, input_dim, n_categories, hidden, *, activation, likelihood, estimator,
                 temperature, min_temperature, anneal_rate, k, dtype, backend):
        super().__init__()
        where = type(self).__name__
        self.input_dim = check_positive_int(input_dim, "input_dim", where)
        self.n_categories = check_int(n_categories, "n_categories", 2, where)
        self.hidden, self.activation = check_networks(hidden, activation, where)
        if estimator not in ESTIMATORS:
            raise ValueError(f"{where}: estimator must be one of {ESTIMATORS}, got "
                             f"{estimator!r}")
        self.estimator = estimator
        self.temperature = check_positive_float(temperature, "temperature", where)
        self.min_temperature = check_positive_float(min_temperature, "min_temperature", where)
        if self.min_temperature > self.temperature:
            raise ValueError(f"{where}: min_temperature ({self.min_temperature}) must be <= "
                             f"temperature ({self.temperature}), the starting temperature")
        self.anneal_rate = check_real(anneal_rate, "anneal_rate", where, low=0.0)
        self.k = check_positive_int(self.default_k if k is None else k, "k", where)
        self.dtype = check_float_dtype(dtype, where)
        self.backend = backend
        self.observation = make_observation(likelihood, self.input_dim, dtype=self.dtype,
                                            backend=backend)
        #: p(c) = 1/K
        self.prior_c = UniformCategorical(self.n_categories, dtype=self.dtype)
        self.current_temperature = self.temperature
        self.history_ = None

    # -- q(c | x), and the bound -------------------------------------------------------------

    def encode(self, x):
        r""":math:`q_\phi(c \mid x) = \mathrm{Cat}(\operatorname{softmax} g_\phi(x))` for a batch
        ``x`` (B, p), a :class:`~scratchdgm.distributions.Categorical` of batch shape (B,)."""
        return Categorical(self.encoder(x))

    def _every_category(self, reps=1):
        r"""The K one-hot vectors :math:`e_1, \dots, e_K`, shape (reps, K, 1, K): every category,
        for every data point (the size-1 axis broadcasts over the batch)."""
        eye = np.eye(self.n_categories, dtype=self.dtype)
        return np.broadcast_to(eye[None, :, None, :], (reps,) + eye.shape[:1] + (1,)
                               + eye.shape[1:])

    def category_term(self, x, y, rng):  # pragma: no cover - interface
        r""":math:`\ell_c(x)` at one-hot (or relaxed) codes ``y`` of shape (..., B or 1, K):
        a Tensor of shape (..., B)."""
        raise NotImplementedError

    def batch_bound(self, x, k, rng):
        r"""The bound :math:`\mathcal L(x_i)` of each point of a minibatch, a Tensor of shape
        (B,), with the expectation over c taken by the model's ``estimator``.

        Parameters
        ----------
        x : ndarray, shape (B, p)
        k : int
            Relaxed samples per point (``'gumbel'``), or draws of z per category (the GMVAE
            with ``'enumerate'``; the categorical VAE's enumeration is exact and ignores it).
        rng : numpy.random.Generator

        Notes
        -----
        .. math::

            \hat{\mathcal L}(x) = \begin{cases}
            \sum_{c=1}^K q_\phi(c \mid x)\, \hat\ell_c(x) - \mathrm{KL}(q_\phi(c \mid x)
            \Vert \mathcal U_K) & \text{enumerate} \\
            \frac1k \sum_{s=1}^k \hat\ell_{y_s}(x) - \mathrm{KL}(q_\phi(c \mid x) \Vert
            \mathcal U_K), \quad y_s = \operatorname{softmax}\big((\log q_\phi(\cdot \mid x)
            + g_s) / \tau\big) & \text{gumbel}
            \end{cases}

        with the KL in closed form, :math:`-H(q_\phi(c \mid x)) + \log K`.
        """
        x = _as_array(x, self.dtype)
        q = self.encode(x)
        kl = kl_divergence(q, self.prior_c)                      # -H(q) + log K, (B,)
        if self.estimator == "enumerate":
            reps = k if self.stochastic_given_c else 1
            ell = self.category_term(x, self._every_category(reps), rng).mean(axis=0)  # (K, B)
            expected = (q.probs.T * ell).sum(axis=0)             # sum_c q(c|x) ell_c(x)
        else:
            relaxed = RelaxedOneHotCategorical(q.logits, self.current_temperature)
            y = relaxed.rsample(k, rng)                          # (k, B, K), on the simplex
            expected = self.category_term(x, y, rng).mean(axis=0)
        return expected - kl

    def objective(self, x, k=None, rng=None):
        r"""The loss of one training step: minus the mean bound over the minibatch, a Tensor of
        shape ()."""
        k = self.k if k is None else check_positive_int(k, "k", "objective")
        if not isinstance(rng, np.random.Generator):
            raise TypeError("objective needs rng, a numpy.random.Generator (randomness is "
                            "explicit)")
        return -self.batch_bound(x, k, rng).mean()

    # -- the temperature of the relaxation -------------------------------------------------

    def temperature_at(self, epoch):
        r"""The Gumbel-softmax temperature of epoch ``epoch`` (from 1):
        :math:`\tau_e = \max(\tau_{\min}, \tau_0\, e^{-r (e - 1)})` with :math:`\tau_0` =
        ``temperature``, :math:`r` = ``anneal_rate`` (0: constant) and :math:`\tau_{\min}` =
        ``min_temperature``."""
        epoch = check_positive_int(epoch, "epoch", "temperature_at")
        if self.anneal_rate == 0.0:
            return self.temperature
        return max(self.min_temperature,
                   self.temperature * math.exp(-self.anneal_rate * (epoch - 1)))

    def on_epoch_start(self, epoch):
        r"""The hook :func:`~scratchdgm.models.deep.training.fit` calls before each epoch: set the
        temperature of the schedule (recorded in ``history_['temperature']``)."""
        self.current_temperature = self.temperature_at(epoch)
        if self.estimator == "gumbel":
            return {"temperature": self.current_temperature}
        return None

    # -- clusters ----------------------------------------------------------------------------

    def predict_proba(self, X):
        r""":math:`q_\phi(c \mid x)` for every row of ``X``, shape (n, K) (the amortised
        responsibilities)."""
        X = self.check_data(X, allow_unit_interval=True)
        with _ad.no_grad():
            return np.array(self.encode(X).probs.data)

    def predict(self, X):
        r"""The cluster of each row, :math:`\arg\max_c q_\phi(c \mid x)`, shape (n,)."""
        return self.predict_proba(X).argmax(axis=1)

    # -- generation --------------------------------------------------------------------------

    def _sample_given_c(self, c, rng):  # pragma: no cover - interface
        r"""``(eta, latents)``: the decoder outputs of :math:`p_\theta(x \mid \cdot)` for the
        categories ``c`` (n,), and the latents drawn on the way (a dict by layer name)."""
        raise NotImplementedError

    def sample(self, n_samples=1, random_state=None, *, return_latent=False):
        r"""Draw from the model by ancestral sampling: :math:`c \sim \mathcal U_K`, then down to
        :math:`x`.

        Returns
        -------
        X : ndarray, shape (n_samples, p)
        latents : dict of ndarray
            Only if ``return_latent``: ``'c'`` (n_samples,) and, for the GMVAE, ``'z'``
            (n_samples, d).
        """
        n = check_positive_int(n_samples, "n_samples", "sample")
        rng = check_random_state(random_state, "sample")
        c = self.prior_c.sample((n,), rng)
        with _ad.no_grad():
            eta, latents = self._sample_given_c(c, rng)
            x = self.observation.distribution(eta).sample(random_state=rng)
        return (x, latents) if return_latent else x

    def sample_means(self, n_samples=1, random_state=None, *, return_latent=False):
        r"""As :meth:`sample`, but the *mean* of :math:`p_\theta(x \mid \cdot)` instead of a draw
        of x."""
        n = check_positive_int(n_samples, "n_samples", "sample_means")
        rng = check_random_state(random_state, "sample_means")
        c = self.prior_c.sample((n,), rng)
        with _ad.no_grad():
            eta, latents = self._sample_given_c(c, rng)
            x = np.array(self.observation.distribution(eta).mean.data)
        return (x, latents) if return_latent else x

    def component_means(self, n_per_component=8, random_state=None):
        r"""For each category c, ``n_per_component`` draws of the mean of :math:`p_\theta(x \mid
        \cdot)` given c, shape (K, n_per_component, p): what each cluster generates (for the
        categorical VAE the mean given c is one image, repeated)."""
        n = check_positive_int(n_per_component, "n_per_component", "component_means")
        rng = check_random_state(random_state, "component_means")
        c = np.repeat(np.arange(self.n_categories), n)
        with _ad.no_grad():
            eta, _ = self._sample_given_c(c, rng)
            x = np.array(self.observation.distribution(eta).mean.data)
        return x.reshape(self.n_categories, n, self.input_dim)

    # -- the evaluation protocol -------------------------------------------------------------

    def check_data(self, X, where="X", *, allow_unit_interval=False):
        r"""Validate observations; see
        :meth:`~scratchdgm.models.deep.observation.ObservationModel.validate_data`."""
        return self.observation.validate_data(X, where, allow_unit_interval=allow_unit_interval)

    def log_weights(self, x, k, rng):  # pragma: no cover - interface
        raise NotImplementedError

    def kl_c(self, X):
        r""":math:`\mathrm{KL}(q_\phi(c \mid x) \Vert \mathcal U_K) = -H + \log K` for every row,
        shape (n,)."""
        X = self.check_data(X, allow_unit_interval=True)
        with _ad.no_grad():
            return np.array(kl_divergence(self.encode(X), self.prior_c).data)

    def kl_per_dimension(self, X, random_state=None):
        r"""The mean over the rows of ``X`` of the KL of each latent layer, by layer name:
        ``'c'``, shape (1,): :math:`\mathrm{KL}(q_\phi(c \mid x) \Vert \mathcal U_K)` in closed
        form (c is one categorical variable)."""
        return {"c": np.array([self.kl_c(X).mean()])}

    def posterior_means(self, X):
        r"""Posterior means by latent layer: ``'c'``, shape (n, K): :math:`\mathbb E_q[e_c] =
        q_\phi(\cdot \mid x)`, the mean of the one-hot code."""
        return {"c": self.predict_proba(X)}

    def fit(self, X, *, epochs=100, batch_size=20, lr=1e-3, X_val=None, binarize="auto",
            checkpoint=None, resume=False, progress=True, random_state=0, val_k=None,
            callback=None, blas_threads=1, metadata=None):
        r"""Train by minibatch Adam on the bound; see
        :func:`scratchdgm.models.deep.training.fit` for every argument (the temperature
        schedule runs through its ``on_epoch_start`` hook). Returns ``self``."""
        _training.fit(self, X, epochs=epochs, batch_size=batch_size, lr=lr, X_val=X_val,
                      binarize=binarize, checkpoint=checkpoint, resume=resume,
                      progress=progress, random_state=random_state, val_k=val_k,
                      callback=callback, blas_threads=blas_threads, metadata=metadata)
        return self

    def score_samples(self, X, k=5000, random_state=None, chunk_size=50_000, *, progress=True):
        r"""Importance-sampled :math:`\log \hat p_\theta(x_i)` per row with ``k`` samples, shape
        (n,), with a progress bar on a terminal when it takes more than a second; see
        :func:`scratchdgm.models.deep.evaluation.score_samples`."""
        return _evaluation.score_samples(self, X, k, random_state, chunk_size, progress=progress)

    def score(self, X, k=5000, random_state=None, chunk_size=50_000, *, progress=True):
        r"""Mean log-likelihood per row (nats, higher is better): the mean of
        :meth:`score_samples`."""
        return float(np.mean(self.score_samples(X, k, random_state, chunk_size,
                                                progress=progress)))

    def bound_samples(self, X, k=None, random_state=None, *, progress=True):
        r"""One draw of :math:`\hat{\mathcal L}_K(x_i)` per row from :meth:`log_weights`
        (default K: the model's ``k``); see
        :func:`scratchdgm.models.deep.evaluation.bound_samples`."""
        return _evaluation.bound_samples(self, X, self.k if k is None else k, random_state,
                                         progress=progress)

    def bound(self, X, k=None, random_state=None, *, progress=True):
        r"""Mean of :meth:`bound_samples` (float)."""
        return float(np.mean(self.bound_samples(X, k, random_state, progress=progress)))

    def unit_activity(self, X):
        r"""Variance over the data of each coordinate of :meth:`transform`, shape (latent_dim,);
        see :func:`scratchdgm.models.deep.evaluation.unit_activity`."""
        return _evaluation.unit_activity(self, X)

    def active_units(self, X, threshold=0.01):
        r"""Number of coordinates of :meth:`transform` whose variance over the data exceeds
        ``threshold`` (Burda et al. 2016, §5.2)."""
        return _evaluation.active_units(self, X, threshold)

    # -- persistence -------------------------------------------------------------------------

    def _config_common(self):
        return {
            "class": type(self).__name__,
            "input_dim": self.input_dim,
            "n_categories": self.n_categories,
            "hidden": list(self.hidden),
            "activation": self.activation,
            "likelihood": self.observation.config(),
            "estimator": self.estimator,
            "temperature": self.temperature,
            "min_temperature": self.min_temperature,
            "anneal_rate": self.anneal_rate,
            "k": self.k,
            "dtype": self.dtype.name,
        }

    def save(self, path, metadata=None, *, extra_arrays=None):
        r"""Write the model to ``path`` (``.npz``, atomic, no pickle); see
        :func:`scratchdgm.models.deep.persistence.save_model`."""
        _persistence.save_model(self, path, metadata, extra_arrays=extra_arrays)

    @classmethod
    def load(cls, path):
        r"""Rebuild a model saved by :meth:`save` or by training checkpoints."""
        return _persistence.load_model(path)

    def extra_repr(self):
        return (f"input_dim={self.input_dim}, n_categories={self.n_categories}, "
                f"hidden={list(self.hidden)}, estimator={self.estimator!r}, k={self.k}, "
                f"likelihood={self.observation.kind!r}")


@_persistence.register_model
class CategoricalVAE(DiscreteLatentVAE):
    r"""A VAE whose latent is one categorical variable with a uniform prior:
    :math:`c \sim \mathcal U\{1..K\}`, :math:`x \mid c \sim \Phi(x \mid f_\theta(e_c))`.

    Parameters
    ----------
    input_dim : int
        :math:`p`.
    n_categories : int
        :math:`K \ge 2`.
    hidden : sequence of int
        Hidden widths of the encoder :math:`g_\phi` (the decoder mirrors them).
    activation : {'tanh', 'relu', 'softplus', 'sigmoid'}
    likelihood : str or ObservationModel
        :math:`\Phi`, as for :class:`~scratchdgm.VAE` (default ``'bernoulli'``).
    estimator : {'enumerate', 'gumbel'}
        How the bound takes the expectation over c (module docstring).
    temperature : float
        :math:`\tau_0 > 0`, the (starting) temperature of ``'gumbel'``.
    min_temperature : float
        :math:`\tau_{\min}`, the floor of the annealed temperature (default 0.5, Jang et al.).
    anneal_rate : float
        :math:`r \ge 0` per epoch (0: a constant temperature).
    k : int
        Relaxed samples per point for ``'gumbel'`` (default 1).
    dtype : {numpy.float64, numpy.float32}
    random_state : None, int or numpy.random.Generator
        Initialises the weights.
    backend : {None, 'numpy', 'numba', 'cuda', 'auto'}
        Kernel backend of the networks, the likelihood and the optimiser in :meth:`fit`.

    Attributes
    ----------
    encoder : MLP, sizes ``[p, *hidden, K]``
        :math:`g_\phi`: the logits of :math:`q_\phi(c \mid x)`.
    decoder : MLP, sizes ``[K, *reversed(hidden), m]``
        :math:`f_\theta`, on a one-hot :math:`e_c` (or a relaxed :math:`y` in the simplex).
    latent_dim : int
        K, the size of the one-hot code (what :meth:`transform` returns per row).

    Notes
    -----
    .. math::

        \log p_\theta(x) = \log \frac1K \sum_{c=1}^K p_\theta(x \mid c), \qquad
        p_\theta(c \mid x) = \frac{p_\theta(x \mid c)}{\sum_{c'} p_\theta(x \mid c')},

    both exact (:meth:`score_samples`, :meth:`posterior`), and the gap of the bound is exact too:
    :math:`\log p_\theta(x) - \mathcal L(x) = \mathrm{KL}(q_\phi(c \mid x) \Vert p_\theta(c \mid
    x))` ([Isachenko-L4, "ELBO derivation 2 (equality)"]).

    References
    ----------
    [Isachenko-L4, "Discrete VAE latents"] (the bound); Jang, Gu & Poole (2017), *Categorical
    reparameterization with Gumbel-softmax*, ICLR (the relaxed training, their categorical VAE).

    Examples
    --------
    >>> import numpy as np
    >>> from scratchdgm.models.deep.discrete import CategoricalVAE
    >>> x = (np.random.default_rng(0).random((40, 16)) < 0.5).astype(float)
    >>> m = CategoricalVAE(16, n_categories=3, hidden=(8,)).fit(x, epochs=2, progress=False)
    >>> m.predict(x).shape, m.score_samples(x).shape
    ((40,), (40,))
    """

    def __init__(self, input_dim, n_categories=10, hidden=(100, 100), *, activation="tanh",
                 likelihood="bernoulli", estimator="enumerate", temperature=1.0,
                 min_temperature=0.5, anneal_rate=0.0, k=None, dtype=np.float64,
                 random_state=0, backend=None):
        super().__init__(input_dim, n_categories, hidden, activation=activation,
                         likelihood=likelihood, estimator=estimator, temperature=temperature,
                         min_temperature=min_temperature, anneal_rate=anneal_rate, k=k,
                         dtype=dtype, backend=backend)
        rng = check_random_state(random_state, type(self).__name__)
        K, p, h = self.n_categories, self.input_dim, self.hidden
        self.encoder = MLP([p, *h, K], self.activation, rng=rng, dtype=self.dtype,
                           backend=backend)
        self.decoder = MLP([K, *reversed(h), self.observation.n_outputs], self.activation,
                           rng=rng, dtype=self.dtype, backend=backend)
        self.latent_dim = K

    def decode(self, y):
        r""":math:`\eta = f_\theta(y)` for codes ``y`` (..., K), one-hot or relaxed: the
        parameters of :math:`p_\theta(x \mid c)`, shape (..., m)."""
        return _apply(self.decoder, y if isinstance(y, _ad.Tensor) else _ad.tensor(y))

    def category_term(self, x, y, rng=None):
        r""":math:`\ell_c(x) = \log p_\theta(x \mid c) = \log \Phi(x \mid f_\theta(y))` at codes
        ``y`` of shape (..., B or 1, K) (one-hot, or relaxed), a Tensor of shape (..., B);
        ``rng`` is unused (nothing is random given c)."""
        eta = self.decode(y)
        lead, b, m = eta.shape[:-2], len(x), eta.shape[-1]
        if eta.shape[-2] != b:   # one code for every data point: decode once, broadcast
            eta = eta.broadcast_to(lead + (b, m))
        return self.observation.log_prob(x, eta.reshape(-1, b, m)).reshape(*lead, b)

    def log_px_given_c(self, X):
        r""":math:`\log p_\theta(x_i \mid c)` for every row and category, shape (n, K)."""
        X = self.check_data(X)
        with _ad.no_grad():
            return np.array(self.category_term(X, self._every_category()[0]).data).T

    def score_samples(self, X, k=None, random_state=None, chunk_size=None, *, progress=True):
        r"""The exact :math:`\log p_\theta(x_i) = \log \frac1K \sum_c p_\theta(x_i \mid c)` per
        row, shape (n,), by enumeration of the K categories (``k``, ``random_state`` and
        ``chunk_size`` and ``progress`` are accepted for the common signature and unused:
        nothing is sampled, and one pass takes well under a second)."""
        return logsumexp(self.log_px_given_c(X), axis=1) - math.log(self.n_categories)

    def posterior(self, X):
        r"""The exact posterior :math:`p_\theta(c \mid x_i)`, shape (n, K), by Bayes' rule (the
        uniform prior cancels)."""
        log_px_c = self.log_px_given_c(X)
        return np.exp(log_px_c - logsumexp(log_px_c, axis=1, keepdims=True))

    def log_weights(self, x, k, rng):
        r"""Log importance weights with the proposal :math:`q_\phi(c \mid x)`, shape (k, B):
        :math:`\log w_{s} = \log p_\theta(x \mid c_s) + \log \frac1K - \log q_\phi(c_s \mid x)`,
        :math:`c_s \sim q_\phi(c \mid x)` (the protocol of
        :mod:`~scratchdgm.models.deep.evaluation`; :math:`\mathbb E[\log w] = \mathcal L(x)`)."""
        x = _as_array(x, self.dtype)
        q = self.encode(x)
        c = q.sample((k,), rng)                                            # (k, B)
        one_hot = np.eye(self.n_categories, dtype=self.dtype)[c]           # (k, B, K)
        return self.category_term(x, one_hot) + self.prior_c.log_prob(c) - q.log_prob(c)

    def transform(self, X):
        r"""The posterior mean of the one-hot code, :math:`\mathbb E_{q_\phi}[e_c] =
        q_\phi(\cdot \mid x)`, shape (n, K)."""
        return self.predict_proba(X)

    def _sample_given_c(self, c, rng):
        one_hot = np.eye(self.n_categories, dtype=self.dtype)[c]
        return self.decode(one_hot), {"c": c}

    def config(self):
        r"""The constructor arguments that rebuild this architecture (JSON-serialisable)."""
        return self._config_common()


@_persistence.register_model
class GMVAE(DiscreteLatentVAE):
    r"""Gaussian-mixture VAE: a categorical c picks the Gaussian component of the code z, and a
    decoder maps z to x.

    .. math::

        c \sim \mathcal U\{1..K\}, \quad z \mid c \sim \mathcal N(\mu_c,
        \operatorname{diag}\sigma_c^2), \quad x \mid z \sim \Phi(x \mid f_\theta(z)),

    with the amortised posterior :math:`q_\phi(c \mid x)\, q_\phi(z \mid x, c)`.

    Parameters
    ----------
    input_dim : int
        :math:`p`.
    n_categories : int
        :math:`K \ge 2` components.
    latent_dim : int
        :math:`d`, the dimension of z.
    hidden, activation, likelihood, estimator, temperature, min_temperature, anneal_rate,
    dtype, random_state, backend
        As for :class:`CategoricalVAE`.
    k : int
        Samples per point: draws of z per category (``'enumerate'``), or of (y, z) pairs
        (``'gumbel'``); default 1.

    Attributes
    ----------
    encoder : MLP, sizes ``[p, *hidden, K]``
        The logits of :math:`q_\phi(c \mid x)`.
    encoder_z : MLP, sizes ``[p + K, *hidden, 2 d]``
        :math:`(\mu_\phi(x, e_c), \log\sigma_\phi(x, e_c))` of :math:`q_\phi(z \mid x, c)`, from
        x and the one-hot (or relaxed) code of c side by side.
    decoder : MLP, sizes ``[d, *reversed(hidden), m]``
        :math:`f_\theta`.
    prior_mu, prior_log_sigma : Parameter, shape (K, d)
        :math:`\mu_c` and :math:`\log\sigma_c` of :math:`p(z \mid c)`, learned (the means start
        at standard-normal draws, the scales at 1).

    Notes
    -----
    The bound (module docstring) with

    .. math::

        \ell_c(x) = \mathbb E_{q_\phi(z \mid x, c)}\big[\log p_\theta(x \mid z)
        + \log \mathcal N(z \mid \mu_c, \operatorname{diag}\sigma_c^2)
        - \log q_\phi(z \mid x, c)\big],

    estimated with reparametrised :math:`z = \mu_\phi(x, e_c) + \sigma_\phi(x, e_c) \odot
    \varepsilon`. Under ``'gumbel'`` the relaxed :math:`y` replaces :math:`e_c` everywhere:
    in the encoder's input and in :math:`p(z \mid y) = \mathcal N(y^\top \mu, \operatorname{diag}
    \exp(2\, y^\top \log\sigma))`, the interpolation that equals :math:`p(z \mid c)` at
    :math:`y = e_c`.

    The marginal likelihood is estimated by importance sampling with c summed out of both the
    prior and the proposal (:meth:`log_weights`).

    References
    ----------
    [Su-DGM, "Generative Models"] (a categorical latent selects a Gaussian); [Mattei-S2D, "The
    role of the prior"] (a mixture prior on z); Dilokthanakul et al. (2016), *Deep unsupervised
    clustering with Gaussian mixture variational autoencoders*; Jiang et al. (2017), *Variational
    deep embedding*, IJCAI (VaDE: the same generative model).
    """

    stochastic_given_c = True

    def __init__(self, input_dim, n_categories=10, latent_dim=10, hidden=(100, 100), *,
                 activation="tanh", likelihood="bernoulli", estimator="enumerate",
                 temperature=1.0, min_temperature=0.5, anneal_rate=0.0, k=None,
                 dtype=np.float64, random_state=0, backend=None):
        super().__init__(input_dim, n_categories, hidden, activation=activation,
                         likelihood=likelihood, estimator=estimator, temperature=temperature,
                         min_temperature=min_temperature, anneal_rate=anneal_rate, k=k,
                         dtype=dtype, backend=backend)
        where = type(self).__name__
        self.latent_dim = check_positive_int(latent_dim, "latent_dim", where)
        rng = check_random_state(random_state, where)
        K, p, d, h = self.n_categories, self.input_dim, self.latent_dim, self.hidden
        kw = dict(rng=rng, dtype=self.dtype, backend=backend)
        self.encoder = MLP([p, *h, K], self.activation, **kw)
        self.encoder_z = MLP([p + K, *h, 2 * d], self.activation, **kw)
        self.decoder = MLP([d, *reversed(h), self.observation.n_outputs], self.activation, **kw)
        self.prior_mu = Parameter(rng.standard_normal((K, d)).astype(self.dtype))
        self.prior_log_sigma = Parameter(np.zeros((K, d), dtype=self.dtype))

    # -- the pieces of the model -------------------------------------------------------------

    def encode_z(self, x, y):
        r""":math:`q_\phi(z \mid x, c)` at codes ``y`` (..., B or 1, K), one-hot or relaxed, for
        the batch ``x`` (B, p): a :class:`~scratchdgm.distributions.DiagNormal` of batch shape
        (..., B)."""
        y = y if isinstance(y, _ad.Tensor) else _ad.tensor(y)
        lead = y.shape[:-2] + (len(x),)
        if y.shape[-2] != len(x):
            y = y.broadcast_to(lead + (self.n_categories,))
        xb = _ad.tensor(np.broadcast_to(x, lead + (self.input_dim,)))
        h = _apply(self.encoder_z, _ad.concatenate([xb, y], axis=-1))
        d = self.latent_dim
        return DiagNormal(h[..., :d], h[..., d:], backend=self.backend)

    def prior_z(self, y):
        r""":math:`p(z \mid c) = \mathcal N(\mu_c, \operatorname{diag}\sigma_c^2)` at codes ``y``
        (..., K): :math:`\mathcal N(y^\top\mu, \operatorname{diag}\exp(2 y^\top\log\sigma))`,
        exactly :math:`p(z \mid c)` for a one-hot :math:`y = e_c`."""
        y = y if isinstance(y, _ad.Tensor) else _ad.tensor(y)
        return DiagNormal(y @ self.prior_mu, y @ self.prior_log_sigma, backend=self.backend)

    def prior_mixture(self):
        r"""The marginal prior :math:`p(z) = \frac1K \sum_c \mathcal N(z \mid \mu_c,
        \operatorname{diag}\sigma_c^2)`, a :class:`~scratchdgm.distributions.GaussianMixture`
        with equal weights."""
        return GaussianMixture(np.zeros(self.n_categories, dtype=self.dtype), self.prior_mu,
                               self.prior_log_sigma, backend=self.backend)

    def decode(self, z):
        r""":math:`\eta = f_\theta(z)` for codes ``z`` (..., d), shape (..., m)."""
        return _apply(self.decoder, z if isinstance(z, _ad.Tensor) else _ad.tensor(z))

    def category_term(self, x, y, rng):
        r"""One-sample estimate of :math:`\ell_c(x)` (class Notes) at codes ``y`` (..., B or 1,
        K), one-hot or relaxed: a Tensor of shape (..., B)."""
        q_z = self.encode_z(x, y)                                   # batch (..., B)
        z = q_z.rsample((), rng)                                    # (..., B, d)
        lead, b = z.shape[:-2], len(x)
        eta = self.decode(z)
        log_px = self.observation.log_prob(x, eta.reshape(-1, b, eta.shape[-1]))
        return log_px.reshape(*lead, b) + self.prior_z(y).log_prob(z) - q_z.log_prob(z)

    def log_weights(self, x, k, rng):
        r"""Log importance weights of the marginal :math:`p_\theta(x) = \int p_\theta(x \mid z)
        p(z)\, dz`, with c summed out of both the prior and the proposal, shape (k, B).

        Notes
        -----
        :math:`z_s \sim q_\phi(z \mid x) = \sum_c q_\phi(c \mid x) q_\phi(z \mid x, c)` (draw c,
        then z), and

        .. math::

            \log w_s = \log p_\theta(x \mid z_s)
            + \log \frac1K \sum_c \mathcal N(z_s \mid \mu_c, \operatorname{diag}\sigma_c^2)
            - \log \sum_c q_\phi(c \mid x)\, q_\phi(z_s \mid x, c).

        Summing c out exactly (rather than weighting sampled pairs (c, z)) removes the
        variance the choice of c would add to the weights.
        """
        x = _as_array(x, self.dtype)
        b, d = len(x), self.latent_dim
        q_c = self.encode(x)
        q_z = self.encode_z(x, self._every_category()[0])           # batch (K, B)
        c = q_c.sample((k,), rng)                                   # (k, B)
        cols = np.arange(b)
        eps = rng.standard_normal((k, b, d)).astype(self.dtype)
        z = q_z.mu[c, cols] + q_z.log_sigma[c, cols].exp() * eps    # z ~ q(z | x, c), (k, B, d)
        log_q_mix = (q_z.log_prob(z.reshape(k, 1, b, d))            # (k, K, B)
                     + q_c.logits.log_softmax(axis=-1).T).logsumexp(axis=1)
        log_px = self.observation.log_prob(x, self.decode(z))
        return log_px + self.prior_mixture().log_prob(z) - log_q_mix

    def transform(self, X):
        r"""The posterior mean of the code, :math:`\mathbb E_{q_\phi}[z \mid x] = \sum_c
        q_\phi(c \mid x)\, \mu_\phi(x, e_c)`, shape (n, d)."""
        X = self.check_data(X, allow_unit_interval=True)
        with _ad.no_grad():
            probs = self.encode(X).probs.data                        # (n, K)
            mu = self.encode_z(X, self._every_category()[0]).mu.data  # (K, n, d)
        return np.einsum("nk,knd->nd", probs, mu)

    def kl_per_dimension(self, X, random_state=None):
        r"""Mean over the rows of the KL of each latent layer, by name: ``'c'`` (1,), as for the
        categorical VAE, and ``'z'`` (d,):
        :math:`\sum_c q_\phi(c \mid x)\, \mathrm{KL}(q_\phi(z_j \mid x, c) \Vert p(z_j \mid c))`,
        in closed form. The two add up to :math:`\mathrm{KL}(q_\phi(c, z \mid x) \Vert p(c, z))`,
        the KL part of the bound."""
        out = super().kl_per_dimension(X)
        X = self.check_data(X, allow_unit_interval=True)
        with _ad.no_grad():
            probs = self.encode(X).probs.data                        # (n, K)
            q_z = self.encode_z(X, self._every_category()[0])        # batch (K, n)
            # one Gaussian per coordinate: the event axis of size 1, the coordinates a batch axis
            per = kl_divergence(
                DiagNormal(q_z.mu.reshape(*q_z.mu.shape, 1),
                           q_z.log_sigma.reshape(*q_z.log_sigma.shape, 1)),
                DiagNormal(self.prior_mu.data[:, None, :, None],
                           self.prior_log_sigma.data[:, None, :, None])).data   # (K, n, d)
        out["z"] = np.einsum("nk,knd->d", probs, per) / len(X)
        return out

    def posterior_means(self, X):
        r"""Posterior means by latent layer: ``'c'`` (n, K) and ``'z'`` (n, d)
        (:meth:`transform`)."""
        return {"c": self.predict_proba(X), "z": self.transform(X)}

    def _sample_given_c(self, c, rng):
        eps = rng.standard_normal((len(c), self.latent_dim)).astype(self.dtype)
        z = self.prior_mu.data[c] + np.exp(self.prior_log_sigma.data[c]) * eps
        return self.decode(z), {"c": c, "z": z}

    def config(self):
        r"""The constructor arguments that rebuild this architecture (JSON-serialisable)."""
        return {**self._config_common(), "latent_dim": self.latent_dim}

    def extra_repr(self):
        return super().extra_repr() + f", latent_dim={self.latent_dim}"
