r"""HonestDiD sensitivity analysis: confidence sets that stay valid when parallel trends fail by a bounded amount.

Rambachan and Roth (2023) write the event-study coefficients as :math:`\beta = \delta + (0, \tau)`, with
:math:`\delta = (\delta_{pre}, \delta_{post})` the difference in trends (the bias) and :math:`\tau` the
dynamic effects, and ask for a confidence set for :math:`\theta = l'\tau_{post}` when :math:`\delta` lies in
a set :math:`\Delta` that the pre-periods inform. Periods are indexed :math:`t = -K, \dots, -1` (pre) and
:math:`1, \dots, \bar T` (post), with the reference period :math:`t = 0` normalised to
:math:`\delta_0 = 0` (in causalcts' event times: ``e-K-1 .. e-2`` pre, reference ``e-1``, ``e0 ..`` post).

**Smoothness**, :math:`\Delta^{SD}(M) = \{\delta : |(\delta_{t+1} - \delta_t) - (\delta_t - \delta_{t-1})|
\le M\ \forall t\}`: the slope of the differential trend changes by at most :math:`M` between consecutive
periods (:math:`M = 0`: an exactly linear trend). The confidence interval is the fixed-length CI (FLCI) of
Armstrong and Kolesar, as HonestDiD's ``findOptimalFLCI``: among affine estimators
:math:`\hat\theta = v'\hat\beta_{pre} + l'\hat\beta_{post}` it picks the one whose interval
:math:`\hat\theta \pm \chi` is shortest, where :math:`\chi = \mathrm{sd}(\hat\theta)\,
\mathrm{cv}_\alpha(\bar b / \mathrm{sd}(\hat\theta))`, :math:`\bar b` is the worst-case bias over
:math:`\Delta^{SD}(M)` and :math:`\mathrm{cv}_\alpha(t)` the :math:`1-\alpha` quantile of :math:`|N(t, 1)|`.
With the pre-period weights written as :math:`v_1 = w_1,\ v_j = w_j - w_{j-1}` and
:math:`\sum_j w_j = \sum_{t=1}^{\bar T} t\, l_t` (the estimator must be unbiased for a linear trend),

.. math::

    \bar b(w) = M \Big( \sum_{s=1}^{\bar T} \Big| \sum_{r=1}^{s} r\, l_{\bar T - s + r} \Big|
    - \sum_{t=1}^{\bar T} t\, l_t + \sum_{i=1}^{K} \Big| \sum_{j \le i} w_j \Big| \Big).

The half-length :math:`\sigma\,\mathrm{cv}_\alpha(\bar b/\sigma)` is the perspective of a convex increasing
function, so it is jointly convex in :math:`(\bar b, \sigma)` and the problem is solved once per :math:`M` as a
smooth convex program in :math:`(w, u)` with :math:`u_i \ge |\sum_{j\le i} w_j|` (``scipy.optimize.minimize``,
SLSQP; HonestDiD instead bisects over the standard deviation with CVXR). The folded-normal quantile is
computed exactly by root finding (HonestDiD simulates :math:`10^6` draws).

**Relative magnitudes**, :math:`\Delta^{RM}(\bar M) = \{\delta : \max_{t \ge 0}
|\delta_{t+1} - \delta_t| \le \bar M \max_{s < 0} |\delta_{s+1} - \delta_s|\}`: no post-treatment
change in the trend is more than :math:`\bar M` times the largest pre-treatment one. The set is the union
over the period :math:`s` and sign of the largest pre-period change of polyhedra
:math:`\{A_{s,\pm}\delta \le 0\}`; the confidence set is the union of the Andrews, Roth and Pakes (ARP)
conditional-least-favorable hybrid (C-LF) confidence sets for each polyhedron, as HonestDiD's
``computeConditionalCS_DeltaRM(hybrid_flag = "LF")`` (using, as it does by default, only the moments that
involve post-period coefficients). For a polyhedron :math:`A\delta \le d` the null :math:`l'\tau = \theta_0`
is a moment inequality with nuisance parameters,
:math:`E[Y(\theta_0)] - X\xi \le 0` for some :math:`\xi`, where :math:`Y = A\hat\beta - d - a\theta_0`
and :math:`(a, X)` is :math:`A_{post}\Gamma^{-1}` for any invertible :math:`\Gamma` whose first row is
:math:`l'`. The statistic is the linear program

.. math::

    \hat\eta = \min_{\eta, \xi} \eta \ \text{ s.t. } Y - X\xi \le \eta\, \sigma_Y
    \;=\; \max_{\gamma \in V} \gamma' Y,

with :math:`V` the vertices of the dual polytope :math:`\{\gamma \ge 0: \gamma'\sigma_Y = 1, X'\gamma = 0\}`
(enumerated once, so that every test is a few matrix products). The hybrid rejects when
:math:`\hat\eta` exceeds the least-favorable critical value (the :math:`1-\kappa` quantile of
:math:`\max_{\gamma\in V}\gamma'\xi`, :math:`\xi \sim N(0, \Sigma_Y)`, :math:`\kappa = \alpha/10`,
simulated); otherwise it conditions on the optimal vertex :math:`\hat\gamma` and compares
:math:`\hat\eta/\hat\sigma` with the :math:`1 - (\alpha-\kappa)/(1-\kappa)` quantile of a standard normal
truncated to :math:`[V^{lo}, \min(V^{up}, c_{LF})]/\hat\sigma`, :math:`\hat\sigma^2 = \hat\gamma'\Sigma_Y
\hat\gamma`, where :math:`[V^{lo}, V^{up}]` is the range of :math:`\hat\gamma'Y` over which
:math:`\hat\gamma` stays optimal with :math:`Y - \Sigma_Y\hat\gamma\hat\gamma'Y/\hat\sigma^2` held fixed.
The test is inverted on HonestDiD's grid (1,000 points on :math:`\pm 20\,\mathrm{sd}(l'\hat\beta_{post})`,
widened if the set touches an end) and the end points are then refined by bisection, so they are exact
rather than grid points (HonestDiD reports the outermost accepted grid point).

References: Rambachan, A. and Roth, J. (2023). A More Credible Approach to Parallel Trends. Review of
Economic Studies 90(5), 2555-2591. Andrews, I., Roth, J. and Pakes, A. (2023). Inference for Linear
Conditional Moment Inequalities. Review of Economic Studies 90(6), 2763-2791. Armstrong, T. and Kolesar, M.
(2018). Optimal Inference in a Class of Regression Models. Econometrica 86(2), 655-683. The R package
HonestDiD (github.com/asheshrambachan/HonestDiD, files R/flci.R, R/deltarm.R, R/arp-nuisance.R) was read
for the exact definitions.
"""

