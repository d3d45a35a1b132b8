r"""``scratchdgm exercises``: the course exercises, cut out of the library itself.

* ``scratchdgm exercises list`` -- every exercise: title, page, the functions to write.
* ``scratchdgm exercises make-student DIR`` -- write a student copy of the repository into
  DIR: every solution region (``# BEGIN EXERCISE NN`` ... ``# END EXERCISE NN``) becomes
  ``raise NotImplementedError("Exercise NN: ...")``; ``--only 1,2,3`` cuts only those.
* ``scratchdgm exercises status [DIR]`` -- run the checks of DIR (default: the repository you
  are in) in one pytest run and print, per exercise, passed / failing / not attempted; exits 0
  when every exercise passes, 1 otherwise.

From a clone these find the repository by themselves; an installed package is pointed at a
clone with ``--repo DIR`` (``list``, ``make-student``) or the ``DIR`` argument (``status``).
The machinery is in :mod:`scratchdgm.cli._exercises`; the instructor's guide is
``exercises/README.md``.
"""

import json
import sys

HELP = "course exercises: list them, make a student copy, grade a copy (status)"


def configure_parser(parser):
    sub = parser.add_subparsers(dest="action", metavar="ACTION")
    p = sub.add_parser("list", help="list the exercises, their pages and the functions to write")
    p.add_argument("--repo", metavar="DIR", help="the repository (default: the one you are in)")
    p = sub.add_parser("make-student",
                       help="write a student copy: every solution region replaced by a stub")
    p.add_argument("dest", metavar="DIR", help="a new (or empty) folder outside the repository")
    p.add_argument("--repo", metavar="DIR", help="the repository with the solutions (default: the "
                                                 "one you are in)")
    p.add_argument("--only", metavar="NN,NN", help="cut only these exercises (e.g. 1,2,3); the "
                                                   "others keep their solutions")
    p.add_argument("--force", action="store_true", help="write into a non-empty DIR")
    p = sub.add_parser("status", help="run the checks and print passed / failing / not attempted "
                                      "per exercise")
    p.add_argument("dir", nargs="?", metavar="DIR",
                   help="the copy to grade (default: the repository you are in)")
    p.add_argument("--only", metavar="NN,NN", help="check only these exercises")
    p.add_argument("--json", action="store_true", help="print the verdicts as JSON")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="every failure message, and pytest's output when it did not run")
    p.add_argument("--timeout", type=float, default=1800.0, metavar="S",
                   help="stop the checks after S seconds (default 1800)")


def _list(args, ex):
    repo = ex.find_repo(args.repo)
    exercises = ex.find_exercises(repo)
    for e in exercises:
        state = "planned" if e.planned else (e.page or "no page")
        print(f"{e.number}  {e.title or '(not registered)'}")
        print(f"    page: {state}")
        if e.regions:
            print("    write: " + ", ".join(f"{r.function} ({r.path})" for r in e.regions))
        if e.checker:
            print(f"    check: pytest -m ex{e.number}")
    problems = ex.consistency_problems(exercises)
    for problem in problems:
        print(f"warning: {problem}", file=sys.stderr)
    return 1 if problems else 0


def _make_student(args, ex):
    source = ex.find_repo(args.repo)
    report = ex.make_student(source, args.dest, ex.parse_numbers(args.only), force=args.force)
    cut = report["cut"]
    print(f"student copy of {source} written to {args.dest}: {report['files']} files, "
          f"{sum(len(v) for v in cut.values())} functions cut from {len(cut)} exercises "
          f"({', '.join(cut)}).")
    print(f"Hand it out; a student runs `pytest -m exNN` there, you grade it with "
          f"`scratchdgm exercises status {args.dest}`.")
    return 0


def _status(args, ex):
    repo = ex.find_repo(args.dir)
    exercises = ex.find_exercises(repo)
    numbers = ex.parse_numbers(args.only)
    written = [e.number for e in exercises if not e.planned and e.checker]
    if numbers is None:
        numbers = written
    unknown = [n for n in numbers if n not in written]
    if unknown:
        raise ValueError(f"no exercise {', '.join(unknown)} with checks in {repo}; the exercises "
                         f"are {', '.join(written)}")
    try:
        run = ex.run_checks(repo, numbers, timeout=args.timeout, show_progress=not args.json)
    except TimeoutError as exc:
        print(f"scratchdgm exercises status: {exc}", file=sys.stderr)
        return 2
    shown = numbers if args.only else None
    outcomes = ex.summarise(exercises, run, shown)
    if args.json:
        print(json.dumps([o.as_dict() for o in outcomes], indent=2))
    else:
        print(f"{repo}  ({run.seconds:.0f} s)\n")
        print(ex.format_table(outcomes, verbose=args.verbose))
        if args.verbose and (run.collect_errors or not run.tests):
            print("\npytest output:\n" + run.log[-5000:])
    graded = [o for o in outcomes if o.status != "planned"]
    return 0 if graded and all(o.status == "passed" for o in graded) else 1


def run(args):
    from scratchdgm.cli import _exercises as ex

    actions = {"list": _list, "make-student": _make_student, "status": _status}
    if args.action is None:
        print("scratchdgm exercises: name an action: list, make-student DIR or status [DIR] "
              "(see --help)", file=sys.stderr)
        return 2
    return actions[args.action](args, ex)
