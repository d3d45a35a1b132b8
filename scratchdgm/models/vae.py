r"""Deep latent variable models trained by amortised variational inference: the variational
autoencoder (VAE, bound :math:`\mathcal L_1`) and the importance-weighted autoencoder (IWAE,
bound :math:`\mathcal L_K`).

The model (lecture ``shared/seeds/000_dd8cf90fba7bcfac.txt``, "Deep latent variable models")

.. math::

    z \sim p(z), \qquad x \mid z \sim \Phi(x \mid f_\theta(z)),

with an MLP decoder :math:`f_\theta`, an observation model :math:`\Phi`
(:mod:`scratchdgm.models.observation`) and a prior :math:`p(z)` (:mod:`scratchdgm.models.priors`),
and the amortised proposal ("Amortised variational inference", lecture ``001``)

.. math::

    q_\gamma(z \mid x) = \mathcal N\big(z \mid \mu_\gamma(x), \mathrm{diag}\,\sigma_\gamma(x)^2
    \big),

an MLP encoder outputting :math:`(\mu_\gamma(x), \log \sigma_\gamma(x))`.

Training maximises a bound (:mod:`scratchdgm.models.bounds`) by minibatch Adam
(:mod:`scratchdgm.models.training`):

* :class:`VAE` -- :math:`\mathcal L_1` (Kingma & Welling 2014), estimated with ``k`` samples per
  point, the KL term in closed form when the prior allows it ("What about VAEs?");
* :class:`IWAE` -- :math:`\mathcal L_K` with ``K = k`` (Burda et al. 2016, eq. 8).

Both classes share every evaluation method: :meth:`VAE.bound` (:math:`\mathcal L_K` for any K),
:meth:`VAE.log_likelihood` (the K = 5000 importance-sampled estimate), :meth:`VAE.encode`,
:meth:`VAE.reconstruct`, :meth:`VAE.sample`, :meth:`VAE.active_units`, :meth:`VAE.save` /
:meth:`VAE.load`.
"""

import math

import numpy as np

from scratchdgm import autodiff as _ad
from scratchdgm.autodiff import fused as _fused
from scratchdgm.models import bounds as _bounds
from scratchdgm.models.observation import make_observation
from scratchdgm.models.priors import make_prior
from scratchdgm.nn import MLP, Module

__all__ = ["VAE", "IWAE", "load_model", "CHECKPOINT_KIND", "CHECKPOINT_VERSION"]

CHECKPOINT_KIND = "dlvm"
CHECKPOINT_VERSION = 1
_LOG_2PI = math.log(2.0 * math.pi)


def blas_threads(n=1):
    r"""Context manager limiting the BLAS thread pool to ``n`` threads (a no-op if threadpoolctl
    is missing, or ``n`` is None).

    The protocol's matrices are small (20 to 20000 rows by 100 columns): a multi-threaded BLAS
    spends more time synchronising than computing on them, and on a shared machine it can be
    several times slower than one thread (measured: 5 epochs of IWAE K=50 on digits, 2.4 s on
    one thread against 16 s with the default pool on 2 busy cores).
    """
    import contextlib

    if n is None:
        return contextlib.nullcontext()
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - a scikit-learn dependency
        return contextlib.nullcontext()
    return threadpool_limits(limits=int(n), user_api="blas")


