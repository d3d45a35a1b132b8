r"""``scratchdgm demo``: the course from shallow to deep in one run.

1. the autodiff: an MLP fitted by gradient descent, with its gradient checked against finite
   differences (:mod:`scratchdgm.cli.demo.autodiff`);
2. linear latent-variable models: factor analysis (EM) and probabilistic PCA (closed form) on the
   digits (:mod:`scratchdgm.cli.demo.linear`);
3. deep latent-variable models: a VAE and an IWAE trained on the digits and evaluated with the
   importance-sampled log-likelihood (:mod:`scratchdgm.cli.demo.deep`).

Each part writes its figures into ``--out`` and prints a short results table; the tables are
also written to ``--out``/results.txt. Every stretch of more than a couple of seconds (the MLP's
training, the EM fits, each VAE / IWAE training, the K = 5000 evaluations) draws a progress bar
with the time left, on a terminal.
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
    parser.add_argument("--backend", default=None, choices=["numpy", "numba", "cuda", "auto"],
                        help="kernel backend of every part (default: SCRATCHDGM_BACKEND, else "
                             "auto = numba)")


def run(args):
    from importlib import import_module

    from scratchdgm.backend import use_backend
    from scratchdgm.checkpoint import write_text_atomic
    from scratchdgm.cli._runs import check_backend, run_directory

    # every part runs on this backend: checked before the first part, not in the third
    backend = check_backend(args.backend)
    out = pathlib.Path(args.out)
    start = time.perf_counter()
    report = []
    with run_directory(out), use_backend(backend):
        for title, module_name in PARTS:
            print(f"\n{title}\n{'=' * len(title)}", flush=True)
            part_dir = out / module_name.rsplit(".", 1)[-1]
            part_dir.mkdir(exist_ok=True)
            text = import_module(module_name).run(part_dir, quick=args.quick)
            print(text.rstrip(), flush=True)
            report.append(f"{title}\n{'=' * len(title)}\n{text.rstrip()}\n")
    # the printed tables, kept beside the figures (temporary file + rename: never half written)
    results = out / "results.txt"
    write_text_atomic(results, "\n".join(report))
    print(f"\nDone in {time.perf_counter() - start:.0f} s. Figures and the results tables "
          f"({results.name}) are in {out.resolve()}/")
    return 0
