r"""Check a backward pass against finite differences.

For a function :math:`f` of tensors :math:`x_1, \dots, x_n` with output :math:`y`, draw a fixed
random projection :math:`u` of :math:`y`'s shape and check the gradient of the scalar
:math:`L = \langle u, f(x) \rangle` (this covers every output entry at once): one backward pass
gives the vector-Jacobian products :math:`J_i^\top u = \partial L / \partial x_i`. For each input
entry :math:`x_{ij}` the central difference

.. math::

    \frac{\partial L}{\partial x_{ij}} \approx
    \frac{L(x + \epsilon e_{ij}) - L(x - \epsilon e_{ij})}{2\epsilon}

has error :math:`O(\epsilon^2)` (plus rounding of order :math:`10^{-16} |L| / \epsilon`), which
is why the check runs in float64 with :math:`\epsilon = 10^{-6}`. Inputs with more than
``max_elements`` entries are checked along ``n_directions`` random unit directions :math:`v`
instead: :math:`\langle \nabla_x L, v\rangle` against the difference quotient along :math:`v`.

:func:`check_vjp` is that directional check with one direction :math:`v` through *all* inputs at
once, :math:`\langle J^\top u, v \rangle = \langle u, J v \rangle`: the backward pass (left)
against a numerical forward-mode derivative along the same direction (right), two evaluations
of :math:`f` whatever the size of the inputs (the "random projection" check of HIPS autograd's
``check_vjp``, Maclaurin, Duvenaud & Adams 2015).

This module is the one place where the library computes central differences:
:func:`compare_with_central_differences` and :func:`directional_difference` take any scalar
function of arrays changed in place, so that :func:`gradcheck`, :func:`check_vjp` and the
checks of :mod:`scratchdgm.testing` (a model's objective against its parameters) share them.
"""

import numpy as np

from scratchdgm.autodiff import grad_mode
from scratchdgm.autodiff.tensor import Tensor

__all__ = ["GradcheckError", "gradcheck", "check_vjp", "ProjectedLoss", "vjp_check_projected",
           "compare_with_central_differences", "directional_difference"]


class GradcheckError(AssertionError):
    r"""Raised when an analytic gradient disagrees with finite differences.

    Attributes
    ----------
    argument : int, str or None
        Which input: its position in ``inputs`` (:func:`gradcheck`), or a name (a model's
        parameter, ``'all arguments'`` for the joint check of :func:`check_vjp`).
    where : tuple or str or None
        The index of the entry, e.g. ``(0, 2)``, or ``'random direction 3'``.
    analytic, numeric : float or None
        The two values compared: the backward pass's and the central difference's.
    tolerance : float or None
        ``atol + rtol * |numeric|``, which ``|analytic - numeric|`` exceeded.
    """

    def __init__(self, message, *, argument=None, where=None, analytic=None, numeric=None,
                 tolerance=None):
        super().__init__(message)
        self.argument = argument
        self.where = where
        self.analytic = analytic
        self.numeric = numeric
        self.tolerance = tolerance


def check_tolerances(eps, rtol, atol, where):
    """Raise ValueError unless ``eps > 0``, ``rtol >= 0`` and ``atol >= 0``."""
    if not (eps > 0 and rtol >= 0 and atol >= 0):
        raise ValueError(f"{where}: need eps > 0, rtol >= 0, atol >= 0; got {eps}, {rtol}, {atol}")


def _float64_arrays(inputs, where):
    if isinstance(inputs, (Tensor, np.ndarray)) or not hasattr(inputs, "__iter__"):
        raise TypeError(f"{where}: inputs must be a list of arrays or tensors, one per argument "
                        f"of fn")
    arrays = [np.array(x.data if isinstance(x, Tensor) else x, dtype=np.float64) for x in inputs]
    if not arrays:
        raise ValueError(f"{where}: inputs is empty; expected one array per argument of fn")
    return arrays


