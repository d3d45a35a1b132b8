r"""numba.cuda kernels for the hot paths of the IWAE objective (backend ``'cuda'``).

Same functions, signatures and semantics as :mod:`scratchdgm.kernels.reference` (the
mathematics is documented there). Each host function copies its NumPy inputs to the device,
launches, and copies the result back, so it can stand in for the CPU kernels under the autodiff;
the ``@cuda.jit`` kernels themselves (``_lse_kernel`` ...) can be launched on device arrays by
code that keeps its data on the GPU.

Device launchers. Each ``launch_*`` function starts one kernel on arrays already on the device
(what the host functions do between their copies in and out): code that keeps its data on the
GPU calls them, and ``scratchdgm bench gpu`` times them against the memory bandwidth.

This module imports ``numba.cuda``; it is itself imported only when the ``cuda`` backend is
first used (:mod:`scratchdgm.kernels` loads it lazily), and its kernels compile on first launch.
Under ``NUMBA_ENABLE_CUDASIM=1`` (set before numba.cuda is first imported) they run in numba's
CUDA simulator, which is how the tests check them without a GPU.

Thread layouts
--------------
* **log-sum-exp over K** of a row-major (K, B) array: blocks of 32 x 8 threads. ``threadIdx.x``
  indexes 32 consecutive columns, so each warp reads 32 adjacent elements of a row -- one
  coalesced 128/256-byte transaction -- whereas a thread per column walking down K, or a block
  per column, would read addresses B elements apart. ``threadIdx.y`` splits K eight ways: each
  thread keeps an online (running maximum, rescaled sum) pair over its rows (one exponential
  per element), and the eight pairs of a column are combined by a shared-memory tree reduction
  in three steps. One block covers 32 columns; the grid covers B.
* **Bernoulli log-likelihood** (and the Gaussian): one block per (k, b) row; its threads stride
  over the pixels (coalesced along the contiguous axis), each accumulates a partial sum, and a
  shared-memory tree reduction adds them. 128 threads per block for the D = 784 pixels, 32 for
  the latent dimension.
* **linear layer**: a classic 16 x 16 shared-memory tiled matrix product over the K B stacked
  rows, with the bias and activation applied in the epilogue, before the single store of each
  output (the fused alternative that is not worth it on the CPU is natural here: no BLAS to
  compete with). The backward uses the same kernel with transposed operands.
* Elementwise backward passes: 2-D grids of 16 x 16 threads.
* Box--Muller: one thread per pair of draws, 256 threads a block.

Reductions accumulate in float64, as in the reference.
"""

import math
import warnings

import numpy as np
from numba import cuda, float64

from . import reference as _ref

__all__ = list(_ref.__all__)

ACTIVATIONS = _ref.ACTIVATIONS
_ACT_CODE = _ref.ACTIVATION_CODES

LSE_TX, LSE_TY = 32, 8       # log-sum-exp block: columns x row-slices
ROW_THREADS = 128            # threads per row for the Bernoulli reduction
GAUSS_THREADS = 32           # threads per row for the Gaussian reduction
TILE = 16                    # GEMM tile
EW = 16                      # elementwise 2-D block side


_float_array = _ref._float_array  # shared validation (reference.py)


def _cdiv(a, b):
    return (a + b - 1) // b


# ------------------------------------------------------------------------- device helpers
@cuda.jit(device=True)
def _rescale(s, mi, m):
    # s * exp(mi - m) for a partial sum taken with shift mi, re-expressed with shift m >= mi.
    # An empty partial (mi = -inf) contributes s * 0 (which keeps a NaN flag).
    if mi == m:
        return s
    if mi > -math.inf:
        return s * math.exp(mi - m)
    return s * 0.0


@cuda.jit(device=True)
def _lse_finish(m, s):
    if s != s:
        return math.nan
    if m == -math.inf:
        return -math.inf
    if m == math.inf:
        return math.inf
    return m + math.log(s)


