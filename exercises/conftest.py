r"""The exercise checks: a check that runs into a stub the student has not replaced yet fails
with "Exercise NN not attempted yet: <what to write, where to read>" (the message of the stub,
:func:`scratchdgm.cli._exercises.stub_failure`), instead of a NotImplementedError traceback; a
check that runs into the stub of *another* exercise says which one it needs."""

import functools

import pytest

from scratchdgm.cli._exercises import MARKER, STUB_PREFIX, stub_failure


class _StubReached(BaseException):
    """A stub raised inside a Hypothesis test. Not an ``Exception``, so Hypothesis stops at once
    instead of shrinking an example that fails whatever it is (seconds per test, for nothing)."""


def _stop_at_stubs(inner):
    @functools.wraps(inner)
    def guarded(*args, **kwargs):
        try:
            return inner(*args, **kwargs)
        except NotImplementedError as exc:
            if STUB_PREFIX.search(str(exc)):
                raise _StubReached(str(exc)) from exc
            raise

    guarded._stops_at_stubs = True
    return guarded


def pytest_collection_modifyitems(items):
    for item in items:
        handle = getattr(getattr(item, "obj", None), "hypothesis", None)
        if handle is not None and not getattr(handle.inner_test, "_stops_at_stubs", False):
            handle.inner_test = _stop_at_stubs(handle.inner_test)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    try:
        return (yield)
    except BaseException as exc:
        if not isinstance(exc, (Exception, _StubReached)):
            raise  # KeyboardInterrupt, pytest's own skip / fail
        own = [m.group(1) for mark in item.iter_markers() for m in [MARKER.match(mark.name)] if m]
        message = stub_failure(exc, own)
        if message is None:
            raise
    # outside the except block: the report shows this message alone, not the stub's traceback
    pytest.fail(message, pytrace=False)
