"""PPCA: the closed form equals scikit-learn's PCA density once its n-1 covariance is put on the
1/n MLE, is a maximum, and EM reaches it; and the shared linear-Gaussian API of both models
(posterior, Woodbury log-density, sampling, covariance/precision) against scipy.stats."""

import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.stats import multivariate_normal
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.exceptions import ConvergenceWarning
from threadpoolctl import threadpool_limits

from scratchdgm import PPCA, FactorAnalysis


@pytest.fixture(autouse=True, scope="module")
def one_blas_thread():
    with threadpool_limits(limits=1):
        yield


@pytest.fixture(scope="module")
def digits():
    return load_digits().data / 16.0


def make_data(n, seed, p=10, d=3, noise=None):
    rng = np.random.default_rng(seed)
    W = rng.standard_normal((p, d)) * np.array([3.0, 2.0, 1.5][:d])
    noise = rng.uniform(0.3, 1.0, p) if noise is None else noise
    X = (rng.standard_normal((n, d)) @ W.T + rng.standard_normal(p)
         + rng.standard_normal((n, p)) * np.sqrt(noise))
    return X


@pytest.fixture(scope="module")
def synthetic():
    return make_data(1000, 0)


def sklearn_mle_score(X, d):
    """sklearn's PCA density, with its n-1 variances rescaled to the 1/n maximum likelihood."""
    n = X.shape[0]
    pca = PCA(d, svd_solver="full").fit(X)
    pca.explained_variance_ *= (n - 1) / n
    pca.noise_variance_ *= (n - 1) / n
    return pca.score(X), pca


# --------------------------------------------------------------------------------------------
# closed form


@pytest.mark.parametrize("solver", ["full", "covariance_eigh", "auto"])
@pytest.mark.parametrize("data, d", [("digits", 10), ("synthetic", 3)])
def test_equals_sklearn_pca_score_after_mle_correction(request, data, d, solver):
    X = request.getfixturevalue(data)
    ours = PPCA(d, svd_solver=solver).fit(X)
    theirs, _ = sklearn_mle_score(X, d)
    assert ours.score(X) == pytest.approx(theirs, rel=1e-8)
    assert ours.loglike_[0] == pytest.approx(theirs, rel=1e-8)


def test_sklearn_uncorrected_score_is_lower(synthetic):
    # the n-1 covariance is not the maximiser, so sklearn's raw score is (slightly) lower
    raw = PCA(3, svd_solver="full").fit(synthetic).score(synthetic)
    assert PPCA(3).fit(synthetic).score(synthetic) > raw


def test_solvers_agree(digits):
    a = PPCA(10, svd_solver="full").fit(digits)
    b = PPCA(10, svd_solver="covariance_eigh").fit(digits)
    np.testing.assert_allclose(a.components_, b.components_, rtol=1e-6, atol=1e-9)
    assert a.noise_variance_ == pytest.approx(b.noise_variance_, rel=1e-10)
    np.testing.assert_allclose(a.explained_variance_, b.explained_variance_, rtol=1e-10)


def test_closed_form_values(synthetic):
    d = 3
    ppca = PPCA(d).fit(synthetic)
    lam, U = np.linalg.eigh(np.cov(synthetic.T, bias=True))
    lam, U = lam[::-1], U[:, ::-1]
    sigma2 = lam[d:].mean()
    assert ppca.noise_variance_ == pytest.approx(sigma2, rel=1e-10)
    np.testing.assert_allclose(ppca.explained_variance_, lam[:d], rtol=1e-10)
    # W = U_d (Lambda_d - sigma^2 I)^{1/2}, up to the sign of each column
    W = ppca.components_.T
    np.testing.assert_allclose(np.abs(W), np.abs(U[:, :d] * np.sqrt(lam[:d] - sigma2)),
                               rtol=1e-7, atol=1e-10)
    np.testing.assert_allclose(W.T @ W, np.diag(lam[:d] - sigma2), atol=1e-9)


def test_closed_form_is_a_maximum(synthetic):
    ppca = PPCA(3).fit(synthetic)
    best = ppca.score(synthetic)
    rng = np.random.default_rng(1)
    for _ in range(5):
        other = PPCA(3).fit(synthetic)
        other.components_ = ppca.components_ + 0.02 * rng.standard_normal(ppca.components_.shape)
        other.noise_variance_ = ppca.noise_variance_ * rng.uniform(0.9, 1.1)
        assert other.score(synthetic) < best


def test_transform_is_shrunk_projection_not_pca_transform(synthetic):
    # E[z|x] = diag(sqrt(lam - s2) / lam) U_d^T (x - mu); sklearn's PCA.transform is U_d^T (x - mu)
    ppca = PPCA(3).fit(synthetic)
    proj = PCA(3, svd_solver="full").fit(synthetic).transform(synthetic)
    lam, s2 = ppca.explained_variance_, ppca.noise_variance_
    Z = ppca.transform(synthetic)
    np.testing.assert_allclose(np.abs(Z), np.abs(proj * np.sqrt(lam - s2) / lam), rtol=1e-6,
                               atol=1e-9)
    assert not np.allclose(np.abs(Z), np.abs(proj))


