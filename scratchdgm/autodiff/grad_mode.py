r"""Whether operations are recorded for the backward pass.

Inside ``with scratchdgm.no_grad():`` ops compute their results without building a graph: the
right mode for evaluation (importance-sampled log-likelihoods with K = 5000), sampling, and the
optimiser's in-place updates. The flag is process-wide, like PyTorch's default grad mode.
"""

import contextlib

enabled = True


def is_grad_enabled():
    """Return True when new operations record a graph for the backward pass."""
    return enabled


class no_grad(contextlib.ContextDecorator):
    """Context manager (or decorator) that turns graph recording off, restoring it on exit.

    Examples
    --------
    >>> import scratchdgm as sd
    >>> w = sd.tensor([1.0, 2.0], requires_grad=True)
    >>> with sd.no_grad():
    ...     y = (w * 3).sum()
    >>> y.requires_grad
    False
    """

    def __init__(self):
        # a stack, not one slot: a decorated function may call itself recursively
        self._previous = []

    def __enter__(self):
        global enabled
        self._previous.append(enabled)
        enabled = False
        return self

    def __exit__(self, *exc):
        global enabled
        enabled = self._previous.pop()
        return False