# ------------------------------------------------------------------------- log-sum-exp
@cuda.jit
def _lse_kernel(a, out):
    # BEGIN EXERCISE 14: each thread an online (max, sum) over its rows, then a tree over ty
    K, B = a.shape
    tx, ty = cuda.threadIdx.x, cuda.threadIdx.y
    b = cuda.blockIdx.x * LSE_TX + tx
    sm = cuda.shared.array((LSE_TY, LSE_TX), float64)
    ss = cuda.shared.array((LSE_TY, LSE_TX), float64)
    m = -math.inf
    s = 0.0
    if b < B:
        # Online log-sum-exp over this thread's rows ty, ty + 8, ...: one exp per element.
        for k in range(ty, K, LSE_TY):
            v = float64(a[k, b])
            if v != v:
                s = math.nan
            elif v > m:
                s = _rescale(s, m, v) + 1.0
                m = v
            elif v > -math.inf and m < math.inf:
                s += math.exp(v - m)
    sm[ty, tx] = m
    ss[ty, tx] = s
    cuda.syncthreads()
    stride = LSE_TY // 2
    while stride > 0:
        if ty < stride:
            m1, m2 = sm[ty, tx], sm[ty + stride, tx]
            mm = max(m1, m2)
            ss[ty, tx] = _rescale(ss[ty, tx], m1, mm) + _rescale(ss[ty + stride, tx], m2, mm)
            sm[ty, tx] = mm
        cuda.syncthreads()
        stride //= 2
    if ty == 0 and b < B:
        out[b] = _lse_finish(sm[0, tx], ss[0, tx])
    # END EXERCISE 14


@cuda.jit
def _lse_backward_kernel(a, lse, grad, out, flush):
    K, B = a.shape
    k, b = cuda.grid(2)
    if k < K and b < B:
        v = lse[b]
        if v > -math.inf and v < math.inf:
            x = a[k, b] - v
            # tiny weights flush to 0 (reference.WEIGHT_FLUSH_LOG)
            out[k, b] = grad[b] * math.exp(x) if x >= flush else 0.0
        else:
            out[k, b] = 0.0 if v == -math.inf else grad[b] * math.exp(a[k, b]) * 0.0


def logsumexp(a):
    r"""Log-sum-exp over axis 0 of a (K, B) array on the GPU: blocks of 32 columns x 8
    threads down K, each thread an online max/rescale sum, then a shared-memory tree over the
    8 partial sums (module docstring). Contract of
    :func:`scratchdgm.kernels.reference.logsumexp`.
    """
    # BEGIN EXERCISE 14: copy to the device, launch _lse_kernel on a grid covering B, copy back
    a = _float_array(a, "a")
    if a.ndim != 2 or a.shape[0] < 1:
        raise ValueError(f"logsumexp expects an array of shape (K, B) with K >= 1, got {a.shape}")
    K, B = a.shape
    out = cuda.device_array(B, dtype=a.dtype)
    launch_logsumexp(cuda.to_device(a), out)
    return out.copy_to_host()
    # END EXERCISE 14


def launch_logsumexp(a, out):
    r"""Launch the log-sum-exp kernel on device arrays: ``a`` (K, B), ``out`` (B,)."""
    if a.shape[1]:
        _lse_kernel[_cdiv(a.shape[1], LSE_TX), (LSE_TX, LSE_TY)](a, out)


def logsumexp_backward(a, lse, grad):
    r"""The normalised importance weights times the incoming gradient, one thread per entry;
    contract of :func:`scratchdgm.kernels.reference.logsumexp_backward`.
    """
    a = _float_array(a, "a")
    out = cuda.device_array(a.shape, dtype=a.dtype)
    launch_logsumexp_backward(cuda.to_device(a),
                              cuda.to_device(np.ascontiguousarray(lse, a.dtype)),
                              cuda.to_device(np.ascontiguousarray(grad, a.dtype)), out)
    return out.copy_to_host()


def launch_logsumexp_backward(a, lse, grad, out):
    r"""Launch the log-sum-exp backward kernel on device arrays: ``a`` and ``out`` (K, B),
    ``lse`` and ``grad`` (B,)."""
    K, B = a.shape
    if K * B:
        _lse_backward_kernel[(_cdiv(K, EW), _cdiv(B, EW)), (EW, EW)](
            a, lse, grad, out, float(_ref.WEIGHT_FLUSH_LOG[np.dtype(a.dtype).type]))


