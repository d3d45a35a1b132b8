"""ex02: the checkers accept the library's E-step and M-step, reject plausible wrong ones with a
hint, and run on the student's file once it is written."""

import numpy as np
import pytest

from exercises import attempted
from exercises.ex02_factor_analysis_em import checks, student
from scratchdgm.models.linear import factor_analysis as fa

pytestmark = pytest.mark.exercise


def test_checks_accept_the_library_solution():
    assert checks.check_e_step(fa.e_step)
    assert checks.check_m_step(fa.m_step)
    assert checks.check_em_monotone(fa.e_step, fa.m_step)


# plausible wrong E-steps ----------------------------------------------------------------------

def _e_not_centred(X, W, psi, mu):
    return fa.e_step(X, W, psi, np.zeros_like(mu))


def _e_transposed(X, W, psi, mu):
    Ez, cov = fa.e_step(X, W, psi, mu)
    return Ez.T, cov


def _e_psi_not_inverted(X, W, psi, mu):
    return fa.e_step(X, W, 1.0 / psi, mu)


def _e_forgot_minv(X, W, psi, mu):
    Ez, cov = fa.e_step(X, W, psi, mu)
    return (X - mu) @ (W / psi[:, None]), cov


def _e_returns_m(X, W, psi, mu):
    Ez, _ = fa.e_step(X, W, psi, mu)
    return Ez, np.eye(W.shape[1]) + W.T @ (W / psi[:, None])


@pytest.mark.parametrize("wrong, hint", [
    (_e_not_centred, "subtract mu"),
    (_e_transposed, "transpose"),
    (_e_psi_not_inverted, "Psi instead of Psi\\^\\{-1\\}"),
    (_e_forgot_minv, "forget M\\^\\{-1\\}"),
    (_e_returns_m, "its inverse M\\^\\{-1\\}"),
])
def test_checks_reject_wrong_e_steps(wrong, hint):
    with pytest.raises(AssertionError, match=hint):
        checks.check_e_step(wrong)


# plausible wrong M-steps ----------------------------------------------------------------------

def _m_no_posterior_cov(X, Ez, cov, mu, min_noise_variance=1e-12):
    return fa.m_step(X, Ez, np.zeros_like(cov), mu, min_noise_variance=min_noise_variance)


def _m_one_cov(X, Ez, cov, mu, min_noise_variance=1e-12):
    return fa.m_step(X, Ez, cov / X.shape[0], mu, min_noise_variance=min_noise_variance)


def _m_no_floor(X, Ez, cov, mu, min_noise_variance=1e-12):
    Xc, n = X - mu, X.shape[0]
    W = Xc.T @ Ez @ np.linalg.inv(n * cov + Ez.T @ Ez)
    return W, np.sum(Xc**2, axis=0) / n - np.sum(W * (Xc.T @ Ez), axis=1) / n


def _m_psi_from_w_squared(X, Ez, cov, mu, min_noise_variance=1e-12):
    W, _ = fa.m_step(X, Ez, cov, mu, min_noise_variance=min_noise_variance)
    S = np.cov(X.T, bias=True)
    return W, np.maximum(np.diag(S) - np.sum(W**2, axis=1), min_noise_variance)


def _m_w_transposed(X, Ez, cov, mu, min_noise_variance=1e-12):
    W, psi = fa.m_step(X, Ez, cov, mu, min_noise_variance=min_noise_variance)
    return W.T, psi


@pytest.mark.parametrize("wrong, hint", [
    (_m_no_posterior_cov, "forget the posterior covariance"),
    (_m_one_cov, "n copies of cov_z"),
    (_m_no_floor, "floor psi_new"),
    (_m_psi_from_w_squared, "not diag\\(S - W_new W_new\\^T\\)"),
    (_m_w_transposed, "transposed"),
])
def test_checks_reject_wrong_m_steps(wrong, hint):
    with pytest.raises(AssertionError, match=hint):
        checks.check_m_step(wrong)


def test_em_check_rejects_a_non_em_iteration():
    # psi = diag(S - W W^T) is a plausible-looking but wrong noise update; with it, the
    # iteration is no longer EM and the likelihood goes down
    with pytest.raises(AssertionError, match="decreased the log-likelihood|not finite"):
        checks.check_em_monotone(fa.e_step, _m_psi_from_w_squared)


# the student's file ---------------------------------------------------------------------------

def _tiny():
    X = np.arange(12.0).reshape(4, 3) ** 1.5
    return X, np.ones((3, 1)), np.ones(3), X.mean(axis=0)


def test_student_e_step():
    X, W, psi, mu = _tiny()
    if not attempted(student.e_step, X, W, psi, mu):
        pytest.skip("exercise ex02 not attempted yet")
    checks.check_e_step(student.e_step)


def test_student_m_step():
    X, W, psi, mu = _tiny()
    if not attempted(student.m_step, X, np.zeros((4, 1)), np.eye(1), mu):
        pytest.skip("exercise ex02 not attempted yet")
    checks.check_m_step(student.m_step)


def test_student_em_is_monotone():
    X, W, psi, mu = _tiny()
    if not (attempted(student.e_step, X, W, psi, mu)
            and attempted(student.m_step, X, np.zeros((4, 1)), np.eye(1), mu)):
        pytest.skip("exercise ex02 not attempted yet")
    checks.check_em_monotone(student.e_step, student.m_step)
