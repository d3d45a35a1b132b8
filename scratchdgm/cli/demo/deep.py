r"""The deep half of ``scratchdgm demo``: train a VAE (:math:`\mathcal L_1`) and an IWAE
(:math:`\mathcal L_{50}`) on the digits protocol (``docs/protocols.md``), compare their importance-sampled
test log-likelihoods (Burda et al. 2016, Table 1: IWAE beats VAE), and draw the figures --
samples, reconstructions, a 2-D latent scatter by digit (a d = 2 VAE), training curves and the
bound :math:`\mathcal L_K` against K.

Lectures (keys in ``docs/lectures.md``): [Mattei-DGM, "Maximum likelihood for DLVM", "What about
VAEs?", "More on this KL regulariser"]; [Isachenko-L4, "Variational autoencoder (VAE)"].
"""

import pathlib
import time

__all__ = ["run"]

#: PyTorch reference of docs/protocols.md (digits protocol, 100 epochs, mean of 3 seeds)
REFERENCE = {"VAE": -23.19, "IWAE": -22.44}


def run(out_dir, quick=False):
    r"""Train, evaluate and plot; return the results table as text.

    Parameters
    ----------
    out_dir : pathlib.Path
        Figures (PNG) are written here.
    quick : bool
        A smoke-test version (< 30 s): few epochs, K = 500 evaluation.

    Returns
    -------
    str
        The results table.
    """
    from scratchdgm import IWAE, VAE
    from scratchdgm.cli._runs import load_data
    from scratchdgm.plots import deep as plots

    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    ds = load_data("digits")
    x_train, x_test = ds["x_train"], ds["x_test"]
    epochs = 3 if quick else 100
    eval_k = 500 if quick else 5000
    ks = [1, 5, 50] if quick else [1, 2, 5, 10, 50, 200, 1000]
    x_eval = x_test[:100] if quick else x_test

    rows, histories, bound_curves, models = [], {}, {}, {}
    for name, cls, k in (("VAE", VAE, 1), ("IWAE", IWAE, 50)):
        model = cls(64, 10, (100, 100), k=k, random_state=0)
        model.fit(x_train, epochs=epochs, X_val=x_test, random_state=0)  # its own bar
        ll = model.score(x_eval, k=eval_k, random_state=1)
        curve = [model.bound(x_eval, kk, random_state=2) for kk in ks]
        rows.append((name, k, ll, curve, model.active_units(x_train),
                     model.history_["train_seconds"]))
        histories[f"{name} K={k}"] = model.history_
        bound_curves[f"{name} K={k}"] = {"k": ks, "bound": curve, "log_likelihood": ll,
                                           "eval_k": eval_k}
        models[name] = model

    # a d = 2 VAE for the latent scatter (the lecture's "2D code space of a VAE")
    t0 = time.perf_counter()
    vae2 = VAE(64, 2, (100, 100), k=1, random_state=0)
    vae2.fit(x_train, epochs=epochs, random_state=0)
    t2 = time.perf_counter() - t0

    figs = [
        plots.plot_samples(models["VAE"].sample_means(64, random_state=0), out_dir / "vae_samples.png",
                           title="VAE (K=1) samples: mean of p(x|z), z ~ N(0, I)"),
        plots.plot_samples(models["IWAE"].sample_means(64, random_state=0),
                           out_dir / "iwae_samples.png",
                           title="IWAE (K=50) samples: mean of p(x|z), z ~ N(0, I)"),
        plots.plot_reconstructions(x_test[:12], models["IWAE"].reconstruct(x_test[:12]),
                                   out_dir / "iwae_reconstructions.png",
                                   title="IWAE: test digits (top), reconstructions (bottom)"),
        plots.plot_latent_scatter(vae2.transform(x_test), ds["y_test"], out_dir / "latent_2d.png",
                                  title="VAE with d = 2: codes of test digits"),
        plots.plot_training_curves(histories, out_dir / "training_curves.png",
                                   title="bound per epoch (train: solid, test: dashed)"),
        plots.plot_bound_vs_k(bound_curves, out_dir / "bound_vs_k.png"),
    ]

    head = (f"Deep latent variable models on digits (docs/protocols.md: 1500/297, d=10, "
            f"64-100-100, {epochs} epochs, seed 0)")
    lines = [head, "",
             f"{'model':<6} {'K':>3} {'test LL (K=' + str(eval_k) + ')':>18} "
             + " ".join(f"{'L_' + str(k):>8}" for k in ks)
             + f" {'active':>7} {'train s':>8} {'reference':>10}"]
    for name, k, ll, curve, au, secs in rows:
        lines.append(f"{name:<6} {k:>3} {ll:>18.3f} " + " ".join(f"{v:>8.3f}" for v in curve)
                     + f" {au:>4}/10 {secs:>8.1f} {REFERENCE[name]:>10.2f}")
    lines += ["", "reference: PyTorch, same protocol, 100 epochs, 3 seeds (docs/protocols.md); "
                  "higher is better",
              f"d = 2 VAE for the scatter: {t2:.1f} s", "figures:"]
    lines += [f"  {pathlib.Path(f).name}" for f in figs]
    if quick:
        lines.insert(1, "(quick mode: a smoke test, not the protocol's numbers)")
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover
    import sys

    print(run(pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "deep_demo_output")))
