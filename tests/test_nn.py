r"""scratchdgm.nn: parameter registration, MLP gradients against finite differences, state dicts
through save/load, strict loading errors, repr, Glorot bounds, seeded determinism."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import scratchdgm as sd
from scratchdgm import nn
from scratchdgm.nn import init
from scratchdgm.testing import check_gradients_at
from scratchdgm.validation import NonFiniteError


def rng(seed=0):
    return np.random.default_rng(seed)


class Affine(nn.Module):
    def __init__(self, generator):
        super().__init__()
        self.w = nn.Parameter(generator.normal(size=(3, 2)))
        self.b = nn.Parameter(np.zeros(2))
        self.scale = 2.0  # plain attributes are not parameters

    def forward(self, x):
        return (x @ self.w + self.b) * self.scale


class TwoHeads(nn.Module):
    """Shared trunk, two heads, and a list of modules (as an encoder with mu / log-sigma)."""

    def __init__(self, generator):
        super().__init__()
        self.trunk = nn.MLP([4, 5], rng=generator)
        self.heads = [nn.Linear(5, 2, rng=generator), nn.Linear(5, 2, rng=generator)]

    def forward(self, x):
        h = self.trunk(x).tanh()
        return [head(h) for head in self.heads]


# ------------------------------------------------------------------ registration


def test_parameters_and_dotted_names():
    m = TwoHeads(rng())
    names = [n for n, _ in m.named_parameters()]
    assert names == ["trunk.layers.0.weight", "trunk.layers.0.bias",
                     "heads.0.weight", "heads.0.bias", "heads.1.weight", "heads.1.bias"]
    assert isinstance(m.heads, nn.ModuleList)  # a plain list of Modules is wrapped
    assert len(m.parameters()) == 6
    assert all(isinstance(p, nn.Parameter) and p.requires_grad for p in m.parameters())
    assert m.num_parameters() == 4 * 5 + 5 + 2 * (5 * 2 + 2)
    assert [n for n, _ in m.named_modules()] == ["", "trunk", "trunk.layers", "trunk.layers.0",
                                                 "heads", "heads.0", "heads.1"]
    assert len(m.modules()) == 7
    assert m.children() == [m.trunk, m.heads]


def test_reassigning_and_deleting_attributes_updates_the_registry():
    m = Affine(rng())
    assert [n for n, _ in m.named_parameters()] == ["w", "b"]
    m.b = None
    assert [n for n, _ in m.named_parameters()] == ["w"]
    m.c = nn.Parameter(np.ones(1))
    del m.w
    assert [n for n, _ in m.named_parameters()] == ["c"]
    m.sub = Affine(rng())
    m.sub = 3
    assert m.children() == []


def test_shared_parameters_are_listed_once():
    m = nn.Module()
    lin = nn.Linear(2, 2, rng=rng())
    m.a = lin
    m.b = lin
    m.also_weight = lin.weight
    assert len(m.parameters()) == 2
    assert [n for n, _ in m.named_parameters()] == ["also_weight", "a.bias"]


def test_module_errors():
    class Forgot(nn.Module):
        def __init__(self):
            self.w = nn.Parameter(np.ones(2))

    with pytest.raises(RuntimeError, match=r"must call super\(\).__init__\(\)"):
        Forgot()
    m = nn.Module()
    with pytest.raises(NotImplementedError, match="Module does not define forward"):
        m(1.0)
    with pytest.raises(TypeError, match="would hide them from parameters"):
        m.mixed = [nn.Linear(1, 1, rng=rng()), "x"]
    with pytest.raises(TypeError, match="would hide them from parameters"):
        m.params = (nn.Parameter(np.ones(1)),)
    m.empty = []           # harmless lists stay lists
    m.numbers = [1, 2]
    assert m.numbers == [1, 2] and m.parameters() == []
    with pytest.raises(TypeError, match="ModuleList holds Modules only"):
        nn.ModuleList([nn.Tanh(), 3])
    with pytest.raises(NotImplementedError, match="ModuleList is a container"):
        nn.ModuleList()(1.0)


def test_module_list_behaves_like_a_list():
    layers = nn.ModuleList([nn.Tanh(), nn.ReLU()])
    layers.append(nn.Identity())
    assert len(layers) == 3 and isinstance(layers[-1], nn.Identity)
    assert [type(m).__name__ for m in layers] == ["Tanh", "ReLU", "Identity"]
    assert isinstance(layers[1:], nn.ModuleList) and len(layers[1:]) == 2


def test_parameter_construction():
    p = nn.Parameter([1, 2, 3])
    assert p.dtype == np.float64 and p.requires_grad and p.is_leaf
    assert nn.Parameter(np.ones(2, np.float32)).dtype == np.float32
    assert nn.Parameter(np.ones(2), dtype=np.float32).dtype == np.float32
    src = np.zeros(2)
    q = nn.Parameter(src)
    src[0] = 1.0
    assert q.data[0] == 0.0  # copied
    t = sd.tensor([1.0, 2.0], requires_grad=True) * 3
    r = nn.Parameter(t)  # takes the values, not the graph
    assert r.is_leaf and r.requires_grad
    np.testing.assert_array_equal(r.data, [3.0, 6.0])
    with pytest.raises(TypeError, match="float32 or float64"):
        nn.Parameter(np.ones(2, np.complex64))
    assert repr(p) == "Parameter(shape=(3,), dtype=float64)"


def test_zero_grad_clears_every_gradient():
    m = TwoHeads(rng())
    a, b = m(np.ones((3, 4)))
    (a.sum() + b.sum()).backward()
    assert all(p.grad is not None for p in m.parameters())
    m.zero_grad()
    assert all(p.grad is None for p in m.parameters())


# ------------------------------------------------------------------ layers


def test_linear_shapes_values_and_bias_option():
    lin = nn.Linear(3, 2, rng=rng())
    assert lin.weight.shape == (3, 2) and lin.bias.shape == (2,)
    np.testing.assert_array_equal(lin.bias.data, 0.0)
    x = rng(1).normal(size=(5, 3))
    np.testing.assert_allclose(lin(x).data, x @ lin.weight.data)
    y = lin(sd.tensor(rng(2).normal(size=(4, 5, 3))))  # any leading axes
    assert y.shape == (4, 5, 2)
    nobias = nn.Linear(3, 2, rng=rng(), bias=False)
    assert nobias.bias is None and len(nobias.parameters()) == 1
    np.testing.assert_allclose(nobias(x).data, x @ nobias.weight.data)


@pytest.mark.parametrize("fan_in, fan_out", [(1, 1), (64, 100), (784, 200), (3, 500)])
def test_glorot_bounds_and_variance(fan_in, fan_out):
    w = nn.Linear(fan_in, fan_out, rng=rng(fan_in)).weight.data
    bound = np.sqrt(6.0 / (fan_in + fan_out))  # Glorot & Bengio 2010, eq. 16
    assert np.all(np.abs(w) <= bound)
    if w.size >= 5000:
        # U[-a, a] has variance a^2 / 3 = 2 / (fan_in + fan_out); 5000+ draws: within 10 %
        assert np.var(w) == pytest.approx(2.0 / (fan_in + fan_out), rel=0.1)
        assert np.abs(w).max() > 0.95 * bound  # it really uses the whole interval


def test_glorot_gain_and_validation():
    w = init.glorot_uniform(rng(), 10, 10, gain=3.0)
    assert np.abs(w).max() <= 3.0 * np.sqrt(6.0 / 20) and np.abs(w).max() > np.sqrt(6.0 / 20)
    with pytest.raises(ValueError, match="gain must be a finite number > 0"):
        init.glorot_uniform(rng(), 2, 2, gain=0.0)
    assert init.zeros((2, 3), dtype=np.float32).dtype == np.float32


def test_seeded_determinism_and_dtype():
    a = nn.MLP([4, 8, 3], rng=rng(7))
    b = nn.MLP([4, 8, 3], rng=rng(7))
    c = nn.MLP([4, 8, 3], rng=rng(8))
    for (na, pa), (nb, pb) in zip(a.named_parameters(), b.named_parameters()):
        assert na == nb
        np.testing.assert_array_equal(pa.data, pb.data)
    assert not np.array_equal(a.layers[0].weight.data, c.layers[0].weight.data)
    f32 = nn.MLP([4, 8, 3], rng=rng(7), dtype=np.float32)
    assert all(p.dtype == np.float32 for p in f32.parameters())
    # same draws, only rounded: float32 and float64 nets from one seed agree
    np.testing.assert_allclose(f32.layers[0].weight.data, a.layers[0].weight.data, rtol=1e-7)
    x = rng(1).normal(size=(2, 4)).astype(np.float32)
    assert f32(x).dtype == np.float32


@pytest.mark.parametrize("name, fn", [
    ("tanh", np.tanh), ("relu", lambda v: np.maximum(v, 0)),
    ("sigmoid", lambda v: 1 / (1 + np.exp(-v))), ("softplus", lambda v: np.log1p(np.exp(v))),
    ("identity", lambda v: v),
])
def test_activations_as_modules_and_names(name, fn):
    x = np.linspace(-3, 3, 7)
    module = nn.get_activation(name)
    np.testing.assert_allclose(np.asarray(module(x)), fn(x), rtol=1e-12)
    np.testing.assert_allclose(module(sd.tensor(x)).data, fn(x), rtol=1e-12)
    assert nn.get_activation(name.upper()).__class__ is module.__class__
    assert repr(module) == f"{type(module).__name__}()"


def test_activation_errors():
    with pytest.raises(ValueError, match=r"unknown activation 'gelu'; expected one of "
                                         r"\['identity', 'relu', 'sigmoid', 'softplus', 'tanh'\]"):
        nn.get_activation("gelu")
    with pytest.raises(TypeError, match="activation must be a str"):
        nn.get_activation(np.tanh)
    with pytest.raises(TypeError, match="activation input must be a Tensor or ndarray"):
        nn.Tanh()([1.0, 2.0])
    custom = nn.Softplus()
    assert nn.get_activation(custom) is custom


def test_mlp_structure_forward_and_output_activation():
    net = nn.MLP([3, 6, 5, 2], "relu", rng=rng(), output_activation="sigmoid")
    assert [(l.in_features, l.out_features) for l in net.layers] == [(3, 6), (6, 5), (5, 2)]
    x = rng(1).normal(size=(4, 3))
    h = x
    for i, layer in enumerate(net.layers):
        h = h @ layer.weight.data + layer.bias.data
        h = np.maximum(h, 0) if i < 2 else 1 / (1 + np.exp(-h))
    np.testing.assert_allclose(net(x).data, h, rtol=1e-12)
    single = nn.MLP([3, 2], rng=rng())  # one layer: no activation at all
    np.testing.assert_allclose(single(x).data, x @ single.layers[0].weight.data)


@pytest.mark.parametrize("kwargs, exc, pattern", [
    (dict(sizes=[3]), ValueError, "at least 2 entries"),
    (dict(sizes="34"), TypeError, "sizes must be a list of ints"),
    (dict(sizes=5), TypeError, "sizes must be a list of ints"),
    (dict(sizes=[3, 0]), ValueError, r"sizes\[1\] must be an int >= 1, got 0"),
    (dict(sizes=[3, 2.5]), TypeError, r"sizes\[1\] must be an int >= 1"),
    (dict(sizes=[3, True]), TypeError, r"sizes\[1\] must be an int >= 1"),
    (dict(sizes=[3, 2], rng=0), TypeError, "rng must be a numpy.random.Generator"),
    (dict(sizes=[3, 2], dtype=np.float16), TypeError, "dtype must be float32 or "
                                                     "float64, got float16"),
    (dict(sizes=[3, 2], dtype="nonsense"), TypeError, "dtype must be float32"),
    (dict(sizes=[3, 2], activation="swish"), ValueError, "unknown activation 'swish'"),
    (dict(sizes=[3, 2], output_activation=3), TypeError, "activation must be a str"),
])
def test_mlp_validates_arguments(kwargs, exc, pattern):
    kwargs.setdefault("rng", rng())
    with pytest.raises(exc, match=pattern):
        nn.MLP(**kwargs)


@pytest.mark.parametrize("args, kwargs, exc, pattern", [
    ((0, 2), {}, ValueError, "in_features must be an int >= 1"),
    ((2, "3"), {}, TypeError, "out_features must be an int >= 1"),
    ((2, 3), {"rng": np.random.RandomState(0)}, TypeError, "rng must be a numpy.random.Generator"),
    ((2, 3), {"bias": "yes"}, TypeError, "bias must be True or False"),
    ((2, 3), {"dtype": np.int64}, TypeError, "dtype must be float32"),
])
def test_linear_validates_arguments(args, kwargs, exc, pattern):
    kwargs.setdefault("rng", rng())
    with pytest.raises(exc, match=pattern):
        nn.Linear(*args, **kwargs)


def test_linear_and_mlp_validate_inputs():
    lin = nn.Linear(3, 2, rng=rng())
    with pytest.raises(ValueError, match=r"input has shape \(4, 5\); expected shape \(\.\.\., 3\)"):
        lin(np.ones((4, 5)))
    with pytest.raises(ValueError, match="expected shape"):
        lin(sd.tensor(1.0))
    with pytest.raises(TypeError, match="input must be a Tensor or ndarray"):
        lin([1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match=r"MLP: input has shape \(2, 7\)"):
        nn.MLP([3, 2], rng=rng())(np.ones((2, 7)))


# ------------------------------------------------------------------ gradients


def _mlp_loss(net, x, y):
    return ((net(x) - y) ** 2).mean() + 0.1 * net(x).logsumexp(axis=-1).mean()


@pytest.mark.parametrize("activation", ["tanh", "sigmoid", "softplus"])
def test_mlp_loss_gradient_matches_finite_differences(activation):
    generator = rng(3)
    net = nn.MLP([3, 5, 4, 2], activation, rng=generator)
    x = generator.normal(size=(6, 3))
    y = generator.normal(size=(6, 2))
    names, params = zip(*net.named_parameters())
    # the autodiff gradient as the user sees it (loss.backward() fills p.grad) ...
    net.zero_grad()
    _mlp_loss(net, x, y).backward()
    grads = [p.grad.copy() for p in params]
    # ... equals central differences, every weight and bias checked one by one
    eps = 1e-6
    for name, p, g in zip(names, params, grads):
        for idx in np.ndindex(p.shape):
            old = p.data[idx]
            p.data[idx] = old + eps
            up = _mlp_loss(net, x, y).item()
            p.data[idx] = old - eps
            down = _mlp_loss(net, x, y).item()
            p.data[idx] = old
            assert g[idx] == pytest.approx((up - down) / (2 * eps), rel=1e-5, abs=1e-8), \
                f"{name}{idx}"


def test_mlp_input_gradient_with_batched_samples():
    # (K, B, n) inputs, as K importance samples of a decoder: gradient wrt z checked
    net = nn.MLP([2, 3, 4], rng=rng(5))
    z = rng(6).normal(size=(3, 2, 2))
    assert check_gradients_at(lambda t: net(t).sigmoid(), [z]) is True


# ------------------------------------------------------------------ state dicts and files


def test_state_dict_is_a_copy_in_named_order():
    net = nn.MLP([2, 3, 1], rng=rng())
    state = net.state_dict()
    assert list(state) == [n for n, _ in net.named_parameters()]
    state["layers.0.weight"][...] = 99.0
    assert not np.any(net.layers[0].weight.data == 99.0)


def test_state_dict_round_trip_through_save_and_load(tmp_path):
    a = TwoHeads(rng(1))
    b = TwoHeads(rng(2))
    x = rng(3).normal(size=(5, 4))
    path = tmp_path / "model.npz"
    a.save(path, metadata={"epoch": 12})
    weight_before = b.trunk.layers[0].weight
    array_before = weight_before.data
    meta = b.load(path)
    assert meta["epoch"] == 12 and meta["module_class"] == "TwoHeads"
    assert meta["module_repr"] == repr(a)
    for (na, pa), (nb, pb) in zip(a.named_parameters(), b.named_parameters()):
        np.testing.assert_array_equal(pa.data, pb.data)
    # in place: the same Parameter objects and arrays (an optimiser keeps working)
    assert b.trunk.layers[0].weight is weight_before and weight_before.data is array_before
    for ya, yb in zip(a(x), b(x)):
        np.testing.assert_array_equal(ya.data, yb.data)


def test_float32_model_round_trip(tmp_path):
    a = nn.MLP([3, 4, 2], rng=rng(1), dtype=np.float32)
    b = nn.MLP([3, 4, 2], rng=rng(2), dtype=np.float32)
    a.save(tmp_path / "m.npz")
    b.load(tmp_path / "m.npz")
    assert all(p.dtype == np.float32 for p in b.parameters())
    np.testing.assert_array_equal(a.layers[1].weight.data, b.layers[1].weight.data)


def test_strict_loading_errors_change_nothing():
    net = nn.MLP([2, 3, 1], rng=rng())
    before = {k: v.copy() for k, v in net.state_dict().items()}
    good = nn.MLP([2, 3, 1], rng=rng(9)).state_dict()

    missing = dict(good)
    del missing["layers.1.bias"]
    with pytest.raises(ValueError, match=r"missing keys \['layers.1.bias'\]; expected exactly"):
        net.load_state_dict(missing)
    extra = dict(good, **{"layers.2.weight": np.ones((1, 1))})
    with pytest.raises(ValueError, match=r"unexpected keys \['layers.2.weight'\]"):
        net.load_state_dict(extra)
    wrong_shape = dict(good, **{"layers.0.weight": np.ones((3, 2))})
    with pytest.raises(ValueError, match=r"state\['layers.0.weight'\] has shape \(3, 2\) but "
                                         r"parameter 'layers.0.weight' has shape \(2, 3\)"):
        net.load_state_dict(wrong_shape)
    wrong_dtype = dict(good, **{"layers.1.bias": good["layers.1.bias"].astype(np.float32)})
    with pytest.raises(ValueError, match=r"has dtype float32 but parameter 'layers.1.bias' has "
                                         r"dtype float64; convert"):
        net.load_state_dict(wrong_dtype)
    strings = dict(good, **{"layers.1.bias": np.array(["a"])})
    with pytest.raises(TypeError, match="expected a numeric array"):
        net.load_state_dict(strings)
    with pytest.raises(TypeError, match="state must be a dict of name -> ndarray"):
        net.load_state_dict([("layers.0.weight", np.ones((2, 3)))])
    for bad in (np.nan, np.inf, -np.inf):  # a diverged model's weights are refused
        poisoned = dict(good, **{"layers.1.weight": good["layers.1.weight"].copy()})
        poisoned["layers.1.weight"][1, 0] = bad
        with pytest.raises(NonFiniteError, match=r"state\['layers.1.weight'\] holds 1 NaN or "
                                                 r"infinite value\(s\) of 3; expected finite"):
            net.load_state_dict(poisoned)
    for k, v in net.state_dict().items():  # every failed load left the weights alone
        np.testing.assert_array_equal(v, before[k])


def test_non_strict_loading_reports_missing_and_unexpected():
    net = nn.MLP([2, 3, 1], rng=rng())
    state = {"layers.0.bias": sd.tensor(np.full(3, 7.0)), "other.weight": np.ones(1)}
    result = net.load_state_dict(state, strict=False)
    assert result.unexpected_keys == ["other.weight"]
    assert result.missing_keys == ["layers.0.weight", "layers.1.bias", "layers.1.weight"]
    np.testing.assert_array_equal(net.layers[0].bias.data, 7.0)  # Tensors are accepted too
    assert net.load_state_dict(net.state_dict()) == nn.LoadResult([], [])


def test_loading_a_different_architecture_from_file(tmp_path):
    nn.MLP([2, 3, 1], rng=rng()).save(tmp_path / "small.npz")
    big = nn.MLP([2, 4, 1], rng=rng())
    with pytest.raises(ValueError, match="has shape"):
        big.load(tmp_path / "small.npz")
    with pytest.raises(ValueError, match="holds kind 'optimizer'"):
        sd.checkpoint.save_npz(tmp_path / "opt.npz", {}, kind="optimizer", format_version=1)
        big.load(tmp_path / "opt.npz")
    with pytest.raises(TypeError, match="metadata must be a dict or None"):
        big.save(tmp_path / "x.npz", metadata="epoch 3")


# ------------------------------------------------------------------ repr


def test_repr_is_a_readable_tree():
    net = nn.MLP([64, 100, 20], "tanh", rng=rng(), output_activation="sigmoid")
    assert repr(net) == (
        "MLP(sizes=[64, 100, 20], activation='tanh',\n"
        "  (layers): ModuleList(\n"
        "    (0): Linear(in_features=64, out_features=100, bias=True, dtype=float64, "
        "activation='tanh')\n"
        "    (1): Linear(in_features=100, out_features=20, bias=True, dtype=float64, "
        "activation='sigmoid')\n"
        "  )\n"
        ")"
    )
    assert repr(Affine(rng())) == ("Affine(\n"
                                   "  (w): Parameter(shape=(3, 2), dtype=float64)\n"
                                   "  (b): Parameter(shape=(2,), dtype=float64)\n"
                                   ")")
    assert repr(nn.Module()) == "Module()"


@given(sizes=st.lists(st.integers(1, 6), min_size=2, max_size=5), seed=st.integers(0, 2**32 - 1))
def test_mlp_parameter_count_and_output_shape(sizes, seed):
    net = nn.MLP(sizes, rng=np.random.default_rng(seed))
    expected = sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))
    assert net.num_parameters() == expected
    assert net(np.zeros((2, sizes[0]))).shape == (2, sizes[-1])


@given(sizes=st.lists(st.integers(1, 9), min_size=2, max_size=4),
       lead=st.lists(st.integers(1, 3), min_size=1, max_size=2),
       activation=st.sampled_from(["tanh", "relu", "sigmoid", "softplus"]),
       output_activation=st.sampled_from([None, "sigmoid"]),
       backend=st.sampled_from(["numpy", "numba"]),
       dtype=st.sampled_from([np.float64, np.float32]), seed=st.integers(0, 2**32 - 1))
def test_mlp_forward_arrays_equals_forward(sizes, lead, activation, output_activation,
                                           backend, dtype, seed):
    # every path of forward_arrays: fused and unfused activations (softplus goes through
    # forward), an affine last layer that widens (its bias inside the product) or not
    r = np.random.default_rng(seed)
    net = nn.MLP(sizes, activation, rng=r, dtype=dtype, output_activation=output_activation,
                 backend=backend)
    for layer in net.layers:                   # nonzero biases, or the bias path goes unseen
        layer.bias.data[...] = r.normal(0.0, 1.0, layer.bias.shape)
    x = r.standard_normal((*lead, sizes[0])).astype(dtype)
    got = net.forward_arrays(x)
    assert isinstance(got, np.ndarray) and got.dtype == np.dtype(dtype)
    assert got.shape == (*lead, sizes[-1])
    tol = 1e-12 if dtype == np.float64 else 2e-5
    np.testing.assert_allclose(got, net(x).data, rtol=tol, atol=tol)
    np.testing.assert_array_equal(net.forward_arrays(sd.tensor(x)), got)
    ints = np.ones((2, sizes[0]), dtype=np.int64)        # promoted as forward promotes them
    np.testing.assert_allclose(net.forward_arrays(ints), net(ints).data, rtol=tol, atol=tol)
    with pytest.raises(ValueError, match="expected shape"):
        net.forward_arrays(np.zeros((2, sizes[0] + 1), dtype))


# ------------------------------------------------------------------ the demo built on nn + optim


def test_autodiff_demo_fits_and_checks_its_gradient(tmp_path):
    from scratchdgm.cli.demo import autodiff as autodiff_demo

    text = autodiff_demo.run(tmp_path, quick=True)
    assert "gradcheck: passed" in text
    mse = float(text.split("final training MSE: ")[1].split()[0])
    assert mse < 0.05  # noise variance 0.01; the constant predictor scores about 0.49
    png = tmp_path / "autodiff_fit.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("activation", [None, "tanh", "relu", "sigmoid"])
def test_constant_unit_is_exactly_one_and_leaves_the_layer_as_it_was(activation, dtype, backend):
    # MLP.graph_free's column of ones for the last layer's bias: one more unit of the layer
    # before, zero weights and a bias c with f(c) = 1 exactly, whatever the input
    from scratchdgm.backend import get_kernels
    from scratchdgm.nn.layers import _constant_unit

    linear = get_kernels(backend).linear
    r = np.random.default_rng(0)
    W, b = r.standard_normal((7, 5)).astype(dtype), r.standard_normal(5).astype(dtype)
    x = (r.standard_normal((40, 7)) * 1e3).astype(dtype)
    W1, b1 = _constant_unit(linear, W, b, activation)
    y = linear(x, W1, b1, activation)
    assert y.shape == (40, 6)
    np.testing.assert_array_equal(y[:, -1], np.ones(40, dtype))
    np.testing.assert_array_equal(y[:, :-1], linear(x, W, b, activation))
    W0, b0 = _constant_unit(linear, W, None, activation)       # a layer without a bias
    np.testing.assert_array_equal(linear(x, W0, b0, activation)[:, -1], np.ones(40, dtype))


def test_without_a_constant_unit_graph_free_copies_into_a_column_of_ones(monkeypatch):
    # where no tried pre-activation gives exactly 1 (here: none is tried), the bias of the
    # last layer still rides in its product, by the copy [a, 1]
    from scratchdgm.nn import layers

    net = nn.MLP([3, 2, 6], "tanh", rng=np.random.default_rng(0))
    for layer in net.layers:
        layer.bias.data[...] = 0.5
    x = np.random.default_rng(1).standard_normal((4, 3))
    with_unit = net.forward_arrays(x)
    monkeypatch.setattr(layers, "_UNIT_PREACTIVATIONS", ())
    monkeypatch.setattr(layers, "_unit_cache", {})
    assert layers._constant_unit(layers.get_kernels("numba").linear, np.zeros((2, 2)), None,
                                 "tanh") is None
    np.testing.assert_allclose(net.forward_arrays(x), with_unit, rtol=1e-13)
    np.testing.assert_allclose(with_unit, net(x).data, rtol=1e-12)