def test_fewer_samples_than_features_has_finite_sigma2():
    X = np.random.default_rng(0).standard_normal((5, 20))
    ppca = PPCA(2).fit(X)
    assert ppca.noise_variance_ > 0 and np.isfinite(ppca.score(X))


def test_data_in_a_subspace_floors_sigma2():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((50, 2)) @ rng.standard_normal((2, 6))
    ppca = PPCA(2, min_noise_variance=1e-9).fit(X)
    assert ppca.noise_variance_ == pytest.approx(1e-9)
    assert np.all(np.isfinite(ppca.score_samples(X)))


def test_bad_ppca_hyperparameters(synthetic):
    with pytest.raises(ValueError, match="method must be 'closed_form' or 'em'"):
        PPCA(2, method="svd").fit(synthetic)
    with pytest.raises(ValueError, match="svd_solver must be"):
        PPCA(2, svd_solver="arpack").fit(synthetic)


# --------------------------------------------------------------------------------------------
# EM


def test_em_converges_to_closed_form_likelihood(synthetic):
    closed = PPCA(3).fit(synthetic)
    em = PPCA(3, method="em", random_state=0).fit(synthetic)
    assert em.score(synthetic) == pytest.approx(closed.score(synthetic), abs=1e-6)
    assert em.score(synthetic) <= closed.score(synthetic) + 1e-12
    assert em.noise_variance_ == pytest.approx(closed.noise_variance_, rel=1e-4)
    # same principal subspace: cosines of the principal angles are 1
    Qa = np.linalg.qr(em.components_.T)[0]
    Qb = np.linalg.qr(closed.components_.T)[0]
    np.testing.assert_allclose(np.linalg.svd(Qa.T @ Qb, compute_uv=False), 1.0, atol=1e-4)
    np.testing.assert_allclose(em.explained_variance_, closed.explained_variance_, rtol=1e-3)


def test_em_digits_reaches_closed_form(digits):
    closed = PPCA(10).fit(digits).score(digits)
    em = PPCA(10, method="em", random_state=0).fit(digits)
    assert em.score(digits) == pytest.approx(closed, abs=1e-6)
    steps = np.diff(em.loglike_)
    assert np.all(steps >= -64 * np.finfo(float).eps * np.abs(em.loglike_[1:]))


def test_em_convergence_warning():
    X = make_data(300, 1)
    with pytest.warns(ConvergenceWarning, match="PPCA"):
        PPCA(3, method="em", max_iter=2, random_state=0).fit(X)


# --------------------------------------------------------------------------------------------
# shared linear-Gaussian API (both models)


@pytest.fixture(scope="module", params=["FA", "PPCA"])
def fitted(request, synthetic):
    model = FactorAnalysis(3) if request.param == "FA" else PPCA(3)
    return model.fit(synthetic)


def test_score_samples_equals_scipy(fitted, synthetic):
    ref = multivariate_normal(fitted.mean_, fitted.get_covariance()).logpdf(synthetic)
    np.testing.assert_allclose(fitted.score_samples(synthetic), ref, rtol=1e-10)
    assert fitted.score(synthetic) == pytest.approx(ref.mean(), rel=1e-10)


