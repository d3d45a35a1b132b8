r"""Plain-NumPy reference kernels: the specification of every hot op of the IWAE objective.

The importance-weighted (IWAE) objective of Burda et al. (2016, eq. 8),

.. math::

    \mathcal{L}_K(\theta, \gamma) = \mathbb{E}\Big[\log \frac{1}{K} \sum_{k=1}^K
        \frac{p_\theta(x \mid z_k)\, p(z_k)}{q_\gamma(z_k \mid x)}\Big],
    \qquad z_k \sim q_\gamma(z \mid x),

spends its time in four places, each of which is a function here:

* :func:`logsumexp` over the K importance samples, and its backward, the normalised importance
  weights (a softmax over K);
* :func:`bernoulli_log_prob`, the Bernoulli observation model :math:`\log p_\theta(x \mid z)`
  from decoder logits, summed over the p pixels, and its gradient;
* :func:`diag_gaussian_log_prob`, :math:`\log q_\gamma(z \mid x)`, :math:`\log p(z)` and
  Gaussian decoders, summed over the last axis, and its gradients;
* :func:`linear`, the affine layer with a fused activation applied to the K x B stacked samples;
* and, for the reparametrised draws :math:`z_k = \mu + \sigma \odot \epsilon_k` of an
  evaluation with thousands of samples per point, :func:`box_muller`: standard normals from raw
  random bits.

The Numba (:mod:`scratchdgm.kernels.cpu`) and numba.cuda (:mod:`scratchdgm.kernels.cuda`)
modules implement exactly these signatures; the tests hold them to the functions below.

Conventions shared by all three implementations
-----------------------------------------------
* Arrays are float32 or float64 and the result has the input dtype.
* Reductions (over K, over pixels, over the latent dimension) accumulate in float64 and round once
  at the end, so a float32 result is the float64 result correctly rounded, whatever the order in
  which a compiled kernel adds the terms.
* ``-inf`` log-weights are allowed (a sample with zero weight); an all-``-inf`` column has
  log-sum-exp ``-inf`` and zero gradient.

References
----------
Burda, Grosse & Salakhutdinov (2016), *Importance weighted autoencoders*, ICLR, eq. 8 (bound) and
eq. 14 (its gradient: the normalised importance weights).
Kingma & Welling (2014), *Auto-encoding variational Bayes*, ICLR, eq. 10 (Gaussian encoder).
Lecture: [Mattei-DGM, "Maximum likelihood for DLVM"] (the
IWAE bound L_K) and "Illustrative example of a DLVM for binary images" (the Bernoulli decoder
``Sigmoid(V tanh(Wz + b) + beta)``).
"""

import numpy as np

from scratchdgm import numerics as _num

__all__ = [
    "ACTIVATIONS",
    "logsumexp",
    "logsumexp_backward",
    "bernoulli_log_prob",
    "bernoulli_log_prob_with_grad",
    "diag_gaussian_log_prob",
    "diag_gaussian_log_prob_backward",
    "diag_gaussian_reparam",
    "linear",
    "linear_backward",
    "adam_update",
    "box_muller",
]

def _float_array(a, name):
    """``a`` as a C-contiguous float32/float64 array; TypeError naming ``name`` otherwise.
    (The compiled modules validate their inputs with this.)"""
    a = np.asarray(a)
    if a.dtype not in (np.float32, np.float64):
        raise TypeError(f"{name} has dtype {a.dtype}: expected float32 or float64")
    return np.ascontiguousarray(a)


#: Activations the fused linear layer knows, ``None`` meaning the identity: the one list of
#: fused activations (the autodiff's fused op and the compiled kernels read it from here).
ACTIVATIONS = (None, "tanh", "relu", "sigmoid")

#: The integer code of each activation inside the compiled kernels (a branch on an int).
ACTIVATION_CODES = {name: code for code, name in enumerate(ACTIVATIONS)}

#: Log of the smallest normalised importance weight kept by :func:`logsumexp_backward`.
WEIGHT_FLUSH_LOG = {np.float32: -44.0, np.float64: -400.0}

#: log(2 pi) / 2, the normalising constant of a standard normal, per dimension.
HALF_LOG_2PI = 0.5 * np.log(2.0 * np.pi)


