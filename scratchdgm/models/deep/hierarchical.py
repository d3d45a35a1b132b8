r"""A deep latent variable model with two stochastic layers, :math:`x \leftarrow z_1 \leftarrow
z_2`, trained on :math:`\mathcal L_1` (:class:`HierarchicalVAE`) or :math:`\mathcal L_K`
(:class:`HierarchicalIWAE`): the two-layer architecture of Burda et al. (2016, Section 5).

A hierarchical VAE is "a VAE within a VAE": the prior of the first latent layer is itself a
DLVM ([Mattei-DGM, "From VAEs to hierarchical VAEs"] in ``docs/lectures.md``). Both the model
and the inference network are chains of Gaussians between the stochastic layers
([Mattei-DGM, "On DAGs and VAEs"]: one DAG to generate, one to infer):

.. math::

    \text{model:}\quad p_\theta(x, z_1, z_2) = p(z_2)\, p_\theta(z_1 \mid z_2)\,
    p_\theta(x \mid z_1), \qquad
    \text{inference:}\quad q_\gamma(z_1, z_2 \mid x) = q_\gamma(z_1 \mid x)\,
    q_\gamma(z_2 \mid z_1),

with :math:`p(z_2) = \mathcal N(0, I)`, the conditionals
:math:`p_\theta(z_1 \mid z_2)`, :math:`q_\gamma(z_1 \mid x)`, :math:`q_\gamma(z_2 \mid z_1)`
diagonal Gaussians whose mean and log standard deviation are an MLP's outputs, and
:math:`p_\theta(x \mid z_1)` an observation model (:mod:`~scratchdgm.models.deep.observation`).
Each factor has its own network, named after it: :attr:`HierarchicalVAE.net_q_z1` computes
:math:`q_\gamma(z_1 \mid x)`, and so on.

A sample :math:`(z_1, z_2)` is drawn bottom-up, :math:`z_1 \sim q_\gamma(z_1 \mid x)` then
:math:`z_2 \sim q_\gamma(z_2 \mid z_1)`, and weighted by

.. math::

    \log w = \log p_\theta(x \mid z_1) + \log p_\theta(z_1 \mid z_2) + \log p(z_2)
    - \log q_\gamma(z_1 \mid x) - \log q_\gamma(z_2 \mid z_1);

the bounds :math:`\mathcal L_K = \mathbb E[\log \frac1K \sum_k w_k]` are those of the one-layer
model (:mod:`~scratchdgm.models.deep.bounds`), so every evaluation function applies unchanged.

The ELBO layer by layer ([VAE-HVAE-Diffusion, "Hierarchical Variational Autoencoders"]: the KL
between the joint posterior and the joint prior splits into one KL per group of latents, each
averaged over the groups drawn before it). With the inference order of this model, :math:`z_1`
then :math:`z_2`,

.. math::

    \mathcal L_1(x) = \underbrace{\mathbb E_{q}[\log p_\theta(x \mid z_1)]}_{\text{reconstruction}}
    - \underbrace{\mathbb E_{q_\gamma(z_1 \mid x)\, q_\gamma(z_2 \mid z_1)}\Big[\log
      \frac{q_\gamma(z_1 \mid x)}{p_\theta(z_1 \mid z_2)}\Big]}_{\mathrm{KL}_1}
    - \underbrace{\mathbb E_{q_\gamma(z_1 \mid x)}\big[\mathrm{KL}(q_\gamma(z_2 \mid z_1) \,\|\,
      p(z_2))\big]}_{\mathrm{KL}_2},

and :math:`\mathrm{KL}_1 + \mathrm{KL}_2 = \mathrm{KL}(q_\gamma(z_1, z_2 \mid x) \,\|\,
p_\theta(z_1, z_2))`. :math:`\mathrm{KL}_2` has its inner KL in closed form; :math:`\mathrm{KL}_1`
compares :math:`q_\gamma(z_1 \mid x)` with a prior that depends on :math:`z_2`, itself drawn
given :math:`z_1`, so it is estimated by Monte Carlo, except for its entropy part
:math:`\mathbb E[\log q_\gamma(z_1 \mid x)] = -H[q_\gamma(z_1 \mid x)]`, in closed form
(:func:`layer_terms`). Unlike the slide's top-down inference
(:math:`q(z_2 \mid x)` first), the bottom-up order here does not give :math:`\mathrm{KL}_1`
as an average of closed-form KLs; its value is still the same expectation, which the tests check.

References
----------
Burda, Grosse & Salakhutdinov (2016), *Importance weighted autoencoders*, ICLR: eq. 8 (the
bound), Section 5 (two stochastic layers of 100 and 50 units, with two deterministic tanh
layers of 200 between x and :math:`z_1` and of 100 between :math:`z_1` and :math:`z_2`), Table 1.
Sønderby et al. (2016), *Ladder variational autoencoders*, NeurIPS (bottom-up against top-down
inference in hierarchical VAEs).
"""

