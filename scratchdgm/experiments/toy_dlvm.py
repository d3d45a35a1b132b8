r"""Experiment 6, the lecture's 1-D toy DLVM: fit deep latent-variable models to its samples,
and hold their importance-sampled log-likelihoods against exact ones by quadrature.

The toy model of [Mattei-DGM, "Deep latent variable models: the role of the decoder"] has one
latent dimension, :math:`z \sim \mathcal N(0, 1)`, and a decoder that bends it into a curve in
the plane, :math:`x \mid z \sim \mathcal N(\mu(z), \Sigma(z))` with
:math:`\mu(z) = (10 \sin^3 z, 10 \cos z - 10 \cos^4 z)` (:func:`scratchdgm.data.toy_dlvm_sample`).
With d = 1 the marginal :math:`p(x) = \int p(x \mid z) p(z)\, dz` is a 1-D integral, so the
log-likelihood that is intractable for a real DLVM ([Mattei-DGM, "Maximum likelihood for
DLVM"]) is here exact to quadrature error -- for the true decoder
(:func:`scratchdgm.data.toy_dlvm_log_likelihood`) and for any fitted decoder with d = 1
(:func:`quadrature_log_likelihood`). That gives three checks no other data set allows:

1. **The estimator converges.** The importance-sampled estimate
   :math:`\log \frac1K \sum_k p(x \mid z_k) p(z_k) / q(z_k)` approaches the quadrature as K
   grows, from below on average (:math:`\mathcal L_K \le \log p(x)`, Burda et al. 2016,
   Theorem 1), both for the true decoder with the prior as proposal (the naive estimator of
   [Isachenko-L4, "Naive Monte-Carlo estimation"]) and for a fitted model with its encoder as
   proposal (:meth:`~scratchdgm.VAE.score_samples`, the estimate every model of the library
   reports). The encoder gets there with far fewer samples.
2. **How good the fit is, in nats.** A VAE (trained on :math:`\mathcal L_1`) and an IWAE
   (:math:`\mathcal L_{10}`), both with the Gaussian observation model whose scale is a decoder
   output (``'gaussian:decoder'``), against the true model on held-out points: neither can beat
   the truth on average (the gap is :math:`\mathrm{KL}(p \,\|\, p_\theta)` up to sampling error
   of the test set), and the IWAE, whose bound is tighter, gets closer.
3. Where the fit is worst: per test point, fitted against true log-density (the figure's
   right panel).

Numbers of a real full run (``scratchdgm experiment toy-dlvm``, seed 0: 5000 training points,
200 epochs, 500 held-out points; 116 s of CPU on one core, 12 min of wall time on a shared,
loaded machine), mean log-likelihoods in nats::

    true model, quadrature                       -4.2742
      prior as proposal, estimate - quadrature:  K = 10: -23.18    K = 1e3: -0.81
                                                 K = 1e4: +0.0018  K = 1e5: -0.0037
                                                 (mean |error| 23.7, 0.94, 0.050, 0.017)
    VAE  (L_1),  quadrature -5.3871, IS K = 5000 -5.3873   truth - VAE  = 1.113
      encoder as proposal, estimate - quadrature: K = 1: -0.0056, K = 100: -0.0011
    IWAE (L_10), quadrature -4.9110, IS K = 5000 -4.9114   truth - IWAE = 0.637
      encoder as proposal, estimate - quadrature: K = 1: -3.84, K = 10: -0.052, K = 100: -0.0058

The IWAE's encoder is a poor proposal for one sample (-3.8 nats at K = 1: trained for K = 10,
it spreads wider than the posterior) but a better one for many; the VAE's, trained to match
the posterior, is good from K = 1 on. Per point, the fitted models lose most on the two thin
arms that run down to (0, -20), where the true noise vanishes (right panel; in a check with an
IWAE trained on 2000 points: 3.2 nats a point there, 0.4 elsewhere).

(``--quick``: 1000 training points, 50 epochs, 200 test points, K up to 10^4.)
"""

import math

import numpy as np

from scratchdgm import autodiff as _ad
from scratchdgm import numerics as _num
from scratchdgm.data import toy_dlvm_decoder, toy_dlvm_log_likelihood, toy_dlvm_sample
from scratchdgm.distributions import DiagNormal
from scratchdgm.experiments import ExperimentResult
from scratchdgm.experiments import _common
from scratchdgm.models.deep import IWAE, VAE
from scratchdgm.models.deep.bounds import importance_sampled_log_likelihood

NAME = "toy-dlvm"
SUMMARY = ("the lecture's 1-D toy DLVM: fitted VAE and IWAE, importance-sampled log-likelihoods "
           "against exact ones by quadrature")


