r"""The machinery behind ``scratchdgm exercises``: course exercises cut out of the library itself.

An exercise ``NN`` is four things, each found by a convention, so that adding one means adding
them and nothing else:

* its **solution regions** in the library: the statements of a function or method body (after
  its docstring) between two comment lines ::

      # BEGIN EXERCISE NN: <what to write, in a few words>
      ...
      # END EXERCISE NN

  in any module of the installed packages (``scratchdgm/``, ``kernels/``, ``benchmarks/``);
* its **page** ``exercises/NN_<name>.md``;
* its **checker**, the test module ``exercises/test_exNN_<name>.py`` whose tests carry the
  pytest marker ``exNN`` (its checks usually live in ``exercises/checks/exNN_<name>.py``);
* the **marker registration** ``exNN: <title>`` in ``setup.cfg`` (``[tool:pytest] markers``);
  ``exNN: planned: <title>`` announces an exercise that is not written yet.

:func:`make_student` writes a *student copy* of a repository in which every region is replaced
by ``raise NotImplementedError("Exercise NN: ...")`` (markers and indentation kept, so the
function still parses and the student writes between the markers). The checks of a region that
still raises fail with "Exercise NN not attempted yet: ..." (:func:`stub_failure`, called by
``exercises/conftest.py``). :func:`run_checks` runs the checkers of a repository (a student copy
or the solutions) in one pytest subprocess that imports *that* repository's package, and
:func:`summarise` turns the outcomes into passed / failing / not attempted per exercise.

This module imports only the standard library at its top: the check runner loads it by file
path in a fresh interpreter, before the repository's ``scratchdgm`` may be imported.
"""

import ast
import configparser
import dataclasses
import io
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
import time
import tokenize

__all__ = [
    "Region", "Exercise", "RegionError", "find_repo", "find_regions", "find_exercises",
    "consistency_problems", "stub_source", "make_student", "run_checks", "summarise",
    "format_table", "stub_failure", "install_source_finder", "python_bootstrap",
]

BEGIN = re.compile(r"^(?P<indent>[ \t]*)# BEGIN EXERCISE (?P<nn>\d\d)\b(?::\s*(?P<what>.*?))?\s*$")
END = re.compile(r"^(?P<indent>[ \t]*)# END EXERCISE (?P<nn>\d\d)\s*$")
#: the stub's message starts with this; :func:`stub_failure` recognises it
STUB_PREFIX = re.compile(r"Exercise (\d\d): ")
NOT_ATTEMPTED = "Exercise {nn} not attempted yet: {detail}"
NEEDS_OTHER = "Exercise {nn} needs exercise {other}, which is not attempted yet: {detail}"
PAGE = re.compile(r"^(\d\d)_[a-z0-9_]+\.md$")
CHECKER = re.compile(r"^test_ex(\d\d)_[a-z0-9_]+\.py$")
MARKER = re.compile(r"^ex(\d\d)$")

#: folders never copied when the source is not a git checkout (build products and caches)
SKIP_DIRS = {".git", "__pycache__", ".pytest_cache", ".hypothesis", ".mypy_cache", ".ruff_cache",
             "build", "dist", ".eggs", "venv", "runs", "scratchdgm_demo", "demo_output",
             "scratchdgm_experiments", "htmlcov", ".ipynb_checkpoints"}
SKIP_SUFFIXES = (".pyc", ".pyo", ".nbi", ".nbc")


class RegionError(ValueError):
    """A malformed ``# BEGIN/END EXERCISE`` region (unclosed, nested, not a whole body...)."""


@dataclasses.dataclass(frozen=True)
class Region:
    """One solution region: the body of ``function`` in ``path``, lines ``begin``-``end``
    (1-based, the marker lines included)."""

    number: str
    path: str          # relative to the repository, with '/'
    begin: int
    end: int
    indent: str
    function: str      # qualified name, e.g. 'Tanh.backward'
    what: str          # the text after 'BEGIN EXERCISE NN:'
    documented: bool = True  # whether the function has a docstring to read


