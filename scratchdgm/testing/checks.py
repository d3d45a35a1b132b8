r"""Gradient checks of a function of tensors: at one point (:func:`check_gradients_at`) and on
inputs that Hypothesis generates, with the failing inputs shrunk to a minimal counterexample
(:func:`check_gradients`).

At a point :math:`x = (x_1, \dots, x_n)`, with a random projection :math:`u` of the output and
:math:`L = \langle u, f(x) \rangle`, one backward pass gives :math:`J_i^\top u` and the checks
are:

1. **dtype** -- run in the inputs' own dtype, :math:`f` keeps it (float32 in, float32 out);
2. **shapes** -- the backward pass hands each input a gradient of its own shape (a backward
   whose gradient cannot be summed down to its input's shape is reported with the inputs, not
   left as a NumPy traceback);
3. **entries** -- :math:`\partial L / \partial x_{ij}` against central differences, in float64
   (:func:`scratchdgm.gradcheck`); inputs bigger than ``max_elements`` along random directions;
4. **vector-Jacobian product** -- :math:`\langle J^\top u, v \rangle` against
   :math:`\langle u, J v \rangle` by a central difference along one random direction :math:`v`
   through all inputs at once (:func:`~scratchdgm.autodiff.gradcheck.check_vjp`): two
   evaluations whatever the size. When every entry was checked in step 3 it adds nothing
   (:math:`\langle J^\top u, v\rangle` is a sum of checked entries), so by default
   (``vjp='auto'``) it runs when some input was too big for step 3;
5. **broadcasting** (``broadcast=True``, for ops whose inputs broadcast against each other) --
   on the inputs explicitly copied to their common shape, :math:`f` gives the same values, and
   the gradient of each broadcast input is the *sum* of the gradients of its copies (counted
   here, not computed with :func:`~scratchdgm.autodiff.unbroadcast`). It needs no finite
   differences and runs before step 3, so that a backward that mishandles broadcasting is
   reported as such.

The autodiff has no second derivatives (a backward returns arrays, not a graph), so no check
here goes beyond the first.
"""

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scratchdgm.autodiff import Tensor, no_grad
from scratchdgm.autodiff.gradcheck import (
    GradcheckError,
    ProjectedLoss,
    check_tolerances,
    compare_with_central_differences,
    vjp_check_projected,
)
from scratchdgm.testing.assertions import tolerances
from scratchdgm.testing.strategies import Case

__all__ = ["GradientCheckFailure", "CHECKS", "check_gradients", "check_gradients_at",
           "check_broadcasting", "describe_inputs", "driver_settings"]

#: what each check compares, for the header of a failure
CHECKS = {
    "dtype": "the output keeps the inputs' dtype",
    "shape": "each input gets a gradient of its own shape",
    "gradcheck": "gradient entries against central differences",
    "vjp": "vector-Jacobian product against a directional central difference",
    "broadcast": "broadcast inputs get the summed gradient of their copies",
}


class GradientCheckFailure(GradcheckError):
    r"""A gradient check failed; the message holds the inputs and the mismatch.

    A :class:`~scratchdgm.GradcheckError` (so an ``AssertionError``), with, besides
    ``argument``, ``where``, ``analytic``, ``numeric``, ``tolerance`` (for ``check='broadcast'``,
    ``analytic`` is the input's gradient and ``numeric`` the sum of its copies' gradients):

    Attributes
    ----------
    check : str
        Which check failed, a key of :data:`CHECKS`: ``'dtype'``, ``'shape'``,
        ``'gradcheck'``, ``'vjp'`` or ``'broadcast'``.
    fn_name : str or None
        Which function, when several were checked on the same inputs.
    inputs : list of ndarray
        The inputs of the failing call (after :func:`check_gradients` shrank them: the minimal
        counterexample).
    params : dict
        The keyword arguments of that call.
    minimal : bool
        True when Hypothesis shrank the inputs (raised by :func:`check_gradients`).
    """

    def __init__(self, message, *, check, inputs, params, fn_name=None, minimal=False,
                 argument=None, where=None, analytic=None, numeric=None, tolerance=None):
        super().__init__(message, argument=argument, where=where, analytic=analytic,
                         numeric=numeric, tolerance=tolerance)
        self.check = check
        self.fn_name = fn_name
        self.inputs = inputs
        self.params = params
        self.minimal = minimal

    def _fields(self):
        return dict(check=self.check, inputs=self.inputs, params=self.params,
                    fn_name=self.fn_name, minimal=self.minimal, argument=self.argument,
                    where=self.where, analytic=self.analytic, numeric=self.numeric,
                    tolerance=self.tolerance)


