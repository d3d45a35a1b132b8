r"""A small neural-network layer on top of :mod:`scratchdgm.autodiff`.

:class:`Module` / :class:`Parameter` (registration, ``parameters()``, ``state_dict()``,
``.npz`` save/load), :class:`Linear` with Glorot initialisation, activations, and :class:`MLP`.
The optimisers live in :mod:`scratchdgm.optim`.
"""

from scratchdgm.nn import init
from scratchdgm.nn.layers import (
    ACTIVATIONS,
    MLP,
    Activation,
    Identity,
    Linear,
    ReLU,
    Sigmoid,
    Softplus,
    Tanh,
    get_activation,
)
from scratchdgm.nn.module import LoadResult, Module, ModuleList, Parameter

__all__ = [
    "Module", "ModuleList", "Parameter", "LoadResult",
    "Linear", "MLP", "Activation", "Tanh", "ReLU", "Sigmoid", "Softplus", "Identity",
    "ACTIVATIONS", "get_activation", "init",
]
