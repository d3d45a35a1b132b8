r"""The exercise checkers catch plausible mistakes and say which (the hint of each is matched).

Each wrong answer below is a mistake a student could make; the checks of its exercise must raise
AssertionError with the hint the page promises. The right answers -- the library's solutions --
are run by the exercises themselves (``exercises/test_exNN_*.py``).
"""

import math

import numpy as np
import pytest
from scipy import special

from scratchdgm import estimators
from scratchdgm.autodiff import Function, ops
from scratchdgm.autodiff.tensor import Tensor
from scratchdgm.distributions import kl_divergence
from scratchdgm.kernels import reference
from scratchdgm.models.deep import bounds, miwae
from scratchdgm.models.linear import em, ppca

from exercises.checks import (
    ex01_autodiff_ops as c01,
    ex02_backward_pass as c02,
    ex03_linear_layer as c03,
    ex04_adam as c04,
    ex05_factor_analysis_em as c05,
    ex06_ppca_closed_form as c06,
    ex07_monte_carlo as c07,
    ex08_gaussian_kl as c08,
    ex09_logsumexp as c09,
    ex10_iwae_bound as c10,
    ex11_score_function as c11,
    ex12_reparametrisation as c12,
    ex13_bernoulli_kernel as c13,
    ex14_cuda_logsumexp as c14,
    ex15_miwae_imputation as c15,
)


def _op(forward, backward):
    return type("Op", (Function,), {"forward": staticmethod(forward),
                                    "backward": staticmethod(backward)})


# ----------------------------------------------------------------------------- 01
def _save_y(f):
    def forward(ctx, x):
        y = f(x)
        ctx.save_for_backward(x, y)
        return y
    return forward


@pytest.mark.parametrize("name, op, hint", [
    ("tanh", _op(_save_y(np.tanh), lambda ctx, g: g * (1 - ctx.saved[0] ** 2)), "1 - x\\^2"),
    ("tanh", _op(_save_y(np.tanh), lambda ctx, g: 1 - ctx.saved[1] ** 2), "forgot to multiply"),
    ("tanh", _op(_save_y(np.tanh), lambda ctx, g: g * (1 - ctx.saved[1])), "y squared"),
    ("sigmoid", _op(_save_y(special.expit), lambda ctx, g: g * ctx.saved[1]), "y \\(1 - y\\)"),
    ("sigmoid", _op(_save_y(special.expit), lambda ctx, g: -g * ctx.saved[1] * (1 - ctx.saved[1])),
     "wrong sign"),
])
def test_ex01_rejects_wrong_derivatives(name, op, hint):
    x = np.linspace(-2, 2, 7)
    with pytest.raises(AssertionError, match=hint):
        c01.check_elementwise_backward(op, name, x, np.linspace(0.5, 2, 7))


def test_ex01_rejects_an_overflowing_or_wrong_sigmoid():
    naive = _op(_save_y(lambda x: 1 / (1 + np.exp(-x))), ops.Sigmoid.backward)
    with pytest.raises(AssertionError, match="overflows"):
        c01.check_sigmoid_is_stable(naive)
    flipped = _op(_save_y(lambda x: special.expit(-x)), ops.Sigmoid.backward)
    with pytest.raises(AssertionError, match="sigmoid\\(-x\\)"):
        c01.check_elementwise_forward(flipped, "sigmoid", np.linspace(-3, 3, 5))
    float64 = _op(_save_y(lambda x: np.tanh(x.astype(np.float64))), ops.Tanh.backward)
    with pytest.raises(AssertionError, match="keep the input's dtype"):
        c01.check_elementwise_forward(float64, "tanh", np.ones(3, np.float32))


def _matmul_no_transpose(ctx, g):
    a, b = ctx.saved
    return g @ b, a @ g


def _matmul_2d_only(ctx, g):
    a, b = ctx.saved
    return g @ np.swapaxes(b, -1, -2), np.swapaxes(a, -1, -2) @ g


@pytest.mark.parametrize("backward, shapes, hint", [
    (_matmul_no_transpose, ((3, 3), (3, 3)), "forgot to transpose"),
    (_matmul_no_transpose, ((3, 4), (4, 2)), "LAST TWO axes"),
    (_matmul_2d_only, ((4,), (4, 3)), "1-D a"),
    (lambda ctx, g: (None, None), ((3, 4), (4, 2)), "returned None"),
])
def test_ex01_rejects_wrong_matmul_backwards(backward, shapes, hint):
    op = _op(ops.MatMul.forward, backward)
    with pytest.raises(AssertionError, match=hint):
        c01.check_matmul_backward(op, *shapes)