@dataclasses.dataclass
class Exercise:
    """Everything the conventions find for exercise ``number``."""

    number: str
    title: str = None
    planned: bool = False
    registered: bool = False
    page: str = None
    checker: str = None
    regions: list = dataclasses.field(default_factory=list)

    @property
    def marker(self):
        return f"ex{self.number}"


# ----------------------------------------------------------------------------- the repository
def is_repo(path):
    """Whether ``path`` looks like a scratchdgm repository (a clone or a student copy)."""
    path = pathlib.Path(path)
    return ((path / "setup.cfg").is_file() and (path / "scratchdgm" / "__init__.py").is_file()
            and (path / "exercises").is_dir())


def find_repo(start=None):
    r"""The repository to work on: ``start`` itself (an error if it is not one), else the one
    holding the current directory, else the clone the imported ``scratchdgm`` comes from.

    Raises
    ------
    FileNotFoundError
        When none is found (an installed package is not a clone: point at one with a path).
    """
    if start is not None:
        path = pathlib.Path(start).expanduser().resolve()
        if not is_repo(path):
            raise FileNotFoundError(f"{path} is not a scratchdgm repository: expected setup.cfg, "
                                    f"scratchdgm/__init__.py and exercises/ in it")
        return path
    here = pathlib.Path.cwd().resolve()
    for path in (here, *here.parents):
        if is_repo(path):
            return path
    package = sys.modules.get("scratchdgm")
    if package is not None and getattr(package, "__file__", None):
        path = pathlib.Path(package.__file__).resolve().parents[1]
        if is_repo(path):
            return path
    raise FileNotFoundError("no scratchdgm repository here: run this inside a clone, or give its "
                            "path (--repo DIR)")


def _setup_cfg(repo):
    cfg = configparser.ConfigParser(interpolation=None)
    cfg.read(pathlib.Path(repo) / "setup.cfg")
    return cfg


def package_dirs(repo):
    r"""Installed package -> folder in ``repo``: ``scratchdgm`` and the ``package_dir`` entries
    of setup.cfg (``scratchdgm.kernels -> kernels``, ``scratchdgm.benchmarks -> benchmarks``)."""
    repo = pathlib.Path(repo)
    out = {"scratchdgm": repo / "scratchdgm"}
    cfg = _setup_cfg(repo)
    text = cfg.get("options", "package_dir", fallback="")
    for line in text.splitlines():
        if "=" in line:
            name, folder = (part.strip() for part in line.split("=", 1))
            if name:
                out[name] = repo / folder
    return out


def registered_markers(repo):
    r"""``{'01': (title, planned)}`` from the ``exNN: ...`` lines of setup.cfg's pytest markers."""
    cfg = _setup_cfg(repo)
    out = {}
    for line in cfg.get("tool:pytest", "markers", fallback="").splitlines():
        name, _, text = line.strip().partition(":")
        m = MARKER.match(name.strip())
        if m:
            text = text.strip()
            planned = text.lower().startswith("planned:")
            if planned:
                text = text.split(":", 1)[1].strip()
            out[m.group(1)] = (text, planned)
    return out


def repository_files(repo):
    r"""The files a clone of ``repo`` has, relative, sorted: ``git ls-files`` (tracked plus
    untracked-but-not-ignored) when ``repo`` is the top of a git checkout, else a walk of the
    tree that skips build products and caches (:data:`SKIP_DIRS`)."""
    repo = pathlib.Path(repo).resolve()
    names = None
    try:
        top = subprocess.run(["git", "-C", str(repo), "rev-parse", "--show-toplevel"],
                             capture_output=True, text=True, check=True).stdout.strip()
        if top and pathlib.Path(top).resolve() == repo:
            out = subprocess.run(["git", "-C", str(repo), "ls-files", "-z", "--cached",
                                  "--others", "--exclude-standard"],
                                 capture_output=True, check=True).stdout
            names = [n for n in out.decode().split("\0") if n]
    except (OSError, subprocess.CalledProcessError):
        names = None
    if names is None:
        names = []
        for folder, dirs, files in os.walk(repo):
            dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS and not d.endswith(".egg-info")
                             and not d.startswith(".venv"))
            rel = pathlib.Path(folder).relative_to(repo)
            names += [(rel / f).as_posix() for f in files if not f.endswith(SKIP_SUFFIXES)]
    # a file deleted in the working tree but still in git's index is not there to copy
    return sorted({n for n in names if (repo / n).is_file() or (repo / n).is_symlink()})


