r"""Figures for density models of 2-D data: a diffusion model's noising and denoising chains
with its per-step ELBO terms, a normalizing flow's data, codes, density and samples, and the
lecture's VAE-versus-flow comparison of log-likelihoods.

The functions take arrays (samples, densities on a grid, numbers), not models: whoever calls
them computes what to draw. Each writes a PNG and returns its path as a str. Lectures (keys in
``docs/lectures.md``): [Mattei-DGM, "Diffusion models as hierarchical VAEs"], [Isachenko-L4,
"Forward KL for flow model"], [Isachenko-L4, "VAE vs Normalizing flows"].
"""

import numpy as np

from scratchdgm.plots.linear import _check_path, _new_figure, _save

__all__ = ["density_grid", "plot_samples_vs_data", "plot_diffusion", "plot_flow",
           "plot_flow_vs_vae"]


def density_grid(data, n=120, margin=0.15):
    r"""A square grid around 2-D data on which to evaluate a density.

    Parameters
    ----------
    data : ndarray, shape (m, 2)
    n : int
        Points per side.
    margin : float
        Extra room on each side, as a fraction of the data's larger range (the grid is a
        square, centred on the data).

    Returns
    -------
    xx, yy : ndarray, shape (n, n)
        The grid (``np.meshgrid``).
    points : ndarray, shape (n * n, 2)
        The same points as rows, for a model's ``score_samples``.
    """
    data = _check_2d(data, "data")
    lo, hi = data.min(axis=0), data.max(axis=0)
    centre, half = (lo + hi) / 2, (0.5 + margin) * (hi - lo).max()  # a square: equal axes
    xs = np.linspace(centre[0] - half, centre[0] + half, n)
    ys = np.linspace(centre[1] - half, centre[1] + half, n)
    xx, yy = np.meshgrid(xs, ys)
    return xx, yy, np.column_stack([xx.ravel(), yy.ravel()])


def _check_2d(a, name):
    a = np.asarray(a, dtype=float)
    if a.ndim != 2 or a.shape[1] != 2:
        raise ValueError(f"{name} must have shape (n, 2) (points in the plane), got {a.shape}")
    return a


def _limits(*arrays):
    pts = np.concatenate([a for a in arrays if a is not None])
    lo, hi = np.percentile(pts, 0.5, axis=0), np.percentile(pts, 99.5, axis=0)
    centre, half = (lo + hi) / 2, 0.55 * (hi - lo).max()
    return (centre[0] - half, centre[0] + half), (centre[1] - half, centre[1] + half)


def _scatter(ax, pts, color, label=None, s=3, alpha=0.5):
    ax.scatter(pts[:, 0], pts[:, 1], s=s, alpha=alpha, color=color, label=label,
               linewidths=0)


def _square(ax, xlim, ylim):
    ax.set_xlim(*xlim)
    ax.set_ylim(*ylim)
    ax.set_aspect("equal", adjustable="box")
    ax.set_xticks([])
    ax.set_yticks([])


def plot_samples_vs_data(data, samples, path, *, title="samples against the data",
                         statistic=None):
    r"""The data and a model's samples side by side, then overlaid, on the same axes.

    Parameters
    ----------
    data, samples : ndarray, shape (n, 2)
    path : str or os.PathLike
    title : str
    statistic : str, optional
        A line of numbers (e.g. the energy distances) printed under the title.
    """
    path = _check_path(path)
    data, samples = _check_2d(data, "data"), _check_2d(samples, "samples")
    xlim, ylim = _limits(data, samples)
    fig = _new_figure((11.0, 4.0))
    axes = fig.subplots(1, 3)
    _scatter(axes[0], data, "0.3")
    axes[0].set_title(f"data ({len(data)} points)", fontsize=10)
    _scatter(axes[1], samples, "C3")
    axes[1].set_title(f"model samples ({len(samples)})", fontsize=10)
    _scatter(axes[2], data, "0.3", "data")
    _scatter(axes[2], samples, "C3", "samples")
    axes[2].legend(fontsize=8, markerscale=4, loc="upper right")
    axes[2].set_title("overlaid", fontsize=10)
    for ax in axes:
        _square(ax, xlim, ylim)
    fig.suptitle(title + (f"\n{statistic}" if statistic else ""), fontsize=11)
    return _save(fig, path)


