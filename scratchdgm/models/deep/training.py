r"""Training loop for VAE / IWAE: minibatch Adam with dynamic binarisation, a progress bar, a
per-epoch validation bound, crash-safe checkpoints every epoch with exact resume, and a NaN guard.

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
the training stream.
"""

import math
import os
import sys
import time

import numpy as np

from scratchdgm.checkpoint import load_npz
from scratchdgm.models.deep.persistence import (
    CHECKPOINT_KIND,
    CHECKPOINT_VERSION,
    check_same_architecture,
)
from scratchdgm.optim import Adam
from scratchdgm.threads import blas_threads as _blas_threads
from scratchdgm.validation import check_int, check_real

__all__ = ["fit", "TrainingDivergedError", "ProgressBar", "load_training_state"]

TRAINING_FORMAT = 1


class TrainingDivergedError(RuntimeError):
    r"""The training loss became NaN or infinite; the last good checkpoint is kept."""


class ProgressBar:
    r"""A one-line text progress bar with the running bound, written to ``stream`` (stderr).

    Redraws at most every ``min_interval`` seconds, so it costs nothing measurable per step.
    """

    def __init__(self, total, prefix="", stream=None, enabled=True, min_interval=0.2, width=24):
        self.total, self.prefix, self.enabled = total, prefix, enabled
        self.stream = sys.stderr if stream is None else stream
        self.min_interval, self.width = min_interval, width
        self._last = -math.inf
        self.start = time.perf_counter()

    def update(self, done, info="", force=False):
        if not self.enabled:
            return
        now = time.perf_counter()
        if not force and now - self._last < self.min_interval:
            return
        self._last = now
        frac = done / max(1, self.total)
        filled = int(round(self.width * frac))
        bar = "#" * filled + "." * (self.width - filled)
        elapsed = now - self.start
        self.stream.write(f"\r{self.prefix} [{bar}] {done}/{self.total} {info} "
                          f"{elapsed:5.1f}s ")
        self.stream.flush()

    def close(self, info=""):
        if self.enabled:
            self.update(self.total, info, force=True)
            self.stream.write("\n")
            self.stream.flush()


def _binarize_mode(model, X, binarize):
    if binarize not in ("auto", "dynamic", "none", None, False, True):
        raise ValueError(f"binarize must be 'auto', 'dynamic' or 'none', got {binarize!r}")
    if binarize in ("none", None, False):
        return "none"
    if binarize in ("dynamic", True):
        if not model.observation.binary_data:
            raise ValueError("dynamic binarisation only makes sense for a Bernoulli likelihood; "
                             f"this model has a {model.observation.kind!r} likelihood")
        return "dynamic"
    # auto: dynamic for a Bernoulli likelihood on non-binary intensities in [0, 1] (NaN, a
    # missing entry for models that accept them, is neither)
    if model.observation.binary_data and not np.all((X == 0) | (X == 1) | np.isnan(X)):
        return "dynamic"
    return "none"


def _save_checkpoint(path, model, opt, *, epoch, rng, history, run):
    arrays = {f"optim.{k}": np.asarray(v) for k, v in opt.state_dict().items()}
    meta = {"training": {"format": TRAINING_FORMAT, "epoch": epoch,
                         "rng_state": rng.bit_generator.state, "history": history, "run": run}}
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
        callback=None, blas_threads=1):
    r"""Train ``model`` (a :class:`~scratchdgm.VAE` or :class:`~scratchdgm.IWAE`) by minibatch
    Adam on its bound.

    Parameters
    ----------
    model : VAE, IWAE or another deep model of the library
    X : ndarray, shape (n, p)
        Training data (for a Bernoulli likelihood: binary, or intensities in [0, 1] that are
        binarised dynamically).
    epochs : int
        Total number of epochs (a resumed run continues up to this number).
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
        Continue from ``checkpoint`` if it exists (its architecture must match ``model``, and
        its run settings those given here).
    progress : bool
        Show a progress bar with the running bound on stderr.
    random_state : int
        Seeds every random draw of training.
    val_k : int, optional
    callback : callable ``(epoch, record) -> None``, optional
        Called after each epoch with that epoch's history record.
    blas_threads : int or None
        Threads of the BLAS pool during training (default 1, the fastest for these small
        matrices, see :func:`scratchdgm.models.vae.blas_threads`); None leaves it alone.

    Returns
    -------
    dict
        ``model.history_``: lists ``epoch``, ``train_bound`` (mean of the minibatch bounds over
        the epoch), ``val_bound``, ``epoch_seconds``, and ``train_seconds`` (total time spent in
        optimisation steps).

    Raises
    ------
    TrainingDivergedError
        If the loss becomes NaN/inf: training stops, the model's weights are reset to the end
        of the last finished epoch, and the checkpoint on disk (that epoch's) is left untouched.
    ValueError, TypeError
        Bad data, settings, or a checkpoint of another architecture -- before anything is
        written.

    Notes
    -----
    One step, for a minibatch :math:`x_{1..B}`, is ``loss = model.objective(x, k, rng);
    opt.zero_grad(); loss.backward(); opt.step()`` with
    :math:`\text{loss} = -\frac1B \sum_i \hat{\mathcal L}(x_i)`.
    """
    with _blas_threads(blas_threads):
        return _fit(model, X, epochs=epochs, batch_size=batch_size, lr=lr, X_val=X_val,
                    binarize=binarize, checkpoint=checkpoint, resume=resume, progress=progress,
                    random_state=random_state, val_k=val_k, callback=callback)


