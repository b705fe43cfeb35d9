r"""The ML-SEM dynamic panel: one reference likelihood, shared by ``method="ml"`` and ``method="bayes"``.

The model of Moral-Benito (2013) and Allison, Williams and Moral-Benito (2017, *Socius*), as Stata's
``xtdpdml`` and R's ``dpm`` set it up. For waves ``t`` from the first one whose regressors are all observed
to the last,

.. math::

    y_{it} = \alpha_i + \nu_t + \sum_k \beta_k y_{i,t-k} + \gamma' x_{it} + \delta' w_i + e_{it},

one equation per wave, coefficients equal across waves. The fixed effect :math:`\alpha_i` is a latent
variable (loading 1 in every equation) free to covary with every time-varying regressor at every wave and
with the initial outcomes, not with the time-invariant regressors ``w``; the error of wave ``t`` covaries
freely with a *predetermined* regressor at later waves ``s > t`` (feedback). Stacking the exogenous
observed variables :math:`u` (initial outcomes, regressors by wave, time-invariant regressors), the latent
:math:`\alpha` and the errors :math:`e` into :math:`\xi = (u, \alpha, e)` with covariance :math:`\Phi`, and
writing the outcome equations as :math:`y = By + \Gamma u + \nu + 1\alpha + e`,

.. math::

    \Sigma(\theta) = C\Phi C', \quad C = \begin{pmatrix} I & 0 & 0 \\ A\Gamma & A1 & A \end{pmatrix},
    \quad A = (I - B)^{-1}, \qquad \mu(\theta) = (\mu_u, A(\nu + \Gamma\mu_u)).

The observed variables of each entity are jointly normal, :math:`N(\mu, \Sigma)`. With the entities that
share a missingness pattern ``g`` summarised by their mean :math:`m_g` and covariance :math:`S_g` (divisor
:math:`n_g`), the log-likelihood is :math:`\ell(\theta) = -\tfrac{N}{2}(F(\theta) + p\log 2\pi)` (complete
data; with missing data ``p`` is replaced by each pattern's count of observed columns) with the fit
function :math:`F = \sum_g \tfrac{n_g}{N}(\log|\Sigma_g| + \mathrm{tr}(\Sigma_g^{-1}(S_g + d_g d_g')))`,
:math:`d_g = m_g - \mu_g` (:func:`fit_function`); :meth:`Layout.backprop` gives its analytic gradient in
:math:`\theta`. :func:`build_wide` turns a formula and a panel into the wide data (every column centred,
every variable scaled by its pooled SD) and the :class:`Layout` of :math:`\theta`;
:func:`maximise_likelihood` finds the maximum (L-BFGS preconditioned by :func:`fisher_information`, then a
Newton polish). On complete data without time-invariant regressors the likelihood is concentrated in closed
form on the coefficients and error variances (:class:`Profile`, :func:`profile_layout`): the saturated
covariance of the exogenous variables, some thousands of parameters on a long panel with controls, never enters
the optimiser; :func:`maximise_profile` and :func:`profile_covariance` give the same maximum and standard errors.

Examples
--------
>>> import causalcts
>>> from causalcts.data.panel import Panel
>>> from causalcts.models import sem
>>> sim = causalcts.simulate(n_teams=80, n_weeks=5, seed=3)
>>> panel = Panel(sim.data, columns=["cr_velocity", "ai_share"])
>>> wide, _ = sem.build_wide("cr_velocity ~ L(cr_velocity, 1) + ai_share", panel, ["ai_share"], False)
>>> pats = sem.missingness_patterns(wide.Z)
>>> f, grad = sem.objective(sem.start_values(wide), wide.layout, pats, wide.Z.shape[0])
>>> wide.layout.coef_names, grad.shape == (wide.layout.n_params,)
(['L1.cr_velocity', 'ai_share'], True)
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import linalg, optimize

from causalcts.data.design import Design, build_design
from causalcts.data.formula import Term
from causalcts.data.panel import Panel
from causalcts.errors import CollinearityError, EmptyPanelError, SpecificationError, TooFewPeriodsError

__all__ = [
    "Layout",
    "Pattern",
    "Profile",
    "WideData",
    "build_wide",
    "entity_scores",
    "fisher_information",
    "fit_function",
    "hessian",
    "maximise_likelihood",
    "maximise_profile",
    "missingness_patterns",
    "objective",
    "one_blas_thread",
    "original_map",
    "profile_covariance",
    "profile_layout",
    "saturated_fit",
    "start_values",
    "wave_labels",
]


def one_blas_thread():
    """Limit BLAS to one thread while fitting (threadpoolctl, where installed)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl comes with scipy's usual installs
        return contextlib.nullcontext()
    return threadpool_limits(1)


_BIG = 1e10  # objective where Sigma is not positive definite before any good point was seen