def logsumexp(a):
    r"""Log-sum-exp over axis 0 of a (K, B) array: log of the sum of the K importance weights.

    Parameters
    ----------
    a : ndarray, shape (K, B)
        Log importance weights :math:`\log w_{kb}`, float32 or float64. Entries may be ``-inf``.

    Returns
    -------
    out : ndarray, shape (B,)
        :math:`\log \sum_k \exp a_{kb}`, same dtype as ``a``; ``-inf`` for an all-``-inf``
        column, ``+inf`` where a column holds ``+inf``.

    Notes
    -----
    Computed stably by shifting with the column maximum :math:`m_b = \max_k a_{kb}`:

    .. math::

        \operatorname{LSE}(a)_b = m_b + \log \sum_{k=1}^K \exp(a_{kb} - m_b),

    so no exponential overflows, and at least one term of the sum is exactly 1. The sum
    accumulates in float64. The IWAE bound (Burda et al. 2016, eq. 8) is
    :math:`\operatorname{LSE}(\log w) - \log K`; the :math:`-\log K` is the caller's.
    """
    return _num.logsumexp(a, axis=0, accumulate_dtype=np.float64)


def logsumexp_backward(a, lse, grad):
    r"""Backward of :func:`logsumexp`: the incoming gradient times the normalised weights.

    Parameters
    ----------
    a : ndarray, shape (K, B)
        The forward input.
    lse : ndarray, shape (B,)
        The forward output ``logsumexp(a)``.
    grad : ndarray, shape (B,)
        Gradient of the loss with respect to ``lse``.

    Returns
    -------
    grad_a : ndarray, shape (K, B)
        Same dtype as ``a``.

    Notes
    -----
    .. math::

        \frac{\partial\, \operatorname{LSE}(a)_b}{\partial a_{kb}} = \tilde w_{kb}
        = \frac{\exp a_{kb}}{\sum_{k'} \exp a_{k'b}} = \exp(a_{kb} - \operatorname{LSE}(a)_b),

    the self-normalised importance weights of Burda et al. (2016, eq. 14), a softmax over K.
    A column whose log-sum-exp is ``-inf`` has zero gradient (there is no mass to move).

    Weights below :math:`e^{-44}` (float32) or :math:`e^{-400}` (float64) are set to 0
    (:data:`WEIGHT_FLUSH_LOG`). Next to the weights' total of 1 they are far below the
    rounding error of any gradient they enter, but multiplied further down the backward pass
    they become subnormal numbers, whose arithmetic takes a ~100x slower microcode path on x86:
    measured, this doubled the time of the backward matrix products of an IWAE step at K = 50
    (the weights of poor samples are routinely below 1e-30 early in training).
    """
    finite = np.isfinite(lse)
    shift = np.where(finite, lse, 0.0).astype(a.dtype, copy=False)
    with np.errstate(over="ignore", invalid="ignore"):
        x = a - shift
        w = np.where(x >= WEIGHT_FLUSH_LOG[a.dtype.type], np.exp(x), 0).astype(a.dtype)
        out = w * np.where(finite, grad, 0.0).astype(a.dtype, copy=False)
    return out.astype(a.dtype, copy=False)


def _check_bernoulli(logits, x):
    if logits.ndim < 2 or logits.shape[-2:] != x.shape:
        raise ValueError(
            f"logits of shape {logits.shape} do not match data of shape {x.shape}: expected "
            "logits of shape (..., B, D) for data of shape (B, D)"
        )


def bernoulli_log_prob(logits, x):
    r"""Bernoulli log-likelihood from logits, summed over the last axis (the pixels).

    Parameters
    ----------
    logits : ndarray, shape (K, B, D) or (..., B, D)
        Decoder outputs :math:`\ell = \operatorname{logit} \pi_\theta(z)`, one row per sample.
    x : ndarray, shape (B, D)
        Observed data, 0/1 (any real targets are accepted: the formula is the negative binary
        cross-entropy), broadcast over the leading axes of ``logits``. Cast to ``logits.dtype``.

    Returns
    -------
    log_px : ndarray, shape (K, B) (the leading shape of ``logits``)
        Same dtype as ``logits``.

    Notes
    -----
    .. math::

        \log p_\theta(x \mid z) = \sum_{j=1}^{D} x_j \ell_j - \operatorname{softplus}(\ell_j),
        \qquad \operatorname{softplus}(\ell) = \max(\ell, 0) + \log(1 + e^{-|\ell|}),

    which equals :math:`\sum_j x_j \log \sigma(\ell_j) + (1 - x_j) \log(1 - \sigma(\ell_j))`
    without ever forming :math:`\sigma(\ell)` (stable for any logit). Lecture
    [Mattei-DGM, "Deep latent variable models: the role of the observation
    model"] (Bernoulli observation model).
    """
    x = np.asarray(x, dtype=logits.dtype)
    _check_bernoulli(logits, x)
    terms = x * logits - _num.softplus(logits)
    return np.sum(terms, axis=-1, dtype=np.float64).astype(logits.dtype, copy=False)


