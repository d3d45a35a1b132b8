"""Log-sum-exp over K: Numba kernel vs scipy vs the one-core read bandwidth.

Thin wrapper: ``python benchmarks/bench_logsumexp.py [--json]`` is
``scratchdgm bench logsumexp [--json]`` (see :mod:`scratchdgm.bench`).
"""

import sys

from scratchdgm.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", "logsumexp", *sys.argv[1:]]))
