r"""Experiment 7, amortised against per-datapoint inference: how much ELBO the encoder gives
away, and what it saves.

Variational inference over a data set can give every point its own variational parameters,
:math:`q_n(z) = \mathcal N(\lambda_n, \mathrm{diag}\,\eta_n^2)`, each optimised for
:math:`x_n` alone; the cost grows with the data and every new point needs its own optimisation
([Su-DGM, "Extending to Large Datasets"]). A VAE *amortises* it: one encoder
:math:`g_\gamma` outputs :math:`(\lambda_n, \eta_n) = g_\gamma(x_n)` for any point in one
forward pass ([Su-DGM, "Amortizing the Burden of Inference"]). The price is the
**amortisation gap** (Cremer, Li & Duvenaud 2018, *Inference suboptimality in variational
autoencoders*, ICML, who name both gaps): for a fixed decoder,

.. math::

    \log p_\theta(x) - \mathcal L[q_\gamma(z \mid x)] =
    \underbrace{\log p_\theta(x) - \mathcal L[q^\star_x]}_{\text{approximation gap}}
    + \underbrace{\mathcal L[q^\star_x] - \mathcal L[q_\gamma(z \mid x)]}_{\text{amortisation
    gap} \,\ge\, 0},

with :math:`q^\star_x` the best diagonal Gaussian for :math:`x` alone.

The experiment trains a VAE on the digits (the protocol of
:func:`scratchdgm.data.load_digits_protocol`, d = 10), then, for held-out images and with the
decoder fixed, optimises :math:`(\lambda_n, \log\eta_n)` by Adam on each point's ELBO from
the encoder's output until it no longer improves
(:func:`optimise_local_posteriors`). Every ELBO is estimated with the same 1000 samples of
:math:`\varepsilon` per point (common random numbers), and :math:`\log p_\theta(x)` by
importance sampling with K = 5000 (:meth:`~scratchdgm.VAE.score_samples`). Cost per data
point: CPU seconds of the encoder's forward pass against those of the per-point optimisation.

Numbers of a real full run (``scratchdgm experiment amortisation-gap``, seed 0: 100 epochs,
all 297 test images, 700 optimisation steps; 73 s of CPU on one core, 6.8 min of wall time on a
shared, loaded machine), means over the images in nats::

    ELBO, amortised q (the encoder)          -23.4689
    ELBO, per-datapoint q (700 Adam steps)   -23.1848   (the last 100 steps gained 0.0007)
    log p(x), importance sampling, K = 5000  -22.9539
    amortisation gap 0.2841 (every image gains: the smallest gap is 0.0639)
    approximation gap 0.2309
    CPU per image: the encoder 2.1 us, the per-datapoint optimisation 37.9 ms (18 000 times)

The encoder gives away a little more than half of the ELBO's gap to log p(x); the rest is the
diagonal Gaussian family itself. Amortisation is what makes the VAE practical: four orders of
magnitude less computation per data point, and none of it to learn for a new point.

(``--quick``: 30 epochs of training, 60 held-out images, 400 optimisation steps.)
"""

import time

import numpy as np

from scratchdgm import autodiff as _ad
from scratchdgm.data import load_digits_protocol
from scratchdgm.distributions import DiagNormal
from scratchdgm.experiments import ExperimentResult
from scratchdgm.experiments import _common
from scratchdgm.models.deep import VAE
from scratchdgm.nn import Parameter
from scratchdgm.optim import Adam

NAME = "amortisation-gap"
SUMMARY = ("amortised against per-datapoint inference on a trained VAE: the amortisation gap "
           "in nats and the cost per data point")


def elbo_per_point(model, X, q, k, seed):
    r"""The ELBO :math:`\mathcal L[q]` of each row of ``X`` under ``model`` for the proposal
    ``q`` (a :class:`~scratchdgm.distributions.DiagNormal` of batch shape (n,); None: the
    encoder's), with ``k`` samples drawn from ``numpy.random.default_rng(seed)``.

    Returns
    -------
    ndarray, shape (n,)

    Notes
    -----
    :meth:`~scratchdgm.VAE.batch_bound` with ``q``: the reconstruction term estimated from the
    k samples, the KL to the prior in closed form. The same ``seed`` gives the same
    :math:`\varepsilon`, so the ELBOs of two proposals differ by the proposals, not by the
    Monte Carlo noise.
    """
    with _ad.no_grad():
        return np.asarray(model.batch_bound(X, k, np.random.default_rng(seed), q=q).data,
                          dtype=np.float64)


