"""Tests of scratchdgm.distributions: log-densities against SciPy, closed-form KL against Monte
Carlo and against the lecture's formula, gradients against finite differences, sampling
moments, and the parametrisation (log_sigma is a log standard deviation everywhere)."""

import math

import numpy as np
import pytest
from hypothesis import strategies as st
from scipy import stats
from scipy.special import expit, log_softmax

import scratchdgm as sd
from scratchdgm.autodiff.linalg import TriangularSolve
from scratchdgm.distributions import (
    Bernoulli,
    Categorical,
    DiagNormal,
    FullNormal,
    GaussianMixture,
    StandardNormal,
    StudentT,
    kl_divergence,
)
from scratchdgm.testing import check_gradients, check_gradients_at
from scratchdgm.testing import strategies as S


def random_tril(rng, d, batch=()):
    a = rng.normal(size=batch + (d, d)) * 0.5
    L = np.tril(a, -1)
    idx = np.arange(d)
    L[..., idx, idx] = np.exp(a[..., idx, idx])
    return L


def tril_from_free(a):
    """A differentiable map from a free (d, d) tensor to a Cholesky factor (for gradcheck)."""
    d = a.shape[-1]
    eye = np.eye(d)
    return a * np.tril(np.ones((d, d)), -1) + eye * (a * eye).exp()


def kl_formula(m0, s0, m1, s1):
    """[Mattei-DGM, "More on this KL regulariser"], evaluated with dense NumPy linear algebra."""
    s1inv = np.linalg.inv(s1)
    dm = m1 - m0
    return 0.5 * (np.trace(s1inv @ s0) + dm @ s1inv @ dm - len(m0)
                  + np.log(np.linalg.det(s1) / np.linalg.det(s0)))


# ------------------------------------------------------------------------------ log_prob vs SciPy
def test_diag_normal_log_prob_matches_scipy_with_broadcasting():
    rng = np.random.default_rng(0)
    mu, ls = rng.normal(size=(2, 5, 3))
    x = rng.normal(size=(4, 5, 3))
    q = DiagNormal(sd.tensor(mu), sd.tensor(ls))
    lp = q.log_prob(x)
    assert isinstance(lp, sd.Tensor) and lp.shape == (4, 5)
    np.testing.assert_allclose(lp.data, stats.norm(mu, np.exp(ls)).logpdf(x).sum(-1), rtol=1e-12)
    # a fixed shared sigma (scalar log_sigma), as for a Gaussian decoder with fixed variance
    fixed = DiagNormal(mu, np.log(0.3))
    np.testing.assert_allclose(fixed.log_prob(x[0]).data,
                               stats.norm(mu, 0.3).logpdf(x[0]).sum(-1), rtol=1e-12)
    assert fixed.batch_shape == (5,) and fixed.event_shape == (3,)


def test_standard_normal_log_prob_matches_scipy():
    z = np.random.default_rng(1).normal(size=(7, 4))
    p = StandardNormal(4)
    ref = stats.multivariate_normal(np.zeros(4), np.eye(4)).logpdf(z)
    np.testing.assert_allclose(p.log_prob(z).data, ref, rtol=1e-12)
    np.testing.assert_allclose(DiagNormal.log_prob(p, z).data, ref, rtol=1e-12)


def test_full_normal_log_prob_matches_scipy():
    rng = np.random.default_rng(2)
    d = 4
    mu = rng.normal(size=(3, d))
    L = random_tril(rng, d, (3,))
    x = rng.normal(size=(5, 3, d))
    lp = FullNormal(mu, L).log_prob(x)
    assert lp.shape == (5, 3)
    for b in range(3):
        ref = stats.multivariate_normal(mu[b], L[b] @ L[b].T).logpdf(x[:, b])
        np.testing.assert_allclose(lp.data[:, b], ref, rtol=1e-10)
    cov = FullNormal(mu, L).covariance_matrix.data
    np.testing.assert_allclose(cov, L @ np.swapaxes(L, -1, -2), rtol=1e-12)


