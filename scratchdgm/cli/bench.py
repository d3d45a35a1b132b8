r"""``scratchdgm bench NAME``: run one of the benchmarks of :mod:`scratchdgm.benchmarks`.

A thin entry: the benchmarks live in ``benchmarks/`` (installed as ``scratchdgm.benchmarks``);
this only lists them and hands over the arguments. Nothing optional is needed: PyTorch, where a
benchmark compares with it, is skipped with a note when it is not installed.
"""

from importlib import import_module

HELP = ("measure speed: kernels, the IWAE training step, training end to end, evaluation, "
        "the autodiff, FA/PPCA fits; 'all' writes docs/benchmarks.md")


def configure_parser(parser):
    from scratchdgm.benchmarks import BENCHMARKS

    sub = parser.add_subparsers(dest="bench", metavar="BENCHMARK")
    sub.required = True
    for name, module_name in BENCHMARKS.items():
        module = import_module(module_name)
        p = sub.add_parser(name, help=module.HELP, description=module.__doc__.split("\n\n")[0])
        module.configure_parser(p)
        p.set_defaults(_bench_run=module.run)


def run(args):
    return args._bench_run(args)
