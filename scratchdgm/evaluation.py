r"""One evaluator for every deep latent-variable model of the library: the ELBO, the bounds
:math:`\mathcal L_K`, the importance-sampled log-likelihood, the effective sample size of the
importance weights, the active units and the KL of each latent dimension, in one report that
also says which data it ran on.

Algorithm: importance-weighted evaluation (Burda, Grosse & Salakhutdinov 2016, §5). For each data
point draw :math:`K_{\max} = \max(\text{ks})` samples :math:`z_k \sim q(z \mid x)` and their
log-weights :math:`\log w_k = \log p_\theta(x, z_k) - \log q(z_k \mid x)`, then read every number
from that one pool:

.. math::

    \hat{\mathcal L}_1 = \frac{1}{K_{\max}} \sum_{k} \log w_k, \qquad
    \hat{\mathcal L}_K = \frac{1}{G} \sum_{g=1}^{G} \log \frac1K \sum_{k \in \text{group } g}
    w_k \quad (G = \lfloor K_{\max} / K \rfloor \text{ disjoint groups}), \qquad
    \log \hat p(x) = \hat{\mathcal L}_{K_{\max}}.

Each :math:`\hat{\mathcal L}_K` is an unbiased estimate of :math:`\mathcal L_K` (Burda et al.
2016, eq. 8) averaged over G independent groups, so the small K are estimated far more precisely
than by one draw each; and when K divides K', the estimates are ordered in every draw, not only
in expectation (the log of a mean of group means is at least the mean of their logs):
:math:`\hat{\mathcal L}_1 \le \hat{\mathcal L}_K \le \hat{\mathcal L}_{K'}`. The effective sample
size :math:`(\sum_k w_k)^2 / \sum_k w_k^2` (:func:`scratchdgm.estimators.effective_sample_size`)
of the :math:`K_{\max}` weights says how far :math:`q` is from the posterior: :math:`K_{\max}`
for the exact posterior, near 1 when one draw carries all the weight (then :math:`\log \hat
p(x)` is still a lower bound on average, but a loose one).

The protocol a model provides (the VAE and IWAE of :mod:`scratchdgm.models.deep`, the linear
model :class:`~scratchdgm.models.deep.LinearGaussianLVM`, and any user model):

required
    ``log_weights(x, k, rng)`` -- log importance weights of ``k`` fresh draws per row of ``x``,
    a Tensor or array of shape (k, B); ``check_data(X)`` -- the validated data as an array;
    ``transform(X)`` -- the posterior mean :math:`\mathbb E_q[z \mid x]`, shape (n, d).
optional
    ``posterior_means(X) -> dict[str, ndarray (n, d_layer)]`` -- the posterior means of each
    latent layer, for the active units per layer (default ``{"z": transform(X)}``);
    ``kl_per_dimension(X, random_state=None) -> dict[str, ndarray (d_layer,)]`` -- per layer,
    the mean over the data of :math:`\mathrm{KL}(q(z_j \mid \cdot) \,\|\, p(z_j \mid \cdot))`
    for each latent dimension (closed form where there is one; a layer whose prior does not
    factorise over dimensions, such as a Gaussian mixture, is left out);
    ``kl_total(X, random_state=None) -> dict[str, float]`` -- per layer, the mean over the data
    of the whole :math:`\mathrm{KL}(q \,\|\, p)`, by Monte Carlo where there is no closed form
    (default: the sum of ``kl_per_dimension``).

What a model does not provide is reported as "n/a", never an error.

Lecture (keys in ``docs/lectures.md``): [Mattei-DGM, "Maximum likelihood for DLVMs via importance
sampling"] (the estimate of :math:`\log p_\theta(x)`), [Mattei-DGM, "Maximum likelihood for DLVM"]
(:math:`\mathcal L_1 \le \dots \le \mathcal L_K \to \log p_\theta(x)`), [Isachenko-L4,
"Variational decomposition"] (:math:`\log p(x) - \mathcal L_1 = \mathrm{KL}(q \,\|\, p(z \mid
x))`), [VAE-HVAE-Diffusion, "Strengths and weaknesses of VAEs"] (posterior collapse: inactive
units, zero KL).
"""

