r"""The Numba kernels (:mod:`scratchdgm.kernels.cpu`) equal the NumPy reference.

Every compiled kernel is compared with :mod:`scratchdgm.kernels.reference` on
Hypothesis-generated shapes and values, in float32 and float64, including the edge cases the
IWAE objective produces: ``-inf`` log-weights (zero-weight samples), all-``-inf`` columns, huge
magnitudes, saturated logits. Tolerances: 1e-12 (float64) and 1e-5 (float32), relative to the
scale of the terms summed (a sum whose terms cancel cannot be compared relative to itself).

The vectorised elementary functions of :mod:`scratchdgm.kernels._vmath` are checked against
NumPy over the whole float range.

This module also runs with ``NUMBA_DISABLE_JIT=1`` (see :func:`test_suite_passes_without_jit`),
where the same kernels execute as plain Python.
"""

import os
import subprocess
import sys

import numba
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from scratchdgm.kernels import cpu, reference as ref

NO_JIT = os.environ.get("NUMBA_DISABLE_JIT", "0") not in ("", "0")
if os.environ.get("SCRATCHDGM_TEST_FEW_EXAMPLES"):
    # The NUMBA_DISABLE_JIT re-run (interpreted kernels): fewer examples, same properties.
    settings.register_profile("few", settings.get_profile("ci"), max_examples=8)
    settings.load_profile("few")
DTYPES = (np.float32, np.float64)
RTOL = {np.float32: 1e-5, np.float64: 1e-12}


@pytest.fixture(autouse=True, scope="module")
def compiled_logsumexp_at_every_size():
    # cpu.logsumexp hands arrays below LSE_MIN_ELEMENTS to the NumPy reference; the tests of
    # this module hold the compiled kernel itself to the reference, so they lift that threshold
    previous = cpu.LSE_MIN_ELEMENTS
    cpu.LSE_MIN_ELEMENTS = 0
    yield
    cpu.LSE_MIN_ELEMENTS = previous


def test_small_logsumexp_runs_the_reference(monkeypatch):
    monkeypatch.setattr(cpu, "LSE_MIN_ELEMENTS", 100)
    calls = []
    monkeypatch.setattr(cpu, "_small_logsumexp",
                        lambda a: calls.append(a.shape) or np.zeros(a.shape[1]))
    cpu.logsumexp(np.zeros((5, 19)))
    assert calls == [(5, 19)]
    cpu.logsumexp(np.zeros((5, 20)))  # 100 entries: the compiled kernel
    assert calls == [(5, 19)]