def _positive_int(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    return int(value)


def _rng(random_state):
    if isinstance(random_state, np.random.Generator):
        return random_state
    if random_state is None or isinstance(random_state, (int, np.integer)):
        return np.random.default_rng(random_state)
    raise TypeError(f"random_state must be None, an int seed or a numpy.random.Generator, got "
                    f"{type(random_state).__name__}")


class VAE(Module):
    r"""Variational autoencoder: a DLVM with a Gaussian amortised encoder, trained on
    :math:`\mathcal L_1`.

    Parameters
    ----------
    input_dim : int
        :math:`p`, the observed dimension.
    latent_dim : int
        :math:`d \ge 1`.
    hidden : sequence of int
        Hidden-layer widths of the encoder; the decoder mirrors them (design.md §5:
        ``(100, 100)``).
    activation : {'tanh', 'relu', 'softplus', 'sigmoid'}
        Hidden activation of both networks.
    likelihood : str or observation Module
        ``'bernoulli'`` (logits), ``'gaussian'`` / ``'gaussian:fixed'`` / ``'gaussian:learned'`` /
        ``'gaussian:decoder'``, ``'student_t'``; see :func:`~scratchdgm.models.observation.
        make_observation`.
    prior : str or prior Module
        ``'normal'`` (:math:`\mathcal N(0, I_d)`), ``'gmm'`` or ``'gmm:C'`` (a learnable mixture of
        C Gaussians, trained with the rest).
    k : int
        Samples per data point of the training objective.
    kl : {'auto', 'analytic', 'mc'}
        How the VAE objective treats the KL regulariser: closed form (``'analytic'``, needs a
        Gaussian prior; ``'auto'`` picks it when available) or Monte Carlo. Ignored by IWAE.
    dtype : {numpy.float64, numpy.float32}
    random_state : None, int or numpy.random.Generator
        Initialises the weights.
    backend : {None, 'numpy', 'numba', 'cuda', 'auto'}
        This model's own kernel backend for the fused hot-path ops (None: the process default,
        :func:`scratchdgm.get_backend`, i.e. the fastest available unless set otherwise). A
        runtime setting, not part of the architecture (not saved).

    Attributes
    ----------
    encoder : MLP, sizes ``[p, *hidden, 2 d]``
        Outputs :math:`(\mu_\gamma(x), \log\sigma_\gamma(x))`: its weights are :math:`\gamma`.
    decoder : MLP, sizes ``[d, *reversed(hidden), m]``
        :math:`f_\theta`, with ``m = observation.n_outputs``: its weights are :math:`\theta`.
    observation : Module
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
        z_{ik'}) - \mathrm{KL}(q_\gamma(z \mid x_i) \,\|\, p(z)) \Big).

    References
    ----------
    Kingma & Welling (2014), *Auto-encoding variational Bayes*, ICLR, eq. 10.
    Burda, Grosse & Salakhutdinov (2016), *Importance weighted autoencoders*, ICLR (the "VAE"
    rows of Table 1: k samples, bound :math:`\mathcal L_1`).
    Lectures ``000_dd8cf90fba7bcfac.txt`` ("What about VAEs?") and ``002_f57a632ddca4a995.txt``
    ("Variational autoencoder (VAE)").
    """

    objective_name = "elbo"
    default_k = 1

    def __init__(self, input_dim, latent_dim=10, hidden=(100, 100), *, activation="tanh",
                 likelihood="bernoulli", prior="normal", k=None, kl="auto", dtype=np.float64,
                 random_state=0, backend=None):
        super().__init__()
        self.input_dim = _positive_int(input_dim, "input_dim")
        self.latent_dim = _positive_int(latent_dim, "latent_dim")
        if isinstance(hidden, (int, np.integer)):
            hidden = (hidden,)
        hidden = tuple(_positive_int(h, "each hidden size") for h in hidden)
        if not isinstance(activation, str):
            raise TypeError(f"activation must be a str such as 'tanh', got "
                            f"{type(activation).__name__}")
        self.activation = activation.lower()
        if self.activation not in ("tanh", "relu", "softplus", "sigmoid"):
            raise ValueError(f"activation must be one of 'tanh', 'relu', 'softplus', "
                             f"'sigmoid', got {activation!r}")
        self.k = _positive_int(self.default_k if k is None else k, "k")
        if kl not in ("auto", "analytic", "mc"):
            raise ValueError(f"kl must be 'auto', 'analytic' or 'mc', got {kl!r}")
        dtype = np.dtype(dtype)
        if dtype not in (np.dtype(np.float32), np.dtype(np.float64)):
            raise TypeError(f"dtype must be float32 or float64, got {dtype}")
        self.dtype = dtype
        self.hidden = hidden
        rng = _rng(random_state)
        self.observation = make_observation(likelihood, self.input_dim, dtype=dtype)
        self.prior = make_prior(prior, self.latent_dim, rng=rng, dtype=dtype)
        if kl == "analytic" and not self.prior.has_analytic_kl:
            raise ValueError(f"kl='analytic' needs a prior with a closed-form KL (the standard "
                             f"normal); the {self.prior.kind!r} prior needs kl='mc'")
        self.kl = kl
        d, p = self.latent_dim, self.input_dim
        self.encoder = MLP([p, *hidden, 2 * d], self.activation, rng=rng, dtype=dtype)
        self.decoder = MLP([d, *reversed(hidden), self.observation.n_outputs], self.activation,
                           rng=rng, dtype=dtype)
        self.history_ = None
        if backend is not None:
            from scratchdgm.backend import resolve_backend

            resolve_backend(backend)  # fail now on an unknown name
        self.backend = backend

    # -- configuration and persistence ----------------------------------------------------------

    def config(self):
        r"""Everything needed to rebuild this architecture (a JSON-serialisable dict)."""
        return {
            "class": type(self).__name__,
            "input_dim": self.input_dim,
            "latent_dim": self.latent_dim,
            "hidden": list(self.hidden),
            "activation": self.activation,
            "likelihood": self.observation.config(),
            "prior": self.prior.config(),
            "k": self.k,
            "kl": self.kl,
            "dtype": self.dtype.name,
        }

    @classmethod
    def from_config(cls, config, random_state=0):
        r"""Build an (untrained) model from :meth:`config`."""
        config = dict(config)
        name = config.pop("class", cls.__name__)
        klass = {"VAE": VAE, "IWAE": IWAE}.get(name)
        if klass is None:
            raise ValueError(f"unknown model class {name!r} in config; expected 'VAE' or 'IWAE'")
        try:
            return klass(config.pop("input_dim"), config.pop("latent_dim"),
                         tuple(config.pop("hidden")), activation=config.pop("activation"),
                         likelihood=config.pop("likelihood"), prior=config.pop("prior"),
                         k=config.pop("k"), kl=config.pop("kl"), dtype=config.pop("dtype"),
                         random_state=random_state)
        except KeyError as exc:
            raise ValueError(f"model config lacks the entry {exc}; expected the keys of "
                             f"VAE.config()") from None

    def save(self, path, metadata=None, *, extra_arrays=None):
        r"""Write the model to ``path`` (``.npz``, atomic temp+rename, no pickle).

        Parameters
        ----------
        path : str or os.PathLike
        metadata : dict or None
            Extra JSON-serialisable information, stored beside the architecture.
        extra_arrays : dict or None
            More arrays to store (the training loop adds its optimiser state here).
        """
        from scratchdgm.checkpoint import save_npz

        arrays = {f"model.{k}": v for k, v in self.state_dict().items()}
        arrays.update(extra_arrays or {})
        meta = {"config": self.config()}
        meta.update(metadata or {})
        save_npz(path, arrays, kind=CHECKPOINT_KIND, format_version=CHECKPOINT_VERSION,
                 metadata=meta)

    @classmethod
    def load(cls, path):
        r"""Rebuild a model (VAE or IWAE, whichever was saved) from a file written by
        :meth:`save` or by training checkpoints.

        Raises
        ------
        ValueError
            Missing, truncated or foreign file; or arrays that do not fit the stored
            architecture.
        """
        return load_model(path)

    def load_weights(self, path):
        r"""Load the weights saved at ``path`` into this model, in place, after checking that
        the file holds the same architecture (nothing is changed otherwise). Returns the
        metadata."""
        from scratchdgm.checkpoint import load_npz

        arrays, meta = load_npz(path, kind=CHECKPOINT_KIND, format_version=CHECKPOINT_VERSION)
        self.check_same_architecture(meta.get("config"), path)
        self.load_state_dict(_model_arrays(arrays, path))
        return meta

    def check_same_architecture(self, config, path="the checkpoint"):
        r"""Raise ValueError if ``config`` (from a checkpoint) describes another architecture."""
        mine = self.config()
        if not isinstance(config, dict):
            raise ValueError(f"{path}: no model config in the checkpoint; expected a file "
                             f"written by VAE.save")
        diffs = [f"{key}: checkpoint {config.get(key)!r} vs model {mine[key]!r}"
                 for key in mine if config.get(key) != mine[key]]
        if diffs:
            raise ValueError(f"{path} holds a different architecture ({'; '.join(diffs)}); "
                             f"expected the same config as this model")

    # -- the networks ---------------------------------------------------------------------------

    def _backend_ctx(self):
        import contextlib

        if self.backend is None:
            return contextlib.nullcontext()
        from scratchdgm.backend import use_backend

        return use_backend(self.backend)

    def _mlp(self, mlp, x):
        # Hot path: each layer is one fused linear(+activation) op on the selected backend
        # (numba by default when available). Activations the kernels do not fuse run through
        # the plain Module forward, which computes the same function.
        if self.activation not in _fused.ACTIVATIONS:
            return mlp(x)
        last = len(mlp.layers) - 1
        for i, layer in enumerate(mlp.layers):
            x = _fused.linear(x, layer.weight, layer.bias, self.activation if i < last else None)
        return x

    def _encode(self, x):
        r"""Tensors :math:`(\mu_\gamma(x), \log\sigma_\gamma(x))`, each of shape (B, d)."""
        h = self._mlp(self.encoder, x)
        d = self.latent_dim
        return h[:, :d], h[:, d:]

    def _decode(self, z):
        r"""Decoder outputs :math:`\eta = f_\theta(z)`, shape (..., m), for codes (..., d)."""
        lead = z.shape[:-1]
        flat = z.reshape(-1, self.latent_dim) if len(lead) != 1 else z
        eta = self._mlp(self.decoder, flat)
        return eta.reshape(*lead, eta.shape[-1]) if len(lead) != 1 else eta

    def log_weights(self, x, k, rng):
        r"""Log importance weights and their parts for a minibatch (a differentiable graph).

        Parameters
        ----------
        x : ndarray, shape (B, p)
            Observations (already validated and, for Bernoulli, binary).
        k : int
            Samples per observation.
        rng : numpy.random.Generator
            Source of :math:`\varepsilon`.

        Returns
        -------
        log_w : Tensor, shape (k, B)
            :math:`\log p_\theta(x_i \mid z_{ik}) + \log p(z_{ik}) - \log q_\gamma(z_{ik} \mid
            x_i)`.
        log_px : Tensor, shape (k, B)
            :math:`\log p_\theta(x_i \mid z_{ik})`.
        mu, log_sigma : Tensor, shape (B, d)
            The encoder outputs.

        Notes
        -----
        With :math:`z = \mu + \sigma \odot \varepsilon`,

        .. math::

            \log q_\gamma(z \mid x) = -\frac12 \lVert \varepsilon \rVert^2 - \sum_j \log\sigma_j
            - \frac d2 \log 2\pi

        holds identically in :math:`(\mu, \sigma)` for a fixed :math:`\varepsilon`, so it is
        the same function (with the same gradient, score term included) as the Gaussian
        log-density evaluated at :math:`z`, at a fraction of the cost.
        """
        with self._backend_ctx():
            return self._log_weights(x, k, rng)

    def _log_weights(self, x, k, rng):
        x = _ad.tensor(np.asarray(x, dtype=self.dtype)) if not isinstance(x, _ad.Tensor) else x
        mu, log_sigma = self._encode(x)
        eps = rng.standard_normal((k, *mu.shape)).astype(self.dtype, copy=False)
        z = mu + log_sigma.exp() * eps                              # (k, B, d)
        eta = self._decode(z)                                       # (k, B, m)
        log_px = self.observation.log_prob(x.data, eta)             # (k, B)
        log_pz = self.prior.log_prob(z)                             # (k, B)
        log_qz = (-0.5 * np.sum(eps * eps, axis=-1) - 0.5 * self.latent_dim * _LOG_2PI) \
            - log_sigma.sum(axis=-1)                                # (k, B)
        return log_px + log_pz - log_qz, log_px, mu, log_sigma

    def batch_bound(self, x, k, rng):
        r"""The training bound of each point of a minibatch, a Tensor of shape (B,).

        VAE: :math:`\hat{\mathcal L}_1` with k samples (closed-form KL when ``kl`` allows);
        IWAE: :math:`\hat{\mathcal L}_K`, ``K = k``.
        """
        log_w, log_px, mu, log_sigma = self.log_weights(x, k, rng)
        if self.objective_name == "iwae":
            return _bounds.iwae_bound(log_w)
        if self._use_analytic_kl():
            return _bounds.elbo_analytic_kl(log_px, self.prior.kl_from_diag_normal(mu, log_sigma))
        return _bounds.elbo_monte_carlo(log_w)

    def _use_analytic_kl(self):
        return self.kl == "analytic" or (self.kl == "auto" and self.prior.has_analytic_kl)

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
            ``loss``; a step is ``loss.backward(); opt.step()``.
        """
        k = self.k if k is None else _positive_int(k, "k")
        if rng is None:
            raise TypeError("objective needs rng, a numpy.random.Generator (randomness is "
                            "explicit)")
        return -self.batch_bound(x, k, rng).mean()

    # -- validation -----------------------------------------------------------------------------

    def check_data(self, X, where="X", *, allow_unit_interval=False):
        r"""Validate observations and return them as a C-contiguous array of the model's dtype.

        Raises
        ------
        TypeError
            Non-numeric data.
        ValueError
            Not 2-D, wrong number of columns, NaN / inf, or (Bernoulli) values other than 0/1
            (values in [0, 1] are accepted when ``allow_unit_interval``: they are binarised
            dynamically).
        """
        if isinstance(X, _ad.Tensor):
            X = X.data
        try:
            arr = np.asarray(X)
        except Exception as exc:  # pragma: no cover - exotic inputs
            raise TypeError(f"{where} must be array-like, got {type(X).__name__}") from exc
        if arr.dtype.kind not in "biuf":
            raise TypeError(f"{where} must be a numeric array of shape (n_samples, "
                            f"{self.input_dim}), got dtype {arr.dtype}")
        if arr.ndim != 2:
            raise ValueError(f"{where} must be 2-D, shape (n_samples, {self.input_dim}); got "
                             f"shape {arr.shape}")
        if arr.shape[1] != self.input_dim:
            raise ValueError(f"{where} has {arr.shape[1]} columns but the model was built with "
                             f"input_dim = {self.input_dim}")
        if arr.shape[0] == 0:
            raise ValueError(f"{where} has no rows; expected at least one sample")
        arr = np.ascontiguousarray(arr, dtype=self.dtype)
        if not np.all(np.isfinite(arr)):
            bad = tuple(int(v) for v in np.argwhere(~np.isfinite(arr))[0])
            raise ValueError(f"{where} contains NaN or inf (e.g. {where}[{bad}] = {arr[bad]}); "
                             f"expected finite values")
        if self.observation.kind == "bernoulli":
            if allow_unit_interval:
                if arr.min() < 0 or arr.max() > 1:
                    raise ValueError(f"{where} has values outside [0, 1] (min {arr.min():g}, "
                                     f"max {arr.max():g}); a Bernoulli likelihood needs binary "
                                     f"data, or intensities in [0, 1] to binarise dynamically")
            else:
                self.observation.check_data(arr, where)
        return arr

    def _check_k(self, k, name="k"):
        return _positive_int(k, name)

    # -- evaluation -----------------------------------------------------------------------------

    def bound_samples(self, X, k=None, random_state=None, batch_size=None):
        r"""One draw of :math:`\hat{\mathcal L}_K(x_i)` per data point, an ndarray of shape (n,).

        The IWAE bound with ``K = k`` (default: the model's ``k``), whatever the class:
        :math:`\mathcal L_1` is the VAE bound in its Monte Carlo form.
        """
        X = self.check_data(X)
        k = self.k if k is None else self._check_k(k)
        rng = _rng(random_state)
        if batch_size is None:
            batch_size = max(1, 20_000 // k)
        out = np.empty(len(X))
        with _ad.no_grad(), blas_threads(1):
            for s in range(0, len(X), batch_size):
                log_w = self.log_weights(X[s:s + batch_size], k, rng)[0]
                out[s:s + batch_size] = _bounds.log_mean_exp(log_w, axis=0).data
        return out

    def bound(self, X, k=None, random_state=None):
        r"""Mean IWAE bound :math:`\hat{\mathcal L}_K` over the rows of ``X`` (float).

        Parameters
        ----------
        X : ndarray, shape (n, p)
        k : int or None
            :math:`K \ge 1` (default: the model's training ``k``).
        random_state : None, int or Generator

        Notes
        -----
        .. math::

            \hat{\mathcal L}_K = \frac1n \sum_i \log \frac1K \sum_k
            \frac{p_\theta(x_i \mid z_{ik}) p(z_{ik})}{q_\gamma(z_{ik} \mid x_i)}.

        In expectation :math:`\mathcal L_1 \le \mathcal L_5 \le \mathcal L_{50} \le \log
        p_\theta(x)` (Burda et al. 2016, Theorem 1).
        """
        return float(np.mean(self.bound_samples(X, k, random_state)))

    def score_samples(self, X, k=5000, random_state=None, chunk_size=50_000):
        r"""Importance-sampled :math:`\log \hat p_\theta(x_i)` per point, shape (n,); see
        :meth:`log_likelihood`."""
        X = self.check_data(X)
        k = self._check_k(k)
        rng = _rng(random_state)

        def log_weights_fn(idx, kc):
            return self.log_weights(X[idx], kc, rng)[0].data

        with _ad.no_grad(), blas_threads(1):
            return _bounds.importance_sampled_log_likelihood(log_weights_fn, len(X), k,
                                                             chunk_size=chunk_size)

    def log_likelihood(self, X, k=5000, random_state=None, chunk_size=50_000):
        r"""Mean importance-sampled test log-likelihood, :math:`\frac1n \sum_i \log \frac1K
        \sum_k w_{ik}` with K = 5000 (Burda et al. 2016, Section 5), in bounded memory.

        Parameters
        ----------
        X : ndarray, shape (n, p)
        k : int
            Importance samples per point.
        random_state : None, int or Generator
        chunk_size : int
            At most about this many (sample, point) pairs are in memory at once.

        Returns
        -------
        float
            In nats per data point (higher is better).
        """
        return float(np.mean(self.score_samples(X, k, random_state, chunk_size)))

    def encode(self, X, return_log_sigma=False):
        r"""The encoder mean :math:`\mu_\gamma(x)`, shape (n, d) (and :math:`\log\sigma_\gamma`
        if asked): the code of each point, the mean of :math:`q_\gamma(z \mid x)`."""
        X = self.check_data(X, allow_unit_interval=True)
        with _ad.no_grad(), self._backend_ctx():
            mu, log_sigma = self._encode(_ad.tensor(X))
        if return_log_sigma:
            return np.array(mu.data), np.array(log_sigma.data)
        return np.array(mu.data)

    def decode(self, Z):
        r"""Mean of :math:`p_\theta(x \mid z)` for codes ``Z`` of shape (n, d), shape (n, p)."""
        Z = np.asarray(Z, dtype=self.dtype)
        if Z.ndim != 2 or Z.shape[1] != self.latent_dim:
            raise ValueError(f"Z must have shape (n, {self.latent_dim}), got {Z.shape}")
        with _ad.no_grad(), self._backend_ctx():
            return self.observation.mean(self._decode(_ad.tensor(Z)))

    def reconstruct(self, X):
        r"""Auto-encode: the observation mean at the code :math:`\mu_\gamma(x)`, shape (n, p)
        (pixel probabilities for a Bernoulli likelihood)."""
        return self.decode(self.encode(X))

    def sample(self, n, random_state=None, *, mean=True, return_latent=False):
        r"""Generate: :math:`z \sim p(z)`, then the mean of :math:`p_\theta(x \mid z)` (or a draw
        from it if ``mean=False``).

        Returns
        -------
        X : ndarray, shape (n, p)
        Z : ndarray, shape (n, d)
            Only if ``return_latent``.
        """
        n = _positive_int(n, "n")
        rng = _rng(random_state)
        z = self.prior.sample(n, rng)
        with _ad.no_grad(), self._backend_ctx():
            eta = self._decode(_ad.tensor(z))
            x = self.observation.mean(eta) if mean else self.observation.sample(eta, rng)
        return (x, z) if return_latent else x

    def unit_activity(self, X):
        r"""Variance over the data of each coordinate of the encoder mean,
        :math:`A_u = \mathrm{Cov}_x(\mathbb E_{q(z|x)}[z_u])`, shape (d,)."""
        return np.var(self.encode(X), axis=0)

    def active_units(self, X, threshold=0.01):
        r"""Number of active latent units, :math:`\#\{u : A_u > 0.01\}` (Burda et al. 2016,
        Section 5.2, eq. 15)."""
        return int(np.sum(self.unit_activity(X) > threshold))

    # -- training -------------------------------------------------------------------------------

    def fit(self, X, *, epochs=100, batch_size=20, lr=1e-3, X_val=None, binarize="auto",
            checkpoint=None, resume=False, progress=True, random_state=0, val_k=None,
            callback=None, blas_threads=1):
        r"""Train by minibatch Adam on the model's bound; see
        :func:`scratchdgm.models.training.fit` for every argument. Returns ``self``."""
        from scratchdgm.models.training import fit

        # the whole loop on this model's backend, so that the optimiser's update follows it too
        with self._backend_ctx():
            fit(self, X, epochs=epochs, batch_size=batch_size, lr=lr, X_val=X_val,
                binarize=binarize, checkpoint=checkpoint, resume=resume, progress=progress,
                random_state=random_state, val_k=val_k, callback=callback,
                blas_threads=blas_threads)
        return self

    def extra_repr(self):
        return (f"input_dim={self.input_dim}, latent_dim={self.latent_dim}, "
                f"hidden={list(self.hidden)}, k={self.k}, likelihood={self.observation.kind!r}, "
                f"prior={self.prior.kind!r}")


class IWAE(VAE):
    r"""Importance-weighted autoencoder: the same model as :class:`VAE`, trained on
    :math:`\mathcal L_K` (default K = 50).

    Parameters are those of :class:`VAE` (``kl`` is unused: :math:`\mathcal L_K` has no
    closed-form part).

    Notes
    -----
    .. math::

        \hat{\mathcal L}_K = \frac1B \sum_i \log \frac1K \sum_{k=1}^K
        \frac{p_\theta(x_i \mid z_{ik})\, p(z_{ik})}{q_\gamma(z_{ik} \mid x_i)},

    whose gradient weighs each sample's :math:`\nabla \log w_{ik}` by its normalised weight
    (:func:`scratchdgm.models.bounds.iwae_bound`).

    References
    ----------
    Burda, Grosse & Salakhutdinov (2016), ICLR, eq. 8 and 14. Lecture
    ``000_dd8cf90fba7bcfac.txt``, "Maximum likelihood for DLVM" (the IWAE bound).
    """

    objective_name = "iwae"
    default_k = 50


def _model_arrays(arrays, path):
    out = {k[len("model."):]: v for k, v in arrays.items() if k.startswith("model.")}
    if not out:
        raise ValueError(f"{path} holds no model weights (no 'model.*' arrays)")
    return out


def load_model(path):
    r"""Rebuild the :class:`VAE` or :class:`IWAE` saved at ``path``.

    Returns
    -------
    model : VAE or IWAE
        With the saved weights; ``model.checkpoint_metadata_`` holds the file's metadata.
    """
    from scratchdgm.checkpoint import load_npz

    arrays, meta = load_npz(path, kind=CHECKPOINT_KIND, format_version=CHECKPOINT_VERSION)
    config = meta.get("config")
    if not isinstance(config, dict):
        raise ValueError(f"{path}: checkpoint has no model config; expected a file written by "
                         f"VAE.save")
    model = VAE.from_config(config)
    try:
        model.load_state_dict(_model_arrays(arrays, path))
    except ValueError as exc:
        raise ValueError(f"{path}: weights do not fit the stored architecture: {exc}") from None
    model.checkpoint_metadata_ = meta
    history = meta.get("training", {}).get("history")
    if history is not None:
        model.history_ = history
    return model