# ----------------------------------------------------------------------------- 02
def _recursive_order(t):
    out = []

    def visit(node):
        for p in node._parents:
            if p is not None and p.requires_grad:
                visit(p)
        out.append(node)  # no visited set: shared nodes come twice

    visit(t)
    return out


def _order_with_constants(t):
    order = Tensor._topological_order(t)
    extra = [p for n in order for p in n._parents if p is not None and not p.requires_grad]
    return extra[:1] + order


def _parents_after_children(t):
    return list(reversed(Tensor._topological_order(t)[:-1])) + [t]


@pytest.mark.parametrize("order, hint", [
    (_recursive_order, "more than once"),
    (_order_with_constants, "constant k"),
    (_parents_after_children, "after its child"),
])
def test_ex02_rejects_wrong_orders(order, hint):
    with pytest.raises(AssertionError, match=hint):
        c02.check_topological_order(order)


def _per_path_backward(t, grad):
    # the chain rule path by path: right values, exponential work
    def push(node, g):
        if node._fn is None:
            node.grad = g if node.grad is None else node.grad + g
            return
        pgs = node._fn.backward(node._ctx, g)
        pgs = pgs if isinstance(pgs, tuple) else (pgs,)
        for p, pg in zip(node._parents, pgs):
            if p is not None and pg is not None and p.requires_grad:
                push(p, pg)
    push(t, np.asarray(grad))


def _overwriting_backward(t, grad):
    keep = [n for n in Tensor._topological_order(t) if n._fn is None]
    old = {id(n): n.grad for n in keep}
    t.backward(grad)
    for n in keep:
        if old[id(n)] is not None:
            n.grad = n.grad - old[id(n)]  # forget what was there: overwrite, not accumulate


def _no_unbroadcast(t, grad):
    # the sweep without unbroadcast: a broadcast parent gets the child's shape
    grads = {id(t): np.asarray(grad)}
    for node in reversed(Tensor._topological_order(t)):
        g = grads.pop(id(node), None)
        if g is None:
            continue
        if node._fn is None:
            node.grad = g if node.grad is None else node.grad + g
            continue
        pgs = node._fn.backward(node._ctx, g)
        pgs = pgs if isinstance(pgs, tuple) else (pgs,)
        for p, pg in zip(node._parents, pgs):
            if p is not None and pg is not None and p.requires_grad:
                grads[id(p)] = grads[id(p)] + pg if id(p) in grads else pg


@pytest.mark.parametrize("backward, check, hint", [
    (_per_path_backward, c02.check_backward, "once per path|ONCE"),
    (_overwriting_backward, c02.check_backward, "ADD to x.grad"),
    (_no_unbroadcast, c02.check_broadcast_and_dtype, "unbroadcast"),
])
def test_ex02_rejects_wrong_backward_passes(backward, check, hint):
    with pytest.raises(AssertionError, match=hint):
        check(backward)


# ----------------------------------------------------------------------------- 03
def _linear(bias_outside=False, no_bias=False, no_act=False, flat=False):
    def linear(x, W, b, act):
        n = W.shape[0]
        a = x.reshape(-1, n) @ W
        f = c03.ACTS[None if no_act else act]
        if bias_outside:
            y = f(a) + (0 if b is None else b)
        else:
            y = f(a + (0 if (b is None or no_bias) else b))
        return y.astype(x.dtype) if flat else y.reshape(x.shape[:-1] + (W.shape[1],)).astype(x.dtype)
    return linear


@pytest.mark.parametrize("linear, act, hint", [
    (_linear(no_bias=True), "tanh", "forgot the bias"),
    (_linear(no_act=True), "tanh", "forgot the activation"),
    (_linear(bias_outside=True), "sigmoid", "INSIDE the activation"),
    (_linear(flat=True), None, "reshape back"),
])
def test_ex03_rejects_wrong_forwards(linear, act, hint):
    rng = np.random.default_rng(0)
    x, W, b = rng.normal(size=(2, 3, 4)), rng.normal(size=(4, 5)), rng.normal(size=5)
    with pytest.raises(AssertionError, match=hint):
        c03.check_forward(linear, x, W, b, act)


def _backward(transpose_w=False, no_act=False, bias_rows=False):
    def linear_backward(x, W, y, grad, act, need_x_grad=True):
        n, m = W.shape
        delta = grad.reshape(-1, m)
        if not no_act:
            delta = reference.activation_grad(y.reshape(-1, m), delta, act)
        gW = x.reshape(-1, n).T @ delta
        gb = delta.reshape(grad.shape).sum(axis=0) if bias_rows else delta.sum(axis=0)
        gx = (delta @ W.T).reshape(x.shape) if need_x_grad else None
        return gx, (gW.T if transpose_w else gW), gb
    return linear_backward


