r"""Every speed figure of issue 14 in one table, written to ``docs/benchmarks.md``.

Runs, one after another, the benchmarks whose figures the issue asks for, each against the peer
measured in the same run:

* ``train`` -- end to end in fresh processes, first run and later runs, against PyTorch
  (goal 1);
* ``eval`` -- the K = 5000 log-likelihood against the GEMM floor, one core against all,
  against PyTorch (goal 2);
* ``fa-convergence`` -- factor analysis at its defaults against scikit-learn (goal 3);
* ``logsumexp`` -- the log-sum-exp kernel against the read bandwidth and SciPy (goal 4);
* ``iwae-step`` -- one training step against PyTorch (the figure the issue starts from);

then prints one table -- figure, ours, peer, ratio, goal -- under the CPU model, thread count
and date, and writes it, with each benchmark's own table, to ``--out`` (default
``docs/benchmarks.md``). PyTorch is optional: without it its columns say so and the rest runs.
The full protocols take tens of minutes on a 2-core machine; ``--quick`` runs each on tiny
sizes (a check that everything runs, not a measurement).
Run ``scratchdgm bench all [--quick] [--only eval train ...] [--out docs/benchmarks.md]``.
"""

import argparse
import contextlib
import io
import json
import os
import sys
import time
from importlib import import_module

HELP = "every figure of issue 14 in one table, written to docs/benchmarks.md"

#: name -> (module, arguments of the full protocol, arguments of --quick)
PROTOCOLS = {
    "train": ("scratchdgm.benchmarks.train", ["--repeats", "3"],
              ["--k", "5", "--n-train", "200", "--n-val", "20", "--eval-n", "2",
               "--eval-k", "100"]),
    "eval": ("scratchdgm.benchmarks.eval", [],
             ["--n", "2", "--k", "300", "--dtype", "float32"]),
    "fa-convergence": ("scratchdgm.benchmarks.fa_convergence", [],
                       ["--repeats", "1", "--d", "2"]),
    "logsumexp": ("scratchdgm.benchmarks.logsumexp", [], ["--repeats", "1"]),
    "iwae-step": ("scratchdgm.benchmarks.iwae_step", ["--backend", "numba"],
                  ["--backend", "numba", "--k", "5", "--steps", "3", "--warmup", "1"]),
}


def configure_parser(p):
    p.add_argument("--quick", action="store_true",
                   help="tiny sizes: checks that every benchmark runs (not a measurement)")
    p.add_argument("--only", nargs="+", choices=list(PROTOCOLS), metavar="NAME",
                   help=f"run only these ({', '.join(PROTOCOLS)})")
    p.add_argument("--no-torch", action="store_true", help="skip the PyTorch peer everywhere")
    p.add_argument("--set", action="append", default=[], metavar="NAME=ARGS",
                   help="replace one benchmark's arguments, e.g. --set 'eval=--n 200' "
                        "(repeatable)")
    p.add_argument("--out", default=None,
                   help="markdown file to write (default: docs/benchmarks.md of the checkout "
                        "when run from one, else ./benchmarks.md); '-' writes none")


def _default_out():
    here = os.path.dirname(os.path.abspath(__file__))
    docs = os.path.join(os.path.dirname(here), "docs")
    return os.path.join(docs, "benchmarks.md") if os.path.isdir(docs) else "benchmarks.md"


def _args_for(module, argv, no_torch):
    parser = argparse.ArgumentParser()
    module.configure_parser(parser)
    if no_torch and any(a.dest == "no_torch" for a in parser._actions):
        argv = [*argv, "--no-torch"]
    return parser.parse_args(argv)


def _markdown_table(headers, rows):
    def cell(v):
        return str(v).replace("|", "\\|")

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def _overrides(items):
    out = {}
    for item in items:
        name, sep, argv = item.partition("=")
        if not sep or name not in PROTOCOLS:
            raise ValueError(f"--set expects NAME=ARGS with NAME one of {list(PROTOCOLS)}, got "
                             f"{item!r}")
        out[name] = argv.split()
    return out


