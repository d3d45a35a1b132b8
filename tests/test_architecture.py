r"""The layers of the library hold: every import of every module (read from the source, imports
inside functions included) goes to a layer the table below allows, and no chain of imports
comes back to where it started.

The table is the one drawn in the README ("What is inside"); a test compares the two, so that
the diagram cannot drift from the code. Imports made through ``importlib`` with a string (the
lazy public names of ``scratchdgm/__init__.py``, the command registry of the CLI, the kernel
modules a backend names) are not edges: they run only when asked for.
"""

import ast
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]

#: layer -> (module prefixes in it, layers it may import besides itself)
LAYERS = {
    "base": (["scratchdgm.validation", "scratchdgm.numerics", "scratchdgm.threads",
              "scratchdgm.progress", "scratchdgm.memory"], []),
    "kernels": (["scratchdgm.kernels"], ["base"]),
    "backend": (["scratchdgm.backend"], ["base", "kernels"]),
    "autodiff": (["scratchdgm.autodiff"], ["base", "kernels", "backend"]),
    "checkpoint": (["scratchdgm.checkpoint"], ["base"]),
    "nn": (["scratchdgm.nn", "scratchdgm.optim"], ["base", "backend", "autodiff", "checkpoint"]),
    "distributions": (["scratchdgm.distributions"], ["base", "autodiff"]),
    "estimators": (["scratchdgm.estimators"], ["base", "autodiff", "distributions"]),
    "data": (["scratchdgm.data"], ["base"]),
    "plots": (["scratchdgm.plots"], ["base"]),
    "models.linear": (["scratchdgm.models.linear"], ["base"]),
    "models.deep": (["scratchdgm.models.deep"],
                    ["base", "autodiff", "checkpoint", "nn", "distributions"]),
    "models": (["scratchdgm.models"], ["models.linear", "models.deep"]),
    "testing": (["scratchdgm.testing"], ["base", "autodiff", "nn"]),
    "experiments": (["scratchdgm.experiments"],
                    ["base", "kernels", "backend", "autodiff", "checkpoint", "nn",
                     "distributions", "estimators", "data", "plots", "models.linear",
                     "models.deep", "models", "evaluation"]),
    "evaluation": (["scratchdgm.evaluation"],
                   ["base", "autodiff", "distributions", "estimators", "models.linear",
                    "models.deep", "models"]),
    "benchmarks": (["scratchdgm.benchmarks"],
                   ["base", "kernels", "backend", "autodiff", "checkpoint", "nn",
                    "distributions", "estimators", "data", "plots", "models.linear",
                    "models.deep", "models", "evaluation", "experiments"]),
    "cli": (["scratchdgm.cli"],
            ["base", "kernels", "backend", "autodiff", "checkpoint", "nn", "distributions",
             "estimators", "data", "plots", "models.linear", "models.deep", "models", "evaluation",
             "experiments", "benchmarks", "testing", "root"]),
    "root": (["scratchdgm"], ["cli"]),
}


def _module_files():
    """module name -> source path, for every module of the installed package."""
    out = {}
    for base, prefix in ((ROOT / "scratchdgm", "scratchdgm"),
                         (ROOT / "kernels", "scratchdgm.kernels"),
                         (ROOT / "benchmarks", "scratchdgm.benchmarks")):
        for path in base.rglob("*.py"):
            rel = path.relative_to(base).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            out[".".join([prefix, *parts])] = path
    return out


MODULES = _module_files()


def _is_package(name):
    return MODULES[name].name == "__init__.py"


def _resolve(name):
    """The longest known module that ``name`` (a dotted import target) names."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _imports(module):
    """First-party modules that ``module`` imports (anywhere in its code, except under
    ``if __name__ == "__main__":``)."""
    tree = ast.parse(MODULES[module].read_text(), filename=str(MODULES[module]))
    main_blocks = [n for n in ast.walk(tree) if isinstance(n, ast.If)
                   and isinstance(n.test, ast.Compare) and isinstance(n.test.left, ast.Name)
                   and n.test.left.id == "__name__"]
    skip = {id(x) for b in main_blocks for x in ast.walk(b)}
    package = module if _is_package(module) else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                stem = ".".join(base + ([node.module] if node.module else []))
            else:
                stem = node.module or ""
            targets = [f"{stem}.{a.name}" for a in node.names] + [stem]
        else:
            continue
        for t in targets:
            if t == "scratchdgm" or t.startswith("scratchdgm."):
                resolved = _resolve(t)
                if resolved and resolved != module:
                    found.add(resolved)
    # `from scratchdgm.x import y` names both x and x.y: keep the most specific
    return {m for m in found if not any(o != m and o.startswith(m + ".") for o in found)}


def _layer(module):
    best = None
    for layer, (prefixes, _) in LAYERS.items():
        for p in prefixes:
            if module == p or module.startswith(p + "."):
                if best is None or len(p) > len(best[1]):
                    best = (layer, p)
    return best[0] if best else None


def test_every_module_belongs_to_a_layer():
    orphans = [m for m in MODULES if _layer(m) is None]
    assert not orphans, f"modules in no layer of the table: {orphans}"


def test_imports_follow_the_layer_table():
    bad = []
    for module in sorted(MODULES):
        layer = _layer(module)
        allowed = {layer, *LAYERS[layer][1]}
        for target in sorted(_imports(module)):
            if _layer(target) not in allowed:
                bad.append(f"{module} ({layer}) imports {target} ({_layer(target)})")
    assert not bad, "imports against the layer table:\n" + "\n".join(bad)


def test_no_import_cycle():
    graph = {m: _imports(m) for m in MODULES}
    # an import of a module also runs its parent packages' __init__; those edges are
    # implied, not written, and are left out (a package re-exporting its modules is no cycle)
    state, stack, cycles = {}, [], []

    def visit(m):
        state[m] = "open"
        stack.append(m)
        for n in sorted(graph[m]):
            if state.get(n) == "open":
                cycles.append(stack[stack.index(n):] + [n])
            elif n not in state:
                visit(n)
        stack.pop()
        state[m] = "done"

    for m in sorted(graph):
        if m not in state:
            visit(m)
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_readme_layer_table_is_this_table():
    text = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- layers:begin -->(.*?)<!-- layers:end -->", text, re.S)
    assert block, "README.md lacks the layer table between <!-- layers:begin/end --> markers"
    rows = {}
    for line in block.group(1).splitlines():
        cells = [c.strip().strip("`") for c in line.strip().strip("|").split("|")]
        if len(cells) >= 3 and cells[0] in LAYERS:
            rows[cells[0]] = sorted(c.strip().strip("`") for c in cells[2].split(",")
                                    if c.strip() and c.strip() != "—")
    assert rows == {k: sorted(v[1]) for k, v in LAYERS.items()}


def test_setup_cfg_lists_every_package():
    text = (ROOT / "setup.cfg").read_text()
    listed = set(re.search(r"packages =\n((?:    \S+\n)+)", text).group(1).split())
    packages = {m for m in MODULES if _is_package(m)}
    assert listed == packages, (f"setup.cfg misses {sorted(packages - listed)}, lists unknown "
                                f"{sorted(listed - packages)}")


@pytest.mark.parametrize("module", ["scratchdgm.models.deep.vae",
                                    "scratchdgm.models.deep.training"])
def test_models_know_nothing_of_backends(module):
    assert not any(_layer(t) == "backend" for t in _imports(module))
