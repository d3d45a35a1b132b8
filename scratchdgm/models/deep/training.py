r"""Training loop for VAE / IWAE: minibatch Adam with dynamic binarisation, a progress bar, a
per-epoch validation bound, crash-safe checkpoints every epoch with exact resume, and a guard
against divergence.

Algorithm: stochastic gradient ascent on the bound ([Mattei-DGM, "How do we actually train
VAEs?"] in ``docs/lectures.md``: unbiased reparametrised gradient estimates, fed to Adam). Each epoch
shuffles the training set, and for a Bernoulli likelihood re-binarises each minibatch
(:math:`x_{\text{bin}} = [u < x]`, :math:`u \sim \mathcal U(0, 1)`: "dynamic binarisation",
Burda et al. 2016, Section 5), so the model sees fresh binary images every epoch.

Missing data. A model that accepts missing entries (MIWAE, :mod:`~scratchdgm.models.deep.miwae`)
receives them as NaN in its minibatches: its ``check_data`` lets NaN through, binarisation
leaves them NaN, and its ``objective`` reads the mask from them. Other models reject NaN in
``check_data``, before training starts.

Exactness of resume. All randomness of a run (shuffles, binarisation, the reparametrisation
noise) comes from one :class:`numpy.random.Generator` seeded by ``random_state``; at the end of
each epoch the checkpoint stores the weights, Adam's moments and step counts, that generator's
state and the history. A resumed run restores all of them, so it performs the same floating-point
operations in the same order as the uninterrupted run, and the two agree bit for bit. The
validation bound draws from its own generator, seeded per epoch, so evaluating never perturbs
the training stream. The checkpoint also records the run's settings and a fingerprint of the
training data (:func:`scratchdgm.checkpoint.array_fingerprint`): resuming with other settings or
other data is refused, since it would not continue the same run.

Divergence. A step size too large for the model and data makes the weights blow up: the loss,
or a distribution parameter computed by a network, becomes NaN or infinite (the distributions
raise :class:`~scratchdgm.validation.NonFiniteError`). Training then stops with
:class:`TrainingDivergedError`, which names the likely cause and the last good epoch, after
restoring the weights of that epoch; the checkpoint on disk, written at the end of that epoch,
is left as it is.
"""

import math
import os
import time

import numpy as np

from scratchdgm.checkpoint import array_fingerprint, load_npz, remove_stale_temporaries
from scratchdgm.models.deep.persistence import (
    CHECKPOINT_KIND,
    CHECKPOINT_VERSION,
    check_same_architecture,
)
from scratchdgm.memory import reuse_freed_memory
from scratchdgm.optim import Adam
from scratchdgm.progress import progress as _progress
from scratchdgm.threads import blas_threads as _blas_threads
from scratchdgm.threads import kernel_threads
from scratchdgm.validation import NonFiniteError, check_int, check_real

__all__ = ["fit", "TrainingDivergedError", "load_training_state", "format_bound"]

TRAINING_FORMAT = 1


class TrainingDivergedError(RuntimeError):
    r"""Training diverged: the loss or the weights became NaN or infinite.

    Raised by :func:`fit` after it has reset the model's weights to the end of the last good
    epoch (the checkpoint of that epoch, if any, is kept). The message names the likely cause
    and the remedy.

    Attributes
    ----------
    epoch : int
        The epoch during which it happened.
    step : int or None
        The step within that epoch (None: after the epoch's steps, e.g. in the validation
        bound).
    last_good_epoch : int
        The epoch whose weights the model now holds (0: the initial weights).
    lr : float
        The step size of the run.
    checkpoint : str or None
    """

    def __init__(self, message, *, epoch, step, last_good_epoch, lr, checkpoint):
        super().__init__(message)
        self.epoch, self.step, self.last_good_epoch = epoch, step, last_good_epoch
        self.lr, self.checkpoint = lr, checkpoint


def format_bound(value):
    r"""A bound (nats) for a progress line: 3 decimals, or 4 significant digits in scientific
    notation when it is huge (a bound of -1e47 from a model that is blowing up must not fill
    the terminal with 48 digits)."""
    value = float(value)
    if math.isfinite(value) and abs(value) < 1e6:
        return f"{value:.3f}"
    return f"{value:.3e}"


