r"""Datasets of the course: the bundled digits protocol, an MNIST IDX reader, the lecture's 1-D
toy deep latent variable model, 2-D toy sets and continuous data for Gaussian / Student's t
decoders.

Everything here works offline: the digits come with scikit-learn, MNIST is read from IDX files
already on disk, and the toy sets are sampled. Every sampler takes a ``numpy.random.Generator``.

=====================================  =========================  ================  ==========
dataset (``get_dataset`` spec)         shape (train / test)       range             binary
=====================================  =========================  ================  ==========
``digits`` (design.md §5)              (1500, 64) / (297, 64)     [0, 1] grey       test set
``digits-continuous``                  (1500, 64) / (297, 64)     (0, 1), dequant.  no
``mnist:DIR``                          (60000, 784) / (10000, .)  [0, 1] grey       test set
``toy`` (lecture 000 1-D DLVM)         (1500, 2) / (500, 2)       about [-10, 10]²  no
``moons``                              (1500, 2) / (500, 2)       about [-1, 2]     no
``pinwheel``                           (1500, 2) / (500, 2)       about [-4, 4]²    no
``ring``                               (1500, 2) / (500, 2)       about [-2, 2]²    no
``heavy-tailed``                       (1500, 5) / (500, 5)       unbounded         no
=====================================  =========================  ================  ==========

Lecture: ``shared/seeds/000_dd8cf90fba7bcfac.txt``, "Deep latent variable models: the role of the
decoder" (the toy decoder with :math:`d = 1, p = 2`), "Deep latent variable models: the role of
the observation model" (Gaussian, Bernoulli and Student's t observation models, hence binary and
continuous data) and "Illustrative example of a DLVM for binary images" (binary MNIST).
"""

import gzip
import math
import os
import struct
from typing import NamedTuple, Optional

import numpy as np

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
]

#: design.md §5: the digits split and the seed of the test set's one-off binarisation
DIGITS_SPLIT_SEED = 0
DIGITS_N_TRAIN = 1500
DIGITS_N_TEST = 297
TEST_BINARIZATION_SEED = 123

_LOG_2PI = math.log(2.0 * math.pi)


class Dataset(NamedTuple):
    r"""A train / test split.

    The field order is fixed (``x_train, x_test, y_train, y_test, x_test_binary``) so that
    positional unpacking keeps working.

    Attributes
    ----------
    x_train : ndarray, shape (n_train, p)
    x_test : ndarray, shape (n_test, p)
    y_train, y_test : ndarray, shape (n_train,) / (n_test,), or None
        Class labels (int64), the latent :math:`z` of the toy DLVM (shape (n, 1)), or None.
    x_test_binary : ndarray, shape (n_test, p), or None
        The test set binarised once (0.0 / 1.0), for Bernoulli models; None for continuous data.
    binary : bool
        Whether the dataset is meant for a Bernoulli observation model (train batches are then
        binarised dynamically with :func:`dynamic_binarize`).
    name : str
    """

    x_train: np.ndarray
    x_test: np.ndarray
    y_train: Optional[np.ndarray]
    y_test: Optional[np.ndarray]
    x_test_binary: Optional[np.ndarray] = None
    binary: bool = False
    name: str = ""


# ------------------------------------------------------------------------------ helpers
def _as_rng(rng, where):
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool):
        return np.random.default_rng(int(rng))
    raise TypeError(f"{where}: rng must be a numpy.random.Generator (or an int seed), "
                    f"got {type(rng).__name__}")


def _check_n(n, where, name="n"):
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"{where}: {name} must be an int >= 1, got {n!r}")
    return int(n)


def _check_float_dtype(dtype, where):
    dtype = np.dtype(dtype)
    if dtype not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise TypeError(f"{where}: dtype must be float32 or float64, got {dtype}")
    return dtype


def _check_positive(value, where, name):
    if not (isinstance(value, (int, float, np.integer, np.floating)) and np.isfinite(value)
            and value > 0):
        raise ValueError(f"{where}: {name} must be a finite number > 0, got {value!r}")
    return float(value)


# ------------------------------------------------------------------------------ digits
def _digits_raw():
    from sklearn.datasets import load_digits  # bundled with scikit-learn: no network

    bunch = load_digits()
    return bunch.data, bunch.target.astype(np.int64)


