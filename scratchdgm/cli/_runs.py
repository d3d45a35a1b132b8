r"""What the ``train``, ``eval`` and ``sample`` commands share: the layout of a run directory,
the data behind a ``--data`` spec, and the evaluation written to ``metrics.json``."""

import os

__all__ = ["CHECKPOINT_NAME", "METRICS_NAME", "load_data", "evaluate_model"]

CHECKPOINT_NAME = "checkpoint.npz"
METRICS_NAME = "metrics.json"


def load_data(spec, seed=0):
    r"""Data for a ``--data`` spec (see :func:`scratchdgm.data.get_dataset`): a dict with
    ``x_train``, ``x_test`` (the once-binarised test set for binary datasets), ``y_train``,
    ``y_test`` (or None) and ``binary``.

    ``digits``: the protocol of ``docs/protocols.md`` (1500 / 297, the test set binarised once with seed 123);
    ``mnist:DIR``: the IDX files in DIR; ``toy`` and the other synthetic sets: drawn with ``seed``.
    """
    from scratchdgm import data

    spec = str(spec)
    if spec.startswith("mnist:") and not os.path.isdir(spec.split(":", 1)[1]):
        raise ValueError(f"--data {spec}: {spec.split(':', 1)[1]!r} is not a directory holding "
                         f"the MNIST IDX files")
    try:
        ds = data.get_dataset(spec, seed)
    except ValueError as exc:
        raise ValueError(f"unknown --data {spec!r}: {exc}") from None
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
                      data_description=data_description, progress=False)
    if x_train is not None and hasattr(model, "active_units"):
        units = model.active_units(x_train)
    else:
        units = sum(a["active"] for a in report.active_units.values())
    bounds = {str(k): report.bounds[k]["mean"] for k in bound_ks}
    return {"test_log_likelihood": report.bounds[int(eval_k)]["mean"], "eval_k": int(eval_k),
            "eval_seconds": report.seconds, "test_bounds": bounds, "active_units": units,
            "latent_dim": model.latent_dim, "evaluation": report.as_dict(),
            "evaluation_text": report.format()}
