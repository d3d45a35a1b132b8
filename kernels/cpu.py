r"""Numba CPU kernels for the hot paths of the IWAE objective (backend ``'numba'``).

Same functions, signatures and semantics as :mod:`scratchdgm.kernels.reference` (read that
module for the mathematics); this one makes them fast:

* **log-sum-exp over K** -- one read of the array from memory: rows are processed in tiles
  (see ``_lse_tiles``) whose maximum is computed first, streaming from memory, while the
  exponentials of the previous tile are summed from the cache; the running sum is rescaled by
  :math:`e^{m_{old} - m_{new}}` when the maximum grows (the "online" log-sum-exp, Milakov &
  Gimelshein 2018). The exponentials are the vectorised ones of
  :mod:`scratchdgm.kernels._vmath`. Column blocks are independent and run in parallel
  (``prange``).
* **Bernoulli log-likelihood** -- one pass computing ``x*l - softplus(l)`` and, when a gradient
  is wanted, ``x - sigmoid(l)`` from the same exponential.
* **diagonal Gaussian** -- one pass; broadcast axes of mu / log_sigma are read with zero stride
  (no broadcast copy), and their gradients are accumulated directly at their own shape.
* **linear layer** -- see :func:`linear`: one BLAS GEMM over the K*B stacked rows, and the
  bias and activation (or, backward, the activation's derivative and the bias gradient) fused
  into a single Numba pass over the output.

Compilation is lazy: nothing compiles at import; each kernel compiles for float32 or float64 on
its first call with such arrays. Measured: the first IWAE training step in a fresh process takes
about 8 s (all kernels of one dtype), the test suite spends about 19 s compiling (the conftest
prints the figure). Set ``SCRATCHDGM_NUMBA_CACHE=1`` to keep the compiled code on disk (Numba's
``cache=True``) across processes: the first step then takes 0.25 s. It is off by default
because Numba checks only this file's timestamp: after editing ``_vmath.py`` or
``reference.py`` a stale cache would keep running the old code (delete ``kernels/__pycache__``).
``NUMBA_DISABLE_JIT=1`` runs the same kernels as plain Python (slow, but steppable in a
debugger).

References
----------
Burda, Grosse & Salakhutdinov (2016), *Importance weighted autoencoders*, eq. 8 and 14.
Milakov & Gimelshein (2018), *Online normalizer calculation for softmax*, arXiv:1805.02867,
algorithm 3 (the running-max rescaling used by :func:`logsumexp`).
"""

import os

import numpy as np
import numba
from numba import njit, prange

from . import reference as _ref
from ._vmath import vexp, vexp_nonpos, vlog, vlog1p_unit, vsigmoid, vtanh

__all__ = list(_ref.__all__)

ACTIVATIONS = _ref.ACTIVATIONS
_ACT_CODE = {None: 0, "tanh": 1, "relu": 2, "sigmoid": 3}

_CACHE = os.environ.get("SCRATCHDGM_NUMBA_CACHE", "").strip().lower() in ("1", "true", "yes")


def _prefer_512bit_vectors():
    r"""Let LLVM use 512-bit vectors on AVX-512 CPUs; returns whether it is in effect.

    LLVM's tuning for recent Intel cores prefers 256-bit vectors (AVX-512 once lowered the
    clock of older Xeons), so Numba code uses half of the machine's vector width. Our
    kernels are arithmetic-bound (the exponential is a degree-10 polynomial), and on this
    machine 512-bit vectors make the log-sum-exp about 1.5x faster. Numba reads the target
    features once, when it first compiles anything in the process; if nothing has been
    compiled yet, this adds ``-prefer-256-bit`` to them (for every Numba function of the
    process, not just ours). Nothing is changed when the user has set ``NUMBA_CPU_FEATURES``
    or ``NUMBA_CPU_NAME``, when Numba has already compiled something, or when
    ``SCRATCHDGM_NUMBA_AVX512=0``.
    """
    from numba.core import config
    from numba.core.registry import cpu_target

    if config.CPU_FEATURES is not None:
        return "-prefer-256-bit" in config.CPU_FEATURES
    if (os.environ.get("SCRATCHDGM_NUMBA_AVX512", "1").strip() == "0"
            or config.CPU_NAME is not None or config.DISABLE_JIT
            or "_toplevel_target_context" in vars(cpu_target)):
        return False
    import llvmlite.binding as ll

    features = ll.get_host_cpu_features()
    if not features.get("avx512f", False):
        return False
    config.CPU_FEATURES = features.flatten() + ",-prefer-256-bit"
    return True


