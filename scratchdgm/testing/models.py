r"""Gradient check of a model's training objective with respect to every parameter, with the
objective's randomness held fixed (common random numbers).

A stochastic objective such as the IWAE bound :math:`\hat{\mathcal L}_K(\theta, \gamma;
\varepsilon)` is a smooth function of the parameters for *fixed* noise :math:`\varepsilon`
(the reparametrisation trick: :math:`z = \mu_\gamma(x) + \sigma_\gamma(x) \odot
\varepsilon`). So every evaluation of the objective here gets a fresh
``numpy.random.default_rng(seed)``: the same :math:`\varepsilon` at :math:`\theta + \epsilon
e_j` and :math:`\theta - \epsilon e_j`, and the central difference is the derivative of the
very function whose gradient the backward pass computed.

The protocol a model needs (VAE and IWAE follow it; so can any model of a user's):

* ``named_parameters()`` -> list of ``(name, Parameter)`` (every
  :class:`~scratchdgm.nn.Module` has it), or ``parameters()`` -> list of Parameters;
  float64 parameters, read through their ``.data`` on every call (they are moved in place);
* ``objective(x, k=..., rng=...)`` -> a scalar Tensor, the loss one training step
  differentiates, whose randomness all comes from ``rng`` (``k`` is passed only when given);
* optionally ``check_data(x)`` -> the validated batch.

A model whose objective has another signature is checked through ``loss=``: a function
``loss(model, x, rng) -> scalar Tensor``.
"""

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from scratchdgm.autodiff import Tensor, no_grad
from scratchdgm.autodiff.gradcheck import (
    GradcheckError,
    check_tolerances,
    compare_with_central_differences,
)
from scratchdgm.testing.checks import GradientCheckFailure, driver_settings

__all__ = ["check_model_gradients", "ModelGradientReport"]


class ModelGradientReport(list):
    r"""What :func:`check_model_gradients` compared: one dict per parameter, with ``name``,
    ``shape``, ``checks`` (entries or directions compared), ``projected`` (directions were
    used), ``max_error`` (largest :math:`|g_{\text{analytic}} - g_{\text{numeric}}|`) and
    ``max_ratio`` (largest error over its tolerance; below 1 for a pass). Prints as a table."""

    def __str__(self):
        lines = [f"{'parameter':<32} {'shape':<12} {'checked':<16} {'max |error|':>12} "
                 f"{'/ tolerance':>12}"]
        for r in self:
            how = f"{r['checks']} directions" if r["projected"] else f"{r['checks']} entries"
            lines.append(f"{r['name']:<32} {str(r['shape']):<12} {how:<16} "
                         f"{r['max_error']:>12.3g} {r['max_ratio']:>12.3g}")
        return "\n".join(lines)


def _named_parameters(model, parameters):
    if hasattr(model, "named_parameters"):
        named = list(model.named_parameters())
    elif hasattr(model, "parameters"):
        named = [(f"parameters()[{i}]", p) for i, p in enumerate(model.parameters())]
    else:
        raise TypeError(f"check_model_gradients: {type(model).__name__} has neither "
                        f"named_parameters() nor parameters(); a model needs one of them")
    if parameters is not None:
        wanted = [parameters] if isinstance(parameters, str) else list(parameters)
        known = {n for n, _ in named}
        missing = [w for w in wanted if w not in known]
        if missing:
            raise ValueError(f"check_model_gradients: no parameters named {missing}; the model "
                             f"has {sorted(known)}")
        named = [(n, p) for n, p in named if n in wanted]
    if not named:
        raise ValueError("check_model_gradients: the model has no parameters to check")
    for name, p in named:
        if not isinstance(p, Tensor):
            raise TypeError(f"check_model_gradients: parameter {name!r} is a "
                            f"{type(p).__name__}, expected a Parameter (a Tensor)")
        if p.dtype != np.float64:
            raise ValueError(f"check_model_gradients: parameter {name!r} has dtype {p.dtype}; "
                             f"central differences need float64 (eps = 1e-6 is below float32 "
                             f"resolution): build the model with dtype=np.float64")
    return named


