r"""Hot-path kernels of the IWAE objective, three times over.

* :mod:`scratchdgm.kernels.reference` -- plain NumPy: the specification.
* :mod:`scratchdgm.kernels.cpu` -- Numba ``@njit`` kernels (compiled on first call).
* :mod:`scratchdgm.kernels.cuda` -- numba.cuda kernels (numba.cuda imported on first use).

Every module exposes the same functions with the same signatures (see :data:`KERNEL_NAMES`):
``logsumexp`` / ``logsumexp_backward`` over the K importance samples, the Bernoulli
log-likelihood from logits (``bernoulli_log_prob``, ``bernoulli_log_prob_with_grad``), the
diagonal-Gaussian log-density
(``diag_gaussian_log_prob``, ``diag_gaussian_log_prob_backward``), reparametrised Gaussian
samples with their two log-densities (``diag_gaussian_reparam``), the affine layer with a
fused activation (``linear``, ``linear_backward``), the Adam step (``adam_update``) and standard
normal draws by the Box--Muller transform (``box_muller``). They take and return ndarrays and
know nothing of the autodiff (:mod:`scratchdgm.autodiff.fused` wraps them).

Importing this package imports neither numba nor numba.cuda: the compiled modules load when
first named (``scratchdgm.kernels.cpu``), and their kernels compile when first called -- once:
the compiled code is cached on disk for later processes (:mod:`scratchdgm.kernels._cache`).
Which module the autodiff uses is the backend (:func:`scratchdgm.set_backend`).
"""

from importlib import import_module

from . import reference

#: The functions every kernel module provides, with one signature across modules.
KERNEL_NAMES = tuple(reference.__all__[1:])

__all__ = ["reference", "cpu", "cuda", "KERNEL_NAMES"]


def __getattr__(name):
    # PEP 562: `scratchdgm.kernels.cpu` imports numba only when first asked for.
    if name in ("cpu", "cuda"):
        return import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
