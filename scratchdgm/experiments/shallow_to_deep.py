r"""Experiment 5, from shallow to deep: a VAE whose decoder is affine is PPCA, and training it
by its ELBO finds PPCA's maximum-likelihood solution; so does variational EM.

The lectures build the deep latent-variable model by replacing PPCA's affine map
:math:`z \mapsto Wz + \mu` with a neural network ([Mattei-DGM, "Linear latent-variable
models"], [Mattei-DGM, "From linear (« shallow ») to deep variable models"]). Going back the
other way is a check that the deep machinery is right: a VAE with

* the decoder ``nn.MLP([d, p])`` (no hidden layer: :math:`f_\theta(z) = Wz + \mu`),
* the Gaussian observation model with one learned noise level, :math:`\sigma^2 I_p`
  (``likelihood='gaussian:isotropic'``),
* the encoder ``nn.MLP([p, 2d])`` (affine too: the exact posterior's mean is affine in x and
  its covariance does not depend on x),

*is* PPCA, :math:`x \sim \mathcal N(\mu, WW^\top + \sigma^2 I_p)`, so its exact
log-likelihood is known (:func:`scratchdgm.models.linear.gaussian.log_density`). Trained by Adam
on its ELBO alone, it should reach the log-likelihood of the closed-form solution (Tipping &
Bishop 1999, eqs. 7-8; :class:`~scratchdgm.PPCA`) and span the same principal subspace
(principal angles between the column spaces of the two W's, :func:`scipy.linalg.subspace_angles`).
That the ELBO of a diagonal-Gaussian encoder can get there at all is the result of Lucas,
Tucker, Grosse & Norouzi (2019, *Don't blame the ELBO!*, NeurIPS): at the PPCA solution with
orthogonal columns the posterior factorises, and the ELBO is tight.

The second half runs *variational EM* ([Isachenko-L4, "Variational EM-algorithm"]) on the same
data: the E-step maximises the ELBO over factorised Gaussians :math:`q(z_i)` (the family the
VAE's encoder outputs), the M-step over :math:`(W, \sigma^2)`, each in closed form
(:func:`scratchdgm.models.linear.gaussian.em_step` with ``posterior='mean_field'``). The ELBO
never decreases, and the iteration converges to the closed form; its last stretch is slow, since
the ELBO only weakly prefers the rotation of W that makes the posterior factorise (the
mean-field gap, :func:`~scratchdgm.models.linear.gaussian.mean_field_gap`, is then a few
1e-4 nats). Exact EM (``posterior='exact'``) is drawn for comparison.

Data: the bundled digits as continuous data (:func:`scratchdgm.data.load_digits_continuous`,
1500 training images, p = 64), d = 4.

Numbers of a real full run (``scratchdgm experiment shallow-to-deep``, seed 0; 15 s of CPU on
one core, 85 s of wall time on a shared, loaded machine), mean log-likelihood per image in
nats::

    PPCA closed form          train 10.4922   test 10.1676   sigma^2 0.03581
    linear VAE, 300 epochs    train 10.4862   test 10.1723   ELBO 10.4674
        of Adam on its ELBO   PPCA - VAE = 0.0060; largest principal angle 0.60 deg
    variational EM, 3000      train 10.4921   ELBO 10.4919   (PPCA - VEM = 1.4e-4)
        iterations            largest principal angle 7e-13 deg; the ELBO never decreased
    exact EM, 300 iterations  PPCA - EM = 2e-14

(``--quick``: 120 epochs and 1000 iterations; over seeds 0-19 the VAE then ends 0.0015-0.0114
nats below PPCA with principal angles of 0.50-0.89 degrees, variational EM 4e-4 to 3e-3 nats
below it.)
"""

import numpy as np
from scipy.linalg import subspace_angles

from scratchdgm import autodiff as _ad
from scratchdgm.data import load_digits_continuous
from scratchdgm.experiments import ExperimentResult
from scratchdgm.experiments import _common
from scratchdgm.models.deep import VAE
from scratchdgm.models.deep import bounds as _bounds
from scratchdgm.models.linear import PPCA
from scratchdgm.models.linear import gaussian as _gaussian

NAME = "shallow-to-deep"
SUMMARY = ("a VAE with an affine decoder, trained by its ELBO, recovers PPCA's maximum-likelihood "
           "solution; so does variational EM")

#: latent dimension of both models: the digits' covariance has eigenvalues ... 0.347, 0.245,
#: 0.209 ..., so d = 4 leaves a clear gap (ratio 1.4) between the kept and discarded directions
#: and the principal subspace is well defined (d = 5 would leave 1.17)
LATENT_DIM = 4


