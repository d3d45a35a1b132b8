r"""What the ``train``, ``eval``, ``sample`` and ``demo`` commands share -- and what the module
of every model family registered in :data:`scratchdgm.cli.train.FAMILIES` reuses:

* the layout of a run directory (:data:`CHECKPOINT_NAME`, :data:`METRICS_NAME`), created by
  :func:`run_directory`, which on failure removes what the run leaves that holds nothing (the
  temporary files of killed writes, and the directories it created if they are empty);
* the data behind a ``--data`` spec (:func:`load_data`), what a checkpoint records of it
  (:func:`data_record`) and how ``eval`` finds it again (:func:`recorded_data`);
* ``metrics.json``, read with errors that name the file (:func:`read_metrics`);
* the backend, checked before any work with a message that says how to pick another one
  (:func:`check_backend`);
* training: ``--hidden`` (:func:`parse_hidden`), a new run or ``--resume``
  (:func:`check_new_or_resumed`), ``fit`` with divergence and Ctrl-C explained
  (:func:`fit_or_explain`);
* :class:`CommandError`, a mistake of the user's, which :func:`scratchdgm.cli.main` prints as
  one line (no traceback), and the evaluation written to ``metrics.json``
  (:func:`evaluate_model`, :func:`evaluate_or_explain`).
"""

import contextlib
import json
import os
import sys

__all__ = ["CHECKPOINT_NAME", "METRICS_NAME", "CommandError", "check_backend", "load_data",
           "data_record", "recorded_data", "read_metrics", "run_directory", "parse_hidden",
           "check_new_or_resumed", "fit_or_explain", "train_run", "evaluate_model",
           "evaluate_or_explain", "test_data_description"]

CHECKPOINT_NAME = "checkpoint.npz"
METRICS_NAME = "metrics.json"


class CommandError(Exception):
    r"""A mistake in what the user asked for (an argument, a file, a setting), or a run that
    failed for a reason the message explains: :func:`scratchdgm.cli.main` prints
    ``scratchdgm COMMAND: error: MESSAGE`` and exits with ``status`` (2 for a usage mistake, 1
    for a run that failed, e.g. diverged)."""

    def __init__(self, message, status=2):
        super().__init__(message)
        self.status = status


# ------------------------------------------------------------------------------ backend
def check_backend(name, option="--backend"):
    r"""The concrete backend named by ``--backend`` (None: ``SCRATCHDGM_BACKEND``, else the
    default), checked now so that a command fails before doing any work.

    Raises
    ------
    CommandError
        When the backend cannot run here (no CUDA device, no numba), saying which to pick.
    """
    from scratchdgm.backend import ENV_VAR, BackendUnavailableError, get_backend, resolve_backend

    try:
        return get_backend() if name is None else resolve_backend(name)
    except BackendUnavailableError as exc:
        others = [b for b in ("numba", "numpy") if b != exc.backend]
        flags = " or ".join(f"{option} {b}" for b in others)
        if name is None:
            raise CommandError(f"{ENV_VAR}={os.environ.get(ENV_VAR, '')}: {exc.reason}. Unset "
                               f"{ENV_VAR} or set it to {' or '.join(others)}, or pass "
                               f"{flags}") from None
        raise CommandError(f"{option} {exc.backend}: {exc.reason}. Pick another backend: "
                           f"{flags}") from None


# ------------------------------------------------------------------------------ what a run recorded
def data_record(spec, seed):
    r"""What a checkpoint stores of its data (``fit(metadata=...)``): the ``--data`` spec and
    the seed of the synthetic sets, so that ``eval`` can load the same data again; the
    fingerprint of the training data is stored by ``fit`` itself."""
    return {"data": str(spec), "data_seed": int(seed)}


def test_data_description(spec, ds):
    r"""What the evaluation report says of its data: the ``--data`` spec, the split and how the
    test set was binarised (printed at the head of every ``train`` and ``eval`` report)."""
    from scratchdgm.data.digits import TEST_BINARIZATION_SEED

    binarisation = (f"the test set binarised once, stochastically (seed {TEST_BINARIZATION_SEED})"
                    if ds["binary"] else "none (continuous data)")
    return {"data": str(spec), "split": "test", "binarisation": binarisation}


def recorded_data(model, metrics):
    r"""``(spec, seed)`` of the data a run was trained on: from its checkpoint (recorded by
    :func:`data_record`), else from its ``metrics.json``; ``(None, 0)`` when neither says."""
    meta = getattr(model, "checkpoint_metadata_", None) or {}
    recorded = (meta.get("training") or {}).get("metadata") or {}
    if recorded.get("data"):
        return recorded["data"], int(recorded.get("data_seed", 0))
    if metrics.get("data"):
        return metrics["data"], int(metrics.get("seed", 0))
    return None, 0


def training_fingerprint(model):
    """The fingerprint of the training data stored in a model's checkpoint, or None."""
    meta = getattr(model, "checkpoint_metadata_", None) or {}
    return ((meta.get("training") or {}).get("run") or {}).get("data_fingerprint")