# ------------------------------------------------------------------------- Bernoulli
@cuda.jit(device=True)
def _block_sum(buf, t, n_threads):
    # Shared-memory tree reduction of buf[0:n_threads] (a power of two) into buf[0].
    cuda.syncthreads()
    stride = n_threads // 2
    while stride > 0:
        if t < stride:
            buf[t] += buf[t + stride]
        cuda.syncthreads()
        stride //= 2


@cuda.jit
def _bernoulli_kernel(l, x, out, dl, want_grad):
    K, B, D = l.shape
    row = cuda.blockIdx.x
    t = cuda.threadIdx.x
    k = row // B
    b = row - k * B
    buf = cuda.shared.array(ROW_THREADS, float64)
    acc = 0.0
    if row < K * B:
        for j in range(t, D, ROW_THREADS):
            v = l[k, b, j]
            e = math.exp(-abs(v))
            acc += x[b, j] * v - (max(v, 0.0) + math.log1p(e))
            if want_grad:
                q = 1.0 / (1.0 + e)
                dl[k, b, j] = x[b, j] - (q if v >= 0 else e * q)
    buf[t] = acc
    _block_sum(buf, t, ROW_THREADS)
    if t == 0 and row < K * B:
        out[k, b] = buf[0]


def _bernoulli_args(logits, x):
    logits = _float_array(logits, "logits")
    x = np.ascontiguousarray(x, dtype=logits.dtype)
    _ref._check_bernoulli(logits, x)
    B, D = x.shape
    return logits.reshape(-1, B, D), x, logits.shape[:-1]


def _bernoulli(logits, x, want_grad):
    l3, x, lead = _bernoulli_args(logits, x)
    K, B, D = l3.shape
    out = cuda.device_array((K, B), dtype=l3.dtype)
    dl = cuda.device_array(l3.shape if want_grad else (1, 1, 1), dtype=l3.dtype)
    launch_bernoulli(cuda.to_device(l3), cuda.to_device(x), out, dl, want_grad)
    return out.copy_to_host().reshape(lead), (dl.copy_to_host() if want_grad else None)


def launch_bernoulli(logits, x, out, dl, want_grad):
    r"""Launch the Bernoulli kernel on device arrays: ``logits`` (K, B, D), ``x`` (B, D),
    ``out`` (K, B), ``dl`` (K, B, D) when ``want_grad`` (else any array)."""
    K, B = out.shape
    if K * B:
        _bernoulli_kernel[K * B, ROW_THREADS](logits, x, out, dl, want_grad)


def bernoulli_log_prob(logits, x):
    r"""Bernoulli log-likelihood from logits, one block of threads per (k, b) row reducing over
    the D pixels; contract of :func:`scratchdgm.kernels.reference.bernoulli_log_prob`.
    """
    return _bernoulli(logits, x, False)[0]


def bernoulli_log_prob_with_grad(logits, x):
    r"""The Bernoulli log-likelihood and :math:`x - \sigma(\ell)` from the same kernel;
    contract of :func:`scratchdgm.kernels.reference.bernoulli_log_prob_with_grad`.
    """
    out, dl = _bernoulli(logits, x, True)
    return out, dl.reshape(np.shape(logits))


# ------------------------------------------------------------------------- diagonal Gaussian
# Broadcast axes are read at index 0: the row index times a 0/1 flag (no broadcast copies).
@cuda.jit
def _gauss_kernel(z, mu, ls, out, c):
    K, B = out.shape
    d = z.shape[2]
    row = cuda.blockIdx.x
    t = cuda.threadIdx.x
    k = row // B
    b = row - k * B
    buf = cuda.shared.array(GAUSS_THREADS, float64)
    acc = 0.0
    if row < K * B:
        kz, bz = k * min(z.shape[0] - 1, 1), b * min(z.shape[1] - 1, 1)
        km, bm = k * min(mu.shape[0] - 1, 1), b * min(mu.shape[1] - 1, 1)
        ks, bs = k * min(ls.shape[0] - 1, 1), b * min(ls.shape[1] - 1, 1)
        for j in range(t, d, GAUSS_THREADS):
            sj = ls[ks, bs, j]
            e = (z[kz, bz, j] - mu[km, bm, j]) * math.exp(-sj)
            acc += -0.5 * e * e - sj - c
    buf[t] = acc
    _block_sum(buf, t, GAUSS_THREADS)
    if t == 0 and row < K * B:
        out[k, b] = buf[0]


