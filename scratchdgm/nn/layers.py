r"""Layers: the affine map :class:`Linear`, activations, and the multi-layer perceptron
:class:`MLP`.

An MLP with hidden sizes :math:`h_1, \dots, h_{L-1}` computes

.. math::

    a_0 = x, \qquad a_l = \sigma(a_{l-1} W_l + b_l) \ (l < L), \qquad
    f(x) = \sigma_{\text{out}}(a_{L-1} W_L + b_L),

the decoder :math:`f_\theta` and encoder :math:`g_\gamma` of the lectures
([Mattei-DGM, "Illustrative example of a DLVM for binary images"]: the binary-MNIST decoder
:math:`\mathrm{Sigmoid}(V \tanh(W z + b) + \beta)` is ``MLP([d, h, p], 'tanh',
output_activation='sigmoid')``; [Mattei-DGM, "From linear (« shallow »)
to deep variable models"]: replace :math:`z \mapsto Wz + \mu` by a neural net; keys in ``docs/lectures.md``).

Each :class:`Linear` layer runs as one fused op, :math:`f(xW + b)` with its activation
(:func:`scratchdgm.autodiff.fused.linear`), on the kernel backend the layer was given
(``backend=``; None for the process default), so a model built on ``backend='numpy'`` and one
on ``backend='numba'`` can live in the same process without disturbing each other.

Rows are data points: ``x`` has shape ``(..., in_features)`` and the weight matrix has shape
``(in_features, out_features)``, so a layer is ``x @ W + b`` -- the transpose of the lectures'
column-vector :math:`W z + b`, and no transpose in the graph.
"""

import numpy as np

from scratchdgm.autodiff import Tensor, no_grad
from scratchdgm.autodiff import fused as _fused
from scratchdgm.backend import get_kernels, resolve_backend
from scratchdgm.nn import init
from scratchdgm.nn.module import Module, ModuleList, Parameter
from scratchdgm.validation import check_float_dtype, check_positive_int, check_rng

__all__ = ["Linear", "Activation", "Tanh", "ReLU", "Sigmoid", "Softplus", "Identity", "MLP",
           "ACTIVATIONS", "get_activation"]


def _check_input(x, in_features, where):
    if not isinstance(x, (Tensor, np.ndarray)):
        raise TypeError(f"{where}: input must be a Tensor or ndarray of shape "
                        f"(..., {in_features}), got {type(x).__name__}")
    if x.ndim == 0 or x.shape[-1] != in_features:
        raise ValueError(f"{where}: input has shape {tuple(x.shape)}; expected shape "
                         f"(..., {in_features}) (last axis = in_features)")


def _array(parameter):
    """A parameter's array, or None for a layer without one."""
    return None if parameter is None else parameter.data


#: Pre-activations c whose activation is exactly 1 in float32 and float64 -- relu(1) and the
#: identity's 1; tanh(20) = 1 - 8.5e-18 and sigmoid(40) = 1 - 4.2e-18 round to 1 -- tried in
#: this order by :func:`_constant_unit`, which checks the kernel's own result.
_UNIT_PREACTIVATIONS = (1.0, 20.0, 40.0)
_unit_cache = {}


def _constant_unit(linear, W, b, activation):
    r"""Layer :math:`f(aW + b)` with one more output unit that is always exactly 1, as
    ``(W', b')``: a column of zero weights whose bias :math:`c` has :math:`f(c) = 1` in the
    layer's dtype and kernel (one of :data:`_UNIT_PREACTIVATIONS`, checked once per kernel,
    dtype and activation by running the kernel). None if no such :math:`c` exists.

    For :meth:`MLP.graph_free`: the next layer's bias then rides in its matrix product,
    :math:`[a, 1] [W; b]`, without copying :math:`a` into a wider array first (measured on
    the IWAE decoder, 1020 samples x 784 pixels float32, one thread: 0.2-0.5 ms less per 5000
    samples than ``np.concatenate``).
    """
    dtype = W.dtype
    key = (linear, dtype.str, activation)
    if key not in _unit_cache:
        one_unit = np.zeros((1, 1), dtype)
        _unit_cache[key] = next(
            (c for c in _UNIT_PREACTIVATIONS
             if linear(one_unit, one_unit, np.full(1, c, dtype), activation)[0, 0] == 1), None)
    c = _unit_cache[key]
    if c is None:
        return None
    b = np.zeros(W.shape[1], dtype) if b is None else b
    return (np.concatenate([W, np.zeros((W.shape[0], 1), dtype)], axis=1),
            np.concatenate([b, np.full(1, c, dtype)]))


