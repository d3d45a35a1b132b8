"""Factor analysis by EM: monotone log-likelihood, agreement with scikit-learn, recovery of a known
model, the covariance-form EM step equal to the per-point one, and bad input (for both linear
models)."""

import warnings

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.decomposition import FactorAnalysis as SKFactorAnalysis
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from threadpoolctl import threadpool_limits

from scratchdgm import PPCA, FactorAnalysis
from scratchdgm.models.linear.gaussian import (
    _mean_and_covariance,
    em_step,
    gaussian_loglike_from_cov,
)
from scratchdgm.models.linear.factor_analysis import e_step, m_step


@pytest.fixture(autouse=True, scope="module")
def one_blas_thread():
    # the machine is shared: BLAS threads fighting over 2 cores make sklearn's SVDs 50x slower
    with threadpool_limits(limits=1):
        yield


@pytest.fixture(scope="module")
def digits():
    return load_digits().data / 16.0


def make_fa_data(n, rng, p=12, d=3, noise=None):
    """x = W z + mu + N(0, diag(noise)): returns X, W, noise, mu."""
    W = rng.standard_normal((p, d))
    noise = rng.uniform(0.2, 2.0, size=p) if noise is None else noise
    mu = rng.standard_normal(p)
    X = rng.standard_normal((n, d)) @ W.T + mu + rng.standard_normal((n, p)) * np.sqrt(noise)
    return X, W, noise, mu


@pytest.fixture(scope="module")
def synthetic():
    return make_fa_data(2000, np.random.default_rng(1))[0]


def assert_nondecreasing(loglike):
    # EM's monotonicity, up to round-off in the log-likelihood itself
    steps = np.diff(loglike)
    slack = 64 * np.finfo(np.float64).eps * np.maximum(1.0, np.abs(loglike[1:]))
    assert np.all(steps >= -slack), f"log-likelihood decreased by {-steps.min():.3e}"


# --------------------------------------------------------------------------------------------
# EM behaviour


@pytest.mark.parametrize("init", ["pca", "random"])
def test_loglike_non_decreasing_digits(digits, init):
    fa = FactorAnalysis(10, init=init, random_state=0, max_iter=3000).fit(digits)
    assert fa.n_iter_ == len(fa.loglike_) > 5
    assert_nondecreasing(fa.loglike_)


def test_loglike_non_decreasing_synthetic_full_run(synthetic):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        fa = FactorAnalysis(3, tol=0.0, max_iter=400).fit(synthetic)
    assert_nondecreasing(fa.loglike_)


def test_last_loglike_is_training_score(synthetic):
    fa = FactorAnalysis(3).fit(synthetic)
    assert fa.loglike_[-1] == pytest.approx(fa.score(synthetic), rel=1e-12)


def test_convergence_warning_at_max_iter(digits):
    with pytest.warns(ConvergenceWarning, match="max_iter=3"):
        fa = FactorAnalysis(10, max_iter=3).fit(digits)
    assert fa.n_iter_ == 3 and fa.loglike_.shape == (3,)


def test_no_warning_when_converged(synthetic):
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        FactorAnalysis(3).fit(synthetic)


def test_fitted_attribute_shapes(synthetic):
    fa = FactorAnalysis(3).fit(synthetic)
    p = synthetic.shape[1]
    assert fa.components_.shape == (3, p)
    assert fa.noise_variance_.shape == (p,) and np.all(fa.noise_variance_ > 0)
    assert fa.mean_.shape == (p,)
    np.testing.assert_allclose(fa.mean_, synthetic.mean(axis=0))
    assert fa.n_features_in_ == p
    assert isinstance(fa.n_iter_, int)


def test_canonical_rotation(synthetic):
    fa = FactorAnalysis(3).fit(synthetic)
    W = fa.components_.T
    G = W.T @ (W / fa.noise_variance_[:, None])
    off = G - np.diag(np.diag(G))
    assert np.abs(off).max() < 1e-8 * np.abs(G).max()
    assert np.all(np.diff(np.diag(G)) <= 0)


