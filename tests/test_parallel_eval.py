"""Evaluation on several threads: the blocked, graph-free log-weights equal the differentiable
ones, the estimates do not depend on the number of threads, and the compiled kernels run their
serial versions inside ``kernel_threads(1)`` -- with the same results."""

import contextlib
import os
import threading

import numpy as np
import pytest

import scratchdgm as sd
from scratchdgm.autodiff import fused
from scratchdgm.kernels import cpu
from scratchdgm.threads import kernel_thread_limit, kernel_threads

jit_on = pytest.mark.skipif(os.environ.get("NUMBA_DISABLE_JIT", "0") not in ("", "0"),
                            reason="serial and parallel kernels are one Python loop without JIT")


@pytest.fixture(scope="module")
def model_and_data():
    rng = np.random.default_rng(0)
    x = (rng.random((13, 64)) < 0.3).astype(np.float64)
    model = sd.IWAE(64, latent_dim=4, hidden=(16,), k=5, random_state=0)
    return model, x


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian:learned"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_graph_free_log_weights_equal_the_differentiable_ones(likelihood, dtype, monkeypatch):
    rng = np.random.default_rng(1)
    x = (rng.random((7, 64)) < 0.3).astype(dtype)
    model = sd.IWAE(64, latent_dim=3, hidden=(16,), k=5, random_state=0, dtype=dtype,
                    likelihood=likelihood, prior="gmm" if likelihood != "bernoulli" else "normal")
    # blocks of 3 rows, so that the 11 samples of 7 points are decoded in several blocks
    monkeypatch.setattr(type(model), "EVAL_BLOCK_ROWS", 20)
    with_graph = model.log_weights(x, 11, np.random.default_rng(5))
    assert with_graph.requires_grad
    # the graph-free path draws with the Box-Muller sampler (for the standard normal prior,
    # with both log-densities in the same pass); given the same standard normals as the
    # differentiable path (rsample's), it computes the same weights
    drawn = []

    def same_draws_as_rsample(shape, rng, dtype, backend=None):
        drawn.append(shape)
        return rng.standard_normal(shape, dtype=dtype)

    monkeypatch.setattr(fused, "box_muller_normal", same_draws_as_rsample)
    with sd.no_grad():
        without = model.log_weights(x, 11, np.random.default_rng(5))
    assert drawn == [(11, 7, 3)]
    assert not without.requires_grad and without.dtype == np.dtype(dtype)
    tol = 1e-12 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(without.data, with_graph.data, rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_graph_free_log_weights_are_those_of_the_box_muller_draws(dtype):
    # without a graph, log w is computed at z = q.sample_box_muller(k, rng): the same numbers
    # as the joint written out at those z (in float64 here, by scipy)
    from scipy import stats

    rng = np.random.default_rng(2)
    x = (rng.random((4, 64)) < 0.3).astype(dtype)
    model = sd.IWAE(64, latent_dim=3, hidden=(16,), k=5, random_state=0, dtype=dtype)
    with sd.no_grad():
        log_w = model.log_weights(x, 9, np.random.default_rng(6)).data
        q = model.encode(x)
        z = q.sample_box_muller(9, np.random.default_rng(6))
        logits = model.decode(z).data.astype(np.float64)
    log_px = (x * logits - np.logaddexp(0, logits)).sum(-1)
    log_pz = stats.norm.logpdf(z.astype(np.float64)).sum(-1)
    log_qz = stats.norm.logpdf(z, q.mu.data, np.exp(q.log_sigma.data)).sum(-1)
    tol = 1e-10 if dtype == np.float64 else 2e-4
    np.testing.assert_allclose(log_w, log_px + log_pz - log_qz, rtol=tol, atol=tol)


def test_graph_free_log_likelihood_agrees_in_distribution_with_the_differentiable_one():
    # Box-Muller draws or NumPy's: the same estimator. Over 40 seeds each, the mean estimates
    # of log p(x) agree within 4 standard errors of their difference (margin checked once:
    # the largest |difference| / se over 50 models of other seeds, 150 points, was 2.3; with
    # the Box-Muller draws' spread around mu halved -- a broken sampler -- it is 26 here).
    rng = np.random.default_rng(3)
    x = (rng.random((3, 64)) < 0.3).astype(np.float64)
    model = sd.IWAE(64, latent_dim=3, hidden=(16,), k=5, random_state=0)

    def estimates(grad):
        out = []
        for seed in range(40):
            with contextlib.nullcontext() if grad else sd.no_grad():
                lw = model.log_weights(x, 50, np.random.default_rng(seed)).data
            out.append(np.logaddexp.reduce(lw, axis=0) - np.log(50))
        return np.array(out)

    a, b = estimates(True), estimates(False)
    se = np.sqrt(a.var(0, ddof=1) / len(a) + b.var(0, ddof=1) / len(b))
    assert np.all(np.abs(a.mean(0) - b.mean(0)) < 4 * se), (a.mean(0), b.mean(0), se)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_graph_free_decoding_equals_decode_then_log_prob_with_trained_biases(backend, dtype):
    # the graph-free path adds the output bias inside the matrix product ([h, 1] [W; b]):
    # with the zero biases of a fresh model that would go unchecked, so set them
    rng = np.random.default_rng(2)
    model = sd.IWAE(64, latent_dim=3, hidden=(16, 8), k=5, random_state=0, dtype=dtype,
                    backend=backend)
    for layer in model.decoder.layers:
        layer.bias.data[...] = rng.normal(0.0, 2.0, layer.bias.shape)
    x = (rng.random((5, 64)) < 0.3).astype(dtype)
    z = rng.standard_normal((7, 5, 3)).astype(dtype)
    with sd.no_grad():
        block_log_px = model._graph_free_log_px(x)
        assert block_log_px is not None          # the fast path is taken for this model
        want = model.observation.log_prob(x, model.decode(z)).data
        got = block_log_px(z)
    assert got.shape == want.shape == (7, 5) and got.dtype == np.dtype(dtype)
    tol = 1e-12 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol)


