r"""The :class:`Dataset` record every loader returns, and dynamic binarisation."""

from typing import NamedTuple, Optional

import numpy as np

from scratchdgm.validation import check_rng

__all__ = ["Dataset", "dynamic_binarize"]


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
    check_rng(rng, "dynamic_binarize")
    x = np.asarray(x)
    if x.dtype.kind not in "biuf":
        raise TypeError(f"dynamic_binarize: x must be numeric, got dtype {x.dtype}")
    dtype = x.dtype if x.dtype.kind == "f" else np.dtype(np.float64)
    if x.size and not (np.all(np.isfinite(x)) and x.min() >= 0 and x.max() <= 1):
        bad = x[~(np.isfinite(x) & (x >= 0) & (x <= 1))].ravel()[0].item()
        raise ValueError(f"dynamic_binarize: x must hold probabilities in [0, 1], "
                         f"found {bad!r}")
    return (rng.random(x.shape) < x).astype(dtype)


