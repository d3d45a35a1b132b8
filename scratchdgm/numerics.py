r"""Numerically stable elementary functions on plain NumPy arrays, each written once.

Every other place in the library that needs one of these calls it from here: the autodiff ops
(:mod:`scratchdgm.autodiff.ops`), the NumPy reference kernels (:mod:`scratchdgm.kernels.reference`),
the importance-sampled log-likelihood (:mod:`scratchdgm.models.deep.bounds`), the observation
models and the quadrature of the toy model.

=====================  ==============================================================
function               stable form
=====================  ==============================================================
:func:`logsumexp`      :math:`\log\sum_k e^{a_k} = m + \log\sum_k e^{a_k - m}`, :math:`m = \max_k a_k`
:func:`log_mean_exp`   :math:`\log\frac1K\sum_k e^{a_k}` = ``logsumexp - log K``
:func:`softplus`       :math:`\log(1 + e^x) = \max(x, 0) + \log(1 + e^{-|x|})`
:func:`log_sigmoid`    :math:`\log\sigma(x) = -\operatorname{softplus}(-x)`
:func:`sigmoid`        :math:`\sigma(x) = 1/(1 + e^{-x})`, from :math:`e^{-|x|}` (never overflows)
=====================  ==============================================================

Why these forms: importance weights :math:`w_k = p_\theta(x, z_k) / q(z_k \mid x)` of a binary
image are around :math:`e^{-100}` and underflow to 0, so the IWAE bound is computed on
log-weights with the log-sum-exp (Burda et al. 2016, eq. 8); the Bernoulli log-likelihood from
logits needs :math:`\log(1 + e^{\ell})` at :math:`|\ell|` in the hundreds
([Mattei-DGM, "Why is this a reconstruction error?"] in ``docs/lectures.md``).
"""

import numpy as np

__all__ = ["logsumexp", "log_mean_exp", "softplus", "log_sigmoid", "sigmoid"]


def logsumexp(a, axis=None, keepdims=False, accumulate_dtype=None):
    r"""Stable :math:`\log \sum e^{a}` over ``axis``.

    Parameters
    ----------
    a : array_like
        Entries may be ``-inf`` (a zero term); ``+inf`` gives ``+inf``; NaN propagates.
    axis : None, int or tuple of int
        Axes to reduce (None: all).
    keepdims : bool
        Keep the reduced axes with length 1.
    accumulate_dtype : dtype, optional
        Dtype in which the sum of exponentials is accumulated (e.g. float64 for float32 input,
        so that the result is the float64 one correctly rounded); default: ``a``'s dtype.

    Returns
    -------
    ndarray
        Same dtype as ``a``.

    Notes
    -----
    .. math::

        \log \sum_k e^{a_k} = m + \log \sum_k e^{a_k - m}, \qquad m = \max_k a_k,

    so no exponential overflows and at least one term of the sum is exactly 1. A slice whose
    every entry is ``-inf`` is shifted by 0 instead of :math:`-\infty` (which would give
    :math:`-\infty - (-\infty) = \mathrm{NaN}`); its sum is 0 and its result ``-inf``.
    """
    # BEGIN EXERCISE 09: the stable log-sum-exp, shifted by the maximum
    a = np.asarray(a)
    if not np.issubdtype(a.dtype, np.floating):
        a = a.astype(np.float64)
    m = np.max(a, axis=axis, keepdims=True)
    shift = np.where(np.isfinite(m), m, 0.0).astype(a.dtype, copy=False)
    with np.errstate(divide="ignore", invalid="ignore"):
        s = np.sum(np.exp(a - shift), axis=axis, keepdims=True, dtype=accumulate_dtype)
        out = np.log(s) + shift
    out = np.where(m == np.inf, np.inf, out).astype(a.dtype, copy=False)
    if not keepdims:
        out = out.reshape(()) if axis is None else np.squeeze(out, axis=axis)
    return out
    # END EXERCISE 09


def log_mean_exp(a, axis=0, keepdims=False):
    r"""Stable :math:`\log \frac1K \sum_k e^{a_k}` over ``axis`` (length :math:`K \ge 1`).

    The importance-sampled estimate of :math:`\log p(x)` from K log-weights
    (Burda et al. 2016, eq. 8). See :func:`logsumexp`.
    """
    a = np.asarray(a)
    k = a.shape[axis] if axis is not None else a.size
    return logsumexp(a, axis=axis, keepdims=keepdims) - np.log(k).astype(a.dtype)


def softplus(x):
    r""":math:`\log(1 + e^x) = \max(x, 0) + \log(1 + e^{-|x|})`: the exponential never overflows."""
    x = np.asarray(x)
    return np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x)))


def log_sigmoid(x):
    r""":math:`\log\sigma(x) = -\operatorname{softplus}(-x)`."""
    return -softplus(-np.asarray(x))


def sigmoid(x):
    r""":math:`\sigma(x) = 1/(1 + e^{-x})` from :math:`e = e^{-|x|} \le 1`: :math:`1/(1+e)` for
    :math:`x \ge 0` and :math:`e/(1+e)` below, so neither branch overflows and tiny
    probabilities keep their relative precision. Keeps ``x``'s floating dtype."""
    x = np.asarray(x)
    e = np.exp(-np.abs(x))
    out = np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))
    return out.astype(x.dtype if np.issubdtype(x.dtype, np.floating) else np.float64, copy=False)