# ----------------------------------------------------------------------------- regions
def _functions(tree):
    """(qualified name, node) of every function in ``tree``, methods included."""
    out = []

    def visit(node, prefix):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                name = prefix + child.name
                out.append((name, child))
                visit(child, name + ".<locals>.")
            elif isinstance(child, ast.ClassDef):
                visit(child, prefix + child.name + ".")
            else:
                visit(child, prefix)

    visit(tree, "")
    return out


def _is_docstring(stmt):
    return (isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant)
            and isinstance(stmt.value.value, str))


def _only_comments(lines, first, last):
    """Whether lines ``first``..``last`` (1-based, inclusive) are blank or comments."""
    return all(not ln.strip() or ln.strip().startswith("#") for ln in lines[first - 1:last])


def _comment_lines(text, path):
    """Line numbers of the lines that hold nothing but a comment (markers inside strings, such
    as documentation of the markers, are not markers)."""
    out = []
    try:
        for tok in tokenize.generate_tokens(io.StringIO(text).readline):
            if tok.type == tokenize.COMMENT and not tok.line[:tok.start[1]].strip():
                out.append(tok.start[0])
    except (tokenize.TokenError, SyntaxError) as exc:
        raise RegionError(f"{path}: cannot be read as Python ({exc})") from None
    return out


def regions_in_source(text, path):
    r"""The regions of one source file, checked: each BEGIN has its END (same number, same
    indentation), none nests, each says what to write, and each spans exactly the statements of
    one function body after its docstring.

    Raises
    ------
    RegionError
        Naming the file and line.
    """
    lines = text.splitlines()
    spans, open_ = [], None
    for i in _comment_lines(text, path):
        line = lines[i - 1]
        b, e = BEGIN.match(line), END.match(line)
        if b:
            if open_ is not None:
                raise RegionError(f"{path}:{i}: BEGIN EXERCISE {b['nn']} inside the region "
                                  f"opened at line {open_[0]}; regions do not nest")
            if not b["what"]:
                raise RegionError(f"{path}:{i}: '# BEGIN EXERCISE {b['nn']}' needs ': <what to "
                                  f"write>' after the number (it becomes the stub's message)")
            open_ = (i, b)
        elif e:
            if open_ is None:
                raise RegionError(f"{path}:{i}: END EXERCISE {e['nn']} without a BEGIN")
            start, b = open_
            if e["nn"] != b["nn"] or e["indent"] != b["indent"]:
                raise RegionError(f"{path}:{i}: END EXERCISE {e['nn']} does not close BEGIN "
                                  f"EXERCISE {b['nn']} of line {start} (same number and "
                                  f"indentation expected)")
            spans.append((start, i, b))
            open_ = None
        elif "EXERCISE" in line and re.match(r"^\s*#\s*(BEGIN|END)\s+EXERCISE", line):
            raise RegionError(f"{path}:{i}: malformed marker {line.strip()!r}; expected "
                              f"'# BEGIN EXERCISE NN: <what>' or '# END EXERCISE NN'")
    if open_ is not None:
        raise RegionError(f"{path}:{open_[0]}: BEGIN EXERCISE {open_[1]['nn']} is never closed")
    if not spans:
        return []
    try:
        tree = ast.parse(text, filename=str(path))
    except SyntaxError as exc:
        raise RegionError(f"{path}:{exc.lineno}: does not parse ({exc.msg})") from None
    functions = _functions(tree)
    out = []
    for start, stop, b in spans:
        found = None
        for name, fn in functions:
            body = list(fn.body)
            doc = body.pop(0) if body and _is_docstring(body[0]) else None
            if not body or not (start < body[0].lineno and body[-1].end_lineno < stop):
                continue
            head_end = doc.end_lineno if doc is not None else fn.lineno
            if (head_end < start and _only_comments(lines, start + 1, body[0].lineno - 1)
                    and _only_comments(lines, body[-1].end_lineno + 1, stop - 1)):
                found = (name, body, doc is not None)
                break
        if found is None:
            raise RegionError(f"{path}:{start}: region of exercise {b['nn']} (lines {start}-{stop}) "
                              f"is not the whole body of one function after its docstring")
        name, body, documented = found
        if len(b["indent"]) != body[0].col_offset:
            raise RegionError(f"{path}:{start}: markers of exercise {b['nn']} must be indented "
                              f"like the body of {name} ({body[0].col_offset} columns)")
        out.append(Region(b["nn"], str(path), start, stop, b["indent"], name, b["what"],
                          documented))
    return out


