r"""Cluster-robust (CRV1) covariance with fixest's small-sample correction and t(G - 1) inference.

For a design :math:`X` (regressors left after any fixed effects were partialled out), residuals
:math:`\hat u` and clusters :math:`g = 1, \dots, G`,

.. math::

    \hat V = c \, (X'X)^{-1} \Big( \sum_g X_g' \hat u_g \hat u_g' X_g \Big) (X'X)^{-1},
    \qquad c = \frac{G}{G - 1} \cdot \frac{n - 1}{n - K},

where :math:`K` counts the regressors plus the absorbed fixed effects that are not nested in the
clusters (fixest's ``ssc(adj = TRUE, fixef.K = "nested", cluster.adj = TRUE)``, pyfixest's default
``k_fixef="nonnested"``): :math:`K = k + \sum_f L_f - (F - 1) - \sum_{f \text{ nested}} L_f + F_{\text{nested}}`
for :math:`F` fixed effects with :math:`L_f` levels. Intervals and p-values use the t distribution
with :math:`G - 1` degrees of freedom, as fixest and Stata do for clustered errors.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

from causalcts.errors import CausalCTSError, CollinearityError, MissingValueError, TooFewClustersError

__all__ = ["ClusterCovariance", "cluster_codes", "crv1", "fixed_effects_dof", "is_nested", "small_sample_factor"]


def cluster_codes(clusters: Sequence | np.ndarray, n: int | None = None) -> tuple[np.ndarray, int]:
    """Integer codes 0..G-1 of the cluster labels and the number of clusters G.

    Raises :class:`~causalcts.errors.TooFewClustersError` when there are fewer than two clusters.

    Examples
    --------
    >>> from causalcts.inference.cluster import cluster_codes
    >>> cluster_codes(["b", "a", "b", "c"])
    (array([1, 0, 1, 2]), 3)
    """
    labels = np.asarray(clusters)
    if labels.ndim != 1:
        raise CausalCTSError(f"clusters must be one label per row, not an array of shape {labels.shape}.")
    if n is not None and labels.shape[0] != n:
        raise CausalCTSError(f"clusters has {labels.shape[0]} labels but the design has {n} rows.")
    if labels.dtype.kind == "f" and not np.all(np.isfinite(labels)):
        raise MissingValueError(f"The cluster labels hold {int((~np.isfinite(labels)).sum())} NaN or infinite values.")
    _, codes = np.unique(labels, return_inverse=True)
    n_g = int(codes.max()) + 1 if codes.size else 0
    if n_g < 2:
        raise TooFewClustersError(
            f"Cluster-robust inference needs at least two clusters; the data hold {n_g}. "
            "Cluster by a variable with more levels, or use heteroskedasticity-robust errors."
        )
    return codes.astype(np.int64), n_g


def is_nested(effect: np.ndarray, codes: np.ndarray) -> bool:
    """True when every level of ``effect`` falls in a single cluster (the effect is nested in the clusters).

    Examples
    --------
    >>> import numpy as np
    >>> from causalcts.inference.cluster import is_nested
    >>> is_nested(np.array([0, 0, 1, 2]), np.array([5, 5, 5, 6]))
    True
    >>> is_nested(np.array([0, 1, 0, 1]), np.array([5, 5, 6, 6]))
    False
    """
    levels, e = np.unique(np.asarray(effect), return_inverse=True)
    _, c = np.unique(np.asarray(codes), return_inverse=True)
    cluster_of = np.empty(levels.size, dtype=c.dtype)
    cluster_of[e] = c  # one cluster per level (the last row's); nested when every row agrees with it
    return bool(np.array_equal(cluster_of[e], c))


def fixed_effects_dof(fixed_effects: Sequence[np.ndarray], codes: np.ndarray) -> int:
    """Parameters the absorbed fixed effects add to K in fixest's ``fixef.K = "nested"`` count.

    Each fixed effect adds its number of levels, less one for every fixed effect after the first;
    a fixed effect nested in the clusters adds one instead of its levels.

    Examples
    --------
    >>> import numpy as np
    >>> from causalcts.inference.cluster import fixed_effects_dof
    >>> team = np.repeat(np.arange(4), 3); week = np.tile(np.arange(3), 4)
    >>> fixed_effects_dof([team, week], codes=team)   # 4 + 3 - 1 - 4 + 1
    3
    """
    if not fixed_effects:
        return 0
    levels = [np.unique(np.asarray(f)).size for f in fixed_effects]
    nested = [is_nested(f, codes) for f in fixed_effects]
    k_fe = sum(levels) - (len(levels) - 1)
    if not any(nested):
        return int(k_fe)
    return int(k_fe - sum(lv for lv, nst in zip(levels, nested, strict=True) if nst) + sum(nested))


def small_sample_factor(n: int, n_params: int, n_clusters: int) -> float:
    """CRV1 small-sample factor ``G/(G-1) (n-1)/(n-K)`` (Stata's ``vce(cluster)``, fixest, pyfixest).

    ``n_params`` is K, counted by fixest's rule (:func:`fixed_effects_dof` for absorbed fixed effects).

    Examples
    --------
    >>> from causalcts.inference.cluster import small_sample_factor
    >>> round(small_sample_factor(100, 5, 10), 6)   # 10/9 * 99/95
    1.157895
    """
    if n <= n_params:
        raise CausalCTSError(f"{n} rows cannot support {n_params} parameters (regressors plus fixed effects).")
    if n_clusters < 2:
        raise TooFewClustersError(f"Cluster-robust inference needs at least two clusters; the data hold {n_clusters}.")
    return n_clusters / (n_clusters - 1) * (n - 1) / (n - n_params)


@dataclass(frozen=True)
class ClusterCovariance:
    """A CRV1 covariance with what t(G - 1) inference needs.

    Attributes
    ----------
    cov
        The k x k covariance matrix (read-only), small-sample correction included.
    n_clusters
        G, the number of clusters.
    df
        Degrees of freedom of the t distribution, G - 1.
    ssc
        The small-sample factor c applied to the sandwich.
    n_params
        K, the parameter count used in c (regressors plus non-nested fixed effects).
    """

    cov: np.ndarray
    n_clusters: int
    df: int
    ssc: float
    n_params: int

    @property
    def std_errors(self) -> np.ndarray:
        """Square roots of the diagonal of :attr:`cov`."""
        return np.sqrt(np.clip(np.diag(self.cov), 0.0, None))

    def critical(self, level: float = 0.95) -> float:
        """Two-sided critical value of t(G - 1) at ``level``."""
        if not 0 < level < 1:
            raise CausalCTSError(f"level={level} must lie strictly between 0 and 1 (e.g. 0.95).")
        return float(stats.t.ppf(0.5 + level / 2, self.df))

    def conf_int(self, params: Sequence[float] | np.ndarray, level: float = 0.95) -> np.ndarray:
        """Intervals ``params +- t_{G-1} * se`` as a k x 2 array (lower, upper)."""
        b = np.asarray(params, dtype=float)
        half = self.critical(level) * self.std_errors
        return np.column_stack([b - half, b + half])

    def pvalues(self, params: Sequence[float] | np.ndarray) -> np.ndarray:
        """Two-sided p-values of ``params / se`` against t(G - 1)."""
        t = np.asarray(params, dtype=float) / self.std_errors
        return 2 * stats.t.sf(np.abs(t), self.df)


def crv1(
    X: np.ndarray,
    resid: np.ndarray,
    clusters: Sequence | np.ndarray,
    *,
    bread: np.ndarray | None = None,
    fixed_effects: Sequence[np.ndarray] = (),
    small_sample: bool = True,
) -> ClusterCovariance:
    """Cluster-robust CRV1 covariance of least-squares estimates, equal to fixest's and pyfixest's default.

    Parameters
    ----------
    X
        n x k design (after partialling out any absorbed fixed effects).
    resid
        n residuals of the fit.
    clusters
        One cluster label per row.
    bread
        ``(X'X)^{-1}`` if already computed.
    fixed_effects
        Code arrays of the absorbed fixed effects (e.g. ``[entity_codes, period_codes]``), used only to count
        K for the small-sample factor; a fixed effect nested in the clusters counts as one parameter.
    small_sample
        Apply ``G/(G-1) * (n-1)/(n-K)`` (default) or no correction.

    Returns
    -------
    ClusterCovariance
        The covariance, G, the t degrees of freedom G - 1 and the factor applied.

    Raises
    ------
    causalcts.errors.TooFewClustersError
        Fewer than two clusters.
    causalcts.errors.CollinearityError
        ``X'X`` is singular.

    Examples
    --------
    >>> import numpy as np
    >>> from causalcts.inference.cluster import crv1
    >>> rng = np.random.default_rng(0)
    >>> X = np.column_stack([np.ones(40), rng.normal(size=40)])
    >>> g = np.repeat(np.arange(8), 5)
    >>> y = X @ [1.0, 0.5] + rng.normal(size=8)[g] + rng.normal(size=40)
    >>> b = np.linalg.lstsq(X, y, rcond=None)[0]
    >>> V = crv1(X, y - X @ b, g)
    >>> V.n_clusters, V.df
    (8, 7)
    >>> bool(V.conf_int(b)[1, 0] < b[1] < V.conf_int(b)[1, 1])
    True
    """
    X = np.asarray(X, dtype=float)
    if X.ndim == 1:
        X = X[:, None]
    e = np.asarray(resid, dtype=float).ravel()
    n, k = X.shape
    if e.shape[0] != n:
        raise CausalCTSError(f"resid has {e.shape[0]} values but the design has {n} rows.")
    if not (np.all(np.isfinite(X)) and np.all(np.isfinite(e))):
        raise MissingValueError("The design or the residuals hold NaN or infinite values.")
    codes, n_g = cluster_codes(clusters, n)
    if bread is None:
        try:
            bread = np.linalg.inv(X.T @ X)
        except np.linalg.LinAlgError:
            raise CollinearityError("X'X is singular: a regressor is a linear combination of the others.") from None
    scores = np.column_stack([np.bincount(codes, weights=X[:, j] * e, minlength=n_g) for j in range(k)])
    V = bread @ (scores.T @ scores) @ bread
    K = k + fixed_effects_dof(fixed_effects, codes)
    ssc = small_sample_factor(n, K, n_g) if small_sample else 1.0
    V = ssc * V
    V = (V + V.T) / 2
    V.flags.writeable = False
    return ClusterCovariance(cov=V, n_clusters=n_g, df=n_g - 1, ssc=float(ssc), n_params=int(K))