def _load_average():
    """The 1-minute load average, or None where the platform has none (Windows)."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):  # pragma: no cover
        return None


def conditions(loads, overrides, quick):
    r"""Plain sentences on what the figures are worth: the load the machine carried while
    they were taken (1-minute load average at the start and end of every benchmark, against
    the logical cores) and whether the protocols were the full ones.

    The benchmarks themselves keep at most every core busy, so a load above the core count
    means other processes shared the cores: every time is above its quiet value and a
    one-thread-against-all-threads ratio measures the contention, not the code. Returns a list
    of sentences (empty for a quiet machine and full protocols).
    """
    notes = []
    cores = os.cpu_count() or 1
    loads = [x for x in loads if x is not None]
    if loads and max(loads) > cores:
        notes.append(
            f"**Measured under load**: the 1-minute load average was {min(loads):.1f} to "
            f"{max(loads):.1f} on {cores} logical cores while these figures were taken, so "
            "every time is above its quiet value and the multi-thread figures (threads against "
            "one thread) are not meaningful. Re-measure on a quiet machine.")
    if quick:
        notes.append("**--quick: tiny sizes, not a measurement.**")
    elif overrides:
        sets = " ".join(f"--set '{k}={' '.join(v)}'" for k, v in overrides.items())
        notes.append(f"**Reduced sizes**: run as `scratchdgm bench all {sets}`, not the full "
                     "protocols of `scratchdgm bench all`.")
    return notes


def measure(args):
    names = args.only or list(PROTOCOLS)
    overrides = _overrides(args.set)
    out = {}
    for name in names:
        module_name, full, quick = PROTOCOLS[name]
        module = import_module(module_name)
        argv = overrides.get(name, quick if args.quick else full)
        bench_args = _args_for(module, argv, args.no_torch)
        print(f"[bench all] {name} {' '.join(argv)} ...", file=sys.stderr, flush=True)
        load0, t0 = _load_average(), time.perf_counter()
        result = module.measure(bench_args)
        text = io.StringIO()  # the benchmark's own table, as its run() prints it
        with contextlib.redirect_stdout(text):
            module.report(result, bench_args)
        out[name] = {"command": f"scratchdgm bench {name} {' '.join(argv)}".strip(),
                     "seconds": time.perf_counter() - t0, "result": result,
                     "table": text.getvalue(), "summary": module.summary_rows(result),
                     "load": [load0, _load_average()]}
    return out


def run(args):
    from scratchdgm.benchmarks.common import machine_line, table

    out = measure(args)
    head = machine_line(1)
    headers = ["figure", "ours", "peer (same run)", "ratio", "goal"]
    rows = [r for entry in out.values() for r in entry["summary"]]
    notes = conditions([x for e in out.values() for x in e["load"]], _overrides(args.set),
                       args.quick)
    print(head)
    print(table(headers, rows))
    for note in notes:
        print(note.replace("**", ""))
    path = _default_out() if args.out is None else args.out
    if path != "-":
        parts = ["# Benchmarks", "",
                 "Written by `scratchdgm bench all" + (" --quick" if args.quick else "")
                 + "` (`benchmarks/run_all.py`). Every ratio compares figures measured in the "
                 "same run.", "", *[n + "\n" for n in notes],
                 f"Machine: {head} (thread counts per benchmark below).", "",
                 _markdown_table(headers, rows), ""]
        for name, entry in out.items():
            parts += [f"## {name}", "", f"`{entry['command']}` ({entry['seconds']:.0f} s)", "",
                      "```", entry["table"].rstrip(), "```", ""]
        parts += ["<!-- raw results -->", "<details><summary>JSON</summary>", "", "```json",
                  json.dumps({k: v["result"] for k, v in out.items()}, indent=1), "```",
                  "</details>", ""]
        with open(path, "w", encoding="utf-8") as f:
            f.write("\n".join(parts))
        print(f"(written to {path})")
    return 0


if __name__ == "__main__":
    from scratchdgm.cli import main

    sys.exit(main(["bench", "all", *sys.argv[1:]]))