# ---------------------------------------------------------------------------------------------- the model layout
@dataclass
class Layout:
    """Where every free parameter sits in B, Gamma, Phi, nu and mu_u, and the wide data's columns."""

    q: int  # exogenous observed variables (initial outcomes, regressors by wave, time-invariant)
    m: int  # equations (outcome waves)
    coef_names: list[str]
    n_coef: int
    b_pos: tuple[np.ndarray, np.ndarray, np.ndarray]  # (coef, row, col) in B (m x m)
    g_pos: tuple[np.ndarray, np.ndarray, np.ndarray]  # (coef, row, col) in Gamma (m x q)
    tril: tuple[np.ndarray, np.ndarray]  # free entries of Phi_uu
    ua: np.ndarray  # exogenous variables that covary with alpha
    ue: tuple[np.ndarray, np.ndarray]  # (u index, equation index) of free error covariances
    error_inv: bool
    columns: list[tuple[str, int | None]] = field(default_factory=list)  # (variable, wave or None) per column
    slices: dict[str, slice] = field(default_factory=dict)

    @property
    def p(self) -> int:
        return self.q + self.m

    @property
    def k(self) -> int:
        return self.q + 1 + self.m

    def __post_init__(self) -> None:
        sizes = [
            ("coef", self.n_coef),
            ("nu", self.m),
            ("mu_u", self.q),
            ("phi", len(self.tril[0])),
            ("ua", len(self.ua)),
            ("psi", 1),
            ("ue", len(self.ue[0])),
            ("sigma2", 1 if self.error_inv else self.m),
        ]
        start = 0
        for name, n in sizes:
            self.slices[name] = slice(start, start + n)
            start += n
        self.n_params = start

    # ------------------------------------------------------------------ parameters -> moments
    def unpack(self, theta: np.ndarray):
        s = self.slices
        q, m, k = self.q, self.m, self.k
        coef = theta[s["coef"]]
        B = np.zeros((m, m))
        B[self.b_pos[1], self.b_pos[2]] = coef[self.b_pos[0]]
        G = np.zeros((m, q))
        G[self.g_pos[1], self.g_pos[2]] = coef[self.g_pos[0]]
        Phi = np.zeros((k, k))
        Phi[self.tril] = theta[s["phi"]]
        Phi[self.tril[1], self.tril[0]] = theta[s["phi"]]
        Phi[self.ua, q] = Phi[q, self.ua] = theta[s["ua"]]
        Phi[q, q] = theta[s["psi"]][0]
        Phi[self.ue[0], q + 1 + self.ue[1]] = theta[s["ue"]]
        Phi[q + 1 + self.ue[1], self.ue[0]] = theta[s["ue"]]
        e = q + 1 + np.arange(m)
        Phi[e, e] = theta[s["sigma2"]]
        return B, G, Phi, theta[s["nu"]], theta[s["mu_u"]]

    def moments(self, theta: np.ndarray):
        """Model-implied mean and covariance of the wide data, and the pieces the gradient needs."""
        B, G, Phi, nu, mu_u = self.unpack(theta)
        q, m = self.q, self.m
        A = np.linalg.inv(np.eye(m) - B)
        K = np.hstack([G, np.ones((m, 1)), np.eye(m)])
        C = np.zeros((self.p, self.k))
        C[:q, :q] = np.eye(q)
        C[q:] = A @ K
        Sigma = C @ Phi @ C.T
        h = nu + G @ mu_u
        mu = np.concatenate([mu_u, A @ h])
        return Sigma, mu, (A, K, C, Phi, G, h, mu_u)

    def backprop(self, dS: np.ndarray, dmu: np.ndarray, parts) -> np.ndarray:
        """Gradient with respect to theta of a function with gradients ``dS`` (…, p, p) and ``dmu`` (…, p).

        Linear in (dS, dmu), batched over leading axes (one row of scores per entity).
        """
        A, K, C, Phi, G, h, mu_u = parts
        q, m = self.q, self.m
        s = self.slices
        n = dS.shape[0]
        out = np.zeros((n, self.n_params))
        H = C.T @ dS @ C  # dF/dPhi
        r, c = self.tril
        out[:, s["phi"]] = np.where(r == c, 1.0, 2.0) * H[:, r, c]
        out[:, s["ua"]] = 2.0 * H[:, self.ua, q]
        out[:, s["psi"]] = H[:, q, q][:, None]
        out[:, s["ue"]] = 2.0 * H[:, self.ue[0], q + 1 + self.ue[1]]
        e = q + 1 + np.arange(m)
        diag = H[:, e, e]
        out[:, s["sigma2"]] = diag.sum(axis=1, keepdims=True) if self.error_inv else diag
        P = 2.0 * (dS @ (C @ Phi))[:, q:, :]  # dF/dC, outcome rows
        gy = dmu[:, q:]
        dA = P @ K.T + gy[:, :, None] * h[None, None, :]
        AtP = A.T @ P
        a = gy @ A  # A' gy, batched
        dG = AtP[:, :, :q] + a[:, :, None] * mu_u[None, None, :]
        dB = A.T @ dA @ A.T
        out[:, s["nu"]] = a
        out[:, s["mu_u"]] = dmu[:, :q] + a @ G
        coef = np.zeros((n, self.n_coef))
        for j in range(self.n_coef):
            sel = self.b_pos[0] == j
            coef[:, j] += dB[:, self.b_pos[1][sel], self.b_pos[2][sel]].sum(axis=1)
            sel = self.g_pos[0] == j
            coef[:, j] += dG[:, self.g_pos[1][sel], self.g_pos[2][sel]].sum(axis=1)
        out[:, s["coef"]] = coef
        return out


def fisher_information(layout: Layout, theta: np.ndarray) -> np.ndarray:
    """Expected Hessian of F for complete data, ``2 x`` the per-entity Fisher information (a preconditioner).

    The Phi block is closed form in ``K = C' Sigma^-1 C``: entries (i, j) and (a, b) of Phi give
    ``d_ij d_ab (K_ia K_jb + K_ib K_ja)`` with d = 1/2 on the diagonal.
    """
    L, s = layout, layout.slices
    q, m = L.q, L.m
    Sigma, mu, (A, K_, C, Phi, G, h, mu_u) = L.moments(theta)
    Si = np.linalg.inv(Sigma)
    K = C.T @ Si @ C
    e = q + 1 + np.arange(m)
    EI = np.concatenate([L.tril[0], L.ua, [q], L.ue[0], e])
    EJ = np.concatenate([L.tril[1], np.full(len(L.ua), q), [q], q + 1 + L.ue[1], e])
    EP = np.concatenate(
        [
            np.arange(s["phi"].start, s["phi"].stop),
            np.arange(s["ua"].start, s["ua"].stop),
            [s["psi"].start],
            np.arange(s["ue"].start, s["ue"].stop),
            np.full(m, s["sigma2"].start) if L.error_inv else np.arange(s["sigma2"].start, s["sigma2"].stop),
        ]
    ).astype(int)
    d = np.where(EI == EJ, 0.5, 1.0)
    info_e = (K[np.ix_(EI, EI)] * K[np.ix_(EJ, EJ)] + K[np.ix_(EI, EJ)] * K[np.ix_(EJ, EI)]) * np.outer(d, d)
    S = np.zeros((L.n_params, len(EI)))
    S[EP, np.arange(len(EI))] = 1.0
    info = S @ info_e @ S.T
    # coefficients: explicit derivatives of Sigma and mu
    Cy = C[q:]
    mu_y = mu[q:]
    Jmu = np.zeros((L.p, L.n_params))
    Jmu[:q, s["mu_u"]] = np.eye(q)
    Jmu[q:, s["mu_u"]] = A @ G
    Jmu[q:, s["nu"]] = A
    Y = []
    for c in range(L.n_coef):
        dB = np.zeros((m, m))
        sel = L.b_pos[0] == c
        dB[L.b_pos[1][sel], L.b_pos[2][sel]] = 1.0
        dG = np.zeros((m, q))
        sel = L.g_pos[0] == c
        dG[L.g_pos[1][sel], L.g_pos[2][sel]] = 1.0
        dC = np.zeros_like(C)
        dC[q:] = A @ (dB @ Cy)
        dC[q:, :q] += A @ dG
        dSig = dC @ Phi @ C.T
        dSig = dSig + dSig.T
        Yc = Si @ dSig @ Si
        Y.append((Yc, dSig))
        X = C.T @ Yc @ C
        cross = S @ (X[EI, EJ] * d)
        j = s["coef"].start + c
        info[j, :] += cross
        info[:, j] += cross
        Jmu[q:, j] = A @ (dB @ mu_y + dG @ mu_u)
    for c, (Yc, _) in enumerate(Y):
        for c2, (_, dS2) in enumerate(Y):
            info[s["coef"].start + c, s["coef"].start + c2] = 0.5 * np.sum(Yc * dS2)
    info += Jmu.T @ Si @ Jmu
    return 2.0 * info


