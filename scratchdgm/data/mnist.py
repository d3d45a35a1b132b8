r"""MNIST from IDX files the user already has on disk (nothing is downloaded)."""

import gzip
import math
import os
import struct
import zlib

import numpy as np

from scratchdgm.data.dataset import Dataset
from scratchdgm.data.digits import TEST_BINARIZATION_SEED
from scratchdgm.validation import check_float_dtype

__all__ = ["read_idx", "load_mnist", "MNIST_FILES", "MAGIC_LABELS", "MAGIC_IMAGES",
           "MAX_IDX_DIMS", "MAX_GZIP_RATIO"]

# ------------------------------------------------------------------------------ MNIST IDX
#: IDX type code -> (big-endian dtype, name)
_IDX_TYPES = {
    0x08: (np.dtype(">u1"), "unsigned byte"),
    0x09: (np.dtype(">i1"), "signed byte"),
    0x0B: (np.dtype(">i2"), "short"),
    0x0C: (np.dtype(">i4"), "int"),
    0x0D: (np.dtype(">f4"), "float"),
    0x0E: (np.dtype(">f8"), "double"),
}
MAGIC_LABELS = 0x00000801  # unsigned bytes, 1 dimension
MAGIC_IMAGES = 0x00000803  # unsigned bytes, 3 dimensions

#: the four standard files; each is also found with a ``.gz`` suffix or with ``.idx`` for ``-idx``
MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


#: most dimensions an IDX header may declare here (NumPy's own limit is 32 or 64)
MAX_IDX_DIMS = 32
#: Deflate, gzip's compression, cannot shrink data by more than about 1032:1, so a gzip file
#: of m bytes holds at most this many times m bytes: a header declaring more is lying
MAX_GZIP_RATIO = 1100
_CHUNK = 1 << 20  # bytes decompressed per read: memory stays bounded whatever the file holds


def _describe_magic(magic):
    type_code, ndim = (magic >> 8) & 0xFF, magic & 0xFF
    kind = _IDX_TYPES.get(type_code, (None, f"unknown type 0x{type_code:02x}"))[1]
    return f"0x{magic:08x} ({kind}, {ndim} dimension{'s' if ndim != 1 else ''})"


class _IdxStream:
    """The bytes of an IDX file, plain or gzip (recognised by its magic bytes), read in pieces:
    a gzip file is decompressed as it is read, never all at once."""

    def __init__(self, path):
        self.path = path
        self.raw = open(path, "rb")
        self.file_size = os.fstat(self.raw.fileno()).st_size
        self.compressed = self.raw.read(2) == b"\x1f\x8b"  # gzip's magic, whatever the name
        self.raw.seek(0)
        self.fh = gzip.GzipFile(fileobj=self.raw, mode="rb") if self.compressed else self.raw

    def readinto(self, view):
        """Fill ``view`` as far as the file goes; the number of bytes read."""
        done = 0
        while done < len(view):
            try:
                got = self.fh.readinto(view[done:done + _CHUNK])
            except (OSError, EOFError, zlib.error) as exc:
                raise ValueError(f"{self.path}: corrupt or truncated gzip file ({exc})") from None
            if not got:
                break
            done += got
        return done

    def read(self, n):
        buf = bytearray(n)
        return bytes(buf[:self.readinto(memoryview(buf))])

    def close(self):
        if self.compressed:
            self.fh.close()
        self.raw.close()


def read_idx(path, expected_magic=None):
    r"""Read an IDX file (the format of the MNIST distribution), plain or gzip-compressed.

    Parameters
    ----------
    path : str or os.PathLike
    expected_magic : int, optional
        E.g. ``0x00000803`` (unsigned bytes, 3 dimensions: images) or ``0x00000801``
        (unsigned bytes, 1 dimension: labels); a different magic number is an error.

    Returns
    -------
    ndarray, shape given by the header
        Native byte order; ``uint8`` for the MNIST files.

    Raises
    ------
    ValueError
        Naming the file, what was expected and what was found, for: a wrong magic number, an
        unknown type code, zero or more than :data:`MAX_IDX_DIMS` dimensions, a truncated
        header, a corrupt gzip stream, and data whose length differs from the product of the
        header's dimensions (a truncated file or a lying header).

    Notes
    -----
    An IDX file is a big-endian header followed by the data in row-major order::

        bytes 0-1   0x00 0x00
        byte  2     type code (0x08 unsigned byte, 0x09 signed byte, 0x0B int16, 0x0C int32,
                    0x0D float32, 0x0E float64)
        byte  3     number of dimensions m
        4 .. 4+4m   m unsigned 32-bit sizes
        then        prod(sizes) * itemsize bytes of data

    Compressed files are recognised by gzip's magic bytes, not by their name. The header is
    read and checked first; then exactly the declared number of bytes is read into the result,
    a megabyte at a time (a gzip file is decompressed as it streams), and one byte more to
    detect trailing data. Memory therefore stays within the declared size, whatever a crafted
    file would expand to, and a declared size that the file cannot hold (more than its size,
    or for gzip more than :data:`MAX_GZIP_RATIO` times it) is refused before reading.
    """
    path = os.fspath(path)
    stream = _IdxStream(path)
    try:
        return _read_idx(stream, path, expected_magic)
    finally:
        stream.close()