class Linear(Module):
    r"""Affine layer :math:`y = x W + b`.

    Parameters
    ----------
    in_features, out_features : int
        Sizes of the input and output (last) axes.
    rng : numpy.random.Generator
        Source of the initial weights (keyword-only, required: no hidden global seed).
    dtype : {numpy.float64, numpy.float32}
        Dtype of the parameters.
    bias : bool
        Whether to add the bias :math:`b`.
    activation : str or None
        An activation of :data:`ACTIVATIONS` applied to the output (None: the affine map
        alone). The kernels fuse ``'tanh'``, ``'relu'`` and ``'sigmoid'`` into the layer's pass
        over memory; the others run as a separate op.
    backend : {None, 'numpy', 'numba', 'cuda', 'auto'}
        Kernel backend of the fused op (None: the process default,
        :func:`scratchdgm.get_backend`).

    Attributes
    ----------
    weight : Parameter, shape (in_features, out_features)
        Glorot-uniform initialised (Glorot & Bengio 2010, eq. 16).
    bias : Parameter, shape (out_features,), or None
        Initialised to zero.

    Notes
    -----
    .. math::

        y_{\dots k} = \sum_j x_{\dots j} W_{jk} + b_k, \qquad
        W_{jk} \sim \mathcal U\!\Big[-\sqrt{6/(n_{in} + n_{out})},\ \sqrt{6/(n_{in} + n_{out})}
        \Big].
    """

    def __init__(self, in_features, out_features, *, rng, dtype=np.float64, bias=True,
                 activation=None, backend=None):
        super().__init__()
        self.in_features = check_positive_int(in_features, "in_features", "Linear")
        self.out_features = check_positive_int(out_features, "out_features", "Linear")
        check_rng(rng, "Linear")
        dt = check_float_dtype(dtype, "Linear")
        self.activation = _activation_name(activation, "Linear")
        if backend is not None:
            resolve_backend(backend)  # fail now, not at the first step, on an unusable name
        self.backend = backend
        if not isinstance(bias, (bool, np.bool_)):
            raise TypeError(f"Linear: bias must be True or False, got {bias!r}")
        self.weight = Parameter(init.glorot_uniform(rng, self.in_features, self.out_features,
                                                    dtype=dt))
        self.bias = Parameter(init.zeros(self.out_features, dtype=dt)) if bias else None

    def forward(self, x):
        r"""Apply the layer.

        Parameters
        ----------
        x : Tensor or ndarray, shape (..., in_features)

        Returns
        -------
        Tensor, shape (..., out_features)
        """
        _check_input(x, self.in_features, "Linear")
        act = self.activation
        fused_act = act if act in _fused.ACTIVATIONS else None
        y = _fused.linear(x, self.weight, self.bias, fused_act, backend=self.backend)
        return y if act == fused_act else ACTIVATIONS[act](y)

    def extra_repr(self):
        act = "" if self.activation is None else f", activation={self.activation!r}"
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}, dtype={self.weight.dtype}{act}")


#: The activation functions, by name: the one table every layer and model reads.
ACTIVATIONS = {
    "tanh": Tensor.tanh,
    "relu": Tensor.relu,
    "sigmoid": Tensor.sigmoid,
    "softplus": Tensor.softplus,
    "identity": lambda x: x,
}


def _activation_name(activation, where):
    """Validate an activation name (None stays None, 'identity' becomes None)."""
    if activation is None:
        return None
    if not isinstance(activation, str):
        raise TypeError(f"{where}: activation must be a str (one of {sorted(ACTIVATIONS)}) or "
                        f"None, got {type(activation).__name__}")
    key = activation.lower()
    if key not in ACTIVATIONS:
        raise ValueError(f"{where}: unknown activation {activation!r}; expected one of "
                         f"{sorted(ACTIVATIONS)}")
    return None if key == "identity" else key