import dataclasses
import math
import time

import numpy as np

from scratchdgm import autodiff as _ad
from scratchdgm import numerics as _num
from scratchdgm.estimators import effective_sample_size
from scratchdgm.progress import progress as _progress
from scratchdgm.threads import blas_threads
from scratchdgm.validation import check_positive_int, check_random_state, check_real

__all__ = ["evaluate", "EvaluationReport", "DEFAULT_KS"]

#: the K of the bounds reported by default (Burda et al. 2016, Table 1 and §5: K = 5000)
DEFAULT_KS = (1, 5, 50, 500, 5000)

NA = "n/a"


@dataclasses.dataclass
class EvaluationReport:
    r"""What :func:`evaluate` measured. Every number is in nats per data point.

    Attributes
    ----------
    model : str
        The model's class and latent size.
    data : dict
        ``description`` (what the caller said: data set, split, binarisation; or "not given"),
        ``n_points``, ``n_features`` and ``values`` (binary or the range of the data), as
        measured.
    ks : list of int
    elbo : dict
        ``{"mean", "sem"}`` of :math:`\hat{\mathcal L}_1` over the points (``sem``: standard error
        of the mean over points).
    bounds : dict of int -> dict
        :math:`\hat{\mathcal L}_K` for each K of ``ks``, ``{"mean", "sem", "groups"}``
        (``groups``: the :math:`\lfloor K_{\max} / K \rfloor` independent estimates averaged per
        point).
    log_likelihood : dict
        ``{"k", "mean", "sem"}`` of the importance-sampled :math:`\log \hat p(x)` with
        :math:`K_{\max}` samples.
    ess : dict
        The effective sample size of the :math:`K_{\max}` weights of each point, summarised over
        points: ``k``, ``mean``, ``std``, ``min``, ``q10``, ``median``, ``q90``, and
        ``mean_fraction`` (mean ESS / K).
    active_units : dict or "n/a"
        Per latent layer ``{"active", "dim", "threshold", "activity"}``: units whose
        posterior mean varies over the data, :math:`\mathrm{Var}_x(\mathbb E_q[z_u]) >`
        ``threshold`` (Burda et al. 2016, §5.2).
    kl_per_dimension : dict or "n/a"
        Per latent layer, an array of :math:`d_\text{layer}` mean KLs (a list in
        :meth:`as_dict`).
    kl_total : dict or "n/a"
        Per latent layer, the mean total KL :math:`\mathrm{KL}(q \,\|\, p)`.
    seconds : float
    per_point : dict of ndarray
        ``elbo``, ``log_likelihood``, ``ess`` and ``bound_K`` per point (not in :meth:`as_dict`).
    """

    model: str
    data: dict
    ks: list
    elbo: dict
    bounds: dict
    log_likelihood: dict
    ess: dict
    active_units: object
    kl_per_dimension: object
    kl_total: object
    seconds: float
    per_point: dict = dataclasses.field(repr=False, default_factory=dict)

    def as_dict(self):
        r"""Everything but ``per_point``, JSON-ready (plain floats, ints, lists, str keys; NaN as
        None)."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
               if f.name != "per_point"}
        out["bounds"] = {str(k): v for k, v in self.bounds.items()}
        return _json_ready(out)

    def format(self):
        r"""A readable table of the report (what ``scratchdgm eval`` prints)."""
        k_max = self.log_likelihood["k"]
        lines = [f"scratchdgm.evaluate: {self.model} on {self.data['n_points']} points",
                 f"data: {_describe(self.data)}",
                 "bounds, nats per point (mean +/- standard error over points):",
                 f"  {'ELBO = L_1':<22}{_pm(self.elbo)}"]
        for k, b in self.bounds.items():
            if k not in (1, k_max):
                lines.append(f"  {'L_' + str(k):<22}{_pm(b)}"
                             + (f"   ({b['groups']} groups of {k} per point)"
                                if b["groups"] > 1 else ""))
        lines.append(f"  {'log p(x) = L_' + str(k_max):<22}{_pm(self.log_likelihood)}"
                     f"   (importance sampled, K = {k_max})")
        gap = self.log_likelihood["mean"] - self.elbo["mean"]
        lines.append(f"  {'log p(x) - ELBO':<22}{gap:>10.3f}"
                     f"   (estimates KL(q || p(z|x)), what the ELBO loses)")
        e = self.ess
        lines.append(f"effective sample size of the K = {e['k']} weights, over points: mean "
                     f"{e['mean']:.1f} ({100 * e['mean_fraction']:.1f}% of K), median "
                     f"{e['median']:.1f}, 10-90%: {e['q10']:.1f}-{e['q90']:.1f}, min "
                     f"{e['min']:.2f}")
        if self.active_units == NA:
            lines.append(f"active units: {NA}")
        else:
            for layer, a in self.active_units.items():
                lines.append(f"active units ({layer}): {a['active']} / {a['dim']} (variance "
                             f"over the data of the posterior mean > {a['threshold']:g})")
        totals = self.kl_total if self.kl_total != NA else {}
        per_dim = self.kl_per_dimension if self.kl_per_dimension != NA else {}
        for layer in dict.fromkeys([*per_dim, *totals]):
            total = totals.get(layer)
            text = (" ".join(f"{v:.2f}" for v in per_dim[layer]) if layer in per_dim
                    else f"{NA} (not given: undefined when the prior does not factorise)")
            lines.append(f"KL(q || p) per dimension ({layer}): {text}"
                         + (f"; total {total:.3f}" if total is not None else ""))
        if not per_dim and not totals:
            lines.append(f"KL(q || p) per dimension: {NA}")
        lines.append(f"took {self.seconds:.1f} s")
        return "\n".join(lines)

    def __str__(self):
        return self.format()


def _pm(stat):
    sem = stat.get("sem")
    return f"{stat['mean']:>10.3f}" + (f" +/- {sem:.3f}" if sem is not None and
                                       np.isfinite(sem) else "")


def _describe(data):
    d = data.get("description")
    text = (", ".join(f"{k}={v}" for k, v in d.items()) if isinstance(d, dict) else str(d))
    return f"{text} ({data['n_points']} x {data['n_features']}, values {data['values']})"


def _json_ready(x):
    if isinstance(x, dict):
        return {str(k): _json_ready(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_json_ready(v) for v in x]
    if isinstance(x, np.ndarray):
        return _json_ready(x.tolist())
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    if isinstance(x, (int, np.integer)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        return float(x) if math.isfinite(x) else None
    return x


def _check_ks(ks):
    if isinstance(ks, str) or not hasattr(ks, "__iter__"):
        raise TypeError(f"evaluate: ks must be a sequence of ints >= 1 such as "
                        f"(1, 5, 50, 500, 5000), got {ks!r}")
    values = sorted({check_positive_int(k, "each K of ks", "evaluate") for k in ks})
    if not values:
        raise ValueError("evaluate: ks is empty; expected at least one K, e.g. (1, 5000)")
    return values


def _log_weights(model, x, k, rng):
    """The model's log-weights as a float64 array of shape (k, len(x)), checked."""
    lw = model.log_weights(x, k, rng)
    lw = np.asarray(lw.data if isinstance(lw, _ad.Tensor) else lw, dtype=np.float64)
    if lw.shape != (k, len(x)):
        raise ValueError(f"evaluate: {type(model).__name__}.log_weights(x, k={k}, rng) returned "
                         f"shape {lw.shape}; the protocol expects (k, len(x)) = ({k}, {len(x)})")
    return lw