from __future__ import annotations

import itertools
import math
import warnings
from typing import Literal

import numpy as np
import pandas as pd
from scipy import optimize, stats

from causalcts.errors import CausalCTSError, ConvergenceWarning, RangeError, SpecificationError, check_option
from causalcts.results.base import EstimationResults

__all__ = ["honest_did"]

_MAX_VERTEX_SUBSETS = 250_000


# ------------------------------------------------------------------------------------------------ inputs
def _from_result(result) -> tuple[np.ndarray, np.ndarray, int, int, list[int]]:
    """Event-study coefficients and covariance, split into pre and post periods, from an event-study result."""
    if not isinstance(result, EstimationResults) or "event_times" not in getattr(result, "info", {}):
        raise SpecificationError(
            "honest_did needs a result of causalcts.did.event_study (it carries info['event_times']), or "
            "betahat=, sigma=, num_pre= and num_post=."
        )
    info = result.info
    if info.get("design") == "share":
        raise SpecificationError(
            "honest_did needs event-time coefficients relative to a reference period; this result is a share "
            "design (distributed leads and lags of a continuous exposure). Pass betahat= and sigma= instead."
        )
    times = [int(e) for e in info["event_times"]]
    ref = int(info.get("reference", -1))
    if ref != -1:
        raise SpecificationError(
            f"honest_did needs the reference period to be the last pre-period (reference=-1); this event study "
            f"used reference={ref}. Refit with reference=-1."
        )
    if info.get("binned"):
        raise SpecificationError(
            f"honest_did needs one coefficient per period, but the end points {sorted(info['binned'])} of this "
            "event study are binned (leads=/lags=). Refit without binning, or pass betahat= and sigma= of the "
            "unbinned periods."
        )
    pre = [e for e in times if e < 0]
    post = [e for e in times if e >= 0]
    if not pre:
        raise SpecificationError(
            f"The event study has no pre-period coefficient (event times {times}, reference -1): HonestDiD "
            "bounds post-period violations of parallel trends by the pre-periods, so it needs at least one."
        )
    if not post:
        raise SpecificationError(f"The event study has no post-period coefficient (event times {times}).")
    if pre != list(range(-len(pre) - 1, -1)) or post != list(range(len(post))):
        raise SpecificationError(
            f"honest_did needs consecutive event times ..., -3, -2, (reference -1), 0, 1, ...; this event study "
            f"has {times}. Periods missing in between break the smoothness and relative-magnitude restrictions."
        )
    order = [times.index(e) for e in pre + post]
    b = result.params.to_numpy(dtype=float)[order]
    V = result.cov.to_numpy(dtype=float)[np.ix_(order, order)]
    return b, V, len(pre), len(post), pre + post