def _digits_split(n):
    perm = np.random.default_rng(DIGITS_SPLIT_SEED).permutation(n)
    return perm[:DIGITS_N_TRAIN], perm[DIGITS_N_TRAIN:]


def load_digits_protocol(binarize_test=True, dtype=np.float64):
    r"""The bundled digits under the protocol of design.md §5.

    ``sklearn.datasets.load_digits().data / 16`` (1797 images of 8 x 8 pixels, grey levels
    0..16), split with ``numpy.random.default_rng(0).permutation(1797)``: the first 1500 indices
    are the training set, the last 297 the test set. The test set is binarised once with
    ``numpy.random.default_rng(123)`` as ``rng.random(x_test.shape) < x_test``; training batches
    are meant to be binarised dynamically (:func:`dynamic_binarize`, a fresh draw every epoch).

    Parameters
    ----------
    binarize_test : bool, default True
        Whether to fill ``x_test_binary`` (else it is None).
    dtype : {numpy.float64, numpy.float32}
        dtype of the images.

    Returns
    -------
    Dataset
        ``x_train`` (1500, 64) and ``x_test`` (297, 64) grey levels in [0, 1]; ``y_train``,
        ``y_test`` digit labels 0..9 (int64); ``x_test_binary`` (297, 64) of 0.0 / 1.0;
        ``binary=True``; ``name='digits'``.

    Notes
    -----
    Stochastic binarisation draws each pixel as a Bernoulli variable with the grey level as its
    probability,

    .. math::

        x^{\text{bin}}_j \sim \mathcal B(x_j), \qquad x_j = \text{grey}_j / 16 \in [0, 1],

    so the binary data are a sample from a distribution the Bernoulli observation model of
    lecture 000 ("Deep latent variable models: the role of the observation model") can fit.

    References
    ----------
    Burda, Grosse & Salakhutdinov (2016), "Importance weighted autoencoders", ICLR, §5 (dynamic
    binarisation of MNIST, following Salakhutdinov & Murray 2008).

    Examples
    --------
    >>> from scratchdgm.data import load_digits_protocol
    >>> d = load_digits_protocol()
    >>> d.x_train.shape, d.x_test_binary.shape
    ((1500, 64), (297, 64))
    """
    dtype = _check_float_dtype(dtype, "load_digits_protocol")
    data, target = _digits_raw()
    x = (data / 16.0).astype(dtype)
    train, test = _digits_split(len(x))
    x_test = x[test]
    x_test_binary = None
    if binarize_test:
        rng = np.random.default_rng(TEST_BINARIZATION_SEED)
        x_test_binary = (rng.random(x_test.shape) < x_test).astype(dtype)
    return Dataset(x[train], x_test, target[train], target[test], x_test_binary, True, "digits")


def load_digits_continuous(rng, dtype=np.float64):
    r"""The digits as continuous data in (0, 1), for Gaussian and Student's t decoders.

    The grey levels :math:`v \in \{0, \dots, 16\}` are dequantised with uniform noise,

    .. math::

        x = \frac{v + u}{17}, \qquad u \sim \mathcal U[0, 1) \text{ independently per pixel},

    which turns the 17 levels into a density on (0, 1) (a continuous density fitted to
    integer-valued data can otherwise put infinite density on the 17 values). The split is the
    one of :func:`load_digits_protocol` (same permutation, 1500 / 297).

    Parameters
    ----------
    rng : numpy.random.Generator or int
        Source of the dequantisation noise.
    dtype : {numpy.float64, numpy.float32}

    Returns
    -------
    Dataset
        ``x_train`` (1500, 64), ``x_test`` (297, 64) in [0, 1); labels as in the protocol;
        ``x_test_binary=None``; ``binary=False``; ``name='digits-continuous'``.

    References
    ----------
    Theis, van den Oord & Bethge (2016), "A note on the evaluation of generative models", ICLR,
    §3.1 (uniform dequantisation, eq. 6).
    """
    rng = _as_rng(rng, "load_digits_continuous")
    dtype = _check_float_dtype(dtype, "load_digits_continuous")
    data, target = _digits_raw()
    x = ((data + rng.random(data.shape)) / 17.0).astype(dtype)
    train, test = _digits_split(len(x))
    return Dataset(x[train], x[test], target[train], target[test], None, False,
                   "digits-continuous")


