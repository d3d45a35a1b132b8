r"""Figures for the linear-Gaussian latent-variable models (factor analysis and PPCA).

* :func:`plot_geometry` -- the geometric picture on 2-D data: the data, the principal subspace
  :math:`\{\mu + w z\}`, the noise ellipses of :math:`x \mid z` along it and the marginal
  covariance ellipse (lecture [Mattei-S2D, "Factor analysis and probabilistic PCA"] (its question "what is the
  geometric intuition?"));
* :func:`plot_loglike_curves` -- log-likelihood against EM iteration, and the gap to the optimum
  on a log scale (EM's linear convergence is a straight line there);
* :func:`plot_loadings` -- the columns of W as images (8 x 8 for the digits).

Every function draws on a :class:`matplotlib.figure.Figure` rendered by the Agg canvas (no
pyplot, no window, no global figure state to close), writes a PNG and returns its path as a str.
"""

import os

import numpy as np

__all__ = ["plot_geometry", "plot_loglike_curves", "plot_loadings"]


def _new_figure(figsize):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _check_path(path):
    path = os.fspath(path)
    if not str(path).lower().endswith(".png"):
        raise ValueError(f"path must name a .png file, got {path!r}")
    return path


def _save(fig, path):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=110, format="png")
    fig.clear()  # release the artists now; the Figure is not registered with pyplot
    return path


def _check_models(models):
    if not isinstance(models, dict) or not models:
        raise ValueError("models must be a non-empty dict {label: fitted FactorAnalysis or PPCA}")
    out = {}
    for label, model in models.items():
        if not hasattr(model, "components_"):
            raise ValueError(f"model {label!r} is not fitted (no components_); call fit first")
        out[str(label)] = model
    return out


def _ellipse_xy(center, cov, n_std, num=200):
    """Points on the n_std-sigma contour of N(center, cov) in 2-D."""
    evals, evecs = np.linalg.eigh(cov)
    t = np.linspace(0.0, 2.0 * np.pi, num)
    circle = np.stack([np.cos(t), np.sin(t)])
    pts = evecs @ (np.sqrt(np.maximum(evals, 0.0))[:, None] * circle) * n_std
    return center[0] + pts[0], center[1] + pts[1]