def _check_inputs(betahat, sigma, num_pre, num_post) -> tuple[np.ndarray, np.ndarray, int, int]:
    if betahat is None or sigma is None or num_pre is None or num_post is None:
        raise SpecificationError(
            "Without an event-study result, honest_did needs betahat=, sigma=, num_pre= and num_post=."
        )
    b = np.asarray(betahat, dtype=float).ravel()
    V = np.asarray(sigma, dtype=float)
    for name, v in (("num_pre", num_pre), ("num_post", num_post)):
        if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 0:
            raise SpecificationError(f"{name}={v!r} must be a non-negative integer.")
    if num_pre < 1:
        raise SpecificationError(
            "num_pre=0: HonestDiD bounds post-period violations of parallel trends by the pre-periods, so it "
            "needs at least one pre-period coefficient."
        )
    if num_post < 1:
        raise SpecificationError("num_post=0: there is no post-period coefficient to make inference on.")
    if b.size != num_pre + num_post:
        raise SpecificationError(f"betahat has {b.size} entries but num_pre + num_post = {num_pre + num_post}.")
    if V.shape != (b.size, b.size):
        raise SpecificationError(f"sigma must be a {b.size} x {b.size} covariance matrix; it has shape {V.shape}.")
    if not (np.all(np.isfinite(b)) and np.all(np.isfinite(V))):
        raise SpecificationError("betahat and sigma must be finite.")
    if not np.allclose(V, V.T, rtol=1e-8, atol=1e-14 * np.abs(V).max()):
        raise SpecificationError("sigma must be symmetric.")
    if np.linalg.eigvalsh((V + V.T) / 2).min() < -1e-10 * np.abs(V).max():
        raise SpecificationError("sigma must be positive semi-definite.")
    return b, (V + V.T) / 2, int(num_pre), int(num_post)


def _grid_values(values, name: str, default: np.ndarray) -> np.ndarray:
    if values is None:
        return default
    arr = np.atleast_1d(np.asarray(values, dtype=float)).ravel()
    if arr.size == 0 or not np.all(np.isfinite(arr)):
        raise SpecificationError(f"{name} must be a finite number or a non-empty sequence of finite numbers.")
    if (arr < 0).any():
        raise RangeError(f"{name} must be non-negative; got {arr[arr < 0].tolist()}.")
    return arr


# ------------------------------------------------------------------------------------------------ FLCI
def _folded_normal_cv(t: float, alpha: float) -> float:
    """The 1 - alpha quantile of |N(t, 1)|: the c solving Phi(c - t) - Phi(-c - t) = 1 - alpha."""
    t = abs(float(t))

    def f(c):
        return stats.norm.cdf(c - t) - stats.norm.cdf(-c - t) - (1 - alpha)

    hi = t + stats.norm.ppf(1 - alpha / 2) + 1.0
    return float(optimize.brentq(f, 0.0, hi, xtol=1e-14, rtol=1e-15))


def _folded_normal_cv_and_slope(t: float, alpha: float) -> tuple[float, float]:
    c = _folded_normal_cv(t, alpha)
    p1, p2 = stats.norm.pdf(c - t), stats.norm.pdf(c + t)
    return c, float((p1 - p2) / (p1 + p2))