def dynamic_binarize(x, rng):
    r"""Draw binary data with the grey levels as Bernoulli probabilities.

    Parameters
    ----------
    x : ndarray, shape (n_samples, p)
        Probabilities in [0, 1] (any shape works).
    rng : numpy.random.Generator

    Returns
    -------
    ndarray, same shape as ``x``
        0.0 / 1.0, of ``x``'s dtype (float64 when ``x`` holds integers or booleans).

    Notes
    -----
    .. math:: x^{\text{bin}} = \mathbb 1[u < x], \quad u \sim \mathcal U[0, 1),

    so :math:`P(x^{\text{bin}}_j = 1) = x_j`. Called on every training batch ("dynamic"
    binarisation: a fresh binary data set every epoch, which acts as a regulariser).
    """
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"dynamic_binarize: rng must be a numpy.random.Generator, "
                        f"got {type(rng).__name__}")
    x = np.asarray(x)
    if x.dtype.kind not in "biuf":
        raise TypeError(f"dynamic_binarize: x must be numeric, got dtype {x.dtype}")
    dtype = x.dtype if x.dtype.kind == "f" else np.dtype(np.float64)
    if x.size and not (np.all(np.isfinite(x)) and x.min() >= 0 and x.max() <= 1):
        bad = x[~(np.isfinite(x) & (x >= 0) & (x <= 1))].ravel()[0].item()
        raise ValueError(f"dynamic_binarize: x must hold probabilities in [0, 1], "
                         f"found {bad!r}")
    return (rng.random(x.shape) < x).astype(dtype)


# ------------------------------------------------------------------------------ MNIST IDX
#: IDX type code -> (big-endian dtype, name)
_IDX_TYPES = {
    0x08: (np.dtype(">u1"), "unsigned byte"),
    0x09: (np.dtype(">i1"), "signed byte"),
    0x0B: (np.dtype(">i2"), "short"),
    0x0C: (np.dtype(">i4"), "int"),
    0x0D: (np.dtype(">f4"), "float"),
    0x0E: (np.dtype(">f8"), "double"),
}
MAGIC_LABELS = 0x00000801  # unsigned bytes, 1 dimension
MAGIC_IMAGES = 0x00000803  # unsigned bytes, 3 dimensions

#: the four standard files; each is also found with a ``.gz`` suffix or with ``.idx`` for ``-idx``
MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


def _describe_magic(magic):
    type_code, ndim = (magic >> 8) & 0xFF, magic & 0xFF
    kind = _IDX_TYPES.get(type_code, (None, f"unknown type 0x{type_code:02x}"))[1]
    return f"0x{magic:08x} ({kind}, {ndim} dimension{'s' if ndim != 1 else ''})"


def _read_bytes(path):
    with open(path, "rb") as fh:
        raw = fh.read()
    if raw[:2] == b"\x1f\x8b":  # gzip's magic bytes: decompress whatever the file is called
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise ValueError(f"{path}: corrupt or truncated gzip file ({exc})") from exc
    return raw


