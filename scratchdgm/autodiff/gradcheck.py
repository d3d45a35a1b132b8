r"""Check a backward pass against finite differences.

For a function :math:`f` of tensors :math:`x_1, \dots, x_n` with output :math:`y`, draw a fixed
random projection :math:`v` of :math:`y`'s shape and check the gradient of the scalar
:math:`L = \langle v, f(x) \rangle` (this covers every output entry at once). For each input entry
:math:`x_{ij}` the central difference

.. math::

    \frac{\partial L}{\partial x_{ij}} \approx
    \frac{L(x + \epsilon e_{ij}) - L(x - \epsilon e_{ij})}{2\epsilon}

has error :math:`O(\epsilon^2)` (plus rounding of order :math:`10^{-16} |L| / \epsilon`), which
is why the check runs in float64 with :math:`\epsilon = 10^{-6}`. Inputs with more than
``max_elements`` entries are checked along ``n_directions`` random unit directions :math:`u`
instead: :math:`\langle \nabla_x L, u\rangle` against the difference quotient along :math:`u`
(the "random projection" check of HIPS autograd's ``check_grads``).
"""

import numpy as np

from scratchdgm.autodiff import grad_mode
from scratchdgm.autodiff.tensor import Tensor


class GradcheckError(AssertionError):
    """Raised by :func:`gradcheck` when an analytic gradient disagrees with finite differences."""


def _evaluate(fn, arrays, projection):
    with grad_mode.no_grad():
        out = fn(*[Tensor._wrap(a.copy()) for a in arrays])
    return float(np.sum(out.data * projection))


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
        Naming the argument, the index, the analytic and the numeric value of the first mismatch.
    TypeError, ValueError
        For a non-callable ``fn``, an empty ``inputs``, or ``fn`` not returning a Tensor.

    Examples
    --------
    >>> import numpy as np, scratchdgm as sd
    >>> sd.gradcheck(lambda x: (x * x).tanh(), [np.array([0.5, -1.0])])
    True
    """
    if not callable(fn):
        raise TypeError(f"gradcheck: fn must be callable, got {type(fn).__name__}")
    if isinstance(inputs, (Tensor, np.ndarray)) or not hasattr(inputs, "__iter__"):
        raise TypeError("gradcheck: inputs must be a list of arrays or tensors, one per argument of fn")
    arrays = [np.array(x.data if isinstance(x, Tensor) else x, dtype=np.float64) for x in inputs]
    if not arrays:
        raise ValueError("gradcheck: inputs is empty; expected one array per argument of fn")
    if not (eps > 0 and rtol >= 0 and atol >= 0):
        raise ValueError(f"gradcheck: need eps > 0, rtol >= 0, atol >= 0; got {eps}, {rtol}, {atol}")
    rng = np.random.default_rng(seed)

    leaves = [Tensor(a, requires_grad=True) for a in arrays]
    out = fn(*leaves)
    if not isinstance(out, Tensor):
        raise TypeError(f"gradcheck: fn must return a Tensor, got {type(out).__name__}")
    projection = rng.standard_normal(out.shape)
    if out.requires_grad:
        (out * projection).sum().backward()
    analytic = [np.zeros_like(a) if t.grad is None else t.grad for a, t in zip(arrays, leaves)]

    def fail(arg, where, a, n):
        raise GradcheckError(
            f"gradcheck failed for argument {arg} at {where}: analytic gradient {a:.10g}, "
            f"numeric (central difference, eps={eps:g}) {n:.10g}, difference {abs(a - n):.3g} "
            f"> atol + rtol*|numeric| = {atol + rtol * abs(n):.3g}"
        )

    for i, x in enumerate(arrays):
        if x.size <= max_elements:
            for j in np.ndindex(x.shape):
                saved = x[j]
                x[j] = saved + eps
                up = _evaluate(fn, arrays, projection)
                x[j] = saved - eps
                down = _evaluate(fn, arrays, projection)
                x[j] = saved
                numeric = (up - down) / (2 * eps)
                a = analytic[i][j]
                if not abs(a - numeric) <= atol + rtol * abs(numeric):
                    fail(i, f"index {j}", a, numeric)
        else:
            for d in range(n_directions):
                u = rng.standard_normal(x.shape)
                u /= np.linalg.norm(u)
                arrays[i] = x + eps * u
                up = _evaluate(fn, arrays, projection)
                arrays[i] = x - eps * u
                down = _evaluate(fn, arrays, projection)
                arrays[i] = x
                numeric = (up - down) / (2 * eps)
                a = float(np.sum(analytic[i] * u))
                if not abs(a - numeric) <= atol + rtol * abs(numeric):
                    fail(i, f"random direction {d}", a, numeric)
    return True
