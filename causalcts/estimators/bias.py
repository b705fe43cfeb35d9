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
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from causalcts.errors import SpecificationError, TooFewPeriodsError
from causalcts.estimators.linear import within_ols, within_transform
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
    max_iter: int = 200,
    index=None,
) -> EstimationResults:
    """Analytically bias-corrected within estimator for one lag of the outcome (module docstring)."""
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
    for _ in range(max_iter):
        beta = float(np.clip(theta[j], -0.99, 0.99))
        e = yt - Xt @ theta
        sigma2 = float(e @ e) / dof
        bias_num = -sigma2 * float(_h(beta, Ti).sum())
        new = theta_w - XtX_inv[:, j] * bias_num
        if np.max(np.abs(new - theta)) < 1e-12:
            theta = new
            break
        theta = new
    params = pd.Series(theta, index=names)
    return EstimationResults(
        params=params,
        std_errors=full.std_errors,
        cov=full.cov,
        nobs=full.nobs,
        n_entities=full.n_entities,
        method="bias-corrected",
        formula=formula,
        cov_type=full.cov_type,
        dist=full.dist,
        df_resid=full.df_resid,
        outcome_lags=outcome_lags,
        info={"within": full.params.to_dict(), "sigma2": sigma2},
        resid=None if index is None else pd.Series(yt - Xt @ theta, index=index),
        fitted=None if index is None else pd.Series(y - (yt - Xt @ theta), index=index),
    )
