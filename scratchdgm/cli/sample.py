r"""``scratchdgm sample DIR``: draw :math:`z \sim p(z)`, decode, and write a grid of samples as a
PNG (and the sample means as ``.npy``): generation by ancestral sampling from the trained DLVM
(lecture [Mattei-DGM, "Illustrative example of a DLVM for binary images"],
"Generation").
"""

import os

HELP = "draw samples from a trained run and write a PNG grid"


def configure_parser(parser):
    parser.add_argument("dir", help="a run directory written by `scratchdgm train`")
    parser.add_argument("--n", type=int, default=64, help="number of samples (default 64)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="PNG path (default DIR/samples.png)")
    parser.add_argument("--binary", action="store_true",
                        help="draw x ~ p(x|z) instead of showing its mean")


def run(args):
    import numpy as np

    from scratchdgm.cli._runs import CHECKPOINT_NAME
    from scratchdgm.models.deep import load_model
    from scratchdgm.plots.deep import plot_samples

    if args.n < 1:
        raise ValueError(f"--n must be >= 1, got {args.n}")
    ckpt = os.path.join(args.dir, CHECKPOINT_NAME)
    if not os.path.isfile(ckpt):
        raise FileNotFoundError(f"{ckpt} not found; expected a directory written by "
                                f"`scratchdgm train`")
    model = load_model(ckpt)
    # models without a decoder mean (flows, diffusion) draw x ~ p(x) either way
    draw = model.sample if args.binary or not hasattr(model, "sample_means") else \
        model.sample_means
    x = draw(args.n, random_state=args.seed)
    out = args.out or os.path.join(args.dir, "samples.png")
    np.save(os.path.splitext(out)[0] + ".npy", x)
    path = plot_samples(x, out, title=f"{type(model).__name__} k={model.k}: samples")
    print(f"wrote {path}")
    return 0
