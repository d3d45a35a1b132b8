r"""The :class:`Tensor`: a NumPy array that remembers how it was computed.

Every tensor made by an operation keeps the :class:`~scratchdgm.autodiff.function.Function` that
made it, that function's saved context, and its parent tensors. Together they form a directed
acyclic graph whose sinks are the leaves (inputs and parameters). :meth:`Tensor.backward` walks
that graph once in reverse topological order, applying the chain rule

.. math::

    \bar v = \sum_{c \,\in\, \text{children}(v)} \bar c \, \frac{\partial c}{\partial v},

so a tensor used twice (``x * x``, a shared sub-expression, a reused layer) receives the *sum*
of the gradients from each use. The order is found by an iterative depth-first search, not by
recursion, so a chain of 10,000 ops does not hit Python's recursion limit.

Only leaves that ``requires_grad`` keep their gradient, in ``.grad`` (a NumPy array), and it
*accumulates* across calls to ``backward`` until reset (``zero_grad``), as in PyTorch.

This module is the bottom of the engine: it knows no particular operation. The arithmetic,
elementwise functions, reductions and shape methods of :class:`Tensor` (``+``, ``@``,
``exp``, ``sum``, ``reshape``, ...) are defined next to their derivatives in
:mod:`~scratchdgm.autodiff.ops`, which binds them to the class when the package is imported, so
that the imports run one way: ``grad_mode <- tensor <- function <- ops``.
"""

import numbers

import numpy as np


#: dtypes a Tensor may hold; integers and booleans are converted to the default float64
FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
DEFAULT_DTYPE = np.dtype(np.float64)


def value_of(x):
    """The array inside a tensor, or ``x`` itself."""
    return x.data if isinstance(x, Tensor) else x


def unbroadcast(grad, shape):
    r"""Sum ``grad`` down to ``shape``: the adjoint of NumPy broadcasting.

    Broadcasting copies an array along new leading axes and along axes of length 1; the
    gradient of a copy is the sum of the gradients of its copies. The backward pass calls this
    once per edge of the graph, so no op's backward has to undo broadcasting itself. (If
    :math:`a` of shape ``(3,)`` was broadcast against ``(4, 3)``, every one of the 4 rows used
    the same :math:`a`, so the 4 gradient rows add up.)

    Parameters
    ----------
    grad : ndarray
        Gradient with the broadcast shape.
    shape : tuple of int
        Shape of the input that was broadcast.

    Returns
    -------
    ndarray, shape ``shape``
    """
    if grad.shape == shape:
        return grad
    extra = grad.ndim - len(shape)
    if extra > 0:
        grad = grad.sum(axis=tuple(range(extra)))
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    if axes:
        grad = grad.sum(axis=axes, keepdims=True)
    if grad.shape != shape:
        raise RuntimeError(
            f"gradient of shape {grad.shape} cannot be reduced to the input shape {shape}; "
            "a backward returned a gradient of the wrong shape"
        )
    return grad


def _check_dtype(dtype, where):
    dtype = np.dtype(dtype)
    if dtype not in FLOAT_DTYPES:
        raise TypeError(
            f"{where}: unsupported dtype {dtype}; expected float32 or float64 "
            "(automatic differentiation needs real floating-point numbers)"
        )
    return dtype


def _to_array(data, dtype, where):
    if isinstance(data, Tensor):
        data = data.data
    if dtype is not None:
        dtype = _check_dtype(dtype, where)
    try:
        arr = np.asarray(data)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{where}: cannot make an array from {type(data).__name__}: {exc}") from exc
    if arr.dtype == object:
        raise TypeError(
            f"{where}: cannot make a numeric array from {type(data).__name__} "
            "(ragged nested lists or non-numbers?); expected numbers or a rectangular array"
        )
    if dtype is None:
        if arr.dtype.kind in "biu":
            dtype = DEFAULT_DTYPE
        else:
            dtype = _check_dtype(arr.dtype, where)
    elif arr.dtype.kind not in "biuf":
        _check_dtype(arr.dtype, where)  # complex or strings: refuse instead of casting silently
    return np.array(arr, dtype=dtype)  # a copy: the tensor owns its data


def tensor(data, requires_grad=False, dtype=None):
    r"""Make a :class:`Tensor` from array-like ``data``.

    Parameters
    ----------
    data : array_like or Tensor
        Numbers, nested lists, an ndarray or another tensor (its data is copied, its graph is not).
    requires_grad : bool, default False
        Whether gradients with respect to this tensor are wanted: it becomes a *leaf* whose
        ``.grad`` is filled by :meth:`Tensor.backward`.
    dtype : {None, 'float32', 'float64'}, optional
        ``None`` keeps float32/float64 data as it is and turns integers and booleans into
        float64. Other dtypes (float16, complex, strings) raise ``TypeError``.

    Returns
    -------
    Tensor

    Examples
    --------
    >>> import scratchdgm as sd
    >>> x = sd.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    >>> (x ** 2).sum().backward()
    >>> x.grad
    array([[2., 4.],
           [6., 8.]])
    """
    if not isinstance(requires_grad, (bool, np.bool_)):
        raise TypeError(f"tensor: requires_grad must be a bool, got {type(requires_grad).__name__}")
    return Tensor(data, requires_grad=requires_grad, dtype=dtype)


