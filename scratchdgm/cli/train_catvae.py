r"""``scratchdgm train catvae``: a categorical VAE, c ~ U{1..K}, x | c ~ p(x | f(e_c)), trained
with the expectation over c by enumeration or the Gumbel-softmax relaxation
(:class:`~scratchdgm.models.deep.discrete.CategoricalVAE`); writes ``metrics.json`` (exact test
log-likelihood, cluster purity against the labels) and two figures.

Example (the digits, K = 10, 100 epochs)::

    scratchdgm train catvae --data digits --n-categories 10 --epochs 100 --seed 0 --out runs/cat
"""

HELP = "categorical VAE: one categorical latent with a uniform prior (enumeration or Gumbel-softmax)"


def configure_parser(parser):
    from scratchdgm.cli._discrete import configure_discrete_parser

    configure_discrete_parser(parser, latent_dim=False)


def run(args):
    from scratchdgm.cli._discrete import run_discrete
    from scratchdgm.models.deep.discrete import CategoricalVAE

    return run_discrete(args, CategoricalVAE)