def read_idx(path, expected_magic=None):
    r"""Read an IDX file (the format of the MNIST distribution), plain or gzip-compressed.

    Parameters
    ----------
    path : str or os.PathLike
    expected_magic : int, optional
        E.g. ``0x00000803`` (unsigned bytes, 3 dimensions: images) or ``0x00000801``
        (unsigned bytes, 1 dimension: labels); a different magic number is an error.

    Returns
    -------
    ndarray, shape given by the header
        Native byte order; ``uint8`` for the MNIST files.

    Raises
    ------
    ValueError
        Naming the file, what was expected and what was found, for: a wrong magic number, an
        unknown type code, zero dimensions, a truncated header, and data whose length differs
        from the product of the header's dimensions (a truncated file or a lying header).

    Notes
    -----
    An IDX file is a big-endian header followed by the data in row-major order::

        bytes 0-1   0x00 0x00
        byte  2     type code (0x08 unsigned byte, 0x09 signed byte, 0x0B int16, 0x0C int32,
                    0x0D float32, 0x0E float64)
        byte  3     number of dimensions m
        4 .. 4+4m   m unsigned 32-bit sizes
        then        prod(sizes) * itemsize bytes of data

    Compressed files are recognised by gzip's magic bytes, not by their name.
    """
    path = os.fspath(path)
    raw = _read_bytes(path)
    if len(raw) < 4:
        raise ValueError(f"{path}: not an IDX file: expected a 4-byte magic number, found only "
                         f"{len(raw)} byte(s)")
    magic = struct.unpack(">I", raw[:4])[0]
    if expected_magic is not None and magic != expected_magic:
        raise ValueError(f"{path}: wrong magic number: expected {_describe_magic(expected_magic)}, "
                         f"found {_describe_magic(magic)}")
    if raw[0] != 0 or raw[1] != 0:
        raise ValueError(f"{path}: not an IDX file: the magic number must start with two zero "
                         f"bytes, found 0x{magic:08x}")
    type_code, ndim = raw[2], raw[3]
    if type_code not in _IDX_TYPES:
        known = ", ".join(f"0x{c:02x}" for c in _IDX_TYPES)
        raise ValueError(f"{path}: unknown IDX type code 0x{type_code:02x} in magic number "
                         f"0x{magic:08x}; expected one of {known}")
    if ndim == 0:
        raise ValueError(f"{path}: IDX header declares 0 dimensions; expected at least 1")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{path}: truncated IDX header: {ndim} dimensions need {header} header "
                         f"bytes, found {len(raw)}")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    dtype, kind = _IDX_TYPES[type_code]
    expected = math.prod(dims) * dtype.itemsize
    found = len(raw) - header
    if found != expected:
        what = "truncated file" if found < expected else "trailing data"
        raise ValueError(f"{path}: {what}: the header declares shape {tuple(dims)} of {kind} "
                         f"= {expected} data bytes, found {found}")
    arr = np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims)
    return arr.astype(dtype.newbyteorder("="))


def _find_mnist_file(directory, stem):
    candidates = [stem, stem.replace("-idx", ".idx")]
    tried = []
    for c in candidates:
        for name in (c, c + ".gz"):
            tried.append(name)
            path = os.path.join(directory, name)
            if os.path.isfile(path):
                return path, tried
    return None, tried


def load_mnist(directory, binarize=False, random_state=TEST_BINARIZATION_SEED,
               dtype=np.float64):
    r"""MNIST from the four standard IDX files in a local directory (no download).

    Parameters
    ----------
    directory : str or os.PathLike
        Holds ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
        ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``, each possibly with ``.gz``
        appended (or with ``.idx`` in place of ``-idx``).
    binarize : {False, True, 'threshold'}, default False
        False: grey levels in [0, 1]; True: both sets binarised once, stochastically (test set
        first, then training set, from ``numpy.random.default_rng(random_state)``);
        ``'threshold'``: :math:`\mathbb 1[x \ge 1/2]`.
    random_state : int, default 123
        Seed of the stochastic binarisation (123 for the test set, as design.md §5).
    dtype : {numpy.float64, numpy.float32}

    Returns
    -------
    Dataset
        ``x_train`` (60000, 784) and ``x_test`` (10000, 784) in [0, 1] (for the real files;
        ``rows * cols`` columns in general), ``y_train``, ``y_test`` int64 labels,
        ``x_test_binary`` the test set binarised (stochastically with ``random_state`` unless
        ``binarize='threshold'``), ``binary=True``, ``name='mnist'``.

    Raises
    ------
    FileNotFoundError
        Listing the directory and every file name looked for.
    ValueError
        For malformed files (see :func:`read_idx`), or image and label counts that differ.

    References
    ----------
    LeCun, Bottou, Bengio & Haffner (1998); the IDX format of the MNIST distribution. Lecture
    000, "Illustrative example of a DLVM for binary images".
    """
    directory = os.fspath(directory)
    dtype = _check_float_dtype(dtype, "load_mnist")
    if binarize not in (False, True, "threshold"):
        raise ValueError(f"load_mnist: binarize must be False, True or 'threshold', "
                         f"got {binarize!r}")
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"load_mnist: {directory!r} is not a directory; expected one "
                                f"holding the four MNIST IDX files {sorted(MNIST_FILES.values())}")
    paths, missing = {}, []
    for key, stem in MNIST_FILES.items():
        path, tried = _find_mnist_file(directory, stem)
        if path is None:
            missing.append(" or ".join(tried))
        paths[key] = path
    if missing:
        raise FileNotFoundError(f"load_mnist: in {directory!r} could not find "
                                + "; ".join(missing) + " (no download is attempted)")

    def images(key):
        arr = read_idx(paths[key], expected_magic=MAGIC_IMAGES)
        return (arr.reshape(len(arr), -1) / 255.0).astype(dtype)

    def labels(key):
        return read_idx(paths[key], expected_magic=MAGIC_LABELS).astype(np.int64)

    x_train, y_train = images("train_images"), labels("train_labels")
    x_test, y_test = images("test_images"), labels("test_labels")
    for xs, ys, part in ((x_train, y_train, "train"), (x_test, y_test, "test")):
        if len(xs) != len(ys):
            raise ValueError(f"load_mnist: {paths[part + '_images']} holds {len(xs)} images but "
                             f"{paths[part + '_labels']} holds {len(ys)} labels; expected equal "
                             f"counts")
    if x_train.shape[1] != x_test.shape[1]:
        raise ValueError(f"load_mnist: training images have {x_train.shape[1]} pixels but test "
                         f"images {x_test.shape[1]}; expected the same size")
    if binarize == "threshold":
        x_train = (x_train >= 0.5).astype(dtype)
        x_test = (x_test >= 0.5).astype(dtype)
        x_test_binary = x_test
    else:
        rng = np.random.default_rng(random_state)
        x_test_binary = (rng.random(x_test.shape) < x_test).astype(dtype)
        if binarize:
            x_train = (rng.random(x_train.shape) < x_train).astype(dtype)
            x_test = x_test_binary
    return Dataset(x_train, x_test, y_train, y_test, x_test_binary, True, "mnist")