from typing import NamedTuple

import numpy as np

from scratchdgm import autodiff as _ad
from scratchdgm.distributions import DiagNormal, StandardNormal, kl_divergence
from scratchdgm.models.deep import bounds as _bounds
from scratchdgm.models.deep import persistence as _persistence
from scratchdgm.models.deep.observation import make_observation
from scratchdgm.models.deep.priors import StandardNormalPrior
from scratchdgm.models.deep.vae import VAE, check_activation, check_hidden, check_kl
from scratchdgm.nn import MLP, Module
from scratchdgm.validation import (
    check_float_dtype,
    check_positive_int,
    check_random_state,
)

__all__ = ["HierarchicalVAE", "HierarchicalIWAE", "HierarchicalSamples", "layer_terms"]


class HierarchicalSamples(NamedTuple):
    r"""K samples :math:`(z_1, z_2)` per data point, drawn bottom-up, and every log-density of
    their weight (one forward pass).

    Attributes
    ----------
    log_w : Tensor, shape (K, B)
        :math:`\log w = \log p_\theta(x \mid z_1) + \log p_\theta(z_1 \mid z_2) + \log p(z_2)
        - \log q_\gamma(z_1 \mid x) - \log q_\gamma(z_2 \mid z_1)`.
    log_px_given_z : Tensor, shape (K, B)
        :math:`\log p_\theta(x \mid z_1)`.
    log_p_z1, log_p_z2, log_q_z1, log_q_z2 : Tensor, shape (K, B)
        :math:`\log p_\theta(z_1 \mid z_2)`, :math:`\log p(z_2)`, :math:`\log q_\gamma(z_1 \mid
        x)`, :math:`\log q_\gamma(z_2 \mid z_1)`.
    q_z1 : DiagNormal, batch shape (B,)
        :math:`q_\gamma(z_1 \mid x)`.
    q_z2 : DiagNormal, batch shape (K, B)
        :math:`q_\gamma(z_2 \mid z_1)` at each sampled :math:`z_1`.
    p_z1 : DiagNormal, batch shape (K, B)
        :math:`p_\theta(z_1 \mid z_2)` at each sampled :math:`z_2`.
    z1 : Tensor, shape (K, B, d1)
    z2 : Tensor, shape (K, B, d2)
    """

    log_w: _ad.Tensor
    log_px_given_z: _ad.Tensor
    log_p_z1: _ad.Tensor
    log_p_z2: _ad.Tensor
    log_q_z1: _ad.Tensor
    log_q_z2: _ad.Tensor
    q_z1: DiagNormal
    q_z2: DiagNormal
    p_z1: DiagNormal
    z1: _ad.Tensor
    z2: _ad.Tensor


