r"""The linear mixed model with its random effects integrated out over per-group sufficient statistics.

Model, for group :math:`i` with :math:`n_i` rows:
:math:`y_i = X_i\beta + Z_i b_i + \varepsilon_i`, :math:`b_i \sim N(0, \sigma^2\Lambda)`,
:math:`\varepsilon_i \sim N(0, \sigma^2 I)`, so :math:`y_i \sim N(X_i\beta, \sigma^2 V_i)` with
:math:`V_i = I + Z_i \Lambda Z_i'` (:math:`\Lambda` is the random-effects covariance relative to
:math:`\sigma^2`, as in lme4).

Each group enters only through :math:`S_i = Z_i'Z_i`, the within-group least-squares coefficients
:math:`\hat b^y_i = S_i^{-1}Z_i'y_i`, :math:`\hat B_i = S_i^{-1}Z_i'X_i`, and the residual
cross-products of :math:`y` and :math:`X` after that within-group regression (data centred within
each group, formed in float64). With :math:`C_i = S_i^{-1} + \Lambda` and
:math:`w_i = \hat b^y_i - \hat B_i\beta`:

.. math::

    r'V^{-1}r = \mathrm{RSS}_w(\beta) + \sum_i w_i' C_i^{-1} w_i, \qquad
    \log|V| = \sum_i \log|S_i| + \log|C_i|

    X'V^{-1}X = \tilde X'\tilde X + \sum_i \hat B_i' C_i^{-1} \hat B_i

Both quadratic forms are sums of non-negative terms, so nothing cancels; the within-group residual
sum of squares is written as :math:`\mathrm{RSS}_w(\beta_w) + (\beta-\beta_w)'\tilde X'\tilde X(\beta-\beta_w)`
with :math:`\mathrm{RSS}_w(\beta_w)` summed directly from residuals. A likelihood evaluation costs
:math:`O(G q^3 + G q^2 p^2)` whatever the number of rows per group.

This module is the one reference implementation of that likelihood, in plain NumPy for any
:math:`q`: :func:`integrated_loglik` (with its gradient) and :func:`log_posterior` (the sampled
density in unconstrained coordinates, for :math:`q \le 2`). In the absolute parametrisation used
by the samplers, :math:`K_i = \sigma^2 S_i^{-1} + \Sigma` (:math:`\Sigma = \sigma^2\Lambda`) and

.. math::

    -2\ell = N\log 2\pi + (N - Gq)\log\sigma^2 + \log|S| + \sum_i \log|K_i|
             + \frac{\mathrm{RSS}_w(\beta)}{\sigma^2} + \sum_i w_i' K_i^{-1} w_i,

    \partial_\beta \ell = -\tilde X'\tilde X(\beta - \beta_w)/\sigma^2 + \sum_i \hat B_i' K_i^{-1} w_i,

    \partial_{\sigma^2} \ell = -\tfrac12\Big[\tfrac{N - Gq}{\sigma^2} - \tfrac{\mathrm{RSS}_w(\beta)}{\sigma^4}
        + \sum_i \operatorname{tr}(K_i^{-1}S_i^{-1}) - w_i'K_i^{-1}S_i^{-1}K_i^{-1}w_i\Big],

    \partial_\Sigma \ell = -\tfrac12 \sum_i \big(K_i^{-1} - K_i^{-1} w_i w_i' K_i^{-1}\big).

The fast backends (the numba kernel in :mod:`causalcts.bayes.fastlogp`, the JAX function in
:mod:`causalcts.bayes.jaxlogp`, the PyTensor graph in :mod:`causalcts.bayes.mixed`) are tested
against these functions to 1e-10.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from causalcts.errors import CollinearityError

__all__ = [
    "GroupStats",
    "NormalPrior",
    "group_stats",
    "integrated_loglik",
    "log_posterior",
    "profiled_deviance",
    "unpack_unconstrained",
]

LOG2PI = float(np.log(2 * np.pi))


@dataclass(frozen=True)
class GroupStats:
    """Per-group sufficient statistics of a linear mixed model (see the module docstring)."""

    n: int
    p: int
    q: int
    S: np.ndarray  # (G, q, q)
    S_inv: np.ndarray  # (G, q, q)
    logdet_S: float
    by: np.ndarray  # (G, q)
    B: np.ndarray  # (G, q, p)
    Sxx_w: np.ndarray  # (p, p)
    beta_w: np.ndarray  # (p,)
    rss_w_min: float
    n_per_group: np.ndarray
    beta_ols: np.ndarray


def group_stats(y: np.ndarray, X: np.ndarray, Z: np.ndarray, group_codes: np.ndarray) -> GroupStats:
    """Sufficient statistics; rows must be sorted by ``group_codes`` (0..G-1, contiguous)."""
    y = np.asarray(y, dtype=np.float64)
    X = np.asarray(X, dtype=np.float64)
    Z = np.asarray(Z, dtype=np.float64)
    starts = np.r_[0, np.flatnonzero(np.diff(group_codes)) + 1]
    n_g = np.diff(np.r_[starts, len(y)])
    q = Z.shape[1]
    S = np.add.reduceat(Z[:, :, None] * Z[:, None, :], starts, axis=0)
    Zy = np.add.reduceat(Z * y[:, None], starts, axis=0)
    ZX = np.add.reduceat(Z[:, :, None] * X[:, None, :], starts, axis=0)
    sign, logdet = np.linalg.slogdet(S)
    cond = np.linalg.cond(S)
    bad = (sign <= 0) | (cond > 1e12)
    if bad.any():
        raise CollinearityError(
            f"{int(bad.sum())} group(s) (e.g. group number {int(np.flatnonzero(bad)[0])}) have too few distinct "
            f"rows to estimate their {q} random effect(s) by least squares; drop those groups or simplify the "
            "random-effects term."
        )
    S_inv = np.linalg.inv(S)
    by = np.einsum("gij,gj->gi", S_inv, Zy)
    B = np.einsum("gij,gjk->gik", S_inv, ZX)
    idx = np.repeat(np.arange(len(starts)), n_g)
    y_w = y - np.einsum("ni,ni->n", Z, by[idx])
    X_w = X - np.einsum("ni,nik->nk", Z, B[idx])
    # columns of X inside the span of Z (the intercept, team-level covariates) vanish within groups:
    # set their round-off residue to exact zeros so that beta_w is the minimum-norm solution
    scale = np.sqrt((X**2).sum(axis=0))
    scale[scale == 0] = 1.0
    dead = np.sqrt((X_w**2).sum(axis=0)) <= 1e-9 * scale
    X_w[:, dead] = 0.0
    Sxx_w = X_w.T @ X_w
    beta_w, *_ = np.linalg.lstsq(X_w, y_w, rcond=1e-10)
    r = y_w - X_w @ beta_w
    beta_ols, *_ = np.linalg.lstsq(X, y, rcond=None)
    return GroupStats(
        n=len(y),
        p=X.shape[1],
        q=q,
        S=S,
        S_inv=S_inv,
        logdet_S=float(logdet.sum()),
        by=by,
        B=B,
        Sxx_w=Sxx_w,
        beta_w=beta_w,
        rss_w_min=float(r @ r),
        n_per_group=n_g,
        beta_ols=beta_ols,
    )


def lambda_from_theta(theta: np.ndarray, q: int, correlated: bool) -> np.ndarray:
    """Relative covariance Lambda = L L' from lme4's theta (lower-triangular Cholesky, column-major)."""
    L = np.zeros((q, q))
    if correlated:
        L[np.tril_indices(q)[::-1]] = 0.0
        rows, cols = np.tril_indices(q)
        order = np.lexsort((rows, cols))  # column-major, as lme4 orders theta
        L[rows[order], cols[order]] = theta
    else:
        L[np.diag_indices(q)] = theta
    return L @ L.T


def gls_pieces(st: GroupStats, Lam: np.ndarray):
    """X'V^-1X, X'V^-1y pieces, per-group C^-1 and log|V| for relative covariance ``Lam``."""
    C = st.S_inv + Lam[None, :, :]
    sign, logdet_C = np.linalg.slogdet(C)
    Cinv = np.linalg.inv(C)
    CB = np.einsum("gij,gjk->gik", Cinv, st.B)
    XVX = st.Sxx_w + np.einsum("gji,gjk->ik", st.B, CB)
    Cby = np.einsum("gij,gj->gi", Cinv, st.by)
    XVy = st.Sxx_w @ st.beta_w + np.einsum("gji,gj->i", st.B, Cby)
    logdet_V = st.logdet_S + float(logdet_C.sum())
    return XVX, XVy, Cinv, logdet_V


def quad_form(st: GroupStats, beta: np.ndarray, Cinv: np.ndarray) -> float:
    """r'V^{-1}r at ``beta`` in the cancellation-safe form."""
    d = beta - st.beta_w
    w = st.by - np.einsum("gij,j->gi", st.B, beta)
    return st.rss_w_min + float(d @ st.Sxx_w @ d) + float(np.einsum("gi,gij,gj->", w, Cinv, w))


