r"""First-order optimisers: stochastic gradient descent (with momentum) and Adam.

Both update ``p.data`` **in place** from ``p.grad`` after ``loss.backward()``, in the PyTorch
rhythm that students know::

    opt = Adam(model.parameters(), lr=1e-3)
    for x in batches:
        opt.zero_grad()
        loss = model.objective(x, rng=rng)   # a scalar Tensor
        loss.backward()
        opt.step()

This is the "gradient step using stochastic gradients w.r.t. phi and theta via autograd" of the
VAE training loop ([Isachenko-L4, "Variational autoencoder (VAE)"];
[Mattei-DGM, "How do we actually train VAEs?"] in ``docs/lectures.md``).

An optimiser's :meth:`~Optimizer.state_dict` is a flat dict of ndarrays and Python scalars, so it
can be stored next to the model in one ``.npz`` checkpoint (:mod:`scratchdgm.checkpoint`) and a
resumed run continues bit for bit as if it had never stopped.
"""


import numpy as np

from scratchdgm.autodiff import Tensor, no_grad
from scratchdgm.backend import get_backend, get_kernels, resolve_backend
from scratchdgm.validation import NonFiniteError, check_real

__all__ = ["Optimizer", "SGD", "Adam"]


class Optimizer:
    r"""Base class: holds the parameters, clears their gradients, and saves/restores its state.

    Parameters
    ----------
    params : iterable of Tensor
        The tensors to optimise (``model.parameters()``); each must have
        ``requires_grad=True``, and none may appear twice.

    Notes
    -----
    Subclasses implement :meth:`_update` for one parameter and list their hyper-parameter names
    in ``_hyper``; per-parameter state (moments, step counts) lives in ``self.state[i]``, a dict
    of ndarrays and ints for the ``i``-th parameter.
    """

    _hyper = ()
    _state_arrays = ()

    def __init__(self, params):
        where = type(self).__name__
        if isinstance(params, Tensor):
            raise TypeError(f"{where}: params must be an iterable of Tensors (e.g. "
                            f"model.parameters()), got a single Tensor; wrap it in a list")
        try:
            params = list(params)
        except TypeError:
            raise TypeError(f"{where}: params must be an iterable of Tensors (e.g. "
                            f"model.parameters()), got {type(params).__name__}") from None
        if not params:
            raise ValueError(f"{where}: params is empty; expected at least one Tensor to "
                             f"optimise")
        seen = set()
        for i, p in enumerate(params):
            if not isinstance(p, Tensor):
                raise TypeError(f"{where}: params[{i}] is a {type(p).__name__}; expected a "
                                f"Tensor (a Parameter)")
            if not p.requires_grad:
                raise ValueError(f"{where}: params[{i}] has requires_grad=False, so it would "
                                 f"never receive a gradient; expected trainable tensors")
            if not p.is_leaf:
                raise ValueError(f"{where}: params[{i}] is the result of an operation, not a "
                                 f"leaf; only leaves (Parameters) receive .grad")
            if id(p) in seen:
                raise ValueError(f"{where}: params[{i}] appears more than once; each tensor "
                                 f"must be listed once")
            seen.add(id(p))
        self.params = params
        self.state = [dict() for _ in params]

    def zero_grad(self):
        r"""Forget every parameter's gradient (``p.grad = None``)."""
        for p in self.params:
            p.grad = None

    def step(self):
        r"""Update every parameter that has a gradient, in place; parameters without one are
        skipped (their state does not advance)."""
        with no_grad():
            for i, p in enumerate(self.params):
                if p.grad is None:
                    continue
                g = np.asarray(p.grad)
                if g.shape != p.data.shape:
                    raise ValueError(f"{type(self).__name__}.step: params[{i}].grad has shape "
                                     f"{g.shape} but the parameter has shape {p.data.shape}")
                if g.dtype != p.data.dtype:
                    g = g.astype(p.data.dtype)
                self._update(p.data, g, self.state[i])

    def _update(self, data, grad, state):  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__} does not define _update()")

    # -- checkpointing --------------------------------------------------------------------------

    def state_dict(self):
        r"""Hyper-parameters and per-parameter state as a flat dict.

        Returns
        -------
        dict
            ``'n_params'`` (int), every hyper-parameter (float), and for the ``i``-th parameter
            ``'state.{i}.{name}'`` entries (ndarray copies, or ints for step counts). All values
            are ndarrays or Python scalars, so the dict can be saved with
            :func:`scratchdgm.checkpoint.save_npz`.
        """
        out = {"n_params": len(self.params)}
        for name in self._hyper:
            out[name] = getattr(self, name)
        for i, st in enumerate(self.state):
            for key, value in st.items():
                out[f"state.{i}.{key}"] = value.copy() if isinstance(value, np.ndarray) else value
        return out

    def load_state_dict(self, state):
        r"""Restore hyper-parameters and per-parameter state from :meth:`state_dict`.

        Accepts the dict as returned, or as read back from an ``.npz`` file (scalars then come
        as 0-d arrays). Everything is checked before anything is changed.

        Raises
        ------
        TypeError
            If ``state`` is not a mapping.
        ValueError
            If the number of parameters, a key, a shape or a dtype does not match, or a
            hyper-parameter or a state array holds NaN or an infinity.
        """
        where = f"{type(self).__name__}.load_state_dict"
        if not hasattr(state, "keys") or not hasattr(state, "__getitem__"):
            raise TypeError(f"{where}: state must be a dict (as from state_dict()), "
                            f"got {type(state).__name__}")
        if "n_params" not in state:
            raise ValueError(f"{where}: state has no 'n_params' entry; expected a dict from "
                             f"{type(self).__name__}.state_dict()")
        n = int(np.asarray(state["n_params"]))
        if n != len(self.params):
            raise ValueError(f"{where}: state is for {n} parameters but this optimiser has "
                             f"{len(self.params)}")
        hyper = {}
        for name in self._hyper:
            if name not in state:
                raise ValueError(f"{where}: state has no {name!r} entry; expected the keys of "
                                 f"{type(self).__name__}.state_dict()")
            hyper[name] = check_real(np.asarray(state[name]).item(), name, where)
        new_state = [dict() for _ in self.params]
        allowed = set(self._state_arrays) | {"step"}
        for key in state.keys():
            if key == "n_params" or key in self._hyper:
                continue
            parts = str(key).split(".")
            if (len(parts) != 3 or parts[0] != "state" or not parts[1].isdigit()
                    or int(parts[1]) >= n or parts[2] not in allowed):
                raise ValueError(f"{where}: unexpected key {key!r}; expected 'n_params', "
                                 f"{list(self._hyper)} and 'state.<i>.<name>' with i < {n} and "
                                 f"name in {sorted(allowed)}")
            i, name = int(parts[1]), parts[2]
            value = np.asarray(state[key])
            p = self.params[i]
            if name == "step":
                new_state[i][name] = int(value)
                continue
            if value.shape != p.data.shape or value.dtype != p.data.dtype:
                raise ValueError(f"{where}: {key!r} has shape {value.shape} and dtype "
                                 f"{value.dtype}; expected shape {p.data.shape} and dtype "
                                 f"{p.data.dtype} like params[{i}]")
            if not np.all(np.isfinite(value)):
                raise NonFiniteError(f"{where}: {key!r} holds NaN or infinite values; expected "
                                     f"finite optimiser state (was it saved from a diverged "
                                     f"training?)")
            new_state[i][name] = value.copy()
        for i, st in enumerate(new_state):
            required = self._required_state(hyper)
            if st and set(st) != required:
                raise ValueError(f"{where}: state of params[{i}] has entries {sorted(st)}; "
                                 f"expected {sorted(required)}")
        for name, value in hyper.items():
            setattr(self, name, value)
        self.state = new_state

    def _required_state(self, hyper):
        return set(self._state_arrays) | {"step"}

    def __repr__(self):
        hyper = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._hyper)
        return f"{type(self).__name__}({len(self.params)} params, {hyper})"