def test_posterior_equals_gaussian_conditioning(fitted, synthetic):
    X = synthetic[:7]
    W, mu, C = fitted.components_.T, fitted.mean_, fitted.get_covariance()
    mean, cov = fitted.posterior(X)
    # textbook conditioning of the joint Gaussian (z, x): W^T C^{-1} (x - mu), I - W^T C^{-1} W
    np.testing.assert_allclose(mean, (X - mu) @ np.linalg.solve(C, W), rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(cov, np.eye(3) - W.T @ np.linalg.solve(C, W), rtol=1e-8,
                               atol=1e-10)


def test_posterior_density_is_bayes_rule(fitted, synthetic):
    # log p(z|x) = log p(x|z) + log p(z) - log p(x), every term from scipy.stats
    W, mu = fitted.components_.T, fitted.mean_
    psi = np.diag(fitted.get_covariance() - W @ W.T)
    mean, cov = fitted.posterior(synthetic[:4])
    rng = np.random.default_rng(0)
    for x, m in zip(synthetic[:4], mean):
        z = m + rng.standard_normal(3) * 0.3
        lhs = multivariate_normal(m, cov).logpdf(z)
        rhs = (multivariate_normal(W @ z + mu, np.diag(psi)).logpdf(x)
               + multivariate_normal(np.zeros(3), np.eye(3)).logpdf(z)
               - multivariate_normal(mu, fitted.get_covariance()).logpdf(x))
        assert lhs == pytest.approx(rhs, rel=1e-8, abs=1e-8)


def test_transform_is_posterior_mean(fitted, synthetic):
    np.testing.assert_array_equal(fitted.transform(synthetic), fitted.posterior(synthetic)[0])


def test_precision_inverts_covariance(fitted):
    P, C = fitted.get_precision(), fitted.get_covariance()
    np.testing.assert_allclose(P @ C, np.eye(C.shape[0]), atol=1e-9)
    np.testing.assert_allclose(P, P.T)


def test_sample_moments_and_reproducibility(fitted):
    X = fitted.sample(100_000, random_state=0)
    assert X.shape == (100_000, fitted.n_features_in_)
    C = fitted.get_covariance()
    n = X.shape[0]
    # 6 standard errors: sqrt(C_ii / n) for the mean, sqrt((C_ii C_jj + C_ij^2) / n) for C_ij
    se_mean = np.sqrt(np.diag(C) / n)
    se_cov = np.sqrt((np.outer(np.diag(C), np.diag(C)) + C**2) / n)
    assert np.all(np.abs(X.mean(axis=0) - fitted.mean_) < 6 * se_mean)
    assert np.all(np.abs(np.cov(X.T) - C) < 6 * se_cov)
    np.testing.assert_array_equal(fitted.sample(5, random_state=3),
                                  fitted.sample(5, random_state=3))
    gen = np.random.default_rng(3)
    np.testing.assert_array_equal(fitted.sample(5, random_state=gen),
                                  fitted.sample(5, random_state=np.random.default_rng(3)))
    X2, Z = fitted.sample(4, random_state=1, return_latent=True)
    assert X2.shape == (4, fitted.n_features_in_) and Z.shape == (4, 3)


@pytest.mark.parametrize("bad", [0, -1, 2.5])
def test_sample_bad_n(fitted, bad):
    with pytest.raises((ValueError, TypeError), match="n_samples must be an int"):
        fitted.sample(bad)


def test_float32_preserved(fitted, synthetic):
    X32 = synthetic.astype(np.float32)
    assert fitted.transform(X32).dtype == np.float32
    assert fitted.score_samples(X32).dtype == np.float32
    mean, cov = fitted.posterior(X32)
    assert mean.dtype == np.float32 and cov.dtype == np.float32
    np.testing.assert_allclose(fitted.score_samples(X32), fitted.score_samples(synthetic),
                               rtol=1e-4)


def test_fit_on_float32_matches_float64(synthetic):
    for model in (FactorAnalysis(3), PPCA(3)):
        a = model.fit(synthetic).score(synthetic)
        b = model.fit(synthetic.astype(np.float32)).score(synthetic)
        assert a == pytest.approx(b, rel=1e-5)


def test_get_feature_names_out(fitted):
    names = fitted.get_feature_names_out()
    assert len(names) == 3 and names[0].startswith(type(fitted).__name__.lower())


def test_ppca_get_set_params():
    m = PPCA(2, method="em")
    assert m.get_params()["method"] == "em"
    assert m.set_params(n_components=3).n_components == 3


def test_em_no_warning_on_structured_data(synthetic):
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        PPCA(3, method="em", random_state=0).fit(synthetic)


@given(seed=st.integers(0, 2**32 - 1), p=st.integers(2, 9), d_frac=st.floats(0.0, 1.0),
       scale=st.sampled_from([1e-3, 1.0, 1e3]))
def test_woodbury_density_and_posterior_match_dense_algebra(seed, p, d_frac, scale):
    # any (W, psi), not only fitted ones: set the parameters of a fitted model by hand
    rng = np.random.default_rng(seed)
    d = 1 + int(d_frac * (p - 2))
    model = PPCA(d).fit(rng.standard_normal((3 * p, p)))
    W = rng.standard_normal((p, d)) * scale
    psi = rng.uniform(0.05, 3.0) * scale**2
    model.components_, model.noise_variance_ = W.T, psi
    model.mean_ = rng.standard_normal(p) * scale
    X = model.mean_ + rng.standard_normal((5, p)) * 2 * scale
    C = W @ W.T + psi * np.eye(p)
    ref = multivariate_normal(model.mean_, C).logpdf(X)
    np.testing.assert_allclose(model.score_samples(X), ref, rtol=1e-9, atol=1e-9)
    mean, cov = model.posterior(X)
    np.testing.assert_allclose(mean, (X - model.mean_) @ np.linalg.solve(C, W), rtol=1e-7,
                               atol=1e-9)
    np.testing.assert_allclose(cov, np.eye(d) - W.T @ np.linalg.solve(C, W), rtol=1e-7,
                               atol=1e-9)
    np.testing.assert_allclose(model.get_precision() @ C, np.eye(p), atol=1e-8)
