r"""Backend switch: which implementation of the hot ops the autodiff runs.

A *backend* is a module of kernels with one common set of signatures (see
:mod:`scratchdgm.kernels`):

=========  ==========================================  =========================================
name       module                                      when
=========  ==========================================  =========================================
``numpy``  :mod:`scratchdgm.kernels.reference`         always available; the specification
``numba``  :mod:`scratchdgm.kernels.cpu`               numba importable (compiles on first call)
``cuda``   :mod:`scratchdgm.kernels.cuda`              only on request, with a CUDA device (or
                                                       numba's simulator, ``NUMBA_ENABLE_CUDASIM``)
``auto``   resolves to ``numba`` if importable and its JIT is on, else ``numpy`` (never to
           ``cuda``: arrays live on the host, and the transfers of a per-op GPU call cost more
           than they save at the sizes of the course's models; and not to ``numba`` under
           ``NUMBA_DISABLE_JIT=1``, where its kernels run as plain Python loops -- right for
           stepping through one in a debugger, far too slow to train with)
=========  ==========================================  =========================================

The choice is made, from most to least specific, by

1. an explicit ``backend=`` argument of a fused op (:mod:`scratchdgm.autodiff.fused`), which is
   how a model holds its own override;
2. the innermost :func:`use_backend` context;
3. the process default, :func:`set_backend`;
4. the ``SCRATCHDGM_BACKEND`` environment variable, read when the backend is first needed;
5. ``auto``.

Nothing here imports numba: checking that it is importable uses :func:`importlib.util.find_spec`.

Examples
--------
>>> import scratchdgm as sd
>>> sd.set_backend("numpy")            # doctest: +SKIP
>>> with sd.use_backend("numba"):       # doctest: +SKIP
...     loss = model.objective(x, k=50, rng=rng)
"""

import contextlib
import contextvars
import importlib
import importlib.util
import os

__all__ = [
    "BACKENDS",
    "BackendUnavailableError",
    "set_backend",
    "get_backend",
    "use_backend",
    "resolve_backend",
    "get_kernels",
    "available_backends",
]

#: The concrete backends; ``"auto"`` is also accepted wherever a name is.
BACKENDS = ("numpy", "numba", "cuda")

_MODULES = {
    "numpy": "scratchdgm.kernels.reference",
    "numba": "scratchdgm.kernels.cpu",
    "cuda": "scratchdgm.kernels.cuda",
}

ENV_VAR = "SCRATCHDGM_BACKEND"



class BackendUnavailableError(RuntimeError):
    r"""A backend was asked for that cannot run here: ``'numba'`` without numba installed, or
    ``'cuda'`` without a CUDA device. The message says which backends to pick instead.

    Attributes
    ----------
    backend : str
        The backend asked for.
    reason : str
        Why it cannot run, without the advice (a command line words its own).
    """

    def __init__(self, message, *, backend, reason):
        super().__init__(message)
        self.backend, self.reason = backend, reason


_default = None  # process default (a concrete name); None: not chosen yet, read the env var
_override = contextvars.ContextVar("scratchdgm_backend_override", default=None)
_cuda_ok = None  # cached answer of the (costly: imports numba.cuda) device check


def _numba_importable():
    return importlib.util.find_spec("numba") is not None


def _numba_jit_disabled():
    # Numba's own switch, read from the environment as numba.core.config reads it (without
    # importing numba).
    try:
        return int(os.environ.get("NUMBA_DISABLE_JIT", "0") or 0) != 0
    except ValueError:
        return False


def _cuda_available():
    global _cuda_ok
    if _cuda_ok is None:
        if not _numba_importable():
            _cuda_ok = False
        else:
            try:
                from numba import cuda
                _cuda_ok = bool(cuda.is_available())
            except Exception:  # a broken driver install must not break the CPU backends
                _cuda_ok = False
    return _cuda_ok