def test_fit_depends_on_data_only_through_mean_and_covariance(synthetic):
    # reflecting the data about its mean doubles n but keeps the mean and the 1/n covariance:
    # EM on the covariance must give exactly the same fit (its cost does not grow with n)
    mirrored = np.vstack([synthetic, 2 * synthetic.mean(axis=0) - synthetic])
    a, b = FactorAnalysis(3).fit(synthetic), FactorAnalysis(3).fit(mirrored)
    assert a.n_iter_ == b.n_iter_
    np.testing.assert_allclose(a.components_, b.components_, rtol=1e-7, atol=1e-10)
    np.testing.assert_allclose(a.noise_variance_, b.noise_variance_, rtol=1e-7)
    np.testing.assert_allclose(a.loglike_, b.loglike_, rtol=1e-10)


def test_covariance_em_step_equals_per_point_e_and_m_steps(synthetic):
    rng = np.random.default_rng(5)
    p, d = synthetic.shape[1], 3
    W = rng.standard_normal((p, d))
    psi = rng.uniform(0.5, 1.5, p)
    mu, S = _mean_and_covariance(synthetic)
    Ez, cov_z = e_step(synthetic, W, psi, mu)
    W_pts, psi_pts = m_step(synthetic, Ez, cov_z, mu)
    W_cov, psi_cov = em_step(S, W, psi)
    np.testing.assert_allclose(W_cov, W_pts, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(psi_cov, psi_pts, rtol=1e-9, atol=1e-12)


def test_e_step_matches_ghahramani_hinton_form(synthetic):
    # beta = W^T (Psi + W W^T)^{-1};  Cov = I - beta W
    rng = np.random.default_rng(6)
    p, d = synthetic.shape[1], 2
    W, psi = rng.standard_normal((p, d)), rng.uniform(0.5, 1.5, p)
    mu = synthetic.mean(axis=0)
    beta = W.T @ np.linalg.inv(np.diag(psi) + W @ W.T)
    Ez, cov = e_step(synthetic, W, psi, mu)
    np.testing.assert_allclose(Ez, (synthetic - mu) @ beta.T, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(cov, np.eye(d) - beta @ W, rtol=1e-9, atol=1e-12)


def test_loglike_from_cov_equals_score(synthetic):
    fa = FactorAnalysis(3).fit(synthetic)
    _, S = _mean_and_covariance(synthetic)
    ll = gaussian_loglike_from_cov(S, fa.components_.T, fa.noise_variance_)
    assert ll == pytest.approx(fa.score(synthetic), rel=1e-11)


# --------------------------------------------------------------------------------------------
# cross-checks


@pytest.mark.parametrize("svd_method", ["randomized", "lapack"])
def test_reaches_sklearn_loglike_digits(digits, svd_method):
    ours = FactorAnalysis(10).fit(digits).score(digits)
    theirs = SKFactorAnalysis(10, tol=1e-8, svd_method=svd_method,
                              random_state=0).fit(digits).score(digits)
    assert ours >= theirs - 1e-6, (ours, theirs)


@pytest.mark.parametrize("svd_method", ["randomized", "lapack"])
def test_reaches_sklearn_loglike_synthetic(synthetic, svd_method):
    ours = FactorAnalysis(3).fit(synthetic).score(synthetic)
    theirs = SKFactorAnalysis(3, tol=1e-8, svd_method=svd_method,
                              random_state=0).fit(synthetic).score(synthetic)
    assert ours >= theirs - 1e-6, (ours, theirs)


def test_same_fitted_covariance_as_sklearn(synthetic):
    ours = FactorAnalysis(3).fit(synthetic)
    theirs = SKFactorAnalysis(3, tol=1e-10, svd_method="lapack").fit(synthetic)
    C0, C1 = ours.get_covariance(), theirs.get_covariance()
    assert np.linalg.norm(C0 - C1) < 1e-3 * np.linalg.norm(C1)


def test_covariance_approaches_truth_as_n_grows():
    rng = np.random.default_rng(2)
    p, d = 10, 2
    W = rng.standard_normal((p, d))
    noise = rng.uniform(0.3, 1.5, p)
    C_true = W @ W.T + np.diag(noise)
    errors, psi_errors = [], []
    for n in (300, 3000, 30000, 300000):
        X = rng.standard_normal((n, d)) @ W.T + rng.standard_normal((n, p)) * np.sqrt(noise)
        fa = FactorAnalysis(d).fit(X)
        errors.append(np.linalg.norm(fa.get_covariance() - C_true) / np.linalg.norm(C_true))
        psi_errors.append(np.max(np.abs(fa.noise_variance_ - noise) / noise))
    assert all(b < a for a, b in zip(errors, errors[1:])), errors
    assert errors[-1] < 0.01 and psi_errors[-1] < 0.05, (errors, psi_errors)


def test_isotropic_noise_fa_agrees_with_ppca():
    rng = np.random.default_rng(3)
    X, *_ = make_fa_data(50000, rng, p=8, d=2, noise=np.full(8, 0.5))
    fa = FactorAnalysis(2).fit(X)
    ppca = PPCA(2).fit(X)
    # FA contains PPCA, so at the maximum its likelihood is at least PPCA's ...
    assert fa.score(X) >= ppca.score(X) - 1e-7
    # ... and on isotropic data only by sampling noise
    assert fa.score(X) - ppca.score(X) < 1e-3
    np.testing.assert_allclose(fa.noise_variance_, ppca.noise_variance_, rtol=0.05)
    C_fa, C_pp = fa.get_covariance(), ppca.get_covariance()
    assert np.linalg.norm(C_fa - C_pp) < 0.01 * np.linalg.norm(C_pp)


def test_zero_variance_columns_are_floored_without_division_by_zero(digits):
    const = np.flatnonzero(digits.var(axis=0) == 0)
    assert const.size > 0
    with np.errstate(divide="raise", invalid="raise", over="raise"):
        fa = FactorAnalysis(10, min_noise_variance=1e-12).fit(digits)
        ll = fa.score_samples(digits)
        Z = fa.transform(digits)
    assert np.all(np.isfinite(ll)) and np.all(np.isfinite(Z))
    np.testing.assert_array_equal(fa.noise_variance_[const], 1e-12)
    np.testing.assert_array_equal(fa.components_[:, const], 0.0)


def test_init_random_reaches_same_loglike_as_pca_init(synthetic):
    a = FactorAnalysis(3, init="pca").fit(synthetic).score(synthetic)
    b = FactorAnalysis(3, init="random", random_state=0).fit(synthetic).score(synthetic)
    assert a == pytest.approx(b, abs=1e-5)


def test_random_state_reproducible(synthetic):
    a = FactorAnalysis(3, init="random", random_state=7, max_iter=5, tol=0)
    b = clone(a)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        np.testing.assert_array_equal(a.fit(synthetic).components_, b.fit(synthetic).components_)


def test_get_set_params_round_trip():
    fa = FactorAnalysis(4, tol=1e-3)
    params = fa.get_params()
    assert params["n_components"] == 4 and params["tol"] == 1e-3
    assert fa.set_params(init="random", max_iter=5) is fa
    assert fa.init == "random" and fa.max_iter == 5


# --------------------------------------------------------------------------------------------
# bad input, both estimators

MODELS = [lambda d: FactorAnalysis(d), lambda d: PPCA(d), lambda d: PPCA(d, method="em")]
MODEL_IDS = ["FA", "PPCA", "PPCA-em"]


@pytest.mark.parametrize("make", MODELS, ids=MODEL_IDS)
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_training_data_rejected(make, bad):
    X = np.random.default_rng(0).standard_normal((20, 4))
    X[3, 2] = bad
    with pytest.raises(ValueError, match="(NaN|infinity)"):
        make(2).fit(X)


@pytest.mark.parametrize("make", MODELS, ids=MODEL_IDS)
def test_1d_input_rejected(make):
    with pytest.raises(ValueError, match="2D array"):
        make(1).fit(np.arange(10.0))


@pytest.mark.parametrize("make", MODELS, ids=MODEL_IDS)
def test_single_sample_rejected(make):
    with pytest.raises(ValueError, match="1 sample"):
        make(1).fit(np.ones((1, 4)))


@pytest.mark.parametrize("make", MODELS, ids=MODEL_IDS)
def test_n_components_below_one_rejected(make):
    X = np.random.default_rng(0).standard_normal((20, 4))
    with pytest.raises(ValueError, match="n_components must be an int >= 1"):
        make(0).fit(X)


@pytest.mark.parametrize("make", MODELS, ids=MODEL_IDS)
@pytest.mark.parametrize("value", [2.5, "3", True])
def test_n_components_wrong_type_rejected(make, value):
    X = np.random.default_rng(0).standard_normal((20, 4))
    with pytest.raises(TypeError, match="n_components must be an int"):
        make(value).fit(X)


def test_n_components_range_fa_allows_p_rejects_more():
    X = np.random.default_rng(0).standard_normal((50, 4))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        FactorAnalysis(4, max_iter=50).fit(X)
    with pytest.raises(ValueError, match="n_components=5 .* n_features=4"):
        FactorAnalysis(5).fit(X)


@pytest.mark.parametrize("method", ["closed_form", "em"])
def test_n_components_range_ppca_requires_less_than_p(method):
    X = np.random.default_rng(0).standard_normal((50, 4))
    PPCA(3, method=method).fit(X)
    with pytest.raises(ValueError, match="n_components=4 .* n_features=4"):
        PPCA(4, method=method).fit(X)


@pytest.mark.parametrize("make", MODELS, ids=MODEL_IDS)
@pytest.mark.parametrize("method", ["transform", "score", "score_samples", "posterior"])
def test_wrong_number_of_columns_rejected(make, method):
    rng = np.random.default_rng(0)
    model = make(2).fit(make_fa_data(500, rng, p=8, d=2)[0])
    with pytest.raises(ValueError, match="X has 4 features, but .* is expecting 8"):
        getattr(model, method)(rng.standard_normal((3, 4)))


@pytest.mark.parametrize("make", MODELS, ids=MODEL_IDS)
@pytest.mark.parametrize("method", ["transform", "score", "score_samples", "posterior"])
def test_non_finite_test_data_rejected(make, method):
    rng = np.random.default_rng(0)
    model = make(2).fit(make_fa_data(500, rng, p=8, d=2)[0])
    X = rng.standard_normal((3, 8))
    X[1, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        getattr(model, method)(X)


@pytest.mark.parametrize("make", MODELS, ids=MODEL_IDS)
@pytest.mark.parametrize("call", [
    lambda m: m.transform(np.ones((2, 3))),
    lambda m: m.score(np.ones((2, 3))),
    lambda m: m.score_samples(np.ones((2, 3))),
    lambda m: m.posterior(np.ones((2, 3))),
    lambda m: m.sample(3),
    lambda m: m.get_covariance(),
    lambda m: m.get_precision(),
])
def test_unfitted_raises_not_fitted(make, call):
    with pytest.raises(NotFittedError):
        call(make(1))


@pytest.mark.parametrize("make", MODELS, ids=MODEL_IDS)
@pytest.mark.parametrize("case", ["constant", "duplicated_columns", "fewer_samples_than_d",
                                  "huge_scale", "tiny_scale", "rank_deficient"])
def test_degenerate_data_gives_finite_results(make, case):
    rng = np.random.default_rng(4)
    X = rng.standard_normal((40, 6))
    if case == "constant":
        X = np.full((40, 6), 3.0)
    elif case == "duplicated_columns":
        X[:, 3:] = X[:, :3]
    elif case == "fewer_samples_than_d":
        X = X[:3]
    elif case == "huge_scale":
        X = X * 1e150
    elif case == "tiny_scale":
        X = X * 1e-150
    elif case == "rank_deficient":
        X = rng.standard_normal((40, 2)) @ rng.standard_normal((2, 6))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = make(4).fit(X)
    for out in (model.score_samples(X), model.transform(X), model.get_covariance(),
                model.get_precision(), model.sample(5, random_state=0)):
        assert np.all(np.isfinite(out)), case


def test_overflowing_data_is_a_clear_error():
    X = np.random.default_rng(0).standard_normal((30, 3)) * 1e200
    with pytest.raises(ValueError, match="overflows"):
        FactorAnalysis(1).fit(X)


@pytest.mark.parametrize("kwargs, match", [
    (dict(max_iter=0), "max_iter must be an int >= 1"),
    (dict(tol=-1.0), "tol must be a finite float >= 0"),
    (dict(min_noise_variance=0.0), "min_noise_variance must be a finite float > 0"),
    (dict(init="svd"), "init must be 'pca' or 'random'"),
])
def test_bad_fa_hyperparameters(kwargs, match):
    X = np.random.default_rng(0).standard_normal((20, 4))
    with pytest.raises(ValueError, match=match):
        FactorAnalysis(2, **kwargs).fit(X)