def _objective_call(model, loss, k):
    if loss is not None:
        if not callable(loss):
            raise TypeError(f"check_model_gradients: loss must be callable as loss(model, x, "
                            f"rng), got {type(loss).__name__}")
        return lambda x, rng: loss(model, x, rng)
    if not hasattr(model, "objective"):
        raise TypeError(f"check_model_gradients: {type(model).__name__} has no objective(x, k, "
                        f"rng); pass loss=lambda model, x, rng: <a scalar Tensor>")
    if k is None:
        return lambda x, rng: model.objective(x, rng=rng)
    return lambda x, rng: model.objective(x, k=k, rng=rng)


def _scalar(value, where):
    if not isinstance(value, Tensor):
        raise TypeError(f"check_model_gradients: {where} returned a {type(value).__name__}; "
                        f"expected a scalar Tensor")
    if value.size != 1:
        raise ValueError(f"check_model_gradients: {where} returned a Tensor of shape "
                         f"{value.shape}; expected a scalar (reduce over the batch: the loss "
                         f"of one training step)")
    return value


def _check_at(model, named, objective, x, seed, eps, rtol, atol, max_elements, n_directions,
              where):
    def evaluate():
        with no_grad():
            return float(_scalar(objective(x, np.random.default_rng(seed)), where).item())

    first, second = evaluate(), evaluate()
    if not (first == second or (np.isnan(first) and np.isnan(second))):
        raise ValueError(f"check_model_gradients: two evaluations of {where} with the same "
                         f"rng seed gave {first!r} and {second!r}; all its randomness must come "
                         f"from the rng argument (no global or stored random state), or the "
                         f"finite differences compare different functions")
    if not np.isfinite(first):
        raise ValueError(f"check_model_gradients: {where} is {first} at this point")
    if atol is None:
        # L sums many terms: its rounding, ~1e-16 |L|, over the step eps, is the floor of the
        # error of a central difference (~1e-10 |L| at eps = 1e-6); ten times that
        atol = 1e-9 * max(1.0, abs(first))
    params = [p for _, p in named]
    saved_grads = [p.grad for p in params]
    try:
        for p in params:
            p.grad = None
        value = _scalar(objective(x, np.random.default_rng(seed)), where)
        if not value.requires_grad:
            raise ValueError(f"check_model_gradients: {where} does not depend on any "
                             f"parameter (no graph was recorded); is it computed under no_grad?")
        value.backward()
        analytic = [np.zeros(p.shape) if p.grad is None else np.array(p.grad, np.float64)
                    for p in params]
    finally:
        for p, g in zip(params, saved_grads):
            p.grad = g
    names = [f"parameter {n!r}" for n, _ in named]
    stats = compare_with_central_differences(
        evaluate, [p.data for p in params], analytic, names=names, eps=eps, rtol=rtol,
        atol=atol, max_elements=max_elements, n_directions=n_directions,
        rng=np.random.default_rng(seed + 1))
    report = ModelGradientReport()
    for (n, p), s in zip(named, stats):
        report.append(dict(s, name=n, shape=tuple(p.shape)))
    return report


