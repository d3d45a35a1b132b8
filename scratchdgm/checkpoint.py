r"""Versioned, pickle-free, crash-safe checkpoints in NumPy's ``.npz`` format.

Algorithm: *write to a temporary file, then rename*. :func:`save_npz` writes the archive to a
temporary file in the destination's directory, flushes it and ``fsync``-s it to disk, and only
then moves it over the destination with :func:`os.replace` (an atomic rename on POSIX and on
Windows). A crash at any point before the rename leaves the previous checkpoint untouched; a crash
after it leaves the new one complete.

File layout (an ordinary ``.npz`` zip archive, readable with ``numpy.load(path,
allow_pickle=False)``):

``__header__``
    0-d string array holding a JSON object ``{"library": "scratchdgm", "kind": ...,
    "format_version": ...}``. ``kind`` says what the file is (``"module"``, ``"optimizer"``,
    ``"vae-training"``, ...) so that a model cannot be loaded from an optimiser's file;
    ``format_version`` lets a newer layout be refused by older code with a clear message.
``__metadata__``
    0-d string array holding the caller's ``metadata`` dict as JSON.
every other entry
    one array of the caller's ``arrays`` dict, under its own name.

Nothing is ever unpickled: object arrays are refused when writing, and files are read with
``allow_pickle=False``.

Temporary files. A process killed in the middle of a write (SIGKILL, a power cut) cannot remove
its temporary file, so the names say whose they are: ``.<name>.<pid>.<8 random characters>.tmp``
beside ``<name>``, with the writer's process id. :func:`remove_stale_temporaries` deletes, for one
destination, exactly the files of that pattern whose writer is no longer running (and those of
the pattern without a pid, written by earlier versions) -- never a file the library did not
write, and never one a live process is still writing.
"""

import hashlib
import json
import os
import re
import tempfile
import zipfile

import numpy as np

__all__ = ["save_npz", "load_npz", "write_json_atomic", "write_text_atomic",
           "remove_stale_temporaries", "array_fingerprint", "HEADER_KEY", "METADATA_KEY"]

HEADER_KEY = "__header__"
METADATA_KEY = "__metadata__"
_LIBRARY = "scratchdgm"


def _check_kind(kind):
    if not isinstance(kind, str) or not kind:
        raise TypeError(f"kind must be a non-empty str naming what the file holds "
                        f"(e.g. 'module'), got {kind!r}")


def _check_version(format_version, name="format_version"):
    if isinstance(format_version, bool) or not isinstance(format_version, (int, np.integer)) \
            or format_version < 1:
        raise TypeError(f"{name} must be an int >= 1, got {format_version!r}")
    return int(format_version)


def _to_json_array(obj, what):
    try:
        text = json.dumps(obj, sort_keys=True, allow_nan=True)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{what} must be JSON-serialisable (str, int, float, bool, None, "
                        f"lists and dicts of those): {exc}") from None
    return np.array(text)


def _check_arrays(arrays):
    if not isinstance(arrays, dict):
        raise TypeError(f"arrays must be a dict mapping str names to ndarrays, "
                        f"got {type(arrays).__name__}")
    out = {}
    for key, value in arrays.items():
        if not isinstance(key, str) or not key:
            raise TypeError(f"array names must be non-empty str, got {key!r}")
        if key.startswith("__"):
            raise ValueError(f"array name {key!r} is reserved: names starting with '__' hold "
                             f"the checkpoint header")
        arr = np.asarray(value)
        if arr.dtype.hasobject:
            raise TypeError(f"array {key!r} has dtype object, which can only be stored with "
                            f"pickle; expected a numeric, bool or string array")
        out[key] = arr
    return out


def _fsync_directory(directory):
    # Makes the rename itself durable on POSIX; not possible (or needed) everywhere.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _write_zip(fileobj, arrays):
    # What numpy.savez does, written out so that any array name is allowed (savez's own
    # keyword arguments `file` and `allow_pickle` would collide with entry names) and so that
    # pickling is refused.
    with zipfile.ZipFile(fileobj, mode="w", compression=zipfile.ZIP_STORED,
                         allowZip64=True) as zf:
        for key, arr in arrays.items():
            with zf.open(key + ".npy", mode="w", force_zip64=True) as member:
                np.lib.format.write_array(member, arr, allow_pickle=False)


