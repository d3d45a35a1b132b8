r"""scratchdgm.optim: Adam step by hand (Kingma & Ba 2015, Algorithm 1), convergence of Adam and
SGD with momentum on a quadratic, bit-exact resume from a checkpoint, bad hyper-parameters."""

import numpy as np
import pytest

import scratchdgm as sd
from scratchdgm import nn, optim
from scratchdgm.checkpoint import load_npz, save_npz

# a badly conditioned quadratic f(theta) = 1/2 sum_i a_i (theta_i - c_i)^2
A = np.array([0.5, 1.0, 4.0, 10.0])
C = np.array([1.0, -2.0, 0.5, 3.0])


def quadratic(theta):
    return 0.5 * (sd.tensor(A) * (theta - C) ** 2).sum()


def run(opt, theta, steps):
    for _ in range(steps):
        opt.zero_grad()
        quadratic(theta).backward()
        opt.step()


# ------------------------------------------------------------------ Adam, exactly the paper


def adam_by_hand(theta, grads, lr, b1, b2, eps, weight_decay=0.0):
    """Algorithm 1 of Kingma & Ba (2015), written out line by line."""
    theta = theta.copy()
    m = np.zeros_like(theta)
    v = np.zeros_like(theta)
    for t, g in enumerate(grads, start=1):
        g = g + weight_decay * theta
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g ** 2
        m_hat = m / (1 - b1 ** t)
        v_hat = v / (1 - b2 ** t)
        theta = theta - lr * m_hat / (np.sqrt(v_hat) + eps)
    return theta


def test_adam_first_step_matches_the_paper_by_hand():
    theta0 = np.array([0.3, -1.2, 2.0, 0.0])
    g = np.array([0.5, -2.0, 1e-3, 0.0])
    p = nn.Parameter(theta0)
    opt = optim.Adam([p], lr=0.1, betas=(0.8, 0.99), eps=1e-6)
    p.grad = g.copy()
    opt.step()
    # bias correction makes m_hat = g and v_hat = g^2 at t = 1:
    # theta1 = theta0 - lr * g / (|g| + eps), i.e. a step of about lr against the gradient sign
    expected = theta0 - 0.1 * g / (np.abs(g) + 1e-6)
    np.testing.assert_allclose(p.data, expected, rtol=1e-14, atol=0)
    np.testing.assert_array_equal(p.data, adam_by_hand(theta0, [g], 0.1, 0.8, 0.99, 1e-6))
    st = opt.state_dict()
    assert st["state.0.step"] == 1
    np.testing.assert_allclose(st["state.0.exp_avg"], 0.2 * g)
    np.testing.assert_allclose(st["state.0.exp_avg_sq"], 0.01 * g ** 2)


@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
def test_adam_several_steps_match_the_paper_by_hand(weight_decay):
    rng = np.random.default_rng(0)
    theta0 = rng.normal(size=(3, 2))
    grads = [rng.normal(size=(3, 2)) for _ in range(5)]
    p = nn.Parameter(theta0)
    opt = optim.Adam([p], lr=0.01, betas=(0.9, 0.999), eps=1e-8, weight_decay=weight_decay)
    for g in grads:
        p.grad = g.copy()
        opt.step()
    np.testing.assert_allclose(p.data, adam_by_hand(theta0, grads, 0.01, 0.9, 0.999, 1e-8,
                                                    weight_decay), rtol=1e-13)


def test_adam_converges_on_a_quadratic():
    theta = nn.Parameter(np.zeros(4))
    opt = optim.Adam([theta], lr=0.05)
    run(opt, theta, 1500)
    np.testing.assert_allclose(theta.data, C, atol=1e-3)
    assert quadratic(theta).item() < 1e-5


def test_sgd_with_momentum_converges_and_beats_plain_sgd():
    theta = nn.Parameter(np.zeros(4))
    run(optim.SGD([theta], lr=0.02, momentum=0.9), theta, 400)
    np.testing.assert_allclose(theta.data, C, atol=1e-6)
    plain = nn.Parameter(np.zeros(4))
    run(optim.SGD([plain], lr=0.02), plain, 400)
    # the flattest direction (a = 0.5) contracts by (1 - 0.01) per step without momentum
    assert abs(plain.data[0] - C[0]) > 1e-3 > abs(theta.data[0] - C[0])