def resolve_backend(name):
    r"""Validate a backend name and turn ``"auto"`` into a concrete one.

    Parameters
    ----------
    name : {'numpy', 'numba', 'cuda', 'auto'}

    Returns
    -------
    str
        One of :data:`BACKENDS`.

    Raises
    ------
    ValueError
        Unknown name.
    BackendUnavailableError
        (a RuntimeError) ``'numba'`` without numba installed, or ``'cuda'`` without a CUDA
        device (and without numba's CUDA simulator, ``NUMBA_ENABLE_CUDASIM=1``).
    """
    if not isinstance(name, str):
        raise TypeError(f"backend must be a string, got {type(name).__name__}: expected one of "
                        f"{BACKENDS + ('auto',)}")
    key = name.strip().lower()
    if key == "auto":
        return "numba" if _numba_importable() and not _numba_jit_disabled() else "numpy"
    if key not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}: expected one of {BACKENDS + ('auto',)}")
    if key == "numba" and not _numba_importable():
        reason = "backend 'numba' needs the numba package, which is not installed"
        raise BackendUnavailableError(f"{reason}; pick 'numpy' or 'auto' instead",
                                      backend=key, reason=reason)
    if key == "cuda" and not _cuda_available():
        reason = ("no CUDA device is available (backend 'cuda' needs an NVIDIA GPU and its "
                  "driver, seen by numba.cuda; pip install \"scratchdgm[cuda]\" brings NVIDIA's "
                  "numba-cuda)")
        raise BackendUnavailableError(
            f"{reason}; pick another backend: 'numba' (compiled for this CPU, the default), "
            f"'numpy' or 'auto'", backend=key, reason=reason)
    return key


def set_backend(name):
    r"""Set the process-wide default backend.

    Parameters
    ----------
    name : {'numpy', 'numba', 'cuda', 'auto'}

    Returns
    -------
    str
        The previous default (concrete name), so that it can be restored.
    """
    global _default
    previous = _process_default()
    _default = resolve_backend(name)
    return previous


def _process_default():
    global _default
    if _default is None:
        # Read lazily so that setting the variable after `import scratchdgm` still works.
        env = os.environ.get(ENV_VAR, "").strip()
        try:
            _default = resolve_backend(env) if env else resolve_backend("auto")
        except BackendUnavailableError as exc:
            raise BackendUnavailableError(f"environment variable {ENV_VAR}={env!r}: {exc}",
                                          backend=exc.backend, reason=exc.reason) from None
        except (ValueError, RuntimeError) as exc:
            raise type(exc)(f"environment variable {ENV_VAR}={env!r}: {exc}") from None
    return _default


def get_backend():
    r"""The backend in effect here: the innermost :func:`use_backend`, else the process default.

    Returns
    -------
    str
        One of :data:`BACKENDS`.
    """
    override = _override.get()
    return override if override is not None else _process_default()


@contextlib.contextmanager
def use_backend(name):
    r"""Context manager running its block with another backend (thread- and task-local).

    Parameters
    ----------
    name : {'numpy', 'numba', 'cuda', 'auto'}

    Yields
    ------
    str
        The concrete backend name in effect inside the block.
    """
    token = _override.set(resolve_backend(name))
    try:
        yield _override.get()
    finally:
        _override.reset(token)


def get_kernels(name=None):
    r"""The kernel module of a backend: the namespace the fused autodiff ops call into.

    Parameters
    ----------
    name : {'numpy', 'numba', 'cuda', 'auto'} or None
        None means :func:`get_backend`. A model that keeps its own backend passes its name
        here (or as ``backend=`` to the fused ops).

    Returns
    -------
    module
        :mod:`scratchdgm.kernels.reference`, :mod:`scratchdgm.kernels.cpu` or
        :mod:`scratchdgm.kernels.cuda`; each provides :data:`scratchdgm.kernels.KERNEL_NAMES`.
    """
    key = get_backend() if name is None else resolve_backend(name)
    return importlib.import_module(_MODULES[key])


def available_backends():
    r"""The backends usable in this process, fastest first (``cuda`` only with a device).

    Checking for ``cuda`` imports numba.cuda; it is only checked when numba is importable.
    """
    names = []
    if _numba_importable():
        if _cuda_available():
            names.append("cuda")
        names.append("numba")
    names.append("numpy")
    return names
