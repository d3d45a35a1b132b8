"""scratchdgm.memory: glibc's allocator keeps freed memory for the next training step."""

import platform

import numpy as np
import pytest

from scratchdgm import memory

ON_GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"


@pytest.fixture
def fresh_state(monkeypatch):
    """A private copy of the module's state, so a test may pretend to be another platform."""
    monkeypatch.setattr(memory, "_state", {"libc": None, "loaded": False, "set": False,
                                           "depth": 0})
    monkeypatch.delenv("SCRATCHDGM_MALLOC_TUNING", raising=False)


@pytest.mark.skipif(not ON_GLIBC, reason="the setting exists only in glibc")
def test_on_glibc_the_thresholds_are_set_and_memory_released(fresh_state):
    assert memory.keep_freed_memory() is True
    assert memory.keep_freed_memory() is True  # idempotent
    with memory.reuse_freed_memory() as kept:
        assert kept is True
        big = np.ones(memory.MMAP_THRESHOLD // 16)  # below the mmap threshold: heap memory
        del big
    assert isinstance(memory.release_freed_memory(), bool)


def test_the_environment_variable_turns_it_off(fresh_state, monkeypatch):
    monkeypatch.setenv("SCRATCHDGM_MALLOC_TUNING", "0")
    assert memory.keep_freed_memory() is False
    assert memory.release_freed_memory() is False
    with memory.reuse_freed_memory() as kept:
        assert kept is False


def test_off_glibc_nothing_is_done(fresh_state, monkeypatch):
    monkeypatch.setattr(memory.platform, "system", lambda: "Darwin")
    assert memory.keep_freed_memory() is False
    with memory.reuse_freed_memory() as kept:
        assert kept is False


def test_only_the_outermost_block_releases(fresh_state, monkeypatch):
    calls = []
    monkeypatch.setattr(memory, "keep_freed_memory", lambda: True)
    monkeypatch.setattr(memory, "release_freed_memory", lambda: calls.append(1))
    with memory.reuse_freed_memory():
        with memory.reuse_freed_memory():
            pass
        assert calls == []  # the inner block (fit's validation inside fit) keeps it
    assert calls == [1]
    with pytest.raises(RuntimeError):
        with memory.reuse_freed_memory():
            raise RuntimeError("a step failed")
    assert calls == [1, 1]  # released on an error too
    assert memory._state["depth"] == 0


def test_fit_and_evaluation_run_inside_it(monkeypatch):
    """The training loop and the evaluation functions are where the step-sized temporaries
    are freed and allocated again: both enter the block."""
    from scratchdgm.models.deep import VAE
    from scratchdgm.models.deep import evaluation, training

    entered = []
    real = memory.reuse_freed_memory

    def spy():
        entered.append(1)
        return real()

    monkeypatch.setattr(training, "reuse_freed_memory", spy)
    monkeypatch.setattr(evaluation, "reuse_freed_memory", spy)
    X = (np.random.default_rng(0).random((20, 6)) < 0.5).astype(float)
    model = VAE(6, latent_dim=2, hidden=(4,), random_state=0)
    model.fit(X, epochs=1, batch_size=10, progress=False)
    assert len(entered) == 1
    model.score_samples(X[:3], k=4, random_state=0, progress=False)
    assert len(entered) == 2