@pytest.mark.parametrize("backward, hint", [
    (_backward(transpose_w=True), "transposed"),
    (_backward(no_act=True), "activation's derivative"),
    (_backward(bias_rows=True), "EVERY row"),
])
def test_ex03_rejects_wrong_backwards(backward, hint):
    rng = np.random.default_rng(1)
    x, W, b = rng.normal(size=(2, 3, 4)), rng.normal(size=(4, 3)), rng.normal(size=3)
    with pytest.raises(AssertionError, match=hint):
        c03.check_backward(backward, x, W, b, "tanh", rng.normal(size=(2, 3, 3)))


def test_ex03_rejects_a_derivative_taken_at_the_output():
    wrong = lambda y, g, act: g * (1 - np.tanh(y) ** 2)  # noqa: E731  (tanh' at y, not a)
    a = np.linspace(-2, 2, 6)
    with pytest.raises(AssertionError, match="OUTPUT"):
        c03.check_activation_grad(wrong, "tanh", a, np.ones(6))


# ----------------------------------------------------------------------------- 04
def _adam(bias_correction=True, eps_inside=False, sign=1, in_place=True, persist=True):
    def adam_update(data, grad, m, v, lr, beta1, beta2, eps, step, weight_decay=0.0):
        g = grad + weight_decay * data
        mm, vv = (m, v) if persist else (np.zeros_like(m), np.zeros_like(v))
        mm *= beta1
        mm += (1 - beta1) * g
        vv *= beta2
        vv += (1 - beta2) * g * g
        mh = mm / (1 - beta1 ** step) if bias_correction else mm
        vh = vv / (1 - beta2 ** step) if bias_correction else vv
        den = np.sqrt(vh + eps) if eps_inside else np.sqrt(vh) + eps
        new = data - sign * lr * mh / den
        if not in_place:
            return new
        data[...] = new
    return adam_update


@pytest.mark.parametrize("adam, check, hint", [
    (_adam(bias_correction=False), c04.check_first_step, "bias correction"),
    (_adam(eps_inside=True), c04.check_first_step, "outside the square root"),
    (_adam(sign=-1), c04.check_first_step, "wrong sign"),
    (_adam(in_place=False), c04.check_first_step, "IN PLACE"),
    (_adam(persist=False), c04.check_steps, "IN PLACE"),
])
def test_ex04_rejects_wrong_steps(adam, check, hint):
    with pytest.raises(AssertionError, match=hint):
        check(adam)


def test_ex04_rejects_ignored_weight_decay():
    with pytest.raises(AssertionError, match="weight_decay"):
        c04.check_steps(lambda d, g, m, v, lr, b1, b2, e, t, wd=0.0:
                        reference.adam_update(d, g, m, v, lr, b1, b2, e, t, 0.0),
                        weight_decay=0.1)


# ----------------------------------------------------------------------------- 05
def _e_step(variant):
    def e_step(S, W, psi, posterior="exact"):
        right = em.e_step(S, W, psi, posterior=posterior)
        d = W.shape[1]
        M = np.eye(d) + W.T @ (W / psi[:, None])
        beta = np.linalg.solve(M, (W / psi[:, None]).T)
        if variant == "beta = W^T":
            return right._replace(xz=S @ W)
        if variant == "no M^-1":
            return right._replace(xz=S @ (W / psi[:, None]))
        if variant == "no covariance":
            return right._replace(zz=beta @ S @ beta.T)
        if variant == "identity covariance":
            return right._replace(zz=np.eye(d) + beta @ S @ beta.T)
        if variant == "sum":
            return right._replace(loglike=right.loglike * 400)
        if variant == "no 2 pi":
            return right._replace(loglike=right.loglike + 0.5 * len(psi) * np.log(2 * np.pi))
        if variant == "marginal variances" and posterior == "mean_field":
            cov = np.linalg.inv(M)
            exact = em.e_step(S, W, psi)
            return right._replace(zz=exact.zz - cov + np.diag(np.diag(cov)))
        return right
    return e_step


@pytest.mark.parametrize("variant, check, hint", [
    ("beta = W^T", "moments", r"not W\^T"),
    ("no M^-1", "moments", r"forgot the M\^\{-1\}"),
    ("no covariance", "moments", r"beta S beta\^T alone"),
    ("identity covariance", "moments", "not I"),
    ("sum", "moments", "sum over the n points"),
    ("no 2 pi", "moments", r"2 pi\) is missing"),
    ("marginal variances", "mean_field", "inverse of M's diagonal"),
])
def test_ex05_rejects_wrong_e_steps(variant, check, hint):
    run = {"moments": c05.check_e_step_moments, "mean_field": c05.check_e_step_mean_field}[check]
    with pytest.raises(AssertionError, match=hint):
        run(_e_step(variant))