def profiled_deviance(theta: np.ndarray, st: GroupStats, correlated: bool, reml: bool):
    """-2 log-likelihood (ML) or REML criterion with beta and sigma^2 profiled out (lme4's deviance)."""
    Lam = lambda_from_theta(theta, st.q, correlated)
    XVX, XVy, Cinv, logdet_V = gls_pieces(st, Lam)
    try:
        beta = np.linalg.solve(XVX, XVy)
    except np.linalg.LinAlgError:
        return np.inf, None
    rss = quad_form(st, beta, Cinv)
    n, p = st.n, st.p
    if reml:
        df = n - p
        sign, logdet_X = np.linalg.slogdet(XVX)
        dev = df * (1 + np.log(2 * np.pi * rss / df)) + logdet_V + logdet_X
        sigma2 = rss / df
    else:
        dev = n * (1 + np.log(2 * np.pi * rss / n)) + logdet_V
        sigma2 = rss / n
    return float(dev), dict(beta=beta, sigma2=sigma2, XVX=XVX, Cinv=Cinv, Lam=Lam)


def conditional_modes(st: GroupStats, beta: np.ndarray, Lam: np.ndarray, Cinv: np.ndarray) -> np.ndarray:
    """BLUPs of the random effects: b_i = Lambda C_i^{-1} w_i."""
    w = st.by - np.einsum("gij,j->gi", st.B, beta)
    return np.einsum("ij,gjk,gk->gi", Lam, Cinv, w)


