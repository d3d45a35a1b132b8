r"""``scratchdgm eval DIR``: re-evaluate a trained run with :func:`scratchdgm.evaluate` --
importance-sampled test log-likelihood (K = 5000 by default, Burda et al. 2016, Section 5), the
ELBO and the bounds :math:`\mathcal L_K`, the effective sample size of the importance weights,
active units and the KL of each latent dimension -- print the report and merge it into
``DIR/metrics.json``.
"""

import json
import os

HELP = ("evaluate a trained run: test log-likelihood (K=5000), ELBO and bounds, effective sample "
        "size, active units, KL per latent dimension")


def configure_parser(parser):
    parser.add_argument("dir", help="a run directory written by `scratchdgm train`")
    parser.add_argument("--k", type=int, default=5000, help="importance samples (default 5000)")
    parser.add_argument("--data", default=None,
                        help="dataset spec (default: the one the run was trained on)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-write", action="store_true", help="do not update metrics.json")


def run(args):
    from scratchdgm.cli._runs import CHECKPOINT_NAME, METRICS_NAME, evaluate_model, load_data
    from scratchdgm.checkpoint import write_json_atomic
    from scratchdgm.models.deep import load_model

    if args.k < 1:
        raise ValueError(f"--k must be >= 1 (importance samples per point), got {args.k}")
    ckpt = os.path.join(args.dir, CHECKPOINT_NAME)
    if not os.path.isfile(ckpt):
        raise FileNotFoundError(f"{ckpt} not found; expected a directory written by "
                                f"`scratchdgm train`")
    model = load_model(ckpt)
    metrics_path = os.path.join(args.dir, METRICS_NAME)
    metrics = {}
    if os.path.isfile(metrics_path):
        with open(metrics_path) as f:
            metrics = json.load(f)
    spec = args.data or metrics.get("data") or "digits"
    ds = load_data(spec, metrics.get("seed", 0))
    from scratchdgm.data.digits import TEST_BINARIZATION_SEED

    binarisation = (f"the test set binarised once, stochastically (seed {TEST_BINARIZATION_SEED})"
                    if ds["binary"] else "none (continuous data)")
    result = evaluate_model(model, ds["x_test"], eval_k=args.k, x_train=ds["x_train"],
                            seed=args.seed, data_description={"data": spec, "split": "test",
                                                              "binarisation": binarisation})
    print(f"{ckpt}: test log-likelihood {result['test_log_likelihood']:.3f} (K={args.k}); "
          f"active units {result['active_units']}/{model.latent_dim} on the training data")
    print(result["evaluation_text"])
    if not args.no_write:
        metrics.update(result)
        metrics.setdefault("data", spec)
        write_json_atomic(metrics_path, metrics)
    return 0
