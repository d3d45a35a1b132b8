r"""``scratchdgm train MODEL``: train a model, checkpointing every epoch, then evaluate it
(importance-sampled test log-likelihood with K = 5000, bounds, active units) and write
``metrics.json``.

``vae`` and ``iwae`` are defined here. Other model families register in :data:`FAMILIES` a
module of their own with ``HELP``, ``configure_parser(parser)`` and ``run(args)``, reusing the
run helpers of :mod:`scratchdgm.cli._runs` (``check_new_or_resumed``, ``load_data``,
``check_backend``, ``parse_hidden``, ``train_run`` (data checks, run directory, fit),
``evaluate_or_explain``, ``CommandError``), as ``run_vae`` below does.

``--layers 2`` trains the models with two stochastic layers, :class:`~scratchdgm.HierarchicalVAE`
and :class:`~scratchdgm.HierarchicalIWAE`.

Example (the digits protocol of ``docs/protocols.md``, IWAE with K = 50)::

    scratchdgm train iwae --data digits --k 50 --epochs 100 --seed 0 --out runs/iwae50_s0

writes ``runs/iwae50_s0/checkpoint.npz`` (weights, Adam state, RNG state, the data spec and a
fingerprint of the training data: ``--resume`` continues bit for bit, on the same data only)
and ``runs/iwae50_s0/metrics.json``.
"""

import argparse
import os
from importlib import import_module

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

HELP = "train a model (checkpoints every epoch, then metrics.json)"

#: model families trained by other modules: name -> module (HELP, configure_parser, run)
FAMILIES = {
    "diffusion": "scratchdgm.cli.train_diffusion",
    "flow": "scratchdgm.cli.train_flow",
    "catvae": "scratchdgm.cli.train_catvae",
    "gmvae": "scratchdgm.cli.train_gmvae",
    "miwae": "scratchdgm.cli.train_miwae",
}


class LazyChoices:
    r"""The ``choices`` of an argument, read from the library only when argparse first needs
    them (checking a value, printing ``--help``), so that ``scratchdgm --help`` does not import
    the models."""

    def __init__(self, load):
        self._load, self._values = load, None

    def _get(self):
        if self._values is None:
            self._values = tuple(self._load())
        return self._values

    def __contains__(self, value):
        return value in self._get()

    def __iter__(self):
        return iter(self._get())

    def __len__(self):
        return len(self._get())


def _activations():
    from scratchdgm.models.deep.vae import _HIDDEN_ACTIVATIONS

    return _HIDDEN_ACTIVATIONS


def _likelihoods():
    from scratchdgm.models.deep.observation import LIKELIHOOD_NAMES

    return ("auto",) + LIKELIHOOD_NAMES


def data_help():
    r"""The epilog of ``train MODEL --help``: every ``--data`` spec and the likelihoods it
    takes."""
    from scratchdgm.data import BINARY_DATASETS, DATASET_SPECS

    width = max(len(s) for s in DATASET_SPECS)
    lines = ["data sets (--data) and the likelihoods they take:"]
    for spec, text in DATASET_SPECS.items():
        takes = ("binary: bernoulli" if spec in BINARY_DATASETS else
                 "continuous: gaussian[:fixed|:learned|:decoder] or student_t")
        lines.append(f"  {spec:<{width}}  {text}\n  {'':<{width}}  ({takes})")
    lines.append("--likelihood auto (the default) picks bernoulli for binary data and\n"
                 "gaussian (a learned sigma per coordinate) for continuous data.")
    return "\n".join(lines)


