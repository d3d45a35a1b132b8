r"""Checks of exercise 02: the backward pass, ``Tensor._topological_order`` and
``Tensor._backward_pass`` (``scratchdgm/autodiff/tensor.py``).

The graphs are built from ops that count their backward calls: ``Add`` and ``Mul`` of ``ops.py``
(not exercises) and two defined here; the gradients they should produce are written here in
closed form or computed by central differences of a NumPy evaluation of the same graph.
"""

import numpy as np

from scratchdgm.autodiff import Function, ops, tensor

from ._common import central_difference, show

CALLS = {"n": 0}


def _counted(op):
    """``op`` (an op of the library that no exercise touches) with its backward calls counted."""
    def backward(ctx, grad):
        CALLS["n"] += 1
        return op.backward(ctx, grad)

    return type(op.__name__, (op,), {"backward": staticmethod(backward)})


#: y = a * b and y = a + b, broadcasting (the engine sums gradients back to each input's shape)
Mul, Add = _counted(ops.Mul), _counted(ops.Add)


class Sin(Function):
    """y = sin x; one input, so backward returns a single array (not a tuple)."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return np.sin(x)

    @staticmethod
    def backward(ctx, grad):
        CALLS["n"] += 1
        return grad * np.cos(ctx.saved[0])


class Identity(Function):
    @staticmethod
    def forward(ctx, x):
        return x

    @staticmethod
    def backward(ctx, grad):
        CALLS["n"] += 1
        return grad


def _diamond(dtype=np.float64):
    r"""x -> a = sin x, b = x * x, c = a * b, d = k c, out = d + a: x is reached by four paths
    and a by two; k is a constant."""
    x = tensor(np.array([0.3, -1.2, 2.0], dtype=dtype), requires_grad=True)
    k = tensor(np.array([2.0, 3.0, 4.0], dtype=dtype))  # a constant: no gradient
    a = Sin.apply(x)
    b = Mul.apply(x, x)
    c = Mul.apply(a, b)
    d = Mul.apply(c, k)  # k needs no gradient: ops.Mul returns None for it
    out = Add.apply(d, a)
    return x, k, (a, b, c, d, out)


def _diamond_grad(x, k):
    # out = k sin(x) x^2 + sin(x):  d/dx = k (cos x x^2 + 2 x sin x) + cos x
    return k * (np.cos(x) * x * x + 2 * x * np.sin(x)) + np.cos(x)


def check_topological_order(order):
    r"""``order(t)`` lists the nodes ``t`` depends on that require a gradient, each once, each
    after its parents, ``t`` last; a chain of 5000 ops does not exhaust the recursion limit."""
    x, k, (a, b, c, d, out) = _diamond()
    nodes = list(order(out))
    ids = [id(n) for n in nodes]
    names = {id(x): "x", id(k): "the constant k", id(a): "a = sin x", id(b): "b = x * x",
             id(c): "c = a * b", id(d): "d = k c", id(out): "out = d + a"}
    label = lambda n: names.get(id(n), repr(n))  # noqa: E731
    if len(set(ids)) != len(ids):
        twice = sorted({label(n) for n in nodes if ids.count(id(n)) > 1})
        raise AssertionError(f"the order lists {', '.join(twice)} more than once: a node reached "
                             f"by several paths must appear once (keep a set of visited ids)")
    if id(k) in ids:
        raise AssertionError("the order contains the constant k (requires_grad=False): leave out "
                             "the parents that do not require a gradient")
    want = {id(v) for v in (x, a, b, c, d, out)}
    missing = [label(n) for n in (x, a, b, c, d, out) if id(n) not in ids]
    if missing:
        raise AssertionError(f"the order misses {', '.join(missing)}: it must hold every node "
                             f"that out depends on through _parents")
    if set(ids) != want:
        raise AssertionError("the order holds nodes that out does not depend on")
    if ids[-1] != id(out):
        raise AssertionError(f"the order ends with {label(nodes[-1])}; the output (self) must "
                             f"come last, after everything it depends on")
    pos = {i: n for n, i in enumerate(ids)}
    for node in nodes:
        for parent in node._parents:
            if parent is not None and id(parent) in pos and pos[id(parent)] > pos[id(node)]:
                raise AssertionError(f"{label(parent)} comes after its child {label(node)}: a "
                                     f"node must come after all of its parents (post-order: "
                                     f"append a node once its parents are done)")
    deep = _chain(5000)
    try:
        n = len(order(deep))
    except RecursionError:
        raise AssertionError("RecursionError on a chain of 5000 ops: a recursive search is "
                             "limited by Python's recursion depth (1000); use an explicit stack "
                             "of (node, parents_done) pairs") from None
    if n != 5001:
        raise AssertionError(f"the order of a chain of 5000 ops over one leaf has {n} nodes, "
                             f"expected 5001")


def _chain(n, dtype=np.float64):
    t = tensor(np.ones(2, dtype=dtype), requires_grad=True)
    for _ in range(n):
        t = Identity.apply(t)
    return t


def check_backward(backward):
    r"""``backward(t, grad)`` (``Tensor.backward``) on the diamond graph: the gradient of every
    leaf equals the closed form, each op's backward runs once per node (not once per path),
    leaves accumulate across calls and intermediate nodes keep no ``.grad``."""
    x, k, (a, b, c, d, out) = _diamond()
    seed = np.array([1.0, -0.5, 2.0])
    CALLS["n"] = 0
    backward(out, seed)
    want = seed * _diamond_grad(x.data, k.data)
    if x.grad is None:
        raise AssertionError("after backward, x.grad is None: a leaf (node._fn is None) that "
                             "requires a gradient must receive it in .grad")
    got = np.asarray(x.grad)
    if got.shape != x.shape or not np.allclose(got, want, rtol=1e-10, atol=1e-12):
        hint = ("the gradients of a node reached by several paths must be ADDED before it "
                "passes them on")
        if got.shape == x.shape and np.allclose(got, seed * k.data * np.cos(x.data) * x.data ** 2):
            hint = "only one path reached x: sum the contributions of every child"
        raise AssertionError(f"x.grad = {show(got)}, expected {show(want)}: {hint}")
    if k.grad is not None:
        raise AssertionError("the constant k (requires_grad=False) received a gradient")
    for name, node in (("a", a), ("b", b), ("c", c), ("d", d), ("out", out)):
        if node.grad is not None:
            raise AssertionError(f"the intermediate node {name} has a .grad: only leaves keep "
                                 f"their gradient (free the others as you go)")
    if CALLS["n"] != 5:
        raise AssertionError(f"the op backwards ran {CALLS['n']} times for a graph of 5 ops: "
                             f"visit the nodes in reverse topological order and call each "
                             f"node's backward ONCE, with the sum of what its children sent "
                             f"(not once per path: that is exponential in the depth)")
    backward(out, seed)
    if not np.allclose(x.grad, 2 * want, rtol=1e-10):
        raise AssertionError("a second backward must ADD to x.grad (leaves accumulate until "
                             "zero_grad), not overwrite it")


def check_broadcast_and_dtype(backward):
    r"""A leaf broadcast in the forward gets a gradient of its own shape (the engine sums it with
    ``unbroadcast``) and of its own dtype."""
    bias = tensor(np.array([1.0, 2.0, 3.0], dtype=np.float32), requires_grad=True)
    h = tensor(np.arange(12.0, dtype=np.float32).reshape(4, 3), requires_grad=True)
    out = Add.apply(h, bias)
    seed = np.ones((4, 3), dtype=np.float32)
    backward(out, seed)
    if bias.grad is None or np.shape(bias.grad) != (3,):
        raise AssertionError(f"bias of shape (3,) added to rows of shape (4, 3) got a gradient of "
                             f"shape {np.shape(bias.grad)}: sum it back to the input's shape "
                             f"with unbroadcast(grad, parent.shape)")
    if not np.allclose(bias.grad, 4.0):
        raise AssertionError(f"bias.grad = {show(bias.grad)}, expected [4, 4, 4] (one per row)")
    if np.asarray(bias.grad).dtype != np.float32 or np.asarray(h.grad).dtype != np.float32:
        raise AssertionError("float32 leaves received gradients of another dtype: cast each "
                             "gradient to its input's dtype")


def check_long_chain(backward, n=10000):
    r"""A chain of 10,000 ops: no RecursionError, the gradient arrives."""
    leaf = tensor(np.ones(2), requires_grad=True)
    t = leaf
    for _ in range(n):
        t = Identity.apply(t)
    try:
        backward(t, np.ones(2))
    except RecursionError:
        raise AssertionError(f"RecursionError on a chain of {n} ops: walk the graph with an "
                             f"explicit stack or list, not recursion") from None
    if leaf.grad is None or not np.allclose(leaf.grad, 1.0):
        raise AssertionError(f"after a chain of {n} identity ops the leaf's gradient is "
                             f"{leaf.grad}, expected [1, 1]")


# ----------------------------------------------------------------------------- random graphs
def build(program, leaves):
    r"""Evaluate a random expression DAG twice: with Tensors through the ops above, and with
    NumPy for finite differences.

    ``program`` is a list of ``(op, i, j)``: node ``len(leaves) + n`` is ``op`` applied to the
    earlier nodes ``i`` (and ``j``). The output is the sum of the last two nodes.
    """
    def run(values, apply):
        nodes = list(values)
        for op, i, j in program:
            nodes.append(apply(op, nodes[i], nodes[j]))
        return apply("add", nodes[-1], nodes[-2]) if len(nodes) > 1 else nodes[-1]

    def with_tensors(op, u, v):
        return {"add": Add.apply, "mul": Mul.apply}[op](u, v) if op in ("add", "mul") \
            else Sin.apply(u)

    def with_numpy(op, u, v):
        return {"add": u + v, "mul": u * v}[op] if op in ("add", "mul") else np.sin(u)

    tensors = [tensor(v, requires_grad=True) for v in leaves]
    out = run(tensors, with_tensors)

    def numeric(i):
        def f(v):
            vals = list(leaves)
            vals[i] = v
            return float(np.sum(run(vals, with_numpy)))
        return f

    return tensors, out, numeric


def check_random_graph(backward, program, leaves):
    r"""On a random DAG with shared nodes: every leaf's gradient of the summed output equals
    central differences."""
    tensors, out, numeric = build(program, leaves)
    if not getattr(out, "requires_grad", False):
        return
    backward(out, np.ones(out.shape))
    for i, t in enumerate(tensors):
        want = central_difference(numeric(i), leaves[i])
        got = np.zeros_like(want) if t.grad is None else np.asarray(t.grad)
        if not np.allclose(got, want, rtol=1e-5, atol=1e-6):
            raise AssertionError(f"on the graph {program} over {len(leaves)} leaves, leaf {i}'s "
                                 f"gradient is {show(got)}, central differences give "
                                 f"{show(want)}: every path must contribute, each node once "
                                 f"with its complete gradient")