def optimise_local_posteriors(model, X, *, schedule=((1e-2, 300), (3e-3, 200), (1e-3, 200)),
                              k=10, seed=0, record_every=25, record_k=1000, record_seed=None):
    r"""Per-datapoint variational inference: optimise :math:`(\lambda_n, \log \eta_n)` for each
    row of ``X`` alone, the decoder (and prior) held fixed.

    Parameters
    ----------
    model : VAE
        A trained model; its encoder only supplies the starting point.
    X : ndarray, shape (n, p)
    schedule : sequence of (lr, steps)
        Adam's step size, decreasing so that the stochastic gradient settles.
    k : int
        Reparametrised samples per point and step.
    seed : int
        The optimisation's noise.
    record_every : int
        Steps between records of the mean ELBO.
    record_k : int
        Samples per point of each record.
    record_seed : int, optional
        Seed of the records' samples (default ``seed``), the same for every record: see
        :func:`elbo_per_point`.

    Returns
    -------
    q : DiagNormal, batch shape (n,)
        The optimised :math:`\mathcal N(\lambda_n, \mathrm{diag}\,\eta_n^2)` (no graph).
    curve : dict of lists
        ``step`` and ``elbo`` (mean over the points).
    cpu_seconds : float
        CPU time of the optimisation (records excluded).

    Notes
    -----
    The points do not interact: the loss is minus the *sum* of their ELBOs, so each
    :math:`(\lambda_n, \eta_n)` receives the gradient of its own ELBO,

    .. math::

        \nabla_{\lambda_n, \eta_n} \Big( \frac1k \sum_{j} \log p_\theta(x_n \mid \lambda_n +
        \eta_n \odot \varepsilon_j) - \mathrm{KL}\big(\mathcal N(\lambda_n,
        \mathrm{diag}\,\eta_n^2) \,\|\, p(z)\big) \Big),

    the reparametrised gradient of [Su-DGM, "Extending to Large Datasets"] with the KL in closed
    form. Each :math:`(\lambda_n, \eta_n)` is a leaf of the graph; the decoder's weights receive
    gradients too, are never stepped, and are zeroed at the end.
    """
    X = model.check_data(X)
    with _ad.no_grad():
        q0 = model.encode(X)
    lam = Parameter(np.array(q0.mu.data))
    log_eta = Parameter(np.array(q0.log_sigma.data))
    rng = np.random.default_rng([seed, 7])
    record_seed = seed if record_seed is None else record_seed
    curve = {"step": [0],
             "elbo": [float(elbo_per_point(model, X, q0, record_k, record_seed).mean())]}
    cpu, step = 0.0, 0
    for lr, steps in schedule:
        opt = Adam([lam, log_eta], lr=lr)
        for _ in range(steps):
            t = time.process_time()
            loss = -model.batch_bound(X, k, rng, q=DiagNormal(lam, log_eta)).sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
            cpu += time.process_time() - t
            step += 1
            if step % record_every == 0:
                q = DiagNormal(lam.data, log_eta.data)
                curve["step"].append(step)
                curve["elbo"].append(float(elbo_per_point(model, X, q, record_k,
                                                          record_seed).mean()))
    model.zero_grad()  # what the decoder accumulated is no gradient of anything trained
    return DiagNormal(np.array(lam.data), np.array(log_eta.data)), curve, cpu


def _figure(out_dir, curve, elbo_amortised, elbo_local, log_px):
    fig, (ax_curve, ax_points) = _common.panels(2, width=5.2)
    ax_curve.plot(curve["step"], curve["elbo"], label=r"per-datapoint $q^\star_x$ (Adam)")
    ax_curve.axhline(elbo_amortised.mean(), color="C1", ls="--",
                     label=r"amortised $q_\gamma(z \mid x)$")
    ax_curve.axhline(log_px.mean(), color="k", ls=":",
                     label=r"$\log p_\theta(x)$ (IS, K = 5000)")
    ax_curve.set_xlabel("optimisation step")
    ax_curve.set_ylabel("mean over held-out images (nats)")
    ax_curve.set_title("ELBO of per-datapoint inference")
    ax_curve.legend(loc="center right")
    amort = elbo_local - elbo_amortised
    approx = log_px - elbo_local
    ax_points.scatter(amort, approx, s=8)
    ax_points.set_xlabel(r"amortisation gap ELBO$[q^\star_x]$ - ELBO$[q_\gamma]$")
    ax_points.set_ylabel(r"approximation gap $\log p_\theta(x)$ - ELBO$[q^\star_x]$")
    ax_points.set_title("per image (nats)")
    return _common.save(fig, out_dir, NAME)


