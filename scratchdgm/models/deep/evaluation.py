r"""Evaluating a trained deep latent-variable model: the IWAE bound for any K, the
importance-sampled log-likelihood, the activity of the latent units, and the purity of the
clusters of a discrete latent.

Every function here needs only two things of a model, so that each model family of the library
(and a user's own) is evaluated by the same code:

* ``model.log_weights(x, k, rng)`` -- a Tensor of shape (k, B) of log importance weights
  :math:`\log w_{ik} = \log p_\theta(x_i, z_{ik}) - \log q(z_{ik} \mid x_i)` with fresh
  :math:`z_{ik} \sim q(z \mid x_i)`;
* ``model.check_data(X)`` -- the validated data as an array of the model's dtype;

and, for the unit activity, ``model.transform(X)`` (the posterior mean of each code).

Parallelism. The estimates of different data points are independent, so :func:`score_samples`
and :func:`bound_samples` split the points into blocks and evaluate the blocks on ``n_jobs``
threads (default: every core, or the limit of an enclosing
:func:`scratchdgm.threads.kernel_threads`). Each thread runs the BLAS on one thread and the kernels
serially (:func:`scratchdgm.threads.kernel_threads`); NumPy's matrix products, the kernels and
the random draws release the GIL, so the threads run in parallel. Every block draws from its
own random stream, spawned from ``random_state`` (:class:`numpy.random.SeedSequence`), and the
blocks depend only on the number of points and K: the result is the same for every
``n_jobs``.

:func:`energy_distance` needs no model at all: it compares samples, for the models whose
likelihood is only bounded.
"""

from concurrent.futures import ThreadPoolExecutor

import numpy as np

from scratchdgm import autodiff as _ad
from scratchdgm.memory import reuse_freed_memory
from scratchdgm.models.deep import bounds as _bounds
from scratchdgm.progress import progress as _progress
from scratchdgm.threads import (
    available_cores,
    blas_threads,
    kernel_thread_limit,
    kernel_threads,
)
from scratchdgm.validation import check_positive_int, check_random_state

#: Samples times points per block of work, at most: enough for the matrix products of a block
#: to run at full speed and for what a block does once (encoding its points, preparing the
#: decoder's arrays) to vanish against them. At K = 5000 a block holds 10 points; with 1 point
#: per block (5000 pairs) the K = 5000 evaluation took 0.5 ms more per point (median of 8
#: interleaved rounds, float32, one thread; ``scratchdgm bench eval``'s model).
BLOCK_PAIRS = 50_000
#: ... and at least this many blocks where there are enough points, so that they spread over
#: the threads. Both limits depend on the number of points and K only, never on the threads.
MIN_BLOCKS = 16


def _check_n_jobs(n_jobs, where):
    r"""``n_jobs`` as a number of threads: None -> the limit of an enclosing
    :func:`~scratchdgm.threads.kernel_threads`, else every core this process may use; -1 ->
    every core."""
    if n_jobs is None:
        return kernel_thread_limit() or available_cores()
    if n_jobs == -1:
        return available_cores()
    return check_positive_int(n_jobs, "n_jobs", where)


