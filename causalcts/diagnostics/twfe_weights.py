r"""Weights behind a two-way fixed effects regression (de Chaisemartin and D'Haultfoeuille 2020).

Under common trends, the coefficient :math:`\beta_{fe}` of the treatment in a regression of the outcome
on team and period fixed effects estimates :math:`\sum_{(g,t): D_{g,t} \neq 0} w_{g,t} \Delta_{g,t}`, a
weighted sum of the treated cells' effects whose weights sum to one but may be negative. With
heterogeneous effects, negative weights can give :math:`\beta_{fe}` the opposite sign of every effect.
This module reports the weights, their counts and sums, and the two robustness measures of
Corollary 1: :math:`\underline{\sigma}_{fe} = |\beta_{fe}| / \sigma(w)`, the smallest standard
deviation of the cell effects compatible with :math:`\beta_{fe}` and an average effect of zero, and the
smallest one compatible with effects of the opposite sign in every cell.

The computation is delegated to the ``twowayfeweights`` package (MIT; a port of the Stata command
that its authors check against Stata on 36 specifications); this module is the pandas adapter that
validates the data with causalcts errors, never mutates it, warns about every dropped row and
returns an immutable result. ``tests/test_twfe_weights.py`` checks it against the Stata output.

Reference: de Chaisemartin, C. and D'Haultfoeuille, X. (2020). Two-way fixed effects estimators with
heterogeneous treatment effects. American Economic Review 110(9), 2964-2996.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd

from causalcts.data.panel import numeric_column
from causalcts.errors import (
    CausalCTSError,
    DataWarning,
    MissingColumnError,
    NoTreatmentVariationError,
    check_option,
    describe_rows,
)

__all__ = ["TWFEWeights", "twfe_weights"]


@dataclass(frozen=True)
class TWFEWeights:
    """The weights attached to a TWFE (``feTR``) or first-difference (``fdTR``) regression.

    Attributes
    ----------
    beta
        The regression coefficient of the treatment.
    n_positive, n_negative, sum_positive, sum_negative
        Number and sum of the positive and negative weights of the treated (team, period) cells.
    n_treated_cells
        Treated cells; those whose weight is exactly zero are in neither count.
    sigma_fe
        First robustness measure: the smallest standard deviation of the cell effects compatible
        with ``beta`` and an average treatment effect of zero (``|beta| / sd(weights)``).
    sigma_fe_opposite
        Second robustness measure: the smallest standard deviation compatible with effects of the
        opposite sign of ``beta`` in every treated cell (None when no such effects exist, as when no
        weight is negative).
    random_weights
        The test of ``test_random_weights``: each variable regressed on the weights, with ``coef``,
        ``std_error``, ``tstat`` and ``correlation`` (empty when none was asked for).
    weights
        One row per (team, period) cell: the team, the period and its ``weight`` (0 for untreated
        cells).
    """

    kind: str
    treatment: str
    beta: float
    n_positive: int
    n_negative: int
    sum_positive: float
    sum_negative: float
    n_treated_cells: int
    sigma_fe: float | None
    sigma_fe_opposite: float | None
    random_weights: pd.DataFrame = field(repr=False)
    weights: pd.DataFrame = field(repr=False)

    def __getattribute__(self, name: str):
        value = object.__getattribute__(self, name)
        return value.copy() if name in ("random_weights", "weights") else value

    def summary(self) -> str:
        """A text table in the layout of the Stata command."""
        reg = "TWFE" if self.kind == "feTR" else "first-difference"
        lines = [
            f"Under common trends, the {reg} coefficient beta = {self.beta:.4f} estimates a weighted sum of "
            f"{self.n_positive + self.n_negative} ATTs ({self.n_treated_cells} treated cells).",
            f"{'':<20}{'# ATTs':>8}{'sum of weights':>16}",
            f"{'Positive weights':<20}{self.n_positive:>8}{self.sum_positive:>16.4f}",
            f"{'Negative weights':<20}{self.n_negative:>8}{self.sum_negative:>16.4f}",
            f"min sd of effects compatible with beta and ATT = 0: {_fmt(self.sigma_fe)}",
            "min sd of effects compatible with effects of the opposite sign in every cell: "
            + _fmt(self.sigma_fe_opposite),
        ]
        if not self.random_weights.empty:
            lines += [
                "",
                "Variables regressed on the weights:",
                self.random_weights.to_string(float_format=lambda v: f"{v:.6g}"),
            ]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()


def _fmt(v: float | None) -> str:
    return "not defined" if v is None else f"{v:.4f}"


_numeric = numeric_column  # one implementation, in the data layer


def _first_difference(frame: pd.DataFrame, entity: str, time: str, col: str) -> np.ndarray:
    """x_t - x_s where s is the period before t among the data's distinct periods; NaN where s is missing."""
    order = np.lexsort((frame[time].to_numpy(), pd.factorize(frame[entity], sort=True)[0]))
    f = frame.iloc[order]
    rank = pd.Series(np.searchsorted(np.sort(frame[time].unique()), f[time].to_numpy()), index=f.index)
    same = (f[entity] == f[entity].shift()) & (rank == rank.shift() + 1)
    diff = np.where(same, f[col] - f[col].shift(), np.nan)
    return pd.Series(diff, index=f.index).reindex(frame.index).to_numpy()


