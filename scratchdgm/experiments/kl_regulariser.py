r"""Experiment 8, the KL term as a regulariser: it makes a VAE's codes look like the prior; a
Gaussian-mixture prior makes them cluster by digit; the lecture's 2-D latent map.

The ELBO is a reconstruction term minus :math:`\mathrm{KL}(q_\gamma(z \mid x) \,\|\, p(z))`,
which pulls the encodings as a whole towards the prior ([Mattei-DGM, "Why is the KL term a
regulariser?"]): a VAE's 2-D codes of the digits "look Gaussian", a plain autoencoder's (the same
networks trained on the reconstruction alone, no noise, no KL: the two extras of
[Su-DGM, "Examining the Training Process"]) do not. Gaussian-looking codes are well behaved but
not discriminative; with a Gaussian-mixture prior the codes gather around its components, which
then cluster the data ([Mattei-DGM, "More on this KL regulariser"]). Three models, d = 2, all with
the decoder of [Mattei-DGM, "Illustrative example of a DLVM for binary images"],
:math:`f(z) = \mathrm{Sigmoid}(V \tanh(Wz + b) + \beta)` (one hidden layer of 100 tanh units,
Bernoulli pixels), on the digits (:func:`scratchdgm.data.load_digits_protocol`):

* **autoencoder** -- trained on :math:`\log p_\theta(x \mid z = \mu_\gamma(x))`
  (:class:`PlainAutoencoder`);
* **VAE** -- the ELBO with :math:`p(z) = \mathcal N(0, I_2)`;
* **GMM-VAE** -- the ELBO with a learned mixture of 10 Gaussians as the prior (``prior='gmm'``).

Measured on the codes :math:`\mu_\gamma(x)` of the 1500 training images:

* how Gaussian they look: the Henze--Zirkler statistic (:func:`henze_zirkler`; affine
  invariant, so the autoencoder's arbitrary scale does not count against it; 0.5-1.5 for a
  true Gaussian sample of this size, larger the less Gaussian), and how close their fitted
  Gaussian is to the prior, :math:`\mathrm{KL}(\mathcal N(\hat m, \hat S) \,\|\, \mathcal N(0,
  I))`;
* how they cluster by digit: the purity of the GMM prior's own components (each image goes to
  the component of highest responsibility at its code) against the labels, against chance (the
  largest class's share), and for every model the purity of k-means with 10 clusters on its
  codes.

The latent map decodes a 15 x 15 grid of :math:`z \in [-2.5, 2.5]^2` with the VAE
(``kl-regulariser-map.png``), as in the lecture's illustration.

Numbers of a real full run (``scratchdgm experiment kl-regulariser``, seed 0, 200 epochs per
model; 56 s of CPU on one core, 5.3 min of wall time on a shared, loaded machine)::

    model         Henze-Zirkler  KL(fitted Gaussian || N(0, I))  k-means purity
    autoencoder   80.95          41.272                          0.560
    VAE           22.82           0.005                          0.611
    GMM-VAE       57.41           1.995                          0.661

    Henze-Zirkler of a standard normal sample of the same size: 0.96; of the VAE's codes
    drawn z ~ q(z | x) rather than their means: 6.34
    GMM prior: its own components cluster the digits with purity 0.511 (7 of its 10
    components in use; chance 0.107)
    latent map: all 10 digits among the 15 x 15 decoded codes (nearest class mean)

So the KL term does what the lecture says: the VAE's codes sit on the prior's mean and
covariance (KL 0.005 against 41 for the autoencoder's) and are far closer to Gaussian in shape
(none of the three passes the test with 1500 points). With the mixture prior they follow the
mixture instead (further from Gaussian than the VAE's, 57 against 23) and its components group
the digits five times better than chance. The gain over a standard-normal VAE is modest in this
2-D space: k-means on the codes finds digits with purity 0.66 against 0.61.

(``--quick``: 50 epochs per model. Over seeds 0-19 the KL of the fitted Gaussian to the prior
separates the two every time (VAE 0.024-0.052, autoencoder 40-79), and the VAE's sampled codes z
~ q(z|x), what its decoder is trained on, have a Henze-Zirkler statistic 3.4-20 times smaller
than the autoencoder's codes. The statistic of the VAE's means does not beat the autoencoder's
on every seed (the autoencoder's is 0.73-3.5 times the VAE's). The mixture prior's components
group the digits with purity 0.28-0.45 (2.7-4.2 times chance), but its codes are not always
further from Gaussian than the VAE's.)
"""

import pathlib

