"""``python -m scratchdgm`` is the same as the ``scratchdgm`` console script."""

from scratchdgm.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