def quadrature_log_likelihood(model, X, n_grid=20001, z_max=8.0, chunk=50):
    r"""Exact (to quadrature error) :math:`\log p_\theta(x)` of a deep model with d = 1.

    Parameters
    ----------
    model : VAE or IWAE with ``latent_dim == 1``
    X : ndarray, shape (n, p)
    n_grid : int
        Midpoints of the grid on :math:`[-z_{\max}, z_{\max}]`.
    z_max : float
    chunk : int
        Rows of ``X`` per (chunk, n_grid) block of log-densities.

    Returns
    -------
    ndarray, shape (n,)

    Notes
    -----
    The midpoint rule in log space, as :func:`scratchdgm.data.toy_dlvm_log_likelihood` does for
    the true decoder:

    .. math::

        \log p_\theta(x) = \log \int p_\theta(x \mid z)\, p(z)\, dz \approx
        \operatorname{logsumexp}_j \big[\log p_\theta(x \mid z_j) + \log p(z_j)\big]
        + \log \Delta z,

    with the model's own observation model and prior, evaluated once per grid point
    (:math:`f_\theta(z_j)`) and broadcast against the data.
    """
    if model.latent_dim != 1:
        raise ValueError(f"quadrature_log_likelihood needs a model with latent_dim = 1, got "
                         f"{model.latent_dim}")
    X = model.check_data(X)
    dz = 2.0 * z_max / n_grid
    z = (-z_max + dz * (np.arange(n_grid) + 0.5))[:, None]
    out = np.empty(len(X))
    with _ad.no_grad():
        p_x_given_z = model.observation.distribution(model.decode(_ad.tensor(z)))  # batch (G,)
        log_pz = model.prior.log_prob(z).data                                    # (G,)
        for s in range(0, len(X), chunk):
            log_joint = p_x_given_z.log_prob(X[s:s + chunk, None, :]).data + log_pz
            out[s:s + chunk] = _num.logsumexp(log_joint, axis=1) + math.log(dz)
    return out


def true_decoder_is_log_likelihood(X, k, rng, chunk_size=200_000):
    r"""Importance-sampled :math:`\log p(x)` of the *true* toy model, the prior as proposal.

    Parameters
    ----------
    X : ndarray, shape (n, 2)
    k : int
        Samples per point.
    rng : numpy.random.Generator
    chunk_size : int
        (sample, point) pairs held in memory at once.

    Returns
    -------
    ndarray, shape (n,)

    Notes
    -----
    With :math:`q = p(z)` the weights are the likelihoods, :math:`w_k = p(x \mid z_k)`,
    :math:`z_k \sim \mathcal N(0, 1)`, and
    :math:`\log \hat p_K(x) = \log \frac1K \sum_k p(x \mid z_k)`
    (:func:`scratchdgm.models.deep.bounds.importance_sampled_log_likelihood` combines the
    chunks); the density is the library's :class:`~scratchdgm.distributions.DiagNormal` with
    the toy decoder's :math:`(\mu(z), \log \sigma(z))`.
    """
    X = np.asarray(X, dtype=np.float64)

    def log_weights(idx, kc):
        z = rng.standard_normal(kc * len(idx))
        mu, sigma = toy_dlvm_decoder(z)
        x = np.broadcast_to(X[idx], (kc, len(idx), 2)).reshape(-1, 2)
        return DiagNormal(mu, np.log(sigma)).log_prob(x).data.reshape(kc, len(idx))

    return importance_sampled_log_likelihood(log_weights, len(X), k, chunk_size=chunk_size)


def _errors(estimate, exact):
    diff = np.asarray(estimate) - np.asarray(exact)
    return {"bias": float(diff.mean()), "mae": float(np.abs(diff).mean())}


def _figure(out_dir, X_train, samples, ks_true, true_err, ks_model, model_err, ll_true,
            ll_model):
    fig, (ax_data, ax_conv, ax_pts) = _common.panels(3)
    ax_data.scatter(samples[:, 0], samples[:, 1], s=2, c="C0", alpha=0.35,
                    label="IWAE samples")
    ax_data.scatter(X_train[:, 0], X_train[:, 1], s=1, c="k", alpha=0.5, label="training data")
    pad = 0.15 * np.ptp(X_train, axis=0)
    ax_data.set_xlim(X_train[:, 0].min() - pad[0], X_train[:, 0].max() + pad[0])
    ax_data.set_ylim(X_train[:, 1].min() - pad[1], X_train[:, 1].max() + pad[1])
    ax_data.set_xlabel("$x_1$")
    ax_data.set_ylabel("$x_2$")
    ax_data.set_title("toy DLVM (d = 1, p = 2)")
    ax_data.legend(markerscale=4)
    ax_conv.loglog(ks_true, [e["mae"] for e in true_err], "o-",
                   label="true decoder, proposal p(z)")
    for (name, errs), marker in zip(model_err.items(), "sd"):
        ax_conv.loglog(ks_model, [e["mae"] for e in errs], marker + "-",
                       label=f"{name}, proposal its encoder")
    ax_conv.set_xlabel("K (importance samples)")
    ax_conv.set_ylabel(r"mean $|\log \hat p_K(x) - \log p(x)|$ (nats)")
    ax_conv.set_title("importance sampling against quadrature")
    ax_conv.legend(fontsize=8)
    lo, hi = min(ll_true.min(), ll_model.min()), max(ll_true.max(), ll_model.max())
    ax_pts.scatter(ll_true, ll_model, s=4)
    ax_pts.plot([lo, hi], [lo, hi], "k--", lw=1)
    ax_pts.set_xlabel(r"true $\log p(x)$ (quadrature)")
    ax_pts.set_ylabel(r"IWAE $\log p_\theta(x)$ (quadrature)")
    ax_pts.set_title("held-out points")
    return _common.save(fig, out_dir, NAME)