@dataclass
class Pattern:
    """Entities sharing one missingness pattern: observed columns, count, mean, covariance (divisor n)."""

    obs: np.ndarray
    n: int
    mean: np.ndarray
    cov: np.ndarray
    rows: np.ndarray


def missingness_patterns(Z: np.ndarray) -> list[Pattern]:
    mask = np.isfinite(Z)
    keys, inverse = np.unique(mask, axis=0, return_inverse=True)
    out = []
    for g, key in enumerate(keys):
        rows = np.flatnonzero(inverse.ravel() == g)
        obs = np.flatnonzero(key)
        if obs.size == 0:
            continue
        X = Z[np.ix_(rows, obs)]
        mean = X.mean(axis=0)
        D = X - mean
        out.append(Pattern(obs, len(rows), mean, D.T @ D / len(rows), rows))
    return out


def fit_function(Sigma: np.ndarray, mu: np.ndarray, patterns: list[Pattern], N: int, grad: bool = True):
    """F (without the saturated constant) and its gradients with respect to Sigma and mu."""
    p = len(mu)
    f = 0.0
    dS = np.zeros((p, p))
    dmu = np.zeros(p)
    for pat in patterns:
        o = pat.obs
        S_oo = Sigma[np.ix_(o, o)]
        try:
            L = np.linalg.cholesky(S_oo)
        except np.linalg.LinAlgError:
            return None
        Inv = np.linalg.inv(S_oo)
        d = pat.mean - mu[o]
        T = pat.cov + np.outer(d, d)
        w = pat.n / N
        f += w * (2.0 * np.log(np.diag(L)).sum() + np.sum(T * Inv))
        if grad:
            dS[np.ix_(o, o)] += w * (Inv - Inv @ T @ Inv)
            dmu[o] += -2.0 * w * (Inv @ d)
    return f, dS, dmu


def entity_scores(Sigma, mu, Z, patterns, layout, parts, N) -> np.ndarray:
    """Per-entity scores of the log-likelihood (N x n_params)."""
    p = len(mu)
    out = np.zeros((Z.shape[0], layout.n_params))
    for pat in patterns:
        o = pat.obs
        Inv = np.linalg.inv(Sigma[np.ix_(o, o)])
        for start in range(0, len(pat.rows), 256):
            rows = pat.rows[start : start + 256]
            R = (Z[np.ix_(rows, o)] - mu[o]) @ Inv
            dS = np.zeros((len(rows), p, p))
            dS[np.ix_(np.arange(len(rows)), o, o)] = Inv[None] - R[:, :, None] * R[:, None, :]
            dmu = np.zeros((len(rows), p))
            dmu[:, o] = -2.0 * R
            out[rows] = -0.5 * layout.backprop(dS, dmu, parts)
    return out


def saturated_fit(Z: np.ndarray, patterns: list[Pattern], N: int, max_iter: int = 5000) -> float:
    """F at the saturated model: the sample moments, or their EM estimates when data are missing."""
    if len(patterns) == 1 and len(patterns[0].obs) == Z.shape[1]:
        pat = patterns[0]
        return float(np.linalg.slogdet(pat.cov)[1] + Z.shape[1])
    mu = np.nanmean(Z, axis=0)
    Sigma = pd.DataFrame(Z).cov(ddof=0).to_numpy()
    Sigma = np.where(np.isfinite(Sigma), Sigma, 0.0) + 1e-8 * np.eye(Z.shape[1])
    p = Z.shape[1]
    prev = np.inf
    for _ in range(max_iter):
        s1 = np.zeros(p)
        s2 = np.zeros((p, p))
        for pat in patterns:
            o = pat.obs
            mis = np.setdiff1d(np.arange(p), o)
            X = Z[np.ix_(pat.rows, o)]
            full = np.zeros((len(pat.rows), p))
            full[:, o] = X
            extra = np.zeros((p, p))
            if mis.size:
                reg = np.linalg.solve(Sigma[np.ix_(o, o)], Sigma[np.ix_(o, mis)]).T
                full[:, mis] = mu[mis] + (X - mu[o]) @ reg.T
                extra[np.ix_(mis, mis)] = Sigma[np.ix_(mis, mis)] - reg @ Sigma[np.ix_(o, mis)]
            s1 += full.sum(axis=0)
            s2 += full.T @ full + len(pat.rows) * extra
        n = sum(pat.n for pat in patterns)
        mu = s1 / n
        Sigma = s2 / n - np.outer(mu, mu)
        res = fit_function(Sigma, mu, patterns, N, grad=False)
        f = res[0] if res is not None else np.inf
        if abs(prev - f) < 1e-12:
            break
        prev = f
    return float(f)


# ---------------------------------------------------------------------------------------------- data to wide form
@dataclass
class WideData:
    Z: np.ndarray  # N x p, scaled and centred, NaN where missing
    center: np.ndarray
    scale: np.ndarray
    layout: Layout
    eq_waves: np.ndarray
    entities: pd.Index
    xterms: list[Term]
    ylags: list[int]
    invariant: list[str]
    y_cols: dict[int, int]  # wave -> column of the outcome
    x_cols: dict[tuple[str, int | None], int]  # (variable, wave) -> column
    w_cols: dict[str, int]
    absorbed: list[tuple[int, int, float]]  # (coefficient, equation, value) of regressors constant at a wave


