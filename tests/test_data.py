"""Tests of scratchdgm.data: the digits protocol, binarisation, the IDX reader (on small files
written here), the toy DLVM and its quadrature log-likelihood, the 2-D and continuous sets."""

import gzip
import math
import struct

import numpy as np
import pytest
from scipy.special import logsumexp
from scipy.stats import kurtosis

from scratchdgm import data
from scratchdgm.data.mnist import MAGIC_IMAGES


# ------------------------------------------------------------------------------ digits protocol
@pytest.fixture(scope="module")
def digits():
    return data.load_digits_protocol()


def test_digits_protocol_split_and_ranges(digits):
    from sklearn.datasets import load_digits

    assert digits.x_train.shape == (1500, 64) and digits.x_test.shape == (297, 64)
    assert digits.y_train.shape == (1500,) and digits.y_test.shape == (297,)
    assert digits.x_train.dtype == np.float64
    assert digits.x_train.min() == 0.0 and digits.x_train.max() == 1.0
    assert digits.binary and digits.name == "digits"
    # exactly docs/protocols.md: data / 16, permutation from default_rng(0), first 1500 train
    bunch = load_digits()
    perm = np.random.default_rng(0).permutation(1797)
    np.testing.assert_array_equal(digits.x_train, bunch.data[perm[:1500]] / 16)
    np.testing.assert_array_equal(digits.x_test, bunch.data[perm[1500:]] / 16)
    np.testing.assert_array_equal(digits.y_test, bunch.target[perm[1500:]])
    # positional order used by the CLI: x_train, x_test, y_train, y_test, x_test_binary
    assert digits[4] is digits.x_test_binary


def test_digits_protocol_test_binarisation_is_fixed(digits):
    expected = np.random.default_rng(123).random((297, 64)) < digits.x_test
    np.testing.assert_array_equal(digits.x_test_binary, expected.astype(np.float64))
    again = data.load_digits_protocol()
    np.testing.assert_array_equal(again.x_test_binary, digits.x_test_binary)
    assert set(np.unique(digits.x_test_binary)) == {0.0, 1.0}
    assert data.load_digits_protocol(binarize_test=False).x_test_binary is None


def test_digits_protocol_float32():
    d = data.load_digits_protocol(dtype=np.float32)
    assert d.x_train.dtype == np.float32 and d.x_test_binary.dtype == np.float32
    with pytest.raises(TypeError, match="float32 or float64"):
        data.load_digits_protocol(dtype=np.int32)


def test_digits_continuous_dequantisation(digits):
    d = data.load_digits_continuous(np.random.default_rng(0))
    assert d.x_train.shape == (1500, 64) and d.x_test.shape == (297, 64)
    assert d.x_train.min() >= 0.0 and d.x_train.max() < 1.0 and not d.binary
    # x = (v + u) / 17 with u in [0, 1): the grey level is recovered by flooring
    np.testing.assert_array_equal(np.floor(d.x_train * 17), digits.x_train * 16)
    np.testing.assert_array_equal(d.y_train, digits.y_train)
    same = data.load_digits_continuous(np.random.default_rng(0))
    np.testing.assert_array_equal(same.x_test, d.x_test)


# ------------------------------------------------------------------------------ binarisation
def test_dynamic_binarize_values_dtype_and_mean():
    rng = np.random.default_rng(1)
    x = np.full((20000, 3), [0.0, 0.3, 1.0], dtype=np.float32)
    b = data.dynamic_binarize(x, rng)
    assert b.dtype == np.float32 and b.shape == x.shape
    assert set(np.unique(b)) <= {0.0, 1.0}
    assert np.all(b[:, 0] == 0) and np.all(b[:, 2] == 1)
    # Bernoulli(0.3) mean, 5 standard errors
    assert abs(b[:, 1].mean() - 0.3) < 5 * math.sqrt(0.3 * 0.7 / 20000)
    assert data.dynamic_binarize(np.array([[0, 1]]), rng).dtype == np.float64


def test_dynamic_binarize_rejects_bad_input():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        data.dynamic_binarize(np.array([0.5, 1.5]), rng)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        data.dynamic_binarize(np.array([np.nan]), rng)
    with pytest.raises(TypeError, match="Generator"):
        data.dynamic_binarize(np.array([0.5]), 3)


