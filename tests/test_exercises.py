r"""The course exercises hold together, and ``scratchdgm exercises`` works.

* Every exercise has its four parts -- a registered marker, a page, a checker, solution regions --
  every region is a whole function body whose stub parses, every check carries its marker, and
  the pages name only functions that exist.
* The tool: regions are found (and malformed ones refused), a student copy is written, stub
  failures are recognised, verdicts are summarised.
* End to end (slow): in a fresh student copy every written exercise fails as "not attempted" and
  ``status`` says so; with a solution put back, its exercise passes. (With all the solutions --
  the repository itself -- the exercises' checks run in this suite, from ``exercises/``.)
"""

import ast
import json
import pathlib
import re
import shutil
import subprocess

import pytest

from scratchdgm.cli import _exercises as ex
from scratchdgm.cli import main

ROOT = pathlib.Path(__file__).resolve().parents[1]
PHASE_1 = ["01", "02", "03", "04", "05", "06", "07", "08", "09", "10", "11", "12", "13", "14",
           "15"]
PLANNED = []


@pytest.fixture(scope="module")
def exercises():
    return ex.find_exercises(ROOT)


# ----------------------------------------------------------------------------- the four parts
def test_every_exercise_has_marker_page_checker_and_region(exercises):
    assert ex.consistency_problems(exercises) == []
    written = [e.number for e in exercises if not e.planned]
    planned = [e.number for e in exercises if e.planned]
    assert written == PHASE_1
    assert planned == PLANNED
    assert len(written) + len(planned) >= 14


def test_markers_ex01_to_ex15_are_registered():
    assert sorted(ex.registered_markers(ROOT)) == [f"{i:02d}" for i in range(1, 16)]
    text = (ROOT / "setup.cfg").read_text()
    assert "--strict-markers" in text


def test_every_region_is_a_whole_body_and_its_stub_parses(exercises):
    for e in exercises:
        for r in e.regions:
            source = (ROOT / r.path).read_text()
            stubbed = ex.stub_source(source, [r], {e.number: e.page})
            tree = ast.parse(stubbed)
            fn = dict(ex._functions(tree))[r.function]
            body = [s for s in fn.body if not ex._is_docstring(s)]
            assert len(body) == 1 and isinstance(body[0], ast.Raise), r
            message = ast.literal_eval(body[0].exc.args[0])
            assert message.startswith(f"Exercise {e.number}: ") and e.page in message, message
            assert r.function in message and r.path in message


def test_every_check_carries_its_marker():
    files = sorted((ROOT / "exercises").glob("test_*.py"))
    assert files
    for path in files:
        m = ex.CHECKER.match(path.name)
        assert m, f"{path.name}: checkers are named test_exNN_<name>.py"
        tree = ast.parse(path.read_text())
        marks = [node.value for node in tree.body if isinstance(node, ast.Assign)
                 and any(getattr(t, "id", None) == "pytestmark" for t in node.targets)]
        assert len(marks) == 1, f"{path.name}: set pytestmark = pytest.mark.ex{m.group(1)}"
        assert ast.unparse(marks[0]) == f"pytest.mark.ex{m.group(1)}", path.name
    # and no test hides elsewhere under exercises/ (checks/ holds helpers only)
    assert not [p for p in (ROOT / "exercises").rglob("test_*.py") if p.parent.name != "exercises"]


# ----------------------------------------------------------------------------- the pages
SECTIONS = ["## The problem", "## Read", "## Write", "## Check", "## Hints"]


def _resolves(dotted):
    """Whether ``scratchdgm.a.b.C.f`` names a module, class or function of the source tree: read
    with ast where it is defined (kernels.cuda is not imported), else imported (names that a
    package re-exports, such as ``scratchdgm.VAE``)."""
    return _defined(dotted) or _importable(dotted)


def _importable(dotted):
    import importlib

    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        try:
            for name in parts[i:]:
                obj = getattr(obj, name)
        except AttributeError:
            return False
        return True
    return False


