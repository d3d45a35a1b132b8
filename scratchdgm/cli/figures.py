r"""``scratchdgm figures``: regenerate every figure the README and ``docs/`` show, in one run.

The figures are the outputs of code anyone can run: the demo's sections (the autodiff fit, the
linear models, the VAE and IWAE on the digits protocol at full length) and every experiment of
:mod:`scratchdgm.experiments` at full length. They are written under ``--out`` (default
``docs/figures``, run from the repository's root) where the docs show them: one folder per demo
section, the experiments' figures side by side in ``experiments/`` (those of the discrete and
the flow pages in ``discrete/`` and ``diffusion_flows/``), with the numbers of the run in
``--out``/figures.txt. Expect tens of minutes on one core; ``--quick`` runs the
smoke-test versions in a few minutes (the pictures then show little).
"""

import pathlib
import shutil
import tempfile
import time

HELP = "regenerate every figure of the README and docs/ (long: tens of minutes; --quick)"

#: (folder under --out, title, what to run): the demo's sections, then the experiments
DEMO_SOURCES = (
    ("autodiff", "the autodiff demo", "scratchdgm.cli.demo.autodiff"),
    ("linear", "factor analysis and PPCA on the digits", "scratchdgm.cli.demo.linear"),
    ("deep", "VAE and IWAE on the digits protocol", "scratchdgm.cli.demo.deep"),
)


#: where the docs show an experiment's figures, when not in experiments/
EXPERIMENT_FOLDERS = {"discrete-gradients": "discrete", "flow-vs-vae": "diffusion_flows"}


def configure_parser(parser):
    parser.add_argument("--out", default="docs/figures", metavar="DIR",
                        help="where the figures go (default: %(default)s)")
    parser.add_argument("--quick", action="store_true",
                        help="the smoke-test versions (minutes, not tens of minutes)")
    parser.add_argument("--only", nargs="+", default=None, metavar="NAME",
                        help="regenerate only these (demo sections or experiment names, e.g. "
                             "deep linear monte-carlo)")


def _sources():
    from scratchdgm.experiments import EXPERIMENTS

    for folder, title, module in DEMO_SOURCES:
        yield folder, folder, title, ("demo", module)
    for name in EXPERIMENTS:
        yield name, EXPERIMENT_FOLDERS.get(name, "experiments"), f"experiment {name}", \
            ("experiment", name)


def _run_experiment_into(name, folder, quick):
    r"""Run one experiment in a scratch folder and copy its figures into ``folder`` (several
    experiments share one docs folder; their ``numbers.json`` go to figures.txt instead)."""
    from scratchdgm.experiments import run_experiment

    with tempfile.TemporaryDirectory() as tmp:
        result = run_experiment(name, pathlib.Path(tmp), quick=quick)
        folder.mkdir(parents=True, exist_ok=True)
        for png in sorted(pathlib.Path(tmp).glob("*.png")):
            shutil.copyfile(png, folder / png.name)
    return result.text


def run(args):
    from importlib import import_module

    from scratchdgm.checkpoint import write_text_atomic

    out = pathlib.Path(args.out)
    sources = list(_sources())
    if args.only:
        known = {key for key, _, _, _ in sources}
        unknown = sorted(set(args.only) - known)
        if unknown:
            raise ValueError(f"--only: unknown {unknown}; expected some of {sorted(known)}")
        sources = [s for s in sources if s[0] in args.only]
    report = []
    for _, folder, title, (kind, target) in sources:
        start = time.perf_counter()
        print(f"{title} -> {out / folder}", flush=True)
        if kind == "demo":
            text = import_module(target).run(out / folder, quick=args.quick)
        else:
            text = _run_experiment_into(target, out / folder, args.quick)
        seconds = time.perf_counter() - start
        report.append(f"## {title} ({seconds:.0f} s{', quick' if args.quick else ''})\n\n"
                      f"{text.rstrip()}\n")
    write_text_atomic(out / "figures.txt", "\n".join(report))
    print(f"wrote the figures under {out}/ and their numbers in {out / 'figures.txt'}")
    return 0