def find_regions(repo, files=None):
    r"""Every region of the repository's packages (:func:`package_dirs`), in file order.

    Parameters
    ----------
    repo : path
    files : list of str, optional
        Relative paths to consider (default: :func:`repository_files`).
    """
    repo = pathlib.Path(repo).resolve()
    roots = [p.relative_to(repo).as_posix() + "/" for p in package_dirs(repo).values()]
    files = repository_files(repo) if files is None else files
    out = []
    for rel in files:
        if rel.endswith(".py") and any(rel.startswith(r) for r in roots):
            text = (repo / rel).read_text(encoding="utf-8")
            if "EXERCISE" in text:
                out += regions_in_source(text, rel)
    return out


def find_exercises(repo, files=None):
    r"""Every exercise of ``repo``, by number: its registration, page, checker and regions
    (whichever exist; :func:`consistency_problems` says what is missing)."""
    repo = pathlib.Path(repo).resolve()
    files = repository_files(repo) if files is None else files
    found = {}

    def get(nn):
        return found.setdefault(nn, Exercise(nn))

    for nn, (title, planned) in registered_markers(repo).items():
        ex = get(nn)
        ex.title, ex.planned, ex.registered = title, planned, True
    for rel in files:
        parts = rel.split("/")
        if len(parts) != 2 or parts[0] != "exercises":
            continue
        for pattern, attr in ((PAGE, "page"), (CHECKER, "checker")):
            m = pattern.match(parts[1])
            if m:
                ex = get(m.group(1))
                if getattr(ex, attr) is not None:
                    raise ValueError(f"exercise {m.group(1)} has two {attr}s: "
                                     f"{getattr(ex, attr)}, {rel}")
                setattr(ex, attr, rel)
    for region in find_regions(repo, files):
        get(region.number).regions.append(region)
    return [found[nn] for nn in sorted(found)]


def consistency_problems(exercises):
    r"""What is missing: a written exercise needs its registration, page, checker and at least
    one region; a planned one (``exNN: planned: ...``) must have none of the other three yet."""
    problems = []
    for ex in exercises:
        have = {"page": ex.page, "checker": ex.checker, "solution region": ex.regions}
        if not ex.registered:
            problems.append(f"exercise {ex.number}: no marker 'ex{ex.number}: <title>' in "
                            f"setup.cfg [tool:pytest] markers")
        if ex.planned:
            extra = [k for k, v in have.items() if v]
            if extra:
                problems.append(f"exercise {ex.number} is registered as planned but has "
                                f"{', '.join(extra)}: drop 'planned:' from its marker")
            continue
        for what, value in have.items():
            if not value:
                problems.append(f"exercise {ex.number} ({ex.title or 'no title'}) has no {what}")
    return problems


# ----------------------------------------------------------------------------- student copy
def stub_message(region, page):
    """The message of the stub that replaces ``region``."""
    read = [page] if page else []
    if region.documented:
        read.append("its docstring")
    where = f"read {' and '.join(read)}" if read else "see exercises/README.md"
    return (f"Exercise {region.number}: {region.what} -- write the body of {region.function} "
            f"({region.path}); {where}")


