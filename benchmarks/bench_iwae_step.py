"""One IWAE training step (the speed protocol of design.md §5) on numpy / numba vs PyTorch.

Thin wrapper: ``python benchmarks/bench_iwae_step.py --k 50 --threads 1 --dtype float32`` is
``scratchdgm bench iwae-step ...`` (see :mod:`scratchdgm.bench`).
"""

import sys

from scratchdgm.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", "iwae-step", *sys.argv[1:]]))
