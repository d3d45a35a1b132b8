r"""Numba CPU kernels for the hot paths of the IWAE objective (backend ``'numba'``).

Same functions, signatures and semantics as :mod:`scratchdgm.kernels.reference` (read that
module for the mathematics); this one makes them fast:

* **log-sum-exp over K** -- one read of the array from memory: 12.1-12.5 GB/s on one core of
  the project's machine, 49% of its read bandwidth and 85-89% of the exponential's own
  arithmetic on data in cache (55-58% of the bandwidth); 19.5-20.0 GB/s on both cores, 84-92%
  of their bandwidth (``scratchdgm bench logsumexp``, float64, 50 x 200000 and 5000 x 2000).
  Each column is shifted by its *first* entry instead of its maximum: then no pass is needed
  to find the maximum first, and the sum :math:`s_b = \sum_k e^{a_{kb} - a_{1b}} \ge 1` (its
  first term is 1) keeps full relative precision, as with the maximum;
  :math:`\operatorname{LSE}_b = a_{1b} + \log s_b`. Exponents
  are clamped at :data:`LSE_MAX_RISE` so nothing overflows; a column where the clamp acted (its
  maximum rose more than that above its first entry), or whose first entry is not finite, or
  that holds a NaN, is redone exactly by the reference's two passes -- rare in an IWAE, where
  log-weights of one point are within a few hundred nats of each other. The pass reads super-
  blocks of :data:`LSE_SUPER_COLUMNS` columns eight rows at a time (:func:`_lse_add_rows`), so
  the running sums are touched once per eight entries; its exponentials are the vectorised
  ones of :mod:`scratchdgm.kernels._vmath`; columns are split between threads (``prange``).
* **Bernoulli log-likelihood** -- one pass computing ``x*l - softplus(l)`` and, when a gradient
  is wanted, ``x - sigmoid(l)`` from the same exponential; the :math:`\log(1 + e^{-|l|})` of a
  row are summed as the logarithm of their product (one logarithm per row, not per pixel).
* **diagonal Gaussian** -- one pass; broadcast axes of mu / log_sigma are read with zero stride
  (no broadcast copy), :math:`1/\sigma` and :math:`\sum_j \log\sigma_j` are computed once at
  log_sigma's own shape (not once per sample), and the gradients are accumulated directly at
  each argument's own shape.
* **linear layer** -- see :func:`linear`: one BLAS GEMM over the K*B stacked rows, and the
  bias and activation (or, backward, the activation's derivative and the bias gradient) fused
  into a single Numba pass over the output.
* **Box--Muller** -- one vectorised pass from random words to normal draws: the logarithm of
  :mod:`scratchdgm.kernels._vmath` and its cosine and sine of a turn instead of the C
  library's one-at-a-time ``log``, ``cos`` and ``sin``.

Compilation is lazy: nothing compiles at import; each kernel compiles for float32 or float64 on
its first call with such arrays. Each parallel kernel also has a serial twin (compiled only if
used), which runs inside :func:`scratchdgm.threads.kernel_threads` ``(1)``: the training steps
of ``fit`` (one thread by default) and the evaluation's worker threads; the serial twins compile
in about half the time. The log-sum-exp, the slowest kernel to compile, is only compiled for
arrays of at least :data:`LSE_MIN_ELEMENTS` entries (evaluation). Measured under load on the
shared 2-core machine: compiling everything a float32 ``fit`` + ``score`` of an IWAE needs took
21.4 s before these two changes and 9.0 s after. The compiled code is kept on disk and reused by
later processes (:mod:`scratchdgm.kernels._cache`: a user cache folder keyed by the content of
every kernel source and the build settings, so an edit of ``_vmath.py`` or ``reference.py`` is
never served stale code). ``SCRATCHDGM_NUMBA_CACHE=0`` turns that off.
``NUMBA_DISABLE_JIT=1`` runs the same kernels as plain Python (slow, but steppable in a
debugger).

References
----------
Burda, Grosse & Salakhutdinov (2016), *Importance weighted autoencoders*, eq. 8 and 14.
"""

import math
import os
import types

import numpy as np
import numba
from numba import njit, prange

from scratchdgm.threads import kernel_thread_limit

from . import _cache
from . import reference as _ref
from ._vmath import vcos_sin_turns, vexp, vexp_nonpos, vlog, vsigmoid, vtanh

__all__ = list(_ref.__all__)

ACTIVATIONS = _ref.ACTIVATIONS
_ACT_CODE = _ref.ACTIVATION_CODES

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