def bernoulli_log_prob_with_grad(logits, x):
    r""":func:`bernoulli_log_prob` and its elementwise derivative in one pass.

    Returns
    -------
    log_px : ndarray, shape (K, B)
    dlogits : ndarray, shape (K, B, D)
        :math:`\partial \log p_\theta(x \mid z) / \partial \ell_j = x_j - \sigma(\ell_j)`.

    Notes
    -----
    The autodiff saves ``dlogits`` in the forward pass so that the backward pass is one
    multiplication by the incoming gradient, instead of a second pass of exponentials.
    """
    x = np.asarray(x, dtype=logits.dtype)
    return bernoulli_log_prob(logits, x), (x - _num.sigmoid(logits)).astype(logits.dtype, copy=False)


def _gaussian_shapes(z, mu, log_sigma):
    for name, arr in (("z", z), ("mu", mu), ("log_sigma", log_sigma)):
        if arr.ndim != 3:
            raise ValueError(f"{name} has shape {arr.shape}: the kernel expects a 3-D array "
                             "(K, B, d), with size-1 axes where it broadcasts")
    try:
        return np.broadcast_shapes(z.shape, mu.shape, log_sigma.shape)
    except ValueError:
        raise ValueError(
            f"z {z.shape}, mu {mu.shape} and log_sigma {log_sigma.shape} do not broadcast "
            "together: expected each axis to be the full size or 1"
        ) from None


def diag_gaussian_log_prob(z, mu, log_sigma):
    r"""Diagonal-Gaussian log-density, summed over the last axis.

    Parameters
    ----------
    z : ndarray, shape (K, B, d)
        Points, e.g. the K latent samples of each of B data points.
    mu : ndarray, shape broadcastable to (K, B, d) with the same ndim (axes of size 1 broadcast)
        Means, e.g. (1, B, d) for an encoder output shared by the K samples, (1, 1, 1) for 0.
    log_sigma : ndarray, shape broadcastable to (K, B, d) with the same ndim
        Log standard deviations (not log-variances).

    Returns
    -------
    log_prob : ndarray, shape (K, B) (the broadcast shape without its last axis)
        Same dtype as ``z``.

    Notes
    -----
    With :math:`\epsilon_j = (z_j - \mu_j)\, e^{-\log\sigma_j}`:

    .. math::

        \log \mathcal{N}(z; \mu, \operatorname{diag}\sigma^2)
        = \sum_{j=1}^{d} -\tfrac12 \epsilon_j^2 - \log\sigma_j - \tfrac12 \log 2\pi.

    With ``mu = log_sigma = 0`` this is the standard-normal prior :math:`\log p(z)`; with the
    encoder outputs it is :math:`\log q_\gamma(z \mid x)` (Kingma & Welling 2014, eq. 10);
    with decoder outputs, a Gaussian observation model.
    """
    shape = _gaussian_shapes(z, mu, log_sigma)
    eps = (z - mu) * np.exp(-log_sigma)
    terms = -0.5 * eps * eps - log_sigma - z.dtype.type(HALF_LOG_2PI)
    terms = np.broadcast_to(terms, shape)
    return np.sum(terms, axis=-1, dtype=np.float64).astype(z.dtype, copy=False)


def _check_reparam(eps, mu, log_sigma):
    """Validate the arguments of ``diag_gaussian_reparam`` (every module): eps (K, B, d) float,
    mu and log_sigma (B, d), cast to eps's dtype; all C-contiguous."""
    eps = _float_array(eps, "eps")
    mu = np.ascontiguousarray(mu, dtype=eps.dtype)
    log_sigma = np.ascontiguousarray(log_sigma, dtype=eps.dtype)
    if eps.ndim != 3 or mu.shape != eps.shape[1:] or log_sigma.shape != eps.shape[1:]:
        raise ValueError(f"eps of shape {eps.shape}, mu {mu.shape} and log_sigma "
                         f"{log_sigma.shape}: expected eps (K, B, d) with mu and log_sigma (B, d)")
    return eps, mu, log_sigma