def build_wide(formula, panel: Panel, predetermined, error_inv: bool, method: str = "ml") -> tuple[WideData, Design]:
    design = build_design(formula, panel)
    dep, terms = design.dep, list(design.terms)
    bad_lead = [t.name for t in terms if t.lag < 0]
    if bad_lead:
        raise SpecificationError(f"method={method!r} takes lags, not leads: remove {bad_lead} from the formula.")
    ylags = sorted(t.lag for t in terms if t.variable == dep)
    xterms = [t for t in terms if t.variable != dep]
    variables = list(dict.fromkeys(t.variable for t in xterms))
    values = design.values([dep, *variables])
    codes, periods = design.codes, design.periods
    n_ent = int(codes.max()) + 1
    start = int(periods.min())
    n_waves = int(periods.max()) - start + 1
    wave = periods - start

    def wide(v: np.ndarray) -> np.ndarray:
        out = np.full((n_ent, n_waves), np.nan)
        out[codes, wave] = v
        return out

    # time-invariant regressors: constant within every entity (xtdpdml's inv())
    invariant = []
    for v in variables:
        W = wide(values[v])
        spread = np.nanmax(W, axis=1) - np.nanmin(W, axis=1)
        if np.all(np.nan_to_num(spread) <= 1e-12 * max(1.0, float(np.nanmax(np.abs(W))))):
            invariant.append(v)
    for v in invariant:
        lags = [t.name for t in xterms if t.variable == v]
        if len(lags) > 1 or any(t.lag for t in xterms if t.variable == v):
            raise SpecificationError(
                f"{v!r} is constant within every {panel.entity} (time-invariant), so its lags {lags} are the same "
                "variable; enter it once, without a lag."
            )
    pre = _check_predetermined(predetermined, dep, terms, variables, invariant)
    max_lag = max([t.lag for t in terms] + [0])
    first = max(max_lag, 1 if ylags else 0)
    eq_waves = np.arange(first, n_waves)
    if len(eq_waves) < 2:
        raise TooFewPeriodsError(
            f"method={method!r} needs at least two waves with an equation; with lags up to {max_lag} the panel's "
            f"{n_waves} periods leave {len(eq_waves)}. Use fewer lags or a longer panel."
        )
    # exogenous columns: initial outcomes, time-varying regressors by wave, time-invariant regressors
    cols: list[tuple[str, int | None]] = []
    init = sorted({t - k for t in eq_waves for k in ylags if t - k < first})
    cols += [(dep, int(s)) for s in init]
    tv_vars = [v for v in variables if v not in invariant]
    for v in tv_vars:
        waves = sorted({int(t - term.lag) for t in eq_waves for term in xterms if term.variable == v})
        cols += [(v, s) for s in waves]
    cols += [(v, None) for v in invariant]
    wides = {v: wide(values[v]) for v in [dep, *tv_vars]}
    raw = {c: wides[c[0]][:, c[1]] if c[1] is not None else np.nanmean(wide(values[c[0]]), axis=1) for c in cols}
    raw |= {(dep, int(t)): wides[dep][:, t] for t in eq_waves}
    # a regressor that takes one value for every entity at a wave is absorbed by that wave's intercept
    constant = {}
    for c in cols:
        vals = raw[c][np.isfinite(raw[c])]
        if vals.size == 0 or np.ptp(vals) <= 1e-12 * max(1.0, float(np.abs(vals).max())):
            constant[c] = float(vals[0]) if vals.size else float("nan")
    for v in dict.fromkeys(c[0] for c in cols):
        if all(c in constant for c in cols if c[0] == v):
            raise CollinearityError(
                f"{v!r} takes one value for every {panel.entity} at each wave it enters, so the wave intercepts "
                "absorb it; drop it from the formula."
            )
    for t in eq_waves:
        vals = raw[(dep, int(t))][np.isfinite(raw[(dep, int(t))])]
        if vals.size == 0 or np.ptp(vals) == 0:
            raise CollinearityError(f"The outcome {dep!r} has no variance across {panel.entity}s at wave {t + start}.")
    cols = [c for c in cols if c not in constant]
    q = len(cols)
    cols += [(dep, int(t)) for t in eq_waves]
    index = {c: i for i, c in enumerate(cols)}
    m = len(eq_waves)
    Z = np.column_stack([raw[c] for c in cols])
    keep = np.isfinite(Z).any(axis=1)
    Z = Z[keep]
    entities = panel.entities[keep]
    if Z.shape[0] < 2:
        raise EmptyPanelError(f"method={method!r} needs at least two entities with data.")
    # centre each column, scale each variable by its pooled standard deviation
    center = np.nanmean(Z, axis=0)
    scale = np.ones(Z.shape[1])
    for v in dict.fromkeys(c[0] for c in cols):
        idx = [i for i, c in enumerate(cols) if c[0] == v]
        sd = float(np.nanstd(Z[:, idx] - center[idx]))
        scale[idx] = sd if sd > 0 else 1.0
    Zs = (Z - center) / scale
    # coefficient positions: (coefficient, equation, column) in B (outcomes) or Gamma (exogenous)
    coef_names = [lag_term.name for lag_term in terms]
    b_pos: list[list[int]] = [[], [], []]
    g_pos: list[list[int]] = [[], [], []]
    absorbed: list[tuple[int, int, float]] = []
    for j, term in enumerate(terms):
        for r, t in enumerate(eq_waves):
            if term.variable == dep and int(t - term.lag) >= first:
                b_pos[0].append(j)
                b_pos[1].append(r)
                b_pos[2].append(int(t - term.lag) - first)
                continue
            key = (term.variable, None if term.variable in invariant else int(t - term.lag))
            if key in constant:
                absorbed.append((j, r, constant[key]))
            else:
                g_pos[0].append(j)
                g_pos[1].append(r)
                g_pos[2].append(index[key])
    tril = np.tril_indices(q)
    ua = np.array([i for i in range(q) if cols[i][1] is not None], dtype=int)
    ue_u, ue_e = [], []
    for i in range(q):
        v, s = cols[i]
        if v in pre and s is not None:
            for r, t in enumerate(eq_waves):
                if s > t:
                    ue_u.append(i)
                    ue_e.append(r)
    layout = Layout(
        q=q,
        m=m,
        coef_names=coef_names,
        n_coef=len(terms),
        b_pos=(np.asarray(b_pos[0], dtype=int), np.asarray(b_pos[1], dtype=int), np.asarray(b_pos[2], dtype=int)),
        g_pos=(np.asarray(g_pos[0], dtype=int), np.asarray(g_pos[1], dtype=int), np.asarray(g_pos[2], dtype=int)),
        tril=tril,
        ua=ua,
        ue=(np.asarray(ue_u, dtype=int), np.asarray(ue_e, dtype=int)),
        error_inv=error_inv,
        columns=cols,
    )
    out = WideData(
        Z=Zs,
        center=center,
        scale=scale,
        layout=layout,
        eq_waves=eq_waves + start,
        entities=entities,
        xterms=xterms,
        ylags=ylags,
        invariant=invariant,
        y_cols={int(t): index[(dep, int(t))] for t in eq_waves},
        x_cols={c: i for i, c in enumerate(cols) if c[1] is not None},
        w_cols={v: index[(v, None)] for v in invariant},
        absorbed=absorbed,
    )
    return out, design