def stub_source(text, regions, pages=None):
    r"""``text`` with each of ``regions`` (all from this file) replaced by its stub.

    The marker lines stay, so the student writes between them; between them there is one
    ``raise NotImplementedError(...)`` at the body's indentation.
    """
    pages = pages or {}
    lines = text.splitlines(keepends=True)
    for region in sorted(regions, key=lambda r: r.begin, reverse=True):
        msg = stub_message(region, pages.get(region.number))
        stub = f"{region.indent}raise NotImplementedError({json.dumps(msg)})\n"
        lines[region.begin:region.end - 1] = [stub]
    out = "".join(lines)
    ast.parse(out)  # the function must still parse
    return out


def _inside(path, folder):
    try:
        path.relative_to(folder)
        return True
    except ValueError:
        return False


def make_student(source, dest, numbers=None, *, force=False):
    r"""Write a student copy of repository ``source`` into ``dest``.

    Parameters
    ----------
    source : path
        A scratchdgm repository with the solutions (a clone).
    dest : path
        A new or empty folder, outside ``source``.
    numbers : iterable of str, optional
        The exercises to cut (default: every written one); the others keep their solutions.
    force : bool
        Allow a non-empty ``dest`` (files of the same name are overwritten).

    Returns
    -------
    dict
        ``{'files': n_copied, 'cut': {number: [function, ...]}}``.

    Raises
    ------
    FileExistsError, ValueError, FileNotFoundError
        On a bad destination, an unknown exercise number or a malformed region.
    """
    source = find_repo(source)
    dest = pathlib.Path(dest).expanduser().resolve()
    if dest == source or _inside(dest, source) or _inside(source, dest):
        raise ValueError(f"the student copy {dest} must be outside the repository {source} "
                         f"(and not contain it)")
    if dest.exists() and not dest.is_dir():
        raise FileExistsError(f"{dest} exists and is not a folder")
    if dest.exists() and any(dest.iterdir()) and not force:
        raise FileExistsError(f"{dest} is not empty; choose a new folder (or --force)")
    files = repository_files(source)
    exercises = {ex.number: ex for ex in find_exercises(source, files)}
    written = [nn for nn, ex in exercises.items() if ex.regions and not ex.planned]
    if numbers is None:
        chosen = written
    else:
        chosen = sorted({_number(n) for n in numbers})
        unknown = [nn for nn in chosen if nn not in written]
        if unknown:
            raise ValueError(f"no written exercise {', '.join(unknown)}; the exercises with "
                             f"solution regions are {', '.join(written)}")
    pages = {nn: ex.page for nn, ex in exercises.items()}
    by_file = {}
    for nn in chosen:
        for region in exercises[nn].regions:
            by_file.setdefault(region.path, []).append(region)
    # build every stubbed file first: nothing is written if one fails to parse
    stubbed = {rel: stub_source((source / rel).read_text(encoding="utf-8"), regions, pages)
               for rel, regions in by_file.items()}
    for rel in files:
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if rel in stubbed:
            target.write_text(stubbed[rel], encoding="utf-8")
            shutil.copymode(source / rel, target)
        else:
            shutil.copy2(source / rel, target, follow_symlinks=False)
    return {"files": len(files),
            "cut": {nn: [r.function for r in exercises[nn].regions] for nn in chosen}}


def _number(text):
    m = re.fullmatch(r"(?:ex)?(\d{1,2})", str(text).strip())
    if not m:
        raise ValueError(f"{text!r} is not an exercise number (expected e.g. 3, 03 or ex03)")
    return f"{int(m.group(1)):02d}"


def parse_numbers(text):
    """'1,3, ex04' -> ['01', '03', '04'] (None stays None)."""
    if text is None:
        return None
    return sorted({_number(part) for part in str(text).split(",") if part.strip()})


# ----------------------------------------------------------------------------- not attempted
def _exceptions(exc, seen=None):
    """``exc``, its causes and contexts, and the members of exception groups, each once."""
    seen = set() if seen is None else seen
    if exc is None or id(exc) in seen:
        return
    seen.add(id(exc))
    yield exc
    for member in getattr(exc, "exceptions", ()) or ():
        yield from _exceptions(member, seen)
    yield from _exceptions(exc.__cause__, seen)
    yield from _exceptions(exc.__context__, seen)