class SGD(Optimizer):
    r"""Stochastic gradient descent with optional (heavy-ball) momentum and L2 weight decay.

    Parameters
    ----------
    params : iterable of Tensor
    lr : float
        Learning rate :math:`\alpha > 0`.
    momentum : float
        :math:`\mu \in [0, 1)`; 0 gives plain SGD.
    weight_decay : float
        :math:`\lambda \ge 0`, adds :math:`\lambda \theta` to the gradient (an L2 penalty
        :math:`\tfrac{\lambda}{2}\lVert\theta\rVert^2`).

    Notes
    -----
    With :math:`g_t = \nabla_\theta f(\theta_{t-1}) + \lambda\theta_{t-1}`:

    .. math::

        b_1 = g_1, \quad b_t = \mu b_{t-1} + g_t, \qquad \theta_t = \theta_{t-1} - \alpha b_t

    (:math:`b_t = g_t` when :math:`\mu = 0`), the convention of PyTorch's ``SGD``.

    References
    ----------
    Polyak, B. T. (1964). Some methods of speeding up the convergence of iteration methods.
    USSR Computational Mathematics and Mathematical Physics 4(5), eq. 9 (heavy ball).
    """

    _hyper = ("lr", "momentum", "weight_decay")
    _state_arrays = ("momentum_buffer",)

    def __init__(self, params, lr, momentum=0.0, weight_decay=0.0):
        super().__init__(params)
        self.lr = check_real(lr, "lr", "SGD", low=0, low_open=True)
        self.momentum = check_real(momentum, "momentum", "SGD", low=0, high=1,
                                      high_open=True)
        self.weight_decay = check_real(weight_decay, "weight_decay", "SGD", low=0)

    def _required_state(self, hyper):
        return {"step", "momentum_buffer"} if hyper["momentum"] else {"step"}

    def _update(self, data, grad, state):
        if self.weight_decay:
            grad = grad + self.weight_decay * data
        state["step"] = state.get("step", 0) + 1
        if self.momentum:
            buf = state.get("momentum_buffer")
            if buf is None:
                state["momentum_buffer"] = buf = grad.copy()
            else:
                buf *= self.momentum
                buf += grad
            grad = buf
        data -= self.lr * grad


