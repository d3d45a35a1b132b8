r"""The repository stands on its own: nothing a user reads names a file outside it, and every
lecture citation resolves to a slide listed in ``docs/lectures.md``."""

import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
KEYS = ("Mattei-DGM", "Mattei-S2D", "Isachenko-L4", "VAE-HVAE-Diffusion", "Su-DGM")
READ_BY_USERS = ["scratchdgm", "kernels", "benchmarks", "exercises", "docs", "README.md"]
SUFFIXES = {".py", ".md", ".txt", ".cfg", ".toml"}


def _files():
    for entry in READ_BY_USERS:
        path = ROOT / entry
        paths = [path] if path.is_file() else sorted(path.rglob("*"))
        for p in paths:
            if p.is_file() and p.suffix in SUFFIXES and "__pycache__" not in p.parts:
                yield p


def _slide_titles():
    """key -> set of slide titles (whitespace-normalised) from the tables of lectures.md."""
    titles, key = {}, None
    for line in (ROOT / "docs" / "lectures.md").read_text().splitlines():
        m = re.match(r"## `([^`]+)`", line)
        if m:
            key = m.group(1)
            titles.setdefault(key, set())
        m = re.match(r"\|\s*`(.+?)`[^|]*\|", line)
        if key in KEYS and m:
            titles[key].add(" ".join(m.group(1).replace("\\|", "|").split()))
    return titles


def test_nothing_names_a_path_outside_the_repository():
    pattern = re.compile(r"\.\./shared|shared/(seeds|design)|\b00[0-4]_[0-9a-f]{16}\b|"
                         r"design\.md")
    hits = [f"{p.relative_to(ROOT)}:{i}: {line.strip()}"
            for p in _files() for i, line in enumerate(p.read_text().splitlines(), 1)
            if pattern.search(line)]
    assert not hits, "paths users do not have:\n" + "\n".join(hits)


def test_lectures_page_has_a_section_per_key():
    titles = _slide_titles()
    assert set(KEYS) <= set(titles) and all(titles[k] for k in KEYS)


def test_every_cited_slide_title_is_listed():
    titles = _slide_titles()
    cite = re.compile(r"\[(" + "|".join(KEYS) + r"),\s*((?:\"[^\"]+\"(?:,\s*)?)+)\]")
    bad = []
    for p in _files():
        if p.name == "lectures.md":
            continue
        text = p.read_text()
        for m in cite.finditer(text):
            for title in re.findall(r"\"([^\"]+)\"", m.group(2)):
                norm = " ".join(title.replace("\\\\", "\\").split())
                if norm not in titles[m.group(1)]:
                    line = text[:m.start()].count("\n") + 1
                    bad.append(f"{p.relative_to(ROOT)}:{line}: [{m.group(1)}, \"{norm}\"]")
    assert not bad, "citations of slides docs/lectures.md does not list:\n" + "\n".join(bad)


@pytest.mark.parametrize("key", ["Mattei-DGM", "Mattei-S2D"])
def test_citation_check_catches_a_wrong_title(key, tmp_path):
    # the checker itself: a made-up title is not among the listed ones
    assert "A slide that does not exist" not in _slide_titles()[key]
