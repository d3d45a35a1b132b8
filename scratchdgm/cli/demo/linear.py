r"""The linear half of ``scratchdgm demo``: factor analysis (EM) and probabilistic PCA (closed form,
and EM) with d = 10 on the digits, beside scikit-learn's ``FactorAnalysis`` and ``PCA``.

Data: ``load_digits().data / 16`` (continuous, not binarised: these are Gaussian models), split by
``numpy.random.default_rng(0).permutation(1797)`` into 1500 train / 297 test (docs/protocols.md).
Figures: the geometric picture of a one-factor model (FA vs PPCA under heteroscedastic noise,
4-D toy data seen on two coordinates), the
log-likelihood against EM iteration, and the loadings as 8 x 8 images.

Lectures: [Mattei-DGM, "Linear latent-variable models"];
[Mattei-S2D, "Factor analysis and probabilistic PCA"] (and its question "what is the
geometric intuition?"); keys in ``docs/lectures.md``.
"""

import pathlib
import time
import warnings

import numpy as np
from sklearn.decomposition import PCA
from sklearn.decomposition import FactorAnalysis as SKFactorAnalysis
from sklearn.exceptions import ConvergenceWarning
from threadpoolctl import threadpool_limits

from scratchdgm.models.linear import PPCA, FactorAnalysis
from scratchdgm.plots import linear as plots
from scratchdgm.progress import progress

__all__ = ["run", "load_digits_split", "toy_4d"]

D = 10


def load_digits_split():
    """Digits / 16 split 1500 / 297 by ``default_rng(0).permutation`` (docs/protocols.md)."""
    from sklearn.datasets import load_digits

    X = load_digits().data / 16.0
    perm = np.random.default_rng(0).permutation(X.shape[0])
    return X[perm[:1500]], X[perm[1500:]]


def toy_4d(n=500, random_state=0):
    r"""One-factor data with very unequal noise: :math:`w = (1.5, 1, 1.2, 0.8)`,
    :math:`\Psi = \mathrm{diag}(0.2, 1.5, 0.3, 0.5)`. PPCA's isotropic noise has to tilt its
    subspace towards the noisy axis :math:`x_2`; FA puts that variance into :math:`\psi_2`.
    (Four features: a one-factor FA of 2-D data is not identified, and with 3 features the
    maximum is often on the boundary :math:`\psi_j = 0`, where EM crawls.)"""
    rng = np.random.default_rng(random_state)
    w = np.array([1.5, 1.0, 1.2, 0.8])
    psi = np.array([0.2, 1.5, 0.3, 0.5])
    z = rng.standard_normal(n)
    return (np.outer(z, w) + np.array([1.0, -0.5, 0.0, 0.5])
            + rng.standard_normal((n, 4)) * np.sqrt(psi))


def _timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def run(out_dir, quick=False):
    r"""Fit FA and PPCA (d = 10) on the digits, write the figures, return the results table.

    Parameters
    ----------
    out_dir : pathlib.Path
        Figures (PNG) are written here.
    quick : bool
        Skip the scikit-learn ``FactorAnalysis(tol=1e-8, svd_method='lapack')`` reference (the
        slowest part, ~0.5 s).

    Returns
    -------
    str
        The results table: train / test log-likelihood per sample for each model and its
        scikit-learn counterpart, EM iterations and fit time.
    """
    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    # One BLAS thread for every fit: these are small matrices, and on a busy machine extra BLAS
    # threads only fight over the cores (sklearn's lapack FA took 30 s instead of 1 s that way).
    # sklearn and scipy are imported at module level because threadpoolctl only limits the BLAS
    # libraries already loaded (scipy carries its own OpenBLAS).
    # A bar over the fits (time left), removed when the table is printed.
    with threadpool_limits(limits=1), progress(total=N_FITS, desc="fits", unit="fit",
                                               leave=False) as bar:
        return _run(out_dir, quick, bar)


N_FITS = 7  # the fits of _run, counted by its progress bar