def twfe_weights(
    data: pd.DataFrame,
    *,
    outcome: str,
    entity: str,
    time: str,
    treatment: str,
    kind: Literal["feTR", "fdTR"] = "feTR",
    controls: list[str] | None = None,
    test_random_weights: list[str] | None = None,
    first_differences: tuple[str, str] | None = None,
) -> TWFEWeights:
    """Weights and robustness measures of a two-way fixed effects regression (de Chaisemartin-D'Haultfoeuille 2020).

    Parameters
    ----------
    data
        Team-period panel (several rows per cell are averaged, as the Stata command does). Not modified.
    outcome, treatment
        Outcome and treatment in levels (the treatment may be binary or take several values).
    entity, time
        Team and period columns.
    kind
        ``"feTR"``: regression with team and period fixed effects; ``"fdTR"``: first-difference
        regression with period fixed effects. Both under common trends only.
    controls
        Control variables of the regression.
    test_random_weights
        Variables to regress on the weights (are the weights correlated with something that may
        drive the effects?).
    first_differences
        ``kind="fdTR"`` only: the (outcome, treatment) first-difference columns to use as they are.
        By default both are differenced here between consecutive distinct periods of the data, so a
        team missing a period has no difference for the next one.

    Returns
    -------
    TWFEWeights

    Raises
    ------
    causalcts.errors.NoTreatmentVariationError
        The treatment is constant within every team or within every period, so the fixed effects
        absorb it.

    Examples
    --------
    >>> import pandas as pd
    >>> from causalcts.diagnostics.twfe_weights import twfe_weights

    Two teams, the first treated from week 2, the second from week 3: the early adopter's week-3
    effect gets a negative weight, because it serves as the comparison for the late adopter.

    >>> df = pd.DataFrame({"team": [1, 1, 1, 2, 2, 2], "week": [1, 2, 3] * 2,
    ...                    "treated": [0, 1, 1, 0, 0, 1], "y": [1.0, 2.2, 2.6, 1.1, 1.0, 2.3]})
    >>> w = twfe_weights(df, outcome="y", entity="team", time="week", treatment="treated")
    >>> w.n_positive, w.n_negative, round(w.sum_negative, 3)
    (2, 1, -0.5)
    >>> w.weights["weight"].round(3).tolist()
    [0.0, 1.0, -0.5, 0.0, 0.0, 0.5]
    """
    check_option("kind", kind, ("feTR", "fdTR"))
    if not isinstance(data, pd.DataFrame):
        raise MissingColumnError(f"twfe_weights needs a pandas DataFrame, not {type(data).__name__}.")
    controls = list(controls or [])
    rw = list(test_random_weights or [])
    if first_differences is not None:
        if kind != "fdTR":
            raise CausalCTSError("first_differences is only used with kind='fdTR'.")
        if len(first_differences) != 2:
            raise CausalCTSError(
                "first_differences must be a pair of column names: (outcome change, treatment change)."
            )
    extra = list(first_differences or [])
    needed = list(dict.fromkeys([outcome, entity, time, treatment, *controls, *rw, *extra]))
    missing = [c for c in needed if c not in data.columns]
    if missing:
        raise MissingColumnError(f"Column(s) {missing} not in the data; columns are {list(data.columns)}.")
    frame = data[needed].copy()
    for c in needed:
        if c not in (entity, time):
            frame[c] = _numeric(frame, c)
    for role, c in (("entity", entity), ("time", time)):
        if frame[c].isna().any():
            raise CausalCTSError(
                f"The {role} column {c!r} is missing in {describe_rows(frame.index[frame[c].isna()])}."
            )
    d = frame[treatment]
    if d.notna().sum() == 0 or d.nunique() < 2:
        raise NoTreatmentVariationError(
            f"Treatment {treatment!r} never varies (it is {d.dropna().unique()[:1].tolist()} in every row): "
            "no regression can estimate its effect."
        )
    within_team = (frame.groupby(entity)[treatment].nunique() > 1).any()
    within_period = (frame.groupby(time)[treatment].nunique() > 1).any()
    if not (within_team and within_period):
        where = "within any team" if not within_team else "within any period"
        raise NoTreatmentVariationError(
            f"Treatment {treatment!r} does not vary {where}, so the "
            f"{'team' if not within_team else 'period'} fixed effects absorb it: its weights are not defined."
        )
    args = dict(Y=outcome, G=entity, T=time, D=treatment)
    if kind == "fdTR":
        if first_differences is None:
            frame["__dY"] = _first_difference(frame, entity, time, outcome)
            frame["__dD"] = _first_difference(frame, entity, time, treatment)
            dy, dd = "__dY", "__dD"
        else:
            dy, dd = first_differences
        args = dict(Y=dy, G=entity, T=time, D=dd, D0=treatment)
        core = frame[[dy, dd]].notna().all(axis=1)
        keep = core | frame[treatment].notna()
        if controls:
            keep &= ~(core & frame[controls].isna().any(axis=1))
        reason = f"a missing {treatment!r} or control"
    else:
        keep = frame[[outcome, treatment, *controls]].notna().all(axis=1)
        reason = f"NaN in {[outcome, treatment, *controls]}"
    if not keep.all():
        warnings.warn(f"Dropped {int((~keep).sum())} of {len(keep)} rows with {reason}.", DataWarning, stacklevel=2)

    from twowayfeweights import twowayfeweights as _twfw

    res = _twfw(
        frame, type=kind, controls=controls or None, test_random_weights=rw or None, summary_measures=True, **args
    )
    if res.mat is not None and len(res.mat):
        table = res.mat.rename(
            columns={"Coef": "coef", "SE": "std_error", "t-stat": "tstat", "Correlation": "correlation"}
        )
    else:
        table = pd.DataFrame(columns=["coef", "std_error", "tstat", "correlation"], dtype=float)
    assert res.weights is not None  # twowayfeweights() always fills the per-cell weights
    weights = res.weights.rename(columns={"Group_TWFE": entity, "Time_TWFE": time}).reset_index(drop=True)
    return TWFEWeights(
        kind=kind,
        treatment=treatment,
        beta=float(res.beta),
        n_positive=int(res.nr_plus),
        n_negative=int(res.nr_minus),
        sum_positive=float(res.sum_plus),
        sum_negative=float(res.sum_minus),
        n_treated_cells=int(res.tot_cells),
        sigma_fe=None if res.sensibility is None else float(res.sensibility),
        sigma_fe_opposite=None if res.sensibility2 is None else float(res.sensibility2),
        random_weights=table,
        weights=weights,
    )
