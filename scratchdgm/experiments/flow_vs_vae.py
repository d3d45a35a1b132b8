r"""A normalizing flow against a VAE on the same 2-D data: the flow's exact log-likelihood
beside the VAE's bounds :math:`\mathcal L_K` and its importance-sampled estimate, with a
diffusion model's bounds as a third rung.

The lecture's comparison ([Isachenko-L4, "VAE vs Normalizing flows"] in ``docs/lectures.md``):
both are latent-variable models, but the flow's encoder :math:`z = f_\theta(x)` and decoder
:math:`x = g_\theta(z)` are deterministic and invertible, so its likelihood
:math:`\log p(x \mid \theta) = \log p(f_\theta(x)) + \log|\det J_f(x)|` is computed exactly
([Isachenko-L4, "Forward KL for flow model"]), while the VAE's stochastic encoder only gives a
lower bound :math:`\mathcal L_K \le \log p_\theta(x)` that tightens with K (Burda et al. 2016,
Theorem 1), so its likelihood can only be estimated, by importance sampling with K = 5000.

A diffusion model is a hierarchical VAE with 100 latent layers
([Mattei-DGM, "Diffusion models as hierarchical VAEs"]): its ELBO and its :math:`\mathcal L_K`
(whole noising chains as the K samples) are bounds of the same kind as the VAE's, and show how
loose a bound with that many latent variables is.

What it runs: a :class:`~scratchdgm.models.deep.flow.RealNVP` (8 affine couplings, hidden
64-64) and a :class:`~scratchdgm.VAE` (latent d = 2, hidden 64-64, Gaussian decoder with
decoder-output :math:`\sigma`), each trained for 300 epochs (batch 100, Adam 1e-3), and a
:class:`~scratchdgm.models.deep.diffusion.DiffusionModel` (T = 100, noise predictor
128-128-128, trained on its ELBO for 1500 epochs, batch 128), all on the same 1500 points of two
moons and scored on the same 500 test points.

``numbers``: ``flow_test_log_likelihood`` (exact), ``vae_bounds`` and ``diffusion_bounds`` (K
-> mean :math:`\mathcal L_K` and its standard error over the test points),
``vae_log_likelihood`` (K = 5000), ``diffusion_elbo``, ``train_seconds``. Figure
``flow_vs_vae.png``: the flow's and the VAE's densities on a grid (the VAE's by importance
sampling) and the three models' test log-likelihoods against K.
"""

import time

import numpy as np

from scratchdgm.data import get_dataset
from scratchdgm.experiments import ExperimentResult
from scratchdgm.models.deep import VAE, DiffusionModel, RealNVP
from scratchdgm.plots.density2d import density_grid, plot_flow_vs_vae

NAME = "flow-vs-vae"
SUMMARY = ("a RealNVP flow's exact log-likelihood against a VAE's bounds L_K and "
           "importance-sampled estimate on the same 2-D data")

FULL = dict(epochs=300, ks=(1, 10, 100, 1000, 5000), grid=100, grid_k=500,
            diffusion_epochs=1500, diffusion_ks=(1, 10, 100))
QUICK = dict(epochs=30, ks=(1, 10, 100, 1000), grid=50, grid_k=50,
             diffusion_epochs=30, diffusion_ks=(1, 10))


