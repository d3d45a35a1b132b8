r"""Hypothesis strategies for gradient checks: shapes, broadcast-compatible shapes, and arrays
whose values keep a finite difference meaningful.

A central difference with step :math:`\epsilon` is only a derivative where the function is
smooth within :math:`\epsilon` of the point, and only accurate where the values are moderate.
So the domain of an op is restricted *in the data*, never inside the op under test:

======================================  ==================================================
strategy                                for
======================================  ==================================================
:func:`arrays`                          bounded values (``[-3, 3]``): exp, tanh, products
:func:`positive_arrays`                 the domain of log, sqrt, lgamma, the base of ``pow``
:func:`away_from_kinks_arrays`          abs, relu, max(x, c): no kink within reach of
                                        :math:`\pm\epsilon` (:func:`away_from_zero_arrays`
                                        for the kink at 0)
:func:`distinct_arrays`                 max, min, sort: no ties, a unique arg-max
:func:`probability_vectors`             categorical probabilities, away from the simplex's
                                        boundary (where :math:`\log p` blows up)
:func:`positive_definite_matrices`      covariances with bounded eigenvalues
:func:`cholesky_factors`                scale_tril of a full Gaussian
:func:`binary_arrays`, :func:`batches`  Bernoulli data, minibatches for a model
======================================  ==================================================

and the shapes: :func:`shapes`, :func:`broadcastable_shapes` (what NumPy broadcasts together),
:func:`broadcastable_arrays` (arrays of such shapes, one domain per argument),
:func:`matmul_shapes`, :func:`axes_for` (a reduction's ``axis``), :func:`index_for` (every kind
of index, repeated integers included). Every array strategy takes ``dtype``: ``numpy.float32``,
``numpy.float64`` or a strategy of them such as :func:`float_dtypes`.

Sides are small (:data:`MAX_SIDE`): :func:`~scratchdgm.autodiff.gradcheck` differentiates every
entry, and a minimal counterexample is most readable with few of them.
"""

from typing import NamedTuple

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

__all__ = [
    "Case", "FLOAT_DTYPES", "MAX_SIDE", "float_dtypes", "shapes", "broadcastable_shapes",
    "broadcast_pairs", "bounded_floats", "arrays", "positive_arrays", "away_from_kinks_arrays",
    "away_from_zero_arrays", "distinct_arrays", "broadcastable_arrays", "probability_vectors",
    "positive_definite_matrices", "cholesky_factors", "binary_arrays", "batches", "axes_for",
    "matmul_shapes", "index_for",
]


class Case(NamedTuple):
    r"""One example for :func:`scratchdgm.testing.check_gradients` when the differentiated
    arrays and the constant keyword arguments of ``fn`` are drawn together (an ``axis`` that
    fits the drawn arrays, a constant operand whose shape must match theirs).

    A strategy given as ``check_gradients(fn, inputs=...)`` may draw a ``Case`` instead of a
    tuple of arrays; ``fn(*case.inputs, **case.params)`` is then checked.

    Examples
    --------
    >>> @st.composite
    ... def matmul_with_constant_right(draw):
    ...     a_shape, b_shape = draw(matmul_shapes())
    ...     return Case((draw(arrays(a_shape)),), {"b": draw(arrays(b_shape))})
    """

    inputs: tuple
    params: dict

FLOAT_DTYPES = (np.float32, np.float64)

#: largest side length: gradcheck differentiates every element, so keep arrays small
MAX_SIDE = 4


def float_dtypes():
    r"""``numpy.float32`` or ``numpy.float64`` (shrinks towards float32, the first)."""
    return st.sampled_from(FLOAT_DTYPES)


def _check_dtype(dtype):
    dtype = np.dtype(dtype)
    if dtype not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise ValueError(f"dtype must be float32 or float64 (or a strategy of them), got {dtype}")
    return dtype.type