def _binarize_mode(model, X, binarize):
    if binarize not in ("auto", "dynamic", "none", None, False, True):
        raise ValueError(f"binarize must be 'auto', 'dynamic' or 'none', got {binarize!r}")
    # models of continuous data without an observation model (flows, diffusion) never binarise
    observation = getattr(model, "observation", None)
    binary = observation is not None and observation.binary_data
    if binarize in ("none", None, False):
        return "none"
    if binarize in ("dynamic", True):
        if not binary:
            kind = (f"a {observation.kind!r} likelihood" if observation is not None
                    else f"no observation model ({type(model).__name__} is a model of "
                         f"continuous data)")
            raise ValueError("dynamic binarisation only makes sense for a Bernoulli likelihood; "
                             f"this model has {kind}")
        return "dynamic"
    # auto: dynamic for a Bernoulli likelihood on non-binary intensities in [0, 1] (NaN, a
    # missing entry for models that accept them, is neither)
    if binary and not np.all((X == 0) | (X == 1) | np.isnan(X)):
        return "dynamic"
    return "none"


def _save_checkpoint(path, model, opt, *, epoch, rng, history, run, metadata=None):
    arrays = {f"optim.{k}": np.asarray(v) for k, v in opt.state_dict().items()}
    meta = {"training": {"format": TRAINING_FORMAT, "epoch": epoch,
                         "rng_state": rng.bit_generator.state, "history": history, "run": run,
                         "metadata": dict(metadata or {})}}
    model.save(path, metadata=meta, extra_arrays=arrays)


def load_training_state(path):
    r"""Read a training checkpoint: ``(arrays, metadata)`` with the ``'training'`` entry checked.

    Raises
    ------
    ValueError
        If the file is missing, truncated, of another kind, or has no training state.
    """
    arrays, meta = load_npz(path, kind=CHECKPOINT_KIND, format_version=CHECKPOINT_VERSION)
    training = meta.get("training")
    if not isinstance(training, dict) or training.get("format") != TRAINING_FORMAT:
        raise ValueError(f"{path} is a model file without training state (or of an unknown "
                         f"training format); expected a checkpoint written by fit()")
    return arrays, meta