def _m_step(variant):
    def m_step(S, moments, *, isotropic=False, min_noise_variance=1e-12):
        W, psi = em.m_step(S, moments, isotropic=isotropic, min_noise_variance=min_noise_variance)
        resid = np.diag(S) - np.einsum("ij,ij->i", W, moments.xz)
        if variant == "no zz^-1":
            return moments.xz, psi
        if variant == "diag S":
            return W, np.diag(S).copy()
        if variant == "swapped":
            return W, (resid if isotropic else np.full_like(resid, resid.mean()))
        if variant == "no floor":
            return W, resid
        if variant == "ascent":  # half a step: not the maximiser
            return W, 0.5 * (psi + np.diag(S))
        return W, psi
    return m_step


@pytest.mark.parametrize("variant, isotropic, hint", [
    ("no zz^-1", False, "xz alone"),
    ("diag S", False, r"that is diag\(S\)"),
    ("swapped", False, r"isotropic \(PPCA\) update"),
    ("swapped", True, "one variance per feature"),
])
def test_ex05_rejects_wrong_m_steps(variant, isotropic, hint):
    with pytest.raises(AssertionError, match=hint):
        c05.check_m_step_maximises_q(_m_step(variant), em.Moments, isotropic=isotropic)


def test_ex05_rejects_a_missing_floor_and_a_non_monotone_em():
    with pytest.raises(AssertionError, match="floor it"):
        c05.check_noise_floor(_m_step("no floor"), em.Moments)
    X, S, W, psi = c05.make_problem(2, 300, 8, 3)
    # without the posterior covariance in zz, EM is no longer EM: the likelihood falls
    with pytest.raises(AssertionError, match="EM lowered the log-likelihood at iteration"):
        c05.check_monotone(_e_step("no covariance"), em.m_step, X, S, W, psi)
    with pytest.raises(AssertionError, match="fixed point"):
        c05.check_fixed_point_at_sklearn(em.e_step, _m_step("ascent"))


# ----------------------------------------------------------------------------- 06
def _mle(variant):
    def mle(lam, axes, p, floor):
        d = axes.shape[1]
        if variant == "r - d":
            s2 = max(lam[d:].sum() / (lam.size - d), floor)
        elif variant == "all":
            s2 = max(np.concatenate([lam, np.zeros(p - lam.size)]).mean(), floor)
        elif variant == "off by one":
            s2 = max(lam[d - 1:].sum() / (p - d), floor)
        elif variant == "no floor":
            s2 = lam[d:].sum() / (p - d)
        else:
            s2 = max(lam[d:].sum() / (p - d), floor)
        scale = np.sqrt(lam[:d]) if variant == "pca" else np.sqrt(np.maximum(lam[:d] - s2, 0))
        W = axes * scale
        return (W.T if variant == "transposed" else W), s2
    return mle


@pytest.mark.parametrize("variant, data, hint", [
    ("pca", (0, 200, 6, 2), "PCA's scaling"),
    ("all", (0, 200, 6, 2), "ALL the eigenvalues"),
    ("off by one", (0, 200, 6, 2), "off by one"),
    ("r - d", (1, 5, 12, 2), "other 7 are 0"),
    ("transposed", (0, 200, 6, 2), "W transposed"),
    ("no floor", (2, 50, 5, 2, 0.0), "floor"),
])
def test_ex06_rejects_wrong_closed_forms(variant, data, hint):
    X = c06.make_data(*data)
    with pytest.raises(AssertionError, match=hint):
        c06.check_closed_form(_mle(variant), X, 2, floor=1e-6 if variant == "no floor" else 1e-12)


def test_ex06_the_reference_is_the_library_solution():
    # the checks accept the solution they are meant for (also run by the exercise itself)
    c06.check_closed_form(ppca.closed_form_mle, c06.make_data(0, 200, 6, 2), 2)


# ----------------------------------------------------------------------------- 07
def _scaled(estimator, field, factor):
    """``estimator`` with one field of its Estimate multiplied by ``factor(k)``."""
    def wrong(f, p_or_log_p, *rest):
        est = estimator(f, p_or_log_p, *rest)
        k = len(est.samples)
        return est._replace(**{field: getattr(est, field) * factor(k)})
    return wrong