def diag_gaussian_reparam(eps, mu, log_sigma):
    r"""Reparametrised samples of B diagonal Gaussians, with two log-densities of each sample:
    the sampling step of an importance-sampled evaluation, one pass.

    Parameters
    ----------
    eps : ndarray, shape (K, B, d)
        Standard normal draws, K per Gaussian.
    mu, log_sigma : ndarray, shape (B, d)
        Means and log standard deviations of the B Gaussians :math:`q_b = \mathcal N(\mu_b,
        \operatorname{diag}\sigma_b^2)` (an encoder's output for B data points). Cast to
        ``eps.dtype``.

    Returns
    -------
    z : ndarray, shape (K, B, d)
        :math:`z_{kb} = \mu_b + \sigma_b \odot \epsilon_{kb}`.
    log_q : ndarray, shape (K, B)
        :math:`\log q_b(z_{kb}) = \log \mathcal N(z_{kb}; \mu_b, \operatorname{diag}
        \sigma_b^2)`.
    log_p : ndarray, shape (K, B)
        :math:`\log \mathcal N(z_{kb}; 0, I)`, the standard normal prior.

    Notes
    -----
    The reparametrisation of Kingma & Welling (2014, section 2.4). Since
    :math:`(z_j - \mu_j)/\sigma_j = \epsilon_j`, the density of the proposal needs no
    division:

    .. math::

        \log q(z) = \sum_{j=1}^d -\tfrac12 \epsilon_j^2 - \log\sigma_j - \tfrac12\log 2\pi,
        \qquad
        \log p(z) = \sum_{j=1}^d -\tfrac12 z_j^2 - \tfrac12\log 2\pi,

    the same as :func:`diag_gaussian_log_prob` of ``z`` up to rounding. Sums in float64,
    results in ``eps.dtype``.
    """
    eps, mu, log_sigma = _check_reparam(eps, mu, log_sigma)
    z = mu + np.exp(log_sigma) * eps
    c = eps.shape[-1] * HALF_LOG_2PI
    log_sigma_sum = log_sigma.sum(axis=-1, dtype=np.float64)
    log_q = -0.5 * np.einsum("kbj,kbj->kb", eps, eps, dtype=np.float64) - log_sigma_sum - c
    log_p = -0.5 * np.einsum("kbj,kbj->kb", z, z, dtype=np.float64) - c
    return z, log_q.astype(eps.dtype), log_p.astype(eps.dtype)


def _reduce_to(g, shape):
    # Sum over the broadcast axes, accumulating in float64 like every reduction here.
    axes = tuple(i for i, (gs, s) in enumerate(zip(g.shape, shape)) if s == 1 and gs != 1)
    return g.sum(axis=axes, keepdims=True, dtype=np.float64) if axes else g


def diag_gaussian_log_prob_backward(z, mu, log_sigma, grad):
    r"""Gradients of :func:`diag_gaussian_log_prob` with respect to z, mu and log_sigma.

    Parameters
    ----------
    z, mu, log_sigma : ndarray
        The forward inputs (3-D, broadcastable).
    grad : ndarray, shape (K, B)
        Gradient of the loss with respect to the log-density.

    Returns
    -------
    grad_z, grad_mu, grad_log_sigma : ndarray
        Each with the shape of its own input (summed over the axes where it was broadcast).

    Notes
    -----
    With :math:`\epsilon = (z - \mu) e^{-\log\sigma}` and incoming gradient :math:`g`:

    .. math::

        \frac{\partial}{\partial z} = -g\,\epsilon\, e^{-\log\sigma}, \qquad
        \frac{\partial}{\partial \mu} = g\,\epsilon\, e^{-\log\sigma}, \qquad
        \frac{\partial}{\partial \log\sigma} = g\,(\epsilon^2 - 1).
    """
    shape = _gaussian_shapes(z, mu, log_sigma)
    inv_sigma = np.exp(-log_sigma)
    eps = (z - mu) * inv_sigma
    g = np.asarray(grad, dtype=z.dtype)[..., None]
    gmu = np.broadcast_to(g * eps * inv_sigma, shape)
    gls = np.broadcast_to(g * (eps * eps - 1), shape)
    reduce = lambda v, s: _reduce_to(v, s).astype(z.dtype, copy=False)  # noqa: E731
    return (reduce(-gmu, z.shape), reduce(gmu, mu.shape), reduce(gls, log_sigma.shape))


