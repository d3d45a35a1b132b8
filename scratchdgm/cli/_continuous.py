r"""What ``scratchdgm train flow`` and ``scratchdgm train diffusion`` share: the arguments of a
density model of continuous data, the checks made before anything is written, and the
two-sample statistic that says whether samples match the data.

The statistic is the energy distance (:func:`scratchdgm.models.deep.evaluation.energy_distance`)
between the model's samples and the test set, printed beside the same statistic for two
references of the same size: a subsample of the *training* data (a perfect model would score
about this: it is the noise level) and a Gaussian fitted to the training data (a model that
only gets the mean and covariance right).
"""

from scratchdgm.cli._runs import CommandError, check_backend, check_new_or_resumed, load_data

__all__ = ["add_common_arguments", "prepare_run", "sample_statistics", "format_statistics"]


def add_common_arguments(parser, *, epochs, batch_size, lr):
    r"""The arguments every continuous-density family takes, with that family's defaults."""
    parser.add_argument("--data", default="moons",
                        help="moons, pinwheel, ring, toy, heavy-tailed or digits-continuous "
                             "(continuous data; default moons)")
    parser.add_argument("--epochs", type=int, default=epochs,
                        help="total number of epochs, also when resuming (default %(default)s)")
    parser.add_argument("--batch-size", type=int, default=batch_size,
                        help="points per Adam step (default %(default)s)")
    parser.add_argument("--lr", type=float, default=lr, help="Adam step size (default %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="seeds data, weights and draws")
    parser.add_argument("--out", required=True, metavar="DIR", help="output directory")
    parser.add_argument("--dtype", choices=["float64", "float32"], default="float64")
    parser.add_argument("--backend", default="numpy", choices=["numpy", "numba", "cuda", "auto"],
                        help="kernel backend: numpy (default: these networks are too small for "
                             "the compiled kernels to pay for their compilation), numba, cuda "
                             "or auto")
    parser.add_argument("--resume", action="store_true",
                        help="continue the checkpoint in --out (same settings and data)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def prepare_run(args, positive=("epochs", "batch_size")):
    r"""Check the arguments, the backend and the data before creating anything on disk.

    Returns
    -------
    ds : dict
        From :func:`scratchdgm.cli._runs.load_data`.
    checkpoint : str
        The checkpoint path inside ``--out`` (see
        :func:`scratchdgm.cli._runs.check_new_or_resumed`).
    backend : str
        The concrete backend (:func:`scratchdgm.cli._runs.check_backend`).

    Raises
    ------
    CommandError
        For a bad argument, a backend that cannot run here, an existing checkpoint without
        ``--resume``, or binary data.
    """
    import math

    for name in positive:
        value = getattr(args, name)
        if value < 1:
            raise CommandError(f"--{name.replace('_', '-')} must be >= 1, got {value}")
    if not (args.lr > 0 and math.isfinite(args.lr)):
        raise CommandError(f"--lr must be > 0 (and finite), got {args.lr}")
    backend = check_backend(args.backend)
    checkpoint = check_new_or_resumed(args.out, args.resume)
    ds = load_data(args.data, args.seed)
    if ds["binary"]:
        raise CommandError(f"--data {args.data} is binary, and this model is a density of "
                           f"continuous data; use digits-continuous or a 2-D toy set (moons, "
                           f"pinwheel, ring)")
    return ds, checkpoint, backend


def sample_statistics(samples, ds, seed=0):
    r"""Energy distances to the test set of the model's samples and of the two references
    (see the module docstring), all with as many points as the test set."""
    import numpy as np

    from scratchdgm.models.deep.evaluation import energy_distance

    x_train, x_test = ds["x_train"], ds["x_test"]
    n = len(x_test)
    rng = np.random.default_rng([seed, 3])
    subsample = x_train[rng.choice(len(x_train), size=min(n, len(x_train)), replace=False)]
    gauss = rng.multivariate_normal(x_train.mean(axis=0), np.cov(x_train.T), size=n)
    return {"model": energy_distance(samples[:n], x_test),
            "train_subsample": energy_distance(subsample, x_test),
            "gaussian_fit": energy_distance(gauss, x_test), "n": int(n)}


def format_statistics(stats):
    r"""One line for the printout and the figures."""
    return (f"energy distance to the test set: model {stats['model']:.4f}, training data "
            f"{stats['train_subsample']:.4f}, Gaussian fit {stats['gaussian_fit']:.4f} "
            f"(n = {stats['n']})")
