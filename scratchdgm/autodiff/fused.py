r"""Fused autodiff ops over the hot-path kernels, dispatching on the backend.

Each op here is one :class:`~scratchdgm.autodiff.function.Function` whose forward and backward
call a kernel module -- :mod:`scratchdgm.kernels.reference` (NumPy), :mod:`scratchdgm.kernels.cpu`
(Numba) or :mod:`scratchdgm.kernels.cuda` -- chosen per call by the ``backend=`` argument, else
by :func:`scratchdgm.backend.get_backend` (see :mod:`scratchdgm.backend`). One fused op replaces
a chain of elementwise Tensor ops: fewer graph nodes, fewer temporaries, one pass over memory.

==============================  ======================  ===========================================
op                              shapes                  value
==============================  ======================  ===========================================
:func:`iw_logsumexp`            (K, B) -> (B,)          :math:`\log\sum_k e^{\log w_{kb}}`
:func:`bernoulli_log_prob`      (K, B, D) -> (K, B)     :math:`\sum_j x_j\ell_j - \operatorname{softplus}(\ell_j)`
:func:`diag_gaussian_log_prob`  (K, B, d) -> (K, B)     :math:`\sum_j \log\mathcal N(z_j;\mu_j,\sigma_j^2)`
:func:`linear`                  (..., n) -> (..., m)    :math:`f(xW + b)`
==============================  ======================  ===========================================

and one sampler, not an op (nothing to differentiate), on the same kernels:
:func:`box_muller_normal`, standard normal draws seeded by a generator.

Together they are the IWAE objective of Burda et al. (2016, eq. 8): with
:math:`\log w_k = \log p_\theta(x \mid z_k) + \log p(z_k) - \log q_\gamma(z_k \mid x)`,

.. math::

    \mathcal{L}_K = \operatorname{iw\_logsumexp}(\log w) - \log K.

Lecture: [Mattei-DGM, "Maximum likelihood for DLVM"].

Importing this module imports neither numba nor numba.cuda; they load with the first op that
runs on their backend.
"""

import numpy as np

from scratchdgm import backend as _backend
from scratchdgm.kernels import reference as _kernel_spec
from scratchdgm.autodiff import grad_mode
from scratchdgm.autodiff.function import Function
from scratchdgm.autodiff.tensor import Tensor

__all__ = ["iw_logsumexp", "bernoulli_log_prob", "diag_gaussian_log_prob", "linear",
           "box_muller_normal", "gaussian_reparam", "ACTIVATIONS"]

#: Activations :func:`linear` fuses, ``None`` meaning the identity (the kernels' own list).
ACTIVATIONS = _kernel_spec.ACTIVATIONS

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def _kernels(backend):
    return _backend.get_kernels(backend)


def _data(x):
    return x.data if isinstance(x, Tensor) else x


def _float_dtype(*values):
    """Common float dtype of the array operands (Python scalars do not promote, as in NumPy)."""
    dts = [_data(v).dtype for v in values if isinstance(v, (Tensor, np.ndarray))]
    dts = [np.float64 if dt.kind in "biu" else dt for dt in dts]
    dt = np.result_type(*dts) if dts else np.dtype(np.float64)
    if dt not in _FLOATS:
        raise TypeError(f"unsupported dtype {dt}: expected float32 or float64")
    return dt


def _c(a, dtype):
    return np.ascontiguousarray(a, dtype=dtype)


def _wants_grad(ctx, i):
    return grad_mode.is_grad_enabled() and ctx.needs_input_grad[i]


# --------------------------------------------------------------------------- log-sum-exp over K
class IWLogSumExp(Function):
    r"""Log-sum-exp over axis 0; backward: the normalised importance weights.

    .. math::

        y_b = \log\sum_k e^{a_{kb}}, \qquad \bar a_{kb} = \bar y_b\, e^{a_{kb} - y_b}.
    """

    @staticmethod
    def forward(ctx, a, *, kern):
        K = a.shape[0]
        a2 = _c(a.reshape(K, -1), a.dtype)
        out = kern.logsumexp(a2)
        ctx.save_for_backward(a2, out, a.shape)
        ctx.kern = kern
        return out.reshape(a.shape[1:])

    @staticmethod
    def backward(ctx, grad):
        a2, out, shape = ctx.saved
        g = _c(np.asarray(grad).reshape(-1), a2.dtype)
        return ctx.kern.logsumexp_backward(a2, out, g).reshape(shape)


