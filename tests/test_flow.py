r"""The RealNVP flow (scratchdgm.models.deep.flow): log|det J| against the Jacobian computed by
the autodiff, the inverse to 1e-10, the change of variables against a numerical integral of
the density, maximum-likelihood training, the VAE reading (L_K = log p for every K), saving,
and clear errors for configurations that are not invertible."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import scratchdgm as sd
from scratchdgm.autodiff import batch_jacobian
from scratchdgm.data import two_moons
from scratchdgm.models.deep import load_model
from scratchdgm.models.deep.flow import (
    AffineCoupling,
    RealNVP,
    alternating_masks,
    check_masks,
)
from scratchdgm.testing import strategies as S


def random_flow(d=2, n_layers=4, seed=0, scale=0.5, **kwargs):
    """A flow with every weight drawn at random: the couplings start as the identity (zero last
    layers), which would make the checks below trivial."""
    flow = RealNVP(d, n_layers, hidden=(8,), random_state=seed, backend="numpy", **kwargs)
    rng = np.random.default_rng(seed + 100)
    for p in flow.parameters():
        p.data[...] = scale * rng.standard_normal(p.shape)
    return flow


@given(data=st.data(), d=st.integers(2, 4), n_layers=st.integers(2, 5), seed=st.integers(0, 99))
def test_log_det_is_log_abs_det_of_the_autodiff_jacobian(data, d, n_layers, seed):
    flow = random_flow(d, n_layers, seed)
    x = data.draw(S.arrays((3, d), -3, 3))
    _, log_det = flow.forward(x)
    J = batch_jacobian(lambda v: flow.forward(v)[0], x)           # (3, d, d)
    sign, logabs = np.linalg.slogdet(J)
    assert np.all(sign > 0)  # each coupling has a positive triangular Jacobian
    np.testing.assert_allclose(log_det.data, logabs, rtol=0, atol=1e-10)


@given(data=st.data(), d=st.integers(2, 4), seed=st.integers(0, 99))
def test_one_coupling_jacobian_is_triangular_with_exp_s_on_the_moved_coordinates(data, d, seed):
    mask = alternating_masks(1, d)[0]
    layer = AffineCoupling(mask, (6,), "tanh", 3.0, rng=np.random.default_rng(seed),
                           backend="numpy")
    rng = np.random.default_rng(seed + 1)
    for p in layer.parameters():
        p.data[...] = 0.5 * rng.standard_normal(p.shape)
    x = data.draw(S.arrays((2, d), -3, 3))
    J = batch_jacobian(lambda v: layer(v)[0], x)
    s, _ = layer.scale_and_shift(x * mask)
    kept, moved = mask == 1, mask == 0
    for b in range(2):
        np.testing.assert_allclose(J[b][np.ix_(kept, kept)], np.eye(kept.sum()), atol=0)
        assert not J[b][np.ix_(kept, moved)].any()          # kept outputs ignore moved inputs
        np.testing.assert_allclose(J[b][np.ix_(moved, moved)],
                                   np.diag(np.exp(s.data[b][moved])), atol=1e-12)


@settings(max_examples=20)
@given(data=st.data(), d=st.integers(2, 4), n_layers=st.integers(2, 8), seed=st.integers(0, 99))
def test_inverse_inverts_the_forward_map_to_1e_10(data, d, n_layers, seed):
    flow = random_flow(d, n_layers, seed, scale=0.8)
    x = data.draw(S.arrays((5, d), -4, 4))
    z = flow.transform(x)
    np.testing.assert_allclose(flow.inverse_transform(z), x, rtol=0, atol=1e-10)
    np.testing.assert_allclose(flow.transform(flow.inverse_transform(x)), x, rtol=0, atol=1e-10)


def test_samples_are_the_inverse_of_their_codes():
    flow = random_flow(seed=3)
    x, z = flow.sample(200, random_state=0, return_latent=True)
    np.testing.assert_allclose(flow.transform(x), z, rtol=0, atol=1e-10)
    np.testing.assert_array_equal(flow.sample(5, random_state=7), flow.sample(5, random_state=7))


def test_density_integrates_to_one():
    # an independent check of the change of variables log p = log N(f(x)) + log|det J|, by
    # the midpoint rule on [-12, 12]^2 (this flow's mass outside it is below 1e-7: 0 of 2e5
    # samples fall outside [-10, 10]^2)
    flow = random_flow(seed=1, scale=0.3)
    g = np.linspace(-12.0, 12.0, 301)
    xx, yy = np.meshgrid(g, g)
    pts = np.column_stack([xx.ravel(), yy.ravel()])
    cell = (g[1] - g[0]) ** 2
    assert abs(np.exp(flow.score_samples(pts)).sum() * cell - 1.0) < 1e-5
    # without the log-determinant the "density" is far from normalised
    z = flow.transform(pts)
    no_det = np.exp(-0.5 * (z * z).sum(axis=1) - np.log(2 * np.pi)).sum() * cell
    assert abs(no_det - 1.0) > 0.05, no_det


def test_log_prob_gradient_in_the_input():
    flow = random_flow(seed=2)
    x = np.array([[0.3, -0.7], [1.2, 0.4]])
    assert sd.gradcheck(lambda v: flow.log_prob(v), [x])


def test_log_prob_gradient_in_a_weight():
    flow = random_flow(seed=4)
    layer = flow.couplings[1].net.layers[0]
    weight = layer.weight
    x = np.array([[0.3, -0.7], [1.2, 0.4], [-0.5, 0.9]])

    def log_p(w):
        layer.weight = w  # a plain Tensor in the Parameter's place, for the check only
        return flow.log_prob(x)
    try:
        assert sd.gradcheck(log_p, [weight.data.copy()])
    finally:
        layer.weight = weight


@pytest.mark.slow
def test_maximum_likelihood_beats_a_gaussian_and_keeps_improving():
    x, _ = two_moons(1200, 0)
    train, test = x[:1000], x[1000:]
    flow = RealNVP(2, n_layers=6, hidden=(32, 32), random_state=0, backend="numpy")
    before = flow.score(test)
    flow.fit(train, epochs=25, batch_size=100, lr=3e-3, progress=False, random_state=0)
    mean, cov = train.mean(axis=0), np.cov(train.T)
    diff = test - mean
    gauss = np.mean(-0.5 * np.einsum("ij,jk,ik->i", diff, np.linalg.inv(cov), diff)
                    - 0.5 * np.log(np.linalg.det(2 * np.pi * cov)))
    after = flow.score(test)
    # measured once over the flow's seeds 0-19 (same data and steps): after - gauss in
    # [0.16, 0.29] nats, after - before in [0.71, 0.84]; the margins are half the smallest
    assert after > gauss + 0.08, (after, gauss)
    assert after > before + 0.35, (after, before)
    assert flow.history_["train_bound"][-1] > flow.history_["train_bound"][0] + 0.35


def test_vae_reading_every_bound_is_the_exact_log_likelihood():
    flow = random_flow(seed=5)
    x = np.random.default_rng(0).standard_normal((7, 2))
    exact = flow.score_samples(x)
    lw = flow.log_weights(x, 4)
    assert lw.shape == (4, 7)
    np.testing.assert_allclose(lw.data, np.broadcast_to(exact, (4, 7)), atol=0)
    for k in (1, 50):
        np.testing.assert_allclose(flow.bound_samples(x, k), exact, atol=1e-12)
    from scratchdgm.models.deep import evaluation
    np.testing.assert_allclose(evaluation.score_samples(flow, x, k=30), exact, atol=1e-12)


def test_save_load_round_trip_and_resume(tmp_path):
    x, _ = two_moons(300, 1)
    flow = RealNVP(2, n_layers=4, hidden=(8,), random_state=0, backend="numpy")
    flow.fit(x, epochs=2, batch_size=50, progress=False, checkpoint=tmp_path / "a.npz")
    with sd.use_backend("numpy"):  # the backend is a runtime setting, not saved
        again = load_model(tmp_path / "a.npz")
        assert isinstance(again, RealNVP) and again.config() == flow.config()
        np.testing.assert_array_equal(again.score_samples(x), flow.score_samples(x))
    # 2 epochs then 2 more from the checkpoint = 4 epochs in one go, bit for bit
    resumed = RealNVP(2, n_layers=4, hidden=(8,), random_state=0, backend="numpy")
    resumed.fit(x, epochs=4, batch_size=50, progress=False, checkpoint=tmp_path / "a.npz",
                resume=True)
    straight = RealNVP(2, n_layers=4, hidden=(8,), random_state=0, backend="numpy")
    straight.fit(x, epochs=4, batch_size=50, progress=False)
    np.testing.assert_array_equal(resumed.score_samples(x), straight.score_samples(x))


def test_float32_stays_float32():
    flow = RealNVP(2, 4, hidden=(8,), dtype=np.float32, random_state=0, backend="numpy")
    z, log_det = flow.forward(np.zeros((3, 2), dtype=np.float32))
    assert z.dtype == np.float32 and log_det.dtype == np.float32
    assert flow.sample(4, random_state=0).dtype == np.float32


@pytest.mark.parametrize("kwargs, message", [
    (dict(input_dim=1), "input_dim must be an int >= 2"),
    (dict(masks=[[1, 0], [0.5, 1]]), "only 0 .moved. and 1"),
    (dict(masks=[[1, 1], [0, 1]]), "layer 0 is all ones"),
    (dict(masks=[[0, 0], [0, 1]]), "layer 0 is all zeros"),
    (dict(masks=[[1, 0], [1, 0]]), r"coordinate\(s\) \[0\] are kept by every layer"),
    (dict(n_layers=1), r"coordinate\(s\) \[0\] are kept by every layer"),
    (dict(n_layers=3, masks=[[1, 0], [0, 1]]), "2 masks given for n_layers = 3"),
    (dict(masks=[[1, 0, 1]]), r"masks must have shape \(n_layers, 2\)"),
    (dict(max_log_scale=0.0), "max_log_scale must be a finite float > 0"),
    (dict(max_log_scale=float("inf")), "max_log_scale must be finite"),
    (dict(activation="swish"), "activation must be one of"),
])
def test_configurations_that_are_not_invertible_or_not_valid(kwargs, message):
    args = dict(input_dim=2, n_layers=2, backend="numpy")
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        RealNVP(**args)


def test_check_masks_accepts_the_default_masks():
    for d in (2, 3, 5):
        m = check_masks(alternating_masks(4, d), d)
        assert m.shape == (4, d) and np.all(m[0] + m[1] == 1)


def test_bad_data_is_refused_clearly():
    flow = RealNVP(2, 2, hidden=(4,), backend="numpy")
    with pytest.raises(ValueError, match="has 3 columns but the model was built with input_dim "
                                         "= 2"):
        flow.score_samples(np.zeros((4, 3)))
    with pytest.raises(ValueError, match="NaN or inf"):
        flow.inverse_transform(np.array([[0.0, np.nan]]))
    with pytest.raises(ValueError, match="no observation model"):
        sd.models.deep.fit(flow, np.zeros((4, 2)), epochs=1, binarize="dynamic",
                           progress=False)
