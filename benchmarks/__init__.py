r"""Every benchmark of scratchdgm, in one place (installed as ``scratchdgm.benchmarks``).

Speed is measured here, never in the tests: each benchmark prints a table of figures and of
ratios against peers measured in the same run (scikit-learn, SciPy, NumPy, and PyTorch when it
is installed -- an optional peer, skipped with a note when absent), headed by the CPU model, the
thread count and the date. Each module provides

* ``HELP`` -- one line for ``scratchdgm bench --help``;
* ``configure_parser(parser)`` -- its arguments;
* ``run(args) -> int`` -- the measurement,

and ``scratchdgm bench NAME [...]`` runs it (``python benchmarks/NAME.py`` from a clone too).
"""

#: ``scratchdgm bench`` name -> module
BENCHMARKS = {
    "logsumexp": "scratchdgm.benchmarks.logsumexp",
    "linear-layer": "scratchdgm.benchmarks.linear_layer",
    "iwae-step": "scratchdgm.benchmarks.iwae_step",
    "autodiff": "scratchdgm.benchmarks.autodiff",
    "linear-models": "scratchdgm.benchmarks.linear_models",
    "gpu": "scratchdgm.benchmarks.gpu",
}
