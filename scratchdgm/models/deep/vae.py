r"""Deep latent variable models trained by amortised variational inference: the variational
autoencoder (VAE, bound :math:`\mathcal L_1`) and the importance-weighted autoencoder (IWAE,
bound :math:`\mathcal L_K`).

The model ([Mattei-DGM, "Deep latent variable models"] in ``docs/lectures.md``)

.. math::

    z \sim p(z), \qquad x \mid z \sim \Phi(x \mid f_\theta(z)),

with an MLP decoder :math:`f_\theta`, an observation model :math:`\Phi`
(:mod:`~scratchdgm.models.deep.observation`) and a prior :math:`p(z)`
(:mod:`~scratchdgm.models.deep.priors`), and the amortised proposal
([Mattei-S2D, "Amortised variational inference"])

.. math::

    q_\gamma(z \mid x) = \mathcal N\big(z \mid \mu_\gamma(x), \mathrm{diag}\,\sigma_\gamma(x)^2
    \big),

an MLP encoder outputting :math:`(\mu_\gamma(x), \log \sigma_\gamma(x))`.

The two classes differ in one method, :meth:`VAE.batch_bound`, the bound they train on
(:mod:`~scratchdgm.models.deep.bounds`):

* :class:`VAE` -- :math:`\mathcal L_1` (Kingma & Welling 2014), estimated with ``k`` samples per
  point, the KL term in closed form when the prior allows it ([Mattei-DGM, "What about VAEs?"]);
* :class:`IWAE` -- :math:`\mathcal L_K` with ``K = k`` (Burda et al. 2016, eq. 8).

This module holds the model and its objective. Evaluation (:meth:`VAE.score_samples`,
:meth:`VAE.bound`, :meth:`VAE.active_units`) is :mod:`~scratchdgm.models.deep.evaluation`,
saving and loading :mod:`~scratchdgm.models.deep.persistence`, and the training loop behind
:meth:`VAE.fit` :mod:`~scratchdgm.models.deep.training`.
"""

from typing import NamedTuple

import numpy as np

from scratchdgm import autodiff as _ad
from scratchdgm.autodiff import fused as _fused
from scratchdgm.distributions import DiagNormal, StandardNormal, kl_divergence
from scratchdgm.models.deep import bounds as _bounds
from scratchdgm.models.deep import evaluation as _evaluation
from scratchdgm.models.deep import persistence as _persistence
from scratchdgm.models.deep import training as _training
from scratchdgm.models.deep.observation import BernoulliObservation, make_observation
from scratchdgm.models.deep.priors import StandardNormalPrior, make_prior
from scratchdgm.nn import ACTIVATIONS, MLP, Module
from scratchdgm.validation import (
    check_float_dtype,
    check_positive_int,
    check_random_state,
    check_real,
)

__all__ = ["VAE", "IWAE", "WeightedSamples", "check_networks", "check_hidden", "check_activation",
           "check_kl"]

#: hidden activations of the networks: those of the one table, scratchdgm.nn.ACTIVATIONS
_HIDDEN_ACTIVATIONS = tuple(name for name in ACTIVATIONS if name != "identity")


def check_hidden(hidden, where):
    r"""Hidden-layer widths as a tuple of ints >= 1 (an int is one layer)."""
    if isinstance(hidden, (int, np.integer)):
        hidden = (hidden,)
    return tuple(check_positive_int(h, "each hidden size", where) for h in hidden)


def check_activation(activation, where):
    r"""The name of a hidden activation of :data:`scratchdgm.nn.ACTIVATIONS`, lower case."""
    if not isinstance(activation, str):
        raise TypeError(f"{where}: activation must be a str such as 'tanh', got "
                        f"{type(activation).__name__}")
    if activation.lower() not in _HIDDEN_ACTIVATIONS:
        raise ValueError(f"{where}: activation must be one of {_HIDDEN_ACTIVATIONS}, got "
                         f"{activation!r}")
    return activation.lower()


def check_kl(kl, where):
    r"""``kl`` must be ``'auto'``, ``'analytic'`` or ``'mc'``."""
    if kl not in ("auto", "analytic", "mc"):
        raise ValueError(f"{where}: kl must be 'auto', 'analytic' or 'mc', got {kl!r}")


