r"""Checks of exercise 15: MIWAE's imputation weights, ``self_normalised_weights`` and
``resample_indices`` in ``scratchdgm/models/deep/miwae.py``. Page:
``exercises/15_miwae_imputation.md``.

``MIWAE.transform`` and ``MIWAE.impute`` are run on the checks' own linear-Gaussian model
(``checks.LinearGaussianMIWAE``) in place of a trained network, so that they need only this
exercise's two functions: not the encoder and decoder (exercises 01-04), reparametrised sampling
(exercise 12) or the IWAE bound (10). And while these checks run, the ``logsumexp`` that
``miwae`` imports from ``scratchdgm.numerics`` (exercise 09) is SciPy's, so that a solution may
call it whatever the state of exercise 09.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy import special

from scratchdgm.models.deep import miwae

from exercises.checks import ex15_miwae_imputation as checks

pytestmark = pytest.mark.ex15


@pytest.fixture(autouse=True, scope="module")
def _logsumexp_from_scipy():
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(miwae, "logsumexp", special.logsumexp)
        yield


def test_weights_are_the_softmax_over_the_samples():
    checks.check_weights_values(miwae.self_normalised_weights)
    checks.check_weights_values(miwae.self_normalised_weights, seed=3, k=1, b=2)


def test_weights_ignore_a_constant_shift_of_the_log_weights():
    checks.check_weights_shift_invariance(miwae.self_normalised_weights)


def test_weights_are_stable_at_log_weights_of_plus_minus_1000():
    checks.check_weights_stable(miwae.self_normalised_weights)


def test_weighted_mean_is_the_exact_conditional_mean_of_a_linear_gaussian_model():
    checks.check_conditional_mean(miwae.self_normalised_weights)


def test_transform_imputes_the_exact_conditional_mean():
    checks.check_transform()


def test_resampling_frequencies_match_the_weights():
    checks.check_resampling_frequencies(miwae.resample_indices)


def test_resampling_draws_from_the_given_rng():
    checks.check_resampling_randomness(miwae.resample_indices)


def test_impute_draws_from_the_exact_conditional():
    checks.check_impute()


@settings(max_examples=30)
@given(hnp.arrays(np.float64, hnp.array_shapes(min_dims=2, max_dims=2, max_side=6),
                  elements=st.floats(-1e3, 1e3)))
def test_weights_for_any_log_weights(log_w):
    w = miwae.self_normalised_weights(log_w)
    assert w.shape == log_w.shape, f"shape {w.shape} for log-weights of shape {log_w.shape}"
    assert np.all(np.isfinite(w)), (f"weights {w} for log-weights {log_w}: exp overflows past "
                                    f"710; subtract each column's maximum first")
    assert np.all(w >= 0), f"negative weights {w}"
    assert np.allclose(w.sum(axis=0), 1.0, rtol=1e-12), f"columns sum to {w.sum(axis=0)}"
    assert np.allclose(w, special.softmax(log_w, axis=0), rtol=1e-9, atol=1e-300)