# ------------------------------------------------------------------------------ IDX reader
def write_idx(path, arr, type_code=0x08, dims=None, gz=False, cut=0, extra=b""):
    """Write ``arr`` as an IDX file; ``dims`` overrides the header (a lying header), ``cut``
    drops trailing bytes (a truncated file), ``extra`` appends bytes."""
    dtype = {0x08: ">u1", 0x0C: ">i4", 0x0D: ">f4"}[type_code]
    dims = arr.shape if dims is None else dims
    header = bytes([0, 0, type_code, len(dims)]) + struct.pack(f">{len(dims)}I", *dims)
    raw = header + np.asarray(arr, dtype=dtype).tobytes() + extra
    if cut:
        raw = raw[:-cut]
    if gz:
        raw = gzip.compress(raw)
    with open(path, "wb") as fh:
        fh.write(raw)
    return str(path)


def test_read_idx_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(5, 3, 4), dtype=np.uint8)
    labels = rng.integers(0, 10, size=5).astype(np.uint8)
    got = data.read_idx(write_idx(tmp_path / "im", images))
    assert got.dtype == np.uint8
    np.testing.assert_array_equal(got, images)
    np.testing.assert_array_equal(data.read_idx(write_idx(tmp_path / "lab", labels),
                                                expected_magic=data.mnist.MAGIC_LABELS), labels)
    # gzip is recognised by its content, whatever the name
    np.testing.assert_array_equal(data.read_idx(write_idx(tmp_path / "im.gz", images, gz=True),
                                                expected_magic=data.mnist.MAGIC_IMAGES), images)
    ints = np.array([[-5, 70000], [1, 2]])
    got = data.read_idx(write_idx(tmp_path / "ints", ints, type_code=0x0C))
    assert got.dtype == np.int32 and got.dtype.byteorder in "=|<"
    np.testing.assert_array_equal(got, ints)
    floats = np.array([0.5, -2.25, 1e10])
    np.testing.assert_array_equal(data.read_idx(write_idx(tmp_path / "f", floats, 0x0D)),
                                  floats.astype(np.float32))


def test_read_idx_truncated_file(tmp_path):
    images = np.zeros((4, 3, 3), dtype=np.uint8)
    path = write_idx(tmp_path / "short", images, cut=5)
    with pytest.raises(ValueError, match="truncated file") as info:
        data.read_idx(path)
    msg = str(info.value)
    assert "short" in msg and "36 data bytes" in msg and "found 31" in msg
    path = write_idx(tmp_path / "short.gz", images, cut=5, gz=True)
    with pytest.raises(ValueError, match="truncated file"):
        data.read_idx(path)


def test_read_idx_lying_header(tmp_path):
    images = np.zeros((4, 3, 3), dtype=np.uint8)
    # header claims more images than there are
    with pytest.raises(ValueError, match=r"shape \(6, 3, 3\).*54 data bytes, found 36"):
        data.read_idx(write_idx(tmp_path / "more", images, dims=(6, 3, 3)))
    # header claims fewer: the rest is trailing data, also an error
    with pytest.raises(ValueError, match="trailing data"):
        data.read_idx(write_idx(tmp_path / "fewer", images, dims=(2, 3, 3)))
    with pytest.raises(ValueError, match="trailing data"):
        data.read_idx(write_idx(tmp_path / "extra", images, extra=b"\x00"))