def layer_terms(s):
    r"""The ELBO of each point split into the reconstruction and one KL term per stochastic
    layer (estimates from the K samples of ``s``, closed forms where they exist).

    Parameters
    ----------
    s : HierarchicalSamples

    Returns
    -------
    reconstruction, kl_z1, kl_z2 : Tensor, shape (B,) each
        :math:`\mathcal L_1 \approx \text{reconstruction} - \mathrm{KL}_1 - \mathrm{KL}_2`.

    Notes
    -----
    .. math::

        \text{reconstruction} = \frac1K \sum_k \log p_\theta(x \mid z_1^{(k)}), \qquad
        \mathrm{KL}_1 = -H[q_\gamma(z_1 \mid x)] - \frac1K \sum_k \log p_\theta(z_1^{(k)} \mid
        z_2^{(k)}),

    .. math::

        \mathrm{KL}_2 = \frac1K \sum_k \mathrm{KL}\big(q_\gamma(z_2 \mid z_1^{(k)}) \,\|\,
        \mathcal N(0, I)\big),

    the entropy and the inner KL in closed form (:meth:`DiagNormal.entropy
    <scratchdgm.distributions.DiagNormal.entropy>`, :func:`~scratchdgm.distributions.kl_divergence`).
    Their combination has the expectation of the Monte Carlo ELBO
    :math:`\frac1K \sum_k \log w_k` with less variance.
    """
    d2 = s.z2.shape[-1]
    reconstruction = s.log_px_given_z.mean(axis=0)
    kl_z1 = -s.q_z1.entropy() - s.log_p_z1.mean(axis=0)
    kl_z2 = kl_divergence(s.q_z2, StandardNormal(d2, s.z2.dtype)).mean(axis=0)
    return reconstruction, kl_z1, kl_z2


def _gaussian(net, inputs, d, backend):
    """The diagonal Gaussian whose (mean, log standard deviation) ``net`` outputs."""
    h = net(inputs)
    return DiagNormal(h[..., :d], h[..., d:], backend=backend)