def _check_predetermined(predetermined, dep, terms, variables, invariant) -> set[str]:
    if predetermined is None:
        return set()
    if isinstance(predetermined, str):
        predetermined = [predetermined]
    names = {t.name: t.variable for t in terms}
    out = set()
    for name in predetermined:
        if not isinstance(name, str):
            raise SpecificationError(f"predetermined must list regressor names, got {name!r}.")
        var = names.get(name, name)
        if var == dep:
            raise SpecificationError(
                f"predetermined names the outcome {name!r}: its lags are predetermined by construction; list "
                "only other regressors."
            )
        if var not in variables:
            raise SpecificationError(
                f"predetermined names {name!r}, which is not a regressor of the formula; regressors are "
                f"{[t.name for t in terms if t.variable != dep]}."
            )
        if var in invariant:
            raise SpecificationError(
                f"predetermined names {name!r}, which is time-invariant (constant within every entity); only "
                "time-varying regressors can be predetermined."
            )
        out.add(var)
    return out


# ---------------------------------------------------------------------------------------------- estimation
def start_values(wide: WideData) -> np.ndarray:
    L, Z = wide.layout, wide.Z
    q, m = L.q, L.m
    theta = np.zeros(L.n_params)
    s = L.slices
    # coefficients: pooled OLS over the stacked equations with wave intercepts (complete cases)
    rows, ys = [], []
    for r in range(m):
        X = np.zeros((Z.shape[0], L.n_coef))
        for j in range(L.n_coef):
            sel = L.b_pos[0] == j
            for rr, cc in zip(L.b_pos[1][sel], L.b_pos[2][sel], strict=True):
                if rr == r:
                    X[:, j] += Z[:, q + cc]
            sel = L.g_pos[0] == j
            for rr, cc in zip(L.g_pos[1][sel], L.g_pos[2][sel], strict=True):
                if rr == r:
                    X[:, j] += Z[:, cc]
        D = np.zeros((Z.shape[0], m))
        D[:, r] = 1.0
        rows.append(np.hstack([X, D]))
        ys.append(Z[:, q + r])
    X, y = np.vstack(rows), np.concatenate(ys)
    ok = np.isfinite(y) & np.isfinite(X).all(axis=1)
    b = np.linalg.lstsq(X[ok], y[ok], rcond=None)[0]
    resid_var = float(np.var(y[ok] - X[ok] @ b)) if ok.sum() > X.shape[1] else 1.0
    theta[s["coef"]] = b[: L.n_coef]
    mu = np.nanmean(Z, axis=0)
    Suu = pd.DataFrame(Z[:, :q]).cov(ddof=0).to_numpy()
    Suu = np.where(np.isfinite(Suu), Suu, 0.0)
    w, V = np.linalg.eigh(Suu)
    Suu = (V * np.maximum(w, 1e-3 * max(w.max(), 1e-12))) @ V.T
    theta[s["phi"]] = Suu[L.tril]
    theta[s["mu_u"]] = mu[:q]
    theta[s["psi"]] = 0.5 * max(resid_var, 1e-3)
    theta[s["sigma2"]] = 0.5 * max(resid_var, 1e-3)
    B, G, *_ = L.unpack(theta)
    theta[s["nu"]] = (np.eye(m) - B) @ np.nan_to_num(mu[q:]) - G @ mu[:q]
    return theta


def objective(theta, layout, patterns, N):
    Sigma, mu, parts = layout.moments(theta)
    res = fit_function(Sigma, mu, patterns, N)
    if res is None:
        return None
    f, dS, dmu = res
    return f, layout.backprop(dS[None], dmu[None], parts)[0]


class _Guarded:
    """The objective for the optimiser: where Sigma is not positive definite, a value a little above the last
    good one (and no slope), so the line search steps back by interpolation instead of collapsing."""

    def __init__(self, layout, patterns, N):
        self.args = (layout, patterns, N)
        self.last = None

    def __call__(self, theta):
        out = objective(theta, *self.args)
        if out is None:
            f_bad = _BIG if self.last is None else self.last + 1.0 + abs(self.last)
            return f_bad, np.zeros_like(theta)
        self.last = out[0]
        return out


def hessian(theta, layout, patterns, N, h: float = 1e-5) -> np.ndarray:
    n = len(theta)
    H = np.zeros((n, n))
    for j in range(n):
        step = h * max(1.0, abs(theta[j]))
        tp, tm = theta.copy(), theta.copy()
        tp[j] += step
        tm[j] -= step
        H[:, j] = (objective(tp, layout, patterns, N)[1] - objective(tm, layout, patterns, N)[1]) / (2 * step)
    return 0.5 * (H + H.T)


def maximise_likelihood(wide: WideData, patterns, N):
    layout = wide.layout
    theta0 = start_values(wide)
    # precondition with the expected information at the start: theta = theta0 + R^-1 phi, R'R = information
    info = fisher_information(layout, theta0)
    scale = np.sqrt(np.maximum(np.diag(info), 1e-12))
    try:
        R = np.linalg.cholesky(info / np.outer(scale, scale) + 1e-10 * np.eye(len(scale))).T * scale
    except np.linalg.LinAlgError:
        R = np.diag(scale)
    guarded = _Guarded(layout, patterns, N)

    def fun(phi):
        th = theta0 + linalg.solve_triangular(R, phi)
        f, g = guarded(th)
        return f, linalg.solve_triangular(R, g, trans="T")

    res = optimize.minimize(
        fun,
        np.zeros_like(theta0),
        jac=True,
        method="L-BFGS-B",
        options={"maxiter": 50000, "maxfun": 100000, "maxcor": 20, "ftol": 1e-16, "gtol": 1e-10},
    )
    res.x = theta0 + linalg.solve_triangular(R, res.x)
    theta, f = res.x, res.fun
    H = hessian(theta, layout, patterns, N)
    moved = 0.0
    g = objective(theta, layout, patterns, N)[1]
    for _ in range(10):  # Newton polish on the fixed Hessian: L-BFGS stops short in flat, long valleys
        if np.max(np.abs(g)) < 1e-12:
            break
        try:
            step = np.linalg.solve(H, g)
        except np.linalg.LinAlgError:
            break
        out = objective(theta - step, layout, patterns, N)
        # near the optimum F is flat to round-off: accept a step that shrinks the gradient without raising F
        if out is None or out[0] > f + 1e-12 * max(1.0, abs(f)) or np.max(np.abs(out[1])) >= np.max(np.abs(g)):
            break
        theta, f, g = theta - step, out[0], out[1]
        moved = max(moved, float(np.max(np.abs(step))))
    if moved > 1e-4:  # the Hessian of the standard errors at the point they are reported
        H = hessian(theta, layout, patterns, N)
    g = objective(theta, layout, patterns, N)[1]
    return theta, f, H, g, res


