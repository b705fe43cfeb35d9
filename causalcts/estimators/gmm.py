r"""Difference and system GMM for dynamic panels, following xtabond2 (Roodman 2009).

The model :math:`y_{it} = \alpha_i + \lambda_t + \sum_l \beta_l y_{i,t-l} + x_{it}'\gamma + \varepsilon_{it}`
is transformed to remove :math:`\alpha_i` (first differences, or forward orthogonal deviations
stored at the next period as xtabond2 does) and estimated by GMM with instruments

* GMM-style: for variable :math:`v` with lags :math:`a..b`, the levels :math:`v_{i,t-a}, \dots, v_{i,t-b}`
  instrument the transformed equation of period :math:`t`, one column per (period, lag), or one per
  lag when ``collapse`` (Roodman 2009b); in system GMM the levels equation gets
  :math:`\Delta v_{i,t-a+1}` (one column per period, or one when collapsed);
* IV-style: exogenous variables instrument themselves, transformed in the transformed equation and
  in levels in the levels equation (one column spanning both equations, xtabond2's ``eq(both)``);
  ``level_iv`` variables instrument the levels equation only (``eq(level)``); period dummies are
  IV-style; system GMM adds the constant to the levels equation.

One-step weighting :math:`A_1 = (\sum_i Z_i' H_i Z_i)^{-}` with :math:`H` xtabond2's ``h(3)``:
2 on the diagonal and -1 between consecutive periods for first differences, the identity for
orthogonal deviations and for levels, and in system GMM (first differences) the covariance of the
differenced with the level errors off the diagonal. Two-step weighting
:math:`A_2 = (\sum_i Z_i'\hat e_i \hat e_i' Z_i)^{-}` from one-step residuals; robust two-step standard
errors use the Windmeijer (2005) correction. Generalised inverses are used throughout, as in xtabond2.

Everything is accumulated per team, in batches of whole teams: the stacked instrument matrix is
never formed, so memory grows with the number of instruments, not with the rows.

Conventions, where xtabond2 and R's plm differ we follow xtabond2:

* ``nobs`` of system GMM counts the levels equation (plm and pydynpd report the transformed one).
* The Hansen test is the minimised two-step criterion, reported after one-step fits too; the Sargan
  test uses the one-step residuals and weighting, :math:`\hat\sigma^2 = \hat e'\hat e / (2 N)` for
  first differences (``/ N`` for orthogonal deviations), also after two-step fits.
* Instruments that are all zero or collinear are dropped from the count; the period dummy dropped for
  collinearity is the earliest period with data, so ``Intercept`` is that period's level.
* Arellano-Bond AR tests use residuals in first differences (also under orthogonal deviations and in
  system GMM). They use the robust variance in every case; xtabond2 uses an H-based form after a
  one-step non-robust fit, which is not implemented here.
* ``small`` scales the covariance as xtabond2 does (one-step non-robust: N/(N-k); otherwise
  (N-1)/(N-k) G/(G-1)) and reports t statistics.
* System GMM with orthogonal deviations uses the covariance of the deviations with the level errors
  (the FOD matrix) as the off-diagonal block of H; this case is not cross-checked against xtabond2.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy import linalg, stats

from causalcts.data.formula import Term
from causalcts.errors import CollinearityError, InstrumentWarning, SpecificationError, TooFewPeriodsError
from causalcts.results.base import EstimationResults

__all__ = ["GMMSpec", "gmm_fit"]


@dataclass
class GMMSpec:
    """What to estimate (built by :func:`causalcts.fit`)."""

    dep: str
    terms: list[Term]
    gmm: dict[str, tuple[int, int | None]]
    iv: list[Term]
    level_iv: list[Term] = field(default_factory=list)
    system: bool = False
    transform: str = "fd"
    collapse: bool = False
    time_effects: bool = False
    steps: int = 1
    cov: str = "robust"
    small: bool = False
    weighting: str = "h3"  # "h3" (xtabond2 default) or "identity" (2SLS, Anderson-Hsiao)
    batch_rows: int = 10_000


def _lag_positions(key: np.ndarray, k: int, stride: int) -> np.ndarray:
    """Row holding the same team ``k`` periods earlier (keys are ``team * stride + period``), or -1."""
    target = key - k
    pos = np.searchsorted(key, target)
    pc = np.minimum(pos, len(key) - 1)
    hit = (pos < len(key)) & (key[pc] == target) & (key[pc] // stride == key // stride)
    return np.where(hit, pc, -1)


def _zero_nonfinite(x: np.ndarray) -> np.ndarray:
    """Missing instruments are zeros, as in xtabond2."""
    return np.where(np.isfinite(x), x, 0.0)


def _take(values: np.ndarray, pos: np.ndarray) -> np.ndarray:
    out = values[np.maximum(pos, 0)].astype(float, copy=True)
    out[pos < 0] = np.nan
    return out


def _fod(values: np.ndarray, codes: np.ndarray, key: np.ndarray, stride: int) -> np.ndarray:
    """Forward orthogonal deviations of a block of whole teams, stored at the next period."""
    v = values if values.ndim == 2 else values[:, None]
    ok = np.all(np.isfinite(v), axis=1)
    vz = np.where(ok[:, None], v, 0.0)
    f = np.full(v.shape, np.nan)
    starts = np.r_[0, np.flatnonzero(np.diff(codes)) + 1]
    ends = np.r_[starts[1:], len(codes)]
    for s, e in zip(starts, ends):
        blk, okb = vz[s:e], ok[s:e].astype(float)
        later_sum = np.cumsum(blk[::-1], axis=0)[::-1] - blk
        later_cnt = np.cumsum(okb[::-1])[::-1] - okb
        with np.errstate(invalid="ignore", divide="ignore"):
            out = np.sqrt(later_cnt / (later_cnt + 1.0))[:, None] * (blk - later_sum / later_cnt[:, None])
        out[(later_cnt == 0) | (okb == 0)] = np.nan
        f[s:e] = out
    res = _take(f, _lag_positions(key, 1, stride))
    return res if values.ndim == 2 else res[:, 0]


@dataclass
class _Block:
    Z: np.ndarray
    X: np.ndarray
    y: np.ndarray
    team: np.ndarray  # global team code per stacked row
    eq: np.ndarray  # 0 transformed, 1 levels
    period: np.ndarray
    pairs: tuple[np.ndarray, np.ndarray, np.ndarray]  # (row, row, weight) off-diagonal H entries
    extra_diag: np.ndarray  # H diagonal minus 1 per row
    ar: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]  # first-difference rows (y, X, team, period) for AR tests
    rows: np.ndarray  # row of the panel each stacked row is stored at


class _Engine:
    """Builds instruments per batch of teams and accumulates the GMM cross-products."""

    def __init__(self, spec: GMMSpec, raw: dict[str, np.ndarray], codes: np.ndarray, periods: np.ndarray):
        self.spec = spec
        self.raw = raw
        self.codes = codes
        self.periods = periods
        self.all_periods = np.unique(periods)
        self.pmin, self.pmax = int(self.all_periods.min()), int(self.all_periods.max())
        self.span = self.pmax - self.pmin + 1
        self.key = codes * (self.span + 2) + (periods - self.pmin)
        self.n_teams = int(codes.max()) + 1
        # with identity weighting Z'HZ is Z'Z; otherwise only the diagonal of Z'Z is needed
        self.full_gram = False
        starts = np.r_[0, np.flatnonzero(np.diff(codes)) + 1]
        ends = np.r_[starts[1:], len(codes)]
        self.batches = []
        s0 = 0
        for s, e in zip(starts, ends):
            if e - s0 > spec.batch_rows and s > s0:
                self.batches.append((s0, s))
                s0 = s
        self.batches.append((s0, len(codes)))
        self._plan_columns()

    # -------------------------------------------------------------- column plan
    def _plan_columns(self) -> None:
        s = self.spec
        self.gmm_lags = {}
        for v, (a, b) in s.gmm.items():
            hi = self.span - 1 if b is None else min(b, self.span - 1)
            if hi < a:
                raise TooFewPeriodsError(
                    f"GMM instruments for {v!r} start at lag {a}, but the panel spans only {self.span} periods."
                )
            self.gmm_lags[v] = (a, hi)
        names: list[str] = []
        groups: dict[str, list[int]] = {}
        P = self.span
        for v, (a, hi) in self.gmm_lags.items():
            start = len(names)
            if s.collapse:
                names += [f"gmm:{v}:L{lag}" for lag in range(a, hi + 1)]
            else:
                names += [f"gmm:{v}:t{p + self.pmin}:L{lag}" for p in range(P) for lag in range(a, hi + 1)]
            groups[f"gmm({v}, transformed eq.)"] = list(range(start, len(names)))
        if s.system:
            for v, (a, _) in self.gmm_lags.items():
                start = len(names)
                if s.collapse:
                    names.append(f"gmm:{v}:level:DL{a - 1}")
                else:
                    names += [f"gmm:{v}:level:t{p + self.pmin}:DL{a - 1}" for p in range(P)]
                groups[f"gmm({v}, levels eq.)"] = list(range(start, len(names)))
        if s.iv:
            start = len(names)
            names += [f"iv:{t.name}" for t in s.iv]
            groups["iv"] = list(range(start, len(names)))
        if s.level_iv:
            start = len(names)
            names += [f"iv-level:{t.name}" for t in s.level_iv]
            groups["iv(levels eq.)"] = list(range(start, len(names)))
        if s.time_effects:
            start = len(names)
            names += [f"iv:t{p}" for p in self.all_periods]
            groups["time dummies"] = list(range(start, len(names)))
        if s.system:
            names.append("iv:Intercept")
        self.z_names = names
        self.z_groups = groups
        xn = [t.name for t in s.terms]
        if s.system:
            xn.append("Intercept")
        if s.time_effects:
            xn += [f"period[{p}]" for p in self.all_periods]  # brackets: no column name can clash
        self.x_names = xn
        self.n_real = len(s.terms)

    # -------------------------------------------------------------- one batch
    def build(self, s0: int, s1: int) -> _Block:
        spec = self.spec
        codes, key, per = self.codes[s0:s1], self.key[s0:s1], self.periods[s0:s1]
        n = s1 - s0
        P = self.span
        # rows of this batch on a dense (team, period) grid: a lag is an index shift, not a search
        lt = codes - codes[0]
        p_all = per - self.pmin
        grid = np.full((int(lt[-1]) + 1, P), -1, dtype=np.int64)
        grid[lt, p_all] = np.arange(n)
        lagpos: dict[int, np.ndarray] = {}

        def pos(k: int) -> np.ndarray:
            if k not in lagpos:
                idx = p_all - k
                ok = (idx >= 0) & (idx < P)
                out = np.full(n, -1, dtype=np.int64)
                out[ok] = grid[lt[ok], idx[ok]]
                lagpos[k] = out
            return lagpos[k]

        def lagv(values: np.ndarray, k: int) -> np.ndarray:
            return values.astype(float) if k == 0 else _take(values, pos(k))

        def transform(M: np.ndarray) -> np.ndarray:
            if spec.transform == "fd":
                return M - _take(M, pos(1))
            return _fod(M, codes, key, self.span + 2)

        raw = {v: a[s0:s1] for v, a in self.raw.items()}
        XL = np.column_stack([lagv(raw[t.variable], t.lag) for t in spec.terms])
        yL = raw[spec.dep].astype(float)
        yT = transform(yL)
        XT = transform(XL)
        dif = np.isfinite(yT) & np.all(np.isfinite(XT), axis=1)
        lev = (np.isfinite(yL) & np.all(np.isfinite(XL), axis=1)) if spec.system else np.zeros(n, bool)
        ridx = np.r_[np.flatnonzero(dif), np.flatnonzero(lev)]
        eq = np.r_[np.zeros(dif.sum(), np.int8), np.ones(lev.sum(), np.int8)]
        order = np.lexsort((per[ridx], eq, codes[ridx]))
        ridx, eq = ridx[order], eq[order]
        m = len(ridx)
        isd, isl = eq == 0, eq == 1
        prow = per[ridx] - self.pmin
        Z = np.zeros((m, len(self.z_names)))
        col = 0
        lt_r = lt[ridx]
        rows_d = np.flatnonzero(isd)
        for v, (a, hi) in self.gmm_lags.items():
            nl = hi - a + 1
            # value grid padded with hi zero periods on the left: lags a..hi of period p are the
            # window [p, p + nl) of the padded row, in reverse order
            vg = np.zeros((grid.shape[0], hi + P))
            vals = raw[v].astype(float)
            vg[lt, hi + p_all] = np.where(np.isfinite(vals), vals, 0.0)
            windows = np.lib.stride_tricks.sliding_window_view(vg, nl, axis=1)
            z = windows[lt_r[rows_d], prow[rows_d]][:, ::-1]
            if spec.collapse:
                Z[rows_d, col : col + nl] = z
            else:
                Z[rows_d[:, None], col + prow[rows_d, None] * nl + np.arange(nl)[None, :]] = z
            col += nl if spec.collapse else P * nl
        if spec.system:
            for v, (a, _) in self.gmm_lags.items():
                dv = raw[v].astype(float) - lagv(raw[v], 1)
                z = _zero_nonfinite(lagv(dv, a - 1)[ridx]) * isl
                if spec.collapse:
                    Z[:, col] = z
                    col += 1
                else:
                    Z[np.arange(m), col + prow] = z
                    col += P
        if spec.iv:
            IL = np.column_stack([lagv(raw[t.variable], t.lag) for t in spec.iv])
            IT = transform(IL)
            Z[:, col : col + len(spec.iv)] = _zero_nonfinite(
                np.where(isd[:, None], IT[ridx], IL[ridx] if spec.system else 0.0)
            )
            col += len(spec.iv)
        if spec.level_iv:
            LL = np.column_stack([lagv(raw[t.variable], t.lag) for t in spec.level_iv])
            Z[:, col : col + len(spec.level_iv)] = _zero_nonfinite(LL[ridx]) * isl[:, None]
            col += len(spec.level_iv)
        D = DT = Dstack = None
        if spec.time_effects:
            nP = len(self.all_periods)
            if spec.transform == "fd":
                # first-differenced dummies of a differenced row at t: +1 at t, -1 at t-1 (that row exists)
                Dstack = np.zeros((m, nP))
                pc = np.searchsorted(self.all_periods, per[ridx])
                Dstack[np.arange(m), pc] = 1.0
                prev = np.searchsorted(self.all_periods, per[ridx] - 1)
                Dstack[rows_d, prev[rows_d]] = -1.0
            else:
                D = (per[:, None] == self.all_periods[None, :]).astype(float)
                DT = transform(D)
                Dstack = _zero_nonfinite(np.where(isd[:, None], DT[ridx], D[ridx]))
            if spec.system:
                Z[:, col : col + nP] = Dstack
            else:
                Z[:, col : col + nP] = Dstack  # every stacked row is a transformed row
            col += nP
        if spec.system:
            Z[:, col] = isl
            col += 1
        # regressors
        Xs = np.where(isd[:, None], XT[ridx], XL[ridx])
        parts: list[np.ndarray] = [Xs]
        if spec.system:
            parts.append(isl[:, None].astype(float))
        if spec.time_effects:
            assert Dstack is not None  # built above whenever time_effects is set
            parts.append(Dstack)
        X = np.column_stack(parts)
        y = np.where(isd, yT[ridx], yL[ridx])
        team = codes[ridx]
        pairs, extra = self._h_structure(team, eq, prow)
        # Arellano-Bond AR tests always use residuals in first differences (also after FOD or in levels)
        if spec.transform == "fd":
            ar = (y, X, team, prow) if not spec.system else (y[isd], X[isd], team[isd], prow[isd])
        else:
            yD, XD = yL - lagv(yL, 1), XL - _take(XL, pos(1))
            okD = np.isfinite(yD) & np.all(np.isfinite(XD), axis=1)
            partsD = [XD[okD]]
            if spec.system:
                partsD.append(np.zeros((okD.sum(), 1)))
            if spec.time_effects:
                D = (per[:, None] == self.all_periods[None, :]).astype(float)
                partsD.append(_zero_nonfinite(D - _take(D, pos(1)))[okD])
            ar = (yD[okD], np.column_stack(partsD), codes[okD], per[okD] - self.pmin)
        return _Block(Z, X, y, team, eq, prow, pairs, extra, ar, s0 + ridx)

    def _h_structure(self, team, eq, prow):
        m = len(team)
        extra = np.zeros(m)
        if self.spec.weighting == "identity" or (self.spec.transform == "fod" and not self.spec.system):
            e = np.empty(0, np.int64)
            return (e, e, np.empty(0)), extra
        if self.spec.transform == "fod":
            return self._h_fod_system(team, eq, prow), extra
        extra[eq == 0] = 1.0
        # consecutive transformed rows of the same team, one period apart: weight -1
        same = (team[1:] == team[:-1]) & (eq[1:] == 0) & (eq[:-1] == 0) & (prow[1:] - prow[:-1] == 1)
        r = np.flatnonzero(same)
        rows, cols, w = [r], [r + 1], [-np.ones(len(r))]
        if self.spec.system:
            # cross block: diff row at t with level rows at t (+1) and t-1 (-1)
            keyall = team.astype(np.int64) * (self.span + 2) * 2 + eq * (self.span + 2) + prow
            lev_key = keyall[eq == 1]
            lev_idx = np.flatnonzero(eq == 1)
            d_idx = np.flatnonzero(eq == 0)
            for shift, weight in ((0, 1.0), (1, -1.0)):
                target = team[d_idx].astype(np.int64) * (self.span + 2) * 2 + (self.span + 2) + prow[d_idx] - shift
                p = np.searchsorted(lev_key, target)
                pc = np.minimum(p, max(len(lev_key) - 1, 0))
                hit = (p < len(lev_key)) & (lev_key[pc] == target) if len(lev_key) else np.zeros(len(d_idx), bool)
                rows.append(d_idx[hit])
                cols.append(lev_idx[pc[hit]])
                w.append(np.full(hit.sum(), weight))
        return (np.concatenate(rows), np.concatenate(cols), np.concatenate(w)), extra

    @staticmethod
    def _h_fod_system(team, eq, prow):
        """Cross block of H for system GMM with orthogonal deviations: Cov(e*, e') = F, the FOD matrix.

        The deviation of period t (stored at t + 1) loads c_t on the level error of t and -c_t / n_t on
        each of the n_t later level errors, c_t = sqrt(n_t / (n_t + 1)).
        """
        rows, cols, w = [], [], []
        starts = np.r_[0, np.flatnonzero(np.diff(team)) + 1]
        ends = np.r_[starts[1:], len(team)]
        for s0, s1 in zip(starts, ends):
            idx = np.arange(s0, s1)
            d_idx, l_idx = idx[eq[s0:s1] == 0], idx[eq[s0:s1] == 1]
            if len(d_idx) == 0 or len(l_idx) == 0:
                continue
            lp = prow[l_idx]
            for r in d_idx:
                t = prow[r] - 1
                later = l_idx[lp > t]
                n_t = len(later)
                if n_t == 0:
                    continue
                c = np.sqrt(n_t / (n_t + 1.0))
                same = l_idx[lp == t]
                rows.extend([r] * len(same))
                cols.extend(same.tolist())
                w.extend([c] * len(same))
                rows.extend([r] * n_t)
                cols.extend(later.tolist())
                w.extend([-c / n_t] * n_t)
        return np.asarray(rows, np.int64), np.asarray(cols, np.int64), np.asarray(w, float)

    # -------------------------------------------------------------- accumulation
    def pass_one(self):
        L, k = len(self.z_names), len(self.x_names)
        ZHZ = np.zeros((L, L))
        ZZ = np.zeros((L, L)) if self.full_gram else np.zeros(L)
        ZX, Zy, XX = np.zeros((L, k)), np.zeros(L), np.zeros((k, k))
        n_eq = np.zeros(2, np.int64)
        teams_used = np.zeros(self.n_teams, bool)
        for s0, s1 in self.batches:
            b = self.build(s0, s1)
            m = len(b.y)
            r, c, w = b.pairs
            H = sp.csr_matrix(
                (np.r_[1.0 + b.extra_diag, w, w], (np.r_[np.arange(m), r, c], np.r_[np.arange(m), c, r])), shape=(m, m)
            )
            ZHZ += b.Z.T @ (H @ b.Z)
            ZZ += np.einsum("ij,ij->j", b.Z, b.Z) if not self.full_gram else b.Z.T @ b.Z
            ZX += b.Z.T @ b.X
            Zy += b.Z.T @ b.y
            XX += b.X.T @ b.X
            n_eq += np.bincount(b.eq, minlength=2)
            teams_used[b.team] = True
        return dict(ZHZ=ZHZ, ZZ=ZZ, ZX=ZX, Zy=Zy, XX=XX, n_eq=n_eq, teams_used=teams_used)

    def pass_residuals(self, beta, zkeep, xkeep, *, ar_lags=(1, 2), a_team=None, u=None):
        """Residuals, per-team scores and the pieces of the AR tests (and Windmeijer terms)."""
        L = int(zkeep.sum())
        k = int(xkeep.sum())
        G = np.zeros((self.n_teams, L))
        ar = {lag: dict(d0=0.0, d1=0.0, EX=np.zeros(k), s=np.zeros(self.n_teams)) for lag in ar_lags}
        aZX = np.zeros((L, k))
        vX = np.zeros((self.n_teams, k))
        ssr_d = 0.0
        n_d = 0
        resid_rows, resid, transformed_y = [], [], []
        beta_full = np.zeros(len(xkeep))
        beta_full[xkeep] = beta
        u_full = None
        if u is not None:
            u_full = np.zeros(len(zkeep))
            u_full[zkeep] = u
        zk = np.flatnonzero(zkeep)
        for s0, s1 in self.batches:
            b = self.build(s0, s1)
            if len(b.y) == 0:
                continue
            Z, X = b.Z, b.X
            e = b.y - X @ beta_full
            starts = np.r_[0, np.flatnonzero(np.diff(b.team)) + 1]
            teams = b.team[starts]
            G[teams] += np.add.reduceat(Z * e[:, None], starts, axis=0)[:, zk]
            d = b.eq == 0
            resid_rows.append(b.rows[d])
            resid.append(e[d])
            transformed_y.append(b.y[d])
            ssr_d += float(e[d] @ e[d])
            n_d += int(d.sum())
            # residuals in first differences, lagged by period, for the AR tests
            yD, XD, td, pd_ = b.ar
            ed = yD - XD @ beta_full
            kd = td.astype(np.int64) * (self.span + 2) + pd_
            for lag in ar_lags:
                p = _lag_positions(kd, lag, self.span + 2)
                el = np.where(p >= 0, ed[np.maximum(p, 0)], 0.0)
                prod = el * ed
                ar[lag]["d0"] += float(prod.sum())
                ar[lag]["s"] += np.bincount(td, weights=prod, minlength=self.n_teams)
                ar[lag]["EX"] += (el @ XD)[xkeep]
            if a_team is not None:
                Xk = X[:, xkeep]
                aZX += Z[:, zk].T @ (Xk * a_team[b.team][:, None])
                zu = Z @ u_full
                vX[teams] += np.add.reduceat(Xk * zu[:, None], starts, axis=0)
        for lag in ar_lags:
            ar[lag]["d1"] = float((ar[lag]["s"] ** 2).sum())
        cat = lambda parts: np.concatenate(parts) if parts else np.empty(0)  # noqa: E731
        return dict(
            G=G,
            ar=ar,
            aZX=aZX,
            vX=vX,
            ssr_d=ssr_d,
            n_d=n_d,
            resid_rows=cat(resid_rows).astype(np.int64),
            resid=cat(resid),
            transformed_y=cat(transformed_y),
        )


def _pinv(M: np.ndarray, *, return_rank: bool = False):
    # scale to unit diagonal so the cut-off is relative to each column's size
    d = np.sqrt(np.abs(np.diag(M)))
    d[d == 0] = 1.0
    Ms = M / d[:, None] / d[None, :]
    # the usual numerical-rank cut-off (size x machine epsilon): ill-conditioned but regular weighting
    # matrices (condition numbers of 1e10 arise with deep collapsed lags) are inverted in full, as invsym does
    inv, rank = linalg.pinvh(Ms, atol=0.0, rtol=Ms.shape[0] * np.finfo(float).eps, return_rank=True)
    inv = inv / d[:, None] / d[None, :]
    # the rank comes with the eigendecomposition: no second (SVD) pass to decide whether to warn
    return (inv, int(rank)) if return_rank else inv


def _independent(
    M: np.ndarray, candidates: np.ndarray, order: np.ndarray | None = None, *, block: int = 128
) -> np.ndarray:
    """Greedy choice of linearly independent columns of the Gram matrix ``M``, in ``order`` (default: left to right).

    Column j is kept when what is left of it after projecting out the columns kept before it exceeds 1e-10 of
    its own squared norm (a Schur-complement pivot on the unit-diagonal matrix): the criterion of a Gram-Schmidt
    pass, in xtabond2's left-to-right order. One blocked Cholesky pass does it: each block of columns is
    projected on the kept ones with one triangular solve (BLAS-3), then chosen within the block by rank-one
    updates, and the kept columns extend the Cholesky factor, O(K^3) in all. It replaced a loop that
    recomputed the eigenvalues of the growing chosen set for every column (O(K^4)).
    """
    keep = np.zeros(M.shape[0], bool)
    seq = np.arange(M.shape[0]) if order is None else np.asarray(order)
    seq = seq[candidates[seq]]
    d = np.sqrt(np.abs(np.diag(M)[seq]))
    seq, d = seq[d > 0], d[d > 0]
    S = M[np.ix_(seq, seq)] / d[:, None] / d[None, :]  # unit diagonal: the cut-off is relative to each column
    n = len(seq)
    factor = np.zeros((n, n))  # Cholesky factor of the kept columns, grown block by block
    chosen: list[int] = []
    for b0 in range(0, n, block):
        B = np.arange(b0, min(b0 + block, n))
        k = len(chosen)
        if k:
            C = linalg.solve_triangular(
                factor[:k, :k], S[np.ix_(np.asarray(chosen, dtype=np.intp), B)], lower=True, check_finite=False
            )
            R = S[np.ix_(B, B)] - C.T @ C
        else:
            C, R = np.zeros((0, len(B))), S[np.ix_(B, B)].copy()
        work = R.copy()
        local = []
        for i in range(len(B)):
            pivot = work[i, i]
            if pivot > 1e-10:
                local.append(i)
                c = work[i + 1 :, i] / np.sqrt(pivot)
                work[i + 1 :, i + 1 :] -= np.outer(c, c)
        if local:
            m = len(local)
            factor[k : k + m, :k] = C[:, local].T
            factor[k : k + m, k : k + m] = np.linalg.cholesky(R[np.ix_(local, local)])
            chosen.extend(int(B[i]) for i in local)
    keep[seq[chosen]] = True
    return keep


#: Instrument columns above which a fit is announced as slow (an uncollapsed 52-week panel plans ~1,300).
MANY_INSTRUMENTS = 500


def _warn_if_many_instruments(n_planned: int) -> None:
    if n_planned > MANY_INSTRUMENTS:
        warnings.warn(
            f"This specification plans {n_planned} instrument columns (more than {MANY_INSTRUMENTS}): the fit will "
            "take long and the instruments overfit the endogenous regressors. Consider collapse=True and lag "
            "limits, e.g. gmm={y: (2, 4)}.",
            InstrumentWarning,
            stacklevel=4,
        )


def _check_absorbed(eng: _Engine, XX: np.ndarray, xcand: np.ndarray, real: np.ndarray, raw, n_rows: int) -> None:
    """Raise for a regressor that the transformation and the period dummies (and constant) absorb.

    What is left of the transformed column after projecting out the dummies and the constant is compared with
    the column's own scale *before* the transformation (its variance in levels times the rows). The comparison is
    made on sums of squares from the cross-product matrix, which carry half the digits of the columns, so the cut-off
    is 1e-12 on squares (1e-6 on norms): far above round-off, far below any real variation.
    """
    nuisance = np.flatnonzero(xcand & ~real)
    for j in np.flatnonzero(real & xcand):
        left = XX[j, j]
        if len(nuisance):
            c = XX[nuisance, j]
            left = XX[j, j] - c @ _pinv(XX[np.ix_(nuisance, nuisance)]) @ c
        term = eng.spec.terms[j]
        values = raw[term.variable]
        level_ss = float(np.nanvar(values[np.isfinite(values)])) * n_rows
        if level_ss == 0 or left < 1e-12 * level_ss:
            raise CollinearityError(
                f"The regressor {term.name!r} is absorbed by the "
                f"{'first differences' if eng.spec.transform == 'fd' else 'transformation'}"
                f"{' and the period effects' if eng.spec.time_effects else ''}"
                f"{' and the constant' if eng.spec.system else ''} (it is constant within each entity, or an entity "
                "constant plus a period term): its coefficient is not identified; remove it."
            )


def _first_stage(eng: _Engine, acc, zkeep, xkeep, outcome_lags) -> dict:
    """Conventional first-stage F of the excluded (GMM-style) instruments for the outcome's lag (2SLS rows).

    The regression of the transformed lag on every instrument, against the one without the excluded ones:
    ``F = ((RSS_r - RSS_u) / q) / (RSS_u / (n - L))`` (Staiger and Stock 1997 use this statistic's rule of
    thumb, F < 10 signals weak instruments).
    """
    keep_idx = np.flatnonzero(zkeep)
    excluded = {c for g, cols in eng.z_groups.items() if g.startswith("gmm(") for c in cols}
    is_excl = np.array([c in excluded for c in keep_idx])
    ZZ = acc["ZHZ"][np.ix_(zkeep, zkeep)]  # identity weighting: Z'HZ = Z'Z
    j = eng.x_names.index(outcome_lags[0])
    zx, xx = acc["ZX"][zkeep, j], float(acc["XX"][j, j])
    n, L, q = int(acc["n_eq"][0]), len(keep_idx), int(is_excl.sum())

    def rss(mask):
        if not mask.any():
            return xx
        c = zx[mask]
        return xx - float(c @ _pinv(ZZ[np.ix_(mask, mask)]) @ c)

    rss_u, rss_r = rss(np.ones(L, bool)), rss(~is_excl)
    F = ((rss_r - rss_u) / q) / (rss_u / (n - L))
    return {
        "statistic": float(F),
        "df": q,
        "df_denom": n - L,
        "pvalue": float(stats.f.sf(F, q, n - L)),
        "endogenous": outcome_lags[0],
    }


def gmm_fit(
    spec: GMMSpec,
    raw: dict[str, np.ndarray],
    codes: np.ndarray,
    periods: np.ndarray,
    *,
    formula: str,
    method: str,
    outcome_lags: tuple[str, ...],
    labels: tuple[np.ndarray, np.ndarray, tuple[str, str]] | None = None,
) -> EstimationResults:
    """Estimate a difference or system GMM model (see the module docstring).

    ``labels`` (entity and time value of every panel row, and the two column names) index ``resid`` and
    ``fitted``: the residuals and fitted values of the transformed equation (first differences, or forward
    orthogonal deviations stored at the next period), also for system GMM, whose levels rows are left out.
    """
    eng = _Engine(spec, raw, codes, periods)
    _warn_if_many_instruments(len(eng.z_names))
    acc = eng.pass_one()
    n_obs = int(acc["n_eq"][1] if spec.system else acc["n_eq"][0])
    n_teams = int(acc["teams_used"].sum())
    if acc["n_eq"][0] == 0:
        raise TooFewPeriodsError(
            "No observation has every lag the model needs after transformation; the panel is too short."
        )
    # H is positive definite, so Z'HZ has the null space of Z'Z: choose independent instruments from it
    zkeep = _independent(acc["ZHZ"], acc["ZZ"] > 0)
    # regressors: real terms must be independent; dummies and the constant may be dropped
    XX = acc["XX"]
    xcand = np.diag(XX) > 0
    # later period dummies first, so the earliest period with data becomes the omitted base period
    n_fixed = len(eng.x_names) - (len(eng.all_periods) if spec.time_effects else 0)
    xorder = np.r_[np.arange(n_fixed), np.arange(len(eng.x_names) - 1, n_fixed - 1, -1)]
    xkeep = _independent(XX, xcand, xorder)
    real = np.arange(len(eng.x_names)) < eng.n_real
    lost = real & ~xkeep
    if lost.any():
        name = eng.x_names[int(np.flatnonzero(lost)[0])]
        raise CollinearityError(
            f"The regressor {name!r} is constant or collinear with the other regressors after "
            f"{'first-differencing' if spec.transform == 'fd' else 'the transformation'}; remove it."
        )
    _check_absorbed(eng, XX, xcand, real, raw, int(acc["n_eq"].sum()))
    L, k = int(zkeep.sum()), int(xkeep.sum())
    if L < k:
        raise SpecificationError(f"{L} instruments cannot identify {k} coefficients; add instruments.")
    if L > n_teams:
        warnings.warn(
            f"{L} instruments exceed the {n_teams} entities: the Hansen test is weakened and estimates drift "
            "towards the biased within/OLS values; consider collapse=True or lag limits.",
            InstrumentWarning,
            stacklevel=3,
        )
    ZHZ = acc["ZHZ"][np.ix_(zkeep, zkeep)]
    ZX = acc["ZX"][np.ix_(zkeep, xkeep)]
    Zy = acc["Zy"][zkeep]
    A1, rank1 = _pinv(ZHZ, return_rank=True)
    if rank1 < L:
        warnings.warn(
            "The one-step weighting matrix is singular; a generalised inverse is used, as in xtabond2.",
            InstrumentWarning,
            stacklevel=3,
        )

    def solve(W):
        M = ZX.T @ W @ ZX
        Minv = np.linalg.inv(M)
        return Minv, Minv @ (ZX.T @ W @ Zy)

    M1inv, b1 = solve(A1)
    r1 = eng.pass_residuals(b1, zkeep, xkeep)
    S1 = r1["G"].T @ r1["G"]
    A2, rank2 = _pinv(S1, return_rank=True)
    if rank2 < L:
        warnings.warn(
            "The two-step weighting matrix is singular; a generalised inverse is used, as in xtabond2.",
            InstrumentWarning,
            stacklevel=3,
        )
    Ze1 = Zy - ZX @ b1
    # one-step variance
    bread1 = M1inv @ ZX.T @ A1
    V1_robust = bread1 @ S1 @ bread1.T
    sigma2 = (
        r1["ssr_d"] / (2.0 * r1["n_d"])
        if spec.transform == "fd" and spec.weighting == "h3"
        else r1["ssr_d"] / r1["n_d"]
    )
    if spec.steps == 1:
        beta, Minv, W, res = b1, M1inv, A1, r1
        V = V1_robust if spec.cov == "robust" else sigma2 * M1inv
        Ze = Ze1
    else:
        M2inv, b2 = solve(A2)
        Ze = Zy - ZX @ b2
        u = A2 @ Ze
        a_team = r1["G"] @ u
        r2 = eng.pass_residuals(b2, zkeep, xkeep, a_team=a_team, u=u)
        beta, Minv, W, res = b2, M2inv, A2, r2
        V = M2inv
        if spec.cov == "robust":
            # Windmeijer (2005): D[:, j] = -Minv X'Z A2 (dS/dbeta_j) A2 Z'e2 with
            # dS/dbeta_j = -sum_i Z_i'(x_ij e1_i' + e1_i x_ij')Z_i (e1: one-step residuals)
            MuX = r2["aZX"] + r1["G"].T @ r2["vX"]
            D = M2inv @ ZX.T @ A2 @ MuX
            V = M2inv + D @ M2inv + M2inv @ D.T + D @ V1_robust @ D.T
    onestep_nonrobust = spec.steps == 1 and spec.cov != "robust"
    if spec.small:
        # xtabond2's small: one-step non-robust V * N/(N - k); otherwise (N - 1)/(N - k) * G/(G - 1), the
        # Stata convention for clustered covariances; t statistics with G - (constant) degrees of freedom
        V = V * (n_obs / (n_obs - k) if onestep_nonrobust else (n_obs - 1) / (n_obs - k) * n_teams / (n_teams - 1))
    # tests
    tests: dict[str, dict] = {}
    df_over = L - k
    # Hansen J is the minimised two-step criterion, also after a one-step fit (as xtabond2 reports it)
    Ze_h = Ze if spec.steps == 2 else Zy - ZX @ solve(A2)[1]
    hansen = float(Ze_h @ A2 @ Ze_h)
    tests["hansen"] = {
        "statistic": hansen,
        "df": df_over,
        "pvalue": float(stats.chi2.sf(hansen, df_over)) if df_over > 0 else np.nan,
    }
    # Sargan: one-step residuals and the one-step weighting matrix, also after a two-step fit (as xtabond2)
    sargan = float(Ze1 @ A1 @ Ze1) / sigma2
    tests["sargan"] = {
        "statistic": sargan,
        "df": df_over,
        "pvalue": float(stats.chi2.sf(sargan, df_over)) if df_over > 0 else np.nan,
    }
    bread = Minv @ ZX.T @ W
    for lag, a in res["ar"].items():
        temp3 = res["G"].T @ a["s"]
        var = a["d1"] - 2.0 * float(a["EX"] @ bread @ temp3) + float(a["EX"] @ V @ a["EX"])
        z = a["d0"] / np.sqrt(var) if var > 0 else np.nan
        tests[f"ar{lag}"] = {"statistic": float(z), "pvalue": float(2 * stats.norm.sf(abs(z)))}
    if df_over > 0 and len(eng.z_groups) > 1:
        keep_idx = np.flatnonzero(zkeep)
        pos_of: dict[int, int] = {int(j): i for i, j in enumerate(keep_idx)}
        for gname, cols in eng.z_groups.items():
            g = np.asarray([pos_of[int(c)] for c in cols if int(c) in pos_of], dtype=int)
            if len(g) == 0 or L - len(g) < k:
                continue
            rest = np.setdiff1d(np.arange(L), g)
            S_r = S1[np.ix_(rest, rest)] if spec.steps == 1 else S1[np.ix_(rest, rest)]
            W_r = _pinv(S_r)
            ZX_r, Zy_r = ZX[rest], Zy[rest]
            b_r = np.linalg.solve(ZX_r.T @ W_r @ ZX_r, ZX_r.T @ W_r @ Zy_r)
            e_r = Zy_r - ZX_r @ b_r
            j_r = float(e_r @ W_r @ e_r)
            diff = hansen - j_r
            tests[f"diff-in-hansen: {gname}"] = {
                "excluding": j_r,
                "difference": diff,
                "df": int(len(g)),
                "pvalue": float(stats.chi2.sf(diff, len(g))) if diff >= 0 else np.nan,
            }
    if spec.weighting == "identity":  # Anderson-Hsiao: report the strength of the excluded instrument
        tests["first_stage"] = _first_stage(eng, acc, zkeep, xkeep, outcome_lags)
        if tests["first_stage"]["statistic"] < 10:
            warnings.warn(
                f"The first-stage F of the excluded instrument is {tests['first_stage']['statistic']:.3g} < 10 "
                "(Staiger and Stock 1997 rule of thumb): the instrument is weak and the estimate may be far off "
                "(even of the wrong sign or size); prefer diff-gmm or sys-gmm.",
                InstrumentWarning,
                stacklevel=3,
            )
    xnames = [n for n, kp in zip(eng.x_names, xkeep) if kp]
    # period dummies are tracked by position (they follow the real terms and the constant), never by name
    n_fixed = eng.n_real + int(spec.system)
    report = [i for i, j in enumerate(np.flatnonzero(xkeep)) if j < n_fixed]
    names = [xnames[i] for i in report]
    Vr = V[np.ix_(report, report)]
    resid = fitted = None
    if labels is not None:
        ent, tim, keys = labels
        rows = res["resid_rows"]
        index = pd.MultiIndex.from_arrays([ent[rows], tim[rows]], names=list(keys))
        resid = pd.Series(res["resid"], index=index)
        fitted = pd.Series(res["transformed_y"] - res["resid"], index=index)
    return EstimationResults(
        params=pd.Series(beta[report], index=names),
        std_errors=pd.Series(np.sqrt(np.diag(Vr)), index=names),
        cov=pd.DataFrame(Vr, index=names, columns=names),
        nobs=n_obs,
        n_entities=n_teams,
        method=method,
        formula=formula,
        cov_type=("Windmeijer-corrected, clustered by entity" if spec.steps == 2 else "clustered by entity")
        if spec.cov == "robust"
        else "unadjusted",
        n_instruments=L,
        tests=tests,
        dist="t" if spec.small else "normal",
        df_resid=(float((n_obs - (k - 1 if spec.system else k)) if onestep_nonrobust else n_teams) - int(spec.system))
        if spec.small
        else None,
        outcome_lags=outcome_lags,
        info={
            "steps": spec.steps,
            "transform": spec.transform,
            "collapse": spec.collapse,
            "system": spec.system,
            "sigma2": sigma2,
            "n_transformed_obs": int(acc["n_eq"][0]),
            "n_level_obs": int(acc["n_eq"][1]),
        },
        resid=resid,
        fitted=fitted,
    )