def _check_activation(activation):
    if activation not in ACTIVATIONS:
        raise ValueError(f"unknown activation {activation!r}: expected one of {ACTIVATIONS}")


def _check_linear(x, W, b, activation):
    """Validate the arguments of ``linear`` / ``linear_backward`` of the compiled modules: float
    arrays, x (..., n) against W (n, m), b (m,); W and b are cast to x's dtype, all contiguous."""
    _check_activation(activation)
    x, W = _float_array(x, "x"), _float_array(W, "W")
    if W.ndim != 2 or x.ndim < 1 or x.shape[-1] != W.shape[0]:
        raise ValueError(f"x of shape {x.shape} does not match W of shape {W.shape}: expected "
                         f"x of shape (..., {W.shape[0] if W.ndim == 2 else 'n'}) and W (n, m)")
    W = W.astype(x.dtype, copy=False)
    if b is not None:
        b = np.ascontiguousarray(b, dtype=x.dtype)
        if b.shape != (W.shape[1],):
            raise ValueError(f"b has shape {b.shape}; expected ({W.shape[1]},)")
    return x, W, b


def _activate(y, activation):
    if activation == "tanh":
        np.tanh(y, out=y)
    elif activation == "relu":
        np.maximum(y, 0, out=y)
    elif activation == "sigmoid":
        y[...] = _num.sigmoid(y)
    return y


def linear(x, W, b, activation=None):
    r"""Affine layer over stacked samples with a fused activation.

    Parameters
    ----------
    x : ndarray, shape (..., n)
        Inputs; e.g. (K, B, n): K samples for each of B data points.
    W : ndarray, shape (n, m)
    b : ndarray, shape (m,) or None
    activation : {None, 'tanh', 'relu', 'sigmoid'}

    Returns
    -------
    y : ndarray, shape (..., m)

    Notes
    -----
    .. math::

        y = f(x W + b), \qquad f \in \{\mathrm{id}, \tanh, \max(\cdot, 0), \sigma\}.

    The leading axes are flattened, so the K x B samples go through one matrix product of
    (K B) x n by n x m: one large GEMM is much faster than K small ones.
    """
    # BEGIN EXERCISE 03: y = f(x W + b) over the flattened leading axes, in one matrix product
    _check_activation(activation)
    n = W.shape[0]
    lead = x.shape[:-1]
    y = np.matmul(x.reshape(-1, n), W)
    if b is not None:
        y += b
    return _activate(y, activation).reshape(lead + (W.shape[1],))
    # END EXERCISE 03


def activation_grad(y, grad, activation):
    r"""Gradient through the activation, from its output: :math:`g \odot f'(a)` with y = f(a).

    Uses :math:`\tanh' = 1 - y^2`, :math:`\sigma' = y(1 - y)`, :math:`\mathrm{relu}' = [y > 0]`,
    so the forward pass need only keep its output.
    """
    # BEGIN EXERCISE 03: grad times f'(a), written with the output y = f(a)
    if activation is None:
        return grad
    if activation == "tanh":
        return grad * (1 - y * y)
    if activation == "sigmoid":
        return grad * (y * (1 - y))
    return np.where(y > 0, grad, 0).astype(grad.dtype, copy=False)
    # END EXERCISE 03


