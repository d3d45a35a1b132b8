r"""Checkpoints: round trips, atomic replacement (a crash mid-write keeps the old file), and a
clear ValueError for every way a file can be wrong."""

import json
import os
import zipfile

import numpy as np
import pytest

from scratchdgm import checkpoint
from scratchdgm.checkpoint import load_npz, save_npz


@pytest.fixture
def arrays():
    rng = np.random.default_rng(0)
    return {"layers.0.weight": rng.normal(size=(3, 4)),
            "layers.0.bias": np.zeros(4, np.float32),
            "step": np.array(7),
            "mask": np.array([True, False]),
            "file": np.ones(2),          # collides with numpy.savez's own argument name
            "allow_pickle": np.ones(1)}


def _same(a, b):
    assert set(a) == set(b)
    for k in a:
        assert a[k].dtype == b[k].dtype and a[k].shape == b[k].shape
        np.testing.assert_array_equal(a[k], b[k])


def test_round_trip_keeps_values_dtypes_and_metadata(tmp_path, arrays):
    path = tmp_path / "ckpt.npz"
    meta = {"epoch": 3, "lr": 1e-3, "arch": [64, 100, 10], "note": "héllo", "none": None}
    save_npz(path, arrays, kind="module", format_version=1, metadata=meta)
    loaded, loaded_meta = load_npz(path, kind="module", format_version=1)
    _same(arrays, loaded)
    assert loaded_meta == meta
    # an ordinary npz: numpy reads it without pickle, the header is JSON
    with np.load(path, allow_pickle=False) as npz:
        header = json.loads(str(npz[checkpoint.HEADER_KEY]))
    assert header == {"library": "scratchdgm", "kind": "module", "format_version": 1}


def test_str_path_and_no_metadata(tmp_path):
    path = str(tmp_path / "a.npz")
    save_npz(path, {"x": np.arange(3.0)}, kind="k", format_version=2)
    arrays, meta = load_npz(path, kind="k", format_version=2)
    assert meta == {}
    np.testing.assert_array_equal(arrays["x"], np.arange(3.0))


def test_overwrite_replaces_and_leaves_no_temporary_files(tmp_path):
    path = tmp_path / "c.npz"
    save_npz(path, {"x": np.zeros(2)}, kind="k", format_version=1)
    os.chmod(path, 0o640)
    save_npz(path, {"x": np.ones(2)}, kind="k", format_version=1)
    np.testing.assert_array_equal(load_npz(path, kind="k", format_version=1)[0]["x"], np.ones(2))
    assert os.listdir(tmp_path) == ["c.npz"]
    assert os.stat(path).st_mode & 0o777 == 0o640  # the old file's permissions are kept


def test_new_file_is_readable_like_any_other(tmp_path):
    path = tmp_path / "n.npz"
    save_npz(path, {"x": np.zeros(2)}, kind="k", format_version=1)
    assert os.stat(path).st_mode & 0o777 == 0o644


@pytest.mark.parametrize("where", ["write_array", "fsync", "replace"])
def test_crash_during_write_keeps_the_previous_file(tmp_path, monkeypatch, where):
    path = tmp_path / "model.npz"
    old = {"w": np.arange(5.0)}
    save_npz(path, old, kind="module", format_version=1, metadata={"epoch": 1})
    before = path.read_bytes()

    def crash(*args, **kwargs):
        raise OSError("simulated crash (disk full / power cut)")

    target = {"write_array": (np.lib.format, "write_array"), "fsync": (os, "fsync"),
              "replace": (os, "replace")}[where]
    monkeypatch.setattr(*target, crash)
    with pytest.raises(OSError, match="simulated crash"):
        save_npz(path, {"w": np.zeros(5)}, kind="module", format_version=1,
                 metadata={"epoch": 2})
    monkeypatch.undo()
    assert path.read_bytes() == before
    arrays, meta = load_npz(path, kind="module", format_version=1)
    np.testing.assert_array_equal(arrays["w"], old["w"])
    assert meta == {"epoch": 1}
    assert os.listdir(tmp_path) == ["model.npz"]  # the temporary file was cleaned up


