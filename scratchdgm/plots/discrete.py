r"""Figures for discrete-latent models (:mod:`scratchdgm.models.deep.discrete`): what each
component generates, the confusion between components and labels, and the bias and variance of
the gradient estimators of a categorical latent against K.

Every function draws with matplotlib's Agg backend (no window), writes a PNG and returns its
path. It takes arrays, not models (this layer imports nothing of the models).
"""

import numpy as np

from scratchdgm.plots.deep import _image_side, _plt, _save, _tile

__all__ = ["plot_component_means", "plot_cluster_confusion", "plot_gradient_estimators"]


def plot_component_means(images, path, *, title="what each component generates",
                         purity=None, labels=None):
    r"""One row per component c: draws of the mean of :math:`p_\theta(x \mid \cdot)` given c.

    Parameters
    ----------
    images : ndarray, shape (K, n, p)
        ``model.component_means(n)``; p must be a square (8 x 8 digits, 28 x 28 MNIST).
    path : str or os.PathLike
    purity : float, optional
        Shown in the title.
    labels : sequence of str, optional
        A note per row (e.g. the majority digit of the cluster), printed at its left.
    """
    plt = _plt()
    images = np.asarray(images, dtype=float)
    if images.ndim != 3:
        raise ValueError(f"images must have shape (K, n, p), got {images.shape}")
    k, n, p = images.shape
    side = _image_side(p)
    if side is None:
        raise ValueError(f"plot_component_means needs square images; p = {p} is not a perfect "
                         f"square")
    fig, ax = plt.subplots(figsize=(0.45 * n + 1.2, 0.45 * k + 0.6))
    ax.imshow(_tile(images.reshape(k * n, p), side, n), cmap="gray_r", vmin=0, vmax=1,
              interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([(side + 1) * (i + 0.5) + 0.5 for i in range(k)])
    ax.set_yticklabels(labels if labels is not None else [f"c={c}" for c in range(k)],
                       fontsize=7)
    for spine in ax.spines.values():
        spine.set_visible(False)
    ax.set_title(title + (f" (purity {purity:.2f})" if purity is not None else ""), fontsize=9)
    return _save(fig, path)


def plot_cluster_confusion(table, path, *, title="components against digit labels",
                           label_name="digit"):
    r"""The contingency table :math:`N_{cy}` (rows: components c sorted by their majority label;
    columns: labels y) as a heat map, each row normalised to sum to 1.

    Parameters
    ----------
    table : ndarray of int, shape (K, n_labels)
        From :func:`scratchdgm.models.deep.evaluation.contingency_table`.
    path : str or os.PathLike
    """
    plt = _plt()
    table = np.asarray(table, dtype=float)
    order = np.lexsort((-table.max(axis=1), table.argmax(axis=1)))
    rows = table[order]
    frac = rows / np.maximum(rows.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(0.4 * table.shape[1] + 1.8, 0.32 * table.shape[0] + 1.0))
    im = ax.imshow(frac, cmap="Blues", vmin=0, vmax=1, aspect="auto")
    ax.set_xticks(range(table.shape[1]))
    ax.set_yticks(range(table.shape[0]))
    ax.set_yticklabels([f"c={c} ({int(rows[i].sum())})" for i, c in enumerate(order)],
                       fontsize=7)
    ax.set_xlabel(label_name)
    ax.set_ylabel("component (points)")
    fig.colorbar(im, ax=ax, fraction=0.05, label="fraction of the component")
    ax.set_title(title, fontsize=9)
    return _save(fig, path)


def plot_gradient_estimators(results, path, *, title=None):
    r"""Relative bias, relative standard deviation and cost of the gradient estimators of a
    categorical latent, against K (log-log).

    Parameters
    ----------
    results : dict
        ``{"K": [...], "estimators": {name: {"rel_bias": [...], "rel_std": [...],
        "mc_floor": [...]}}, "time_ms": {name: [...]}}`` as returned in the ``numbers`` of
        :mod:`scratchdgm.experiments.discrete_gradients`. The exact (enumeration) gradient has
        zero bias and variance and is named in the title; ``mc_floor`` is the Monte Carlo
        resolution of a bias estimate.
    path : str or os.PathLike
    """
    plt = _plt()
    ks = np.asarray(results["K"], dtype=float)
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    styles = {}
    for i, (name, r) in enumerate(results["estimators"].items()):
        styles[name] = dict(marker="os^vD"[i % 5], color=f"C{i}")
        bias, floor = np.asarray(r["rel_bias"]), np.asarray(r["mc_floor"])
        # a bias below the Monte Carlo resolution cannot be told from 0: drawn as a hollow
        # marker at the resolution (an upper bound), a resolved bias as a filled one
        resolved = bias > floor
        axes[0].plot(ks, np.where(resolved, bias, floor), color=f"C{i}", lw=0.8, alpha=0.5)
        axes[0].plot(ks[resolved], bias[resolved], ls="none", label=name, **styles[name])
        axes[0].plot(ks[~resolved], floor[~resolved], ls="none", mfc="none",
                     marker=styles[name]["marker"], color=f"C{i}")
        axes[0].plot(ks, floor, ls=":", color=f"C{i}", lw=0.8)
        axes[1].plot(ks, r["rel_std"], label=name, **styles[name])
    for name, t in results["time_ms"].items():
        axes[2].plot(ks, t, label=name, **styles.get(name, dict(marker="x", color="k")))
    axes[0].set_ylabel(r"$\|\mathbb{E}\,\hat g - \nabla\| \,/\, \|\nabla\|$")
    axes[0].set_title("bias (dotted: Monte Carlo resolution; hollow: below it)", fontsize=9)
    axes[1].set_ylabel(r"$\sqrt{\mathbb{E}\|\hat g - \mathbb{E}\,\hat g\|^2} \,/\, \|\nabla\|$")
    axes[1].set_title("standard deviation of one estimate", fontsize=9)
    axes[2].set_ylabel("ms per minibatch gradient (1 thread)")
    axes[2].set_title("cost (measured, 20 images, forward + backward)", fontsize=9)
    for ax in axes:
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("K (categories)")
        ax.grid(alpha=0.3, which="both")
    axes[1].legend(fontsize=7)
    axes[2].legend(fontsize=7)
    fig.suptitle(title or "gradient of $\\mathbb{E}_{q(c|x)}[\\log p(x|c)]$ in the logits of "
                 "q(c|x); enumeration is exact (bias 0, variance 0) at K likelihood terms",
                 fontsize=10)
    fig.tight_layout()
    return _save(fig, path)