# ------------------------------------------------------------------------------ run directory
def read_metrics(run_dir):
    r"""The ``metrics.json`` of a run directory as a dict (empty when there is none).

    Raises
    ------
    CommandError
        When the file is not a JSON object (cut short, edited by hand), naming it.
    """
    path = os.path.join(os.fspath(run_dir), METRICS_NAME)
    if not os.path.isfile(path):
        return {}
    try:
        with open(path, encoding="utf-8") as f:
            metrics = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CommandError(f"{path} is not valid JSON ({exc}); repair it, or delete it: the "
                           f"checkpoint records what eval needs") from None
    if not isinstance(metrics, dict):
        raise CommandError(f"{path} holds a JSON {type(metrics).__name__}, expected an object "
                           f"{{...}}; repair it, or delete it")
    return metrics


@contextlib.contextmanager
def run_directory(out):
    r"""Context manager for the output directory of a run: creates it (and missing parents) and
    removes the temporary files that killed writes of earlier runs left there
    (:func:`scratchdgm.checkpoint.remove_stale_temporaries`). If the block fails -- an error,
    Ctrl-C -- it removes the directories it created, if they are empty: a failed run leaves no
    empty ``--out`` behind. A directory that existed before, or that holds a checkpoint, is
    kept.

    Raises
    ------
    CommandError
        If ``out`` exists and is not a directory.
    """
    from scratchdgm.checkpoint import remove_stale_temporaries

    out = os.fspath(out)
    if os.path.exists(out) and not os.path.isdir(out):
        raise CommandError(f"--out {out} is a file; expected a directory (new or existing)")
    created = []
    d = os.path.abspath(out)
    while not os.path.exists(d):
        created.append(d)
        d = os.path.dirname(d)
    os.makedirs(out, exist_ok=True)
    for name in (CHECKPOINT_NAME, METRICS_NAME):  # what killed writes of earlier runs left
        remove_stale_temporaries(os.path.join(out, name))
    try:
        yield out
    except BaseException:
        for d in created:  # innermost first
            try:
                os.rmdir(d)  # only if empty
            except OSError:
                break
        raise