def _flci(b, V, K, T, l_vec, Ms, alpha) -> list[tuple[float, float, np.ndarray]]:
    """Optimal FLCI (centre, half-length, pre-period weights) for each M in ``Ms`` (see the module docstring)."""
    tt = np.arange(1, T + 1)
    S = float(tt @ l_vec)
    const = sum(abs(float(np.arange(1, s + 1) @ l_vec[T - s :])) for s in range(1, T + 1)) - S
    scale = float(l_vec @ V[K:, K:] @ l_vec)
    if scale <= 0:
        raise SpecificationError("The post-period coefficients of interest have zero variance: l' sigma_post l = 0.")
    Vs = V / scale  # work in units of sd(l' beta_post) so that the optimiser sees numbers near 1
    D = np.eye(K) - np.eye(K, k=-1)  # w -> pre-period weights v
    Q = D.T @ Vs[:K, :K] @ D
    q = 2 * D.T @ Vs[:K, K:] @ l_vec
    c0 = float(l_vec @ Vs[K:, K:] @ l_vec)
    L = np.tril(np.ones((K, K)))  # cumulative sums

    def var(w):
        return float(w @ Q @ w + q @ w + c0)

    # minimum-variance weights subject to sum(w) = S (the M = 0 solution), from the KKT system
    ones = np.ones(K)
    kkt = np.block([[2 * Q, ones[:, None]], [ones[None, :], np.zeros((1, 1))]])
    sol = np.linalg.lstsq(kkt, np.concatenate([-q, [S]]), rcond=None)[0]
    w_minvar = sol[:K]
    w_minbias = np.zeros(K)
    w_minbias[-1] = S
    out = []
    for M_raw in Ms:
        M = float(M_raw) / math.sqrt(scale)  # the bias in units of sd(l' beta_post)
        if M == 0 or K == 1:
            w = w_minvar if M == 0 else w_minbias
            sd = math.sqrt(max(var(w), 0.0))
            bias = M * (const + float(np.abs(L @ w).sum()))
            half = sd * _folded_normal_cv(bias / sd, alpha) if sd > 0 else bias
        else:
            w, half = _flci_solve(Q, q, c0, L, S, const, M, alpha, (w_minvar, w_minbias))
        v = D @ w
        out.append((float(v @ b[:K] + l_vec @ b[K:]), half * math.sqrt(scale), v))
    return out


def _flci_solve(Q, q, c0, L, S, const, M, alpha, starts):
    """Minimise sd(w) cv_alpha(M bias(w) / sd(w)) over x = (w, u), u >= |L w|, sum(w) = S (smooth and convex)."""
    K = Q.shape[0]

    def parts(x):
        w, u = x[:K], x[K:]
        v = max(float(w @ Q @ w + q @ w + c0), 1e-300)
        sd = math.sqrt(v)
        bias = M * (const + u.sum())
        cv, slope = _folded_normal_cv_and_slope(bias / sd, alpha)
        return w, sd, bias, cv, slope

    def fun(x):
        _, sd, _, cv, _ = parts(x)
        return sd * cv

    def jac(x):
        w, sd, bias, cv, slope = parts(x)
        t = bias / sd
        dsd = (2 * Q @ w + q) / (2 * sd)
        return np.concatenate([(cv - t * slope) * dsd, np.full(K, M * slope)])

    G = np.block([[-L, np.eye(K)], [L, np.eye(K)]])  # u - Lw >= 0, u + Lw >= 0
    cons = [
        {"type": "ineq", "fun": lambda x: G @ x, "jac": lambda x: G},
        {
            "type": "eq",
            "fun": lambda x: np.array([x[:K].sum() - S]),
            "jac": lambda x: np.r_[np.ones(K), np.zeros(K)][None, :],
        },  # fmt: skip
    ]
    best = None
    for w0 in starts:
        x0 = np.concatenate([w0, np.abs(L @ w0) + 1e-9])
        r = optimize.minimize(fun, x0, jac=jac, constraints=cons, method="SLSQP",
                              options={"ftol": 1e-12, "maxiter": 1000})  # fmt: skip
        feasible = np.all(G @ r.x > -1e-9) and abs(r.x[:K].sum() - S) < 1e-9 * max(1.0, abs(S))
        if feasible and (best is None or r.fun < best.fun):
            best = r
    if best is None:
        raise CausalCTSError("The FLCI optimisation failed to find feasible weights (sigma may be near-singular).")
    if not best.success:
        warnings.warn(f"FLCI optimisation (M = {M:g} sd): {best.message}", ConvergenceWarning, stacklevel=4)
    w = best.x[:K]
    # report the half-length at the optimum with the tight bias u = |Lw| (u can only be slack upwards)
    _, sd, _, _, _ = parts(np.concatenate([w, np.abs(L @ w)]))
    bias = M * (const + float(np.abs(L @ w).sum()))
    return w, sd * _folded_normal_cv(bias / sd, alpha)


