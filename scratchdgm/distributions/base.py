r"""The :class:`Distribution` base class and the helpers every distribution shares.

Conventions. The *last axis* is the event axis (dimension :math:`d` of :math:`z`, or :math:`p`
of :math:`x`); ``log_prob`` sums over it and returns a tensor of the batch shape. Parameters may
be :class:`~scratchdgm.autodiff.Tensor` (gradients flow into them) or arrays (constants).
Samplers take ``sample_shape`` and ``random_state`` (None, an int seed or a
``numpy.random.Generator``, see :func:`scratchdgm.validation.check_random_state`);
``rsample`` returns a differentiable Tensor (the reparametrisation trick), ``sample`` a plain
ndarray.
"""

import numpy as np

from scratchdgm import autodiff as _ad
from scratchdgm.autodiff import Tensor
from scratchdgm.validation import NonFiniteError, check_random_state

__all__ = ["Distribution"]


def _param(x, name, cls, dtype=None):
    """A parameter as a Tensor (arrays become constants), finite, of a float dtype. Arrays and
    numbers take ``dtype`` (that of the tensor parameters) so a float32 model stays float32."""
    if isinstance(x, Tensor):
        t = x
    else:
        arr = np.asarray(x)
        if arr.dtype.kind not in "biuf":
            raise TypeError(f"{cls}: {name} must be numeric (float32 or float64), "
                            f"got dtype {arr.dtype}")
        t = _ad.tensor(arr, dtype=dtype)
    if not np.all(np.isfinite(t.data)):
        raise NonFiniteError(f"{cls}: {name} contains NaN or infinite values; expected finite "
                             f"numbers")
    return t


def _params(cls, **named):
    """Convert several parameters with :func:`_param`; non-tensors follow the tensors' dtype."""
    tensors = [v.dtype for v in named.values() if isinstance(v, Tensor)]
    dtype = np.result_type(*tensors) if tensors else None
    return [_param(v, k, cls, dtype) for k, v in named.items()]


def _broadcast(shapes, names, cls):
    try:
        return tuple(np.broadcast_shapes(*shapes))
    except ValueError:
        desc = ", ".join(f"{n} {s}" for n, s in zip(names, shapes))
        raise ValueError(f"{cls}: parameter shapes do not broadcast together: {desc}") from None


def _sample_shape(sample_shape, where):
    if isinstance(sample_shape, (int, np.integer)) and not isinstance(sample_shape, bool):
        sample_shape = (int(sample_shape),)
    try:
        if isinstance(sample_shape, (str, bytes)):
            raise TypeError
        shape = tuple(int(s) for s in sample_shape)
    except (TypeError, ValueError):
        raise TypeError(f"{where}: sample_shape must be an int or a tuple of ints, "
                        f"got {sample_shape!r}") from None
    if any(s < 0 for s in shape):
        raise ValueError(f"{where}: sample_shape must not hold negative sizes, got {shape}")
    return shape


def _bcast_to(t, shape):
    return t if t.shape == tuple(shape) else t.broadcast_to(shape)


def _result_dtype(*tensors):
    return np.result_type(*[t.dtype for t in tensors])


class Distribution:
    r"""Base class: a batch of distributions over vectors (the last axis is the event axis).

    Attributes
    ----------
    batch_shape : tuple of int
    event_shape : tuple of int
        ``(d,)``: the dimension of one draw.
    dtype : numpy.dtype
    """

    batch_shape = ()
    event_shape = ()
    dtype = np.dtype(np.float64)

    @property
    def d(self):
        """Dimension of one draw (the event axis)."""
        return self.event_shape[0] if self.event_shape else 1

    def _value(self, x, name="x"):
        """Validate a point at which to evaluate ``log_prob``: shape ``(..., d)`` broadcastable
        with ``batch_shape + (d,)``, finite; arrays are cast to the distribution's dtype."""
        cls = type(self).__name__
        if isinstance(x, Tensor):
            data = x.data
        else:
            data = np.asarray(x)
            if data.dtype.kind not in "biuf":
                raise TypeError(f"{cls}.log_prob: {name} must be numeric, got dtype {data.dtype}")
            data = data.astype(self.dtype)
            x = _ad.tensor(data)
        full = self.batch_shape + self.event_shape
        if data.ndim < 1 or data.shape[-1] != self.d:
            raise ValueError(f"{cls}.log_prob: {name} has shape {data.shape}; expected "
                             f"(..., {self.d}) (the last axis is the event dimension d={self.d})")
        try:
            np.broadcast_shapes(data.shape, full)
        except ValueError:
            raise ValueError(f"{cls}.log_prob: {name} of shape {data.shape} does not broadcast "
                             f"with the distribution's shape {full} (batch {self.batch_shape}, "
                             f"event ({self.d},)); expected (..., *batch, {self.d})") from None
        if not np.all(np.isfinite(data)):
            raise NonFiniteError(f"{cls}.log_prob: {name} contains NaN or infinite values")
        return x

    def log_prob(self, x):  # pragma: no cover - documented interface
        raise NotImplementedError(f"{type(self).__name__} does not define log_prob")

    def sample(self, sample_shape=(), random_state=None):  # pragma: no cover - interface
        r"""Draws as a plain ndarray of shape ``sample_shape + batch_shape + event_shape``."""
        raise NotImplementedError(f"{type(self).__name__} does not define sample")

    def _draw_setup(self, sample_shape, random_state, method):
        """``(shape, rng)`` for a sampler: the validated ``sample_shape`` and the generator."""
        where = f"{type(self).__name__}.{method}"
        return _sample_shape(sample_shape, where), check_random_state(random_state, where)

    def __repr__(self):
        return (f"{type(self).__name__}(batch_shape={self.batch_shape}, "
                f"event_shape={self.event_shape}, dtype={self.dtype})")