def linear_vae(p, d, random_state=0):
    r"""The VAE that is PPCA: affine encoder and decoder, isotropic Gaussian noise.

    Parameters
    ----------
    p, d : int
        Observed and latent dimensions.
    random_state : int

    Returns
    -------
    VAE
        ``hidden=()`` makes both networks single affine layers: encoder :math:`x \mapsto
        (\mu_\gamma(x), \log\sigma_\gamma(x))`, decoder :math:`z \mapsto Wz + \mu`.
    """
    return VAE(p, d, hidden=(), likelihood="gaussian:isotropic", random_state=random_state)


def linear_vae_parameters(model):
    r"""Read PPCA's parameters off a :func:`linear_vae`.

    Returns
    -------
    W : ndarray, shape (p, d)
        The decoder's weight (``Linear`` computes :math:`zW^\top`-style ``z @ weight``, so
        :math:`W` is its transpose).
    sigma2 : float
        :math:`\sigma^2 = e^{2 \log\sigma}`.
    mean : ndarray, shape (p,)
        The decoder's bias :math:`\mu`.
    """
    (layer,) = model.decoder.layers
    return (np.array(layer.weight.data, dtype=np.float64).T,
            float(np.exp(2.0 * model.observation.log_sigma.data[0])),
            np.array(layer.bias.data, dtype=np.float64))


def linear_vae_log_likelihood(model, X):
    r"""Exact mean :math:`\log p_\theta(x)` of a :func:`linear_vae` over the rows of ``X``:
    :math:`\log \mathcal N(x \mid \mu, WW^\top + \sigma^2 I)`, no sampling."""
    W, sigma2, mean = linear_vae_parameters(model)
    return float(np.mean(_gaussian.log_density(X, W, sigma2, mean)))


def elbo(model, X, k, rng):
    r"""The model's ELBO :math:`\mathcal L_1` averaged over ``X``: the reconstruction term
    estimated with ``k`` samples per point, the KL in closed form
    (:func:`scratchdgm.models.deep.bounds.elbo_analytic_kl`)."""
    with _ad.no_grad():
        s = model.weighted_samples(X, k, rng)
        return float(np.mean(_bounds.elbo_analytic_kl(s.log_px_given_z,
                                                      model.prior.kl(s.q)).data))


def largest_principal_angle(W, V):
    r"""The largest principal angle, in degrees, between the column spaces of W and V."""
    return float(np.degrees(np.max(subspace_angles(W, V))))


def train_linear_vae(X, d, *, schedule, batch_size=100, seed=0, W_ref=None, elbo_k=20):
    r"""Train :func:`linear_vae` by Adam on its ELBO, recording after every epoch its exact
    log-likelihood, its ELBO and (given ``W_ref``) the largest principal angle to ``W_ref``.

    Parameters
    ----------
    X : ndarray, shape (n, p)
    d : int
    schedule : sequence of (lr, epochs)
        Successive ``fit`` calls; the step size decreases so that the stochastic gradient
        settles at the optimum.
    batch_size : int
    seed : int
        Weights and the training stream.
    W_ref : ndarray, shape (p, d), optional
    elbo_k : int
        Samples per point of the recorded ELBO.

    Returns
    -------
    model : VAE
    curve : dict of lists
        ``epoch``, ``log_likelihood``, ``elbo``, ``angle_deg``.
    """
    model = linear_vae(X.shape[1], d, random_state=seed)
    curve = {"epoch": [], "log_likelihood": [], "elbo": [], "angle_deg": []}
    done = 0

    def record(epoch, _):
        curve["epoch"].append(done + epoch)
        curve["log_likelihood"].append(linear_vae_log_likelihood(model, X))
        # the same noise every epoch (common random numbers): the curve shows the model
        # changing, not the Monte Carlo error changing
        curve["elbo"].append(elbo(model, X, elbo_k, np.random.default_rng([seed, 1])))
        if W_ref is not None:
            curve["angle_deg"].append(largest_principal_angle(linear_vae_parameters(model)[0],
                                                              W_ref))

    for i, (lr, epochs) in enumerate(schedule):
        model.fit(X, epochs=epochs, lr=lr, batch_size=batch_size, progress=False,
                  random_state=seed * 1000 + i, callback=record)
        done += epochs
    return model, curve


