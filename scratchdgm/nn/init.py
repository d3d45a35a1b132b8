r"""Weight initialisation: Glorot/Xavier uniform (Glorot & Bengio 2010, eq. 16) and zeros.

Every initialiser draws from the ``numpy.random.Generator`` it is given (no global random
state), always in float64, and only then casts: a float32 network and a float64
network built from the same seed start from the same numbers (up to rounding).
"""

import numpy as np

from scratchdgm.validation import check_float_dtype, check_positive_int, check_rng

__all__ = ["glorot_uniform", "zeros"]

def glorot_uniform(rng, fan_in, fan_out, *, gain=1.0, dtype=np.float64):
    r"""A ``(fan_in, fan_out)`` weight matrix drawn from Glorot & Bengio's "normalized" uniform.

    Parameters
    ----------
    rng : numpy.random.Generator
    fan_in, fan_out : int
        Number of input and output units of the layer (:math:`n_j`, :math:`n_{j+1}`).
    gain : float
        Multiplies the bound (1 for tanh, as in the paper).
    dtype : {numpy.float64, numpy.float32}

    Returns
    -------
    ndarray, shape (fan_in, fan_out)

    Notes
    -----
    .. math::

        W_{ij} \sim \mathcal U\!\left[-a, a\right], \qquad
        a = \text{gain} \cdot \frac{\sqrt 6}{\sqrt{n_j + n_{j+1}}},

    which gives :math:`\operatorname{Var} W_{ij} = 2 / (n_j + n_{j+1})`, the compromise between
    keeping forward activations and backward gradients at constant variance across layers.

    References
    ----------
    Glorot, X. & Bengio, Y. (2010). Understanding the difficulty of training deep feedforward
    neural networks. AISTATS, eq. 16.
    """
    check_rng(rng, "glorot_uniform")
    fan_in = check_positive_int(fan_in, "fan_in", "glorot_uniform")
    fan_out = check_positive_int(fan_out, "fan_out", "glorot_uniform")
    dt = check_float_dtype(dtype, "glorot_uniform")
    gain = float(gain)
    if not np.isfinite(gain) or gain <= 0:
        raise ValueError(f"glorot_uniform: gain must be a finite number > 0, got {gain}")
    bound = gain * np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-bound, bound, size=(fan_in, fan_out)).astype(dt, copy=False)


def zeros(shape, *, dtype=np.float64):
    r"""An array of zeros (the paper's bias initialisation)."""
    return np.zeros(shape, dtype=check_float_dtype(dtype, "zeros"))
