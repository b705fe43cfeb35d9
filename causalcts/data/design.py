"""Designs of panel models: the outcome and regressor columns of a formula on a :class:`Panel`.

:func:`build_design` is the one entry point every estimator uses: it reads the formula
(:mod:`causalcts.data.formula`), computes the gap-aware ``L``/``F``/``D`` columns and formulaic's
transforms once, and returns them with what the GMM code needs to know of each column (its
variable and lag).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pandas as pd

from causalcts.data.formula import FormulaSpec, Term, evaluate_rhs, formula_spec
from causalcts.data.panel import Panel
from causalcts.errors import (
    MissingColumnError,
    MissingValueError,
    SpecificationError,
    TooFewPeriodsError,
    describe_rows,
)

__all__ = ["Design", "PanelArrays", "build_design", "panel_arrays", "require_rows"]


@dataclass
class PanelArrays:
    """Row-aligned arrays of a panel (rows sorted by entity and period)."""

    panel: Panel
    y: np.ndarray
    """Outcome, levels."""
    X: np.ndarray
    """Regressors in levels (lags applied), NaN where a lag reaches a missing period."""
    names: list[str]
    codes: np.ndarray
    periods: np.ndarray


@dataclass
class Design(PanelArrays):
    """The design of a panel formula: :class:`PanelArrays` plus what each column is.

    ``panel`` is the panel the design was built on; :attr:`derived_panel` adds the derived columns
    that are finite in every row (``np.log(x)``, ``C(g)[T.b]``). ``columns`` holds the values, in
    the panel's row order, of the outcome and of every variable the terms name (data or derived,
    NaN where a lag or difference reaches a missing period), so that GMM can build lags of any of
    them.
    """

    dep: str = ""
    terms: list[Term] = field(default_factory=list)
    outcome_lags: tuple[str, ...] = ()
    """Names of the regressors that are lags (lag >= 1) of the outcome."""
    columns: dict[str, np.ndarray] = field(default_factory=dict)
    spec: FormulaSpec | None = None

    @cached_property
    def derived_panel(self) -> Panel:
        """The panel with the derived columns that are finite in every row attached (built on first use)."""
        finite = {
            n: v
            for n, v in self.columns.items()
            if n not in self.panel.columns and n != self.dep and np.all(np.isfinite(v))
        }
        return self.panel.with_columns(**finite) if finite else self.panel

    def values(self, names) -> dict[str, np.ndarray]:
        """Values of the named variables: derived or outcome columns from the design, others from the panel."""
        return {n: self.columns[n] if n in self.columns else self.panel.column(n).to_numpy(dtype=float) for n in names}


def _check_columns(spec: FormulaSpec, panel: Panel) -> pd.DataFrame:
    """The panel's data with the formula's numeric columns validated; raises naming the column."""
    used = [*spec.numeric, *spec.categorical]
    missing = [c for c in used if c not in panel.columns]
    if missing:
        raise MissingColumnError(
            f"The formula uses {missing}, which {'is' if len(missing) == 1 else 'are'} not in the data; "
            f"columns are {list(panel.columns)}."
        )
    # only the columns the formula reads; panel.column raises naming the column for NaN, infinity or text
    cols = {c: panel.column(c).to_numpy(dtype=float) for c in spec.numeric}
    if spec.categorical:
        data = panel.data
        cols.update({c: data[c].to_numpy() for c in spec.categorical})
    frame = pd.DataFrame(cols, index=pd.RangeIndex(panel.nobs))
    for c in spec.categorical:
        bad = frame[c].isna().to_numpy()
        if bad.any():
            raise MissingValueError(
                f"The categorical column {c!r} is missing in {describe_rows(np.flatnonzero(bad))} "
                "(positions in the sorted panel)."
            )
    return frame


def build_design(formula: str | FormulaSpec, panel: Panel) -> Design:
    """Evaluate a formula on a panel: outcome, regressors and a description of each column.

    Parameters
    ----------
    formula
        ``"y ~ L(y, 1:2) + np.log(x) + C(size) + x:z + F(x, 1) + D(w)"``: formulaic's syntax with the
        gap-aware panel operators ``L``, ``F`` and ``D`` (:mod:`causalcts.data.formula`).
    panel
        The data.

    Returns
    -------
    Design
        ``y`` and ``X`` in the panel's row order (NaN where a lag, lead or difference reaches a
        missing period), ``names`` Stata-style (``L1.n``, ``w``, ``F1.x``, ``D.x``), ``terms``
        (variable and lag of each column), ``outcome_lags``, ``columns`` (values of every variable
        the terms name) and ``derived_panel`` (the panel with the derived columns).
        The constant is not a column: every estimator handles it (entity effects); ``- 1`` or
        ``+ 0`` in the formula changes nothing.

    Raises
    ------
    causalcts.errors.MissingColumnError
        For a column not in the data, named.
    causalcts.errors.SpecificationError
        For a malformed call, a lag below 0, a term listed twice or the outcome at lag 0 on the
        right, named.

    Examples
    --------
    >>> import pandas as pd
    >>> from causalcts import Panel
    >>> from causalcts.data.design import build_design
    >>> df = pd.DataFrame({"team": ["a"] * 3 + ["b"] * 3, "week": [1, 2, 3, 1, 2, 4],
    ...                    "n": [1.0, 2, 4, 3, 3, 5], "w": [1.0, 2, 3, 4, 5, 6]})
    >>> d = build_design("n ~ L(n, 1) + np.log(w) + F(w, 1)", Panel(df))
    >>> d.names, d.outcome_lags
    (['L1.n', 'np.log(w)', 'F1.w'], ('L1.n',))
    >>> d.X[:, 2].tolist()   # team b skips week 3: the lead of week 2 is missing
    [2.0, 3.0, nan, 5.0, nan, nan]
    """
    spec = formula if isinstance(formula, FormulaSpec) else formula_spec(formula)
    frame = _check_columns(spec, panel)
    max_lag = max([t.lag for t in spec.terms] + [0])
    panel.require_periods(max_lag + 2, why=f"lags up to {max_lag}")
    y, ev = evaluate_rhs(spec, frame, panel=panel, intercept=False)
    if not ev.names:
        raise SpecificationError(f"The formula {spec.formula!r} has no regressors once the constant is removed.")
    columns = dict(ev.columns)
    columns[spec.outcome] = y
    return Design(
        panel=panel,
        y=y,
        X=ev.matrix,
        names=ev.names,
        codes=panel.entity_codes,
        periods=panel.periods,
        dep=spec.outcome,
        terms=ev.terms,
        outcome_lags=tuple(t.name for t in ev.terms if t.variable == spec.outcome and t.lag > 0),
        columns=columns,
        spec=spec,
    )


def panel_arrays(panel: Panel, dep: str, terms: list[Term]) -> PanelArrays:
    """Outcome and lagged regressors in levels, gap-aware, aligned to the panel's rows.

    The terms name columns of ``panel`` (with their lags); for formulas with expressions use
    :func:`build_design`.
    """
    cols = [dep] + [t.variable for t in terms]
    present = set(panel.columns)
    missing = sorted({c for c in cols if c not in present})
    if missing:
        raise MissingColumnError(
            f"The formula uses {missing}, which {'is' if len(missing) == 1 else 'are'} not in the data; "
            f"columns are {list(panel.columns)}."
        )
    max_lag = max([t.lag for t in terms] + [0])
    panel.require_periods(max_lag + 2, why=f"lags up to {max_lag}")
    y = panel.column(dep).to_numpy(dtype=float)
    X = np.column_stack(
        [panel.lag(t.variable, t.lag).to_numpy() if t.lag else panel.column(t.variable).to_numpy() for t in terms]
    )
    return PanelArrays(panel, y, X, [t.name for t in terms], panel.entity_codes, panel.periods)


def require_rows(n_rows: int, k: int, what: str) -> None:
    """Raise :class:`TooFewPeriodsError` unless ``n_rows`` observations exceed ``k`` coefficients."""
    if n_rows <= k:
        raise TooFewPeriodsError(
            f"{what} leaves {n_rows} usable observations for {k} coefficients; the panel is too short for "
            "the requested lags (or the lags reach across too many missing weeks)."
        )