def plot_diffusion(forward, reverse, steps, path, *, data=None, terms=None,
                   title="diffusion: the fixed encoder (top) and the learned decoder (bottom)",
                   statistic=None):
    r"""The two chains of a diffusion model at a few steps, with the ELBO's per-step terms.

    Parameters
    ----------
    forward : ndarray, shape (S, n, 2)
        Draws of :math:`q(x_t \mid x_0)` for data points :math:`x_0`, at each step of ``steps``
        (the encoder, top row).
    reverse : ndarray, shape (S, m, 2)
        The decoder's chain :math:`x_T \to x_0` of ancestral samples at the same steps (bottom
        row).
    steps : sequence of int, length S
        The steps :math:`t` shown, e.g. ``(0, 10, 25, 50, 100)``.
    path : str or os.PathLike
    data : ndarray, shape (n, 2), optional
        Drawn in grey under the final samples (right column, bottom).
    terms : ndarray, shape (T + 1,), optional
        The mean per-step terms of :math:`-\mathrm{ELBO}` (:math:`L_0, L_1, \dots, L_{T-1},
        L_T`), drawn against :math:`t` (right column, top).
    title, statistic : str
    """
    path = _check_path(path)
    forward = np.asarray(forward, dtype=float)
    reverse = np.asarray(reverse, dtype=float)
    steps = [int(s) for s in steps]
    if forward.ndim != 3 or reverse.ndim != 3 or forward.shape[-1] != 2 or \
            reverse.shape[-1] != 2 or len(forward) != len(steps) or len(reverse) != len(steps):
        raise ValueError(f"forward and reverse must have shape (S, n, 2) with S = len(steps) = "
                         f"{len(steps)}; got {forward.shape} and {reverse.shape}")
    S = len(steps)
    extra = terms is not None or data is not None
    fig = _new_figure((2.5 * (S + extra) + 0.4, 5.4))
    axes = fig.subplots(2, S + extra, squeeze=False)
    # the encoder's range: the data and pure noise (a poor decoder's strays are cut off)
    xlim, ylim = _limits(forward[0], forward[-1])
    for j, t in enumerate(steps):
        _scatter(axes[0, j], forward[j], "C0", s=2)
        _scatter(axes[1, j], reverse[j], "C3", s=2)
        axes[0, j].set_title(f"$t = {t}$", fontsize=10)
        for i in range(2):
            _square(axes[i, j], xlim, ylim)
    axes[0, 0].set_ylabel(r"encoder $q(x_t \mid x_0)$" "\n" r"noise is added $\rightarrow$",
                          fontsize=9)
    axes[1, 0].set_ylabel(r"decoder $p_\theta(x_{t-1} \mid x_t)$" "\n"
                          r"$\leftarrow$ noise is removed", fontsize=9)
    if extra:
        ax = axes[0, S]
        if terms is not None:
            terms = np.asarray(terms, dtype=float).ravel()
            T = terms.size - 1
            # L_1..L_{T-1} are KLs (>= 0, log axis); L_0 is minus a log-density, often < 0
            ax.semilogy(np.arange(2, T + 1), np.maximum(terms[1:T], 1e-8), color="C2",
                        lw=1.2, label=r"$L_{t-1}$, KL at step $t$")
            ax.plot([], [], " ", label=f"$L_0$ = {terms[0]:.2f}, $L_T$ = {terms[-1]:.1e}")
            ax.set_xlabel("step t", fontsize=8)
            ax.set_title(f"$-$ELBO = sum of terms = {terms.sum():.2f} nats", fontsize=9)
            ax.legend(fontsize=7)
            ax.tick_params(labelsize=7)
        else:
            ax.axis("off")
        ax = axes[1, S]
        if data is not None:
            data = _check_2d(data, "data")
            _scatter(ax, data, "0.3", "data")
            _scatter(ax, reverse[-1 if steps[-1] == 0 else 0], "C3", "samples")
            ax.legend(fontsize=7, markerscale=4, loc="upper right")
            ax.set_title("samples on the data", fontsize=10)
            _square(ax, *_limits(data))
        else:
            ax.axis("off")
    fig.suptitle(title + (f"\n{statistic}" if statistic else ""), fontsize=11)
    return _save(fig, path)


