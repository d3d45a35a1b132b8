r"""scratchdgm.evaluate, checked on the linear-Gaussian model where log p(x), the posterior and the
ELBO are exact; the protocol's optional parts on the VAE (normal and mixture priors); the report
object; and the linear-Gaussian model itself (LinearGaussianLVM).

Statistical margins were checked once over seeds 0..19 (worst case in the comments).
"""

import json

import numpy as np
import pytest

import scratchdgm as sd
from scratchdgm.cli._runs import evaluate_model
from scratchdgm.evaluation import evaluate
from scratchdgm.models.deep import LinearGaussianLVM

KS = (1, 5, 10, 50, 200)


@pytest.fixture(scope="module")
def data():
    # a 3-factor linear-Gaussian data set in 8 dimensions, and PPCA fitted to it
    rng = np.random.default_rng(0)
    W = rng.normal(size=(8, 3))
    X = rng.normal(size=(400, 3)) @ W.T + 0.5 * rng.normal(size=(400, 8)) + 1.0
    return sd.PPCA(3).fit(X[:300]), X[300:]


def _model(ppca, proposal="posterior", scale=1.0):
    return LinearGaussianLVM(ppca, proposal, scale, backend="numpy")


# --------------------------------------------------------------- the linear-Gaussian model


def test_variational_decomposition_is_exact(data):
    # log p(x) = ELBO(q) + KL(q || p(z|x)) for any Gaussian q, from three independent
    # computations (Woodbury log-density, closed-form ELBO, closed-form Gaussian KL)
    ppca, X = data
    for proposal, scale in (("posterior", 1.0), ("posterior", 1.7), ("posterior", 0.6),
                            ("prior", 1.0), ("prior", 2.0)):
        m = _model(ppca, proposal, scale)
        lp, elbo, kl = m.exact_log_likelihood(X), m.elbo(X), m.kl_to_posterior(X)
        np.testing.assert_allclose(lp, elbo + kl, rtol=0, atol=1e-8)
        assert np.all(kl >= -1e-10)
        if proposal == "posterior" and scale == 1.0:
            np.testing.assert_allclose(kl, 0.0, atol=1e-10)


def test_closed_form_elbo_is_the_mean_log_weight(data):
    # the ELBO formula against a Monte Carlo average of the model's own log-weights
    ppca, X = data
    _check_elbo_is_the_mean_log_weight(ppca, X[:40], 0)


def _check_elbo_is_the_mean_log_weight(ppca, X, seed):
    m = _model(ppca, "posterior", 1.5)
    log_w = m.log_weights(X, 5000, np.random.default_rng(seed)).data
    se = log_w.std(axis=0) / np.sqrt(len(log_w))
    z = (log_w.mean(axis=0) - m.elbo(X)) / se
    assert np.max(np.abs(z)) < 4.5, np.max(np.abs(z))     # 40 points; over 20 seeds: max 3.1


def test_linear_model_checks_its_arguments(data):
    ppca, X = data
    with pytest.raises(ValueError, match="proposal must be one of"):
        LinearGaussianLVM(ppca, "mean-field")
    with pytest.raises(TypeError, match="fitted PPCA or FactorAnalysis"):
        LinearGaussianLVM(object())
    with pytest.raises(ValueError, match=r"expected \(n_samples, 8\)"):
        _model(ppca).elbo(X[:, :5])
    with pytest.raises(ValueError, match="scale must be"):
        LinearGaussianLVM(ppca, scale=0.0)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_factor_analysis_works_too(data):
    # any (W, Psi) will do: the identity holds at every EM iterate, converged or not
    _, X = data
    fa = sd.FactorAnalysis(3, max_iter=20, random_state=0).fit(X)
    m = LinearGaussianLVM(fa, backend="numpy")
    np.testing.assert_allclose(m.elbo(X), fa.score_samples(X), atol=1e-8)


# ------------------------------------------------------------------------------- evaluate


def test_e_step_proposal_makes_every_number_exact(data):
    # q = p(z|x): every log-weight is log p(x), so the ELBO, every L_K and the log-likelihood
    # equal the exact log p(x), and all K weights count (ESS = K)
    ppca, X = data
    m = _model(ppca)
    X = X[:30]
    # chunk_size < K: each point's 200 draws come in chunks of 150 and 50
    r = evaluate(m, X, ks=KS, random_state=0, progress=False, chunk_size=150)
    exact = m.exact_log_likelihood(X)
    for key in ["elbo", "log_likelihood", *[f"bound_{k}" for k in KS]]:
        np.testing.assert_allclose(r.per_point[key], exact, rtol=0, atol=1e-9)
    np.testing.assert_allclose(r.per_point["ess"], KS[-1], rtol=1e-9)
    assert r.log_likelihood["mean"] == pytest.approx(exact.mean(), abs=1e-9)


def _check_bounds_against_exact(ppca, X, seed):
    m = _model(ppca, "posterior", 1.5)
    r = evaluate(m, X, ks=KS, random_state=seed, progress=False, chunk_size=1000)
    exact, elbo = m.exact_log_likelihood(X), m.elbo(X)
    # L_1 estimates the exact ELBO: a paired z-score over the points
    d = r.per_point["elbo"] - elbo
    assert abs(d.mean() / (d.std() / np.sqrt(len(d)))) < 4   # over 20 seeds: max 2.3
    # each L_K below log p(x) on average and tighter with K; per point, ordered for K | K'
    gaps = [exact - r.per_point[f"bound_{k}"] for k in KS]
    means = [float(g.mean()) for g in gaps]
    assert all(a > b for a, b in zip(means, means[1:])), means
    z_last = means[-1] / (gaps[-1].std() / np.sqrt(len(X)))
    # the last gap is 0 within Monte Carlo error (over 20 seeds: z from -1.6 to 1.4)
    assert z_last > -4 and means[-1] < 0.05 * means[0], (z_last, means)
    for k, k2 in ((1, 5), (5, 10), (10, 50), (50, 200)):
        assert np.all(r.per_point[f"bound_{k}"] <= r.per_point[f"bound_{k2}"] + 1e-12)


