r"""The on-disk cache of the compiled Numba kernels: where it lives and when it is stale.

Why: compiling every kernel of one dtype takes about 8 s, paid by every fresh process (a
script, a test run, ``scratchdgm train``). Numba can keep compiled code on disk
(``@njit(cache=True)``), but it decides whether an entry is stale from the content of *one*
file, the one that defines the function. Our kernels in ``cpu.py`` inline code from
``_vmath.py`` (the vectorised exponential) and read constants of ``reference.py``: edit one of
those and Numba would keep running the old machine code.

So this module gives the kernels a cache of their own, keyed by everything their machine code
depends on:

* the content of every source file of :mod:`scratchdgm.kernels` and of every first-party module
  they import, found by reading their ``import`` statements (:func:`source_files`);
* the versions of Python, NumPy, Numba and llvmlite, the CPU and the code-generation settings
  (Numba's optimisation level, the 512-bit vector choice of :mod:`scratchdgm.kernels.cpu`);
* the folder the kernels were loaded from (two checkouts never share entries).

The key names a folder, ``<root>/numba/<key>``, and is also the *source stamp* Numba stores in
each index file, so an entry written under another key is never loaded. The root is
``$SCRATCHDGM_CACHE_DIR``, else ``$XDG_CACHE_HOME/scratchdgm``, else ``~/.cache/scratchdgm``.
The folder is created on first use; if it cannot be written (a read-only home, a sandbox) the
kernels simply compile in memory, as without a cache. ``SCRATCHDGM_NUMBA_CACHE=0`` (or
``false``, ``no``, ``off``) turns the cache off. Folders of old keys are left in place (another
checkout or version may still use them); deleting ``<root>/numba`` is always safe.

The mechanism is Numba's cache-locator API: :func:`enable` puts one locator in front of
Numba's list, and it answers only for functions defined in this package's folder; every other
Numba function of the process keeps Numba's own rules.

Measured on the shared 2-core machine, under load: the first training step of an IWAE
784-200-200-50 in float32 (``objective``, ``backward``, Adam) took 8.9 s in a fresh process with
an empty cache and 0.27 s with a warm one; ``scratchdgm bench train`` reports the same split for
a whole run (its ``compile`` phase is 0 on later runs).
"""

import ast
import hashlib
import os
import pathlib
import platform
import sys

__all__ = ["ENV_SWITCH", "ENV_DIR", "cache_root", "cache_enabled_by_env", "source_files",
           "sources_digest", "cache_key", "enable", "info"]

#: Environment variable turning the cache off (``0``, ``false``, ``no``, ``off``).
ENV_SWITCH = "SCRATCHDGM_NUMBA_CACHE"
#: Environment variable naming the cache root (default: the user cache folder).
ENV_DIR = "SCRATCHDGM_CACHE_DIR"

#: This package's folder: the locator answers for functions defined in its files only.
KERNELS_DIR = pathlib.Path(__file__).resolve().parent

_state = {"enabled": False, "directory": None, "key": None, "reason": "not initialised"}


def cache_enabled_by_env(environ=None):
    """Whether ``SCRATCHDGM_NUMBA_CACHE`` leaves the cache on (it is on unless set to 0/false/
    no/off)."""
    environ = os.environ if environ is None else environ
    return environ.get(ENV_SWITCH, "").strip().lower() not in ("0", "false", "no", "off")


def cache_root(environ=None):
    r"""The folder holding scratchdgm's caches: ``$SCRATCHDGM_CACHE_DIR``, else
    ``$XDG_CACHE_HOME/scratchdgm``, else ``~/.cache/scratchdgm`` (a :class:`pathlib.Path`)."""
    environ = os.environ if environ is None else environ
    explicit = environ.get(ENV_DIR, "").strip()
    if explicit:
        return pathlib.Path(explicit).expanduser()
    xdg = environ.get("XDG_CACHE_HOME", "").strip()
    if xdg:
        base = pathlib.Path(xdg).expanduser()
    else:
        home = environ.get("HOME", "").strip()
        base = (pathlib.Path(home) if home else pathlib.Path.home()) / ".cache"
    return base / "scratchdgm"


def _first_party_imports(path, package_dir):
    """Files of first-party modules (``scratchdgm.*`` and relative imports) that ``path``
    imports, resolved against the folders of the installed package."""
    tree = ast.parse(pathlib.Path(path).read_text(encoding="utf-8"), filename=str(path))
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names if a.name.split(".")[0] == "scratchdgm"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: a module of this package (`from . import reference`)
                base = node.module.split(".") if node.module else []
                if not base:
                    names += [f"scratchdgm.kernels.{a.name}" for a in node.names]
                else:
                    names.append("scratchdgm.kernels." + ".".join(base))
            elif node.module and node.module.split(".")[0] == "scratchdgm":
                names.append(node.module)
                names += [f"{node.module}.{a.name}" for a in node.names]
    found = []
    for name in names:
        target = _module_file(name, package_dir)
        if target is not None:
            found.append(target)
    return found


def _module_file(name, package_dir):
    # scratchdgm.kernels.* lives in this folder (installed from kernels/ by package_dir);
    # every other scratchdgm.* module sits under the folder of the scratchdgm package.
    parts = name.split(".")
    if parts[:2] == ["scratchdgm", "kernels"]:
        root, rest = KERNELS_DIR, parts[2:]
    else:
        root, rest = package_dir, parts[1:]
    for candidate in (root.joinpath(*rest).with_suffix(".py") if rest else None,
                      root.joinpath(*rest, "__init__.py")):
        if candidate is not None and candidate.is_file():
            return candidate.resolve()
    return None