def test_bernoulli_log_prob_matches_scipy_and_is_stable():
    rng = np.random.default_rng(3)
    logits = rng.normal(size=(6, 10)) * 3
    x = (rng.random((6, 10)) < 0.5).astype(float)
    ref = stats.bernoulli(expit(logits)).logpmf(x).sum(-1)
    np.testing.assert_allclose(Bernoulli(logits).log_prob(x).data, ref, rtol=1e-10)
    # extreme logits: the naive log(1 - sigmoid(40)) is log(0) = -inf in float64
    big = Bernoulli(np.array([[40.0, -40.0, 800.0]]))
    lp = big.log_prob(np.array([[0.0, 1.0, 1.0]])).data
    np.testing.assert_allclose(lp, [-80.0], rtol=1e-12)
    np.testing.assert_allclose(Bernoulli(logits).mean.data, expit(logits), rtol=1e-12)


def test_student_t_log_prob_matches_scipy():
    rng = np.random.default_rng(4)
    loc, log_scale = rng.normal(size=(2, 5, 3))
    for df in (0.7, 3.0, 30.0, 1e6):
        x = rng.standard_t(3.0, size=(2, 5, 3)) * 4
        t = StudentT(sd.tensor(loc), np.exp(log_scale), np.full(3, df))
        ref = stats.t(df, loc, np.exp(log_scale)).logpdf(x).sum(-1)
        np.testing.assert_allclose(t.log_prob(x).data, ref, rtol=1e-9)
    # large df tends to the Gaussian
    t = StudentT(loc, np.exp(log_scale), 1e8)
    np.testing.assert_allclose(t.log_prob(loc + 0.5).data,
                               DiagNormal(loc, log_scale).log_prob(loc + 0.5).data, rtol=1e-6)


def test_gaussian_mixture_log_prob_is_the_explicit_sum():
    rng = np.random.default_rng(5)
    m, d = 4, 3
    logits, mu, ls = rng.normal(size=m), rng.normal(size=(m, d)) * 2, rng.normal(size=(m, d)) * .3
    z = rng.normal(size=(6, 2, d)) * 2
    gmm = GaussianMixture(logits, mu, ls)
    lp = gmm.log_prob(z)
    assert lp.shape == (6, 2)
    w = np.exp(log_softmax(logits))
    dens = sum(w[k] * stats.multivariate_normal(mu[k], np.diag(np.exp(2 * ls[k]))).pdf(z)
               for k in range(m))
    np.testing.assert_allclose(lp.data, np.log(dens), rtol=1e-10)
    # far from every component the density underflows, the log-density does not
    far = gmm.log_prob(np.full((1, d), 60.0)).data
    assert np.isfinite(far).all() and far[0] < -500
    # one component: the mixture is that Gaussian
    one = GaussianMixture([0.3], mu[:1], ls[:1])
    np.testing.assert_allclose(one.log_prob(z).data, DiagNormal(mu[0], ls[0]).log_prob(z).data,
                               rtol=1e-12)


def test_categorical_log_prob_entropy():
    rng = np.random.default_rng(6)
    logits = rng.normal(size=(5, 4))
    k = np.array([0, 3, 2, 1, 3])
    c = Categorical(logits)
    np.testing.assert_allclose(c.log_prob(k).data, log_softmax(logits, -1)[np.arange(5), k],
                               rtol=1e-12)
    np.testing.assert_allclose(c.entropy().data, stats.entropy(np.exp(log_softmax(logits, -1)),
                                                               axis=-1), rtol=1e-12)
    np.testing.assert_allclose(c.probs.data.sum(-1), 1.0)


# ------------------------------------------------------------------------------ KL
def test_kl_diag_matches_formula_and_monte_carlo():
    rng = np.random.default_rng(7)
    d = 3
    mq, lq, mp, lp = rng.normal(size=(4, d)) * 0.5
    q, p = DiagNormal(mq, lq), DiagNormal(mp, lp)
    kl = kl_divergence(q, p).item()
    ref = kl_formula(mq, np.diag(np.exp(2 * lq)), mp, np.diag(np.exp(2 * lp)))
    assert kl == pytest.approx(ref, rel=1e-10)
    # Monte Carlo with the library's own sampler and log_prob: all three read log_sigma alike
    z = q.sample(200_000, rng)
    diff = q.log_prob(z).data - p.log_prob(z).data
    assert abs(kl - diff.mean()) < 5 * diff.std() / math.sqrt(len(diff))
    assert kl_divergence(q, q).item() == pytest.approx(0.0, abs=1e-12)


