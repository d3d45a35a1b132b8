r"""Gradients through a discrete latent: exact enumeration, the Gumbel-softmax relaxation and the
score-function estimator, compared by their bias, variance and cost against the number of
categories K.

The quantity. For a categorical VAE (:class:`~scratchdgm.models.deep.discrete.CategoricalVAE`,
trained on the digits by enumeration for a few epochs at each K) and a test image x, the
gradient of the expected reconstruction term in the logits :math:`l` of
:math:`q(c \mid x) = \mathrm{Cat}(\pi)`, :math:`\pi = \operatorname{softmax}(l)`:

.. math::

    \nabla_l\, \mathbb E_{q(c \mid x)}[f(c)], \qquad f(c) = \log p_\theta(x \mid c).

(The KL term :math:`-H(q) + \log K` is in closed form for every estimator, and the gradient in
the encoder's weights is this one times the encoder's Jacobian, the same linear map for every
estimator: the logits are where the estimators differ.) Three estimators:

* enumeration, :math:`\sum_c \nabla_l \pi_c\, f(c) = \pi \odot (f - \pi^\top f)`: exact, K
  likelihood terms per point ([Isachenko-L4, "Discrete VAE latents"] in ``docs/lectures.md``);
* Gumbel-softmax, :math:`\nabla_l f(y)` with :math:`y = \operatorname{softmax}((\log\pi + g) /
  \tau)`: one term, reparametrised, biased for :math:`\tau > 0` because :math:`f` is evaluated at
  a point of the simplex that is not a vertex (Jang et al. 2017; Maddison et al. 2017);
* score function, :math:`f(c)\, \nabla_l \log \pi_c` with :math:`c \sim q`: one term, unbiased,
  with a large variance ([Su-DGM, "Estimating $\partial
  \mathbb{E}_{q_{\phi}(z|x)}[\ln p_{\theta}(x|z)]/\partial \phi$"]: the log-derivative trick
  and its variance); and the same with the baseline :math:`b = f(\arg\max_c \pi_c)`,
  :math:`(f(c) - b) \nabla_l \log \pi_c`, still unbiased, at two terms (the "self-critical"
  baseline of Rennie et al. 2017). Both are
  :func:`scratchdgm.estimators.score_function_gradient` with q = Cat(softmax l).

For each estimator, ``n_draws`` independent single-draw estimates :math:`\hat g` per point give
its mean and covariance, summarised over the ``n_points`` test images as

.. math::

    \text{relative bias} = \sqrt{\frac{\sum_i \lVert \overline{\hat g}_i - \nabla_i \rVert^2
    - \operatorname{tr}\widehat{\mathrm{Cov}}_i / M}{\sum_i \lVert \nabla_i \rVert^2}}, \qquad
    \text{relative std} = \sqrt{\frac{\sum_i \operatorname{tr}\widehat{\mathrm{Cov}}_i}
    {\sum_i \lVert \nabla_i \rVert^2}},

(the bias corrected for the Monte Carlo noise of the mean of M draws; the noise level
:math:`\sqrt{\sum_i \operatorname{tr}\widehat{\mathrm{Cov}}_i / M \,/\, \sum_i \lVert\nabla_i
\rVert^2}` is reported as ``mc_floor``: a bias below it cannot be told from 0), and the time
of one minibatch gradient (20 images, forward and backward through the whole model; wall time
on one thread, the median of 15).

Measured (full run, ``scratchdgm experiment discrete-gradients``, seed 0; the numbers are filled
in by a run and reproduced in ``docs/discrete.md``): see that page.

References
----------
Jang, Gu & Poole (2017), *Categorical reparameterization with Gumbel-softmax*, ICLR (their
Figure 1: the bias-variance trade-off in the temperature); Maddison, Mnih & Teh (2017), *The
Concrete distribution*, ICLR; Williams (1992), *Simple statistical gradient-following
algorithms for connectionist reinforcement learning* (the score function, REINFORCE); Rennie
et al. (2017), *Self-critical sequence training for image captioning*, CVPR (the greedy
baseline).
"""

import contextlib
import math
import time

import numpy as np

from scratchdgm import autodiff as _ad
from scratchdgm.data import load_digits_protocol
from scratchdgm.distributions import Categorical, RelaxedOneHotCategorical
from scratchdgm.estimators import score_function_gradient
from scratchdgm.experiments import ExperimentResult
from scratchdgm.models.deep.discrete import CategoricalVAE
from scratchdgm.plots.discrete import plot_gradient_estimators
from scratchdgm.progress import progress
from scratchdgm.threads import blas_threads
from scratchdgm.validation import check_int, check_rng

NAME = "discrete-gradients"
SUMMARY = ("gradients through a categorical latent: bias, variance and cost of enumeration, "
           "Gumbel-softmax and the score function against K")

FULL = dict(ks=(2, 4, 8, 16, 32, 64), epochs=10, n_points=50, n_draws=1000,
            temperatures=(0.1, 0.5, 1.0))