def linear_backward(x, W, y, grad, activation=None, need_x_grad=True):
    r"""Backward of :func:`linear`.

    Parameters
    ----------
    x : ndarray, shape (..., n)
    W : ndarray, shape (n, m)
    y : ndarray, shape (..., m)
        The forward output (the activation's derivative is taken from it).
    grad : ndarray, shape (..., m)
        Gradient of the loss with respect to ``y``.
    activation : {None, 'tanh', 'relu', 'sigmoid'}
    need_x_grad : bool
        False skips the product for ``grad_x`` (first layer: the data need no gradient).

    Returns
    -------
    grad_x : ndarray, shape (..., n), or None
    grad_W : ndarray, shape (n, m)
    grad_b : ndarray, shape (m,)

    Notes
    -----
    With :math:`\delta = g \odot f'` (see :func:`activation_grad`), over the flattened rows:

    .. math::

        \frac{\partial}{\partial x} = \delta W^\top, \qquad
        \frac{\partial}{\partial W} = x^\top \delta, \qquad
        \frac{\partial}{\partial b} = \textstyle\sum_{\text{rows}} \delta.
    """
    # BEGIN EXERCISE 03: the gradients of x, W and b through the activation
    _check_activation(activation)
    n, m = W.shape
    x2 = x.reshape(-1, n)
    delta = activation_grad(y.reshape(-1, m), grad.reshape(-1, m), activation)
    gW = x2.T @ delta
    gb = delta.sum(axis=0, dtype=np.float64).astype(delta.dtype, copy=False)
    gx = (delta @ W.T).reshape(x.shape) if need_x_grad else None
    return gx, gW, gb
    # END EXERCISE 03


def adam_update(data, grad, m, v, lr, beta1, beta2, eps, step, weight_decay=0.0):
    r"""One Adam step for one parameter, in place (Kingma & Ba 2015, Algorithm 1).

    Parameters
    ----------
    data : ndarray
        The parameter :math:`\theta`, updated in place.
    grad : ndarray, same shape
        Its gradient :math:`\nabla_\theta f`.
    m, v : ndarray, same shape
        First and second moment estimates, updated in place.
    lr, beta1, beta2, eps : float
        :math:`\alpha, \beta_1, \beta_2, \epsilon`.
    step : int
        :math:`t \ge 1`, this parameter's step count (after incrementing).
    weight_decay : float
        :math:`\lambda`, adds :math:`\lambda\theta` to the gradient.

    Notes
    -----
    .. math::

        g &= \nabla_\theta f + \lambda\theta, \quad
        m \leftarrow \beta_1 m + (1 - \beta_1) g, \quad
        v \leftarrow \beta_2 v + (1 - \beta_2) g^2, \\
        \theta &\leftarrow \theta - \alpha\, \frac{m / (1 - \beta_1^t)}
        {\sqrt{v / (1 - \beta_2^t)} + \epsilon},

    in the parameter's dtype, in this order (as :class:`scratchdgm.optim.Adam`). At K = 1 the
    optimiser is about half of an IWAE training step: the compiled version does it in one pass
    over memory instead of a dozen NumPy passes.
    """
    # BEGIN EXERCISE 04: the moments, their bias correction and the step, all in place
    if weight_decay:
        grad = grad + weight_decay * data
    m *= beta1
    m += (1.0 - beta1) * grad
    v *= beta2
    v += (1.0 - beta2) * (grad * grad)
    m_hat = m / (1.0 - beta1 ** step)
    v_hat = v / (1.0 - beta2 ** step)
    data -= lr * m_hat / (np.sqrt(v_hat) + eps)
    # END EXERCISE 04


#: 2^-32 and 2^-53: the spacing of the uniforms :func:`box_muller` makes from 32 and 53 bits.
_U32, _U53 = 2.0 ** -32, 2.0 ** -53

#: SplitMix64 (Steele, Lea & Flood 2014): the Weyl increment (the odd integer nearest
#: 2^64 / golden ratio) and the two multipliers of its output mix.
SPLITMIX_GAMMA = 0x9E3779B97F4A7C15
SPLITMIX_M1, SPLITMIX_M2 = 0xBF58476D1CE4E5B9, 0x94D049BB133111EB


def splitmix64(seed, m):
    r"""The first ``m`` outputs of the SplitMix64 generator started at ``seed``: uint64, (m,).

    Word j (from 0) is :math:`\mathrm{mix}(s + (j + 1)\gamma \bmod 2^{64})` with
    :math:`\gamma` = :data:`SPLITMIX_GAMMA` and the mix
    :math:`z \leftarrow (z \oplus (z \gg 30))\, M_1`, :math:`z \leftarrow (z \oplus (z \gg
    27))\, M_2`, :math:`z \oplus (z \gg 31)` -- a bijection of 64-bit words that passes the
    BigCrush battery on this counter (Steele, Lea & Flood 2014, *Fast splittable pseudorandom
    number generators*, OOPSLA; Java's ``SplittableRandom``). Word j depends on j alone, so a
    compiled kernel computes the words where it needs them, in any order, on any thread.
    """
    j = np.arange(1, int(m) + 1, dtype=np.uint64)
    z = np.uint64(seed) + j * np.uint64(SPLITMIX_GAMMA)    # arrays: wraps modulo 2^64
    z = (z ^ (z >> np.uint64(30))) * np.uint64(SPLITMIX_M1)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(SPLITMIX_M2)
    return z ^ (z >> np.uint64(31))


