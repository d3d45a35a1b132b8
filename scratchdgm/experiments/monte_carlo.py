r"""Experiment 1: simple Monte Carlo against importance sampling, on an integral known exactly.

The claims ([Mattei-DGM, "Beyond simple MC: importance sampling"], [Mattei-DGM, "The optimal
importance sampling proposal"], [Mattei-S2D, "Aparté: Monte Carlo and importance sampling"] in
``docs/lectures.md``):

1. simple Monte Carlo is unbiased with variance :math:`\mathrm{Var}_p[f]/K`;
2. importance sampling is unbiased, with variance :math:`\mathrm{Var}_q[f p / q] / K`;
3. the proposal :math:`q^\star \propto f p` has zero variance (for :math:`f \ge 0`);
4. a poor proposal does worse than simple Monte Carlo;
5. a proposal with lighter tails than the target gives weights of infinite variance.

The decks state the heavier-tails condition only; the demonstration of what goes wrong without
it -- the effective sample size per draw collapsing towards 0 as K grows, the estimates usually
too small with rare huge ones, :math:`K \cdot \widehat{\mathrm{Var}}` jumping from run to run --
is ours.

The integral: :math:`p = \mathcal N(0, 1)`, :math:`f(x) = e^{a x}` with :math:`a = 1`, so that

.. math::

    I = \mathbb E_p[e^{a x}] = e^{a^2 / 2}, \qquad
    q^\star(x) = \frac{f(x) p(x)}{I} = \mathcal N(x \mid a, 1),

and for every Gaussian proposal :math:`q = \mathcal N(b, s^2)` the variance is known:

.. math::

    \mathbb E_q\Big[\Big(\frac{f p}{q}\Big)^2\Big] = \frac{s}{\sqrt{2\alpha}}
    \exp\Big(\frac{\beta^2}{4 \alpha} + \frac{b^2}{2 s^2}\Big), \qquad
    \alpha = 1 - \frac{1}{2 s^2}, \quad \beta = 2a - \frac{b}{s^2},

finite only if :math:`s^2 > 1/2`. The proposals: :math:`p` itself (simple Monte Carlo),
:math:`q^\star = \mathcal N(1, 1)`, a wide :math:`\mathcal N(1, 1.5^2)`, a poor
:math:`\mathcal N(-1, 1)` (mass where :math:`f p` is small) and a light-tailed
:math:`\mathcal N(1, 0.6^2)` (:math:`s^2 = 0.36 < 1/2`). The estimators are those of
:mod:`scratchdgm.estimators`.

Numbers of a full run (``scratchdgm experiment monte-carlo``, seed 0; 7 s of CPU, 48 s wall on a
shared 2-core machine under load), 10000 independent runs per K, :math:`I = e^{1/2} = 1.648721`:

==================  =================  ==================================  ================
proposal            per-draw variance  K times the variance of the          ESS / K at
                    (exact)            estimate, K = 10, 100, 1000          K = 100, 100000
==================  =================  ==================================  ================
simple MC           4.671              4.35, 4.69, 4.65                    (1, 1)
q* = N(1, 1)        0                  3e-30, 4e-28, 5e-25 (rounding)      --
wide N(1, 1.5^2)    0.5509             0.553, 0.559, 0.558                 0.626, 0.624
poor N(-1, 1)       145.7              129.8, 138.8, 140.1                 0.427, 0.364
light N(1, 0.6^2)   infinite           8.3, 31.9, 28.4                     0.245, 0.0096
==================  =================  ==================================  ================

The limits of ESS / K are 0.6248 (wide), 0.3679 (poor) and 0 (light). With the light-tailed
proposal the mean of the 10000 estimates at K = 1000 is still :math:`0.998 \pm 0.001\, I`
(unbiased), but 63.8% of them fall below I (79.4% at K = 1): the rare huge ones make up for the
rest.
"""

import math
import pathlib
import time

import numpy as np

from scratchdgm import estimators as _est
from scratchdgm.distributions import DiagNormal
from scratchdgm.experiments import ExperimentResult
from scratchdgm.progress import progress

NAME = "monte-carlo"
SUMMARY = ("simple MC vs importance sampling on an exact integral: the optimal, a poor and a "
           "light-tailed proposal")

#: f(x) = exp(A x) under p = N(0, 1)
A = 1.0

#: name -> (mean b, standard deviation s, label) of the Gaussian proposal N(b, s^2)
PROPOSALS = {
    "simple": (0.0, 1.0, "simple MC (q = p)"),
    "optimal": (A, 1.0, "optimal q* = N(1, 1)"),
    "wide": (A, 1.5, "wide q = N(1, 1.5^2)"),
    "poor": (-1.0, 1.0, "poor q = N(-1, 1)"),
    "light": (A, 0.6, "light tails q = N(1, 0.6^2)"),
}


def exact_integral(a=A):
    r""":math:`I = \mathbb E_{\mathcal N(0, 1)}[e^{a x}] = e^{a^2/2}`."""
    return math.exp(a * a / 2.0)


