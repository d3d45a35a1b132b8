"""The on-disk cache of the compiled kernels: its key changes whenever a source the kernels depend
on changes, it lives where documented, it can be turned off, and a later process loads what an
earlier one compiled. (No test relies on a warm cache: the processes here use their own
temporary cache folders.)"""

import json
import os
import pickle
import shutil
import subprocess
import sys

import pytest

from scratchdgm.kernels import _cache

jit_on = pytest.mark.skipif(os.environ.get("NUMBA_DISABLE_JIT", "0") not in ("", "0"),
                            reason="nothing is compiled, hence nothing cached, without the JIT")


def test_sources_include_every_module_the_kernels_build_from():
    names = {p.name for p in _cache.source_files()}
    assert {"cpu.py", "_vmath.py", "reference.py", "_cache.py",
            "numerics.py"} <= names, names


@pytest.fixture
def copied_sources(tmp_path):
    """A copy of the kernels folder and of the scratchdgm package folder next to it."""
    kernels = tmp_path / "kernels"
    package = tmp_path / "scratchdgm"
    shutil.copytree(_cache.KERNELS_DIR, kernels, ignore=shutil.ignore_patterns("__pycache__"))
    package.mkdir()
    for dep in _cache.source_files():  # the first-party modules outside the kernels folder
        if dep.parent != _cache.KERNELS_DIR:
            shutil.copy(dep, package / dep.name)
    return kernels, package


def _digest(kernels, package):
    files = _cache.source_files(kernels, package)
    # the copy's own files, not the originals
    assert all(str(f).startswith(str(kernels.parent)) for f in files), files
    return _cache.sources_digest(files)


def test_a_copy_has_the_same_digest(copied_sources):
    kernels, package = copied_sources
    assert _digest(kernels, package) == _cache.sources_digest(_cache.source_files())


@pytest.mark.parametrize("where, name", [("kernels", "_vmath.py"),
                                         ("kernels", "reference.py"), ("kernels", "cpu.py"),
                                         ("package", "numerics.py")])
def test_editing_any_source_changes_the_key(copied_sources, where, name):
    kernels, package = copied_sources
    before = _digest(kernels, package)
    path = (kernels if where == "kernels" else package) / name
    path.write_text(path.read_text() + "\n# an edit\n")
    assert _digest(kernels, package) != before


def test_cache_root_follows_the_environment(tmp_path):
    env = {"HOME": str(tmp_path / "home")}
    assert _cache.cache_root(env) == tmp_path / "home" / ".cache" / "scratchdgm"
    env["XDG_CACHE_HOME"] = str(tmp_path / "xdg")
    assert _cache.cache_root(env) == tmp_path / "xdg" / "scratchdgm"
    env["SCRATCHDGM_CACHE_DIR"] = str(tmp_path / "mine")
    assert _cache.cache_root(env) == tmp_path / "mine"


@pytest.mark.parametrize("value, on", [("", True), ("1", True), ("yes", True), ("0", False),
                                       ("false", False), ("OFF", False), ("no", False)])
def test_switch(value, on):
    assert _cache.cache_enabled_by_env({"SCRATCHDGM_NUMBA_CACHE": value}) is on


_PROBE = """
import json, numpy as np
from scratchdgm.kernels import cpu, _cache
x = np.ones(5); g = np.ones(5); m = np.zeros(5); v = np.zeros(5)
cpu.adam_update(x, g, m, v, 1e-3, 0.9, 0.999, 1e-8, 1)
st = cpu._adam_kernel.stats
info = _cache.info()
print(json.dumps({"cached": cpu.CACHED, "reason": info["reason"], "key": info["key"],
                  "directory": str(info["directory"]), "hits": sum(st.cache_hits.values()),
                  "misses": sum(st.cache_misses.values()), "x": x.tolist()}))
"""


def _probe(env_extra):
    env = {k: v for k, v in os.environ.items()
           if k not in ("SCRATCHDGM_NUMBA_CACHE", "SCRATCHDGM_CACHE_DIR")}
    env.update(env_extra)
    out = subprocess.run([sys.executable, "-c", _PROBE], env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.slow
@jit_on
def test_a_later_process_loads_what_an_earlier_one_compiled(tmp_path):
    env = {"SCRATCHDGM_CACHE_DIR": str(tmp_path)}
    first = _probe(env)
    assert first["cached"] and first["misses"] >= 1 and first["hits"] == 0
    assert first["directory"].startswith(str(tmp_path / "numba"))
    index = [f for f in os.listdir(first["directory"]) if f.startswith("cpu._adam_kernel")
             and f.endswith(".nbi")]
    assert index, os.listdir(first["directory"])
    # the index is stamped with the whole key: an entry written under another key (another
    # version of any kernel source) is never loaded
    with open(os.path.join(first["directory"], index[0]), "rb") as f:
        pickle.load(f)  # Numba's version tag
        stamp, _ = pickle.loads(f.read())
    assert stamp == first["key"]
    second = _probe(env)
    assert second["hits"] >= 1 and second["misses"] == 0
    assert second["x"] == first["x"]


@jit_on
def test_the_cache_can_be_turned_off(tmp_path):
    out = _probe({"SCRATCHDGM_CACHE_DIR": str(tmp_path), "SCRATCHDGM_NUMBA_CACHE": "0"})
    assert out["cached"] is False and "SCRATCHDGM_NUMBA_CACHE" in out["reason"]
    assert not (tmp_path / "numba").exists()


@pytest.mark.slow
@jit_on
def test_an_unwritable_cache_folder_only_turns_the_cache_off(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    out = _probe({"SCRATCHDGM_CACHE_DIR": str(blocker / "cache")})
    assert out["cached"] is False and "cannot be written" in out["reason"]
    assert out["x"][0] < 1.0  # the kernel ran (compiled in memory)