def iw_logsumexp(log_w, *, backend=None):
    r"""Log of the summed importance weights over the K samples (axis 0).

    Parameters
    ----------
    log_w : Tensor or ndarray, shape (K, B) (or (K, ...))
        Log importance weights :math:`\log w_{kb}`; ``-inf`` entries are allowed.
    backend : {'numpy', 'numba', 'cuda', 'auto'} or None
        Kernel backend for this call; None uses :func:`scratchdgm.get_backend`.

    Returns
    -------
    Tensor, shape (B,) (or ``log_w.shape[1:]``)
        :math:`\log \sum_{k=1}^K w_{kb}` -- without the :math:`-\log K` of the IWAE bound.

    Notes
    -----
    .. math::

        \operatorname{LSE}_b = \log\sum_{k=1}^K \exp(\log w_{kb}), \qquad
        \frac{\partial\,\operatorname{LSE}_b}{\partial \log w_{kb}} = \tilde w_{kb}
        = \frac{w_{kb}}{\sum_{k'} w_{k'b}}.

    The gradient is the vector of self-normalised importance weights that makes the IWAE
    gradient a weighted average of per-sample gradients (Burda et al. 2016, eq. 14).
    """
    a = _data(log_w)
    dt = _float_dtype(log_w)
    if np.ndim(a) < 1 or np.shape(a)[0] < 1:
        raise ValueError(f"iw_logsumexp needs log weights of shape (K, B) with K >= 1, got shape "
                         f"{np.shape(a)}")
    if not isinstance(log_w, Tensor):
        log_w = np.asarray(a, dtype=dt)
    return IWLogSumExp.apply(log_w, kern=_kernels(backend))


# ----------------------------------------------------------------------- Bernoulli from logits
class BernoulliLogProb(Function):
    r""":math:`\sum_j x_j \ell_j - \operatorname{softplus}(\ell_j)`; :math:`\bar\ell = \bar y\,(x - \sigma(\ell))`."""

    @staticmethod
    def forward(ctx, logits, *, x, kern):
        shape = logits.shape
        B, D = x.shape
        l3 = _c(logits.reshape(-1, B, D), logits.dtype)
        xc = _c(x, logits.dtype)
        if _wants_grad(ctx, 0):
            # The derivative x - sigmoid(l) comes out of the same pass as the value, so the
            # backward is one multiplication instead of a second sweep of exponentials.
            out, dlogits = kern.bernoulli_log_prob_with_grad(l3, xc)
            ctx.save_for_backward(dlogits, shape)
        else:
            out = kern.bernoulli_log_prob(l3, xc)
        return out.reshape(shape[:-1])

    @staticmethod
    def backward(ctx, grad):
        dlogits, shape = ctx.saved
        g = np.asarray(grad, dtype=dlogits.dtype).reshape(dlogits.shape[:-1] + (1,))
        return (dlogits * g).reshape(shape)


