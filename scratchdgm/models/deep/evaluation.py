r"""Evaluating a trained deep latent-variable model: the IWAE bound for any K, the
importance-sampled log-likelihood, and the activity of the latent units.

Every function here needs only two things of a model, so that each model family of the library
(and a user's own) is evaluated by the same code:

* ``model.log_weights(x, k, rng)`` -- a Tensor of shape (k, B) of log importance weights
  :math:`\log w_{ik} = \log p_\theta(x_i, z_{ik}) - \log q(z_{ik} \mid x_i)` with fresh
  :math:`z_{ik} \sim q(z \mid x_i)`;
* ``model.check_data(X)`` -- the validated data as an array of the model's dtype;

and, for the unit activity, ``model.transform(X)`` (the posterior mean of each code).
"""

import numpy as np

from scratchdgm import autodiff as _ad
from scratchdgm.models.deep import bounds as _bounds
from scratchdgm.progress import progress as _progress
from scratchdgm.threads import blas_threads
from scratchdgm.validation import check_positive_int, check_random_state

__all__ = ["bound_samples", "score_samples", "unit_activity", "active_units"]


def bound_samples(model, X, k, random_state=None, batch_size=None, *, progress=True):
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
    if batch_size is None:
        batch_size = max(1, 20_000 // k)
    out = np.empty(len(X))
    bar = _progress(total=len(X), desc=f"L_{k}", unit="point", enabled=progress, leave=False,
                    delay=_bounds.EVAL_BAR_DELAY)
    with bar, _ad.no_grad(), blas_threads(1):
        for s in range(0, len(X), batch_size):
            log_w = model.log_weights(X[s:s + batch_size], k, rng)
            out[s:s + batch_size] = _bounds.log_mean_exp(log_w, axis=0).data
            bar.update(len(log_w.data[0]))
    return out


def score_samples(model, X, k=5000, random_state=None, chunk_size=50_000, *, progress=True):
    r"""Importance-sampled :math:`\log \hat p_\theta(x_i)` per point, shape (n,), in bounded
    memory.

    Parameters
    ----------
    model : a deep model (see the module docstring)
    X : array_like, shape (n, p)
    k : int
        Importance samples per point (Burda et al. 2016 use 5000).
    random_state : None, int or numpy.random.Generator
    chunk_size : int
        At most about this many (sample, point) pairs are in memory at once.
    progress : bool
        A progress bar (importance samples drawn, time left) when it lasts more than a second
        on a terminal (:data:`scratchdgm.models.deep.bounds.EVAL_BAR_DELAY`).

    Notes
    -----
    .. math::

        \log \hat p_\theta(x_i) = \log \frac1K \sum_{k=1}^K
        \frac{p_\theta(x_i \mid z_{ik})\, p(z_{ik})}{q(z_{ik} \mid x_i)},
        \qquad z_{ik} \sim q(z \mid x_i),

    computed by :func:`scratchdgm.models.deep.bounds.importance_sampled_log_likelihood`: a single
    draw of :math:`\mathcal L_K`, a lower bound on average that tends to
    :math:`\log p_\theta(x_i)` as K grows ([Mattei-DGM, "Maximum likelihood for DLVMs via
    importance sampling"] in ``docs/lectures.md``).
    """
    X = model.check_data(X)
    k = check_positive_int(k, "k", "score_samples")
    rng = check_random_state(random_state, "score_samples")

    def log_weights_fn(idx, kc):
        return model.log_weights(X[idx], kc, rng).data

    with _ad.no_grad(), blas_threads(1):
        return _bounds.importance_sampled_log_likelihood(log_weights_fn, len(X), k,
                                                         chunk_size=chunk_size,
                                                         progress=progress)


def unit_activity(model, X):
    r"""Variance over the data of each coordinate of the posterior mean,
    :math:`A_u = \mathrm{Cov}_x(\mathbb E_{q(z|x)}[z_u])`, shape (d,) (Burda et al. 2016, §5.2)."""
    return np.var(model.transform(X), axis=0)


def active_units(model, X, threshold=0.01):
    r"""Number of active latent units, :math:`\#\{u : A_u > 10^{-2}\}` (Burda et al. 2016,
    §5.2, eq. 15): a unit whose posterior mean does not move with x carries no information."""
    return int(np.sum(unit_activity(model, X) > threshold))