def save_npz(path, arrays, *, kind, format_version, metadata=None):
    r"""Write ``arrays`` to ``path`` as a versioned ``.npz`` checkpoint, atomically.

    Parameters
    ----------
    path : str or os.PathLike
        Destination file. Written exactly as given (no ``.npz`` suffix is appended). Its
        directory must exist.
    arrays : dict of str -> ndarray
        The arrays to store. Names must not start with ``'__'`` (reserved for the header);
        object arrays are refused because they would need pickle.
    kind : str
        What the file holds, e.g. ``'module'``; :func:`load_npz` refuses a file of another kind.
    format_version : int
        Version (>= 1) of the caller's layout of ``arrays``.
    metadata : dict or None
        JSON-serialisable extra information (hyper-parameters, epoch, ...), stored as a JSON
        string inside the archive.

    Notes
    -----
    The archive is written to a temporary file in the same directory, flushed and ``fsync``-ed,
    then renamed over ``path`` with :func:`os.replace`. If anything fails before the rename the
    temporary file is removed and the previous content of ``path`` is untouched.

    Examples
    --------
    >>> save_npz("model.npz", {"w": np.zeros(3)}, kind="module", format_version=1)
    ... # doctest: +SKIP
    """
    _check_kind(kind)
    version = _check_version(format_version)
    if metadata is None:
        metadata = {}
    if not isinstance(metadata, dict):
        raise TypeError(f"metadata must be a dict or None, got {type(metadata).__name__}")
    checked = _check_arrays(arrays)
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise ValueError(f"cannot write checkpoint {path!r}: directory {directory!r} does not "
                         f"exist; create it first")
    if os.path.isdir(path):
        raise ValueError(f"cannot write checkpoint {path!r}: it is a directory; expected a "
                         f"file path")
    header = {"library": _LIBRARY, "kind": kind, "format_version": version}
    payload = {HEADER_KEY: _to_json_array(header, "header"),
               METADATA_KEY: _to_json_array(metadata, "metadata")}
    payload.update(checked)

    _write_atomic(path, lambda f: _write_zip(f, payload))


def _temporary_prefix(path):
    return f".{os.path.basename(path)}.{os.getpid()}."


def _temporary_pattern(path):
    # What tempfile.mkstemp makes of _temporary_prefix: 8 characters of its alphabet. Earlier
    # versions wrote '.<name>.<8 characters>.tmp' (no pid) and, for JSON, '<name>.tmp<pid>'.
    base = re.escape(os.path.basename(path))
    return re.compile(rf"\.{base}\.(?:(?P<pid>\d+)\.)?[a-z0-9_]{{8}}\.tmp"
                      rf"|{base}\.tmp(?P<json_pid>\d+)")


def _write_atomic(path, write):
    r"""Call ``write(binary_file)`` on a temporary file beside ``path``, fsync it, give it the
    permissions of an ordinary file (or of the file it replaces) and rename it over ``path``;
    on any failure the temporary file is removed and ``path`` is untouched."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=_temporary_prefix(path), suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        # mkstemp creates files readable by the owner only; a checkpoint should look like any
        # other file the user writes (keep the old file's mode when replacing one).
        try:
            mode = os.stat(path).st_mode & 0o777
        except OSError:
            mode = 0o644
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_directory(directory)


def _process_running(pid):
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except (PermissionError, OSError, OverflowError):
        return True  # exists (another user's) or cannot tell: keep the file
    return True


def remove_stale_temporaries(path):
    r"""Delete the temporary files that an interrupted write of ``path`` left behind.

    Only files named as :func:`save_npz` and :func:`write_json_atomic` name theirs
    (``.<name>.<pid>.<8 characters>.tmp`` in the directory of ``path``) are considered, and of
    those only the ones whose writing process is no longer running (or whose name carries no
    pid: earlier versions of the library). Nothing else is touched.

    Parameters
    ----------
    path : str or os.PathLike
        The destination (e.g. ``run/checkpoint.npz``); it need not exist.

    Returns
    -------
    list of str
        The paths removed.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    pattern = _temporary_pattern(path)
    removed = []
    try:
        names = os.listdir(directory)
    except OSError:
        return removed
    for name in sorted(names):
        match = pattern.fullmatch(name)
        if match is None:
            continue
        pid = match.group("pid") or match.group("json_pid")
        if pid is not None and _process_running(int(pid)):
            continue
        full = os.path.join(directory, name)
        try:
            if os.path.isfile(full) and not os.path.islink(full):
                os.unlink(full)
                removed.append(full)
        except OSError:
            pass
    return removed


def array_fingerprint(arr):
    r"""A short, stable fingerprint of an array's contents: ``'sha256:'`` and 16 hex digits of
    the SHA-256 of its dtype, shape and bytes (C order).

    Two arrays get the same fingerprint exactly when they hold the same values in the same
    dtype and shape (up to a hash collision, about 1 in :math:`2^{64}`). Checkpoints store the
    fingerprint of the training data, so that resuming on other data is noticed.
    """
    arr = np.ascontiguousarray(arr)
    h = hashlib.sha256()
    h.update(f"{arr.dtype.str}{arr.shape}".encode())
    h.update(memoryview(arr).cast("B") if arr.size else b"")
    return "sha256:" + h.hexdigest()[:16]


class _BadEntry(ValueError):
    """A header entry that was read fine but holds the wrong thing (message already clear)."""