def source_files(kernels_dir=None, package_dir=None):
    r"""Every source file the compiled kernels depend on, sorted.

    The ``.py`` files of the kernels folder, then, transitively, every first-party module one
    of them imports (today ``scratchdgm/numerics.py``, through ``reference.py``).

    Parameters
    ----------
    kernels_dir, package_dir : path-like, optional
        The kernels folder and the ``scratchdgm`` package folder (default: those loaded).

    Returns
    -------
    list of pathlib.Path
    """
    kernels_dir = KERNELS_DIR if kernels_dir is None else pathlib.Path(kernels_dir).resolve()
    if package_dir is None:  # the scratchdgm package this one was imported under
        package_dir = pathlib.Path(sys.modules["scratchdgm"].__file__).parent
    package_dir = pathlib.Path(package_dir).resolve()
    todo = sorted(p.resolve() for p in kernels_dir.glob("*.py"))
    seen = set()
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for dep in _first_party_imports(path, package_dir):
            if dep.parent == KERNELS_DIR and kernels_dir != KERNELS_DIR:
                dep = kernels_dir / dep.name  # a copied kernels folder: read the copy
            if dep not in seen:
                todo.append(dep)
    return sorted(seen)


def sources_digest(files, relative_to=None):
    r"""SHA-256 of the files' names and contents (hex): changes whenever one of them does.

    Names enter relative to ``relative_to`` (default: each file's own name), so two copies of
    the same sources in different folders have the same digest.
    """
    h = hashlib.sha256()
    for path in sorted(pathlib.Path(f) for f in files):
        name = path.relative_to(relative_to) if relative_to is not None else path.name
        data = path.read_bytes()
        h.update(f"{name}\0{len(data)}\0".encode())
        h.update(data)
    return h.hexdigest()


def _build_settings():
    # what else the machine code depends on besides the sources
    import llvmlite
    import numba
    import numpy
    from numba.core import config

    return (f"python={platform.python_implementation()}-{sys.version_info[:3]}"
            f"|numpy={numpy.__version__}|numba={numba.__version__}"
            f"|llvmlite={llvmlite.__version__}|machine={platform.machine()}"
            f"|opt={config.OPT}|cpu_name={config.CPU_NAME}|features={config.CPU_FEATURES}"
            f"|boundscheck={config.BOUNDSCHECK}|folder={KERNELS_DIR}")


def cache_key(files=None):
    r"""The cache key of the kernels: a digest of their sources (:func:`source_files`) and of
    the build settings (Python, NumPy, Numba, llvmlite, CPU features, optimisation level, the
    kernels' folder); 24 hex digits."""
    files = source_files() if files is None else files
    h = hashlib.sha256()
    h.update(sources_digest(files).encode())
    h.update(_build_settings().encode())
    return h.hexdigest()[:24]


def _writable(directory):
    try:
        directory.mkdir(parents=True, exist_ok=True)
        probe = directory / f".probe-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
        return True
    except OSError:
        return False


def enable():
    r"""Turn the on-disk cache on for the kernels of this package, if allowed; returns whether
    it is on (the value of ``cache=`` for their ``@njit``).

    Call once, before the kernels are decorated (``cpu.py`` does, at import). Off when
    ``SCRATCHDGM_NUMBA_CACHE=0``, under ``NUMBA_DISABLE_JIT=1``, or when the folder cannot be
    written; :func:`info` says why.
    """
    if _state["enabled"]:
        return True
    from numba.core import config

    if config.DISABLE_JIT:
        _state["reason"] = "NUMBA_DISABLE_JIT=1: nothing is compiled"
        return False
    if not cache_enabled_by_env():
        _state["reason"] = f"turned off by {ENV_SWITCH}={os.environ.get(ENV_SWITCH)!r}"
        return False
    key = cache_key()
    directory = cache_root() / "numba" / key
    if not _writable(directory):
        _state["reason"] = f"{directory} cannot be written: kernels compile in memory"
        return False
    _install_locator(str(directory), key)
    _state.update(enabled=True, directory=directory, key=key, reason="on")
    return True


def info():
    r"""The cache's state: a dict with ``enabled`` (bool), ``directory`` (the folder of this key,
    or None), ``key``, and ``reason`` (why it is off)."""
    return dict(_state)


def _install_locator(directory, key):
    from numba.core import caching

    impl = getattr(caching, "CacheImpl", None) or caching._CacheImpl  # renamed in Numba 0.6x

    class KernelCacheLocator(caching._CacheLocator):
        """Numba cache locator for the functions defined in scratchdgm's kernels folder."""

        def __init__(self, py_func, py_file):
            self._lineno = py_func.__code__.co_firstlineno

        def get_cache_path(self):
            return directory

        def get_source_stamp(self):
            # the whole key, not one file's stamp: an index written under another key is stale
            return key

        def get_disambiguator(self):
            return str(self._lineno)

        @classmethod
        def from_function(cls, py_func, py_file):
            try:
                if pathlib.Path(py_file).resolve().parent != KERNELS_DIR:
                    return None
            except OSError:
                return None
            return cls(py_func, py_file)

    impl._locator_classes = [KernelCacheLocator] + [
        c for c in impl._locator_classes if c.__name__ != "KernelCacheLocator"]