def test_read_idx_wrong_magic_and_garbage(tmp_path):
    labels = np.zeros(5, dtype=np.uint8)
    path = write_idx(tmp_path / "labels", labels)
    with pytest.raises(ValueError, match=r"expected 0x00000803 .*3 dimensions.*found 0x00000801"):
        data.read_idx(path, expected_magic=data.mnist.MAGIC_IMAGES)
    bad = tmp_path / "text"
    bad.write_bytes(b"hello world, not an IDX file")
    with pytest.raises(ValueError, match="two zero bytes"):
        data.read_idx(bad)
    (tmp_path / "tiny").write_bytes(b"\x00\x00")
    with pytest.raises(ValueError, match="4-byte magic"):
        data.read_idx(tmp_path / "tiny")
    (tmp_path / "type").write_bytes(bytes([0, 0, 0x07, 1, 0, 0, 0, 0]))
    with pytest.raises(ValueError, match="unknown IDX type code 0x07"):
        data.read_idx(tmp_path / "type")
    (tmp_path / "hdr").write_bytes(bytes([0, 0, 0x08, 3, 0, 0, 0, 4]))
    with pytest.raises(ValueError, match="truncated IDX header"):
        data.read_idx(tmp_path / "hdr")
    (tmp_path / "bad.gz").write_bytes(gzip.compress(b"\x00" * 100)[:-12])
    with pytest.raises(ValueError, match="gzip"):
        data.read_idx(tmp_path / "bad.gz")


def _gzip_bomb(path, dims, megabytes):
    """An IDX header declaring ``dims`` (unsigned bytes), then ``megabytes`` MiB of zeros: a
    gzip file of about 1 KB per MiB (concatenated gzip members, which gzip readers join)."""
    header = bytes([0, 0, 0x08, len(dims)]) + struct.pack(f">{len(dims)}I", *dims)
    member = gzip.compress(bytes(1 << 20), compresslevel=9)
    with open(path, "wb") as fh:
        fh.write(gzip.compress(header))
        for _ in range(megabytes):
            fh.write(member)
    return path


def _peak_memory(fn):
    import tracemalloc

    tracemalloc.start()
    try:
        try:
            fn()
            error = None
        except ValueError as exc:
            error = exc
        return tracemalloc.get_traced_memory()[1], error
    finally:
        tracemalloc.stop()


def test_read_idx_checks_the_header_first_and_streams_gzip_in_bounded_memory(tmp_path):
    # 1 MB on disk, 1 GiB once decompressed, behind a header declaring 10 images of 28 x 28:
    # the reader must stop right after the declared 7840 bytes, never inflating the rest.
    bomb = _gzip_bomb(tmp_path / "bomb.gz", (10, 28, 28), 1024)
    assert bomb.stat().st_size < 2_000_000
    peak, error = _peak_memory(lambda: data.read_idx(bomb, expected_magic=MAGIC_IMAGES))
    assert error is not None and "trailing data" in str(error) and "7840 data bytes" in str(error)
    assert peak < 8 << 20, f"peak {peak / 2**20:.1f} MiB while reading a 1 GiB gzip bomb"
    # a header declaring more than any gzip file of this size can hold: refused unread
    huge = _gzip_bomb(tmp_path / "huge.gz", (60000, 280, 280), 1)
    peak, error = _peak_memory(lambda: data.read_idx(huge))
    assert "more than a gzip file of" in str(error) and peak < 1 << 20
    # an honest file is read whole, in memory close to its own size
    honest = _gzip_bomb(tmp_path / "ok.gz", (4, 512, 512), 1)
    peak, error = _peak_memory(lambda: data.read_idx(honest).sum())
    assert error is None and peak < (1 << 20) + (8 << 20)
    np.testing.assert_array_equal(data.read_idx(honest), np.zeros((4, 512, 512), np.uint8))


def test_read_idx_plain_file_size_is_checked_before_reading(tmp_path, monkeypatch):
    path = tmp_path / "plain"
    path.write_bytes(bytes([0, 0, 0x08, 3]) + struct.pack(">3I", 2**31, 2**16, 2**16))
    monkeypatch.setattr(np, "empty", None)  # nothing may be allocated for such a header
    with pytest.raises(ValueError, match=r"truncated file: .*\(2147483648, 65536, 65536\).*"
                                         r"found 0"):
        data.read_idx(path)