def describe_inputs(inputs, params=None):
    r"""The inputs of a call as text a reader can paste back into Python: dtype, shape and
    every value at full precision (``array(...)`` reprs), then the keyword arguments."""
    lines = []
    with np.printoptions(precision=17, threshold=10_000, linewidth=100):
        for i, a in enumerate(inputs):
            a = np.asarray(a)
            text = repr(a).replace("\n", "\n" + " " * 6)
            lines.append(f"  argument {i}: {a.dtype}, shape {a.shape}\n      {text}")
        if params:
            lines.append("  params: " + ", ".join(f"{k}={v!r}" for k, v in params.items()))
    return "\n".join(lines)


def _fail(check, summary, inputs, params, cause=None, projection=None, **fields):
    message = f"{summary}\ninputs:\n{describe_inputs(inputs, params)}"
    if projection is not None:
        with np.printoptions(precision=10, threshold=64, linewidth=100):
            message += (f"\n(the gradients are those of L = sum(u * fn(inputs)), u a fixed "
                        f"random projection of the output: u = {np.asarray(projection)!r})")
    kw = dict(fields)
    if isinstance(cause, GradcheckError):
        kw = dict(argument=cause.argument, where=cause.where, analytic=cause.analytic,
                  numeric=cause.numeric, tolerance=cause.tolerance)
    return GradientCheckFailure(message, check=check, inputs=[np.array(a) for a in inputs],
                                params=dict(params), **kw)


def _as_arrays(inputs):
    if isinstance(inputs, (Tensor, np.ndarray)) or not hasattr(inputs, "__iter__"):
        raise TypeError("inputs must be a list of arrays or tensors, one per argument of fn")
    arrays = [np.asarray(x.data if isinstance(x, Tensor) else x) for x in inputs]
    if not arrays:
        raise ValueError("inputs is empty; expected one array per argument of fn")
    for i, a in enumerate(arrays):
        if a.dtype.kind != "f":
            raise TypeError(f"argument {i} has dtype {a.dtype}; gradient checks need float "
                            f"inputs (pass integer or boolean arrays through params)")
    return arrays


def _index_map(shape, full):
    """For each entry of an array of ``full`` shape, the flat index of the entry of an array
    of ``shape`` that broadcasting copied into it."""
    return np.broadcast_to(np.arange(int(np.prod(shape, dtype=np.int64))).reshape(shape),
                           full).ravel()


def _broadcast_check(call, arrays64, loss, inputs, params):
    try:
        full = np.broadcast_shapes(*(a.shape for a in arrays64))
    except ValueError:
        raise ValueError(f"broadcast=True needs inputs that broadcast against each other; got "
                         f"shapes {[a.shape for a in arrays64]}") from None
    expanded = [Tensor(np.broadcast_to(a, full).copy(), requires_grad=True) for a in arrays64]
    out = call(*expanded)
    if out.shape != loss.output.shape:
        raise _fail("broadcast", f"broadcast check failed: on the inputs copied to their common "
                    f"shape {full} fn returns shape {out.shape}, on the inputs as given "
                    f"{loss.output.shape}", inputs, params)
    rtol, atol = tolerances(np.float64)
    scale = max(1.0, float(np.max(np.abs(loss.output.data), initial=0.0)))
    if not np.allclose(out.data, loss.output.data, rtol=rtol, atol=atol * scale):
        raise _fail("broadcast", "broadcast check failed: fn gives other values on the inputs "
                    f"copied to their common shape {full}", inputs, params)
    if out.requires_grad:
        (out * loss.projection).sum().backward()
    for i, (a, t, g) in enumerate(zip(arrays64, expanded, loss.analytic)):
        g_full = np.zeros(full) if t.grad is None else t.grad
        summed = np.bincount(_index_map(a.shape, full), weights=g_full.ravel(),
                             minlength=a.size).reshape(a.shape)
        scale = max(1.0, float(np.max(np.abs(summed), initial=0.0)))
        bad = ~np.isclose(g, summed, rtol=rtol, atol=atol * scale)
        if np.any(bad):
            j = tuple(int(v) for v in np.argwhere(bad)[0])
            raise _fail("broadcast", f"broadcast check failed for argument {i} (shape "
                        f"{a.shape}, broadcast to {full}) at index {j}: its gradient is "
                        f"{g[j]:.10g}, but the gradients of its copies sum to {summed[j]:.10g}",
                        inputs, params, projection=loss.projection, argument=f"argument {i}",
                        where=f"index {j}", analytic=float(g[j]), numeric=float(summed[j]))