# ------------------------------------------------------------------------------ toy DLVM
def toy_dlvm_decoder(z):
    r"""The lecture's toy decoder :math:`f_\theta(z) = (\mu_\theta(z), \Sigma_\theta(z))`.

    Parameters
    ----------
    z : array_like, shape (n,) or (n, 1)
        Latent codes (:math:`d = 1`).

    Returns
    -------
    mu : ndarray, shape (n, 2)
    sigma : ndarray, shape (n, 2)
        Standard deviations (square roots of the diagonal of :math:`\Sigma_\theta(z)`).

    Notes
    -----
    .. math::

        \mu_\theta(z) = \big(10 \sin^3 z,\; 10 \cos z - 10 \cos^4 z\big), \qquad
        \Sigma_\theta(z) = \operatorname{Diag}\Big(\big(\tfrac{\sin z}{3z}\big)^2,
        \big(\tfrac{\sin z}{z}\big)^2\Big).

    :math:`\sin z / z` is computed as ``np.sinc(z / pi)``, which is exactly 1 at :math:`z = 0`
    (the naive quotient is 0/0 there).

    References
    ----------
    Lecture 000 (``shared/seeds/000_dd8cf90fba7bcfac.txt``), "Deep latent variable models: the
    role of the decoder".
    """
    z = np.asarray(z, dtype=np.float64)
    if z.ndim == 2 and z.shape[1] == 1:
        z = z[:, 0]
    if z.ndim != 1:
        raise ValueError(f"toy_dlvm_decoder: z must have shape (n,) or (n, 1) (latent "
                         f"dimension d = 1), got {z.shape}")
    s, c = np.sin(z), np.cos(z)
    mu = np.stack([10.0 * s ** 3, 10.0 * c - 10.0 * c ** 4], axis=1)
    sinc = np.abs(np.sinc(z / np.pi))
    sigma = np.stack([sinc / 3.0, sinc], axis=1)
    return mu, sigma