def test_graph_free_decoding_is_left_to_the_general_path_where_it_does_not_apply():
    rng = np.random.default_rng(3)
    x = (rng.random((4, 64)) < 0.3).astype(np.float64)
    bernoulli = sd.IWAE(64, latent_dim=3, hidden=(16,), k=5, random_state=0)
    gaussian = sd.IWAE(64, latent_dim=3, hidden=(16,), k=5, random_state=0,
                       likelihood="gaussian:learned")
    assert bernoulli._graph_free_log_px(x) is not None
    assert gaussian._graph_free_log_px(x) is None
    # data that is not binary takes decode() and the observation model, which say what is wrong
    assert bernoulli._graph_free_log_px(x * 0.5) is None
    with sd.no_grad(), pytest.raises(ValueError, match="binary"):
        bernoulli.log_weights(x * 0.5, 3, np.random.default_rng(0))


@pytest.mark.parametrize("n_jobs", [2, 3])
def test_estimates_do_not_depend_on_the_number_of_threads(model_and_data, n_jobs):
    model, x = model_and_data
    one = model.score_samples(x, k=300, random_state=3, n_jobs=1)
    many = model.score_samples(x, k=300, random_state=3, n_jobs=n_jobs)
    np.testing.assert_array_equal(one, many)
    b1 = model.bound_samples(x, k=7, random_state=3, n_jobs=1)
    bn = model.bound_samples(x, k=7, random_state=3, n_jobs=n_jobs)
    np.testing.assert_array_equal(b1, bn)
    assert one.shape == b1.shape == (len(x),)
    # a fresh seed gives other draws; the estimates are still log-likelihoods of the same size.
    # (Per point they are heavy-tailed: over 60 seeds one point's estimate has sd 1.1 nats and
    # two seeds differ by up to 5 nats somewhere; the mean over the 13 points has sd 0.14, and
    # no two consecutive seeds' means differed by more than 0.52.)
    other = model.score_samples(x, k=300, random_state=4)
    assert not np.array_equal(one, other) and abs(one.mean() - other.mean()) < 1.0


def test_n_jobs_is_checked(model_and_data):
    model, x = model_and_data
    with pytest.raises(ValueError, match="n_jobs"):
        model.score_samples(x, k=3, n_jobs=0)


def test_kernel_thread_limit_is_per_thread():
    seen = {}

    def other():
        seen["other"] = kernel_thread_limit()

    with kernel_threads(1):
        assert kernel_thread_limit() == 1
        t = threading.Thread(target=other)
        t.start()
        t.join()
        with kernel_threads(None):
            assert kernel_thread_limit() is None
        assert kernel_thread_limit() == 1
    assert kernel_thread_limit() is None and seen["other"] is None


