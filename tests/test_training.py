"""Training loop: exact resume (bit for bit), the NaN guard keeps the last good checkpoint,
checkpoints are versioned and atomic, bad input changes nothing on disk."""

import os

import numpy as np
import pytest

import scratchdgm as sd
from scratchdgm.models.deep.training import (
    TrainingDivergedError,
    format_bound,
    load_training_state,
)


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
    with pytest.raises(TrainingDivergedError, match=r"diverged at epoch 2, step 3/5: the loss "
                                                    r"became nan\. Likely cause: the step size "
                                                    r"lr=0.001 is too large.*those of epoch 1, "
                                                    r"the last good one \(its checkpoint") as e:
        model.fit(x, epochs=3, checkpoint=path, resume=True, progress=False)
    assert (e.value.epoch, e.value.step, e.value.last_good_epoch) == (2, 3, 1)
    assert path.read_bytes() == saved
    for k, v in model.state_dict().items():  # weights reset to the end of epoch 1
        np.testing.assert_array_equal(v, good[k])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.npz"]  # no temp files left


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_nan_guard_on_huge_learning_rate(data):
    x, _ = data
    model = sd.IWAE(64, 3, (12,), k=4, likelihood="gaussian:learned", random_state=0)
    with pytest.raises(TrainingDivergedError, match="diverged at epoch 1"):
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


def test_progress_bar_shows_epoch_bound_and_time_left_when_forced_on(data, capsys,
                                                                     monkeypatch):
    x, x_val = data
    monkeypatch.setenv("SCRATCHDGM_PROGRESS", "1")  # capsys is no terminal: force the bar
    make().fit(x, epochs=2, X_val=x_val, progress=True)
    err = capsys.readouterr().err
    assert "IWAE epoch 2/2" in err and "bound -" in err and "val -" in err
    assert "10/10" in err and "<" in err  # steps of the whole run, tqdm's elapsed<left


def test_no_progress_output_off_a_terminal_or_when_disabled(data, capsys, monkeypatch):
    x, _ = data
    monkeypatch.delenv("SCRATCHDGM_PROGRESS", raising=False)
    make().fit(x, epochs=1, progress=True)     # stderr is captured: not a terminal
    monkeypatch.setenv("SCRATCHDGM_PROGRESS", "1")
    make().fit(x, epochs=1, progress=False)    # the caller's "no" wins
    assert capsys.readouterr() == ("", "")


def test_format_bound_keeps_huge_values_short():
    assert format_bound(-23.45678) == "-23.457"
    assert format_bound(-9.3e46) == "-9.300e+46" and format_bound(float("nan")) == "nan"
    assert len(format_bound(-1.7e308)) < 12


@pytest.mark.filterwarnings("error")  # no NumPy overflow warnings either: one clear error
def test_divergence_inside_a_distribution_names_the_cause_and_restores_the_last_epoch(
        tmp_path, data, monkeypatch):
    # A huge step makes the encoder's outputs overflow: a distribution refuses them
    # (NonFiniteError) before the loss is formed. That is divergence, reported as such.
    x, _ = data
    path = tmp_path / "c.npz"
    model = make()
    model.fit(x, epochs=1, checkpoint=path, progress=False)
    saved, good = path.read_bytes(), model.state_dict()
    real = model.encode

    def exploding(xb):
        q = real(xb)
        return sd.distributions.DiagNormal(q.mu * np.inf, q.log_sigma)

    calls = {"n": 0}

    def exploding_at_step_3(xb):
        calls["n"] += 1
        return exploding(xb) if calls["n"] == 3 else real(xb)

    monkeypatch.setattr(model, "encode", exploding_at_step_3)
    with pytest.raises(TrainingDivergedError, match=r"diverged at epoch 2, step 3/5: a "
                                                    r"non-finite value appeared .*DiagNormal.*"
                                                    r"Likely cause: the step size") as e:
        model.fit(x, epochs=3, checkpoint=path, resume=True, progress=False)
    assert e.value.__cause__ is None and e.value.__suppress_context__
    assert path.read_bytes() == saved
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, good[k], err_msg=k)


def test_divergence_in_the_first_epoch_restores_the_initial_weights(data, monkeypatch):
    x, _ = data
    model = make()
    initial = model.state_dict()
    real, calls = model.objective, {"n": 0}

    def poisoned(xb, k, rng):  # two good steps change the weights, then a NaN
        calls["n"] += 1
        return real(xb, k, rng) * (float("nan") if calls["n"] == 3 else 1.0)

    monkeypatch.setattr(model, "objective", poisoned)
    with pytest.raises(TrainingDivergedError, match="No epoch had finished: the model's weights "
                                                    "were reset to their initial values") as e:
        model.fit(x, epochs=2, progress=False)
    assert e.value.last_good_epoch == 0 and e.value.step == 3
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, initial[k], err_msg=k)


def test_resume_with_fewer_epochs_than_done_is_refused(tmp_path, data):
    x, _ = data
    path = tmp_path / "c.npz"
    make().fit(x, epochs=3, checkpoint=path, progress=False)
    saved = path.read_bytes()
    with pytest.raises(ValueError, match=r"already holds 3 epochs, more than the 2 asked for; "
                                         r"epochs is the total.*epochs >= 3 \(e.g. 5 for 2 more"):
        make().fit(x, epochs=2, checkpoint=path, resume=True, progress=False)
    assert path.read_bytes() == saved
    again = make()  # as many epochs as done: nothing to train, the weights are the checkpoint's
    again.fit(x, epochs=3, checkpoint=path, resume=True, progress=False)
    assert again.history_["epoch"] == [1, 2, 3] and path.read_bytes() == saved


def test_resume_on_other_data_of_the_same_size_is_refused(tmp_path, data):
    x, _ = data
    path = tmp_path / "c.npz"
    make().fit(x, epochs=1, checkpoint=path, progress=False, metadata={"data": "mine"})
    saved = path.read_bytes()
    other = x.copy()
    other[0, 0] = 1.0 - other[0, 0]
    with pytest.raises(ValueError, match=r"training data differ from those the run was trained "
                                         r"on \(fingerprint sha256:\w+ in the checkpoint, "
                                         r"sha256:\w+ now, same number of rows 100\)"):
        make().fit(other, epochs=2, checkpoint=path, resume=True, progress=False)
    assert path.read_bytes() == saved
    _, meta = load_training_state(path)
    assert meta["training"]["metadata"] == {"data": "mine"}
    assert meta["training"]["run"]["data_fingerprint"].startswith("sha256:")
    make().fit(x, epochs=2, checkpoint=path, resume=True, progress=False)  # same data: fine


def test_resume_removes_the_temporary_files_of_killed_writes(tmp_path, data):
    x, _ = data
    path = tmp_path / "c.npz"
    make().fit(x, epochs=1, checkpoint=path, progress=False)
    # what a SIGKILL during a checkpoint write leaves (a dead pid; see test_checkpoint.py for
    # a real kill), and a file that only looks similar
    (tmp_path / ".c.npz.999999999.abcd1234.tmp").write_bytes(b"PK")
    (tmp_path / "c.npz.mine.tmp").write_bytes(b"keep")
    make().fit(x, epochs=2, checkpoint=path, resume=True, progress=False)
    assert sorted(os.listdir(tmp_path)) == ["c.npz", "c.npz.mine.tmp"]


def test_numpy_float32_learning_rate_is_accepted(data):
    x, _ = data
    model = make().fit(x, epochs=1, lr=np.float32(1e-3), progress=False)
    assert len(model.history_["epoch"]) == 1
