r"""Deep latent-variable models trained by amortised variational inference.

Read in this order: :mod:`~scratchdgm.models.deep.bounds` (the bounds as functions of
log-weights), :mod:`~scratchdgm.models.deep.observation` and
:mod:`~scratchdgm.models.deep.priors` (the pieces of :math:`p_\theta(x, z)`),
:mod:`~scratchdgm.models.deep.vae` (the VAE and IWAE: the model and its objective), its two
extensions :mod:`~scratchdgm.models.deep.miwae` (missing data) and
:mod:`~scratchdgm.models.deep.hierarchical` (two stochastic layers), then
:mod:`~scratchdgm.models.deep.training`, :mod:`~scratchdgm.models.deep.evaluation` and
:mod:`~scratchdgm.models.deep.persistence`. :mod:`~scratchdgm.models.deep.linear_gaussian` reads
factor analysis and PPCA through the same protocol, with exact answers to check against.

Two more families read as variations on the VAE: :mod:`~scratchdgm.models.deep.diffusion` (a
hierarchical VAE whose encoder is fixed noise, trained on its ELBO) and
:mod:`~scratchdgm.models.deep.flow` (a VAE whose encoder and decoder are one deterministic
invertible map, with an exact likelihood).
"""

# every model class is imported here, so that load_model (and `scratchdgm eval` / `sample` on a
# run) knows them all
from scratchdgm.models.deep.diffusion import DiffusionModel
from scratchdgm.models.deep.discrete import GMVAE, CategoricalVAE
from scratchdgm.models.deep.flow import RealNVP
from scratchdgm.models.deep.hierarchical import HierarchicalIWAE, HierarchicalVAE
from scratchdgm.models.deep.linear_gaussian import LinearGaussianLVM
from scratchdgm.models.deep.miwae import MIWAE
from scratchdgm.models.deep.persistence import load_model
from scratchdgm.models.deep.training import TrainingDivergedError, fit
from scratchdgm.models.deep.vae import IWAE, VAE

__all__ = ["VAE", "IWAE", "MIWAE", "HierarchicalVAE", "HierarchicalIWAE", "CategoricalVAE",
           "GMVAE", "LinearGaussianLVM", "RealNVP", "DiffusionModel", "fit", "load_model",
           "TrainingDivergedError"]
