r"""``scratchdgm train gmvae``: a Gaussian-mixture VAE, c ~ U{1..K}, z | c ~ N(mu_c, sigma_c^2),
x | z ~ p(x | f(z)), trained with the expectation over c by enumeration or the Gumbel-softmax
relaxation (:class:`~scratchdgm.models.deep.discrete.GMVAE`); writes ``metrics.json``
(importance-sampled test log-likelihood, cluster purity of argmax q(c | x) against the labels)
and two figures (what each component generates; components against labels).

Example (the digits, K = 10 components, d = 10)::

    scratchdgm train gmvae --data digits --n-categories 10 --epochs 100 --seed 0 --out runs/gm
"""

HELP = "Gaussian-mixture VAE: a categorical latent picks the Gaussian component of the code z"


def configure_parser(parser):
    from scratchdgm.cli._discrete import configure_discrete_parser

    configure_discrete_parser(parser, latent_dim=True)


def run(args):
    from scratchdgm.cli._discrete import run_discrete
    from scratchdgm.models.deep.discrete import GMVAE

    return run_discrete(args, GMVAE)