def fit(model, X, *, epochs=100, batch_size=20, lr=1e-3, X_val=None, binarize="auto",
        checkpoint=None, resume=False, progress=True, random_state=0, val_k=None,
        callback=None, blas_threads=1, metadata=None):
    r"""Train ``model`` (a :class:`~scratchdgm.VAE` or :class:`~scratchdgm.IWAE`) by minibatch
    Adam on its bound.

    Parameters
    ----------
    model : VAE, IWAE or another deep model of the library
        What the loop needs of a model: ``check_data(X, where, allow_unit_interval=...)``,
        ``objective(x, k, rng)`` (the loss of one minibatch, a scalar Tensor), ``bound(X, k,
        random_state)`` (for ``X_val``), the attributes ``k``, ``dtype`` and ``backend``, and
        the :class:`~scratchdgm.nn.Module` methods (``parameters``, ``state_dict``,
        ``load_state_dict``) with ``config`` and ``save`` for checkpoints. An ``observation``
        model is optional: without one (a flow, a diffusion model: continuous data) nothing is
        binarised.
    X : ndarray, shape (n, p)
        Training data (for a Bernoulli likelihood: binary, or intensities in [0, 1] that are
        binarised dynamically).
    epochs : int
        Total number of epochs (a resumed run continues up to this number, which must not be
        smaller than the number of epochs the checkpoint already holds).
    batch_size : int
    lr : float
        Adam step size.
    X_val : ndarray, shape (n_val, p), optional
        Validation data (binary for Bernoulli): its bound with ``val_k`` samples (default the
        model's ``k``) is computed after every epoch.
    binarize : {'auto', 'dynamic', 'none'}
        ``'auto'``: dynamic binarisation for a Bernoulli likelihood on non-binary data.
    checkpoint : str or os.PathLike, optional
        File written (atomically) after every epoch with everything needed to resume.
    resume : bool
        Continue from ``checkpoint`` if it exists (its architecture must match ``model``, its
        run settings those given here, and its training data ``X``). Temporary files of
        checkpoint writes that were killed are removed
        (:func:`scratchdgm.checkpoint.remove_stale_temporaries`).
    progress : bool
        Show a progress bar over the whole run (epoch, running bound, validation bound, time
        left) on stderr; it is drawn only on a terminal, see :mod:`scratchdgm.progress`.
    random_state : int
        Seeds every random draw of training.
    val_k : int, optional
    callback : callable ``(epoch, record) -> None``, optional
        Called after each epoch with that epoch's history record.
    blas_threads : int or None
        Threads of the BLAS pool during training (default 1, the fastest for these small
        matrices, see :func:`scratchdgm.threads.blas_threads`). Whatever it is, the training
        steps run the serial versions of the compiled kernels (:func:`scratchdgm.threads.
        kernel_threads`): they compile in about half the time of the parallel ones and run a
        batch of 20 as fast, and beside a BLAS on several threads the two pools' waiting
        threads take the cores from each other (measured, IWAE 784-200-200-50, batch 20,
        float32, 2 cores: BLAS and kernels both on 2 threads, 43.7 / 66.2 ms a step at K = 1 /
        50; BLAS on 2 and the kernels serial, 2.9 / 22.9 ms; both on 1, 3.3 / 23.5 ms). With
        the kernels serial, a second BLAS thread pays from K = 5 on that network: ``scratchdgm
        bench iwae-step --threads 2 --no-torch`` measured 3.2 / 14.7 ms a step at K = 5 / 50
        against 5.2 / 24.8 ms on one thread (the same at K = 1). On a busy machine it can lose
        (:func:`scratchdgm.threads.blas_threads`), hence the default. None leaves both alone.
        The validation bound is evaluated on every core (or as many as an enclosing
        ``kernel_threads`` allows).
    metadata : dict, optional
        JSON-serialisable information stored in every checkpoint (under
        ``['training']['metadata']``), e.g. how to load the training data again: the command
        line stores its ``--data`` spec and seed there.

    Returns
    -------
    dict
        ``model.history_``: lists ``epoch``, ``train_bound`` (mean of the minibatch bounds over
        the epoch), ``val_bound``, ``epoch_seconds``, and ``train_seconds`` (total time spent in
        optimisation steps).

    Raises
    ------
    TrainingDivergedError
        If the loss, the weights or a distribution parameter become NaN/inf: training stops,
        the model's weights are reset to the end of the last finished epoch, and the checkpoint
        on disk (that epoch's) is left untouched.
    ValueError, TypeError
        Bad data, settings, a checkpoint of another architecture, other settings or other
        training data, or one that already holds more than ``epochs`` epochs -- before
        anything is written.

    Notes
    -----
    One step, for a minibatch :math:`x_{1..B}`, is ``loss = model.objective(x, k, rng);
    opt.zero_grad(); loss.backward(); opt.step()`` with
    :math:`\text{loss} = -\frac1B \sum_i \hat{\mathcal L}(x_i)`.

    A model may define ``on_epoch_start(epoch) -> dict or None``: it is called before each epoch
    (numbered from 1) to set what changes with the epoch, e.g. the annealed Gumbel-softmax
    temperature of :mod:`~scratchdgm.models.deep.discrete`, and what it returns (name -> number)
    is appended to ``history`` under those names. It must depend on the epoch alone, so that a
    resumed run repeats it.
    """
    # reuse_freed_memory: each step's temporaries are reused by the next instead of being
    # returned to the system and requested again (scratchdgm.memory; about a quarter of a step)
    with _blas_threads(blas_threads), reuse_freed_memory():
        return _fit(model, X, epochs=epochs, batch_size=batch_size, lr=lr, X_val=X_val,
                    binarize=binarize, checkpoint=checkpoint, resume=resume, progress=progress,
                    random_state=random_state, val_k=val_k, callback=callback,
                    metadata=metadata, step_threads=None if blas_threads is None else 1)


