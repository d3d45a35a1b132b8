r"""MIWAE: a deep latent variable model trained on data with missing entries, and the imputation
of those entries by importance sampling (Mattei & Frellsen, ICML 2019).

The model is the IWAE's, :math:`z \sim p(z)`, :math:`x \mid z \sim \prod_j \Phi(x_j \mid
f_\theta(z)_j)`; what changes is that each data point :math:`x_i` arrives with a mask
:math:`m_i \in \{0, 1\}^p` (1 where observed, here: where the entry is not NaN), split into
:math:`x_i^{\mathrm o}` (observed entries) and :math:`x_i^{\mathrm m}` (missing ones). Missing
completely at random, the missing entries can be integrated out of the likelihood, and because
the observation model factorises over entries that integral is free:

.. math::

    p_\theta(x^{\mathrm o} \mid z) = \prod_{j : m_j = 1} \Phi(x_j \mid f_\theta(z)_j).

Training maximises the *MIWAE bound*, the IWAE bound of the observed part, with an encoder that
reads the zero-imputed data :math:`\iota(x) = m \odot x` (missing entries set to 0):

.. math::

    \mathcal L_K(\theta, \gamma) = \sum_{i=1}^n \mathbb E_{z_{i1}, \dots, z_{iK} \sim
    q_\gamma(z \mid x_i^{\mathrm o})} \Big[ \log \frac1K \sum_{k=1}^K
    \frac{p_\theta(x_i^{\mathrm o} \mid z_{ik})\, p(z_{ik})}{q_\gamma(z_{ik} \mid
    x_i^{\mathrm o})} \Big] \;\le\; \sum_i \log p_\theta(x_i^{\mathrm o}),

with :math:`q_\gamma(z \mid x^{\mathrm o}) = \mathcal N(\mu_\gamma(\iota(x)),
\mathrm{diag}\,\sigma_\gamma(\iota(x))^2)`. It costs what the IWAE bound costs: the mask only
removes terms.

Imputation uses the same importance weights :math:`w_k = p_\theta(x^{\mathrm o} \mid z_k)
p(z_k) / q_\gamma(z_k \mid x^{\mathrm o})`, self-normalised, :math:`\tilde w_k = w_k /
\sum_l w_l` (:func:`self_normalised_weights`):

* single imputation (:meth:`MIWAE.transform`), the conditional mean by self-normalised importance
  sampling, :math:`\mathbb E[x^{\mathrm m} \mid x^{\mathrm o}] \approx \sum_k \tilde w_k\,
  \mathbb E[x^{\mathrm m} \mid z_k]`;
* multiple imputation (:meth:`MIWAE.impute`), draws from :math:`p_\theta(x^{\mathrm m} \mid
  x^{\mathrm o})` by sampling importance resampling: pick :math:`z_k` with probability
  :math:`\tilde w_k` (:func:`resample_indices`), then draw :math:`x^{\mathrm m} \sim
  p_\theta(x^{\mathrm m} \mid z_k)`.

Both run over chunks of rows and of samples, so memory stays bounded whatever K and n.

Lecture: [Mattei-DGM, "DLVM for missing data imputation (Mattei & Frellsen, ICML'19)"] in
``docs/lectures.md`` (the deck shows the result; the bound is derived here as above), and
[Mattei-DGM, "Maximum likelihood for DLVMs via importance sampling"] (the importance weights).

References
----------
Mattei & Frellsen (2019), *MIWAE: Deep generative modelling and imputation of incomplete data
sets*, ICML: the MIWAE bound of the observed likelihood, single imputation by self-normalised
importance sampling, multiple imputation by sampling importance resampling.
Burda, Grosse & Salakhutdinov (2016), *Importance weighted autoencoders*, ICLR, eq. 8.
Mattei & Frellsen (2018), *Leveraging the exact likelihood of deep latent variable models*,
NeurIPS (unbounded likelihoods of continuous DLVMs, hence the scale floor).
Rubin (1976), *Inference and missing data*, Biometrika (missing at random).
"""