def toy_dlvm_sample(n, rng):
    r"""Sample the lecture's 1-D toy deep latent variable model (:math:`d = 1`, :math:`p = 2`).

    Parameters
    ----------
    n : int
        Number of points.
    rng : numpy.random.Generator or int

    Returns
    -------
    x : ndarray, shape (n, 2)
    z : ndarray, shape (n, 1)

    Notes
    -----
    .. math::

        z \sim \mathcal N(0, 1), \qquad x \mid z \sim \mathcal N(\mu_\theta(z), \Sigma_\theta(z))

    with :math:`\mu_\theta, \Sigma_\theta` of :func:`toy_dlvm_decoder`. The data trace a curve in
    the plane, thick near :math:`z = 0` and pinched where :math:`\sin z = 0`.

    References
    ----------
    Lecture 000, "Deep latent variable models: the role of the decoder".
    """
    n = _check_n(n, "toy_dlvm_sample")
    rng = _as_rng(rng, "toy_dlvm_sample")
    z = rng.standard_normal((n, 1))
    mu, sigma = toy_dlvm_decoder(z)
    return mu + sigma * rng.standard_normal((n, 2)), z


def toy_dlvm_log_likelihood(x, n_grid=20001, z_max=8.0):
    r"""Exact (to quadrature error) :math:`\log p(x)` of the toy DLVM: ground truth for the
    deep models fitted to :func:`toy_dlvm_sample`.

    Parameters
    ----------
    x : array_like, shape (n, 2)
    n_grid : int, default 20001
        Number of midpoints of the quadrature grid on :math:`[-z_{\max}, z_{\max}]`.
    z_max : float, default 8.0
        The prior mass outside is :math:`2\Phi(-8) \approx 10^{-15}`.

    Returns
    -------
    ndarray, shape (n,)

    Notes
    -----
    With one latent dimension the marginal is a 1-D integral, computed by the midpoint rule
    in log space:

    .. math::

        \log p(x) = \log \int \mathcal N(x \mid \mu_\theta(z), \Sigma_\theta(z))\,
        \mathcal N(z \mid 0, 1)\, dz
        \approx \operatorname{logsumexp}_j \big[\log \mathcal N(x \mid \mu_\theta(z_j),
        \Sigma_\theta(z_j)) + \log \mathcal N(z_j \mid 0, 1)\big] + \log \Delta z.

    The posterior :math:`p(z \mid x)` is narrowest (a width of about 0.006) for points near
    :math:`(0, -20) = \mu_\theta(\pm\pi)`, where :math:`\Sigma_\theta` vanishes; the default
    grid step of 8e-4 resolves it. The density itself is unbounded at :math:`(0, -20)`.

    References
    ----------
    Lecture 000, "Maximum likelihood for DLVM" (the integral) and "Deep latent variable models:
    the role of the decoder" (the model).
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != 2:
        raise ValueError(f"toy_dlvm_log_likelihood: x must have shape (n, 2), got {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("toy_dlvm_log_likelihood: x contains NaN or infinite values")
    n_grid = _check_n(n_grid, "toy_dlvm_log_likelihood", "n_grid")
    z_max = _check_positive(z_max, "toy_dlvm_log_likelihood", "z_max")
    dz = 2.0 * z_max / n_grid
    z = -z_max + dz * (np.arange(n_grid) + 0.5)
    mu, sigma = toy_dlvm_decoder(z)
    # sigma is exactly 0 only at z = k*pi, which the midpoints avoid; the floor guards anyway
    log_sigma = np.log(np.maximum(sigma, 1e-300))
    inv_sigma = np.exp(-log_sigma)
    base = -0.5 * z ** 2 - 0.5 * _LOG_2PI - log_sigma.sum(axis=1) - _LOG_2PI + math.log(dz)
    out = np.empty(len(x))
    chunk = max(1, 2_000_000 // n_grid)  # bound the (chunk, n_grid) temporaries
    for start in range(0, len(x), chunk):
        xs = x[start:start + chunk]
        r0 = (xs[:, None, 0] - mu[None, :, 0]) * inv_sigma[None, :, 0]
        r1 = (xs[:, None, 1] - mu[None, :, 1]) * inv_sigma[None, :, 1]
        terms = base[None, :] - 0.5 * (r0 * r0 + r1 * r1)
        m = terms.max(axis=1, keepdims=True)
        out[start:start + chunk] = (m + np.log(np.exp(terms - m).sum(axis=1, keepdims=True)))[:, 0]
    return out


# ------------------------------------------------------------------------------ 2-D toy sets
def two_moons(n, rng, noise=0.1):
    r"""Two interleaved half circles in the plane.

    Parameters
    ----------
    n : int
    rng : numpy.random.Generator or int
    noise : float, default 0.1
        Standard deviation of isotropic Gaussian noise added to every point.

    Returns
    -------
    x : ndarray, shape (n, 2)
        Roughly within :math:`[-1, 2] \times [-0.5, 1]` plus noise.
    y : ndarray, shape (n,)
        Moon of each point (0 upper, 1 lower), int64, drawn with probability 1/2.

    Notes
    -----
    With :math:`t \sim \mathcal U[0, \pi]`: upper moon :math:`(\cos t, \sin t)`, lower moon
    :math:`(1 - \cos t, \tfrac12 - \sin t)`, plus :math:`\mathcal N(0, \text{noise}^2 I_2)`.
    """
    n = _check_n(n, "two_moons")
    rng = _as_rng(rng, "two_moons")
    if not (np.isfinite(noise) and noise >= 0):
        raise ValueError(f"two_moons: noise must be a finite number >= 0, got {noise!r}")
    y = rng.integers(0, 2, size=n)
    t = rng.uniform(0.0, np.pi, size=n)
    upper = np.stack([np.cos(t), np.sin(t)], axis=1)
    lower = np.stack([1.0 - np.cos(t), 0.5 - np.sin(t)], axis=1)
    x = np.where(y[:, None] == 0, upper, lower) + noise * rng.standard_normal((n, 2))
    return x, y.astype(np.int64)


def pinwheel(n, rng, n_arms=5, radial_std=0.3, tangential_std=0.05, rate=0.25):
    r"""The pinwheel: Gaussian blobs bent into spiral arms.

    Parameters
    ----------
    n : int
    rng : numpy.random.Generator or int
    n_arms : int, default 5
    radial_std, tangential_std : float
        Spread along and across each arm before bending.
    rate : float, default 0.25
        How strongly the arms are bent.

    Returns
    -------
    x : ndarray, shape (n, 2)
        Roughly within :math:`[-4, 4]^2`.
    y : ndarray, shape (n,)
        Arm of each point (int64, uniform).

    Notes
    -----
    For arm :math:`k` with base angle :math:`2\pi k / K`: draw
    :math:`r = 1 + \text{radial\_std}\,\epsilon_1`, :math:`s = \text{tangential\_std}\,\epsilon_2`
    and rotate :math:`(r, s)` by :math:`2\pi k/K + \text{rate}\, e^{r}`, then scale by 2.
    A non-Gaussian, multimodal 2-D density on which a standard-Gaussian prior must work hard
    (lecture 001, "The role of the prior").

    References
    ----------
    Johnson, Duvenaud, Wiltschko, Datta & Adams (2016), "Composing graphical models with neural
    networks for structured representations and fast inference", NeurIPS, §6 (the synthetic
    spiral-cluster data).
    """
    n = _check_n(n, "pinwheel")
    n_arms = _check_n(n_arms, "pinwheel", "n_arms")
    rng = _as_rng(rng, "pinwheel")
    y = rng.integers(0, n_arms, size=n)
    r = 1.0 + radial_std * rng.standard_normal(n)
    s = tangential_std * rng.standard_normal(n)
    angle = 2.0 * np.pi * y / n_arms + rate * np.exp(r)
    c, sn = np.cos(angle), np.sin(angle)
    x = 2.0 * np.stack([c * r - sn * s, sn * r + c * s], axis=1)
    return x, y.astype(np.int64)


def ring_of_gaussians(n, rng, k=8, radius=2.0, std=0.1):
    r"""An equal mixture of ``k`` isotropic Gaussians on a circle.

    Parameters
    ----------
    n : int
    rng : numpy.random.Generator or int
    k : int, default 8
    radius : float, default 2.0
    std : float, default 0.1

    Returns
    -------
    x : ndarray, shape (n, 2)
    y : ndarray, shape (n,)
        Component of each point (int64).

    Notes
    -----
    .. math::

        p(x) = \frac1k \sum_{j=0}^{k-1} \mathcal N\big(x \mid
        \rho (\cos \tfrac{2\pi j}{k}, \sin \tfrac{2\pi j}{k}), \text{std}^2 I_2\big).

    Its density is known exactly, so a model's log-likelihood can be compared with the truth; it
    is also the textbook case for a Gaussian-mixture prior (lecture 001, "The role of the
    prior").
    """
    n = _check_n(n, "ring_of_gaussians")
    k = _check_n(k, "ring_of_gaussians", "k")
    radius = _check_positive(radius, "ring_of_gaussians", "radius")
    std = _check_positive(std, "ring_of_gaussians", "std")
    rng = _as_rng(rng, "ring_of_gaussians")
    y = rng.integers(0, k, size=n)
    angle = 2.0 * np.pi * y / k
    centres = radius * np.stack([np.cos(angle), np.sin(angle)], axis=1)
    return centres + std * rng.standard_normal((n, 2)), y.astype(np.int64)


def _dct_loadings(p, d):
    # deterministic, orthogonal columns: the data model does not depend on the sampling rng
    j = np.arange(p)[:, None]
    k = np.arange(d)[None, :]
    w = np.cos(np.pi * (j + 0.5) * (k + 0.5) / p)
    return 2.0 * w / np.linalg.norm(w, axis=0)


def heavy_tailed_linear(n, rng, p=5, d=2, df=2.5, noise_scale=0.5):
    r"""A linear latent-variable model with Student's t noise: data for a Student's t decoder.

    Parameters
    ----------
    n : int
    rng : numpy.random.Generator or int
    p, d : int, default 5, 2
        Observed and latent dimensions, :math:`1 \le d \le p`.
    df : float, default 2.5
        Degrees of freedom :math:`\nu` of the noise (variance infinite for :math:`\nu \le 2`).
    noise_scale : float, default 0.5

    Returns
    -------
    x : ndarray, shape (n, p)
    z : ndarray, shape (n, d)

    Notes
    -----
    .. math::

        z \sim \mathcal N(0, I_d), \qquad x = W z + \text{noise\_scale}\;\epsilon, \qquad
        \epsilon_j \overset{iid}{\sim} t_\nu,

    with fixed loadings :math:`W` (:math:`p \times d`, orthogonal columns of norm 2, a cosine
    basis; they do not depend on ``rng``). A Gaussian observation model
    pays dearly for the outliers; the Student's t one of lecture 000 ("Deep latent variable
    models: the role of the observation model") does not. It is factor analysis (lecture 000,
    "Linear latent-variable models") with the Gaussian noise replaced by Student's t noise.
    """
    n = _check_n(n, "heavy_tailed_linear")
    p = _check_n(p, "heavy_tailed_linear", "p")
    d = _check_n(d, "heavy_tailed_linear", "d")
    if d > p:
        raise ValueError(f"heavy_tailed_linear: need d <= p, got d={d}, p={p}")
    df = _check_positive(df, "heavy_tailed_linear", "df")
    noise_scale = _check_positive(noise_scale, "heavy_tailed_linear", "noise_scale")
    rng = _as_rng(rng, "heavy_tailed_linear")
    z = rng.standard_normal((n, d))
    noise = rng.standard_t(df, size=(n, p))
    return z @ _dct_loadings(p, d).T + noise_scale * noise, z


# ------------------------------------------------------------------------------ CLI specs
#: valid ``--data`` specs and what they mean
DATASET_SPECS = {
    "digits": "bundled digits, design.md §5 protocol (1500/297 x 64, binary test set)",
    "digits-continuous": "digits dequantised to (0, 1) for Gaussian / Student's t decoders",
    "mnist:DIR": "MNIST from the IDX files in directory DIR (60000/10000 x 784)",
    "toy": "lecture 000's 1-D-latent toy DLVM (x in R^2; y holds the latent z)",
    "moons": "two moons (2-D)",
    "pinwheel": "pinwheel with 5 arms (2-D)",
    "ring": "ring of 8 Gaussians (2-D)",
    "heavy-tailed": "linear model with Student's t noise (p = 5, d = 2)",
}


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
    rng = _as_rng(rng, "get_dataset")
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
    n_train = _check_n(n_train, "get_dataset", "n_train")
    n_test = _check_n(n_test, "get_dataset", "n_test")
    x, y = samplers[spec](n_train + n_test, rng)
    return Dataset(x[:n_train], x[n_train:], y[:n_train], y[n_train:], None, False, spec)
