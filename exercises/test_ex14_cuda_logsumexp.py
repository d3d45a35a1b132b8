r"""Exercise 14: the log-sum-exp over K as a numba.cuda kernel, ``_lse_kernel`` and its launcher
``logsumexp`` in ``kernels/cuda.py`` (``scratchdgm.kernels.cuda``). Page:
``exercises/14_cuda_logsumexp.md``.

The first check runs in numba's CUDA simulator (no GPU needed, a few seconds: a subprocess); the
second runs on a real device and is skipped where there is none.
"""

import pytest

from exercises.checks import ex14_cuda_logsumexp as checks

pytestmark = pytest.mark.ex14


@pytest.mark.slow  # a fresh interpreter that imports numba.cuda's simulator: 4-6 s
def test_kernel_in_the_cuda_simulator():
    checks.run_in_simulator()


@pytest.mark.gpu
def test_kernel_on_a_gpu():
    if not checks.real_gpu():
        pytest.skip("no CUDA device")
    from scratchdgm.kernels import cuda

    checks.check_on_gpu(cuda.logsumexp)