def original_map(wide: WideData, theta: np.ndarray):
    """Affine map from the scaled-space parameters to (coefficients, wave intercepts) in data units."""
    L = wide.layout
    s = L.slices
    q, m = L.q, L.m
    y_col0 = q
    sy = wide.scale[y_col0]
    J = np.zeros((L.n_coef + m, L.n_params))
    off = np.zeros(L.n_coef + m)
    unit = np.zeros(L.n_coef)  # coef_orig = unit * coef_scaled
    for j in range(L.n_coef):
        cols = list(L.g_pos[2][L.g_pos[0] == j]) or [q + c for c in L.b_pos[2][L.b_pos[0] == j]]
        unit[j] = sy / wide.scale[cols[0]]
        J[j, s["coef"].start + j] = unit[j]
    # nu_orig_t = sy * nu_t + c(y_t) - sum_j coef_orig_j * c(column of j in equation t)
    for r in range(m):
        row = L.n_coef + r
        J[row, s["nu"].start + r] = sy
        off[row] = wide.center[q + r]
        for j in range(L.n_coef):
            for pos, base in ((L.b_pos, q), (L.g_pos, 0)):
                sel = (pos[0] == j) & (pos[1] == r)
                for c in pos[2][sel]:
                    J[row, s["coef"].start + j] -= unit[j] * wide.center[base + c]
    for j, r, value in wide.absorbed:
        J[L.n_coef + r, s["coef"].start + j] -= unit[j] * value
    return J, off


def wave_labels(panel: Panel, waves: np.ndarray) -> list:
    """The time column's values of the given integer periods (the period itself where none is observed)."""
    frame = panel.data
    lookup = dict(zip(panel.periods.tolist(), frame[panel.time].tolist(), strict=True))
    return [lookup.get(int(t), int(t)) for t in waves]