def stub_failure(exc, own=()):
    r"""The failure message for a check that ran into an exercise stub, or None.

    Parameters
    ----------
    exc : BaseException
        What the check raised; the stub's ``NotImplementedError`` may be wrapped (an op named by
        the backward pass, an exception group, a cause).
    own : sequence of str
        The exercise numbers of the check (its ``exNN`` markers).

    Returns
    -------
    str or None
        ``"Exercise NN not attempted yet: ..."`` for a stub of the check's own exercise,
        ``"Exercise NN needs exercise MM, which is not attempted yet: ..."`` for another one,
        None when no stub is involved.
    """
    for e in _exceptions(exc):
        if isinstance(e, NotImplementedError):
            text = str(e)
            m = STUB_PREFIX.search(text)
            if m:
                detail = text[m.end():]
                other = m.group(1)
                if not own or other in own:
                    return NOT_ATTEMPTED.format(nn=other, detail=detail)
                return NEEDS_OTHER.format(nn=own[0], other=other, detail=detail)
    return None


# ----------------------------------------------------------------------------- running checks
def install_source_finder(repo):
    r"""Make ``import scratchdgm`` in this interpreter load the package of ``repo`` -- and its
    subpackages mapped elsewhere by setup.cfg (``scratchdgm.kernels`` from ``kernels/``) --
    ahead of any installed copy, and put ``repo`` first on ``sys.path`` (for ``exercises``)."""
    import importlib.abc
    import importlib.util

    mapping = {name: folder for name, folder in package_dirs(repo).items()
               if (folder / "__init__.py").is_file()}

    class _SourceFinder(importlib.abc.MetaPathFinder):
        def find_spec(self, fullname, path=None, target=None):
            folder = mapping.get(fullname)
            if folder is None:
                return None
            return importlib.util.spec_from_file_location(
                fullname, folder / "__init__.py", submodule_search_locations=[str(folder)])

    sys.meta_path.insert(0, _SourceFinder())
    sys.path.insert(0, str(pathlib.Path(repo)))


def python_bootstrap(repo):
    r"""Python source that, run first in a fresh interpreter (``python -c``), makes it import
    ``repo``'s package (:func:`install_source_finder`): for checks that need a subprocess."""
    return ("import importlib.util as _u\n"
            f"_s = _u.spec_from_file_location('_scratchdgm_exercise_tool', {str(__file__)!r})\n"
            "_t = _u.module_from_spec(_s)\n_s.loader.exec_module(_t)\n"
            f"_t.install_source_finder({str(repo)!r})\n")


_RUNNER = r"""
import importlib.util, sys
repo, events, tool_path = sys.argv[1:4]
spec = importlib.util.spec_from_file_location("_scratchdgm_exercise_tool", tool_path)
tool = importlib.util.module_from_spec(spec)
spec.loader.exec_module(tool)
tool.install_source_finder(repo)
import pytest
with open(events, "w", buffering=1) as out:
    code = pytest.main(sys.argv[4:], plugins=[tool._Recorder(out)])
sys.exit(int(code))
"""


def _report_message(report):
    longrepr = report.longrepr
    if longrepr is None:
        return ""
    if isinstance(longrepr, tuple):  # a skip: (path, line, 'Skipped: why')
        return str(longrepr[-1])
    crash = getattr(longrepr, "reprcrash", None)
    if crash is not None and crash.message:
        message = crash.message
        # pytest.fail(...) reads "Failed: <message>": the message is what matters
        return message[len("Failed: "):] if message.startswith("Failed: ") else message
    text = str(longrepr).strip()
    return text.splitlines()[-1] if text else ""


