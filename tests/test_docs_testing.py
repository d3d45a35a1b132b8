r"""The walkthrough of ``docs/testing.md`` runs: every ```python block is executed in order, in one
namespace, and where a block is followed by a ```text block, that is what the block printed
(up to the number of examples Hypothesis ran, which varies from run to run, and the digits of
rounding errors)."""

import contextlib
import io
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "testing.md"


def _blocks():
    """(language, code) of every fenced block of the page, in order."""
    return [(m.group(1), m.group(2)) for m in
            re.finditer(r"^```(\w+)\n(.*?)^```$", DOC.read_text(), re.S | re.M)]


def _normalise(text):
    """The printed text, less what varies between runs and machines: the count of examples
    Hypothesis ran, and the last digits of rounding errors (numbers like 1.89e-10)."""
    text = re.sub(r"Hypothesis ran \d+ examples", "Hypothesis ran N examples", text)
    return re.sub(r"\d\.?\d*e-\d+", "<small number>", text).strip()


def test_the_page_has_a_walkthrough():
    kinds = [k for k, _ in _blocks()]
    assert kinds.count("python") >= 8 and kinds.count("text") >= 2


def test_walkthrough_runs_and_prints_what_it_shows():
    blocks = _blocks()
    namespace = {"__name__": "docs_testing_walkthrough"}
    for i, (kind, code) in enumerate(blocks):
        if kind != "python":
            continue
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(compile(code, f"docs/testing.md, python block {i}", "exec"), namespace)
        following = blocks[i + 1] if i + 1 < len(blocks) else (None, None)
        if following[0] == "text":
            assert _normalise(out.getvalue()) == _normalise(following[1]), (
                f"block {i} printed\n{out.getvalue()}\nbut the page shows\n{following[1]}")