def _cast_to(dtype, float64_arrays):
    """Arrays drawn in float64, cast to ``dtype`` (or to a dtype drawn from a strategy): no
    strategy is rebuilt per draw, unlike a flatmap."""
    if isinstance(dtype, st.SearchStrategy):
        return st.tuples(dtype, float64_arrays).map(lambda da: da[1].astype(da[0]))
    dt = _check_dtype(dtype)
    return float64_arrays if dt is np.float64 else float64_arrays.map(lambda a: a.astype(dt))


def shapes(min_dims=1, max_dims=4, min_side=1, max_side=MAX_SIDE):
    r"""Array shapes with ``min_dims``..``max_dims`` axes of length ``min_side``..``max_side``."""
    return hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=min_side,
                            max_side=max_side)


def broadcastable_shapes(n=2, min_dims=0, max_dims=4, min_side=1, max_side=MAX_SIDE,
                         base_shape=()):
    r"""Tuples of ``n`` shapes that NumPy broadcasts together: on each axis the lengths are equal
    or 1, and shorter shapes miss leading axes.

    Parameters
    ----------
    n : int
    min_dims, max_dims, min_side, max_side : int
    base_shape : tuple of int
        The shapes also broadcast with this one (``n=1`` draws the partners of a given shape,
        e.g. a constant for an array already drawn).

    Returns
    -------
    SearchStrategy of tuple of tuple of int
        ``np.broadcast_shapes(base_shape, *shapes)`` succeeds for every draw.
    """
    return hnp.mutually_broadcastable_shapes(num_shapes=n, min_dims=min_dims, max_dims=max_dims,
                                             min_side=min_side, max_side=max_side,
                                             base_shape=tuple(base_shape)).map(
        lambda bs: bs.input_shapes)


def broadcast_pairs(min_dims=0, max_dims=4, max_side=MAX_SIDE):
    r"""Pairs of shapes ``(a, b)`` that NumPy broadcasts together: :func:`broadcastable_shapes`
    with ``n=2``."""
    return broadcastable_shapes(2, min_dims=min_dims, max_dims=max_dims, max_side=max_side)


def bounded_floats(low=-3.0, high=3.0):
    r"""Finite floats in ``[low, high]`` (no NaN, no inf)."""
    return st.floats(low, high, allow_nan=False, allow_infinity=False)


def arrays(shape, low=-3.0, high=3.0, dtype=np.float64):
    r"""Arrays of ``shape`` (a tuple or a strategy) with finite entries in ``[low, high]``.

    Parameters
    ----------
    shape : tuple of int or SearchStrategy
    low, high : float
        Bounds of the entries: moderate values keep :math:`O(\epsilon^2)` truncation and
        :math:`10^{-16}|L|/\epsilon` rounding of a central difference far below ``rtol``.
    dtype : numpy.float32, numpy.float64, or a strategy of them
    """
    if low > high:
        raise ValueError(f"arrays: need low <= high, got low={low}, high={high}")
    return _cast_to(dtype, hnp.arrays(np.float64, shape, elements=bounded_floats(low, high)))


def positive_arrays(shape, low=0.2, high=3.0, dtype=np.float64):
    r"""Arrays with entries in ``[low, high]``, ``low > 0``: the domain of log, sqrt, lgamma,
    and of the base of ``pow``."""
    if not low > 0:
        raise ValueError(f"positive_arrays: need low > 0, got {low}")
    return arrays(shape, low, high, dtype)


