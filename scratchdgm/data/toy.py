r"""The lectures' synthetic data: the 1-D-latent toy DLVM with its exact log-likelihood, 2-D
toy sets, and a linear model with Student's t noise. Every sampler takes ``rng`` (a
``numpy.random.Generator`` or an int seed)."""

import math

import numpy as np

from scratchdgm import numerics as _num
from scratchdgm.validation import check_positive_float, check_positive_int, check_random_state

__all__ = ["toy_dlvm_decoder", "toy_dlvm_sample", "toy_dlvm_log_likelihood", "two_moons",
           "pinwheel", "ring_of_gaussians", "heavy_tailed_linear"]

_LOG_2PI = math.log(2.0 * math.pi)


# ------------------------------------------------------------------------------ toy DLVM
def toy_dlvm_decoder(z):
    r"""The lecture's toy decoder :math:`f_\theta(z) = (\mu_\theta(z), \Sigma_\theta(z))`.

    Parameters
    ----------
    z : array_like, shape (n,) or (n, 1)
        Latent codes (:math:`d = 1`).

    Returns
    -------
    mu : ndarray, shape (n, 2)
    sigma : ndarray, shape (n, 2)
        Standard deviations (square roots of the diagonal of :math:`\Sigma_\theta(z)`).

    Notes
    -----
    .. math::

        \mu_\theta(z) = \big(10 \sin^3 z,\; 10 \cos z - 10 \cos^4 z\big), \qquad
        \Sigma_\theta(z) = \operatorname{Diag}\Big(\big(\tfrac{\sin z}{3z}\big)^2,
        \big(\tfrac{\sin z}{z}\big)^2\Big).

    :math:`\sin z / z` is computed as ``np.sinc(z / pi)``, which is exactly 1 at :math:`z = 0`
    (the naive quotient is 0/0 there).

    References
    ----------
    [Mattei-DGM, "Deep latent variable models: the
    role of the decoder".
    """
    z = np.asarray(z, dtype=np.float64)
    if z.ndim == 2 and z.shape[1] == 1:
        z = z[:, 0]
    if z.ndim != 1:
        raise ValueError(f"toy_dlvm_decoder: z must have shape (n,) or (n, 1) (latent "
                         f"dimension d = 1), got {z.shape}")
    s, c = np.sin(z), np.cos(z)
    mu = np.stack([10.0 * s ** 3, 10.0 * c - 10.0 * c ** 4], axis=1)
    sinc = np.abs(np.sinc(z / np.pi))
    sigma = np.stack([sinc / 3.0, sinc], axis=1)
    return mu, sigma


def toy_dlvm_sample(n, rng):
    r"""Sample the lecture's 1-D toy deep latent variable model (:math:`d = 1`, :math:`p = 2`).

    Parameters
    ----------
    n : int
        Number of points.
    rng : numpy.random.Generator or int

    Returns
    -------
    x : ndarray, shape (n, 2)
    z : ndarray, shape (n, 1)

    Notes
    -----
    .. math::

        z \sim \mathcal N(0, 1), \qquad x \mid z \sim \mathcal N(\mu_\theta(z), \Sigma_\theta(z))

    with :math:`\mu_\theta, \Sigma_\theta` of :func:`toy_dlvm_decoder`. The data trace a curve in
    the plane, thick near :math:`z = 0` and pinched where :math:`\sin z = 0`.

    References
    ----------
    [Mattei-DGM, "Deep latent variable models: the role of the decoder"].
    """
    n = check_positive_int(n, "n", "toy_dlvm_sample")
    rng = check_random_state(rng, "toy_dlvm_sample")
    z = rng.standard_normal((n, 1))
    mu, sigma = toy_dlvm_decoder(z)
    return mu + sigma * rng.standard_normal((n, 2)), z


