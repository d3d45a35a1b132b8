r"""``scratchdgm train miwae``: train a MIWAE on data with missing entries and impute them
(Mattei & Frellsen 2019; :class:`scratchdgm.MIWAE`).

Two kinds of ``--data``:

* a bundled table (``iris``, ``wine``, ``breast_cancer``, ``digits``, ``digits-binary``;
  :data:`scratchdgm.data.IMPUTATION_DATASETS`): complete data, standardised, from which
  ``--missing-rate`` of the entries are removed completely at random (seeded by ``--seed``);
  the imputations are then scored against the truth, beside mean imputation;
* a file, ``.csv`` (comma-separated numbers, empty fields or ``nan`` for missing entries) or
  ``.npy``, with NaN marking the missing entries: it is imputed as it is (no truth to score).

The output directory receives ``checkpoint.npz`` (``--resume`` continues it), ``imputed.npy``
(the completed data, conditional means), ``metrics.json`` (the observed-data log-likelihood
:math:`\frac1n \sum_i \log p_\theta(x_i^{\mathrm o})` with ``--impute-k`` importance samples,
and for a bundled table the imputation MSE of MIWAE and of mean imputation) and a figure,
``imputations.png`` (imputed images for the digits, imputed against true values otherwise).

Example::

    scratchdgm train miwae --data breast_cancer --epochs 300 --seed 0 --out runs/miwae_bc
"""

import os

from scratchdgm.cli._runs import (
    METRICS_NAME,
    CommandError,
    check_backend,
    check_new_or_resumed,
    fit_or_explain,
    parse_hidden,
    run_directory,
)

HELP = "MIWAE: train on data with missing entries (NaN) and impute them (Mattei & Frellsen 2019)"


def configure_parser(parser):
    parser.add_argument("--data", required=True,
                        help="iris, wine, breast_cancer, digits, digits-binary (entries removed "
                             "at random), or a .csv / .npy file with NaN for missing entries")
    parser.add_argument("--missing-rate", type=float, default=0.5,
                        help="for a bundled table: the probability that an entry is removed "
                             "(default 0.5)")
    parser.add_argument("--likelihood", default=None,
                        help="gaussian (default for continuous data: a learned standard "
                             "deviation per column), student_t, or bernoulli (default for "
                             "binary data)")
    parser.add_argument("--latent-dim", type=int, default=10)
    parser.add_argument("--hidden", default="128,128",
                        help="comma-separated hidden widths (decoder mirrors them)")
    parser.add_argument("--k", type=int, default=20,
                        help="importance samples per point of the training bound (default 20)")
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--impute-k", type=int, default=1000,
                        help="importance samples per row of the imputation (default 1000)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seeds the missing entries, the weights and the training draws")
    parser.add_argument("--dtype", choices=["float64", "float32"], default="float64")
    parser.add_argument("--backend", default=None, choices=["numpy", "numba", "cuda", "auto"],
                        help="kernel backend (default: SCRATCHDGM_BACKEND, else auto = numba)")
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--resume", action="store_true",
                        help="continue the checkpoint in --out (settings must match)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _read_table(path):
    import numpy as np

    if not os.path.isfile(path):
        raise FileNotFoundError(f"--data {path}: no such file; expected a bundled table name or "
                                f"a .csv / .npy file")
    if path.endswith(".npy"):
        return np.load(path, allow_pickle=False)
    if path.endswith(".csv"):
        try:
            return np.genfromtxt(path, delimiter=",", dtype=np.float64, missing_values="",
                                 filling_values=np.nan)
        except ValueError as exc:
            raise ValueError(f"--data {path}: not a table of numbers ({exc})") from None
    raise ValueError(f"--data {path}: expected a .csv or .npy file")


