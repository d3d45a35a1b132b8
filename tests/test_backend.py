r"""The backend switch (:mod:`scratchdgm.backend`): names, precedence, laziness, errors."""

import os
import subprocess
import sys

import numpy as np
import pytest

import scratchdgm as sd
from scratchdgm import backend
from scratchdgm.autodiff import fused


@pytest.fixture(autouse=True)
def _restore_default():
    previous = backend.get_backend()
    yield
    backend.set_backend(previous)


def test_set_get_and_context_manager():
    sd.set_backend("numpy")
    assert sd.get_backend() == "numpy"
    with sd.use_backend("numba") as name:
        assert name == "numba" and sd.get_backend() == "numba"
        with sd.use_backend("numpy"):
            assert sd.get_backend() == "numpy"
        assert sd.get_backend() == "numba"
    assert sd.get_backend() == "numpy"
    assert sd.set_backend("auto") == "numpy"  # returns the previous default
    # numba is installed here; with its JIT off, auto prefers the (faster) NumPy reference
    assert sd.get_backend() == ("numpy" if backend._numba_jit_disabled() else "numba")


def test_get_kernels_gives_the_kernel_module():
    from scratchdgm.kernels import KERNEL_NAMES, cpu, reference

    assert backend.get_kernels("numpy") is reference
    assert backend.get_kernels("numba") is cpu
    with sd.use_backend("numpy"):
        assert backend.get_kernels() is reference
    for module in (reference, cpu):
        for name in KERNEL_NAMES:
            assert callable(getattr(module, name)), name


def test_explicit_backend_argument_wins(monkeypatch):
    calls = []
    from scratchdgm.kernels import reference

    real = reference.logsumexp
    monkeypatch.setattr(reference, "logsumexp", lambda a: calls.append(1) or real(a))
    sd.set_backend("numba")
    fused.iw_logsumexp(np.zeros((2, 3)), backend="numpy")
    assert calls == [1]
    fused.iw_logsumexp(np.zeros((2, 3)))
    assert calls == [1]  # the numba default did not call the reference


@pytest.mark.parametrize("bad, exc", [("tpu", ValueError), (3, TypeError), ("", ValueError)])
def test_bad_names_are_refused(bad, exc):
    with pytest.raises(exc, match="backend"):
        sd.set_backend(bad)


def test_cuda_without_a_device_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(backend, "_cuda_ok", False)  # as on a machine without a GPU
    with pytest.raises(backend.BackendUnavailableError,
                       match="no CUDA device is available.*pick another backend: 'numba'"):
        sd.set_backend("cuda")
    with pytest.raises(RuntimeError):  # still a RuntimeError for callers that catch those
        backend.resolve_backend("CUDA")
    assert "cuda" != backend.resolve_backend("auto")  # auto never picks cuda
    monkeypatch.setattr(backend, "_default", None)
    monkeypatch.setenv("SCRATCHDGM_BACKEND", "cuda")
    with pytest.raises(backend.BackendUnavailableError,
                       match="environment variable SCRATCHDGM_BACKEND='cuda': no CUDA device"):
        backend.get_backend()


def _run(code, **env):
    full = dict(os.environ)
    full.pop("SCRATCHDGM_BACKEND", None)
    full.update(env)
    return subprocess.run([sys.executable, "-c", code], env=full, capture_output=True,
                          text=True, timeout=120)


def test_environment_variable_is_read_lazily():
    code = ("import os, scratchdgm as sd; os.environ['SCRATCHDGM_BACKEND'] = 'numpy'; "
            "print(sd.get_backend())")
    res = _run(code)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "numpy"
    res = _run("import scratchdgm as sd; print(sd.get_backend())", SCRATCHDGM_BACKEND="NumPy")
    assert res.stdout.strip() == "numpy"


def test_bad_environment_variable_names_the_variable():
    res = _run("import scratchdgm as sd; sd.get_backend()", SCRATCHDGM_BACKEND="gpu")
    assert res.returncode != 0
    assert "SCRATCHDGM_BACKEND" in res.stderr and "expected one of" in res.stderr


