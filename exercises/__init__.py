"""Course exercises (see README.md); shared helper for their tests."""


def attempted(fn, *args):
    """Whether the student has written ``fn``: calling it on ``args`` does not raise the stub's
    NotImplementedError (any other outcome, even an error, means there is an attempt to check)."""
    try:
        fn(*args)
    except NotImplementedError:
        return False
    except Exception:
        return True
    return True