def plot_geometry(X, models, path, *, dims=(0, 1), n_std=2.0,
                  z_grid=(-1.5, -0.75, 0.0, 0.75, 1.5)):
    r"""The geometric picture of a one-factor model, one panel per model, in a 2-D plane.

    Each panel shows the data, the principal subspace :math:`\mu + w z` (a line), the
    ``n_std``-sigma ellipses of the noise :math:`x \mid z \sim \mathcal N(w z + \mu, \Psi)` at
    the codes ``z_grid`` (circles for PPCA, axis-aligned ellipses for FA), and the marginal
    covariance ellipse of :math:`C = w w^\top + \Psi`.

    With more than two features the panel shows the exact marginal of the data and of the model
    on the coordinates ``dims``: the marginal of a linear-Gaussian model on a subset of
    coordinates keeps the rows of w and the entries of :math:`\Psi` of that subset. (On 2-D data
    a one-factor FA is not identified -- 4 parameters for the 3 entries of a 2 x 2 covariance, and
    PPCA already fits it exactly -- so FA and PPCA only differ visibly from 3 features on.)

    Parameters
    ----------
    X : ndarray, shape (n_samples, n_features)
        The data the models were fitted on, n_features >= 2.
    models : dict {str: fitted FactorAnalysis or PPCA}
        Each with ``n_components=1`` and n_features features.
    path : str or os.PathLike
        The PNG to write.
    dims : tuple of two int
        The coordinates to draw.
    n_std : float
        Radius of the ellipses in standard deviations.
    z_grid : sequence of float
        Latent codes at which to draw the noise ellipses.

    Returns
    -------
    str
        ``path``.
    """
    path = _check_path(path)
    models = _check_models(models)
    X = np.asarray(X, dtype=float)
    if X.ndim != 2 or X.shape[1] < 2:
        raise ValueError(f"X must have shape (n_samples, n_features >= 2), got {X.shape}")
    i, j = (int(k) for k in dims)
    if i == j or not (0 <= i < X.shape[1] and 0 <= j < X.shape[1]):
        raise ValueError(f"dims must be two different columns of X (0..{X.shape[1] - 1}), "
                         f"got {dims}")
    for label, m in models.items():
        if m.components_.shape != (1, X.shape[1]):
            raise ValueError(f"model {label!r} must have n_components=1 and {X.shape[1]} "
                             f"features, got components_ of shape {m.components_.shape}")
    sel = np.array([i, j])
    Xs = X[:, sel]
    fig = _new_figure((4.6 * len(models), 4.8))
    axes = fig.subplots(1, len(models), squeeze=False)[0]
    # common limits (shared axes cannot keep an equal aspect), a margin around the data
    lo, hi = Xs.min(axis=0), Xs.max(axis=0)
    centre, half = (lo + hi) / 2, 0.6 * np.max(hi - lo)
    for ax, (label, m) in zip(axes, models.items()):
        w_full = m.components_[0]
        C_full = m.get_covariance()
        psi = np.diag(C_full - np.outer(w_full, w_full))[sel]
        w, mu, C = w_full[sel], m.mean_[sel], C_full[np.ix_(sel, sel)]
        ax.scatter(Xs[:, 0], Xs[:, 1], s=5, alpha=0.35, color="0.45", label="data")
        t = np.linspace(-3.0, 3.0, 2)
        ax.plot(mu[0] + t * w[0], mu[1] + t * w[1], color="C3", lw=2,
                label=r"principal subspace $\mu + w z$")
        for k, z in enumerate(z_grid):
            ex, ey = _ellipse_xy(mu + w * z, np.diag(psi), n_std)
            ax.plot(ex, ey, color="C0", lw=1.2,
                    label=rf"noise ${n_std:g}\sigma$ of $x \mid z$" if k == 0 else None)
            ax.plot(*(mu + w * z), "o", color="C0", ms=3)
        ex, ey = _ellipse_xy(mu, C, n_std)
        ax.plot(ex, ey, "--", color="k", lw=1.2, label=rf"marginal ${n_std:g}\sigma$, $ww^T+\Psi$")
        ax.set_xlim(centre[0] - half, centre[0] + half)
        ax.set_ylim(centre[1] - half, centre[1] + half)
        ax.set_aspect("equal", adjustable="box")
        ax.set_xlabel(f"$x_{{{i + 1}}}$")
        ax.set_ylabel(f"$x_{{{j + 1}}}$")
        psi_all = m._noise_vector() if hasattr(m, "_noise_vector") else psi
        kind = ("isotropic noise $\\sigma^2 I$" if np.allclose(psi_all, psi_all[0])
                else "diagonal noise $\\Psi$")
        ax.set_title(f"{label}: {kind}\n"
                     rf"$\psi_{{{i + 1}}}$ = {psi[0]:.3g}, $\psi_{{{j + 1}}}$ = {psi[1]:.3g};"
                     f"  ll/sample = {m.score(X):.3f}", fontsize=10)
        ax.legend(fontsize=7, loc="upper left")
    if X.shape[1] > 2:
        fig.suptitle(f"{X.shape[1]}-D data and models, marginal on "
                     f"($x_{{{i + 1}}}$, $x_{{{j + 1}}}$)", fontsize=10)
    return _save(fig, path)


