r"""Linear-Gaussian latent-variable models: factor analysis (EM) and probabilistic PCA (closed
form through the SVD, or EM), as scikit-learn estimators sharing one module of Gaussian maths
(:mod:`scratchdgm.models.linear.gaussian`)."""

from scratchdgm.models.linear.factor_analysis import FactorAnalysis
from scratchdgm.models.linear.ppca import PPCA

__all__ = ["FactorAnalysis", "PPCA"]