class Activation(Module):
    r"""An elementwise activation of :data:`ACTIVATIONS` as a Module (no parameters)."""

    name = "identity"

    def forward(self, x):
        return ACTIVATIONS[self.name](_as_tensor(x))

    def extra_repr(self):
        return ""


class Tanh(Activation):
    r"""Hyperbolic tangent, :math:`\tanh(x)`, elementwise."""

    name = "tanh"


class ReLU(Activation):
    r"""Rectified linear unit, :math:`\max(x, 0)`, elementwise."""

    name = "relu"


class Sigmoid(Activation):
    r"""Logistic sigmoid, :math:`1 / (1 + e^{-x})`, elementwise."""

    name = "sigmoid"


class Softplus(Activation):
    r"""Softplus, :math:`\log(1 + e^{x})`, elementwise (a smooth ReLU, positive outputs)."""

    name = "softplus"


class Identity(Activation):
    r"""The identity map (returns its input unchanged)."""

    name = "identity"


def _as_tensor(x):
    if isinstance(x, Tensor):
        return x
    if isinstance(x, np.ndarray):
        return Tensor(x)
    raise TypeError(f"activation input must be a Tensor or ndarray, got {type(x).__name__}")


def get_activation(activation, where="get_activation"):
    r"""Turn an activation name (or an :class:`Activation` Module) into an Activation Module.

    Parameters
    ----------
    activation : str or Activation
        One of ``'tanh'``, ``'relu'``, ``'sigmoid'``, ``'softplus'``, ``'identity'``, or an
        Activation instance (returned as is).
    """
    if isinstance(activation, Activation):
        return activation
    if isinstance(activation, Module):
        raise TypeError(f"{where}: activation must be a name or an Activation, got "
                        f"{type(activation).__name__}")
    name = _activation_name(activation, where) or "identity"
    return next(cls for cls in Activation.__subclasses__() if cls.name == name)()