def configure_parser(parser):
    sub = parser.add_subparsers(dest="model", metavar="MODEL")
    sub.required = True
    for name, help_text in (("vae", "VAE: the bound L_1 (Kingma & Welling 2014)"),
                            ("iwae", "IWAE: the bound L_K (Burda et al. 2016)")):
        p = sub.add_parser(name, help=help_text, description=help_text, epilog=data_help(),
                           formatter_class=argparse.RawDescriptionHelpFormatter)
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
    parser.add_argument("--data", default="digits", metavar="SPEC",
                        help="the data set: digits (the protocol of docs/protocols.md), "
                             "mnist:DIR, toy, moons, ... (all below; default %(default)s)")
    parser.add_argument("--k", type=int, default=None,
                        help="samples per point in the training bound (default: vae 1, iwae 50)")
    parser.add_argument("--epochs", type=int, default=100,
                        help="total number of epochs, also when resuming (default %(default)s)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seeds weights and training draws (default %(default)s)")
    parser.add_argument("--out", required=True, metavar="DIR", help="output directory")
    parser.add_argument("--latent-dim", type=int, default=None,
                        help="d, the dimension of z (default 10); with --layers 2, the size of "
                             "z1 (default 20)")
    parser.add_argument("--hidden", default="100,100",
                        help="comma-separated hidden widths of the encoder; the decoder mirrors "
                             "them (default %(default)s); with --layers 2, those between x and z1")
    parser.add_argument("--layers", type=int, choices=(1, 2), default=1,
                        help="stochastic layers: 1 (x <- z) or 2 (x <- z1 <- z2, Burda et al. "
                             "2016's two-layer model scaled to the digits; default 1)")
    parser.add_argument("--latent-dim2", type=int, default=10,
                        help="with --layers 2: the size of z2 (default %(default)s)")
    parser.add_argument("--hidden2", default="50,50",
                        help="with --layers 2: hidden widths between z1 and z2 (default "
                             "%(default)s)")
    # (a metavar, so that argparse reads the lazy choices only to check a value or print help)
    parser.add_argument("--activation", default="tanh", metavar="NAME",
                        choices=LazyChoices(_activations),
                        help="hidden activation of both networks: %(choices)s (default "
                             "%(default)s)")
    parser.add_argument("--likelihood", default="auto", metavar="NAME",
                        choices=LazyChoices(_likelihoods),
                        help="observation model p(x|z): %(choices)s; auto: bernoulli for binary "
                             "data, gaussian for continuous (default %(default)s)")
    parser.add_argument("--prior", default="normal",
                        help="p(z): normal, gmm or gmm:C (C components) (default %(default)s)")
    parser.add_argument("--batch-size", type=int, default=20,
                        help="points per Adam step (default %(default)s)")
    parser.add_argument("--lr", type=float, default=1e-3,
                        help="Adam step size (default %(default)s)")
    parser.add_argument("--dtype", choices=["float64", "float32"], default="float64",
                        help="(default %(default)s)")
    parser.add_argument("--eval-k", type=int, default=5000,
                        help="importance samples of the test log-likelihood (default %(default)s)")
    parser.add_argument("--backend", default=None, choices=["numpy", "numba", "cuda", "auto"],
                        help="kernel backend (default: SCRATCHDGM_BACKEND, else auto = numba)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the checkpoint in --out (same settings and data)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run_vae(args):
    import numpy as np

    from scratchdgm import IWAE, VAE, HierarchicalIWAE, HierarchicalVAE
    from scratchdgm.checkpoint import write_json_atomic
    from scratchdgm.models.deep.training import format_bound

    layers = getattr(args, "layers", 1)
    if args.latent_dim is None:
        args.latent_dim = 20 if layers == 2 else 10
    for name in ("epochs", "latent_dim", "batch_size", "eval_k"):
        value = getattr(args, name)
        if value < 1:
            raise CommandError(f"--{name.replace('_', '-')} must be >= 1, got {value}")
    if args.k is not None and args.k < 1:
        raise CommandError(f"--k must be >= 1 (importance samples per point), got {args.k}")
    if not args.lr > 0 or not np.isfinite(args.lr):
        raise CommandError(f"--lr must be a finite number > 0, got {args.lr}")
    hidden = parse_hidden(args.hidden)
    backend = check_backend(args.backend)
    out = args.out
    ckpt = check_new_or_resumed(out, args.resume)
    ds = load_data(args.data, args.seed)
    likelihood = args.likelihood
    if likelihood == "auto":
        likelihood = "bernoulli" if ds["binary"] else "gaussian"
    if layers == 2:
        if args.prior != "normal":
            raise CommandError("--prior applies to one stochastic layer; with --layers 2 the "
                               "prior of z2 is the standard normal")
        if args.latent_dim2 < 1:
            raise CommandError(f"--latent-dim2 must be >= 1, got {args.latent_dim2}")
        cls = HierarchicalIWAE if args.model == "iwae" else HierarchicalVAE
        model = cls(ds["x_train"].shape[1], (args.latent_dim, args.latent_dim2),
                    (hidden, parse_hidden(args.hidden2)), activation=args.activation,
                    likelihood=likelihood, k=args.k, dtype=np.dtype(args.dtype),
                    random_state=args.seed, backend=backend)
    else:
        cls = IWAE if args.model == "iwae" else VAE
        model = cls(ds["x_train"].shape[1], args.latent_dim, hidden, activation=args.activation,
                    likelihood=likelihood, prior=args.prior, k=args.k,
                    dtype=np.dtype(args.dtype), random_state=args.seed, backend=backend)
    train_run(model, ds, args, out=out, ckpt=ckpt,
              likelihoods="gaussian or student_t (or auto)")
    hist = model.history_
    metrics = {
        "model": args.model, "layers": layers, "k": model.k, "data": args.data,
        "seed": args.seed, "epochs": hist["epoch"][-1] if hist["epoch"] else 0,
        "batch_size": args.batch_size, "lr": args.lr,
        "config": model.config(),
        "train_seconds": hist["train_seconds"],
        "fit_seconds": float(sum(hist["epoch_seconds"])),
        "final_train_bound": hist["train_bound"][-1] if hist["train_bound"] else None,
        "final_val_bound": hist["val_bound"][-1] if hist["val_bound"] else None,
        "history": hist,
        "backend": backend,
    }
    metrics.update(evaluate_or_explain(model, ds["x_test"], where=ckpt, eval_k=args.eval_k,
                                       x_train=ds["x_train"], seed=args.seed,
                                       data_description=test_data_description(args.data, ds)))
    write_json_atomic(os.path.join(out, METRICS_NAME), metrics)
    print(f"{args.model}{' (2 layers)' if layers == 2 else ''} k={model.k} seed={args.seed}: "
          f"test log-likelihood "
          f"{format_bound(metrics['test_log_likelihood'])} (K={args.eval_k}), train "
          f"{metrics['train_seconds']:.1f}s, active units {metrics['active_units']}/"
          f"{model.latent_dim}; wrote {out}")
    return 0
