r"""Vectorisable elementary functions for the Numba kernels: exp, expm1, log1p, tanh, sigmoid.

Why not ``math.exp``? Numba compiles ``math.exp`` to a call into the C library, one element at a
time, and without Intel's SVML (not installed here) LLVM cannot turn a loop of such calls into
SIMD code: a log-sum-exp over K then runs at one exponential per 4-6 ns, an order of magnitude
below the memory bandwidth. The functions below use nothing but multiplications, additions,
comparisons and bit casts, so the loop vectoriser processes 8 (float64) or 16 (float32) elements
per AVX-512 instruction.

Algorithm (the textbook one: Muller, *Elementary Functions*, 3rd ed., ch. 6; Cody & Waite 1980):

.. math::

    e^x = 2^n e^r,\qquad n = \operatorname{round}(x/\ln 2),\qquad
    r = x - n\ln 2 \in [-\tfrac{\ln 2}{2}, \tfrac{\ln 2}{2}],

* :math:`n\ln 2` is subtracted in two parts (a short :math:`\ln 2` whose product with n is
  exact, then the remainder: the fdlibm split);
* the rounding is the magic-number trick :math:`t = x\log_2 e + 1.5\cdot 2^{52}`,
  :math:`n = t - 1.5\cdot 2^{52}` -- and the low bits of :math:`t` *are* n, so
  :math:`2^n` is made by shifting them into the exponent field (two integer instructions). The
  trick is why these functions must not be compiled with ``fastmath`` re-association;
* :math:`e^r` is a polynomial: degree 10 (float64) or 6 (float32), the Chebyshev interpolant of
  :math:`e^r` on :math:`[-\ln 2/2, \ln 2/2]` computed in 80-bit arithmetic and converted to the
  monomial basis (relative error 3.4e-16 and 2.0e-8 with the coefficients rounded; a near-
  minimax polynomial, two degrees lower than the Taylor polynomial of the same accuracy);
* :math:`2^n` is applied as :math:`2^{n-1}` times a polynomial for :math:`2e^r`: one multiply
  then covers every n from the smallest normal result up to overflow (inf). Results below the
  smallest normal number are flushed to zero: producing subnormals costs a microcode assist
  (~100 cycles) per element on x86, and nothing here needs numbers below 1e-307 (1e-38 in
  float32).

:math:`\operatorname{expm1}` uses the same reduction with the Taylor polynomial of
:math:`e^r - 1` (no cancellation near 0); :math:`\log(1+u)` for :math:`u \in [0, 1]` (all the
softplus needs) is :math:`2\operatorname{artanh}\frac{u}{2+u}` by its odd series
(:math:`t = u/(2+u) \le 1/3`); :math:`\tanh x = -\operatorname{expm1}(-2|x|)/(2 +
\operatorname{expm1}(-2|x|))` with the sign of x, which keeps full relative accuracy near 0.
Its expm1 has a nonpositive argument, so :math:`2^n \le 1` is one normal number made from the
rounding's bits, with none of the general expm1's branches for large n: half the instructions,
twice the speed (0.99 against 2.13 ns per float64 element, 0.47 against 0.91 in float32, with
the bias added, 904 x 200 on one thread) at the same accuracy (within 4.2 float64, 1.7
float32 epsilons of the exact tanh over 4 million points).

:func:`vcos_sin_turns` (float64 only, for the Box--Muller sampler) gives
:math:`\cos 2\pi u` and :math:`\sin 2\pi u` together: the nearest quarter turn
:math:`q = \operatorname{round}(4u)` is taken out exactly, the rest
:math:`\theta = 2\pi(u - q/4) \in [-\pi/4, \pi/4]` goes into the Taylor polynomials of sin and
cos (degrees 17 and 18: truncation below 1e-19), and the pair is rotated back by q quarter turns
(a swap and two sign flips, done by selects).

Each public function (``vexp``, ``vexpm1``, ``vlog1p_unit``, ``vtanh``, ``vsigmoid``,
``vexp_nonpos``, ``vlog``, ``vcos_sin_turns``) is a plain NumPy function in Python -- what runs
under ``NUMBA_DISABLE_JIT=1`` -- overloaded for Numba with a float32 and a float64 implementation
(``vcos_sin_turns``: float64 only); float32 arithmetic stays in float32. The tests hold them to
NumPy over the whole float range (``vcos_sin_turns`` to extended precision).
"""

import math
from fractions import Fraction

import numpy as np
from numba.core import config

__all__ = ["vexp", "vexpm1", "vlog1p_unit", "vtanh", "vsigmoid", "vexp_nonpos", "vlog",
           "vcos_sin_turns"]