# ---------------------------------------------------------------------------------------------- concentrated likelihood
@dataclass
class Profile:
    r"""The likelihood concentrated in closed form on everything but the coefficients and the error variances.

    For complete data with no time-invariant regressor, write :math:`w = (I - B)y - \Gamma u = \nu + 1\alpha + e`
    (a map with Jacobian 1, ``B`` strictly lower triangular) and split the exogenous columns into ``u_s``, whose
    errors never covary with ``e`` (initial outcomes, strictly exogenous regressors), and ``u_p``, the
    predetermined ones, column ``j`` covarying with the errors of the waves :math:`T_j`. The density factors as

    .. math::

        p(u_s)\, p(w \mid u_s)\, \prod_j p(u_{p,j} \mid u_{p,<j}, w, u_s),

    with variation-free parameters: :math:`u_s` is saturated (its MLE is the sample moments);
    :math:`w \mid u_s \sim N(\nu^* + 1\lambda' u_s, \psi^* 11' + D)`, whose weighted mean :math:`\bar w = a'w`,
    :math:`a = D^{-1}1 / 1'D^{-1}1`, is independent of the contrasts :math:`(I - 1a')w`, so that
    :math:`\lambda, \psi^*` are an OLS of :math:`\bar w` on :math:`u_s`; and, with the :math:`T_j` nested,
    each predetermined column is an unrestricted regression on :math:`(u_s, \bar w, w_{T_j}, u_{p,<j})`. So

    .. math::

        F_p(\beta, D) = \log|S_{ss}| + q_s + \log\hat\sigma^2_{\bar w} + 1 + \sum_j (\log\hat\sigma^2_j + 1)
        + \log|D| + \log 1'D^{-1}1 + \mathrm{tr}(D^{-1}(I - 1a')S_{ww}(I - a1')),

    every residual variance read off one Cholesky factor. :meth:`theta` maps the concentrated solution back to
    the full parameter vector of :class:`Layout`, so :func:`objective` gives the exact gradient of
    :math:`F_p` (the envelope theorem) and every statistic of the full model.

    Examples
    --------
    >>> import causalcts
    >>> from causalcts.data.panel import Panel
    >>> from causalcts.models import sem
    >>> sim = causalcts.simulate(n_teams=80, n_weeks=5, seed=3)
    >>> panel = Panel(sim.data, columns=["cr_velocity", "ai_share", "rollback_rate"])
    >>> formula = "cr_velocity ~ L(cr_velocity, 1) + ai_share + rollback_rate"
    >>> wide, _ = sem.build_wide(formula, panel, ["ai_share"], False)
    >>> pats = sem.missingness_patterns(wide.Z)
    >>> prof = sem.profile_layout(wide, pats)
    >>> phi = prof.start(sem.start_values(wide))  # coefficients and log error variances
    >>> f_p, pieces = prof.value(phi)
    >>> f, grad = sem.objective(prof.theta(phi, pieces), wide.layout, pats, wide.Z.shape[0])
    >>> prof.n_profile, wide.layout.n_params, bool(abs(f - f_p) < 1e-10)
    (7, 81, True)
    """

    layout: Layout
    S: np.ndarray  # sample covariance (divisor N) of the wide data
    mean: np.ndarray
    s_idx: np.ndarray  # exogenous columns whose errors never covary with e
    p_idx: np.ndarray  # predetermined columns, in the order of their nested feedback sets
    feedback: list[np.ndarray]  # T_j, the waves whose errors covary with p_idx[j]
    order: np.ndarray  # rows of the ordered functionals: index into (u, w) or -1 for the weighted mean
    p_rows: np.ndarray  # position of each predetermined column in that order

    @property
    def n_profile(self) -> int:
        return self.layout.n_coef + (1 if self.layout.error_inv else self.layout.m)

    def start(self, theta0: np.ndarray) -> np.ndarray:
        s = self.layout.slices
        return np.concatenate([theta0[s["coef"]], np.log(np.maximum(theta0[s["sigma2"]], 1e-6))])

    def _pieces(self, phi: np.ndarray):
        L = self.layout
        q, m, s = L.q, L.m, L.slices
        theta = np.zeros(L.n_params)
        theta[s["coef"]] = phi[: L.n_coef]
        sig = np.exp(phi[L.n_coef :])
        theta[s["sigma2"]] = sig
        B, G, *_ = L.unpack(theta)
        d = np.full(m, sig[0]) if L.error_inv else sig
        T = np.eye(L.p)
        T[q:, :q] = -G
        T[q:, q:] -= B
        Sv = T @ self.S @ T.T  # covariance of (u, w)
        a = (1.0 / d) / np.sum(1.0 / d)
        R = np.zeros((len(self.order), L.p))
        fixed = self.order >= 0
        R[np.flatnonzero(fixed), self.order[fixed]] = 1.0
        R[np.flatnonzero(~fixed), q:] = a
        return theta, T, Sv, a, d, R

    def value(self, phi: np.ndarray):
        """F_p and the closed-form pieces, or None where the ordered covariance is not positive definite."""
        L = self.layout
        q = L.q
        theta, T, Sv, a, d, R = self._pieces(phi)
        try:
            chol = np.linalg.cholesky(R @ Sv @ R.T)
        except np.linalg.LinAlgError:
            return None
        diag = np.diag(chol)
        qs = len(self.s_idx)
        Sww = Sv[q:, q:]
        Sa = Sww @ a
        # tr(D^-1 (I - 1a') Sww (I - a1'))
        tr = np.sum(np.diag(Sww) / d) - 2.0 * np.sum(Sa / d) + float(a @ Sa) * np.sum(1.0 / d)
        f = (
            2.0 * np.log(diag[:qs]).sum()
            + qs
            + 2.0 * np.log(diag[qs])
            + 1.0
            + np.sum(2.0 * np.log(diag[self.p_rows]) + 1.0)
            + np.log(d).sum()
            + np.log(np.sum(1.0 / d))
            + tr
        )
        return float(f), (theta, T, Sv, a, d, R, chol)

    def theta(self, phi: np.ndarray, pieces=None) -> np.ndarray:
        """The full parameter vector at the concentrated optimum given (coefficients, log error variances)."""
        L = self.layout
        q, m, s = L.q, L.m, L.slices
        if pieces is None:
            out = self.value(phi)
            if out is None:
                raise np.linalg.LinAlgError("not positive definite")
            pieces = out[1]
        theta, T, Sv, a, d, R, chol = pieces
        si, pi = self.s_idx, self.p_idx
        qs = len(si)
        Sss = Sv[np.ix_(si, si)]
        lam = np.linalg.solve(Sss, Sv[si, q:] @ a)
        psi = chol[qs, qs] ** 2 - 1.0 / np.sum(1.0 / d) + float(lam @ Sss @ lam)
        # model covariance of x = (u_s, w)
        nx = qs + m
        Sx = np.zeros((nx, nx))
        Sx[:qs, :qs] = Sss
        Sx[qs:, :qs] = np.outer(np.ones(m), Sss @ lam)
        Sx[:qs, qs:] = Sx[qs:, :qs].T
        Sx[qs:, qs:] = psi + np.diag(d)
        # predetermined columns: sequential regressions read off the Cholesky factor, in (u, w) coordinates
        Ginv = linalg.solve_triangular(chol, np.eye(len(chol)), lower=True)
        coef_v = np.zeros((len(pi), L.p))
        for j, k in enumerate(self.p_rows):
            coef_v[j] = -(Ginv[k, :k] / Ginv[k, k]) @ R[:k]
        xcols = np.concatenate([si, q + np.arange(m)])
        Hx, Hp = coef_v[:, xcols], coef_v[:, pi]
        resid = np.diag(chol)[self.p_rows] ** 2
        Ainv = np.linalg.inv(np.eye(len(pi)) - Hp)
        Cpx = Ainv @ Hx @ Sx
        Spp = Ainv @ (Hx @ Sx @ Hx.T + np.diag(resid)) @ Ainv.T
        Sigma_v = np.zeros((L.p, L.p))
        Sigma_v[np.ix_(xcols, xcols)] = Sx
        Sigma_v[np.ix_(pi, xcols)] = Cpx
        Sigma_v[np.ix_(xcols, pi)] = Cpx.T
        Sigma_v[np.ix_(pi, pi)] = 0.5 * (Spp + Spp.T)
        Phi_uu, Cuw = Sigma_v[:q, :q], Sigma_v[:q, q:]
        # Cov(u_i, w_t) = phi_i,alpha + Phi_ue[i, t]: the fixed-effect covariance from a wave outside T_i
        fb = np.zeros((q, m), dtype=bool)
        fb[L.ue[0], L.ue[1]] = True
        t0 = np.argmin(fb, axis=1)  # first wave whose error does not covary with u_i
        phi_ua = Cuw[np.arange(q), t0]
        theta[s["phi"]] = Phi_uu[L.tril]
        theta[s["ua"]] = phi_ua[L.ua]
        theta[s["psi"]] = psi
        theta[s["ue"]] = Cuw[L.ue[0], L.ue[1]] - phi_ua[L.ue[0]]
        mv = T @ self.mean
        theta[s["mu_u"]] = mv[:q]
        theta[s["nu"]] = mv[q:]
        return theta

    def entity_loglik(self, theta: np.ndarray, Z: np.ndarray) -> np.ndarray:
        """Each entity's log-likelihood (without the 2 pi constant) at ``theta``."""
        Sigma, mu, _ = self.layout.moments(theta)
        chol = np.linalg.cholesky(Sigma)
        R = linalg.solve_triangular(chol, (Z - mu).T, lower=True)
        return -np.log(np.diag(chol)).sum() - 0.5 * np.sum(R * R, axis=0)