def test_sgd_update_rules_by_hand():
    p = nn.Parameter(np.array([1.0, -1.0]))
    opt = optim.SGD([p], lr=0.1, momentum=0.5, weight_decay=0.2)
    g1, g2 = np.array([1.0, 2.0]), np.array([-1.0, 0.5])
    p.grad = g1.copy()
    opt.step()
    b1 = g1 + 0.2 * np.array([1.0, -1.0])                 # b_1 = g_1
    theta1 = np.array([1.0, -1.0]) - 0.1 * b1
    np.testing.assert_allclose(p.data, theta1)
    p.grad = g2.copy()
    opt.step()
    b2 = 0.5 * b1 + g2 + 0.2 * theta1                     # b_t = mu b_{t-1} + g_t
    np.testing.assert_allclose(p.data, theta1 - 0.1 * b2)
    plain = nn.Parameter(np.array([1.0]))
    sgd = optim.SGD([plain], lr=0.5)
    plain.grad = np.array([2.0])
    sgd.step()
    np.testing.assert_array_equal(plain.data, [0.0])
    assert sgd.state_dict()["state.0.step"] == 1 and "state.0.momentum_buffer" not in \
        sgd.state_dict()


def test_updates_are_in_place_and_keep_dtype():
    for dtype in (np.float32, np.float64):
        net = nn.MLP([3, 4, 2], rng=np.random.default_rng(0), dtype=dtype)
        arrays = [p.data for p in net.parameters()]
        for opt in (optim.Adam(net.parameters(), lr=1e-2),
                    optim.SGD(net.parameters(), lr=1e-2, momentum=0.9, weight_decay=1e-3)):
            opt.zero_grad()
            (net(np.ones((5, 3), dtype)) ** 2).sum().backward()
            opt.step()
            for p, a in zip(net.parameters(), arrays):
                assert p.data is a and p.data.dtype == dtype
            for key, value in opt.state_dict().items():
                if isinstance(value, np.ndarray):
                    assert value.dtype == dtype, key


def test_parameters_without_gradient_are_skipped():
    used = nn.Parameter(np.ones(2))
    unused = nn.Parameter(np.ones(3))
    opt = optim.Adam([used, unused], lr=0.1)
    for _ in range(3):
        opt.zero_grad()
        (used * used).sum().backward()
        opt.step()
    np.testing.assert_array_equal(unused.data, np.ones(3))
    state = opt.state_dict()
    assert state["state.0.step"] == 3 and not any(k.startswith("state.1.") for k in state)
    unused.grad = np.ones(3)   # its first step later uses its own t = 1 bias correction
    used.grad = None
    opt.step()
    np.testing.assert_allclose(unused.data, np.ones(3) - 0.1 * 1 / (1 + 1e-8))
    assert opt.state_dict()["state.1.step"] == 1


def test_zero_grad_and_mismatched_gradients():
    p = nn.Parameter(np.ones(2))
    opt = optim.SGD([p], lr=0.1)
    p.grad = np.ones(2, np.float32)  # a gradient of another dtype is cast
    opt.step()
    np.testing.assert_allclose(p.data, [0.9, 0.9])
    opt.zero_grad()
    assert p.grad is None
    p.grad = np.ones(3)
    with pytest.raises(ValueError, match=r"params\[0\].grad has shape \(3,\) but the parameter "
                                         r"has shape \(2,\)"):
        opt.step()


# ------------------------------------------------------------------ checkpoint and resume


def _train(net, opt, batches):
    losses = []
    for x, y in batches:
        opt.zero_grad()
        loss = ((net(x) - y) ** 2).mean()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