def away_from_kinks_arrays(shape, kinks=(0.0,), gap=0.05, low=-3.0, high=3.0, dtype=np.float64):
    r"""Arrays with entries in ``[low, high]`` at least ``gap`` away from every point of
    ``kinks``: where a piecewise function (abs, relu, a clip at ``c``) is smooth within reach of
    a finite difference.

    A value drawn within ``gap`` of a kink is pushed to ``kink + gap`` (or ``kink - gap`` when
    that side leaves ``[low, high]``), so the points just off the kink are drawn often and the
    values still shrink towards 0 (or the nearest allowed value).
    """
    kinks = sorted(float(k) for k in kinks)
    if not gap > 0:
        raise ValueError(f"away_from_kinks_arrays: need gap > 0, got {gap}")
    if any(b - a < 2 * gap for a, b in zip(kinks, kinks[1:])):
        raise ValueError(f"away_from_kinks_arrays: kinks {kinks} are closer than 2 * gap = "
                         f"{2 * gap}; nothing lies between them")

    def push(x):
        for k in kinks:
            if abs(x - k) < gap:
                up, down = k + gap, k - gap
                first, second = (up, down) if x >= k else (down, up)
                for candidate in (first, second):
                    if low <= candidate <= high and all(abs(candidate - o) >= gap * (1 - 1e-12)
                                                        for o in kinks):
                        return candidate
                raise ValueError(f"away_from_kinks_arrays: no value of [{low}, {high}] is "
                                 f"{gap} away from the kink at {k}")
        return x

    return _cast_to(dtype, hnp.arrays(np.float64, shape,
                                      elements=bounded_floats(low, high).map(push)))


def away_from_zero_arrays(shape, gap=0.05, high=3.0, dtype=np.float64):
    r"""Arrays whose entries satisfy ``gap <= |x| <= high``: no kink of abs/relu within reach of
    a finite difference (:func:`away_from_kinks_arrays` with the kink at 0)."""
    return away_from_kinks_arrays(shape, (0.0,), gap, -high, high, dtype)


def distinct_arrays(shape, spacing=0.1, dtype=np.float64):
    r"""Arrays whose entries differ pairwise by at least ``spacing``: a random permutation of an
    evenly spaced grid, shifted by a random offset (for ``max``: no ties, a unique arg-max that
    a step of :math:`\pm\epsilon` cannot move)."""

    @st.composite
    def build(draw):
        s = draw(shape) if isinstance(shape, st.SearchStrategy) else tuple(shape)
        n = int(np.prod(s, dtype=np.int64))
        perm = draw(st.permutations(range(n)))
        offset = draw(bounded_floats(-1.0, 1.0))
        values = (np.asarray(perm, dtype=np.float64) - n / 2.0) * spacing + offset
        return values.reshape(s)

    return _cast_to(dtype, build())


def broadcastable_arrays(*domains, n=2, min_dims=0, max_dims=4, max_side=MAX_SIDE):
    r"""A tuple of arrays whose shapes NumPy broadcasts together (:func:`broadcastable_shapes`),
    each drawn from its own domain.

    Parameters
    ----------
    *domains : callable
        One per array: ``domain(shape) -> SearchStrategy`` of arrays, e.g. :func:`arrays`,
        :func:`positive_arrays`, or ``lambda s: away_from_zero_arrays(s, gap=0.5)``. Without
        any, ``n`` arrays from :func:`arrays`.
    n : int
        Number of arrays when no domain is given.
    min_dims, max_dims, max_side : int
        As in :func:`broadcastable_shapes`.

    Examples
    --------
    Numerator and denominator of a division, the denominator away from 0:

    >>> pairs = broadcastable_arrays(arrays, lambda s: away_from_zero_arrays(s, gap=0.5))
    """
    domains = domains or (arrays,) * n

    @st.composite
    def build(draw):
        shape_tuple = draw(broadcastable_shapes(len(domains), min_dims, max_dims,
                                                max_side=max_side))
        return tuple(draw(domain(s)) for domain, s in zip(domains, shape_tuple))

    return build()