def variational_em(X, d, n_iter, *, posterior="mean_field", seed=0, W_ref=None):
    r"""Run (variational) EM for PPCA from a random start, recording the log-likelihood, the
    ELBO of the E-step's q and the principal angle to ``W_ref`` before every iteration.

    Parameters
    ----------
    X : ndarray, shape (n, p)
    d : int
    n_iter : int
    posterior : {'mean_field', 'exact'}
        Variational EM, or exact EM (then the ELBO equals the log-likelihood).
    seed : int
        The initial W: :math:`W_{jk} \sim \mathcal N(0, \bar v / 2d)`, :math:`\sigma^2 =
        \bar v / 2`, :math:`\bar v = \mathrm{tr}(S) / p`, as ``PPCA(method='em')`` starts.
    W_ref : ndarray, shape (p, d), optional

    Returns
    -------
    W : ndarray, shape (p, d)
    sigma2 : float
    curve : dict of lists
        ``iteration``, ``log_likelihood``, ``elbo``, ``angle_deg``.

    Notes
    -----
    Per iteration, with :math:`q_i` the E-step's distribution of :math:`z_i`:

    .. math::

        \mathrm{ELBO} = \frac1n \sum_i \mathbb E_{q_i}[\log p_\theta(x_i, z_i) - \log q_i(z_i)]
        = \frac1n \ell(\theta) - \mathrm{KL}(q_i \,\|\, p_\theta(z_i \mid x_i)),

    the KL being the same for every point (:func:`~scratchdgm.models.linear.gaussian.
    mean_field_gap`; 0 for exact EM).
    """
    S = np.cov(X, rowvar=False, bias=True)  # the 1/n covariance of the likelihood
    p = S.shape[0]
    rng = np.random.default_rng(seed)
    var = np.trace(S) / p
    W = rng.standard_normal((p, d)) * np.sqrt(var / (2.0 * d))
    psi = np.full(p, 0.5 * var)
    curve = {"iteration": [], "log_likelihood": [], "elbo": [], "angle_deg": []}
    for it in range(n_iter + 1):
        ll = _gaussian.gaussian_loglike_from_cov(S, W, psi)
        gap = _gaussian.mean_field_gap(W, psi) if posterior == "mean_field" else 0.0
        curve["iteration"].append(it)
        curve["log_likelihood"].append(ll)
        curve["elbo"].append(ll - gap)
        if W_ref is not None:
            curve["angle_deg"].append(largest_principal_angle(W, W_ref))
        if it < n_iter:
            W, psi = _gaussian.em_step(S, W, psi, isotropic=True, posterior=posterior)
    return W, float(psi[0]), curve


def _figure(out_dir, ll_ppca, vae_curve, vem_curve, em_curve):
    fig, (ax_vae, ax_vem, ax_angle) = _common.panels(3)
    floor = 1e-12  # values below this (round-off) are drawn at it (log axes)

    def gap(values):
        return np.maximum(ll_ppca - np.asarray(values), floor)

    ax_vae.semilogy(vae_curve["epoch"], gap(vae_curve["log_likelihood"]),
                    label=r"$\log p_\theta(x)$ (exact)")
    ax_vae.semilogy(vae_curve["epoch"], gap(vae_curve["elbo"]), label="ELBO")
    ax_vae.set_xlabel("epoch (Adam)")
    ax_vae.set_ylabel("PPCA maximum minus value (nats / image)")
    ax_vae.set_title("linear VAE trained by its ELBO")
    ax_vae.legend()
    it_vem, it_em = np.asarray(vem_curve["iteration"]), np.asarray(em_curve["iteration"])
    ax_vem.loglog(it_vem[1:], gap(vem_curve["log_likelihood"])[1:],
                  label=r"variational EM, $\log p_\theta(x)$")
    ax_vem.loglog(it_vem[1:], gap(vem_curve["elbo"])[1:], "--", label="variational EM, ELBO")
    ax_vem.loglog(it_em[1:], gap(em_curve["log_likelihood"])[1:], ":", label="exact EM")
    ax_vem.set_xlabel("iteration")
    ax_vem.set_title("(variational) EM on PPCA")
    ax_vem.legend(fontsize=8)
    ax_angle.semilogy(vae_curve["epoch"], vae_curve["angle_deg"], label="linear VAE (epochs)")
    ax_angle.semilogy(it_vem[1:], np.maximum(vem_curve["angle_deg"][1:], floor),
                      label="variational EM (iterations)")
    ax_angle.set_xscale("log")
    ax_angle.set_xlabel("epoch / iteration")
    ax_angle.set_ylabel("largest principal angle to PPCA (degrees)")
    ax_angle.set_title("principal subspace")
    ax_angle.legend()
    return _common.save(fig, out_dir, NAME)


