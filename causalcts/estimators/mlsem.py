"""Maximum-likelihood dynamic panels with fixed effects as a structural equation model (``method="ml"``).

The ML-SEM estimator of Moral-Benito (2013) and Allison, Williams and Moral-Benito (2017, *Socius*), as
Stata's ``xtdpdml`` and R's ``dpm`` set it up. For waves ``t`` from the first one whose regressors are all
observed to the last,

.. math::

    y_{it} = \\alpha_i + \\nu_t + \\sum_k \\beta_k y_{i,t-k} + \\gamma' x_{it} + \\delta' w_i + e_{it},

with one equation per wave and the coefficients equal across waves. The fixed effect :math:`\\alpha_i` is a
latent variable (loading 1 in every equation) free to covary with every time-varying regressor at every
wave and with the initial outcomes, but not with the time-invariant regressors ``w``; a *predetermined*
regressor ``x`` has the error of wave ``t`` free to covary with ``x`` at later waves ``s > t`` (feedback
from the outcome to ``x``); a strictly exogenous one does not. The wave intercepts :math:`\\nu_t` are free,
and so are the error variances (or one variance for every wave with ``error_inv=True``: ``errorinv``).

Every observed variable (initial outcomes, regressors at each wave, time-invariant regressors, outcomes)
is jointly normal (Stata's ``noxconditional``). The model, its likelihood by missingness pattern and its
analytic gradient are :mod:`causalcts.models.sem` (shared with the Bayesian twin, ``method="bayes"`` with
``predetermined=``). The fit function is
``F = log|Sigma| + tr(S Sigma^-1) + (m - mu)' Sigma^-1 (m - mu) - log|S| - p``; it is minimised by
L-BFGS with its analytic gradient, then polished by Newton steps on the Hessian, which is the
finite-difference Jacobian of the analytic gradient. On complete data without time-invariant regressors
(``info["concentrated"]``), F is first concentrated in closed form on the coefficients and error variances
(:class:`causalcts.models.sem.Profile`): the same maximum, in seconds on long panels with controls. Standard
errors are from the observed information (``cov="unadjusted"``, the default, as ``xtdpdml``) or the sandwich
with per-entity scores (``cov="robust"``); on the concentrated path, from the profile Hessian (the Schur
complement of the full one) and each entity's score along the profile.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy import optimize, stats

from causalcts.errors import CausalCTSError, ConvergenceWarning, EmptyPanelError, SpecificationError, check_option
from causalcts.estimators.api import _as_panel, used_columns
from causalcts.models.sem import (
    Pattern,
    build_wide,
    entity_scores,
    maximise_likelihood,
    maximise_profile,
    missingness_patterns,
    objective,
    one_blas_thread,
    original_map,
    profile_covariance,
    profile_layout,
    saturated_fit,
    start_values,
    wave_labels,
)
from causalcts.results.base import EstimationResults

__all__ = ["METHODS_DECLARED", "fit_ml"]

# the model core's private names before it moved to causalcts.models.sem (tests/test_mlsem.py reads them)
_Pattern, _patterns, _saturated, _build, _start, _fun = (
    Pattern,
    missingness_patterns,
    saturated_fit,
    build_wide,
    start_values,
    objective,
)

COV_TYPES = ("unadjusted", "robust")


def _rmsea(chi2: float, df: int, N: int) -> tuple[float, float, float]:
    if df <= 0:
        return float("nan"), float("nan"), float("nan")
    point = np.sqrt(max(chi2 - df, 0.0) / (df * N))

    def bound(prob: float) -> float:
        def g(lam):
            return (stats.ncx2.cdf(chi2, df, lam) if lam > 0 else stats.chi2.cdf(chi2, df)) - prob

        if g(0.0) < 0:
            return 0.0
        hi = max(chi2, 1.0)
        while g(hi) > 0:
            hi *= 2
        lam = optimize.brentq(g, 0.0, hi, xtol=1e-10)
        return float(np.sqrt(lam / (df * N)))

    return float(point), bound(0.95), bound(0.05)


def fit_ml(
    formula: str,
    data,
    *,
    entity: str = "team",
    time: str = "week",
    time_effects: bool = True,
    predetermined=None,
    cov=None,
    error_inv=None,
) -> EstimationResults:
    """Maximum-likelihood dynamic panel with fixed effects (ML-SEM; ``xtdpdml``, R ``dpm``).

    Parameters
    ----------
    formula
        ``"y ~ L(y, 1) + L(x, 1) + w"``: lags of the outcome, time-varying regressors (at any lags) and
        time-invariant regressors (columns constant within every entity, detected from the data, like
        ``xtdpdml``'s ``inv()``: uncorrelated with the fixed effect).
    data
        DataFrame, :class:`~causalcts.Panel` or file path, one row per entity and period. Missing rows
        (an unbalanced panel) are handled by full-information ML.
    entity, time
        Key columns.
    time_effects
        Must be True: every wave has its own intercept (``xtdpdml``'s default; ``constinv`` is not offered).
    predetermined
        Time-varying regressors (column names, or term names such as ``"L1.x"``) whose future values may
        respond to today's error: the error of wave t covaries freely with them at waves after t. The others
        are strictly exogenous.
    cov
        ``"unadjusted"`` (default): observed-information standard errors, as ``xtdpdml``; ``"robust"``: the
        sandwich with per-entity scores (quasi-ML, robust to non-normal errors).
    error_inv
        True: one error variance for every wave (``xtdpdml``'s ``errorinv``); default False, free per wave.

    Returns
    -------
    EstimationResults
        ``params`` named as elsewhere (``L1.y``, ``L1.x``, ``w``); ``tests["saturated_lr"]`` holds the
        likelihood-ratio test against the saturated model (``statistic``, ``df``, ``pvalue``, ``rmsea``,
        ``rmsea_lower``, ``rmsea_upper``: 90% interval); ``info`` the wave intercepts (``intercepts``,
        ``intercept_std_errors``), the variances of the fixed effect and of the errors, the log-likelihood
        and the optimiser's report. ``resid`` is the composite error ``alpha_i + e_it`` of each equation.

    Examples
    --------
    >>> import causalcts
    >>> sim = causalcts.simulate(n_teams=100, n_weeks=5, seed=3)
    >>> res = causalcts.fit("cr_velocity ~ L(cr_velocity, 1) + ai_share", sim.data, method="ml",
    ...                     predetermined=["ai_share"])
    >>> list(res.params.index), res.tests["saturated_lr"]["df"] > 0
    (['L1.cr_velocity', 'ai_share'], True)
    """
    cov = "unadjusted" if cov is None else cov
    check_option("cov", cov, COV_TYPES)
    error_inv = bool(error_inv)
    if not time_effects:
        raise SpecificationError(
            "method='ml' always has one intercept per wave (time_effects=True); equal intercepts across waves "
            "(xtdpdml's constinv) are not offered."
        )
    panel = _as_panel(data, entity, time, used_columns(formula, {}))
    wide, design = build_wide(formula, panel, predetermined, error_inv)
    layout, Z = wide.layout, wide.Z
    N = Z.shape[0]
    if N <= layout.p:
        raise EmptyPanelError(
            f"method='ml' models {layout.p} observed variables (the outcome and regressors at every wave) but "
            f"has {N} entities; it needs more entities than variables."
        )
    patterns = missingness_patterns(Z)
    # complete data without time-invariant regressors: the likelihood concentrated in closed form on the
    # coefficients and error variances (sem.Profile), the same maximum and standard errors at a fraction of the cost
    profile = profile_layout(wide, patterns)
    with one_blas_thread():  # small matrices: BLAS threads only contend (50 times slower on a busy machine)
        if profile is not None:
            theta, f, H, g, opt, phi = maximise_profile(profile, wide, patterns, N)
        else:
            theta, f, H, g, opt = maximise_likelihood(wide, patterns, N)
        try:
            if profile is not None:
                cols, V = profile_covariance(profile, Z, phi, theta, H, robust=cov == "robust")
            else:
                cols, V = np.arange(layout.n_params), np.linalg.inv(0.5 * N * H)
        except np.linalg.LinAlgError:
            raise CausalCTSError(
                "The ML-SEM information matrix is singular: a parameter is not identified (too few waves or entities "
                "for the model's covariances)."
            ) from None
        converged = bool(np.max(np.abs(g)) < 1e-6) and np.all(np.linalg.eigvalsh(H) > 0)
    if not converged:
        warnings.warn(
            f"method='ml': the optimiser stopped with gradient {np.max(np.abs(g)):.2g} ({opt.message}); "
            "estimates may not be the maximum.",
            ConvergenceWarning,
            stacklevel=3,
        )
    Sigma, mu, parts = layout.moments(theta)
    if cov == "robust" and profile is None:
        with one_blas_thread():
            scores = entity_scores(Sigma, mu, Z, patterns, layout, parts, N)
            V = V @ (scores.T @ scores) @ V
    J, off = original_map(wide, theta)
    est = J @ theta + off
    V_out = J[:, cols] @ V @ J[:, cols].T
    se = np.sqrt(np.maximum(np.diag(V_out), 0.0))
    k = layout.n_coef
    names = layout.coef_names
    params = pd.Series(est[:k], index=names, dtype=float)
    std = pd.Series(se[:k], index=names, dtype=float)
    covm = pd.DataFrame(V_out[:k, :k], index=names, columns=names)
    # test against the saturated model
    f_sat = saturated_fit(Z, patterns, N)
    p = layout.p
    chi2 = float(N * (f - f_sat))
    df = int(p * (p + 1) // 2 + p - layout.n_params)
    rmsea, lo, hi = _rmsea(chi2, df, N)
    tests = {
        "saturated_lr": {
            "statistic": chi2,
            "df": df,
            "pvalue": float(stats.chi2.sf(chi2, df)) if df > 0 else float("nan"),
            "rmsea": rmsea,
            "rmsea_lower": lo,
            "rmsea_upper": hi,
        }
    }
    # fitted values and composite residuals (alpha_i + e_it) of the equations, in data units
    Zo = Z * wide.scale + wide.center
    waves = wide.eq_waves
    fitted = np.zeros((N, layout.m))
    for r in range(layout.m):
        fitted[:, r] = est[k + r]
        for j in range(k):
            for pos, base in ((layout.b_pos, layout.q), (layout.g_pos, 0)):
                sel = (pos[0] == j) & (pos[1] == r)
                for c in pos[2][sel]:
                    fitted[:, r] += est[j] * Zo[:, base + c]
    for j, r, value in wide.absorbed:
        fitted[:, r] += est[j] * value
    yw = Zo[:, layout.q :]
    ok = np.isfinite(fitted) & np.isfinite(yw)
    ent_idx, wave_idx = np.nonzero(ok)
    time_values = wave_labels(panel, waves)
    index = pd.MultiIndex.from_arrays(
        [wide.entities[ent_idx], np.asarray(time_values)[wave_idx]], names=[panel.entity, panel.time]
    )
    fitted_s = pd.Series(fitted[ok], index=index, name="fitted").sort_index()
    resid_s = pd.Series((yw - fitted)[ok], index=index, name="resid").sort_index()
    sy2 = wide.scale[layout.q] ** 2
    s = layout.slices
    intercepts = {str(t): float(est[k + r]) for r, t in enumerate(time_values)}
    intercept_se = {str(t): float(se[k + r]) for r, t in enumerate(time_values)}
    info = {
        "intercepts": intercepts,
        "intercept_std_errors": intercept_se,
        "alpha_variance": float(sy2 * theta[s["psi"]][0]),
        "error_variances": [float(sy2 * v) for v in theta[s["sigma2"]]],
        "loglik": float(-0.5 * N * (f + p * np.log(2 * np.pi)) - N * np.log(wide.scale).sum()),
        "n_params": int(layout.n_params),
        "n_observed_variables": int(p),
        "time_invariant": list(wide.invariant),
        "converged": bool(converged),
        "max_abs_gradient": float(np.max(np.abs(g))),
        "iterations": int(opt.nit),
        "missing_patterns": len(patterns),
        "concentrated": profile is not None,
    }
    info["predetermined"] = sorted({layout.columns[i][0] for i in layout.ue[0].tolist()})
    spec = {
        "formula": formula,
        "method": "ml",
        "entity": entity,
        "time": time,
        "time_effects": time_effects,
        "predetermined": list(predetermined)
        if predetermined is not None and not isinstance(predetermined, str)
        else predetermined,
        "cov": cov,
        "error_inv": error_inv,
    }
    return EstimationResults(
        params=params,
        std_errors=std,
        cov=covm,
        nobs=int(ok.sum()),
        n_entities=int(N),
        method="ml",
        formula=formula,
        cov_type="observed information" if cov == "unadjusted" else "robust (sandwich, by entity)",
        tests=tests,
        dist="normal",
        outcome_lags=tuple(design.outcome_lags),
        info=info,
        spec=spec,
        resid=resid_s,
        fitted=fitted_s,
    )


def _columns(formula, options) -> list[str]:
    return used_columns(formula, {})


#: The likelihood family, read by :mod:`causalcts.registry` (keys documented there).
METHODS_DECLARED = (
    dict(
        name="ml",
        family="likelihood",
        fit=fit_ml,
        options=("predetermined", "cov", "error_inv"),
        description="ML-SEM dynamic panel with fixed effects (Allison, Williams and Moral-Benito 2017; xtdpdml)",
        assumes="sequential exogeneity of predetermined regressors, strict exogeneity of the others; "
        "time-invariant regressors uncorrelated with the fixed effect; normal errors (QML with cov='robust')",
        columns=_columns,
    ),
)