# ------------------------------------------------------------------ plain-NumPy definitions
# These are the semantics, and what runs when Numba's JIT is disabled.
def vexp(x):
    """exp(x) of a float32/float64 scalar, in the scalar's precision."""
    with np.errstate(over="ignore", under="ignore"):
        return np.exp(x)


def vexp_nonpos(x):
    """exp(x) without the range checks, for the log-sum-exp's inner loop.

    Compiled: arguments below the flush threshold (-707 in float64, -86.5 in float32; -inf
    included) give exp(threshold) (about 1e-307 / 3e-38) instead of 0 -- invisible next to
    the term of the running maximum, which is at least 1 -- and NaN propagates; arguments
    above the overflow threshold (709 / 88) give garbage, which the caller must detect and
    discard (it compares the running maximum with its shift). Two instructions cheaper per
    element than :func:`vexp`.
    """
    with np.errstate(over="ignore", under="ignore"):
        return np.exp(x)


def vexpm1(x):
    """expm1(x) of a float32/float64 scalar."""
    with np.errstate(over="ignore", under="ignore"):
        return np.expm1(x)


def vlog1p_unit(u):
    """log1p(u) for u in [0, 1] (the softplus's correction term)."""
    return np.log1p(u)


def vtanh(x):
    """tanh(x) of a float32/float64 scalar."""
    return np.tanh(x)


def vlog(x):
    """log(x) for positive normal x (compiled: no handling of 0, inf, NaN or subnormals --
    the caller's job)."""
    return np.log(x)


def vsigmoid(x):
    """The logistic sigmoid 1 / (1 + exp(-x))."""
    with np.errstate(over="ignore"):
        return 1 / (1 + np.exp(-x))


def vcos_sin_turns(u):
    """(cos 2 pi u, sin 2 pi u) of a float64 scalar u in [0, 1] (compiled: float64 only)."""
    return np.cos(2 * np.pi * u), np.sin(2 * np.pi * u)


# ------------------------------------------------------------------ coefficients
# e^r on [-ln2/2, ln2/2], highest degree first (see the module docstring for how obtained).
_EXP_POLY64 = (2.762643593985246e-07, 2.7640184636214133e-06, 2.4801504199272975e-05,
               0.00019841170259649044, 0.0013888888932508969, 0.008333333385678335,
               0.04166666666657397, 0.16666666666554364, 0.5000000000000006,
               1.0000000000000067, 1.0)
_EXP_POLY32 = (0.0013941108481958508, 0.00837512593716383, 0.04166635125875473,
               0.16666415333747864, 0.5, 1.0, 1.0)


def _taylor_expm1(degree):
    return tuple(1.0 / math.factorial(k) for k in range(degree, 0, -1))  # Horner: highest first


def _artanh_series(n_terms):
    # log1p(u) = 2 t (1 + t^2/3 + t^4/5 + ...), t = u / (2 + u)
    return tuple(float(Fraction(2, 2 * k + 1)) for k in range(n_terms - 1, -1, -1))


class _Consts:
    """Constants of one precision, as scalars of that precision (so arithmetic stays in it)."""

    def __init__(self, ftype, mant_bits, bias, exp_poly, expm1_degree, log_terms, lo, hi, lo_m1):
        f = ftype
        self.magic = f(1.5 * 2.0 ** mant_bits)
        self.log2e = f(1.4426950408889634)
        # ln 2 = LN2_HI + LN2_LO, LN2_HI with trailing zero bits so that n * LN2_HI is exact
        # (the fdlibm / Cephes splits).
        if f is np.float32:
            self.ln2_hi, self.ln2_lo = f(0.693145751953125), f(1.428606765330187045e-06)
        else:
            self.ln2_hi, self.ln2_lo = f(6.93147180369123816490e-01), f(1.90821492927058770002e-10)
        self.exp2_c = tuple(f(2.0 * c) for c in exp_poly)  # 2 e^r: the factor 2 is exact
        self.expm1_c = tuple(f(c) for c in _taylor_expm1(expm1_degree))
        self.log1p_c = tuple(f(c) for c in _artanh_series(log_terms))
        self.lo, self.hi, self.lo_m1 = f(lo), f(hi), f(lo_m1)
        self.zero, self.one, self.two, self.half = f(0), f(1), f(2), f(0.5)
        self.sqrt2 = f(1.4142135623730951)
        self.f = f
        self.mant_bits, self.bias = mant_bits, bias
        # (bias - 1) in the exponent field, minus the magic number's own low bits (2^(m-1)),
        # which the shift pushes out anyway.
        self.exp_offset = (bias - 1) << mant_bits


# lo: exp flushes to zero below it (just above the log of the smallest normal number, so that
# 2^(n-1) stays normal); hi: just past overflow (exp(hi) = inf); lo_m1: expm1 = -1 below it.
_C32 = _Consts(np.float32, 23, 127, _EXP_POLY32, 7, 7, -86.5, 88.8, -20.0)
_C64 = _Consts(np.float64, 52, 1023, _EXP_POLY64, 12, 16, -707.0, 709.8, -40.0)


