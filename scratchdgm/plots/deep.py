r"""Figures for deep latent variable models (VAE / IWAE): a grid of samples, reconstructions
beside their inputs, a 2-D latent scatter coloured by label, training curves, and the bound
:math:`\mathcal L_K` against K.

Every function draws with matplotlib's Agg backend (no window), writes a PNG and returns its path.
Lecture [Mattei-DGM, "More on this KL regulariser"] (the 2-D code space of a VAE,
which "will kinda look like the prior") and "Maximum likelihood for DLVM" (the bounds tighten with
K).
"""

import math
import os

import numpy as np

__all__ = ["plot_samples", "plot_reconstructions", "plot_latent_scatter",
           "plot_training_curves", "plot_bound_vs_k"]


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path):
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    _plt().close(fig)
    return path


def _image_side(p):
    side = int(round(math.sqrt(p)))
    return side if side * side == p else None


def _tile(images, side, ncols):
    n = len(images)
    nrows = math.ceil(n / ncols)
    pad = 1
    # light grey gutters: visible between tiles whatever the tiles' own background
    canvas = np.full((nrows * (side + pad) + pad, ncols * (side + pad) + pad), 0.25)
    for i, img in enumerate(images):
        r, c = divmod(i, ncols)
        canvas[pad + r * (side + pad): pad + r * (side + pad) + side,
               pad + c * (side + pad): pad + c * (side + pad) + side] = img.reshape(side, side)
    return canvas


def plot_samples(x, path, *, title="samples", ncols=None):
    r"""Samples from the model: a grid of images when :math:`p` is a square (digits 8x8, MNIST
    28x28), else a scatter of the first two coordinates.

    Parameters
    ----------
    x : ndarray, shape (n, p)
    path : str or os.PathLike
        The PNG to write.
    """
    plt = _plt()
    x = np.asarray(x, dtype=float)
    side = _image_side(x.shape[1])
    if side is None:
        fig, ax = plt.subplots(figsize=(4, 4))
        ax.scatter(x[:, 0], x[:, 1] if x.shape[1] > 1 else np.zeros(len(x)), s=4, alpha=0.6)
        ax.set_xlabel("$x_1$")
        ax.set_ylabel("$x_2$")
    else:
        ncols = ncols or int(math.ceil(math.sqrt(len(x))))
        fig, ax = plt.subplots(figsize=(0.45 * ncols + 0.5, 0.45 * math.ceil(len(x) / ncols)
                                        + 0.6))
        ax.imshow(_tile(x, side, ncols), cmap="gray_r", vmin=0, vmax=1,
                  interpolation="nearest")
        ax.axis("off")
    ax.set_title(title)
    return _save(fig, path)


def plot_reconstructions(x, x_rec, path, *, title="inputs (top) and reconstructions (bottom)",
                         n=12):
    r"""Inputs in the top row, their reconstructions :math:`\mathbb E[x \mid z = \mu_\gamma(x)]`
    below (images only).

    Parameters
    ----------
    x, x_rec : ndarray, shape (n, p)
    path : str or os.PathLike
    """
    plt = _plt()
    x, x_rec = np.asarray(x, float)[:n], np.asarray(x_rec, float)[:n]
    side = _image_side(x.shape[1])
    if side is None:
        raise ValueError(f"plot_reconstructions needs square images; p = {x.shape[1]} is not a "
                         f"perfect square")
    canvas = _tile(np.concatenate([x, x_rec]), side, len(x))
    fig, ax = plt.subplots(figsize=(0.5 * len(x) + 0.5, 1.6))
    ax.imshow(canvas, cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
    ax.axis("off")
    ax.set_title(title, fontsize=9)
    return _save(fig, path)


def plot_latent_scatter(z, labels, path, *, title="codes $\\mu_\\gamma(x)$ by label"):
    r"""Encoder means coloured by class label; with d > 2, the first two principal axes.

    Parameters
    ----------
    z : ndarray, shape (n, d)
    labels : ndarray, shape (n,) or None
    path : str or os.PathLike
    """
    plt = _plt()
    z = np.asarray(z, float)
    xlabel, ylabel = "$z_1$", "$z_2$"
    if z.shape[1] > 2:
        zc = z - z.mean(axis=0)
        _, _, vt = np.linalg.svd(zc, full_matrices=False)
        z = zc @ vt[:2].T
        xlabel, ylabel = "PC 1", "PC 2"
    elif z.shape[1] == 1:
        z = np.column_stack([z[:, 0], np.zeros(len(z))])
    fig, ax = plt.subplots(figsize=(5, 4.4))
    if labels is None:
        ax.scatter(z[:, 0], z[:, 1], s=6, alpha=0.7)
    else:
        labels = np.asarray(labels)
        sc = ax.scatter(z[:, 0], z[:, 1], c=labels, cmap="tab10", s=6, alpha=0.8,
                        vmin=-0.5, vmax=9.5)
        cb = fig.colorbar(sc, ax=ax, ticks=np.unique(labels))
        cb.set_label("digit")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.set_aspect("equal", adjustable="datalim")
    return _save(fig, path)


def plot_training_curves(histories, path, *, title="training curves"):
    r"""Training bound (solid) and validation bound (dashed) per epoch for several runs.

    Parameters
    ----------
    histories : dict of str -> dict
        Run name -> ``model.history_`` (lists ``epoch``, ``train_bound``, ``val_bound``).
    path : str or os.PathLike
    """
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4))
    for i, (name, h) in enumerate(histories.items()):
        color = f"C{i}"
        ep = np.asarray(h["epoch"])
        ax.plot(ep, h["train_bound"], color=color, label=f"{name} train")
        val = [np.nan if v is None else v for v in h.get("val_bound", [])]
        if val and not np.all(np.isnan(val)):
            ax.plot(ep, val, color=color, ls="--", label=f"{name} test")
    ax.set_xlabel("epoch")
    ax.set_ylabel("bound (nats per point)")
    all_vals = np.concatenate([np.asarray(h["train_bound"], float) for h in histories.values()])
    if all_vals.size:
        lo, hi = np.nanpercentile(all_vals, 5), np.nanmax(all_vals)
        ax.set_ylim(lo - 0.1 * (hi - lo + 1e-9), hi + 0.1 * (hi - lo + 1e-9))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(title)
    return _save(fig, path)


def plot_bound_vs_k(results, path, *, title="$\\mathcal{L}_K$ on test data against K"):
    r"""The bound :math:`\mathcal L_K` against K (log axis) for several models, with each
    model's K = 5000 log-likelihood estimate as a horizontal line when given.

    Parameters
    ----------
    results : dict of str -> dict
        Model name -> ``{'k': [...], 'bound': [...], 'log_likelihood': float or None,
        'eval_k': int}`` (``eval_k``: the K of the log-likelihood estimate, default 5000).
    path : str or os.PathLike
    """
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for i, (name, r) in enumerate(results.items()):
        ax.plot(r["k"], r["bound"], "o-", color=f"C{i}", label=f"{name}: $\\mathcal{{L}}_K$")
        if r.get("log_likelihood") is not None:
            ax.axhline(r["log_likelihood"], color=f"C{i}", ls=":",
                       label=f"{name}: log p (K={r.get('eval_k', 5000)})")
    ax.set_xscale("log")
    ax.set_xlabel("K")
    ax.set_ylabel("nats per test point")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(title)
    return _save(fig, path)