def test_kl_to_standard_normal_and_mixed_pairs():
    rng = np.random.default_rng(8)
    mu, ls = rng.normal(size=(2, 5, 4))
    q = DiagNormal(mu, ls)
    kl = kl_divergence(q, StandardNormal(4)).data
    np.testing.assert_allclose(kl, 0.5 * (mu ** 2 + np.exp(2 * ls) - 1).sum(-1) - ls.sum(-1),
                               rtol=1e-12)
    np.testing.assert_allclose(kl_divergence(q, DiagNormal(np.zeros(4), np.zeros(4))).data, kl,
                               rtol=1e-12)
    # diagonal and full covariance code paths agree
    np.testing.assert_allclose(kl_divergence(q, FullNormal(np.zeros(4), np.eye(4))).data, kl,
                               rtol=1e-10)
    p = DiagNormal(rng.normal(size=4), rng.normal(size=4))
    full_q = FullNormal(mu, np.eye(4) * np.exp(ls)[:, None, :])
    np.testing.assert_allclose(kl_divergence(full_q, p).data, kl_divergence(q, p).data,
                               rtol=1e-10)


def test_kl_full_matches_lecture_formula_and_monte_carlo():
    rng = np.random.default_rng(9)
    d = 3
    m0, m1 = rng.normal(size=(2, d))
    L0, L1 = random_tril(rng, d), random_tril(rng, d)
    q, p = FullNormal(m0, L0), FullNormal(m1, L1)
    kl = kl_divergence(q, p).item()
    assert kl == pytest.approx(kl_formula(m0, L0 @ L0.T, m1, L1 @ L1.T), rel=1e-10)
    z = q.sample(200_000, rng)
    diff = q.log_prob(z).data - p.log_prob(z).data
    assert abs(kl - diff.mean()) < 5 * diff.std() / math.sqrt(len(diff))
    # batched: one KL per batch entry
    Lb = random_tril(rng, d, (2,))
    klb = kl_divergence(FullNormal(np.zeros((2, d)), Lb), p).data
    assert klb.shape == (2,)
    for b in range(2):
        assert klb[b] == pytest.approx(kl_formula(np.zeros(d), Lb[b] @ Lb[b].T, m1, L1 @ L1.T),
                                       rel=1e-10)


def test_kl_discrete_pairs():
    rng = np.random.default_rng(10)
    lq, lp = rng.normal(size=(2, 3, 5))
    pq, pp = np.exp(log_softmax(lq, -1)), np.exp(log_softmax(lp, -1))
    np.testing.assert_allclose(kl_divergence(Categorical(lq), Categorical(lp)).data,
                               (pq * np.log(pq / pp)).sum(-1), rtol=1e-10)
    # [Isachenko-L4]: KL(q || uniform over K) = -H(q) + log K
    np.testing.assert_allclose(kl_divergence(Categorical(lq), Categorical(np.zeros(5))).data,
                               -Categorical(lq).entropy().data + math.log(5), rtol=1e-10)
    bq, bp = expit(lq), expit(lp)
    ref = (bq * np.log(bq / bp) + (1 - bq) * np.log((1 - bq) / (1 - bp))).sum(-1)
    np.testing.assert_allclose(kl_divergence(Bernoulli(lq), Bernoulli(lp)).data, ref, rtol=1e-10)


def test_kl_unsupported_pairs_and_mismatches():
    gmm = GaussianMixture(np.zeros(2), np.zeros((2, 3)), np.zeros((2, 3)))
    with pytest.raises(NotImplementedError, match=r"KL\(DiagNormal \|\| GaussianMixture\)"):
        kl_divergence(DiagNormal(np.zeros(3), np.zeros(3)), gmm)
    with pytest.raises(NotImplementedError, match=r"KL\(Bernoulli \|\| DiagNormal\)"):
        kl_divergence(Bernoulli(np.zeros(3)), DiagNormal(np.zeros(3), np.zeros(3)))
    with pytest.raises(ValueError, match="event dimensions differ"):
        kl_divergence(DiagNormal(np.zeros(3), np.zeros(3)), StandardNormal(4))
    with pytest.raises(TypeError, match="Distribution"):
        kl_divergence(np.zeros(3), StandardNormal(3))


# ------------------------------------------------------------------------------ gradients
def test_gradcheck_diag_normal_log_prob_and_entropy():
    rng = np.random.default_rng(11)
    mu, ls, x = rng.normal(size=(3, 2, 3))
    assert check_gradients_at(lambda m, s, v: DiagNormal(m, s).log_prob(v), [mu, ls, x])
    assert check_gradients_at(lambda s: DiagNormal(mu, s).entropy(), [ls])
    assert check_gradients_at(lambda v: StandardNormal(3).log_prob(v), [x])