def check_networks(hidden, activation, where):
    r"""``(check_hidden(hidden), check_activation(activation))``: the widths and the hidden
    activation of a model's MLPs, validated together."""
    return check_hidden(hidden, where), check_activation(activation, where)


class WeightedSamples(NamedTuple):
    r"""K importance samples per data point and their log-weights (one forward pass).

    Attributes
    ----------
    log_w : Tensor, shape (K, B)
        :math:`\log w_{ik} = \log p_\theta(x_i \mid z_{ik}) + \log p(z_{ik})
        - \log q_\gamma(z_{ik} \mid x_i)`.
    log_px_given_z : Tensor, shape (K, B)
        :math:`\log p_\theta(x_i \mid z_{ik})`, the reconstruction term.
    q : DiagNormal, batch shape (B,)
        The proposal :math:`q_\gamma(z \mid x_i)`.
    z : Tensor, shape (K, B, d)
        The reparametrised samples :math:`z_{ik} = \mu_\gamma(x_i) + \sigma_\gamma(x_i) \odot
        \varepsilon_{ik}`.
    """

    log_w: _ad.Tensor
    log_px_given_z: _ad.Tensor
    q: DiagNormal
    z: _ad.Tensor


@_persistence.register_model
class VAE(_persistence.SaveLoadMixin, Module):
    r"""Variational autoencoder: a DLVM with a Gaussian amortised encoder, trained on
    :math:`\mathcal L_1`.

    Parameters
    ----------
    input_dim : int
        :math:`p`, the observed dimension.
    latent_dim : int
        :math:`d \ge 1`.
    hidden : sequence of int
        Hidden-layer widths of the encoder; the decoder mirrors them (the digits protocol of
        ``docs/protocols.md``: ``(100, 100)``) unless ``decoder_hidden`` is given.
    activation : {'tanh', 'relu', 'softplus', 'sigmoid'}
        Hidden activation of both networks.
    likelihood : str or ObservationModel
        ``'bernoulli'`` (logits), ``'gaussian'`` / ``'gaussian:fixed'`` / ``'gaussian:learned'`` /
        ``'gaussian:isotropic'`` / ``'gaussian:decoder'``, ``'student_t'``; see
        :func:`~scratchdgm.models.deep.observation.make_observation`.
    prior : str or prior Module
        ``'normal'`` (:math:`\mathcal N(0, I_d)`), ``'gmm'`` or ``'gmm:C'`` (a learnable mixture of
        C Gaussians, trained with the rest).
    k : int
        Samples per data point of the training objective (default: 1 for the VAE, 50 for the
        IWAE).
    kl : {'auto', 'analytic', 'mc'}
        How the VAE objective treats the KL regulariser: closed form (``'analytic'``, needs a
        Gaussian prior; ``'auto'`` picks it when available) or Monte Carlo. Ignored by IWAE.
    decoder_hidden : sequence of int, optional
        Hidden-layer widths of the decoder when they should differ from the encoder's mirror
        image, e.g. to vary the decoder's power alone (``()``: an affine decoder).
    beta : float, default 1
        Weight :math:`\beta \ge 0` of the KL term in the training objective (1: the ELBO;
        otherwise the :math:`\beta`-VAE objective, Higgins et al. 2017, see
        :func:`~scratchdgm.models.deep.bounds.elbo_analytic_kl`). It changes what is trained,
        not the model: evaluation (:meth:`bound`, :meth:`score_samples`) always uses the
        unweighted bounds. The IWAE's :math:`\mathcal L_K` has no separate KL term, so IWAE
        only accepts 1.
    dtype : {numpy.float64, numpy.float32}
    random_state : None, int or numpy.random.Generator
        Initialises the weights.
    backend : {None, 'numpy', 'numba', 'cuda', 'auto'}
        The kernel backend every fused op of this model runs on, and its optimiser's update in
        :meth:`fit` (None: the process default, :func:`scratchdgm.get_backend`). Handed down to
        the networks, the observation model and the prior; a runtime setting, not part of the
        architecture (not saved).

    Attributes
    ----------
    encoder : MLP, sizes ``[p, *hidden, 2 d]``
        Outputs :math:`(\mu_\gamma(x), \log\sigma_\gamma(x))`: its weights are :math:`\gamma`.
    decoder : MLP, sizes ``[d, *decoder_hidden, m]`` (default ``[d, *reversed(hidden), m]``)
        :math:`f_\theta`, with ``m = observation.n_outputs``: its weights are :math:`\theta`.
    observation : ObservationModel
        :math:`\Phi`.
    prior : Module
        :math:`p(z)`.
    history_ : dict
        Per-epoch training record after :meth:`fit`.

    Notes
    -----
    The training objective, for a minibatch :math:`x_1..x_B` and
    :math:`z_{ik} = \mu_\gamma(x_i) + \sigma_\gamma(x_i) \odot \varepsilon_{ik}`,
    :math:`\varepsilon_{ik} \sim \mathcal N(0, I_d)` (the reparametrisation trick):

    .. math::

        \hat{\mathcal L}_1 = \frac1B \sum_i \Big( \frac1k \sum_{k'} \log p_\theta(x_i \mid
        z_{ik'}) - \beta\, \mathrm{KL}(q_\gamma(z \mid x_i) \,\|\, p(z)) \Big),

    with :math:`\beta = 1` unless ``beta`` says otherwise.

    References
    ----------
    Kingma & Welling (2014), *Auto-encoding variational Bayes*, ICLR, eq. 10.
    Burda, Grosse & Salakhutdinov (2016), *Importance weighted autoencoders*, ICLR (the "VAE"
    rows of Table 1: k samples, bound :math:`\mathcal L_1`).
    [Mattei-DGM, "What about VAEs?"] and [Isachenko-L4, "Variational autoencoder (VAE)"].
    """

    default_k = 1
    #: whether the training bound has a KL term that ``beta`` weighs
    kl_weight_applies = True

    def __init__(self, input_dim, latent_dim=10, hidden=(100, 100), *, activation="tanh",
                 likelihood="bernoulli", prior="normal", k=None, kl="auto", beta=1.0,
                 decoder_hidden=None, dtype=np.float64, random_state=0, backend=None):
        super().__init__()
        where = type(self).__name__
        self.input_dim = check_positive_int(input_dim, "input_dim", where)
        self.latent_dim = check_positive_int(latent_dim, "latent_dim", where)
        self.hidden, self.activation = check_networks(hidden, activation, where)
        self.decoder_hidden = (tuple(reversed(self.hidden)) if decoder_hidden is None
                               else check_hidden(decoder_hidden, where))
        self.k = check_positive_int(self.default_k if k is None else k, "k", where)
        check_kl(kl, where)
        self.beta = check_real(beta, "beta", where, low=0.0)
        if self.beta != 1.0 and not self.kl_weight_applies:
            raise ValueError(f"{where}: beta must be 1 (got {beta}): its bound L_K has no "
                             f"separate KL term to weigh; use VAE for a beta-VAE")
        self.dtype = check_float_dtype(dtype, where)
        rng = check_random_state(random_state, where)
        self.backend = backend
        self.observation = make_observation(likelihood, self.input_dim, dtype=self.dtype,
                                            backend=backend)
        self.prior = make_prior(prior, self.latent_dim, rng=rng, dtype=self.dtype,
                                backend=backend)
        if kl == "analytic" and not self.prior.has_analytic_kl:
            raise ValueError(f"{where}: kl='analytic' needs a prior with a closed-form KL (the "
                             f"standard normal); the {self.prior.kind!r} prior needs kl='mc'")
        self.kl = kl
        d, p = self.latent_dim, self.input_dim
        self.encoder = MLP([p, *self.hidden, 2 * d], self.activation, rng=rng, dtype=self.dtype,
                           backend=backend)
        self.decoder = MLP([d, *self.decoder_hidden, self.observation.n_outputs],
                           self.activation, rng=rng, dtype=self.dtype, backend=backend)
        self.history_ = None

    # -- the model: q_gamma(z | x), p_theta(x | z), the log-weights ---------------------------

    def encode(self, x):
        r"""The proposal :math:`q_\gamma(z \mid x) = \mathcal N(\mu_\gamma(x),
        \mathrm{diag}\,\sigma_\gamma(x)^2)` for a batch ``x`` (Tensor or ndarray, shape (B, p)),
        as a :class:`~scratchdgm.distributions.DiagNormal` of batch shape (B,)."""
        h = self.encoder(x)
        d = self.latent_dim
        return DiagNormal(h[:, :d], h[:, d:], backend=self.backend)

    def decode(self, z):
        r"""The decoder outputs :math:`\eta = f_\theta(z)`, a Tensor of shape (..., m), for codes
        ``z`` of shape (..., d): the parameters of :math:`p_\theta(x \mid z)`
        (``self.observation.distribution(eta)``)."""
        lead = z.shape[:-1]
        flat = z.reshape(-1, self.latent_dim) if len(lead) != 1 else z
        eta = self.decoder(flat)
        return eta.reshape(*lead, eta.shape[-1]) if len(lead) != 1 else eta

    def weighted_samples(self, x, k, rng, q=None):
        r"""Draw K reparametrised samples per point and their log-weights (differentiable).

        Parameters
        ----------
        x : ndarray, shape (B, p)
            Observations (already validated and, for Bernoulli, binary).
        k : int
            Samples per observation.
        rng : numpy.random.Generator
            Source of :math:`\varepsilon`.
        q : DiagNormal of batch shape (B,), optional
            The proposal; default the encoder's, :math:`q_\gamma(z \mid x)`. Another one, e.g.
            per-datapoint variational parameters :math:`(\lambda_i, \eta_i)` optimised for each
            :math:`x_i` alone ([Su-DGM, "Extending to Large Datasets"]), gives the same
            weights and bounds for that q.

        Returns
        -------
        WeightedSamples
            ``log_w`` (k, B), ``log_px_given_z`` (k, B), ``q`` and ``z`` (k, B, d).

        Notes
        -----
        .. math::

            z_{ik} = \mu_\gamma(x_i) + \sigma_\gamma(x_i) \odot \varepsilon_{ik}, \qquad
            \log w_{ik} = \log p_\theta(x_i \mid z_{ik}) + \log p(z_{ik})
            - \log q_\gamma(z_{ik} \mid x_i).
        """
        x = np.asarray(x.data if isinstance(x, _ad.Tensor) else x, dtype=self.dtype)
        if q is None:
            q = self.encode(x)
        elif not isinstance(q, DiagNormal) or q.batch_shape != (len(x),) \
                or q.event_shape != (self.latent_dim,):
            raise ValueError(f"q must be a DiagNormal of batch shape ({len(x)},) and event "
                             f"shape ({self.latent_dim},), like the encoder's; got "
                             f"{type(q).__name__} of shapes "
                             f"{getattr(q, 'batch_shape', '?')}, {getattr(q, 'event_shape', '?')}")
        z = q.rsample(k, rng)                                        # (k, B, d)
        log_px = self.observation.log_prob(x, self.decode(z))        # (k, B)
        log_w = log_px + self.prior.log_prob(z) - q.log_prob(z)      # (k, B)
        return WeightedSamples(log_w, log_px, q, z)

    #: Rows (samples x points) decoded at a time by :meth:`log_weights` without a graph: small
    #: enough for the decoder's activations to stay in cache, large enough for the matrix
    #: products to run at full speed and for the per-call overhead to vanish against them
    #: (``scratchdgm bench eval``).
    EVAL_BLOCK_ROWS = 1024

    def log_weights(self, x, k, rng):
        r"""The log importance weights alone, a Tensor of shape (k, B): the protocol the
        evaluation functions (:mod:`~scratchdgm.models.deep.evaluation`) read.

        With gradients recorded this is ``weighted_samples(x, k, rng).log_w``. Under
        :func:`scratchdgm.no_grad` (evaluation) it computes the same sums with two differences
        that matter at K = 5000 and nowhere else:

        * the samples :math:`z = \mu + \sigma \odot \epsilon` take :math:`\epsilon` from
          :meth:`~scratchdgm.distributions.DiagNormal.sample_box_muller` (the compiled
          Box--Muller sampler, seeded by one word of the generator) instead of
          ``standard_normal``: for a given generator the draws differ from
          ``weighted_samples``', the estimator is the same;
        * with the standard normal prior, the samples and
          their two log-densities :math:`\log q(z \mid x)` and :math:`\log p(z)` come from
          one pass over the draws
          (:meth:`~scratchdgm.distributions.DiagNormal.sample_box_muller_with_log_probs`),
          the same numbers up to rounding;
        * the decoder runs :attr:`EVAL_BLOCK_ROWS` rows at a time: with K = 5000 its output
          for all samples of a batch would not fit in any cache (K B x 784 logits), and every
          pass over it would run at memory speed.

        Measured with ``scratchdgm bench eval``'s protocol (K = 5000, one thread): NumPy's
        normals took about 9% of the time, the Box--Muller draws a third of that in float32;
        the one pass for the samples and both densities takes 0.55 ms per data point against
        0.92 for the separate passes, the draws included (float32).
        """
        if _ad.is_grad_enabled() or type(self).weighted_samples is not VAE.weighted_samples:
            # a subclass with its own joint (MIWAE's mask, a second stochastic layer) keeps it:
            # the blocked decoding below is the one-layer, fully observed model's
            return self.weighted_samples(x, k, rng).log_w
        x = np.asarray(x.data if isinstance(x, _ad.Tensor) else x, dtype=self.dtype)
        q = self.encode(x)
        if type(q) is DiagNormal and type(self.prior) is StandardNormalPrior:
            # the draws and both densities in one pass (the same numbers up to rounding)
            z, log_qz, log_pz = q.sample_box_muller_with_log_probs(k, rng)
        else:
            z = q.sample_box_muller(k, rng)                          # (k, B, d) ndarray
            zt = _ad.tensor(z)  # one copy; log_prob would copy an ndarray argument each time
            log_pz = self.prior.log_prob(zt).data                    # (k, B)
            log_qz = q.log_prob(zt).data                             # (k, B)
        log_px = np.empty_like(log_pz)
        step = max(1, self.EVAL_BLOCK_ROWS // x.shape[0])
        block_log_px = self._graph_free_log_px(x)
        for k0 in range(0, k, step):
            if block_log_px is not None:
                log_px[k0:k0 + step] = block_log_px(z[k0:k0 + step])
            else:
                eta = self.decode(_ad.tensor(z[k0:k0 + step]))
                log_px[k0:k0 + step] = self.observation.log_prob(x, eta).data
        return _ad.tensor(log_px + log_pz - log_qz)                  # as in weighted_samples

    def _graph_free_log_px(self, x):
        r"""For :meth:`log_weights` without a graph: a function ``z (k, B, d) -> log p(x | z)``
        of shape (k, B) on plain arrays -- the decoder's
        :meth:`~scratchdgm.nn.MLP.graph_free` and the fused Bernoulli likelihood
        (:func:`scratchdgm.autodiff.fused.bernoulli_log_prob`) -- or None where that does not
        apply (another likelihood, another decoder, data that is not binary: those take
        :meth:`decode` and the observation model, which also say what is wrong with bad data).

        The same kernels as :meth:`decode` then
        :meth:`~scratchdgm.models.deep.observation.ObservationModel.log_prob`, so the same
        numbers up to rounding; it leaves out per-call work that evaluation does not need: the
        Tensor bookkeeping of the layers, the distribution's finiteness check of every logit,
        and the pass adding the output bias (see ``MLP.forward_arrays``). Measured with
        ``scratchdgm bench eval``'s protocol, K = 5000 on one thread: 7% less time without the
        bookkeeping and checks, 2-3% less again from the bias.
        """
        if (type(self.observation) is not BernoulliObservation or type(self.decoder) is not MLP
                or not np.all((x == 0) | (x == 1))):
            return None
        backend = self.observation.backend
        decode = self.decoder.graph_free()

        def block_log_px(z):
            return _fused.bernoulli_log_prob(decode(z), x, backend=backend).data

        return block_log_px

    def batch_bound(self, x, k, rng, q=None):
        r"""The training bound of each point of a minibatch, a Tensor of shape (B,): the VAE's
        :math:`\hat{\mathcal L}_1` with ``k`` samples, the KL in closed form when ``kl`` allows
        (:func:`~scratchdgm.models.deep.bounds.elbo_analytic_kl`), else by Monte Carlo
        (:func:`~scratchdgm.models.deep.bounds.elbo_monte_carlo` of
        :func:`~scratchdgm.models.deep.bounds.kl_weighted_log_weights`), weighted by ``beta``. ``q``:
        a proposal other than the encoder's (see :meth:`weighted_samples`)."""
        s = self.weighted_samples(x, k, rng, q=q)
        if self.kl == "analytic" or (self.kl == "auto" and self.prior.has_analytic_kl):
            return _bounds.elbo_analytic_kl(s.log_px_given_z, self.prior.kl(s.q),
                                            beta=self.beta)
        return _bounds.elbo_monte_carlo(
            _bounds.kl_weighted_log_weights(s.log_w, s.log_px_given_z, self.beta))

    def objective(self, x, k=None, rng=None):
        r"""The loss of one training step: minus the mean bound over the minibatch.

        Parameters
        ----------
        x : ndarray, shape (B, p)
            A minibatch (binary for a Bernoulli likelihood).
        k : int or None
            Samples per point (default: the model's ``k``).
        rng : numpy.random.Generator

        Returns
        -------
        Tensor, shape ()
            ``loss``; a step is ``opt.zero_grad(); loss.backward(); opt.step()``.
        """
        k = self.k if k is None else check_positive_int(k, "k", "objective")
        if not isinstance(rng, np.random.Generator):
            raise TypeError("objective needs rng, a numpy.random.Generator (randomness is "
                            "explicit)")
        return -self.batch_bound(x, k, rng).mean()

    # -- the public boundary -----------------------------------------------------------------

    def check_data(self, X, where="X", *, allow_unit_interval=False):
        r"""Validate observations and return them as a C-contiguous array of the model's dtype
        (:meth:`~scratchdgm.models.deep.observation.ObservationModel.validate_data`).

        Raises
        ------
        TypeError
            Non-numeric data.
        ValueError
            Not 2-D, wrong number of columns, NaN / inf, or (Bernoulli) values other than 0/1
            (values in [0, 1] are accepted when ``allow_unit_interval``: they are binarised
            dynamically).
        """
        return self.observation.validate_data(X, where, allow_unit_interval=allow_unit_interval)

    def fit(self, X, *, epochs=100, batch_size=20, lr=1e-3, X_val=None, binarize="auto",
            checkpoint=None, resume=False, progress=True, random_state=0, val_k=None,
            callback=None, blas_threads=1, metadata=None):
        r"""Train by minibatch Adam on the model's bound; see
        :func:`scratchdgm.models.deep.training.fit` for every argument. Returns ``self``."""
        _training.fit(self, X, epochs=epochs, batch_size=batch_size, lr=lr, X_val=X_val,
            binarize=binarize, checkpoint=checkpoint, resume=resume, progress=progress,
            random_state=random_state, val_k=val_k, callback=callback,
            blas_threads=blas_threads, metadata=metadata)
        return self

    def score_samples(self, X, k=5000, random_state=None, chunk_size=50_000, *, progress=True,
                      n_jobs=None):
        r"""Importance-sampled :math:`\log \hat p_\theta(x_i)` per point with ``k`` samples,
        shape (n,), on ``n_jobs`` threads (default: every core), with a progress bar on a
        terminal when it takes more than a second; see
        :func:`scratchdgm.models.deep.evaluation.score_samples`."""
        return _evaluation.score_samples(self, X, k, random_state, chunk_size,
                                         progress=progress, n_jobs=n_jobs)

    def score(self, X, k=5000, random_state=None, chunk_size=50_000, *, progress=True,
              n_jobs=None):
        r"""Mean importance-sampled test log-likelihood, :math:`\frac1n \sum_i \log \frac1K
        \sum_k w_{ik}`, in nats per data point (higher is better); K = 5000 as in Burda et al.
        (2016), Section 5."""
        return float(np.mean(self.score_samples(X, k, random_state, chunk_size,
                                                progress=progress, n_jobs=n_jobs)))

    def bound_samples(self, X, k=None, random_state=None, *, progress=True, n_jobs=None):
        r"""One draw of :math:`\hat{\mathcal L}_K(x_i)` per point (default K: the model's
        ``k``), on ``n_jobs`` threads (default: every core); see
        :func:`scratchdgm.models.deep.evaluation.bound_samples`."""
        return _evaluation.bound_samples(self, X, self.k if k is None else k, random_state,
                                         progress=progress, n_jobs=n_jobs)

    def bound(self, X, k=None, random_state=None, *, progress=True, n_jobs=None):
        r"""Mean IWAE bound :math:`\hat{\mathcal L}_K` over the rows of ``X`` (float); in
        expectation :math:`\mathcal L_1 \le \mathcal L_5 \le \mathcal L_{50} \le \log
        p_\theta(x)` (Burda et al. 2016, Theorem 1)."""
        return float(np.mean(self.bound_samples(X, k, random_state, progress=progress,
                                                n_jobs=n_jobs)))

    def transform(self, X):
        r"""The posterior mean of each code, :math:`\mathbb E_{q_\gamma(z \mid x)}[z] =
        \mu_\gamma(x)`, shape (n, d) (the amortised approximation of :math:`\mathbb E[z \mid
        x]`)."""
        return np.array(self._encode_all(X).mu.data)

    def decode_mean(self, Z):
        r"""The mean of :math:`p_\theta(x \mid z)` for codes ``Z`` of shape (n, d), shape (n, p)
        (pixel probabilities for a Bernoulli likelihood)."""
        Z = np.asarray(Z, dtype=self.dtype)
        if Z.ndim != 2 or Z.shape[1] != self.latent_dim:
            raise ValueError(f"Z must have shape (n, {self.latent_dim}), got {Z.shape}")
        with _ad.no_grad():
            return np.array(self.observation.distribution(self.decode(_ad.tensor(Z))).mean.data)

    def reconstruct(self, X):
        r"""Auto-encode: the mean of :math:`p_\theta(x \mid z)` at the code :math:`\mu_\gamma(x)`,
        shape (n, p)."""
        return self.decode_mean(self.transform(X))

    def sample(self, n_samples=1, random_state=None, *, return_latent=False):
        r"""Draw from the model: :math:`z \sim p(z)`, then :math:`x \sim p_\theta(x \mid z)`.

        Returns
        -------
        X : ndarray, shape (n_samples, p)
        Z : ndarray, shape (n_samples, d)
            Only if ``return_latent``.
        """
        n = check_positive_int(n_samples, "n_samples", "sample")
        rng = check_random_state(random_state, "sample")
        z = self.prior.distribution().sample((n,), rng)
        with _ad.no_grad():
            x = self.observation.distribution(self.decode(_ad.tensor(z))).sample(
                random_state=rng)
        return (x, z) if return_latent else x

    def sample_means(self, n_samples=1, random_state=None, *, return_latent=False):
        r""":math:`z \sim p(z)`, then the *mean* of :math:`p_\theta(x \mid z)` instead of a draw:
        the smooth images usually shown as a VAE's samples. Same returns as :meth:`sample`."""
        n = check_positive_int(n_samples, "n_samples", "sample_means")
        rng = check_random_state(random_state, "sample_means")
        z = self.prior.distribution().sample((n,), rng)
        x = self.decode_mean(z)
        return (x, z) if return_latent else x

    def unit_activity(self, X):
        r""":math:`A_u = \mathrm{Cov}_x(\mathbb E_{q(z|x)}[z_u])`, shape (d,); see
        :func:`scratchdgm.models.deep.evaluation.unit_activity`."""
        return _evaluation.unit_activity(self, X)

    def active_units(self, X, threshold=0.01):
        r"""Number of latent units with :math:`A_u > 0.01` (Burda et al. 2016, §5.2)."""
        return _evaluation.active_units(self, X, threshold)

    # -- what scratchdgm.evaluate reads besides the log-weights ----------------------------

    def posterior_means(self, X):
        r"""``{"z": transform(X)}``: the posterior mean of the one latent layer, shape (n, d),
        for the active units of :func:`scratchdgm.evaluation.evaluate`."""
        return {"z": self.transform(X)}

    def kl_per_dimension(self, X, random_state=None):
        r"""The KL regulariser split over the latent dimensions, averaged over the data.

        Parameters
        ----------
        X : array_like, shape (n, p)
        random_state : ignored
            (Closed form.)

        Returns
        -------
        dict
            ``{"z": ndarray, shape (d,)}`` with the standard normal prior; ``{}`` with a
            Gaussian-mixture prior, which does not factorise over dimensions, so that a KL per
            dimension is not defined (:meth:`kl_total` gives its total by Monte Carlo).

        Notes
        -----
        With :math:`q_\gamma(z \mid x) = \prod_j \mathcal N(\mu_j, \sigma_j^2)` and
        :math:`p(z) = \prod_j \mathcal N(0, 1)` the KL is a sum over dimensions,

        .. math::

            \mathrm{KL}_j = \frac1n \sum_i \mathrm{KL}\big(\mathcal N(\mu_j(x_i),
            \sigma_j(x_i)^2) \,\|\, \mathcal N(0, 1)\big), \qquad
            \sum_j \mathrm{KL}_j = \frac1n \sum_i \mathrm{KL}(q_\gamma(z \mid x_i) \,\|\, p(z)),

        and a dimension with :math:`\mathrm{KL}_j \approx 0` has collapsed to the prior
        ([VAE-HVAE-Diffusion, "Strengths and weaknesses of VAEs"]).
        """
        if not self.prior.has_analytic_kl:
            return {}
        q = self._encode_all(X)
        with _ad.no_grad():
            # each dimension as a 1-D Gaussian: batch (n, d), event (1,)
            marginals = DiagNormal(q.mu.data[..., None], q.log_sigma.data[..., None],
                                   backend=self.backend)
            per = kl_divergence(marginals, StandardNormal(1, self.dtype, backend=self.backend))
        return {"z": np.asarray(per.data, dtype=np.float64).mean(axis=0)}

    def kl_total(self, X, random_state=None, k=100):
        r"""``{"z": float}``: the mean over the data of :math:`\mathrm{KL}(q_\gamma(z \mid x)
        \,\|\, p(z))` -- in closed form with the standard normal prior, else by Monte Carlo with
        ``k`` draws per point, :math:`\frac1k \sum_k [\log q_\gamma(z_k \mid x) - \log p(z_k)]`,
        :math:`z_k \sim q_\gamma(z \mid x)` (``random_state`` seeds them)."""
        q = self._encode_all(X)
        with _ad.no_grad():
            if self.prior.has_analytic_kl:
                kl = self.prior.kl(q).data
            else:
                rng = check_random_state(random_state, "kl_total")
                z = q.sample((check_positive_int(k, "k", "kl_total"),), rng)
                kl = (q.log_prob(z) - self.prior.log_prob(z)).data.mean(axis=0)
        return {"z": float(np.mean(kl))}

    def _encode_all(self, X):
        X = self.check_data(X, allow_unit_interval=True)
        with _ad.no_grad():
            return self.encode(X)

    # -- persistence -----------------------------------------------------------------------

    def config(self):
        r"""The constructor arguments that rebuild this architecture (JSON-serialisable)."""
        return {
            "class": type(self).__name__,
            "input_dim": self.input_dim,
            "latent_dim": self.latent_dim,
            "hidden": list(self.hidden),
            "decoder_hidden": list(self.decoder_hidden),
            "activation": self.activation,
            "likelihood": self.observation.config(),
            "prior": self.prior.config(),
            "k": self.k,
            "kl": self.kl,
            "beta": self.beta,
            "dtype": self.dtype.name,
        }

    def extra_repr(self):
        return (f"input_dim={self.input_dim}, latent_dim={self.latent_dim}, "
                f"hidden={list(self.hidden)}, k={self.k}, likelihood={self.observation.kind!r}, "
                f"prior={self.prior.kind!r}" + (f", beta={self.beta}" if self.beta != 1 else ""))


@_persistence.register_model
class IWAE(VAE):
    r"""Importance-weighted autoencoder: the same model as :class:`VAE`, trained on
    :math:`\mathcal L_K` (default K = 50).

    Parameters are those of :class:`VAE` (``kl`` is unused and ``beta`` must be 1:
    :math:`\mathcal L_K` has no separate KL term).

    Notes
    -----
    .. math::

        \hat{\mathcal L}_K = \frac1B \sum_i \log \frac1K \sum_{k=1}^K
        \frac{p_\theta(x_i \mid z_{ik})\, p(z_{ik})}{q_\gamma(z_{ik} \mid x_i)},

    whose gradient weighs each sample's :math:`\nabla \log w_{ik}` by its normalised weight
    (:func:`scratchdgm.models.deep.bounds.iwae_bound`).

    References
    ----------
    Burda, Grosse & Salakhutdinov (2016), ICLR, eq. 8 and 14. [Mattei-DGM, "Maximum likelihood
    for DLVM"] (the IWAE bound).
    """

    default_k = 50
    kl_weight_applies = False

    def batch_bound(self, x, k, rng, q=None):
        r""":math:`\hat{\mathcal L}_K` of each point of a minibatch, K = ``k``, shape (B,);
        ``q`` as in :meth:`VAE.weighted_samples`."""
        return _bounds.iwae_bound(self.weighted_samples(x, k, rng, q=q).log_w,
                                  backend=self.backend)