@pytest.mark.parametrize("wrong, check, hint", [
    (_scaled(estimators.monte_carlo, "standard_error", math.sqrt), "mc", "divide by sqrt\\(K\\)"),
    (_scaled(estimators.monte_carlo, "value", lambda k: k), "mc", "forgot the 1/K"),
    (_scaled(estimators.importance_sampling, "value", lambda k: k), "is", "forgot the 1/K"),
    (_scaled(estimators.importance_sampling, "log_w", lambda k: -1), "is", "log q - log p"),
    (_scaled(estimators.importance_sampling, "standard_error",
             lambda k: math.sqrt((k - 1) / k)), "is", "ddof=0"),
    (lambda f, lp, q, k, rs: estimators.importance_sampling(f, lp, q, k, rs)._replace(
        standard_error=estimators.importance_sampling(f, lp, q, k, rs).standard_error ** 2),
     "is", "the variance of the estimate"),
    (lambda f, lp, q, k, rs: estimators.importance_sampling(f, lp, q, k, rs), "snis",
     "plain importance sampling"),
])
def test_ex07_rejects_wrong_estimates(wrong, check, hint):
    run = {"mc": c07.check_monte_carlo_arithmetic, "is": c07.check_importance_sampling_arithmetic,
           "snis": c07.check_self_normalised_arithmetic}[check]
    with pytest.raises(AssertionError, match=hint):
        run(wrong)


@pytest.mark.parametrize("wrong, hint", [
    (lambda lw, axis=0: 1 / estimators.effective_sample_size(lw, axis), "upside down"),
    (lambda lw, axis=0: estimators.effective_sample_size(lw, axis) / np.shape(lw)[axis],
     "efficiency"),
    (lambda lw, axis=0: np.sum(np.exp(lw), axis) ** 2 / np.sum(np.exp(2 * lw), axis),
     "overflows|underflows"),
])
def test_ex07_rejects_wrong_effective_sample_sizes(wrong, hint):
    with np.errstate(all="ignore"), pytest.raises(AssertionError, match=hint):
        c07.check_effective_sample_size(wrong)


def test_ex07_rejects_an_underflowing_importance_sampler():
    def naive(f, log_p, q, k, rs):
        est = estimators.importance_sampling(f, log_p, q, k, rs)
        return est._replace(log_value=np.log(np.mean(np.exp(est.log_w), axis=0)))
    with np.errstate(all="ignore"), pytest.raises(AssertionError, match="underflows to 0"):
        c07.check_importance_sampling_is_stable(naive)


# ----------------------------------------------------------------------------- 08
def _kl_variant(variant):
    def kl(q, p):
        mq, lq = q.mu, q.log_sigma
        mp, lp = p.mu, p.log_sigma
        if variant == "log variance":
            ratio = (lq - lp).exp()
            dm2 = (mq - mp) * (mq - mp) * (-lp).exp()
            per = 0.5 * (ratio + dm2 - 1.0) - 0.5 * (lq - lp)
        else:
            ratio = (2.0 * (lq - lp)).exp()
            dm = (mq - mp) * (-lp).exp()
            minus_one = 0.0 if variant == "no -1" else 1.0
            per = 0.5 * (ratio + dm * dm - minus_one) - (lq - lp)
            if variant == "no 1/2":
                per = 2 * per
            if variant == "logdet sign":
                per = per + 2 * (lq - lp)
        shape = np.broadcast_shapes(per.shape, q._shape, p._shape)
        per = per if per.shape == shape else per.broadcast_to(shape)
        return per if variant == "not summed" else per.sum(axis=-1)
    return kl


@pytest.mark.parametrize("variant, hint", [
    ("log variance", "log-VARIANCE"),
    ("no -1", "forgot the -1"),
    ("no 1/2", "factor 1/2"),
    ("logdet sign", "wrong sign"),
    ("not summed", "event"),
])
def test_ex08_rejects_wrong_diagonal_kls(variant, hint):
    rng = np.random.default_rng(0)
    args = (rng.normal(size=(3, 2)), rng.normal(scale=0.5, size=(3, 2)), rng.normal(size=2),
            rng.normal(scale=0.5, size=2))
    with pytest.raises(AssertionError, match=hint):
        c08.check_diagonal(_kl_variant(variant), *args)


def test_ex08_rejects_swapped_arguments_and_a_detached_kl():
    rng = np.random.default_rng(1)
    args = (rng.normal(size=(3, 2)), rng.normal(scale=0.5, size=(3, 2)), rng.normal(size=2),
            rng.normal(scale=0.5, size=2))
    with pytest.raises(AssertionError, match="KL\\(p \\|\\| q\\)"):
        c08.check_diagonal(lambda q, p: kl_divergence(p, q).broadcast_to((3,)), *args)
    with pytest.raises(AssertionError, match="not connected"):
        c08.check_diagonal(lambda q, p: Tensor(kl_divergence(q, p).data), *args)


def test_ex08_rejects_an_overflowing_ratio():
    def kl(q, p):
        s2q, s2p = (2.0 * q.log_sigma).exp(), (2.0 * p.log_sigma).exp()
        per = 0.5 * (s2q / s2p + (q.mu - p.mu) ** 2 / s2p - 1.0) - (q.log_sigma - p.log_sigma)
        return per.sum(axis=-1)
    with pytest.raises(AssertionError, match="log space"):
        c08.check_diagonal_is_stable(kl)