#: Whether compiled kernels are kept on disk (:mod:`scratchdgm.kernels._cache`); decided after
#: the vector width, which is part of the cache key.
CACHED = _cache.enable()

# error_model='numpy': a division by zero gives inf/nan instead of raising, which removes the
# per-element branch that would stop LLVM from vectorising the loops.
# fastmath: 'contract' lets LLVM fuse a*b + c into FMAs; 'reassoc' lets it vectorise the
# reductions (sums over pixels / latent dimensions) by keeping several partial sums.
# The elementary functions in _vmath keep their own flags (no 'reassoc'), which they need.
_JIT = dict(cache=CACHED, error_model="numpy", fastmath={"contract", "reassoc"}, nogil=True)
_JIT_PAR = dict(_JIT, parallel=True)


def _parallel_and_serial(fn):
    r"""Compile a kernel twice: with ``parallel=True`` (its ``prange`` loops split between
    Numba's threads), returned under the kernel's own name, and serially (``prange`` runs as
    ``range``), attached to it as ``.serial``.

    The serial twin runs inside :func:`scratchdgm.threads.kernel_threads` ``(1)``: code that
    calls kernels from several threads of its own (the evaluation's thread pool) must not start
    Numba's threads as well -- with Numba's ``workqueue`` threading layer, two parallel kernels
    launched at once from two threads abort the process. The twin is a copy of the function
    under another name, so that the two never share an entry of the on-disk cache. Each compiles
    on its first call only.
    """
    twin = types.FunctionType(fn.__code__, fn.__globals__, fn.__name__ + "_serial",
                              fn.__defaults__, fn.__closure__)
    twin.__qualname__ = fn.__qualname__ + "_serial"
    kernel = njit(**_JIT_PAR)(fn)
    kernel.serial = njit(**_JIT)(twin)
    return kernel


def _pick(kernel):
    """The parallel kernel, or its serial twin inside ``kernel_threads(1)``."""
    return kernel.serial if kernel_thread_limit() == 1 else kernel


def _threads():
    """How many threads a kernel picked by :func:`_pick` runs on."""
    return 1 if kernel_thread_limit() == 1 else numba.get_num_threads()


# --------------------------------------------------------------------------- validation
_float_array = _ref._float_array  # shared validation (reference.py)


def _same(a, dtype):
    return np.ascontiguousarray(a, dtype=dtype)


# --------------------------------------------------------------------------- log-sum-exp
# Layout of the pass over a (K, B) array (measured with `scratchdgm bench logsumexp`): the
# columns go by super-blocks, and each super-block is read eight rows at a time, front to back:
LSE_SUPER_COLUMNS = 8192     # columns whose shifts and running sums stay in the L2 cache together
LSE_ROWS = 8                 # rows read in one pass over a super-block (see _lse_add_rows)
#: Below this many entries the log-sum-exp and its backward run the NumPy reference: on the
#: (K, batch) = (5..50, 20) arrays of a training step a call costs some microseconds either
#: way, and the one-pass kernel -- the slowest of all to compile (about a third of a training
#: step's compile time) -- is then only compiled for the large arrays of evaluation.
LSE_MIN_ELEMENTS = 1 << 16
_small_logsumexp = _ref.logsumexp  # the NumPy code itself, bound once
_small_logsumexp_backward = _ref.logsumexp_backward
#: The shift is a column's first entry; exponents above this are clamped (and the column redone
#: exactly), below the float overflow of exp (709.8 float64, 88.7 float32).
LSE_MAX_RISE = {np.float32: 80.0, np.float64: 700.0}


