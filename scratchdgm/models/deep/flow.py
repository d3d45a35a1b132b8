r"""A normalizing flow: RealNVP's affine coupling layers (Dinh, Sohl-Dickstein & Bengio 2017),
trained by maximum likelihood through the change-of-variables formula.

The model. An invertible map :math:`f_\theta: \mathbb R^d \to \mathbb R^d` sends data to a
code with a fixed base density, :math:`z = f_\theta(x)`, :math:`z \sim \mathcal N(0, I_d)`; its
inverse :math:`g_\theta = f_\theta^{-1}` generates, :math:`x = g_\theta(z)`. The density of
:math:`x` follows from the change of variables ([Isachenko-L4, "Forward KL for flow model"] in
``docs/lectures.md``):

.. math::

    \log p(x \mid \theta) = \log p\big(f_\theta(x)\big) + \log \big|\det J_f(x)\big|,
    \qquad J_f(x) = \frac{\partial f_\theta(x)}{\partial x},

and maximising its mean over the data is minimising the forward KL
:math:`\mathrm{KL}(\pi(x) \,\|\, p(x \mid \theta))` to the data distribution :math:`\pi`. Unlike
a VAE's, this log-likelihood is *exact*: no bound, no importance sampling.

An affine coupling layer (Dinh et al. 2017, eq. 9) keeps the coordinates selected by a binary
mask :math:`b` and moves the others by a scale and a shift that depend on the kept ones only:

.. math::

    y = b \odot x + (1 - b) \odot \big(x \odot e^{s(b \odot x)} + t(b \odot x)\big).

Its Jacobian is triangular (after ordering the kept coordinates first) with diagonal
:math:`1` on the kept coordinates and :math:`e^{s_j}` on the moved ones, so (their eq. 6)

.. math::

    \log\big|\det \tfrac{\partial y}{\partial x}\big| = \sum_j (1 - b_j)\, s_j(b \odot x),

with no determinant ever computed, and the inverse is as cheap as the forward map (their
eq. 8): :math:`b \odot y = b \odot x` gives :math:`s` and :math:`t` back, so

.. math::

    x = b \odot y + (1 - b) \odot \big(y - t(b \odot y)\big) \odot e^{-s(b \odot y)}.

:math:`s` and :math:`t` are one MLP of any shape: it never has to be inverted. :math:`f_\theta`
chains :math:`L` couplings whose masks alternate, so that every coordinate is moved by some
layer, and the log-determinants add up.

The lecture's reading ([Isachenko-L4, "VAE vs Normalizing flows"]): a flow is a VAE whose
encoder :math:`q(z \mid x) = \delta(z - f_\theta(x))` and decoder :math:`p(x \mid z) = \delta(x -
g_\theta(z))` are deterministic, with one set of parameters; its ELBO is the log-likelihood
itself (Nielsen et al. 2020). That is how :meth:`RealNVP.log_weights` serves the evaluation code
written for VAEs: every one of its K "importance weights" is :math:`p(x \mid \theta)`, so
:math:`\mathcal L_K = \log p(x \mid \theta)` for every K.

References
----------
Dinh, L., Sohl-Dickstein, J. & Bengio, S. (2017). Density estimation using Real NVP. ICLR,
eq. 4-9.
Papamakarios, G., Nalisnick, E., Rezende, D. J., Mohamed, S. & Lakshminarayanan, B. (2021).
Normalizing flows for probabilistic modeling and inference. JMLR 22(57), eq. 2 (the change of
variables) and Section 2.3.1 (forward KL and maximum likelihood).
Nielsen, D., Jaini, P., Hoogeboom, E., Winther, O. & Welling, M. (2020). SurVAE flows:
surjections to bridge the gap between VAEs and flows. NeurIPS.
"""

import numpy as np

from scratchdgm import autodiff as _ad
from scratchdgm.distributions import StandardNormal
from scratchdgm.models.deep import evaluation as _evaluation
from scratchdgm.models.deep import persistence as _persistence
from scratchdgm.models.deep import training as _training
from scratchdgm.models.deep.checks import check_observations
from scratchdgm.nn import ACTIVATIONS, MLP, Module, ModuleList
from scratchdgm.validation import (
    check_float_dtype,
    check_int,
    check_positive_float,
    check_positive_int,
    check_random_state,
)

__all__ = ["AffineCoupling", "RealNVP", "alternating_masks", "check_masks"]

