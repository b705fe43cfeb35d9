r"""Corrections for the Nickell bias of fixed effects with a lagged outcome.

With :math:`T` periods the within estimator of the persistence :math:`\beta` is biased by about
:math:`-(1+\beta)/(T-1)` (Nickell 1981); the bias spills into the other coefficients through
their correlation with the lagged outcome.

* :func:`half_panel_jackknife` (Dhaene and Jochmans 2015):
  :math:`\hat\theta_{1/2} = 2\hat\theta - (\hat\theta_{(1)} + \hat\theta_{(2)})/2`, where
  :math:`\hat\theta_{(1)}, \hat\theta_{(2)}` are the within estimates on the first and second halves
  of the periods. It removes the :math:`O(1/T)` bias. Its variance is *not* the full-sample within
  variance (that was 0.1's choice: the two agree only as :math:`T \to \infty`; at :math:`T = 8` the halves are
  noisier and the within SE understates the jackknife's spread by about a third). Each of the three within
  estimators is linear in its own scores, :math:`\hat\theta_k - \theta_k^* = A_k^{-1}\sum_i \tilde X_{ik}'
  \tilde e_{ik}`, so the jackknife's influence of team :math:`i` is
  :math:`\psi_i = 2A^{-1}\tilde X_i'\tilde e_i - \tfrac12 A_{(1)}^{-1}\tilde X_{i(1)}'\tilde e_{i(1)}
  - \tfrac12 A_{(2)}^{-1}\tilde X_{i(2)}'\tilde e_{i(2)}` and the clustered variance is
  :math:`\tfrac{G}{G-1}\sum_i \psi_i\psi_i'` with :math:`t(G-1)` intervals (the stacked-estimator
  sandwich, valid at fixed :math:`T` as :math:`N` grows; Dhaene and Jochmans 2015, sec. 4, discuss the
  jackknife's variance). With ``cov="unadjusted"`` it is :math:`\hat\sigma^2 W W'`, where
  :math:`\hat\theta_{1/2} = W y` (each within estimator is linear in :math:`y`).
* :func:`bias_corrected_within`: the analytical first-order correction (Nickell 1981; Kiviet 1995;
  Hahn and Kuersteiner 2002). With :math:`\tilde X` the within-transformed regressors, the
  numerator bias of the lagged outcome is
  :math:`E[\tilde y_{-1}'\tilde\varepsilon] \approx -\sigma^2 \sum_i h(\beta, T_i)`, with
  :math:`h(\beta, T) = \frac{1}{1-\beta}\big(1 - \frac{1-\beta^T}{T(1-\beta)}\big)`, so

  .. math:: \hat\theta_{bc} = \hat\theta + \sigma^2 \sum_i h(\beta, T_i)\,(\tilde X'\tilde X)^{-1} e_1,

  iterated to a fixed point in :math:`\beta` and :math:`\sigma^2` (re-estimated from the corrected
  residuals). :math:`e_1` selects the lagged outcome, so the correction moves every coefficient
  correlated with it, the adoption effect included.

  Its variance accounts for the correction (0.2 reported the within covariance, whose 90% intervals for the
  persistence covered 0.74-0.79 at :math:`T = 8`). The estimate solves, with :math:`\hat\sigma^2`, the
  stacked estimating equations summed over teams

  .. math::

      s_i = \tilde X_i'(\tilde y_i - \tilde X_i\theta) + e_1\,\sigma^2 h(\beta, T_i), \qquad
      r_i = \tilde e_i'\tilde e_i - \sigma^2 d_i, \quad d_i = T_i\,\mathrm{dof}/n,

  so (delta method; an M-estimator sandwich valid at fixed :math:`T` as :math:`N` grows) team :math:`i`'s
  influence is :math:`\psi_i = -[J^{-1}(s_i, r_i)]_\theta` with the Jacobian

  .. math::

      J = \begin{pmatrix} -\tilde X'\tilde X + \sigma^2 \sum_i h'(\beta, T_i)\, e_1 e_1' & e_1 \sum_i h(\beta, T_i) \\
      -2\,\tilde e'\tilde X & -\mathrm{dof} \end{pmatrix}.

  The :math:`h'` term is the slope of the correction in :math:`\hat\beta` (about :math:`1/(T-1)` of the
  estimate): the corrected estimate moves more than one for one with the within estimate, so its
  variance is larger. The clustered covariance is :math:`c \sum_i \psi_i\psi_i'` with the within
  estimator's CRV1 factor :math:`c` and :math:`t(G-1)` intervals; with :math:`h \equiv 0` it is exactly the
  within CRV1 covariance. With ``cov="unadjusted"`` the meat is its value under homoskedastic normal
  shocks: with :math:`L_i` the map from team :math:`i`'s shocks to its lagged outcome and :math:`M_i` the
  within transformation (:math:`\operatorname{tr}(L_i'M_i) = -h(\beta, T_i)`),
  :math:`\operatorname{Var}(\sum_i s_i) = \sigma^2\tilde X'\tilde X + \sigma^4 \sum_i
  \operatorname{tr}((L_i'M_i)^2)\, e_1 e_1'`, :math:`\operatorname{Cov}(\sum_i s_i, \sum_i r_i) =
  -2\sigma^4 \sum_i h(\beta, T_i)\, e_1` and :math:`\operatorname{Var}(\sum_i r_i) = 2\sigma^4 \mathrm{dof}`
  (Gaussian quadratic forms; the period effects are left out of :math:`M_i`).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from causalcts.errors import ConvergenceWarning, EstimationError, SpecificationError, TooFewPeriodsError
from causalcts.estimators.linear import cluster_scale, within_ols, within_transform
from causalcts.inference.cluster import fixed_effects_dof
from causalcts.results.base import EstimationResults

__all__ = ["bias_corrected_within", "half_panel_jackknife", "nickell_bias"]


def nickell_bias(persistence: float, n_periods: float, *, exact: bool = True) -> float:
    """Large-N bias of the within estimator of an AR(1) coefficient with ``n_periods`` periods in the regression.

    With ``exact=True`` (default) Nickell's (1981) closed form for a stationary AR(1):

    .. math::

        A_T = 1 - \\frac{1 - \\beta^T}{T(1-\\beta)}, \\qquad
        \\operatorname{plim}(\\hat\\beta - \\beta) = -\\frac{(1+\\beta) A_T / (T-1)}
        {1 - 2\\beta A_T / ((1-\\beta)(T-1))}

    With ``exact=False`` its first-order form ``-(1 + beta) / (T - 1)``.

    Examples
    --------
    >>> from causalcts.estimators.bias import nickell_bias
    >>> round(nickell_bias(0.5, 16, exact=False), 3), round(nickell_bias(0.5, 16), 3)
    (-0.1, -0.099)
    """
    b, T = float(persistence), float(n_periods)
    if T <= 1:
        raise TooFewPeriodsError(f"The Nickell bias needs at least 2 periods; got {n_periods}.")
    if not exact:
        return -(1.0 + b) / (T - 1.0)
    A = 1.0 - (1.0 - b**T) / (T * (1.0 - b)) if abs(1 - b) > 1e-12 else (T - 1) / (2 * T)
    return -(1.0 + b) * A / (T - 1.0) / (1.0 - 2.0 * b * A / ((1.0 - b) * (T - 1.0)))


def _h(beta: float, T: np.ndarray) -> np.ndarray:
    if abs(1 - beta) < 1e-8:
        return (T - 1) / 2.0
    return (1.0 / (1.0 - beta)) * (1.0 - (1.0 - beta**T) / (T * (1.0 - beta)))


def _dh(beta: float, T: np.ndarray) -> np.ndarray:
    """Derivative of :func:`_h` in ``beta``; zero where the fixed point clips ``beta`` to +-0.99."""
    if abs(beta) >= 0.99:
        return np.zeros_like(T)
    u = 1.0 - beta
    return (1.0 + beta ** (T - 1)) / u**2 - 2.0 * (1.0 - beta**T) / (T * u**3)


def half_panel_jackknife(
    y, X, names, codes, periods, *, time_effects, cov, formula, outcome_lags, index=None
) -> EstimationResults:
    """Half-panel jackknife of the within estimator (split at the median period).

    The covariance is the jackknife's own (module docstring): clustered by entity with ``cov="robust"``
    (t(G - 1) intervals), classical with ``cov="unadjusted"``; ``info["within_std_errors"]`` keeps the
    full-sample within SEs for comparison. ``resid`` is the within-transformed residual at the jackknife
    estimate and ``fitted = y - resid``.

    Examples
    --------
    >>> import causalcts
    >>> sim = causalcts.simulate(n_teams=60, n_weeks=8, seed=1)
    >>> res = causalcts.fit("cr_velocity ~ L(cr_velocity, 1) + ai_share", sim.data, method="jackknife")
    >>> bool((res.std_errors > 0).all()), res.df_resid
    (True, 59.0)
    """
    per = np.unique(periods)
    if len(per) < 4:
        raise TooFewPeriodsError(f"The half-panel jackknife needs at least 4 periods; the data has {len(per)}.")
    cut = per[len(per) // 2 - 1] if len(per) % 2 == 0 else per[len(per) // 2]
    full = within_ols(
        y, X, names, codes, periods, time_effects=time_effects, cov=cov, formula=formula, outcome_lags=outcome_lags
    )
    halves = []
    for mask in (periods <= cut, periods > cut):
        halves.append(
            within_ols(
                y[mask],
                X[mask],
                names,
                codes[mask],
                periods[mask],
                time_effects=time_effects,
                cov=cov,
                formula=formula,
                outcome_lags=outcome_lags,
            ).params
        )
    est = 2 * full.params - (halves[0] + halves[1]) / 2
    M, _ = within_transform(np.column_stack([y, X]), codes, periods, time_effects)
    e = M[:, 0] - M[:, 1:] @ est.to_numpy()
    V = _jackknife_cov(y, X, codes, periods, cut, time_effects, cov, full)
    cov_frame = pd.DataFrame(V, index=list(names), columns=list(names))
    return EstimationResults(
        params=est,
        std_errors=pd.Series(np.sqrt(np.diag(V)), index=list(names)),
        cov=cov_frame,
        nobs=full.nobs,
        n_entities=full.n_entities,
        method="jackknife",
        formula=formula,
        cov_type=full.cov_type,
        dist=full.dist,
        df_resid=full.df_resid,
        outcome_lags=outcome_lags,
        info={
            "within": full.params.to_dict(),
            "first_half": halves[0].to_dict(),
            "second_half": halves[1].to_dict(),
            "split_after_period": int(cut),
            "within_std_errors": full.std_errors.to_dict(),
            "variance": "half-panel jackknife influence, clustered by entity"
            if cov == "robust"
            else "half-panel jackknife, classical",
        },
        resid=None if index is None else pd.Series(e, index=index),
        fitted=None if index is None else pd.Series(y - e, index=index),
    )


def _jackknife_cov(y, X, codes, periods, cut, time_effects, cov, full) -> np.ndarray:
    """Covariance of ``2 theta - (theta_1 + theta_2) / 2`` from the three within fits' scores (module docstring)."""
    _, team = np.unique(codes, return_inverse=True)
    G, k = int(team.max()) + 1, X.shape[1]
    psi = np.zeros((G, k))  # cluster influence (robust)
    W = np.zeros((k, len(y)))  # theta_jk = W y (unadjusted)
    for weight, mask in ((2.0, np.ones(len(y), bool)), (-0.5, periods <= cut), (-0.5, periods > cut)):
        M, _ = within_transform(np.column_stack([y[mask], X[mask]]), codes[mask], periods[mask], time_effects)
        yt, Xt = M[:, 0], M[:, 1:]
        A_inv = np.linalg.inv(Xt.T @ Xt)
        resid = yt - Xt @ (A_inv @ (Xt.T @ yt))
        scores = np.column_stack([np.bincount(team[mask], weights=Xt[:, j] * resid, minlength=G) for j in range(k)])
        psi += weight * scores @ A_inv
        W[:, mask] += weight * (A_inv @ Xt.T)
    if cov == "unadjusted":
        return float(full.info["sigma2"]) * (W @ W.T)
    return G / (G - 1) * (psi.T @ psi)