@st.composite
def diag_normal_arguments(draw):
    """(mu, log_sigma, x) of one float dtype, batch shapes that broadcast together, event d."""
    dtype = draw(S.float_dtypes())
    d = draw(st.integers(1, 3))
    batch_shapes = draw(S.broadcastable_shapes(n=3, max_dims=2))
    return tuple(draw(S.arrays(b + (d,), -2.0, 2.0, dtype=dtype)) for b in batch_shapes)


def test_diag_normal_gradients_on_generated_broadcast_inputs():
    # the log-density and the KL keep the inputs' dtype, give each input a gradient of its own
    # shape, sum the copies of a broadcast input, and match central differences (numpy
    # backend: the Numba kernels' gradients are checked in test_fused_grad). The KL divides by
    # sigma_p^2 up to e^4: its terms reach ~1e2, whose rounding over eps is ~1e-8, hence atol
    # 1e-7 (passes 300 examples; the default 1e-8 failed at mu = 6e-8, log_sigma_p = -2)
    def normal(m, s):
        return DiagNormal(m, s, backend="numpy")

    check_gradients({"log_prob": lambda m, s, v: normal(m, s).log_prob(v),
                     "kl": lambda m, s, v: kl_divergence(normal(m, s), normal(v, m))},
                    inputs=diag_normal_arguments(), broadcast=True, max_examples=10,
                    atol=1e-7)


def test_gradcheck_full_normal_log_prob_kl_and_solve():
    rng = np.random.default_rng(12)
    d = 3
    a0, a1 = rng.normal(size=(2, d, d)) * 0.5
    mu, x = rng.normal(size=(2, d))
    assert check_gradients_at(lambda m, a, v: FullNormal(m, tril_from_free(a)).log_prob(v),
                        [mu, a0, x])
    assert check_gradients_at(
        lambda m0, b0, m1, b1: kl_divergence(FullNormal(m0, tril_from_free(b0)),
                                             FullNormal(m1, tril_from_free(b1))),
        [mu, a0, x, a1])
    L = random_tril(rng, d, (2,))
    B = rng.normal(size=(2, d, 2))
    assert check_gradients_at(lambda l, b: TriangularSolve.apply(l, b), [L, B])


def test_gradcheck_bernoulli_student_categorical_mixture():
    rng = np.random.default_rng(13)
    logits = rng.normal(size=(2, 4))
    xb = (rng.random((2, 4)) < 0.5).astype(float)
    assert check_gradients_at(lambda l: Bernoulli(l).log_prob(xb), [logits])
    assert check_gradients_at(lambda l: Bernoulli(l).entropy(), [logits])
    loc, lsc = rng.normal(size=(2, 2, 3))
    ldf = np.log(rng.uniform(0.5, 10.0, size=3))
    x = rng.normal(size=(2, 3)) * 2
    assert check_gradients_at(lambda a, b, c, v: StudentT(a, b.exp(), c.exp()).log_prob(v),
                              [loc, lsc, ldf, x])
    k = np.array([1, 3])
    assert check_gradients_at(lambda l: Categorical(l).log_prob(k), [logits])
    assert check_gradients_at(lambda l: Categorical(l).entropy(), [logits])
    lw, mu, ls = rng.normal(size=3), rng.normal(size=(3, 2)), rng.normal(size=(3, 2)) * 0.3
    z = rng.normal(size=(4, 2))
    assert check_gradients_at(lambda a, b, c, v: GaussianMixture(a, b, c).log_prob(v), [lw, mu, ls, z])


def test_gradcheck_kl_diag_and_discrete():
    rng = np.random.default_rng(14)
    mq, lq, mp, lp = rng.normal(size=(4, 2, 3))
    assert check_gradients_at(lambda a, b, c, e: kl_divergence(DiagNormal(a, b), DiagNormal(c, e)),
                        [mq, lq, mp, lp])
    assert check_gradients_at(lambda a, b: kl_divergence(DiagNormal(a, b), StandardNormal(3)), [mq, lq])
    assert check_gradients_at(lambda a, b: kl_divergence(Categorical(a), Categorical(b)), [mq, lq])
    assert check_gradients_at(lambda a, b: kl_divergence(Bernoulli(a), Bernoulli(b)), [mq, lq])