def _dtype_check(call, arrays, params):
    """The forward pass in the inputs' own dtypes keeps them (``np.result_type``)."""
    with no_grad():
        out = call(*[Tensor._wrap(a.copy()) for a in arrays])
    if not isinstance(out, Tensor):
        raise TypeError(f"fn must return a Tensor, got {type(out).__name__}")
    expected = np.result_type(*(a.dtype for a in arrays))
    if out.dtype != expected:
        raise _fail("dtype", f"dtype check failed: inputs of dtype "
                    f"{', '.join(str(a.dtype) for a in arrays)} gave an output of dtype "
                    f"{out.dtype}, expected {expected} (ops preserve dtype; pass "
                    f"check_dtype=False if fn changes it on purpose)", arrays, params)


def _differentiated(call, arrays, params, seed):
    """float64 copies of the inputs and the ProjectedLoss at them (shape errors reported)."""
    arrays64 = [np.array(a, dtype=np.float64) for a in arrays]
    rng = np.random.default_rng(seed)
    try:
        loss = ProjectedLoss(call, arrays64, rng, where="check_gradients_at")
    except RuntimeError as exc:  # unbroadcast: a backward returned a gradient of a wrong shape
        raise _fail("shape", f"shape check failed: {exc}", arrays, params) from exc
    return arrays64, loss, rng


def check_gradients_at(fn, inputs, params=None, *, eps=1e-6, rtol=1e-5, atol=1e-8,
                       vjp="auto", broadcast=False, check_dtype=True, max_elements=512,
                       n_directions=8, seed=0):
    r"""Every gradient check of this module at one point: dtype, shapes, entries against
    central differences, the vector-Jacobian product, and (optionally) broadcasting.

    Parameters
    ----------
    fn : callable
        ``fn(*tensors, **params) -> Tensor``: one Tensor per entry of ``inputs``.
    inputs : sequence of ndarray or Tensor
        Float arrays in the dtype the op is to be run in: float32 inputs are checked for dtype
        preservation in float32, and differentiated in float64.
    params : dict, optional
        Keyword arguments of ``fn`` that are not differentiated (an ``axis``, a constant).
    eps, rtol, atol : float
        Finite-difference step and tolerances, as in :func:`scratchdgm.gradcheck`.
    vjp : {'auto', True, False}
        Check :math:`\langle J^\top u, v\rangle = \langle u, J v \rangle` along a random
        direction through all inputs (two evaluations): always (True), never, or when some
        input has more than ``max_elements`` entries ('auto'; otherwise the entry-by-entry
        check already implies it).
    broadcast : bool, default False
        Also check that broadcast inputs get the summed gradient of their copies (for ops
        whose inputs broadcast against each other).
    check_dtype : bool, default True
        Check that the output has the inputs' dtype (``np.result_type`` of them).
    max_elements, n_directions : int
        Inputs with more entries than ``max_elements`` are checked along ``n_directions``
        random directions instead of entry by entry.
    seed : int
        Seed of the projections and directions (the check is deterministic).

    Returns
    -------
    bool
        True when every check passes.

    Raises
    ------
    GradientCheckFailure
        Naming the check, the argument, the index, both values, and printing the inputs.

    Examples
    --------
    >>> import numpy as np
    >>> from scratchdgm.testing import check_gradients_at
    >>> check_gradients_at(lambda a, b: a * b.exp(), [np.ones((2, 3)), np.zeros(3)],
    ...                    broadcast=True)
    True
    """
    if not callable(fn):
        raise TypeError(f"fn must be callable, got {type(fn).__name__}")
    if vjp not in ("auto", True, False):
        raise ValueError(f"vjp must be 'auto', True or False, got {vjp!r}")
    arrays = _as_arrays(inputs)
    check_tolerances(eps, rtol, atol, "check_gradients_at")
    params = dict(params or {})

    def call(*tensors):
        return fn(*tensors, **params)

    if check_dtype and any(a.dtype != np.float64 for a in arrays):
        _dtype_check(call, arrays, params)
    arrays64, loss, rng = _differentiated(call, arrays, params, seed)
    if check_dtype and loss.output.dtype != np.float64:
        raise _fail("dtype", f"dtype check failed: float64 inputs gave an output of dtype "
                    f"{loss.output.dtype} (ops preserve dtype; pass check_dtype=False if fn "
                    f"changes it on purpose)", arrays, params)
    if broadcast:  # first: cheap, and it says *why* a gradient is wrong when it is broadcasting
        _broadcast_check(call, arrays64, loss, arrays, params)
    try:
        compare_with_central_differences(loss.value, arrays64, loss.analytic, eps=eps,
                                         rtol=rtol, atol=atol, max_elements=max_elements,
                                         n_directions=n_directions, rng=rng)
    except GradcheckError as exc:
        raise _fail("gradcheck", str(exc), arrays, params, exc, loss.projection) from None
    if vjp is True or (vjp == "auto" and any(a.size > max_elements for a in arrays64)):
        try:
            vjp_check_projected(loss, eps, rtol, atol, 1, rng)
        except GradcheckError as exc:
            raise _fail("vjp", str(exc), arrays, params, exc, loss.projection) from None
    return True