def plot_flow(data, codes, samples, grid, log_density, path, *,
              title="RealNVP: data, codes z = f(x), density and samples"):
    r"""A fitted normalizing flow in four panels: the data :math:`x`, their codes :math:`z =
    f_\theta(x)` against the base :math:`\mathcal N(0, I)` (circles at 1, 2 and 3 standard
    deviations), the exact density :math:`p(x \mid \theta)` on a grid, and samples
    :math:`g_\theta(z)`.

    Parameters
    ----------
    data, codes, samples : ndarray, shape (n, 2)
    grid : tuple (xx, yy)
        As from :func:`density_grid`.
    log_density : ndarray, shape ``xx.shape`` (or its size)
        :math:`\log p(x \mid \theta)` at the grid points.
    path : str or os.PathLike
    """
    path = _check_path(path)
    data, codes, samples = (_check_2d(a, n) for a, n in
                            ((data, "data"), (codes, "codes"), (samples, "samples")))
    xx, yy = grid
    dens = np.exp(np.asarray(log_density, dtype=float).reshape(xx.shape))
    xlim, ylim = _limits(data)
    fig = _new_figure((14.0, 3.9))
    axes = fig.subplots(1, 4)
    _scatter(axes[0], data, "0.3")
    axes[0].set_title("data $x$", fontsize=10)
    _square(axes[0], xlim, ylim)
    _scatter(axes[1], codes, "C0")
    a = np.linspace(0, 2 * np.pi, 200)
    for r in (1, 2, 3):
        axes[1].plot(r * np.cos(a), r * np.sin(a), color="k", lw=0.7, ls="--")
    axes[1].set_title(r"codes $z = f_\theta(x)$ and $\mathcal{N}(0, I)$", fontsize=10)
    _square(axes[1], (-4, 4), (-4, 4))
    axes[2].pcolormesh(xx, yy, dens, shading="auto", cmap="viridis")
    axes[2].set_title(r"exact density $p(x \mid \theta)$", fontsize=10)
    _square(axes[2], xlim, ylim)
    _scatter(axes[3], samples, "C3")
    axes[3].set_title(r"samples $x = g_\theta(z)$, $z \sim \mathcal{N}(0, I)$", fontsize=10)
    _square(axes[3], xlim, ylim)
    fig.suptitle(title, fontsize=11)
    return _save(fig, path)


def plot_flow_vs_vae(data, grid, log_densities, curves, path, *,
                     title="normalizing flow against VAE on the same data"):
    r"""The lecture's comparison: each model's density on a grid, and their test
    log-likelihoods, the flow's exact, the VAE's importance-sampled :math:`\mathcal L_K` against
    K.

    Parameters
    ----------
    data : ndarray, shape (n, 2)
        Test data, drawn over each density.
    grid : tuple (xx, yy)
    log_densities : dict of str -> ndarray
        Model name -> its log-density (exact or estimated) at the grid points.
    curves : dict of str -> dict
        Model name -> either ``{'exact': float}`` (a horizontal line: an exact log-likelihood or
        a single bound) or ``{'k': [...], 'bound': [...]}`` (:math:`\mathcal L_K` against K,
        log axis; the same test points at every K, so the differences are far more precise
        than each value's spread over the points); an optional ``'color'`` matches the lines
        of one model.
    path : str or os.PathLike
    """
    path = _check_path(path)
    data = _check_2d(data, "data")
    xx, yy = grid
    names = list(log_densities)
    fig = _new_figure((4.0 * (len(names) + 1) + 1.0, 4.1))
    axes = fig.subplots(1, len(names) + 1)
    xlim, ylim = _limits(data)
    for ax, name in zip(axes, names):
        dens = np.exp(np.asarray(log_densities[name], dtype=float).reshape(xx.shape))
        ax.pcolormesh(xx, yy, dens, shading="auto", cmap="viridis")
        ax.scatter(data[:, 0], data[:, 1], s=1, color="w", alpha=0.25, linewidths=0)
        ax.set_title(f"{name}: density", fontsize=10)
        _square(ax, xlim, ylim)
    ax = axes[-1]
    for i, (name, c) in enumerate(curves.items()):
        color = c.get("color", f"C{i}")
        if "exact" in c:
            ax.axhline(c["exact"], color=color, lw=1.6, ls="-" if i == 0 else "--",
                       label=f"{name}: {c['exact']:.3f}")
        else:
            k, b = np.asarray(c["k"], float), np.asarray(c["bound"], float)
            ax.plot(k, b, "o-", color=color, ms=4,
                    label=f"{name}: {b[-1]:.3f} at K={int(k[-1])}")
    ax.set_xscale("log")
    ax.set_xlabel("K (importance samples)")
    ax.set_ylabel("test log-likelihood (nats per point)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title(r"exact $\log p$ against $\mathcal{L}_K$", fontsize=10)
    fig.suptitle(title, fontsize=11)
    return _save(fig, path)