def test_rsample_gradients_are_the_reparametrisation():
    rng = np.random.default_rng(15)
    mu = sd.tensor(rng.normal(size=3), requires_grad=True)
    ls = sd.tensor(rng.normal(size=3), requires_grad=True)
    z = DiagNormal(mu, ls).rsample((10,), np.random.default_rng(0))
    assert z.shape == (10, 3) and z.requires_grad
    z.sum().backward()
    eps = np.random.default_rng(0).standard_normal((10, 3))
    np.testing.assert_allclose(mu.grad, np.full(3, 10.0))
    np.testing.assert_allclose(ls.grad, (np.exp(ls.data) * eps).sum(0), rtol=1e-12)
    # a reparametrised estimate of a whole objective: gradcheck with a fresh, seeded rng per call
    assert check_gradients_at(
        lambda m, s: (DiagNormal(m, s).rsample(4, np.random.default_rng(1)) ** 2).sum(-1),
        [mu.data, ls.data])
    a = rng.normal(size=(3, 3)) * 0.5
    assert check_gradients_at(
        lambda m, b: FullNormal(m, tril_from_free(b)).rsample(5, np.random.default_rng(2)).tanh(),
        [mu.data, a])
    # sample() builds no graph
    assert isinstance(DiagNormal(mu, ls).sample(2, rng), np.ndarray)


# ------------------------------------------------------------------------------ sampling moments
def test_diag_normal_samples_have_std_exp_log_sigma():
    mu, ls = np.array([1.0, -2.0, 0.0]), np.array([0.0, math.log(3.0), math.log(0.1)])
    q = DiagNormal(mu, ls)
    z = q.sample(100_000, np.random.default_rng(16))
    np.testing.assert_allclose(z.std(0), np.exp(ls), rtol=0.01)
    assert np.all(np.abs(z.mean(0) - mu) < 5 * np.exp(ls) / math.sqrt(1e5))
    np.testing.assert_allclose(q.stddev.data, np.exp(ls))
    np.testing.assert_allclose(q.entropy().item(),
                               stats.multivariate_normal(mu, np.diag(np.exp(2 * ls))).entropy(),
                               rtol=1e-12)
    # rsample and sample draw the same numbers from the same generator
    np.testing.assert_array_equal(q.rsample(4, np.random.default_rng(3)).data,
                                  q.sample(4, np.random.default_rng(3)))


def _box_muller_proposal(dtype, backend, seed):
    """(mu, log_sigma, q): a DiagNormal of batch shape (3,) in 5 dimensions, its log_sigma
    broadcast over the batch."""
    rng = np.random.default_rng(seed)
    mu = rng.normal(size=(3, 5)).astype(dtype)
    ls = rng.normal(scale=0.5, size=(1, 5)).astype(dtype)
    return mu, ls, DiagNormal(mu, ls, backend=backend)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_box_muller_samples_are_the_reparametrisation_of_its_draws(backend, dtype):
    from scratchdgm.autodiff import fused

    mu, ls, q = _box_muller_proposal(dtype, backend, seed=4)
    z = q.sample_box_muller((7, 2), np.random.default_rng(9))
    assert isinstance(z, np.ndarray) and z.shape == (7, 2, 3, 5) and z.dtype == dtype
    eps = fused.box_muller_normal((7, 2, 3, 5), np.random.default_rng(9), dtype, backend=backend)
    tol = 1e-6 if dtype == np.float32 else 1e-14
    np.testing.assert_allclose(z, mu + np.exp(ls) * eps, rtol=tol, atol=tol)
    # one word of the generator per call; the same state gives the same draws
    g = np.random.default_rng(5)
    a = q.sample_box_muller(4, g)
    assert g.bit_generator.state == _advanced(np.random.default_rng(5), 1)
    np.testing.assert_array_equal(a, q.sample_box_muller(4, np.random.default_rng(5)))
    assert not np.array_equal(a, q.sample_box_muller(4, g))
    # the backends agree up to the rounding of log, cos and sin
    other = DiagNormal(mu, ls, backend="numba" if backend == "numpy" else "numpy")
    np.testing.assert_allclose(other.sample_box_muller(4, np.random.default_rng(5)), a,
                               rtol=tol, atol=tol)


def _advanced(rng, words):
    rng.bit_generator.random_raw(words)
    return rng.bit_generator.state


