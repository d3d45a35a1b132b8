r"""Progress bars: every long stretch shows one on a terminal (or when forced on with
``SCRATCHDGM_PROGRESS=1``), and nothing at all is printed off a terminal or when switched off."""

import numpy as np
import pytest

import scratchdgm as sd
from scratchdgm.models.deep import bounds
from scratchdgm.progress import progress, progress_enabled


@pytest.fixture
def no_env(monkeypatch):
    monkeypatch.delenv("SCRATCHDGM_PROGRESS", raising=False)


@pytest.mark.parametrize("env, enabled, expected", [
    (None, True, None), (None, False, False), ("1", True, True), ("on", False, False),
    ("0", True, False), ("no", True, False), ("", True, None)])
def test_progress_enabled_rules(monkeypatch, env, enabled, expected):
    if env is None:
        monkeypatch.delenv("SCRATCHDGM_PROGRESS", raising=False)
    else:
        monkeypatch.setenv("SCRATCHDGM_PROGRESS", env)
    assert progress_enabled(enabled) is expected


def test_bar_is_quiet_off_a_terminal_and_drawn_when_forced(capsys, monkeypatch, no_env):
    for _ in progress(range(3), desc="quiet"):
        pass
    assert capsys.readouterr() == ("", "")
    monkeypatch.setenv("SCRATCHDGM_PROGRESS", "1")
    for _ in progress(range(3), desc="forced"):
        pass
    out, err = capsys.readouterr()
    assert out == "" and "forced" in err and "3/3" in err


@pytest.fixture(scope="module")
def model_and_data():
    rng = np.random.default_rng(0)
    x = (rng.random((20, 64)) < 0.3).astype(float)
    return sd.IWAE(64, 2, (8,), k=3, random_state=0, backend="numpy"), x


def test_evaluation_shows_samples_done_and_time_left(model_and_data, capsys, monkeypatch):
    model, x = model_and_data
    monkeypatch.setenv("SCRATCHDGM_PROGRESS", "1")
    monkeypatch.setattr(bounds, "EVAL_BAR_DELAY", 0.0)  # draw even this short evaluation
    model.score(x, k=300, random_state=0, chunk_size=1000)
    err = capsys.readouterr().err
    # 20 points x 300 samples, the elapsed<left estimate, then cleared (leave=False)
    assert "log p(x), K=300" in err and "/6.00k [00:00<" in err and "sample/s" in err
    model.bound(x, 5, random_state=0)
    assert "L_5" in capsys.readouterr().err
    model.score(x, k=300, random_state=0, progress=False)  # the caller's "no" wins
    assert capsys.readouterr() == ("", "")


def test_evaluation_prints_nothing_off_a_terminal(model_and_data, capsys, monkeypatch,
                                                  no_env):
    model, x = model_and_data
    monkeypatch.setattr(bounds, "EVAL_BAR_DELAY", 0.0)
    model.score(x, k=300, random_state=0, chunk_size=1000)
    model.bound(x, 5, random_state=0)
    assert capsys.readouterr() == ("", "")


def test_short_evaluations_stay_silent_even_when_forced(model_and_data, capsys, monkeypatch):
    model, x = model_and_data
    monkeypatch.setenv("SCRATCHDGM_PROGRESS", "1")
    model.bound(x, 1, random_state=0)  # milliseconds: well under EVAL_BAR_DELAY
    model.score(x, k=50, random_state=0)
    assert capsys.readouterr() == ("", "")


def test_a_large_evaluation_shows_its_bar_before_the_first_chunk(capsys, monkeypatch):
    # (the first chunk may wait seconds for kernels to compile: the bar must already be there)
    monkeypatch.setenv("SCRATCHDGM_PROGRESS", "1")
    seen = []

    def log_weights(idx, kc):
        seen.append(capsys.readouterr().err)
        return np.zeros((kc, len(idx)))

    bounds.importance_sampled_log_likelihood(log_weights, 20, 5000, chunk_size=50_000)
    assert "log p(x), K=5000:   0%" in seen[0] and "/100k" in seen[0]