@cuda.jit
def _gauss_backward_kernel(z, mu, ls, grad, gz, gm, gs):
    # Full-shape (K, B, d) gradients; the host sums them over the broadcast axes.
    K, B, d = gz.shape
    r, j = cuda.grid(2)
    if r < K * B and j < d:
        k = r // B
        b = r - k * B
        sj = ls[k * min(ls.shape[0] - 1, 1), b * min(ls.shape[1] - 1, 1), j]
        inv = math.exp(-sj)
        e = (z[k * min(z.shape[0] - 1, 1), b * min(z.shape[1] - 1, 1), j]
             - mu[k * min(mu.shape[0] - 1, 1), b * min(mu.shape[1] - 1, 1), j]) * inv
        g = grad[k, b]
        gz[k, b, j] = -g * e * inv
        gm[k, b, j] = g * e * inv
        gs[k, b, j] = g * (e * e - 1.0)


def _gauss_args(z, mu, log_sigma):
    z = _float_array(z, "z")
    mu = np.ascontiguousarray(mu, dtype=z.dtype)
    log_sigma = np.ascontiguousarray(log_sigma, dtype=z.dtype)
    full = _ref._gaussian_shapes(z, mu, log_sigma)
    d = full[-1]
    arrs = [a if a.shape[-1] == d else
            np.ascontiguousarray(np.broadcast_to(a, a.shape[:-1] + (d,)))
            for a in (z, mu, log_sigma)]
    return arrs, full


def diag_gaussian_log_prob(z, mu, log_sigma):
    r"""Diagonal-Gaussian log-density, one block per (k, b) row reducing over d; contract of
    :func:`scratchdgm.kernels.reference.diag_gaussian_log_prob`.
    """
    (z3, m3, s3), full = _gauss_args(z, mu, log_sigma)
    K, B = full[:2]
    out = cuda.device_array((K, B), dtype=z3.dtype)
    launch_diag_gaussian(cuda.to_device(z3), cuda.to_device(m3), cuda.to_device(s3), out)
    return out.copy_to_host()


def launch_diag_gaussian(z, mu, log_sigma, out):
    r"""Launch the diagonal-Gaussian kernel on device arrays: ``z``, ``mu``, ``log_sigma``
    3-D with the last axis d and the others 1 or (K, B) (broadcast), ``out`` (K, B)."""
    K, B = out.shape
    if K * B:
        _gauss_kernel[K * B, GAUSS_THREADS](z, mu, log_sigma, out, float(_ref.HALF_LOG_2PI))


def diag_gaussian_log_prob_backward(z, mu, log_sigma, grad):
    r"""Elementwise gradients on the GPU, summed over broadcast axes on the host in float64;
    contract of :func:`scratchdgm.kernels.reference.diag_gaussian_log_prob_backward`.
    """
    shapes = (np.shape(z), np.shape(mu), np.shape(log_sigma))
    (z3, m3, s3), full = _gauss_args(z, mu, log_sigma)
    K, B, d = full
    g = np.ascontiguousarray(grad, dtype=z3.dtype).reshape(K, B)
    outs = [cuda.device_array(full, dtype=z3.dtype) for _ in range(3)]
    launch_diag_gaussian_backward(cuda.to_device(z3), cuda.to_device(m3), cuda.to_device(s3),
                                  cuda.to_device(g), *outs)
    result = []
    for dev, shape in zip(outs, shapes):
        full_g = dev.copy_to_host()
        axes = tuple(i for i, n in enumerate(shape) if n == 1 and full[i] != 1)
        red = full_g.sum(axis=axes, keepdims=True, dtype=np.float64) if axes else full_g
        result.append(red.astype(z3.dtype).reshape(shape))
    return tuple(result)


def launch_diag_gaussian_backward(z, mu, log_sigma, grad, gz, gm, gs):
    r"""Launch the diagonal-Gaussian backward kernel on device arrays: inputs as
    :func:`launch_diag_gaussian`, ``grad`` (K, B), the three gradients full (K, B, d)."""
    K, B, d = gz.shape
    if K * B * d:
        _gauss_backward_kernel[(_cdiv(K * B, EW), _cdiv(d, EW)), (EW, EW)](
            z, mu, log_sigma, grad, gz, gm, gs)