_HIDDEN_ACTIVATIONS = tuple(name for name in ACTIVATIONS if name != "identity")


def alternating_masks(n_layers, d):
    r"""The default masks: layer :math:`l` keeps the coordinates :math:`j` with :math:`j + l`
    even, so consecutive layers swap the roles of the two halves (for :math:`d = 2`: keep
    :math:`x_1` and move :math:`x_2`, then the reverse).

    Returns
    -------
    ndarray, shape (n_layers, d), of 0.0 / 1.0
    """
    layers = np.arange(n_layers)[:, None]
    coords = np.arange(d)[None, :]
    return ((layers + coords) % 2 == 0).astype(np.float64)


def check_masks(masks, d, where="RealNVP"):
    r"""Validate coupling masks: the flow they define must be invertible and able to move every
    coordinate.

    Parameters
    ----------
    masks : array_like, shape (n_layers, d)
        Row :math:`l` is the mask :math:`b` of layer :math:`l`: 1 = kept (conditioned on),
        0 = moved.

    Returns
    -------
    ndarray, shape (n_layers, d), float64

    Raises
    ------
    ValueError
        Entries other than 0 and 1 (a coupling is invertible in closed form only when every
        coordinate is either kept or moved); a row of all ones (the layer moves nothing) or all
        zeros (the scale and shift would depend on nothing); a coordinate that no layer moves
        (the flow could not change its distribution).
    """
    m = np.asarray(masks, dtype=np.float64)
    if m.ndim != 2 or m.shape[1] != d or m.shape[0] < 1:
        raise ValueError(f"{where}: masks must have shape (n_layers, {d}), got {m.shape}")
    if not np.all((m == 0) | (m == 1)):
        raise ValueError(f"{where}: masks must hold only 0 (moved) and 1 (kept); a fractional "
                         f"mask mixes a coordinate into its own scale and shift and the layer "
                         f"is no longer invertible in closed form")
    for layer, row in enumerate(m):
        if row.all():
            raise ValueError(f"{where}: mask of layer {layer} is all ones: that layer moves no "
                             f"coordinate")
        if not row.any():
            raise ValueError(f"{where}: mask of layer {layer} is all zeros: its scale and shift "
                             f"would condition on nothing; keep at least one coordinate")
    never = np.flatnonzero(m.min(axis=0) == 1)
    if never.size:
        raise ValueError(f"{where}: coordinate(s) {never.tolist()} are kept by every layer, so "
                         f"the flow never moves them; use at least 2 layers with alternating "
                         f"masks")
    return m


class AffineCoupling(Module):
    r"""One affine coupling layer (Dinh et al. 2017, eq. 9): keep :math:`b \odot x`, scale and
    shift the rest by functions of it.

    Parameters
    ----------
    mask : ndarray, shape (d,)
        :math:`b`, 0.0 / 1.0 (see :func:`check_masks`).
    hidden : sequence of int
        Hidden widths of the network computing :math:`(s, t)`.
    activation : str
        Its hidden activation.
    max_log_scale : float
        :math:`S`: the log-scale is softly clamped, :math:`s = S \tanh(h / S)`, so
        :math:`e^{s} \in [e^{-S}, e^{S}]` is never 0 or infinite and the layer stays invertible
        whatever the network outputs.
    rng : numpy.random.Generator
    dtype, backend
        As for :class:`~scratchdgm.nn.MLP`.

    Attributes
    ----------
    net : MLP, sizes ``[d, *hidden, 2 d]``
        Outputs :math:`(h, t)` from :math:`b \odot x`. Its last layer starts at zero, so every
        coupling starts as the identity (as Glow does: Kingma & Dhariwal 2018, §3.3).
    """

    def __init__(self, mask, hidden, activation, max_log_scale, *, rng, dtype=np.float64,
                 backend=None):
        super().__init__()
        self.mask = np.asarray(mask, dtype=dtype)
        self.d = self.mask.shape[0]
        self.max_log_scale = float(max_log_scale)
        self.net = MLP([self.d, *hidden, 2 * self.d], activation, rng=rng, dtype=dtype,
                       backend=backend)
        last = self.net.layers[len(self.net.layers) - 1]
        last.weight.data[...] = 0.0
        last.bias.data[...] = 0.0

    def scale_and_shift(self, kept):
        r""":math:`(s, t)`, each a Tensor of shape (B, d) and zero on the kept coordinates, from
        the kept part :math:`b \odot x` (shape (B, d))."""
        h = self.net(kept)
        d, S = self.d, self.max_log_scale
        moved = 1.0 - self.mask
        s = (h[:, :d] * (1.0 / S)).tanh() * (S * moved)
        t = h[:, d:] * moved
        return s, t

    def forward(self, x):
        r"""The coupling :math:`y` and :math:`\log|\det \partial y / \partial x| = \sum_j s_j`.

        Parameters
        ----------
        x : Tensor or ndarray, shape (B, d)

        Returns
        -------
        y : Tensor, shape (B, d)
        log_det : Tensor, shape (B,)
        """
        b = self.mask
        kept = x * b
        s, t = self.scale_and_shift(kept)
        y = kept + (1.0 - b) * x * s.exp() + t
        return y, s.sum(axis=-1)

    def inverse(self, y):
        r"""The inverse map: :math:`x = b \odot y + (1 - b) \odot (y - t) \odot e^{-s}`, with
        :math:`s, t` computed from :math:`b \odot y = b \odot x`.

        Parameters
        ----------
        y : Tensor or ndarray, shape (B, d)

        Returns
        -------
        Tensor, shape (B, d)
        """
        b = self.mask
        kept = y * b
        s, t = self.scale_and_shift(kept)
        return kept + (1.0 - b) * (y - t) * (-s).exp()

    def extra_repr(self):
        return f"mask={self.mask.astype(int).tolist()}, max_log_scale={self.max_log_scale}"