def test_keyboard_interrupt_mid_write_keeps_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "model.npz"
    save_npz(path, {"w": np.arange(3.0)}, kind="module", format_version=1)
    before = path.read_bytes()

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(np.lib.format, "write_array", interrupt)
    with pytest.raises(KeyboardInterrupt):
        save_npz(path, {"w": np.zeros(3)}, kind="module", format_version=1)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["model.npz"]


def test_unwritable_directory_entry_is_reported(tmp_path):
    with pytest.raises(ValueError, match="does not exist; create it first"):
        save_npz(tmp_path / "missing" / "x.npz", {}, kind="k", format_version=1)
    with pytest.raises(ValueError, match="it is a directory"):
        save_npz(tmp_path, {}, kind="k", format_version=1)


@pytest.mark.parametrize("arrays_arg, kw, exc, pattern", [
    ([1, 2], {}, TypeError, "arrays must be a dict"),
    ({1: np.ones(1)}, {}, TypeError, "array names must be non-empty str"),
    ({"": np.ones(1)}, {}, TypeError, "array names must be non-empty str"),
    ({"__header__": np.ones(1)}, {}, ValueError, "is reserved"),
    ({"x": np.array([{}], dtype=object)}, {}, TypeError, "only be stored with pickle"),
    ({"x": np.ones(1)}, {"kind": ""}, TypeError, "kind must be a non-empty str"),
    ({"x": np.ones(1)}, {"kind": 3}, TypeError, "kind must be a non-empty str"),
    ({"x": np.ones(1)}, {"format_version": 0}, TypeError, "format_version must be an int >= 1"),
    ({"x": np.ones(1)}, {"format_version": 1.5}, TypeError, "format_version must be an int"),
    ({"x": np.ones(1)}, {"format_version": True}, TypeError, "format_version must be an int"),
    ({"x": np.ones(1)}, {"metadata": [1]}, TypeError, "metadata must be a dict or None"),
    ({"x": np.ones(1)}, {"metadata": {"a": np.ones(2)}}, TypeError, "JSON-serialisable"),
])
def test_save_validates_arguments(tmp_path, arrays_arg, kw, exc, pattern):
    kwargs = {"kind": "k", "format_version": 1}
    kwargs.update(kw)
    with pytest.raises(exc, match=pattern):
        save_npz(tmp_path / "x.npz", arrays_arg, **kwargs)
    assert not (tmp_path / "x.npz").exists()


def test_load_refuses_wrong_kind(tmp_path):
    path = tmp_path / "opt.npz"
    save_npz(path, {"x": np.ones(1)}, kind="optimizer", format_version=1)
    with pytest.raises(ValueError, match="holds kind 'optimizer', expected kind 'module'"):
        load_npz(path, kind="module", format_version=1)


def test_load_refuses_newer_and_unknown_versions(tmp_path):
    path = tmp_path / "v3.npz"
    save_npz(path, {"x": np.ones(1)}, kind="k", format_version=3)
    with pytest.raises(ValueError, match="format version 3, newer than this code can read "
                                         r"\(up to 2\); upgrade scratchdgm"):
        load_npz(path, kind="k", format_version=2)
    with pytest.raises(ValueError, match=r"format version 3, which this code does not read; "
                                         r"expected one of \[4, 5\]"):
        load_npz(path, kind="k", format_version=(4, 5))
    assert load_npz(path, kind="k", format_version={1, 2, 3})[0]["x"].shape == (1,)
    with pytest.raises(TypeError, match="empty collection"):
        load_npz(path, kind="k", format_version=())
    with pytest.raises(TypeError, match="each accepted format_version"):
        load_npz(path, kind="k", format_version=[1, "2"])


def _write_raw_npz(path, **entries):
    with zipfile.ZipFile(path, "w") as zf:
        for key, arr in entries.items():
            with zf.open(key + ".npy", "w") as f:
                np.lib.format.write_array(f, np.asarray(arr))


