r"""Containers for trainable parameters: :class:`Parameter`, :class:`Module`, :class:`ModuleList`.

The design is PyTorch's, because students know it: a :class:`Module` registers
every :class:`Parameter` and sub-:class:`Module` assigned to one of its attributes, so that
``model.parameters()`` finds all the weights of a network of any depth, ``model.zero_grad()``
clears their gradients, and ``model.state_dict()`` / ``model.load_state_dict()`` move their
values in and out as plain NumPy arrays (saved to ``.npz`` by :mod:`scratchdgm.checkpoint`,
never pickled).

In the lectures the decoder :math:`f_\theta` and the encoder :math:`g_\gamma` are neural networks
whose weights are :math:`\theta` and :math:`\gamma` ([Mattei-DGM, "Deep latent
variable models"] and "Decoder network"); a :class:`Module` is such a network and its
:meth:`Module.parameters` are :math:`\theta`.
"""

from collections import namedtuple

import numpy as np

from scratchdgm.autodiff import Tensor
from scratchdgm.validation import NonFiniteError

__all__ = ["Parameter", "Module", "ModuleList", "LoadResult"]

#: What :meth:`Module.load_state_dict` returns: the keys it expected but did not find, and the
#: keys it found but did not expect (both empty after a strict load).
LoadResult = namedtuple("LoadResult", ["missing_keys", "unexpected_keys"])

_FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))

MODULE_CHECKPOINT_KIND = "module"
MODULE_CHECKPOINT_VERSION = 1


class Parameter(Tensor):
    r"""A leaf :class:`~scratchdgm.autodiff.Tensor` that a :class:`Module` trains.

    Always ``requires_grad=True``. Assigning one to an attribute of a :class:`Module` registers
    it, so that :meth:`Module.parameters` returns it.

    Parameters
    ----------
    data : array_like or Tensor
        Initial value, copied. Must be a float32 or float64 array (ints and bools become
        float64, like :func:`scratchdgm.tensor`); a Tensor contributes its data only.
    dtype : {None, numpy.float32, numpy.float64}
        Convert to this dtype; by default keep the dtype of ``data``.
    """

    def __init__(self, data, dtype=None):
        if isinstance(data, Tensor):
            data = data.data
        arr = np.array(data, dtype=dtype, copy=True)
        if arr.dtype.kind in "biu":
            arr = arr.astype(np.float64)
        if arr.dtype not in _FLOAT_DTYPES:
            raise TypeError(f"Parameter data must be float32 or float64, got dtype {arr.dtype}")
        super().__init__(arr, requires_grad=True)

    def __repr__(self):
        return f"Parameter(shape={tuple(self.shape)}, dtype={self.dtype})"


