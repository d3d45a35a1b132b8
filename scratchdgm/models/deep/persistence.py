r"""Saving and loading deep models: a model is its architecture (``config()``, JSON) plus its
weights (``state_dict()``), stored together in one ``.npz`` written atomically and read without
pickle (:mod:`scratchdgm.checkpoint`).

Any model class registered with :func:`register_model` can be rebuilt by :func:`load_model`;
its ``config()`` returns the keyword arguments of its constructor (plus ``'class'``), so
``cls(**config)`` builds the same architecture.
"""

from scratchdgm.checkpoint import load_npz, save_npz
from scratchdgm.validation import NonFiniteError

__all__ = ["CHECKPOINT_KIND", "CHECKPOINT_VERSION", "register_model", "save_model",
           "load_model", "model_from_config", "check_same_architecture", "model_arrays"]

CHECKPOINT_KIND = "dlvm"
CHECKPOINT_VERSION = 1

#: class name -> class, filled by :func:`register_model`
MODEL_CLASSES = {}


def register_model(cls):
    """Class decorator: make ``cls`` loadable by :func:`load_model` under its name."""
    MODEL_CLASSES[cls.__name__] = cls
    return cls


def model_from_config(config, random_state=0):
    r"""Build an (untrained) model from a ``config()`` dict.

    Raises
    ------
    ValueError
        An unknown class or a config lacking a constructor argument.
    """
    config = dict(config)
    name = config.pop("class", None)
    cls = MODEL_CLASSES.get(name)
    if cls is None:
        raise ValueError(f"unknown model class {name!r} in config; expected one of "
                         f"{sorted(MODEL_CLASSES)}")
    try:
        return cls(**config, random_state=random_state)
    except TypeError as exc:
        raise ValueError(f"the stored config does not fit {name}: {exc}") from None


def save_model(model, path, metadata=None, *, extra_arrays=None):
    r"""Write ``model`` to ``path`` (``.npz``, atomic temp+rename, no pickle).

    Parameters
    ----------
    model : a registered model
    path : str or os.PathLike
    metadata : dict or None
        Extra JSON-serialisable information, stored beside the architecture.
    extra_arrays : dict or None
        More arrays to store (the training loop adds its optimiser state here).
    """
    arrays = {f"model.{k}": v for k, v in model.state_dict().items()}
    arrays.update(extra_arrays or {})
    meta = {"config": model.config()}
    meta.update(metadata or {})
    save_npz(path, arrays, kind=CHECKPOINT_KIND, format_version=CHECKPOINT_VERSION,
             metadata=meta)


def model_arrays(arrays, path):
    """The ``model.*`` arrays of a checkpoint, with the prefix removed."""
    out = {k[len("model."):]: v for k, v in arrays.items() if k.startswith("model.")}
    if not out:
        raise ValueError(f"{path} holds no model weights (no 'model.*' arrays)")
    return out


def load_model(path):
    r"""Rebuild the model saved at ``path`` (whichever registered class it is).

    Returns
    -------
    model
        With the saved weights; ``model.checkpoint_metadata_`` holds the file's metadata and,
        for a training checkpoint, ``model.history_`` the training history.

    Raises
    ------
    ValueError
        Missing, truncated or foreign file; arrays that do not fit the stored architecture; or
        weights holding NaN or an infinity (:class:`~scratchdgm.validation.NonFiniteError`).
    """
    arrays, meta = load_npz(path, kind=CHECKPOINT_KIND, format_version=CHECKPOINT_VERSION)
    config = meta.get("config")
    if not isinstance(config, dict):
        raise ValueError(f"{path}: checkpoint has no model config; expected a file written by "
                         f"a model's save()")
    model = model_from_config(config)
    try:
        model.load_state_dict(model_arrays(arrays, path))
    except NonFiniteError as exc:
        raise NonFiniteError(f"{path}: {exc}") from None
    except ValueError as exc:
        raise ValueError(f"{path}: weights do not fit the stored architecture: {exc}") from None
    model.checkpoint_metadata_ = meta
    history = meta.get("training", {}).get("history")
    if history is not None:
        model.history_ = history
    return model


def check_same_architecture(model, config, path="the checkpoint"):
    r"""Raise ValueError if ``config`` (from a checkpoint) describes another architecture than
    ``model``'s."""
    mine = model.config()
    if not isinstance(config, dict):
        raise ValueError(f"{path}: no model config in the checkpoint; expected a file written "
                         f"by a model's save()")
    diffs = [f"{key}: checkpoint {config.get(key)!r} vs model {mine[key]!r}"
             for key in mine if config.get(key) != mine[key]]
    if diffs:
        raise ValueError(f"{path} holds a different architecture ({'; '.join(diffs)}); "
                         f"expected the same config as this model")