@_persistence.register_model
class RealNVP(_persistence.SaveLoadMixin, Module):
    r"""A RealNVP normalizing flow on :math:`\mathbb R^d`: affine couplings with alternating
    masks and a standard normal base, fitted by exact maximum likelihood.

    Parameters
    ----------
    input_dim : int
        :math:`d \ge 2` (a coupling needs a coordinate to keep and one to move).
    n_layers : int
        Number of coupling layers :math:`L` (at least 2, so that every coordinate moves).
    hidden : sequence of int
        Hidden widths of each layer's :math:`(s, t)` network.
    activation : {'tanh', 'relu', 'softplus', 'sigmoid'}
    max_log_scale : float
        Bound :math:`S` of each log-scale (see :class:`AffineCoupling`).
    masks : array_like, shape (n_layers, d), optional
        The masks :math:`b` of the layers (default: :func:`alternating_masks`); checked by
        :func:`check_masks`.
    dtype : {numpy.float64, numpy.float32}
    random_state : None, int or numpy.random.Generator
        Initialises the weights.
    backend : {None, 'numpy', 'numba', 'cuda', 'auto'}
        Kernel backend of the networks, the base density and the optimiser in :meth:`fit`.

    Attributes
    ----------
    couplings : ModuleList of AffineCoupling
        Applied in order by :meth:`forward` (:math:`f_\theta`), in reverse by :meth:`inverse`.
    k : int
        1: the log-likelihood is exact, and the training loop's "samples per point" has nothing
        to average (the flow's encoder is deterministic).

    Notes
    -----
    .. math::

        z = f_\theta(x) = f_L \circ \dots \circ f_1(x), \qquad
        \log p(x \mid \theta) = \log \mathcal N(z \mid 0, I_d)
        + \sum_{l=1}^L \log\big|\det J_{f_l}\big|,

    and :meth:`fit` maximises its mean over the data ([Isachenko-L4, "Forward KL for flow
    model"]): minus that mean is :meth:`objective`.

    References
    ----------
    Dinh, Sohl-Dickstein & Bengio (2017), ICLR, eq. 3 (change of variables), 6 (the
    log-determinant) and 9 (the masked coupling). [Isachenko-L4, "VAE vs Normalizing flows"].

    Examples
    --------
    >>> import numpy as np, scratchdgm as sd                          # doctest: +SKIP
    >>> from scratchdgm.data import two_moons
    >>> x, _ = two_moons(2000, 0)
    >>> flow = sd.RealNVP(2, n_layers=8, hidden=(64, 64), random_state=0)
    >>> flow.fit(x[:1500], epochs=100, batch_size=100, lr=1e-3)
    >>> flow.score(x[1500:])          # exact mean log-likelihood, nats per point
    >>> flow.sample(500, random_state=0)
    """

    k = 1

    def __init__(self, input_dim, n_layers=8, hidden=(64, 64), *, activation="tanh",
                 max_log_scale=3.0, masks=None, dtype=np.float64, random_state=0, backend=None):
        super().__init__()
        where = type(self).__name__
        self.input_dim = check_int(input_dim, "input_dim", 2, where)
        # the code z = f(x) has the data's dimension (read as a VAE: d = p)
        self.latent_dim = self.input_dim
        self.n_layers = check_int(n_layers, "n_layers", 1, where)
        if isinstance(hidden, (int, np.integer)):
            hidden = (hidden,)
        self.hidden = tuple(check_positive_int(h, "each hidden size", where) for h in hidden)
        if not isinstance(activation, str) or activation.lower() not in _HIDDEN_ACTIVATIONS:
            raise ValueError(f"{where}: activation must be one of {_HIDDEN_ACTIVATIONS}, got "
                             f"{activation!r}")
        self.activation = activation.lower()
        self.max_log_scale = check_positive_float(max_log_scale, "max_log_scale", where)
        masks = alternating_masks(self.n_layers, self.input_dim) if masks is None else masks
        self.masks = check_masks(masks, self.input_dim, where)
        if self.masks.shape[0] != self.n_layers:
            raise ValueError(f"{where}: {self.masks.shape[0]} masks given for n_layers = "
                             f"{self.n_layers}; expected one per layer")
        self.dtype = check_float_dtype(dtype, where)
        self.backend = backend
        rng = check_random_state(random_state, where)
        self.couplings = ModuleList(
            AffineCoupling(m, self.hidden, self.activation, self.max_log_scale, rng=rng,
                           dtype=self.dtype, backend=backend) for m in self.masks)
        self.history_ = None

    # -- the model: f, g = f^{-1}, log p(x) --------------------------------------------------

    def base(self):
        r"""The base density :math:`p(z) = \mathcal N(0, I_d)` (a
        :class:`~scratchdgm.distributions.StandardNormal`)."""
        return StandardNormal(self.input_dim, self.dtype, backend=self.backend)

    def forward(self, x):
        r""":math:`z = f_\theta(x)` and :math:`\log|\det J_f(x)|`, differentiable.

        Parameters
        ----------
        x : Tensor or ndarray, shape (B, d)

        Returns
        -------
        z : Tensor, shape (B, d)
        log_det : Tensor, shape (B,)
            :math:`\sum_l \log|\det J_{f_l}|`, the sum of the layers' :math:`\sum_j s_j`.
        """
        log_det = 0.0
        for layer in self.couplings:
            x, ld = layer(x)
            log_det = ld + log_det
        return x, log_det

    def inverse(self, z):
        r""":math:`x = g_\theta(z) = f_\theta^{-1}(z)`: the layers' inverses in reverse order.

        Parameters
        ----------
        z : Tensor or ndarray, shape (B, d)

        Returns
        -------
        Tensor, shape (B, d)
        """
        for layer in reversed(list(self.couplings)):
            z = layer.inverse(z)
        return z

    def log_prob(self, x):
        r""":math:`\log p(x \mid \theta) = \log \mathcal N(f_\theta(x) \mid 0, I) + \log|\det
        J_f(x)|` for a batch ``x`` of shape (B, d); a Tensor of shape (B,)
        ([Isachenko-L4, "Forward KL for flow model"])."""
        z, log_det = self.forward(x)
        return self.base().log_prob(z) + log_det

    def objective(self, x, k=None, rng=None):
        r"""The loss of one training step: :math:`-\frac1B \sum_i \log p(x_i \mid \theta)`, the
        forward KL to the data up to the data's (constant) entropy.

        ``k`` and ``rng`` are accepted for the training loop's protocol and not used: nothing
        here is random.
        """
        return -self.log_prob(x).mean()

    def log_weights(self, x, k, rng=None):
        r"""The VAE reading of the flow: K copies of :math:`\log p(x \mid \theta)`, shape (k, B).

        With the deterministic encoder :math:`q(z \mid x) = \delta(z - f_\theta(x))` every
        importance weight is the likelihood itself ([Isachenko-L4, "VAE vs Normalizing
        flows"]), so the evaluation functions written for VAEs (:math:`\mathcal L_K`, the
        importance-sampled log-likelihood) return the exact value for any K.
        """
        k = check_positive_int(k, "k", "log_weights")
        lp = self.log_prob(x)
        return lp.reshape(1, -1).broadcast_to((k, lp.shape[0]))

    # -- the public boundary -----------------------------------------------------------------

    def check_data(self, X, where="X", *, allow_unit_interval=False):
        r"""Validate data: 2-D, ``input_dim`` columns, finite; returns an array of the model's
        dtype. (``allow_unit_interval`` belongs to the training loop's protocol: continuous
        data is never binarised.)"""
        return check_observations(X, self.input_dim, self.dtype, where)

    def fit(self, X, *, epochs=100, batch_size=100, lr=1e-3, X_val=None, checkpoint=None,
            resume=False, progress=True, random_state=0, callback=None, blas_threads=1,
            metadata=None):
        r"""Maximum likelihood by minibatch Adam, through
        :func:`scratchdgm.models.deep.training.fit` (checkpoints with exact resume, a progress
        bar, the NaN guard); the "bound" it reports per epoch is the exact mean
        log-likelihood. Returns ``self``."""
        _training.fit(self, X, epochs=epochs, batch_size=batch_size, lr=lr, X_val=X_val,
                      binarize="none", checkpoint=checkpoint, resume=resume,
                      progress=progress, random_state=random_state, callback=callback,
                      blas_threads=blas_threads, metadata=metadata)
        return self

    def score_samples(self, X, k=None, random_state=None, chunk_size=10_000):
        r"""The exact :math:`\log p(x_i \mid \theta)` of each row, shape (n,). (``k`` and
        ``random_state`` are accepted for the interface the deep models share; nothing is
        sampled.)"""
        X = self.check_data(X)
        out = np.empty(len(X))
        with _ad.no_grad():
            for s in range(0, len(X), chunk_size):
                out[s:s + chunk_size] = self.log_prob(X[s:s + chunk_size]).data
        return out

    def score(self, X, k=None, random_state=None):
        r"""The mean exact log-likelihood of the rows of ``X``, in nats per point."""
        return float(np.mean(self.score_samples(X)))

    def bound_samples(self, X, k=None, random_state=None, *, progress=True):
        r""":math:`\mathcal L_K(x_i)` for any K, which for a flow is :math:`\log p(x_i \mid
        \theta)` exactly (see :meth:`log_weights`)."""
        return _evaluation.bound_samples(self, X, 1, random_state, progress=progress)

    def bound(self, X, k=None, random_state=None, *, progress=True):
        r"""The mean of :meth:`bound_samples`: the exact mean log-likelihood."""
        return float(np.mean(self.bound_samples(X, k, random_state, progress=progress)))

    def transform(self, X):
        r"""The codes :math:`z = f_\theta(x)`, shape (n, d): the posterior "mean" of the
        deterministic encoder. On a well-fitted flow they look like draws of
        :math:`\mathcal N(0, I_d)`."""
        X = self.check_data(X)
        with _ad.no_grad():
            return np.array(self.forward(X)[0].data)

    def inverse_transform(self, Z):
        r"""The data points :math:`x = g_\theta(z)` of codes ``Z`` of shape (n, d)."""
        Z = check_observations(Z, self.input_dim, self.dtype, "Z")
        with _ad.no_grad():
            return np.array(self.inverse(Z).data)

    def sample(self, n_samples=1, random_state=None, *, return_latent=False):
        r"""Draw from the model: :math:`z \sim \mathcal N(0, I_d)`, then :math:`x =
        g_\theta(z)`.

        Returns
        -------
        X : ndarray, shape (n_samples, d)
        Z : ndarray, shape (n_samples, d)
            Only if ``return_latent``.
        """
        n = check_positive_int(n_samples, "n_samples", "sample")
        rng = check_random_state(random_state, "sample")
        z = self.base().sample((n,), rng)
        x = self.inverse_transform(z)
        return (x, z) if return_latent else x

    # -- persistence -------------------------------------------------------------------------

    def config(self):
        r"""The constructor arguments that rebuild this architecture (JSON-serialisable)."""
        return {
            "class": type(self).__name__,
            "input_dim": self.input_dim,
            "n_layers": self.n_layers,
            "hidden": list(self.hidden),
            "activation": self.activation,
            "max_log_scale": self.max_log_scale,
            "masks": self.masks.astype(int).tolist(),
            "dtype": self.dtype.name,
        }

    def extra_repr(self):
        return (f"input_dim={self.input_dim}, n_layers={self.n_layers}, "
                f"hidden={list(self.hidden)}")
