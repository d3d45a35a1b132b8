"""The linear-model figures: each writes a real PNG of a sensible size, returns its path, leaves no
pyplot figure open, and refuses input it cannot draw; the demo writes all three and its table."""

import struct

import matplotlib.pyplot as plt
import numpy as np
import pytest
from sklearn.datasets import load_digits
from threadpoolctl import threadpool_limits

from scratchdgm import PPCA, FactorAnalysis
from scratchdgm.cli.demo import linear as linear_demo
from scratchdgm.plots import linear as plots

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(autouse=True, scope="module")
def one_blas_thread():
    with threadpool_limits(limits=1):
        yield


def png_size(path):
    with open(path, "rb") as f:
        head = f.read(24)
    assert head[:8] == PNG_MAGIC, f"{path} is not a PNG"
    return struct.unpack(">II", head[16:24])  # IHDR width, height


@pytest.fixture(scope="module")
def toy():
    X = linear_demo.toy_4d(300)
    return X, {"PPCA": PPCA(1).fit(X), "FA": FactorAnalysis(1).fit(X)}


@pytest.fixture(scope="module")
def digit_models():
    X = load_digits().data[:600] / 16.0
    return {"FA": FactorAnalysis(10, max_iter=50, tol=1e-3).fit(X), "PPCA": PPCA(10).fit(X)}


def test_geometry(tmp_path, toy):
    X, models = toy
    before = plt.get_fignums()
    out = plots.plot_geometry(X, models, tmp_path / "geo.png")
    assert out == str(tmp_path / "geo.png")
    w, h = png_size(out)
    assert w > 600 and h > 300
    assert plt.get_fignums() == before


def test_geometry_other_dims_and_2d_data(tmp_path, toy):
    X, models = toy
    png_size(plots.plot_geometry(X, models, tmp_path / "geo13.png", dims=(0, 2)))
    X2 = X[:, :2]
    png_size(plots.plot_geometry(X2, {"PPCA": PPCA(1).fit(X2)}, tmp_path / "sub" / "geo2.png"))


def test_geometry_rejects_bad_input(tmp_path, toy):
    X, models = toy
    with pytest.raises(ValueError, match="n_components=1"):
        plots.plot_geometry(X, {"PPCA d=2": PPCA(2).fit(X)}, tmp_path / "g.png")
    with pytest.raises(ValueError, match="dims must be two different columns"):
        plots.plot_geometry(X, models, tmp_path / "g.png", dims=(0, 0))
    with pytest.raises(ValueError, match="not fitted"):
        plots.plot_geometry(X, {"x": PPCA(1)}, tmp_path / "g.png")
    with pytest.raises(ValueError, match=".png"):
        plots.plot_geometry(X, models, tmp_path / "g.pdf")


def test_loglike_curves(tmp_path, digit_models):
    fa = digit_models["FA"]
    before = plt.get_fignums()
    out = plots.plot_loglike_curves(
        {"FA": fa.loglike_, "flat": np.full(5, fa.loglike_[-1])}, tmp_path / "ll.png",
        references={"FA": {"reference": fa.loglike_[-1] + 0.01}})
    w, h = png_size(out)
    assert w > 900 and h > 300
    assert plt.get_fignums() == before


def test_loglike_curves_rejects_bad_input(tmp_path):
    with pytest.raises(ValueError, match="non-empty dict"):
        plots.plot_loglike_curves({}, tmp_path / "ll.png")
    with pytest.raises(ValueError, match="finite"):
        plots.plot_loglike_curves({"a": [1.0, np.nan]}, tmp_path / "ll.png")
    with pytest.raises(ValueError, match="unknown curves"):
        plots.plot_loglike_curves({"a": [1.0, 2.0]}, tmp_path / "ll.png",
                                  references={"b": {"r": 1.0}})


def test_loadings(tmp_path, digit_models):
    before = plt.get_fignums()
    out = plots.plot_loadings(digit_models, tmp_path / "load.png")
    w, h = png_size(out)
    assert w > 1000 and h > 250
    assert plt.get_fignums() == before


def test_loadings_rejects_wrong_image_shape(tmp_path, digit_models):
    with pytest.raises(ValueError, match="cannot be shown as 7x7"):
        plots.plot_loadings(digit_models, tmp_path / "load.png", image_shape=(7, 7))


def test_demo_writes_figures_and_table(tmp_path):
    text = linear_demo.run(tmp_path, quick=True)
    for name in ("linear_geometry.png", "linear_em_loglike.png", "linear_loadings.png"):
        png_size(tmp_path / name)
        assert name in text
    for row in ("FA (EM)", "PPCA (closed form)", "sklearn PCA", "sklearn FactorAnalysis"):
        assert row in text
    # the table's PPCA closed form and sklearn's rescaled PCA agree (printed to 4 decimals)
    lines = {line.split("  ")[0].strip(): line.split() for line in text.splitlines()}
    ours = [ln for k, ln in lines.items() if k.startswith("PPCA (closed form)")][0]
    theirs = [ln for k, ln in lines.items() if k.startswith("sklearn PCA score, rescaled")][0]
    assert ours[-4:-2] == theirs[-4:-2]
