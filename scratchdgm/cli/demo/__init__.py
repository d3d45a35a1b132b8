r"""``scratchdgm demo``: the course from shallow to deep in one run.

1. the autodiff: an MLP fitted by gradient descent, with its gradient checked against finite
   differences (:mod:`scratchdgm.cli.demo.autodiff`);
2. linear latent-variable models: factor analysis (EM) and probabilistic PCA (closed form) on the
   digits (:mod:`scratchdgm.cli.demo.linear`);
3. deep latent-variable models: a VAE and an IWAE trained on the digits and evaluated with the
   importance-sampled log-likelihood (:mod:`scratchdgm.cli.demo.deep`).

Each part writes its figures into ``--out`` and prints a short results table; the tables are
also written to ``--out``/results.txt.
"""

import pathlib
import time

HELP = "run the whole course in one go: autodiff, FA/PPCA, VAE/IWAE; print results, write figures"

PARTS = (
    ("1. Autodiff: an MLP fitted by backpropagation", "scratchdgm.cli.demo.autodiff"),
    ("2. Linear latent-variable models: factor analysis and PPCA", "scratchdgm.cli.demo.linear"),
    ("3. Deep latent-variable models: VAE and IWAE", "scratchdgm.cli.demo.deep"),
)


def configure_parser(parser):
    parser.add_argument("--out", default="scratchdgm_demo", metavar="DIR",
                        help="folder for the figures and results (default: %(default)s)")
    parser.add_argument("--quick", action="store_true",
                        help="shorter training everywhere (a smoke test, about a minute)")


def run(args):
    from importlib import import_module

    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    report = []
    for title, module_name in PARTS:
        print(f"\n{title}\n{'=' * len(title)}", flush=True)
        part_dir = out / module_name.rsplit(".", 1)[-1]
        part_dir.mkdir(exist_ok=True)
        text = import_module(module_name).run(part_dir, quick=args.quick)
        print(text.rstrip(), flush=True)
        report.append(f"{title}\n{'=' * len(title)}\n{text.rstrip()}\n")
    # the printed tables, kept beside the figures (temporary file + rename: never half written)
    results = out / "results.txt"
    tmp = results.with_name(results.name + ".tmp")
    tmp.write_text("\n".join(report))
    tmp.replace(results)
    print(f"\nDone in {time.perf_counter() - start:.0f} s. Figures and the results tables "
          f"({results.name}) are in {out.resolve()}/")
    return 0
