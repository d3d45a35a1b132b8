r"""``scratchdgm train MODEL``: train a model, checkpointing every epoch, then evaluate it
(importance-sampled test log-likelihood with K = 5000, bounds, active units) and write
``metrics.json``.

``vae`` and ``iwae`` are defined here. Other model families register in :data:`FAMILIES` a
module of their own with ``HELP``, ``configure_parser(parser)`` and ``run(args)``, reusing the
run-directory helpers of :mod:`scratchdgm.cli._runs`.

``--layers 2`` trains the models with two stochastic layers, :class:`~scratchdgm.HierarchicalVAE`
and :class:`~scratchdgm.HierarchicalIWAE`.

Example (the digits protocol of ``docs/protocols.md``, IWAE with K = 50)::

    scratchdgm train iwae --data digits --k 50 --epochs 100 --seed 0 --out runs/iwae50_s0

writes ``runs/iwae50_s0/checkpoint.npz`` (weights, Adam state, RNG state: ``--resume`` continues
bit for bit) and ``runs/iwae50_s0/metrics.json``.
"""

import os

from scratchdgm.cli._runs import CHECKPOINT_NAME, METRICS_NAME, evaluate_model, load_data

from importlib import import_module

HELP = "train a model (checkpoints every epoch, then metrics.json)"

#: model families trained by other modules: name -> module (HELP, configure_parser, run)
FAMILIES = {
    "miwae": "scratchdgm.cli.train_miwae",
}


def configure_parser(parser):
    sub = parser.add_subparsers(dest="model", metavar="MODEL")
    sub.required = True
    for name, help_text in (("vae", "VAE: the bound L_1 (Kingma & Welling 2014)"),
                            ("iwae", "IWAE: the bound L_K (Burda et al. 2016)")):
        p = sub.add_parser(name, help=help_text, description=help_text)
        configure_vae_parser(p)
        p.set_defaults(_train_run=run_vae)
    for name, module_name in FAMILIES.items():
        module = import_module(module_name)
        p = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.configure_parser(p)
        p.set_defaults(_train_run=module.run)


def run(args):
    return args._train_run(args)


def configure_vae_parser(parser):
    parser.add_argument("--data", default="digits",
                        help="digits (the protocol of docs/protocols.md), toy, or mnist:DIR (default digits)")
    parser.add_argument("--k", type=int, default=None,
                        help="samples per point in the training bound (default: vae 1, iwae 50)")
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0, help="seeds weights and training draws")
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--latent-dim", type=int, default=None,
                        help="latent dimension d (default 10); with --layers 2, the size of z1 "
                             "(default 20)")
    parser.add_argument("--hidden", default="100,100",
                        help="comma-separated hidden widths (decoder mirrors them); with "
                             "--layers 2, those between x and z1")
    parser.add_argument("--layers", type=int, choices=(1, 2), default=1,
                        help="stochastic layers: 1 (x <- z) or 2 (x <- z1 <- z2, Burda et al. "
                             "2016's two-layer model scaled to the digits; default 1)")
    parser.add_argument("--latent-dim2", type=int, default=10,
                        help="with --layers 2: the size of z2 (default 10)")
    parser.add_argument("--hidden2", default="50,50",
                        help="with --layers 2: hidden widths between z1 and z2 (default 50,50)")
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


def run_vae(args):
    import numpy as np

    from scratchdgm import IWAE, VAE, HierarchicalIWAE, HierarchicalVAE
    from scratchdgm.backend import get_backend, resolve_backend
    from scratchdgm.checkpoint import write_json_atomic

    layers = getattr(args, "layers", 1)
    if args.latent_dim is None:
        args.latent_dim = 20 if layers == 2 else 10
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
    ds = load_data(args.data, args.seed)
    if layers == 2:
        if args.prior != "normal":
            raise ValueError("--prior applies to one stochastic layer; with --layers 2 the prior "
                             "of z2 is the standard normal")
        if args.latent_dim2 < 1:
            raise ValueError(f"--latent-dim2 must be >= 1, got {args.latent_dim2}")
        cls = HierarchicalIWAE if args.model == "iwae" else HierarchicalVAE
        model = cls(ds["x_train"].shape[1], (args.latent_dim, args.latent_dim2),
                    (hidden, parse_hidden(args.hidden2)), activation=args.activation,
                    likelihood=args.likelihood, k=args.k, dtype=np.dtype(args.dtype),
                    random_state=args.seed, backend=args.backend)
    else:
        cls = IWAE if args.model == "iwae" else VAE
        model = cls(ds["x_train"].shape[1], args.latent_dim, hidden, activation=args.activation,
                    likelihood=args.likelihood,
                    prior=args.prior, k=args.k, dtype=np.dtype(args.dtype),
                    random_state=args.seed, backend=args.backend)
    if ds["binary"] is False and model.observation.binary_data:
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
        "model": args.model, "layers": layers, "k": model.k, "data": args.data,
        "seed": args.seed,
        "epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr,
        "config": model.config(),
        "train_seconds": hist["train_seconds"],
        "fit_seconds": float(sum(hist["epoch_seconds"])),
        "final_train_bound": hist["train_bound"][-1] if hist["train_bound"] else None,
        "final_val_bound": hist["val_bound"][-1] if hist["val_bound"] else None,
        "history": hist,
    }
    metrics["backend"] = get_backend() if args.backend is None else resolve_backend(args.backend)
    metrics.update(evaluate_model(model, ds["x_test"], eval_k=args.eval_k,
                                  x_train=ds["x_train"], seed=args.seed))
    write_json_atomic(os.path.join(out, METRICS_NAME), metrics)
    print(f"{args.model}{' (2 layers)' if layers == 2 else ''} k={model.k} seed={args.seed}: "
          f"test log-likelihood "
          f"{metrics['test_log_likelihood']:.3f} (K={args.eval_k}), train "
          f"{metrics['train_seconds']:.1f}s, active units {metrics['active_units']}/"
          f"{model.latent_dim}; wrote {out}")
    return 0