def _read_idx(stream, path, expected_magic):
    raw = stream.read(4)
    if len(raw) < 4:
        raise ValueError(f"{path}: not an IDX file: expected a 4-byte magic number, found only "
                         f"{len(raw)} byte(s)")
    magic = struct.unpack(">I", raw)[0]
    if expected_magic is not None and magic != expected_magic:
        raise ValueError(f"{path}: wrong magic number: expected {_describe_magic(expected_magic)}, "
                         f"found {_describe_magic(magic)}")
    if raw[0] != 0 or raw[1] != 0:
        raise ValueError(f"{path}: not an IDX file: the magic number must start with two zero "
                         f"bytes, found 0x{magic:08x}")
    type_code, ndim = raw[2], raw[3]
    if type_code not in _IDX_TYPES:
        known = ", ".join(f"0x{c:02x}" for c in _IDX_TYPES)
        raise ValueError(f"{path}: unknown IDX type code 0x{type_code:02x} in magic number "
                         f"0x{magic:08x}; expected one of {known}")
    if ndim == 0:
        raise ValueError(f"{path}: IDX header declares 0 dimensions; expected at least 1")
    if ndim > MAX_IDX_DIMS:
        raise ValueError(f"{path}: IDX header declares {ndim} dimensions; expected at most "
                         f"{MAX_IDX_DIMS} (MNIST files have 1 for labels, 3 for images)")
    header = 4 + 4 * ndim
    raw_dims = stream.read(4 * ndim)
    if len(raw_dims) < 4 * ndim:
        raise ValueError(f"{path}: truncated IDX header: {ndim} dimensions need {header} header "
                         f"bytes, found {4 + len(raw_dims)}")
    dims = struct.unpack(f">{ndim}I", raw_dims)
    dtype, kind = _IDX_TYPES[type_code]
    expected = math.prod(dims) * dtype.itemsize

    def mismatch(found, what=None):
        what = what or ("truncated file" if found < expected else "trailing data")
        return ValueError(f"{path}: {what}: the header declares shape {tuple(dims)} of {kind} "
                          f"= {expected} data bytes, found {found}")

    # Refuse, before reading, a size the file cannot hold.
    if not stream.compressed and stream.file_size - header != expected:
        raise mismatch(stream.file_size - header)
    if stream.compressed and expected > MAX_GZIP_RATIO * stream.file_size:
        raise ValueError(f"{path}: truncated file: the header declares shape {tuple(dims)} of "
                         f"{kind} = {expected} data bytes, more than a gzip file of "
                         f"{stream.file_size} bytes can hold")
    data = np.empty(expected, dtype=np.uint8)
    found = stream.readinto(memoryview(data))
    if found < expected:
        raise mismatch(found)
    if stream.read(1):
        raise mismatch(f"more (the file goes on after {expected} bytes)", "trailing data")
    return data.view(dtype).reshape(dims).astype(dtype.newbyteorder("="))


def _find_mnist_file(directory, stem):
    candidates = [stem, stem.replace("-idx", ".idx")]
    tried = []
    for c in candidates:
        for name in (c, c + ".gz"):
            tried.append(name)
            path = os.path.join(directory, name)
            if os.path.isfile(path):
                return path, tried
    return None, tried