# --------------------------------------------------------------- reparametrised Gaussian draws
@cuda.jit
def _reparam_kernel(eps, mu, ls, z, log_q, log_p, c):
    # one thread per (k, b) row: z = mu + e^{log sigma} eps and the row sums, in float64
    K, B, d = eps.shape
    r = cuda.grid(1)
    if r < K * B:
        k = r // B
        b = r - k * B
        sq_eps = 0.0
        sq_z = 0.0
        ls_sum = 0.0
        for j in range(d):
            e = eps[k, b, j]
            sj = ls[b, j]
            v = mu[b, j] + math.exp(sj) * e
            z[k, b, j] = v
            sq_eps += e * e
            sq_z += v * v
            ls_sum += sj
        log_q[k, b] = -0.5 * sq_eps - ls_sum - c
        log_p[k, b] = -0.5 * sq_z - c


def diag_gaussian_reparam(eps, mu, log_sigma):
    r"""Reparametrised samples and their two log-densities, one thread per sample; the contract
    of :func:`scratchdgm.kernels.reference.diag_gaussian_reparam`."""
    eps, mu, log_sigma = _ref._check_reparam(eps, mu, log_sigma)
    K, B, _ = eps.shape
    z = cuda.device_array(eps.shape, dtype=eps.dtype)
    log_q = cuda.device_array((K, B), dtype=eps.dtype)
    log_p = cuda.device_array((K, B), dtype=eps.dtype)
    launch_diag_gaussian_reparam(cuda.to_device(eps), cuda.to_device(mu),
                                 cuda.to_device(log_sigma), z, log_q, log_p)
    return z.copy_to_host(), log_q.copy_to_host(), log_p.copy_to_host()


def launch_diag_gaussian_reparam(eps, mu, log_sigma, z, log_q, log_p):
    r"""Launch the reparametrisation kernel on device arrays: ``eps`` and ``z`` (K, B, d),
    ``mu`` and ``log_sigma`` (B, d), ``log_q`` and ``log_p`` (K, B)."""
    K, B, d = eps.shape
    if K * B:
        _reparam_kernel[_cdiv(K * B, 128), 128](eps, mu, log_sigma, z, log_q, log_p,
                                                d * float(_ref.HALF_LOG_2PI))


# ------------------------------------------------------------------------- linear layer
@cuda.jit(device=True)
def _activate(v, code):
    if code == 1:
        return math.tanh(v)
    if code == 2:
        return max(v, 0.0)
    if code == 3:
        return 1.0 / (1.0 + math.exp(-v))
    return v


@cuda.jit
def _gemm_kernel(A, Bm, C, trans_a, trans_b, bias, has_bias, code):
    # C (M, N) = op(A) @ op(B) (+ bias, activation), op = transpose when the flag is set.
    # 16 x 16 tiles of op(A) and op(B) are staged in shared memory; each thread computes one
    # output element, accumulating in float64.
    M, N = C.shape
    Kd = A.shape[0] if trans_a else A.shape[1]
    sA = cuda.shared.array((TILE, TILE), float64)
    sB = cuda.shared.array((TILE, TILE), float64)
    tx, ty = cuda.threadIdx.x, cuda.threadIdx.y
    row = cuda.blockIdx.y * TILE + ty
    col = cuda.blockIdx.x * TILE + tx
    acc = 0.0
    for t0 in range(0, Kd, TILE):
        ka = t0 + tx
        kb = t0 + ty
        if row < M and ka < Kd:
            sA[ty, tx] = A[ka, row] if trans_a else A[row, ka]
        else:
            sA[ty, tx] = 0.0
        if col < N and kb < Kd:
            sB[ty, tx] = Bm[col, kb] if trans_b else Bm[kb, col]
        else:
            sB[ty, tx] = 0.0
        cuda.syncthreads()
        for i in range(TILE):
            acc += sA[ty, i] * sB[i, tx]
        cuda.syncthreads()
    if row < M and col < N:
        if has_bias:
            acc += bias[col]
        C[row, col] = _activate(acc, code)