class ProjectedLoss:
    r"""The scalar :math:`L(x) = \langle u, f(x) \rangle` that the checks differentiate.

    Parameters
    ----------
    fn : callable
        Takes one :class:`Tensor` per array and returns a :class:`Tensor`.
    arrays : list of ndarray
        The point :math:`x`, float64. The checks move its entries *in place* and put them back.
    rng : numpy.random.Generator
        Draws the projection :math:`u \sim \mathcal N(0, I)` of the output's shape.
    where : str
        Name of the caller, for error messages.

    Attributes
    ----------
    output : Tensor
        :math:`f(x)` from the graph-building pass.
    projection : ndarray
        :math:`u`.
    analytic : list of ndarray
        :math:`J_i^\top u`, one per array, from one backward pass (zeros where no gradient
        reaches an input).
    leaves : list of Tensor
        The leaves of that pass (their ``.grad`` is ``analytic``).
    """

    def __init__(self, fn, arrays, rng, where="gradcheck"):
        if not callable(fn):
            raise TypeError(f"{where}: fn must be callable, got {type(fn).__name__}")
        self.fn = fn
        self.arrays = arrays
        self.leaves = [Tensor(a.copy(), requires_grad=True) for a in arrays]
        out = fn(*self.leaves)
        if not isinstance(out, Tensor):
            raise TypeError(f"{where}: fn must return a Tensor, got {type(out).__name__}")
        self.output = out
        self.projection = rng.standard_normal(out.shape)
        if out.requires_grad:
            (out * self.projection).sum().backward()
        self.analytic = [np.zeros_like(a) if t.grad is None else np.asarray(t.grad, np.float64)
                         for a, t in zip(arrays, self.leaves)]

    def value(self):
        r""":math:`L` at the current values of ``arrays`` (no graph is built)."""
        with grad_mode.no_grad():
            out = self.fn(*[Tensor._wrap(a.copy()) for a in self.arrays])
        return float(np.sum(out.data * self.projection))


def _mismatch(name, where, analytic, numeric, eps, rtol, atol, what="gradcheck"):
    tolerance = atol + rtol * abs(numeric)
    return GradcheckError(
        f"{what} failed for {name} at {where}: analytic gradient {analytic:.10g}, "
        f"numeric (central difference, eps={eps:g}) {numeric:.10g}, difference "
        f"{abs(analytic - numeric):.3g} > atol + rtol*|numeric| = {tolerance:.3g}",
        argument=name, where=where, analytic=float(analytic), numeric=float(numeric),
        tolerance=float(tolerance))


def directional_difference(value, arrays, directions, eps):
    r"""Central difference of a scalar function along a direction through several arrays.

    .. math::

        \frac{L(x + \epsilon v) - L(x - \epsilon v)}{2 \epsilon}

    Parameters
    ----------
    value : callable
        ``value() -> float``, :math:`L` at the arrays' current values.
    arrays : list of ndarray
        Moved in place by :math:`\pm\epsilon v` and restored exactly.
    directions : list of ndarray
        :math:`v`, one per array, same shapes.
    eps : float

    Returns
    -------
    float
    """
    saved = [x.copy() for x in arrays]
    try:
        for x, s, v in zip(arrays, saved, directions):
            x[...] = s + eps * v
        up = value()
        for x, s, v in zip(arrays, saved, directions):
            x[...] = s - eps * v
        down = value()
    finally:
        for x, s in zip(arrays, saved):
            x[...] = s
    return (up - down) / (2 * eps)


