r"""Hypothesis strategies for the autodiff tests: shapes, broadcast-compatible pairs, arrays.

Domains are restricted *here*, in the data, never inside the op under test: ``log`` is checked
on :func:`positive_arrays`, ``abs``/``relu`` on :func:`away_from_zero_arrays` (finite
differences across a kink are meaningless), ``max`` on :func:`distinct_arrays` (the gradient of
a tie is a convention, not a derivative). Values are bounded so that central differences with
``eps = 1e-6`` in float64 are accurate to far better than ``rtol = 1e-5``.
"""

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

FLOAT_DTYPES = (np.float32, np.float64)

#: largest side length: gradcheck differentiates every element, so keep arrays small
MAX_SIDE = 4


def shapes(min_dims=1, max_dims=4, min_side=1, max_side=MAX_SIDE):
    r"""Array shapes with ``min_dims``..``max_dims`` axes of length ``min_side``..``max_side``."""
    return hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=min_side,
                            max_side=max_side)


def broadcast_pairs(min_dims=0, max_dims=4, max_side=MAX_SIDE):
    r"""Pairs of shapes ``(a, b)`` that NumPy broadcasts together (length-1 axes, missing
    leading axes, or equal lengths on each axis)."""
    return hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=min_dims,
                                             max_dims=max_dims, max_side=max_side).map(
        lambda bs: bs.input_shapes)


def bounded_floats(low=-3.0, high=3.0):
    r"""Finite floats in ``[low, high]`` (no NaN, no inf)."""
    return st.floats(low, high, allow_nan=False, allow_infinity=False)


def arrays(shape, low=-3.0, high=3.0, dtype=np.float64):
    r"""Arrays of ``shape`` (a tuple or a strategy) with finite entries in ``[low, high]``."""
    return hnp.arrays(dtype, shape, elements=bounded_floats(low, high).map(dtype))


def positive_arrays(shape, low=0.2, high=3.0, dtype=np.float64):
    r"""Arrays with entries in ``[low, high]``, ``low > 0``: the domain of log, sqrt, lgamma,
    and of the base of ``pow``."""
    assert low > 0
    return arrays(shape, low, high, dtype)


def away_from_zero_arrays(shape, gap=0.05, high=3.0, dtype=np.float64):
    r"""Arrays whose entries satisfy ``gap <= |x| <= high``: no kink of abs/relu within reach
    of a finite difference."""
    magnitude = bounded_floats(gap, high)
    elements = st.tuples(st.booleans(), magnitude).map(lambda sm: dtype(sm[1] if sm[0]
                                                                        else -sm[1]))
    return hnp.arrays(dtype, shape, elements=elements)


@st.composite
def distinct_arrays(draw, shape, spacing=0.1, dtype=np.float64):
    r"""Arrays whose entries differ pairwise by at least ``spacing``: a random permutation of an
    evenly spaced grid, shifted by a random offset (for ``max``: no ties, a unique arg-max)."""
    shape = draw(shape) if isinstance(shape, st.SearchStrategy) else tuple(shape)
    n = int(np.prod(shape, dtype=np.int64))
    perm = draw(st.permutations(range(n)))
    offset = draw(bounded_floats(-1.0, 1.0))
    values = (np.asarray(perm, dtype=np.float64) - n / 2.0) * spacing + offset
    return values.reshape(shape).astype(dtype)


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
def matmul_shapes(draw):
    r"""Operand shapes for ``a @ b`` covering every case the API promises: vector @ vector,
    vector @ matrix, matrix @ vector, matrix @ matrix, batched ``(K, B, n) @ (n, m)``, and batch
    axes broadcast against each other (``(1, n, k) @ (K, k, m)``)."""
    side = st.integers(1, MAX_SIDE)
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
    a negative step), an integer array *with repeated entries*, a boolean mask, or a tuple
    mixing ints and slices."""
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
