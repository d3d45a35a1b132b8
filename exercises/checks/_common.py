r"""What the checks share. None of it calls code that an exercise asks for: finite differences
are computed here, and gradients through the autodiff's graph are taken by :func:`path_sum_grad`,
which walks the graph without :meth:`Tensor.backward` (exercise 02).
"""

import numpy as np

from scratchdgm.autodiff.tensor import Tensor, unbroadcast


def central_difference(f, x, h=1e-6):
    r"""Gradient of the scalar ``f(x)`` at ``x`` by central differences, entry by entry,
    in float64: :math:`\partial f / \partial x_i \approx (f(x + h e_i) - f(x - h e_i)) / 2h`."""
    x = np.array(x, dtype=np.float64)
    g = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        up, down = x.copy(), x.copy()
        up[i] += h
        down[i] -= h
        g[i] = (float(f(up)) - float(f(down))) / (2 * h)
    return g


def path_sum_grad(output, inputs, seed=None, max_calls=20000):
    r"""Gradients of :math:`\langle \text{seed}, \text{output} \rangle` with respect to each of
    ``inputs`` (leaf Tensors), from the graph the autodiff recorded.

    The chain rule is summed over every path from ``output`` to a leaf: each node passes its
    gradient to its parents as soon as it gets one, so a node reached by several paths calls its
    op's backward several times. That is correct but exponential in the depth of shared nodes --
    exercise 02's topological order exists to avoid it -- and it is enough for the small graphs
    of the checks, which must not depend on :meth:`Tensor.backward`.

    Returns
    -------
    list of ndarray
        One per input, of its shape (zeros where no path reaches it).
    """
    grads = {id(t): np.zeros(t.shape, dtype=t.dtype) for t in inputs}
    seed = np.ones(output.shape, output.dtype) if seed is None else np.asarray(seed)
    calls = [0]

    def push(node, g):
        if node._fn is None:
            if id(node) in grads:
                grads[id(node)] = grads[id(node)] + g
            return
        calls[0] += 1
        if calls[0] > max_calls:
            raise RuntimeError("path_sum_grad: graph too large for a path-by-path sum")
        parent_grads = node._fn.backward(node._ctx, g)
        if not isinstance(parent_grads, tuple):
            parent_grads = (parent_grads,)
        for parent, pg in zip(node._parents, parent_grads):
            if parent is None or pg is None or not parent.requires_grad:
                continue
            push(parent, unbroadcast(np.asarray(pg), parent.shape))

    if not isinstance(output, Tensor) or (output._fn is None and id(output) not in grads):
        return [grads[id(t)] for t in inputs]
    push(output, seed)
    return [grads[id(t)] for t in inputs]


def connected(output, leaf):
    """Whether ``output`` was computed from ``leaf`` through recorded ops (a gradient can flow)."""
    if not isinstance(output, Tensor):
        return False
    stack, seen = [output], set()
    while stack:
        node = stack.pop()
        if node is leaf:
            return True
        if id(node) in seen:
            continue
        seen.add(id(node))
        stack.extend(p for p in node._parents if p is not None)
    return False


def values(x):
    """The array inside a Tensor, or ``x`` as an array."""
    return np.asarray(x.data if isinstance(x, Tensor) else x)


def show(a, n=4):
    """A short rendering of an array for a message: its first few entries."""
    a = np.asarray(a)
    flat = a.ravel()
    body = ", ".join(f"{v:.6g}" for v in flat[:n])
    more = ", ..." if flat.size > n else ""
    return f"[{body}{more}]" if a.ndim else f"{a.item():.6g}"


def max_error(got, want):
    """Largest absolute difference, NaN-aware (a NaN where a number was expected counts as inf)."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    diff = np.abs(got - want)
    both_inf = np.isinf(got) & np.isinf(want) & (np.sign(got) == np.sign(want))
    both_nan = np.isnan(got) & np.isnan(want)
    diff = np.where(both_inf | both_nan, 0.0, diff)
    return float(np.max(np.where(np.isnan(diff), np.inf, diff))) if diff.size else 0.0


def close(got, want, rtol, atol):
    """``got`` equals ``want`` within ``atol + rtol |want|`` everywhere, infinities and NaNs in
    the same places."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    if got.shape != want.shape:
        return False
    same_special = np.array_equal(np.isnan(got), np.isnan(want)) and np.array_equal(
        np.where(np.isinf(want), want, 0), np.where(np.isinf(got), got, 0))
    fin = np.isfinite(want)
    return bool(same_special and np.all(np.abs(got[fin] - want[fin])
                                        <= atol + rtol * np.abs(want[fin])))


def expect_array(got, shape, dtype, what, shape_hint=None, dtype_hint="keep the input's dtype"):
    r"""Raise AssertionError unless ``got`` has ``shape`` and ``dtype``: "<what> has shape ...,
    expected ...<hint>". ``shape_hint`` may be a function of the shape found, returning the hint
    (with its leading ': ') or ''."""
    got = np.asarray(got)
    if got.shape != tuple(shape):
        hint = shape_hint(got.shape) if callable(shape_hint) else (shape_hint or "")
        raise AssertionError(f"{what} has shape {got.shape}, expected {tuple(shape)}{hint}")
    if dtype is not None and got.dtype != np.dtype(dtype):
        raise AssertionError(f"{what} has dtype {got.dtype}, expected {np.dtype(dtype)}: "
                             f"{dtype_hint}")
    return got