class Adam(Optimizer):
    r"""Adam: adaptive moment estimation (Kingma & Ba 2015, Algorithm 1), with bias correction.

    Parameters
    ----------
    params : iterable of Tensor
    lr : float
        Step size :math:`\alpha > 0` (default 1e-3, as in the paper and docs/protocols.md).
    betas : (float, float)
        Exponential decay rates :math:`(\beta_1, \beta_2)`, each in :math:`[0, 1)`.
    eps : float
        :math:`\epsilon > 0` in the denominator.
    weight_decay : float
        :math:`\lambda \ge 0`, adds :math:`\lambda\theta` to the gradient (L2, not AdamW).
    backend : {None, 'numpy', 'numba', 'cuda', 'auto'}
        Which kernels run the update: ``'numpy'`` the lines of the Notes literally, a compiled
        backend the same arithmetic in one fused pass (``adam_update``). None: the process
        default at each step (:func:`scratchdgm.get_backend`). A model's ``fit`` passes the
        model's own backend.

    Notes
    -----
    Algorithm 1 of the paper, for each parameter with its own step count :math:`t` (parameters
    without a gradient at a step are skipped and their :math:`t` does not advance):

    .. math::

        g_t &= \nabla_\theta f_t(\theta_{t-1}) + \lambda\theta_{t-1} \\
        m_t &= \beta_1 m_{t-1} + (1 - \beta_1) g_t \\
        v_t &= \beta_2 v_{t-1} + (1 - \beta_2) g_t^2 \\
        \hat m_t &= m_t / (1 - \beta_1^t), \qquad \hat v_t = v_t / (1 - \beta_2^t) \\
        \theta_t &= \theta_{t-1} - \alpha\, \hat m_t / (\sqrt{\hat v_t} + \epsilon)

    with :math:`m_0 = v_0 = 0`. Computed literally in this order (not the paper's "more
    efficient" reordering of section 2), in the parameter's dtype, by the kernels'
    ``adam_update`` (:func:`scratchdgm.kernels.reference.adam_update` on the numpy backend).

    References
    ----------
    Kingma, D. P. & Ba, J. (2015). Adam: A method for stochastic optimization. ICLR,
    Algorithm 1.
    """

    _hyper = ("lr", "beta1", "beta2", "eps", "weight_decay")
    _state_arrays = ("exp_avg", "exp_avg_sq")

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, *,
                 backend=None):
        super().__init__(params)
        if backend is not None:
            resolve_backend(backend)  # fail now on an unknown name
        self.backend = backend
        self.lr = check_real(lr, "lr", "Adam", low=0, low_open=True)
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise TypeError(f"Adam: betas must be a pair (beta1, beta2), got {betas!r}")
        self.beta1 = check_real(betas[0], "beta1", "Adam", low=0, high=1, high_open=True)
        self.beta2 = check_real(betas[1], "beta2", "Adam", low=0, high=1, high_open=True)
        self.eps = check_real(eps, "eps", "Adam", low=0, low_open=True)
        self.weight_decay = check_real(weight_decay, "weight_decay", "Adam", low=0)

    @property
    def betas(self):
        r"""``(beta1, beta2)``."""
        return (self.beta1, self.beta2)

    def _update(self, data, grad, state):
        if self.weight_decay:
            grad = grad + self.weight_decay * data
        t = state.get("step", 0) + 1
        state["step"] = t
        m = state.get("exp_avg")
        if m is None:
            m = state["exp_avg"] = np.zeros_like(data)
            v = state["exp_avg_sq"] = np.zeros_like(data)
        else:
            v = state["exp_avg_sq"]
        # The Notes' lines are written once, in the kernels' adam_update: the NumPy reference
        # runs them literally, a compiled backend in one fused pass (which needs contiguous
        # arrays; anything else takes the reference).
        backend = get_backend() if self.backend is None else resolve_backend(self.backend)
        if not (data.flags.c_contiguous and m.flags.c_contiguous and v.flags.c_contiguous):
            backend = "numpy"
        get_kernels(backend).adam_update(data, grad, m, v, self.lr, self.beta1, self.beta2,
                                         self.eps, t, 0.0)