def compare_with_central_differences(value, arrays, analytic, *, names=None, eps=1e-6,
                                     rtol=1e-5, atol=1e-8, max_elements=512, n_directions=8,
                                     rng=None):
    r"""Compare gradients of a scalar function with central differences, entry by entry (or
    along random directions for big arrays), raising at the first mismatch.

    Parameters
    ----------
    value : callable
        ``value() -> float``: :math:`L` at the current values of ``arrays``.
    arrays : list of ndarray
        The point; each entry is moved in place by :math:`\pm\epsilon` and restored.
    analytic : list of ndarray
        :math:`\partial L / \partial x_i` from the backward pass, shapes of ``arrays``.
    names : list of str, optional
        How to name each array in an error (default ``'argument i'``).
    eps, rtol, atol : float
        Step and tolerances: an entry passes where
        :math:`|g_{\text{analytic}} - g_{\text{numeric}}| \le \text{atol} + \text{rtol}\,|g_{\text{numeric}}|`.
    max_elements : int
        Arrays with more entries are checked along ``n_directions`` random unit directions.
    n_directions : int
    rng : numpy.random.Generator
        Draws the directions.

    Returns
    -------
    list of dict
        Per array: ``name``, ``checks`` (entries or directions compared), ``projected``
        (whether directions were used), ``max_error`` (largest :math:`|g_a - g_n|`) and
        ``max_ratio`` (largest error over its tolerance, < 1 when passing).

    Raises
    ------
    GradcheckError
        At the first mismatch, naming the array, the index or direction, and both values.
    """
    rng = np.random.default_rng(0) if rng is None else rng
    names = [f"argument {i}" for i in range(len(arrays))] if names is None else names
    stats = []
    for name, x, g in zip(names, arrays, analytic):
        worst, ratio, checks = 0.0, 0.0, 0
        if x.size <= max_elements:
            for j in np.ndindex(x.shape):
                saved = x[j]
                x[j] = saved + eps
                up = value()
                x[j] = saved - eps
                down = value()
                x[j] = saved
                numeric = (up - down) / (2 * eps)
                a = float(g[j])
                err = abs(a - numeric)
                if not err <= atol + rtol * abs(numeric):
                    raise _mismatch(name, f"index {j}", a, numeric, eps, rtol, atol)
                worst, ratio = max(worst, err), max(ratio, err / (atol + rtol * abs(numeric)))
                checks += 1
        else:
            for d in range(n_directions):
                v = rng.standard_normal(x.shape)
                v /= np.linalg.norm(v)
                numeric = directional_difference(value, [x], [v], eps)
                a = float(np.sum(g * v))
                err = abs(a - numeric)
                if not err <= atol + rtol * abs(numeric):
                    raise _mismatch(name, f"random direction {d}", a, numeric, eps, rtol, atol)
                worst, ratio = max(worst, err), max(ratio, err / (atol + rtol * abs(numeric)))
                checks += 1
        stats.append({"name": name, "checks": checks, "projected": x.size > max_elements,
                      "max_error": worst, "max_ratio": ratio})
    return stats


def gradcheck(fn, inputs, eps=1e-6, rtol=1e-5, atol=1e-8, *, max_elements=512, n_directions=8,
              seed=0):
    r"""Compare the autodiff gradient of ``fn`` with central finite differences, in float64.

    Parameters
    ----------
    fn : callable
        Takes one :class:`Tensor` per entry of ``inputs`` and returns a :class:`Tensor`.
    inputs : sequence of array_like or Tensor
        Points at which to check; converted to float64 copies (the originals are not modified).
    eps : float, default 1e-6
        Finite-difference step.
    rtol, atol : float
        Tolerances: the check passes where
        :math:`|g_{\text{analytic}} - g_{\text{numeric}}| \le \text{atol} + \text{rtol}\,|g_{\text{numeric}}|`.
    max_elements : int, default 512
        Inputs with at most this many entries are checked entry by entry; larger ones along
        ``n_directions`` random directions.
    n_directions : int, default 8
    seed : int, default 0
        Seed of the random output projection and directions (the check is deterministic).

    Returns
    -------
    bool
        True when every check passes.

    Raises
    ------
    GradcheckError
        Naming the argument, the index, the analytic and the numeric value of the first mismatch
        (also as its attributes ``argument``, ``where``, ``analytic``, ``numeric``).
    TypeError, ValueError
        For a non-callable ``fn``, an empty ``inputs``, or ``fn`` not returning a Tensor.

    See Also
    --------
    scratchdgm.testing.check_gradients : the same check on inputs that Hypothesis generates.

    Examples
    --------
    >>> import numpy as np, scratchdgm as sd
    >>> sd.gradcheck(lambda x: (x * x).tanh(), [np.array([0.5, -1.0])])
    True
    """
    if not callable(fn):
        raise TypeError(f"gradcheck: fn must be callable, got {type(fn).__name__}")
    arrays = _float64_arrays(inputs, "gradcheck")
    check_tolerances(eps, rtol, atol, "gradcheck")
    rng = np.random.default_rng(seed)
    loss = ProjectedLoss(fn, arrays, rng)
    compare_with_central_differences(loss.value, arrays, loss.analytic, eps=eps, rtol=rtol,
                                     atol=atol, max_elements=max_elements,
                                     n_directions=n_directions, rng=rng)
    return True