def toy_dlvm_log_likelihood(x, n_grid=20001, z_max=8.0):
    r"""Exact (to quadrature error) :math:`\log p(x)` of the toy DLVM: ground truth for the
    deep models fitted to :func:`toy_dlvm_sample`.

    Parameters
    ----------
    x : array_like, shape (n, 2)
    n_grid : int, default 20001
        Number of midpoints of the quadrature grid on :math:`[-z_{\max}, z_{\max}]`.
    z_max : float, default 8.0
        The prior mass outside is :math:`2\Phi(-8) \approx 10^{-15}`.

    Returns
    -------
    ndarray, shape (n,)

    Notes
    -----
    With one latent dimension the marginal is a 1-D integral, computed by the midpoint rule
    in log space:

    .. math::

        \log p(x) = \log \int \mathcal N(x \mid \mu_\theta(z), \Sigma_\theta(z))\,
        \mathcal N(z \mid 0, 1)\, dz
        \approx \operatorname{logsumexp}_j \big[\log \mathcal N(x \mid \mu_\theta(z_j),
        \Sigma_\theta(z_j)) + \log \mathcal N(z_j \mid 0, 1)\big] + \log \Delta z.

    The posterior :math:`p(z \mid x)` is narrowest (a width of about 0.006) for points near
    :math:`(0, -20) = \mu_\theta(\pm\pi)`, where :math:`\Sigma_\theta` vanishes; the default
    grid step of 8e-4 resolves it. The density itself is unbounded at :math:`(0, -20)`.

    References
    ----------
    [Mattei-DGM, "Maximum likelihood for DLVM"] (the integral) and "Deep latent variable models:
    the role of the decoder" (the model).
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != 2:
        raise ValueError(f"toy_dlvm_log_likelihood: x must have shape (n, 2), got {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("toy_dlvm_log_likelihood: x contains NaN or infinite values")
    n_grid = check_positive_int(n_grid, "n_grid", "toy_dlvm_log_likelihood")
    z_max = check_positive_float(z_max, "z_max", "toy_dlvm_log_likelihood")
    dz = 2.0 * z_max / n_grid
    z = -z_max + dz * (np.arange(n_grid) + 0.5)
    mu, sigma = toy_dlvm_decoder(z)
    # sigma is exactly 0 only at z = k*pi, which the midpoints avoid; the floor guards anyway
    log_sigma = np.log(np.maximum(sigma, 1e-300))
    inv_sigma = np.exp(-log_sigma)
    base = -0.5 * z ** 2 - 0.5 * _LOG_2PI - log_sigma.sum(axis=1) - _LOG_2PI + math.log(dz)
    out = np.empty(len(x))
    chunk = max(1, 2_000_000 // n_grid)  # bound the (chunk, n_grid) temporaries
    for start in range(0, len(x), chunk):
        xs = x[start:start + chunk]
        r0 = (xs[:, None, 0] - mu[None, :, 0]) * inv_sigma[None, :, 0]
        r1 = (xs[:, None, 1] - mu[None, :, 1]) * inv_sigma[None, :, 1]
        terms = base[None, :] - 0.5 * (r0 * r0 + r1 * r1)
        out[start:start + chunk] = _num.logsumexp(terms, axis=1)
    return out


# ------------------------------------------------------------------------------ 2-D toy sets
def two_moons(n, rng, noise=0.1):
    r"""Two interleaved half circles in the plane.

    Parameters
    ----------
    n : int
    rng : numpy.random.Generator or int
    noise : float, default 0.1
        Standard deviation of isotropic Gaussian noise added to every point.

    Returns
    -------
    x : ndarray, shape (n, 2)
        Roughly within :math:`[-1, 2] \times [-0.5, 1]` plus noise.
    y : ndarray, shape (n,)
        Moon of each point (0 upper, 1 lower), int64, drawn with probability 1/2.

    Notes
    -----
    With :math:`t \sim \mathcal U[0, \pi]`: upper moon :math:`(\cos t, \sin t)`, lower moon
    :math:`(1 - \cos t, \tfrac12 - \sin t)`, plus :math:`\mathcal N(0, \text{noise}^2 I_2)`.
    """
    n = check_positive_int(n, "n", "two_moons")
    rng = check_random_state(rng, "two_moons")
    if not (np.isfinite(noise) and noise >= 0):
        raise ValueError(f"two_moons: noise must be a finite number >= 0, got {noise!r}")
    y = rng.integers(0, 2, size=n)
    t = rng.uniform(0.0, np.pi, size=n)
    upper = np.stack([np.cos(t), np.sin(t)], axis=1)
    lower = np.stack([1.0 - np.cos(t), 0.5 - np.sin(t)], axis=1)
    x = np.where(y[:, None] == 0, upper, lower) + noise * rng.standard_normal((n, 2))
    return x, y.astype(np.int64)


def pinwheel(n, rng, n_arms=5, radial_std=0.3, tangential_std=0.05, rate=0.25):
    r"""The pinwheel: Gaussian blobs bent into spiral arms.

    Parameters
    ----------
    n : int
    rng : numpy.random.Generator or int
    n_arms : int, default 5
    radial_std, tangential_std : float
        Spread along and across each arm before bending.
    rate : float, default 0.25
        How strongly the arms are bent.

    Returns
    -------
    x : ndarray, shape (n, 2)
        Roughly within :math:`[-4, 4]^2`.
    y : ndarray, shape (n,)
        Arm of each point (int64, uniform).

    Notes
    -----
    For arm :math:`k` with base angle :math:`2\pi k / K`: draw
    :math:`r = 1 + \text{radial\_std}\,\epsilon_1`, :math:`s = \text{tangential\_std}\,\epsilon_2`
    and rotate :math:`(r, s)` by :math:`2\pi k/K + \text{rate}\, e^{r}`, then scale by 2.
    A non-Gaussian, multimodal 2-D density on which a standard-Gaussian prior must work hard
    ([Mattei-S2D, "The role of the prior"]).

    References
    ----------
    Johnson, Duvenaud, Wiltschko, Datta & Adams (2016), "Composing graphical models with neural
    networks for structured representations and fast inference", NeurIPS, §6 (the synthetic
    spiral-cluster data).
    """
    n = check_positive_int(n, "n", "pinwheel")
    n_arms = check_positive_int(n_arms, "n_arms", "pinwheel")
    rng = check_random_state(rng, "pinwheel")
    y = rng.integers(0, n_arms, size=n)
    r = 1.0 + radial_std * rng.standard_normal(n)
    s = tangential_std * rng.standard_normal(n)
    angle = 2.0 * np.pi * y / n_arms + rate * np.exp(r)
    c, sn = np.cos(angle), np.sin(angle)
    x = 2.0 * np.stack([c * r - sn * s, sn * r + c * s], axis=1)
    return x, y.astype(np.int64)


def ring_of_gaussians(n, rng, k=8, radius=2.0, std=0.1):
    r"""An equal mixture of ``k`` isotropic Gaussians on a circle.

    Parameters
    ----------
    n : int
    rng : numpy.random.Generator or int
    k : int, default 8
    radius : float, default 2.0
    std : float, default 0.1

    Returns
    -------
    x : ndarray, shape (n, 2)
    y : ndarray, shape (n,)
        Component of each point (int64).

    Notes
    -----
    .. math::

        p(x) = \frac1k \sum_{j=0}^{k-1} \mathcal N\big(x \mid
        \rho (\cos \tfrac{2\pi j}{k}, \sin \tfrac{2\pi j}{k}), \text{std}^2 I_2\big).

    Its density is known exactly, so a model's log-likelihood can be compared with the truth; it
    is also the textbook case for a Gaussian-mixture prior ([Mattei-S2D, "The role of the
    prior"]).
    """
    n = check_positive_int(n, "n", "ring_of_gaussians")
    k = check_positive_int(k, "k", "ring_of_gaussians")
    radius = check_positive_float(radius, "radius", "ring_of_gaussians")
    std = check_positive_float(std, "std", "ring_of_gaussians")
    rng = check_random_state(rng, "ring_of_gaussians")
    y = rng.integers(0, k, size=n)
    angle = 2.0 * np.pi * y / k
    centres = radius * np.stack([np.cos(angle), np.sin(angle)], axis=1)
    return centres + std * rng.standard_normal((n, 2)), y.astype(np.int64)


def _dct_loadings(p, d):
    # deterministic, orthogonal columns: the data model does not depend on the sampling rng
    j = np.arange(p)[:, None]
    k = np.arange(d)[None, :]
    w = np.cos(np.pi * (j + 0.5) * (k + 0.5) / p)
    return 2.0 * w / np.linalg.norm(w, axis=0)


def heavy_tailed_linear(n, rng, p=5, d=2, df=2.5, noise_scale=0.5):
    r"""A linear latent-variable model with Student's t noise: data for a Student's t decoder.

    Parameters
    ----------
    n : int
    rng : numpy.random.Generator or int
    p, d : int, default 5, 2
        Observed and latent dimensions, :math:`1 \le d \le p`.
    df : float, default 2.5
        Degrees of freedom :math:`\nu` of the noise (variance infinite for :math:`\nu \le 2`).
    noise_scale : float, default 0.5

    Returns
    -------
    x : ndarray, shape (n, p)
    z : ndarray, shape (n, d)

    Notes
    -----
    .. math::

        z \sim \mathcal N(0, I_d), \qquad x = W z + \text{noise\_scale}\;\epsilon, \qquad
        \epsilon_j \overset{iid}{\sim} t_\nu,

    with fixed loadings :math:`W` (:math:`p \times d`, orthogonal columns of norm 2, a cosine
    basis; they do not depend on ``rng``). A Gaussian observation model
    pays dearly for the outliers; the Student's t one of [Mattei-DGM] ("Deep latent variable
    models: the role of the observation model") does not. It is factor analysis ([Mattei-DGM,
    "Linear latent-variable models"]) with the Gaussian noise replaced by Student's t noise.
    """
    n = check_positive_int(n, "n", "heavy_tailed_linear")
    p = check_positive_int(p, "p", "heavy_tailed_linear")
    d = check_positive_int(d, "d", "heavy_tailed_linear")
    if d > p:
        raise ValueError(f"heavy_tailed_linear: need d <= p, got d={d}, p={p}")
    df = check_positive_float(df, "df", "heavy_tailed_linear")
    noise_scale = check_positive_float(noise_scale, "noise_scale", "heavy_tailed_linear")
    rng = check_random_state(rng, "heavy_tailed_linear")
    z = rng.standard_normal((n, d))
    noise = rng.standard_t(df, size=(n, p))
    return z @ _dct_loadings(p, d).T + noise_scale * noise, z