def bias_corrected_within(
    y,
    X,
    names,
    codes,
    periods,
    *,
    time_effects,
    cov,
    formula,
    outcome_lags,
    n_outcome_lags,
    terms,
    dep,
    max_iter: int = 2000,
    index=None,
) -> EstimationResults:
    """Analytically bias-corrected within estimator for one lag of the outcome (module docstring).

    The covariance is the corrected estimator's own (delta method through the correction, module docstring):
    clustered by entity with ``cov="robust"`` (t(G - 1) intervals), classical with ``cov="unadjusted"``;
    ``info["within_std_errors"]`` keeps the within SEs for comparison. ``res.long_run(...)`` uses this
    covariance.

    Examples
    --------
    >>> import causalcts
    >>> sim = causalcts.simulate(n_teams=60, n_weeks=8, seed=1)
    >>> res = causalcts.fit("cr_velocity ~ L(cr_velocity, 1) + ai_share", sim.data, method="bias-corrected")
    >>> bool(res.std_errors["L1.cr_velocity"] > res.info["within_std_errors"]["L1.cr_velocity"]), res.df_resid
    (True, 59.0)
    """
    if n_outcome_lags != 1:
        raise SpecificationError(
            "method='bias-corrected' supports exactly one lag of the outcome; use 'jackknife' or GMM for more."
        )
    j = names.index(outcome_lags[0])
    full = within_ols(
        y, X, names, codes, periods, time_effects=time_effects, cov=cov, formula=formula, outcome_lags=outcome_lags
    )
    M, absorbed = within_transform(np.column_stack([y, X]), codes, periods, time_effects)
    yt, Xt = M[:, 0], M[:, 1:]
    XtX_inv = np.linalg.inv(Xt.T @ Xt)
    _, cidx = np.unique(codes, return_inverse=True)
    Ti = np.bincount(cidx).astype(float)
    dof = len(y) - Xt.shape[1] - absorbed
    theta = full.params.to_numpy().copy()
    theta_w = theta.copy()
    converged = False
    with np.errstate(over="ignore", invalid="ignore"):
        for _ in range(max_iter):
            beta = float(np.clip(theta[j], -0.99, 0.99))
            e = yt - Xt @ theta
            sigma2 = float(e @ e) / dof
            bias_num = -sigma2 * float(_h(beta, Ti).sum())
            new = theta_w - XtX_inv[:, j] * bias_num
            if not np.all(np.isfinite(new)):
                break
            if np.max(np.abs(new - theta)) < 1e-12:
                theta, converged = new, True
                break
            theta = new
    if not converged:
        raise EstimationError(
            f"The iterated bias correction of {outcome_lags[0]} did not converge (within estimate "
            f"{theta_w[j]:.4g}; the iteration {'diverged' if not np.all(np.isfinite(theta)) else 'did not settle'} "
            f"within {max_iter} steps). The correction assumes strictly exogenous regressors: run "
            "causalcts.check_exogeneity (adoption that reacts to past outcomes breaks it) and use method='ml' or "
            "GMM with predetermined=[...], or the half-panel jackknife."
        )
    if not abs(theta[j]) < 0.99:
        warnings.warn(
            f"The bias-corrected persistence {theta[j]:.4g} is at or beyond 0.99, where the correction is evaluated "
            "at 0.99 (Nickell's formula needs a stationary AR(1)): near a unit root prefer GMM or the jackknife.",
            ConvergenceWarning,
            stacklevel=2,
        )
    e = yt - Xt @ theta
    sigma2 = float(e @ e) / dof
    V = _bias_corrected_cov(Xt, e, cidx, Ti, j, float(theta[j]), sigma2, dof, cov)
    if cov == "robust":  # the within estimator's CRV1 factor, K counted by fixest's rule
        effects = [codes, periods] if time_effects else [codes]
        V = V * cluster_scale(len(y), Xt.shape[1] + fixed_effects_dof(effects, codes), len(Ti))
    params = pd.Series(theta, index=names)
    return EstimationResults(
        params=params,
        std_errors=pd.Series(np.sqrt(np.diag(V)), index=list(names)),
        cov=pd.DataFrame(V, index=list(names), columns=list(names)),
        nobs=full.nobs,
        n_entities=full.n_entities,
        method="bias-corrected",
        formula=formula,
        cov_type=full.cov_type,
        dist=full.dist,
        df_resid=full.df_resid,
        outcome_lags=outcome_lags,
        info={
            "within": full.params.to_dict(),
            "sigma2": sigma2,
            "within_std_errors": full.std_errors.to_dict(),
            "variance": "delta method through the bias correction, clustered by entity"
            if cov == "robust"
            else "delta method through the bias correction, classical",
        },
        resid=None if index is None else pd.Series(e, index=index),
        fitted=None if index is None else pd.Series(y - e, index=index),
    )