def test_import_does_not_import_numba():
    res = _run("import sys, scratchdgm as sd; sd.get_backend(); sd.set_backend('numpy'); "
               "from scratchdgm.autodiff import fused; "
               "fused.iw_logsumexp(__import__('numpy').zeros((2, 2))); "
               "print('numba' in sys.modules)")
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "False"


def test_auto_avoids_numba_when_its_jit_is_disabled():
    code = "import scratchdgm as sd; print(sd.get_backend())"
    on = _run(code, NUMBA_DISABLE_JIT="0")
    off = _run(code, NUMBA_DISABLE_JIT="1")
    assert on.stdout.strip() == "numba", on.stderr
    assert off.stdout.strip() == "numpy", off.stderr
    # asked for explicitly, numba still runs (as plain Python: what a debugger needs)
    explicit = _run(code, NUMBA_DISABLE_JIT="1", SCRATCHDGM_BACKEND="numba")
    assert explicit.stdout.strip() == "numba", explicit.stderr


def test_two_models_on_two_backends_do_not_disturb_each_other(monkeypatch):
    """Each model and its optimiser run on the backend they were handed, whatever the process
    default says and whatever the other model runs on."""
    pytest.importorskip("numba")
    if os.environ.get("NUMBA_DISABLE_JIT", "0") not in ("", "0"):
        pytest.skip("the numba backend is refused under NUMBA_DISABLE_JIT")
    from scratchdgm.kernels import cpu, reference
    from scratchdgm.optim import Adam

    calls = {"numpy": 0, "numba": 0}
    for name, module in (("numpy", reference), ("numba", cpu)):
        for fn in ("logsumexp", "bernoulli_log_prob_with_grad", "diag_gaussian_log_prob",
                   "linear", "adam_update"):
            original = getattr(module, fn)

            def counted(*args, _original=original, _name=name, **kwargs):
                calls[_name] += 1
                return _original(*args, **kwargs)

            monkeypatch.setattr(module, fn, counted)

    x = (np.random.default_rng(0).random((6, 12)) < 0.4).astype(np.float64)
    models = {b: sd.IWAE(12, 2, (5,), k=3, random_state=0, backend=b) for b in ("numpy", "numba")}
    opts = {b: Adam(m.parameters(), lr=1e-2, backend=b) for b, m in models.items()}
    previous = sd.set_backend("numpy")
    try:
        for step in range(2):
            for b in ("numba", "numpy"):
                sd.set_backend("numpy" if b == "numba" else "numba")  # the other one, on purpose
                before = dict(calls)
                opts[b].zero_grad()
                models[b].objective(x, rng=np.random.default_rng(step)).backward()
                opts[b].step()
                other = "numpy" if b == "numba" else "numba"
                assert calls[b] > before[b], f"{b} model ran no {b} kernel"
                assert calls[other] == before[other], f"{b} model ran {other} kernels"
    finally:
        sd.set_backend(previous)
    # and the two trained to the same numbers (the backends compute the same functions)
    for (name, a), (_, b) in zip(models["numpy"].named_parameters(),
                                 models["numba"].named_parameters()):
        np.testing.assert_allclose(a.data, b.data, rtol=1e-9, atol=1e-12, err_msg=name)


@pytest.mark.parametrize("module", ["cpu", "cuda"])
def test_compiled_kernels_keep_their_own_docstrings(module):
    """Each compiled kernel says how *it* computes (the reference says what); read from the
    source, so that numba.cuda need not be importable."""
    import ast
    import pathlib

    from scratchdgm.kernels import KERNEL_NAMES, reference

    path = pathlib.Path(reference.__file__).with_name(f"{module}.py")
    funcs = {n.name: ast.get_docstring(n) for n in ast.parse(path.read_text()).body
             if isinstance(n, ast.FunctionDef)}
    for name in KERNEL_NAMES:
        doc = funcs.get(name)
        assert doc, f"{module}.{name} has no docstring"
        assert doc != (getattr(reference, name).__doc__ or "").strip(), f"{module}.{name}"
        assert "reference" in doc, f"{module}.{name} should name the contract it implements"