QUICK = dict(ks=(2, 8, 32), epochs=2, n_points=20, n_draws=200, temperatures=(0.5,))

#: points per minibatch of the timing (the training protocol's batch size)
TIMING_BATCH = 20


def exact_gradient(f, logits):
    r"""The enumeration gradient :math:`\nabla_l \sum_c \operatorname{softmax}(l)_c f_c`, by the
    autodiff, shape (B, K).

    Parameters
    ----------
    f : ndarray, shape (B, K)
        :math:`f(c) = \log p_\theta(x_i \mid c)` for every point and category.
    logits : ndarray, shape (B, K)
    """
    leaf = _ad.tensor(logits, requires_grad=True)
    (leaf.softmax(axis=-1) * f).sum().backward()
    return leaf.grad


def gumbel_gradients(model, x, logits, temperature, n_draws, rng):
    r"""``n_draws`` single-draw Gumbel-softmax estimates :math:`\nabla_l f(y)`, shape
    (n_draws, B, K): one leaf copy of the logits per draw, so that one backward pass gives every
    draw's own gradient."""
    check_rng(rng, "gumbel_gradients")
    leaf = _ad.tensor(np.broadcast_to(logits, (n_draws,) + logits.shape).copy(),
                      requires_grad=True)
    y = RelaxedOneHotCategorical(leaf, temperature).rsample((), rng)       # (M, B, K)
    model.category_term(x, y).sum().backward()
    return leaf.grad


def score_function_gradients(f, logits, n_draws, rng, baseline=None):
    r"""``n_draws`` single-draw score-function estimates :math:`(f(c) - b)\, \nabla_l \log
    \operatorname{softmax}(l)_c`, :math:`c \sim \mathrm{Cat}(\operatorname{softmax} l)`, shape
    (n_draws, B, K): :func:`scratchdgm.estimators.score_function_gradient` (the gradient of the
    surrogate :math:`\sum (f(c) - b) \log q(c)` with :math:`f(c) - b` held constant), one draw
    per estimate.

    Parameters
    ----------
    f : ndarray, shape (B, K)
    logits : ndarray, shape (B, K)
    n_draws : int
    rng : numpy.random.Generator
    baseline : ndarray, shape (B,), optional
        A control variate :math:`b` that does not depend on the drawn c, so the estimate stays
        unbiased (:math:`\mathbb E_q[\nabla_l \log q(c)] = 0`). None: :math:`b = 0`, the
        minimal estimator.
    """
    check_rng(rng, "score_function_gradients")
    # one copy of the logits per draw, so that the library's estimator, which averages over its
    # k draws, returns each draw's own estimate: k = 1 draw of an (n_draws, B) batch
    leaf = _ad.tensor(np.broadcast_to(logits, (n_draws,) + logits.shape).copy(),
                      requires_grad=True)
    f = np.asarray(f)

    def f_of_c(c):                                                        # (1, M, B) -> (1, M, B)
        c = np.asarray(c.data, dtype=np.intp)
        return np.take_along_axis(np.broadcast_to(f, leaf.shape), c[0][..., None],
                                  axis=-1)[None, ..., 0]

    b = None if baseline is None else np.asarray(baseline)
    return score_function_gradient(f_of_c, Categorical(leaf), [leaf], 1, rng, baseline=b)[0]


def greedy_baseline(f, logits):
    r"""The "self-critical" baseline :math:`b = f(\arg\max_c q(c \mid x))` (Rennie et al.
    2017): the value at the most probable category, one more likelihood term, independent of
    the drawn c. Shape (B,)."""
    return f[np.arange(len(f)), logits.argmax(axis=-1)]


def summarise(draws, exact):
    r"""Relative bias, relative standard deviation and Monte Carlo floor of per-draw gradient
    estimates ``draws`` (M, B, K) against the exact gradients ``exact`` (B, K) (module
    docstring)."""
    m = draws.shape[0]
    mean = draws.mean(axis=0)
    trace_cov = ((draws - mean) ** 2).sum(axis=-1).sum(axis=0) / (m - 1)   # (B,)
    norm2 = float((exact ** 2).sum())
    bias2 = float(((mean - exact) ** 2).sum() - trace_cov.sum() / m)
    return {"rel_bias": math.sqrt(max(bias2, 0.0) / norm2),
            "rel_std": math.sqrt(float(trace_cov.sum()) / norm2),
            "mc_floor": math.sqrt(float(trace_cov.sum()) / m / norm2)}


