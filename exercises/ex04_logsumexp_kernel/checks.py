r"""Checkers for ex04: they call the student's functions on generated inputs and compare with the
library's NumPy reference (:func:`scratchdgm.kernels.reference.logsumexp` and
:func:`scratchdgm.kernels.reference.logsumexp_backward`), raising AssertionError with a hint when
something is off."""

import math

import numpy as np

from scratchdgm.kernels import reference

INF = np.inf


def library_logsumexp(a):
    """The library's log-sum-exp over axis 0 (the solution of part 1)."""
    return reference.logsumexp(np.asarray(a, dtype=np.float64))


def library_normalised_weights(a, lse):
    """The library's normalised importance weights (the solution of part 2)."""
    a = np.asarray(a, dtype=np.float64)
    return reference.logsumexp_backward(a, np.asarray(lse, dtype=np.float64),
                                        np.ones(a.shape[1]))


def _call(fn, *args):
    copies = [np.array(x, dtype=np.float64, copy=True) for x in args]
    with np.errstate(all="ignore"):
        out = np.asarray(fn(*copies), dtype=np.float64)
    for before, after in zip(args, copies):
        if not np.array_equal(np.asarray(before, dtype=np.float64), after, equal_nan=True):
            raise AssertionError("your function changed its input array in place: work on "
                                 "copies or on running scalars")
    return out


def _same(got, want, rtol=1e-10):
    return (got.shape == want.shape
            and np.array_equal(np.isfinite(got), np.isfinite(want))
            and np.array_equal(got[~np.isfinite(want)], want[~np.isfinite(want)])
            and np.allclose(got[np.isfinite(want)], want[np.isfinite(want)], rtol=rtol,
                            atol=rtol))


def _edge_columns():
    # columns: all -inf | some -inf | huge positive | huge negative | +inf | one sample wins
    return np.array([[-INF, 0.0, 800.0, -1000.0, 1.0, 0.0],
                     [-INF, -INF, 801.0, -1001.0, INF, -50.0],
                     [-INF, 1.0, 799.0, -1002.0, 2.0, -60.0]])


def check_logsumexp(fn):
    r"""Check ``fn(a) -> (B,)``, the log-sum-exp over axis 0, against the reference."""
    rng = np.random.default_rng(0)
    a = rng.normal(size=(7, 5)) * 2.0
    got, want = _call(fn, a), library_logsumexp(a)
    if got.shape != want.shape:
        hint = ""
        if got.shape == (7,):
            hint = (": did you reduce over axis 1 (the data points) instead of axis 0 (the K "
                    "samples)?")
        raise AssertionError(f"your logsumexp_over_k returned shape {got.shape}, expected "
                             f"{want.shape} for a of shape (K, B) = {a.shape}{hint}")
    if np.allclose(got, want - math.log(7), rtol=1e-9):
        raise AssertionError("your result is log((1/K) sum_k exp(a_k)), the IWAE bound: this "
                             "function is the plain log-sum-exp (no 1/K)")
    if not _same(got, want):
        raise AssertionError(f"your logsumexp_over_k gives {got}, expected {want}")

    edge = _edge_columns()
    got, want = _call(fn, edge), library_logsumexp(edge)
    names = ["an all -inf column", "a column with some -inf entries",
             "log-weights near +800", "log-weights near -1000", "a column holding +inf",
             "a column where one sample dominates"]
    hints = ["its LSE is -inf (no mass); with m = -inf, a - m is -inf - (-inf) = NaN: treat "
             "that column on its own",
             "exp(-inf - m) is 0: the -inf entries add nothing",
             "exp(800) overflows: keep a running maximum and sum exp(a - m)",
             "exp(-1000) underflows to 0 and log(0) = -inf: sum exp(a - m) with the maximum m",
             "the LSE is +inf; inf - inf is NaN: a +inf maximum gives +inf directly",
             "LSE = max + log(1 + tiny terms)"]
    for j, (name, hint) in enumerate(zip(names, hints)):
        if not _same(got[j:j + 1], want[j:j + 1]):
            raise AssertionError(f"for {name} your logsumexp_over_k gives {got[j]}, expected "
                                 f"{want[j]}: {hint}")

    # many samples per column, with -inf sprinkled in and a maximum that rises late
    a = rng.normal(scale=30.0, size=(300, 20))
    a[rng.random(a.shape) < 0.2] = -INF
    a[250, :5] += 500.0
    got, want = _call(fn, a), library_logsumexp(a)
    if not _same(got, want):
        j = int(np.argmax(np.abs(np.nan_to_num(got - want, nan=np.inf))))
        raise AssertionError(f"with K = 300 samples whose maximum rises late (row 250) your "
                             f"result differs in column {j}: {got[j]} instead of {want[j]}; "
                             f"when a new maximum v arrives, rescale the running sum by "
                             f"exp(m - v)")
    return True