import numpy as np

from scratchdgm import autodiff as _ad
from scratchdgm.models.deep import persistence as _persistence
from scratchdgm.models.deep import training as _training
from scratchdgm.models.deep.observation import StudentTObservation
from scratchdgm.models.deep.vae import IWAE, WeightedSamples
from scratchdgm.numerics import logsumexp
from scratchdgm.progress import progress
from scratchdgm.validation import check_mask, check_positive_int, check_random_state

__all__ = ["MIWAE", "self_normalised_weights", "resample_indices", "STUDENT_T_MIN_DF",
           "STUDENT_T_MIN_SCALE"]

#: the floor of the Student's t degrees of freedom, :math:`\nu \ge 3` (see :class:`MIWAE`)
STUDENT_T_MIN_DF = 3.0
#: the floor of the Student's t scale, :math:`s \ge 10^{-3}` (see :class:`MIWAE`)
STUDENT_T_MIN_SCALE = 1e-3


def self_normalised_weights(log_w):
    r"""Self-normalised importance weights :math:`\tilde w_k = w_k / \sum_l w_l` from
    log-weights.

    Parameters
    ----------
    log_w : ndarray, shape (K, B)
        :math:`\log w_{kb}`, K samples for each of B points.

    Returns
    -------
    ndarray, shape (K, B)
        Non-negative, each column summing to 1.

    Notes
    -----
    .. math::

        \tilde w_k = \exp\Big(\log w_k - \log \sum_{l=1}^K w_l\Big),

    with the log-sum-exp of :func:`scratchdgm.numerics.logsumexp`, so no weight overflows
    however large the log-weights (hundreds of nats for 64 pixels).
    """
    # BEGIN EXERCISE 15: the softmax over the K samples (axis 0), stable at log-weights of +-1000
    log_w = np.asarray(log_w, dtype=np.float64)
    return np.exp(log_w - logsumexp(log_w, axis=0, keepdims=True))
    # END EXERCISE 15


def resample_indices(w, n_draws, rng):
    r"""Sampling importance resampling: for each of B points, ``n_draws`` indices
    :math:`k \in \{0, \dots, K-1\}`, each drawn independently with probability
    :math:`\tilde w_k`.

    Parameters
    ----------
    w : ndarray, shape (K, B)
        Non-negative weights of each column's K samples (normally
        :func:`self_normalised_weights`; a column need not sum to exactly 1: it is normalised).
    n_draws : int
        Indices to draw per point.
    rng : numpy.random.Generator
        The only source of randomness.

    Returns
    -------
    ndarray of int, shape (n_draws, B)
        Entry (r, b) is the sample picked for point b in draw r; never one of weight 0.

    Notes
    -----
    By inversion of each column's cumulative distribution: with
    :math:`F_k = \sum_{l \le k} \tilde w_l` and :math:`u \sim \mathcal U(0, F_{K-1})`, the
    index is the smallest k with :math:`F_k > u`, so :math:`P(k) = F_k - F_{k-1} = \tilde w_k`
    (Rubin 1987; Mattei & Frellsen 2019, multiple imputation). The picked codes :math:`z_k`
    follow :math:`p_\theta(z \mid x^{\mathrm o})` as K grows.
    """
    # BEGIN EXERCISE 15: invert each column's cumulative weights at uniform draws from rng
    w = np.asarray(w, dtype=np.float64)
    cdf = np.cumsum(w, axis=0)                                          # (K, B)
    u = rng.random((n_draws, w.shape[1])) * cdf[-1]                     # (n_draws, B)
    picks = np.stack([np.searchsorted(cdf[:, b], u[:, b], side="right")
                      for b in range(w.shape[1])], axis=1)
    return np.minimum(picks, len(w) - 1)  # u rounded up to cdf[-1]: the last sample
    # END EXERCISE 15


def _chunks(total, size):
    """Sizes of consecutive chunks of at most ``size`` that add up to ``total``."""
    return [min(size, total - start) for start in range(0, total, size)]