@pytest.mark.parametrize("make_opt", [
    lambda ps: optim.Adam(ps, lr=1e-2, betas=(0.8, 0.95), eps=1e-7, weight_decay=1e-3),
    lambda ps: optim.SGD(ps, lr=1e-2, momentum=0.9, weight_decay=1e-4),
])
def test_resume_from_checkpoint_is_bit_identical(tmp_path, make_opt):
    rng = np.random.default_rng(0)
    batches = [(rng.normal(size=(8, 3)), rng.normal(size=(8, 2))) for _ in range(10)]

    net = nn.MLP([3, 5, 2], rng=np.random.default_rng(1))
    opt = make_opt(net.parameters())
    _train(net, opt, batches[:5])
    # one training checkpoint: model and optimiser side by side, prefixed
    arrays = {f"model.{k}": v for k, v in net.state_dict().items()}
    arrays.update({f"optim.{k}": np.asarray(v) for k, v in opt.state_dict().items()})
    save_npz(tmp_path / "train.npz", arrays, kind="training", format_version=1,
             metadata={"epoch": 5})
    losses_straight = _train(net, opt, batches[5:])

    # a new process: fresh objects with other initial values and default hyper-parameters
    net2 = nn.MLP([3, 5, 2], rng=np.random.default_rng(99))
    opt2 = type(opt)(net2.parameters(), lr=0.5)
    loaded, meta = load_npz(tmp_path / "train.npz", kind="training", format_version=1)
    net2.load_state_dict({k[6:]: v for k, v in loaded.items() if k.startswith("model.")})
    opt2.load_state_dict({k[6:]: v for k, v in loaded.items() if k.startswith("optim.")})
    assert meta == {"epoch": 5} and opt2.lr == opt.lr
    losses_resumed = _train(net2, opt2, batches[5:])

    assert losses_resumed == losses_straight          # bit for bit
    for p, q in zip(net.parameters(), net2.parameters()):
        np.testing.assert_array_equal(p.data, q.data)


def test_state_dict_is_a_copy():
    p = nn.Parameter(np.ones(2))
    opt = optim.Adam([p])
    p.grad = np.ones(2)
    opt.step()
    state = opt.state_dict()
    state["state.0.exp_avg"][...] = 5.0
    p.grad = np.ones(2)
    opt.step()
    assert not np.any(opt.state_dict()["state.0.exp_avg"] == 5.0)


def test_load_state_dict_errors_change_nothing():
    p, q = nn.Parameter(np.ones(2)), nn.Parameter(np.ones((2, 2)))
    opt = optim.Adam([p, q], lr=0.1)
    p.grad, q.grad = np.ones(2), np.ones((2, 2))
    opt.step()
    good = opt.state_dict()
    other = optim.Adam([nn.Parameter(np.ones(2)), nn.Parameter(np.ones((2, 2)))], lr=0.3)

    def bad(**changes):
        state = dict(good)
        for k, v in changes.items():
            if v is None:
                del state[k.replace("__", ".")]
            else:
                state[k.replace("__", ".")] = v
        return state

    cases = [
        (bad(n_params=3), "state is for 3 parameters but this optimiser has 2"),
        (bad(n_params=None), "has no 'n_params' entry"),
        (bad(beta1=None), "has no 'beta1' entry"),
        (bad(state__0__velocity=np.ones(2)), "unexpected key 'state.0.velocity'"),
        (bad(state__5__step=1), "unexpected key 'state.5.step'"),
        (bad(state__0__exp_avg=np.ones(3)), r"'state.0.exp_avg' has shape \(3,\)"),
        (bad(state__1__exp_avg_sq=np.ones((2, 2), np.float32)), "dtype float32; expected"),
        (bad(state__1__exp_avg_sq=None), r"state of params\[1\] has entries"),
        (bad(state__1__exp_avg=np.full((2, 2), np.nan)), r"'state.1.exp_avg' holds NaN or "
                                                          r"infinite values"),
        (bad(state__0__exp_avg_sq=np.array([0.0, np.inf])), "holds NaN or infinite"),
        (bad(lr=np.array(np.nan)), "lr must be finite"),
    ]
    for state, pattern in cases:
        with pytest.raises(ValueError, match=pattern):
            other.load_state_dict(state)
        assert other.lr == 0.3 and other.state == [{}, {}]
    with pytest.raises(TypeError, match="state must be a dict"):
        other.load_state_dict([1, 2])