def _defined(dotted):
    dirs = ex.package_dirs(ROOT)
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        module, rest = ".".join(parts[:i]), parts[i:]
        base = max((p for p in dirs if module == p or module.startswith(p + ".")), key=len,
                   default=None)
        if base is None:
            continue
        rel = module[len(base):].lstrip(".").split(".") if module != base else []
        folder = dirs[base].joinpath(*rel)
        path = folder / "__init__.py" if folder.is_dir() else folder.with_suffix(".py")
        if not path.is_file():
            continue
        if not rest:
            return True
        tree = ast.parse(path.read_text())
        names = {name for name, _ in ex._functions(tree)}
        names |= {n.name for n in ast.walk(tree) if isinstance(n, ast.ClassDef)}
        return ".".join(rest) in names
    return False


def test_resolver_tells_real_names_from_made_up_ones():
    assert _resolves("scratchdgm.autodiff.ops.Tanh.backward")
    assert _resolves("scratchdgm.kernels.cpu._bernoulli_kernel")
    assert not _resolves("scratchdgm.autodiff.ops.Tanh.backwards")
    assert not _resolves("scratchdgm.kernels.reference.no_such_function")


@pytest.mark.parametrize("number", PHASE_1)
def test_page(number, exercises):
    e = next(e for e in exercises if e.number == number)
    text = (ROOT / e.page).read_text()
    assert text.startswith(f"# Exercise {number} — ")
    assert re.search(r"^Expected time: \d+ min", text, re.M), "state the expected time"
    assert f"pytest -m ex{number}" in text
    for section in SECTIONS:
        assert f"\n{section}\n" in text, f"{e.page} lacks '{section}'"
    assert re.search(r"\[(Mattei-DGM|Mattei-S2D|Isachenko-L4|VAE-HVAE-Diffusion|Su-DGM), \"",
                     text), "cite the lecture slide to read"
    names = set(re.findall(r"`(scratchdgm(?:\.\w+)+)`", text))
    missing = [n for n in sorted(names) if not _resolves(n)]
    assert not missing, f"{e.page} names what does not exist: {missing}"
    # every function to write is named on the page, and where it is
    for r in e.regions:
        assert any(n.endswith("." + r.function) for n in names), (e.page, r.function)
        assert f"`{r.path}`" in text, (e.page, r.path)
    paths = re.findall(r"`([\w./-]+\.(?:py|md))`", text)
    assert not [p for p in paths if "/" in p and not (ROOT / p).exists()
                and not (ROOT / "exercises" / p).exists()]


def test_instructor_page_lists_every_exercise(exercises):
    text = (ROOT / "exercises" / "README.md").read_text()
    for e in exercises:
        assert re.search(rf"^\| {e.number} \|", text, re.M), e.number
        if e.page:
            assert f"]({pathlib.Path(e.page).name})" in text, e.page
    for needle in ("make-student", "exercises status", "--only", "not attempted"):
        assert needle in text


# ----------------------------------------------------------------------------- the tool
def _src(*lines):
    return "\n".join(lines) + "\n"


B, E = "# BEGIN EXERCISE", "# END EXERCISE"

GOOD = _src(
    "class A:",
    "    def f(self, x):",
    '        """Doc."""',
    f"        {B} 07: double it",
    "        y = 2 * x",
    "        return y",
    f"        {E} 07",
    "",
    "def g(x):",
    f"    {B} 07: halve it",
    "    return x / 2",
    f"    {E} 07",
)