@_persistence.register_model
class MIWAE(IWAE):
    r"""Missing-data importance-weighted autoencoder: trains on data with NaN entries and imputes
    them (Mattei & Frellsen 2019).

    A scikit-learn-shaped imputer: ``MIWAE(p).fit(X_with_nan)`` trains on the observed entries,
    :meth:`transform` returns ``X`` with its missing entries replaced by their conditional mean
    (so it sits in a :class:`sklearn.pipeline.Pipeline` like
    :class:`sklearn.impute.IterativeImputer`), :meth:`impute` draws multiple imputations, and
    :meth:`score_samples` is the importance-sampled log-likelihood of the observed part,
    :math:`\log p_\theta(x^{\mathrm o})`.

    Parameters
    ----------
    input_dim : int
        :math:`p`, the number of columns.
    latent_dim : int
        :math:`d`.
    hidden : sequence of int
        Hidden widths of the encoder; the decoder mirrors them.
    activation : {'tanh', 'relu', 'softplus', 'sigmoid'}
    likelihood : str or ObservationModel
        Continuous data: ``'gaussian'`` (default: one learned standard deviation per column,
        shared by all rows; or any Gaussian spec of
        :func:`~scratchdgm.models.deep.observation.make_observation`) or ``'student_t'``
        (decoder-output location, scale and degrees of freedom, with the floors
        :data:`STUDENT_T_MIN_DF` and :data:`STUDENT_T_MIN_SCALE`). Binary data:
        ``'bernoulli'``. See Notes for the choice.
    prior : str or prior Module
        As for :class:`~scratchdgm.VAE`.
    k : int
        K, importance samples per point of the training bound (default 20).
    dtype : {numpy.float64, numpy.float32}
    random_state : None, int or numpy.random.Generator
        Initialises the weights.
    backend : {None, 'numpy', 'numba', 'cuda', 'auto'}

    Notes
    -----
    The training objective, for a minibatch with masks :math:`m_i` and zero-imputed encoder
    inputs :math:`\iota(x_i) = m_i \odot x_i`:

    .. math::

        \hat{\mathcal L}_K = \frac1B \sum_{i=1}^B \log \frac1K \sum_{k=1}^K
        \frac{\prod_{j: m_{ij}=1} \Phi(x_{ij} \mid f_\theta(z_{ik})_j)\; p(z_{ik})}
        {q_\gamma(z_{ik} \mid \iota(x_i))}, \qquad z_{ik} = \mu_\gamma(\iota(x_i)) +
        \sigma_\gamma(\iota(x_i)) \odot \varepsilon_{ik}.

    The Gaussian default, :math:`x_j \mid z \sim \mathcal N(\mu_\theta(z)_j, \sigma_j^2)`
    with one learned :math:`\sigma_j` per column, cannot make its density spike on a single
    point (:math:`\sigma_j` is shared by every row), so it needs no floor.

    The Student's t observation model (the choice of Mattei & Frellsen 2019 for continuous
    data) has decoder-output location :math:`\mu`, scale :math:`s = 10^{-3} +
    \mathrm{softplus}(\cdot)` and degrees of freedom :math:`\nu = 3 + \mathrm{softplus}(\cdot)`.
    Both floors are needed, for different reasons:

    * :math:`\nu \ge 3`: single imputation is the conditional mean, :math:`\sum_k \tilde w_k
      \mu(z_k)`, and a t distribution has a mean only for :math:`\nu > 1` and a variance only
      for :math:`\nu > 2`; with :math:`\nu \ge 3` both exist with room to spare, so the
      imputation targets a finite mean with a finite expected squared error (a model free to
      send :math:`\nu \to 0` could explain any value as an outlier and impute nothing useful).
    * :math:`s \ge 10^{-3}`: a continuous DLVM whose scale can shrink to 0 at a training point
      has an unbounded likelihood (Mattei & Frellsen 2018): the floor keeps the maximum
      likelihood problem well posed. On standardised data :math:`10^{-3}` is a thousandth of a
      column's spread, far below any scale the data supports.

    Which to use, as measured (``docs/miwae.md``, 50% MCAR, 5 seeds): on iris the two tie
    (imputation MSE 0.367 and 0.369), the Gaussian imputes breast cancer (0.256 against 0.277)
    and the digits (0.516 against 0.848) better. On the digits, whose standardised grey
    levels take a few values, the Student's t's scale shrinks towards its floor around those
    values: the bound keeps rising while the imputations get worse (density spikes on the
    atoms of discrete data; Theis, van den Oord & Bethge 2016 on continuous densities for
    discrete data). The default is the Gaussian, best or tied for best on every table.

    Missing values are NaN, and NaN only (no other marker is read). A row with every entry
    missing, or (when fitting) a column with every entry missing, is refused: neither has
    anything to learn or to condition on.

    References
    ----------
    Mattei & Frellsen (2019), ICML (the MIWAE bound; single and multiple imputation).
    [Mattei-DGM, "DLVM for missing data imputation (Mattei & Frellsen, ICML'19)"].
    """

    default_k = 20

    def __init__(self, input_dim, latent_dim=10, hidden=(128, 128), *, activation="tanh",
                 likelihood="gaussian", prior="normal", k=None, dtype=np.float64,
                 random_state=0, backend=None):
        # the constructor arguments as given: get_params() returns them (scikit-learn's clone)
        params = dict(input_dim=input_dim, latent_dim=latent_dim, hidden=hidden,
                      activation=activation, likelihood=likelihood, prior=prior, k=k,
                      dtype=dtype, random_state=random_state, backend=backend)
        if isinstance(likelihood, str) and likelihood.lower() in ("student_t", "student", "t"):
            likelihood = StudentTObservation(check_positive_int(input_dim, "input_dim", "MIWAE"),
                                             min_scale=STUDENT_T_MIN_SCALE,
                                             min_df=STUDENT_T_MIN_DF, dtype=dtype,
                                             backend=backend)
        super().__init__(input_dim, latent_dim, hidden, activation=activation,
                         likelihood=likelihood, prior=prior, k=k, dtype=dtype,
                         random_state=random_state, backend=backend)
        self._init_params = params

    # -- the model with a mask --------------------------------------------------------------

    def _forward(self, x, k, rng, observed=None):
        # one pass: q(z | x_obs), K codes, the decoder outputs and the log-weights
        x = np.asarray(x.data if isinstance(x, _ad.Tensor) else x, dtype=self.dtype)
        observed = (~np.isnan(x) if observed is None
                    else check_mask(observed, x.shape, "the observed mask", "observed", "MIWAE"))
        x0 = np.where(observed, x, 0.0)                              # iota(x): zero imputation
        q = self.encode(x0)
        z = q.rsample(k, rng)                                        # (k, B, d)
        eta = self.decode(z)                                         # (k, B, m)
        log_px_obs = self.observation.log_prob(x0, eta, mask=observed)
        log_w = log_px_obs + self.prior.log_prob(z) - q.log_prob(z)  # (k, B)
        return WeightedSamples(log_w, log_px_obs, q, z), eta

    def weighted_samples(self, x, k, rng, observed=None, q=None):
        r"""K reparametrised samples per point and their log-weights, from the observed entries
        only (differentiable).

        Parameters
        ----------
        x : ndarray, shape (B, p)
            Observations, NaN where missing.
        k : int
        rng : numpy.random.Generator
        observed : ndarray of bool, shape (B, p), optional
            True where observed (default: where ``x`` is not NaN); entries it marks missing are
            ignored whatever their value.
        q : None
            The VAE's argument for another proposal; MIWAE's proposal reads the zero-imputed
            data with its mask, so only its own (None) is accepted.

        Returns
        -------
        WeightedSamples
            ``log_w`` (k, B), ``log_px_given_z`` = :math:`\log p_\theta(x^{\mathrm o} \mid z)`
            (k, B), ``q`` and ``z`` (k, B, d).

        Notes
        -----
        .. math::

            \log w_{ik} = \sum_{j : m_{ij} = 1} \log \Phi(x_{ij} \mid f_\theta(z_{ik})_j)
            + \log p(z_{ik}) - \log q_\gamma(z_{ik} \mid \iota(x_i)).
        """
        if q is not None:
            raise ValueError("MIWAE.weighted_samples: only the encoder's proposal q(z | x_obs) "
                             "is supported (q must be None)")
        return self._forward(x, k, rng, observed)[0]

    # -- the public boundary ----------------------------------------------------------------

    def check_data(self, X, where="X", *, allow_unit_interval=False):
        r"""Validate data with missing entries (NaN) and return it as a C-contiguous array of
        the model's dtype, NaN kept.

        Raises
        ------
        TypeError
            Non-numeric data (NaN is the only missing marker: ``None`` or strings make an
            object array, refused).
        ValueError
            Not 2-D, wrong number of columns, an infinite value, a row with every entry missing,
            or (Bernoulli) observed values other than 0/1 (or outside [0, 1] when
            ``allow_unit_interval``).
        """
        arr = self.observation.validate_data(X, where, allow_unit_interval=allow_unit_interval,
                                             allow_missing=True)
        observed = ~np.isnan(arr)
        empty = np.flatnonzero(~observed.any(axis=1))
        if empty.size:
            raise ValueError(f"{where} has {empty.size} row(s) with every entry missing (e.g. row "
                             f"{empty[0]}); each row needs at least one observed value to "
                             f"condition on (drop such rows)")
        return arr

    def check_training_data(self, X, where="X"):
        r""":meth:`check_data` for training data: also refuses a column with every entry
        missing (nothing can be learned about it), and accepts intensities in [0, 1] for a
        Bernoulli likelihood (binarised dynamically)."""
        X = self.check_data(X, where, allow_unit_interval=True)
        empty = np.flatnonzero(np.isnan(X).all(axis=0))
        if empty.size:
            raise ValueError(f"{where} has {empty.size} column(s) with every entry missing "
                             f"(e.g. column {empty[0]}); nothing can be learned about them: "
                             f"drop them before fitting")
        return X

    def fit(self, X, y=None, *, epochs=100, batch_size=64, lr=1e-3, X_val=None,
            binarize="auto", checkpoint=None, resume=False, progress=True, random_state=0,
            val_k=None, callback=None, blas_threads=1):
        r"""Train on data whose missing entries are NaN, by minibatch Adam on the MIWAE bound.

        Parameters
        ----------
        X : array_like, shape (n, p)
            Training data, NaN where missing.
        y : ignored
            Accepted so that the model fits in a scikit-learn ``Pipeline``.
        epochs, batch_size, lr, X_val, binarize, checkpoint, resume, progress, random_state,
        val_k, callback, blas_threads
            As for :func:`scratchdgm.models.deep.training.fit` (``X_val`` may hold NaN too).

        Returns
        -------
        self
        """
        X = self.check_training_data(X, "X")
        _training.fit(self, X, epochs=epochs, batch_size=batch_size, lr=lr, X_val=X_val,
                      binarize=binarize, checkpoint=checkpoint, resume=resume,
                      progress=progress, random_state=random_state, val_k=val_k,
                      callback=callback, blas_threads=blas_threads)
        return self

    def fit_transform(self, X, y=None, **fit_params):
        r"""``fit(X, **fit_params)`` then ``transform(X)``: the completed training data."""
        return self.fit(X, **fit_params).transform(X)

    def _rows(self, n, k, chunk_size):
        # rows per chunk and samples per chunk so that one forward pass holds about
        # chunk_size (sample, row) pairs
        k_chunk = min(k, chunk_size)
        return max(1, chunk_size // k_chunk), k_chunk

    def transform(self, X, k=1000, random_state=None, chunk_size=20_000):
        r"""Single imputation: ``X`` with every missing entry replaced by its conditional mean
        :math:`\mathbb E[x^{\mathrm m} \mid x^{\mathrm o}]`, estimated by self-normalised
        importance sampling with K = ``k`` samples.

        Parameters
        ----------
        X : array_like, shape (n, p)
            NaN where missing.
        k : int
            Importance samples per row.
        random_state : None, int or numpy.random.Generator
        chunk_size : int
            About this many (sample, row) pairs are in memory at once.

        Returns
        -------
        ndarray, shape (n, p)
            The observed entries unchanged, the missing ones imputed (for a Bernoulli likelihood:
            the probability of a 1).

        Notes
        -----
        .. math::

            \hat x^{\mathrm m} = \sum_{k=1}^K \tilde w_k\, \mathbb E_{p_\theta(x \mid z_k)}
            [x^{\mathrm m}], \qquad z_k \sim q_\gamma(z \mid x^{\mathrm o}), \quad
            \tilde w_k = \frac{w_k}{\sum_l w_l}, \quad w_k = \frac{p_\theta(x^{\mathrm o} \mid
            z_k) p(z_k)}{q_\gamma(z_k \mid x^{\mathrm o})},

        consistent as K grows (self-normalised importance sampling targeting
        :math:`p_\theta(z \mid x^{\mathrm o})`). When the K samples come in several chunks, each
        chunk's weighted mean is weighted in turn by its share :math:`\sum_{k \in c} w_k` of the
        total, which is the same sum regrouped.
        """
        X = self.check_data(X)
        k = check_positive_int(k, "k", "transform")
        rng = check_random_state(random_state, "transform")
        rows, k_chunk = self._rows(len(X), k, check_positive_int(chunk_size, "chunk_size",
                                                                 "transform"))
        observed = ~np.isnan(X)
        out = X.copy()
        with _ad.no_grad():
            for s in progress(range(0, len(X), rows), desc="MIWAE transform", unit="chunk",
                              leave=False):
                x, obs = X[s:s + rows], observed[s:s + rows]
                chunk_lse, chunk_mean = [], []
                for kc in _chunks(k, k_chunk):
                    samples, eta = self._forward(x, kc, rng, obs)
                    log_w = samples.log_w.data                               # (kc, B)
                    mean = self.observation.distribution(eta).mean.data      # (kc, B, p)
                    w = self_normalised_weights(log_w)
                    chunk_mean.append(np.einsum("kb,kbp->bp", w, mean))
                    chunk_lse.append(logsumexp(log_w, axis=0))
                share = self_normalised_weights(np.stack(chunk_lse))        # (chunks, B)
                x_hat = np.einsum("cb,cbp->bp", share, np.stack(chunk_mean))
                out[s:s + rows] = np.where(obs, x, x_hat)
        return out

    def impute(self, X, n_draws=5, k=1000, random_state=None, chunk_size=20_000):
        r"""Multiple imputation: ``n_draws`` completed copies of ``X``, each missing entry drawn
        from :math:`p_\theta(x^{\mathrm m} \mid x^{\mathrm o})` by sampling importance
        resampling.

        Parameters
        ----------
        X : array_like, shape (n, p)
            NaN where missing.
        n_draws : int
            Number of imputations.
        k : int
            Importance samples per row, resampled from.
        random_state : None, int or numpy.random.Generator
        chunk_size : int
            About this many (sample, row) pairs are in memory at once.

        Returns
        -------
        ndarray, shape (n_draws, n, p)
            The observed entries unchanged in every draw.

        Notes
        -----
        For each row, draw :math:`z_1, \dots, z_K \sim q_\gamma(z \mid x^{\mathrm o})` with
        self-normalised weights :math:`\tilde w_k`; then, for each imputation, pick an index
        :math:`k` with probability :math:`\tilde w_k` and draw :math:`x^{\mathrm m} \sim
        p_\theta(x^{\mathrm m} \mid z_k)`. As K grows the resampled :math:`z` follows
        :math:`p_\theta(z \mid x^{\mathrm o})`, so the draws follow :math:`p_\theta(x^{\mathrm
        m} \mid x^{\mathrm o})` (Rubin 1987, sampling importance resampling).
        """
        X = self.check_data(X)
        n_draws = check_positive_int(n_draws, "n_draws", "impute")
        k = check_positive_int(k, "k", "impute")
        rng = check_random_state(random_state, "impute")
        rows, k_chunk = self._rows(len(X), k, check_positive_int(chunk_size, "chunk_size",
                                                                 "impute"))
        rows = max(1, min(rows, chunk_size // n_draws))
        observed = ~np.isnan(X)
        out = np.empty((n_draws, *X.shape), dtype=self.dtype)
        with _ad.no_grad():
            for s in progress(range(0, len(X), rows), desc="MIWAE impute", unit="chunk",
                              leave=False):
                x, obs = X[s:s + rows], observed[s:s + rows]
                log_w, z = [], []
                for kc in _chunks(k, k_chunk):
                    samples = self.weighted_samples(x, kc, rng, obs)
                    log_w.append(samples.log_w.data)
                    z.append(samples.z.data)
                w = self_normalised_weights(np.concatenate(log_w))       # (k, B)
                z = np.concatenate(z)                                    # (k, B, d)
                picks = resample_indices(w, n_draws, rng)                # (n_draws, B)
                z_star = z[picks, np.arange(len(x))]                     # (n_draws, B, d)
                draws = self.observation.distribution(self.decode(_ad.tensor(z_star))).sample(
                    random_state=rng)
                out[:, s:s + rows] = np.where(obs, x, draws)
        return out

    def reconstruct(self, X):
        r"""The decoder's mean at the code :math:`\mu_\gamma(\iota(x))` of the zero-imputed
        data, shape (n, p) (the observed entries are *not* kept: see :meth:`transform` for
        imputation)."""
        return self.decode_mean(self.encode_mean(X))

    def encode_mean(self, X):
        r"""The posterior mean of each code, :math:`\mu_\gamma(\iota(x))`, shape (n, d)."""
        X = self.check_data(X, allow_unit_interval=True)
        with _ad.no_grad():
            return np.array(self.encode(np.where(np.isnan(X), 0.0, X)).mu.data)

    def posterior_means(self, X):
        r"""``{'z': encode_mean(X)}``: the posterior mean of the one latent layer, for the
        evaluation of active units."""
        return {"z": self.encode_mean(X)}

    def unit_activity(self, X):
        r""":math:`A_u = \mathrm{Cov}_x(\mu_\gamma(\iota(x))_u)`, shape (d,) (here
        :meth:`transform` imputes, so the posterior mean is :meth:`encode_mean`)."""
        return np.var(self.encode_mean(X), axis=0)

    def active_units(self, X, threshold=0.01):
        r"""Number of latent units with :math:`A_u > 0.01` (Burda et al. 2016, §5.2)."""
        return int(np.sum(self.unit_activity(X) > threshold))

    # -- scikit-learn's estimator protocol ----------------------------------------------------

    def get_params(self, deep=True):
        r"""The constructor arguments, as given (scikit-learn's ``clone`` rebuilds the model from
        them)."""
        return dict(self._init_params)

    def set_params(self, **params):
        r"""Change constructor arguments; the networks are rebuilt (fresh weights), as
        scikit-learn expects before a new ``fit``. Returns ``self``."""
        unknown = sorted(set(params) - set(self._init_params))
        if unknown:
            raise ValueError(f"MIWAE.set_params: unknown parameter(s) {unknown}; expected some "
                             f"of {sorted(self._init_params)}")
        self.__init__(**{**self._init_params, **params})
        return self

    def config(self):
        r"""The constructor arguments that rebuild this architecture (JSON-serialisable)."""
        config = super().config()
        # the bound L_K has no closed-form part to weigh (kl, beta), and the decoder mirrors the
        # encoder: MIWAE's constructor takes none of them
        for key in ("kl", "beta", "decoder_hidden"):
            config.pop(key)
        return config