def bernoulli_log_prob(logits, x, *, backend=None):
    r"""Bernoulli log-likelihood from logits, summed over the pixels (last axis).

    Parameters
    ----------
    logits : Tensor, shape (K, B, D) or (B, D)
        Decoder outputs :math:`\ell = \operatorname{logit}\pi_\theta(z)`.
    x : ndarray, shape (B, D)
        Binary data (0/1); no gradient flows to it. Cast to the logits' dtype.
    backend : {'numpy', 'numba', 'cuda', 'auto'} or None

    Returns
    -------
    Tensor, shape (K, B) or (B,)
        :math:`\log p_\theta(x \mid z)` per sample.

    Notes
    -----
    .. math::

        \log p_\theta(x \mid z) = \sum_{j=1}^D x_j \ell_j - \log(1 + e^{\ell_j}),
        \qquad \frac{\partial}{\partial \ell_j} = x_j - \sigma(\ell_j).

    Lecture [Mattei-DGM, "Deep latent variable models: the role of the
    observation model"] (Bernoulli observation model) and "Illustrative example of a DLVM for
    binary images".
    """
    x = np.asarray(_data(x))
    if x.ndim != 2:
        raise ValueError(f"bernoulli_log_prob: data must have shape (B, D), got {x.shape}")
    l_shape = np.shape(_data(logits))
    if len(l_shape) < 2 or l_shape[-2:] != x.shape:
        raise ValueError(f"bernoulli_log_prob: logits of shape {l_shape} do not match data of "
                         f"shape {x.shape}; expected logits of shape (K, B, D) or (B, D)")
    if not isinstance(logits, Tensor):
        logits = np.asarray(logits, dtype=_float_dtype(logits))
    return BernoulliLogProb.apply(logits, x=x, kern=_kernels(backend))


# ----------------------------------------------------------------------- diagonal Gaussian
def _to3(shape, nd):
    return (1,) * (nd - len(shape)) + tuple(shape)


class DiagGaussianLogProb(Function):
    r"""Diagonal-Gaussian log-density summed over the last axis, gradients to z, mu, log_sigma."""

    @staticmethod
    def forward(ctx, z, mu, log_sigma, *, dtype, kern):
        arrs = [np.asarray(v, dtype=dtype) for v in (z, mu, log_sigma)]
        shapes = [a.shape for a in arrs]
        full = np.broadcast_shapes(*shapes)
        if len(full) <= 3:
            a3 = [_c(a.reshape(_to3(a.shape, 3)), dtype) for a in arrs]
            out_shape = full[:-1] if full else ()
        else:
            # Rare: more than (K, B, d) axes. Broadcast in full and flatten the leading axes.
            d = full[-1]
            a3 = [_c(np.broadcast_to(a, full).reshape(-1, 1, d), dtype) for a in arrs]
            out_shape = full[:-1]
        ctx.save_for_backward(*a3, shapes, len(full) <= 3)
        ctx.kern = kern
        return kern.diag_gaussian_log_prob(*a3).reshape(out_shape)

    @staticmethod
    def backward(ctx, grad):
        z3, m3, s3, shapes, compact = ctx.saved
        out_shape = np.broadcast_shapes(z3.shape, m3.shape, s3.shape)[:-1]
        g = _c(np.asarray(grad).reshape(out_shape), z3.dtype)
        grads = ctx.kern.diag_gaussian_log_prob_backward(z3, m3, s3, g)
        result = []
        for i, (gi, shape) in enumerate(zip(grads, shapes)):
            if not ctx.needs_input_grad[i]:
                result.append(None)
            elif compact:
                result.append(gi.reshape(shape))
            else:
                full = np.broadcast_shapes(*shapes)
                result.append(gi.reshape(full))  # the engine un-broadcasts
        return tuple(result)