def check_normalised_weights(fn):
    r"""Check ``fn(a, lse) -> (K, B)``, the normalised importance weights, against the
    reference."""
    rng = np.random.default_rng(1)
    a = rng.normal(size=(6, 4)) * 3.0
    lse = library_logsumexp(a)
    got, want = _call(fn, a, lse), library_normalised_weights(a, lse)
    if got.shape != want.shape:
        raise AssertionError(f"your normalised_weights returned shape {got.shape}, expected "
                             f"{want.shape}: one weight per entry of a")
    if np.allclose(got.sum(axis=1), 1.0) and not np.allclose(got.sum(axis=0), 1.0):
        raise AssertionError("your weights sum to 1 along axis 1 (over the data points): "
                             "normalise over axis 0, the K samples of each point")
    if np.allclose(got, np.exp(a)):
        raise AssertionError("your weights are exp(a): divide by the column's total, i.e. "
                             "subtract lse before exponentiating")
    if not _same(got, want, rtol=1e-10):
        raise AssertionError(f"your normalised_weights give\n{got}\nexpected\n{want}\n"
                             f"(exp(a[k, b] - lse[b]))")
    if not np.allclose(got.sum(axis=0), 1.0, rtol=1e-12):
        raise AssertionError(f"your weights' columns sum to {got.sum(axis=0)}, expected 1")

    edge = _edge_columns()[:, [0, 1, 2, 3, 5]]  # the +inf column has no finite weights
    lse = library_logsumexp(edge)
    got, want = _call(fn, edge, lse), library_normalised_weights(edge, lse)
    if np.isnan(got[:, 0]).any():
        raise AssertionError("for an all -inf column (lse = -inf) your weights are NaN: there "
                             "is no mass to move, so they are 0")
    if not _same(got, want, rtol=1e-10):
        raise AssertionError(f"on the edge cases (-inf entries, log-weights near +800 and "
                             f"-1000) your weights are\n{got}\nexpected\n{want}")
    return True


def check_weights_are_the_gradient(logsumexp_fn, weights_fn, h=1e-6):
    r"""Property: the weights are the derivative of the log-sum-exp. Central differences of
    ``logsumexp_fn`` at a few entries must equal ``weights_fn`` there (Burda et al. 2016,
    eq. 14: the IWAE gradient weighs each sample by its normalised weight)."""
    rng = np.random.default_rng(2)
    a = rng.normal(size=(5, 3)) * 2.0
    w = _call(weights_fn, a, _call(logsumexp_fn, a))
    for k, b in [(0, 0), (2, 1), (4, 2), (1, 2)]:
        up, down = a.copy(), a.copy()
        up[k, b] += h
        down[k, b] -= h
        numeric = (_call(logsumexp_fn, up)[b] - _call(logsumexp_fn, down)[b]) / (2 * h)
        if not math.isclose(numeric, w[k, b], rel_tol=1e-5, abs_tol=1e-8):
            raise AssertionError(f"d LSE[{b}] / d a[{k}, {b}] by central differences is "
                                 f"{numeric:.8f}, your weight is {w[k, b]:.8f}: the weights "
                                 f"must be the gradient of the log-sum-exp")
    return True
