r"""Probability distributions of deep latent variable models, differentiable through
:mod:`scratchdgm.autodiff`: log-densities, reparametrised samples and closed-form KL divergences.

=================================  ===================================  ===========================
class                              role in a DLVM                       parameters (names say how)
=================================  ===================================  ===========================
:class:`DiagNormal`                encoder :math:`q_\gamma(z \mid x)`;  ``mu``, ``log_sigma`` (log
                                   Gaussian observation model           standard deviation)
:class:`StandardNormal`            prior :math:`\mathcal N(0, I_d)`     ``d``
:class:`FullNormal`                full-covariance Gaussian             ``mu``, ``scale_tril``
                                                                        (:math:`\Sigma = L L^\top`)
:class:`Bernoulli`                 observation model for binary data    ``logits``
:class:`StudentT`                  heavy-tailed observation model       ``loc``, ``scale``, ``df``
:class:`GaussianMixture`           learnable prior                      ``logits``, ``mu``,
                                                                        ``log_sigma``
:class:`Categorical`               discrete latent / mixture component  ``logits``
:class:`UniformCategorical`        uniform prior of a discrete latent   ``n_categories``
:class:`RelaxedOneHotCategorical`  Gumbel-softmax relaxation of a       ``logits``,
                                   one-hot categorical                  ``temperature``
=================================  ===================================  ===========================

One module per family; :func:`kl_divergence` holds every closed-form KL. Every sampler is
``sample(sample_shape=(), random_state=None)`` (and ``rsample`` for the reparametrisable ones).
The densities that dominate the cost of training (diagonal Gaussian, Bernoulli from logits) run
as fused kernels on the backend given to the distribution (``backend=``, None for the process
default).

Lecture ([Mattei-DGM] in ``docs/lectures.md``): "Deep latent variable models: the role of the
observation model" (Gaussian, Bernoulli, Student's t), "Reparametrisation trick for
:math:`\nabla_\gamma`", "More on this KL regulariser" (KL between full-covariance Gaussians);
[Mattei-S2D, "The role of the prior"] (learnable Gaussian-mixture priors);
[Isachenko-L4, "Discrete VAE latents"] (the KL of a categorical latent to the uniform prior).
"""

from scratchdgm.distributions.base import Distribution
from scratchdgm.distributions.bernoulli import Bernoulli
from scratchdgm.distributions.categorical import Categorical, UniformCategorical
from scratchdgm.distributions.kl import kl_divergence
from scratchdgm.distributions.mixture import GaussianMixture
from scratchdgm.distributions.normal import DiagNormal, FullNormal, StandardNormal
from scratchdgm.distributions.relaxed import RelaxedOneHotCategorical
from scratchdgm.distributions.student_t import StudentT

__all__ = [
    "Distribution",
    "DiagNormal",
    "StandardNormal",
    "FullNormal",
    "Bernoulli",
    "StudentT",
    "GaussianMixture",
    "Categorical",
    "UniformCategorical",
    "RelaxedOneHotCategorical",
    "kl_divergence",
]