class Module:
    r"""Base class of every network: holds Parameters and sub-Modules, and computes ``forward``.

    Subclasses call ``super().__init__()`` first, then assign :class:`Parameter` and
    :class:`Module` attributes, and define ``forward``. Calling the module calls ``forward``.

    Examples
    --------
    >>> class Affine(Module):                                   # doctest: +SKIP
    ...     def __init__(self, rng):
    ...         super().__init__()
    ...         self.w = Parameter(rng.normal(size=(3, 2)))
    ...         self.b = Parameter(np.zeros(2))
    ...     def forward(self, x):
    ...         return x @ self.w + self.b
    """

    def __init__(self):
        # object.__setattr__: our own __setattr__ needs these registries to exist already.
        object.__setattr__(self, "_parameters", {})
        object.__setattr__(self, "_modules", {})

    # -- registration -------------------------------------------------------------------------

    def _registries(self):
        try:
            return self.__dict__["_parameters"], self.__dict__["_modules"]
        except KeyError:
            raise RuntimeError(f"{type(self).__name__}.__init__ must call super().__init__() "
                               f"before assigning attributes") from None

    def __setattr__(self, name, value):
        params, modules = self._registries()
        if isinstance(value, list) and value and all(isinstance(v, Module) for v in value):
            # A plain list would hide its modules' parameters from parameters(): wrap it.
            value = ModuleList(value)
        elif isinstance(value, (list, tuple)) and any(isinstance(v, (Module, Parameter))
                                                      for v in value):
            raise TypeError(f"attribute {name!r}: a {type(value).__name__} mixing Modules or "
                            f"Parameters with other objects would hide them from parameters(); "
                            f"expected a list of Modules only (it becomes a ModuleList), or "
                            f"assign each Parameter to its own attribute")
        params.pop(name, None)
        modules.pop(name, None)
        if isinstance(value, Parameter):
            params[name] = value
        elif isinstance(value, Module):
            modules[name] = value
        object.__setattr__(self, name, value)

    def __delattr__(self, name):
        params, modules = self._registries()
        params.pop(name, None)
        modules.pop(name, None)
        object.__delattr__(self, name)

    # -- forward --------------------------------------------------------------------------------

    def forward(self, *args, **kwargs):
        r"""Compute the module's output; every subclass defines it."""
        raise NotImplementedError(f"{type(self).__name__} does not define forward()")

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    # -- traversal ------------------------------------------------------------------------------

    def named_modules(self, prefix=""):
        r"""All modules of the tree, this one first, depth first, each once.

        Returns
        -------
        list of (str, Module)
            Dotted names relative to this module (``''`` for this module itself).
        """
        out, seen, stack = [], set(), [(prefix, self)]
        while stack:  # iterative: arbitrarily deep trees must not hit the recursion limit
            name, mod = stack.pop()
            if id(mod) in seen:
                continue
            seen.add(id(mod))
            out.append((name, mod))
            children = list(mod._modules.items())
            for child_name, child in reversed(children):
                stack.append((f"{name}.{child_name}" if name else child_name, child))
        return out

    def modules(self):
        r"""All modules of the tree (see :meth:`named_modules`), without names."""
        return [m for _, m in self.named_modules()]

    def children(self):
        r"""The direct sub-modules, in the order they were assigned."""
        return list(self._modules.values())

    def named_parameters(self):
        r"""Every Parameter of the tree with its dotted name, each Parameter once.

        Returns
        -------
        list of (str, Parameter)
            Names like ``'layers.0.weight'``, in registration order; a Parameter shared by two
            modules appears once, under the first name found.
        """
        out, seen = [], set()
        for mod_name, mod in self.named_modules():
            for p_name, p in mod._parameters.items():
                if id(p) in seen:
                    continue
                seen.add(id(p))
                out.append((f"{mod_name}.{p_name}" if mod_name else p_name, p))
        return out

    def parameters(self):
        r"""Every Parameter of the tree, each once (what an optimiser is given).

        Returns
        -------
        list of Parameter
        """
        return [p for _, p in self.named_parameters()]

    def num_parameters(self):
        r"""Total number of scalar weights, :math:`\sum_p \mathrm{size}(p)`."""
        return int(sum(p.size for p in self.parameters()))

    def zero_grad(self):
        r"""Forget the gradient of every Parameter (sets ``p.grad`` to None)."""
        for p in self.parameters():
            p.grad = None

    # -- state ----------------------------------------------------------------------------------

    def state_dict(self):
        r"""Copies of every Parameter's value, keyed by dotted name.

        Returns
        -------
        dict of str -> ndarray
            In :meth:`named_parameters` order; the arrays are copies, so later training does not
            change them.
        """
        return {name: p.data.copy() for name, p in self.named_parameters()}

    def load_state_dict(self, state, strict=True):
        r"""Copy values from ``state`` into the Parameters, in place, after checking all of them.

        Parameters
        ----------
        state : mapping of str -> ndarray
            As returned by :meth:`state_dict` (or read back from a checkpoint).
        strict : bool
            If True, ``state`` must hold exactly the names of :meth:`named_parameters`. If
            False, missing and unexpected names are ignored (and reported in the result).

        Returns
        -------
        LoadResult
            ``(missing_keys, unexpected_keys)``, sorted lists of names.

        Raises
        ------
        TypeError
            If ``state`` is not a mapping or a value is not numeric.
        ValueError
            If (strict) names are missing or unexpected, or a value's shape or dtype differs
            from the Parameter's, or a value holds NaN or an infinity
            (:class:`~scratchdgm.validation.NonFiniteError`). Nothing is modified when an
            error is raised.
        """
        if not hasattr(state, "keys") or not hasattr(state, "__getitem__"):
            raise TypeError(f"state must be a dict of name -> ndarray (as from state_dict()), "
                            f"got {type(state).__name__}")
        named = dict(self.named_parameters())
        missing = sorted(set(named) - set(state.keys()))
        unexpected = sorted(set(state.keys()) - set(named), key=str)
        if strict and (missing or unexpected):
            parts = []
            if missing:
                parts.append(f"missing keys {missing}")
            if unexpected:
                parts.append(f"unexpected keys {unexpected}")
            raise ValueError(f"{type(self).__name__}.load_state_dict(strict=True): "
                             f"{' and '.join(parts)}; expected exactly {sorted(named)}")
        updates = []
        for name, p in named.items():
            if name not in state:
                continue
            value = state[name]
            if isinstance(value, Tensor):
                value = value.data
            arr = np.asarray(value)
            if arr.dtype.kind not in "fiub":
                raise TypeError(f"state[{name!r}] has dtype {arr.dtype}; expected a numeric "
                                f"array of dtype {p.dtype}")
            if arr.shape != p.data.shape:
                raise ValueError(f"state[{name!r}] has shape {arr.shape} but parameter "
                                 f"{name!r} has shape {p.data.shape}")
            if arr.dtype != p.data.dtype:
                raise ValueError(f"state[{name!r}] has dtype {arr.dtype} but parameter "
                                 f"{name!r} has dtype {p.data.dtype}; convert the state with "
                                 f".astype() or build the model with dtype={p.data.dtype}")
            if not np.all(np.isfinite(arr)):
                bad = int(np.count_nonzero(~np.isfinite(arr)))
                raise NonFiniteError(f"state[{name!r}] holds {bad} NaN or infinite value(s) of "
                                     f"{arr.size}; expected finite weights (was it saved from "
                                     f"a diverged training?)")
            updates.append((p, arr))
        for p, arr in updates:
            # In place: anything holding the array (an optimiser, a view) sees the new values.
            np.copyto(p.data, arr)
        return LoadResult(missing, [str(k) for k in unexpected])

    def save(self, path, metadata=None):
        r"""Write :meth:`state_dict` to ``path`` as an ``.npz`` checkpoint (atomic, no pickle).

        Parameters
        ----------
        path : str or os.PathLike
            Destination file (written as given; conventionally ending in ``.npz``).
        metadata : dict or None
            Extra JSON-serialisable information stored alongside; the module's class name and
            repr are added under ``'module_class'`` and ``'module_repr'``.
        """
        from scratchdgm.checkpoint import save_npz

        if metadata is not None and not isinstance(metadata, dict):
            raise TypeError(f"metadata must be a dict or None, got {type(metadata).__name__}")
        meta = {"module_class": type(self).__name__, "module_repr": repr(self)}
        meta.update(metadata or {})
        save_npz(path, self.state_dict(), kind=MODULE_CHECKPOINT_KIND,
                 format_version=MODULE_CHECKPOINT_VERSION, metadata=meta)

    def load(self, path, strict=True):
        r"""Load Parameters from a checkpoint written by :meth:`save`, in place.

        Parameters
        ----------
        path : str or os.PathLike
        strict : bool
            As in :meth:`load_state_dict`.

        Returns
        -------
        dict
            The metadata stored with the checkpoint.

        Raises
        ------
        ValueError
            If the file is missing, corrupt, not a module checkpoint, or does not match this
            module (see :func:`scratchdgm.checkpoint.load_npz` and :meth:`load_state_dict`).
        """
        from scratchdgm.checkpoint import load_npz

        arrays, metadata = load_npz(path, kind=MODULE_CHECKPOINT_KIND,
                                    format_version=MODULE_CHECKPOINT_VERSION)
        self.load_state_dict(arrays, strict=strict)
        return metadata

    # -- printing -------------------------------------------------------------------------------

    def extra_repr(self):
        r"""One line of settings shown inside the parentheses of the repr (empty by default)."""
        return ""

    def __repr__(self):
        lines = []
        extra = self.extra_repr()
        if not extra:
            # Parameters held directly are worth showing when nothing else describes them.
            for name, p in self._parameters.items():
                lines.append(f"({name}): {p!r}")
        for name, mod in self._modules.items():
            child = repr(mod).replace("\n", "\n  ")
            lines.append(f"({name}): {child}")
        if not lines:
            return f"{type(self).__name__}({extra})"
        body = "\n  ".join(lines)
        head = f"{type(self).__name__}({extra}" + ("," if extra else "")
        return f"{head}\n  {body}\n)"


class ModuleList(Module):
    r"""A list of Modules whose Parameters are registered (names ``'0'``, ``'1'``, ...).

    Parameters
    ----------
    modules : iterable of Module, optional
    """

    def __init__(self, modules=()):
        super().__init__()
        object.__setattr__(self, "_items", [])
        for m in modules:
            self.append(m)

    def append(self, module):
        r"""Add ``module`` at the end."""
        if not isinstance(module, Module):
            raise TypeError(f"ModuleList holds Modules only, got {type(module).__name__}")
        self._items.append(module)
        self._modules[str(len(self._items) - 1)] = module
        return self

    def __len__(self):
        return len(self._items)

    def __iter__(self):
        return iter(self._items)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return ModuleList(self._items[index])
        return self._items[index]

    def forward(self, *args, **kwargs):
        raise NotImplementedError("ModuleList is a container and has no forward(); iterate "
                                  "over it and call its modules")