@cuda.jit
def _act_grad_kernel(y, g, delta, code):
    N, m = y.shape
    r, j = cuda.grid(2)
    if r < N and j < m:
        v = y[r, j]
        if code == 1:
            delta[r, j] = g[r, j] * (1.0 - v * v)
        elif code == 2:
            delta[r, j] = g[r, j] if v > 0 else 0.0
        elif code == 3:
            delta[r, j] = g[r, j] * (v * (1.0 - v))
        else:
            delta[r, j] = g[r, j]


def _gemm(A, Bm, trans_a, trans_b, M, N, dtype, bias=None, code=0):
    C = cuda.device_array((M, N), dtype=dtype)
    launch_gemm(A, Bm, C, trans_a, trans_b, bias, code)
    return C


def launch_gemm(A, Bm, C, trans_a=False, trans_b=False, bias=None, code=0):
    r"""Launch the tiled GEMM on device arrays: ``C (M, N) = act(op(A) @ op(Bm) + bias)``,
    op a transpose when its flag is set, act the activation of code ``code`` (0: none)."""
    M, N = C.shape
    if M and N:
        b = bias if bias is not None else cuda.device_array(1, dtype=C.dtype)
        _gemm_kernel[(_cdiv(N, TILE), _cdiv(M, TILE)), (TILE, TILE)](
            A, Bm, C, trans_a, trans_b, b, bias is not None, code)


_check_linear = _ref._check_linear  # shared validation (reference.py)


def linear(x, W, b, activation=None):
    r"""Affine layer over stacked samples with a fused activation: :math:`y = f(xW + b)`.

    One tiled GEMM over the (K B) x n stacked rows, bias and activation applied in the
    kernel's epilogue (see the module docstring). Signature and semantics as
    :func:`scratchdgm.kernels.reference.linear`.
    """
    x, W, b = _check_linear(x, W, b, activation)
    n, m = W.shape
    x2 = x.reshape(-1, n)
    C = _gemm(cuda.to_device(x2), cuda.to_device(W), False, False, x2.shape[0], m, x.dtype,
              None if b is None else cuda.to_device(b), _ACT_CODE[activation])
    return C.copy_to_host().reshape(x.shape[:-1] + (m,))


def linear_backward(x, W, y, grad, activation=None, need_x_grad=True):
    r"""Backward of :func:`linear`: the activation's derivative in one elementwise kernel, then
    two tiled GEMMs for :math:`\bar W` and :math:`\bar x`; contract of
    :func:`scratchdgm.kernels.reference.linear_backward`.
    """
    x, W, _ = _check_linear(x, W, None, activation)
    n, m = W.shape
    x2 = x.reshape(-1, n)
    N = x2.shape[0]
    y2 = np.ascontiguousarray(y, dtype=x.dtype).reshape(N, m)
    g2 = np.ascontiguousarray(grad, dtype=x.dtype).reshape(N, m)
    delta = cuda.device_array((N, m), dtype=x.dtype)
    launch_activation_grad(cuda.to_device(y2), cuda.to_device(g2), delta,
                           _ACT_CODE[activation])
    dW = cuda.to_device(W)
    gW = _gemm(cuda.to_device(x2), delta, True, False, n, m, x.dtype).copy_to_host()
    gx = None
    if need_x_grad:
        gx = _gemm(delta, dW, False, True, N, n, x.dtype).copy_to_host().reshape(x.shape)
    # the bias gradient is a column sum: done on the host, in float64, from the copied delta
    gb = delta.copy_to_host().sum(axis=0, dtype=np.float64).astype(x.dtype)
    return gx, gW, gb


def launch_activation_grad(y, grad, delta, code):
    r"""Launch the activation-derivative kernel on device arrays (N, m): ``delta = grad *
    act'(y)``, written through the activation's output ``y``."""
    N, m = y.shape
    if N and m:
        _act_grad_kernel[(_cdiv(N, EW), _cdiv(m, EW)), (EW, EW)](y, grad, delta, code)


