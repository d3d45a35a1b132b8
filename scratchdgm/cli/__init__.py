r"""The ``scratchdgm`` command line: ``demo | train | eval | sample | experiment | figures |
bench | exercises``.

Each subcommand lives in its own module, which provides

* ``HELP`` -- one line for ``scratchdgm --help``;
* ``configure_parser(parser)`` -- adds the subcommand's arguments;
* ``run(args) -> int`` -- does the work and returns the exit status.

Those modules import NumPy-heavy code inside ``run`` only, so ``scratchdgm --help`` stays fast.
The CLI calls the public API only: everything it does can be done from Python.
"""

import argparse
import sys
from importlib import import_module

# subcommand -> module implementing it
COMMANDS = {
    "demo": "scratchdgm.cli.demo",
    "train": "scratchdgm.cli.train",
    "eval": "scratchdgm.cli.evaluate",
    "sample": "scratchdgm.cli.sample",
    "experiment": "scratchdgm.cli.experiment",
    "figures": "scratchdgm.cli.figures",
    "bench": "scratchdgm.cli.bench",
    "exercises": "scratchdgm.cli.exercises",
}


def build_parser():
    """Return the top-level :class:`argparse.ArgumentParser` with every subcommand attached."""
    from scratchdgm import __version__

    parser = argparse.ArgumentParser(
        prog="scratchdgm",
        description="Latent-variable and deep generative models from scratch: "
        "factor analysis, PPCA, VAE and IWAE.",
    )
    parser.add_argument("--version", action="version", version=f"scratchdgm {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module_name in COMMANDS.items():
        module = import_module(module_name)
        p = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.configure_parser(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv=None):
    """Entry point of the console script and of ``python -m scratchdgm``."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except (ValueError, TypeError, FileNotFoundError, FileExistsError) as exc:
        # Bad input from the command line: one clear line, not a traceback.
        print(f"scratchdgm {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"scratchdgm {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