def conditional_cov(st: GroupStats, Lam: np.ndarray, Cinv: np.ndarray, sigma2: float) -> np.ndarray:
    """Conditional covariance of b_i given beta, theta, sigma: sigma^2 Lambda C_i^{-1} S_i^{-1}."""
    M = np.einsum("ij,gjk,gkl->gil", Lam, Cinv, st.S_inv)
    return sigma2 * 0.5 * (M + np.transpose(M, (0, 2, 1)))


# --------------------------------------------------------------------------------------------------
# The reference log-likelihood and log posterior in the absolute parametrisation (beta, sigma^2, Sigma)


def integrated_loglik(st: GroupStats, beta: np.ndarray, sigma2: float, Sigma: np.ndarray, *, grad: bool = False):
    r"""Integrated log-likelihood at ``(beta, sigma2, Sigma)`` (module docstring), optionally with its gradient.

    Returns ``ll`` or ``(ll, d_beta, d_sigma2, d_Sigma)``; ``d_Sigma`` is the symmetric matrix
    :math:`G` with :math:`d\ell = \operatorname{tr}(G\, d\Sigma)`.
    """
    beta = np.asarray(beta, dtype=np.float64)
    Sigma = np.asarray(Sigma, dtype=np.float64)
    G, q = st.by.shape
    K = sigma2 * st.S_inv + Sigma[None, :, :]
    sign, logdet_K = np.linalg.slogdet(K)
    if np.any(sign <= 0):
        return -np.inf if not grad else (-np.inf, None, None, None)
    Kinv = np.linalg.inv(K)
    d = beta - st.beta_w
    rss = st.rss_w_min + float(d @ st.Sxx_w @ d)
    w = st.by - np.einsum("gij,j->gi", st.B, beta)
    Kw = np.einsum("gij,gj->gi", Kinv, w)
    quad = float(np.einsum("gi,gi->", w, Kw))
    ll = -0.5 * (
        st.n * LOG2PI + (st.n - G * q) * np.log(sigma2) + st.logdet_S + float(logdet_K.sum()) + rss / sigma2 + quad
    )
    if not grad:
        return float(ll)
    d_beta = -(st.Sxx_w @ d) / sigma2 + np.einsum("gij,gi->j", st.B, Kw)
    trace = float(np.einsum("gij,gji->", Kinv, st.S_inv))
    wKSKw = float(np.einsum("gi,gij,gj->", Kw, st.S_inv, Kw))
    d_sigma2 = -0.5 * ((st.n - G * q) / sigma2 - rss / sigma2**2 + trace - wKSKw)
    d_Sigma = -0.5 * (Kinv - Kw[:, :, None] * Kw[:, None, :]).sum(axis=0)
    return float(ll), d_beta, float(d_sigma2), d_Sigma


