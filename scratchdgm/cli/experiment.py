r"""``scratchdgm experiment NAME``: run one of the lecture-claim experiments of
:mod:`scratchdgm.experiments`, print its numbers and write its figures; ``--list`` names them."""

import json
import pathlib

HELP = "reproduce a claim of the lectures: run an experiment, print its numbers, write figures"


def configure_parser(parser):
    parser.add_argument("name", nargs="?", help="the experiment to run (see --list)")
    parser.add_argument("--list", action="store_true", help="list the experiments and exit")
    parser.add_argument("--quick", action="store_true",
                        help="a smaller version (under a minute on one core)")
    parser.add_argument("--out", default=None, metavar="DIR",
                        help="folder for the figures and numbers.json (default: "
                             "scratchdgm_experiments/NAME)")
    parser.add_argument("--seed", type=int, default=0, help="seed of every random draw")


def run(args):
    from scratchdgm.experiments import EXPERIMENTS, get_experiment, run_experiment

    if args.list or args.name is None:
        if not args.list:
            print("scratchdgm experiment: name an experiment (one of the list below)\n")
        width = max((len(n) for n in EXPERIMENTS), default=0)
        for name in EXPERIMENTS:
            print(f"  {name:<{width}}  {get_experiment(name).SUMMARY}")
        return 0 if args.list else 2
    from scratchdgm.checkpoint import write_text_atomic
    from scratchdgm.cli._runs import run_directory

    get_experiment(args.name)  # a clear error for an unknown name, before any folder exists
    out = pathlib.Path(args.out or pathlib.Path("scratchdgm_experiments") / args.name)
    with run_directory(out):  # a failed run leaves no empty folder
        result = run_experiment(args.name, out, quick=args.quick, seed=args.seed)
    write_text_atomic(out / "numbers.json", json.dumps(result.numbers, indent=2, sort_keys=True,
                                                       default=float) + "\n")
    print(result.text.rstrip())
    print(f"figures: {', '.join(str(f) for f in result.figures)}; numbers: {out / 'numbers.json'}")
    return 0