import numpy as np
from scipy import stats
from scipy.spatial.distance import pdist

from scratchdgm import autodiff as _ad
from scratchdgm.data import load_digits_protocol
from scratchdgm.experiments import ExperimentResult
from scratchdgm.experiments import _common
from scratchdgm.models.deep import VAE
from scratchdgm.plots.deep import plot_samples

NAME = "kl-regulariser"
SUMMARY = ("the KL term as a regulariser: Gaussian-looking VAE codes against an autoencoder's, "
           "a GMM prior clusters the digits, the 2-D latent map")

#: one hidden layer of tanh units: the lecture's decoder Sigmoid(V tanh(Wz + b) + beta)
HIDDEN = (100,)
GRID_SIDE = 15
GRID_LIMIT = 2.5


class PlainAutoencoder(VAE):
    r"""The VAE's networks trained as a deterministic autoencoder: the code is the encoder's
    mean, and the objective is the reconstruction log-likelihood alone.

    Notes
    -----
    Per data point,

    .. math::

        \log p_\theta\big(x \mid z = \mu_\gamma(x)\big),

    the VAE's bound without its two extras ([Su-DGM, "Examining the Training Process"]): no KL
    regulariser and no noise injected into the code (the encoder's :math:`\log\sigma_\gamma`
    outputs are unused). It is no density model: it has no bound on :math:`\log p(x)`, and its
    codes are not tied to the prior.
    """

    def batch_bound(self, x, k, rng, q=None):
        q = self.encode(x) if q is None else q
        return self.observation.log_prob(x, self.decode(q.mu))


def henze_zirkler(z):
    r"""The Henze--Zirkler test of multivariate normality.

    Parameters
    ----------
    z : ndarray, shape (n, d)

    Returns
    -------
    statistic : float
        :math:`T_\beta`, a weighted :math:`L^2` distance between the empirical characteristic
        function of the standardised sample and that of :math:`\mathcal N(0, I_d)`; under
        normality it is near :math:`\mathbb E[T] \approx 1 - a^{-d/2}(1 + d\beta^2/a + d(d+2)
        \beta^4 / 2a^2)`, :math:`a = 1 + 2\beta^2`.
    p_value : float
        From the log-normal approximation of its null distribution.

    Notes
    -----
    With :math:`S` the 1/n covariance, :math:`D_{ij} = (z_i - z_j)^\top S^{-1} (z_i - z_j)`,
    :math:`D_i = (z_i - \bar z)^\top S^{-1} (z_i - \bar z)` and the smoothing
    :math:`\beta = \frac{1}{\sqrt 2} \big(\frac{(2d + 1) n}{4}\big)^{1/(d+4)}`,

    .. math::

        T_\beta = \frac1n \sum_{i,j} e^{-\beta^2 D_{ij} / 2}
        - 2 (1 + \beta^2)^{-d/2} \sum_i e^{-\beta^2 D_i / (2 (1 + \beta^2))}
        + n (1 + 2\beta^2)^{-d/2}.

    It is invariant under affine maps of the data and consistent against every alternative.
    The pairwise distances are :func:`scipy.spatial.distance.pdist` of the whitened sample.

    References
    ----------
    Henze, N. and Zirkler, B. (1990). A class of invariant consistent tests for multivariate
    normality. *Comm. Statist. Theory Methods* 19(10), 3595-3617 (the statistic, its null
    mean and variance, and the log-normal approximation of its null distribution).
    """
    z = np.asarray(z, dtype=np.float64)
    n, d = z.shape
    S = np.cov(z, rowvar=False, bias=True).reshape(d, d)
    w = np.linalg.solve(np.linalg.cholesky(S), (z - z.mean(axis=0)).T).T
    b2 = 0.5 * ((2 * d + 1) * n / 4.0) ** (2.0 / (d + 4))
    a = 1.0 + 2.0 * b2
    t = ((2.0 * np.exp(-0.5 * b2 * pdist(w, "sqeuclidean")).sum() + n) / n
         - 2.0 * (1.0 + b2) ** (-d / 2) * np.exp(-b2 / (2.0 * (1.0 + b2))
                                                  * np.sum(w * w, axis=1)).sum()
         + n * a ** (-d / 2))
    mean = 1.0 - a ** (-d / 2) * (1.0 + d * b2 / a + d * (d + 2) * b2 ** 2 / (2 * a ** 2))
    wq = (1.0 + b2) * (1.0 + 3.0 * b2)
    var = (2.0 * (1.0 + 4.0 * b2) ** (-d / 2)
           + 2.0 * a ** (-d) * (1.0 + 2.0 * d * b2 ** 2 / a ** 2
                                + 3.0 * d * (d + 2) * b2 ** 4 / (4.0 * a ** 4))
           - 4.0 * wq ** (-d / 2) * (1.0 + 3.0 * d * b2 ** 2 / (2.0 * wq)
                                     + d * (d + 2) * b2 ** 4 / (2.0 * wq ** 2)))
    log_sd = np.sqrt(np.log1p(var / mean ** 2))
    log_mean = np.log(mean) - 0.5 * log_sd ** 2
    return float(t), float(stats.lognorm.sf(t, log_sd, scale=np.exp(log_mean)))