def test_box_muller_samples_have_the_distributions_moments():
    mu, ls = np.array([1.0, -2.0, 0.0]), np.array([0.0, math.log(3.0), math.log(0.1)])
    z = DiagNormal(mu, ls).sample_box_muller(100_000, np.random.default_rng(16))
    np.testing.assert_allclose(z.std(0), np.exp(ls), rtol=0.01)
    assert np.all(np.abs(z.mean(0) - mu) < 5 * np.exp(ls) / math.sqrt(1e5))
    for j in range(3):
        assert stats.kstest(z[:, j], "norm", args=(mu[j], np.exp(ls[j]))).pvalue > 1e-4


def test_box_muller_normal_rejects_bad_input():
    from scratchdgm.autodiff import fused

    rng = np.random.default_rng(0)
    with pytest.raises(TypeError, match="numpy.random.Generator"):
        fused.box_muller_normal((2,), 0)
    with pytest.raises(TypeError, match="float32 or float64"):
        fused.box_muller_normal((2,), rng, np.int32)
    with pytest.raises(ValueError, match="negative dimensions"):
        fused.box_muller_normal((2, -1), rng)
    assert fused.box_muller_normal(3, rng).shape == (3,)
    assert fused.box_muller_normal((0, 4), rng).shape == (0, 4)
    with pytest.raises(TypeError, match="sample_box_muller: sample_shape"):
        DiagNormal(np.zeros(2), np.zeros(2)).sample_box_muller("ten", rng)


def test_full_normal_sample_covariance_and_entropy():
    rng = np.random.default_rng(17)
    L = random_tril(rng, 3)
    q = FullNormal(np.array([1.0, 0.0, -1.0]), L)
    z = q.sample(100_000, rng)
    np.testing.assert_allclose(np.cov(z.T), L @ L.T, atol=0.05 * np.abs(L @ L.T).max())
    assert q.entropy().item() == pytest.approx(
        stats.multivariate_normal(np.zeros(3), L @ L.T).entropy(), rel=1e-12)


def test_discrete_and_student_and_mixture_sampling_moments():
    rng = np.random.default_rng(18)
    b = Bernoulli(np.array([-1.0, 0.0, 2.0]))
    x = b.sample(50_000, rng)
    assert set(np.unique(x)) == {0.0, 1.0}
    np.testing.assert_allclose(x.mean(0), expit([-1.0, 0.0, 2.0]), atol=0.01)
    c = Categorical(np.log([0.2, 0.5, 0.3]))
    k = c.sample(50_000, rng)
    assert k.dtype == np.int64
    np.testing.assert_allclose(np.bincount(k, minlength=3) / 50_000, [0.2, 0.5, 0.3], atol=0.01)
    t = StudentT(np.array([1.0]), np.array([2.0]), np.array([5.0]))
    s = t.sample(200_000, rng)[:, 0]
    assert np.median(s) == pytest.approx(1.0, abs=0.02)
    # quantiles of loc + scale * t_5
    np.testing.assert_allclose(np.quantile(s, [0.1, 0.9]), 1.0 + 2.0 * stats.t(5).ppf([0.1, 0.9]),
                               rtol=0.03)
    w = np.array([0.25, 0.75])
    mu = np.array([[-3.0, 0.0], [2.0, 1.0]])
    gmm = GaussianMixture(np.log(w), mu, np.log([[0.5, 0.5], [1.0, 0.2]]))
    z = gmm.sample(100_000, rng)
    assert z.shape == (100_000, 2)
    np.testing.assert_allclose(z.mean(0), w @ mu, atol=0.03)
    np.testing.assert_allclose(gmm.weights.data, w)


# ------------------------------------------------------------------------------ validation, dtypes
def test_bad_parameters_are_rejected_with_clear_messages():
    with pytest.raises(ValueError, match="do not broadcast.*mu \\(3,\\).*log_sigma \\(4,\\)"):
        DiagNormal(np.zeros(3), np.zeros(4))
    with pytest.raises(ValueError, match="NaN or infinite"):
        DiagNormal(np.array([0.0, np.nan]), 0.0)
    with pytest.raises(ValueError, match="event axis"):
        DiagNormal(0.0, 0.0)
    with pytest.raises(ValueError, match="lower triangular"):
        FullNormal(np.zeros(2), np.ones((2, 2)))
    with pytest.raises(ValueError, match="positive diagonal"):
        FullNormal(np.zeros(2), -np.eye(2))
    with pytest.raises(ValueError, match=r"expected \(\.\.\., 2, 2\)"):
        FullNormal(np.zeros(2), np.eye(3))
    with pytest.raises(ValueError, match=r"\(M, d\) = \(2, d\)"):
        GaussianMixture(np.zeros(2), np.zeros((3, 2)), 0.0)
    with pytest.raises(ValueError, match="log_sigma of shape"):
        GaussianMixture(np.zeros(2), np.zeros((2, 2)), np.zeros(3))
    with pytest.raises(ValueError, match="d must be an int >= 1"):
        StandardNormal(0)
    with pytest.raises(TypeError, match="numeric"):
        Bernoulli(np.array(["a", "b"]))


