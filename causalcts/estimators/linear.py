r"""Least-squares panel estimators: pooled OLS and the within (one- or two-way fixed effects) estimator.

The two-way within estimator is exact on unbalanced panels: after removing entity means, the
period dummies (themselves entity-demeaned) are partialled out through their
:math:`P \times P` cross-product, built from the entity-by-period incidence matrix, so no
:math:`n \times P` dummy matrix is ever formed (Frisch-Waugh-Lovell).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp

from causalcts.data.panel import check_full_rank
from causalcts.errors import CollinearityError
from causalcts.inference.cluster import crv1, small_sample_factor
from causalcts.results.base import EstimationResults

__all__ = ["check_not_absorbed", "cluster_scale", "pooled_ols", "within_ols", "within_transform"]


def _group_means(values: np.ndarray, codes: np.ndarray, n_groups: int) -> np.ndarray:
    counts = np.bincount(codes, minlength=n_groups).astype(float)
    if values.ndim == 1:
        return np.bincount(codes, weights=values, minlength=n_groups) / counts
    return np.column_stack(
        [np.bincount(codes, weights=values[:, j], minlength=n_groups) / counts for j in range(values.shape[1])]
    )


def within_transform(
    M: np.ndarray, codes: np.ndarray, periods: np.ndarray, time_effects: bool
) -> tuple[np.ndarray, int]:
    """Remove entity (and period) effects from the columns of ``M``; return it and the rank absorbed."""
    ent, codes = np.unique(codes, return_inverse=True)
    n_ent = len(ent)
    out = M - _group_means(M, codes, n_ent)[codes]
    absorbed = n_ent
    if not time_effects:
        return out, absorbed
    per, pidx = np.unique(periods, return_inverse=True)
    P = len(per)
    if n_ent * P <= 50_000_000:  # dense entity-by-period incidence: one small matrix product
        C = np.zeros((n_ent, P))
        C[codes, pidx] = 1.0
    else:
        C = sp.csr_matrix((np.ones(len(codes)), (codes, pidx)), shape=(n_ent, P))
    Ti = np.asarray(C.sum(axis=1)).ravel()
    n_t = np.asarray(C.sum(axis=0)).ravel()
    CT = C.T
    DtPD = CT @ (C / Ti[:, None]) if isinstance(C, np.ndarray) else (CT @ sp.diags(1.0 / Ti) @ C).toarray()
    G = np.diag(n_t) - DtPD  # D~'D~
    # D~' x~ = D' x~ (x~ is orthogonal to the entity dummies): per-period sums of the demeaned columns
    R = np.column_stack([np.bincount(pidx, weights=out[:, j], minlength=P) for j in range(out.shape[1])])
    delta = np.linalg.pinv(G, rcond=1e-12, hermitian=True) @ R  # P x k
    team_mean_delta = (C @ delta) / Ti[:, None]
    out = out - (delta[pidx] - team_mean_delta[codes])
    # rank of D~'D~: its zero eigenvalues (one per connected component of teams and periods) come out of the
    # eigensolver as round-off of the size eps * n_t.max() * P, above numpy's default cut-off on balanced panels
    # (rank one too high: 150 x 8 gave an SE ratio of 1.00056 against pyfixest); a relative 1e-9 separates them
    absorbed += int(np.linalg.matrix_rank(G, tol=1e-9 * float(n_t.max()), hermitian=True))
    return out, absorbed


def _ols(y: np.ndarray, X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    XtX = X.T @ X
    XtX_inv = np.linalg.inv(XtX)
    beta = XtX_inv @ (X.T @ y)
    return beta, y - X @ beta, XtX_inv


def _covariance(X, e, XtX_inv, codes, cov, dof, fixed_effects=()):
    """Classical ``sigma^2 (X'X)^-1``, or CRV1 by ``codes`` (:func:`causalcts.inference.cluster.crv1`, the one
    implementation: fixest's small-sample factor, K counting the regressors and the ``fixed_effects`` that are
    not nested in the clusters)."""
    if cov == "unadjusted":
        sigma2 = float(e @ e) / dof
        return sigma2 * XtX_inv
    return np.array(crv1(X, e, codes, bread=XtX_inv, fixed_effects=fixed_effects).cov)


def cluster_scale(n: int, n_params: int, n_clusters: int) -> float:
    """CRV1 small-sample factor ``G/(G-1) (n-1)/(n-K)`` (:func:`causalcts.inference.cluster.small_sample_factor`)."""
    return small_sample_factor(n, n_params, n_clusters)


def check_not_absorbed(X: np.ndarray, Xt: np.ndarray, names, effects: str) -> None:
    """Raise :class:`CollinearityError` for a column that the fixed effects absorb.

    A column is absorbed when the norm of its transformed version is below 1e-8 of the norm of the
    centred original: the tolerance is relative to the column's own scale *before* the transformation,
    because after it an absorbed column is round-off noise that looks like any other column (1e-8 is far
    above float64 round-off of the transformation, ~1e-13, and far below real within variation).
    """
    scale = np.linalg.norm(X - X.mean(axis=0), axis=0)
    left = np.linalg.norm(Xt, axis=0)
    for j, name in enumerate(names):
        if scale[j] == 0 or left[j] < 1e-8 * scale[j]:
            raise CollinearityError(
                f"The regressor {name!r} is absorbed by the {effects} fixed effects (it is constant within each "
                "entity, or an entity constant plus a period term): its coefficient is not identified; remove it."
            )


def _series(values: np.ndarray, index) -> pd.Series | None:
    return None if index is None else pd.Series(values, index=index)


def pooled_ols(y, X, names, codes, periods, *, time_effects, cov, formula, n_entities, outcome_lags, index=None):
    """Pooled OLS with a constant (and period dummies when ``time_effects``).

    Clustered covariance: CRV1, ``G/(G-1) (n-1)/(n-K)`` with K counting the constant and the period dummies
    (Stata ``regress, vce(cluster)``; pyfixest ``feols(... | week, vcov={"CRV1": team})``), t(G - 1).
    """
    cols, labels = [np.ones_like(y)], ["Intercept"]
    if time_effects:
        per = np.unique(periods)
        cols.extend((periods == p).astype(float) for p in per[1:])
        # bracketed labels cannot clash with a column name (formula names are identifiers)
        labels.extend(f"period[{int(p)}]" for p in per[1:])
    Z = np.column_stack([X, *cols])
    all_names = list(names) + labels
    check_full_rank(pd.DataFrame(Z, columns=all_names))
    beta, e, XtX_inv = _ols(y, Z)
    dof = len(y) - Z.shape[1]
    V = _covariance(Z, e, XtX_inv, codes, cov, dof)  # clustered: K = the columns of Z (constant, period dummies)
    n_g = len(np.unique(codes))
    k = len(names) + 1
    idx = list(range(len(names))) + [len(names)]
    keep = [all_names[i] for i in idx]
    params = pd.Series(beta[idx], index=keep)
    Vk = V[np.ix_(idx, idx)]
    return EstimationResults(
        params=params,
        std_errors=pd.Series(np.sqrt(np.diag(Vk)), index=keep),
        cov=pd.DataFrame(Vk, index=keep, columns=keep),
        nobs=len(y),
        n_entities=n_entities,
        method="pooled",
        formula=formula,
        cov_type="clustered by entity" if cov == "robust" else "unadjusted",
        dist="t",
        df_resid=float(n_g - 1 if cov == "robust" else dof),
        outcome_lags=outcome_lags,
        info={"k": k, "time_effects": bool(time_effects)},
        resid=_series(e, index),
        fitted=_series(y - e, index),
    )


def within_ols(y, X, names, codes, periods, *, time_effects, cov, formula, outcome_lags, method="within", index=None):
    """Within (fixed effects) estimator; two-way when ``time_effects``.

    Clustered covariance: CRV1 ``G/(G-1) (n-1)/(n-K)`` from :func:`causalcts.inference.cluster.crv1`, where K
    counts the regressors and the fixed effects by fixest's rule (``fixef.K="nested"``): the P period effects
    count P - 1, the entity effects, nested in the entity clusters, count 1 (Stata ``xtreg, fe vce(cluster)``
    for one-way effects); t(G - 1) intervals. K does not depend on the numerical rank of the absorbed effects.
    ``resid`` is the within-transformed residual, which equals the dummy-variable regression's residual;
    ``fitted`` is ``y - resid`` in levels, effects included.
    """
    M = np.column_stack([y, X])
    Mt, absorbed = within_transform(M, codes, periods, time_effects)
    yt, Xt = Mt[:, 0], Mt[:, 1:]
    check_not_absorbed(X, Xt, names, "entity and period" if time_effects else "entity")
    try:
        check_full_rank(pd.DataFrame(Xt, columns=names))
    except CollinearityError as err:
        raise CollinearityError(f"After removing team{' and week' if time_effects else ''} effects: {err}") from None
    beta, e, XtX_inv = _ols(yt, Xt)
    dof = len(y) - Xt.shape[1] - absorbed
    effects = [codes, periods] if time_effects else [codes]
    V = _covariance(Xt, e, XtX_inv, codes, cov, dof, fixed_effects=effects)
    n_ent = len(np.unique(codes))
    return EstimationResults(
        params=pd.Series(beta, index=names),
        std_errors=pd.Series(np.sqrt(np.diag(V)), index=names),
        cov=pd.DataFrame(V, index=names, columns=names),
        nobs=len(y),
        n_entities=n_ent,
        method=method,
        formula=formula,
        cov_type="clustered by entity" if cov == "robust" else "unadjusted",
        dist="t",
        df_resid=float(n_ent - 1 if cov == "robust" else dof),
        outcome_lags=outcome_lags,
        info={"time_effects": bool(time_effects), "sigma2": float(e @ e) / dof, "absorbed": absorbed},
        resid=_series(e, index),
        fitted=_series(y - e, index),
    )