# ------------------------------------------------------------------ Numba implementations
def _make_impls(C, bits_to_float, float_to_bits, int_t, jit):
    magic, log2e, ln2_hi, ln2_lo = C.magic, C.log2e, C.ln2_hi, C.ln2_lo
    cexp2, cem1, clog = C.exp2_c, C.expm1_c, C.log1p_c
    lo, hi, lo_m1 = C.lo, C.hi, C.lo_m1
    zero, one, two = C.zero, C.one, C.two
    mant_bits, bias, exp_offset = C.mant_bits, C.bias, C.exp_offset
    mant_mask, one_bits = (1 << mant_bits) - 1, bias << mant_bits
    sqrt2, half = C.sqrt2, C.half
    int_to_float = C.f
    n_exp2, n_em1, n_log = len(cexp2), len(cem1), len(clog)

    @jit
    def _reduce(x):
        # x = n ln 2 + r, |r| <= ln 2 / 2: returns (t, n as a float, r), where the low bits of
        # t = x log2(e) + magic hold n (two's complement) -- the magic-number rounding
        t = x * log2e + magic
        nf = t - magic
        return t, nf, (x - nf * ln2_hi) - nf * ln2_lo

    @jit
    def _exp_core(xs):
        # xs already clamped to [lo, hi], not NaN. Returns e^xs (normal or inf).
        t, nf, r = _reduce(xs)
        p = cexp2[0]
        for i in range(1, n_exp2):
            p = p * r + cexp2[i]
        # The low bits of t hold n (two's complement): shift them into the exponent field.
        scale = bits_to_float((float_to_bits(t) << mant_bits) + exp_offset)
        return p * scale  # = 2 e^r * 2^(n-1)

    @jit
    def exp_impl(x):
        xs = x
        if not (x >= lo):
            xs = lo
        if x > hi:
            xs = hi
        if x != x:
            xs = zero
        out = _exp_core(xs)
        if x < lo:
            out = zero
        if x != x:
            out = x
        return out

    @jit
    def exp_nonpos_impl(x):
        # 'lo if lo > x else x' is one max instruction that lets NaN through (x86 max returns
        # its second operand when either is NaN), so NaN propagates at no cost.
        xs = lo if lo > x else x
        return _exp_core(xs)

    @jit
    def expm1_impl(x):
        # Below lo_m1, expm1 is -1 to working precision; clamping keeps 2^n normal.
        xs = x
        if not (x >= lo_m1):
            xs = lo_m1
        if x > hi:
            xs = hi
        if x != x:
            xs = zero
        _, nf, r = _reduce(xs)
        p = cem1[0]
        for i in range(1, n_em1):
            p = p * r + cem1[i]
        em1 = p * r
        n = int_t(nf)
        n1 = n >> 1
        s1 = bits_to_float((n1 + bias) << mant_bits)
        s2 = bits_to_float((n - n1 + bias) << mant_bits)
        # 2^n (e^r - 1) + (2^n - 1): exact for n = 0, no cancellation otherwise; for large n
        # (where 2^n alone may overflow although e^x does not) the plain (e^r) 2^n.
        out = em1 * (s1 * s2) + (s1 * s2 - one)
        if n > mant_bits:
            out = ((em1 + one) * s1) * s2
        if x != x:
            out = x
        return out

    @jit
    def log1p_unit_impl(u):
        t = u / (two + u)
        t2 = t * t
        p = clog[0]
        for i in range(1, n_log):
            p = p * t2 + clog[i]
        return p * t

    @jit
    def _expm1_nonpos(t):
        # expm1(t) for t <= 0 (NaN propagates): expm1_impl without what t > 0 needs. Here
        # n = round(t / ln 2) is in [lo_m1 / ln 2, 0], so 2^n is one normal number made from
        # the rounding's own bits (as in _exp_core) and no branch is needed.
        ts = lo_m1 if lo_m1 > t else t  # a max that lets NaN through
        tm, _, r = _reduce(ts)
        p = cem1[0]
        for i in range(1, n_em1):
            p = p * r + cem1[i]
        scale = bits_to_float((float_to_bits(tm) << mant_bits) + one_bits)  # 2^n
        return (p * r) * scale + (scale - one)  # 2^n (e^r - 1) + (2^n - 1)

    @jit
    def tanh_impl(x):
        ax = abs(x)
        u = _expm1_nonpos(-(ax + ax))
        # |u| = -u, and +0 for x = +-0: the sign comes from x alone (NaN stays NaN)
        return math.copysign(abs(u) / (two + u), x)

    @jit
    def sigmoid_impl(x):
        return one / (one + exp_impl(-x))

    @jit
    def log_impl(x):
        # x = 2^e f with f in [sqrt(1/2), sqrt(2)): log x = e ln2 + log1p(f - 1), the latter by
        # the artanh series (|t| < 0.172 here). e and f come from the bits of x.
        bits = float_to_bits(x)
        e = (bits >> mant_bits) - bias
        f = bits_to_float((bits & mant_mask) | one_bits)
        if f > sqrt2:
            f = f * half
            e = e + 1
        ef = int_to_float(e)
        return log1p_unit_impl(f - one) + ef * ln2_lo + ef * ln2_hi

    return (exp_impl, expm1_impl, log1p_unit_impl, tanh_impl, sigmoid_impl, exp_nonpos_impl,
            log_impl)


