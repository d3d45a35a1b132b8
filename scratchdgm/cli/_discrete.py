r"""What ``scratchdgm train catvae`` and ``scratchdgm train gmvae`` share: their arguments, and
a run that trains the model (checkpoints every epoch), evaluates it (test log-likelihood, bounds,
active units), measures the purity of its clusters against the labels, draws what each
component generates and the confusion between components and labels, and writes
``metrics.json``."""

import os

from scratchdgm.cli._runs import (
    METRICS_NAME,
    CommandError,
    check_backend,
    check_new_or_resumed,
    evaluate_or_explain,
    load_data,
    parse_hidden,
    test_data_description,
    train_run,
)

__all__ = ["configure_discrete_parser", "run_discrete"]


def configure_discrete_parser(parser, *, latent_dim):
    r"""The arguments of a discrete-latent family (``latent_dim``: whether the model has a
    continuous code z, the GMVAE)."""
    parser.add_argument("--data", default="digits",
                        help="digits (the course protocol), toy, or mnist:DIR (default digits)")
    parser.add_argument("--n-categories", type=int, default=10,
                        help="K, the number of values of the categorical latent c (>= 2)")
    if latent_dim:
        parser.add_argument("--latent-dim", type=int, default=10,
                            help="d, the dimension of the code z (default 10)")
    parser.add_argument("--estimator", choices=["enumerate", "gumbel"], default="enumerate",
                        help="the expectation over c: exact enumeration (K terms per point) or "
                             "the Gumbel-softmax relaxation (default enumerate)")
    parser.add_argument("--temperature", type=float, default=1.0,
                        help="starting Gumbel-softmax temperature (default 1)")
    parser.add_argument("--min-temperature", type=float, default=0.5,
                        help="floor of the annealed temperature (default 0.5)")
    parser.add_argument("--anneal-rate", type=float, default=0.0,
                        help="r in tau_e = max(min, tau_0 exp(-r (e - 1))) per epoch "
                             "(default 0: constant)")
    parser.add_argument("--k", type=int, default=None,
                        help="samples per point in the training bound (default 1)")
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0, help="seeds weights and training draws")
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--hidden", default="100,100",
                        help="comma-separated hidden widths (decoder mirrors them)")
    parser.add_argument("--activation", default="tanh")
    parser.add_argument("--likelihood", default="bernoulli")
    parser.add_argument("--batch-size", type=int, default=20)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--dtype", choices=["float64", "float32"], default="float64")
    parser.add_argument("--eval-k", type=int, default=5000,
                        help="importance samples of the test log-likelihood (default 5000; the "
                             "categorical VAE's is exact and ignores it)")
    parser.add_argument("--backend", default=None,
                        help="kernel backend: numpy, numba, cuda or auto (default: the fastest)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the checkpoint in --out (settings must match)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run_discrete(args, cls):
    r"""Train, evaluate and draw a :class:`~scratchdgm.models.deep.discrete.CategoricalVAE` or
    :class:`~scratchdgm.models.deep.discrete.GMVAE` from parsed ``args``; returns 0."""
    import numpy as np

    from scratchdgm.checkpoint import write_json_atomic
    from scratchdgm.models.deep.evaluation import cluster_purity, contingency_table
    from scratchdgm.plots.discrete import plot_cluster_confusion, plot_component_means

    for name in ("epochs", "batch_size", "eval_k"):
        if getattr(args, name) < 1:
            raise CommandError(f"--{name.replace('_', '-')} must be >= 1, got "
                               f"{getattr(args, name)}")
    if args.n_categories < 2:
        raise CommandError(f"--n-categories must be >= 2 (a latent with one value carries no "
                           f"information), got {args.n_categories}")
    if args.k is not None and args.k < 1:
        raise CommandError(f"--k must be >= 1 (samples per point), got {args.k}")
    if not args.lr > 0 or not np.isfinite(args.lr):
        raise CommandError(f"--lr must be a finite number > 0, got {args.lr}")
    hidden = parse_hidden(args.hidden)
    backend = check_backend(args.backend)
    out = args.out
    ckpt = check_new_or_resumed(out, args.resume)
    ds = load_data(args.data, args.seed)
    extra = {"latent_dim": args.latent_dim} if hasattr(args, "latent_dim") else {}
    try:
        model = cls(ds["x_train"].shape[1], args.n_categories, hidden=hidden,
                    activation=args.activation, likelihood=args.likelihood,
                    estimator=args.estimator, temperature=args.temperature,
                    min_temperature=args.min_temperature, anneal_rate=args.anneal_rate,
                    k=args.k, dtype=np.dtype(args.dtype), random_state=args.seed,
                    backend=backend, **extra)
    except ValueError as exc:  # a setting out of range (e.g. the temperature): say which
        raise CommandError(str(exc)) from None
    train_run(model, ds, args, out=out, ckpt=ckpt)
    hist = model.history_
    metrics = {
        "model": args.model, "k": model.k, "data": args.data, "seed": args.seed,
        "epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr,
        "config": model.config(), "train_seconds": hist["train_seconds"],
        "final_train_bound": hist["train_bound"][-1], "final_val_bound": hist["val_bound"][-1],
        "history": hist, "backend": backend,
    }
    metrics.update(evaluate_or_explain(model, ds["x_test"], where=ckpt, eval_k=args.eval_k,
                                       x_train=ds["x_train"], seed=args.seed,
                                       data_description=test_data_description(args.data, ds)))
    if hasattr(model, "log_px_given_c"):
        # the categorical VAE's likelihood is a finite sum: report the exact value (the
        # importance-sampled one stays in the evaluation report)
        metrics["test_log_likelihood"] = model.score(ds["x_test"])
        metrics["test_log_likelihood_exact"] = True
    clusters_train = model.predict(ds["x_train"])
    metrics["cluster_sizes_train"] = np.bincount(clusters_train,
                                                 minlength=model.n_categories).tolist()
    figures = []
    purity = None
    if ds["y_train"] is not None:
        y_train, y_test = np.asarray(ds["y_train"]), np.asarray(ds["y_test"])
        purity = cluster_purity(clusters_train, y_train)
        metrics["purity_train"] = purity
        metrics["purity_test"] = cluster_purity(model.predict(ds["x_test"]), y_test)
        table = contingency_table(clusters_train, y_train, model.n_categories,
                                  int(y_train.max()) + 1)
        metrics["contingency_train"] = table.tolist()
        figures.append(plot_cluster_confusion(
            table, os.path.join(out, "confusion.png"),
            title=f"{type(model).__name__}: components against labels (training set)"))
    if int(round(np.sqrt(model.input_dim))) ** 2 == model.input_dim:
        means = model.component_means(8, random_state=args.seed)
        notes = None
        if purity is not None:
            notes = [f"c={c}: {int(table[c].sum())} pts, mostly {int(table[c].argmax())}"
                     for c in range(model.n_categories)]
        figures.append(plot_component_means(
            means, os.path.join(out, "components.png"), purity=purity, labels=notes,
            title=f"{type(model).__name__}: what each component generates"))
    metrics["figures"] = [os.path.basename(f) for f in figures]
    write_json_atomic(os.path.join(out, METRICS_NAME), metrics)
    line = (f"{args.model} K={model.n_categories} {args.estimator} seed={args.seed}: test "
            f"log-likelihood {metrics['test_log_likelihood']:.3f}")
    if purity is not None:
        line += (f", cluster purity {metrics['purity_train']:.3f} (train) / "
                 f"{metrics['purity_test']:.3f} (test)")
    print(f"{line}, train {metrics['train_seconds']:.1f}s; wrote {out}")
    return 0
