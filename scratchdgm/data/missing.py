r"""Missing data for imputation experiments: scikit-learn's bundled tables, standardised, and
entries removed completely at random (MCAR).

Missing entries are marked by NaN, the one marker the library reads (MIWAE,
:class:`scratchdgm.MIWAE`, and scikit-learn's imputers alike). A *missing mask* is a boolean
array of the data's shape, True where an entry is missing.

The MCAR mechanism of Mattei & Frellsen (2019, Section 4.3): every entry is removed
independently with the same probability, whatever its value or the others'. With few columns
this empties whole rows (iris, p = 4: a row loses all four entries with probability
:math:`0.5^4 = 1/16` at a 50% rate), and a row with nothing observed can only be imputed by the
marginal mean; :func:`mcar_mask` therefore keeps one entry, chosen uniformly, of every row it
would empty (``keep_one_per_row``, on by default), which lowers the realised rate slightly
(reported by ``mask.mean()``).

Lecture: [Mattei-DGM, "DLVM for missing data imputation (Mattei & Frellsen, ICML'19)"] in
``docs/lectures.md``.
"""

import numpy as np

from scratchdgm.validation import check_mask, check_random_state, check_real

__all__ = ["IMPUTATION_DATASETS", "load_imputation_dataset", "mcar_mask", "apply_missing"]

#: name -> description of the bundled tables of the imputation benchmark
IMPUTATION_DATASETS = {
    "iris": "iris, 150 x 4, standardised",
    "wine": "wine, 178 x 13, standardised",
    "breast_cancer": "breast cancer (Wisconsin), 569 x 30, standardised",
    "digits": "digits, 1797 x 61 (the 3 constant pixels dropped), standardised",
    "digits-binary": "digits binarised at half intensity (x / 16 > 0.5), 1797 x 64, 0/1",
}


def load_imputation_dataset(name, dtype=np.float64):
    r"""A complete table of scikit-learn's bundled data, ready for an imputation experiment.

    Parameters
    ----------
    name : str
        A key of :data:`IMPUTATION_DATASETS`: ``'iris'``, ``'wine'``, ``'breast_cancer'``,
        ``'digits'`` (continuous) or ``'digits-binary'``.
    dtype : {numpy.float64, numpy.float32}

    Returns
    -------
    X : ndarray, shape (n, p)
        Continuous sets standardised column by column, :math:`(x_{ij} - \bar x_j) / s_j` with
        the mean and the (1/n) standard deviation of the complete column, as in Mattei &
        Frellsen (2019, Section 4.3); the binary set holds 0.0 / 1.0.
    binary : bool
        Whether the table is binary (then impute with a Bernoulli observation model).

    Raises
    ------
    ValueError
        For an unknown name, listing the valid ones.
    """
    from sklearn import datasets  # bundled with scikit-learn: nothing is downloaded

    loaders = {"iris": datasets.load_iris, "wine": datasets.load_wine,
               "breast_cancer": datasets.load_breast_cancer, "digits": datasets.load_digits,
               "digits-binary": datasets.load_digits}
    if name not in loaders:
        raise ValueError(f"unknown imputation dataset {name!r}; expected one of "
                         f"{sorted(IMPUTATION_DATASETS)}")
    X = loaders[name]().data.astype(np.float64)
    if name == "digits-binary":
        return (X / 16.0 > 0.5).astype(dtype), True
    std = X.std(axis=0)
    X = X[:, std > 0]  # a constant column has nothing to impute (the digits' blank corners)
    return ((X - X.mean(axis=0)) / std[std > 0]).astype(dtype), False


def mcar_mask(shape, rate, random_state=None, *, keep_one_per_row=True):
    r"""A missing-completely-at-random mask: every entry missing independently with
    probability ``rate``.

    Parameters
    ----------
    shape : tuple (n, p)
    rate : float in [0, 1)
        Probability that an entry is missing.
    random_state : None, int or numpy.random.Generator
    keep_one_per_row : bool, default True
        Give back one entry, chosen uniformly, of every row the draw would empty (a row with
        nothing observed says nothing about its missing entries; see the module docstring).

    Returns
    -------
    ndarray of bool, shape (n, p)
        True where the entry is missing.
    """
    rate = check_real(rate, "rate", "mcar_mask", low=0.0, high=1.0, high_open=True)
    rng = check_random_state(random_state, "mcar_mask")
    n, p = (int(s) for s in shape)
    missing = rng.random((n, p)) < rate
    if keep_one_per_row:
        empty = np.flatnonzero(missing.all(axis=1))
        missing[empty, rng.integers(0, p, size=len(empty))] = False
    return missing


def apply_missing(X, missing):
    r"""A copy of ``X`` with NaN where ``missing`` is True.

    Parameters
    ----------
    X : array_like, shape (n, p)
    missing : array_like of bool, shape (n, p)

    Raises
    ------
    ValueError
        If the shapes differ.
    TypeError
        If ``missing`` is not boolean (0/1 integers are refused too: a mask of the other
        convention, True = observed, is an easy slip).
    """
    X = np.array(X, dtype=np.float64 if np.asarray(X).dtype.kind in "biu" else None)
    X[check_mask(missing, X.shape, "the missing mask", "missing", "apply_missing")] = np.nan
    return X