def _lag_score_excess(beta: float, T: np.ndarray) -> np.ndarray:
    """``tr((L'M)^2)`` per team: the Gaussian score variance of the lagged outcome beyond ``sigma^2 y~_{-1}'y~_{-1}``.

    ``L`` maps the team's shocks to its lagged outcome (``L[t, s] = beta^(t-1-s)``, ``s < t``) and ``M`` removes
    the team mean; ``tr(L'M) = -h(beta, T)`` (the Nickell term) and ``Var(y~_{-1}'e~) = sigma^4 (tr((L'M)^2) +
    tr(L'ML)) + sigma^2 E[...]`` for normal shocks, of which ``sigma^2 y~_{-1}'y~_{-1}`` holds all but the first.
    """
    out = np.empty_like(T)
    for size in np.unique(T):
        t = np.arange(int(size))
        lag = t[:, None] - 1 - t[None, :]
        L = np.where(lag >= 0, beta ** np.maximum(lag, 0), 0.0)
        A = L.T - L.T.mean(axis=1, keepdims=True)  # L' M
        out[T == size] = float(np.sum(A * A.T))
    return out


def _bias_corrected_cov(Xt, e, cidx, Ti, j, beta, sigma2, dof, cov) -> np.ndarray:
    """Unscaled covariance of the corrected estimate from its stacked estimating equations (module docstring)."""
    n, k = Xt.shape
    b = float(np.clip(beta, -0.99, 0.99))
    h, dh = _h(b, Ti), _dh(beta, Ti)
    J = np.zeros((k + 1, k + 1))
    J[:k, :k] = -(Xt.T @ Xt)
    J[j, j] += sigma2 * float(dh.sum())
    J[j, k] = float(h.sum())
    J[k, :k] = -2.0 * (e @ Xt)
    J[k, k] = -float(dof)
    J_inv = np.linalg.inv(J)
    if cov == "unadjusted":
        meat = np.zeros((k + 1, k + 1))
        meat[:k, :k] = sigma2 * (Xt.T @ Xt)
        meat[k, k] = 2.0 * sigma2**2 * dof
        meat[j, j] += sigma2**2 * float(_lag_score_excess(b, Ti).sum())
        meat[j, k] = meat[k, j] = -2.0 * sigma2**2 * float(h.sum())
        return (J_inv @ meat @ J_inv.T)[:k, :k]
    G = len(Ti)
    scores = np.empty((G, k + 1))
    for col in range(k):
        scores[:, col] = np.bincount(cidx, weights=Xt[:, col] * e, minlength=G)
    scores[:, j] += sigma2 * h
    scores[:, k] = np.bincount(cidx, weights=e * e, minlength=G) - sigma2 * Ti * dof / n
    psi = -scores @ J_inv[:k, :].T
    return psi.T @ psi
