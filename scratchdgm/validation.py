r"""Checks of arguments at the library's public boundary, written once.

Each check returns the value in its canonical form (an ``int``, a ``float``, a
``numpy.dtype``, a ``numpy.random.Generator``) or raises an error that says what was wrong and
what was expected, prefixed by ``where`` (the function or class the user called)::

    >>> check_positive_int(0, "k", "IWAE")
    Traceback (most recent call last):
    ...
    ValueError: IWAE: k must be an int >= 1, got 0

Randomness follows one rule across the library: public signatures take ``random_state``
(None, an int seed, a ``numpy.random.SeedSequence`` or a ``numpy.random.Generator``) and
:func:`check_random_state` turns it into the ``numpy.random.Generator`` that everything inside
draws from. No function touches NumPy's global random state.
"""

import numbers

import numpy as np

__all__ = [
    "NonFiniteError",
    "FLOAT_DTYPES",
    "check_int",
    "check_positive_int",
    "check_real",
    "check_positive_float",
    "check_float_dtype",
    "check_rng",
    "check_random_state",
]

#: The floating dtypes the library computes in.
FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


class NonFiniteError(ValueError):
    r"""A quantity that must be finite holds NaN or an infinity.

    A ``ValueError`` (a bad value is what it is), told apart so that a caller can name the
    cause: raised by a distribution whose parameters were computed by a network, it usually
    means the training diverged (a learning rate too large), which
    :func:`scratchdgm.models.deep.training.fit` reports as such.
    """


def _prefix(where):
    return f"{where}: " if where else ""


def check_int(value, name, minimum=None, where=None):
    r"""``int(value)`` for an integer (not a bool) ``>= minimum``; TypeError / ValueError else."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        bound = "" if minimum is None else f" >= {minimum}"
        raise TypeError(f"{_prefix(where)}{name} must be an int{bound}, got {value!r} "
                        f"({type(value).__name__})")
    if minimum is not None and value < minimum:
        raise ValueError(f"{_prefix(where)}{name} must be an int >= {minimum}, got {value}")
    return int(value)


def check_positive_int(value, name, where=None):
    r"""``int(value)`` for an integer :math:`\ge 1`."""
    return check_int(value, name, 1, where)


def check_real(value, name, where=None, *, low=None, high=None, low_open=False,
               high_open=False):
    r"""``float(value)`` for a finite real number (Python or NumPy, not a bool) in the given
    interval; ``low_open`` / ``high_open`` exclude the end points."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{_prefix(where)}{name} must be a real number, got {value!r} "
                        f"({type(value).__name__})")
    value = float(value)
    ok = bool(np.isfinite(value))
    if low is not None:
        ok = ok and (value > low if low_open else value >= low)
    if high is not None:
        ok = ok and (value < high if high_open else value <= high)
    if not ok:
        lo = "" if low is None else f"{low} {'<' if low_open else '<='} "
        hi = "" if high is None else f" {'<' if high_open else '<='} {high}"
        raise ValueError(f"{_prefix(where)}{name} must be finite with {lo}{name}{hi}, "
                         f"got {value}")
    return value


def check_positive_float(value, name, where=None, *, allow_zero=False):
    r"""``float(value)`` for a finite number :math:`> 0` (or :math:`\ge 0` with
    ``allow_zero``)."""
    value = check_real(value, name, where)
    if value < 0.0 or (value == 0.0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{_prefix(where)}{name} must be a finite float {bound}, got {value}")
    return value


def check_float_dtype(dtype, where=None):
    r"""``numpy.dtype(dtype)`` if it is float32 or float64; TypeError otherwise."""
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"{_prefix(where)}dtype must be float32 or float64, "
                        f"got {dtype!r}") from None
    if dt not in FLOAT_DTYPES:
        raise TypeError(f"{_prefix(where)}dtype must be float32 or float64, "
                        f"got {dt}")
    return dt


def check_rng(rng, where=None):
    r"""``rng`` itself if it is a ``numpy.random.Generator``; TypeError otherwise.

    For internal signatures that are handed the generator a public function made.
    """
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"{_prefix(where)}rng must be a numpy.random.Generator (e.g. "
                        f"numpy.random.default_rng(0)), got {type(rng).__name__}")
    return rng


def check_random_state(random_state, where=None):
    r"""The ``numpy.random.Generator`` named by a public ``random_state`` argument.

    Parameters
    ----------
    random_state : None, int, numpy.random.SeedSequence, numpy.random.Generator or
        numpy.random.RandomState
        None: fresh entropy. An int or SeedSequence: a new generator seeded with it (the same
        seed gives the same numbers). A Generator: returned as is, so that a caller can thread
        one stream through several calls. A legacy RandomState (scikit-learn's utilities hand
        them around): a seed drawn from it.

    Returns
    -------
    numpy.random.Generator
    """
    if isinstance(random_state, np.random.Generator):
        return random_state
    if isinstance(random_state, np.random.RandomState):
        return np.random.default_rng(int(random_state.randint(0, 2**31 - 1)))
    if random_state is None or isinstance(random_state, np.random.SeedSequence) or (
            isinstance(random_state, numbers.Integral)
            and not isinstance(random_state, (bool, np.bool_))):
        try:
            return np.random.default_rng(random_state)
        except ValueError as exc:  # a negative seed
            raise ValueError(f"{_prefix(where)}random_state: {exc}") from None
    raise TypeError(f"{_prefix(where)}random_state must be None, an int seed or a "
                    f"numpy.random.Generator, got {type(random_state).__name__}")