@_common.experiment_run
def run(out_dir, quick=False, seed=0):
    r"""Run the experiment; see the module docstring for what it measures.

    Returns
    -------
    ExperimentResult
        ``numbers``: ``elbo_amortised``, ``elbo_local``, ``log_px`` (means over the held-out
        images), ``amortisation_gap`` and ``approximation_gap`` (means), ``amortisation_gap_min``
        (smallest over the images), ``last_improvement`` (mean ELBO gained over the last
        100 steps: how converged), ``encoder_cpu_per_point`` and ``local_cpu_per_point``
        (seconds) and their ``cost_ratio``; ``epochs``, ``n_points``, ``steps``, ``seconds``.
    """
    clock = _common.Stopwatch()
    data = load_digits_protocol()
    epochs, n_points = (30, 60) if quick else (100, len(data.x_test_binary))
    schedule = ((1e-2, 200), (3e-3, 100), (1e-3, 100)) if quick else \
        ((1e-2, 300), (3e-3, 200), (1e-3, 200))
    model = VAE(64, latent_dim=10, hidden=(100, 100), random_state=seed)
    model.fit(data.x_train, epochs=epochs, progress=False, random_state=seed)
    X = data.x_test_binary[:n_points]

    reps = 20  # the encoder's pass is too quick to time once
    t = time.process_time()
    for _ in range(reps):
        with _ad.no_grad():
            q_amortised = model.encode(X)
    encoder_cpu = (time.process_time() - t) / reps
    eval_seed = 10_000 + seed
    q_local, curve, local_cpu = optimise_local_posteriors(model, X, schedule=schedule,
                                                          seed=seed, record_seed=eval_seed)
    elbo_amortised = elbo_per_point(model, X, q_amortised, 1000, eval_seed)
    elbo_local = elbo_per_point(model, X, q_local, 1000, eval_seed)
    log_px = model.score_samples(X, k=5000, random_state=np.random.default_rng([seed, 8]))

    steps = sum(s for _, s in schedule)
    last = np.searchsorted(curve["step"], steps - 100)
    numbers = {
        "epochs": epochs, "n_points": n_points, "steps": steps,
        "elbo_amortised": float(elbo_amortised.mean()),
        "elbo_local": float(elbo_local.mean()),
        "log_px": float(log_px.mean()),
        "amortisation_gap": float((elbo_local - elbo_amortised).mean()),
        "amortisation_gap_min": float((elbo_local - elbo_amortised).min()),
        "approximation_gap": float((log_px - elbo_local).mean()),
        "last_improvement": float(curve["elbo"][-1] - curve["elbo"][last]),
        "encoder_cpu_per_point": encoder_cpu / n_points,
        "local_cpu_per_point": local_cpu / n_points,
    }
    numbers["cost_ratio"] = numbers["local_cpu_per_point"] / numbers["encoder_cpu_per_point"]
    figure = _figure(out_dir, curve, elbo_amortised, elbo_local, log_px)
    numbers["seconds"] = clock.seconds()
    numbers["cpu_seconds"] = clock.cpu_seconds()
    n = numbers
    text = "\n".join([
        f"VAE (d = 10, {epochs} epochs), {n_points} held-out images, means in nats:",
        f"  ELBO, amortised q (encoder)        {n['elbo_amortised']:.4f}",
        f"  ELBO, per-datapoint q ({steps} steps)  {n['elbo_local']:.4f}   "
        f"(last 100 steps gained {n['last_improvement']:.4f})",
        f"  log p(x), IS with K = 5000         {n['log_px']:.4f}",
        f"  amortisation gap {n['amortisation_gap']:.4f} (smallest "
        f"{n['amortisation_gap_min']:.4f}), approximation gap {n['approximation_gap']:.4f}",
        f"  CPU per data point: encoder {n['encoder_cpu_per_point'] * 1e6:.1f} us, per-datapoint "
        f"optimisation {n['local_cpu_per_point'] * 1e3:.1f} ms ({n['cost_ratio']:.0f} x)",
        f"({n['seconds']:.0f} s, {n['cpu_seconds']:.0f} s of CPU)"])
    return ExperimentResult(NAME, numbers, [figure], text)