def plot_loglike_curves(curves, path, *, references=None,
                        title="EM: log-likelihood per sample against iteration"):
    r"""Log-likelihood against EM iteration, one panel per run, and the gap to the optimum.

    Parameters
    ----------
    curves : dict {str: array-like, shape (n_iter,)}
        Mean log-likelihood per sample after each iteration (``loglike_``), one run per entry.
    path : str or os.PathLike
        The PNG to write.
    references : dict {str: dict {str: float}}, optional
        For a curve's label, reference values drawn as horizontal lines in its panel (e.g.
        scikit-learn's log-likelihood, or the PPCA closed form).
    title : str

    Returns
    -------
    str
        ``path``.

    Notes
    -----
    The last panel plots, on a log scale, each run's gap to its own optimum -- the largest of its
    last value and its references. EM converges linearly, so the gap falls along a straight line
    whose slope is the log of the rate; flat stretches are the slow phases where EM creeps.
    """
    path = _check_path(path)
    if not isinstance(curves, dict) or not curves:
        raise ValueError("curves must be a non-empty dict {label: loglike history}")
    curves = {str(k): np.asarray(v, dtype=float).ravel() for k, v in curves.items()}
    for label, c in curves.items():
        if c.size == 0 or not np.all(np.isfinite(c)):
            raise ValueError(f"curve {label!r} must be a non-empty finite 1-D array")
    references = {str(k): {str(a): float(b) for a, b in v.items()}
                  for k, v in (references or {}).items()}
    unknown = set(references) - set(curves)
    if unknown:
        raise ValueError(f"references for unknown curves {sorted(unknown)}; curves are "
                         f"{sorted(curves)}")

    fig = _new_figure((4.4 * (len(curves) + 1), 4.2))
    axes = fig.subplots(1, len(curves) + 1)
    ax_gap = axes[-1]
    for k, (label, c) in enumerate(curves.items()):
        ax = axes[k]
        refs = references.get(label, {})
        best = max([c[-1]] + list(refs.values()))
        it = np.arange(1, c.size + 1)
        ax.plot(it, c, color=f"C{k}", lw=1.6, label=f"{label} ({c.size} it.)")
        for r, (ref_label, v) in enumerate(refs.items()):
            ax.axhline(v, color=f"C{len(curves) + r}", ls="--", lw=1.1,
                       label=f"{ref_label}: {v:.4f}")
        # zoom: from the 10% quantile of the run to just above its optimum
        lo = min(np.quantile(c, 0.1), best - 1e-6)
        ax.set_ylim(lo - 0.05 * (best - lo), best + 0.1 * (best - lo))
        ax.set_xlabel("EM iteration")
        ax.set_ylabel("mean log-likelihood per sample")
        ax.set_title(label, fontsize=10)
        ax.legend(fontsize=7, loc="lower right")
        ax_gap.semilogy(it, np.maximum(best - c, 1e-14), color=f"C{k}", lw=1.6, label=label)
    ax_gap.set_xlabel("EM iteration")
    ax_gap.set_ylabel("gap to the optimum (per sample)")
    ax_gap.set_title("distance to the optimum, log scale", fontsize=10)
    ax_gap.grid(True, which="both", alpha=0.3)
    ax_gap.legend(fontsize=8)
    fig.suptitle(title, fontsize=11)
    return _save(fig, path)


def plot_loadings(models, path, *, image_shape=(8, 8), max_components=10):
    r"""The loadings :math:`w_1, \dots, w_d` (columns of W) of each model as images.

    One row per model, one column per latent dimension; a diverging colour map centred on 0 with
    one symmetric scale per row, so the relative size of the loadings is comparable within a row.

    Parameters
    ----------
    models : dict {str: fitted FactorAnalysis or PPCA}
    path : str or os.PathLike
        The PNG to write.
    image_shape : tuple of int
        The image each loading vector is reshaped to; its product must equal n_features.
    max_components : int
        Draw at most this many loadings per model.

    Returns
    -------
    str
        ``path``.
    """
    path = _check_path(path)
    models = _check_models(models)
    h, w = (int(s) for s in image_shape)
    for label, m in models.items():
        if m.components_.shape[1] != h * w:
            raise ValueError(f"model {label!r} has {m.components_.shape[1]} features, which "
                             f"cannot be shown as {h}x{w} images")
    ncols = min(max(m.components_.shape[0] for m in models.values()), int(max_components))
    fig = _new_figure((1.25 * ncols + 1.2, 1.45 * len(models) + 0.5))
    axes = fig.subplots(len(models), ncols, squeeze=False)
    for r, (label, m) in enumerate(models.items()):
        comps = m.components_[:ncols]
        vmax = float(np.abs(comps).max()) or 1.0
        im = None
        for c in range(ncols):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c < comps.shape[0]:
                im = ax.imshow(comps[c].reshape(h, w), cmap="RdBu_r", vmin=-vmax, vmax=vmax,
                               interpolation="nearest")
            else:
                ax.axis("off")
            if r == 0:
                ax.set_title(f"$w_{{{c + 1}}}$", fontsize=10)
            if c == 0:
                ax.set_ylabel(label, fontsize=10)
        fig.colorbar(im, ax=list(axes[r]), shrink=0.9, pad=0.01)
    fig.suptitle("loadings (columns of W) as images; red > 0 > blue", fontsize=10)
    return _save(fig, path)