def test_regions_are_found_and_stubbed():
    regions = ex.regions_in_source(GOOD, "m.py")
    assert [(r.number, r.function, r.begin, r.end, r.what) for r in regions] == [
        ("07", "A.f", 4, 7, "double it"), ("07", "g", 10, 12, "halve it")]
    stubbed = ex.stub_source(GOOD, regions, {"07": "exercises/07_x.md"})
    assert "y = 2 * x" not in stubbed and "x / 2" not in stubbed
    assert stubbed.count("raise NotImplementedError(") == 2
    assert f"        {B} 07: double it\n        raise NotImplementedError(" in stubbed
    ns = {}
    exec(compile(stubbed, "m.py", "exec"), ns)
    with pytest.raises(NotImplementedError, match=r"^Exercise 07: double it -- write the body "
                                                   r"of A\.f \(m\.py\); read exercises/07_x\.md"):
        ns["A"]().f(1)


def test_markers_inside_strings_are_not_regions():
    text = _src('"""', f"{B} 01: in a docstring", f"{E} 01", '"""', "x = 1")
    assert ex.regions_in_source(text, "m.py") == []


@pytest.mark.parametrize("text, error", [
    (_src("def f():", f"    {B} 01: x", "    return 1"), "never closed"),
    (_src("def f():", f"    {B} 01: x", f"    {B} 01: y", "    return 1", f"    {E} 01"),
     "do not nest"),
    (_src("def f():", f"    {B} 01: x", "    return 1", f"    {E} 02"), "does not close"),
    (_src("def f():", f"    {B} 01", "    return 1", f"    {E} 01"), "needs ': <what"),
    (_src("def f():", "    a = 1", f"    {B} 01: x", "    return a", f"    {E} 01"),
     "not the whole body"),
    (_src("def f():", f"  {B} 01: x", "    return 1", f"  {E} 01"), "indented like"),
    (_src(f"{E} 01"), "without a BEGIN"),
    (_src("def f():", "    # BEGIN EXERCISE 1: x", "    return 1"), "malformed marker"),
])
def test_malformed_regions_are_refused(text, error):
    with pytest.raises(ex.RegionError, match=error):
        ex.regions_in_source(text, "m.py")


def _tiny_repo(path):
    (path / "scratchdgm").mkdir(parents=True)
    (path / "exercises").mkdir()
    (path / "setup.cfg").write_text("[tool:pytest]\nmarkers =\n    ex07: doubling\n"
                                    "    ex08: planned: later\n")
    (path / "scratchdgm" / "__init__.py").write_text("")
    (path / "scratchdgm" / "m.py").write_text(GOOD)
    (path / "exercises" / "07_doubling.md").write_text("# Exercise 07 — doubling\n")
    (path / "exercises" / "test_ex07_doubling.py").write_text("")
    (path / "scratchdgm" / "__pycache__").mkdir()
    (path / "scratchdgm" / "__pycache__" / "m.cpython-311.pyc").write_bytes(b"\0")
    return path


def test_make_student_on_a_tree_without_git(tmp_path):
    src = _tiny_repo(tmp_path / "src")
    exercises = ex.find_exercises(src)
    assert [(e.number, e.planned, bool(e.regions)) for e in exercises] == [
        ("07", False, True), ("08", True, False)]
    assert ex.consistency_problems(exercises) == []
    report = ex.make_student(src, tmp_path / "copy")
    assert report["cut"] == {"07": ["A.f", "g"]}
    copy = tmp_path / "copy"
    assert not (copy / "scratchdgm" / "__pycache__").exists()
    assert "raise NotImplementedError" in (copy / "scratchdgm" / "m.py").read_text()
    assert (copy / "exercises" / "07_doubling.md").is_file()
    with pytest.raises(FileExistsError, match="not empty"):
        ex.make_student(src, copy)
    with pytest.raises(ValueError, match="outside the repository"):
        ex.make_student(src, src / "inside")
    with pytest.raises(ValueError, match="no written exercise 09"):
        ex.make_student(src, tmp_path / "other", ["9"])


