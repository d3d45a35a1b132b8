r"""``scratchdgm train {vae,iwae}``: train a VAE or an IWAE, checkpointing every epoch, then
evaluate it (importance-sampled test log-likelihood with K = 5000, bounds, active units) and
write ``metrics.json``.

Example (the digits protocol of design.md §5, IWAE with K = 50)::

    scratchdgm train iwae --data digits --k 50 --epochs 100 --seed 0 --out runs/iwae50_s0

writes ``runs/iwae50_s0/checkpoint.npz`` (weights, Adam state, RNG state: ``--resume`` continues
bit for bit) and ``runs/iwae50_s0/metrics.json``.
"""

import os
import time

HELP = "train a VAE or IWAE (checkpoints every epoch, then metrics.json)"

CHECKPOINT_NAME = "checkpoint.npz"
METRICS_NAME = "metrics.json"


def configure_parser(parser):
    parser.add_argument("model", choices=["vae", "iwae"], help="which bound to train on")
    parser.add_argument("--data", default="digits",
                        help="digits (design.md §5 protocol), toy, or mnist:DIR (default digits)")
    parser.add_argument("--k", type=int, default=None,
                        help="samples per point in the training bound (default: vae 1, iwae 50)")
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0, help="seeds weights and training draws")
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--latent-dim", type=int, default=10)
    parser.add_argument("--hidden", default="100,100",
                        help="comma-separated hidden widths (decoder mirrors them)")
    parser.add_argument("--activation", default="tanh")
    parser.add_argument("--likelihood", default="bernoulli")
    parser.add_argument("--prior", default="normal", help="normal, gmm or gmm:C")
    parser.add_argument("--batch-size", type=int, default=20)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--dtype", choices=["float64", "float32"], default="float64")
    parser.add_argument("--eval-k", type=int, default=5000,
                        help="importance samples of the test log-likelihood (default 5000)")
    parser.add_argument("--backend", default=None,
                        help="kernel backend: numpy, numba, cuda or auto (default: the fastest)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the checkpoint in --out (settings must match)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def parse_hidden(text):
    try:
        sizes = tuple(int(s) for s in str(text).split(",") if s.strip())
    except ValueError:
        raise ValueError(f"--hidden must be comma-separated ints like 100,100, got "
                         f"{text!r}") from None
    if not sizes:
        raise ValueError(f"--hidden needs at least one width, got {text!r}")
    return sizes


def load_data(spec, seed=0):
    r"""Data for a ``--data`` spec (see :func:`scratchdgm.data.get_dataset`): a dict with
    ``x_train``, ``x_test`` (the once-binarised test set for binary datasets), ``y_train``,
    ``y_test`` (or None) and ``binary``.

    ``digits``: design.md §5 (1500 / 297, the test set binarised once with seed 123);
    ``mnist:DIR``: the IDX files in DIR; ``toy`` and the other synthetic sets: drawn with ``seed``.
    """
    from scratchdgm import data

    spec = str(spec)
    if spec.startswith("mnist:") and not os.path.isdir(spec.split(":", 1)[1]):
        raise ValueError(f"--data {spec}: {spec.split(':', 1)[1]!r} is not a directory holding "
                         f"the MNIST IDX files")
    try:
        ds = data.get_dataset(spec, seed)
    except ValueError as exc:
        raise ValueError(f"unknown --data {spec!r}: {exc}") from None
    x_test = ds.x_test_binary if ds.binary and ds.x_test_binary is not None else ds.x_test
    return {"x_train": ds.x_train, "x_test": x_test, "y_train": ds.y_train, "y_test": ds.y_test,
            "binary": bool(ds.binary)}


def evaluate_model(model, x_test, *, eval_k=5000, x_train=None, seed=0, bound_ks=(1, 5, 50)):
    r"""Test log-likelihood (K = ``eval_k``), test bounds :math:`\mathcal L_K` for
    ``bound_ks`` and active units: a JSON-ready dict."""
    import numpy as np

    t0 = time.perf_counter()
    ll = model.log_likelihood(x_test, k=eval_k, random_state=np.random.default_rng([seed, 1]))
    eval_seconds = time.perf_counter() - t0
    bounds = {str(k): model.bound(x_test, k, random_state=np.random.default_rng([seed, 2, k]))
              for k in bound_ks}
    units = model.active_units(x_train if x_train is not None else x_test)
    return {"test_log_likelihood": ll, "eval_k": int(eval_k), "eval_seconds": eval_seconds,
            "test_bounds": bounds, "active_units": units, "latent_dim": model.latent_dim}


def run(args):
    import numpy as np

    from scratchdgm import IWAE, VAE
    from scratchdgm.models.training import write_json_atomic

    for name in ("epochs", "latent_dim", "batch_size", "eval_k"):
        value = getattr(args, name)
        if value < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {value}")
    if args.k is not None and args.k < 1:
        raise ValueError(f"--k must be >= 1 (importance samples per point), got {args.k}")
    hidden = parse_hidden(args.hidden)
    out = args.out
    ckpt = os.path.join(out, CHECKPOINT_NAME)
    if os.path.exists(ckpt) and not args.resume:
        raise FileExistsError(f"{ckpt} exists; pass --resume to continue that run, or choose "
                              f"another --out (nothing was overwritten)")
    if args.backend:
        from scratchdgm import set_backend

        set_backend(args.backend)
    ds = load_data(args.data, args.seed)
    cls = IWAE if args.model == "iwae" else VAE
    model = cls(ds["x_train"].shape[1], args.latent_dim, hidden, activation=args.activation,
                likelihood=args.likelihood,
                prior=args.prior, k=args.k, dtype=np.dtype(args.dtype), random_state=args.seed)
    if ds["binary"] is False and model.observation.kind == "bernoulli":
        raise ValueError(f"--data {args.data} is continuous; choose --likelihood gaussian or "
                         f"student_t")
    # validate the data against the model before creating anything on disk
    model.check_data(ds["x_train"], "training data", allow_unit_interval=True)
    model.check_data(ds["x_test"], "test data")
    os.makedirs(out, exist_ok=True)
    model.fit(ds["x_train"], epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
              X_val=ds["x_test"], checkpoint=ckpt, resume=args.resume,
              progress=not args.no_progress, random_state=args.seed)
    hist = model.history_
    metrics = {
        "model": args.model, "k": model.k, "data": args.data, "seed": args.seed,
        "epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr,
        "config": model.config(),
        "train_seconds": hist["train_seconds"],
        "fit_seconds": float(sum(hist["epoch_seconds"])),
        "final_train_bound": hist["train_bound"][-1] if hist["train_bound"] else None,
        "final_val_bound": hist["val_bound"][-1] if hist["val_bound"] else None,
        "history": hist,
    }
    from scratchdgm import get_backend

    metrics["backend"] = get_backend()
    metrics.update(evaluate_model(model, ds["x_test"], eval_k=args.eval_k,
                                  x_train=ds["x_train"], seed=args.seed))
    write_json_atomic(os.path.join(out, METRICS_NAME), metrics)
    print(f"{args.model} k={model.k} seed={args.seed}: test log-likelihood "
          f"{metrics['test_log_likelihood']:.3f} (K={args.eval_k}), train "
          f"{metrics['train_seconds']:.1f}s, active units {metrics['active_units']}/"
          f"{model.latent_dim}; wrote {out}")
    return 0