def _fit(model, X, *, epochs, batch_size, lr, X_val, binarize, checkpoint, resume, progress,
         random_state, val_k, callback):
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
    mode = _binarize_mode(model, X, binarize)
    if mode == "none":
        model.observation.check_data(X, "X")
    run = {"epochs": epochs, "batch_size": batch_size, "lr": float(lr), "k": model.k,
           "binarize": mode, "random_state": int(random_state), "n_train": int(len(X))}

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
            saved = meta["training"]["run"]
            diffs = [f"{key}: checkpoint {saved.get(key)!r} vs now {run[key]!r}"
                     for key in run if key != "epochs" and saved.get(key) != run[key]]
            if diffs:
                raise ValueError(f"cannot resume from {checkpoint}: the run settings differ "
                                 f"({'; '.join(diffs)})")
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
    run_val_seed = int(np.random.SeedSequence(random_state).generate_state(1)[0])

    n = len(X)
    steps = math.ceil(n / batch_size)
    good_state = model.state_dict()
    for epoch in range(start_epoch + 1, epochs + 1):
        t0 = time.perf_counter()
        bar = ProgressBar(steps, prefix=f"epoch {epoch}/{epochs}", enabled=progress)
        perm = rng.permutation(n)
        total, seen = 0.0, 0
        for step in range(steps):
            idx = perm[step * batch_size:(step + 1) * batch_size]
            xb = X[idx]
            if mode == "dynamic":
                # a missing entry (NaN, for models that accept missing data) stays missing
                xb = np.where(np.isnan(xb), xb, rng.random(xb.shape) < xb).astype(model.dtype)
            loss = model.objective(xb, model.k, rng)
            value = float(loss.data)
            if not np.isfinite(value):
                model.load_state_dict(good_state)
                bar.close(f"loss {value}")
                where = ""
                if checkpoint is not None:
                    where = (f"; the last good checkpoint (epoch {epoch - 1}) is kept at "
                             f"{checkpoint}" if epoch > 1 else "; no checkpoint was written yet")
                raise TrainingDivergedError(
                    f"training stopped: the loss became {value} at epoch {epoch}, step "
                    f"{step + 1}/{steps}{where}; the model's weights were reset to the end of "
                    f"the last finished epoch. Try a smaller lr.")
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += -value * len(idx)
            seen += len(idx)
            bar.update(step + 1, f"bound {total / seen:9.3f}")
        train_time = time.perf_counter() - t0
        params_ok = all(np.all(np.isfinite(p.data)) for p in model.parameters())
        if not params_ok:
            model.load_state_dict(good_state)
            bar.close("non-finite weights")
            raise TrainingDivergedError(
                f"training stopped: the weights became NaN/inf during epoch {epoch}; they were "
                f"reset to the end of the last finished epoch"
                + (f" and the checkpoint {checkpoint} was kept" if checkpoint else ""))
        val = None
        if X_val is not None:
            val = model.bound(X_val, val_k, np.random.default_rng([run_val_seed, epoch]))
        history["epoch"].append(epoch)
        history["train_bound"].append(total / seen)
        history["val_bound"].append(val)
        history["train_seconds"] = history["train_seconds"] + train_time
        history["epoch_seconds"].append(time.perf_counter() - t0)
        info = f"bound {total / seen:9.3f}" + (f"  val {val:9.3f}" if val is not None else "")
        bar.close(info)
        if checkpoint is not None:
            _save_checkpoint(checkpoint, model, opt, epoch=epoch, rng=rng, history=history,
                             run=run)
        good_state = model.state_dict()
        if callback is not None:
            callback(epoch, {k: (v[-1] if isinstance(v, list) else v) for k, v in
                             history.items()})
    model.history_ = history
    return history