def test_make_student_from_git_lists_tracked_and_new_files(tmp_path):
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    src = _tiny_repo(tmp_path / "src")
    (src / ".gitignore").write_text("__pycache__/\nignored.txt\n")
    (src / "ignored.txt").write_text("local notes")
    subprocess.run(["git", "init", "-q", str(src)], check=True)
    subprocess.run(["git", "-C", str(src), "add", "setup.cfg"], check=True)
    files = ex.repository_files(src)
    assert "setup.cfg" in files and "scratchdgm/m.py" in files  # tracked and untracked
    assert "ignored.txt" not in files and not [f for f in files if "__pycache__" in f]


def test_a_problem_is_reported_when_a_part_is_missing(tmp_path):
    src = _tiny_repo(tmp_path / "src")
    (src / "exercises" / "07_doubling.md").unlink()
    (src / "exercises" / "08_later.md").write_text("# Exercise 08\n")
    problems = ex.consistency_problems(ex.find_exercises(src))
    assert any("07" in p and "no page" in p for p in problems)
    assert any("08" in p and "planned" in p for p in problems)


def test_stub_failures_are_recognised():
    stub = NotImplementedError("Exercise 04: the step -- write the body of adam_update")
    assert ex.stub_failure(stub, ["04"]) == ("Exercise 04 not attempted yet: the step -- write "
                                            "the body of adam_update")
    assert ex.stub_failure(stub, ["10"]).startswith("Exercise 10 needs exercise 04")
    wrapped = NotImplementedError("Tanh.backward: Exercise 01: x")  # named by the sweep
    wrapped.__cause__ = NotImplementedError("Exercise 01: x")
    assert ex.stub_failure(wrapped, ["01"]).startswith("Exercise 01 not attempted yet")
    group = ExceptionGroup("two", [ValueError("v"), stub])
    assert ex.stub_failure(group, ["04"]).startswith("Exercise 04 not attempted yet")
    assert ex.stub_failure(NotImplementedError("no closed form for KL"), ["08"]) is None
    assert ex.stub_failure(AssertionError("wrong"), ["08"]) is None


def _event(number, outcome, message="", when="call", name="t"):
    return {"event": "test", "nodeid": f"exercises/test_ex{number}_x.py::{name}", "when": when,
            "outcome": outcome, "markers": [number], "message": message}


def test_summarise_gives_one_verdict_per_exercise():
    exercises = [ex.Exercise(n, f"title {n}") for n in ("01", "02", "03", "04", "06", "08")]
    exercises.append(ex.Exercise("05", "later", planned=True))
    na = ex.NOT_ATTEMPTED.format(nn="02", detail="write it")
    tests = [_event("01", "passed"), _event("01", "skipped", "no GPU", when="setup", name="g"),
             _event("02", "failed", na), _event("02", "failed", na, name="u"),
             _event("03", "passed"), _event("03", "failed", "off by 0.1", name="u"),
             _event("04", "failed", "Exercise 04 needs exercise 09, which is not attempted yet"),
             _event("08", "passed"), _event("08", "failed", "teardown", when="teardown")]
    errors = [{"event": "collect_error", "nodeid": "exercises/test_ex06_x.py",
               "message": "SyntaxError"}]
    run = ex.CheckRun(tests, errors, 1, "", 1.0)
    out = {o.number: o for o in ex.summarise(exercises, run)}
    assert {n: o.status for n, o in out.items()} == {
        "01": "passed", "02": "not attempted", "03": "failing", "04": "failing",
        "06": "failing", "08": "failing", "05": "planned"}
    assert (out["01"].passed, out["01"].total) == (1, 1)  # the skip is not counted
    assert (out["03"].passed, out["03"].total) == (1, 2) and out["03"].messages == ["off by 0.1"]
    assert "could not load" in out["06"].messages[0]
    table = ex.format_table(list(out.values()))
    assert re.search(r"^02\s+title 02\s+not attempted\s+0/2$", table, re.M)
    assert "1 passed, 4 failing, 1 not attempted, 1 planned" in table
    assert "03: off by 0.1" in table