@_common.experiment_run
def run(out_dir, quick=False, seed=0):
    r"""Run the experiment; see the module docstring for what it measures.

    Returns
    -------
    ExperimentResult
        ``numbers``: ``ppca`` (``train_ll``, ``test_ll``, ``sigma2``), ``linear_vae``
        (``train_ll``, ``test_ll``, ``elbo``, ``ll_gap`` = PPCA minus VAE on the training set,
        ``angle_deg``, ``sigma2``, ``epochs``), ``variational_em`` (``iterations``,
        ``train_ll``, ``elbo``, ``ll_gap``, ``angle_deg``, ``monotone`` = the ELBO never
        decreased by more than 1e-10), ``exact_em_ll_gap``, ``seconds``.
    """
    clock = _common.Stopwatch()
    data = load_digits_continuous(seed)
    X, X_test = data.x_train, data.x_test
    d = LATENT_DIM
    ppca = PPCA(d).fit(X)
    W_ppca = ppca.components_.T
    ll_ppca = ppca.score(X)

    schedule = [(1e-2, 30), (3e-3, 30), (1e-3, 30), (3e-4, 30)] if quick else \
        [(1e-2, 50), (3e-3, 50), (1e-3, 100), (3e-4, 100)]
    model, vae_curve = train_linear_vae(X, d, schedule=schedule, seed=seed, W_ref=W_ppca)
    n_iter = 1000 if quick else 3000
    W_vem, sigma2_vem, vem_curve = variational_em(X, d, n_iter, seed=seed, W_ref=W_ppca)
    _, _, em_curve = variational_em(X, d, min(n_iter, 300), posterior="exact", seed=seed)
    elbo_vem = np.asarray(vem_curve["elbo"])

    W_vae, sigma2_vae, _ = linear_vae_parameters(model)
    rng = np.random.default_rng([seed, 2])
    vae = {"train_ll": linear_vae_log_likelihood(model, X),
           "test_ll": linear_vae_log_likelihood(model, X_test),
           "elbo": elbo(model, X, 200, rng),
           "angle_deg": largest_principal_angle(W_vae, W_ppca),
           "sigma2": sigma2_vae,
           "epochs": int(vae_curve["epoch"][-1])}
    vae["ll_gap"] = ll_ppca - vae["train_ll"]
    vem = {"iterations": n_iter,
           "train_ll": vem_curve["log_likelihood"][-1],
           "elbo": vem_curve["elbo"][-1],
           "ll_gap": ll_ppca - vem_curve["log_likelihood"][-1],
           "angle_deg": vem_curve["angle_deg"][-1],
           "sigma2": sigma2_vem,
           "monotone": bool(np.all(np.diff(elbo_vem) >= -1e-10))}
    numbers = {"latent_dim": d,
               "ppca": {"train_ll": ll_ppca, "test_ll": ppca.score(X_test),
                        "sigma2": float(ppca.noise_variance_)},
               "linear_vae": vae, "variational_em": vem,
               "exact_em_ll_gap": ll_ppca - em_curve["log_likelihood"][-1]}
    figure = _figure(out_dir, ll_ppca, vae_curve, vem_curve, em_curve)
    numbers["seconds"] = clock.seconds()
    numbers["cpu_seconds"] = clock.cpu_seconds()
    text = "\n".join([
        f"PPCA closed form (d = {d})   train ll {ll_ppca:.4f}   test ll "
        f"{numbers['ppca']['test_ll']:.4f}   sigma^2 {numbers['ppca']['sigma2']:.5f}",
        f"linear VAE, {vae['epochs']} epochs of Adam on the ELBO: train ll {vae['train_ll']:.4f} "
        f"(PPCA - VAE = {vae['ll_gap']:.4f}), test ll {vae['test_ll']:.4f}, ELBO "
        f"{vae['elbo']:.4f}, largest principal angle {vae['angle_deg']:.2f} deg",
        f"variational EM, {n_iter} iterations: ll {vem['train_ll']:.4f} (PPCA - VEM = "
        f"{vem['ll_gap']:.1e}), ELBO {vem['elbo']:.4f}, angle {vem['angle_deg']:.1e} deg, "
        f"ELBO non-decreasing: {vem['monotone']}",
        f"exact EM, {min(n_iter, 300)} iterations: PPCA - EM = "
        f"{numbers['exact_em_ll_gap']:.1e}",
        f"({numbers['seconds']:.0f} s, {numbers['cpu_seconds']:.0f} s of CPU)"])
    return ExperimentResult(NAME, numbers, [figure], text)