def run(args):
    import time

    import numpy as np

    from scratchdgm import MIWAE
    from scratchdgm.checkpoint import write_json_atomic
    from scratchdgm.data import (
        IMPUTATION_DATASETS,
        apply_missing,
        load_imputation_dataset,
        mcar_mask,
    )
    from scratchdgm.plots.missing import plot_imputation_scatter, plot_imputed_images

    for name in ("epochs", "latent_dim", "batch_size", "k", "impute_k"):
        value = getattr(args, name)
        if value < 1:
            raise CommandError(f"--{name.replace('_', '-')} must be >= 1, got {value}")
    if not 0.0 < args.missing_rate < 1.0:
        raise CommandError(f"--missing-rate must be in (0, 1), got {args.missing_rate}")
    hidden = parse_hidden(args.hidden)
    backend = check_backend(args.backend)
    ckpt = check_new_or_resumed(args.out, args.resume)
    truth = missing = None
    if args.data in IMPUTATION_DATASETS:
        truth, binary = load_imputation_dataset(args.data)
        missing = mcar_mask(truth.shape, args.missing_rate, np.random.default_rng([args.seed, 7]))
        X = apply_missing(truth, missing)
    else:
        X = _read_table(args.data)
        if X.ndim != 2:
            raise ValueError(f"--data {args.data}: expected a 2-D table, got shape {X.shape}")
        observed = X[~np.isnan(X)]
        binary = bool(observed.size) and bool(np.all((observed == 0) | (observed == 1)))
    likelihood = args.likelihood or ("bernoulli" if binary else "gaussian")
    model = MIWAE(X.shape[1], args.latent_dim, hidden, likelihood=likelihood, k=args.k,
                  dtype=np.dtype(args.dtype), random_state=args.seed, backend=backend)
    X = model.check_training_data(X, "the data")  # refused before anything is written
    with run_directory(args.out):
        fit_or_explain(model, X, ckpt=ckpt, out=args.out, epochs=args.epochs,
                       batch_size=args.batch_size, lr=args.lr, resume=args.resume,
                       progress=not args.no_progress, random_state=args.seed)
    t0 = time.perf_counter()
    imputed = model.transform(X, k=args.impute_k, random_state=np.random.default_rng([args.seed,
                                                                                      1]))
    impute_seconds = time.perf_counter() - t0
    np.save(os.path.join(args.out, "imputed.npy"), imputed)
    hist = model.history_
    metrics = {
        "model": "miwae", "data": args.data, "seed": args.seed, "k": model.k,
        "likelihood": model.observation.kind, "epochs": args.epochs,
        "batch_size": args.batch_size, "lr": args.lr, "impute_k": args.impute_k,
        "config": model.config(), "n": int(X.shape[0]), "p": int(X.shape[1]),
        "missing_fraction": float(np.isnan(X).mean()),
        "train_seconds": hist["train_seconds"], "impute_seconds": impute_seconds,
        "final_train_bound": hist["train_bound"][-1],
        "observed_log_likelihood": model.score(X, k=args.impute_k,
                                               random_state=np.random.default_rng([args.seed, 2])),
        "history": hist,
    }
    figure = os.path.join(args.out, "imputations.png")
    line = f"miwae on {args.data}: {metrics['missing_fraction']:.0%} missing"
    if truth is not None:
        mean_imputed = np.where(missing, np.nanmean(X, axis=0), X)
        metrics["mse_miwae"] = float(np.mean((imputed[missing] - truth[missing]) ** 2))
        metrics["mse_mean_imputation"] = float(np.mean((mean_imputed[missing]
                                                        - truth[missing]) ** 2))
        line += (f", imputation MSE {metrics['mse_miwae']:.4f} (mean imputation "
                 f"{metrics['mse_mean_imputation']:.4f})")
        if binary and round(X.shape[1] ** 0.5) ** 2 == X.shape[1]:
            draws = model.impute(X[:10], n_draws=3, k=args.impute_k,
                                 random_state=np.random.default_rng([args.seed, 3]))
            plot_imputed_images(truth, missing, imputed, figure, multiple=draws,
                                title="truth / observed (red: missing) / MIWAE mean / 3 draws")
        else:
            plot_imputation_scatter(truth, missing, {"mean imputation": mean_imputed,
                                                     "MIWAE": imputed}, figure)
        metrics["figure"] = figure
    write_json_atomic(os.path.join(args.out, METRICS_NAME), metrics)
    print(f"{line}; train {metrics['train_seconds']:.1f}s; wrote {args.out}")
    return 0