def _read_json(npz, key, path):
    arr = npz[key]
    if arr.ndim != 0 or arr.dtype.kind != "U":
        raise _BadEntry(f"checkpoint {path!r}: entry {key!r} should be a JSON string, found an "
                         f"array of shape {arr.shape} and dtype {arr.dtype}")
    try:
        return json.loads(str(arr))
    except json.JSONDecodeError as exc:
        raise _BadEntry(f"checkpoint {path!r}: entry {key!r} is not valid JSON ({exc})") from None


def load_npz(path, *, kind, format_version):
    r"""Read a checkpoint written by :func:`save_npz`, checking what it is.

    Parameters
    ----------
    path : str or os.PathLike
        The ``.npz`` file.
    kind : str
        The kind the caller expects (must equal the one given to :func:`save_npz`).
    format_version : int or collection of int
        The layout version(s) the caller can read. An int ``k`` accepts exactly version ``k``;
        a set/tuple/list accepts any of its members.

    Returns
    -------
    arrays : dict of str -> ndarray
        Every stored array (fully read into memory), header entries removed.
    metadata : dict
        The ``metadata`` dict given to :func:`save_npz` (empty if none was given).

    Raises
    ------
    ValueError
        If ``path`` is not a file; if it is truncated, corrupt, or not an ``.npz`` archive; if
        it lacks the scratchdgm header; if its kind differs from ``kind``; if its format version
        is newer than, or otherwise not among, the accepted ones.
    """
    _check_kind(kind)
    if isinstance(format_version, (set, frozenset, tuple, list)):
        if not format_version:
            raise TypeError("format_version must be an int >= 1 or a non-empty collection of "
                            "them, got an empty collection")
        accepted = {_check_version(v, "each accepted format_version") for v in format_version}
    else:
        accepted = {_check_version(format_version)}
    path = os.fspath(path)
    if not os.path.isfile(path):
        what = "is a directory" if os.path.isdir(path) else "does not exist"
        raise ValueError(f"cannot load checkpoint {path!r}: it {what}; expected an .npz file "
                         f"written by scratchdgm")
    try:
        npz = np.load(path, allow_pickle=False)
    except (OSError, EOFError, ValueError, zipfile.BadZipFile) as exc:
        # A file that is neither zip nor .npy is refused as "pickled data"; a cut-off zip
        # raises BadZipFile.
        raise ValueError(f"cannot load checkpoint {path!r}: the file is truncated, corrupt or "
                         f"not an .npz archive ({type(exc).__name__}: {exc})") from None
    if not isinstance(npz, np.lib.npyio.NpzFile):
        raise ValueError(f"cannot load checkpoint {path!r}: it is a single .npy array, not an "
                         f".npz archive written by scratchdgm")
    with npz:
        names = list(npz.files)
        if HEADER_KEY not in names:
            raise ValueError(f"checkpoint {path!r} has no {HEADER_KEY!r} entry: it is an .npz "
                             f"file but was not written by scratchdgm.checkpoint.save_npz")
        try:
            header = _read_json(npz, HEADER_KEY, path)
            metadata = _read_json(npz, METADATA_KEY, path) if METADATA_KEY in names else {}
            # Read everything now: a truncated member must fail here, not later in the caller.
            arrays = {name: npz[name] for name in names
                      if name not in (HEADER_KEY, METADATA_KEY)}
        except _BadEntry:
            raise
        except (OSError, EOFError, ValueError, zipfile.BadZipFile) as exc:
            raise ValueError(f"cannot load checkpoint {path!r}: the file is truncated or "
                             f"corrupt ({type(exc).__name__}: {exc})") from None

    if not isinstance(header, dict) or header.get("library") != _LIBRARY:
        raise ValueError(f"checkpoint {path!r} has a malformed header {header!r}; expected a "
                         f"scratchdgm header with 'kind' and 'format_version'")
    if header.get("kind") != kind:
        raise ValueError(f"checkpoint {path!r} holds kind {header.get('kind')!r}, expected "
                         f"kind {kind!r}")
    version = header.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ValueError(f"checkpoint {path!r} has an unknown format version {version!r}; "
                         f"expected one of {sorted(accepted)}")
    if version not in accepted:
        if version > max(accepted):
            raise ValueError(f"checkpoint {path!r} uses format version {version}, newer than "
                             f"this code can read (up to {max(accepted)}); upgrade scratchdgm")
        raise ValueError(f"checkpoint {path!r} uses format version {version}, which this code "
                         f"does not read; expected one of {sorted(accepted)}")
    if not isinstance(metadata, dict):
        raise ValueError(f"checkpoint {path!r}: metadata should be a JSON object, found "
                         f"{type(metadata).__name__}")
    return arrays, metadata


def write_text_atomic(path, text):
    r"""Write ``text`` (UTF-8) to ``path`` through a temporary file and a rename: a reader sees
    the old content or the new, never half of it (see :func:`save_npz`)."""
    path = os.fspath(path)
    data = str(text).encode("utf-8")
    _write_atomic(path, lambda f: f.write(data))


def write_json_atomic(path, obj):
    r"""Write ``obj`` as indented JSON to ``path`` through a temporary file and a rename
    (:func:`write_text_atomic`)."""
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")