def second_moment(b, s, a=A):
    r""":math:`\mathbb E_q[(f p / q)^2]` for :math:`q = \mathcal N(b, s^2)`, :math:`f = e^{a x}`,
    :math:`p = \mathcal N(0, 1)` (formula in the module docstring); ``inf`` when
    :math:`s^2 \le 1/2`. With ``a = 0`` it is :math:`\mathbb E_q[w^2]`, :math:`w = p / q`."""
    alpha = 1.0 - 1.0 / (2.0 * s * s)
    if alpha <= 0:
        return math.inf
    beta = 2.0 * a - b / (s * s)
    return s / math.sqrt(2.0 * alpha) * math.exp(beta**2 / (4.0 * alpha) + b * b / (2 * s * s))


def per_draw_variance(name):
    r""":math:`\mathrm{Var}_q[f p / q]` of proposal ``name`` (0 for :math:`q^\star`, up to
    rounding; ``inf`` for the light-tailed one)."""
    b, s, _ = PROPOSALS[name]
    return max(second_moment(b, s) - exact_integral() ** 2, 0.0)


def ess_limit(name):
    r"""The limit of ESS / K as K grows for the weights :math:`w = p / q`:
    :math:`1 / \mathbb E_q[w^2]` (0 when the weights have infinite variance)."""
    b, s, _ = PROPOSALS[name]
    return 1.0 / second_moment(b, s, a=0.0)


def _f(x):
    return np.exp(A * np.asarray(x)[..., 0])


def _gaussians(b, s, reps):
    """``reps`` independent copies of N(b, s^2): a batch, so one call makes ``reps`` runs."""
    return DiagNormal(np.full((reps, 1), b), np.full((reps, 1), math.log(s)), backend="numpy")


def estimates(name, k, reps, rng):
    r"""``reps`` independent estimates :math:`\hat I_K` of :math:`I` with proposal ``name``,
    an ndarray of shape (reps,)."""
    b, s, _ = PROPOSALS[name]
    p = _gaussians(0.0, 1.0, reps)
    if name == "simple":
        return _est.monte_carlo(_f, p, k, rng).value
    return _est.importance_sampling(_f, p, _gaussians(b, s, reps), k, rng).value


def ess_fractions(name, k, reps, rng):
    r"""ESS / K of the weights :math:`w = p / q` of ``reps`` runs of K draws, shape (reps,)."""
    b, s, _ = PROPOSALS[name]
    e = _est.importance_sampling(None, _gaussians(0.0, 1.0, reps), _gaussians(b, s, reps), k, rng)
    return _est.effective_sample_size(e.log_w, axis=0) / k


def running_estimates(name, k, runs, rng):
    r""":math:`\hat I_j / I` for :math:`j = 1..K` along ``runs`` single runs of proposal
    ``name``, shape (runs, K): the running average of the terms :math:`w_k f(x_k)`."""
    b, s, _ = PROPOSALS[name]
    e = _est.importance_sampling(_f, _gaussians(0.0, 1.0, runs), _gaussians(b, s, runs), k, rng)
    terms = np.exp(e.log_w) * _f(e.samples)                     # (K, runs)
    return (np.cumsum(terms, axis=0) / np.arange(1, k + 1)[:, None]).T / exact_integral()


