r"""Single imputation with MIWAE against scikit-learn's imputers, on scikit-learn's bundled
tables with 50% of the entries missing completely at random.

Run ``scratchdgm bench miwae-imputation [--seeds 5] [--quick] [--out DIR]``.

Protocol, after Mattei & Frellsen (2019)'s UCI experiments. Each table
(:func:`scratchdgm.data.load_imputation_dataset`: iris, breast_cancer and the digits
standardised column by column, and the digits binarised at half intensity) loses each entry
with probability ``--rate`` (0.5), independently (:func:`scratchdgm.data.mcar_mask`, seeded by
the seed; a row that would lose every entry keeps one). Every method imputes the same masked
table, and the score is the mean squared error over the missing entries,
:math:`\frac{1}{|M|} \sum_{(i,j) \in M} (\hat x_{ij} - x_{ij})^2` (for the binary table: of
the imputed probability, the Brier score). Mean and standard deviation over the seeds.

Methods:

* ``mean``: :class:`sklearn.impute.SimpleImputer` (column means);
* ``KNN``: :class:`sklearn.impute.KNNImputer` (5 neighbours, its default);
* ``ICE``: :class:`sklearn.impute.IterativeImputer` with ``BayesianRidge`` (its default), 10
  rounds;
* ``missForest``: the missForest-style :class:`~sklearn.impute.IterativeImputer` with
  ``ExtraTreesRegressor(n_estimators=--trees)`` (10 by default, scikit-learn's own example of
  the idea; Stekhoven & Bühlmann's missForest grows 100 random-forest trees), 10 rounds;
* ``MIWAE``: :class:`scratchdgm.MIWAE`, encoder and decoder ``p-128-128``, tanh,
  :math:`d = \min(10, p - 1)`, K = 20, its default Gaussian observation model (one learned
  standard deviation per column; Bernoulli for the binary table), Adam 1e-3 on minibatches of
  64 for ``--steps`` gradient steps (rounded up to whole epochs), then the conditional mean by
  self-normalised importance sampling with ``--impute-k`` samples
  (:meth:`scratchdgm.MIWAE.transform`);
* ``MIWAE-t``: the same with the Student's t observation model of Mattei & Frellsen (2019)
  (continuous tables only).

The MIWAE fits run on one thread (BLAS and Numba); every time is wall-clock seconds of fit plus
imputation, per seed. Figures: ``imputation_errors.png`` (each method's error relative to mean
imputation) and one ``imputations_<table>.png`` per table (seed 0: imputed against true values;
images for the binary digits), in ``--out``.
"""

import json
import math
import os
import sys
import time
import warnings

from scratchdgm.benchmarks.common import (
    limit_threads,
    machine_info,
    machine_line,
    table,
)

HELP = "MIWAE single imputation against mean, KNN, ICE and missForest-style imputers"

DATASETS = ("iris", "breast_cancer", "digits", "digits-binary")
METHODS = ("mean", "KNN", "ICE", "missForest", "MIWAE", "MIWAE-t")


def configure_parser(p):
    p.add_argument("--datasets", nargs="+", default=list(DATASETS), metavar="NAME",
                   help="iris, wine, breast_cancer, digits, digits-binary "
                        f"(default {' '.join(DATASETS)})")
    p.add_argument("--seeds", type=int, default=None, help="masks per table (default 5)")
    p.add_argument("--rate", type=float, default=0.5, help="missing rate (default 0.5)")
    p.add_argument("--steps", type=int, default=None,
                   help="MIWAE gradient steps, rounded up to whole epochs (default 2000)")
    p.add_argument("--impute-k", type=int, default=None,
                   help="importance samples per row of MIWAE's imputation (default 1000)")
    p.add_argument("--trees", type=int, default=None,
                   help="trees of the missForest-style imputer (default 10)")
    p.add_argument("--quick", action="store_true",
                   help="a smoke run: defaults of 2 seeds, 300 steps, impute-k 200, 5 trees")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default="miwae_imputation",
                   help="directory of the figures and results.json (default miwae_imputation)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")


