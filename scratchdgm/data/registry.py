r"""The ``--data`` specs of the command line, and :func:`get_dataset` that resolves them."""

from scratchdgm.data.dataset import Dataset
from scratchdgm.data.digits import load_digits_continuous, load_digits_protocol
from scratchdgm.data.mnist import load_mnist
from scratchdgm.data.toy import (
    heavy_tailed_linear,
    pinwheel,
    ring_of_gaussians,
    toy_dlvm_sample,
    two_moons,
)
from scratchdgm.validation import check_positive_int, check_random_state

__all__ = ["DATASET_SPECS", "BINARY_DATASETS", "get_dataset"]

# ------------------------------------------------------------------------------ CLI specs
#: valid ``--data`` specs and what they mean
DATASET_SPECS = {
    "digits": "bundled digits, docs/protocols.md protocol (1500/297 x 64, binary test set)",
    "digits-continuous": "digits dequantised to (0, 1) for Gaussian / Student's t decoders",
    "mnist:DIR": "MNIST from the IDX files in directory DIR (60000/10000 x 784)",
    "toy": "[Mattei-DGM]'s 1-D-latent toy DLVM (x in R^2; y holds the latent z)",
    "moons": "two moons (2-D)",
    "pinwheel": "pinwheel with 5 arms (2-D)",
    "ring": "ring of 8 Gaussians (2-D)",
    "heavy-tailed": "linear model with Student's t noise (p = 5, d = 2)",
}

#: the specs of binary data sets (``Dataset.binary``: a Bernoulli likelihood); the others are
#: continuous (Gaussian or Student's t likelihoods)
BINARY_DATASETS = ("digits", "mnist:DIR")


def get_dataset(spec, rng=0, n_train=1500, n_test=500):
    r"""The dataset named by a ``--data`` spec.

    Parameters
    ----------
    spec : str
        One of the keys of :data:`DATASET_SPECS`: ``digits``, ``digits-continuous``,
        ``mnist:DIR``, ``toy``, ``moons``, ``pinwheel``, ``ring``, ``heavy-tailed``.
    rng : numpy.random.Generator or int, default 0
        Source of the synthetic data and of the digits' dequantisation noise (the digits
        protocol and MNIST are deterministic and ignore it).
    n_train, n_test : int, default 1500, 500
        Sizes of the synthetic sets (ignored for digits and MNIST, whose splits are fixed).

    Returns
    -------
    Dataset
        Shapes and ranges as in the table of the module docstring.

    Raises
    ------
    ValueError
        For an unknown spec, listing the valid ones.
    """
    if not isinstance(spec, str):
        raise TypeError(f"get_dataset: spec must be a str, got {type(spec).__name__}")
    valid = ", ".join(DATASET_SPECS)
    if spec == "digits":
        return load_digits_protocol()
    if spec == "mnist" or spec.startswith("mnist:"):
        directory = spec.partition(":")[2]
        if not directory:
            raise ValueError("get_dataset: 'mnist' needs a directory: use mnist:DIR, where DIR "
                             "holds the four MNIST IDX files (nothing is downloaded)")
        return load_mnist(directory)
    rng = check_random_state(rng, "get_dataset")
    if spec == "digits-continuous":
        return load_digits_continuous(rng)
    samplers = {
        "toy": toy_dlvm_sample,
        "moons": two_moons,
        "pinwheel": pinwheel,
        "ring": ring_of_gaussians,
        "heavy-tailed": heavy_tailed_linear,
    }
    if spec not in samplers:
        raise ValueError(f"get_dataset: unknown dataset spec {spec!r}; expected one of {valid}")
    n_train = check_positive_int(n_train, "n_train", "get_dataset")
    n_test = check_positive_int(n_test, "n_test", "get_dataset")
    x, y = samplers[spec](n_train + n_test, rng)
    return Dataset(x[:n_train], x[n_train:], y[:n_train], y[n_train:], None, False, spec)