def test_read_idx_many_dimensions_and_empty_files_are_clear_errors(tmp_path):
    many = tmp_path / "d255"
    many.write_bytes(bytes([0, 0, 0x08, 255]) + struct.pack(">255I", *([1] * 255)) + b"\x05")
    with pytest.raises(ValueError, match="declares 255 dimensions; expected at most 32"):
        data.read_idx(many)
    with pytest.raises(ValueError, match=r"expected 0x00000803 .*found 0x000008ff \(unsigned "
                                         r"byte, 255 dimensions\)"):
        data.read_idx(many, expected_magic=MAGIC_IMAGES)
    empty = write_idx(tmp_path / "empty", np.zeros((0, 4, 5), np.uint8))
    assert data.read_idx(empty).shape == (0, 4, 5)  # a valid IDX file, if a useless one


@pytest.mark.parametrize("part, what, match", [
    ("train-images-idx3-ubyte", np.zeros((0, 4, 5), np.uint8),
     "holds 0 images of 4 x 5 pixels; expected at least one image"),
    ("train-images-idx3-ubyte", np.zeros((6, 0, 5), np.uint8), "holds 6 images of 0 x 5"),
    ("train-labels-idx1-ubyte", np.array([1, 2, 200, 3, 4, 5], np.uint8),
     "holds label 200 at index 2; MNIST labels are the digits 0-9"),
])
def test_load_mnist_refuses_empty_images_and_labels_above_nine(tmp_path, part, what, match):
    make_mnist_dir(tmp_path)
    write_idx(tmp_path / part, what)
    with pytest.raises(ValueError, match=match):
        data.load_mnist(tmp_path)


def make_mnist_dir(directory, n_train=6, n_test=4, gz_test=True, rows=4, cols=5):
    rng = np.random.default_rng(3)
    tr = rng.integers(0, 256, size=(n_train, rows, cols), dtype=np.uint8)
    te = rng.integers(0, 256, size=(n_test, rows, cols), dtype=np.uint8)
    ytr = rng.integers(0, 10, n_train).astype(np.uint8)
    yte = rng.integers(0, 10, n_test).astype(np.uint8)
    write_idx(directory / "train-images-idx3-ubyte", tr)
    write_idx(directory / "train-labels-idx1-ubyte", ytr)
    suffix = ".gz" if gz_test else ""
    write_idx(directory / f"t10k-images-idx3-ubyte{suffix}", te, gz=gz_test)
    write_idx(directory / f"t10k-labels.idx1-ubyte{suffix}", yte, gz=gz_test)
    return tr, te, ytr, yte


def test_load_mnist_small_directory(tmp_path):
    tr, te, ytr, yte = make_mnist_dir(tmp_path)
    d = data.load_mnist(tmp_path)
    assert d.x_train.shape == (6, 20) and d.x_test.shape == (4, 20)
    np.testing.assert_allclose(d.x_train, tr.reshape(6, -1) / 255.0)
    np.testing.assert_array_equal(d.y_test, yte)
    assert d.y_train.dtype == np.int64 and d.binary
    assert 0.0 <= d.x_train.min() and d.x_train.max() <= 1.0
    expected = np.random.default_rng(123).random((4, 20)) < d.x_test
    np.testing.assert_array_equal(d.x_test_binary, expected)
    b = data.load_mnist(tmp_path, binarize=True)
    assert set(np.unique(b.x_train)) <= {0.0, 1.0}
    np.testing.assert_array_equal(b.x_test, d.x_test_binary)
    t = data.load_mnist(tmp_path, binarize="threshold", dtype=np.float32)
    np.testing.assert_array_equal(t.x_train, (tr.reshape(6, -1) / 255.0 >= 0.5))
    assert t.x_train.dtype == np.float32
    with pytest.raises(ValueError, match="binarize"):
        data.load_mnist(tmp_path, binarize="yes")


def test_load_mnist_missing_and_inconsistent(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        data.load_mnist(tmp_path)
    msg = str(info.value)
    for name in data.MNIST_FILES.values():
        assert name in msg and name + ".gz" in msg
    with pytest.raises(FileNotFoundError, match="not a directory"):
        data.load_mnist(tmp_path / "nope")
    make_mnist_dir(tmp_path)
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(5, dtype=np.uint8))
    with pytest.raises(ValueError, match="6 images but .* 5 labels"):
        data.load_mnist(tmp_path)
    # images and labels swapped: caught by the magic number
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros((6, 4, 5), dtype=np.uint8))
    with pytest.raises(ValueError, match="wrong magic number"):
        data.load_mnist(tmp_path)


