r"""Deep latent-variable models trained by amortised variational inference.

Read in this order: :mod:`~scratchdgm.models.deep.bounds` (the bounds as functions of
log-weights), :mod:`~scratchdgm.models.deep.observation` and
:mod:`~scratchdgm.models.deep.priors` (the pieces of :math:`p_\theta(x, z)`),
:mod:`~scratchdgm.models.deep.vae` (the VAE and IWAE: the model and its objective), then
:mod:`~scratchdgm.models.deep.training`, :mod:`~scratchdgm.models.deep.evaluation` and
:mod:`~scratchdgm.models.deep.persistence`. :mod:`~scratchdgm.models.deep.linear_gaussian` reads
factor analysis and PPCA through the same protocol, with exact answers to check against.
"""

from scratchdgm.models.deep.linear_gaussian import LinearGaussianLVM
from scratchdgm.models.deep.persistence import load_model
from scratchdgm.models.deep.training import TrainingDivergedError, fit
from scratchdgm.models.deep.vae import IWAE, VAE

__all__ = ["VAE", "IWAE", "LinearGaussianLVM", "fit", "load_model", "TrainingDivergedError"]
