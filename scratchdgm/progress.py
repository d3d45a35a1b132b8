r"""Progress bars for every stretch that takes more than a couple of seconds.

One helper, :func:`progress`, wraps ``tqdm`` (the ecosystem's progress bar: terminals,
notebooks, a time-left estimate) with the library's defaults: bars go to stderr, and they are
quiet when stderr is not a terminal (logs and CI stay clean) or when the environment variable
``SCRATCHDGM_PROGRESS=0`` is set; ``SCRATCHDGM_PROGRESS=1`` forces them on.
"""

import os

__all__ = ["progress", "progress_enabled"]


def progress_enabled(enabled=True):
    r"""Whether to draw a bar: ``False`` if the caller or ``SCRATCHDGM_PROGRESS=0`` says no,
    ``True`` if ``SCRATCHDGM_PROGRESS=1``, else ``None`` (tqdm's rule: only on a terminal)."""
    if not enabled:
        return False
    env = os.environ.get("SCRATCHDGM_PROGRESS", "").strip().lower()
    if env in ("0", "false", "no", "off"):
        return False
    if env in ("1", "true", "yes", "on"):
        return True
    return None


def progress(iterable=None, *, total=None, desc=None, unit="it", enabled=True, leave=True,
             **kwargs):
    r"""A ``tqdm`` progress bar with the library's defaults (see the module docstring).

    Parameters
    ----------
    iterable : iterable, optional
        Wrapped and iterated as usual; or None for a manual bar (``bar.update(n)``).
    total : int, optional
        Number of steps (taken from ``len(iterable)`` when it has one).
    desc : str, optional
        Text before the bar.
    unit : str
    enabled : bool
        False: no bar at all (``tqdm(disable=True)``, which still counts and can be closed).
    leave : bool
        Keep the finished bar on screen.
    **kwargs
        Passed to ``tqdm.tqdm`` (e.g. ``postfix``, ``mininterval``).

    Returns
    -------
    tqdm.tqdm
    """
    from tqdm.auto import tqdm

    enabled = progress_enabled(enabled)
    return tqdm(iterable, total=total, desc=desc, unit=unit, leave=leave,
                disable=(not enabled) if enabled is not None else None,
                dynamic_ncols=True, **kwargs)