def _imputers(seed, trees):
    from sklearn.ensemble import ExtraTreesRegressor
    from sklearn.experimental import enable_iterative_imputer  # noqa: F401
    from sklearn.impute import IterativeImputer, KNNImputer, SimpleImputer
    from sklearn.linear_model import BayesianRidge

    return {
        "mean": SimpleImputer(strategy="mean"),
        "KNN": KNNImputer(),
        "ICE": IterativeImputer(BayesianRidge(), max_iter=10, random_state=seed),
        "missForest": IterativeImputer(
            ExtraTreesRegressor(n_estimators=trees, random_state=seed, n_jobs=1), max_iter=10,
            random_state=seed),
    }


def _miwae(X_nan, likelihood, seed, steps, impute_k):
    import numpy as np

    from scratchdgm import MIWAE

    n, p = X_nan.shape
    model = MIWAE(p, latent_dim=min(10, p - 1), hidden=(128, 128), likelihood=likelihood,
                  k=20, random_state=seed)
    epochs = math.ceil(steps / math.ceil(n / 64))
    model.fit(X_nan, epochs=epochs, batch_size=64, lr=1e-3, progress=False, random_state=seed)
    return model, model.transform(X_nan, k=impute_k, random_state=np.random.default_rng(seed))


def run_one(name, seed, args):
    r"""Impute one masked table with every method: ``{method: (mse, seconds, completed)}`` and
    the data (truth, mask, model)."""
    import numpy as np
    from sklearn.exceptions import ConvergenceWarning

    from scratchdgm.data import apply_missing, load_imputation_dataset, mcar_mask

    X, binary = load_imputation_dataset(name)
    missing = mcar_mask(X.shape, args.rate, np.random.default_rng([seed, 2019]))
    X_nan = apply_missing(X, missing)
    out = {}
    for method, imputer in _imputers(seed, args.trees).items():
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)  # ICE's 10 rounds, as asked
            completed = imputer.fit_transform(X_nan)
        out[method] = (completed, time.perf_counter() - t0)
    model = None
    variants = {"MIWAE": "bernoulli"} if binary else {"MIWAE": "gaussian",
                                                       "MIWAE-t": "student_t"}
    for method, likelihood in variants.items():
        t0 = time.perf_counter()
        fitted, completed = _miwae(X_nan, likelihood, seed, args.steps, args.impute_k)
        out[method] = (completed, time.perf_counter() - t0)
        model = fitted if method == "MIWAE" else model
    scores = {m: (float(np.mean((c[missing] - X[missing]) ** 2)), t)
              for m, (c, t) in out.items()}
    return scores, {"X": X, "missing": missing, "binary": binary, "model": model,
                    "completed": {m: c for m, (c, _) in out.items()}, "X_nan": X_nan}


def _figures(mse, first, out_dir):
    from scratchdgm.plots.missing import (
        plot_imputation_errors,
        plot_imputation_scatter,
        plot_imputed_images,
    )

    paths = [plot_imputation_errors(
        mse, os.path.join(out_dir, "imputation_errors.png"),
        title="imputation MSE relative to mean imputation (50% MCAR; bars: mean, std over seeds)")]
    for name, f in first.items():
        path = os.path.join(out_dir, f"imputations_{name}.png")
        if f["binary"] and f["X"].shape[1] == 64:
            draws = f["model"].impute(f["X_nan"][:12], n_draws=3, k=1000, random_state=0)
            paths.append(plot_imputed_images(
                f["X"], f["missing"], f["completed"]["MIWAE"], path, n=12, multiple=draws,
                title=f"{name}: truth / observed (red: missing) / MIWAE mean / 3 MIWAE draws"))
        else:
            shown = {m: f["completed"][m] for m in ("mean", "missForest", "MIWAE", "MIWAE-t")
                     if m in f["completed"]}
            paths.append(plot_imputation_scatter(f["X"], f["missing"], shown, path,
                                                 title=f"{name}, seed 0: imputed against true "
                                                       f"values on the missing entries"))
    return paths