# ------------------------------------------------------------------------------ toy DLVM
def test_toy_decoder_matches_lecture_formula_and_is_finite_at_zero():
    z = np.array([-2.0, -0.3, 0.7, 1.9])
    mu, sigma = data.toy_dlvm_decoder(z)
    np.testing.assert_allclose(mu[:, 0], 10 * np.sin(z) ** 3)
    np.testing.assert_allclose(mu[:, 1], 10 * np.cos(z) - 10 * np.cos(z) ** 4)
    np.testing.assert_allclose(sigma ** 2, np.c_[(np.sin(z) / (3 * z)) ** 2,
                                                 (np.sin(z) / z) ** 2], rtol=1e-12)
    mu0, s0 = data.toy_dlvm_decoder(np.array([[0.0], [1e-300]]))
    np.testing.assert_allclose(s0, [[1 / 3, 1.0], [1 / 3, 1.0]])
    np.testing.assert_allclose(mu0, 0.0, atol=1e-12)
    with pytest.raises(ValueError, match=r"\(n,\) or \(n, 1\)"):
        data.toy_dlvm_decoder(np.zeros((3, 2)))


def test_toy_dlvm_sample_shapes_and_conditional_moments():
    x, z = data.toy_dlvm_sample(20000, np.random.default_rng(5))
    assert x.shape == (20000, 2) and z.shape == (20000, 1)
    assert np.all(np.isfinite(x))
    x2, z2 = data.toy_dlvm_sample(20000, np.random.default_rng(5))
    np.testing.assert_array_equal(x, x2)
    # the standardised residuals are N(0, 1): Sigma(z) is read as a variance, sigma as a std
    mu, sigma = data.toy_dlvm_decoder(z)
    r = (x - mu) / sigma
    np.testing.assert_allclose(r.mean(axis=0), 0.0, atol=0.04)
    np.testing.assert_allclose(r.std(axis=0), 1.0, atol=0.03)
    assert abs(z.std() - 1.0) < 0.03
    with pytest.raises(ValueError, match="n must be an int >= 1"):
        data.toy_dlvm_sample(0, np.random.default_rng(0))


def test_toy_log_likelihood_matches_monte_carlo():
    rng = np.random.default_rng(11)
    x, _ = data.toy_dlvm_sample(6, rng)
    x = np.vstack([x, [[0.0, 0.0], [3.0, -12.0]]])
    quad = data.toy_dlvm_log_likelihood(x)
    # simple Monte Carlo with the prior as proposal ([Mattei-DGM, "Beyond simple MC: importance sampling"])
    m = 200_000
    zs = rng.standard_normal(m)
    mu, sigma = data.toy_dlvm_decoder(zs)
    lp = (-0.5 * ((x[:, None, :] - mu) / sigma) ** 2 - np.log(sigma)
          - 0.5 * math.log(2 * math.pi)).sum(-1)
    mc = logsumexp(lp, axis=1) - math.log(m)
    np.testing.assert_allclose(quad, mc, atol=0.08)


def test_toy_log_likelihood_quadrature_converged_and_validates():
    x, _ = data.toy_dlvm_sample(50, np.random.default_rng(2))
    coarse = data.toy_dlvm_log_likelihood(x)
    fine = data.toy_dlvm_log_likelihood(x, n_grid=60001, z_max=9.0)
    np.testing.assert_allclose(coarse, fine, atol=1e-6)
    with pytest.raises(ValueError, match=r"\(n, 2\)"):
        data.toy_dlvm_log_likelihood(np.zeros((3, 3)))
    with pytest.raises(ValueError, match="NaN"):
        data.toy_dlvm_log_likelihood(np.array([[np.nan, 0.0]]))


