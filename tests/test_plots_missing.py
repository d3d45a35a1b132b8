"""The imputation figures: each writes a PNG, leaves no pyplot figure open, and refuses input
it cannot draw."""

import matplotlib.pyplot as plt
import numpy as np
import pytest

from scratchdgm.plots.missing import (
    plot_imputation_errors,
    plot_imputation_scatter,
    plot_imputed_images,
)

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def images():
    rng = np.random.default_rng(0)
    x = (rng.random((6, 16)) < 0.4).astype(float)
    missing = rng.random((6, 16)) < 0.5
    return x, missing, np.where(missing, 0.3, x)


def test_figures_are_written_and_closed(tmp_path, images):
    x, missing, imputed = images
    before = plt.get_fignums()
    paths = [
        plot_imputed_images(x, missing, imputed, tmp_path / "a.png",
                            multiple=np.stack([x, 1 - x])),
        plot_imputation_scatter(x, missing, {"mean": np.where(missing, 0.5, x),
                                             "model": imputed}, tmp_path / "b.png"),
        plot_imputation_errors({"t1": {"mean": [1.0, 1.1], "A": [0.5, 0.6], "B": [0.7, 0.8]},
                                "t2": {"mean": [1.0, 1.0], "A": [0.9, 0.9]}},
                               tmp_path / "c.png"),
    ]
    for path in paths:
        with open(path, "rb") as f:
            assert f.read(8) == PNG
    assert plt.get_fignums() == before


def test_bad_figure_input_is_refused(tmp_path, images):
    x, missing, imputed = images
    with pytest.raises(ValueError, match="square"):
        plot_imputed_images(x[:, :15], missing[:, :15], imputed[:, :15], tmp_path / "a.png")
    with pytest.raises(ValueError, match="same shape"):
        plot_imputed_images(x, missing[:5], imputed, tmp_path / "a.png")
    with pytest.raises(ValueError, match="same shape"):
        plot_imputation_scatter(x, missing, {"model": imputed[:, :3]}, tmp_path / "b.png")
    with pytest.raises(ValueError, match="empty"):
        plot_imputation_scatter(x, missing, {}, tmp_path / "b.png")