def check_broadcasting(fn, inputs, params=None, *, check_dtype=True, seed=0):
    r"""Check that ``fn`` handles broadcast inputs, without finite differences.

    Runs ``fn`` on ``inputs`` as given and on copies of them expanded to their common broadcast
    shape, with the same random projection :math:`u` of the output; checks that the outputs
    agree and that the gradient of each input equals the sum of the gradients of its copies,

    .. math::

        \frac{\partial L}{\partial a_j} = \sum_{i \,:\, \text{copy } i \text{ of } a_j}
        \frac{\partial L}{\partial \tilde a_i},

    the adjoint of broadcasting, computed here by counting (not by
    :func:`~scratchdgm.autodiff.unbroadcast`). Also checks dtypes and shapes as
    :func:`check_gradients_at` does.

    Returns
    -------
    bool

    Raises
    ------
    GradientCheckFailure
        ``check='broadcast'`` (or ``'shape'``, ``'dtype'``), naming the argument and index.

    Examples
    --------
    >>> import numpy as np
    >>> from scratchdgm.testing import check_broadcasting
    >>> check_broadcasting(lambda a, b: a * b, [np.ones((3, 1)), np.arange(4.0)])
    True
    """
    if not callable(fn):
        raise TypeError(f"fn must be callable, got {type(fn).__name__}")
    arrays = _as_arrays(inputs)
    params = dict(params or {})

    def call(*tensors):
        return fn(*tensors, **params)

    if check_dtype and any(a.dtype != np.float64 for a in arrays):
        _dtype_check(call, arrays, params)
    arrays64, loss, _ = _differentiated(call, arrays, params, seed)
    _broadcast_check(call, arrays64, loss, arrays, params)
    return True


def driver_settings(max_examples=None):
    r"""The Hypothesis settings of :func:`check_gradients`: those in force (the loaded profile:
    ``max_examples``, ``derandomize``, ...), with no deadline (a first call may compile a
    kernel), no example database (the minimal example is in the failure message, and one
    database key would be shared by every call), one bug reported per run, and the
    ``too_slow`` health check off (a gradient check differentiates every entry)."""
    parent = settings.default
    kw = dict(deadline=None, database=None, report_multiple_bugs=False,
              suppress_health_check=sorted(set(parent.suppress_health_check)
                                           | {HealthCheck.too_slow},
                                           key=lambda h: h.value))
    if max_examples is not None:
        kw["max_examples"] = int(max_examples)
    return settings(parent, **kw)


def _arrays_of(drawn):
    return tuple(drawn.inputs) if isinstance(drawn, Case) else tuple(drawn)


def _params_strategy(params, arrays):
    if callable(params) and not isinstance(params, st.SearchStrategy):
        params = params(*arrays)
    if isinstance(params, dict):
        return st.fixed_dictionaries(params)
    if isinstance(params, st.SearchStrategy):
        return params
    raise TypeError(f"params must be a dict of strategies, a strategy of dicts, or a callable "
                    f"of the drawn arrays returning one; got {type(params).__name__}")


_CHECK_OPTIONS = {"eps", "rtol", "atol", "vjp", "broadcast", "check_dtype", "max_elements",
                  "n_directions", "seed"}