def _verdict(row):
    mean = row["MIWAE"][0]
    others = {m: v[0] for m, v in row.items() if not m.startswith("MIWAE") and m != "mean"}
    best = min(others, key=others.get)
    if mean <= others[best]:
        return f"best, {1 - mean / others[best]:.0%} below {best}"
    return f"loses to {best} by {mean / others[best] - 1:.0%}"


def run(args):
    import numpy as np

    from scratchdgm.data import IMPUTATION_DATASETS
    from scratchdgm.progress import progress

    defaults = (dict(seeds=2, steps=300, impute_k=200, trees=5) if args.quick else
                dict(seeds=5, steps=2000, impute_k=1000, trees=10))
    for flag, value in defaults.items():
        if getattr(args, flag) is None:
            setattr(args, flag, value)
    for name in args.datasets:
        if name not in IMPUTATION_DATASETS:
            raise ValueError(f"--datasets: unknown table {name!r}; expected some of "
                             f"{sorted(IMPUTATION_DATASETS)}")
    for flag in ("seeds", "steps", "impute_k", "trees"):
        if getattr(args, flag) < 1:
            raise ValueError(f"--{flag.replace('_', '-')} must be >= 1, got {getattr(args, flag)}")
    if not 0.0 < args.rate < 1.0:
        raise ValueError(f"--rate must be in (0, 1), got {args.rate}")
    os.makedirs(args.out, exist_ok=True)
    ctx = limit_threads(args.threads)  # noqa: F841 - held for the run
    mse, seconds, first = {}, {}, {}
    t_start = time.perf_counter()
    jobs = [(name, seed) for name in args.datasets for seed in range(args.seeds)]
    for name, seed in progress(jobs, desc="miwae-imputation", unit="fit"):
        scores, data = run_one(name, seed, args)
        for method, (error, spent) in scores.items():
            mse.setdefault(name, {}).setdefault(method, []).append(error)
            seconds.setdefault(name, {}).setdefault(method, []).append(spent)
        if seed == 0:
            first[name] = data
    total = time.perf_counter() - t_start
    figures = _figures(mse, first, args.out)
    record = {"machine": machine_info(args.threads), "rate": args.rate, "seeds": args.seeds,
              "steps": args.steps, "impute_k": args.impute_k, "trees": args.trees, "mse": mse,
              "seconds": seconds, "total_seconds": total, "figures": figures}
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(record, f, indent=1)
    if args.json:
        print(json.dumps(record))
        return 0
    print(machine_line(args.threads))
    print(f"imputation MSE on the missing entries, {args.rate:.0%} MCAR, mean ± std over "
          f"{args.seeds} seed(s); MIWAE {args.steps} steps, K = 20, impute-k {args.impute_k}; "
          f"missForest {args.trees} trees")

    def cell(values, fmt):
        return "-" if values is None else fmt(values)

    summary = {name: {m: (float(np.mean(v)), float(np.std(v))) for m, v in per.items()}
               for name, per in mse.items()}
    rows = [[name, *(cell(summary[name].get(m), lambda v: f"{v[0]:.4f} ± {v[1]:.4f}")
                     for m in METHODS), _verdict(summary[name])] for name in mse]
    print(table(["table", *METHODS, "MIWAE against the others"], rows))
    print()
    print("seconds per seed (fit + impute):")
    print(table(["table", *METHODS],
                [[name, *(cell(seconds[name].get(m), lambda v: f"{np.mean(v):.1f}")
                          for m in METHODS)] for name in mse]))
    print(f"total {total:.0f} s; figures: {', '.join(figures)}")
    return 0


if __name__ == "__main__":
    from scratchdgm.cli import main

    sys.exit(main(["bench", "miwae-imputation", *sys.argv[1:]]))