def _fit(model, X, *, epochs, batch_size, lr, X_val, binarize, checkpoint, resume, progress,
         random_state, val_k, callback, metadata, step_threads):
    X = model.check_data(X, "X", allow_unit_interval=True)
    epochs = check_int(epochs, "epochs", 1, "fit")
    batch_size = check_int(batch_size, "batch_size", 1, "fit")
    lr = check_real(lr, "lr", "fit", low=0.0, low_open=True)
    if X_val is not None:
        X_val = model.check_data(X_val, "X_val")
    val_k = model.k if val_k is None else check_int(val_k, "val_k", 1, "fit")
    if not isinstance(random_state, (int, np.integer)) or isinstance(random_state, bool):
        raise TypeError(f"random_state must be an int seed (it is stored in checkpoints for "
                        f"exact resume), got {random_state!r}")
    if metadata is not None and not isinstance(metadata, dict):
        raise TypeError(f"fit: metadata must be a dict or None, got {type(metadata).__name__}")
    mode = _binarize_mode(model, X, binarize)
    if mode == "none" and getattr(model, "observation", None) is not None:
        model.observation.check_data(X, "X")
    run = {"epochs": epochs, "batch_size": batch_size, "lr": float(lr), "k": model.k,
           "binarize": mode, "random_state": int(random_state), "n_train": int(len(X)),
           "data_fingerprint": array_fingerprint(X)}

    opt = Adam(model.parameters(), lr=lr, backend=model.backend)
    rng = np.random.default_rng(random_state)
    history = {"epoch": [], "train_bound": [], "val_bound": [], "epoch_seconds": [],
               "train_seconds": 0.0}
    start_epoch = 0
    if checkpoint is not None:
        checkpoint = os.fspath(checkpoint)
        if resume and os.path.exists(checkpoint):
            arrays, meta = load_training_state(checkpoint)
            check_same_architecture(model, meta.get("config"), checkpoint)
            _check_same_run(meta["training"], run, checkpoint)
            # check both parts before changing either
            weights = {k[len("model."):]: v for k, v in arrays.items() if k.startswith("model.")}
            optim_state = {k[len("optim."):]: v for k, v in arrays.items()
                           if k.startswith("optim.")}
            probe = Adam(model.parameters(), lr=lr, backend=model.backend)
            probe.load_state_dict(optim_state)
            model.load_state_dict(weights)
            opt = probe
            rng.bit_generator.state = meta["training"]["rng_state"]
            history = meta["training"]["history"]
            start_epoch = int(meta["training"]["epoch"])
        elif not resume and os.path.exists(checkpoint):
            raise FileExistsError(f"checkpoint {checkpoint} already exists; pass resume=True to "
                                  f"continue it, or choose another path (it is not overwritten)")
        directory = os.path.dirname(os.path.abspath(checkpoint))
        if not os.path.isdir(directory):
            raise ValueError(f"checkpoint directory {directory} does not exist; create it first")
        remove_stale_temporaries(checkpoint)
    run_val_seed = int(np.random.SeedSequence(random_state).generate_state(1)[0])

    n = len(X)
    steps = math.ceil(n / batch_size)
    good_state = model.state_dict()
    on_epoch_start = getattr(model, "on_epoch_start", None)

    def diverged(epoch, step, what):
        model.load_state_dict(good_state)
        raise TrainingDivergedError(
            _divergence_message(epoch, step, steps, what, lr, checkpoint),
            epoch=epoch, step=step, last_good_epoch=epoch - 1, lr=lr,
            checkpoint=checkpoint) from None

    bar = _progress(total=epochs * steps, initial=start_epoch * steps, unit="step",
                    desc=f"{type(model).__name__} epoch {start_epoch + 1}/{epochs}",
                    enabled=progress)
    val_text = ""
    # Overflow in exp and NaN-producing operations are expected when a run diverges: the guard
    # below reports them once, clearly, instead of NumPy's warnings.
    with bar, np.errstate(over="ignore", invalid="ignore"):
        for epoch in range(start_epoch + 1, epochs + 1):
            t0 = time.perf_counter()
            # the model's per-epoch settings (e.g. an annealed temperature): a function of the
            # epoch alone, so a resumed run sets them exactly as the uninterrupted one did
            epoch_record = on_epoch_start(epoch) if on_epoch_start is not None else None
            bar.set_description_str(f"{type(model).__name__} epoch {epoch}/{epochs}",
                                    refresh=False)
            perm = rng.permutation(n)
            total, seen = 0.0, 0
            with kernel_threads(step_threads):
                for step in range(steps):
                    idx = perm[step * batch_size:(step + 1) * batch_size]
                    xb = X[idx]
                    if mode == "dynamic":
                        # a missing entry (NaN, for models that accept missing data) stays
                        # missing
                        xb = np.where(np.isnan(xb), xb, rng.random(xb.shape) < xb).astype(
                            model.dtype)
                    try:
                        loss = model.objective(xb, model.k, rng)
                    except NonFiniteError as exc:
                        diverged(epoch, step + 1, f"a non-finite value appeared in the "
                                                  f"forward pass ({exc})")
                    value = float(loss.data)
                    if not np.isfinite(value):
                        diverged(epoch, step + 1, f"the loss became {value}")
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                    total += -value * len(idx)
                    seen += len(idx)
                    bar.set_postfix_str(f"bound {format_bound(total / seen)}{val_text}",
                                        refresh=False)
                    bar.update(1)
            train_time = time.perf_counter() - t0
            if not all(np.all(np.isfinite(p.data)) for p in model.parameters()):
                diverged(epoch, None, "the weights became NaN or infinite")
            val = None
            if X_val is not None:
                try:
                    # no bar of its own: the run's bar is on screen
                    val = model.bound(X_val, val_k, np.random.default_rng([run_val_seed, epoch]),
                                      progress=False)
                except NonFiniteError as exc:
                    diverged(epoch, None, f"the validation bound met a non-finite value ({exc})")
                if not np.isfinite(val):
                    diverged(epoch, None, f"the validation bound became {val}")
                val_text = f", val {format_bound(val)}"
            history["epoch"].append(epoch)
            history["train_bound"].append(total / seen)
            for key, value in (epoch_record or {}).items():
                history.setdefault(key, []).append(value)
            history["val_bound"].append(val)
            history["train_seconds"] = history["train_seconds"] + train_time
            history["epoch_seconds"].append(time.perf_counter() - t0)
            bar.set_postfix_str(f"bound {format_bound(total / seen)}{val_text}")
            if checkpoint is not None:
                _save_checkpoint(checkpoint, model, opt, epoch=epoch, rng=rng, history=history,
                                 run=run, metadata=metadata)
            good_state = model.state_dict()
            if callback is not None:
                callback(epoch, {k: (v[-1] if isinstance(v, list) else v) for k, v in
                                 history.items()})
    model.history_ = history
    return history


