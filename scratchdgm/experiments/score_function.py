r"""Experiment 3: score-function (REINFORCE) against reparametrised gradients.

The claims ([Mattei-DGM, "Now the tricky part: $\nabla_{\gamma}$"], [Mattei-DGM,
"Reparametrisation trick for $\nabla_{\gamma}$"], [Su-DGM, "Estimating
$\partial \mathbb{E}_{q_{\phi}(z|x)}[\ln p_{\theta}(x|z)]/\partial \phi$"], [Su-DGM, "Estimating
$\partial \mathbb{E}_{q_{\phi}(z|x)}[\ln p_{\theta}(x|z)]/\partial \theta$"] in
``docs/lectures.md``): to differentiate :math:`\mathbb E_{q_\gamma}[f(z)]` in :math:`\gamma`,

* the score function :math:`\frac1K \sum_k f(z_k) \nabla_\gamma \log q_\gamma(z_k)` and the
  reparametrisation :math:`\frac1K \sum_k \nabla_\gamma f(\mu_\gamma + \sigma_\gamma \odot
  \varepsilon_k)` are both unbiased;
* the score function's variance is far larger (both fall as 1/K); a baseline (control variate)
  cuts it;
* "estimate the expectation first, then differentiate" -- average :math:`f(z_k)` over draws
  made without a path to :math:`\gamma`, then take the gradient -- is right for a parameter of
  :math:`f` (:math:`\theta`) and wrong for one of :math:`q` (:math:`\gamma`): its gradient there
  is 0 whatever the true one.

Two settings (estimators of :mod:`scratchdgm.estimators`):

*Gaussian, exact.* :math:`q = \mathcal N(\mu, \mathrm{diag}\,\sigma^2)` in d = 3 dimensions,
:math:`f(z) = -\frac12 \lVert z - c \rVert^2` (a Gaussian log-likelihood up to a constant, with
:math:`c` playing :math:`\theta`). Then :math:`\mathbb E_q[f] = -\frac12 (\lVert \mu - c
\rVert^2 + \sum_j \sigma_j^2)`, so

.. math::

    \nabla_\mu = c - \mu, \qquad \nabla_{\log\sigma_j} = -\sigma_j^2, \qquad
    \nabla_c = \mu - c,

and the variance of one draw of each estimator is computed exactly by Gauss--Hermite quadrature
(the terms are polynomials in :math:`\varepsilon`). R independent replicates are one batch.

*A trained VAE.* The gradient of the reconstruction term :math:`\sum_i \mathbb E_{q_\gamma(z
\mid x_i)}[\log p_\theta(x_i \mid z)]` of test images with respect to the encoder's outputs
:math:`\mu_\gamma(x_i), \log\sigma_\gamma(x_i)` (the variational parameters
:math:`\lambda_n, \eta_n` of [Su-DGM, "Learning under VB-EM Framework"]; the gradient in the
encoder's weights is this one times the encoder's Jacobian). No exact value: the two estimators'
means are compared to each other, coordinate by coordinate, in units of their standard errors.

Numbers of a full run (``scratchdgm experiment score-function``, seed 0; 33 s of CPU, 178 s wall
on a shared 2-core machine under load).

Gaussian, 20000 replicates per K. K times the variance of the :math:`\mu`-gradient, per
coordinate (exact per draw: reparametrised 0.25, 1, 4; score function 310.9, 93.7, 44.0):

======================================  ===========================  ====================
estimator                               K = 1                        K = 100
======================================  ===========================  ====================
reparametrised                          0.251, 0.994, 3.97           0.248, 1.01, 4.04
score function                          306.8, 90.9, 40.7            311.0, 94.4, 44.1
score function, leave-one-out baseline  (K = 2) 233.3, 68.2, 32.8    117.2, 34.5, 19.0
======================================  ===========================  ====================

The score function's variance is 447 times the reparametrised one for :math:`\mu` and 303 times
for :math:`\log\sigma` (means over coordinates and K); the baseline keeps 43% and 50% of it at
K = 10. Every mean is within 3.2 standard errors of the exact gradient (3 estimators, 6 values
of K, 9 coordinates). Estimate first, then differentiate: gradient in :math:`\mu` exactly
(0, 0, 0) against the exact (0.5, 2, -2), in :math:`\log\sigma` (0, 0, 0) against (-0.25, -1,
-4); in :math:`c` (-0.500, -1.999, 2.007) against (-0.5, -2, 2).

VAE trained 100 epochs, 10 test images, 2000 replicates: the score function's total variance is
837 times the reparametrised one at K = 1 (831 at K = 10), 11 times with the leave-one-out
baseline at K = 10; the means agree (mean :math:`z^2` over the 200 coordinates 1.07 at K = 1,
1.01 at K = 10; no :math:`|z| > 3`).
"""

