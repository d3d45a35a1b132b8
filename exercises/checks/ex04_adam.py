r"""Checks of exercise 04: one Adam step, ``adam_update`` in ``kernels/reference.py`` (what
``scratchdgm.optim.Adam`` runs on the ``numpy`` backend).

The reference is Algorithm 1 of Kingma & Ba (2015), written out here line by line, and the
property that the first step moves every coordinate by about ``lr`` (the bias correction makes
:math:`\hat m_1 = g_1` and :math:`\hat v_1 = g_1^2`).
"""

import numpy as np

from ._common import max_error, show

HYPER = dict(lr=1e-2, beta1=0.9, beta2=0.999, eps=1e-8)


def reference_steps(theta, grads, lr, beta1, beta2, eps, weight_decay=0.0):
    r"""Kingma & Ba (2015), Algorithm 1, for the gradients ``grads`` in turn (float64)."""
    theta = np.array(theta, dtype=np.float64)
    m = np.zeros_like(theta)
    v = np.zeros_like(theta)
    out = []
    for t, g in enumerate(grads, start=1):
        g = np.asarray(g, np.float64) + weight_decay * theta
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        m_hat = m / (1 - beta1 ** t)
        v_hat = v / (1 - beta2 ** t)
        theta = theta - lr * m_hat / (np.sqrt(v_hat) + eps)
        out.append(theta.copy())
    return out


def _step_from_zero_moments(theta, g, t, weight_decay=0.0):
    # what a step gives when m and v were never kept: m = (1 - beta1) g, v = (1 - beta2) g^2
    b1, b2 = HYPER["beta1"], HYPER["beta2"]
    g = np.asarray(g, np.float64) + weight_decay * theta
    m_hat = (1 - b1) * g / (1 - b1 ** t)
    v_hat = (1 - b2) * g * g / (1 - b2 ** t)
    return theta - HYPER["lr"] * m_hat / (np.sqrt(v_hat) + HYPER["eps"])


def _run(adam_update, theta0, grads, dtype, weight_decay=0.0, hyper=HYPER):
    data = np.array(theta0, dtype=dtype)
    m = np.zeros_like(data)
    v = np.zeros_like(data)
    before = data.copy()
    out = []
    for t, g in enumerate(grads, start=1):
        ret = adam_update(data, np.asarray(g, dtype=dtype), m, v, hyper["lr"], hyper["beta1"],
                          hyper["beta2"], hyper["eps"], t, weight_decay)
        if t == 1 and np.array_equal(data, before):
            extra = ""
            if isinstance(ret, np.ndarray) and not np.array_equal(ret, before):
                extra = " (you returned a new array instead)"
            raise AssertionError(f"adam_update left data unchanged{extra}: it must update data, "
                                 f"m and v IN PLACE (data -= ..., m *= ...; not data = data - "
                                 f"...), the optimiser keeps no other reference")
        out.append(data.astype(np.float64).copy())
    return out, m, v


