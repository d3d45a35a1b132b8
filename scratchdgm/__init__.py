r"""scratchdgm: latent-variable and deep generative models from scratch.

From shallow to deep, in the order of the lectures (``docs/lectures.md``):

* linear-Gaussian latent-variable models -- :class:`FactorAnalysis` (EM) and
  :class:`PPCA` (closed form through the SVD, or EM);
* a reverse-mode automatic differentiation engine (:func:`tensor`, :func:`gradcheck`)
  and a small neural-network layer (:mod:`scratchdgm.nn`, :mod:`scratchdgm.optim`);
* deep latent-variable models trained by amortised variational inference --
  :class:`VAE` and :class:`IWAE` (Kingma & Welling 2014; Burda et al. 2016), with two
  stochastic layers (:class:`HierarchicalIWAE`), on data with missing entries (:class:`MIWAE`,
  Mattei & Frellsen 2019), with a discrete latent (:class:`CategoricalVAE`, :class:`GMVAE`);
* DDPM read as a hierarchical VAE (:class:`DiffusionModel`) and an affine-coupling flow with an
  exact likelihood (:class:`RealNVP`);
* one evaluator for every deep model (:func:`evaluate`), the lectures' claims as experiments
  (:mod:`scratchdgm.experiments`), gradient checks for your own code (:mod:`scratchdgm.testing`);
* Numba / numba.cuda kernels for the hot paths, chosen with :func:`set_backend`.

The public names below are loaded lazily (PEP 562): ``import scratchdgm`` is cheap, and
nothing imports numba or compiles a kernel until it is used.
"""

from importlib import import_module

__version__ = "0.1.0"

# public name -> module that defines it
_LAZY = {
    # autodiff
    "Tensor": "scratchdgm.autodiff",
    "Function": "scratchdgm.autodiff",
    "tensor": "scratchdgm.autodiff",
    "no_grad": "scratchdgm.autodiff",
    "is_grad_enabled": "scratchdgm.autodiff",
    "gradcheck": "scratchdgm.autodiff",
    "GradcheckError": "scratchdgm.autodiff",
    "concatenate": "scratchdgm.autodiff",
    "stack": "scratchdgm.autodiff",
    "where": "scratchdgm.autodiff",
    "log_sigmoid": "scratchdgm.autodiff",
    "binary_cross_entropy_with_logits": "scratchdgm.autodiff",
    "logsumexp": "scratchdgm.autodiff",
    "jacobian": "scratchdgm.autodiff",
    # backends
    "set_backend": "scratchdgm.backend",
    "get_backend": "scratchdgm.backend",
    "use_backend": "scratchdgm.backend",
    # linear latent-variable models
    "FactorAnalysis": "scratchdgm.models.linear",
    "PPCA": "scratchdgm.models.linear",
    # deep latent-variable models
    "VAE": "scratchdgm.models.deep",
    "IWAE": "scratchdgm.models.deep",
    "MIWAE": "scratchdgm.models.deep",
    "HierarchicalVAE": "scratchdgm.models.deep",
    "HierarchicalIWAE": "scratchdgm.models.deep",
    "CategoricalVAE": "scratchdgm.models.deep",
    "GMVAE": "scratchdgm.models.deep",
    "LinearGaussianLVM": "scratchdgm.models.deep",
    "load_model": "scratchdgm.models.deep",
    "RealNVP": "scratchdgm.models.deep",
    "DiffusionModel": "scratchdgm.models.deep",
    "evaluate": "scratchdgm.evaluation",
}

_SUBMODULES = {
    "autodiff", "nn", "optim", "models", "kernels", "backend", "data", "distributions",
    "plots", "experiments", "cli", "checkpoint", "numerics", "validation", "threads",
}

__all__ = sorted(_LAZY) + ["__version__"]


def __getattr__(name):
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name]), name)
        globals()[name] = value  # cache: later look-ups skip __getattr__
        return value
    if name in _SUBMODULES:
        module = import_module(f"scratchdgm.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module 'scratchdgm' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY) | _SUBMODULES)