@_common.experiment_run
def run(out_dir, quick=False, seed=0):
    r"""Run the experiment; see the module docstring for what it measures.

    Returns
    -------
    ExperimentResult
        ``numbers``: ``true_test_ll`` (quadrature), ``true_is`` (``k`` and, per K, ``bias``
        and ``mae``: mean and mean absolute difference of the prior-proposal estimate to the
        quadrature), and for ``vae`` and ``iwae``: ``train_k``, ``test_ll_quadrature``,
        ``test_ll_is`` (encoder proposal, K = 5000), ``gap_to_truth`` (true minus fitted,
        both by quadrature), ``is`` (``k``, ``bias``, ``mae`` against the model's quadrature);
        ``n_train``, ``n_test``, ``epochs``, ``seconds``.
    """
    clock = _common.Stopwatch()
    n_train, n_test, epochs = (1000, 200, 50) if quick else (5000, 500, 200)
    X_train, _ = toy_dlvm_sample(n_train, np.random.default_rng([seed, 0]))
    X_test, _ = toy_dlvm_sample(n_test, np.random.default_rng([seed, 1]))
    ll_true = toy_dlvm_log_likelihood(X_test)
    ks_true = [1, 10, 100, 1000, 10_000] + ([] if quick else [100_000])
    rng = np.random.default_rng([seed, 2])
    true_is = [_errors(true_decoder_is_log_likelihood(X_test, k, rng), ll_true)
               for k in ks_true]

    ks_model = [1, 10, 100, 1000, 5000]
    numbers = {"n_train": n_train, "n_test": n_test, "epochs": epochs,
               "true_test_ll": float(ll_true.mean()),
               "true_is": {"k": ks_true, "bias": [e["bias"] for e in true_is],
                           "mae": [e["mae"] for e in true_is]}}
    model_err, ll_quad = {}, {}
    for name, cls, k in (("vae", VAE, 1), ("iwae", IWAE, 10)):
        model = cls(2, 1, hidden=(64, 64), likelihood="gaussian:decoder", k=k,
                    random_state=seed)
        model.fit(X_train, epochs=epochs, batch_size=50, lr=1e-3, progress=False,
                  random_state=seed)
        ll_quad[name] = quadrature_log_likelihood(model, X_test)
        estimates = {kk: model.score_samples(X_test, k=kk,
                                             random_state=np.random.default_rng([seed, 3, kk]))
                     for kk in ks_model}
        errs = [_errors(estimates[kk], ll_quad[name]) for kk in ks_model]
        model_err[name] = errs
        numbers[name] = {"train_k": k,
                         "test_ll_quadrature": float(ll_quad[name].mean()),
                         "test_ll_is": float(estimates[5000].mean()),
                         "gap_to_truth": float(ll_true.mean() - ll_quad[name].mean()),
                         "is": {"k": ks_model, "bias": [e["bias"] for e in errs],
                                "mae": [e["mae"] for e in errs]}}
        if name == "iwae":
            samples = model.sample(min(n_train, 2000),
                                   random_state=np.random.default_rng([seed, 4]))
    figure = _figure(out_dir, X_train, samples, ks_true, true_is, ks_model, model_err,
                     ll_true, ll_quad["iwae"])
    numbers["seconds"] = clock.seconds()
    numbers["cpu_seconds"] = clock.cpu_seconds()

    lines = [f"true model, {n_test} held-out points: log p(x) by quadrature "
             f"{numbers['true_test_ll']:.4f}",
             "  importance sampling with the prior as proposal (estimate - quadrature):"]
    lines += [f"    K = {k:>6}: mean {e['bias']:+.4f}, mean |.| {e['mae']:.4f}"
              for k, e in zip(ks_true, true_is)]
    for name in ("vae", "iwae"):
        m = numbers[name]
        lines.append(f"{name.upper()} (trained on L_{m['train_k']}, {n_train} points, {epochs} "
                     f"epochs): quadrature {m['test_ll_quadrature']:.4f}, IS K=5000 "
                     f"{m['test_ll_is']:.4f}, truth - model {m['gap_to_truth']:.4f}")
        lines.append("  encoder as proposal (estimate - quadrature): " + ", ".join(
            f"K={k} {b:+.4f}" for k, b in zip(m["is"]["k"], m["is"]["bias"])))
    lines.append(f"({numbers['seconds']:.0f} s, {numbers['cpu_seconds']:.0f} s of CPU)")
    return ExperimentResult(NAME, numbers, [figure], "\n".join(lines))