def probability_vectors(shape, min_prob=1e-3, dtype=np.float64):
    r"""Arrays of ``shape`` whose last axis lies on the probability simplex, every entry at
    least ``min_prob``.

    .. math::

        p = p_{\min} + (1 - n\,p_{\min}) \frac{w}{\sum_j w_j}, \qquad w_j \in [0.01, 1],

    so :math:`\sum_j p_j = 1` (to rounding) and :math:`\log p` stays finite and smooth: the
    domain of a categorical log-likelihood or KL written with probabilities.

    Parameters
    ----------
    shape : tuple of int or SearchStrategy
        The last axis has ``n`` categories; ``n * min_prob < 1`` is required.
    """
    if not min_prob >= 0:
        raise ValueError(f"probability_vectors: need min_prob >= 0, got {min_prob}")

    @st.composite
    def build(draw):
        s = draw(shape) if isinstance(shape, st.SearchStrategy) else tuple(shape)
        if len(s) == 0:
            raise ValueError("probability_vectors: the shape needs a last axis (the categories)")
        k = s[-1]
        if not k * min_prob < 1:
            raise ValueError(f"probability_vectors: {k} categories with min_prob={min_prob} "
                             f"leave no mass to spread")
        w = draw(hnp.arrays(np.float64, s, elements=bounded_floats(0.01, 1.0)))
        p = min_prob + (1 - k * min_prob) * w / w.sum(axis=-1, keepdims=True)
        return p

    return _cast_to(dtype, build())


def positive_definite_matrices(n, batch_shape=(), min_eigenvalue=0.1, dtype=np.float64):
    r"""Symmetric positive-definite matrices of shape ``batch_shape + (n, n)`` with eigenvalues
    in :math:`[\lambda_{\min}, \lambda_{\min} + n]`.

    .. math::

        \Sigma = \frac{A A^\top}{n} + \lambda I, \qquad A_{ij} \in [-1, 1],\ \lambda \in
        [\lambda_{\min}, 1],

    (exactly symmetric; the condition number is at most :math:`1 + n / \lambda_{\min}`, so
    solves and log-determinants are well conditioned for finite differences).

    Parameters
    ----------
    n : int or SearchStrategy of int
    batch_shape : tuple of int or SearchStrategy
    min_eigenvalue : float
    """
    if not min_eigenvalue > 0:
        raise ValueError(f"positive_definite_matrices: need min_eigenvalue > 0, got "
                         f"{min_eigenvalue}")

    @st.composite
    def build(draw):
        size = draw(n) if isinstance(n, st.SearchStrategy) else int(n)
        batch = draw(batch_shape) if isinstance(batch_shape, st.SearchStrategy) \
            else tuple(batch_shape)
        a = draw(hnp.arrays(np.float64, batch + (size, size), elements=bounded_floats(-1, 1)))
        lam = draw(bounded_floats(min_eigenvalue, max(1.0, min_eigenvalue)))
        sigma = a @ np.swapaxes(a, -1, -2) / size + lam * np.eye(size)
        return 0.5 * (sigma + np.swapaxes(sigma, -1, -2))

    return _cast_to(dtype, build())


def cholesky_factors(n, batch_shape=(), low=0.5, high=2.0, dtype=np.float64):
    r"""Lower-triangular matrices of shape ``batch_shape + (n, n)`` with a diagonal in
    ``[low, high]`` (``low > 0``) and strictly lower entries in ``[-1, 1]``: the ``scale_tril``
    :math:`L` of a Gaussian :math:`\mathcal N(\mu, L L^\top)`, away from singular."""
    if not 0 < low <= high:
        raise ValueError(f"cholesky_factors: need 0 < low <= high, got {low}, {high}")

    @st.composite
    def build(draw):
        size = draw(n) if isinstance(n, st.SearchStrategy) else int(n)
        batch = draw(batch_shape) if isinstance(batch_shape, st.SearchStrategy) \
            else tuple(batch_shape)
        full = batch + (size, size)
        off = draw(hnp.arrays(np.float64, full, elements=bounded_floats(-1, 1)))
        diag = draw(hnp.arrays(np.float64, batch + (size,), elements=bounded_floats(low, high)))
        L = np.tril(off, -1)
        idx = np.arange(size)
        L[..., idx, idx] = diag
        return L

    return _cast_to(dtype, build())