def test_sgd_state_with_momentum_loads_into_a_momentum_free_sgd():
    p = nn.Parameter(np.ones(2))
    opt = optim.SGD([p], lr=0.1, momentum=0.9)
    p.grad = np.ones(2)
    opt.step()
    fresh = optim.SGD([nn.Parameter(np.ones(2))], lr=0.1)
    fresh.load_state_dict(opt.state_dict())  # hyper-parameters come from the state
    assert fresh.momentum == 0.9
    np.testing.assert_array_equal(fresh.state[0]["momentum_buffer"], np.ones(2))


def test_repr_and_betas():
    opt = optim.Adam([nn.Parameter(np.ones(1))], lr=0.01, betas=(0.5, 0.6))
    assert opt.betas == (0.5, 0.6)
    assert repr(opt) == ("Adam(1 params, lr=0.01, beta1=0.5, beta2=0.6, eps=1e-08, "
                         "weight_decay=0.0)")


# ------------------------------------------------------------------ validation


P = [nn.Parameter(np.ones(2))]


@pytest.mark.parametrize("make, exc, pattern", [
    (lambda: optim.SGD(P, lr=0.0), ValueError, "lr must be finite with 0 < lr, got 0.0"),
    (lambda: optim.SGD(P, lr=-1), ValueError, "0 < lr"),
    (lambda: optim.SGD(P, lr=float("nan")), ValueError, "lr must be finite"),
    (lambda: optim.SGD(P, lr="0.1"), TypeError, "lr must be a real number"),
    (lambda: optim.SGD(P, lr=True), TypeError, "lr must be a real number"),
    (lambda: optim.SGD(P, lr=0.1, momentum=1.0), ValueError, "0 <= momentum < 1"),
    (lambda: optim.SGD(P, lr=0.1, weight_decay=-1e-3), ValueError, "0 <= weight_decay"),
    (lambda: optim.Adam(P, lr=0.0), ValueError, "0 < lr"),
    (lambda: optim.Adam(P, betas=(1.0, 0.999)), ValueError, "0 <= beta1 < 1, got 1.0"),
    (lambda: optim.Adam(P, betas=(0.9, -0.1)), ValueError, "0 <= beta2 < 1"),
    (lambda: optim.Adam(P, betas=0.9), TypeError, r"betas must be a pair \(beta1, beta2\)"),
    (lambda: optim.Adam(P, betas=(0.9,)), TypeError, "betas must be a pair"),
    (lambda: optim.Adam(P, eps=0.0), ValueError, "0 < eps"),
    (lambda: optim.Adam(P, weight_decay=float("inf")), ValueError, "weight_decay must be finite"),
    (lambda: optim.Adam([]), ValueError, "params is empty"),
    (lambda: optim.Adam(5), TypeError, "params must be an iterable of Tensors"),
    (lambda: optim.Adam(P[0]), TypeError, "got a single Tensor; wrap it in a list"),
    (lambda: optim.Adam([np.ones(2)]), TypeError, r"params\[0\] is a ndarray; expected a Tensor"),
    (lambda: optim.Adam([sd.tensor([1.0])]), ValueError, "requires_grad=False"),
    (lambda: optim.Adam([P[0] * 2]), ValueError, "not a leaf"),
    (lambda: optim.Adam([P[0], P[0]]), ValueError, "appears more than once"),
])
def test_bad_hyper_parameters_and_params(make, exc, pattern):
    with pytest.raises(exc, match=pattern):
        make()


@pytest.mark.parametrize("lr", [np.float32(1e-3), np.float64(1e-3), np.array(1e-3)[()], 1])
def test_numpy_scalars_are_accepted_as_hyper_parameters(lr):
    for opt in (optim.SGD(P, lr=lr), optim.Adam(P, lr=lr, eps=np.float32(1e-8))):
        assert type(opt.lr) is float and opt.lr == float(lr)


def test_generator_of_parameters_is_accepted():
    net = nn.MLP([2, 2], rng=np.random.default_rng(0))
    opt = optim.SGD((p for p in net.parameters()), lr=0.1)
    assert len(opt.params) == 2