def test_bad_data_is_rejected_with_clear_messages():
    q = DiagNormal(np.zeros((5, 3)), np.zeros(3))
    with pytest.raises(ValueError, match=r"shape \(5, 4\); expected \(\.\.\., 3\)"):
        q.log_prob(np.zeros((5, 4)))
    with pytest.raises(ValueError, match="does not broadcast"):
        q.log_prob(np.zeros((4, 3)))
    with pytest.raises(ValueError, match="NaN"):
        q.log_prob(np.full((5, 3), np.inf))
    with pytest.raises(ValueError, match=r"binary \(0 or 1\); found 0\.5"):
        Bernoulli(np.zeros(3)).log_prob(np.array([0.0, 0.5, 1.0]))
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        Categorical(np.zeros(3)).log_prob(np.array([3]))
    with pytest.raises(TypeError, match="random_state must be None, an int seed or a"):
        q.sample(2, random_state="seed")
    with pytest.raises(TypeError, match="sample_shape"):
        q.rsample("ten", np.random.default_rng(0))


def test_float32_is_preserved():
    rng = np.random.default_rng(19)
    mu = sd.tensor(rng.normal(size=(2, 3)).astype(np.float32))
    ls = sd.tensor(np.zeros(3, dtype=np.float32))
    q = DiagNormal(mu, ls)
    assert q.dtype == np.float32
    assert q.log_prob(rng.normal(size=(2, 3))).dtype == np.float32
    assert q.rsample(4, rng).dtype == np.float32 and q.sample(random_state=rng).dtype == np.float32
    assert kl_divergence(q, StandardNormal(3, dtype=np.float32)).dtype == np.float32
    b = Bernoulli(mu)
    assert b.log_prob(np.ones((2, 3))).dtype == np.float32 and b.sample(random_state=rng).dtype == np.float32
    # plain numbers and arrays follow the tensors' dtype (a fixed sigma must not upcast)
    assert DiagNormal(mu, 0.0).log_prob(np.zeros(3)).dtype == np.float32
    assert StudentT(mu, 1.0, 4.0).log_prob(np.zeros(3)).dtype == np.float32
    L = sd.tensor(np.eye(3, dtype=np.float32))
    assert FullNormal(mu, L).log_prob(np.zeros(3)).dtype == np.float32


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_box_muller_with_log_probs_is_the_same_sample_and_its_two_densities(dtype, backend):
    _, _, q = _box_muller_proposal(dtype, backend, seed=11)
    z, log_q, log_p = q.sample_box_muller_with_log_probs((7, 2), np.random.default_rng(9))
    assert z.shape == (7, 2, 3, 5) and log_q.shape == log_p.shape == (7, 2, 3)
    assert z.dtype == log_q.dtype == log_p.dtype == np.dtype(dtype)
    tol = 2e-6 if dtype == np.float32 else 1e-13
    # the draws of sample_box_muller for the same generator state ...
    np.testing.assert_allclose(z, q.sample_box_muller((7, 2), np.random.default_rng(9)),
                               rtol=tol, atol=tol)
    # ... and, up to rounding, log_prob of them under q and under the standard normal
    np.testing.assert_allclose(log_q, q.log_prob(z).data, rtol=tol, atol=10 * tol)
    np.testing.assert_allclose(log_p, StandardNormal(5, dtype=dtype).log_prob(z).data,
                               rtol=tol, atol=10 * tol)
    g = np.random.default_rng(5)
    q.sample_box_muller_with_log_probs(4, g)  # one word of the generator per call
    assert g.bit_generator.state == _advanced(np.random.default_rng(5), 1)
    with pytest.raises(TypeError, match="sample_box_muller_with_log_probs: sample_shape"):
        q.sample_box_muller_with_log_probs("ten", np.random.default_rng(0))