def check_gradients(fn, *strategies, inputs=None, params=None, max_examples=None, **checks):
    r"""Property-based gradient check: :func:`check_gradients_at` on inputs that Hypothesis
    generates; on failure, the inputs are shrunk to a minimal counterexample, which the error
    prints with the argument, the index, the analytic and the numeric value.

    Parameters
    ----------
    fn : callable, or dict of str -> callable
        ``fn(*tensors, **params) -> Tensor``. A dict checks several functions of the same
        arguments on each generated example (an op and its variants: one search, and a
        failure names the function).
    *strategies : SearchStrategy
        One per argument of ``fn``, each drawing an array (:mod:`scratchdgm.testing.strategies`).
    inputs : SearchStrategy, optional
        Instead of ``strategies``: one strategy drawing the whole tuple of arrays, for
        arguments whose shapes depend on each other (e.g.
        :func:`~scratchdgm.testing.strategies.broadcastable_arrays`); or drawing a
        :class:`~scratchdgm.testing.strategies.Case`, the arrays together with keyword
        arguments of ``fn`` that must fit them.
    params : dict, SearchStrategy or callable, optional
        Non-differentiated keyword arguments of ``fn``: a dict of strategies, a strategy of
        dicts, or ``params(*arrays)`` returning either (for an ``axis`` that depends on the
        drawn array's ``ndim``).
    max_examples : int, optional
        Examples to try (default: the Hypothesis profile in force).
    **checks
        Passed to :func:`check_gradients_at`: ``eps``, ``rtol``, ``atol``, ``vjp``,
        ``broadcast``, ``check_dtype``, ``max_elements``, ``n_directions``, ``seed``.

    Returns
    -------
    None
        Returns when every generated example passes.

    Raises
    ------
    GradientCheckFailure
        With ``minimal=True`` and the shrunk ``inputs`` and ``params``.

    Notes
    -----
    Runs its own Hypothesis search (:func:`driver_settings`): call it from a plain test, not
    from inside an ``@given`` test (there, call :func:`check_gradients_at`). Inside ``fn`` or a
    ``params`` callable, ``hypothesis.assume`` discards an example.

    Examples
    --------
    >>> from scratchdgm.testing import check_gradients, strategies as S
    >>> check_gradients(lambda t: t.log(), S.positive_arrays(S.shapes()), max_examples=5)
    >>> check_gradients(lambda a, b: a * b, inputs=S.broadcastable_arrays(), broadcast=True,
    ...                 max_examples=5)
    >>> check_gradients({"sum": lambda t: t.sum(), "mean": lambda t: t.mean()},
    ...                 S.arrays(S.shapes()), max_examples=5)
    """
    fns = dict(fn) if isinstance(fn, dict) else {None: fn}
    for name, f in fns.items():
        if not callable(f):
            raise TypeError(f"fn{'' if name is None else f'[{name!r}]'} must be callable, got "
                            f"{type(f).__name__}")
    if (inputs is None) == (not strategies):
        raise TypeError("check_gradients: give one strategy per argument of fn, or inputs= (a "
                        "strategy of the tuple of arguments), not both")
    for s in strategies + ((inputs,) if inputs is not None else ()):
        if not isinstance(s, st.SearchStrategy):
            raise TypeError(f"check_gradients: expected Hypothesis strategies, got "
                            f"{type(s).__name__} (for fixed inputs, use check_gradients_at)")
    unknown = set(checks) - _CHECK_OPTIONS
    if unknown:
        raise TypeError(f"check_gradients: unknown arguments {sorted(unknown)}; expected "
                        f"{sorted(_CHECK_OPTIONS)}")

    drawn = inputs if inputs is not None else st.tuples(*strategies)
    if params is None:
        drawn = drawn.map(lambda d: (d, {}))
    else:
        # a flatmap only when the keyword arguments depend on the arrays
        drawn = drawn.flatmap(lambda d: _params_strategy(params, _arrays_of(d)).map(
            lambda kw: (d, kw)))
    tried = [0]

    @driver_settings(max_examples)
    @given(drawn)
    def run(case):
        tried[0] += 1
        d, extra = case
        kwargs = dict(d.params) if isinstance(d, Case) else {}
        kwargs.update(extra)
        for name, f in fns.items():
            try:
                check_gradients_at(f, list(_arrays_of(d)), kwargs, **checks)
            except GradientCheckFailure as exc:
                exc.fn_name = name
                raise

    try:
        run()
    except GradientCheckFailure as exc:
        which = "" if exc.fn_name is None else f" of fn {exc.fn_name!r}"
        header = (f"gradient check{which} failed ({CHECKS[exc.check]}); Hypothesis ran "
                  f"{tried[0]} examples and shrank the failing inputs to this minimal "
                  f"counterexample:")
        raise GradientCheckFailure(f"{header}\n{exc}", **dict(exc._fields(), minimal=True)) \
            from None
