r"""Wild cluster restricted (WCR) bootstrap for one linear restriction :math:`R'\beta = r`.

The algorithm is the "fast and wild" WCR11 of Roodman, MacKinnon, Nielsen and Webb (2019), the
default of boottest, fwildclusterboot and wildboottest:

1. Fit the model with the null imposed,
   :math:`\tilde\beta = \hat\beta - (X'X)^{-1} R\,(R'\hat\beta - r) / (R'(X'X)^{-1}R)`,
   residuals :math:`\tilde u = y - X\tilde\beta`.
2. For draw :math:`b`, multiply the residuals of cluster :math:`g` by one weight :math:`v_{gb}`
   (Rademacher :math:`\pm 1`, or Webb's six points :math:`\pm\sqrt{1/2}, \pm 1, \pm\sqrt{3/2}`), refit,
   and compute the CRV1 t statistic :math:`t^*_b` of :math:`R'\beta^*_b - r`.
3. The p-value of the sample t statistic :math:`\hat t` is the share of draws at least as extreme.

Every :math:`t^*_b` comes from G x G algebra (no refit): with :math:`a = (X'X)^{-1}R`, cluster scores
:math:`s_g = X_g'\tilde u_g`, :math:`c_g = a's_g` and :math:`H_{gh} = a'X_g'X_g(X'X)^{-1}s_h`,
:math:`t^*_b = c'v_b / \sqrt{\kappa\,\lVert (\operatorname{diag}(c) - H) v_b\rVert^2}`, where
:math:`\kappa` is the CRV1 small-sample factor (the same in :math:`\hat t`, so it cancels in the p-value).
All those pieces are linear in the null value :math:`r`, which makes the confidence interval by test
inversion cheap: the same draws are reused for every :math:`r`.

Fixed effects partialled out of ``X`` and ``y`` beforehand must be nested in the clusters (entity
effects with clusters by entity or coarser); put the other effects (periods) in ``X`` as dummies.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from causalcts.errors import CausalCTSError, CollinearityError, MissingValueError, check_option
from causalcts.inference.cluster import cluster_codes

__all__ = ["WildBootstrapResult", "bootstrap_weights", "wild_cluster_bootstrap"]

#: Relative tolerance of the tie rule: a draw with |t*| >= |t| (1 - TIE_RTOL) counts as at least as extreme.
TIE_RTOL = 1e-9

_WEBB = np.array([-np.sqrt(1.5), -1.0, -np.sqrt(0.5), np.sqrt(0.5), 1.0, np.sqrt(1.5)])


def bootstrap_weights(
    n_clusters: int,
    draws: int,
    *,
    weights: Literal["rademacher", "webb"] = "rademacher",
    seed: int | np.random.Generator | None = None,
) -> tuple[np.ndarray, bool]:
    """G x B matrix of cluster weights, and whether it is the full enumeration.

    Rademacher weights are enumerated (all 2^G sign vectors, in ``itertools.product([-1, 1])`` order)
    when 2^G <= ``draws``; Webb weights when 6^G <= ``draws``. Otherwise ``draws`` vectors are drawn
    from ``numpy.random.default_rng(seed)``.

    Examples
    --------
    >>> from causalcts.inference.wild import bootstrap_weights
    >>> v, full = bootstrap_weights(3, 999)
    >>> v.shape, full
    ((3, 8), True)
    >>> v, full = bootstrap_weights(30, 99, seed=1)
    >>> v.shape, full
    ((30, 99), False)
    """
    check_option("weights", weights, ("rademacher", "webb"))
    if not isinstance(draws, (int, np.integer)) or draws < 1:
        raise CausalCTSError(f"draws={draws!r} must be a positive integer (e.g. 9999).")
    points = np.array([-1.0, 1.0]) if weights == "rademacher" else _WEBB
    if len(points) ** n_clusters <= draws:
        v = np.array(list(itertools.product(points, repeat=n_clusters)), dtype=float).T
        return v, True
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    idx = rng.integers(0, len(points), size=(int(draws), n_clusters))
    return np.ascontiguousarray(points[idx].T), False


@dataclass(frozen=True)
class WildBootstrapResult:
    """Outcome of :func:`wild_cluster_bootstrap`.

    Attributes
    ----------
    estimate, std_error, statistic
        :math:`R'\\hat\\beta`, its CRV1 standard error and the t statistic of :math:`R'\\hat\\beta - r`.
    null
        The null value r.
    pvalue
        Two-sided (symmetric) bootstrap p-value.
    lower, upper
        Bounds of the confidence interval by test inversion (``-inf``/``inf`` where the test never rejects);
        NaN when no interval was asked for.
    level
        Confidence level of the interval.
    draws
        Number of bootstrap draws B used (2^G or 6^G under enumeration).
    enumerated
        True when the draws are the full enumeration of the weight distribution.
    weights
        ``"rademacher"`` or ``"webb"``.
    n_clusters
        G.
    t_boot
        The B bootstrap t statistics under the null (read-only).
    """

    estimate: float
    std_error: float
    statistic: float
    null: float
    pvalue: float
    lower: float
    upper: float
    level: float
    draws: int
    enumerated: bool
    weights: str
    n_clusters: int
    t_boot: np.ndarray

    def to_dict(self) -> dict[str, float | int | str | bool]:
        """JSON-ready dict of everything but the bootstrap draws."""
        out = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "t_boot"}
        return {k: (float(v) if isinstance(v, (float, np.floating)) else v) for k, v in out.items()}


class _WCR:
    """The pieces of t*(r) that are linear in r, for a fixed set of draws."""

    def __init__(self, X, y, codes, n_g, R, ssc, v, chunk=2048):
        XtX = X.T @ X
        try:
            A = np.linalg.inv(XtX)
        except np.linalg.LinAlgError:
            raise CollinearityError("X'X is singular: a regressor is a linear combination of the others.") from None
        a = A @ R
        self.ssc = ssc
        self.beta = A @ (X.T @ y)
        self.estimate = float(R @ self.beta)
        denom = float(R @ a)
        if not denom > 0:
            raise CollinearityError("The restriction R'beta has zero variance: R is zero or outside the design.")
        # restricted residuals u(r) = u0 + r * u1
        resid = y - X @ self.beta
        u0 = resid + (X @ a) * self.estimate / denom
        u1 = -(X @ a) / denom
        z = X @ a
        Xz = np.zeros((n_g, X.shape[1]))
        np.add.at(Xz, codes, X * z[:, None])  # rows: a'X_g'X_g
        pieces = []
        for u in (u0, u1):
            S = np.zeros((n_g, X.shape[1]))
            np.add.at(S, codes, X * u[:, None])  # rows: s_g'
            c = S @ a
            H = Xz @ A @ S.T
            pieces.append((c, np.diag(c) - H))
        (c0, Q0), (c1, Q1) = pieces
        # original CRV1 standard error with the unrestricted residuals
        Su = np.zeros((n_g, X.shape[1]))
        np.add.at(Su, codes, X * resid[:, None])
        self.std_error = float(np.sqrt(ssc * np.sum((Su @ a) ** 2)))
        B = v.shape[1]
        self.n0, self.n1 = c0 @ v, c1 @ v
        self.d00, self.d01, self.d11 = np.empty(B), np.empty(B), np.empty(B)
        for lo in range(0, B, chunk):
            blk = v[:, lo : lo + chunk]
            q0, q1 = Q0 @ blk, Q1 @ blk
            self.d00[lo : lo + chunk] = np.einsum("gb,gb->b", q0, q0)
            self.d01[lo : lo + chunk] = np.einsum("gb,gb->b", q0, q1)
            self.d11[lo : lo + chunk] = np.einsum("gb,gb->b", q1, q1)

    def t_stat(self, r: float) -> float:
        return (self.estimate - r) / self.std_error

    def t_boot(self, r: float) -> np.ndarray:
        num = self.n0 + r * self.n1
        var = self.ssc * np.clip(self.d00 + 2 * r * self.d01 + r * r * self.d11, 0.0, None)
        with np.errstate(divide="ignore", invalid="ignore"):
            t = num / np.sqrt(var)
        return np.where(var > 0, t, np.where(num == 0, 0.0, np.inf))

    def pvalue(self, r: float) -> float:
        t = abs(self.t_stat(r))
        return float(np.mean(np.abs(self.t_boot(r)) >= t * (1 - TIE_RTOL)))

    def bound(self, side: int, alpha: float, tol: float) -> float:
        """Edge of {r : p(r) > alpha} on one side of the estimate, by bracketing and bisection."""
        inside = self.estimate
        step = self.std_error if self.std_error > 0 else max(abs(self.estimate), 1.0)
        outside = None
        for m in range(60):
            r = self.estimate + side * step * 2.0**m
            if self.pvalue(r) <= alpha:
                outside = r
                break
            inside = r
        if outside is None:
            return side * np.inf
        for _ in range(200):
            if abs(outside - inside) <= tol * max(1.0, abs(inside)):
                break
            mid = (inside + outside) / 2
            if self.pvalue(mid) > alpha:
                inside = mid
            else:
                outside = mid
        return float((inside + outside) / 2)


def wild_cluster_bootstrap(
    X: np.ndarray,
    y: np.ndarray,
    clusters: Sequence | np.ndarray,
    *,
    restriction: int | Sequence[float] | np.ndarray,
    null: float = 0.0,
    draws: int = 9999,
    weights: Literal["rademacher", "webb"] = "rademacher",
    ssc: float | None = None,
    level: float | None = 0.95,
    seed: int | np.random.Generator | None = None,
) -> WildBootstrapResult:
    """Wild cluster restricted (WCR) bootstrap test and confidence interval for one coefficient or contrast.

    Parameters
    ----------
    X, y
        n x k design and outcome (any fixed effects partialled out must be nested in the clusters).
    clusters
        One cluster label per row (at least two clusters).
    restriction
        Index of the coefficient tested, or a k-vector R for the contrast ``R'beta``.
    null
        The value r of ``R'beta`` under the null hypothesis.
    draws
        Bootstrap draws B. Rademacher weights are fully enumerated when 2^G <= B (Webb when 6^G <= B), so that the
        p-value no longer depends on the seed.
    weights
        ``"rademacher"`` (default) or ``"webb"`` (six points, better for G below about 12).
    ssc
        Small-sample factor of the CRV1 variance (default ``G/(G-1) * (n-1)/(n-k)``). It scales the sample and
        the bootstrap statistics alike, so only ``statistic`` and ``std_error`` depend on it, never the p-value.
    level
        Level of the confidence interval by test inversion; None skips it.
    seed
        Seed or generator of the draws (unused under full enumeration).

    Returns
    -------
    WildBootstrapResult

    Notes
    -----
    Tie rule: a draw counts as at least as extreme as the sample when ``|t*_b| >= |t| * (1 - 1e-9)``, so
    ``p = #{b : |t*_b| >= |t|} / B``. The relative tolerance absorbs round-off: the draw with every weight
    equal to one rebuilds the sample exactly, so its t statistic equals the sample's in exact arithmetic
    and always counts (under enumeration p >= 2 / B, that draw and its mirror image). wildboottest counts
    only strictly larger draws, so its p-value can fall short of this one by the tied draws.

    The interval is ``{r : p(r) > 1 - level}``, found by bisection (relative tolerance 1e-10) outward from
    the estimate with the same draws for every r. With few clusters the test may never reject on one side;
    that bound is then infinite.

    Examples
    --------
    >>> import numpy as np
    >>> from causalcts.inference.wild import wild_cluster_bootstrap
    >>> rng = np.random.default_rng(1)
    >>> g = np.repeat(np.arange(8), 10)
    >>> X = np.column_stack([np.ones(80), rng.normal(size=80)])
    >>> y = X @ [1.0, 0.3] + rng.normal(size=8)[g] + rng.normal(size=80)
    >>> res = wild_cluster_bootstrap(X, y, g, restriction=1, draws=999)
    >>> res.draws, res.enumerated      # 2^8 = 256 <= 999: every sign vector once
    (256, True)
    >>> bool(0 <= res.pvalue <= 1 and res.lower < res.estimate < res.upper)
    True
    """
    X = np.asarray(X, dtype=float)
    if X.ndim == 1:
        X = X[:, None]
    y = np.asarray(y, dtype=float).ravel()
    n, k = X.shape
    if y.shape[0] != n:
        raise CausalCTSError(f"y has {y.shape[0]} values but the design has {n} rows.")
    if not (np.all(np.isfinite(X)) and np.all(np.isfinite(y))):
        raise MissingValueError("The design or the outcome hold NaN or infinite values.")
    if isinstance(restriction, (int, np.integer)):
        if not -k <= restriction < k:
            raise CausalCTSError(f"restriction={restriction} is not a column of the {k}-column design.")
        R = np.zeros(k)
        R[restriction] = 1.0
    else:
        R = np.asarray(restriction, dtype=float).ravel()
        if R.shape != (k,):
            raise CausalCTSError(f"restriction must be a column index or a vector of {k} weights, not {R.shape}.")
    if level is not None and not 0 < level < 1:
        raise CausalCTSError(f"level={level} must lie strictly between 0 and 1 (e.g. 0.95), or be None.")
    codes, n_g = cluster_codes(clusters, n)
    if ssc is None:
        if n <= k:
            raise CausalCTSError(f"{n} rows cannot support {k} regressors.")
        ssc = n_g / (n_g - 1) * (n - 1) / (n - k)
    v, enumerated = bootstrap_weights(n_g, draws, weights=weights, seed=seed)
    wcr = _WCR(X, y, codes, n_g, R, float(ssc), v)
    lower = upper = float("nan")
    if level is not None:
        alpha = 1 - level
        lower, upper = wcr.bound(-1, alpha, 1e-10), wcr.bound(+1, alpha, 1e-10)
    t_boot = wcr.t_boot(null)
    t_boot.flags.writeable = False
    return WildBootstrapResult(
        estimate=wcr.estimate,
        std_error=wcr.std_error,
        statistic=wcr.t_stat(null),
        null=float(null),
        pvalue=wcr.pvalue(null),
        lower=float(lower),
        upper=float(upper),
        level=float(level) if level is not None else float("nan"),
        draws=int(v.shape[1]),
        enumerated=bool(enumerated),
        weights=weights,
        n_clusters=n_g,
        t_boot=t_boot,
    )