def _run(out_dir, quick, bar):
    X_train, X_test = load_digits_split()
    n = X_train.shape[0]

    def timed(fn):
        out = _timed(fn)
        bar.update()
        return out

    fa, t_fa = timed(lambda: FactorAnalysis(D).fit(X_train))
    ppca, t_pp = timed(lambda: PPCA(D).fit(X_train))
    ppca_em, t_ppem = timed(lambda: PPCA(D, method="em", random_state=0).fit(X_train))
    sk_fa_kw = dict(random_state=0) if quick else dict(tol=1e-8, svd_method="lapack")
    sk_fa, t_skfa = timed(lambda: SKFactorAnalysis(D, **sk_fa_kw).fit(X_train))
    sk_pca, t_skpca = timed(lambda: PCA(D, svd_solver="full").fit(X_train))
    # sklearn's PCA density uses the n-1 covariance; the (n-1)/n-rescaled one is exactly PPCA's
    sk_pca_mle = PCA(D, svd_solver="full").fit(X_train)
    sk_pca_mle.explained_variance_ *= (n - 1) / n
    sk_pca_mle.noise_variance_ *= (n - 1) / n

    # full EM histories for the curve figure (tol=0: until round-off stops the increase)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        fa_full = timed(lambda: FactorAnalysis(D, tol=0.0, max_iter=2000).fit(X_train))[0]
        ppca_em_full = timed(lambda: PPCA(D, method="em", tol=0.0, max_iter=2000,
                                          random_state=0).fit(X_train))[0]

    sk_label = ("sklearn FactorAnalysis (tol=1e-2, randomized)" if quick
                else "sklearn FactorAnalysis (tol=1e-8, lapack)")
    toy = toy_4d()
    figures = [
        plots.plot_geometry(
            toy, {"PPCA (closed form)": PPCA(1).fit(toy),
                  "Factor analysis (EM)": FactorAnalysis(1).fit(toy)},
            out_dir / "linear_geometry.png", dims=(0, 1)),
        plots.plot_loglike_curves(
            {"FA, EM (PCA start)": fa_full.loglike_,
             "PPCA, EM (random start)": ppca_em_full.loglike_},
            out_dir / "linear_em_loglike.png",
            references={"FA, EM (PCA start)": {sk_label: sk_fa.score(X_train)},
                        "PPCA, EM (random start)": {"PPCA closed form": ppca.score(X_train)}},
            title=f"digits, d = {D}: training log-likelihood per sample against EM iteration"),
        plots.plot_loadings({"FA": fa, "PPCA": ppca}, out_dir / "linear_loadings.png"),
    ]

    rows = [
        ("FA (EM)", fa.score(X_train), fa.score(X_test), fa.n_iter_, t_fa),
        (sk_label, sk_fa.score(X_train), sk_fa.score(X_test),
         sk_fa.n_iter_, t_skfa),
        ("PPCA (closed form)", ppca.score(X_train), ppca.score(X_test), 1, t_pp),
        ("PPCA (EM, random start)", ppca_em.score(X_train), ppca_em.score(X_test),
         ppca_em.n_iter_, t_ppem),
        ("sklearn PCA score (n-1 covariance)", sk_pca.score(X_train), sk_pca.score(X_test), 1,
         t_skpca),
        ("sklearn PCA score, rescaled to 1/n MLE", sk_pca_mle.score(X_train),
         sk_pca_mle.score(X_test), 1, t_skpca),
    ]
    width = max(len(r[0]) for r in rows)
    lines = [
        f"digits / 16 (continuous), {n} train / {X_test.shape[0]} test, d = {D}; "
        "log-likelihood per sample in nats (higher is better)",
        f"{'model':<{width}}  {'train ll':>10}  {'test ll':>10}  {'EM it':>5}  {'fit s':>7}",
    ]
    lines += [f"{name:<{width}}  {tr:10.4f}  {te:10.4f}  {it:5d}  {t:7.3f}"
              for name, tr, te, it, t in rows]
    lines.append("FA's likelihood is high because three pixels are always 0: their noise "
                 "variance sits at the 1e-12 floor (as in scikit-learn). Gaussian densities "
                 "of continuous pixels are not comparable with the Bernoulli VAE numbers.")
    lines.append("figures: " + ", ".join(pathlib.Path(f).name for f in figures))
    return "\n".join(lines)