def check_first_step(adam_update):
    r"""After one step from :math:`m_0 = v_0 = 0`, :math:`\hat m_1 = g_1` and
    :math:`\hat v_1 = g_1^2`, so every coordinate moves by :math:`\mathrm{lr}\, g /
    (|g| + \epsilon) \approx \pm\mathrm{lr}` against its gradient, whatever the gradient's
    scale."""
    theta0 = np.array([1.0, -2.0, 0.5, 3.0])
    g = np.array([1e-3, -4.0, 250.0, -0.02])
    (theta1,), _, _ = _run(adam_update, theta0, [g], np.float64)
    step = theta1 - theta0
    want = -HYPER["lr"] * g / (np.abs(g) + HYPER["eps"])
    if np.allclose(step, want, rtol=1e-9, atol=0):
        return
    ratio = step / want
    if np.allclose(step, -want, rtol=1e-6):
        hint = "wrong sign: Adam DESCENDS, theta -= lr m_hat / (sqrt(v_hat) + eps)"
    elif np.allclose(ratio, ratio[0], rtol=1e-3) and np.isclose(
            ratio[0], (1 - HYPER["beta1"]) / np.sqrt(1 - HYPER["beta2"]), rtol=1e-3):
        hint = ("the step is (1 - beta1) / sqrt(1 - beta2) = 3.16 times lr: you forgot the bias "
                "correction m_hat = m / (1 - beta1^t), v_hat = v / (1 - beta2^t)")
    elif np.allclose(step, -HYPER["lr"] * g / np.sqrt(g * g + HYPER["eps"]), rtol=1e-9):
        hint = "eps goes outside the square root: sqrt(v_hat) + eps"
    elif not np.all(np.isfinite(step)):
        hint = "t is 1 at the first step (1 - beta^0 = 0 would divide by zero)"
    else:
        hint = ("the first step should move each coordinate by about lr, whatever the scale of "
                "its gradient")
    raise AssertionError(f"first step {show(step)} for gradients {show(g)}, expected "
                         f"{show(want)}: {hint}")


def check_steps(adam_update, dtype=np.float64, weight_decay=0.0, n_steps=6, seed=0):
    r"""Several steps with changing gradients equal Algorithm 1 (the moments persist in ``m``,
    ``v`` between calls), in the parameter's dtype."""
    rng = np.random.default_rng(seed)
    theta0 = rng.normal(size=(3, 2))
    grads = [rng.normal(scale=s, size=(3, 2)) for s in rng.uniform(0.1, 10, size=n_steps)]
    got, m, v = _run(adam_update, theta0, grads, dtype, weight_decay)
    want = reference_steps(theta0, [np.asarray(g, dtype) for g in grads], weight_decay=weight_decay,
                           **HYPER)
    tol = 2e-6 if dtype == np.float32 else 1e-12
    for t, (a, b) in enumerate(zip(got, want), start=1):
        if not np.allclose(a, b, rtol=tol, atol=tol):
            hint = ("m = beta1 m + (1 - beta1) g; v = beta2 v + (1 - beta2) g^2; each updated in "
                    "place so that the next call continues from them")
            if t > 1 and np.allclose(a, _step_from_zero_moments(got[t - 2], grads[t - 1], t,
                                                                 weight_decay), rtol=1e-6):
                hint = ("every step starts from m = v = 0: update m and v IN PLACE (m *= beta1; "
                        "m += ...), they are the optimiser's memory between calls")
            elif weight_decay and np.allclose(a, reference_steps(theta0, grads[:t], **HYPER)[-1],
                                              rtol=1e-6):
                hint = "you ignored weight_decay: g = grad + weight_decay * data"
            raise AssertionError(f"after step {t} the parameter is off by {max_error(a, b):.3g} "
                                 f"({np.dtype(dtype).name}): {hint}")
    if m.dtype != np.dtype(dtype) or v.dtype != np.dtype(dtype):
        raise AssertionError("m and v changed dtype: update them in place")


def check_optimiser_converges(adam_class, backend="numpy"):
    r"""``Adam(..., backend='numpy')`` -- which calls ``adam_update`` -- minimises a badly scaled
    quadratic :math:`\sum_i c_i (\theta_i - 1)^2` (its gradient set by hand, no autodiff)."""
    from scratchdgm import tensor

    p = tensor(np.zeros(3), requires_grad=True)
    c = np.array([1e-2, 1.0, 1e2])
    opt = adam_class([p], lr=0.05, backend=backend)
    for _ in range(600):
        p.grad = 2 * c * (p.data - 1.0)
        opt.step()
    if not np.allclose(p.data, 1.0, atol=0.05):
        raise AssertionError(f"600 Adam steps on sum c_i (theta_i - 1)^2 with c = {c.tolist()} end "
                             f"at {show(p.data)}, expected about [1, 1, 1]")
