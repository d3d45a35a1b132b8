r"""Figure helpers shared by the experiments: matplotlib on its Agg backend (no window), a row
of panels, and one way to write the PNG (the experiment's ``NAME``, so file names are stable)."""

import pathlib

__all__ = ["panels", "save"]


def panels(n, *, width=4.6, height=3.6):
    r"""A figure with ``n`` panels side by side; returns ``(fig, axes)`` with ``axes`` a list."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, n, figsize=(width * n, height), squeeze=False)
    return fig, list(axes[0])


def save(fig, out_dir, name):
    r"""Write ``fig`` to ``out_dir/name.png`` (folder created if missing), close it, return the
    path."""
    import matplotlib.pyplot as plt

    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.png"
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path

