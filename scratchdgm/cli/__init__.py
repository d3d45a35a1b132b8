r"""The ``scratchdgm`` command line: ``demo | train | eval | sample | experiment | figures |
bench | exercises``.

Each subcommand lives in its own module, which provides

* ``HELP`` -- one line for ``scratchdgm --help``;
* ``configure_parser(parser)`` -- adds the subcommand's arguments;
* ``run(args) -> int`` -- does the work and returns the exit status.

Those modules import NumPy-heavy code inside ``run`` only, so ``scratchdgm --help`` stays fast.
The CLI calls the public API only: everything it does can be done from Python.

Errors. A mistake of the user's -- a bad argument, a missing or corrupt file, a backend that
cannot run here, a training run that diverged -- is printed as one line,
``scratchdgm COMMAND: error: ...``, with exit status 2 (1 for a run that failed, e.g. diverged);
see :data:`USER_ERRORS`. Anything else is a bug of the library and keeps its traceback. With
``SCRATCHDGM_TRACEBACK=1`` every error shows its traceback.
"""

import argparse
import os
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
        "factor analysis, PPCA, VAE and IWAE, MIWAE, hierarchical and discrete VAEs, "
        "diffusion and a normalizing flow.",
        epilog="A mistake in the input is reported in one line; SCRATCHDGM_TRACEBACK=1 shows "
               "the full traceback. Progress bars are drawn on a terminal only; "
               "SCRATCHDGM_PROGRESS=0 turns them off, =1 forces them on.",
    )
    parser.add_argument("--version", action="version", version=f"scratchdgm {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module_name in COMMANDS.items():
        module = import_module(module_name)
        p = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.configure_parser(p)
        p.set_defaults(_run=module.run)
    return parser


def user_error_types():
    r"""The exceptions :func:`main` reports in one line, as caused by what the user asked for
    or gave: :class:`~scratchdgm.cli._runs.CommandError`, ``ValueError`` (bad values, corrupt
    files; the library's errors at its public boundary say what was wrong), ``OSError``
    (paths, permissions, a full disk), :class:`~scratchdgm.backend.BackendUnavailableError`
    and :class:`~scratchdgm.models.deep.training.TrainingDivergedError`. Imported when an
    error happens, not before."""
    from scratchdgm.backend import BackendUnavailableError
    from scratchdgm.cli._runs import CommandError
    from scratchdgm.models.deep.training import TrainingDivergedError

    return (CommandError, ValueError, OSError, BackendUnavailableError, TrainingDivergedError)


def _status(exc):
    from scratchdgm.cli._runs import CommandError
    from scratchdgm.models.deep.training import TrainingDivergedError

    if isinstance(exc, CommandError):
        return exc.status
    return 1 if isinstance(exc, TrainingDivergedError) else 2


def main(argv=None):
    """Entry point of the console script and of ``python -m scratchdgm``."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        print(f"scratchdgm {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader of our output went away (`scratchdgm experiment --list | head`): nothing is
        # wrong; point stdout at devnull so that the interpreter's final flush stays quiet too
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as exc:
        if not isinstance(exc, user_error_types()) or os.environ.get(
                "SCRATCHDGM_TRACEBACK", "") not in ("", "0"):
            raise  # a bug (or asked for): the traceback is what helps
        # A mistake in the input: one clear line, not a traceback.
        message = str(exc) if not isinstance(exc, OSError) or not exc.filename else (
            f"{exc.strerror or exc}: {exc.filename}")
        print(f"scratchdgm {args.command}: error: {message}", file=sys.stderr)
        return _status(exc)


if __name__ == "__main__":
    sys.exit(main())