import math
import pathlib
import time

import numpy as np

from scratchdgm import autodiff as _ad
from scratchdgm import estimators as _est
from scratchdgm.distributions import DiagNormal
from scratchdgm.experiments import ExperimentResult
from scratchdgm.experiments._digits import trained_digits_vae
from scratchdgm.progress import progress

NAME = "score-function"
SUMMARY = "score-function vs reparametrised gradients: bias, variance against K, a baseline"

#: the Gaussian problem: q = N(MU, diag SIGMA^2), f(z) = -||z - C||^2 / 2
MU = np.array([0.5, -1.0, 1.5])
SIGMA = np.array([0.5, 1.0, 2.0])
C = np.array([1.0, 1.0, -0.5])

#: estimator name -> label
ESTIMATORS = {
    "reparam": "reparametrised",
    "score": "score function",
    "score_loo": "score function, leave-one-out baseline",
    "naive": "estimate first, then differentiate",
}


def exact_gradient():
    r"""``{"mu", "log_sigma", "c"}``: the exact gradient of :math:`\mathbb E_q[f]`."""
    return {"mu": C - MU, "log_sigma": -SIGMA**2, "c": MU - C}


def _per_draw_terms(eps):
    r"""One draw's gradient terms of each estimator at :math:`z = \mu + \sigma \varepsilon`,
    for ``eps`` of shape (..., d): ``{estimator: {parameter: array (..., d)}}``, written out by
    hand from the formulas (the reference the autodiff estimators are checked against)."""
    z = MU + SIGMA * eps
    f = -0.5 * np.sum((z - C) ** 2, axis=-1, keepdims=True)
    return {
        # d f(mu + sigma eps) / d(mu, log sigma, c)
        "reparam": {"mu": C - z, "log_sigma": (C - z) * SIGMA * eps, "c": z - C},
        # grad f + f * grad log q,  d log q / d mu = eps / sigma,  d log q / d log sigma = eps^2 - 1
        "score": {"mu": f * eps / SIGMA, "log_sigma": f * (eps**2 - 1), "c": z - C},
    }


def exact_per_draw_variance(nodes=8):
    r"""The variance of one draw of the reparametrised and score-function estimators, per
    parameter and coordinate, by Gauss--Hermite quadrature over :math:`\varepsilon \sim
    \mathcal N(0, I_3)` (exact: the terms are polynomials of degree at most 8 in each
    coordinate and ``nodes`` = 8 integrates degree 15 exactly)."""
    x, w = np.polynomial.hermite_e.hermegauss(nodes)
    w = w / math.sqrt(2 * math.pi)
    grid = np.stack(np.meshgrid(x, x, x, indexing="ij"), axis=-1).reshape(-1, 3)
    weight = np.prod(np.stack(np.meshgrid(w, w, w, indexing="ij"), axis=-1).reshape(-1, 3),
                     axis=-1)[:, None]
    out = {}
    for name, terms in _per_draw_terms(grid).items():
        out[name] = {}
        for param, g in terms.items():
            mean = np.sum(weight * g, axis=0)
            out[name][param] = np.sum(weight * g**2, axis=0) - mean**2
    return out


def _naive_gradient(f, q, params, k, rng):
    r"""Differentiate the Monte Carlo average :math:`\frac1K \sum_k f(z_k)` of draws made with
    ``q.sample`` (no path from the parameters of q to :math:`z_k`)."""
    z = q.sample((k,), rng)
    return _est.gradient(f(_ad.tensor(z)).mean(axis=0).sum(), params, "naive")


