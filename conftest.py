"""Shared pytest configuration for tests/ and exercises/.

Hypothesis profiles: ``dev`` (default, random), ``ci`` (derandomised so CI cannot flake, selected
by ``HYPOTHESIS_PROFILE=ci`` in .ci/run). Deadlines are off: Numba compiles on first call.
"""

import os

import matplotlib

matplotlib.use("Agg")  # tests write PNGs; never open a window

from hypothesis import HealthCheck, settings  # noqa: E402

_common = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", max_examples=40, **_common)
settings.register_profile("ci", max_examples=40, derandomize=True, print_blob=True, **_common)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))


# ------------------------------------------------------------ Numba compile cost of the run
# The kernels compile lazily, on first call, once per dtype. This listener adds
# up the time Numba spends compiling in the test process and prints it at the end of the run,
# so that the cost of the compiled backend stays visible. (Subprocess runs -- the CUDA
# simulator and NUMBA_DISABLE_JIT checks -- are not included.)
_compile_timer = None


def pytest_configure(config):
    global _compile_timer
    import importlib.util

    if importlib.util.find_spec("numba") is None:
        return
    from numba.core import event

    _compile_timer = event.TimingListener()
    event.register("numba:compile", _compile_timer)


def pytest_terminal_summary(terminalreporter):
    if _compile_timer is not None:
        spent = _compile_timer.duration if _compile_timer.done else 0.0
        terminalreporter.write_line(f"numba: {spent:.1f} s compiling kernels in this run")