_PUBLIC = (vexp, vexpm1, vlog1p_unit, vtanh, vsigmoid, vexp_nonpos, vlog)

if not config.DISABLE_JIT:
    from llvmlite import ir
    from numba import types
    from numba.core.extending import intrinsic, overload, register_jitable

    def _bits_to_float_intrinsic(ftype, llvm_float, width):
        @intrinsic
        def bits_to_float(typingctx, i):
            if not isinstance(i, types.Integer):
                return None

            def codegen(context, builder, signature, args):
                v = args[0]
                ity = ir.IntType(width)
                if i.bitwidth > width:
                    v = builder.trunc(v, ity)
                elif i.bitwidth < width:
                    v = builder.sext(v, ity)
                return builder.bitcast(v, llvm_float)

            return ftype(i), codegen

        return bits_to_float

    def _float_to_bits_intrinsic(ftype, width):
        # Returns the bits as int64 (sign-extended for float32) so that Numba's integer
        # arithmetic on them stays in one type.
        @intrinsic
        def float_to_bits(typingctx, x):
            if x != ftype:
                return None

            def codegen(context, builder, signature, args):
                v = builder.bitcast(args[0], ir.IntType(width))
                if width < 64:
                    v = builder.sext(v, ir.IntType(64))
                return v

            return types.int64(x), codegen

        return float_to_bits

    _IMPL32 = _make_impls(_C32, _bits_to_float_intrinsic(types.float32, ir.FloatType(), 32),
                          _float_to_bits_intrinsic(types.float32, 32), np.int64,
                          register_jitable)
    _IMPL64 = _make_impls(_C64, _bits_to_float_intrinsic(types.float64, ir.DoubleType(), 64),
                          _float_to_bits_intrinsic(types.float64, 64), np.int64,
                          register_jitable)

    def _register(py_func, index):
        # Explicit flags: these must never inherit a caller's 'reassoc' (magic-number rounding),
        # and error_model='numpy' keeps divisions free of the branch that blocks vectorisation.
        @overload(py_func, jit_options={"fastmath": {"contract"}, "error_model": "numpy"})
        def _ol(x):
            impl32, impl64 = _IMPL32[index], _IMPL64[index]
            if x == types.float32:
                return lambda x: impl32(x)
            if x == types.float64:
                return lambda x: impl64(x)
            return None

    for _i, _f in enumerate(_PUBLIC):
        _register(_f, _i)


# ------------------------------------------------------------------ cos and sin of a turn
# Taylor coefficients of sin and cos in theta^2, highest degree first (Horner).
_SIN_C = tuple((-1) ** k / math.factorial(2 * k + 1) for k in range(8, -1, -1))
_COS_C = tuple((-1) ** k / math.factorial(2 * k) for k in range(9, -1, -1))

if not config.DISABLE_JIT:
    _TWO_PI = 2.0 * math.pi
    _N_SIN, _N_COS = len(_SIN_C), len(_COS_C)

    @register_jitable
    def _cos_sin_turns_impl(u):
        q = math.floor(u * 4.0 + 0.5)                # nearest quarter turn, 0..4
        t = (u - q * 0.25) * _TWO_PI                 # exact subtraction; |t| <= pi/4
        t2 = t * t
        s = _SIN_C[0]
        for i in range(1, _N_SIN):
            s = s * t2 + _SIN_C[i]
        s = s * t
        c = _COS_C[0]
        for i in range(1, _N_COS):
            c = c * t2 + _COS_C[i]
        qi = np.int64(q)
        odd = (qi & 1) == 1                          # a quarter turn: (c, s) -> (-s, c)
        cq = -s if odd else c
        sq = c if odd else s
        if (qi & 2) == 2:                            # a half turn: (c, s) -> (-c, -s)
            cq, sq = -cq, -sq
        return cq, sq

    @overload(vcos_sin_turns, jit_options={"fastmath": {"contract"}, "error_model": "numpy"})
    def _cos_sin_turns_ol(u):
        if u == types.float64:
            return lambda u: _cos_sin_turns_impl(u)
        return None
