r"""Experiment 2: naive Monte Carlo against importance sampling for :math:`p_\theta(x)`, on a
trained VAE.

The claim ([Isachenko-L4, "Naive Monte-Carlo estimation"] in ``docs/lectures.md``): the
likelihood of a latent-variable model is an expectation under the prior,

.. math::

    p_\theta(x) = \mathbb E_{z \sim p(z)}[p_\theta(x \mid z)]
    \approx \frac1K \sum_{k=1}^K p_\theta(x \mid z_k), \qquad z_k \sim p(z),

but the prior spreads its draws over codes that explain other images, while the encoder
:math:`q_\gamma(z \mid x)` puts them where the posterior is ("q usually puts its mass on a much
smaller region than the prior"). Importance sampling with that proposal,

.. math::

    p_\theta(x) \approx \frac1K \sum_{k=1}^K \frac{p_\theta(x \mid z_k)\, p(z_k)}{q_\gamma(z_k
    \mid x)}, \qquad z_k \sim q_\gamma(z \mid x),

has a far smaller spread for the same K ([Mattei-DGM, "Maximum likelihood for DLVMs via
importance sampling"]). Both estimates of :math:`p_\theta(x)` are unbiased; their logarithms are
biased low (Jensen), the naive one far more.

What is measured: a VAE trained on the digits protocol (:mod:`scratchdgm.experiments._digits`);
for each of the first test images (binarised once), R independent estimates of
:math:`\log p_\theta(x)` with each proposal for each K
(:func:`scratchdgm.estimators.importance_sampling`), against a reference
:math:`\log p_\theta(x)` by importance sampling with :math:`K = 10^5` draws from
:math:`q_\gamma`. Reported per K and proposal (means over the images): the standard deviation
of :math:`\log \hat p` over the R runs, its bias against the reference, the relative standard
deviation of :math:`\hat p` itself, and the effective sample size per draw.

Numbers of a full run (``scratchdgm experiment naive-vs-is``, seed 0: VAE trained 100 epochs,
20 test images, R = 200 runs per K; 63 s of CPU, 298 s wall on a shared 2-core machine under
load). Reference: mean :math:`\log p_\theta(x) = -23.923`. Means over the 20 images:

======  =================  =================  =================  =================
K       std of log p^:     bias of log p^:    std of log p^:     bias of log p^:
        naive              naive              importance s.      importance s.
======  =================  =================  =================  =================
1       9.70               -16.56             1.05               -0.56
10      3.96               -4.83              0.42               -0.13
100     1.54               -1.15              0.20               -0.03
1000    0.57               -0.19              0.09               -0.006
======  =================  =================  =================  =================

ESS / K at K = 10, 100, 1000: 0.111, 0.022, 0.007 from the prior against 0.594, 0.396, 0.263
from the encoder. For the same relative spread of :math:`\hat p` the prior needs 62, 63 and 28
times as many draws at K = 10, 100 and 1000 (10 times at K = 1, where the sample standard
deviation of the heavy-tailed naive :math:`\hat p` over 200 runs is far too small).
"""

import pathlib
import time

import numpy as np

from scratchdgm import autodiff as _ad
from scratchdgm import estimators as _est
from scratchdgm.distributions import DiagNormal
from scratchdgm.experiments import ExperimentResult
from scratchdgm.experiments._digits import trained_digits_vae
from scratchdgm.progress import progress

NAME = "naive-vs-is"
SUMMARY = "p(x) from z ~ p(z) (naive) vs z ~ q(z|x) (importance sampling) on a trained VAE"

#: the proposals compared: name -> label
METHODS = {"prior": "naive: z ~ p(z)", "encoder": "importance sampling: z ~ q(z|x)"}

#: at most about this many (draw, image) pairs go through the decoder at once
CHUNK = 20_000