def load_mnist(directory, binarize=False, random_state=TEST_BINARIZATION_SEED,
               dtype=np.float64):
    r"""MNIST from the four standard IDX files in a local directory (no download).

    Parameters
    ----------
    directory : str or os.PathLike
        Holds ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
        ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``, each possibly with ``.gz``
        appended (or with ``.idx`` in place of ``-idx``).
    binarize : {False, True, 'threshold'}, default False
        False: grey levels in [0, 1]; True: both sets binarised once, stochastically (test set
        first, then training set, from ``numpy.random.default_rng(random_state)``);
        ``'threshold'``: :math:`\mathbb 1[x \ge 1/2]`.
    random_state : int, default 123
        Seed of the stochastic binarisation (123 for the test set, as docs/protocols.md).
    dtype : {numpy.float64, numpy.float32}

    Returns
    -------
    Dataset
        ``x_train`` (60000, 784) and ``x_test`` (10000, 784) in [0, 1] (for the real files;
        ``rows * cols`` columns in general), ``y_train``, ``y_test`` int64 labels,
        ``x_test_binary`` the test set binarised (stochastically with ``random_state`` unless
        ``binarize='threshold'``), ``binary=True``, ``name='mnist'``.

    Raises
    ------
    FileNotFoundError
        Listing the directory and every file name looked for.
    ValueError
        For malformed files (see :func:`read_idx`), image and label counts that differ, files
        of zero images, or labels outside 0-9.

    References
    ----------
    LeCun, Bottou, Bengio & Haffner (1998); the IDX format of the MNIST distribution. Lecture
    000, "Illustrative example of a DLVM for binary images".
    """
    directory = os.fspath(directory)
    dtype = check_float_dtype(dtype, "load_mnist")
    if binarize not in (False, True, "threshold"):
        raise ValueError(f"load_mnist: binarize must be False, True or 'threshold', "
                         f"got {binarize!r}")
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"load_mnist: {directory!r} is not a directory; expected one "
                                f"holding the four MNIST IDX files {sorted(MNIST_FILES.values())}")
    paths, missing = {}, []
    for key, stem in MNIST_FILES.items():
        path, tried = _find_mnist_file(directory, stem)
        if path is None:
            missing.append(" or ".join(tried))
        paths[key] = path
    if missing:
        raise FileNotFoundError(f"load_mnist: in {directory!r} could not find "
                                + "; ".join(missing) + " (no download is attempted)")

    def images(key):
        arr = read_idx(paths[key], expected_magic=MAGIC_IMAGES)
        if arr.shape[0] == 0 or arr.shape[1] * arr.shape[2] == 0:
            raise ValueError(f"load_mnist: {paths[key]} holds {arr.shape[0]} images of "
                             f"{arr.shape[1]} x {arr.shape[2]} pixels; expected at least one "
                             f"image of at least one pixel")
        return (arr.reshape(len(arr), -1) / 255.0).astype(dtype)

    def labels(key):
        arr = read_idx(paths[key], expected_magic=MAGIC_LABELS)
        if arr.size and arr.max() > 9:
            i = int(np.argmax(arr > 9))
            raise ValueError(f"load_mnist: {paths[key]} holds label {int(arr[i])} at index {i}; "
                             f"MNIST labels are the digits 0-9")
        return arr.astype(np.int64)

    x_train, y_train = images("train_images"), labels("train_labels")
    x_test, y_test = images("test_images"), labels("test_labels")
    for xs, ys, part in ((x_train, y_train, "train"), (x_test, y_test, "test")):
        if len(xs) != len(ys):
            raise ValueError(f"load_mnist: {paths[part + '_images']} holds {len(xs)} images but "
                             f"{paths[part + '_labels']} holds {len(ys)} labels; expected equal "
                             f"counts")
    if x_train.shape[1] != x_test.shape[1]:
        raise ValueError(f"load_mnist: training images have {x_train.shape[1]} pixels but test "
                         f"images {x_test.shape[1]}; expected the same size")
    if binarize == "threshold":
        x_train = (x_train >= 0.5).astype(dtype)
        x_test = (x_test >= 0.5).astype(dtype)
        x_test_binary = x_test
    else:
        rng = np.random.default_rng(random_state)
        x_test_binary = (rng.random(x_test.shape) < x_test).astype(dtype)
        if binarize:
            x_train = (rng.random(x_train.shape) < x_train).astype(dtype)
            x_test = x_test_binary
    return Dataset(x_train, x_test, y_train, y_test, x_test_binary, True, "mnist")