@pytest.mark.parametrize("header, pattern", [
    ("not json {", "is not valid JSON"),
    (json.dumps({"kind": "k", "format_version": 1}), "malformed header"),
    (json.dumps([1, 2]), "malformed header"),
    (json.dumps({"library": "scratchdgm", "kind": "k", "format_version": "1"}),
     "unknown format version '1'"),
    (json.dumps({"library": "scratchdgm", "kind": "k", "format_version": 0}),
     "unknown format version 0"),
])
def test_load_refuses_bad_headers(tmp_path, header, pattern):
    path = tmp_path / "bad.npz"
    _write_raw_npz(path, __header__=np.array(header), x=np.ones(2))
    with pytest.raises(ValueError, match=pattern):
        load_npz(path, kind="k", format_version=1)


def test_load_refuses_header_and_metadata_of_the_wrong_type(tmp_path):
    path = tmp_path / "bad.npz"
    _write_raw_npz(path, __header__=np.ones(3))
    with pytest.raises(ValueError, match="should be a JSON string"):
        load_npz(path, kind="k", format_version=1)
    good = json.dumps({"library": "scratchdgm", "kind": "k", "format_version": 1})
    _write_raw_npz(path, __header__=np.array(good), __metadata__=np.array("[1, 2]"))
    with pytest.raises(ValueError, match="metadata should be a JSON object"):
        load_npz(path, kind="k", format_version=1)
    _write_raw_npz(path, __header__=np.array(good))  # metadata entry is optional
    assert load_npz(path, kind="k", format_version=1) == ({}, {})


def test_load_refuses_missing_header(tmp_path):
    path = tmp_path / "plain.npz"
    np.savez(path, x=np.ones(3))
    with pytest.raises(ValueError, match="has no '__header__' entry: .* not written by "
                                         "scratchdgm"):
        load_npz(path, kind="k", format_version=1)


def test_load_refuses_missing_files_and_directories(tmp_path):
    with pytest.raises(ValueError, match="does not exist; expected an .npz file"):
        load_npz(tmp_path / "nope.npz", kind="k", format_version=1)
    with pytest.raises(ValueError, match="is a directory"):
        load_npz(tmp_path, kind="k", format_version=1)


@pytest.mark.parametrize("keep", [0.0, 0.3, 0.6, 0.95])
def test_load_refuses_truncated_files(tmp_path, keep):
    path = tmp_path / "full.npz"
    save_npz(path, {"w": np.arange(2000.0)}, kind="k", format_version=1)
    data = path.read_bytes()
    cut = tmp_path / "cut.npz"
    cut.write_bytes(data[:int(len(data) * keep)])
    with pytest.raises(ValueError, match="truncated, corrupt or not an .npz archive"):
        load_npz(cut, kind="k", format_version=1)


def test_load_refuses_corrupted_member(tmp_path):
    path = tmp_path / "full.npz"
    save_npz(path, {"w": np.arange(2000.0)}, kind="k", format_version=1)
    data = bytearray(path.read_bytes())
    middle = len(data) // 2   # inside the array's bytes: the zip CRC no longer matches
    data[middle:middle + 8] = b"\xff" * 8
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="truncated or corrupt"):
        load_npz(path, kind="k", format_version=1)


def test_load_refuses_other_file_types(tmp_path):
    text = tmp_path / "notes.npz"
    text.write_text("hello")
    with pytest.raises(ValueError, match="not an .npz archive"):
        load_npz(text, kind="k", format_version=1)
    npy = tmp_path / "single.npy"
    np.save(npy, np.ones(3))
    with pytest.raises(ValueError, match="single .npy array, not an .npz archive"):
        load_npz(npy, kind="k", format_version=1)


def test_pickled_content_is_never_loaded(tmp_path):
    path = tmp_path / "evil.npz"
    good = json.dumps({"library": "scratchdgm", "kind": "k", "format_version": 1})
    with zipfile.ZipFile(path, "w") as zf:
        with zf.open("__header__.npy", "w") as f:
            np.lib.format.write_array(f, np.array(good))
        with zf.open("x.npy", "w") as f:
            np.lib.format.write_array(f, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="truncated or corrupt .*pickle"):
        load_npz(path, kind="k", format_version=1)


def test_load_validates_its_arguments(tmp_path):
    with pytest.raises(TypeError, match="kind must be a non-empty str"):
        load_npz(tmp_path / "x.npz", kind=None, format_version=1)
    with pytest.raises(TypeError, match="format_version must be an int"):
        load_npz(tmp_path / "x.npz", kind="k", format_version="1")