def fitted_gaussian_kl_to_prior(z):
    r""":math:`\mathrm{KL}(\mathcal N(\hat m, \hat S) \,\|\, \mathcal N(0, I_d))` for the
    Gaussian fitted to the codes ``z`` (n, d) by moments (1/n covariance):
    :math:`\tfrac12 (\mathrm{tr}\,\hat S + \hat m^\top \hat m - d - \log |\hat S|)`; 0 exactly
    when the codes have the prior's mean and covariance."""
    z = np.asarray(z, dtype=np.float64)
    d = z.shape[1]
    m, S = z.mean(axis=0), np.cov(z, rowvar=False, bias=True).reshape(d, d)
    return float(0.5 * (np.trace(S) + m @ m - d - np.linalg.slogdet(S)[1]))


def purity(clusters, labels):
    r"""Cluster purity: the fraction of points whose label is the most frequent one of their
    cluster, :math:`\frac1n \sum_c \max_y |\{i : c_i = c, y_i = y\}|` (Manning, Raghavan &
    Schütze 2008, *Introduction to information retrieval*, §16.3)."""
    clusters, labels = np.asarray(clusters), np.asarray(labels)
    return float(sum(np.bincount(labels[clusters == c]).max() for c in np.unique(clusters))
                 / len(labels))


def gmm_prior_clusters(model, Z):
    r"""Each code's mixture component of highest responsibility under the model's GMM prior,
    :math:`\arg\max_c \pi_c \mathcal N(z \mid \mu_c, \mathrm{diag}\,\sigma_c^2)`, shape (n,)."""
    with _ad.no_grad():
        prior = model.prior.distribution()
        log_r = prior.component_log_prob(Z).data + prior.logits.log_softmax(axis=-1).data
    return np.argmax(log_r, axis=-1)


def _kmeans_purity(Z, labels, seed):
    from sklearn.cluster import KMeans

    return purity(KMeans(10, n_init=10, random_state=seed).fit_predict(Z), labels)


def latent_grid(side=GRID_SIDE, limit=GRID_LIMIT):
    r"""The codes of the latent map: a ``side`` x ``side`` grid on :math:`[-\text{limit},
    \text{limit}]^2`, row-major from the top left (:math:`z_2` decreasing down the rows, as on a
    plot), shape (side * side, 2)."""
    t = np.linspace(-limit, limit, side)
    z1, z2 = np.meshgrid(t, t[::-1])
    return np.column_stack([z1.ravel(), z2.ravel()])


def _figure(out_dir, codes, labels, gmm_means):
    fig, axes = _common.panels(3, width=4.4, height=4.2)
    titles = {"autoencoder": "plain autoencoder", "vae": r"VAE, $p(z) = \mathcal{N}(0, I)$",
              "gmm_vae": "VAE, GMM prior (x: components)"}
    for ax, (name, z) in zip(axes, codes.items()):
        sc = ax.scatter(z[:, 0], z[:, 1], c=labels, cmap="tab10", s=3, vmin=-0.5, vmax=9.5)
        if name == "gmm_vae":
            ax.scatter(gmm_means[:, 0], gmm_means[:, 1], marker="x", c="k", s=40)
        ax.set_title(titles[name])
        ax.set_xlabel(r"$\mu_\gamma(x)_1$")
        ax.set_ylabel(r"$\mu_\gamma(x)_2$")
    fig.colorbar(sc, ax=axes[-1], ticks=range(10), label="digit")
    return _common.save(fig, out_dir, NAME)