@_persistence.register_model
class HierarchicalVAE(VAE):
    r"""A VAE with two stochastic layers, :math:`x \leftarrow z_1 \leftarrow z_2`, trained on
    :math:`\mathcal L_1`.

    It keeps the one-layer model's public boundary (``fit``, ``score_samples``, ``score``,
    ``bound``, ``sample``, ``save``/``load``, the evaluation protocol ``log_weights`` /
    ``check_data`` / ``transform``) and replaces the model inside.

    Parameters
    ----------
    input_dim : int
        :math:`p`.
    latent_dims : (int, int)
        :math:`(d_1, d_2)`, the sizes of :math:`z_1` and :math:`z_2`. Default ``(20, 10)``: the
        digits protocol of ``docs/protocols.md`` scales Burda et al.'s one-layer MNIST model
        (200-200 hidden, 50 latent) to 100-100 and 10; the same scaling of their two-layer
        model (200-200, 100, then 100-100, 50) gives 100-100, 20, then 50-50, 10.
    hidden : (sequence of int, sequence of int)
        Hidden widths between :math:`x` and :math:`z_1`, then between :math:`z_1` and
        :math:`z_2`, of the inference networks; the generative networks mirror them. Default
        ``((100, 100), (50, 50))``.
    activation : {'tanh', 'relu', 'softplus', 'sigmoid'}
    likelihood : str or ObservationModel
        :math:`p_\theta(x \mid z_1)`, as for :class:`~scratchdgm.VAE`.
    k : int
        Samples per point of the training bound (default 1 here, 50 for
        :class:`HierarchicalIWAE`).
    kl : {'auto', 'analytic', 'mc'}
        ``'analytic'`` (and ``'auto'``) train on the layer-wise form of :func:`layer_terms`
        (closed-form entropy and inner KL), ``'mc'`` on the Monte Carlo ELBO.
    dtype : {numpy.float64, numpy.float32}
    random_state : None, int or numpy.random.Generator
        Initialises the weights.
    backend : {None, 'numpy', 'numba', 'cuda', 'auto'}

    Attributes
    ----------
    net_q_z1 : MLP, sizes ``[p, *hidden[0], 2 d1]``
        :math:`q_\gamma(z_1 \mid x)`: mean and log standard deviation.
    net_q_z2 : MLP, sizes ``[d1, *hidden[1], 2 d2]``
        :math:`q_\gamma(z_2 \mid z_1)`.
    net_p_z1 : MLP, sizes ``[d2, *reversed(hidden[1]), 2 d1]``
        :math:`p_\theta(z_1 \mid z_2)`.
    net_p_x : MLP, sizes ``[d1, *reversed(hidden[0]), m]``
        :math:`p_\theta(x \mid z_1)`'s parameters (``m = observation.n_outputs``).
    observation : ObservationModel
        :math:`p_\theta(x \mid z_1)`.
    prior : StandardNormalPrior
        :math:`p(z_2) = \mathcal N(0, I_{d_2})`.

    Notes
    -----
    See the module docstring for the model, the weights and the layer-wise ELBO. The training
    objective is :math:`-\frac1B \sum_i \hat{\mathcal L}(x_i)` with
    :math:`\hat{\mathcal L} = \text{reconstruction} - \mathrm{KL}_1 - \mathrm{KL}_2`
    (:func:`layer_terms`) for ``kl='analytic'``, :math:`\frac1k \sum_k \log w_k` for ``'mc'``.

    References
    ----------
    Burda et al. (2016), ICLR, Section 5 and Table 1 (the VAE rows with two stochastic layers).
    [Mattei-DGM, "From VAEs to hierarchical VAEs"].
    """

    default_k = 1

    def __init__(self, input_dim, latent_dims=(20, 10), hidden=((100, 100), (50, 50)), *,
                 activation="tanh", likelihood="bernoulli", k=None, kl="auto",
                 dtype=np.float64, random_state=0, backend=None):
        Module.__init__(self)  # the one-layer VAE's networks are not built: ours replace them
        where = type(self).__name__
        self.input_dim = check_positive_int(input_dim, "input_dim", where)
        if isinstance(latent_dims, (int, np.integer, str)) or len(latent_dims) != 2:
            raise ValueError(f"{where}: latent_dims must be two ints (d1, d2), the sizes of z1 "
                             f"and z2, got {latent_dims!r}")
        self.latent_dims = tuple(check_positive_int(d, "each latent dim", where)
                                 for d in latent_dims)
        if isinstance(hidden, (int, np.integer, str)) or len(hidden) != 2:
            raise ValueError(f"{where}: hidden must be two sequences of widths, x-z1 then "
                             f"z1-z2, such as ((100, 100), (50, 50)); got {hidden!r}")
        self.hidden = tuple(check_hidden(h, where) for h in hidden)
        self.activation = check_activation(activation, where)
        self.k = check_positive_int(self.default_k if k is None else k, "k", where)
        check_kl(kl, where)
        self.kl = kl
        self.dtype = check_float_dtype(dtype, where)
        rng = check_random_state(random_state, where)
        self.backend = backend
        (d1, d2), (h1, h2), p = self.latent_dims, self.hidden, self.input_dim
        self.observation = make_observation(likelihood, p, dtype=self.dtype, backend=backend)
        self.prior = StandardNormalPrior(d2, dtype=self.dtype, backend=backend)
        net = dict(rng=rng, dtype=self.dtype, backend=backend)
        self.net_q_z1 = MLP([p, *h1, 2 * d1], self.activation, **net)
        self.net_q_z2 = MLP([d1, *h2, 2 * d2], self.activation, **net)
        self.net_p_z1 = MLP([d2, *reversed(h2), 2 * d1], self.activation, **net)
        self.net_p_x = MLP([d1, *reversed(h1), self.observation.n_outputs], self.activation,
                           **net)
        self.history_ = None

    @property
    def latent_dim(self):
        r""":math:`d_1 + d_2`, the number of latent units (the columns of :meth:`transform`)."""
        return sum(self.latent_dims)

    # -- the four conditionals, named after the maths ------------------------------------------

    def q_z1(self, x):
        r""":math:`q_\gamma(z_1 \mid x)` for ``x`` of shape (B, p): a DiagNormal of batch shape
        (B,)."""
        return _gaussian(self.net_q_z1, x, self.latent_dims[0], self.backend)

    def q_z2(self, z1):
        r""":math:`q_\gamma(z_2 \mid z_1)` for ``z1`` of shape (..., d1): batch shape (...)."""
        return _gaussian(self.net_q_z2, z1, self.latent_dims[1], self.backend)

    def p_z1(self, z2):
        r""":math:`p_\theta(z_1 \mid z_2)` for ``z2`` of shape (..., d2): batch shape (...)."""
        return _gaussian(self.net_p_z1, z2, self.latent_dims[0], self.backend)

    def p_x(self, z1):
        r""":math:`p_\theta(x \mid z_1)` for ``z1`` of shape (..., d1): the observation model's
        distribution, batch shape (...)."""
        return self.observation.distribution(self.decode(z1))

    def encode(self, x):
        r""":math:`q_\gamma(z_1 \mid x)` (the first layer of the inference network)."""
        return self.q_z1(x)

    def decode(self, z1):
        r"""The parameters :math:`\eta = f_\theta(z_1)` of :math:`p_\theta(x \mid z_1)`, shape
        (..., m)."""
        return self.net_p_x(z1)

    # -- the weights -------------------------------------------------------------------------

    def weighted_samples(self, x, k, rng):
        r"""K samples :math:`(z_1, z_2)` per point, drawn bottom-up with the reparametrisation
        trick, and their log-weights (differentiable).

        Parameters
        ----------
        x : ndarray, shape (B, p)
        k : int
        rng : numpy.random.Generator

        Returns
        -------
        HierarchicalSamples
            ``log_w`` (k, B) and its terms.

        Notes
        -----
        .. math::

            z_1^{(k)} = \mu_{q,1}(x) + \sigma_{q,1}(x) \odot \varepsilon_1^{(k)}, \qquad
            z_2^{(k)} = \mu_{q,2}(z_1^{(k)}) + \sigma_{q,2}(z_1^{(k)}) \odot
            \varepsilon_2^{(k)},

        and :math:`\log w^{(k)}` as in the module docstring.
        """
        x = np.asarray(x.data if isinstance(x, _ad.Tensor) else x, dtype=self.dtype)
        q_z1 = self.q_z1(x)
        z1 = q_z1.rsample(k, rng)                                 # (k, B, d1)
        q_z2 = self.q_z2(z1)
        z2 = q_z2.rsample((), rng)                                # (k, B, d2)
        p_z1 = self.p_z1(z2)
        log_px = self.observation.log_prob(x, self.decode(z1))    # (k, B)
        log_p_z1, log_p_z2 = p_z1.log_prob(z1), self.prior.log_prob(z2)
        log_q_z1, log_q_z2 = q_z1.log_prob(z1), q_z2.log_prob(z2)
        log_w = log_px + log_p_z1 + log_p_z2 - log_q_z1 - log_q_z2
        return HierarchicalSamples(log_w, log_px, log_p_z1, log_p_z2, log_q_z1, log_q_z2,
                                   q_z1, q_z2, p_z1, z1, z2)

    def batch_bound(self, x, k, rng):
        r"""The training bound of each point, shape (B,): :math:`\hat{\mathcal L}_1` with ``k``
        samples, layer by layer (:func:`layer_terms`) for ``kl='analytic'`` / ``'auto'``, by
        Monte Carlo for ``'mc'``."""
        s = self.weighted_samples(x, k, rng)
        if self.kl == "mc":
            return _bounds.elbo_monte_carlo(s.log_w)
        reconstruction, kl_z1, kl_z2 = layer_terms(s)
        return reconstruction - kl_z1 - kl_z2

    # -- per-layer statistics (the evaluator of the claims reads them) --------------------------

    def kl_per_dimension(self, X, random_state=None, k=10, batch_size=500):
        r"""The mean over the data of each latent unit's share of the KL term, per layer.

        Parameters
        ----------
        X : array_like, shape (n, p)
        random_state : None, int or numpy.random.Generator
        k : int
            Samples per point of the Monte Carlo averages.
        batch_size : int
            Points per forward pass.

        Returns
        -------
        dict
            ``'z1'``: ndarray (d1,), ``'z2'``: ndarray (d2,); ``sum()`` of each is the layer's
            :math:`\mathrm{KL}_1`, :math:`\mathrm{KL}_2` of :func:`layer_terms` averaged over X.

        Notes
        -----
        Both factors of each pair are diagonal, so each unit :math:`j` has its own term:

        .. math::

            \mathrm{KL}_{2,j} = \mathbb E_x \mathbb E_{q(z_1 \mid x)}\big[\mathrm{KL}(
            q_\gamma(z_{2j} \mid z_1) \,\|\, \mathcal N(0, 1))\big], \qquad
            \mathrm{KL}_{1,j} = \mathbb E_x \mathbb E_{q(z_1, z_2 \mid x)}\Big[\log
            \frac{q_\gamma(z_{1j} \mid x)}{p_\theta(z_{1j} \mid z_2)}\Big],

        the first with its inner KL in closed form, the second by Monte Carlo (its prior is
        conditional on :math:`z_2`). A unit whose term is near 0 carries no information about
        x (posterior collapse, Burda et al. 2016, §5.2).
        """
        X = self.check_data(X)
        k = check_positive_int(k, "k", "kl_per_dimension")
        rng = check_random_state(random_state, "kl_per_dimension")
        d1, d2 = self.latent_dims
        total = {"z1": np.zeros(d1), "z2": np.zeros(d2)}
        with _ad.no_grad():
            for s in range(0, len(X), batch_size):
                h = self.weighted_samples(X[s:s + batch_size], k, rng)
                z1 = h.z1.reshape(*h.z1.shape, 1)
                kl1 = h.q_z1.factors().log_prob(z1) - h.p_z1.factors().log_prob(z1)
                kl2 = kl_divergence(h.q_z2.factors(), StandardNormal(1, self.dtype))
                total["z1"] += kl1.data.mean(axis=0).sum(axis=0)
                total["z2"] += kl2.data.mean(axis=0).sum(axis=0)
        return {name: v / len(X) for name, v in total.items()}

    def kl_total(self, X, random_state=None, k=10):
        r"""``{'z1': KL_1, 'z2': KL_2}``: the layer-wise KL terms of :func:`layer_terms`
        averaged over X, the sums of :meth:`kl_per_dimension` (the one-layer
        :meth:`VAE.kl_total <scratchdgm.models.deep.vae.VAE.kl_total>`, a KL to a fixed prior,
        does not apply: the prior of :math:`z_1` is conditional on :math:`z_2`)."""
        per = self.kl_per_dimension(X, random_state=random_state, k=k)
        return {name: float(v.sum()) for name, v in per.items()}

    def posterior_means(self, X, k=100, random_state=0):
        r"""The posterior mean of each layer's code, for the activity of its units.

        Returns
        -------
        dict
            ``'z1'``: :math:`\mathbb E_{q(z_1 \mid x)}[z_1] = \mu_{q,1}(x)`, shape (n, d1);
            ``'z2'``: :math:`\mathbb E_{q(z_2 \mid x)}[z_2] = \mathbb E_{q(z_1 \mid x)}[
            \mu_{q,2}(z_1)]`, shape (n, d2), by Monte Carlo with ``k`` draws of :math:`z_1`
            (a fixed ``random_state`` by default, so the result is repeatable).
        """
        X = self.check_data(X, allow_unit_interval=True)
        k = check_positive_int(k, "k", "posterior_means")
        rng = check_random_state(random_state, "posterior_means")
        with _ad.no_grad():
            q_z1 = self.q_z1(X)
            z2_mean = self.q_z2(q_z1.rsample(k, rng)).mu.data.mean(axis=0)
            return {"z1": np.array(q_z1.mu.data), "z2": z2_mean}

    def transform(self, X):
        r"""The posterior means of both layers side by side, ``[E[z1|x], E[z2|x]]``, shape
        (n, d1 + d2) (see :meth:`posterior_means`)."""
        means = self.posterior_means(X)
        return np.concatenate([means["z1"], means["z2"]], axis=1)

    # -- generation --------------------------------------------------------------------------

    def _ancestral(self, n_samples, random_state, where):
        n = check_positive_int(n_samples, "n_samples", where)
        rng = check_random_state(random_state, where)
        z2 = self.prior.distribution().sample((n,), rng)
        with _ad.no_grad():
            z1 = self.p_z1(_ad.tensor(z2)).sample(random_state=rng)
        return z1, z2, rng

    def sample(self, n_samples=1, random_state=None, *, return_latent=False):
        r"""Ancestral sampling: :math:`z_2 \sim p(z_2)`, :math:`z_1 \sim p_\theta(z_1 \mid z_2)`,
        :math:`x \sim p_\theta(x \mid z_1)`.

        Returns
        -------
        X : ndarray, shape (n_samples, p)
        Z : ndarray, shape (n_samples, d1 + d2)
            ``[z1, z2]``, only if ``return_latent``.
        """
        z1, z2, rng = self._ancestral(n_samples, random_state, "sample")
        with _ad.no_grad():
            x = self.p_x(_ad.tensor(z1)).sample(random_state=rng)
        return (x, np.concatenate([z1, z2], axis=1)) if return_latent else x

    def sample_means(self, n_samples=1, random_state=None, *, return_latent=False):
        r""":math:`z_2 \sim p(z_2)`, :math:`z_1 \sim p_\theta(z_1 \mid z_2)`, then the *mean* of
        :math:`p_\theta(x \mid z_1)`. Same returns as :meth:`sample`."""
        z1, z2, _ = self._ancestral(n_samples, random_state, "sample_means")
        x = self.decode_mean(z1)
        return (x, np.concatenate([z1, z2], axis=1)) if return_latent else x

    def decode_mean(self, Z1):
        r"""The mean of :math:`p_\theta(x \mid z_1)` for codes ``Z1`` of shape (n, d1), shape
        (n, p)."""
        Z1 = np.asarray(Z1, dtype=self.dtype)
        d1 = self.latent_dims[0]
        if Z1.ndim != 2 or Z1.shape[1] != d1:
            raise ValueError(f"Z1 must have shape (n, {d1}) (codes of the first layer z1), got "
                             f"{Z1.shape}")
        with _ad.no_grad():
            return np.array(self.p_x(_ad.tensor(Z1)).mean.data)

    def reconstruct(self, X):
        r"""The mean of :math:`p_\theta(x \mid z_1)` at :math:`z_1 = \mu_{q,1}(x)`, shape (n, p)."""
        return self.decode_mean(self.posterior_means(X, k=1)["z1"])

    # -- persistence -----------------------------------------------------------------------

    def config(self):
        r"""The constructor arguments that rebuild this architecture (JSON-serialisable)."""
        return {
            "class": type(self).__name__,
            "input_dim": self.input_dim,
            "latent_dims": list(self.latent_dims),
            "hidden": [list(h) for h in self.hidden],
            "activation": self.activation,
            "likelihood": self.observation.config(),
            "k": self.k,
            "kl": self.kl,
            "dtype": self.dtype.name,
        }

    def extra_repr(self):
        return (f"input_dim={self.input_dim}, latent_dims={list(self.latent_dims)}, "
                f"hidden={[list(h) for h in self.hidden]}, k={self.k}, "
                f"likelihood={self.observation.kind!r}")


@_persistence.register_model
class HierarchicalIWAE(HierarchicalVAE):
    r"""The two-stochastic-layer model of :class:`HierarchicalVAE` trained on
    :math:`\mathcal L_K` (default K = 50).

    Notes
    -----
    .. math::

        \hat{\mathcal L}_K = \frac1B \sum_i \log \frac1K \sum_{k=1}^K
        \frac{p_\theta(x_i \mid z_1^{(k)})\, p_\theta(z_1^{(k)} \mid z_2^{(k)})\,
        p(z_2^{(k)})}{q_\gamma(z_1^{(k)} \mid x_i)\, q_\gamma(z_2^{(k)} \mid z_1^{(k)})}.

    References
    ----------
    Burda et al. (2016), ICLR, eq. 8 and Table 1 (the IWAE rows with two stochastic layers).
    """

    default_k = 50

    def batch_bound(self, x, k, rng):
        r""":math:`\hat{\mathcal L}_K` of each point of a minibatch, K = ``k``, shape (B,)."""
        return _bounds.iwae_bound(self.log_weights(x, k, rng), backend=self.backend)