class _Recorder:
    """pytest plugin of the check runner: one JSON line per collected session, test outcome and
    collection error."""

    def __init__(self, out):
        self.out = out

    def _emit(self, **event):
        self.out.write(json.dumps(event) + "\n")

    def pytest_collection_finish(self, session):
        self._emit(event="collected", n=len(session.items))

    def pytest_collectreport(self, report):
        if report.failed:
            self._emit(event="collect_error", nodeid=report.nodeid,
                       message=_report_message(report))

    def pytest_runtest_logreport(self, report):
        if report.when == "call" or report.outcome != "passed":
            markers = sorted(m.group(1) for k in report.keywords
                             for m in [MARKER.match(str(k))] if m)
            self._emit(event="test", nodeid=report.nodeid, when=report.when,
                       outcome=report.outcome, markers=markers,
                       message=_report_message(report))

    def pytest_sessionfinish(self, session, exitstatus):
        self._emit(event="finished", exit=int(exitstatus))


@dataclasses.dataclass
class CheckRun:
    """What one run of the checks gave: the events of the runner and its exit status."""

    tests: list
    collect_errors: list
    exit_code: int
    log: str
    seconds: float


def run_checks(repo, numbers, *, timeout=None, show_progress=True, extra_args=()):
    r"""Run the checks of exercises ``numbers`` of ``repo`` in one pytest subprocess.

    The subprocess imports ``repo``'s own ``scratchdgm`` (:func:`install_source_finder`), runs
    ``pytest exercises -m "exNN or ..."`` there with Hypothesis derandomised (the ``ci``
    profile, unless ``HYPOTHESIS_PROFILE`` is set) and records every outcome.

    Returns
    -------
    CheckRun
    """
    repo = find_repo(repo)
    numbers = list(numbers)
    if not numbers:
        raise ValueError("no exercise to check")
    expr = " or ".join(f"ex{nn}" for nn in numbers)
    args = ["exercises", "-m", expr, "-p", "no:cacheprovider", "-q", "-o", "addopts=",
            "--strict-markers", *extra_args]
    env = dict(os.environ)
    env.setdefault("HYPOTHESIS_PROFILE", "ci")
    env.setdefault("MPLBACKEND", "Agg")
    env.pop("PYTEST_ADDOPTS", None)
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="scratchdgm-exercises-") as tmp:
        events_path = pathlib.Path(tmp) / "events.jsonl"
        events_path.touch()
        log_path = pathlib.Path(tmp) / "pytest.log"
        cmd = [sys.executable, "-c", _RUNNER, str(repo), str(events_path), __file__, *args]
        bar = None
        with open(log_path, "w") as log, open(events_path) as events:
            proc = subprocess.Popen(cmd, cwd=repo, env=env, stdout=log, stderr=subprocess.STDOUT)
            parsed, pending = [], ""
            try:
                while True:
                    done = proc.poll() is not None
                    pending += events.read()
                    *lines, pending = pending.split("\n")
                    for line in lines:
                        event = json.loads(line)
                        parsed.append(event)
                        if show_progress and event["event"] == "collected":
                            from scratchdgm.progress import progress

                            bar = progress(total=event["n"], desc="exercise checks",
                                           unit="check", leave=False)
                        elif bar is not None and event["event"] == "test" and (
                                event["when"] == "call" or event["outcome"] != "passed"):
                            bar.update(1)
                    if done:
                        break
                    if timeout is not None and time.monotonic() - start > timeout:
                        proc.kill()
                        proc.wait()
                        raise TimeoutError(f"the checks took more than {timeout} s; stopped")
                    time.sleep(0.1)
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
                if bar is not None:
                    bar.close()
        log_text = log_path.read_text(errors="replace")
    tests = [e for e in parsed if e["event"] == "test"]
    errors = [e for e in parsed if e["event"] == "collect_error"]
    finished = [e for e in parsed if e["event"] == "finished"]
    if not finished and not tests:
        raise RuntimeError("the checks did not run (is pytest installed? pip install -e "
                           "'.[test]'); pytest said:\n" + log_text[-3000:])
    return CheckRun(tests, errors, proc.returncode, log_text, time.monotonic() - start)


@dataclasses.dataclass
class Outcome:
    """The verdict on one exercise."""

    number: str
    title: str
    status: str          # 'passed', 'failing', 'not attempted', 'planned' or 'no checks'
    passed: int = 0
    total: int = 0
    messages: list = dataclasses.field(default_factory=list)

    def as_dict(self):
        return dataclasses.asdict(self)