def profile_layout(wide: WideData, patterns: list[Pattern]) -> Profile | None:
    """The concentrated likelihood where it is exact (complete data, no time-invariant regressor, nested
    feedback sets); None where the general path must be taken."""
    L, Z = wide.layout, wide.Z
    if len(patterns) != 1 or len(patterns[0].obs) != L.p or wide.invariant:
        return None
    if len(L.ua) != L.q or (len(L.b_pos[0]) and np.any(L.b_pos[2] >= L.b_pos[1])):
        return None
    sets: dict[int, set[int]] = {}
    for i, t in zip(L.ue[0].tolist(), L.ue[1].tolist(), strict=True):
        sets.setdefault(i, set()).add(t)
    p_idx = sorted(sets, key=lambda i: (len(sets[i]), i))
    feedback = [np.array(sorted(sets[i]), dtype=int) for i in p_idx]
    for j in range(1, len(p_idx)):
        if not sets[p_idx[j - 1]] <= sets[p_idx[j]]:
            return None
    if any(len(t) >= L.m for t in feedback):
        return None
    s_idx = np.array([i for i in range(L.q) if i not in sets], dtype=int)
    order: list[int] = [*s_idx.tolist(), -1]
    p_rows = []
    entered: set[int] = set()
    for i, waves in zip(p_idx, feedback, strict=True):
        new = sorted(set(waves.tolist()) - entered)
        order += [L.q + t for t in new]
        entered |= set(new)
        p_rows.append(len(order))
        order.append(i)
    mean = Z.mean(axis=0)
    D = Z - mean
    return Profile(
        layout=L,
        S=D.T @ D / Z.shape[0],
        mean=mean,
        s_idx=s_idx,
        p_idx=np.array(p_idx, dtype=int),
        feedback=feedback,
        order=np.array(order, dtype=int),
        p_rows=np.array(p_rows, dtype=int),
    )


def _profile_gradient(prof: Profile, g: np.ndarray, phi: np.ndarray) -> np.ndarray:
    s, k = prof.layout.slices, prof.layout.n_coef
    return np.concatenate([g[s["coef"]], g[s["sigma2"]] * np.exp(phi[k:])])


def _profile_objective(prof: Profile, patterns, N, phi):
    out = prof.value(phi)
    if out is None:
        return None
    theta = prof.theta(phi, out[1])
    res = objective(theta, prof.layout, patterns, N)
    if res is None:
        return None
    return out[0], _profile_gradient(prof, res[1], phi), theta, res[1]


def maximise_profile(prof: Profile, wide: WideData, patterns, N):
    """Maximise the concentrated likelihood of :class:`Profile`: BFGS, then Newton steps on its Hessian.

    Returns the full ``theta``, F, the Hessian of F in the profile parameters (coefficients, log error
    variances), the full gradient of F at ``theta``, the optimiser's report and the profile parameters.
    """
    phi0 = prof.start(start_values(wide))
    last: list[float] = []

    def fun(phi):
        out = _profile_objective(prof, patterns, N, phi)
        if out is None:  # as _Guarded: a value above the last good one, so the line search steps back
            return (_BIG if not last else last[-1] + 1.0 + abs(last[-1])), np.zeros_like(phi)
        last.append(out[0])
        return out[0], out[1]

    res = optimize.minimize(fun, phi0, jac=True, method="BFGS", options={"maxiter": 5000, "gtol": 1e-9, "norm": np.inf})
    phi = res.x
    f, gp, theta, g = _profile_objective(prof, patterns, N, phi)
    H = _profile_hessian(prof, patterns, N, phi)
    for _ in range(10):  # Newton polish: BFGS stops short where the surface is flat
        if np.max(np.abs(gp)) < 1e-12:
            break
        try:
            step = np.linalg.solve(H, gp)
        except np.linalg.LinAlgError:
            break
        out = _profile_objective(prof, patterns, N, phi - step)
        if out is None or out[0] > f + 1e-12 * max(1.0, abs(f)) or np.max(np.abs(out[1])) >= np.max(np.abs(gp)):
            break
        phi = phi - step
        f, gp, theta, g = out
        if np.max(np.abs(step)) > 1e-4:
            H = _profile_hessian(prof, patterns, N, phi)
    return theta, f, H, g, res, phi


def _profile_hessian(prof: Profile, patterns, N, phi, h: float = 1e-5) -> np.ndarray:
    n = len(phi)
    H = np.zeros((n, n))
    for j in range(n):
        step = h * max(1.0, abs(phi[j]))
        e = np.zeros(n)
        e[j] = step
        H[:, j] = (
            _profile_objective(prof, patterns, N, phi + e)[1] - _profile_objective(prof, patterns, N, phi - e)[1]
        ) / (2 * step)
    return 0.5 * (H + H.T)


def profile_covariance(prof: Profile, Z: np.ndarray, phi, theta, H, robust: bool, h: float = 1e-5):
    r"""Covariance of (coefficients, wave intercepts) in the scaled space, and their positions in ``theta``.

    The inverse of the profile Hessian is the coefficient block of the full inverse Hessian (a Schur
    complement). On centred complete data the means are saturated and estimated at zero, so the observed
    information is block diagonal between the mean parameters and the rest: the intercepts
    :math:`\nu = \bar w` have covariance :math:`\mathrm{Var}(w)/N` and none with the coefficients. With
    ``robust``, the sandwich uses each entity's score along the profile path (finite differences of its
    log-likelihood at the concentrated optimum), which is the efficient score of the full model, and
    :math:`(w_i - \bar w)/N`, the intercepts' influence.
    """
    L = prof.layout
    s, k, m, N = L.slices, L.n_coef, L.m, Z.shape[0]
    cols = np.concatenate([np.arange(s["coef"].start, s["coef"].stop), np.arange(s["nu"].start, s["nu"].stop)])
    Vp = np.linalg.inv(0.5 * N * H)
    B, G, *_ = L.unpack(theta)
    Tw = np.hstack([-G, np.eye(m) - B])
    V = np.zeros((k + m, k + m))
    if not robust:
        Sigma, _, _ = L.moments(theta)
        V[:k, :k] = Vp[:k, :k]
        V[k:, k:] = Tw @ Sigma @ Tw.T / N
        return cols, V
    scores = np.zeros((N, len(phi)))
    for j in range(len(phi)):
        step = h * max(1.0, abs(phi[j]))
        e = np.zeros(len(phi))
        e[j] = step
        up = prof.entity_loglik(prof.theta(phi + e), Z)
        down = prof.entity_loglik(prof.theta(phi - e), Z)
        scores[:, j] = (up - down) / (2 * step)
    W = Z @ Tw.T
    influence = np.hstack([(scores @ Vp)[:, :k], (W - W.mean(axis=0)) / N])
    return cols, influence.T @ influence