def gaussian_gradients(estimator, k, reps, rng):
    r"""``reps`` independent gradient estimates with K draws each:
    ``{"mu", "log_sigma", "c"}`` -> array (reps, 3). The replicates are a batch of ``reps``
    copies of the problem; the gradient of the sum with respect to copy r is copy r's
    estimate."""
    mu = _ad.tensor(np.tile(MU, (reps, 1)), requires_grad=True)
    log_sigma = _ad.tensor(np.tile(np.log(SIGMA), (reps, 1)), requires_grad=True)
    c = _ad.tensor(np.tile(C, (reps, 1)), requires_grad=True)
    q = DiagNormal(mu, log_sigma, backend="numpy")

    def f(z):
        d = z - c
        return -0.5 * (d * d).sum(axis=-1)

    params = [mu, log_sigma, c]
    if estimator == "reparam":
        g = _est.reparametrised_gradient(f, q, params, k, rng)
    elif estimator == "score":
        g = _est.score_function_gradient(f, q, params, k, rng)
    elif estimator == "score_loo":
        g = _est.score_function_gradient(f, q, params, k, rng, baseline="loo")
    else:
        g = _naive_gradient(f, q, params, k, rng)
    return dict(zip(("mu", "log_sigma", "c"), g))


def _z_scores(a, b):
    r"""Per coordinate, :math:`(\bar a - \bar b) / \sqrt{s_a^2 / R_a + s_b^2 / R_b}` for two sets of
    estimates of shape (R, ...) (b may be exact: an array without the replicate axis)."""
    if b.ndim == a.ndim:
        se = np.sqrt(a.var(axis=0, ddof=1) / len(a) + b.var(axis=0, ddof=1) / len(b))
        return (a.mean(axis=0) - b.mean(axis=0)) / se
    return (a.mean(axis=0) - b) / np.sqrt(a.var(axis=0, ddof=1) / len(a))


def vae_gradients(model, x, estimator, k, reps, rng):
    r"""``reps`` independent estimates of the gradient of :math:`\sum_i \mathbb E_{q_\gamma(z
    \mid x_i)}[\log p_\theta(x_i \mid z)]` with respect to :math:`(\mu_\gamma(x_i),
    \log\sigma_\gamma(x_i))`, an array of shape (reps, B, 2 d)."""
    with _ad.no_grad():
        q0 = model.encode(x)
    b, d = len(x), model.latent_dim
    tiled = np.tile(x, (reps, 1))
    mu = _ad.tensor(np.tile(q0.mu.data, (reps, 1)), requires_grad=True)
    log_sigma = _ad.tensor(np.tile(q0.log_sigma.data, (reps, 1)), requires_grad=True)
    q = DiagNormal(mu, log_sigma, backend=model.backend)

    def f(z):
        return model.observation.log_prob(tiled, model.decode(z))

    if estimator == "reparam":
        g = _est.reparametrised_gradient(f, q, [mu, log_sigma], k, rng)
    else:
        g = _est.score_function_gradient(f, q, [mu, log_sigma], k, rng,
                                         baseline="loo" if estimator == "score_loo" else None)
    model.zero_grad()                # the decoder's weights took gradients too: not ours
    return np.concatenate(g, axis=-1).reshape(reps, b, 2 * d)


