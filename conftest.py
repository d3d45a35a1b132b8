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