def test_cli_list_and_errors(capsys, tmp_path):
    assert main(["exercises", "list", "--repo", str(ROOT)]) == 0
    out = capsys.readouterr().out
    assert "01  an autodiff op" in out and "write: MatMul.backward" in out
    assert main(["exercises", "make-student", str(tmp_path / "x"), "--only", "99",
                 "--repo", str(ROOT)]) == 2
    assert "no written exercise 99" in capsys.readouterr().err
    assert main(["exercises", "status", str(tmp_path)]) == 2
    assert "not a scratchdgm repository" in capsys.readouterr().err


# ----------------------------------------------------------------------------- end to end
@pytest.fixture(scope="module")
def student_copy(tmp_path_factory):
    dest = tmp_path_factory.mktemp("course") / "student"
    assert main(["exercises", "make-student", str(dest), "--repo", str(ROOT)]) == 0
    return dest


@pytest.mark.slow
def test_in_a_fresh_student_copy_every_exercise_is_not_attempted(student_copy, exercises):
    # the solutions are gone from the copy
    for e in exercises:
        for r in e.regions:
            original = (ROOT / r.path).read_text().splitlines()[r.begin:r.end - 1]
            copied = (student_copy / r.path).read_text()
            assert "\n".join(original) not in copied, r
    run = ex.run_checks(student_copy, PHASE_1, show_progress=False, timeout=600)
    assert run.exit_code == 1 and not run.collect_errors, run.log[-3000:]
    for event in run.tests:
        if event["outcome"] == "skipped":
            continue
        (number,) = event["markers"]
        assert event["outcome"] == "failed", event
        assert event["message"].startswith(f"Exercise {number} not attempted yet: "), event
    outcomes = ex.summarise(ex.find_exercises(student_copy), run)
    verdicts = {o.number: (o.status, o.total) for o in outcomes}
    for number in PHASE_1:
        status, total = verdicts[number]
        assert status == "not attempted" and total > 0, (number, verdicts[number])
    assert all(verdicts[n][0] == "planned" for n in PLANNED)
    table = ex.format_table(outcomes)
    for number in PHASE_1:
        assert re.search(rf"^{number}\s.*\snot attempted\s+0/\d+$", table, re.M), table
    assert "15 not attempted" in table and "planned" not in table


@pytest.mark.slow
def test_with_its_solution_put_back_an_exercise_passes(tmp_path, capsys):
    copy = tmp_path / "student"
    assert main(["exercises", "make-student", str(copy), "--repo", str(ROOT)]) == 0
    capsys.readouterr()
    # ppca.py holds exercise 06 only, reference.py exercises 03 and 04, estimators.py 07 and 11,
    # em.py 05, miwae.py 15: put them back (07, 11 and 15 then pass with 02, 09 and 12, whose
    # code they avoid, still cut; 05 with 06 cut)
    for rel in ("scratchdgm/models/linear/ppca.py", "kernels/reference.py",
                "scratchdgm/estimators.py", "scratchdgm/models/linear/em.py",
                "scratchdgm/models/deep/miwae.py"):
        shutil.copy2(ROOT / rel, copy / rel)
    code = main(["exercises", "status", str(copy), "--only", "4,5,6,7,9,11,15", "--json"])
    verdicts = {o["number"]: o["status"] for o in json.loads(capsys.readouterr().out)}
    assert verdicts == {"04": "passed", "05": "passed", "06": "passed", "07": "passed",
                        "11": "passed", "15": "passed", "09": "not attempted"}
    assert code == 1


@pytest.mark.parametrize("page", ["01_autodiff_ops.md", "09_logsumexp.md"])
def test_the_self_check_snippets_of_the_pages_run(page):
    # the pages show students scratchdgm.testing on their own ops: the code must run as printed
    text = (ROOT / "exercises" / page).read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert blocks, f"{page} shows no self-check"
    for block in blocks:
        exec(compile(block, page, "exec"), {})