def vjp_check_projected(loss, eps, rtol, atol, n_directions, rng):
    r"""The check behind :func:`check_vjp`, on an already differentiated :class:`ProjectedLoss`.

    For each of ``n_directions`` random unit directions :math:`v` through all arrays jointly,
    compares :math:`\sum_i \langle J_i^\top u, v_i \rangle` with the central difference of
    :math:`L` along :math:`v`. On a mismatch, the arguments are tried one at a time along their
    part of :math:`v`, to name the one that is wrong.
    """
    arrays = loss.arrays
    for d in range(n_directions):
        v = [rng.standard_normal(x.shape) for x in arrays]
        norm = np.sqrt(sum(float(np.sum(vi * vi)) for vi in v))
        if norm == 0.0:  # every input is empty
            return True
        v = [vi / norm for vi in v]
        numeric = directional_difference(loss.value, arrays, v, eps)
        analytic = sum(float(np.sum(g * vi)) for g, vi in zip(loss.analytic, v))
        if abs(analytic - numeric) <= atol + rtol * abs(numeric):
            continue
        for i, (x, vi) in enumerate(zip(arrays, v)):
            if not np.any(vi):
                continue
            n_i = directional_difference(loss.value, [x], [vi], eps)
            a_i = float(np.sum(loss.analytic[i] * vi))
            if not abs(a_i - n_i) <= atol + rtol * abs(n_i):
                raise _mismatch(f"argument {i}", f"random direction {d}", a_i, n_i, eps, rtol,
                                atol, what="vjp check")
        raise _mismatch("all arguments jointly", f"random direction {d}", analytic, numeric,
                        eps, rtol, atol, what="vjp check")
    return True


def check_vjp(fn, inputs, eps=1e-6, rtol=1e-5, atol=1e-8, *, n_directions=1, seed=0):
    r"""Check the vector-Jacobian product of ``fn`` by random projection, in float64.

    With a random output projection :math:`u` and a random unit direction :math:`v` through all
    inputs at once,

    .. math::

        \langle J^\top u, v \rangle \;\text{(one backward pass)} \quad\text{vs}\quad
        \Big\langle u, \frac{f(x + \epsilon v) - f(x - \epsilon v)}{2 \epsilon} \Big\rangle
        \;\text{(a numerical forward-mode derivative)}.

    Two evaluations of ``fn`` per direction, whatever the size of the inputs: a cheap check of
    a whole backward pass (of a big layer, a long composition), where :func:`gradcheck` pays two
    evaluations per entry.

    Parameters
    ----------
    fn : callable
        Takes one :class:`Tensor` per entry of ``inputs`` and returns a :class:`Tensor`.
    inputs : sequence of array_like or Tensor
        Converted to float64 copies.
    eps, rtol, atol : float
        As in :func:`gradcheck`, applied to the scalars above.
    n_directions : int, default 1
    seed : int, default 0

    Returns
    -------
    bool
        True when every direction agrees.

    Raises
    ------
    GradcheckError
        Naming the argument whose part of the direction disagrees (or ``'all arguments
        jointly'``), the direction and both values.

    References
    ----------
    Maclaurin, Duvenaud & Adams (2015), *Autograd: effortless gradients in NumPy*, ICML AutoML
    workshop (``autograd.test_util.check_vjp``).

    Examples
    --------
    >>> import numpy as np, scratchdgm as sd
    >>> from scratchdgm.autodiff.gradcheck import check_vjp
    >>> check_vjp(lambda a, b: (a @ b).tanh(), [np.ones((2, 3)), np.ones((3, 4)) / 3])
    True
    """
    arrays = _float64_arrays(inputs, "check_vjp")
    check_tolerances(eps, rtol, atol, "check_vjp")
    rng = np.random.default_rng(seed)
    loss = ProjectedLoss(fn, arrays, rng, where="check_vjp")
    return vjp_check_projected(loss, eps, rtol, atol, n_directions, rng)
