r"""Layers: the affine map :class:`Linear`, activations, and the multi-layer perceptron
:class:`MLP`.

An MLP with hidden sizes :math:`h_1, \dots, h_{L-1}` computes

.. math::

    a_0 = x, \qquad a_l = \sigma(a_{l-1} W_l + b_l) \ (l < L), \qquad
    f(x) = \sigma_{\text{out}}(a_{L-1} W_L + b_L),

the decoder :math:`f_\theta` and encoder :math:`g_\gamma` of the lectures
(seeds/000_dd8cf90fba7bcfac.txt, "Decoder network": the binary-MNIST decoder
:math:`\mathrm{Sigmoid}(V \tanh(W z + b) + \beta)` is ``MLP([d, h, p], 'tanh',
output_activation='sigmoid')``; seeds/001_6c8d427d4ea74748.txt, "From linear (« shallow ») to
deep variable models": replace :math:`z \mapsto Wz + \mu` by a neural net).

Rows are data points: ``x`` has shape ``(..., in_features)`` and the weight matrix has shape
``(in_features, out_features)``, so a layer is ``x @ W + b`` -- the transpose of the lectures'
column-vector :math:`W z + b`, and no transpose in the graph.
"""

import numpy as np

from scratchdgm.autodiff import Tensor
from scratchdgm.nn import init
from scratchdgm.nn.module import Module, ModuleList, Parameter

__all__ = ["Linear", "Tanh", "ReLU", "Sigmoid", "Softplus", "Identity", "MLP",
           "ACTIVATIONS", "get_activation"]


def _check_input(x, in_features, where):
    if not isinstance(x, (Tensor, np.ndarray)):
        raise TypeError(f"{where}: input must be a Tensor or ndarray of shape "
                        f"(..., {in_features}), got {type(x).__name__}")
    if x.ndim == 0 or x.shape[-1] != in_features:
        raise ValueError(f"{where}: input has shape {tuple(x.shape)}; expected shape "
                         f"(..., {in_features}) (last axis = in_features)")


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

    def __init__(self, in_features, out_features, *, rng, dtype=np.float64, bias=True):
        super().__init__()
        self.in_features = init.check_positive_int(in_features, "in_features", "Linear")
        self.out_features = init.check_positive_int(out_features, "out_features", "Linear")
        init.check_rng(rng, "Linear")
        dt = init.check_float_dtype(dtype, "Linear")
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
        y = x @ self.weight
        if self.bias is not None:
            y = y + self.bias
        return y

    def extra_repr(self):
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}, dtype={self.weight.dtype}")


class Tanh(Module):
    r"""Hyperbolic tangent, :math:`\tanh(x)`, elementwise."""

    def forward(self, x):
        return _as_tensor(x).tanh()


class ReLU(Module):
    r"""Rectified linear unit, :math:`\max(x, 0)`, elementwise."""

    def forward(self, x):
        return _as_tensor(x).relu()


class Sigmoid(Module):
    r"""Logistic sigmoid, :math:`1 / (1 + e^{-x})`, elementwise."""

    def forward(self, x):
        return _as_tensor(x).sigmoid()


class Softplus(Module):
    r"""Softplus, :math:`\log(1 + e^{x})`, elementwise (a smooth ReLU, positive outputs)."""

    def forward(self, x):
        return _as_tensor(x).softplus()


class Identity(Module):
    r"""The identity map (returns its input unchanged)."""

    def forward(self, x):
        return x


def _as_tensor(x):
    if isinstance(x, Tensor):
        return x
    if isinstance(x, np.ndarray):
        return Tensor(x)
    raise TypeError(f"activation input must be a Tensor or ndarray, got {type(x).__name__}")


#: Activation names accepted by :class:`MLP` and :func:`get_activation`.
ACTIVATIONS = {"tanh": Tanh, "relu": ReLU, "sigmoid": Sigmoid, "softplus": Softplus,
               "identity": Identity}


def get_activation(activation, where="get_activation"):
    r"""Turn an activation name (or Module) into a Module.

    Parameters
    ----------
    activation : str or Module
        One of ``'tanh'``, ``'relu'``, ``'sigmoid'``, ``'softplus'``, ``'identity'``, or a Module
        instance (returned as is).
    """
    if isinstance(activation, Module):
        return activation
    if isinstance(activation, str):
        try:
            return ACTIVATIONS[activation.lower()]()
        except KeyError:
            pass
        raise ValueError(f"{where}: unknown activation {activation!r}; expected one of "
                         f"{sorted(ACTIVATIONS)} or a Module")
    raise TypeError(f"{where}: activation must be a str (one of {sorted(ACTIVATIONS)}) or a "
                    f"Module, got {type(activation).__name__}")


class MLP(Module):
    r"""Multi-layer perceptron: Linear layers with an activation between consecutive ones.

    Parameters
    ----------
    sizes : sequence of int, length >= 2
        ``[in_features, hidden_1, ..., out_features]``, e.g. ``[64, 100, 100, 20]``.
    activation : str or Module
        Applied after every layer but the last (``'tanh'`` as in the IWAE paper).
    rng : numpy.random.Generator
        Initialises every layer (keyword-only, required).
    dtype : {numpy.float64, numpy.float32}
    output_activation : str, Module or None
        Applied after the last layer (None: the output is affine, e.g. logits or means).

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
                 output_activation=None):
        super().__init__()
        if isinstance(sizes, (str, bytes)) or not hasattr(sizes, "__len__"):
            raise TypeError(f"MLP: sizes must be a list of ints like [64, 100, 20], "
                            f"got {sizes!r}")
        if len(sizes) < 2:
            raise ValueError(f"MLP: sizes needs at least 2 entries (input and output sizes), "
                             f"got {list(sizes)}")
        sizes = [init.check_positive_int(s, f"sizes[{i}]", "MLP") for i, s in enumerate(sizes)]
        init.check_rng(rng, "MLP")
        init.check_float_dtype(dtype, "MLP")
        self.sizes = sizes
        self.activation = get_activation(activation, "MLP")
        self.output_activation = (None if output_activation is None
                                  else get_activation(output_activation, "MLP"))
        self.layers = ModuleList(Linear(a, b, rng=rng, dtype=dtype)
                                 for a, b in zip(sizes[:-1], sizes[1:]))

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
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < last:
                x = self.activation(x)
        if self.output_activation is not None:
            x = self.output_activation(x)
        return x

    def extra_repr(self):
        return f"sizes={self.sizes}"
