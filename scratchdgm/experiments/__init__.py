r"""The lectures' quantitative claims as runnable experiments.

Each experiment is a module of this package that reproduces one claim of the lectures (cited
through ``docs/lectures.md``) and provides

* ``NAME`` -- the name ``scratchdgm experiment NAME`` runs it by;
* ``SUMMARY`` -- one line for ``scratchdgm experiment --list``;
* ``run(out_dir, quick=False, seed=0) -> ExperimentResult`` -- computes the numbers, writes
  the figure(s) into ``out_dir``, and returns both with a short text report. ``quick=True``
  is a smaller version that runs in under a minute on one core (the tests and the figures of a
  smoke run use it).

:data:`EXPERIMENTS` lists them in the order of the course; :func:`run_experiment` runs one by
name. The statistical claim each makes is held true by a test in
``tests/test_experiments*.py``.
"""

import dataclasses
import pathlib
from importlib import import_module

__all__ = ["ExperimentResult", "EXPERIMENTS", "get_experiment", "run_experiment"]


@dataclasses.dataclass
class ExperimentResult:
    r"""What an experiment returns.

    Attributes
    ----------
    name : str
    numbers : dict
        The measured quantities (JSON-serialisable: floats, ints, lists, nested dicts), under
        names the experiment's docstring explains.
    figures : list of pathlib.Path
        The PNG files written.
    text : str
        A short human-readable report of the numbers (what ``scratchdgm experiment`` prints).
    """

    name: str
    numbers: dict
    figures: list
    text: str


#: experiment name -> module, in the order of the course
EXPERIMENTS = {
    "monte-carlo": "scratchdgm.experiments.monte_carlo",
    "naive-vs-is": "scratchdgm.experiments.naive_vs_is",
    "score-function": "scratchdgm.experiments.score_function",
    "bounds": "scratchdgm.experiments.bounds",
    "flow-vs-vae": "scratchdgm.experiments.flow_vs_vae",
    "discrete-gradients": "scratchdgm.experiments.discrete_gradients",
    "shallow-to-deep": "scratchdgm.experiments.shallow_to_deep",
    "toy-dlvm": "scratchdgm.experiments.toy_dlvm",
    "amortisation-gap": "scratchdgm.experiments.amortisation_gap",
    "kl-regulariser": "scratchdgm.experiments.kl_regulariser",
    "posterior-collapse": "scratchdgm.experiments.posterior_collapse",
}


def get_experiment(name):
    r"""The module of the experiment called ``name``; ValueError listing the valid names."""
    if name not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {name!r}; expected one of "
                         f"{', '.join(EXPERIMENTS) or '(none yet)'} "
                         f"(scratchdgm experiment --list describes them)")
    return import_module(EXPERIMENTS[name])


def run_experiment(name, out_dir, quick=False, seed=0):
    r"""Run experiment ``name``, writing its figures into ``out_dir`` (created if missing).

    Returns
    -------
    ExperimentResult
    """
    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    return get_experiment(name).run(out_dir, quick=quick, seed=seed)
