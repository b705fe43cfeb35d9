r"""Bayesian dynamic panel with predetermined regressors: the Bayesian twin of the ML-SEM likelihood.

``causalcts.fit(formula, data, method="bayes", predetermined=["ai_share"])`` samples the posterior of the
model of :mod:`causalcts.models.sem` (``method="ml"``, ``xtdpdml``): one equation per wave,

.. math:: y_{it} = \alpha_i + \nu_t + \sum_k \beta_k y_{i,t-k} + \gamma' x_{it} + \delta' w_i + e_{it},

with the team effect :math:`\alpha_i` a latent variable of the joint normal model of every observed
variable, integrated out exactly as in ML-SEM: it covaries freely with the initial outcomes and with every
time-varying regressor at every wave (a fixed effect), the error of wave ``t`` covaries freely with a
predetermined regressor at later waves (feedback from the outcome to adoption) and the likelihood is
:math:`\ell(\theta)` of :mod:`causalcts.models.sem` (full information by missingness pattern when teams
miss weeks). Without ``predetermined=`` ``method="bayes"`` is the strict-exogeneity model of
:mod:`causalcts.bayes.dynamic`.

Priors are stated on the internal scale of :func:`causalcts.models.sem.build_wide`, where every column is
centred and every variable divided by its pooled SD (as ``bayes/mixed.py`` standardises), so a coefficient
is in units of :math:`s_y/s_x`:

.. math::

    \beta_k, \gamma_j, \delta_j &\sim N(0, (2.5 c)^2), \qquad
    \nu_t, \mu_{u,j} \sim N(0, (2.5 c)^2), \\
    \sqrt{\omega} &\sim \text{HalfNormal}(2.5 c), \qquad \sigma_t \sim \text{HalfNormal}(c), \\
    \Phi_{uu} &\sim \text{Inverse-Wishart}(q + 2, I_q), \qquad
    \phi_{\alpha u_j}, \phi_{e_t x_s} \sim N(0, c^2),

where :math:`\Phi_{uu}` is the covariance of the :math:`q` exogenous observed variables :math:`u` (initial
outcomes, regressors by wave; prior mean :math:`I`, the weakest inverse-Wishart with a mean),
:math:`\phi_{\alpha u}` the covariances of the team effect with them, :math:`\phi_{e_t x_s}` the feedback
covariances, :math:`\sigma_t^2` the error variance of wave ``t`` and
:math:`\omega = \psi - \phi_{\alpha u}'\Phi_{uu}^{-1}\phi_{\alpha u}` the part of the team effect's
variance :math:`\psi` that the exogenous variables do not explain (the variance of
:math:`\alpha - E[\alpha \mid u]`); all weakly informative against the unit scale of the standardised
data; ``c`` is ``prior_scale`` (default 1). The prior's support is the set where :math:`(u, \alpha)` and
every :math:`(u, e_t)` have a positive definite covariance (:math:`\omega > 0` and
:math:`\sigma_t^2 > \phi_{e_t u}'\Phi_{uu}^{-1}\phi_{u e_t}`), as covariances of random variables must;
``method="ml"`` requires only :math:`\Sigma` positive definite. ``priors`` overrides ``beta_scale``,
``intercept_scale``, ``re_scale`` (SD of the unexplained team effect, :math:`\sqrt{\omega}`),
``sigma_scale`` (error SD) and ``cov_scale`` (covariances), in those units.

Why :math:`\omega` and not :math:`\psi`: the team effect is nearly a linear function of the regressors at
every wave when adoption responds to it (:math:`\omega` is a few per cent of :math:`\psi` in the feedback
test), so :math:`\psi` and :math:`\phi_{\alpha u}` move together along a curved ridge; a half-normal on
:math:`\sqrt{\psi}` puts an infinite density at :math:`\psi = 0` at the end of that ridge, where NUTS
diverged (491 divergences at 800 teams x 6 waves before). On :math:`\omega` the same half-normal is the
usual random-effect prior of the conditional model :math:`\alpha \mid u`. The ridge is not gone: on that
design this sampler still reports 25 to 47 divergences, which the collapsed sampler below removes.

Two samplers. Where the concentrated likelihood of :class:`causalcts.models.sem.Profile` is exact (complete
data, no time-invariant regressor, nested feedback sets: :func:`causalcts.models.sem.profile_layout`),
``sampler="auto"`` (or ``"nutpie"``) samples the *collapsed* posterior of
:mod:`causalcts.bayes.dynamic_sem_collapsed`: only the coefficients and the error variances, with the priors
above on them, while every nuisance block (the covariance of the exogenous variables, the team effect's
covariances and variance, the feedback covariances, the intercepts) carries the standard noninformative prior
that module states and is integrated out in closed form; the team effect's variance and the wave intercepts
are then drawn from their exact conditional posteriors. On that path the nuisance priors stated above (on
:math:`\Phi_{uu}`, :math:`\phi`, :math:`\omega`, :math:`\nu`, :math:`\mu_u`) are replaced by those, so
``intercept_scale``, ``re_scale`` and ``cov_scale`` do not apply, and :math:`\omega > 0` is not imposed (as
``method="ml"``, only :math:`\Sigma` positive definite). Elsewhere, or with ``sampler="full"``, the full
sampler below runs. ``res.info["collapsed"]`` says which ran and ``res.info["n_sampled"]`` how many
dimensions NUTS sampled (40 against 1,517 at 2,000 teams x 39 weeks: 10 CPU s against 68,
``benchmarks/bench_bayes_sem.py``).

Full sampler: NUTS (nutpie, ``from_pyfunc``) on the NumPy log-posterior and its analytic gradient. The sampled
coordinates are unconstrained (:math:`\Phi_{uu} = LL'` with log-diagonal Cholesky factor; the logs of the
residual variances :math:`\omega` and :math:`\sigma_t^2 - \phi_{e_t u}'\Phi_{uu}^{-1}\phi_{u e_t}` in
place of :math:`\psi` and :math:`\sigma_t^2`, which straightens that ridge; Jacobians added) and whitened:
:math:`x = \hat x + Wz`, with :math:`\hat x` the maximum-likelihood point (a residual variance the ML fit
puts at or below zero is centred at 5% of its variance) and :math:`WW'` the inverse of the observed
information there (:func:`causalcts.models.sem.maximise_likelihood`). The map is affine, so the posterior
is exact; it only makes the thousand-odd correlated nuisance covariances (they grow as :math:`T^2`) an
easy target for NUTS. Where the proposal makes :math:`\Sigma` indefinite the log-posterior is
:math:`-\infty` (nutpie counts a divergence).

Draws are mapped back to the data's units: ``beta`` (dim ``term``), the wave intercepts ``intercept``
(dim ``wave``), ``alpha_variance`` and ``error_variance`` (dim ``wave``).
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import linalg, sparse
from scipy.linalg import blas

from causalcts.bayes.dynamic_sem_collapsed import CollapsedPosterior, nuisance_draws
from causalcts.bayes.mixed import _check_sampler_counts, resolve_cores, resolve_seed
from causalcts.bayes.results import BayesResults, diagnose
from causalcts.data.formula import formula_spec
from causalcts.data.panel import Panel
from causalcts.errors import CausalCTSError, EmptyPanelError, SpecificationError, check_option
from causalcts.models.sem import (
    WideData,
    build_wide,
    fisher_information,
    fit_function,
    maximise_likelihood,
    maximise_profile,
    missingness_patterns,
    one_blas_thread,
    original_map,
    profile_layout,
    wave_labels,
)

__all__ = ["SemPosterior", "fit_bayes_sem"]

#: Prior scales in the standardised units of the module docstring.
DEFAULT_PRIORS = {"beta_scale": 2.5, "intercept_scale": 2.5, "re_scale": 2.5, "sigma_scale": 1.0, "cov_scale": 1.0}


#: NUTS's target acceptance on the collapsed posterior (module docstring): smaller steps than the default 0.8.
_TARGET_ACCEPT = 0.9


def _prior_scales(priors: dict | None, prior_scale: float) -> dict[str, float]:
    priors = dict(priors or {})
    unknown = set(priors) - set(DEFAULT_PRIORS)
    if unknown:
        raise CausalCTSError(
            f"Unknown prior setting(s) {sorted(unknown)} for method='bayes' with predetermined=; use "
            f"{sorted(DEFAULT_PRIORS)} (standardised units)."
        )
    if isinstance(prior_scale, bool) or not isinstance(prior_scale, (int, float, np.number)) or not prior_scale > 0:
        raise CausalCTSError(f"prior_scale must be a positive number, not {prior_scale!r}.")
    out = {**DEFAULT_PRIORS, **priors}
    for key, val in out.items():
        if isinstance(val, bool) or not isinstance(val, (int, float, np.number)) or not (np.isfinite(val) and val > 0):
            raise CausalCTSError(f"priors[{key!r}] must be a positive number, not {val!r}.")
    return {k: float(v) * float(prior_scale) for k, v in out.items()}


@dataclass
class SemPosterior:
    """Log posterior of the ML-SEM model in unconstrained coordinates ``x`` (module docstring), with gradient.

    ``x`` has the layout of the model's ``theta`` (:class:`causalcts.models.sem.Layout`) except that the
    ``phi`` block holds the Cholesky factor of :math:`\\Phi_{uu}` (diagonal as logs) and ``psi`` and
    ``sigma2`` hold the logs of the residual variances: of the team effect and of each wave's error, net of
    the part their covariances with the exogenous variables explain (module docstring). ``wishart`` weights
    the inverse-Wishart prior on ``Phi_uu`` (0: flat, for prior-sensitivity checks).

    Examples
    --------
    >>> import causalcts
    >>> from causalcts.data.panel import Panel
    >>> from causalcts.models import sem
    >>> sim = causalcts.simulate(n_teams=60, n_weeks=5, seed=1)
    >>> panel = Panel(sim.data, columns=["cr_velocity", "ai_share"])
    >>> wide, _ = sem.build_wide("cr_velocity ~ L(cr_velocity, 1) + ai_share", panel, ["ai_share"], False)
    >>> post = SemPosterior(wide, sem.missingness_patterns(wide.Z), _prior_scales(None, 1.0))
    >>> lp, grad = post.logp(post.to_x(sem.start_values(wide)))
    >>> bool(np.isfinite(lp)), grad.shape == (wide.layout.n_params,)
    (True, True)
    """

    wide: WideData
    patterns: list
    scales: dict
    wishart: float = 1.0

    def __post_init__(self) -> None:
        L = self.wide.layout
        self.layout = L
        self.N = self.wide.Z.shape[0]
        self.ndim = L.n_params
        self.n_obs_cells = sum(p.n * len(p.obs) for p in self.patterns)
        q = L.q
        self.diag = L.tril[0] == L.tril[1]
        self.diag_pos = np.flatnonzero(self.diag)
        # Jacobian of the log-diagonal Cholesky map Phi_uu = L L': sum_i (q - i + 2) l_i, i = 1..q
        self.jac_weight = (q - np.arange(q) + 1).astype(float)
        self.tril_weight = np.where(self.diag, 1.0, 2.0)  # d/d(tril entry) of a function of the symmetric Phi_uu
        # the latent variables with covariances with u: the team effect (column 0), and the error of every wave
        # (columns 1..m) where it has feedback covariances; their variances sit at var_pos of theta
        s = L.slices
        self.n_lat = 1 + (0 if L.error_inv else L.m)
        self.var_pos = np.concatenate([[s["psi"].start], np.arange(s["sigma2"].start, s["sigma2"].stop)])[: self.n_lat]
        self.cov_u = np.concatenate([L.ua, L.ue[0]])  # row in u of each covariance, as theta orders them
        self.cov_lat = np.concatenate([np.zeros(len(L.ua), dtype=int), 1 + L.ue[1]])
        self.cov_pos = np.r_[s["ua"], s["ue"]]
        if self.n_lat == 1:  # one error variance for every wave: its feedback covariances stay unshifted
            keep = self.cov_lat == 0
            self.cov_u, self.cov_lat, self.cov_pos = self.cov_u[keep], self.cov_lat[keep], self.cov_pos[keep]

    # ------------------------------------------------------------------ coordinates
    def _chol(self, x_phi: np.ndarray) -> np.ndarray:
        q = self.layout.q
        Lc = np.zeros((q, q))
        vals = x_phi.copy()
        vals[self.diag_pos] = np.exp(vals[self.diag_pos])
        Lc[self.layout.tril] = vals
        return Lc

    def _latent(self, Lc: np.ndarray, theta: np.ndarray):
        """Covariances ``V`` (q x n_lat) of the latent variables with u, ``B = Phi_uu^-1 V`` and the variance of
        each latent variable that u explains, ``diag(V' Phi_uu^-1 V)``."""
        V = np.zeros((self.layout.q, self.n_lat))
        V[self.cov_u, self.cov_lat] = theta[self.cov_pos]
        B = linalg.cho_solve((Lc, True), V)
        return V, B, np.einsum("ij,ij->j", V, B)

    def to_theta(self, x: np.ndarray) -> np.ndarray:
        """The model's parameters ``theta`` at the unconstrained point ``x``."""
        s = self.layout.slices
        theta = x.copy()
        Lc = self._chol(x[s["phi"]])
        theta[s["phi"]] = (Lc @ Lc.T)[self.layout.tril]
        theta[s["sigma2"]] = np.exp(x[s["sigma2"]])
        theta[self.var_pos] = self._latent(Lc, x)[2] + np.exp(x[self.var_pos])
        return theta

    def to_x(self, theta: np.ndarray) -> np.ndarray:
        """The unconstrained point of ``theta`` (``Phi_uu`` and the residual variances must be positive)."""
        L, s = self.layout, self.layout.slices
        x = np.asarray(theta, dtype=float).copy()
        Phi = np.zeros((L.q, L.q))
        Phi[L.tril] = theta[s["phi"]]
        Phi = Phi + np.tril(Phi, -1).T
        Lc = np.linalg.cholesky(Phi)
        vals = Lc[L.tril]
        vals[self.diag_pos] = np.log(vals[self.diag_pos])
        x[s["phi"]] = vals
        x[s["psi"]] = np.log(theta[s["psi"]])
        x[s["sigma2"]] = np.log(theta[s["sigma2"]])
        x[self.var_pos] = np.log(theta[self.var_pos] - self._latent(Lc, theta)[2])
        return x

    def _phi_block(self, Lc: np.ndarray) -> np.ndarray:
        """``d Phi_uu[tril] / d x[phi]``."""
        L = self.layout
        r, c = L.tril
        block = np.zeros((len(r), len(r)))
        for col, (i, j) in enumerate(zip(r, c, strict=True)):
            M = np.zeros((L.q, L.q))
            M[i, :] += Lc[:, j]
            M[:, i] += Lc[:, j]
            block[:, col] = M[r, c] * (Lc[i, i] if i == j else 1.0)
        return block

    def jacobian(self, x: np.ndarray) -> np.ndarray:
        """``d theta / d x`` (n_params x n_params): identity but for the Cholesky block and the variances (each
        variance depends on the covariances and ``Phi_uu`` too, but ``d variance / d x[variance]`` is its
        residual: the log determinant is that of the Cholesky map plus ``x[psi]`` and ``x[sigma2]``)."""
        L, s = self.layout, self.layout.slices
        J = np.eye(self.ndim)
        Lc = self._chol(x[s["phi"]])
        block = self._phi_block(Lc)
        idx = np.arange(s["phi"].start, s["phi"].stop)
        J[np.ix_(idx, idx)] = block
        for name in ("psi", "sigma2"):
            k = np.arange(s[name].start, s[name].stop)
            J[k, k] = np.exp(x[k])
        # variance = v' Phi_uu^-1 v + exp(x): d/dv = 2 b, d/dPhi_uu = -b b' (b = Phi_uu^-1 v)
        _, B, _ = self._latent(Lc, x)
        r, c = L.tril
        J[self.var_pos[self.cov_lat], self.cov_pos] = 2.0 * B[self.cov_u, self.cov_lat]
        J[np.ix_(self.var_pos, idx)] = (-(B[r] * B[c]) * self.tril_weight[:, None]).T @ block
        return J

    # ------------------------------------------------------------------ densities
    def loglik(self, theta: np.ndarray, grad: bool = True):
        """Log-likelihood of the scaled wide data at ``theta`` and its gradient; None where Sigma is not PD."""
        Sigma, mu, parts = self.layout.moments(theta)
        res = fit_function(Sigma, mu, self.patterns, self.N, grad=grad)
        if res is None:
            return None
        f, dS, dmu = res
        ll = -0.5 * (self.N * f + self.n_obs_cells * np.log(2 * np.pi))
        if not grad:
            return ll, None
        return ll, -0.5 * self.N * self.layout.backprop(dS[None], dmu[None], parts)[0]

    def log_prior(self, theta: np.ndarray, chol: np.ndarray | None = None) -> tuple[float, np.ndarray]:
        """Log prior density of ``theta`` (module docstring, up to a constant) and its gradient in ``theta``.

        ``chol``, the Cholesky factor of ``Phi_uu`` where the caller has it, saves refactoring it.
        """
        L, s, sc = self.layout, self.layout.slices, self.scales
        g = np.zeros(self.ndim)
        lp = 0.0
        for name, scale in (("coef", sc["beta_scale"]), ("nu", sc["intercept_scale"]), ("mu_u", sc["intercept_scale"])):
            v = theta[s[name]]
            lp -= 0.5 * float(v @ v) / scale**2
            g[s[name]] = -v / scale**2
        for name in ("ua", "ue"):
            v = theta[s[name]]
            lp -= 0.5 * float(v @ v) / sc["cov_scale"] ** 2
            g[s[name]] = -v / sc["cov_scale"] ** 2
        q = L.q
        if chol is None:
            Phi = np.zeros((q, q))
            Phi[L.tril] = theta[s["phi"]]
            chol = np.linalg.cholesky(Phi + np.tril(Phi, -1).T)
        Pi = linalg.cho_solve((chol, True), np.eye(q))
        logdet = 2.0 * float(np.log(chol.diagonal()).sum())
        # half-normal on an SD, written on the variance v: log p(v) = -v / (2 s^2) - log(v) / 2; for the team
        # effect v is its variance net of what u explains, omega = psi - ua' Phi_uu^-1 ua
        b = np.zeros(q)
        b[L.ua] = theta[s["ua"]]
        b = Pi @ b
        for name, scale in (("psi", sc["re_scale"]), ("sigma2", sc["sigma_scale"])):
            v = theta[s[name]]
            if name == "psi":
                v = v - float(b[L.ua] @ theta[s["ua"]])
            if not np.all(v > 0):  # outside the support (module docstring)
                return -np.inf, np.zeros(self.ndim)
            lp += float(np.sum(-v / (2 * scale**2) - 0.5 * np.log(v)))
            g[s[name]] = -1.0 / (2 * scale**2) - 0.5 / v
        g_omega = g[s["psi"]][0]  # d omega / d ua = -2 b, d omega / d Phi_uu = b b'
        g_ua_extra = -2.0 * g_omega * b[L.ua]
        H_omega = g_omega * np.outer(b, b)
        a = (2 * q + 3) / 2
        lp += self.wishart * (-a * logdet - 0.5 * np.trace(Pi))
        H = self.wishart * (-a * Pi + 0.5 * Pi @ Pi) + H_omega
        g[s["phi"]] = np.where(self.diag, 1.0, 2.0) * H[L.tril]
        g[s["ua"]] += g_ua_extra
        return float(lp), g

    def logp(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        """Log posterior at the unconstrained ``x`` (with the log Jacobian) and its gradient in ``x``."""
        L, s = self.layout, self.layout.slices
        Lc = self._chol(x[s["phi"]])
        theta = x.copy()
        theta[s["phi"]] = (Lc @ Lc.T)[L.tril]
        theta[s["psi"]] = np.exp(x[s["psi"]])
        theta[s["sigma2"]] = np.exp(x[s["sigma2"]])
        V, B, explained = self._latent(Lc, x)
        theta[self.var_pos] += explained
        out = self.loglik(theta)
        if out is None:
            return -np.inf, np.zeros(self.ndim)
        ll, g_ll = out
        lp, g_lp = self.log_prior(theta, Lc)
        g = g_ll + g_lp
        gx = g.copy()
        # phi block: g is d/d(tril of Phi); d/dL = 2 H L with H the symmetric matrix of g
        H = np.zeros((L.q, L.q))
        H[L.tril] = g[s["phi"]] / self.tril_weight
        H = H + np.tril(H, -1).T
        # variance = v' Phi_uu^-1 v + exp(x): its gradient flows to the covariances v (2 b) and Phi_uu (-b b')
        g_var = g[self.var_pos]
        gx[self.cov_pos] += 2.0 * g_var[self.cov_lat] * B[self.cov_u, self.cov_lat]
        H -= (B * g_var) @ B.T
        gL = (2.0 * H @ Lc)[L.tril]
        gL[self.diag_pos] *= Lc.diagonal()
        gL[self.diag_pos] += self.jac_weight
        gx[s["phi"]] = gL
        log_jac = float(self.jac_weight @ x[s["phi"]][self.diag_pos])
        for name in ("psi", "sigma2"):
            gx[s[name]] = g[s[name]] * np.exp(x[s[name]]) + 1.0  # the residual variance, log scale
            log_jac += float(np.sum(x[s[name]]))
        return float(ll + lp + log_jac), gx


class _WhitenedBase:
    """A posterior in whitened coordinates ``z``: ``x = centre + W z`` (an affine map: the posterior is exact)."""

    post: Any
    centre: np.ndarray
    W: np.ndarray  # upper triangular, Fortran order: BLAS trmv, half the work of a dense product
    ndim: int

    def to_x(self, z: np.ndarray) -> np.ndarray:
        return self.centre + blas.dtrmv(self.W, z)

    def logp(self, z: np.ndarray) -> tuple[float, np.ndarray]:
        lp, g = self.post.logp(self.to_x(z))
        return lp, blas.dtrmv(self.W, g, trans=1)

    def initial_point(self, seed: int) -> np.ndarray:
        return np.random.default_rng(seed).uniform(-1.0, 1.0, self.ndim)


class _Whitened(_WhitenedBase):
    """The full posterior (:class:`SemPosterior`) in whitened coordinates."""

    def __init__(self, post: SemPosterior, centre: np.ndarray, W: np.ndarray, coef_map, wide: WideData) -> None:
        self.post, self.centre, self.ndim = post, centre, post.ndim
        self.W = np.asfortranarray(np.triu(W))
        self.J, self.off = coef_map
        L = post.layout
        self.n_coef, self.m = L.n_coef, L.m
        self.sy2 = float(wide.scale[L.q] ** 2)

    def expand(self, z: np.ndarray) -> dict[str, np.ndarray]:
        theta = self.post.to_theta(self.to_x(z))
        est = self.J @ theta + self.off
        s = self.post.layout.slices
        err = theta[s["sigma2"]] * self.sy2
        return {
            "beta": est[: self.n_coef],
            "intercept": est[self.n_coef :],
            "alpha_variance": np.asarray(theta[s["psi"]][0] * self.sy2),
            "error_variance": np.broadcast_to(err, (self.m,)).copy(),
        }


def _whitening(post: SemPosterior, x_hat: np.ndarray, H_theta: np.ndarray, theta_hat: np.ndarray) -> np.ndarray:
    """``W`` with ``W W'`` the inverse observed information in ``x`` at the ML point (Fisher's where needed)."""
    J = sparse.csr_array(post.jacobian(x_hat))  # the identity but for ~5% of its entries
    for H in (H_theta, None):
        if H is None:  # Fisher's information only where the observed one is not positive definite
            H = fisher_information(post.layout, theta_hat)
        HJ = (J.T @ (J.T @ H).T).T  # J' H J (H symmetric), with sparse products
        P = 0.5 * post.N * np.asarray(HJ)
        P = 0.5 * (P + P.T)
        d = np.sqrt(np.maximum(np.diag(P), 1e-12))
        try:
            R = np.linalg.cholesky(P / np.outer(d, d) + 1e-10 * np.eye(len(d))).T * d  # R'R = P
        except np.linalg.LinAlgError:
            continue
        return linalg.solve_triangular(R, np.eye(len(d)))  # W = R^-1: W W' = P^-1
    Jd = J.toarray()
    return np.diag(1.0 / np.sqrt(np.maximum(np.diag(0.5 * post.N * (Jd.T @ H_theta @ Jd)), 1e-12)))


def _centre(post: SemPosterior, theta_hat: np.ndarray, H_theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The ML point in the sampled coordinates and the whitening there (module docstring)."""
    L = post.layout
    Phi = np.zeros((L.q, L.q))
    Phi[L.tril] = theta_hat[L.slices["phi"]]
    Lc = np.linalg.cholesky(Phi + np.tril(Phi, -1).T)
    explained = post._latent(Lc, theta_hat)[2]
    var = theta_hat[post.var_pos]
    theta_c = theta_hat.copy()
    # an ML fit needs only Sigma positive definite: where its residual variance is not positive, centre at 5%
    theta_c[post.var_pos] = explained + np.maximum(var - explained, 0.05 * np.abs(var))
    x_hat = post.to_x(theta_c)
    return x_hat, _whitening(post, x_hat, H_theta, theta_hat)


class _CollapsedWhitened(_WhitenedBase):
    """The collapsed posterior (:mod:`causalcts.bayes.dynamic_sem_collapsed`) in whitened coordinates ``z``:
    ``phi = centre + W z``; ``expand`` gives the coefficients and error variances in data units and ``phi``."""

    def __init__(self, post: CollapsedPosterior, centre: np.ndarray, W: np.ndarray, unit: np.ndarray, sy2: float):
        self.post, self.centre, self.ndim = post, centre, post.ndim
        self.W = np.asfortranarray(np.triu(W))
        self.unit, self.sy2 = unit, sy2

    def expand(self, z: np.ndarray) -> dict[str, np.ndarray]:
        phi = self.to_x(z)
        k = self.post.k
        return {
            "beta": self.unit * phi[:k],
            "error_variance": self.post._d(phi) * self.sy2,
            "phi": phi,
        }


def _profile_whitening(post: CollapsedPosterior, phi_hat: np.ndarray, H: np.ndarray) -> np.ndarray:
    """``W`` with ``W W'`` the inverse of ``N/2`` times the profile Hessian of F at the ML point (a diagonal
    fallback where that is not positive definite)."""
    P = 0.5 * post.N * 0.5 * (H + H.T)
    d = np.sqrt(np.maximum(np.abs(np.diag(P)), 1e-12))
    try:
        R = np.linalg.cholesky(P / np.outer(d, d) + 1e-10 * np.eye(len(d))).T * d
    except np.linalg.LinAlgError:
        return np.diag(1.0 / d)
    return linalg.solve_triangular(R, np.eye(len(d)))


def _add_nuisance(posterior, post: CollapsedPosterior, wide: WideData, theta_hat: np.ndarray, seed: int):
    """Add ``intercept`` and ``alpha_variance`` (data units), drawn from their conditional posteriors given each
    draw of the structural parameters (:func:`~causalcts.bayes.dynamic_sem_collapsed.nuisance_draws`), and drop
    the sampled coordinates ``phi``."""
    L = wide.layout
    phis = posterior["phi"].values
    n_chain, n_draw = phis.shape[:2]
    psi, nu = nuisance_draws(post, phis.reshape(n_chain * n_draw, -1), np.random.default_rng([int(seed), 1]))
    J, off = original_map(wide, theta_hat)
    theta = np.zeros((len(psi), L.n_params))
    theta[:, L.slices["coef"]] = phis.reshape(len(psi), -1)[:, : L.n_coef]
    theta[:, L.slices["nu"]] = nu
    intercept = (theta @ J.T + off)[:, L.n_coef :]
    sy2 = float(wide.scale[L.q] ** 2)
    out = posterior.drop_vars(["phi", "phi_dim"], errors="ignore")
    out["intercept"] = (("chain", "draw", "wave"), intercept.reshape(n_chain, n_draw, L.m))
    out["alpha_variance"] = (("chain", "draw"), (psi * sy2).reshape(n_chain, n_draw))
    return out


def _sample(target, coords: dict, *, chains, draws, tune, seed, cores, progressbar, target_accept=None):
    import nutpie
    from nutpie.compiled_pyfunc import from_pyfunc

    example = target.expand(np.zeros(target.ndim))
    names = list(example)
    dims = {"beta": ("term",), "intercept": ("wave",), "error_variance": ("wave",), "phi": ("phi_dim",)}
    dims = {k: v for k, v in dims.items() if k in names}
    model = from_pyfunc(
        target.ndim,
        make_logp_fn=lambda: lambda z, **_: target.logp(np.asarray(z, dtype=np.float64)),
        make_expand_fn=lambda *a: lambda z, **_: target.expand(np.asarray(z, dtype=np.float64)),
        expanded_dtypes=[np.dtype("float64")] * len(names),
        expanded_shapes=[np.shape(example[k]) for k in names],
        expanded_names=names,
        coords=coords,
        dims=dims,
        make_initial_point_fn=lambda s: target.initial_point(int(s) % (2**32)),
    )
    extra = {} if target_accept is None else {"target_accept": target_accept}
    return nutpie.sample(
        model, draws=draws, tune=tune, chains=chains, cores=cores, seed=int(seed), progress_bar=progressbar, **extra
    )


def fit_bayes_sem(
    formula: str,
    data,
    *,
    predetermined,
    entity: str = "team",
    time_col: str = "week",
    time_effects: bool = True,
    chains: int = 4,
    draws: int = 1000,
    tune: int = 1000,
    seed: int | np.random.Generator | None = None,
    priors: dict | None = None,
    prior_scale: float = 1.0,
    progressbar: bool = False,
    cores: int | None = None,
    sampler: str = "auto",
) -> BayesResults:
    """Sample the Bayesian ML-SEM dynamic panel (module docstring): ``fit(method="bayes", predetermined=...)``.

    Parameters
    ----------
    formula
        ``"y ~ L(y, 1) + x + w"`` as for ``method="ml"``: lags of the outcome, time-varying regressors at any
        lags, time-invariant regressors.
    data
        DataFrame or :class:`~causalcts.Panel`, one row per team and week; missing weeks are handled by
        full information.
    predetermined
        Time-varying regressors (variable or term names) whose later values may respond to today's error;
        ``[]`` declares every regressor strictly exogenous within the same joint model.
    entity, time_col, time_effects
        Key columns; ``time_effects`` must be True (one intercept per wave).
    chains, draws, tune, seed, cores, progressbar
        NUTS settings (nutpie). ``seed`` None draws fresh entropy; the integer used is recorded in
        ``res.info["seed"]`` and ``res.spec["seed"]`` and reproduces the draws.
    priors, prior_scale
        Prior scales (module docstring); ``prior_scale`` multiplies all of them.
    sampler
        ``"auto"`` or ``"nutpie"`` (the only backend of this model): the collapsed sampler where it is exact, the
        full one elsewhere (module docstring); ``"full"``: the full sampler always.

    Returns
    -------
    BayesResults
        ``params`` posterior means of the coefficients (``std_errors`` SDs, ``conf_int`` equal-tailed),
        ``idata`` with ``beta`` (dim ``term``), ``intercept`` and ``error_variance`` (dim ``wave``),
        ``alpha_variance``; ``diagnostics``, ``converged`` (a :class:`~causalcts.errors.ConvergenceWarning`
        otherwise), ``long_run(x)`` draw by draw, ``info["ml_estimates"]`` the maximum-likelihood point,
        ``info["collapsed"]`` whether the collapsed sampler ran.

    Examples
    --------
    >>> import warnings, causalcts
    >>> sim = causalcts.simulate(n_teams=100, n_weeks=5, seed=3)
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore")  # too few draws for the convergence checks
    ...     res = causalcts.fit("cr_velocity ~ L(cr_velocity, 1) + ai_share", sim.data, method="bayes",
    ...                         predetermined=["ai_share"], chains=1, draws=30, tune=30, seed=1)
    >>> list(res.params.index), res.idata.posterior["beta"].dims
    (['L1.cr_velocity', 'ai_share'], ('chain', 'draw', 'term'))
    """
    t0, c0 = time.perf_counter(), time.process_time()
    check_option("sampler", sampler, ("auto", "nutpie", "full"))
    _check_sampler_counts(chains, draws, tune, 0)
    seed = resolve_seed(seed)
    n_cores = resolve_cores(cores, chains)
    scales = _prior_scales(priors, prior_scale)
    if not time_effects:
        raise SpecificationError(
            "method='bayes' with predetermined= has one intercept per wave (time_effects=True), as method='ml'."
        )
    fspec = formula_spec(formula)
    panel = data if isinstance(data, Panel) else Panel(data, entity=entity, time=time_col, columns=list(fspec.numeric))
    wide, design = build_wide(formula, panel, predetermined, False, method="bayes")
    layout, Z = wide.layout, wide.Z
    N = Z.shape[0]
    if N <= layout.p:
        raise EmptyPanelError(
            f"method='bayes' with predetermined= models {layout.p} observed variables (the outcome and regressors "
            f"at every wave) but has {N} teams; it needs more teams than variables."
        )
    patterns = missingness_patterns(Z)
    prof = profile_layout(wide, patterns) if sampler != "full" else None
    times = wave_labels(panel, wide.eq_waves)
    coords = {"term": list(layout.coef_names), "wave": [str(t) for t in times]}
    if prof is None:
        post = SemPosterior(wide, patterns, scales)
        with one_blas_thread():
            theta_hat, _, H, _, _ = maximise_likelihood(wide, patterns, N)
            x_hat, W = _centre(post, theta_hat, H)
        t_mode = time.perf_counter() - t0
        target: _Whitened | _CollapsedWhitened = _Whitened(post, x_hat, W, original_map(wide, theta_hat), wide)
        n_sampled = int(layout.n_params)
    else:
        cpost = CollapsedPosterior(prof, N, scales)
        with one_blas_thread():
            theta_hat, _, H, _, _, phi_hat = maximise_profile(prof, wide, patterns, N)
            W = _profile_whitening(cpost, phi_hat, H)
        t_mode = time.perf_counter() - t0
        J0, _ = original_map(wide, theta_hat)
        unit = np.diag(J0[: layout.n_coef, layout.slices["coef"]]).copy()
        target = _CollapsedWhitened(cpost, phi_hat, W, unit, float(wide.scale[layout.q] ** 2))
        coords["phi_dim"] = [str(i) for i in range(cpost.ndim)]
        n_sampled = int(cpost.ndim)
    with one_blas_thread(), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        raw = _sample(
            target,
            coords,
            chains=chains,
            draws=draws,
            tune=tune,
            seed=seed,
            cores=n_cores,
            progressbar=progressbar,
            target_accept=None if prof is None else _TARGET_ACCEPT,
        )
    import arviz as az

    posterior = raw.posterior
    if prof is not None:
        posterior = _add_nuisance(posterior, cpost, wide, theta_hat, seed)
    idata: Any = az.InferenceData(posterior=posterior, sample_stats=raw.sample_stats)  # arviz stubs lack groups
    diag, ok, div = diagnose(idata, ["beta", "alpha_variance", "error_variance"], label="Bayesian ML-SEM")
    names = list(layout.coef_names)
    beta = idata.posterior["beta"].values.reshape(-1, len(names))
    J, off = original_map(wide, theta_hat)
    ml = (J @ theta_hat + off)[: len(names)]
    alpha_var = float(idata.posterior["alpha_variance"].values.mean())
    err_var = idata.posterior["error_variance"].values.reshape(-1, layout.m).mean(axis=0)
    pre = sorted({layout.columns[i][0] for i in layout.ue[0].tolist()})
    nobs = int(np.isfinite(Z[:, layout.q :]).sum())
    refit = {
        "formula": formula,
        "method": "bayes",
        "entity": entity,
        "time": time_col,
        "time_effects": bool(time_effects),
        "predetermined": [predetermined] if isinstance(predetermined, str) else list(predetermined),
        "chains": chains,
        "draws": draws,
        "tune": tune,
        "seed": seed,
        "priors": dict(priors or {}),
        "prior_scale": prior_scale,
        "sampler": sampler,
        "cores": cores,
    }
    return BayesResults(
        params=pd.Series(beta.mean(axis=0), index=names),
        std_errors=pd.Series(beta.std(axis=0, ddof=1), index=names),
        cov=pd.DataFrame(np.atleast_2d(np.cov(beta, rowvar=False)), index=names, columns=names),
        nobs=nobs,
        n_entities=int(N),
        method="bayes",
        formula=formula,
        cov_type="posterior",
        dist="normal",
        outcome_lags=tuple(design.outcome_lags),
        cov_re=pd.DataFrame([[alpha_var]], index=["team effect"], columns=["team effect"]),
        scale=float(err_var.mean()),
        idata=idata,
        diagnostics=diag,
        converged=ok,
        info={
            "sampler": (
                "nutpie (NumPy ML-SEM log-density, whitened at the ML point)"
                if prof is None
                else "nutpie (collapsed ML-SEM: nuisance regressions integrated out, whitened at the ML point)"
            ),
            "collapsed": prof is not None,
            "n_sampled": n_sampled,
            "model": "ML-SEM (team effect a latent variable of the joint normal)",
            "divergences": div,
            "seconds": time.perf_counter() - t0,
            "cpu_seconds": time.process_time() - c0,
            "seconds_ml_start": t_mode,
            "chains": chains,
            "draws": draws,
            "tune": tune,
            "seed": seed,
            "cores": n_cores,
            "prior_scale": prior_scale,
            "priors_internal": scales,
            "predetermined": pre,
            "n_params": int(layout.n_params),
            "n_observed_variables": int(layout.p),
            "missing_patterns": len(patterns),
            "ml_estimates": dict(zip(names, ml.tolist(), strict=True)),
            "error_variances": err_var.tolist(),
            "time_effects": True,
        },
        spec=refit,
    )