# ----------------------------------------------------------------------------- 09
def _lse(variant):
    def logsumexp(a, axis=None, keepdims=False, accumulate_dtype=None):
        a = np.asarray(a, dtype=np.result_type(a, np.float64) if np.asarray(a).dtype.kind in "iu"
                       else np.asarray(a).dtype)
        with np.errstate(all="ignore"):
            if variant == "naive":
                return np.log(np.sum(np.exp(a), axis=axis, keepdims=keepdims))
            m = np.max(a, axis=axis, keepdims=True)
            if variant != "no guard":
                m = np.where(np.isfinite(m), m, 0)
            out = np.log(np.sum(np.exp(a - m), axis=axis, keepdims=True))
            if variant != "no shift back":
                out = out + m
            if variant == "mean":
                n = a.size if axis is None else a.shape[axis]
                out = out - np.log(n)
        if variant == "kept":
            return out
        return out.reshape(()) if axis is None and not keepdims else (
            out if keepdims else np.squeeze(out, axis=axis))
    return logsumexp


@pytest.mark.parametrize("variant, check, hint", [
    ("naive", "stability", "Shift by the maximum"),
    ("no shift back", "stability", "add the maximum m back"),
    ("no guard", "stability", "shift by 0 where the maximum is not finite"),
    ("mean", "values", "log-MEAN-exp"),
    ("kept", "values", "kept the reduced axes"),
])
def test_ex09_rejects_wrong_logsumexps(variant, check, hint):
    fn = _lse(variant)
    with pytest.raises(AssertionError, match=hint):
        if check == "stability":
            c09.check_stability(fn)
        else:
            c09.check_function(fn, np.random.default_rng(0).normal(size=(4, 3)), 1)


def _lse_op(backward):
    return _op(ops.LogSumExp.forward, backward)


def _unnormalised(ctx, grad):
    x, out, axis, keepdims = ctx.saved
    return ops._expand_reduced(grad, x.shape, axis, keepdims) * np.exp(x)


def _by_division(ctx, grad):
    x, out, axis, keepdims = ctx.saved
    with np.errstate(all="ignore"):
        e = np.exp(x)
        return ops._expand_reduced(grad, x.shape, axis, keepdims) * e / e.sum(axis=axis,
                                                                              keepdims=True)


def _nan_on_all_neg_inf(ctx, grad):
    x, out, axis, keepdims = ctx.saved
    with np.errstate(all="ignore"):
        return ops._expand_reduced(grad, x.shape, axis, keepdims) * np.exp(x - out)


@pytest.mark.parametrize("backward, check, hint", [
    (_unnormalised, "values", "grad times exp\\(a\\)"),
    (lambda ctx, grad: grad, "values", "grad's shape"),
    (_by_division, "extremes", "exp\\(a - y\\) with the saved output"),
    (_nan_on_all_neg_inf, "extremes", "all -inf, expected zeros"),
])
def test_ex09_rejects_wrong_backwards(backward, check, hint):
    op = _lse_op(backward)
    with pytest.raises(AssertionError, match=hint):
        if check == "values":
            c09.check_op_backward(op, np.random.default_rng(0).normal(size=(4, 3)), 1)
        else:
            c09.check_op_extremes(op)


# ----------------------------------------------------------------------------- 10
@pytest.mark.parametrize("wrong, hint", [
    (lambda lw: bounds.iwae_bound(lw, backend="numpy") + math.log(len(lw)), "forgot the 1/K"),
    (lambda lw: bounds.elbo_monte_carlo(lw), "mean of the log-weights"),
    (lambda lw: Tensor(special.logsumexp(np.asarray(lw), axis=1) - math.log(np.shape(lw)[1])),
     "axis 1"),
])
def test_ex10_rejects_wrong_bounds(wrong, hint):
    with pytest.raises(AssertionError, match=hint):
        c10.check_iwae_values(wrong, np.random.default_rng(0).normal(scale=2, size=(7, 5)))


def test_ex10_rejects_an_overflowing_or_detached_bound():
    def naive(lw):
        lw = lw if isinstance(lw, Tensor) else Tensor(lw)
        return (lw.exp().mean(axis=0)).log()
    big = np.array([[-1000.0, 800.0], [-1001.0, 801.0]])
    with np.errstate(all="ignore"), pytest.raises(AssertionError, match="under/overflows"):
        c10.check_iwae_values(naive, big)
    with pytest.raises(AssertionError, match="not connected"):
        c10.check_iwae_gradient(lambda lw: Tensor(c10.reference_iwae(lw.data)),
                                np.zeros((3, 2)))