class MLP(Module):
    r"""Multi-layer perceptron: Linear layers with an activation between consecutive ones.

    Parameters
    ----------
    sizes : sequence of int, length >= 2
        ``[in_features, hidden_1, ..., out_features]``, e.g. ``[64, 100, 100, 20]``.
    activation : str or Activation
        Applied after every layer but the last (``'tanh'`` as in the IWAE paper).
    rng : numpy.random.Generator
        Initialises every layer (keyword-only, required).
    dtype : {numpy.float64, numpy.float32}
    output_activation : str, Activation or None
        Applied after the last layer (None: the output is affine, e.g. logits or means).
    backend : {None, 'numpy', 'numba', 'cuda', 'auto'}
        Kernel backend of every layer (see :class:`Linear`).

    Attributes
    ----------
    layers : ModuleList of Linear
        ``len(sizes) - 1`` layers; ``layers[i]`` maps ``sizes[i]`` to ``sizes[i + 1]``.

    Notes
    -----
    .. math::

        a_0 = x,\quad a_l = \sigma(a_{l-1} W_l + b_l)\ (1 \le l < L),\quad
        \mathrm{MLP}(x) = \sigma_{\text{out}}(a_{L-1} W_L + b_L).

    The layers are initialised in order from the same ``rng``, so the same seed gives the same
    network.
    """

    def __init__(self, sizes, activation="tanh", *, rng, dtype=np.float64,
                 output_activation=None, backend=None):
        super().__init__()
        if isinstance(sizes, (str, bytes)) or not hasattr(sizes, "__len__"):
            raise TypeError(f"MLP: sizes must be a list of ints like [64, 100, 20], "
                            f"got {sizes!r}")
        if len(sizes) < 2:
            raise ValueError(f"MLP: sizes needs at least 2 entries (input and output sizes), "
                             f"got {list(sizes)}")
        sizes = [check_positive_int(s, f"sizes[{i}]", "MLP") for i, s in enumerate(sizes)]
        check_rng(rng, "MLP")
        check_float_dtype(dtype, "MLP")
        self.sizes = sizes
        self.activation = get_activation(activation, "MLP").name
        self.output_activation = (None if output_activation is None
                                  else get_activation(output_activation, "MLP").name)
        acts = [self.activation] * (len(sizes) - 2) + [self.output_activation]
        self.layers = ModuleList(Linear(a, b, rng=rng, dtype=dtype, activation=act,
                                        backend=backend)
                                 for a, b, act in zip(sizes[:-1], sizes[1:], acts))

    @property
    def backend(self):
        """The kernel backend of the layers (None: the process default)."""
        return self.layers[0].backend

    def forward(self, x):
        r"""Apply the network.

        Parameters
        ----------
        x : Tensor or ndarray, shape (..., sizes[0])

        Returns
        -------
        Tensor, shape (..., sizes[-1])
        """
        _check_input(x, self.sizes[0], "MLP")
        for layer in self.layers:
            x = layer(x)
        return x

    def forward_arrays(self, x):
        r"""The network on an array without recording a graph, for evaluation: an ndarray of
        shape (..., sizes[-1]), equal to ``forward(x).data`` up to rounding.

        Each layer is one call of the backend's fused ``linear`` kernel
        (:func:`scratchdgm.kernels.reference.linear`) on plain arrays, without the Tensor
        bookkeeping of :meth:`forward`, which costs more than the arithmetic on small blocks.
        When the last layer is affine and wider than its input (a decoder's output), its bias
        goes inside the matrix product, :math:`[a_{L-1}, 1] \begin{bmatrix} W_L \\ b_L
        \end{bmatrix}`, instead of a pass adding :math:`b_L` to the wider output; the column of
        ones is one more unit of layer :math:`L-1`, with zero weights and a bias whose
        activation is exactly 1 (:func:`_constant_unit`), or, where there is no layer before or
        no such bias, a copy of :math:`a_{L-1}` with a column of ones. A layer whose activation
        the kernels do not fuse sends the whole network through :meth:`forward` (without
        gradients). To run many blocks with the same parameters, take :meth:`graph_free` once
        and call it on each.

        Parameters
        ----------
        x : ndarray or Tensor, shape (..., sizes[0])

        Returns
        -------
        ndarray, shape (..., sizes[-1])
        """
        return self.graph_free()(x)

    def graph_free(self):
        r""":meth:`forward_arrays` as a function ``x -> y``, with its preparation done once:
        each layer's kernel looked up and the last layer's :math:`[W_L; b_L]` stacked. It
        reads the parameters as they are when it is made (the stacked matrix is a copy), so
        make a new one after the parameters change; evaluation makes one per batch and calls
        it on every block of samples."""
        layers = list(self.layers)
        if any(layer.activation not in (None, *_fused.ACTIVATIONS) for layer in layers):
            def run(x):
                with no_grad():
                    return self.forward(self._array_input(x)).data
            return run
        *hidden, last = layers
        hidden_steps = [(get_kernels(layer.backend).linear, layer.weight.data,
                         _array(layer.bias), layer.activation) for layer in hidden]
        last_linear, activation = get_kernels(last.backend).linear, last.activation
        W, b = last.weight.data, _array(last.bias)
        ones_column = b is not None and activation is None and W.shape[0] < W.shape[1]
        if ones_column:
            W, b = np.concatenate([W, b[None, :]]), None
            unit = _constant_unit(*hidden_steps[-1]) if hidden_steps else None
            if unit is not None:  # the column of ones comes out of the layer before
                linear_l, _, _, activation_l = hidden_steps[-1]
                hidden_steps[-1] = (linear_l, *unit, activation_l)
                ones_column = False

        def run(x):
            x = self._array_input(x)
            h = x.reshape(-1, x.shape[-1])
            for linear, W_l, b_l, activation_l in hidden_steps:
                h = linear(h, W_l, b_l, activation_l)
            if ones_column:
                h = np.concatenate([h, np.ones((len(h), 1), h.dtype)], axis=1)
            h = last_linear(h, W, b, activation)
            return h.reshape(*x.shape[:-1], h.shape[-1])

        return run

    def _array_input(self, x):
        """``x`` checked and as a float array (integers promoted to float64, as forward does)."""
        _check_input(x, self.sizes[0], "MLP")
        x = x.data if isinstance(x, Tensor) else x
        return x.astype(np.float64) if x.dtype.kind in "biu" else x

    def extra_repr(self):
        return f"sizes={self.sizes}, activation={self.activation!r}"