def binary_arrays(shape, dtype=np.float64):
    r"""Arrays of 0.0 / 1.0: Bernoulli observations (targets of a cross-entropy, binarised
    images)."""
    return _cast_to(dtype, hnp.arrays(np.float64, shape, elements=st.sampled_from([0.0, 1.0])))


def batches(n_features, min_rows=1, max_rows=4, binary=True, low=-3.0, high=3.0,
            dtype=np.float64):
    r"""Minibatches of shape ``(B, n_features)``, ``min_rows <= B <= max_rows``: binary
    (:func:`binary_arrays`) for a Bernoulli model, else bounded reals (:func:`arrays`). What
    :func:`scratchdgm.testing.check_model_gradients` is given to check a model on generated
    data."""
    rows = st.integers(min_rows, max_rows).map(lambda b: (b, int(n_features)))
    return binary_arrays(rows, dtype) if binary else arrays(rows, low, high, dtype)


@st.composite
def axes_for(draw, ndim):
    r"""A reduction ``axis`` argument for an array with ``ndim`` axes: None, an int (possibly
    negative) or a tuple of distinct ints."""
    if ndim == 0:
        return None
    kind = draw(st.sampled_from(["none", "int", "tuple"]))
    if kind == "none":
        return None
    if kind == "int":
        return draw(st.integers(-ndim, ndim - 1))
    chosen = draw(st.lists(st.integers(0, ndim - 1), min_size=1, max_size=ndim, unique=True))
    return tuple(chosen)


@st.composite
def matmul_shapes(draw, max_side=MAX_SIDE):
    r"""Operand shapes for ``a @ b`` covering every case the API promises: vector @ vector,
    vector @ matrix, matrix @ vector, matrix @ matrix, batched ``(K, B, n) @ (n, m)``, and batch
    axes broadcast against each other (``(1, n, k) @ (K, k, m)``)."""
    side = st.integers(1, max_side)
    n, k, m, K, B = (draw(side) for _ in range(5))
    case = draw(st.sampled_from(["vv", "vm", "mv", "mm", "KBn_nm", "batch_both",
                                 "batch_broadcast", "batched_vector"]))
    return {
        "vv": ((k,), (k,)),
        "vm": ((k,), (k, m)),
        "mv": ((n, k), (k,)),
        "mm": ((n, k), (k, m)),
        "KBn_nm": ((K, B, k), (k, m)),
        "batch_both": ((K, n, k), (K, k, m)),
        "batch_broadcast": ((1, n, k), (K, k, m)),
        "batched_vector": ((K, n, k), (k,)),
    }[case]


@st.composite
def index_for(draw, shape):
    r"""An index into an array of ``shape``: an int (possibly negative), a slice (possibly with
    a negative step), an integer array *with repeated entries*, a boolean mask, an ellipsis, or
    a tuple mixing ints and slices."""
    kind = draw(st.sampled_from(["int", "slice", "int_array", "bool_mask", "tuple",
                                 "ellipsis"]))
    n0 = shape[0]
    if kind == "int":
        return draw(st.integers(-n0, n0 - 1))
    if kind == "slice":
        start = draw(st.none() | st.integers(-n0, n0))
        stop = draw(st.none() | st.integers(-n0, n0))
        step = draw(st.none() | st.sampled_from([1, 2, -1, -2]))
        return slice(start, stop, step)
    if kind == "int_array":
        # repeated indices on purpose: the backward must add, not assign
        return np.asarray(draw(st.lists(st.integers(-n0, n0 - 1), min_size=1, max_size=6)))
    if kind == "bool_mask":
        return draw(hnp.arrays(np.bool_, shape))
    if kind == "ellipsis":
        return (Ellipsis, draw(st.integers(0, shape[-1] - 1)))
    parts = []
    for n in shape[:draw(st.integers(1, len(shape)))]:
        if draw(st.booleans()):
            parts.append(draw(st.integers(-n, n - 1)))
        else:
            parts.append(slice(draw(st.integers(0, n - 1)), None))
    return tuple(parts)