def diag_gaussian_log_prob(z, mu=0.0, log_sigma=0.0, *, backend=None):
    r"""Diagonal-Gaussian log-density summed over the last axis.

    Parameters
    ----------
    z : Tensor or ndarray, shape (K, B, d)
        Points (e.g. the K reparametrised samples :math:`z = \mu + \sigma\epsilon`).
    mu : Tensor, ndarray or float, broadcastable to z
        Means: (B, d) from the encoder, (K, B, d) from a decoder, 0 for the prior.
    log_sigma : Tensor, ndarray or float, broadcastable to z
        Log standard deviations (not log-variances).
    backend : {'numpy', 'numba', 'cuda', 'auto'} or None

    Returns
    -------
    Tensor, shape (K, B) (the broadcast shape without its last axis)

    Notes
    -----
    With :math:`\epsilon_j = (z_j - \mu_j)/\sigma_j`:

    .. math::

        \log\mathcal N(z;\mu,\operatorname{diag}\sigma^2)
            = \sum_j -\tfrac12\epsilon_j^2 - \log\sigma_j - \tfrac12\log 2\pi,

    .. math::

        \frac{\partial}{\partial z_j} = -\frac{\epsilon_j}{\sigma_j},\quad
        \frac{\partial}{\partial \mu_j} = \frac{\epsilon_j}{\sigma_j},\quad
        \frac{\partial}{\partial \log\sigma_j} = \epsilon_j^2 - 1,

    each gradient summed over the axes along which its argument was broadcast. ``mu = 0,
    log_sigma = 0`` is the prior :math:`\log p(z)`; the encoder's outputs give
    :math:`\log q_\gamma(z \mid x)` (Kingma & Welling 2014, eq. 10; Burda et al. 2016, sec. 2).
    """
    dtype = _float_dtype(z, mu, log_sigma)
    shapes = [np.shape(_data(v)) for v in (z, mu, log_sigma)]
    try:
        full = np.broadcast_shapes(*shapes)
    except ValueError:
        raise ValueError(f"diag_gaussian_log_prob: z {shapes[0]}, mu {shapes[1]} and log_sigma "
                         f"{shapes[2]} do not broadcast together") from None
    if len(full) == 0:
        raise ValueError("diag_gaussian_log_prob: z must have at least one axis (the dimension "
                         "summed over)")
    ops = [v if isinstance(v, Tensor) else np.asarray(v, dtype=dtype) for v in (z, mu, log_sigma)]
    return DiagGaussianLogProb.apply(*ops, dtype=dtype, kern=_kernels(backend))


# ----------------------------------------------------------------------- linear + activation
class Linear(Function):
    r""":math:`y = f(xW + b)` over the flattened leading axes; backward through :math:`f'(y)`."""

    @staticmethod
    def forward(ctx, x, W, b=None, *, activation, dtype, kern):
        xc, Wc = _c(x, dtype), _c(W, dtype)
        bc = None if b is None else _c(b, dtype)
        y = kern.linear(xc, Wc, bc, activation)
        ctx.save_for_backward(xc, Wc, y)
        ctx.activation = activation
        ctx.kern = kern
        ctx.has_bias = b is not None
        return y

    @staticmethod
    def backward(ctx, grad):
        x, W, y = ctx.saved
        g = _c(grad, y.dtype)
        gx, gW, gb = ctx.kern.linear_backward(x, W, y, g, ctx.activation,
                                              ctx.needs_input_grad[0])
        if not ctx.needs_input_grad[0]:
            gx = None
        return (gx, gW, gb) if ctx.has_bias else (gx, gW)


def linear(x, W, b=None, activation=None, *, backend=None):
    r"""Affine layer with a fused activation, over any number of leading (sample) axes.

    Parameters
    ----------
    x : Tensor or ndarray, shape (..., n)
        Inputs, e.g. (K, B, n) for K samples of B data points.
    W : Tensor, shape (n, m)
    b : Tensor, shape (m,), or None
    activation : {None, 'tanh', 'relu', 'sigmoid'}
    backend : {'numpy', 'numba', 'cuda', 'auto'} or None

    Returns
    -------
    Tensor, shape (..., m)

    Notes
    -----
    .. math::

        y = f(xW + b),\qquad \delta = \bar y \odot f'(y),\qquad
        \bar x = \delta W^\top,\ \bar W = x^\top\delta,\ \bar b = \textstyle\sum_{\text{rows}}\delta,

    with the leading axes flattened into one (K B) x n by n x m product, and :math:`f'` taken
    from the output (:math:`1 - y^2` for tanh, :math:`y(1-y)` for the sigmoid, :math:`[y>0]`
    for the ReLU) so that no pre-activation is kept.
    """
    if activation not in ACTIVATIONS:
        raise ValueError(f"linear: unknown activation {activation!r}; expected one of "
                         f"{ACTIVATIONS}")
    xs, Ws = np.shape(_data(x)), np.shape(_data(W))
    if len(Ws) != 2:
        raise ValueError(f"linear: W must have shape (n, m), got {Ws}")
    if len(xs) < 1 or xs[-1] != Ws[0]:
        raise ValueError(f"linear: x of shape {xs} does not match W of shape {Ws}; expected x "
                         f"of shape (..., {Ws[0]})")
    if b is not None and np.shape(_data(b)) != (Ws[1],):
        raise ValueError(f"linear: b must have shape ({Ws[1]},), got {np.shape(_data(b))}")
    dtype = _float_dtype(x, W, b) if b is not None else _float_dtype(x, W)
    ops = [v if isinstance(v, Tensor) else np.asarray(v, dtype=dtype) for v in (x, W, b)
           if v is not None] if b is not None else [
        v if isinstance(v, Tensor) else np.asarray(v, dtype=dtype) for v in (x, W)]
    return Linear.apply(*ops, activation=activation, dtype=dtype, kern=_kernels(backend))


