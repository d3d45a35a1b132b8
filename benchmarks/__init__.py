r"""Every benchmark of scratchdgm, in one place (installed as ``scratchdgm.benchmarks``).

Speed is measured here, never in the tests: each benchmark prints a table of figures and of
ratios against peers measured in the same run (scikit-learn, SciPy, NumPy, and PyTorch when it
is installed -- an optional peer, skipped with a note when absent), headed by the CPU model, the
thread count and the date. Each module provides

* ``HELP`` -- one line for ``scratchdgm bench --help``;
* ``configure_parser(parser)`` -- its arguments;
* ``run(args) -> int`` -- the measurement,

and ``scratchdgm bench NAME [...]`` runs it (``python benchmarks/NAME.py`` from a clone too).
Those whose figures enter the one table of ``scratchdgm bench all`` (:mod:`.run_all`, written
to ``docs/benchmarks.md``) split ``run`` into ``measure(args) -> dict``, ``report(out, args)``
(prints the table) and ``summary_rows(out)`` (figure, ours, peer, ratio, goal).
"""

#: ``scratchdgm bench`` name -> module
BENCHMARKS = {
    "logsumexp": "scratchdgm.benchmarks.logsumexp",
    "linear-layer": "scratchdgm.benchmarks.linear_layer",
    "iwae-step": "scratchdgm.benchmarks.iwae_step",
    "autodiff": "scratchdgm.benchmarks.autodiff",
    "linear-models": "scratchdgm.benchmarks.linear_models",
    "eval": "scratchdgm.benchmarks.eval",
    "train": "scratchdgm.benchmarks.train",
    "fa-convergence": "scratchdgm.benchmarks.fa_convergence",
    "gpu": "scratchdgm.benchmarks.gpu",
    "miwae-imputation": "scratchdgm.benchmarks.miwae_imputation",
    "all": "scratchdgm.benchmarks.run_all",
}