def test_bounds_tighten_towards_the_exact_log_likelihood(data):
    _check_bounds_against_exact(*data, 0)


def test_kl_and_active_units(data):
    ppca, X = data
    m = _model(ppca)
    r = evaluate(m, X, ks=(1, 2), random_state=0, progress=False)
    # q is the exact posterior, diagonal for PPCA: the per-dimension KLs add up to the total
    assert r.kl_total["z"] == pytest.approx(float(np.sum(r.kl_per_dimension["z"])), rel=1e-9)
    assert r.active_units["z"]["active"] == 3 and r.active_units["z"]["dim"] == 3
    # the prior as proposal: the posterior mean is 0 for every x, no unit is active
    r = evaluate(_model(ppca, "prior"), X, ks=(1, 2), random_state=0, progress=False)
    assert r.active_units["z"]["active"] == 0 and r.kl_total["z"] == pytest.approx(0.0)


def test_report_is_json_ready_and_readable(data):
    ppca, X = data
    desc = {"data": "synthetic", "split": "held out", "binarisation": "none"}
    r = evaluate(_model(ppca, "posterior", 1.2), X, ks=(1, 10, 100), random_state=0,
                 data_description=desc, progress=False)
    d = json.loads(json.dumps(r.as_dict(), allow_nan=False))
    assert d["data"]["description"] == desc and d["data"]["n_points"] == len(X)
    assert set(d["bounds"]) == {"1", "10", "100"} and d["log_likelihood"]["k"] == 100
    text = str(r)
    for line in ("ELBO = L_1", "L_10", "log p(x) = L_100", "effective sample size",
                 "active units (z): 3 / 3", "KL(q || p) per dimension (z)", "held out"):
        assert line in text, line


class _Bare:
    r"""Only the required protocol: log-weights, data check, posterior mean."""

    def __init__(self, model):
        self.model = model

    def log_weights(self, x, k, rng):
        return self.model.log_weights(x, k, rng)

    def check_data(self, X):
        return self.model.check_data(X)

    def transform(self, X):
        return self.model.transform(X)


def test_missing_optional_parts_read_n_a(data):
    ppca, X = data
    r = evaluate(_Bare(_model(ppca)), X, ks=(1, 3), random_state=0, progress=False)
    assert r.kl_per_dimension == "n/a" and r.kl_total == "n/a"
    assert r.active_units["z"]["dim"] == 3
    assert "KL(q || p) per dimension: n/a" in r.format()


def test_evaluate_says_what_is_wrong(data):
    ppca, X = data
    m = _model(ppca)
    with pytest.raises(ValueError, match="each K of ks must be an int >= 1"):
        evaluate(m, X, ks=(0, 5), progress=False)
    with pytest.raises(TypeError, match="ks must be a sequence"):
        evaluate(m, X, ks=5, progress=False)

    class Wrong(_Bare):
        def log_weights(self, x, k, rng):
            return np.zeros((len(x), k))

    with pytest.raises(ValueError, match=r"protocol expects \(k, len\(x\)\)"):
        evaluate(Wrong(m), X[:3], ks=(1, 2), progress=False)


# --------------------------------------------------------------------------------- the VAE


@pytest.fixture(scope="module")
def digits():
    from scratchdgm.data import load_digits_protocol

    return load_digits_protocol()


@pytest.mark.parametrize("prior", ["normal", "gmm:3"])
def test_vae_gives_the_optional_protocol(digits, prior):
    model = sd.VAE(64, 4, (16,), prior=prior, random_state=0, backend="numpy")
    model.fit(digits.x_train[:300], epochs=2, progress=False)
    X = digits.x_test_binary[:40]
    r = evaluate(model, X, ks=(1, 4, 16), random_state=1, progress=False)
    assert r.elbo["mean"] <= r.bounds[4]["mean"] <= r.bounds[16]["mean"]
    if prior == "normal":
        per = r.kl_per_dimension["z"]
        assert per.shape == (4,) and np.all(per >= 0)
        assert r.kl_total["z"] == pytest.approx(per.sum(), rel=1e-9)
        # the closed-form total is the mean of the VAE's own KL term
        q = model.encode(X)
        assert r.kl_total["z"] == pytest.approx(float(model.prior.kl(q).data.mean()), rel=1e-9)
    else:
        # a mixture prior does not factorise: no KL per dimension, the total by Monte Carlo
        assert r.kl_per_dimension == "n/a" and r.kl_total["z"] > 0
        assert "not given: undefined when the prior does not factorise" in r.format()


def test_cli_evaluation_keeps_its_keys_and_adds_the_report(digits):
    model = sd.VAE(64, 3, (8,), random_state=0, backend="numpy")
    out = evaluate_model(model, digits.x_test_binary[:30], eval_k=20, x_train=digits.x_train,
                         seed=0, data_description={"data": "digits", "split": "test"})
    for key in ("test_log_likelihood", "eval_k", "eval_seconds", "test_bounds",
                "active_units", "latent_dim"):
        assert key in out, key
    assert set(out["test_bounds"]) == {"1", "5", "50"} and out["eval_k"] == 20
    assert out["evaluation"]["data"]["description"]["split"] == "test"
    assert out["test_bounds"]["1"] <= out["test_log_likelihood"] <= out["test_bounds"]["50"]
    assert "effective sample size" in out["evaluation_text"]
    json.dumps(out, allow_nan=False)
