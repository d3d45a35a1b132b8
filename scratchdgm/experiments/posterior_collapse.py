r"""Experiment 9, posterior collapse: latent units that carry no information, counted as the
KL weight grows, and as the decoder's power grows.

A latent unit :math:`z_u` has *collapsed* when its posterior is the prior whatever the input,
:math:`q_\gamma(z_u \mid x) = p(z_u)`: it then costs nothing in the KL term and tells the
decoder nothing ([VAE-HVAE-Diffusion, "Strengths and weaknesses of VAEs"]). Two measurements
see it, per unit u, over held-out data:

* the **activity** :math:`A_u = \mathrm{Var}_x\, \mathbb E_{q(z \mid x)}[z_u]`, and the number
  of active units :math:`\#\{u : A_u > 0.01\}` (Burda et al. 2016, §5.2;
  :meth:`~scratchdgm.VAE.active_units`);
* the unit's **KL**, :math:`\mathbb E_x\, \mathrm{KL}(q_\gamma(z_u \mid x) \,\|\, p(z_u))`,
  the u-th summand of the closed-form KL (:meth:`~scratchdgm.VAE.kl_per_dimension`): the
  nats the unit carries, 0 for a collapsed unit.

The ELBO's KL term is what pushes units to collapse: a unit is worth keeping only if it buys
more reconstruction than it costs in KL. Two knobs are swept, each from one trained VAE per
setting:

1. the **KL weight** :math:`\beta` of :math:`\mathbb E_q \log p_\theta(x \mid z) -
   \beta\, \mathrm{KL}(q \,\|\, p)` (``VAE(beta=...)``; Higgins et al. 2017, *beta-VAE*,
   ICLR, eq. 4): the price of every nat a unit carries. Units collapse one after the other as
   it grows, and all of them by :math:`\beta = 4`.
2. the **decoder's power**, from affine to two hidden layers of 200 tanh units, the encoder
   fixed at 64-100-100-2d (``VAE(decoder_hidden=...)``). The usual account is that a decoder
   able to model the data without z leaves z unused (Bowman et al. 2016, *Generating sentences
   from a continuous space*, CoNLL; Chen et al. 2017, *Variational lossy autoencoder*, ICLR,
   their "information preference" argument). That needs a decoder that models the dependence
   between pixels by itself, e.g. an autoregressive one. A factorised Bernoulli decoder cannot,
   however deep: every pixel dependence must go through z. Measured here, the decoder's depth
   leaves 9-10 of the 10 units active and their KL about the same; the library has no
   autoregressive decoder to show the other side.

Data: the digits (:func:`scratchdgm.data.load_digits_protocol`, dynamically binarised),
d = 10 latent units; activities and KLs on the 297 test images.

Numbers of a real full run (``scratchdgm experiment posterior-collapse``, seed 0, 100 epochs per
model; 106 s of CPU on one core, 21 min of wall time on a shared, loaded machine), on the test
images::

    beta  active units  KL (nats)  ELBO     KL per unit, largest first
    0.5   10            9.607      -24.579  1.35 1.34 1.29 1.00 0.81 0.80 0.80 0.79 0.72 0.70
    1      9            4.871      -23.484  0.92 0.90 0.89 0.64 0.47 0.33 0.32 0.21 0.18 0.01
    2      4            1.593      -24.779  0.48 0.44 0.44 0.22 0.00 0.00 0.00 0.00 0.00 0.00
    4      0            0.005      -27.237  (all below 0.001)
    8      0            0.001      -27.238  (all below 0.001)

    decoder   active units  KL (nats)  ELBO     (beta = 1)
    affine    10            5.222      -24.886
    100       10            5.050      -23.641
    100-100    9            4.871      -23.484
    200-200   10            5.371      -23.339

At :math:`\beta \ge 4` the decoder ignores z altogether: its ELBO, -27.24, is that of a model
of independent pixels.

(``--quick``: 15 epochs per model, :math:`\beta \in \{0.5, 1, 2, 8\}`, decoders affine, 100-100
and 200-200. Over seeds 0-19 the active units are 10, 10, 6-10 and 0 at beta = 0.5, 1, 2 and 8,
never increasing with beta, and the KL falls by at least a factor of 2 at each step (6.9-8.0,
3.1-3.7, 0.72-1.08, 0.006-0.008 nats); all 10 units stay active with every decoder (affine,
100-100, 200-200).)
"""

import numpy as np

from scratchdgm.data import load_digits_protocol
from scratchdgm.experiments import ExperimentResult
from scratchdgm.experiments import _common
from scratchdgm.models.deep import VAE

NAME = "posterior-collapse"
SUMMARY = ("posterior collapse: active units and the KL of each latent unit as the KL weight "
           "(beta) or the decoder's power grows")

LATENT_DIM = 10
BETAS = (0.5, 1.0, 2.0, 4.0, 8.0)
#: decoder hidden widths, from the weakest to the most powerful; the encoder is 64-100-100-2d
DECODERS = ((), (100,), (100, 100), (200, 200))
QUICK_BETAS = (0.5, 1.0, 2.0, 8.0)
QUICK_DECODERS = ((), (100, 100), (200, 200))


