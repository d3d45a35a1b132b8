r"""Deep latent-variable models trained by amortised variational inference.

Read in this order: :mod:`~scratchdgm.models.deep.bounds` (the bounds as functions of
log-weights), :mod:`~scratchdgm.models.deep.observation` and
:mod:`~scratchdgm.models.deep.priors` (the pieces of :math:`p_\theta(x, z)`),
:mod:`~scratchdgm.models.deep.vae` (the VAE and IWAE: the model and its objective), then
:mod:`~scratchdgm.models.deep.training`, :mod:`~scratchdgm.models.deep.evaluation` and
:mod:`~scratchdgm.models.deep.persistence`. :mod:`~scratchdgm.models.deep.linear_gaussian` reads
factor analysis and PPCA through the same protocol, with exact answers to check against.

Two more families read as variations on the VAE: :mod:`~scratchdgm.models.deep.diffusion` (a
hierarchical VAE whose encoder is fixed noise, trained on its ELBO) and
:mod:`~scratchdgm.models.deep.flow` (a VAE whose encoder and decoder are one deterministic
invertible map, with an exact likelihood).
"""

from scratchdgm.models.deep.diffusion import DiffusionModel
from scratchdgm.models.deep.flow import RealNVP
# imported here so that load_model (and `scratchdgm eval` / `sample` on a run) knows every class
from scratchdgm.models.deep.discrete import GMVAE, CategoricalVAE
from scratchdgm.models.deep.linear_gaussian import LinearGaussianLVM
from scratchdgm.models.deep.persistence import load_model
from scratchdgm.models.deep.training import TrainingDivergedError, fit
from scratchdgm.models.deep.vae import IWAE, VAE

__all__ = ["VAE", "IWAE", "CategoricalVAE", "GMVAE", "LinearGaussianLVM", "RealNVP",
           "DiffusionModel", "fit", "load_model",
           "TrainingDivergedError"]