@dataclass(frozen=True)
class NormalPrior:
    r"""The prior of the sampled model, on the parameters the likelihood sees.

    :math:`\beta_j \sim N(\text{beta\_mu}_j, \text{beta\_sd}_j^2)`, :math:`\sigma \sim
    \text{HalfNormal}(\text{sigma\_sd})`, random-effect SD :math:`\tau_k \sim
    \text{HalfNormal}(\text{re\_sd}_k)` and, for two correlated effects, :math:`\rho \sim
    \text{LKJ}(\eta)`, density :math:`\propto (1-\rho^2)^{\eta-1}`.
    """

    beta_mu: np.ndarray
    beta_sd: np.ndarray
    sigma_sd: float
    re_sd: np.ndarray
    lkj_eta: float = 1.0


def unpack_unconstrained(x: np.ndarray, p: int, q: int, has_rho: bool):
    """Unconstrained coordinates ``[beta, log sigma, log tau_1..q, atanh rho]`` -> (beta, sigma, tau, rho)."""
    x = np.asarray(x, dtype=np.float64)
    rho = float(np.tanh(x[p + 1 + q])) if has_rho else 0.0
    return x[:p], float(np.exp(x[p])), np.exp(x[p + 1 : p + 1 + q]), rho


def log_posterior(x: np.ndarray, st: GroupStats, prior: NormalPrior, correlated: bool) -> tuple[float, np.ndarray]:
    r"""Log posterior (up to a constant) in unconstrained coordinates and its gradient, for q <= 2.

    Coordinates: :math:`x = (\beta, \log\sigma, \log\tau_1, \ldots, \log\tau_q, \operatorname{atanh}\rho)`,
    the last only for two correlated effects. The density adds the log-Jacobians
    :math:`\log\sigma + \sum_k \log\tau_k + \log(1-\rho^2)` to the prior (:class:`NormalPrior`) and
    the integrated log-likelihood (:func:`integrated_loglik`). Non-finite values give ``(-inf, 0)``.
    """
    p, q = st.p, st.q
    if q > 2:
        raise ValueError("log_posterior handles one or two random effects per group.")
    has_rho = correlated and q == 2
    beta, sigma, tau, rho = unpack_unconstrained(x, p, q, has_rho)
    R = np.eye(q)
    if has_rho:
        R[0, 1] = R[1, 0] = rho
    D = np.diag(tau)
    Sigma = D @ R @ D
    ll, d_beta, d_s2, d_Sigma = integrated_loglik(st, beta, sigma**2, Sigma, grad=True)
    if not np.isfinite(ll):
        return -np.inf, np.zeros(len(x))
    zb = (beta - prior.beta_mu) / prior.beta_sd
    zt = tau / prior.re_sd
    lp = ll - 0.5 * float(zb @ zb) - 0.5 * (sigma / prior.sigma_sd) ** 2 - 0.5 * float(zt @ zt)
    lp += np.log(sigma) + float(np.log(tau).sum())  # log-Jacobians of exp
    g = np.empty(len(x))
    g[:p] = d_beta - zb / prior.beta_sd
    g[p] = d_s2 * 2 * sigma**2 - (sigma / prior.sigma_sd) ** 2 + 1.0
    d_tau = 2.0 * np.diag(R @ D @ d_Sigma)  # dSigma/dtau_k, Sigma = D R D
    g[p + 1 : p + 1 + q] = d_tau * tau - zt**2 + 1.0
    if has_rho:
        lp += prior.lkj_eta * np.log1p(-(rho**2))  # LKJ density (eta - 1) log(1 - rho^2) plus log-Jacobian of tanh
        g[p + 1 + q] = 2.0 * d_Sigma[0, 1] * tau[0] * tau[1] * (1 - rho**2) - 2.0 * prior.lkj_eta * rho
    if not (np.isfinite(lp) and np.all(np.isfinite(g))):
        return -np.inf, np.zeros(len(x))
    return float(lp), g