def note(message):
    """One line of information on stderr (stdout carries the results)."""
    print(message, file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------ training
def parse_hidden(text):
    r"""The hidden widths of ``--hidden`` (``"100,100"`` -> ``(100, 100)``)."""
    try:
        sizes = tuple(int(s) for s in str(text).split(",") if s.strip())
    except ValueError:
        raise CommandError(f"--hidden must be comma-separated ints like 100,100, got "
                           f"{text!r}") from None
    if not sizes:
        raise CommandError(f"--hidden needs at least one width, got {text!r}")
    return sizes


def check_new_or_resumed(out, resume):
    r"""The checkpoint path of a run in ``out``; refuses to overwrite one without ``--resume``
    and says when ``--resume`` finds nothing to continue."""
    ckpt = os.path.join(out, CHECKPOINT_NAME)
    if os.path.exists(ckpt) and not resume:
        raise CommandError(f"{ckpt} exists; pass --resume to continue that run, or choose "
                           f"another --out (nothing was overwritten)")
    if resume and not os.path.exists(ckpt):
        note(f"--resume: no checkpoint in {out}; starting a new run")
    return ckpt


def fit_or_explain(model, x_train, *, ckpt, out, **fit_kwargs):
    r"""``model.fit(x_train, checkpoint=ckpt, **fit_kwargs)``, with what a user needs to know
    when it does not finish: divergence as a :class:`CommandError` (status 1) naming the
    cause, the last good epoch and what to do; Ctrl-C with where the checkpoint is and how to
    resume."""
    from scratchdgm.models.deep.training import TrainingDivergedError

    try:
        model.fit(x_train, checkpoint=ckpt, **fit_kwargs)
    except TrainingDivergedError as exc:
        then = (f" Start again with a smaller --lr and another --out (a run cannot be resumed "
                f"with another lr); `scratchdgm eval {out}` evaluates the weights of epoch "
                f"{exc.last_good_epoch}." if exc.last_good_epoch > 0 else
                " Start again with a smaller --lr.")
        raise CommandError(f"{exc}{then}", status=1) from None
    except KeyboardInterrupt:
        if os.path.exists(ckpt):
            note(f"interrupted: {ckpt} holds the last finished epoch; run the same command "
                 f"with --resume to continue")
        raise


def train_run(model, ds, args, *, out, ckpt, likelihoods="gaussian or student_t"):
    r"""What every deep ``train`` family does once its model is built: refuse a binary
    likelihood on continuous data, validate both splits against the model before anything is
    written, then :func:`fit_or_explain` into the run directory (checkpointed, resumable, the
    data recorded by :func:`data_record`). ``args`` holds the common training options
    (``data``, ``epochs``, ``batch_size``, ``lr``, ``resume``, ``no_progress``, ``seed``)."""
    if ds["binary"] is False and model.observation.binary_data:
        raise CommandError(f"--data {args.data} is continuous; choose --likelihood {likelihoods}")
    model.check_data(ds["x_train"], "training data", allow_unit_interval=True)
    model.check_data(ds["x_test"], "test data")
    with run_directory(out):
        fit_or_explain(model, ds["x_train"], ckpt=ckpt, out=out, epochs=args.epochs,
                       batch_size=args.batch_size, lr=args.lr, X_val=ds["x_test"],
                       resume=args.resume, progress=not args.no_progress,
                       random_state=args.seed, metadata=data_record(args.data, args.seed))


# ------------------------------------------------------------------------------ evaluation
def evaluate_or_explain(model, x_test, *, where, **kwargs):
    r""":func:`evaluate_model`, with the cause named when the model turns out to produce
    non-finite values (weights finite but so large that the forward pass overflows: a training
    that diverged without the loss becoming NaN)."""
    from scratchdgm.validation import NonFiniteError

    try:
        return evaluate_model(model, x_test, **kwargs)
    except NonFiniteError as exc:
        raise CommandError(f"evaluating {where}: the model produces non-finite values on the "
                           f"test data ({exc}); its training probably diverged: train again "
                           f"with a smaller --lr", status=1) from None


# ------------------------------------------------------------------------------ loading the data
def load_data(spec, seed=0):
    r"""Data for a ``--data`` spec (see :func:`scratchdgm.data.get_dataset`): a dict with
    ``x_train``, ``x_test`` (the once-binarised test set for binary datasets), ``y_train``,
    ``y_test`` (or None) and ``binary``.

    ``digits``: the protocol of ``docs/protocols.md`` (1500 / 297, the test set binarised once
    with seed 123); ``mnist:DIR``: the IDX files in DIR; ``toy`` and the other synthetic sets:
    drawn with ``seed``.

    Raises
    ------
    CommandError
        For a spec that names no dataset (listing the valid ones), and, naming the spec, for
        data that cannot be loaded (a missing directory, a corrupt file).
    """
    from scratchdgm import data

    spec = str(spec)
    if spec not in data.DATASET_SPECS and not spec.startswith("mnist:"):
        raise CommandError(f"unknown --data {spec!r}; expected one of "
                           f"{', '.join(data.DATASET_SPECS)}")
    if spec.startswith("mnist:") and not os.path.isdir(spec.split(":", 1)[1]):
        raise CommandError(f"--data {spec}: {spec.split(':', 1)[1]!r} is not a directory "
                           f"holding the MNIST IDX files")
    try:
        ds = data.get_dataset(spec, seed)
    except (ValueError, OSError) as exc:  # a corrupt or missing file behind a known spec
        raise CommandError(f"--data {spec}: could not load the data: {exc}") from None
    x_test = ds.x_test_binary if ds.binary and ds.x_test_binary is not None else ds.x_test
    return {"x_train": ds.x_train, "x_test": x_test, "y_train": ds.y_train, "y_test": ds.y_test,
            "binary": bool(ds.binary)}


def evaluate_model(model, x_test, *, eval_k=5000, x_train=None, seed=0, bound_ks=(1, 5, 50),
                   data_description=None):
    r"""Test log-likelihood (K = ``eval_k``), test bounds :math:`\mathcal L_K` for
    ``bound_ks`` and active units: a JSON-ready dict, with the whole report of
    :func:`scratchdgm.evaluation.evaluate` under ``"evaluation"`` (its readable table under
    ``"evaluation_text"``).

    One evaluation pass draws ``max(eval_k, *bound_ks)`` samples per test point and reads every
    number from them: ``test_log_likelihood`` is :math:`\hat{\mathcal L}_{\text{eval\_k}}`
    (the importance-sampled :math:`\log \hat p(x)` with ``eval_k`` samples, averaged over the
    disjoint groups of ``eval_k`` draws when a larger K was asked for), ``test_bounds`` the
    :math:`\hat{\mathcal L}_K` of ``bound_ks``. ``active_units`` is counted on ``x_train`` when
    given (the report's own count is on the test data).
    """
    import numpy as np

    from scratchdgm.evaluation import DEFAULT_KS, evaluate

    # the report's bounds: those asked for, and the evaluator's usual K up to eval_k
    ks = {int(eval_k), *map(int, bound_ks), *(k for k in DEFAULT_KS if k <= eval_k)}
    report = evaluate(model, x_test, ks=sorted(ks),
                      random_state=np.random.default_rng([seed, 1]),
                      data_description=data_description, progress=True)
    if x_train is not None and hasattr(model, "active_units"):
        units = model.active_units(x_train)
    else:
        units = sum(a["active"] for a in report.active_units.values())
    bounds = {str(k): report.bounds[k]["mean"] for k in bound_ks}
    return {"test_log_likelihood": report.bounds[int(eval_k)]["mean"], "eval_k": int(eval_k),
            "eval_seconds": report.seconds, "test_bounds": bounds, "active_units": units,
            # (None for a model without one latent vector per point: a diffusion model's
            # latents are a whole noising chain)
            "latent_dim": getattr(model, "latent_dim", None), "evaluation": report.as_dict(),
            "evaluation_text": report.format()}