# ------------------------------------------------------------- what a killed write leaves behind
def _dead_pid():
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid  # exited and reaped: no process has this id now (reuse within ms is rare)


def test_remove_stale_temporaries_removes_only_provably_ours(tmp_path):
    dead, me = _dead_pid(), os.getpid()
    ours_dead = [f".c.npz.{dead}.ab_cd12x.tmp",  # this version, writer gone
                 ".c.npz.k2j4h5g6.tmp",          # earlier versions (no pid)
                 f"c.npz.tmp{dead}"]             # earlier write_json_atomic
    keep = [f".c.npz.{me}.ab_cd12x.tmp",         # a live writer (this process)
            ".c.npz.notours.tmp", ".c.npz.abc.tmp", f".d.npz.{dead}.ab_cd12x.tmp",
            "c.npz", "notes.tmp", f".c.npz.{dead}.ab_cd12x.tmp.bak"]
    for name in ours_dead + keep:
        (tmp_path / name).write_bytes(b"x")
    removed = checkpoint.remove_stale_temporaries(tmp_path / "c.npz")
    assert sorted(os.path.basename(p) for p in removed) == sorted(ours_dead)
    assert sorted(os.listdir(tmp_path)) == sorted(keep)
    assert checkpoint.remove_stale_temporaries(tmp_path / "c.npz") == []
    assert checkpoint.remove_stale_temporaries(tmp_path / "missing" / "c.npz") == []


def test_a_write_killed_midway_leaves_a_temporary_that_cleanup_removes(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    path = tmp_path / "c.npz"
    save_npz(path, {"x": np.zeros(3)}, kind="k", format_version=1)
    before = path.read_bytes()
    # A writer that stops half way through its archive, then is killed (SIGKILL: no cleanup).
    code = ("import sys, time, numpy as np\n"
            "from scratchdgm import checkpoint\n"
            "def slow(f, payload):\n"
            "    f.write(b'PK half an archive'); f.flush()\n"
            "    print('writing', flush=True); time.sleep(60)\n"
            "checkpoint._write_zip = slow\n"
            f"checkpoint.save_npz({str(path)!r}, {{'x': np.ones(3)}}, kind='k', "
            "format_version=1)\n")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "writing"
        left = [n for n in os.listdir(tmp_path) if n != "c.npz"]
        assert len(left) == 1 and left[0].startswith(f".c.npz.{proc.pid}.")
        # while the writer lives, its file is not touched
        assert checkpoint.remove_stale_temporaries(path) == []
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
    time.sleep(0.01)
    assert [os.path.basename(p) for p in checkpoint.remove_stale_temporaries(path)] == left
    assert os.listdir(tmp_path) == ["c.npz"] and path.read_bytes() == before


def test_write_json_and_text_atomic(tmp_path):
    path = tmp_path / "m.json"
    checkpoint.write_json_atomic(path, {"b": 1, "a": [1.5, None]})
    assert json.loads(path.read_text()) == {"a": [1.5, None], "b": 1}
    checkpoint.write_text_atomic(path, "héllo\n")
    assert path.read_text(encoding="utf-8") == "héllo\n"
    assert os.listdir(tmp_path) == ["m.json"]
    assert (os.stat(path).st_mode & 0o777) == 0o644


def test_array_fingerprint_changes_with_any_value_dtype_or_shape():
    a = np.arange(12.0).reshape(3, 4)
    fp = checkpoint.array_fingerprint(a)
    assert fp.startswith("sha256:") and len(fp) == len("sha256:") + 16
    assert checkpoint.array_fingerprint(a.copy()) == fp
    assert checkpoint.array_fingerprint(np.asfortranarray(a)) == fp  # values, not layout
    b = a.copy()
    b[2, 3] = np.nextafter(b[2, 3], 0)
    assert checkpoint.array_fingerprint(b) != fp
    assert checkpoint.array_fingerprint(a.astype(np.float32)) != fp
    assert checkpoint.array_fingerprint(a.reshape(4, 3)) != fp
    assert checkpoint.array_fingerprint(np.zeros((0, 4))) != checkpoint.array_fingerprint(
        np.zeros((0, 3)))
