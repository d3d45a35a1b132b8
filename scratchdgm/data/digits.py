r"""The bundled digits under the course protocol (``docs/protocols.md``), binary and
continuous. ``sklearn.datasets.load_digits`` ships with scikit-learn: nothing is downloaded."""

import numpy as np

from scratchdgm.data.dataset import Dataset
from scratchdgm.validation import check_float_dtype, check_random_state

__all__ = ["load_digits_protocol", "load_digits_continuous", "DIGITS_SPLIT_SEED",
           "DIGITS_N_TRAIN", "DIGITS_N_TEST", "TEST_BINARIZATION_SEED"]

#: docs/protocols.md: the digits split and the seed of the test set's one-off binarisation
DIGITS_SPLIT_SEED = 0
DIGITS_N_TRAIN = 1500
DIGITS_N_TEST = 297
TEST_BINARIZATION_SEED = 123


def _digits_raw():
    from sklearn.datasets import load_digits  # bundled with scikit-learn: no network

    bunch = load_digits()
    return bunch.data, bunch.target.astype(np.int64)


def _digits_split(n):
    perm = np.random.default_rng(DIGITS_SPLIT_SEED).permutation(n)
    return perm[:DIGITS_N_TRAIN], perm[DIGITS_N_TRAIN:]


def load_digits_protocol(binarize_test=True, dtype=np.float64):
    r"""The bundled digits under the protocol of docs/protocols.md.

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
    [Mattei-DGM] ("Deep latent variable models: the role of the observation model") can fit.

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
    dtype = check_float_dtype(dtype, "load_digits_protocol")
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
    rng = check_random_state(rng, "load_digits_continuous")
    dtype = check_float_dtype(dtype, "load_digits_continuous")
    data, target = _digits_raw()
    x = ((data + rng.random(data.shape)) / 17.0).astype(dtype)
    train, test = _digits_split(len(x))
    return Dataset(x[train], x[test], target[train], target[test], None, False,
                   "digits-continuous")


