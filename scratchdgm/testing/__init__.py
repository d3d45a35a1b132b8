r"""Property-based gradient checks for users' own ops, layers and models.

The tools the library's own gradient tests are written with, installed with it:

* :mod:`scratchdgm.testing.strategies` -- Hypothesis strategies for what a gradient check
  needs: shapes, broadcast-compatible shapes, float32/float64 arrays with the op's domain
  restricted in the data (positive, away from kinks, distinct for ``max``, bounded for stable
  differences, probability vectors, positive-definite matrices, Cholesky factors);
* :func:`check_gradients` -- the property-based driver: every check of
  :func:`check_gradients_at` (dtype and shapes, entries against central differences, the
  vector-Jacobian product by random projection, broadcasting) on generated inputs, with a
  failure shrunk to a minimal counterexample that names the argument, the index, the analytic
  and the numeric value;
* :func:`check_vjp` and :func:`check_broadcasting` -- the last two checks on their own;
* :func:`check_model_gradients` -- a model's objective against every parameter, with its
  randomness held fixed (common random numbers), in one line;
* :func:`assert_allclose` -- arrays or tensors equal up to rounding in their dtype.

``docs/testing.md`` walks through writing an op and checking it with these tools. Hypothesis
is needed here only: ``pip install "scratchdgm[test]"``.

Examples
--------
>>> from scratchdgm.testing import check_gradients, strategies as S
>>> check_gradients(lambda a, b: (a * b).tanh(), inputs=S.broadcastable_arrays(),
...                 broadcast=True)
"""

try:
    import hypothesis  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised in a subprocess by the tests
    raise ImportError(
        "scratchdgm.testing needs Hypothesis, which the core library does not install; "
        'install the test extra: pip install "scratchdgm[test]"') from exc

from scratchdgm.autodiff.gradcheck import GradcheckError, check_vjp, gradcheck
from scratchdgm.testing import strategies
from scratchdgm.testing.assertions import TOLERANCES, assert_allclose, tolerances
from scratchdgm.testing.checks import (
    GradientCheckFailure,
    check_broadcasting,
    check_gradients,
    check_gradients_at,
)
from scratchdgm.testing.models import ModelGradientReport, check_model_gradients

__all__ = [
    "strategies", "check_gradients", "check_gradients_at", "check_vjp", "check_broadcasting",
    "check_model_gradients", "ModelGradientReport", "assert_allclose", "tolerances",
    "TOLERANCES", "gradcheck", "GradcheckError", "GradientCheckFailure",
]