# ------------------------------------------------------------------------------------------------ RM, C-LF
def _rm_polyhedron(K: int, T: int, Mbar: float, s: int, positive: bool) -> np.ndarray:
    """Rows A (post-period moments only) of Delta^RM_{s,+/-}(Mbar) = {A delta <= 0}, columns t = -K..-1, 1..T.

    Row for each first difference d_t = delta_t - delta_{t-1} (t = -K+1..T, delta_0 = 0):
    |d_t| <= sign * d_s for pre-periods and |d_t| <= Mbar * sign * d_s after, i.e.
    +/- d_t - bound * sign * d_s <= 0. Only the rows that involve post-period coefficients are kept (as
    HonestDiD's default postPeriodMomentsOnly = TRUE).
    """
    n = K + T + 1  # columns t = -K..T, position p <-> t = p - K
    diffs = np.zeros((K + T, n))
    for r in range(K + T):
        diffs[r, r], diffs[r, r + 1] = -1.0, 1.0
    vmax = np.zeros(n)
    vmax[K + s - 1], vmax[K + s] = -1.0, 1.0
    if not positive:
        vmax = -vmax
    bound = np.vstack([np.tile(vmax, (K, 1)), np.tile(Mbar * vmax, (T, 1))])
    A = np.vstack([diffs - bound, -diffs - bound])
    A = A[np.einsum("ij,ij->i", A, A) > 1e-10]
    A = np.delete(A, K, axis=1)  # drop t = 0
    return A[np.any(A[:, K:] != 0, axis=1)]


def _gamma_matrix(l_vec: np.ndarray) -> np.ndarray:
    """An invertible matrix whose first row is l' (l' and the unit vectors but the one of l's largest entry)."""
    j = int(np.argmax(np.abs(l_vec)))
    rows = [np.eye(l_vec.size)[i] for i in range(l_vec.size) if i != j]
    return np.vstack([l_vec] + rows)


def _dual_vertices(W: np.ndarray) -> np.ndarray:
    """Vertices of {g >= 0 : W'g = e1} (rows of the result); empty when the set is empty (eta = -inf)."""
    m, p = W.shape
    rank = int(np.linalg.matrix_rank(W))
    if math.comb(m, rank) > _MAX_VERTEX_SUBSETS:
        raise SpecificationError(
            f"The relative-magnitudes test would enumerate {math.comb(m, rank):,} bases ({m} moments, {p - 1} "
            "nuisance parameters): too many post-periods for this implementation; use fewer post-periods."
        )
    e1 = np.zeros(p)
    e1[0] = 1.0
    found = []
    for B in itertools.combinations(range(m), rank):
        WB = W[list(B)].T  # p x rank
        g, *_ = np.linalg.lstsq(WB, e1, rcond=None)
        if np.linalg.norm(WB @ g - e1) > 1e-9 or (g < -1e-10).any():
            continue
        if np.linalg.matrix_rank(WB) < rank:
            continue
        full = np.zeros(m)
        full[list(B)] = np.clip(g, 0.0, None)
        found.append(full)
    if not found:
        return np.zeros((0, m))
    return np.unique(np.round(np.array(found), 12), axis=0)


class _CLFTest:
    """ARP conditional-least-favorable hybrid test of l'tau = theta for one polyhedron {A delta <= 0}."""

    def __init__(self, A, b, V, K, l_vec, alpha, kappa, sims, rng):
        AG = A[:, K:] @ np.linalg.inv(_gamma_matrix(l_vec))
        self.a, X = AG[:, 0], AG[:, 1:]
        self.Y = A @ b
        S = A @ V @ A.T
        sd = np.sqrt(np.clip(np.diag(S), 0.0, None))
        self.verts = _dual_vertices(np.column_stack([sd, X]))
        self.alpha, self.kappa = alpha, kappa
        self.mod_size = (alpha - kappa) / (1 - kappa)
        if len(self.verts) == 0:
            self.lf_cv = np.inf
            return
        self.VS = self.verts @ S @ self.verts.T  # Cov of the vertex statistics
        self.VY, self.Va = self.verts @ self.Y, self.verts @ self.a
        draws = rng.multivariate_normal(np.zeros(len(self.Y)), S, size=sims, method="eigh")
        self.lf_cv = float(np.quantile((draws @ self.verts.T).max(axis=1), 1 - kappa))

    def accept(self, theta: np.ndarray) -> np.ndarray:
        theta = np.atleast_1d(np.asarray(theta, dtype=float))
        if len(self.verts) == 0:
            return np.ones(theta.size, dtype=bool)  # the LP is unbounded below: nothing to reject
        P = self.VY[:, None] - self.Va[:, None] * theta[None, :]  # vertex statistics, (vertices, thetas)
        idx = np.argmax(P, axis=0)
        eta = P[idx, np.arange(theta.size)]
        s2 = self.VS[idx, idx]
        g = self.VS[:, idx] / s2  # gamma_v' b with b = S gamma / (gamma' S gamma)
        a = P - g * eta  # gamma_v' s with s = y - b gamma'y
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = a / (1 - g)
        below, above = g < 1 - 1e-10, g > 1 + 1e-10
        vlo = np.where(below, ratio, -np.inf).max(axis=0)
        vup = np.where(above, ratio, np.inf).min(axis=0)
        sig = np.sqrt(np.clip(s2, 1e-300, None))
        stat, zlo, zup = eta / sig, vlo / sig, np.minimum(vup, self.lf_cv) / sig
        inside = (zlo <= stat) & (stat <= zup)
        reject = eta > self.lf_cv
        cval = np.zeros(theta.size)
        if inside.any():
            lo, hi = zlo[inside], np.maximum(zup[inside], zlo[inside])
            cval[inside] = np.maximum(0.0, _truncnorm_ppf(1 - self.mod_size, lo, hi))
        reject |= inside & (stat > cval)
        return ~reject


