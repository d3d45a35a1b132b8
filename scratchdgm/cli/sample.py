r"""``scratchdgm sample DIR``: draw :math:`z \sim p(z)`, decode, and write a grid of samples as a
PNG (and the sample means as ``.npy``): generation by ancestral sampling from the trained DLVM
(lecture [Mattei-DGM, "Illustrative example of a DLVM for binary images"],
"Generation").
"""

import os

HELP = "draw samples from a trained run and write a PNG grid"


#: image formats the figure can be written in (matplotlib's, by file name)
IMAGE_SUFFIXES = (".png", ".pdf", ".svg")


def configure_parser(parser):
    parser.add_argument("dir", help="a run directory written by `scratchdgm train`")
    parser.add_argument("--n", type=int, default=64, help="number of samples (default 64)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, metavar="PATH",
                        help="the image: .png (added when PATH has no suffix), .pdf or .svg; "
                             "the samples go beside it as .npy (default DIR/samples.png)")
    parser.add_argument("--binary", action="store_true",
                        help="draw x ~ p(x|z) instead of showing its mean")
    parser.add_argument("--backend", default=None, choices=["numpy", "numba", "cuda", "auto"],
                        help="kernel backend (default: SCRATCHDGM_BACKEND, else auto = numba)")


def output_paths(out):
    r"""``(image, array)`` paths for ``--out``: ``.png`` appended when it has no suffix, the
    samples as ``.npy`` beside the image; any other suffix is refused before anything runs."""
    from scratchdgm.cli._runs import CommandError

    root, suffix = os.path.splitext(out)
    if not suffix:
        root, suffix = out, ".png"
    if suffix.lower() not in IMAGE_SUFFIXES:
        raise CommandError(f"--out {out}: expected an image path ending in "
                           f"{', '.join(IMAGE_SUFFIXES)} (or no suffix, for .png), got "
                           f"{suffix!r}")
    if os.path.isdir(root + suffix):
        raise CommandError(f"--out {out} is a directory; expected an image path such as "
                           f"{os.path.join(out, 'samples.png')}")
    return root + suffix, root + ".npy"


def run(args):
    import numpy as np

    from scratchdgm.backend import use_backend
    from scratchdgm.cli._runs import CHECKPOINT_NAME, CommandError, check_backend
    from scratchdgm.models.deep import load_model
    from scratchdgm.plots.deep import plot_samples

    if args.n < 1:
        raise CommandError(f"--n must be >= 1, got {args.n}")
    image, array = output_paths(args.out or os.path.join(args.dir, "samples.png"))
    ckpt = os.path.join(args.dir, CHECKPOINT_NAME)
    with use_backend(check_backend(args.backend)):  # this command's, not the process's
        if not os.path.isfile(ckpt):
            raise CommandError(f"{ckpt} not found; expected a directory written by "
                               f"`scratchdgm train`")
        model = load_model(ckpt)
        draw = model.sample if args.binary else model.sample_means
        x = draw(args.n, random_state=args.seed)
    path = plot_samples(x, image, title=f"{type(model).__name__} k={model.k}: samples")
    np.save(array, x)
    print(f"wrote {path} (the samples as an image) and {array} (as an array)")
    return 0