def run(out_dir, quick=False, seed=0, data="moons"):
    r"""Train both models, score them on the test set, draw the figure.

    Parameters
    ----------
    out_dir : pathlib.Path
    quick : bool
        30 epochs for every model, K up to 1000, a coarse grid (under a minute on one core).
    seed : int
        Seeds the data, both models' weights and every draw.
    data : str
        A continuous 2-D dataset spec of :func:`scratchdgm.data.get_dataset`.
    """
    cfg = QUICK if quick else FULL
    ds = get_dataset(data, seed)
    x_train, x_test = ds.x_train, ds.x_test
    fit = dict(epochs=cfg["epochs"], batch_size=100, lr=1e-3, progress=False,
               random_state=seed)
    flow = RealNVP(2, 8, (64, 64), random_state=seed, backend="numpy")
    vae = VAE(2, latent_dim=2, hidden=(64, 64), likelihood="gaussian:decoder",
              random_state=seed, backend="numpy")
    diffusion = DiffusionModel(2, 100, random_state=seed, backend="numpy")
    seconds = {}
    for name, model, extra in (("flow", flow, {}), ("vae", vae, {}),
                               ("diffusion", diffusion, dict(epochs=cfg["diffusion_epochs"],
                                                             batch_size=128))):
        t0 = time.perf_counter()
        model.fit(x_train, **{**fit, **extra})
        seconds[name] = time.perf_counter() - t0

    flow_ll = flow.score(x_test)

    def bounds_of(model, ks):
        out = {}
        for k in ks:
            per_point = model.bound_samples(x_test, k,
                                            random_state=np.random.default_rng([seed, k]))
            out[k] = (float(per_point.mean()),
                      float(per_point.std(ddof=1) / np.sqrt(len(per_point))))
        return out
    bounds = bounds_of(vae, cfg["ks"])
    diffusion_bounds = bounds_of(diffusion, cfg["diffusion_ks"])
    diffusion_elbo = diffusion.score(x_test, k=4, random_state=np.random.default_rng([seed, 8]))
    vae_ll = bounds[max(cfg["ks"])][0]

    xx, yy, grid = density_grid(x_test, n=cfg["grid"])
    log_densities = {
        "RealNVP, exact": flow.score_samples(grid),
        f"VAE, importance sampled (K={cfg['grid_k']})": vae.score_samples(
            grid, k=cfg["grid_k"], random_state=np.random.default_rng([seed, 7])),
    }
    ks, dks = sorted(bounds), sorted(diffusion_bounds)
    curves = {
        "RealNVP: exact log p": {"exact": flow_ll},
        r"VAE: $\mathcal{L}_K$": {"k": ks, "bound": [bounds[k][0] for k in ks]},
        r"diffusion: $\mathcal{L}_K$": {"k": dks, "bound": [diffusion_bounds[k][0]
                                                           for k in dks], "color": "C2"},
        "diffusion: ELBO (KL form)": {"exact": diffusion_elbo, "color": "C2"},
    }
    path = out_dir / "flow_vs_vae.png"
    plot_flow_vs_vae(x_test, (xx, yy), log_densities, curves, path,
                     title=f"{data}: normalizing flow (exact likelihood) against VAE "
                           f"(bounds), same {len(x_train)} training points")
    numbers = {
        "data": data, "seed": seed, "quick": quick, "epochs": cfg["epochs"],
        "flow_test_log_likelihood": flow_ll,
        "vae_bounds": {str(k): {"mean": m, "stderr": s} for k, (m, s) in bounds.items()},
        "vae_log_likelihood": {"k": max(cfg["ks"]), "value": vae_ll},
        "diffusion_elbo": diffusion_elbo,
        "diffusion_bounds": {str(k): {"mean": m, "stderr": s}
                             for k, (m, s) in diffusion_bounds.items()},
        "diffusion_epochs": cfg["diffusion_epochs"],
        "train_seconds": seconds,
    }
    lines = [f"{data}, {len(x_test)} test points, {cfg['epochs']} epochs each:",
             f"  RealNVP exact log-likelihood      {flow_ll:8.3f}"]
    lines += [f"  VAE L_{k:<5d}                      {bounds[k][0]:8.3f} +- {bounds[k][1]:.3f}"
              for k in ks]
    lines.append(f"  diffusion ELBO                    {diffusion_elbo:8.3f}")
    lines += [f"  diffusion L_{k:<5d}                {diffusion_bounds[k][0]:8.3f} +- "
              f"{diffusion_bounds[k][1]:.3f}" for k in dks]
    lines.append(f"  train seconds: flow {seconds['flow']:.1f}, VAE {seconds['vae']:.1f}, "
                 f"diffusion {seconds['diffusion']:.1f}")
    return ExperimentResult(NAME, numbers, [path], "\n".join(lines))