# ----------------------------------------------------------------------------- 11
def _loo_wrong(kind, right=estimators._baseline):
    def baseline(f_z, b, where):
        if not (isinstance(b, str) and b == "loo"):
            return right(f_z, b, where)
        k = len(f_z)
        if kind == "over_k":
            return (f_z.sum(axis=0) - f_z) / k
        return np.broadcast_to(f_z.mean(axis=0), f_z.shape)
    return baseline


@pytest.mark.parametrize("wrong, hint", [
    (lambda *a, **kw: [-g for g in estimators.score_function_gradient(*a, **kw)],
     "sign is wrong"),
    (lambda f, q, params, k, rs, baseline: [
        k * g for g in estimators.score_function_gradient(f, q, params, k, rs, baseline=baseline)],
     "forgot the 1/K"),
    (lambda f, q, params, k, rs, baseline: estimators.score_function_gradient(f, q, params, k, rs),
     "without the baseline"),
    (lambda f, q, params, k, rs, baseline: estimators.score_function_gradient(
        f, q, params, k, rs, baseline=None if baseline is None else (
            baseline if isinstance(baseline, str) else -np.asarray(baseline))),
     "added the baseline"),
])
def test_ex11_rejects_wrong_estimates(wrong, hint):
    with pytest.raises(AssertionError, match=hint):
        c11.check_score_function_arithmetic(wrong)


@pytest.mark.parametrize("kind, hint", [("over_k", "K - 1, not K"), ("all", "ALL K draws")])
def test_ex11_rejects_wrong_leave_one_out_baselines(monkeypatch, kind, hint):
    monkeypatch.setattr(estimators, "_baseline", _loo_wrong(kind))
    with pytest.raises(AssertionError, match=hint):
        c11.check_score_function_arithmetic(estimators.score_function_gradient)


def test_ex11_rejects_a_baseline_that_does_not_reduce_the_variance():
    def ignores_baseline(f, q, params, k, rs, baseline=None):
        return estimators.score_function_gradient(f, q, params, k, rs)
    with pytest.raises(AssertionError, match="times the exact"):
        c11.check_baseline_reduces_variance(ignores_baseline)


# ----------------------------------------------------------------------------- 12
def _diag_sampler(scale):
    def rsample(q, sample_shape, random_state):
        shape, rng = q._draw_setup(sample_shape, random_state, "rsample")
        eps = rng.standard_normal(shape + q._shape, dtype=q.dtype)
        return q.mu + scale(q.log_sigma) * eps
    return rsample


@pytest.mark.parametrize("scale, hint", [
    (lambda ls: (2.0 * ls).exp(), "sigma\\^2"),
    (lambda ls: (0.5 * ls).exp(), "log-variance"),
    (lambda ls: 1.0, "forgot to scale"),
])
def test_ex12_rejects_wrong_scales(scale, hint):
    with pytest.raises(AssertionError, match=hint):
        c12.check_diag_moments(_diag_sampler(scale))


def test_ex12_rejects_global_randomness_and_detached_draws():
    def global_rng(q, sample_shape, random_state):
        shape, _ = q._draw_setup(sample_shape, random_state, "rsample")
        return q.mu + q.log_sigma.exp() * np.random.standard_normal(shape + q._shape)
    with pytest.raises(AssertionError, match="differ|global"):
        c12.check_randomness(global_rng)

    def detached(q, sample_shape, random_state):
        return Tensor(q.rsample(sample_shape, random_state).data)
    with pytest.raises(AssertionError, match="not connected"):
        c12.check_diag_reparametrisation(detached, np.zeros(2), np.zeros(2))


def test_ex12_rejects_l_transposed():
    def transposed(dist, sample_shape, random_state):
        shape, rng = dist._draw_setup(sample_shape, random_state, "rsample")
        eps = rng.standard_normal(shape + dist.batch_shape + dist.event_shape)
        L = dist.scale_tril
        return dist.mu + (L.transpose(*range(L.ndim - 2), L.ndim - 1, L.ndim - 2)
                          * eps[..., None, :]).sum(axis=-1)
    with pytest.raises(AssertionError, match="L\\^T L"):
        c12.check_full_moments(transposed)


# ----------------------------------------------------------------------------- 13
def _bern(variant):
    def log_prob(logits, x):
        if variant == "cross-entropy":
            return -(x * logits - np.logaddexp(0, logits)).sum(-1)
        if variant == "flipped":
            return ((1 - x) * logits - np.logaddexp(0, logits)).sum(-1)
        if variant == "naive":
            s = special.expit(logits)
            return (x * np.log(s) + (1 - x) * np.log(1 - s)).sum(-1)
        return (x * logits - np.logaddexp(0, logits)).sum(-1)
    return log_prob