def summarise(exercises, run, numbers=None):
    r"""Verdict per exercise from a :class:`CheckRun`.

    ``passed``: every check that ran passed (skips aside). ``not attempted``: no check passed and
    every failure is the exercise's own stub ("Exercise NN not attempted yet"). ``failing``:
    anything else -- a wrong answer, an error, a check that needs another exercise, a checker
    that could not be loaded. ``planned``: announced, not written yet.
    """
    chosen = None if numbers is None else set(numbers)
    per = {}
    for event in run.tests:
        for nn in event["markers"]:
            per.setdefault(nn, {}).setdefault(event["nodeid"], []).append(event)
    def checker_number(nodeid):
        m = CHECKER.match(pathlib.PurePosixPath(nodeid.split("::")[0]).name)
        return m.group(1) if m else None

    global_errors = [e for e in run.collect_errors if checker_number(e["nodeid"]) is None]
    out = []
    for ex in exercises:
        if chosen is not None and ex.number not in chosen:
            continue
        title = ex.title or ""
        if ex.planned:
            out.append(Outcome(ex.number, title, "planned"))
            continue
        errors = [e for e in run.collect_errors if checker_number(e["nodeid"]) == ex.number]
        errors += global_errors
        results = per.get(ex.number, {})
        verdicts = []
        for nodeid, events in results.items():
            outcomes = [e["outcome"] for e in events]
            if "failed" in outcomes:
                failed = next(e for e in events if e["outcome"] == "failed")
                verdicts.append(("failed", failed["message"] or f"{nodeid} failed"))
            elif "passed" in outcomes:
                verdicts.append(("passed", ""))
            else:
                verdicts.append(("skipped", events[0]["message"]))
        ran = [v for v in verdicts if v[0] != "skipped"]
        passed = sum(v[0] == "passed" for v in ran)
        failures = [msg for v, msg in ran if v == "failed"]
        own = NOT_ATTEMPTED.format(nn=ex.number, detail="")
        if errors:
            status = "failing"
            failures = [f"could not load the checks: {e['message']}" for e in errors] + failures
        elif not ran:
            status = "no checks"
        elif not failures:
            status = "passed"
        elif passed == 0 and all(msg.startswith(own) or own in msg for msg in failures):
            status = "not attempted"
        else:
            status = "failing"
        messages = list(dict.fromkeys(failures))
        out.append(Outcome(ex.number, title, status, passed, len(ran), messages))
    return out


def format_table(outcomes, *, verbose=False, width=100):
    r"""The status table: exercise, title, status, checks passed; then, for each exercise that
    does not pass, its first failure message (all of them with ``verbose``)."""
    rows = [("exercise", "title", "status", "checks")]
    for o in outcomes:
        checks = f"{o.passed}/{o.total}" if o.total else "-"
        rows.append((o.number, o.title, o.status, checks))
    w0 = max(len(r[0]) for r in rows)
    w2 = max(len(r[2]) for r in rows)
    w3 = max(len(r[3]) for r in rows)
    w1 = max(10, min(max(len(r[1]) for r in rows), width - w0 - w2 - w3 - 6))
    lines = []
    for r in rows:
        title = r[1] if len(r[1]) <= w1 else r[1][:w1 - 3] + "..."
        lines.append(f"{r[0]:<{w0}}  {title:<{w1}}  {r[2]:<{w2}}  {r[3]:>{w3}}".rstrip())
    counts = {}
    for o in outcomes:
        counts[o.status] = counts.get(o.status, 0) + 1
    order = ("passed", "failing", "not attempted", "no checks", "planned")
    lines.append("")
    lines.append(", ".join(f"{counts[s]} {s}" for s in order if s in counts))
    details = [o for o in outcomes if o.status in ("failing", "not attempted", "no checks")
               and o.messages]
    if details:
        lines.append("")
    for o in details:
        shown = o.messages if verbose else o.messages[:1]
        for msg in shown:
            msg = " ".join(msg.split())
            if not verbose and len(msg) > 2 * width:
                msg = msg[:2 * width - 3] + "..."
            lines.append(f"{o.number}: {msg}")
    return "\n".join(lines)