def _check_same_run(training, run, checkpoint):
    saved = training["run"]
    done = int(training["epoch"])
    if run["epochs"] < done:
        raise ValueError(f"cannot resume from {checkpoint}: it already holds {done} epochs, "
                         f"more than the {run['epochs']} asked for; epochs is the total number "
                         f"of epochs, so pass epochs >= {done} (e.g. {done + run['epochs']} "
                         f"for {run['epochs']} more)")
    if "data_fingerprint" in saved and saved["data_fingerprint"] != run["data_fingerprint"]:
        same_size = saved.get("n_train") == run["n_train"]
        raise ValueError(f"cannot resume from {checkpoint}: the training data differ from those "
                         f"the run was trained on (fingerprint {saved['data_fingerprint']} in "
                         f"the checkpoint, {run['data_fingerprint']} now"
                         + (f", same number of rows {run['n_train']}" if same_size else
                            f"; {saved.get('n_train')} rows then, {run['n_train']} now")
                         + "); resume with the same data, or start a new run")
    diffs = [f"{key}: checkpoint {saved.get(key)!r} vs now {run[key]!r}"
             for key in run if key not in ("epochs", "data_fingerprint")
             and saved.get(key) != run[key]]
    if diffs:
        raise ValueError(f"cannot resume from {checkpoint}: the run settings differ "
                         f"({'; '.join(diffs)})")


def _divergence_message(epoch, step, steps, what, lr, checkpoint):
    where = f"epoch {epoch}, step {step}/{steps}" if step is not None else \
        f"the end of epoch {epoch}"
    if epoch > 1:
        kept = f"The model's weights were reset to those of epoch {epoch - 1}, the last good one"
        if checkpoint is not None:
            kept += f" (its checkpoint {checkpoint} is kept)"
    else:
        kept = ("No epoch had finished: the model's weights were reset to their initial values"
                + ("; no checkpoint was written" if checkpoint is not None else ""))
    return (f"training diverged at {where}: {what}. Likely cause: the step size lr={lr:g} is "
            f"too large for this model and data; try a smaller one (e.g. {lr / 10:g}). {kept}.")
