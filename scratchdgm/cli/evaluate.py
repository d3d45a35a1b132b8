r"""``scratchdgm eval DIR``: re-evaluate a trained run with :func:`scratchdgm.evaluate` --
importance-sampled test log-likelihood (K = 5000 by default, Burda et al. 2016, Section 5), the
ELBO and the bounds :math:`\mathcal L_K`, the effective sample size of the importance weights,
active units and the KL of each latent dimension -- print the report and merge it into
``DIR/metrics.json``.

The data are those the run was trained on, as its checkpoint records them (the ``--data`` spec
and seed, and a fingerprint of the training data), so a run killed before it wrote
``metrics.json`` -- or one that diverged after some good epochs -- is evaluated on the right
data; ``--data`` evaluates on other data.
"""

import os

HELP = ("evaluate a trained run: test log-likelihood (K=5000), ELBO and bounds, effective sample "
        "size, active units, KL per latent dimension")


def configure_parser(parser):
    parser.add_argument("dir", help="a run directory written by `scratchdgm train`")
    parser.add_argument("--k", type=int, default=5000,
                        help="importance samples (default %(default)s)")
    parser.add_argument("--data", default=None, metavar="SPEC",
                        help="dataset spec (default: the one the run was trained on)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the importance samples (default %(default)s)")
    parser.add_argument("--backend", default=None, choices=["numpy", "numba", "cuda", "auto"],
                        help="kernel backend (default: SCRATCHDGM_BACKEND, else auto = numba)")
    parser.add_argument("--no-write", action="store_true", help="do not update metrics.json")


def run(args):
    from scratchdgm.backend import use_backend
    from scratchdgm.cli._runs import CommandError, check_backend

    if args.k < 1:
        raise CommandError(f"--k must be >= 1 (importance samples per point), got {args.k}")
    with use_backend(check_backend(args.backend)):  # this command's, not the process's
        return _evaluate(args)


def _evaluate(args):
    from scratchdgm.checkpoint import array_fingerprint, write_json_atomic
    from scratchdgm.cli._runs import (
        CHECKPOINT_NAME,
        METRICS_NAME,
        CommandError,
        evaluate_or_explain,
        load_data,
        note,
        read_metrics,
        recorded_data,
        test_data_description,
        training_fingerprint,
    )
    from scratchdgm.models.deep import load_model

    ckpt = os.path.join(args.dir, CHECKPOINT_NAME)
    if not os.path.isfile(ckpt):
        raise CommandError(f"{ckpt} not found; expected a directory written by "
                           f"`scratchdgm train`")
    metrics = read_metrics(args.dir)
    model = load_model(ckpt)
    if not (hasattr(model, "transform") or hasattr(model, "posterior_means")):
        # the evaluator's protocol needs a posterior mean per latent layer (scratchdgm.evaluate)
        raise CommandError(f"{ckpt} holds a {type(model).__name__}, which has no posterior mean "
                           f"per point for this report (a diffusion model's latents are a "
                           f"whole noising chain); its test ELBO and bound L_K are in "
                           f"{os.path.join(args.dir, METRICS_NAME)}, written by `scratchdgm "
                           f"train`, and from Python model.score(X) and model.bound(X, k)")
    spec, data_seed = recorded_data(model, metrics)
    if args.data is None and spec is None:
        raise CommandError(f"{ckpt} does not record which data it was trained on (a checkpoint "
                           f"of an earlier version) and {args.dir} has no {METRICS_NAME}: pass "
                           f"--data SPEC")
    ds = load_data(args.data or spec, data_seed)
    if ds["x_train"].shape[1] != model.input_dim:
        raise CommandError(f"--data {args.data or spec} has {ds['x_train'].shape[1]} columns but "
                           f"the model in {ckpt} takes {model.input_dim}: evaluate it on data "
                           f"like those it was trained on")
    recorded = training_fingerprint(model)
    if args.data in (None, spec) and recorded is not None:
        now = array_fingerprint(model.check_data(ds["x_train"], "training data",
                                                 allow_unit_interval=True))
        if now != recorded:
            note(f"warning: the data of --data {spec} are not those {ckpt} was trained on "
                 f"(fingerprint {now}, recorded {recorded}): have the files changed?")
    result = evaluate_or_explain(model, ds["x_test"], where=ckpt, eval_k=args.k,
                                 x_train=ds["x_train"], seed=args.seed,
                                 data_description=test_data_description(args.data or spec, ds))
    units = ("" if result["latent_dim"] is None else
             f"; active units {result['active_units']}/{result['latent_dim']} on the training "
             f"data")
    print(f"{ckpt}: test log-likelihood {result['test_log_likelihood']:.3f} (K={args.k}){units}")
    print(result["evaluation_text"])
    if not args.no_write:
        metrics.update(result)
        metrics.setdefault("data", args.data or spec)
        write_json_atomic(os.path.join(args.dir, METRICS_NAME), metrics)
    return 0
