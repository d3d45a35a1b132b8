"""Training loop: exact resume (bit for bit), the NaN guard keeps the last good checkpoint,
checkpoints are versioned and atomic, bad input changes nothing on disk."""

import io

import numpy as np
import pytest

import scratchdgm as sd
from scratchdgm.models.deep.training import ProgressBar, TrainingDivergedError, load_training_state


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    protos = rng.random((5, 64))
    idx = rng.integers(0, 5, size=100)
    # grey levels in [0, 1]: trained with dynamic binarisation
    x = np.clip(protos[idx] + 0.1 * rng.normal(size=(100, 64)), 0, 1)
    x_val = (rng.random((30, 64)) < protos[rng.integers(0, 5, size=30)]).astype(float)
    return x, x_val


def make(**kw):
    return sd.IWAE(64, 3, (12,), k=kw.pop("k", 4), random_state=kw.pop("random_state", 1), **kw)


def test_resume_reproduces_uninterrupted_run_bit_for_bit(tmp_path, data):
    x, x_val = data
    full = make()
    full.fit(x, epochs=3, X_val=x_val, checkpoint=tmp_path / "full.npz", progress=False,
             random_state=7)
    part_path = tmp_path / "part.npz"
    first = make()
    first.fit(x, epochs=2, X_val=x_val, checkpoint=part_path, progress=False, random_state=7)
    resumed = make(random_state=99)  # different initial weights: all state must come from disk
    resumed.fit(x, epochs=3, X_val=x_val, checkpoint=part_path, resume=True, progress=False,
                random_state=7)
    for (name, a), (_, b) in zip(full.named_parameters(), resumed.named_parameters()):
        np.testing.assert_array_equal(a.data, b.data, err_msg=name)
    assert full.history_["train_bound"] == resumed.history_["train_bound"]
    assert full.history_["val_bound"] == resumed.history_["val_bound"]
    # and the optimiser state on disk is identical too
    fa, _ = load_training_state(tmp_path / "full.npz")
    pa, _ = load_training_state(part_path)
    assert fa.keys() == pa.keys()
    for key in fa:
        np.testing.assert_array_equal(fa[key], pa[key], err_msg=key)


def test_nan_guard_stops_and_keeps_last_good_checkpoint(tmp_path, data, monkeypatch):
    x, _ = data
    path = tmp_path / "c.npz"
    model = make()
    model.fit(x, epochs=1, checkpoint=path, progress=False)
    saved = path.read_bytes()
    good = {k: v.copy() for k, v in model.state_dict().items()}
    calls = {"n": 0}
    real = model.objective

    def poisoned(xb, k, rng):
        calls["n"] += 1
        loss = real(xb, k, rng)
        if calls["n"] == 3:
            loss = loss * float("nan")
        return loss

    monkeypatch.setattr(model, "objective", poisoned)
    with pytest.raises(TrainingDivergedError, match=r"loss became nan at epoch 2, step 3/5.*"
                                                    r"last good checkpoint \(epoch 1\)"):
        model.fit(x, epochs=3, checkpoint=path, resume=True, progress=False)
    assert path.read_bytes() == saved
    for k, v in model.state_dict().items():  # weights reset to the end of epoch 1
        np.testing.assert_array_equal(v, good[k])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.npz"]  # no temp files left


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_nan_guard_on_huge_learning_rate(data):
    x, _ = data
    model = sd.IWAE(64, 3, (12,), k=4, likelihood="gaussian:learned", random_state=0)
    with pytest.raises(TrainingDivergedError, match="became"):
        model.fit(x * 1e200, epochs=2, progress=False, lr=1e10)


def test_existing_checkpoint_not_overwritten_without_resume(tmp_path, data):
    x, _ = data
    path = tmp_path / "c.npz"
    make().fit(x, epochs=1, checkpoint=path, progress=False)
    saved = path.read_bytes()
    with pytest.raises(FileExistsError, match="resume"):
        make().fit(x, epochs=2, checkpoint=path, progress=False)
    assert path.read_bytes() == saved


def test_resume_with_other_architecture_or_settings_is_refused(tmp_path, data):
    x, _ = data
    path = tmp_path / "c.npz"
    make().fit(x, epochs=1, checkpoint=path, progress=False)
    saved = path.read_bytes()
    other = sd.IWAE(64, 5, (12,), k=4, random_state=1)
    with pytest.raises(ValueError, match="different architecture"):
        other.fit(x, epochs=2, checkpoint=path, resume=True, progress=False)
    with pytest.raises(ValueError, match="run settings differ"):
        make().fit(x, epochs=2, checkpoint=path, resume=True, progress=False, lr=0.1)
    assert path.read_bytes() == saved


def test_truncated_checkpoint_refused_on_resume(tmp_path, data):
    x, _ = data
    path = tmp_path / "c.npz"
    make().fit(x, epochs=1, checkpoint=path, progress=False)
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(ValueError, match="truncated|corrupt"):
        make().fit(x, epochs=2, checkpoint=path, resume=True, progress=False)
    with pytest.raises(ValueError, match="truncated|corrupt"):
        sd.IWAE.load(path)


def test_checkpoint_is_versioned_and_loadable(tmp_path, data):
    x, _ = data
    path = tmp_path / "c.npz"
    model = make()
    model.fit(x, epochs=2, checkpoint=path, progress=False)
    with np.load(path, allow_pickle=False) as f:
        assert '"format_version": 1' in str(f["__header__"])
    back = sd.IWAE.load(path)
    assert back.history_["epoch"] == [1, 2]
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(back.state_dict()[k], v)


@pytest.mark.parametrize("mutate, match", [
    (lambda x: np.where(x > 0.5, 2.0, x), r"outside \[0, 1\]"),
    (lambda x: np.where(x > 0.9, np.nan, x), "NaN"),
    (lambda x: x[:, :20], "input_dim = 64"),
])
def test_bad_training_data_writes_nothing(tmp_path, data, mutate, match):
    x, _ = data
    path = tmp_path / "c.npz"
    with pytest.raises(ValueError, match=match):
        make().fit(mutate(x), epochs=1, checkpoint=path, progress=False)
    assert not path.exists()


def test_non_binary_data_without_binarisation_is_refused(data):
    x, _ = data
    with pytest.raises(ValueError, match="not binary"):
        make().fit(x, epochs=1, progress=False, binarize="none")


def test_progress_bar_shows_running_bound(data, capsys):
    x, _ = data
    make().fit(x, epochs=1, progress=True)
    err = capsys.readouterr().err
    assert "epoch 1/1" in err and "bound" in err
    buf = io.StringIO()
    bar = ProgressBar(4, prefix="p", stream=buf, min_interval=0.0)
    bar.update(2, "bound -3.0")
    bar.close()
    assert "2/4" in buf.getvalue() and "4/4" in buf.getvalue()