# ------------------------------------------------------------------------- Adam
@cuda.jit
def _adam_kernel(data, grad, m, v, lr, b1, b2, c1, c2, eps, wd):
    i = cuda.grid(1)
    if i < data.size:
        g = grad[i] + wd * data[i]
        mi = b1 * m[i] + (1.0 - b1) * g
        vi = b2 * v[i] + (1.0 - b2) * (g * g)
        m[i] = mi
        v[i] = vi
        data[i] -= lr * (mi / c1) / (math.sqrt(vi / c2) + eps)


def adam_update(data, grad, m, v, lr, beta1, beta2, eps, step, weight_decay=0.0):
    r"""One Adam step, one thread per element, host arrays updated in place; the arithmetic of
    :func:`scratchdgm.kernels.reference.adam_update`.
    """
    # Host arrays in place: copy in, one thread per element, copy back.
    flat = [np.ascontiguousarray(a, dtype=data.dtype).reshape(-1) for a in (data, grad, m, v)]
    dev = [cuda.to_device(a) for a in flat]
    launch_adam(*dev, lr, beta1, beta2, eps, step, weight_decay)
    for host, d in ((data, dev[0]), (m, dev[2]), (v, dev[3])):
        host.reshape(-1)[...] = d.copy_to_host()


def launch_adam(data, grad, m, v, lr, beta1, beta2, eps, step, weight_decay=0.0):
    r"""Launch the Adam kernel on flat device arrays (updated in place on the device)."""
    n = data.size
    if n:
        _adam_kernel[_cdiv(n, 256), 256](data, grad, m, v, lr, beta1, beta2,
                                         1.0 - beta1 ** step, 1.0 - beta2 ** step, eps,
                                         weight_decay)


# ------------------------------------------------------------------------- Box-Muller
_GAMMA = np.uint64(_ref.SPLITMIX_GAMMA)
_M1, _M2 = np.uint64(_ref.SPLITMIX_M1), np.uint64(_ref.SPLITMIX_M2)
_S11, _S27, _S30, _S31, _S32 = (np.uint64(k) for k in (11, 27, 30, 31, 32))
_LOW32 = np.uint64(0xFFFFFFFF)
_U32, _U53 = _ref._U32, _ref._U53


@cuda.jit(device=True)
def _splitmix64(seed, j):
    # word j of reference.splitmix64 (uint64 arithmetic, wrapping)
    z = seed + (np.uint64(j) + np.uint64(1)) * _GAMMA
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


@cuda.jit
def _box_muller_kernel(seed, out, pairs, wide):
    i = cuda.grid(1)
    if i < pairs:
        if wide:
            u1 = (float64(_splitmix64(seed, 2 * i) >> _S11) + 0.5) * _U53
            u2 = (float64(_splitmix64(seed, 2 * i + 1) >> _S11) + 0.5) * _U53
        else:
            w = _splitmix64(seed, i)
            u1 = (float64(w >> _S32) + 0.5) * _U32
            u2 = (float64(w & _LOW32) + 0.5) * _U32
        r = math.sqrt(-2.0 * math.log(u1))
        theta = 2.0 * math.pi * u2
        out[i] = r * math.cos(theta)
        if pairs + i < out.size:
            out[pairs + i] = r * math.sin(theta)


def box_muller(seed, n, dtype):
    r"""``n`` standard normal draws from a 64-bit seed, one thread per pair, the random words
    computed on the device; the contract of :func:`scratchdgm.kernels.reference.box_muller`."""
    dtype = _ref._check_draw_dtype(dtype)
    n = _ref._check_draw_count(n)
    seed = _ref._check_seed(seed)
    out = cuda.device_array(n, dtype=dtype)
    launch_box_muller(seed, out)
    return out.copy_to_host()


def launch_box_muller(seed, out):
    r"""Launch the Box--Muller kernel: fill the device array ``out`` (float32 or float64) with
    the draws of :func:`scratchdgm.kernels.reference.box_muller` ``(seed, out.size, .)``."""
    pairs = (out.size + 1) // 2
    if pairs:
        # numba's CUDA simulator runs the kernel on NumPy scalars, whose wrapping uint64
        # products warn; on a device they wrap silently, as intended
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "overflow encountered", RuntimeWarning)
            _box_muller_kernel[_cdiv(pairs, 256), 256](np.uint64(seed), out, pairs,
                                                       out.dtype == np.float64)
