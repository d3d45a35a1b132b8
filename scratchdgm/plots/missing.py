r"""Figures for missing-data imputation: imputed images beside the truth, imputed values against
the true ones, and the imputation errors of several methods on several data sets.

Every function draws with matplotlib's Agg backend (no window), writes a PNG and returns its path.
Lecture [Mattei-DGM, "DLVM for missing data imputation (Mattei & Frellsen, ICML'19)"] (the
deck's figure: digits with missing pixels and their imputations).
"""

import numpy as np

from scratchdgm.plots.deep import _image_side, _plt, _save, _tile

__all__ = ["plot_imputed_images", "plot_imputation_scatter", "plot_imputation_errors"]

#: colour of a missing pixel in the "observed" row (RGB)
_MISSING_RGB = (0.85, 0.25, 0.2)


def _check_same_shape(where, **arrays):
    shapes = {name: np.shape(a) for name, a in arrays.items()}
    if len(set(shapes.values())) != 1:
        raise ValueError(f"{where}: the arrays must have the same shape, got {shapes}")


def plot_imputed_images(x_true, missing, imputed, path, *, n=10, multiple=None,
                        title="truth / observed (red: missing) / imputed"):
    r"""Images with missing pixels: the truth, the observed part (missing pixels in red) and the
    imputation, one column per image; optionally more rows of multiple imputations.

    Parameters
    ----------
    x_true : ndarray, shape (m, p)
        Complete images, values in [0, 1], ``p`` a perfect square.
    missing : ndarray of bool, shape (m, p)
        True where a pixel is missing.
    imputed : ndarray, shape (m, p)
        A single imputation (e.g. the conditional mean, :meth:`scratchdgm.MIWAE.transform`).
    path : str or os.PathLike
    n : int
        Images shown (the first n).
    multiple : ndarray, shape (r, m, p), optional
        Multiple imputations (:meth:`scratchdgm.MIWAE.impute`), shown as r more rows.
    """
    plt = _plt()
    _check_same_shape("plot_imputed_images", x_true=x_true, missing=missing, imputed=imputed)
    x_true = np.clip(np.asarray(x_true, float)[:n], 0, 1)
    missing = np.asarray(missing, bool)[:n]
    rows = [x_true, np.where(missing, 0.0, x_true), np.clip(np.asarray(imputed, float)[:n], 0, 1)]
    if multiple is not None:
        rows += [np.clip(np.asarray(draw, float)[:n], 0, 1) for draw in multiple]
    side = _image_side(x_true.shape[1])
    if side is None:
        raise ValueError(f"plot_imputed_images needs square images; p = {x_true.shape[1]} is "
                         f"not a perfect square")
    grey = _tile(np.concatenate(rows), side, len(x_true))
    # grey_r as RGB (0 white, 1 black), then the missing pixels of the second row in colour
    rgb = np.repeat(1.0 - grey[..., None], 3, axis=2)
    flags = _tile(np.concatenate([np.zeros_like(x_true), missing.astype(float),
                                  *[np.zeros_like(x_true)] * (len(rows) - 2)]), side,
                  len(x_true))
    rgb[flags == 1.0] = _MISSING_RGB
    fig, ax = plt.subplots(figsize=(0.5 * len(x_true) + 0.5, 0.55 * len(rows) + 0.5))
    ax.imshow(rgb, interpolation="nearest")
    ax.axis("off")
    ax.set_title(title, fontsize=9)
    return _save(fig, path)


def plot_imputation_scatter(x_true, missing, imputations, path, *,
                            title="imputed against true values (missing entries)"):
    r"""One panel per method: each missing entry's imputed value against its true value, with
    the diagonal and the method's mean squared error.

    Parameters
    ----------
    x_true : ndarray, shape (n, p)
    missing : ndarray of bool, shape (n, p)
    imputations : dict of str -> ndarray, shape (n, p)
        Method name -> completed data.
    path : str or os.PathLike
    """
    plt = _plt()
    x_true, missing = np.asarray(x_true, float), np.asarray(missing, bool)
    if not imputations:
        raise ValueError("plot_imputation_scatter: imputations is empty; expected at least one "
                         "method -> completed array")
    for name, a in imputations.items():
        _check_same_shape(f"plot_imputation_scatter ({name})", x_true=x_true, missing=missing,
                          imputed=a)
    truth = x_true[missing]
    lo, hi = np.percentile(truth, [0.5, 99.5])
    fig, axes = plt.subplots(1, len(imputations), figsize=(3 * len(imputations), 3.2),
                             squeeze=False)
    for ax, (name, a) in zip(axes[0], imputations.items()):
        est = np.asarray(a, float)[missing]
        ax.scatter(truth, est, s=3, alpha=0.25, rasterized=True)
        ax.plot([lo, hi], [lo, hi], color="k", lw=0.8)
        ax.set_xlim(lo, hi)
        ax.set_ylim(lo, hi)
        ax.set_title(f"{name}\nMSE {np.mean((est - truth) ** 2):.3f}", fontsize=9)
        ax.set_xlabel("true value")
    axes[0][0].set_ylabel("imputed value")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def plot_imputation_errors(errors, path, *, baseline="mean",
                           title="imputation error relative to mean imputation"):
    r"""Grouped bars: for each data set, each method's mean squared error divided by that of
    ``baseline``, mean and standard deviation over seeds (below 1: better than the baseline).

    Parameters
    ----------
    errors : dict of str -> dict of str -> sequence of float
        Data set -> method -> the MSE of each seed (the same seeds for every method); a method
        may be missing on some data sets.
    path : str or os.PathLike
    baseline : str
        The method every other is divided by, seed by seed.
    """
    plt = _plt()
    datasets = list(errors)
    methods = list(dict.fromkeys(m for d in datasets for m in errors[d] if m != baseline))
    fig, ax = plt.subplots(figsize=(1.6 + 1.6 * len(datasets), 3.6))
    width = 0.8 / len(methods)
    for j, method in enumerate(methods):
        # a method absent on a data set (e.g. one for continuous data only) leaves a gap
        ratios = [np.asarray(errors[d].get(method, np.nan)) / np.asarray(errors[d][baseline])
                  for d in datasets]
        x = np.arange(len(datasets)) + (j - (len(methods) - 1) / 2) * width
        ax.bar(x, [r.mean() for r in ratios], width, yerr=[r.std() for r in ratios],
               label=method, color=f"C{j}", capsize=2)
    ax.axhline(1.0, color="k", lw=0.8, ls="--")
    ax.set_xticks(np.arange(len(datasets)))
    ax.set_xticklabels(datasets)
    ax.set_ylabel(f"MSE / MSE of {baseline} imputation")
    ax.legend(fontsize=8, ncol=2)
    ax.grid(axis="y", alpha=0.3)
    ax.set_title(title, fontsize=10)
    return _save(fig, path)