@njit(**_JIT)
def _lse_add_rows(a, k, p0, p1, sh, s, hi):
    # s[j] += sum_{i < 8} exp(min(a[k + i, p0 + j] - sh[j], hi)) for j < p1 - p0: eight rows in
    # one pass. Against one row per pass (over blocks of 1 KiB with software prefetch, the
    # layout before): the running sums are loaded and stored once per eight entries instead of
    # once per entry, eight contiguous streams keep the memory busy, and eight independent
    # exponentials the vector units -- measured 1.5-1.7x faster (50 x 200000 and 5000 x 2000
    # float64, one and two threads). Exponents are clamped at hi (a select: the loop
    # vectorises); x <= hi cannot overflow, and -inf (or anything below the flush threshold)
    # gives ~1e-307 instead of 0, invisible next to the 1 of the shift's own entry.
    r0, r1, r2, r3 = a[k, p0:p1], a[k + 1, p0:p1], a[k + 2, p0:p1], a[k + 3, p0:p1]
    r4, r5, r6, r7 = a[k + 4, p0:p1], a[k + 5, p0:p1], a[k + 6, p0:p1], a[k + 7, p0:p1]
    for j in range(p1 - p0):
        h = sh[j]
        x0, x1, x2, x3 = r0[j] - h, r1[j] - h, r2[j] - h, r3[j] - h
        x4, x5, x6, x7 = r4[j] - h, r5[j] - h, r6[j] - h, r7[j] - h
        x0, x1 = (hi if x0 > hi else x0), (hi if x1 > hi else x1)
        x2, x3 = (hi if x2 > hi else x2), (hi if x3 > hi else x3)
        x4, x5 = (hi if x4 > hi else x4), (hi if x5 > hi else x5)
        x6, x7 = (hi if x6 > hi else x6), (hi if x7 > hi else x7)
        s[j] += (((vexp_nonpos(x0) + vexp_nonpos(x1)) + (vexp_nonpos(x2) + vexp_nonpos(x3)))
                 + ((vexp_nonpos(x4) + vexp_nonpos(x5)) + (vexp_nonpos(x6) + vexp_nonpos(x7))))


@njit(**_JIT)
def _lse_add_row(a, k, p0, p1, sh, s, hi):
    # one row: the K mod 8 rows left after the passes of eight
    r = a[k, p0:p1]
    for j in range(p1 - p0):
        x = r[j] - sh[j]
        s[j] += vexp_nonpos(hi if x > hi else x)


@njit(**_JIT)
def _lse_column_exact(a, j):
    # The reference's two passes for one column (a is strided here, but this runs only for
    # columns whose first entry was a poor shift: non-finite, or far below the maximum).
    K = a.shape[0]
    m = a[0, j]
    for k in range(1, K):
        v = a[k, j]
        if v > m or v != v:
            m = v
        if m != m:
            return m
    if m == np.inf:
        return m
    shift = m if m > -np.inf else 0.0
    acc = 0.0
    for k in range(K):
        acc += math.exp(a[k, j] - shift)
    return shift + math.log(acc) if acc > 0.0 else -np.inf


@njit(**_JIT)
def _lse_columns(a, out, c0, c1, hi, limit):
    # out[c0:c1], by super-blocks of columns, each read from memory once, eight rows at a time
    # (_lse_add_rows), with its shifts and running sums held in the L2 cache.
    K = a.shape[0]
    n_super = min(c1 - c0, LSE_SUPER_COLUMNS)
    sh = np.empty(n_super, dtype=a.dtype)
    s = np.empty(n_super, dtype=np.float64)
    for p0 in range(c0, c1, LSE_SUPER_COLUMNS):
        p1 = min(p0 + LSE_SUPER_COLUMNS, c1)
        n = p1 - p0
        first = a[0, p0:p1]
        for j in range(n):
            sh[j] = first[j]
            s[j] = 0.0
        k = 0
        while k + LSE_ROWS <= K:
            _lse_add_rows(a, k, p0, p1, sh, s, hi)
            k += LSE_ROWS
        while k < K:
            _lse_add_row(a, k, p0, p1, sh, s, hi)
            k += 1
        o = out[p0:p1]
        for j in range(n):  # branch-free, so that the logarithms vectorise
            o[j] = sh[j] + vlog(s[j])
        for j in range(n):
            # s >= 1 (the shift's own entry); a clamped exponent made it >= e^hi > limit, a NaN
            # made it NaN: such columns, and those with a non-finite shift, are redone exactly.
            v = sh[j]
            if not (v > -np.inf and v < np.inf and s[j] < limit):
                o[j] = _lse_column_exact(a, p0 + j)


def _lse_kernel(a, out, hi, limit, n_chunks):
    # n_chunks contiguous column ranges, one per thread (prange)
    B = a.shape[1]
    for c in prange(n_chunks):
        c0 = c * B // n_chunks
        c1 = (c + 1) * B // n_chunks
        if c1 > c0:
            _lse_columns(a, out, c0, c1, hi, limit)


_lse_kernel = _parallel_and_serial(_lse_kernel)


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


_lse_backward_kernel = _parallel_and_serial(_lse_backward_kernel)


