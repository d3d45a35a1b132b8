r"""Datasets of the course: the bundled digits protocol, an MNIST IDX reader, the lecture's 1-D
toy deep latent variable model, 2-D toy sets and continuous data for Gaussian / Student's t
decoders.

Everything here works offline: the digits come with scikit-learn, MNIST is read from IDX files
already on disk, and the toy sets are sampled. Every sampler takes a ``numpy.random.Generator``.

=====================================  =========================  ================  ==========
dataset (``get_dataset`` spec)         shape (train / test)       range             binary
=====================================  =========================  ================  ==========
``digits`` (docs/protocols.md)              (1500, 64) / (297, 64)     [0, 1] grey       test set
``digits-continuous``                  (1500, 64) / (297, 64)     (0, 1), dequant.  no
``mnist:DIR``                          (60000, 784) / (10000, .)  [0, 1] grey       test set
``toy`` ([Mattei-DGM] 1-D DLVM)         (1500, 2) / (500, 2)       about [-10, 10]²  no
``moons``                              (1500, 2) / (500, 2)       about [-1, 2]     no
``pinwheel``                           (1500, 2) / (500, 2)       about [-4, 4]²    no
``ring``                               (1500, 2) / (500, 2)       about [-2, 2]²    no
``heavy-tailed``                       (1500, 5) / (500, 5)       unbounded         no
=====================================  =========================  ================  ==========

Lecture: [Mattei-DGM, "Deep latent variable models: the role of the
decoder"] (the toy decoder with :math:`d = 1, p = 2`), "Deep latent variable models: the role of
the observation model" (Gaussian, Bernoulli and Student's t observation models, hence binary and
continuous data) and "Illustrative example of a DLVM for binary images" (binary MNIST).
"""

from scratchdgm.data.dataset import Dataset, dynamic_binarize
from scratchdgm.data.digits import load_digits_continuous, load_digits_protocol
from scratchdgm.data.mnist import MNIST_FILES, load_mnist, read_idx
from scratchdgm.data.registry import BINARY_DATASETS, DATASET_SPECS, get_dataset
from scratchdgm.data.toy import (
    heavy_tailed_linear,
    pinwheel,
    ring_of_gaussians,
    toy_dlvm_decoder,
    toy_dlvm_log_likelihood,
    toy_dlvm_sample,
    two_moons,
)


__all__ = [
    "Dataset",
    "load_digits_protocol",
    "load_digits_continuous",
    "dynamic_binarize",
    "read_idx",
    "load_mnist",
    "MNIST_FILES",
    "toy_dlvm_decoder",
    "toy_dlvm_sample",
    "toy_dlvm_log_likelihood",
    "two_moons",
    "pinwheel",
    "ring_of_gaussians",
    "heavy_tailed_linear",
    "get_dataset",
    "DATASET_SPECS",
    "BINARY_DATASETS",
]