def log_joint(model, x):
    r"""``z -> log p_theta(x, z)`` for a batch of images ``x`` (B, p) and draws ``z``
    (K, B, d): the unnormalised posterior whose integral over z is :math:`p_\theta(x)`."""
    def fn(z):
        z = _ad.tensor(np.asarray(z))
        return model.observation.log_prob(x, model.decode(z)) + model.prior.log_prob(z)
    return fn


def proposal(model, x, method):
    r"""The proposal for images ``x``: the prior :math:`\mathcal N(0, I_d)` for each image
    (``'prior'``) or the encoder's :math:`q_\gamma(z \mid x)` (``'encoder'``), batch (B,)."""
    if method == "prior":
        zeros = np.zeros((len(x), model.latent_dim))
        return DiagNormal(zeros, zeros, backend=model.backend)
    with _ad.no_grad():
        q = model.encode(x)
    return DiagNormal(q.mu.data, q.log_sigma.data, backend=model.backend)


def log_likelihood_runs(model, X, method, k, reps, rng):
    r"""``reps`` independent estimates :math:`\log \hat p_\theta(x_i)` with K draws each, an
    array of shape (reps, n), and the effective sample size of each run's weights, same shape.

    The images are repeated ``reps`` times along the batch so that one call of
    :func:`~scratchdgm.estimators.importance_sampling` makes many runs, at most :data:`CHUNK`
    (draw, image) pairs at a time."""
    n = len(X)
    tiled = np.tile(X, (reps, 1))                                # run r, image i at r * n + i
    rows = max(1, CHUNK // k)
    log_p, ess = np.empty(reps * n), np.empty(reps * n)
    with _ad.no_grad():
        for s in range(0, reps * n, rows):
            x = tiled[s:s + rows]
            e = _est.importance_sampling(None, log_joint(model, x), proposal(model, x, method),
                                         k, rng)
            log_p[s:s + len(x)] = e.log_value
            ess[s:s + len(x)] = _est.effective_sample_size(e.log_w, axis=0)
    return log_p.reshape(reps, n), ess.reshape(reps, n)


def run(out_dir, quick=False, seed=0):
    r"""Train the VAE, measure both proposals for each K, write ``naive-vs-is.png``."""
    t0 = time.perf_counter()
    epochs, n_images, reps = (10, 5, 40) if quick else (100, 20, 200)
    ks = [1, 10, 100, 1000]
    model, ds = trained_digits_vae(epochs, seed)
    X = ds.x_test_binary[:n_images]
    reference = model.score_samples(X, k=20_000 if quick else 100_000,
                                    random_state=np.random.default_rng([seed, 1]))
    numbers = {"epochs": epochs, "n_images": n_images, "reps": reps, "k": ks,
               "reference_k": 20_000 if quick else 100_000,
               "reference_log_likelihood": reference.tolist(), "methods": {}}
    spread = {}
    bar = progress(total=len(METHODS) * len(ks), desc="naive vs IS", unit="K")
    for i, method in enumerate(METHODS):
        rows = {"std_log_p": [], "bias_log_p": [], "relative_std_p": [], "mean_ratio_p": [],
                "ess_fraction": []}
        for k in ks:
            log_p, ess = log_likelihood_runs(model, X, method, k, reps,
                                             np.random.default_rng([seed, 2, i, k]))
            ratio = np.exp(log_p - reference)                    # p_hat / p, per run and image
            rows["std_log_p"].append(float(log_p.std(axis=0, ddof=1).mean()))
            rows["bias_log_p"].append(float((log_p.mean(axis=0) - reference).mean()))
            rows["relative_std_p"].append(float(ratio.std(axis=0, ddof=1).mean()))
            rows["mean_ratio_p"].append(float(ratio.mean()))
            rows["ess_fraction"].append(float(np.median(ess / k)))
            spread[(method, k)] = log_p - reference
            bar.update(1)
        numbers["methods"][method] = rows
    bar.close()
    # how many more draws the prior needs for the spread the encoder has with K draws:
    # Var[p_hat] = V / K for both, so K_prior / K_encoder = (relative std ratio)^2
    prior, enc = numbers["methods"]["prior"], numbers["methods"]["encoder"]
    numbers["draws_ratio_for_equal_spread"] = [
        (a / b) ** 2 for a, b in zip(prior["relative_std_p"], enc["relative_std_p"])]
    figure = pathlib.Path(_plot(numbers, spread, pathlib.Path(out_dir) / "naive-vs-is.png"))
    numbers["seconds"] = time.perf_counter() - t0
    return ExperimentResult(NAME, numbers, [figure], _report(numbers))


def _report(numbers):
    lines = [f"VAE trained {numbers['epochs']} epochs on the digits; {numbers['n_images']} test "
             f"images, {numbers['reps']} runs per K; reference log p(x) by importance sampling "
             f"with K = {numbers['reference_k']} (mean {np.mean(numbers['reference_log_likelihood']):.3f})",
             f"{'K':>6}  {'proposal':<34}{'std log p^':>11}{'bias log p^':>13}"
             f"{'std p^ / p':>12}{'ESS / K':>9}"]
    for j, k in enumerate(numbers["k"]):
        for method, label in METHODS.items():
            r = numbers["methods"][method]
            lines.append(f"{k:>6}  {label:<34}{r['std_log_p'][j]:>11.3f}{r['bias_log_p'][j]:>13.3f}"
                         f"{r['relative_std_p'][j]:>12.3f}{r['ess_fraction'][j]:>9.3f}")
    lines.append("draws the prior needs for the spread of q(z|x): "
                 + ", ".join(f"K={k}: {r:.0f}x" for k, r in
                             zip(numbers["k"], numbers["draws_ratio_for_equal_spread"])))
    lines.append(f"({numbers['seconds']:.1f} s)")
    return "\n".join(lines)


def _plot(numbers, spread, path):
    from scratchdgm.plots.deep import _plt, _save

    plt = _plt()
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.3))
    ks = np.array(numbers["k"])
    for i, (method, label) in enumerate(METHODS.items()):
        r = numbers["methods"][method]
        axes[0].plot(ks, r["std_log_p"], "o-", color=f"C{i}", label=label)
        axes[1].plot(ks, r["relative_std_p"], "o-", color=f"C{i}", label=label)
        # 1 / sqrt(K) through the largest K: the sample standard deviation of a heavy-tailed
        # p^ is far too small at small K (the rare large draws are missing from R runs)
        axes[1].plot(ks, r["relative_std_p"][-1] * np.sqrt(ks[-1] / ks), ":", color="grey",
                     label="1 / sqrt(K)" if i == 0 else None)
    axes[0].set(xscale="log", yscale="log", xlabel="K", ylabel="std of log p^(x) over runs",
                title="spread of log p^(x)")
    axes[1].set(xscale="log", yscale="log", xlabel="K", ylabel="std of p^(x) / p(x)",
                title="spread of p^(x) (sample std: heavy tails)")
    ax = axes[2]
    positions, data, colors = [], [], []
    for j, k in enumerate(ks):
        for i, method in enumerate(METHODS):
            positions.append(3 * j + i)
            data.append(np.clip(spread[(method, k)].ravel(), -30, 5))
            colors.append(f"C{i}")
    parts = ax.violinplot(data, positions=positions, showextrema=False, widths=0.9)
    for body, color in zip(parts["bodies"], colors):
        body.set_facecolor(color)
        body.set_alpha(0.6)
    ax.axhline(0.0, color="k", lw=1)
    ax.set_xticks([3 * j + 0.5 for j in range(len(ks))], [f"K={k}" for k in ks])
    ax.set(ylabel="log p^(x) - log p(x)  (clipped at -30)",
           title="the estimates (blue: prior, orange: q(z|x))")
    for ax in axes[:2]:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"Naive Monte Carlo vs importance sampling for p(x): VAE on the digits, "
                 f"{numbers['n_images']} test images")
    fig.tight_layout()
    return _save(fig, path)