def collapse_report(model, X):
    r"""Activity, KL per unit and the number of active units of ``model`` on ``X``.

    Returns
    -------
    dict
        ``activity`` (d,), ``kl_per_unit`` (d,), ``active_units``, ``kl`` (their total).
    """
    activity = model.unit_activity(X)
    per_dim = model.kl_per_dimension(X)
    if "z" not in per_dim:
        raise ValueError(f"collapse_report needs a prior with a closed-form KL (the standard "
                         f"normal); the {model.prior.kind!r} prior does not factorise over units")
    kl = per_dim["z"]
    return {"activity": activity.tolist(), "kl_per_unit": kl.tolist(),
            "active_units": model.active_units(X), "kl": float(kl.sum())}


def _train(X, *, beta=1.0, decoder_hidden=None, epochs, seed):
    model = VAE(X.shape[1], LATENT_DIM, hidden=(100, 100), beta=beta,
                decoder_hidden=decoder_hidden, random_state=seed)
    return model.fit(X, epochs=epochs, progress=False, random_state=seed)


def _figure(out_dir, by_beta, by_decoder):
    fig, (ax_ub, ax_ud, ax_beta, ax_dec) = _common.panels(4, width=4.0)
    ax_ub.plot([r["beta"] for r in by_beta], [r["active_units"] for r in by_beta], "o-")
    ax_ub.set_xscale("log", base=2)
    ax_ub.set_xlabel(r"KL weight $\beta$")
    ax_ub.set_title(r"active units ($A_u > 0.01$)")
    ax_ud.plot(range(len(by_decoder)), [r["active_units"] for r in by_decoder], "s-",
               color="C1")
    ax_ud.set_xticks(range(len(by_decoder)))
    ax_ud.set_xticklabels([r["decoder"] for r in by_decoder])
    ax_ud.set_xlabel(r"decoder hidden layers ($\beta = 1$)")
    ax_ud.set_title("active units")
    for ax in (ax_ub, ax_ud):
        ax.set_ylabel(f"active units (of {LATENT_DIM})")
        ax.set_ylim(-0.3, LATENT_DIM + 0.3)
    for ax, rows, key, title in ((ax_beta, by_beta, "beta", r"KL per unit, by $\beta$"),
                                 (ax_dec, by_decoder, "decoder", "KL per unit, by decoder")):
        for r in rows:
            kl = np.sort(r["kl_per_unit"])[::-1]
            ax.semilogy(range(1, LATENT_DIM + 1), np.maximum(kl, 1e-4), "o-", ms=3,
                        label=f"{key} {r[key]}")
        ax.set_xlabel("unit, by decreasing KL")
        ax.set_ylabel("mean KL of the unit (nats; floor 1e-4)")
        ax.set_title(title)
        ax.legend(fontsize=7)
    return _common.save(fig, out_dir, NAME)


@_common.experiment_run
def run(out_dir, quick=False, seed=0):
    r"""Run the experiment; see the module docstring for what it measures.

    Returns
    -------
    ExperimentResult
        ``numbers``: ``by_beta`` and ``by_decoder``, lists of :func:`collapse_report` dicts
        (plus ``beta`` or ``decoder``, and the test ``elbo``, :math:`\mathcal L_1` with K = 1 and
        the unweighted KL); ``epochs``, ``seconds``.
    """
    clock = _common.Stopwatch()
    data = load_digits_protocol()
    epochs = 15 if quick else 100
    betas = QUICK_BETAS if quick else BETAS
    decoders = QUICK_DECODERS if quick else DECODERS
    X_test = data.x_test_binary
    trained = {}

    def report(model, **label):
        r = collapse_report(model, X_test)
        r["elbo"] = model.bound(X_test, k=1, random_state=np.random.default_rng([seed, 5]))
        r.update(label)
        return r

    by_beta = []
    for beta in betas:
        trained[beta, (100, 100)] = _train(data.x_train, beta=beta, epochs=epochs, seed=seed)
        by_beta.append(report(trained[beta, (100, 100)], beta=beta))
    by_decoder = []
    for dec in decoders:
        model = trained.get((1.0, dec)) or _train(data.x_train, decoder_hidden=dec,
                                                  epochs=epochs, seed=seed)
        by_decoder.append(report(model, decoder="-".join(map(str, dec)) or "affine"))
    figure = _figure(out_dir, by_beta, by_decoder)
    numbers = {"epochs": epochs, "latent_dim": LATENT_DIM, "by_beta": by_beta,
               "by_decoder": by_decoder, "seconds": clock.seconds(),
               "cpu_seconds": clock.cpu_seconds()}
    lines = [f"VAE on the digits, d = {LATENT_DIM}, {epochs} epochs; on the test images:",
             "  beta    active units   KL (nats)   ELBO      KL per unit"]
    lines += [f"  {r['beta']:<6}  {r['active_units']:>12}   {r['kl']:9.3f}   {r['elbo']:8.3f}  "
              + " ".join(f"{v:.2f}" for v in sorted(r["kl_per_unit"], reverse=True))
              for r in by_beta]
    lines.append("  decoder   active units   KL (nats)   ELBO      KL per unit")
    lines += [f"  {r['decoder']:<8}  {r['active_units']:>12}   {r['kl']:9.3f}   {r['elbo']:8.3f}  "
              + " ".join(f"{v:.2f}" for v in sorted(r["kl_per_unit"], reverse=True))
              for r in by_decoder]
    lines.append(f"({numbers['seconds']:.0f} s, {numbers['cpu_seconds']:.0f} s of CPU)")
    return ExperimentResult(NAME, numbers, [figure], "\n".join(lines))