def logsumexp(a):
    r"""Log-sum-exp over axis 0 of a (K, B) array, in one pass over memory.

    Same contract as :func:`scratchdgm.kernels.reference.logsumexp` (the specification):
    :math:`\log\sum_k e^{a_{kb}}`, shape (B,), ``-inf`` for an all ``-inf`` column.
    The algorithm differs (module docstring): each column is shifted by its *first* entry, so
    no pass is spent finding the maximum; exponents are clamped at :data:`LSE_MAX_RISE`, and a
    column where the clamp acted, whose first entry is not finite or that holds a NaN is
    redone exactly in two passes. Columns are split between threads. Arrays of fewer than
    :data:`LSE_MIN_ELEMENTS` entries go to the NumPy reference (no compilation, same speed).
    """
    a = _float_array(a, "a")
    if a.ndim != 2 or a.shape[0] < 1:
        raise ValueError(f"logsumexp expects an array of shape (K, B) with K >= 1, got {a.shape}")
    if a.size < LSE_MIN_ELEMENTS:
        return _small_logsumexp(a)
    out = np.empty(a.shape[1], dtype=a.dtype)
    hi = LSE_MAX_RISE[a.dtype.type]
    # one chunk of columns per thread, but no chunk narrower than 128 columns
    n_chunks = max(1, min(_threads(), a.shape[1] // 128))
    _pick(_lse_kernel)(a, out, a.dtype.type(hi), math.exp(hi - 1.0), n_chunks)
    return out


def logsumexp_backward(a, lse, grad):
    r"""The normalised importance weights times the incoming gradient, one fused pass.

    Same contract as :func:`scratchdgm.kernels.reference.logsumexp_backward`:
    :math:`\bar a_{kb} = \bar y_b\, e^{a_{kb} - \operatorname{LSE}_b}`, with weights below
    ``reference.WEIGHT_FLUSH_LOG`` set to 0.
    """
    a = _float_array(a, "a")
    if a.size < LSE_MIN_ELEMENTS:
        return _small_logsumexp_backward(a, lse, grad)
    out = np.empty_like(a)
    _pick(_lse_backward_kernel)(a, _same(lse, a.dtype), _same(grad, a.dtype), out,
                         a.dtype.type(_ref.WEIGHT_FLUSH_LOG[a.dtype.type]))
    return out


# --------------------------------------------------------------------------- Bernoulli
#: Pixels per block of the Bernoulli kernels: the product of a block's (1 + e^{-|l|}) terms, each
#: in (1, 2], stays below 2^1000, inside float64's range (2^1024).
BERNOULLI_BLOCK = 1000


def _bernoulli_kernel(l, x, out, one):
    # BEGIN EXERCISE 13: out[k, b] = sum_j x[b, j] l[k, b, j] - softplus(l[k, b, j]), one pass
    # sum_j x_j l_j - softplus(l_j), softplus(l) = max(l, 0) + log(1 + e^{-|l|}), with the
    # logarithm taken once per block of pixels, of the float64 product of their (1 + e^{-|l|}):
    # one exponential and one multiplication per pixel instead of an exponential and a
    # logarithm (measured 1.5x faster in float32, 2.4x in float64, 784 pixels, one thread)
    K, B, D = l.shape
    zero = one - one
    for r in prange(K * B):
        k = r // B
        b = r - k * B
        acc = 0.0
        for j0 in range(0, D, BERNOULLI_BLOCK):
            lr = l[k, b, j0:j0 + BERNOULLI_BLOCK]
            xr = x[b, j0:j0 + BERNOULLI_BLOCK]
            lin = 0.0  # float64 accumulators
            prod = 1.0
            for j in range(lr.shape[0]):
                v = lr[j]
                lin += xr[j] * v - (v if v > zero else zero)
                # float64: the compiled code promotes anyway; plain Python (NUMBA_DISABLE_JIT)
                # would keep float32, and overflow. vexp_nonpos: the argument is never
                # positive, and where it returns ~1e-38 (1e-307) instead of 0, 1 + that is 1
                # in float64 all the same; skipping vexp's range checks made this pass 20%
                # faster in float32, 10% in float64 (1020 x 784 logits, one thread)
                prod *= 1.0 + np.float64(vexp_nonpos(-abs(v)))
            acc += lin - math.log(prod)
        out[k, b] = acc
    # END EXERCISE 13


_bernoulli_kernel = _parallel_and_serial(_bernoulli_kernel)


def _bernoulli_grad_kernel(l, x, out, dl, one):
    # BEGIN EXERCISE 13: the same sums and dl = x - sigmoid(l), from one exponential per logit
    K, B, D = l.shape
    zero = one - one
    for r in prange(K * B):
        k = r // B
        b = r - k * B
        acc = 0.0
        for j0 in range(0, D, BERNOULLI_BLOCK):
            lr = l[k, b, j0:j0 + BERNOULLI_BLOCK]
            xr = x[b, j0:j0 + BERNOULLI_BLOCK]
            dr = dl[k, b, j0:j0 + BERNOULLI_BLOCK]
            lin = 0.0
            prod = 1.0
            for j in range(lr.shape[0]):
                v = lr[j]
                # as in the forward: no range checks (measured 10-20% faster, 50 x 20 x 784
                # float32); where e is ~1e-38 (1e-307) instead of 0, so is sigmoid(v) below
                e = vexp_nonpos(-abs(v))
                lin += xr[j] * v - (v if v > zero else zero)
                prod *= 1.0 + np.float64(e)
                # sigmoid(v) from the same exponential: 1/(1+e) for v >= 0, e/(1+e) below
                q = one / (one + e)
                dr[j] = xr[j] - (q if v >= zero else e * q)
            acc += lin - math.log(prod)
        out[k, b] = acc
    # END EXERCISE 13


_bernoulli_grad_kernel = _parallel_and_serial(_bernoulli_grad_kernel)


def _bernoulli_args(logits, x):
    logits = _float_array(logits, "logits")
    x = _same(x, logits.dtype)
    _ref._check_bernoulli(logits, x)
    B, D = x.shape
    return logits.reshape(-1, B, D), x, logits.shape[:-1]


def bernoulli_log_prob(logits, x):
    r"""Bernoulli log-likelihood from logits, summed over the pixels, one parallel pass.

    Same contract as :func:`scratchdgm.kernels.reference.bernoulli_log_prob`:
    :math:`\sum_j x_j \ell_j - \operatorname{softplus}(\ell_j)` for logits (..., B, D) and
    data (B, D), accumulated in float64.
    """
    l3, x, lead = _bernoulli_args(logits, x)
    out = np.empty(l3.shape[:2], dtype=l3.dtype)
    _pick(_bernoulli_kernel)(l3, x, out, l3.dtype.type(1))
    return out.reshape(lead)


def bernoulli_log_prob_with_grad(logits, x):
    r"""The Bernoulli log-likelihood and its gradient :math:`x - \sigma(\ell)` from the same
    exponential, in one pass; contract of
    :func:`scratchdgm.kernels.reference.bernoulli_log_prob_with_grad`.
    """
    l3, x, lead = _bernoulli_args(logits, x)
    out = np.empty(l3.shape[:2], dtype=l3.dtype)
    dl = np.empty_like(l3)
    _pick(_bernoulli_grad_kernel)(l3, x, out, dl, l3.dtype.type(1))
    return out.reshape(lead), dl.reshape(np.shape(logits))


# --------------------------------------------------------------------------- diagonal Gaussian
# Broadcasting without copies: an axis of size 1 is read with index 0 -- the row index is
# multiplied by a 0/1 "stride" flag. The last axis (d) is always full size (the wrapper
# expands a size-1 last axis, a tiny array), so the inner loop is contiguous and vectorises.
# What depends on log_sigma alone -- 1/sigma = e^{-log sigma} and the row sums of log sigma --
# is computed once, at log_sigma's own shape, by the wrapper: log_sigma is usually shared by
# the K samples (an encoder's (1, B, d)), and the exponential was a third (float32) to a half
# (float64) of the pass.
def _gauss_kernel(z, mu, inv, ls_sum, out, half, c):
    K, B = out.shape
    d = z.shape[2]
    fzk, fzb = min(z.shape[0] - 1, 1), min(z.shape[1] - 1, 1)
    fmk, fmb = min(mu.shape[0] - 1, 1), min(mu.shape[1] - 1, 1)
    fsk, fsb = min(inv.shape[0] - 1, 1), min(inv.shape[1] - 1, 1)
    for r in prange(K * B):
        k = r // B
        b = r - k * B
        zr = z[k * fzk, b * fzb]
        mr = mu[k * fmk, b * fmb]
        ir = inv[k * fsk, b * fsb]
        acc = 0.0
        for j in range(d):
            e = (zr[j] - mr[j]) * ir[j]
            acc += e * e
        # sum_j -e_j^2 / 2 - log sigma_j - log(2 pi) / 2, with c = d log(2 pi) / 2
        out[k, b] = -half * acc - ls_sum[k * fsk, b * fsb] - c


_gauss_kernel = _parallel_and_serial(_gauss_kernel)


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
    r"""Diagonal-Gaussian log-density summed over the last axis, one pass, no broadcast copies.

    Same contract as :func:`scratchdgm.kernels.reference.diag_gaussian_log_prob`; an axis of
    ``mu`` or ``log_sigma`` of length 1 is read with stride 0 instead of being materialised.
    """
    (z, mu, ls), full, _ = _gauss_args(z, mu, log_sigma)
    out = np.empty(full[:-1], dtype=z.dtype)
    with np.errstate(over="ignore"):                   # sigma below ~1e-38: inf, as vexp
        inv = np.exp(-ls)                              # 1 / sigma, at log_sigma's shape
    ls_sum = ls.sum(axis=-1, dtype=np.float64)         # sum_j log sigma_j, float64 as the rest
    _pick(_gauss_kernel)(z, mu, inv, ls_sum, out, 0.5, full[-1] * _ref.HALF_LOG_2PI)
    return out


def diag_gaussian_log_prob_backward(z, mu, log_sigma, grad):
    r"""Gradients of :func:`diag_gaussian_log_prob` with respect to ``z``, ``mu`` and
    ``log_sigma``, accumulated (in float64) directly at each argument's own shape; contract of
    :func:`scratchdgm.kernels.reference.diag_gaussian_log_prob_backward`.
    """
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


def _reparam_kernel(eps, mu, sigma, ls_sum, z, log_q, log_p, c):
    # z = mu + sigma * eps, and the row sums of eps^2 and z^2 (float64), in one pass over eps
    K, B, d = eps.shape
    for r in prange(K * B):
        k = r // B
        b = r - k * B
        er, zr, mr, sr = eps[k, b], z[k, b], mu[b], sigma[b]
        sq_eps = 0.0
        sq_z = 0.0
        for j in range(d):
            e = er[j]
            v = mr[j] + sr[j] * e
            zr[j] = v
            sq_eps += e * e
            sq_z += v * v
        # log q = sum_j -eps_j^2/2 - log sigma_j - log(2 pi)/2 and log p = sum_j -z_j^2/2 -
        # log(2 pi)/2, with c = d log(2 pi) / 2
        log_q[k, b] = -0.5 * sq_eps - ls_sum[b] - c
        log_p[k, b] = -0.5 * sq_z - c


_reparam_kernel = _parallel_and_serial(_reparam_kernel)


def diag_gaussian_reparam(eps, mu, log_sigma):
    r"""Reparametrised samples and their two log-densities in one pass over the draws: the
    contract of :func:`scratchdgm.kernels.reference.diag_gaussian_reparam`.

    What depends on ``log_sigma`` alone -- :math:`\sigma = e^{\log\sigma}` and
    :math:`\sum_j \log\sigma_j` -- is computed once per Gaussian, not once per sample. Against
    the separate passes it replaces (``z = mu + sigma * eps`` by NumPy, then
    :func:`diag_gaussian_log_prob` for the proposal and for the prior), measured at K = 5000,
    d = 50, float32, one thread: 0.55 against 0.92 ms per data point, the draws included.
    """
    eps, mu, log_sigma = _ref._check_reparam(eps, mu, log_sigma)
    K, B, d = eps.shape
    z = np.empty_like(eps)
    log_q = np.empty((K, B), dtype=eps.dtype)
    log_p = np.empty((K, B), dtype=eps.dtype)
    with np.errstate(over="ignore"):  # sigma above ~1e38 (1e308): inf, as the reference
        sigma = np.exp(log_sigma)
    _pick(_reparam_kernel)(eps, mu, sigma, log_sigma.sum(axis=-1, dtype=np.float64), z, log_q,
                           log_p, d * _ref.HALF_LOG_2PI)
    return z, log_q, log_p


# --------------------------------------------------------------------------- linear layer
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


_bias_act_kernel = _parallel_and_serial(_bias_act_kernel)


def _bias_kernel(y, b):
    # In place: y <- y + b. NumPy's broadcast 'y += b' runs its inner loop once per row, and on
    # rows of a few hundred entries that costs more than the additions: measured 2-3x slower
    # (904 x 200 float32, one thread: 48 against 17 us). Its own kernel, without the
    # activations, so that it compiles in a fraction of a second.
    for r in prange(y.shape[0]):
        yr = y[r]
        for j in range(y.shape[1]):
            yr[j] += b[j]


_bias_kernel = _parallel_and_serial(_bias_kernel)


def _act_grad_kernel(y, g, delta, gb_parts, code, one):
    # delta = g * f'(y) (f' from the output); gb_parts[c] += column sums of delta over the c-th
    # block of rows (float64). Each thread owns a block of rows and its own row of partial sums,
    # so every loop runs along contiguous rows (4x faster than blocks of columns on one thread,
    # 1000 x 200 float32: 0.04 against 0.17 ms); the wrapper adds the partial sums.
    N, m = y.shape
    zero = one - one
    n_parts = gb_parts.shape[0]
    for c in prange(n_parts):
        acc = gb_parts[c]
        for r in range(c * N // n_parts, (c + 1) * N // n_parts):
            yr = y[r]
            gr = g[r]
            dr = delta[r]
            if code == 1:  # (no code 0: the identity's sums are _colsum_kernel's)
                for j in range(m):
                    dr[j] = gr[j] * (one - yr[j] * yr[j])
            elif code == 2:
                for j in range(m):
                    dr[j] = gr[j] if yr[j] > zero else zero
            else:
                for j in range(m):
                    dr[j] = gr[j] * (yr[j] * (one - yr[j]))
            for j in range(m):
                acc[j] += dr[j]


_act_grad_kernel = _parallel_and_serial(_act_grad_kernel)


_check_linear = _ref._check_linear  # shared validation (reference.py)


def linear(x, W, b, activation=None):
    r"""Affine layer over stacked samples with a fused activation: :math:`y = f(xW + b)`,
    the contract of :func:`scratchdgm.kernels.reference.linear`.

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
    passes (GEMM, ``+ b``, ``np.tanh``) the fused pass wins: its tanh takes 0.99 ns per element
    in float64 against NumPy's 2.03, and 0.47 against 0.52 in float32 (904 x 200, bias
    included), and it reads and writes the output once instead of twice. Without an activation
    the bias has a small kernel of its own (:func:`_bias_kernel`), 2-3x faster than NumPy's
    broadcast ``y += b`` on rows of a few hundred entries.
    """
    x, W, b = _check_linear(x, W, b, activation)
    n, m = W.shape
    y = np.matmul(x.reshape(-1, n), W)
    code = _ACT_CODE[activation]
    if not code:
        if b is not None:
            _pick(_bias_kernel)(y, b)
    else:
        _pick(_bias_act_kernel)(y, b if b is not None else y[0], b is not None, code,
                         y.dtype.type(1))
    return y.reshape(x.shape[:-1] + (m,))


def linear_backward(x, W, y, grad, activation=None, need_x_grad=True):
    r"""Backward of :func:`linear`: one fused pass for :math:`\delta = \bar y \odot f'(y)` and
    the bias gradient (column sums), then two BLAS products, :math:`\bar W = x^\top\delta`
    and :math:`\bar x = \delta W^\top`; contract of
    :func:`scratchdgm.kernels.reference.linear_backward`.
    """
    x, W, _ = _check_linear(x, W, None, activation)
    n, m = W.shape
    x2 = x.reshape(-1, n)
    y2 = _same(y, x.dtype).reshape(-1, m)
    g2 = _same(grad, x.dtype).reshape(-1, m)
    code = _ACT_CODE[activation]
    # one row of partial column sums per thread (one row, the sums themselves, on one thread)
    gb_parts = np.zeros((max(1, min(_threads(), len(g2))), m), dtype=np.float64)
    delta = np.empty_like(g2) if code else g2
    # For the identity the kernel only sums the columns (delta is g itself: no copy).
    _pick(_act_grad_kernel)(y2, g2, delta, gb_parts, code, y2.dtype.type(1)) if code else \
        _pick(_colsum_kernel)(g2, gb_parts)
    gb = gb_parts[0] if len(gb_parts) == 1 else gb_parts.sum(axis=0)
    gW = x2.T @ delta
    gx = (delta @ W.T).reshape(x.shape) if need_x_grad else None
    return gx, gW, gb.astype(x.dtype)


def _colsum_kernel(g, gb_parts):
    # gb_parts[c] += column sums of the c-th block of rows of g (float64), as _act_grad_kernel
    N, m = g.shape
    n_parts = gb_parts.shape[0]
    for c in prange(n_parts):
        acc = gb_parts[c]
        for r in range(c * N // n_parts, (c + 1) * N // n_parts):
            gr = g[r]
            for j in range(m):
                acc[j] += gr[j]


_colsum_kernel = _parallel_and_serial(_colsum_kernel)


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
    r"""One Adam step in place, in one pass over the flattened parameter and its moments; the
    arithmetic is that of :func:`scratchdgm.kernels.reference.adam_update` (and of
    :class:`scratchdgm.optim.Adam`), in the parameter's dtype.
    """
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




# --------------------------------------------------------------------------- Box-Muller
_GAMMA = np.uint64(_ref.SPLITMIX_GAMMA)
_M1, _M2 = np.uint64(_ref.SPLITMIX_M1), np.uint64(_ref.SPLITMIX_M2)
_S11, _S27, _S30, _S31, _S32 = (np.uint64(k) for k in (11, 27, 30, 31, 32))
_LOW32 = np.uint64(0xFFFFFFFF)
_U32, _U53 = _ref._U32, _ref._U53


@njit(inline="always", error_model="numpy")
def _splitmix64(seed, j):
    # word j of reference.splitmix64(seed, .): uint64 arithmetic throughout (a uint64 mixed
    # with a signed int would make Numba compute in float64)
    z = seed + (np.uint64(j) + np.uint64(1)) * _GAMMA
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


@njit(inline="always", error_model="numpy", fastmath={"contract"})
def _polar_pair(u1, u2):
    # Box-Muller: the radius sqrt(-2 log u1) at the angle 2 pi u2
    r = math.sqrt(-2.0 * vlog(u1))
    c, s = vcos_sin_turns(u2)
    return r * c, r * s


@njit(inline="always", error_model="numpy", fastmath={"contract"})
def _pair32(seed, i):
    # float32 draws: u1 and u2 from the high and the low half of word i
    w = _splitmix64(seed, i)
    return _polar_pair((np.float64(w >> _S32) + 0.5) * _U32, (np.float64(w & _LOW32) + 0.5) * _U32)


@njit(inline="always", error_model="numpy", fastmath={"contract"})
def _pair64(seed, i):
    # float64 draws: u1 and u2 from the top 53 bits of words 2i and 2i + 1
    return _polar_pair((np.float64(_splitmix64(seed, 2 * i) >> _S11) + 0.5) * _U53,
                       (np.float64(_splitmix64(seed, 2 * i + 1) >> _S11) + 0.5) * _U53)


#: Pairs of draws per task of the parallel Box-Muller kernels (their inner loop vectorises).
BOX_MULLER_CHUNK = 4096

# Two kernels, one per dtype, so that a run compiles only the one it uses (0.5-0.7 s each on
# a cold cache).
# Threads take chunks of pairs. Within a chunk, the cosines and the sines go to two views of
# `out`: written as out[i] and out[pairs + i] of one array, LLVM could not prove the two stores
# apart and the loop ran 5x slower, unvectorised (measured). An odd count keeps the last pair's
# cosine alone.


def _box_muller32_kernel(seed, out, pairs):
    full = out.shape[0] // 2
    for c in prange((full + BOX_MULLER_CHUNK - 1) // BOX_MULLER_CHUNK):
        i0 = c * BOX_MULLER_CHUNK
        i1 = min(i0 + BOX_MULLER_CHUNK, full)
        cos_half, sin_half = out[i0:i1], out[pairs + i0:pairs + i1]
        for j in range(i1 - i0):
            cos_half[j], sin_half[j] = _pair32(seed, i0 + j)   # rounded once to float32
    if out.shape[0] % 2:
        out[pairs - 1] = _pair32(seed, pairs - 1)[0]


def _box_muller64_kernel(seed, out, pairs):
    full = out.shape[0] // 2
    for c in prange((full + BOX_MULLER_CHUNK - 1) // BOX_MULLER_CHUNK):
        i0 = c * BOX_MULLER_CHUNK
        i1 = min(i0 + BOX_MULLER_CHUNK, full)
        cos_half, sin_half = out[i0:i1], out[pairs + i0:pairs + i1]
        for j in range(i1 - i0):
            cos_half[j], sin_half[j] = _pair64(seed, i0 + j)
    if out.shape[0] % 2:
        out[pairs - 1] = _pair64(seed, pairs - 1)[0]


_box_muller32_kernel = _parallel_and_serial(_box_muller32_kernel)
_box_muller64_kernel = _parallel_and_serial(_box_muller64_kernel)


def box_muller(seed, n, dtype):
    r"""``n`` standard normal draws from a 64-bit seed, one vectorised pass that computes its
    random words as it goes; the contract and the mathematics of
    :func:`scratchdgm.kernels.reference.box_muller` (in float64 and rounded once, as there:
    the draws differ from the reference's by the last bits of the logarithm, cosine and sine).
    """
    dtype = _ref._check_draw_dtype(dtype)
    n = _ref._check_draw_count(n)
    seed = np.uint64(_ref._check_seed(seed))
    out = np.empty(n, dtype=dtype)
    kernel = _box_muller64_kernel if dtype == np.float64 else _box_muller32_kernel
    with np.errstate(over="ignore"):  # NUMBA_DISABLE_JIT: NumPy's uint64 scalars wrap, warning
        _pick(kernel)(seed, out, (n + 1) // 2)
    return out