def run(out_dir, quick=False, seed=0):
    r"""Measure both settings; write ``score-function.png``."""
    t0 = time.perf_counter()
    reps = 2000 if quick else 20000
    ks = [1, 2, 5, 10, 50, 100]
    exact = exact_gradient()
    exact_var = exact_per_draw_variance()
    gauss = {"k": ks, "reps": reps,
             "exact_gradient": {p: v.tolist() for p, v in exact.items()},
             "exact_per_draw_variance": {n: {p: v.tolist() for p, v in d.items()}
                                         for n, d in exact_var.items()},
             "estimators": {}}
    means_at_k10 = {}
    bar = progress(total=len(ESTIMATORS) * len(ks), desc="Gaussian gradients", unit="K")
    for i, name in enumerate(ESTIMATORS):
        rows = {"k": [], "k_times_variance": {p: [] for p in exact},
                "max_abs_z": {p: [] for p in exact}, "mean": {p: [] for p in exact}}
        for k in ks:
            bar.update(1)
            if name == "score_loo" and k < 2:
                continue
            g = gaussian_gradients(name, k, reps, np.random.default_rng([seed, 1, i, k]))
            rows["k"].append(k)
            for p in exact:
                rows["k_times_variance"][p].append((k * g[p].var(axis=0, ddof=1)).tolist())
                rows["mean"][p].append(g[p].mean(axis=0).tolist())
                with np.errstate(divide="ignore", invalid="ignore"):
                    z = _z_scores(g[p], exact[p])
                rows["max_abs_z"][p].append(float(np.max(np.abs(z))) if np.all(np.isfinite(z))
                                            else None)
            if k == 10:
                means_at_k10[name] = {p: g[p].mean(axis=0) for p in exact}
        gauss["estimators"][name] = rows
    bar.close()
    # variance ratio score / reparam of the mu gradient, mean over coordinates and K
    sf, rp = gauss["estimators"]["score"], gauss["estimators"]["reparam"]
    gauss["variance_ratio_score_over_reparam"] = {
        p: float(np.mean(np.array(sf["k_times_variance"][p]) / np.array(rp["k_times_variance"][p])))
        for p in ("mu", "log_sigma")}
    loo = gauss["estimators"]["score_loo"]
    j = loo["k"].index(10)
    gauss["variance_ratio_loo_over_score_at_k10"] = {
        p: float(np.mean(np.array(loo["k_times_variance"][p][j])
                         / np.array(sf["k_times_variance"][p][ks.index(10)])))
        for p in ("mu", "log_sigma")}

    epochs, n_images, vae_reps = (10, 5, 300) if quick else (100, 10, 2000)
    model, ds = trained_digits_vae(epochs, seed)
    x = ds.x_test_binary[:n_images]
    vae = {"epochs": epochs, "n_images": n_images, "reps": vae_reps, "k": [1, 10],
           "total_variance": {}, "mean_z_squared": {}, "fraction_abs_z_above_3": {}}
    grads = {}
    bar = progress(total=3 * len(vae["k"]), desc="VAE gradients", unit="K")
    for i, name in enumerate(("reparam", "score", "score_loo")):
        for k in vae["k"]:
            bar.update(1)
            if name == "score_loo" and k < 2:
                continue
            grads[(name, k)] = vae_gradients(model, x, name, k, vae_reps,
                                             np.random.default_rng([seed, 2, i, k]))
            vae["total_variance"].setdefault(name, []).append(
                float(np.sum(grads[(name, k)].var(axis=0, ddof=1))))
    bar.close()
    for name in ("score", "score_loo"):
        for k in vae["k"]:
            if (name, k) not in grads:
                continue
            z = _z_scores(grads[(name, k)], grads[("reparam", k)])
            vae["mean_z_squared"].setdefault(name, []).append(float(np.mean(z**2)))
            vae["fraction_abs_z_above_3"].setdefault(name, []).append(
                float(np.mean(np.abs(z) > 3)))
    vae["variance_ratio_score_over_reparam"] = [
        a / b for a, b in zip(vae["total_variance"]["score"], vae["total_variance"]["reparam"])]
    vae["variance_ratio_loo_over_reparam_at_k10"] = (vae["total_variance"]["score_loo"][0]
                                                    / vae["total_variance"]["reparam"][1])
    numbers = {"gaussian": gauss, "vae": vae}
    figure = pathlib.Path(_plot(numbers, means_at_k10, grads,
                               pathlib.Path(out_dir) / "score-function.png"))
    numbers["seconds"] = time.perf_counter() - t0
    return ExperimentResult(NAME, numbers, [figure], _report(numbers))


def _report(numbers):
    g, v = numbers["gaussian"], numbers["vae"]
    lines = [f"Gaussian q in d = 3, f(z) = -||z - c||^2 / 2, {g['reps']} replicates per K; "
             f"exact per-draw variance of the mu-gradient: reparametrised "
             f"{np.round(g['exact_per_draw_variance']['reparam']['mu'], 3).tolist()}, score "
             f"function {np.round(g['exact_per_draw_variance']['score']['mu'], 3).tolist()}",
             f"{'estimator':<40}{'K':>4}  {'K * Var, mu-gradient (per coordinate)':<40}"
             f"max |z| vs exact (mu, log sigma, c)"]
    for name, label in ESTIMATORS.items():
        r = g["estimators"][name]
        for j, k in enumerate(r["k"]):
            if k not in (1, 2, 10, 100):
                continue
            z = [r["max_abs_z"][p][j] for p in ("mu", "log_sigma", "c")]
            lines.append(f"{label:<40}{k:>4}  "
                         f"{str(np.round(r['k_times_variance']['mu'][j], 3).tolist()):<40}"
                         + ", ".join("0 variance" if v is None else f"{v:.1f}" for v in z))
    ratio = g["variance_ratio_score_over_reparam"]
    lines.append(f"variance score / reparametrised: mu {ratio['mu']:.1f}x, log sigma "
                 f"{ratio['log_sigma']:.1f}x; the leave-one-out baseline at K = 10 keeps "
                 f"{g['variance_ratio_loo_over_score_at_k10']['mu']:.2f} (mu), "
                 f"{g['variance_ratio_loo_over_score_at_k10']['log_sigma']:.2f} (log sigma) of "
                 f"the score function's variance")
    naive = g["estimators"]["naive"]["mean"]
    lines.append(f"estimate first, then differentiate (K = 1): gradient in mu "
                 f"{np.round(naive['mu'][0], 3).tolist()} (exact "
                 f"{np.round(g['exact_gradient']['mu'], 3).tolist()}), in c "
                 f"{np.round(naive['c'][0], 3).tolist()} (exact "
                 f"{np.round(g['exact_gradient']['c'], 3).tolist()})")
    lines.append(f"VAE ({v['epochs']} epochs, {v['n_images']} test images, {v['reps']} "
                 f"replicates), gradient in (mu, log sigma) of the encoder outputs: total variance "
                 f"score / reparametrised {', '.join(f'{r:.0f}x' for r in v['variance_ratio_score_over_reparam'])}"
                 f" at K = {', '.join(map(str, v['k']))}; with the baseline at K = 10 "
                 f"{v['variance_ratio_loo_over_reparam_at_k10']:.0f}x; score vs reparametrised "
                 f"means: mean z^2 {', '.join(f'{x:.2f}' for x in v['mean_z_squared']['score'])}, "
                 f"|z| > 3 for {', '.join(f'{100 * x:.1f}%' for x in v['fraction_abs_z_above_3']['score'])}"
                 f" of the coordinates")
    lines.append(f"({numbers['seconds']:.1f} s)")
    return "\n".join(lines)