def _as_operand(x):
    """Tensors pass through; Python numbers stay numbers (NumPy treats them as 'weak', so a
    float32 tensor times 2.0 stays float32); NumPy scalars become Python numbers for the same
    reason; everything else becomes a constant (no-grad) tensor."""
    if isinstance(x, Tensor):
        return x
    if isinstance(x, (bool, np.bool_)):
        return float(x)
    if isinstance(x, numbers.Real) and not isinstance(x, np.ndarray):
        return x.item() if isinstance(x, np.generic) else x
    arr = np.asarray(x)
    if arr.dtype.kind in "biu":
        arr = arr.astype(DEFAULT_DTYPE)
    elif arr.dtype not in FLOAT_DTYPES:
        _check_dtype(arr.dtype, "operand")
    return Tensor._wrap(arr, requires_grad=False)


def _normalize_shape(shape):
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    return tuple(int(s) for s in shape)


class Tensor:
    r"""An n-dimensional array with reverse-mode automatic differentiation.

    Create tensors with :func:`scratchdgm.tensor`. Arithmetic follows NumPy (broadcasting,
    ``@`` for matrix products including stacked ``(K, B, n) @ (n, m)``), and every method
    documented here is differentiable unless it says otherwise.

    Attributes
    ----------
    data : ndarray
        The values.
    grad : ndarray or None
        :math:`\partial L / \partial \text{self}` after ``L.backward()``, for leaves that
        require a gradient; accumulates across backward calls.
    requires_grad : bool
        Whether this tensor takes part in differentiation.
    """

    # NumPy must not try to handle `ndarray (op) Tensor` itself: with __array_ufunc__ = None
    # it returns NotImplemented and Python calls our reflected operator (Tensor.__radd__, ...).
    __array_ufunc__ = None

    def __init__(self, data, requires_grad=False, dtype=None):
        self.data = _to_array(data, dtype, "tensor")
        self.requires_grad = bool(requires_grad)
        self.grad = None
        self._fn = None
        self._ctx = None
        self._parents = ()

    @classmethod
    def _wrap(cls, data, requires_grad=False):
        """Fast internal constructor for op results: no validation, no copy."""
        t = object.__new__(cls)
        t.data = data if isinstance(data, np.ndarray) else np.asarray(data)
        t.requires_grad = requires_grad
        t.grad = None
        t._fn = None
        t._ctx = None
        t._parents = ()
        return t

    # ------------------------------------------------------------------ array-like properties
    @property
    def shape(self):
        return self.data.shape

    @property
    def ndim(self):
        return self.data.ndim

    @property
    def size(self):
        return self.data.size

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def is_leaf(self):
        """True for tensors not made by a recorded op (inputs, parameters, constants)."""
        return self._fn is None

    def __len__(self):
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.data.shape[0]

    def __array__(self, dtype=None, copy=None):
        # np.asarray(t) gives the values (for plotting, printing); it leaves the graph.
        return self.data if dtype is None else self.data.astype(dtype)

    def __repr__(self):
        body = np.array2string(self.data, separator=", ", prefix="tensor(")
        extra = ""
        if self.dtype != DEFAULT_DTYPE:
            extra += f", dtype={self.dtype}"
        if self._fn is not None:
            extra += f", grad_fn={self._fn.__name__}"
        elif self.requires_grad:
            extra += ", requires_grad=True"
        return f"tensor({body}{extra})"

    def item(self):
        """The value of a one-element tensor as a Python float."""
        if self.data.size != 1:
            raise ValueError(f"item() needs a tensor with one element, got shape {self.shape}")
        return self.data.item()

    def numpy(self):
        """The underlying ndarray (not a copy; no gradient flows through it)."""
        return self.data

    def detach(self):
        """A tensor sharing this one's data but cut from the graph (``requires_grad=False``)."""
        return Tensor._wrap(self.data, requires_grad=False)

    def zero_grad(self):
        """Forget the accumulated gradient (``grad = None``)."""
        self.grad = None

    # ------------------------------------------------------------------ backward pass
    def backward(self, grad=None):
        r"""Accumulate :math:`\partial\,\text{self} / \partial\,\text{leaf}` into every leaf's ``.grad``.

        Parameters
        ----------
        grad : array_like, optional
            The upstream gradient :math:`\partial L / \partial\,\text{self}`, same shape as this
            tensor. May be omitted only when this tensor is a scalar (it is then 1).
        """
        if not self.requires_grad:
            raise ValueError(
                "backward() called on a tensor that does not require grad: no input of the "
                "computation had requires_grad=True (or it ran inside no_grad())"
            )
        if grad is None:
            if self.data.size != 1:
                raise ValueError(
                    f"backward() without a gradient needs a scalar output, but this tensor has "
                    f"shape {self.shape}; reduce it first (e.g. .sum() or .mean()) or pass "
                    "grad=<array of the same shape>"
                )
            seed = np.ones_like(self.data)
        else:
            seed = np.asarray(grad.data if isinstance(grad, Tensor) else grad, dtype=self.dtype)
            if seed.shape != self.shape:
                raise ValueError(
                    f"backward(grad=...) got a gradient of shape {seed.shape}; expected the "
                    f"output's shape {self.shape}"
                )

        self._backward_pass(seed)

    def _backward_pass(self, seed):
        r"""The reverse sweep: push ``seed`` back through the graph with the chain rule.

        Parameters
        ----------
        seed : ndarray, shape of ``self``
            :math:`\bar y = \partial L / \partial\,\text{self}`.

        Notes
        -----
        Visit the nodes of :meth:`_topological_order` in *reverse*, so that every gradient of a
        node is complete -- summed over all of its children -- before the node passes it on:

        .. math::

            \bar v = \sum_{c \,\in\, \text{children}(v)} \bar c \,
            \frac{\partial c}{\partial v}.

        Each op's ``backward(ctx, grad)`` is called once, with the node's total gradient; its
        results are summed to the input's own shape by :func:`unbroadcast` and cast to its dtype;
        a leaf adds its gradient to ``.grad``. Inputs that do not require a gradient (or for which
        the op returns ``None``) get nothing.
        """
        # BEGIN EXERCISE 02: the reverse sweep of the chain rule, one backward call per node
        grads = {id(self): seed}
        for node in reversed(self._topological_order()):
            g = grads.pop(id(node), None)
            if g is None:
                continue
            if node._fn is None:
                # a leaf: accumulate (copy first, so later in-place updates never alias a seed)
                node.grad = np.array(g, dtype=node.dtype) if node.grad is None else node.grad + g
                continue
            try:
                parent_grads = node._fn.backward(node._ctx, g)
            except NotImplementedError as exc:
                # name the op: a missing backward must never pass silently or anonymously
                raise NotImplementedError(f"{node._fn.__name__}.backward: {exc}") from exc
            if not isinstance(parent_grads, tuple):
                parent_grads = (parent_grads,)
            if len(parent_grads) != len(node._parents):
                raise RuntimeError(
                    f"{node._fn.__name__}.backward returned {len(parent_grads)} gradients for "
                    f"{len(node._parents)} inputs"
                )
            for parent, pg in zip(node._parents, parent_grads):
                if parent is None or pg is None or not parent.requires_grad:
                    continue
                pg = unbroadcast(np.asarray(pg), parent.data.shape)
                if pg.dtype != parent.data.dtype:
                    pg = pg.astype(parent.data.dtype)
                key = id(parent)
                grads[key] = grads[key] + pg if key in grads else pg
        # END EXERCISE 02

    def _topological_order(self):
        r"""The nodes that ``self`` depends on, each after all of its parents.

        Returns
        -------
        list of Tensor
            Every tensor reachable from ``self`` through ``_parents`` that requires a gradient,
            once each, ``self`` last; a node comes after every parent it has in the list.

        Notes
        -----
        A post-order depth-first search: a node is appended once all of its parents have
        been. It is iterative, with an explicit stack of ``(node, parents_done)`` pairs, so that
        a chain of 10,000 ops does not hit Python's recursion limit.
        """
        # BEGIN EXERCISE 02: a post-order depth-first search, without recursion
        order, visited = [], set()
        stack = [(self, False)]
        while stack:
            node, expanded = stack.pop()
            if expanded:
                order.append(node)
                continue
            if id(node) in visited:
                continue
            visited.add(id(node))
            stack.append((node, True))
            for parent in node._parents:
                if parent is not None and parent.requires_grad and id(parent) not in visited:
                    stack.append((parent, False))
        return order
        # END EXERCISE 02

    # Comparisons give plain boolean arrays: they are not differentiable.
    def __lt__(self, other):
        return self.data < value_of(other)

    def __le__(self, other):
        return self.data <= value_of(other)

    def __gt__(self, other):
        return self.data > value_of(other)

    def __ge__(self, other):
        return self.data >= value_of(other)

    def __eq__(self, other):
        return self.data == value_of(other)

    def __ne__(self, other):
        return self.data != value_of(other)

    __hash__ = object.__hash__  # identity: tensors can be dict keys and set members

    def __bool__(self):
        if self.data.size != 1:
            raise ValueError(
                f"the truth value of a tensor of shape {self.shape} is ambiguous; "
                "compare elementwise and use .all() / .any() on the boolean array"
            )
        return bool(self.data)

