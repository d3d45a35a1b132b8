r"""``scratchdgm train flow``: fit a RealNVP normalizing flow by exact maximum likelihood
([Isachenko-L4, "Forward KL for flow model"] in ``docs/lectures.md``), checkpointing every
epoch, then write ``metrics.json`` (the exact test log-likelihood, the energy distance of
samples to the test set) and, for 2-D data, ``flow.png`` (data, codes, density, samples).

Example::

    scratchdgm train flow --data moons --epochs 300 --seed 0 --out runs/flow_moons
"""

import os

from scratchdgm.cli._continuous import (
    add_common_arguments,
    format_statistics,
    prepare_run,
    sample_statistics,
)
from scratchdgm.cli._runs import (
    METRICS_NAME,
    data_record,
    fit_or_explain,
    parse_hidden,
    run_directory,
)

HELP = "RealNVP normalizing flow: exact maximum likelihood (Dinh et al. 2017)"


def configure_parser(parser):
    add_common_arguments(parser, epochs=300, batch_size=100, lr=1e-3)
    parser.add_argument("--layers", type=int, default=8, help="coupling layers (default 8)")
    parser.add_argument("--hidden", default="64,64",
                        help="hidden widths of each layer's scale-and-shift network")
    parser.add_argument("--activation", default="tanh")
    parser.add_argument("--max-log-scale", type=float, default=3.0,
                        help="bound S of each log-scale, s = S tanh(h / S) (default 3)")


def run(args):
    import numpy as np

    from scratchdgm.checkpoint import write_json_atomic
    from scratchdgm.models.deep.flow import RealNVP
    from scratchdgm.plots.density2d import density_grid, plot_flow

    ds, checkpoint, backend = prepare_run(args, positive=("epochs", "batch_size", "layers"))
    x_train, x_test = ds["x_train"], ds["x_test"]
    model = RealNVP(x_train.shape[1], args.layers, parse_hidden(args.hidden),
                    activation=args.activation, max_log_scale=args.max_log_scale,
                    dtype=np.dtype(args.dtype), random_state=args.seed, backend=backend)
    model.check_data(x_train, "training data")
    model.check_data(x_test, "test data")
    with run_directory(args.out):
        fit_or_explain(model, x_train, ckpt=checkpoint, out=args.out, epochs=args.epochs,
                       batch_size=args.batch_size, lr=args.lr, X_val=x_test,
                       resume=args.resume, progress=not args.no_progress,
                       random_state=args.seed, metadata=data_record(args.data, args.seed))
    hist = model.history_
    samples = model.sample(len(x_test), random_state=np.random.default_rng([args.seed, 4]))
    stats = sample_statistics(samples, ds, args.seed)
    metrics = {
        "model": "flow", "data": args.data, "seed": args.seed, "epochs": args.epochs,
        "batch_size": args.batch_size, "lr": args.lr, "config": model.config(),
        "backend": backend,
        "test_log_likelihood": model.score(x_test),
        "train_log_likelihood": model.score(x_train),
        "energy_distance": stats,
        "train_seconds": hist["train_seconds"],
        "history": hist,
    }
    figures = []
    if x_train.shape[1] == 2:
        xx, yy, grid = density_grid(x_test)
        figures.append(plot_flow(x_test, model.transform(x_test), samples, (xx, yy),
                                 model.score_samples(grid), os.path.join(args.out, "flow.png"),
                                 title=f"RealNVP on {args.data}: test log-likelihood "
                                       f"{metrics['test_log_likelihood']:.3f} (exact)"))
    metrics["figures"] = [os.path.basename(f) for f in figures]
    write_json_atomic(os.path.join(args.out, METRICS_NAME), metrics)
    print(f"flow on {args.data}, seed {args.seed}: exact test log-likelihood "
          f"{metrics['test_log_likelihood']:.3f} nats (train {metrics['train_log_likelihood']:.3f})"
          f", train {metrics['train_seconds']:.1f}s; {format_statistics(stats)}; wrote {args.out}")
    return 0
