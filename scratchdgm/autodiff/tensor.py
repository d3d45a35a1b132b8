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
"""

import numbers

import numpy as np

from scratchdgm.autodiff import ops as _ops

#: dtypes a Tensor may hold; integers and booleans are converted to the default float64
FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
DEFAULT_DTYPE = np.dtype(np.float64)


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
                pg = _ops.unbroadcast(np.asarray(pg), parent.data.shape)
                if pg.dtype != parent.data.dtype:
                    pg = pg.astype(parent.data.dtype)
                key = id(parent)
                grads[key] = grads[key] + pg if key in grads else pg

    def _topological_order(self):
        """Nodes reachable from self, each after all of its parents (iterative post-order DFS)."""
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

    # ------------------------------------------------------------------ arithmetic
    def __add__(self, other):
        return _ops.Add.apply(self, other)

    def __radd__(self, other):
        return _ops.Add.apply(other, self)

    def __sub__(self, other):
        return _ops.Sub.apply(self, other)

    def __rsub__(self, other):
        return _ops.Sub.apply(other, self)

    def __mul__(self, other):
        return _ops.Mul.apply(self, other)

    def __rmul__(self, other):
        return _ops.Mul.apply(other, self)

    def __truediv__(self, other):
        return _ops.Div.apply(self, other)

    def __rtruediv__(self, other):
        return _ops.Div.apply(other, self)

    def __pow__(self, other):
        return _ops.Pow.apply(self, other)

    def __rpow__(self, other):
        return _ops.Pow.apply(other, self)

    def __matmul__(self, other):
        return _ops.MatMul.apply(self, other)

    def __rmatmul__(self, other):
        return _ops.MatMul.apply(other, self)

    def __neg__(self):
        return _ops.Neg.apply(self)

    def __pos__(self):
        return self

    # Comparisons give plain boolean arrays: they are not differentiable.
    def __lt__(self, other):
        return self.data < _ops.value_of(other)

    def __le__(self, other):
        return self.data <= _ops.value_of(other)

    def __gt__(self, other):
        return self.data > _ops.value_of(other)

    def __ge__(self, other):
        return self.data >= _ops.value_of(other)

    def __eq__(self, other):
        return self.data == _ops.value_of(other)

    def __ne__(self, other):
        return self.data != _ops.value_of(other)

    __hash__ = object.__hash__  # identity: tensors can be dict keys and set members

    def __bool__(self):
        if self.data.size != 1:
            raise ValueError(
                f"the truth value of a tensor of shape {self.shape} is ambiguous; "
                "compare elementwise and use .all() / .any() on the boolean array"
            )
        return bool(self.data)

    # ------------------------------------------------------------------ elementwise functions
    def exp(self):
        r""":math:`e^x`."""
        return _ops.Exp.apply(self)

    def log(self):
        r"""Natural logarithm :math:`\log x` (``-inf`` at 0, NaN below, as NumPy)."""
        return _ops.Log.apply(self)

    def log1p(self):
        r""":math:`\log(1 + x)`, accurate for small :math:`x`."""
        return _ops.Log1p.apply(self)

    def tanh(self):
        r""":math:`\tanh x`; derivative :math:`1 - \tanh^2 x`."""
        return _ops.Tanh.apply(self)

    def sigmoid(self):
        r"""Logistic sigmoid :math:`\sigma(x) = 1 / (1 + e^{-x})`, stable for any :math:`x`."""
        return _ops.Sigmoid.apply(self)

    def relu(self):
        r""":math:`\max(x, 0)` (derivative 0 at 0)."""
        return _ops.Relu.apply(self)

    def softplus(self):
        r""":math:`\log(1 + e^x)`, computed as :math:`\max(x,0) + \log(1 + e^{-|x|})`."""
        return _ops.Softplus.apply(self)

    def sqrt(self):
        r""":math:`\sqrt{x}`."""
        return _ops.Sqrt.apply(self)

    def square(self):
        r""":math:`x^2`."""
        return _ops.Square.apply(self)

    def abs(self):
        r""":math:`|x|` (derivative taken as 0 at 0)."""
        return _ops.Abs.apply(self)

    def lgamma(self):
        r""":math:`\log\Gamma(x)`; derivative the digamma function :math:`\psi(x)`."""
        return _ops.Lgamma.apply(self)

    def astype(self, dtype):
        """Cast to float32 or float64; the gradient is cast back."""
        return _ops.AsType.apply(self, dtype=_check_dtype(dtype, "astype"))

    # ------------------------------------------------------------------ reductions
    def sum(self, axis=None, keepdims=False):
        r""":math:`\sum` over ``axis`` (an int, a tuple, or None for all)."""
        return _ops.Sum.apply(self, axis=_ops.normalize_axis(axis, self.ndim), keepdims=keepdims)

    def mean(self, axis=None, keepdims=False):
        r"""Arithmetic mean over ``axis``."""
        return _ops.Mean.apply(self, axis=_ops.normalize_axis(axis, self.ndim), keepdims=keepdims)

    def max(self, axis=None, keepdims=False):
        r"""Maximum over ``axis``; the gradient goes to the (first) arg-max only."""
        return _ops.Max.apply(self, axis=_ops.normalize_axis(axis, self.ndim), keepdims=keepdims)

    def min(self, axis=None, keepdims=False):
        r"""Minimum over ``axis``: :math:`\min x = -\max(-x)`."""
        return -((-self).max(axis=axis, keepdims=keepdims))

    def logsumexp(self, axis=None, keepdims=False):
        r""":math:`\log \sum \exp x` over ``axis``, stable; see :func:`scratchdgm.logsumexp`."""
        return _ops.LogSumExp.apply(
            self, axis=_ops.normalize_axis(axis, self.ndim), keepdims=keepdims
        )

    def log_softmax(self, axis=-1):
        r""":math:`x_i - \log\sum_j e^{x_j}` along ``axis``.

        Computed on :math:`x - \max x` (detached): log-softmax is unchanged by a shift, so the
        gradient is the same, and the subtraction of two large nearly equal numbers
        (float32 inputs near 1000) is avoided.
        """
        shifted = self - self.max(axis=axis, keepdims=True).detach()
        return shifted - shifted.logsumexp(axis=axis, keepdims=True)

    def softmax(self, axis=-1):
        r""":math:`e^{x_i} / \sum_j e^{x_j}` along ``axis`` (computed as exp of log_softmax)."""
        return self.log_softmax(axis=axis).exp()

    # ------------------------------------------------------------------ shape
    def reshape(self, *shape):
        """Same data, new shape (one entry may be -1)."""
        return _ops.Reshape.apply(self, shape=_normalize_shape(shape))

    def transpose(self, *axes):
        """Permute axes (reverse them when none are given)."""
        axes = _normalize_shape(axes) if axes else None
        return _ops.Transpose.apply(self, axes=axes)

    @property
    def T(self):
        """The transpose (axes reversed)."""
        return self.transpose()

    def broadcast_to(self, shape):
        """Broadcast to ``shape`` by NumPy's rules; the gradient sums over the copies."""
        return _ops.BroadcastTo.apply(self, shape=_normalize_shape((shape,)))

    def __getitem__(self, index):
        return _ops.GetItem.apply(self, index=_ops.normalize_index(index))