#: Whether the kernels compile with 512-bit vectors (see :func:`_prefer_512bit_vectors`).
WIDE_VECTORS = _prefer_512bit_vectors()

# error_model='numpy': a division by zero gives inf/nan instead of raising, which removes the
# per-element branch that would stop LLVM from vectorising the loops.
# fastmath: 'contract' lets LLVM fuse a*b + c into FMAs; 'reassoc' lets it vectorise the
# reductions (sums over pixels / latent dimensions) by keeping several partial sums.
# The elementary functions in _vmath keep their own flags (no 'reassoc'), which they need.
_JIT = dict(cache=_CACHE, error_model="numpy", fastmath={"contract", "reassoc"}, nogil=True)
_JIT_PAR = dict(_JIT, parallel=True)


def _lse_tiles(K, B):
    """Tile of the log-sum-exp: W columns by R rows, about 16K elements (128 KiB of float64,
    re-read from the L2 cache). Whole rows when they are short enough (one sequential stream
    for the hardware prefetcher), else blocks of 512 columns."""
    W = B if B <= 4096 else 512
    R = max(2, min(64, 16384 // max(W, 1)))
    return max(W, 1), R


# --------------------------------------------------------------------------- validation
def _float_array(a, name):
    a = np.asarray(a)
    if a.dtype not in (np.float32, np.float64):
        raise TypeError(f"{name} has dtype {a.dtype}: expected float32 or float64")
    return np.ascontiguousarray(a)


def _same(a, dtype):
    return np.ascontiguousarray(a, dtype=dtype)


# --------------------------------------------------------------------------- log-sum-exp
@njit(**_JIT)
def _lse_tile_max(a, j0, j1, k0, k1, cm):
    # cm[j] <- max(cm[j], a[k0:k1, j0 + j]), NaN-sticky (a NaN makes the column's result NaN).
    w = j1 - j0
    for k in range(k0, k1):
        # Index slices from 0: Numba then knows the index is non-negative, omits the
        # negative-index wrap-around, and LLVM vectorises the loop.
        row = a[k, j0:j1]
        for j in range(w):
            v = row[j]
            c = cm[j]
            cm[j] = v if (v > c or v != v) else c  # a select: vectorises, a branch would not


@njit(**_JIT)
def _lse_rescale(cm, m, sh, s, w):
    # New maximum cm: re-express the running sum with the new shift. Selects, not branches:
    # the factor is exp(old shift - new shift) <= 1; an empty sum stays 0 (which also avoids
    # 0 * inf when the old shift was the placeholder 0 of an all -inf column).
    for j in range(w):
        c = cm[j]
        new = c if ((c > -np.inf and c < np.inf) or c != c) else sh[j]
        f = vexp(sh[j] - new)
        s[j] = s[j] * f if s[j] > 0.0 else 0.0
        sh[j] = new
        m[j] = c


@njit(**_JIT)
def _lse_blocks(a, out, b0, b1, W, R):
    # Column blocks b0..b1-1 (W columns each) of a (K, B), one after the other; writes out.
    #   out_j = m_j + log sum_k exp(a_kj - m_j),  m_j the column maximum.
    # Rows go in tiles of R. A tile's maximum is known before its exponentials are summed
    # (the shift is always the running maximum), and the loop summing the exponentials of a
    # tile -- re-read from the cache -- also computes the maximum of the *next* tile (the next
    # rows, or the first rows of the next column block), streaming it from memory: arithmetic
    # and memory traffic overlap in one loop, and the array is read from memory once.
    K, B = a.shape
    m = np.empty(W, dtype=a.dtype)    # running maximum (NaN once a NaN is seen)
    sh = np.empty(W, dtype=a.dtype)   # shift: m where finite, else 0
    s = np.empty(W, dtype=np.float64)  # sum of exp(a - sh), in float64
    cm = np.empty(W, dtype=a.dtype)   # maximum including the next tile of this block
    cn = np.empty(W, dtype=a.dtype)   # maximum of the next block's first tile
    for j in range(W):
        cn[j] = -np.inf
    _lse_tile_max(a, b0 * W, min(b0 * W + W, B), 0, min(R, K), cn)
    for ib in range(b0, b1):
        j0 = ib * W
        j1 = min(j0 + W, B)
        w = j1 - j0
        for j in range(w):
            m[j] = -np.inf
            sh[j] = 0.0
            s[j] = 0.0
            cm[j] = cn[j]
        _lse_rescale(cm, m, sh, s, w)
        # the block after this one (its first tile's maximum goes to cn)
        n0 = min(j1, B) if ib + 1 < b1 else j1
        n1 = min(n0 + W, B) if ib + 1 < b1 else j1
        wn = n1 - n0
        for j in range(wn):
            cn[j] = -np.inf
        k0 = 0
        while k0 < K:
            k1 = min(k0 + R, K)
            last = k1 == K
            k2 = min(k1 + R, K) if not last else min(R, K)
            for r in range(k1 - k0):
                row = a[k0 + r, j0:j1]
                if not last and k1 + r < k2:
                    nxt = a[k1 + r, j0:j1]
                    for j in range(w):
                        v = nxt[j]
                        c = cm[j]
                        cm[j] = v if (v > c or v != v) else c
                        # argument <= 0 (or -inf, or NaN): the cheaper exponential, whose
                        # -inf gives ~1e-307 instead of 0, invisible next to the maximum's 1
                        s[j] += vexp_nonpos(row[j] - sh[j])
                elif last and wn > 0 and r < k2:
                    # same loop, the next tile being the next block's first rows; the two
                    # blocks may differ in width (the last one is narrower)
                    nxt = a[r, n0:n1]
                    for j in range(min(w, wn)):
                        v = nxt[j]
                        c = cn[j]
                        cn[j] = v if (v > c or v != v) else c
                        s[j] += vexp_nonpos(row[j] - sh[j])
                    for j in range(wn, w):
                        s[j] += vexp_nonpos(row[j] - sh[j])
                    for j in range(w, wn):
                        v = nxt[j]
                        c = cn[j]
                        cn[j] = v if (v > c or v != v) else c
                else:
                    for j in range(w):
                        s[j] += vexp_nonpos(row[j] - sh[j])
            if not last:
                _lse_rescale(cm, m, sh, s, w)
            elif wn > 0 and k1 - k0 < k2:
                # this tile was shorter than the next block's first: finish that maximum
                _lse_tile_max(a, n0, n1, k1 - k0, k2, cn)
            k0 = k1
        o = out[j0:j1]
        for j in range(w):
            # selects, so that the logarithms vectorise (B of them: 10% of the time at K = 50)
            mj = m[j]
            v = sh[j] + vlog(s[j])  # s >= 1 where m is finite; a NaN m makes sh NaN
            v = -np.inf if mj == -np.inf else v  # all -inf: no mass
            o[j] = np.inf if mj == np.inf else v


@njit(**_JIT_PAR)
def _lse_kernel(a, out, W, R, n_chunks):
    # n_chunks contiguous runs of column blocks, one per thread (prange).
    B = a.shape[1]
    nblk = (B + W - 1) // W
    for c in prange(n_chunks):
        b0 = c * nblk // n_chunks
        b1 = (c + 1) * nblk // n_chunks
        if b1 > b0:
            _lse_blocks(a, out, b0, b1, W, R)


@njit(**_JIT_PAR)
def _lse_backward_kernel(a, lse, grad, out, flush):
    K, B = a.shape
    zero = flush - flush
    nblk = (B + 511) // 512
    for ib in prange(nblk):
        j0 = ib * 512
        j1 = min(j0 + 512, B)
        w = j1 - j0
        sh = np.empty(w, dtype=a.dtype)
        g = np.empty(w, dtype=a.dtype)
        lb, gb = lse[j0:j1], grad[j0:j1]
        for j in range(w):
            v = lb[j]
            finite = v > -np.inf and v < np.inf
            # A column with log-sum-exp -inf has no mass, hence zero gradient.
            sh[j] = v if finite else 0.0
            g[j] = gb[j] if finite else 0.0
        for k in range(K):
            ak = a[k, j0:j1]
            ok = out[k, j0:j1]
            for j in range(w):
                x = ak[j] - sh[j]
                # tiny weights flush to 0 (reference.WEIGHT_FLUSH_LOG: no subnormals later)
                ok[j] = g[j] * vexp(x) if x >= flush else zero


def logsumexp(a):
    a = _float_array(a, "a")
    if a.ndim != 2 or a.shape[0] < 1:
        raise ValueError(f"logsumexp expects an array of shape (K, B) with K >= 1, got {a.shape}")
    out = np.empty(a.shape[1], dtype=a.dtype)
    W, R = _lse_tiles(*a.shape)
    _lse_kernel(a, out, W, R, max(1, numba.get_num_threads()))
    return out


def logsumexp_backward(a, lse, grad):
    a = _float_array(a, "a")
    out = np.empty_like(a)
    _lse_backward_kernel(a, _same(lse, a.dtype), _same(grad, a.dtype), out,
                         a.dtype.type(_ref.WEIGHT_FLUSH_LOG[a.dtype.type]))
    return out


logsumexp.__doc__ = _ref.logsumexp.__doc__
logsumexp_backward.__doc__ = _ref.logsumexp_backward.__doc__


# --------------------------------------------------------------------------- Bernoulli
@njit(**_JIT_PAR)
def _bernoulli_kernel(l, x, out, one):
    K, B, D = l.shape
    zero = one - one
    for r in prange(K * B):
        k = r // B
        b = r - k * B
        lr = l[k, b]
        xr = x[b]
        acc = 0.0  # float64 accumulator
        for j in range(D):
            v = lr[j]
            # softplus(v) = max(v, 0) + log1p(exp(-|v|)): the exponential never overflows
            sp = (v if v > zero else zero) + vlog1p_unit(vexp(-abs(v)))
            acc += xr[j] * v - sp
        out[k, b] = acc


@njit(**_JIT_PAR)
def _bernoulli_grad_kernel(l, x, out, dl, one):
    K, B, D = l.shape
    zero = one - one
    for r in prange(K * B):
        k = r // B
        b = r - k * B
        lr = l[k, b]
        xr = x[b]
        dr = dl[k, b]
        acc = 0.0
        for j in range(D):
            v = lr[j]
            e = vexp(-abs(v))
            acc += xr[j] * v - ((v if v > zero else zero) + vlog1p_unit(e))
            # sigmoid(v) from the same exponential: 1/(1+e) for v >= 0, e/(1+e) below
            q = one / (one + e)
            dr[j] = xr[j] - (q if v >= zero else e * q)
        out[k, b] = acc


@njit(**_JIT_PAR)
def _bernoulli_backward_kernel(l, x, grad, dl, one):
    K, B, D = l.shape
    for r in prange(K * B):
        k = r // B
        b = r - k * B
        lr = l[k, b]
        xr = x[b]
        dr = dl[k, b]
        g = grad[k, b]
        for j in range(D):
            dr[j] = g * (xr[j] - vsigmoid(lr[j]))


def _bernoulli_args(logits, x):
    logits = _float_array(logits, "logits")
    x = _same(x, logits.dtype)
    _ref._check_bernoulli(logits, x)
    B, D = x.shape
    return logits.reshape(-1, B, D), x, logits.shape[:-1]


def bernoulli_log_prob(logits, x):
    l3, x, lead = _bernoulli_args(logits, x)
    out = np.empty(l3.shape[:2], dtype=l3.dtype)
    _bernoulli_kernel(l3, x, out, l3.dtype.type(1))
    return out.reshape(lead)


def bernoulli_log_prob_with_grad(logits, x):
    l3, x, lead = _bernoulli_args(logits, x)
    out = np.empty(l3.shape[:2], dtype=l3.dtype)
    dl = np.empty_like(l3)
    _bernoulli_grad_kernel(l3, x, out, dl, l3.dtype.type(1))
    return out.reshape(lead), dl.reshape(np.shape(logits))


def bernoulli_log_prob_backward(logits, x, grad):
    l3, x, lead = _bernoulli_args(logits, x)
    g = _same(grad, l3.dtype).reshape(l3.shape[:2])
    dl = np.empty_like(l3)
    _bernoulli_backward_kernel(l3, x, g, dl, l3.dtype.type(1))
    return dl.reshape(np.shape(logits))


bernoulli_log_prob.__doc__ = _ref.bernoulli_log_prob.__doc__
bernoulli_log_prob_with_grad.__doc__ = _ref.bernoulli_log_prob_with_grad.__doc__
bernoulli_log_prob_backward.__doc__ = _ref.bernoulli_log_prob_backward.__doc__


# --------------------------------------------------------------------------- diagonal Gaussian
# Broadcasting without copies: an axis of size 1 is read with index 0 -- the row index is
# multiplied by a 0/1 "stride" flag. The last axis (d) is always full size (the wrapper
# expands a size-1 last axis, a tiny array), so the inner loop is contiguous and vectorises.
@njit(**_JIT_PAR)
def _gauss_kernel(z, mu, ls, out, half, c):
    K, B = out.shape
    d = z.shape[2]
    fzk, fzb = min(z.shape[0] - 1, 1), min(z.shape[1] - 1, 1)
    fmk, fmb = min(mu.shape[0] - 1, 1), min(mu.shape[1] - 1, 1)
    fsk, fsb = min(ls.shape[0] - 1, 1), min(ls.shape[1] - 1, 1)
    for r in prange(K * B):
        k = r // B
        b = r - k * B
        zr = z[k * fzk, b * fzb]
        mr = mu[k * fmk, b * fmb]
        sr = ls[k * fsk, b * fsb]
        acc = 0.0
        for j in range(d):
            e = (zr[j] - mr[j]) * vexp(-sr[j])
            acc += -half * e * e - sr[j] - c
        out[k, b] = acc


@njit(**_JIT)
def _gauss_backward_kernel(z, mu, ls, grad, gz, gm, gs, one):
    # gz, gm, gs: float64 accumulators shaped like z, mu, ls (summed over broadcast axes)
    K, B = grad.shape
    d = z.shape[2]
    fzk, fzb = min(z.shape[0] - 1, 1), min(z.shape[1] - 1, 1)
    fmk, fmb = min(mu.shape[0] - 1, 1), min(mu.shape[1] - 1, 1)
    fsk, fsb = min(ls.shape[0] - 1, 1), min(ls.shape[1] - 1, 1)
    for k in range(K):
        for b in range(B):
            zr = z[k * fzk, b * fzb]
            mr = mu[k * fmk, b * fmb]
            sr = ls[k * fsk, b * fsb]
            gzr = gz[k * fzk, b * fzb]
            gmr = gm[k * fmk, b * fmb]
            gsr = gs[k * fsk, b * fsb]
            g = grad[k, b]
            for j in range(d):
                inv = vexp(-sr[j])
                e = (zr[j] - mr[j]) * inv
                t = g * e * inv
                gzr[j] -= t
                gmr[j] += t
                gsr[j] += g * (e * e - one)


def _gauss_args(z, mu, log_sigma):
    z = _float_array(z, "z")
    dt = z.dtype
    mu, log_sigma = _same(mu, dt), _same(log_sigma, dt)
    full = _ref._gaussian_shapes(z, mu, log_sigma)
    d = full[-1]
    expanded = []
    arrs = []
    for a in (z, mu, log_sigma):
        if a.shape[-1] != d:  # size-1 last axis: expand it (a small array) so d is contiguous
            a = np.ascontiguousarray(np.broadcast_to(a, a.shape[:-1] + (d,)))
            expanded.append(True)
        else:
            expanded.append(False)
        arrs.append(a)
    return arrs, full, expanded


def diag_gaussian_log_prob(z, mu, log_sigma):
    (z, mu, ls), full, _ = _gauss_args(z, mu, log_sigma)
    out = np.empty(full[:-1], dtype=z.dtype)
    one = z.dtype.type(1)
    _gauss_kernel(z, mu, ls, out, one / 2, z.dtype.type(_ref.HALF_LOG_2PI))
    return out


def diag_gaussian_log_prob_backward(z, mu, log_sigma, grad):
    shapes = (np.shape(z), np.shape(mu), np.shape(log_sigma))
    (z3, m3, s3), full, expanded = _gauss_args(z, mu, log_sigma)
    g = _same(grad, z3.dtype).reshape(full[:-1])
    acc = [np.zeros(a.shape, dtype=np.float64) for a in (z3, m3, s3)]
    _gauss_backward_kernel(z3, m3, s3, g, acc[0], acc[1], acc[2], z3.dtype.type(1))
    out = []
    for a, shape, exp in zip(acc, shapes, expanded):
        if exp:
            a = a.sum(axis=-1, keepdims=True)
        out.append(a.astype(z3.dtype).reshape(shape))
    return tuple(out)


diag_gaussian_log_prob.__doc__ = _ref.diag_gaussian_log_prob.__doc__
diag_gaussian_log_prob_backward.__doc__ = _ref.diag_gaussian_log_prob_backward.__doc__


# --------------------------------------------------------------------------- linear layer
@njit(**_JIT_PAR)
def _bias_act_kernel(y, b, has_bias, code, one):
    # In place: y <- f(y + b). One branch per call, not per element, so each loop vectorises.
    N, m = y.shape
    zero = one - one
    for r in prange(N):
        yr = y[r]
        if has_bias:
            for j in range(m):
                yr[j] += b[j]
        if code == 1:
            for j in range(m):
                yr[j] = vtanh(yr[j])
        elif code == 2:
            for j in range(m):
                v = yr[j]
                yr[j] = v if v > zero else zero
        elif code == 3:
            for j in range(m):
                yr[j] = vsigmoid(yr[j])


@njit(**_JIT_PAR)
def _act_grad_kernel(y, g, delta, gb, code, one):
    # delta = g * f'(y) (f' from the output), gb = column sums of delta (float64).
    # Parallel over column blocks, so that each thread owns its part of gb.
    N, m = y.shape
    zero = one - one
    nblk = (m + 63) // 64
    for ib in prange(nblk):
        j0 = ib * 64
        j1 = min(j0 + 64, m)
        w = j1 - j0
        acc = gb[j0:j1]
        for r in range(N):
            yr = y[r, j0:j1]
            gr = g[r, j0:j1]
            dr = delta[r, j0:j1]
            if code == 0:
                for j in range(w):
                    dr[j] = gr[j]
            elif code == 1:
                for j in range(w):
                    dr[j] = gr[j] * (one - yr[j] * yr[j])
            elif code == 2:
                for j in range(w):
                    dr[j] = gr[j] if yr[j] > zero else zero
            else:
                for j in range(w):
                    dr[j] = gr[j] * (yr[j] * (one - yr[j]))
            for j in range(w):
                acc[j] += dr[j]


def _check_linear(x, W, b, activation):
    if activation not in _ACT_CODE:
        raise ValueError(f"unknown activation {activation!r}: expected one of {ACTIVATIONS}")
    x, W = _float_array(x, "x"), _float_array(W, "W")
    if W.ndim != 2 or x.ndim < 1 or x.shape[-1] != W.shape[0]:
        raise ValueError(f"x of shape {x.shape} does not match W of shape {W.shape}: expected "
                         f"x of shape (..., {W.shape[0] if W.ndim == 2 else 'n'}) and W (n, m)")
    if b is not None:
        b = _same(b, W.dtype)
        if b.shape != (W.shape[1],):
            raise ValueError(f"b has shape {b.shape}; expected ({W.shape[1]},)")
    return x, W, b


def linear(x, W, b, activation=None):
    r"""Affine layer over stacked samples with a fused activation: :math:`y = f(xW + b)`.

    Parameters
    ----------
    x : ndarray, shape (..., n)
    W : ndarray, shape (n, m)
    b : ndarray, shape (m,) or None
    activation : {None, 'tanh', 'relu', 'sigmoid'}

    Returns
    -------
    y : ndarray, shape (..., m)

    Notes
    -----
    Design, measured with ``scratchdgm bench linear`` (one thread, median of 30; the decoder's
    layers at K = 50, batch 20): the K x B samples are flattened into **one GEMM** of (K B) x n
    by n x m, done by the BLAS NumPy links (OpenBLAS: 120-150 GFLOP/s float32, 57-71 float64
    on one core here), followed by **one Numba pass** over the output that adds the bias and
    applies the activation in place (the vectorised functions of
    :mod:`scratchdgm.kernels._vmath`). The fully fused alternative -- a Numba matrix product
    that applies bias and activation as it writes each output -- reaches only 31-39 GFLOP/s
    (no register blocking or packing), so it is 2-3.5x slower at every layer size of the
    course's models although it saves one pass over the output. Against NumPy's separate
    passes (GEMM, ``+ b``, ``np.tanh``) the fused pass wins in float64 (1000x200 @ 200x784:
    5.76 ms against 6.56 ms) but loses in float32 (2.74 against 2.53 ms): NumPy's float32
    tanh is a SIMD routine faster than ours, so for float32 tanh this function adds the bias
    and calls ``np.tanh`` in place instead.
    """
    x, W, b = _check_linear(x, W, b, activation)
    n, m = W.shape
    y = np.matmul(x.reshape(-1, n), W.astype(x.dtype, copy=False))
    code = _ACT_CODE[activation]
    if activation == "tanh" and y.dtype == np.float32:
        if b is not None:
            y += b
        np.tanh(y, out=y)  # measured faster than the fused pass in float32 (docstring)
    elif b is not None or code:
        _bias_act_kernel(y, b if b is not None else y[0], b is not None, code,
                         y.dtype.type(1))
    return y.reshape(x.shape[:-1] + (m,))


def linear_backward(x, W, y, grad, activation=None, need_x_grad=True):
    x, W, _ = _check_linear(x, W, None, activation)
    n, m = W.shape
    x2 = x.reshape(-1, n)
    y2 = _same(y, x.dtype).reshape(-1, m)
    g2 = _same(grad, x.dtype).reshape(-1, m)
    code = _ACT_CODE[activation]
    gb = np.zeros(m, dtype=np.float64)
    delta = np.empty_like(g2) if code else g2
    # For the identity the kernel only sums the columns (delta is g itself: no copy).
    _act_grad_kernel(y2, g2, delta, gb, code, y2.dtype.type(1)) if code else \
        _colsum_kernel(g2, gb)
    gW = x2.T @ delta
    gx = (delta @ W.T).reshape(x.shape) if need_x_grad else None
    return gx, gW, gb.astype(x.dtype)


@njit(**_JIT_PAR)
def _colsum_kernel(g, gb):
    N, m = g.shape
    nblk = (m + 63) // 64
    for ib in prange(nblk):
        j0 = ib * 64
        j1 = min(j0 + 64, m)
        acc = gb[j0:j1]
        for r in range(N):
            gr = g[r, j0:j1]
            for j in range(j1 - j0):
                acc[j] += gr[j]


linear_backward.__doc__ = _ref.linear_backward.__doc__


# --------------------------------------------------------------------------- Adam
@njit(**_JIT)
def _adam_kernel(data, grad, m, v, lr, b1, b2, d1, d2, c1, c2, eps, wd):
    # One pass over flat views; the arithmetic mirrors the reference (and optim.Adam) in the
    # parameter's dtype: every scalar arrives already cast to it (d1 = 1 - b1, d2 = 1 - b2
    # rounded from float64, as NumPy rounds the Python floats).
    for i in range(data.size):
        g = grad[i] + wd * data[i]
        mi = m[i] * b1 + d1 * g
        vi = v[i] * b2 + d2 * (g * g)
        m[i] = mi
        v[i] = vi
        data[i] -= lr * (mi / c1) / (np.sqrt(vi / c2) + eps)


def adam_update(data, grad, m, v, lr, beta1, beta2, eps, step, weight_decay=0.0):
    for name, arr in (("data", data), ("m", m), ("v", v)):
        if not (isinstance(arr, np.ndarray) and arr.flags.c_contiguous
                and arr.dtype in (np.float32, np.float64)):
            raise TypeError(f"adam_update: {name} must be a C-contiguous float32/float64 array "
                            "(it is updated in place)")
    t = data.dtype.type
    g = _same(grad, data.dtype)
    _adam_kernel(data.reshape(-1), g.reshape(-1), m.reshape(-1), v.reshape(-1), t(lr),
                 t(beta1), t(beta2), t(1.0 - beta1), t(1.0 - beta2), t(1.0 - beta1 ** step),
                 t(1.0 - beta2 ** step), t(eps), t(weight_decay))


adam_update.__doc__ = _ref.adam_update.__doc__