def check_model_gradients(model, x, *, k=None, seed=0, loss=None, parameters=None, eps=1e-6,
                          rtol=1e-5, atol=None, max_elements=64, n_directions=4,
                          max_examples=5):
    r"""Check the gradient of a model's objective with respect to every parameter against
    central differences, with the objective's randomness held fixed.

    Parameters
    ----------
    model : object
        Following the protocol of this module: ``named_parameters()`` (or ``parameters()``)
        and ``objective(x, k=..., rng=...)`` returning a scalar Tensor (or give ``loss``).
    x : array_like, or a Hypothesis strategy of them
        The batch, e.g. ``X[:3]``; or a strategy such as
        ``scratchdgm.testing.strategies.batches(64)``, in which case ``max_examples`` batches
        are drawn, and a failing one is shrunk to a minimal one. Passed through
        ``model.check_data`` when the model has it and ``loss`` is not given.
    k : int, optional
        Passed to the objective as ``k=`` (importance samples); omitted when None.
    seed : int, default 0
        Every evaluation of the objective gets ``numpy.random.default_rng(seed)``: common
        random numbers.
    loss : callable, optional
        ``loss(model, x, rng) -> scalar Tensor``, used instead of ``model.objective``.
    parameters : str or list of str, optional
        Check only these (names of ``named_parameters``).
    eps, rtol : float
        Step and relative tolerance, as in :func:`scratchdgm.gradcheck`.
    atol : float, optional
        Absolute tolerance; default :math:`10^{-9} \max(1, |L|)`: an objective that sums many
        terms (pixels, samples, a batch) is evaluated with rounding error about
        :math:`10^{-16} |L|`, and a central difference divides it by :math:`\epsilon`.
    max_elements : int, default 64
        Parameters with at most this many entries are checked entry by entry (two evaluations
        of the objective each); bigger ones along ``n_directions`` random unit directions
        :math:`v`, :math:`\langle \nabla L, v\rangle` against the difference along :math:`v`.
    n_directions : int, default 4
    max_examples : int, default 5
        Batches drawn when ``x`` is a strategy.

    Returns
    -------
    ModelGradientReport
        Per parameter: what was compared and the largest error (``print`` it for a table). When
        ``x`` is a strategy, the report of the last batch.

    Raises
    ------
    GradientCheckFailure
        ``check='gradcheck'``, ``argument`` the parameter's name, ``where`` the index or
        direction, ``analytic`` and ``numeric`` (and the minimal batch, when drawn).
    ValueError, TypeError
        A model outside the protocol: float32 parameters, an objective that is not a scalar, or
        whose value changes between two calls with the same seed (randomness not taken from
        ``rng``).

    Notes
    -----
    The parameters are moved in place and put back; their ``.grad`` is left as it was.

    Examples
    --------
    >>> import numpy as np, scratchdgm as sd
    >>> from scratchdgm.testing import check_model_gradients, strategies as S
    >>> model = sd.IWAE(8, latent_dim=2, hidden=(4,), k=3, backend="numpy")
    >>> x = (np.random.default_rng(0).random((2, 8)) < 0.5).astype(float)
    >>> report = check_model_gradients(model, x)          # one batch
    >>> report = check_model_gradients(model, S.batches(8))  # generated batches, shrunk on failure
    >>> print(report)                                     # doctest: +SKIP
    parameter                        shape        checked           max |error|  / tolerance
    encoder.layers.0.weight          (8, 4)       32 entries            1.2e-10       0.0043
    ...
    """
    check_tolerances(eps, rtol, 0.0 if atol is None else atol, "check_model_gradients")
    named = _named_parameters(model, parameters)
    objective = _objective_call(model, loss, k)
    where = "loss(model, x, rng)" if loss is not None else f"{type(model).__name__}.objective"
    validate = getattr(model, "check_data", None) if loss is None else None
    options = dict(seed=seed, eps=eps, rtol=rtol, atol=atol, max_elements=max_elements,
                   n_directions=n_directions, where=where)

    def at(batch):
        batch = validate(batch) if validate is not None else batch
        try:
            return _check_at(model, named, objective, batch, **options)
        except GradcheckError as exc:
            raise GradientCheckFailure(
                f"{where}: {exc}\nbatch x:\n{_describe_batch(batch)}", check="gradcheck",
                inputs=[np.array(batch)] if not isinstance(batch, tuple) else list(batch),
                params={"k": k, "seed": seed}, argument=exc.argument, where=exc.where,
                analytic=exc.analytic, numeric=exc.numeric, tolerance=exc.tolerance) from None

    if not isinstance(x, st.SearchStrategy):
        return at(x)

    reports = []

    @driver_settings(max_examples)
    @given(x)
    def run(batch):
        reports.append(at(batch))

    try:
        run()
    except GradientCheckFailure as exc:
        raise GradientCheckFailure(
            f"gradient check of {where} failed; Hypothesis shrank the batch to this minimal "
            f"one:\n{exc}", check=exc.check, inputs=exc.inputs, params=exc.params, minimal=True,
            argument=exc.argument, where=exc.where, analytic=exc.analytic, numeric=exc.numeric,
            tolerance=exc.tolerance) from None
    return reports[-1]


def _describe_batch(batch):
    with np.printoptions(precision=17, threshold=10_000, linewidth=100):
        if isinstance(batch, tuple):
            return "\n".join(f"  [{i}] {np.asarray(b)!r}" for i, b in enumerate(batch))
        return f"  {np.asarray(batch)!r}"