def _close(actual, expected, dtype, scale=None):
    """|actual - expected| <= rtol * (|expected| + scale) elementwise, same non-finite pattern."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape
    assert actual.dtype == np.dtype(dtype)
    fin = np.isfinite(expected)
    np.testing.assert_array_equal(np.isfinite(actual), fin)
    np.testing.assert_array_equal(actual[~fin], expected[~fin])  # same infs / nans
    s = np.abs(expected[fin].astype(np.float64))
    if scale is not None:
        s = s + np.broadcast_to(scale, expected.shape)[fin]
    err = np.abs(actual[fin].astype(np.float64) - expected[fin])
    bound = RTOL[dtype] * np.maximum(s, 1.0)
    assert np.all(err <= bound), f"max error {err.max()} (bound {bound[np.argmax(err - bound)]})"


dtypes = st.sampled_from(DTYPES)


@st.composite
def log_weights(draw):
    """(K, B) log weights: moderate or huge values, -inf entries, all -inf columns."""
    dtype = draw(dtypes)
    K = draw(st.integers(1, 40))
    B = draw(st.integers(1, 9))
    big = 1e30 if dtype == np.float32 else 1e300
    elem = st.one_of(
        st.floats(-50, 50),
        st.floats(-1e4, 1e4),
        st.sampled_from([-np.inf, -big, big, -1e5, 1e5]),
    )
    a = draw(hnp.arrays(np.float64, (K, B), elements=elem)).astype(dtype)
    if draw(st.booleans()):
        a[:, draw(st.integers(0, B - 1))] = -np.inf  # an all -inf column
    return a


@given(log_weights())
def test_logsumexp_equals_reference(a):
    _close(cpu.logsumexp(a), ref.logsumexp(a), a.dtype.type)


@given(log_weights(), st.integers(0, 2**32 - 1))
def test_logsumexp_backward_equals_reference(a, seed):
    lse = ref.logsumexp(a)
    g = np.random.default_rng(seed).standard_normal(a.shape[1]).astype(a.dtype)
    got = cpu.logsumexp_backward(a, lse, g)
    want = ref.logsumexp_backward(a, lse, g)
    _close(got, want, a.dtype.type, scale=np.abs(g)[None, :])


@pytest.mark.parametrize("dtype", DTYPES)
def test_logsumexp_edge_cases(dtype):
    inf = np.inf
    a = np.array([[-inf, 0.0, -inf, 1e30, 3.0, inf],
                  [-inf, -inf, -inf, -1e30, 3.0, 1.0],
                  [-inf, 1.0, 2.0, 1e30, 3.0, 2.0]], dtype=dtype)
    out = cpu.logsumexp(a)
    assert out[0] == -inf  # all -inf: no mass
    assert out[5] == inf
    np.testing.assert_allclose(out[1:5], [np.log1p(np.e), 2.0, 1e30 + np.log(2.0),
                                          3.0 + np.log(3.0)], rtol=RTOL[dtype])
    w = cpu.logsumexp_backward(a[:, :5], out[:5], np.ones(5, dtype))
    np.testing.assert_array_equal(w[:, 0], 0.0)  # no gradient into an all -inf column
    # (column 3 excluded: 1e30 + log 2 rounds to 1e30, so its two weights are 1 each)
    np.testing.assert_allclose(w.sum(axis=0)[[1, 2, 4]], 1.0, rtol=10 * RTOL[dtype])
    assert np.isnan(cpu.logsumexp(np.array([[1.0], [np.nan]], dtype=dtype)))[0]


@pytest.mark.parametrize("dtype", DTYPES)
def test_logsumexp_long_columns_and_large_rise(dtype):
    # The kernel shifts each column by its first entry; where the maximum rises far above it
    # (beyond cpu.LSE_MAX_RISE: 80 in float32, 700 in float64), or the first entry is -inf,
    # the column is redone exactly, and must give the reference's answer.
    rng = np.random.default_rng(0)
    a = rng.standard_normal((300, 37)).astype(dtype)
    a[250, :10] = 200.0            # a rise of 200: redone in float32, clamp-free in float64
    a[:40, 10:20] = -np.inf        # first entries -inf
    a[100:, 20:30] -= 1e4          # the first rows dominate
    a[299, 30:33] = 1000.0 if dtype == np.float64 else 100.0  # past the clamp, in the last row
    a[0, 33] = np.nan
    a[7, 34] = np.inf
    _close(cpu.logsumexp(a), ref.logsumexp(a), dtype)
    # columns wider than a super-block, and rise past the clamp both in a pass of LSE_ROWS rows
    # and in one of the K mod LSE_ROWS rows after them, take the same path
    b = rng.standard_normal((3 * cpu.LSE_ROWS + 5, 3)).astype(dtype)
    b[-1, 1] = 900.0 if dtype == np.float64 else 90.0
    b[cpu.LSE_ROWS + 2, 2] = 900.0 if dtype == np.float64 else 90.0
    _close(cpu.logsumexp(b), ref.logsumexp(b), dtype)
    c = rng.standard_normal((2, 2 * cpu.LSE_SUPER_COLUMNS + 130)).astype(dtype)
    c[1, -1] = 2000.0
    for threads in sorted({1, numba.get_num_threads()}):  # one chunk, then one per thread
        previous = numba.get_num_threads()
        numba.set_num_threads(threads)
        try:
            _close(cpu.logsumexp(c), ref.logsumexp(c), dtype)
        finally:
            numba.set_num_threads(previous)


@st.composite
def bernoulli_case(draw):
    dtype = draw(dtypes)
    K, B, D = draw(st.integers(1, 4)), draw(st.integers(1, 5)), draw(st.integers(1, 40))
    elem = st.one_of(st.floats(-30, 30), st.sampled_from([-1e4, 1e4, 0.0, -90.0, 90.0]))
    logits = draw(hnp.arrays(np.float64, (K, B, D), elements=elem)).astype(dtype)
    x = draw(hnp.arrays(np.float64, (B, D), elements=st.sampled_from([0.0, 1.0]))).astype(dtype)
    seed = draw(st.integers(0, 2**32 - 1))
    return logits, x, seed


def _bernoulli_scale(logits, x):
    terms = x.astype(np.float64) * logits - np.logaddexp(0, logits.astype(np.float64))
    return np.abs(terms).sum(axis=-1)


@given(bernoulli_case())
def test_bernoulli_log_prob_equals_reference(case):
    logits, x, _ = case
    dt = logits.dtype.type
    scale = _bernoulli_scale(logits, x)
    _close(cpu.bernoulli_log_prob(logits, x), ref.bernoulli_log_prob(logits, x), dt, scale)
    v1, d1 = cpu.bernoulli_log_prob_with_grad(logits, x)
    v2, d2 = ref.bernoulli_log_prob_with_grad(logits, x)
    _close(v1, v2, dt, scale)
    _close(d1, d2, dt)


@pytest.mark.parametrize("dtype", DTYPES)
def test_bernoulli_long_rows_at_the_largest_product(dtype):
    # cpu sums log(1 + e^{-|l|}) as the log of a product over blocks of pixels; logits of 0 make
    # every factor 2, the largest: 3000 pixels would overflow float64 without the blocks
    logits = np.zeros((2, 1, 3000), dtype=dtype)
    x = (np.arange(3000) % 3 == 0).astype(dtype)[None]
    for value in (cpu.bernoulli_log_prob(logits, x), cpu.bernoulli_log_prob_with_grad(logits, x)[0]):
        _close(value, ref.bernoulli_log_prob(logits, x), dtype)
        np.testing.assert_allclose(value, -3000 * np.log(2.0), rtol=1e-6)


@pytest.mark.parametrize("dtype", DTYPES)
def test_bernoulli_two_dimensional_logits(dtype):
    rng = np.random.default_rng(1)
    logits = rng.standard_normal((3, 7)).astype(dtype)
    x = (rng.random((3, 7)) < 0.5).astype(dtype)
    _close(cpu.bernoulli_log_prob(logits, x), ref.bernoulli_log_prob(logits, x), dtype)
    with pytest.raises(ValueError, match="do not match"):
        cpu.bernoulli_log_prob(logits, x[:, :3])


def _bshape(draw, full):
    """A shape broadcastable to ``full``: each axis full size or 1."""
    return tuple(n if draw(st.booleans()) else 1 for n in full)


@st.composite
def gaussian_case(draw):
    dtype = draw(dtypes)
    full = (draw(st.integers(1, 4)), draw(st.integers(1, 5)), draw(st.integers(1, 12)))
    shapes = [_bshape(draw, full) for _ in range(3)]
    shapes[0] = tuple(full[:2]) + (shapes[0][2],) if draw(st.booleans()) else shapes[0]
    z = draw(hnp.arrays(np.float64, shapes[0], elements=st.floats(-10, 10)))
    mu = draw(hnp.arrays(np.float64, shapes[1], elements=st.floats(-10, 10)))
    ls = draw(hnp.arrays(np.float64, shapes[2], elements=st.floats(-4, 4)))
    seed = draw(st.integers(0, 2**32 - 1))
    return z.astype(dtype), mu.astype(dtype), ls.astype(dtype), seed


def _gauss_terms(z, mu, ls):
    z, mu, ls = (a.astype(np.float64) for a in (z, mu, ls))
    eps = (z - mu) * np.exp(-ls)
    return eps, np.exp(-ls)


@given(gaussian_case())
def test_diag_gaussian_equals_reference(case):
    z, mu, ls, _ = case
    dt = z.dtype.type
    eps, _ = _gauss_terms(z, mu, ls)
    full = np.broadcast_shapes(z.shape, mu.shape, ls.shape)
    scale = np.broadcast_to(0.5 * eps**2 + np.abs(ls) + 1.0, full).sum(axis=-1)
    _close(cpu.diag_gaussian_log_prob(z, mu, ls), ref.diag_gaussian_log_prob(z, mu, ls), dt,
           scale)


@given(gaussian_case())
def test_diag_gaussian_backward_equals_reference(case):
    z, mu, ls, seed = case
    dt = z.dtype.type
    full = np.broadcast_shapes(z.shape, mu.shape, ls.shape)
    g = np.random.default_rng(seed).standard_normal(full[:-1]).astype(z.dtype)
    got = cpu.diag_gaussian_log_prob_backward(z, mu, ls, g)
    want = ref.diag_gaussian_log_prob_backward(z, mu, ls, g)
    eps, inv = _gauss_terms(z, mu, ls)
    # scale of the summed terms: |g| (|eps| inv + eps^2 + 1), summed over broadcast axes
    term = np.broadcast_to(np.abs(g)[..., None] * (np.abs(eps) * inv + eps**2 + 1), full)
    for a, b, inp in zip(got, want, (z, mu, ls)):
        assert a.shape == inp.shape
        _close(a, b, dt, scale=ref._reduce_to(term, inp.shape))


@pytest.mark.parametrize("dtype", DTYPES)
def test_diag_gaussian_standard_normal_closed_form(dtype):
    z = np.random.default_rng(2).standard_normal((3, 4, 5)).astype(dtype)
    zero = np.zeros((1, 1, 1), dtype)
    want = -0.5 * (z.astype(np.float64) ** 2).sum(-1) - 5 * 0.5 * np.log(2 * np.pi)
    _close(cpu.diag_gaussian_log_prob(z, zero, zero), want.astype(dtype), dtype)


@given(dtypes, st.integers(1, 6), st.integers(1, 4), st.integers(1, 9),
       st.integers(0, 2**32 - 1))
def test_diag_gaussian_reparam_equals_reference_and_the_two_densities(dtype, K, B, d, seed):
    from scratchdgm.kernels import conformance

    rng = np.random.default_rng(seed)
    eps = rng.standard_normal((K, B, d)).astype(dtype)
    mu = (3 * rng.standard_normal((B, d))).astype(dtype)
    ls = rng.uniform(-3, 2, (B, d)).astype(dtype)
    assert conformance.check_reparam(cpu, eps, mu, ls) <= 1
    z, log_q, log_p = cpu.diag_gaussian_reparam(eps, mu, ls)
    assert z.dtype == log_q.dtype == log_p.dtype == np.dtype(dtype)
    # the same numbers as the separate passes: the sample, then each log-density of it
    scale = 0.5 * (eps.astype(np.float64) ** 2).sum(-1) + np.abs(ls).sum(-1) + d
    _close(log_q, ref.diag_gaussian_log_prob(z, mu[None], ls[None]), dtype, scale=10 * scale)
    zero = np.zeros((1, 1, 1), dtype)
    _close(log_p, ref.diag_gaussian_log_prob(z, zero, zero), dtype,
           scale=0.5 * (z.astype(np.float64) ** 2).sum(-1) + d)


def test_diag_gaussian_reparam_rejects_mismatched_shapes():
    eps = np.zeros((4, 2, 3))
    with pytest.raises(ValueError, match="expected eps .K, B, d. with mu and log_sigma .B, d."):
        cpu.diag_gaussian_reparam(eps, np.zeros((2, 4)), np.zeros((2, 3)))
    with pytest.raises(ValueError, match="expected eps"):
        ref.diag_gaussian_reparam(eps[0], np.zeros(3), np.zeros(3))
    with pytest.raises(TypeError, match="eps has dtype int64"):
        cpu.diag_gaussian_reparam(eps.astype(np.int64), np.zeros((2, 3)), np.zeros((2, 3)))


ACTS = (None, "tanh", "relu", "sigmoid")


@st.composite
def linear_case(draw):
    dtype = draw(dtypes)
    lead = draw(hnp.array_shapes(min_dims=1, max_dims=3, max_side=5))
    n, m = draw(st.integers(1, 9)), draw(st.integers(1, 9))
    x = draw(hnp.arrays(np.float64, lead + (n,), elements=st.floats(-3, 3)))
    W = draw(hnp.arrays(np.float64, (n, m), elements=st.floats(-3, 3)))
    b = draw(st.none() | hnp.arrays(np.float64, (m,), elements=st.floats(-3, 3)))
    act = draw(st.sampled_from(ACTS))
    seed = draw(st.integers(0, 2**32 - 1))
    cast = (lambda a: None if a is None else a.astype(dtype))
    return cast(x), cast(W), cast(b), act, seed


@given(linear_case())
def test_linear_forward_and_backward_equal_reference(case):
    x, W, b, act, seed = case
    dt = x.dtype.type
    scale = np.abs(x) @ np.abs(W) + (0 if b is None else np.abs(b))
    y1, y2 = cpu.linear(x, W, b, act), ref.linear(x, W, b, act)
    _close(y1, y2, dt, scale)
    g = np.random.default_rng(seed).standard_normal(y1.shape).astype(x.dtype)
    for need_x in (True, False):
        gx1, gW1, gb1 = cpu.linear_backward(x, W, y2, g, act, need_x)
        gx2, gW2, gb2 = ref.linear_backward(x, W, y2, g, act, need_x)
        n, m = W.shape
        ag = np.abs(g).reshape(-1, m) * 2  # |f'| <= 1 for all four activations
        if need_x:
            _close(gx1, gx2, dt, scale=(ag @ np.abs(W).T).reshape(x.shape))
        else:
            assert gx1 is None and gx2 is None
        _close(gW1, gW2, dt, scale=np.abs(x).reshape(-1, n).T @ ag)
        _close(gb1, gb2, dt, scale=ag.sum(axis=0))


@pytest.mark.parametrize("dtype", DTYPES)
def test_kernels_preserve_dtype_and_reject_bad_input(dtype):
    a = np.zeros((2, 3), dtype)
    assert cpu.logsumexp(a).dtype == dtype
    with pytest.raises(TypeError, match="float32 or float64"):
        cpu.logsumexp(a.astype(np.int64))
    with pytest.raises(ValueError, match=r"shape \(K, B\)"):
        cpu.logsumexp(np.zeros(3, dtype))
    with pytest.raises(ValueError, match="unknown activation"):
        cpu.linear(a, np.zeros((3, 2), dtype), None, "gelu")


# ----------------------------------------------------------------- Box-Muller draws
def test_splitmix64_known_answers():
    # the published first outputs of SplitMix64 from state 0 (Vigna's reference splitmix64.c)
    assert [int(w) for w in ref.splitmix64(0, 3)] == [
        0xE220A8397B1DCDAF, 0x6E789E6AA1B965F4, 0x06C45D188009454F]
    # word j depends on j alone: a later start is a shifted stream
    np.testing.assert_array_equal(ref.splitmix64(ref.SPLITMIX_GAMMA * 5 % 2**64, 4),
                                  ref.splitmix64(0, 9)[5:])


@given(st.sampled_from(DTYPES), st.integers(0, 300), st.integers(0, 2**64 - 1))
def test_box_muller_equals_reference(dtype, n, seed):
    got, want = cpu.box_muller(seed, n, dtype), ref.box_muller(seed, n, dtype)
    assert got.shape == want.shape == (n,) and got.dtype == want.dtype == dtype
    _close(got, want, dtype)
    # the first draws do not depend on how many are asked for (pairs are counter-based)
    m = n // 2
    half = ref.box_muller(seed, 2 * m, dtype)
    np.testing.assert_array_equal(want[:m], half[:m])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("module", ["reference", "cpu"])
def test_box_muller_draws_are_standard_normal(module, dtype):
    # Margins checked once over seeds 0..199 of both modules and dtypes (800 runs): the
    # smallest KS p-value was 0.0043, the largest moment or correlation error 3.5 standard
    # errors (here, seed 7, the test wants p > 1e-4 and 5 standard errors). Breaking the angle
    # (2 pi u -> pi u) fails all three checks (moments off by 178 standard errors); breaking
    # the radius (sqrt(-log u)) fails the KS and moment checks (158).
    from scipy import stats

    n = 200_000
    km = ref if module == "reference" else cpu
    z = km.box_muller(7, n, dtype).astype(np.float64)
    assert np.isfinite(z).all()
    assert stats.kstest(z, "norm").pvalue > 1e-4
    se = {1: 1 / np.sqrt(n), 2: np.sqrt(2 / n), 4: np.sqrt(96 / n)}   # sd of the sample moments
    for p, want in ((1, 0.0), (2, 1.0), (4, 3.0)):
        assert abs(np.mean(z ** p) - want) < 5 * se[p], p
    # the two halves of the pairs (cosines, sines) are uncorrelated, and so are neighbours
    c, s_ = z[:n // 2], z[n // 2:]
    assert abs(np.corrcoef(c, s_)[0, 1]) < 5 / np.sqrt(n // 2)
    assert abs(np.corrcoef(z[:-1], z[1:])[0, 1]) < 5 / np.sqrt(n)
    # the radius is bounded by the uniforms' resolution (reference docstring)
    bits = 32 if dtype == np.float32 else 53
    assert np.abs(z).max() <= np.sqrt(2 * (bits + 1) * np.log(2))


@pytest.mark.parametrize("module", ["reference", "cpu"])
def test_box_muller_rejects_bad_input(module):
    km = ref if module == "reference" else cpu
    with pytest.raises(TypeError, match="float32 or float64"):
        km.box_muller(0, 4, np.int64)
    with pytest.raises(ValueError, match="n must be an int >= 0"):
        km.box_muller(0, -1, np.float64)
    with pytest.raises(ValueError, match="n must be an int >= 0"):
        km.box_muller(0, 2.5, np.float64)
    with pytest.raises(ValueError, match=r"seed must be an int in \[0, 2\*\*64\)"):
        km.box_muller(2**64, 4, np.float64)
    with pytest.raises(ValueError, match="seed"):
        km.box_muller(-1, 4, np.float64)


# ----------------------------------------------------------------- the elementary functions
def _vmath_kernels():
    from numba import njit

    from scratchdgm.kernels import _vmath

    def make(f):
        @njit(error_model="numpy")
        def apply(a, out):
            for i in range(a.size):
                out[i] = f(a[i])
        return apply

    kernels = {name: make(getattr(_vmath, name)) for name in
               ("vexp", "vexpm1", "vlog1p_unit", "vtanh", "vsigmoid", "vexp_nonpos", "vlog")}

    @njit(error_model="numpy")
    def cos_sin(u, c, s):
        for i in range(u.size):
            c[i], s[i] = _vmath.vcos_sin_turns(u[i])

    kernels["vcos_sin_turns"] = cos_sin
    return kernels


@pytest.fixture(scope="module")
def vmath():
    return _vmath_kernels()


def _grid(dtype, lo, hi, n=20001):
    x = np.concatenate([np.linspace(lo, hi, n), np.geomspace(1e-30, abs(hi) + 1, 200),
                        -np.geomspace(1e-30, abs(lo) + 1, 200), [0.0, -0.0]])
    return x.astype(dtype)


@pytest.mark.skipif(NO_JIT, reason="without the JIT these functions are NumPy's")
@pytest.mark.parametrize("dtype", DTYPES)
def test_vmath_matches_numpy(vmath, dtype):
    ulp = np.finfo(dtype).eps
    flush = -86.5 if dtype == np.float32 else -707.0  # exp flushes below (module docstring)
    big = 100.0 if dtype == np.float32 else 800.0
    cases = {
        "vexp": (np.exp, _grid(dtype, -big, big), 4),
        "vexpm1": (np.expm1, _grid(dtype, -big, big), 4),
        "vtanh": (np.tanh, _grid(dtype, -30, 30), 4),
        "vsigmoid": (lambda v: 1 / (1 + np.exp(-v.astype(np.float64))), _grid(dtype, -big, big), 4),
        "vlog1p_unit": (np.log1p, np.linspace(0, 1, 20001).astype(dtype), 4),
        "vlog": (np.log, np.concatenate([np.geomspace(np.finfo(dtype).tiny,
                                                      np.finfo(dtype).max / 4, 20001),
                                         np.linspace(0.5, 2, 20001)]).astype(dtype), 4),
    }
    with np.errstate(all="ignore"):
        for name, (fn, x, n_ulp) in cases.items():
            out = np.empty_like(x)
            vmath[name](x, out)
            want = fn(x).astype(np.float64)
            if name in ("vexp", "vsigmoid"):
                tiny = (x < flush) if name == "vexp" else (-x < flush)
                want = np.where(tiny, 0.0 if name == "vexp" else want, want)
                keep = want >= np.finfo(dtype).tiny * 4
                keep |= (want == 0) | ~np.isfinite(want)
            else:
                keep = np.ones(x.shape, bool)
            got = out.astype(np.float64)
            fin = np.isfinite(want) & keep
            np.testing.assert_array_equal(got[~np.isfinite(want)], want[~np.isfinite(want)])
            rel = np.abs(got[fin] - want[fin]) / np.maximum(np.abs(want[fin]), np.finfo(dtype).tiny)
            assert rel.max() <= n_ulp * ulp, f"{name}: {rel.max() / ulp:.1f} ulp"
        specials = np.array([np.nan, np.inf, -np.inf], dtype)
        out = np.empty_like(specials)
        vmath["vexp"](specials, out)
        assert np.isnan(out[0]) and out[1] == np.inf and out[2] == 0
        vmath["vtanh"](specials, out)
        assert np.isnan(out[0]) and out[1] == 1 and out[2] == -1
        zeros = np.array([0.0, -0.0], dtype)
        vmath["vtanh"](zeros, out[:2])
        assert list(np.signbit(out[:2])) == [False, True], "tanh keeps the sign of a zero"


@pytest.mark.skipif(NO_JIT, reason="without the JIT these functions are NumPy's")
def test_vcos_sin_turns_matches_numpy(vmath):
    # float64 only (the Box-Muller sampler's); u in [0, 1], the quarter turns exactly included
    u = np.concatenate([np.linspace(0, 1, 40001), np.random.default_rng(0).random(20000),
                        np.arange(9) / 8, [1e-300, 0.5 - 2**-53, 0.5 + 2**-53]])
    c, s = np.empty_like(u), np.empty_like(u)
    vmath["vcos_sin_turns"](u, c, s)
    # Compared in absolute terms (the values are sines and cosines), with 2 pi u in extended
    # precision where the platform has it: NumPy's own cos(2 pi u) in float64 is off by up to
    # 6e-16 here (the rounding of 2 pi u), ours by 1.6e-16.
    if np.finfo(np.longdouble).nmant >= 63:
        turn = np.longdouble("6.283185307179586476925286766559") * u.astype(np.longdouble)
        atol = 2.5e-16
    else:
        turn, atol = 2 * np.pi * u, 1e-15
    np.testing.assert_allclose(c, np.cos(turn).astype(np.float64), rtol=0, atol=atol)
    np.testing.assert_allclose(s, np.sin(turn).astype(np.float64), rtol=0, atol=atol)
    # whole and half turns are exact: cos = 1, -1, 1 at u = 0, 1/2, 1; sin = 1, -1 at 1/4, 3/4
    eighths_c, eighths_s = c[-12:-3], s[-12:-3]
    assert (eighths_c[[0, 4, 8]] == [1, -1, 1]).all() and (eighths_s[[2, 6]] == [1, -1]).all()


# ----------------------------------------------------------------- compile and debug modes
def test_nothing_compiles_or_imports_numba_cuda_at_import():
    code = ("import sys, scratchdgm, scratchdgm.kernels, scratchdgm.backend, "
            "scratchdgm.autodiff.fused; "
            "assert 'numba' not in sys.modules, 'numba imported eagerly'; "
            "from scratchdgm.kernels import cpu; "
            "assert 'numba.cuda' not in sys.modules; "
            "assert not any(k.overloads for k in (cpu._lse_kernel, cpu._lse_kernel.serial)), 'compiled at import'")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


@pytest.mark.skipif(NO_JIT, reason="this is the outer run")
@pytest.mark.slow
def test_suite_passes_without_jit():
    """The kernels also run as plain Python (NUMBA_DISABLE_JIT=1, for stepping in a debugger)."""
    env = dict(os.environ, NUMBA_DISABLE_JIT="1", SCRATCHDGM_TEST_FEW_EXAMPLES="1")
    res = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", __file__,
         "tests/test_fused_grad.py", "-k", "not without_jit and not at_import"],
        env=env, capture_output=True, text=True, timeout=600,
        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]