@pytest.mark.slow  # compiles both versions of eight kernels when the cache is cold
@jit_on
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_serial_kernels_compute_what_the_parallel_ones_do(dtype):
    rng = np.random.default_rng(2)
    logits = (4 * rng.standard_normal((6, 5, 1500))).astype(dtype)  # two pixel blocks per row
    x = (rng.random((5, 1500)) < 0.4).astype(dtype)
    a = rng.standard_normal((300, 700)).astype(dtype)
    z, mu = rng.standard_normal((2, 6, 5, 3)).astype(dtype)
    W, b = rng.standard_normal((3, 8)).astype(dtype), rng.standard_normal(8).astype(dtype)

    def run():
        y = cpu.linear(z, W, b, "relu")
        y_affine = cpu.linear(z, W, b)  # the bias alone: its own kernel
        g = np.linspace(-1, 1, 240, dtype=dtype).reshape(6, 5, 8)
        lse = cpu.logsumexp(a)
        return [cpu.bernoulli_log_prob(logits, x), *cpu.bernoulli_log_prob_with_grad(logits, x),
                lse, cpu.logsumexp_backward(a, lse, np.ones(700, dtype)),
                cpu.diag_gaussian_log_prob(z, mu, 0.1 * mu), y, y_affine,
                *cpu.linear_backward(z, W, y, g, "relu"),
                *cpu.linear_backward(z, W, y_affine, g)]  # column sums alone

    parallel = run()
    with kernel_threads(1):
        serial = run()
    for p, s in zip(parallel, serial):
        np.testing.assert_allclose(s, p, rtol=1e-5 if dtype == np.float32 else 1e-12)
    for kernel in (cpu._bernoulli_kernel, cpu._lse_kernel, cpu._gauss_kernel,
                   cpu._bias_act_kernel, cpu._bias_kernel, cpu._act_grad_kernel,
                   cpu._colsum_kernel):
        assert kernel.serial.signatures, "the serial twin did not run"


def test_evaluation_runs_blocks_on_threads_with_serial_kernels(model_and_data, monkeypatch):
    model, x = model_and_data
    seen = []
    original = type(model).log_weights

    def spy(self, xb, k, rng):
        seen.append((threading.get_ident(), kernel_thread_limit(), sd.autodiff.is_grad_enabled()))
        return original(self, xb, k, rng)

    monkeypatch.setattr(type(model), "log_weights", spy)
    model.score_samples(x, k=2000, n_jobs=2)    # 13 blocks of 2 points
    assert {limit for _, limit, _ in seen} == {1}
    assert not any(grad for *_, grad in seen)
    assert len({ident for ident, *_ in seen}) == 2


@pytest.mark.parametrize("blas_threads, limit", [(1, 1), (2, 1), (None, None)])
def test_training_steps_run_serial_kernels_on_one_thread(model_and_data, monkeypatch,
                                                         blas_threads, limit):
    # whatever blas_threads is: parallel kernels beside a multi-threaded BLAS have both pools'
    # waiting threads fight for the cores (a step 3-13x slower on 2 cores; fit's docstring).
    # None leaves the kernels alone.
    _, x = model_and_data
    model = sd.IWAE(64, latent_dim=2, hidden=(8,), k=2, random_state=0)
    seen = set()
    original = type(model).objective

    def spy(self, *args, **kwargs):
        seen.add(kernel_thread_limit())
        return original(self, *args, **kwargs)

    monkeypatch.setattr(type(model), "objective", spy)
    model.fit(x, epochs=1, batch_size=5, progress=False, blas_threads=blas_threads)
    assert seen == {limit}


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_one_progress_bar_counts_every_block(model_and_data, monkeypatch, n_jobs):
    # the threads' results arrive in the calling thread, which alone advances the bar: it must
    # end at its total (13 points x 700 samples; 7 points per block, so two blocks)
    from scratchdgm.models.deep import bounds, evaluation

    bars = []

    def recording(make):
        def wrapped(*args, **kwargs):
            bars.append(make(*args, **kwargs))
            return bars[-1]
        return wrapped

    monkeypatch.setattr(bounds, "likelihood_bar", recording(bounds.likelihood_bar))
    monkeypatch.setattr(evaluation, "_progress", recording(evaluation._progress))
    monkeypatch.setenv("SCRATCHDGM_PROGRESS", "1")  # a disabled bar would not count
    model, x = model_and_data
    model.score_samples(x, k=700, random_state=0, n_jobs=n_jobs)
    model.bound_samples(x, k=700, random_state=0, n_jobs=n_jobs)
    # the first bar is the evaluation's (the blocks' own are off), the last the bound's
    assert [(b.total, b.n) for b in (bars[0], bars[-1])] == [(13 * 700, 13 * 700), (13, 13)]


@pytest.mark.parametrize("n, k", [(1, 5000), (7, 5000), (2000, 5000), (500, 50), (10_000, 5),
                                  (3, 1)])
def test_blocks_cover_the_points_in_order_within_both_limits(n, k):
    from scratchdgm.models.deep import evaluation

    blocks = evaluation._blocks(n, k)
    np.testing.assert_array_equal(np.concatenate(blocks), np.arange(n))
    assert all(len(b) * k <= max(k, evaluation.BLOCK_PAIRS) for b in blocks)
    assert len(blocks) >= min(n, evaluation.MIN_BLOCKS)