# ------------------------------------------------------------------------------ 2-D toy sets
def test_two_moons_geometry():
    x, y = data.two_moons(1000, np.random.default_rng(0), noise=0.0)
    assert x.shape == (1000, 2) and set(np.unique(y)) == {0, 1}
    r_upper = np.linalg.norm(x[y == 0], axis=1)
    r_lower = np.linalg.norm(x[y == 1] - [1.0, 0.5], axis=1)
    np.testing.assert_allclose(r_upper, 1.0)
    np.testing.assert_allclose(r_lower, 1.0)
    assert np.all(x[y == 0, 1] >= 0) and np.all(x[y == 1, 1] <= 0.5)
    noisy, _ = data.two_moons(1000, np.random.default_rng(0), noise=0.1)
    assert 0.05 < np.abs(noisy - x).std() < 0.15
    with pytest.raises(ValueError, match="noise"):
        data.two_moons(10, np.random.default_rng(0), noise=-1)


def test_pinwheel_and_ring():
    x, y = data.pinwheel(2000, np.random.default_rng(0))
    assert x.shape == (2000, 2) and np.all(np.isfinite(x)) and set(np.unique(y)) == set(range(5))
    assert np.abs(x).max() < 8
    x, y = data.ring_of_gaussians(4000, np.random.default_rng(0), k=8, radius=2.0, std=0.1)
    assert set(np.unique(y)) == set(range(8))
    centres = 2.0 * np.c_[np.cos(2 * np.pi * y / 8), np.sin(2 * np.pi * y / 8)]
    resid = x - centres
    np.testing.assert_allclose(resid.std(axis=0), 0.1, rtol=0.05)
    with pytest.raises(ValueError, match="std"):
        data.ring_of_gaussians(5, np.random.default_rng(0), std=0)
    with pytest.raises(TypeError, match="Generator"):
        data.pinwheel(5, rng="seed")


def test_heavy_tailed_linear_has_heavy_tails():
    x, z = data.heavy_tailed_linear(20000, np.random.default_rng(0), p=5, d=2, df=3.0)
    assert x.shape == (20000, 5) and z.shape == (20000, 2)
    w = data.toy._dct_loadings(5, 2)
    np.testing.assert_allclose(w.T @ w, 4.0 * np.eye(2), atol=1e-12)
    noise = x - z @ w.T
    assert np.all(kurtosis(noise, axis=0) > 1.0)  # a Gaussian has excess kurtosis 0
    with pytest.raises(ValueError, match="d <= p"):
        data.heavy_tailed_linear(10, np.random.default_rng(0), p=2, d=3)


# ------------------------------------------------------------------------------ specs
@pytest.mark.parametrize("spec,p", [("toy", 2), ("moons", 2), ("pinwheel", 2), ("ring", 2),
                                    ("heavy-tailed", 5), ("digits-continuous", 64)])
def test_get_dataset_specs(spec, p):
    d = data.get_dataset(spec, np.random.default_rng(0), n_train=30, n_test=10)
    assert d.x_train.shape[1] == p and d.name == spec and not d.binary
    if spec != "digits-continuous":
        assert d.x_train.shape == (30, p) and d.x_test.shape == (10, p)
    again = data.get_dataset(spec, 0, n_train=30, n_test=10)
    np.testing.assert_array_equal(again.x_test, d.x_test)


def test_get_dataset_digits_mnist_and_errors(tmp_path):
    assert data.get_dataset("digits").x_train.shape == (1500, 64)
    make_mnist_dir(tmp_path)
    assert data.get_dataset(f"mnist:{tmp_path}").x_train.shape == (6, 20)
    with pytest.raises(ValueError, match="unknown dataset spec 'cifar'.*digits.*mnist:DIR.*toy"):
        data.get_dataset("cifar")
    with pytest.raises(ValueError, match="mnist:DIR"):
        data.get_dataset("mnist")
    with pytest.raises(TypeError, match="str"):
        data.get_dataset(3)
    assert set(data.DATASET_SPECS) >= {"digits", "toy", "mnist:DIR"}


def test_binary_datasets_list_says_what_the_loaders_say(tmp_path):
    # the CLI's --help and its default likelihood read BINARY_DATASETS: it must not drift
    make_mnist_dir(tmp_path)
    for spec in data.DATASET_SPECS:
        real = spec.replace("DIR", str(tmp_path))
        assert data.get_dataset(real, 0, n_train=5, n_test=5).binary == (
            spec in data.BINARY_DATASETS), spec