def _blocks(n, k):
    """Consecutive blocks of points, at most about :data:`BLOCK_PAIRS` (sample, point) pairs
    each, and at least :data:`MIN_BLOCKS` of them when there are that many points."""
    size = max(1, min(BLOCK_PAIRS // k, -(-n // MIN_BLOCKS)))
    return [np.arange(s, min(n, s + size)) for s in range(0, n, size)]


def _block_generators(rng, n_blocks):
    """One independent Generator per block, spawned from ``rng``."""
    root = np.random.SeedSequence(rng.integers(0, 2**63 - 1, size=2).tolist())
    return [np.random.default_rng(child) for child in root.spawn(n_blocks)]


def _map_blocks(work, n_blocks, n_jobs, done=None):
    r"""``[work(b) for b in range(n_blocks)]`` on ``n_jobs`` threads, each with one BLAS thread
    and serial kernels, without gradient recording; ``done(b)`` is called in the calling thread
    as each result arrives, in order (a progress bar is updated from one thread only)."""
    def run(b):
        with kernel_threads(1):
            return work(b)

    out = []
    with _ad.no_grad(), blas_threads(1), reuse_freed_memory():
        if n_jobs == 1 or n_blocks == 1:
            results = map(run, range(n_blocks))
            pool = None
        else:
            pool = ThreadPoolExecutor(max_workers=min(n_jobs, n_blocks))
            results = pool.map(run, range(n_blocks))
        try:
            for b, part in enumerate(results):
                out.append(part)
                if done is not None:
                    done(b)
        finally:
            if pool is not None:
                pool.shutdown(cancel_futures=True)
    return out


__all__ = ["bound_samples", "score_samples", "unit_activity", "active_units", "energy_distance",
           "contingency_table", "cluster_purity"]


def bound_samples(model, X, k, random_state=None, batch_size=None, *, progress=True,
                  n_jobs=None):
    r"""One draw of :math:`\hat{\mathcal L}_K(x_i)` per data point, an ndarray of shape (n,).

    Parameters
    ----------
    model : a deep model (see the module docstring)
    X : array_like, shape (n, p)
    k : int
        :math:`K \ge 1`.
    random_state : None, int or numpy.random.Generator
    batch_size : int, optional
        Points per call of ``log_weights`` (default: about 20000 / k).
    n_jobs : int, optional
        Threads (default None: every core; see the module docstring). The result does not
        depend on it.
    progress : bool
        A progress bar (points done, time left) when it lasts more than a second on a terminal
        (:data:`scratchdgm.models.deep.bounds.EVAL_BAR_DELAY`).

    Notes
    -----
    .. math::

        \hat{\mathcal L}_K(x_i) = \log \frac1K \sum_{k=1}^K w_{ik},

    whatever the model was trained on: :math:`\mathcal L_1` is the VAE bound in its Monte Carlo
    form (Burda et al. 2016, eq. 8). In expectation :math:`\mathcal L_1 \le \mathcal L_5 \le
    \mathcal L_{50} \le \log p_\theta(x)` (their Theorem 1).
    """
    X = model.check_data(X)
    k = check_positive_int(k, "k", "bound")
    rng = check_random_state(random_state, "bound")
    n_jobs = _check_n_jobs(n_jobs, "bound")
    if batch_size is None:
        batch_size = max(1, 20_000 // k)
    blocks = _blocks(len(X), k)
    generators = _block_generators(rng, len(blocks))

    def work(b):
        idx, block_rng = blocks[b], generators[b]
        out = np.empty(len(idx))
        for s in range(0, len(idx), batch_size):
            log_w = model.log_weights(X[idx[s:s + batch_size]], k, block_rng)
            out[s:s + batch_size] = _bounds.log_mean_exp(log_w, axis=0).data
        return out

    bar = _progress(total=len(X), desc=f"L_{k}", unit="point", enabled=progress, leave=False,
                    delay=_bounds.EVAL_BAR_DELAY)
    with bar:
        parts = _map_blocks(work, len(blocks), n_jobs, done=lambda b: bar.update(len(blocks[b])))
    return np.concatenate(parts) if parts else np.empty(0)


def score_samples(model, X, k=5000, random_state=None, chunk_size=50_000, *, progress=True,
                  n_jobs=None):
    r"""Importance-sampled :math:`\log \hat p_\theta(x_i)` per point, shape (n,), in bounded
    memory, on every core.

    Parameters
    ----------
    model : a deep model (see the module docstring)
    X : array_like, shape (n, p)
    k : int
        Importance samples per point (Burda et al. 2016 use 5000).
    random_state : None, int or numpy.random.Generator
    chunk_size : int
        At most about this many (sample, point) pairs are in memory at once per thread.
    n_jobs : int, optional
        Threads (default None: every core; see the module docstring). The result does not
        depend on it.
    progress : bool
        A progress bar (importance samples drawn, time left) when it lasts more than a second
        on a terminal (:data:`scratchdgm.models.deep.bounds.EVAL_BAR_DELAY`; at once from
        :data:`scratchdgm.models.deep.bounds.EVAL_BAR_AT_ONCE` samples).

    Notes
    -----
    .. math::

        \log \hat p_\theta(x_i) = \log \frac1K \sum_{k=1}^K
        \frac{p_\theta(x_i \mid z_{ik})\, p(z_{ik})}{q(z_{ik} \mid x_i)},
        \qquad z_{ik} \sim q(z \mid x_i),

    computed by :func:`scratchdgm.models.deep.bounds.importance_sampled_log_likelihood` on each
    block of points: a single draw of :math:`\mathcal L_K`, a lower bound on average that tends
    to :math:`\log p_\theta(x_i)` as K grows ([Mattei-DGM, "Maximum likelihood for DLVMs via
    importance sampling"] in ``docs/lectures.md``).

    Cost: the decoder runs K times per point, so the matrix products of its layers -- 2 K n
    (d h_2 + h_2 h_1 + h_1 p) flops -- set a floor on the time; ``scratchdgm bench eval``
    measures how close to it this function runs.
    """
    X = model.check_data(X)
    k = check_positive_int(k, "k", "score_samples")
    rng = check_random_state(random_state, "score_samples")
    n_jobs = _check_n_jobs(n_jobs, "score_samples")
    blocks = _blocks(len(X), k)
    generators = _block_generators(rng, len(blocks))

    def work(b):
        idx, block_rng = blocks[b], generators[b]

        def log_weights_fn(j, kc):
            return model.log_weights(X[idx[j]], kc, block_rng).data

        return _bounds.importance_sampled_log_likelihood(log_weights_fn, len(idx), k,
                                                         chunk_size=chunk_size, progress=False)

    with _bounds.likelihood_bar(len(X), k, progress) as bar:
        parts = _map_blocks(work, len(blocks), n_jobs,
                            done=lambda b: bar.update(len(blocks[b]) * k))
    return np.concatenate(parts) if parts else np.empty(0)


def unit_activity(model, X):
    r"""Variance over the data of each coordinate of the posterior mean,
    :math:`A_u = \mathrm{Cov}_x(\mathbb E_{q(z|x)}[z_u])`, shape (d,) (Burda et al. 2016, §5.2)."""
    return np.var(model.transform(X), axis=0)


def active_units(model, X, threshold=0.01):
    r"""Number of active latent units, :math:`\#\{u : A_u > 10^{-2}\}` (Burda et al. 2016,
    §5.2, eq. 15): a unit whose posterior mean does not move with x carries no information."""
    return int(np.sum(unit_activity(model, X) > threshold))


def energy_distance(x, y):
    r"""The energy distance between two samples: a two-sample statistic for models whose
    likelihood is only bounded (a diffusion model) or for comparing any sampler with the data.

    Parameters
    ----------
    x : array_like, shape (n, p)
    y : array_like, shape (m, p)
        :math:`n, m \ge 2`.

    Returns
    -------
    float
        The unbiased estimate of :math:`\mathcal E^2(P, Q)` (it can be slightly negative when
        the two samples come from the same distribution).

    Notes
    -----
    .. math::

        \mathcal E^2(P, Q) = 2\, \mathbb E \lVert X - Y \rVert - \mathbb E \lVert X - X' \rVert
        - \mathbb E \lVert Y - Y' \rVert \ \ge 0,

    with :math:`X, X' \sim P` and :math:`Y, Y' \sim Q` independent; it is zero if and only if
    :math:`P = Q` (in any dimension), and each expectation is estimated by the mean over all
    pairs (the within-sample means leave out the zero diagonal). Compare a model's value with
    the statistic between two independent samples of the data of the same sizes: that is its
    noise level.

    References
    ----------
    Székely, G. J. & Rizzo, M. L. (2013). Energy statistics: a class of statistics based on
    distances. Journal of Statistical Planning and Inference 143(8), eq. 2.
    """
    from scipy.spatial.distance import cdist

    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(f"energy_distance: x and y must be 2-D with the same number of "
                         f"columns, got shapes {x.shape} and {y.shape}")
    n, m = len(x), len(y)
    if n < 2 or m < 2:
        raise ValueError(f"energy_distance: each sample needs at least 2 rows, got {n} and {m}")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise ValueError("energy_distance: the samples contain NaN or inf")
    between = cdist(x, y).mean()
    within_x = cdist(x, x).sum() / (n * (n - 1))
    within_y = cdist(y, y).sum() / (m * (m - 1))
    return float(2.0 * between - within_x - within_y)

def contingency_table(clusters, labels, n_clusters=None, n_labels=None):
    r"""Counts :math:`N_{cy} = \#\{i : c_i = c,\ y_i = y\}`, an int64 array of shape
    (n_clusters, n_labels).

    Parameters
    ----------
    clusters, labels : array_like of int, shape (n,)
        Cluster assignments (e.g. :math:`\arg\max_c q(c \mid x_i)`) and true labels, both in
        ``0, 1, ...``.
    n_clusters, n_labels : int, optional
        Table size (default: one more than the largest value seen).
    """
    clusters, labels = np.asarray(clusters), np.asarray(labels)
    if clusters.shape != labels.shape or clusters.ndim != 1 or len(clusters) == 0:
        raise ValueError(f"clusters and labels must be non-empty 1-D arrays of the same length, "
                         f"got shapes {clusters.shape} and {labels.shape}")
    for name, a in (("clusters", clusters), ("labels", labels)):
        if a.dtype.kind not in "iu" or a.min() < 0:
            raise ValueError(f"{name} must hold non-negative integers, got dtype {a.dtype} "
                             f"with minimum {a.min()}")
    n_clusters = int(clusters.max()) + 1 if n_clusters is None else n_clusters
    n_labels = int(labels.max()) + 1 if n_labels is None else n_labels
    if clusters.max() >= n_clusters or labels.max() >= n_labels:
        raise ValueError(f"values beyond the table: clusters up to {clusters.max()} for "
                         f"n_clusters={n_clusters}, labels up to {labels.max()} for "
                         f"n_labels={n_labels}")
    table = np.zeros((n_clusters, n_labels), dtype=np.int64)
    np.add.at(table, (clusters, labels), 1)
    return table


def cluster_purity(clusters, labels):
    r"""Purity of a clustering against labels: the fraction of points whose cluster's most
    common label is their own.

    .. math::

        \mathrm{purity} = \frac1n \sum_{c} \max_y N_{cy},

    with :math:`N` the :func:`contingency_table`. It is 1 for a perfect clustering and at least
    the frequency of the most common label; more clusters than labels can only raise it (one
    point per cluster gives 1), so compare clusterings with the same number of clusters.

    References
    ----------
    Manning, Raghavan & Schütze (2008), *Introduction to information retrieval*, §16.3 (purity).
    """
    table = contingency_table(clusters, labels)
    return float(table.max(axis=1).sum() / table.sum())