@pytest.mark.parametrize("variant, hint", [
    ("cross-entropy", "NEGATIVE"),
    ("flipped", "1 - x"),
])
def test_ex13_rejects_wrong_likelihoods(variant, hint):
    rng = np.random.default_rng(0)
    logits = rng.normal(scale=3, size=(2, 3, 5))
    x = (rng.random((3, 5)) < 0.5).astype(float)
    with pytest.raises(AssertionError, match=hint):
        c13.check_log_prob(_bern(variant), logits, x)


def test_ex13_rejects_overflow_and_a_wrong_gradient():
    with pytest.raises(AssertionError, match="under/overflows"):
        c13.check_extreme_logits(_bern("naive"), lambda l, x: (_bern("naive")(l, x), x - l))
    right = _bern("right")
    with pytest.raises(AssertionError, match="wrong sign"):
        c13.check_with_grad(lambda l, x: (right(l, x), special.expit(l) - x),
                            np.linspace(-3, 3, 10).reshape(1, 2, 5), np.ones((2, 5)))


# ----------------------------------------------------------------------------- 14
def test_ex14_rejects_partial_kernels():
    rng = np.random.default_rng(0)
    a = rng.normal(scale=30, size=(11, 40))
    first_block = lambda a: np.concatenate(  # noqa: E731  (a grid of one block)
        [special.logsumexp(a[:, :32], axis=0), np.zeros(a.shape[1] - 32)])
    with pytest.raises(AssertionError, match="ceil\\(B / 32\\)"):
        c14.check_logsumexp(first_block, a)
    with pytest.raises(AssertionError, match="first 8 rows"):
        c14.check_logsumexp(lambda a: special.logsumexp(a[:8], axis=0), a)
    with pytest.raises(AssertionError, match="all -inf"):
        c14.check_logsumexp(lambda a: np.nan_to_num(special.logsumexp(a, axis=0), nan=0.0),
                            c14.edge_log_weights(np.float64))


# ----------------------------------------------------------------------------- 15
@pytest.mark.parametrize("wrong, hint", [
    (lambda lw: special.softmax(lw, axis=1), "axis 1"),
    (lambda lw: np.exp(lw), "raw weights"),
    (lambda lw: special.log_softmax(lw, axis=0), "log of the weights"),
    (lambda lw: special.softmax(-lw, axis=0), "sign is wrong"),
    (lambda lw: np.full_like(lw, 1.0 / len(lw)), "all 1/K"),
])
def test_ex15_rejects_wrong_weights(wrong, hint):
    with pytest.raises(AssertionError, match=hint):
        c15.check_weights_values(wrong)


def test_ex15_rejects_overflowing_weights_and_uniform_weights():
    def naive(lw):
        w = np.exp(lw)
        return w / w.sum(axis=0)
    with np.errstate(all="ignore"), pytest.raises(AssertionError, match="overflows"):
        c15.check_weights_stable(naive)
    with pytest.raises(AssertionError, match="uniform"):
        c15.check_conditional_mean(lambda lw: np.full_like(lw, 1.0 / len(lw)))


def test_ex15_rejects_a_transform_and_an_impute_that_ignore_the_weights(monkeypatch):
    monkeypatch.setattr(miwae, "logsumexp", special.logsumexp)
    monkeypatch.setattr(miwae, "self_normalised_weights",
                        lambda lw: np.full_like(lw, 1.0 / len(lw)))
    with pytest.raises(AssertionError, match="standard errors away"):
        c15.check_transform()
    monkeypatch.setattr(miwae, "self_normalised_weights", special.softmax)
    monkeypatch.setattr(miwae, "resample_indices",
                        lambda w, n, rng: rng.integers(0, len(w), (n, w.shape[1])))
    with pytest.raises(AssertionError, match="regardless of their weights"):
        c15.check_impute()


@pytest.mark.parametrize("wrong, hint", [
    (lambda w, n, rng: rng.integers(0, len(w), (n, w.shape[1])), "weights are ignored"),
    (lambda w, n, rng: np.broadcast_to(np.argmax(w, axis=0), (n, w.shape[1])).copy(),
     "always the same sample"),
    (lambda w, n, rng: np.minimum(miwae.resample_indices(w, n, rng) + 1, len(w) - 1),
     "weight 0|off by one"),
])
def test_ex15_rejects_wrong_resampling(wrong, hint):
    with pytest.raises(AssertionError, match=hint):
        c15.check_resampling_frequencies(wrong)


def test_ex15_rejects_global_randomness():
    def global_rng(w, n, rng):
        return miwae.resample_indices(w, n, np.random.default_rng(np.random.randint(2**31)))
    with pytest.raises(AssertionError, match="global state"):
        c15.check_resampling_randomness(global_rng)