def _surrogate(model, x, estimator, temperature, rng):
    r"""A minibatch loss whose gradient is the estimator's, through the whole model (for the
    timing): the bound's expectation term, with the estimator's treatment of c."""
    q = model.encode(x)
    if estimator == "enumeration":
        return (q.probs.T * model.category_term(x, model._every_category()[0])).sum()
    if estimator.startswith("Gumbel"):
        return model.category_term(x, RelaxedOneHotCategorical(q.logits, temperature)
                                   .rsample((), rng)).sum()
    eye = np.eye(model.n_categories, dtype=model.dtype)
    c = q.sample((), rng)
    f = model.category_term(x, eye[c])
    b = 0.0
    if estimator.endswith("baseline"):
        b = model.category_term(x, eye[q.logits.data.argmax(axis=-1)]).detach()
    # the decoder gets grad f, the encoder (f - b) grad log q (the score function)
    return (f + (f.detach() - b) * q.log_prob(c)).sum()


def _time_ms(model, x, estimator, temperature, rng, repeats=15):
    """Median wall time (``time.perf_counter``) of one forward and backward pass, on one BLAS
    thread and one Numba thread (:func:`run` holds :func:`_one_thread`), after one untimed warm-up pass."""
    times = []
    for i in range(repeats + 1):
        t0 = time.perf_counter()
        loss = _surrogate(model, x, estimator, temperature, rng)
        model.zero_grad()
        loss.backward()
        if i:
            times.append(time.perf_counter() - t0)
    return 1e3 * float(np.median(times))


@contextlib.contextmanager
def _one_thread():
    """One BLAS thread and one Numba thread for the whole run. Why: these minibatches are small, and
    on a machine shared with other jobs a parallel kernel waits for its other threads to be
    scheduled (measured under load: 300 ms per gradient with Numba's two threads against 1 ms
    with one); the process's CPU time is no cure, since waiting threads spin and are counted."""
    import numba

    before = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        with blas_threads(1):
            yield
    finally:
        numba.set_num_threads(before)


def run(out_dir, quick=False, seed=0):
    r"""Train a categorical VAE per K, measure the three estimators at its parameters, and draw
    ``discrete_gradients.png``.

    Returns
    -------
    ExperimentResult
        ``numbers``: ``K``, ``estimators`` (name -> ``rel_bias``, ``rel_std``, ``mc_floor``,
        each a list over K), ``time_ms`` (name -> list over K), ``settings``.
    """
    cfg = QUICK if quick else FULL
    seed = check_int(seed, "seed", 0, NAME)
    ds = load_digits_protocol()
    x = ds.x_test_binary[:cfg["n_points"]]
    x_time = ds.x_test_binary[:TIMING_BATCH]
    names = ([f"Gumbel-softmax tau={t:g}" for t in cfg["temperatures"]]
             + ["score function", "score function, greedy baseline"])
    est = {name: {"rel_bias": [], "rel_std": [], "mc_floor": []} for name in names}
    time_ms = {name: [] for name in ["enumeration"] + names}
    # training, estimates and timing on one thread: see _one_thread
    with _one_thread():
        for k in progress(cfg["ks"], desc=NAME, unit="K"):
            model = CategoricalVAE(64, k, (100, 100), estimator="enumerate", random_state=seed)
            model.fit(ds.x_train, epochs=cfg["epochs"], progress=False, random_state=seed)
            rng = np.random.default_rng([seed, k])
            with _ad.no_grad():
                logits = np.array(model.encoder(x).data)
            f = model.log_px_given_c(x)                                       # (B, K)
            exact = exact_gradient(f, logits)
            for t in cfg["temperatures"]:
                draws = gumbel_gradients(model, x, logits, t, cfg["n_draws"], rng)
                for key, v in summarise(draws, exact).items():
                    est[f"Gumbel-softmax tau={t:g}"][key].append(v)
            for name, b in (("score function", None),
                            ("score function, greedy baseline", greedy_baseline(f, logits))):
                draws = score_function_gradients(f, logits, cfg["n_draws"], rng, baseline=b)
                for key, v in summarise(draws, exact).items():
                    est[name][key].append(v)
            for name in time_ms:
                tau = float(name.split("=")[1]) if "=" in name else None
                time_ms[name].append(_time_ms(model, x_time, name, tau, rng))
    numbers = {"K": list(cfg["ks"]), "estimators": est, "time_ms": time_ms,
               "settings": {**{k: (list(v) if isinstance(v, tuple) else v)
                               for k, v in cfg.items()}, "seed": seed,
                            "timing_batch": TIMING_BATCH}}
    path = plot_gradient_estimators(numbers, out_dir / "discrete_gradients.png")
    lines = [f"{'K':>4}  " + "  ".join(f"{n:>28}" for n in names) + "   (relative bias / "
             "relative std)"]
    for i, k in enumerate(cfg["ks"]):
        cells = [f"{est[n]['rel_bias'][i]:12.3g} / {est[n]['rel_std'][i]:<12.3g}" for n in names]
        lines.append(f"{k:>4}  " + "  ".join(f"{c:>28}" for c in cells))
    lines.append("ms per minibatch gradient (20 images, one thread): " + "; ".join(
        f"{n}: " + ", ".join(f"{v:.1f}" for v in t) for n, t in time_ms.items()))
    return ExperimentResult(NAME, numbers, [path], "\n".join(lines))