def run(out_dir, quick=False, seed=0):
    r"""Measure every claim of the module docstring; write ``monte-carlo.png``."""
    t0 = time.perf_counter()
    reps = 2000 if quick else 10000
    ks = [1, 3, 10, 30, 100, 300, 1000]
    ess_ks = [10, 100, 1000, 10_000] + ([] if quick else [100_000])
    I = exact_integral()
    numbers = {"a": A, "I": I, "reps": reps, "proposals": {}, "variance": {}, "ess": {}}
    bar = progress(total=len(PROPOSALS), desc="proposals", unit="q")
    for i, (name, (b, s, label)) in enumerate(PROPOSALS.items()):
        var = per_draw_variance(name)
        numbers["proposals"][name] = {"mean": b, "sd": s, "label": label,
                                      "per_draw_variance": var if math.isfinite(var) else None,
                                      "ess_limit": ess_limit(name)}
        rows = {"k": ks, "mean_ratio": [], "se_mean_ratio": [], "median_ratio": [],
                "k_times_variance": [], "std_ratio": [], "max_abs_error_ratio": []}
        for k in ks:
            est = estimates(name, k, reps, np.random.default_rng([seed, 1, i, k]))
            ratio = est / I
            rows["mean_ratio"].append(float(ratio.mean()))
            rows["se_mean_ratio"].append(float(ratio.std(ddof=1) / math.sqrt(reps)))
            rows["median_ratio"].append(float(np.median(ratio)))
            rows["k_times_variance"].append(float(k * est.var(ddof=1)))
            rows["std_ratio"].append(float(ratio.std(ddof=1)))
            rows["max_abs_error_ratio"].append(float(np.max(np.abs(ratio - 1.0))))
            rows.setdefault("fraction_below_I", []).append(float(np.mean(ratio < 1.0)))
        if name != "light":
            del rows["fraction_below_I"]
        numbers["variance"][name] = rows
        if name in ("wide", "poor", "light"):
            ess = {"k": ess_ks, "median_fraction": [], "mean_fraction": []}
            for k in ess_ks:
                r = max(20, min(reps, 1_000_000 // k))   # about 10^6 draws per K
                frac = ess_fractions(name, k, r, np.random.default_rng([seed, 2, i, k]))
                ess["median_fraction"].append(float(np.median(frac)))
                ess["mean_fraction"].append(float(frac.mean()))
            numbers["ess"][name] = ess
        bar.update(1)
    bar.close()
    numbers["running"] = {name: running_estimates(name, 10_000 if quick else 100_000, 4,
                                                  np.random.default_rng([seed, 3, i]))
                          for i, name in enumerate(("wide", "light"))}
    figure = pathlib.Path(_plot(numbers, pathlib.Path(out_dir) / "monte-carlo.png"))
    del numbers["running"]
    light = numbers["variance"]["light"]
    numbers["light_fraction_below_I"] = {"k": ks, "fraction": light.pop("fraction_below_I")}
    numbers["seconds"] = time.perf_counter() - t0
    return ExperimentResult(NAME, numbers, [figure], _report(numbers))


def _report(numbers):
    lines = [f"I = E_N(0,1)[exp(x)] = e^(1/2) = {numbers['I']:.6f}; {numbers['reps']} "
             f"independent runs per K",
             f"{'proposal':<30}{'Var per draw':>14}   K*Var at K = "
             + ", ".join(str(k) for k in numbers["variance"]["simple"]["k"][2::2])
             + "   mean I_K / I at K = 1000"]
    for name, prop in numbers["proposals"].items():
        v = numbers["variance"][name]
        var = prop["per_draw_variance"]
        lines.append(f"{prop['label']:<30}{'inf' if var is None else f'{var:.4g}':>14}   "
                     + ", ".join(f"{x:.4g}" for x in v["k_times_variance"][2::2])
                     + f"   {v['mean_ratio'][-1]:.4f} +/- {v['se_mean_ratio'][-1]:.4f}")
    lines.append("ESS / K of the weights p/q (median over runs):")
    for name, e in numbers["ess"].items():
        lines.append(f"  {numbers['proposals'][name]['label']:<28}"
                     + ", ".join(f"K={k}: {f:.4f}" for k, f in zip(e["k"], e["median_fraction"]))
                     + f"   (limit {numbers['proposals'][name]['ess_limit']:.4f})")
    below = numbers["light_fraction_below_I"]
    lines.append("light tails: share of the estimates below I, "
                 + ", ".join(f"K={k}: {100 * f:.1f}%" for k, f in zip(below["k"], below["fraction"]))
                 + " (the rare huge ones keep the mean right)")
    lines.append(f"({numbers['seconds']:.1f} s)")
    return "\n".join(lines)


def _plot(numbers, path):
    from scratchdgm.plots.deep import _plt, _save

    plt = _plt()
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.3))
    ax = axes[0]
    for i, (name, prop) in enumerate(numbers["proposals"].items()):
        v = numbers["variance"][name]
        k = np.array(v["k"])
        if name == "optimal":
            ax.plot([], [], "o", color=f"C{i}", label=f"{prop['label']}: error "
                    f"< {max(v['max_abs_error_ratio']):.0e} I")
            continue
        ax.plot(k, v["std_ratio"], "o", color=f"C{i}", label=prop["label"])
        if prop["per_draw_variance"] is not None:
            ax.plot(k, np.sqrt(prop["per_draw_variance"] / k) / numbers["I"], "-", color=f"C{i}",
                    alpha=0.6)
    ax.set(xscale="log", yscale="log", xlabel="K", ylabel="std of $\\hat I_K$ / I",
           title="spread of the estimate (lines: exact $\\sqrt{Var/K}$)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    ax = axes[1]
    for i, (name, prop) in enumerate(numbers["proposals"].items()):
        if name not in numbers["ess"]:
            continue
        e = numbers["ess"][name]
        ax.plot(e["k"], e["median_fraction"], "o-", color=f"C{i}", label=prop["label"])
        if prop["ess_limit"] > 0:
            ax.axhline(prop["ess_limit"], color=f"C{i}", ls=":", alpha=0.7)
    ax.set(xscale="log", yscale="log", xlabel="K", ylabel="ESS / K (median over runs)",
           title="effective sample size of w = p/q (dotted: limits)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    ax = axes[2]
    for name, runs in numbers["running"].items():
        i = list(numbers["proposals"]).index(name)
        k = np.arange(1, runs.shape[1] + 1)
        for j, r in enumerate(runs):
            ax.plot(k, r, color=f"C{i}", lw=0.8, alpha=0.8,
                    label=numbers["proposals"][name]["label"] if j == 0 else None)
    ax.axhline(1.0, color="k", lw=1)
    ax.set(xscale="log", xlabel="K", ylabel="running $\\hat I_K$ / I", ylim=(0.5, 1.5),
           title="single runs: light tails jump")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.suptitle("Monte Carlo and importance sampling for I = E[exp(x)], x ~ N(0, 1)")
    fig.tight_layout()
    return _save(fig, path)