def box_muller(seed, n, dtype):
    r"""``n`` standard normal draws from a 64-bit seed: SplitMix64 words, the Box--Muller
    transform.

    Parameters
    ----------
    seed : int in [0, 2^64)
        Where the stream starts (the caller draws it from its generator:
        :func:`scratchdgm.autodiff.fused.box_muller_normal`).
    n : int >= 0
        How many draws.
    dtype : float32 or float64

    Returns
    -------
    z : ndarray, shape (n,)
        Independent :math:`\mathcal N(0, 1)` draws, in pairs: with P = ceil(n / 2) pairs, the
        cosine halves of pairs 0..P-1 come first, then the sine halves (the last one dropped
        when n is odd).

    Notes
    -----
    Box & Muller (1958): with :math:`u_1, u_2` independent and uniform on (0, 1),

    .. math::

        z_1 = \sqrt{-2\log u_1}\,\cos(2\pi u_2), \qquad
        z_2 = \sqrt{-2\log u_1}\,\sin(2\pi u_2)

    are independent standard normals (the radius :math:`r = \sqrt{-2\log u_1}` of a 2-D standard
    normal has :math:`P(r > t) = e^{-t^2/2}`, and its angle is uniform). The uniforms come from
    the words of :func:`splitmix64`: in float32, pair i takes :math:`u_1` from the high and
    :math:`u_2` from the low 32 bits of word i; in float64, from the top 53 bits of words 2i and
    2i + 1. A b-bit integer m gives the midpoint :math:`u = (m + \tfrac12)\,2^{-b}` of its cell,
    never 0, so the logarithm is finite and the largest radius is :math:`\sqrt{2(b+1)\log 2}`:
    6.7 standard deviations in float32, 8.6 in float64 (the normal's tails beyond hold
    :math:`2\times10^{-11}` and :math:`10^{-17}`). (At b = 53 the top cell's midpoint rounds to
    1, a radius of 0, with probability :math:`2^{-53}`.) Computed in float64, rounded once to
    ``dtype``.

    Why not ``Generator.standard_normal``? NumPy's ziggurat draws one number at a time (about
    9 ns each on the project's machine), and the evaluation at K = 5000 needs 250,000 draws per
    image. Here every draw is the same arithmetic, with no branch and no state carried from one
    to the next, so the compiled kernel runs it 8 lanes at a time and on every thread.
    """
    dtype = _check_draw_dtype(dtype)
    n = _check_draw_count(n)
    seed = _check_seed(seed)
    pairs = (n + 1) // 2
    if dtype == np.float32:
        w = splitmix64(seed, pairs)
        u1 = ((w >> np.uint64(32)).astype(np.float64) + 0.5) * _U32
        u2 = ((w & np.uint64(0xFFFFFFFF)).astype(np.float64) + 0.5) * _U32
    else:
        w = splitmix64(seed, 2 * pairs)
        u1 = ((w[0::2] >> np.uint64(11)).astype(np.float64) + 0.5) * _U53
        u2 = ((w[1::2] >> np.uint64(11)).astype(np.float64) + 0.5) * _U53
    r = np.sqrt(-2.0 * np.log(u1))
    theta = 2.0 * np.pi * u2
    return np.concatenate([r * np.cos(theta), r * np.sin(theta)])[:n].astype(dtype)


def _check_draw_dtype(dtype):
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise TypeError(f"box_muller draws float32 or float64, got dtype {dtype}")
    return dtype


def _check_draw_count(n):
    if isinstance(n, (bool, np.bool_)) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"box_muller: n must be an int >= 0 (how many draws), got {n!r}")
    return int(n)


def _check_seed(seed):
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)) \
            or not 0 <= int(seed) < 2 ** 64:
        raise ValueError(f"box_muller: seed must be an int in [0, 2**64), got {seed!r}")
    return int(seed)