@_common.experiment_run
def run(out_dir, quick=False, seed=0):
    r"""Run the experiment; see the module docstring for what it measures.

    Returns
    -------
    ExperimentResult
        ``numbers``: for ``autoencoder``, ``vae``, ``gmm_vae``: ``hz`` (Henze--Zirkler
        statistic of the codes), ``hz_p``, ``kl_to_prior`` (fitted Gaussian against
        :math:`\mathcal N(0, I)`), ``kmeans_purity``; for the VAE also ``hz_aggregate`` (of one
        draw :math:`z \sim q_\gamma(z \mid x)` per image); for the GMM-VAE ``gmm_purity`` and
        ``components_used``; ``hz_gaussian_reference`` (of a standard normal sample of the same
        size), ``chance_purity``; ``map_digits`` (how many digits a nearest-class-mean
        classifier sees in the latent map); ``epochs``, ``seconds``. Figures: the codes
        (``kl-regulariser.png``) and the latent map (``kl-regulariser-map.png``).
    """
    clock = _common.Stopwatch()
    data = load_digits_protocol()
    X, y = data.x_train, data.y_train
    epochs = 50 if quick else 200
    models = {
        "autoencoder": PlainAutoencoder(64, 2, HIDDEN, random_state=seed),
        "vae": VAE(64, 2, HIDDEN, random_state=seed),
        "gmm_vae": VAE(64, 2, HIDDEN, prior="gmm:10", random_state=seed),
    }
    numbers = {"epochs": epochs, "hidden": list(HIDDEN)}
    codes = {}
    for name, model in models.items():
        model.fit(X, epochs=epochs, progress=False, random_state=seed)
        codes[name] = model.transform(X)
        hz, hz_p = henze_zirkler(codes[name])
        numbers[name] = {"hz": hz, "hz_p": hz_p,
                         "kl_to_prior": fitted_gaussian_kl_to_prior(codes[name]),
                         "kmeans_purity": _kmeans_purity(codes[name], y, seed)}
    with _ad.no_grad():
        q = models["vae"].encode(models["vae"].check_data(X, allow_unit_interval=True))
        numbers["vae"]["hz_aggregate"] = henze_zirkler(
            q.sample((), np.random.default_rng([seed, 1])))[0]
    clusters = gmm_prior_clusters(models["gmm_vae"], codes["gmm_vae"])
    numbers["gmm_vae"]["gmm_purity"] = purity(clusters, y)
    numbers["gmm_vae"]["components_used"] = int(len(np.unique(clusters)))
    numbers["chance_purity"] = float(np.bincount(y).max() / len(y))
    numbers["hz_gaussian_reference"] = henze_zirkler(
        np.random.default_rng([seed, 2]).standard_normal(codes["vae"].shape))[0]

    grid = models["vae"].decode_mean(latent_grid())
    class_means = np.stack([X[y == c].mean(axis=0) for c in range(10)])
    nearest = np.argmin(((grid[:, None, :] - class_means[None]) ** 2).sum(axis=-1), axis=1)
    numbers["map_digits"] = int(len(np.unique(nearest)))
    figures = [_figure(out_dir, codes, y, np.asarray(models["gmm_vae"].prior.means.data)),
               pathlib.Path(plot_samples(
                   grid, out_dir / f"{NAME}-map.png", ncols=GRID_SIDE,
                   title=rf"VAE decoder means over $z \in [-{GRID_LIMIT}, {GRID_LIMIT}]^2$"))]
    numbers["seconds"] = clock.seconds()
    numbers["cpu_seconds"] = clock.cpu_seconds()
    n = numbers
    lines = [f"d = 2, hidden {list(HIDDEN)}, {epochs} epochs; codes of the {len(X)} training "
             f"images",
             "  model         Henze-Zirkler   KL(fitted Gaussian || N(0,I))   k-means purity"]
    lines += [f"  {name:<12}  {n[name]['hz']:13.2f}   {n[name]['kl_to_prior']:28.3f}   "
              f"{n[name]['kmeans_purity']:14.3f}" for name in models]
    lines += [f"  (Henze-Zirkler of a Gaussian sample of the same size: "
              f"{n['hz_gaussian_reference']:.2f}; of the VAE's sampled codes z ~ q(z|x): "
              f"{n['vae']['hz_aggregate']:.2f})",
              f"GMM prior: its components cluster the digits with purity "
              f"{n['gmm_vae']['gmm_purity']:.3f} ({n['gmm_vae']['components_used']} of 10 "
              f"components used; chance {n['chance_purity']:.3f})",
              f"latent map: {n['map_digits']} different digits (nearest class mean) among the "
              f"{GRID_SIDE}x{GRID_SIDE} decoded codes",
              f"({n['seconds']:.0f} s, {n['cpu_seconds']:.0f} s of CPU)"]
    return ExperimentResult(NAME, numbers, figures, "\n".join(lines))