# --------------------------------------------------------------------------- normal draws
def box_muller_normal(shape, rng, dtype=np.float64, *, backend=None):
    r"""Standard normal draws, a plain ndarray of ``shape`` and ``dtype``, by the Box--Muller
    transform of a SplitMix64 stream seeded with one 64-bit word of ``rng``
    (:func:`scratchdgm.kernels.reference.box_muller`), on the backend's kernel.

    The same distribution as ``rng.standard_normal(shape, dtype)``, other numbers; deterministic
    given the generator's state, which advances by one word per call whatever the shape. The
    compiled kernel draws 250,000 normals in 0.4-0.5 ms on one core of the project's machine,
    against 2.1-2.7 ms for NumPy's ziggurat (float32 or float64, in the same process): the
    evaluation with thousands of samples per point draws this way
    (:meth:`scratchdgm.distributions.DiagNormal.sample_box_muller`).

    Parameters
    ----------
    shape : int or tuple of int
    rng : numpy.random.Generator
        Gives the seed: one 64-bit word of its bit generator (``random_raw``).
    dtype : float32 or float64
    backend : str, optional
        Whose ``box_muller`` kernel runs (default: the current backend).

    Returns
    -------
    ndarray of ``shape`` and ``dtype``
        :math:`\epsilon \sim \mathcal N(0, I)`: :math:`\sqrt{-2\log u_1}\,\cos 2\pi u_2` and
        :math:`\sqrt{-2\log u_1}\,\sin 2\pi u_2` of uniform pairs (Box & Muller 1958).
    """
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"box_muller_normal needs rng, a numpy.random.Generator, got "
                        f"{type(rng).__name__}")
    dtype = np.dtype(dtype)
    if dtype not in _FLOATS:
        raise TypeError(f"box_muller_normal draws float32 or float64, got dtype {dtype}")
    shape = (int(shape),) if np.ndim(shape) == 0 else tuple(int(n) for n in shape)
    if any(n < 0 for n in shape):
        raise ValueError(f"box_muller_normal: negative dimensions in shape {shape}")
    seed = int(rng.bit_generator.random_raw())
    n = int(np.prod(shape, dtype=np.int64))
    return _kernels(backend).box_muller(seed, n, dtype).reshape(shape)


def gaussian_reparam(eps, mu, log_sigma, *, backend=None):
    r"""Reparametrised samples :math:`z = \mu + \sigma \odot \epsilon` with their
    log-densities under :math:`\mathcal N(\mu, \operatorname{diag}\sigma^2)` and under the
    standard normal, in one pass on the backend's kernel; plain ndarrays, no graph (the
    sampling step of an evaluation, where nothing is differentiated).

    Parameters
    ----------
    eps : ndarray, shape (K, B, d)
        Standard normal draws (e.g. :func:`box_muller_normal`).
    mu, log_sigma : ndarray, shape (B, d)
    backend : str, optional

    Returns
    -------
    z : ndarray, shape (K, B, d)
    log_q, log_p : ndarray, shape (K, B)
        The contract of :func:`scratchdgm.kernels.reference.diag_gaussian_reparam`.
    """
    return _kernels(backend).diag_gaussian_reparam(_data(eps), _data(mu), _data(log_sigma))