def _plot(numbers, means_at_k10, grads, path):
    from scratchdgm.plots.deep import _plt, _save

    plt = _plt()
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    g = numbers["gaussian"]
    ax = axes[0]
    for i, (name, label) in enumerate(ESTIMATORS.items()):
        if name == "naive":
            continue
        r = g["estimators"][name]
        k = np.array(r["k"])
        var = np.mean(np.array(r["k_times_variance"]["mu"]), axis=1) / k
        ax.plot(k, var, "o", color=f"C{i}", label=label)
        if name in g["exact_per_draw_variance"]:
            ax.plot(k, np.mean(g["exact_per_draw_variance"][name]["mu"]) / k, "-",
                    color=f"C{i}", alpha=0.6)
    ax.set(xscale="log", yscale="log", xlabel="K", ylabel="variance (mean over coordinates)",
           title="Gaussian: variance of the mu-gradient (lines: exact)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    ax = axes[1]
    exact = {p: np.array(v) for p, v in g["exact_gradient"].items()}
    for i, (name, label) in enumerate(ESTIMATORS.items()):
        est = np.concatenate([means_at_k10[name][p] for p in exact])
        ax.plot(np.concatenate([exact[p] for p in exact]), est, "o^sx"[i], color=f"C{i}",
                label=label, alpha=0.8)
    lim = [min(np.min(v) for v in exact.values()) - 0.5,
           max(np.max(v) for v in exact.values()) + 0.5]
    ax.plot(lim, lim, "k-", lw=0.8)
    ax.set(xlabel="exact gradient (mu, log sigma, c)", ylabel=f"mean of {g['reps']} estimates, K = 10",
           title="Gaussian: unbiased, except estimate-then-differentiate")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    ax = axes[2]
    v = numbers["vae"]
    bins = np.linspace(-5, 5, 41)
    for i, (name, k) in enumerate((("score", 1), ("score_loo", 10))):
        z = _z_scores(grads[(name, k)], grads[("reparam", k)]).ravel()
        ratio = (v["variance_ratio_score_over_reparam"][0] if name == "score"
                 else v["variance_ratio_loo_over_reparam_at_k10"])
        ax.hist(np.clip(z, -5, 5), bins=bins, density=True, alpha=0.5, color=f"C{i + 1}",
                label=f"{ESTIMATORS[name]}, K = {k} (variance {ratio:.0f}x reparam.)")
    t = np.linspace(-5, 5, 201)
    ax.plot(t, np.exp(-t**2 / 2) / math.sqrt(2 * math.pi), "k-", lw=1, label="N(0, 1)")
    ax.set(xlabel="(mean score-function - mean reparametrised) / s.e., per coordinate",
           ylabel="density", title=f"VAE: the means agree ({v['n_images']} images, "
           f"{v['reps']} replicates)")
    ax.legend(fontsize=7)
    fig.suptitle("Gradients of an expectation: score function vs reparametrisation")
    fig.tight_layout()
    return _save(fig, path)