def _truncnorm_ppf(p: float, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Quantile p of N(0, 1) truncated to [lo, hi] (vectorised; scipy handles far tails in log space)."""
    out = np.asarray(stats.truncnorm.ppf(p, lo, hi), dtype=float)
    bad = ~np.isfinite(out)
    if bad.any():  # degenerate interval: the quantile is its end point
        out[bad] = np.where(np.isfinite(lo[bad]), lo[bad], hi[bad])
    return out


def _rm_clf(b, V, K, T, l_vec, Mbar, alpha, grid_points, sims, seed) -> tuple[float, float]:
    """C-LF confidence set for Delta^RM(Mbar): union over s and sign; end points refined by bisection."""
    kappa = alpha / 10
    tests = []
    for s in range(-(K - 1), 1):
        for positive in (True, False):
            A = _rm_polyhedron(K, T, Mbar, s, positive)
            tests.append(_CLFTest(A, b, V, K, l_vec, alpha, kappa, sims, np.random.default_rng(seed)))

    def accept(theta):
        acc = tests[0].accept(theta)
        for t in tests[1:]:
            acc |= t.accept(theta)
        return acc

    sd_theta = math.sqrt(float(l_vec @ V[K:, K:] @ l_vec))
    half = 20 * sd_theta
    for _ in range(6):
        grid = np.linspace(-half, half, grid_points)
        acc = accept(grid)
        if not acc.any():
            return math.nan, math.nan
        if not (acc[0] or acc[-1]):
            break
        half *= 4
    else:
        warnings.warn(
            f"The relative-magnitudes confidence set at Mbar={Mbar:g} reaches the end of the search grid "
            f"(+/- {half:.4g}); it may be unbounded.",
            ConvergenceWarning,
            stacklevel=3,
        )
        return (-math.inf if acc[0] else float(grid[acc][0])), (math.inf if acc[-1] else float(grid[acc][-1]))
    i, j = np.flatnonzero(acc)[[0, -1]]
    step = grid[1] - grid[0]
    tol = 1e-9 * max(step, 1e-300) * grid_points

    def edge(inside: float, outside: float) -> float:
        while abs(inside - outside) > tol:
            mid = 0.5 * (inside + outside)
            if accept(mid)[0]:
                inside = mid
            else:
                outside = mid
        return inside

    return edge(grid[i], grid[i - 1]), edge(grid[j], grid[j + 1])


# ------------------------------------------------------------------------------------------------ public
def honest_did(
    result: EstimationResults | None = None,
    *,
    betahat=None,
    sigma=None,
    num_pre: int | None = None,
    num_post: int | None = None,
    restriction: Literal["smoothness", "relative_magnitudes"] = "smoothness",
    M=None,
    Mbar=None,
    l_vec=None,
    alpha: float = 0.05,
    grid_points: int = 1000,
    lf_sims: int = 1000,
    seed: int = 0,
) -> pd.DataFrame:
    r"""Sensitivity of an event-study effect to violations of parallel trends (Rambachan and Roth 2023).

    Confidence intervals for :math:`\theta = l'\tau_{post}` that are valid when the difference in trends lies in
    :math:`\Delta^{SD}(M)` (``restriction="smoothness"``: fixed-length CI, "FLCI") or :math:`\Delta^{RM}(\bar M)`
    (``restriction="relative_magnitudes"``: conditional-least-favorable hybrid, "C-LF"), for a range of
    :math:`M` or :math:`\bar M`. The definitions and algorithms are in the module docstring
    (:mod:`causalcts.diagnostics.honest`); they follow the R package HonestDiD.

    Parameters
    ----------
    result
        A result of :func:`causalcts.did.event_study` (binary onset, ``reference=-1``, no binned end points):
        its coefficients ``e-K-1 .. e-2`` are the pre-periods and ``e0 ..`` the post-periods. Or leave it out and
        pass the next four.
    betahat, sigma
        Event-study coefficients (pre-periods first, in time order, reference period left out) and their
        covariance matrix.
    num_pre, num_post
        Numbers of pre- and post-period coefficients in ``betahat``.
    restriction
        ``"smoothness"`` (:math:`\Delta^{SD}(M)`) or ``"relative_magnitudes"`` (:math:`\Delta^{RM}(\bar M)`).
    M
        Smoothness bounds (non-negative; used with ``"smoothness"``). Default: 10 values from 0 to HonestDiD's
        upper bound for the pre-period second differences (``DeltaSD_upperBound_Mpre``).
    Mbar
        Relative-magnitude bounds (non-negative; used with ``"relative_magnitudes"``). Default: 10 values from 0
        to 2.
    l_vec
        Weights of the post-period effects in :math:`\theta` (default: the first post-period effect,
        :math:`(1, 0, \dots, 0)`).
    alpha
        One minus the confidence level.
    grid_points
        Points of the initial grid on which the C-LF test is inverted (HonestDiD's ``gridPoints``).
    lf_sims, seed
        Draws and seed of the simulated least-favorable critical value of the C-LF hybrid (HonestDiD: 1,000
        draws, seed 0; see Notes).

    Returns
    -------
    pandas.DataFrame
        One row per bound, columns ``M`` (or ``Mbar``), ``lower``, ``upper``, ``method`` (``"FLCI"`` or
        ``"C-LF"``). ``df.attrs`` holds ``"breakdown"`` (the smallest ``M``/``Mbar`` of the table whose interval
        contains 0, NaN if none does: read off the grid, like HonestDiD's README), ``"original"`` (the
        conventional interval :math:`l'\hat\beta_{post} \pm z_{1-\alpha/2}\,\mathrm{sd}`, as
        ``constructOriginalCS``), ``"restriction"``, ``"parameter"`` (``"M"`` or ``"Mbar"``), ``"l_vec"``,
        ``"alpha"``, ``"event_times"`` (when built from a result) and, for the FLCI, ``"weights"`` (the optimal
        pre-period weights :math:`v` for each ``M``).

    Raises
    ------
    causalcts.errors.SpecificationError
        An unknown ``restriction``, a result that is not a usable event study (no pre-period, binned or
        non-consecutive event times, reference other than -1), inconsistent ``betahat``/``sigma``/counts, or
        ``M`` with the relative-magnitudes restriction (and ``Mbar`` with smoothness).
    causalcts.errors.RangeError
        A negative ``M`` or ``Mbar``, or ``alpha`` outside (0, 1).

    Notes
    -----
    The C-LF end points depend on the simulated least-favorable critical value; with the default 1,000 draws
    they differ from HonestDiD's (which uses R's random numbers) by a few 1e-4 on the ehec example of the tests
    (standard error of :math:`\hat\theta` 0.009). Raise ``lf_sims`` for a more stable value. The FLCI is
    deterministic. A C-LF set that is empty gives NaN bounds; one that still touches the widened search grid
    (unbounded) gives infinite bounds and a ConvergenceWarning. The relative-magnitudes test enumerates the
    vertices of a dual polytope, which limits it to about 10 post-periods.

    Examples
    --------
    >>> import numpy as np
    >>> from causalcts.diagnostics import honest_did
    >>> b = np.array([0.01, -0.005, 0.05, 0.06])  # two pre-periods (reference left out), two post-periods
    >>> V = np.diag([1e-4] * 4)
    >>> tab = honest_did(betahat=b, sigma=V, num_pre=2, num_post=2, M=[0, 0.01, 0.05])
    >>> tab.columns.tolist()
    ['M', 'lower', 'upper', 'method']
    >>> tab[["lower", "upper"]].round(4).to_numpy().tolist()
    [[0.0315, 0.0745], [0.0189, 0.0816], [-0.0283, 0.1183]]
    >>> float(tab.attrs["breakdown"])
    0.05
    >>> rm = honest_did(betahat=b, sigma=V, num_pre=2, num_post=2, restriction="relative_magnitudes", Mbar=[0.5])
    >>> rm[["lower", "upper"]].round(3).to_numpy().tolist()
    [[0.022, 0.078]]
    """
    check_option("restriction", restriction, ("smoothness", "relative_magnitudes"))
    if not isinstance(alpha, (int, float)) or not 0 < alpha < 1:
        raise RangeError(f"alpha={alpha!r} must lie strictly between 0 and 1 (e.g. 0.05).")
    event_times = None
    if result is not None:
        if any(v is not None for v in (betahat, sigma, num_pre, num_post)):
            raise SpecificationError(
                "Pass either an event-study result or betahat=/sigma=/num_pre=/num_post=, not both."
            )
        b, V, K, T, event_times = _from_result(result)
        b, V, K, T = _check_inputs(b, V, K, T)
    else:
        b, V, K, T = _check_inputs(betahat, sigma, num_pre, num_post)
    if l_vec is None:
        lv = np.zeros(T)
        lv[0] = 1.0
    else:
        lv = np.asarray(l_vec, dtype=float).ravel()
        if lv.size != T or not np.all(np.isfinite(lv)) or not lv.any():
            raise SpecificationError(f"l_vec must hold {T} finite weights (one per post-period), not all zero.")
    for name, v, lo in (("grid_points", grid_points, 3), ("lf_sims", lf_sims, 10)):
        if not isinstance(v, (int, np.integer)) or v < lo:
            raise SpecificationError(f"{name}={v!r} must be an integer >= {lo}.")
    sd_theta = math.sqrt(float(lv @ V[K:, K:] @ lv))
    est = float(lv @ b[K:])
    z = float(stats.norm.ppf(1 - alpha / 2))
    attrs: dict = {"restriction": restriction, "l_vec": lv.tolist(), "alpha": float(alpha),
                   "original": (est - z * sd_theta, est + z * sd_theta)}  # fmt: skip
    if event_times is not None:
        attrs["event_times"] = event_times

    if restriction == "smoothness":
        if Mbar is not None:
            raise SpecificationError('Mbar= goes with restriction="relative_magnitudes"; the smoothness bound is M=.')
        Ms = _grid_values(M, "M", _default_m(b, V, K, alpha))
        fits = _flci(b, V, K, T, lv, Ms, alpha)
        table = pd.DataFrame({"M": Ms, "lower": [c - h for c, h, _ in fits], "upper": [c + h for c, h, _ in fits],
                              "method": "FLCI"})  # fmt: skip
        attrs["weights"] = {float(m): v.tolist() for m, (_, _, v) in zip(Ms, fits, strict=True)}
        param = "M"
    else:
        if M is not None:
            raise SpecificationError('M= goes with restriction="smoothness"; the relative-magnitudes bound is Mbar=.')
        Mbars = _grid_values(Mbar, "Mbar", np.linspace(0, 2, 10))
        bounds = [_rm_clf(b, V, K, T, lv, float(mb), alpha, int(grid_points), int(lf_sims), seed) for mb in Mbars]
        table = pd.DataFrame({"Mbar": Mbars, "lower": [lo for lo, _ in bounds], "upper": [hi for _, hi in bounds],
                              "method": "C-LF"})  # fmt: skip
        param = "Mbar"
    covers = (table["lower"] <= 0) & (table["upper"] >= 0)
    attrs["parameter"] = param
    attrs["breakdown"] = float(table.loc[covers, param].min()) if covers.any() else math.nan
    table.attrs.update(attrs)
    return table


def _default_m(b, V, K, alpha) -> np.ndarray:
    """HonestDiD's default M grid: 10 values from 0 to the largest 1 - alpha upper bound of a pre-period change."""
    if K == 1:
        return np.linspace(0, math.sqrt(V[0, 0]), 10)
    # second differences of (delta_{-K}, ..., delta_{-1}, delta_0 = 0)
    A = np.zeros((K - 1, K))
    for r in range(K - 2):
        A[r, r : r + 3] = (1.0, -2.0, 1.0)
    A[K - 2, K - 2 : K] = (1.0, -2.0)
    diffs = A @ b[:K]
    se = np.sqrt(np.clip(np.diag(A @ V[:K, :K] @ A.T), 0.0, None))
    return np.linspace(0, max(float(np.max(diffs + stats.norm.ppf(1 - alpha) * se)), 0.0), 10)