def _summary(values):
    n = len(values)
    sem = float(np.std(values, ddof=1) / math.sqrt(n)) if n > 1 else float("nan")
    return {"mean": float(np.mean(values)), "sem": sem}


def _values(X):
    if np.all((X == 0) | (X == 1)):
        return "binary 0/1"
    return f"in [{X.min():.3g}, {X.max():.3g}]"


def _optional(model, name, *args, **kwargs):
    """``model.name(*args, **kwargs)`` if the model provides it, else None."""
    method = getattr(model, name, None)
    return None if method is None else method(*args, **kwargs)


def evaluate(model, X, *, ks=DEFAULT_KS, random_state=None, data_description=None,
             chunk_size=50_000, activity_threshold=0.01, progress=True):
    r"""Evaluate a deep latent-variable model on data ``X``: bounds, log-likelihood, effective
    sample size, active units and KL per dimension.

    Parameters
    ----------
    model : object following the protocol of the module docstring
        :class:`~scratchdgm.VAE`, :class:`~scratchdgm.IWAE`,
        :class:`~scratchdgm.models.deep.LinearGaussianLVM`, ...
    X : array_like, shape (n, p)
        The data, as the model takes it (binary for a Bernoulli likelihood: the test set
        binarised once).
    ks : sequence of int, default (1, 5, 50, 500, 5000)
        The K of the bounds :math:`\mathcal L_K`; the largest is the K of the log-likelihood.
    random_state : None, int or numpy.random.Generator
    data_description : str or dict, optional
        What the caller knows of ``X``: data set, split, binarisation (e.g. ``{"data":
        "digits", "split": "test", "binarisation": "once, seed 123"}``); recorded in the
        report beside what the evaluator measures itself (size, binary or not).
    chunk_size : int, default 50000
        At most about this many (sample, point) pairs go through the model at once; the
        log-weights of :math:`\max(\text{ks})` samples are kept for at most
        :math:`\max(1, \text{chunk\_size} / K_{\max})` points at a time.
    activity_threshold : float, default 0.01
        A unit is active when the variance over the data of its posterior mean exceeds it.
    progress : bool, default True
        Progress bar over the points (:func:`scratchdgm.progress.progress`: only on a
        terminal).

    Returns
    -------
    EvaluationReport

    Notes
    -----
    With :math:`\log w_{ik}`, :math:`k = 1..K_{\max}`, the log-weights of point :math:`x_i`
    (module docstring):

    .. math::

        \hat{\mathcal L}_K(x_i) = \frac1G \sum_{g=1}^G \log \frac1K \sum_{k=(g-1)K+1}^{gK}
        w_{ik}, \qquad \mathrm{ESS}_i = \frac{(\sum_k w_{ik})^2}{\sum_k w_{ik}^2},

    and the report gives their means over the points. :math:`\log p(x) - \mathcal L_1 =
    \mathrm{KL}(q(z \mid x) \,\|\, p(z \mid x))` ([Isachenko-L4, "Variational
    decomposition"]), so the line "log p(x) - ELBO" estimates that KL (from below, by the
    remaining gap of :math:`\mathcal L_{K_{\max}}`).

    References
    ----------
    Burda, Grosse & Salakhutdinov (2016), *Importance weighted autoencoders*, ICLR: eq. 8 (the
    bound), Theorem 1 (monotone in K), §5 (log-likelihood with K = 5000), §5.2 (active units,
    eq. 15). Kong (1992) and Owen (2013), *Monte Carlo theory, methods and examples*, §9.3: the
    effective sample size.

    Examples
    --------
    >>> import numpy as np, scratchdgm as sd
    >>> from scratchdgm.models.deep import LinearGaussianLVM
    >>> X = np.random.default_rng(0).standard_normal((50, 4))
    >>> model = LinearGaussianLVM(sd.PPCA(2).fit(X), proposal="posterior")
    >>> report = sd.evaluate(model, X, ks=(1, 10), random_state=0, progress=False)
    >>> bool(np.isclose(report.log_likelihood["mean"], model.exact_log_likelihood(X).mean()))
    True
    """
    t0 = time.perf_counter()
    X = model.check_data(X)
    ks = _check_ks(ks)
    rng = check_random_state(random_state, "evaluate")
    chunk_size = check_positive_int(chunk_size, "chunk_size", "evaluate")
    threshold = check_real(activity_threshold, "activity_threshold", "evaluate", low=0.0)
    n, k_max = len(X), ks[-1]
    k_chunk = min(k_max, chunk_size)
    batch = max(1, chunk_size // k_max)
    per_point = {"elbo": np.empty(n), "log_likelihood": np.empty(n), "ess": np.empty(n),
                 **{f"bound_{k}": np.empty(n) for k in ks}}
    bar = _progress(total=n, desc="evaluate", unit="pt", enabled=progress)
    with _ad.no_grad(), blas_threads(1):
        for start in range(0, n, batch):
            x = X[start:start + batch]
            rows = slice(start, start + len(x))
            log_w = np.empty((k_max, len(x)))
            for s in range(0, k_max, k_chunk):
                kc = min(k_chunk, k_max - s)
                log_w[s:s + kc] = _log_weights(model, x, kc, rng)
            per_point["elbo"][rows] = log_w.mean(axis=0)
            for k in ks:
                g = k_max // k                       # disjoint groups of k draws
                groups = log_w[:g * k].reshape(g, k, len(x))
                per_point[f"bound_{k}"][rows] = _num.log_mean_exp(groups, axis=1).mean(axis=0)
            per_point["log_likelihood"][rows] = _num.log_mean_exp(log_w, axis=0)
            per_point["ess"][rows] = effective_sample_size(log_w, axis=0)
            bar.update(len(x))
    bar.close()

    ess = per_point["ess"]
    means = _optional(model, "posterior_means", X)
    if means is None:
        means = {"z": model.transform(X)}
    active = {}
    for layer, m in means.items():
        activity = np.var(np.asarray(m, dtype=np.float64), axis=0)
        active[layer] = {"active": int(np.sum(activity > threshold)), "dim": int(m.shape[1]),
                         "threshold": threshold, "activity": activity}
    per_dim = _optional(model, "kl_per_dimension", X, random_state=rng)
    totals = _optional(model, "kl_total", X, random_state=rng)
    if totals is None and per_dim:
        totals = {layer: float(np.sum(v)) for layer, v in per_dim.items()}
    sizes = ", ".join(f"{layer} {a['dim']}" for layer, a in active.items())
    return EvaluationReport(
        model=f"{type(model).__name__} (latent {sizes})",
        data={"description": data_description if data_description is not None else
              "not given (pass data_description= to record the data set, split and "
              "binarisation)",
              "n_points": n, "n_features": int(X.shape[1]), "values": _values(X)},
        ks=list(ks),
        elbo=_summary(per_point["elbo"]),
        bounds={k: {**_summary(per_point[f"bound_{k}"]), "groups": k_max // k} for k in ks},
        log_likelihood={"k": k_max, **_summary(per_point["log_likelihood"])},
        ess={"k": k_max, "mean": float(ess.mean()), "std": float(ess.std()),
             "min": float(ess.min()), "q10": float(np.quantile(ess, 0.1)),
             "median": float(np.median(ess)), "q90": float(np.quantile(ess, 0.9)),
             "mean_fraction": float(ess.mean() / k_max)},
        active_units=active or NA,
        kl_per_dimension={layer: np.asarray(v, dtype=np.float64)
                          for layer, v in per_dim.items()} if per_dim else NA,
        kl_total=totals if totals else NA,
        seconds=time.perf_counter() - t0,
        per_point=per_point,
    )
