r"""Engineering-years and money saved by a rollout, with intervals carried through from the estimate.

The formula
-----------
The outcome :math:`y_{it}` is a rate per developer-week (``cr_velocity``: CRs merged per developer-week,
``deploys_per_builder``: deployments per developer-week). In the dynamic model
:math:`y_{it} = \beta y_{i,t-1} + \gamma s_{it} + \dots` the adoption share :math:`s` adds to team
:math:`i`'s week-:math:`t` rate

.. math:: E_{it}(\beta, \gamma) = \gamma \sum_{k=0}^{t - t_{i0}} \beta^k s_{i,t-k},

the short-run effect of this week's share plus what persists of earlier weeks' (weeks before the team's first
observed week, and weeks missing from the data, count as share 0: the rollout is taken to start inside the
data, and a gap contributes nothing, both of which understate the savings). Over the developer-weeks
:math:`d_{it}` of the data the output due to adoption is :math:`X = \sum_{it} E_{it} d_{it}` (in CRs or
deployments) out of an observed output :math:`Y = \sum_{it} y_{it} d_{it}`. Without adoption the same output
would have needed :math:`Y / (Y - X)` times the developer time, so at constant output adoption saved the share
:math:`X / Y` of the developer time used:

.. math::

    \text{engineering-years} = \frac{X}{Y} \cdot \frac{\sum_{it} d_{it}}{\text{weeks per year}}, \qquad
    \text{money} = \frac{X}{Y} \cdot C, \qquad
    \Delta\,\text{CTS-SW} = \frac{1}{1 + p} - 1 = -\frac{X}{Y}, \quad p = \frac{X}{Y - X},

where :math:`C` is the developer cost of the data (the ``dev_cost`` column summed, or
``cost_per_developer_week`` times the developer-weeks) and :math:`p` the throughput change. These are
:func:`causalcts.metrics.capacity_saved` with ``throughput_change = p``; CTS-SW here is developer cost per
unit of the outcome's numerator (per CR merged for ``cr_velocity``, per deployment for
``deploys_per_builder``: the article's CTS-SW).

The assumption
--------------
The savings convert a velocity gain into a lower cost per unit shipped. That holds when the outcome counts
the unit CTS-SW is measured in (``deploys_per_builder`` for CTS-SW per deployment) and developer cost did
not change with adoption; it is an *assumption*, not an estimate, and :func:`assumption` states it beside
every savings number. With CTS-SW per deployment, a gain in ``cr_velocity`` lowers CTS-SW only if the extra
CRs reach customers as deployments, which the data may contradict; the workflow therefore takes the savings
from ``deploys_per_builder`` when it is an outcome (:attr:`causalcts.workflows.spec.RolloutSpec.savings_from`).

When a CTS-SW outcome (``log_cts`` or ``cts_sw``) is estimated as well, :func:`direct_cts_change` carries its
fit through the same exposure sums into the CTS-SW change over the data (for ``log_cts``
:math:`\exp(\gamma \sum_k \beta^k S_k / \sum_{it} d_{it}) - 1`, for ``cts_sw`` :math:`X / Y` of its own
output, both weighting team-weeks by developers); :func:`compare` flags (verdict ``"warn"``) an implied
change outside the direct estimate's interval.

Intervals
---------
Every quantity is a function of :math:`(\beta, \gamma)`. Its interval comes from draws of these parameters,
not from plugging in the point estimate: for a frequentist fit, draws from
:math:`N((\hat\beta, \hat\gamma), \hat V)` with the fit's covariance (a parametric bootstrap of the
estimate's sampling distribution); for a Bayesian fit, the posterior draws themselves. The reported estimate
is the value at the point estimate (frequentist) or the posterior mean (Bayesian); the interval holds the
central ``level`` share of the draws.

Because :math:`E` is a polynomial in :math:`\beta` with coefficients that depend only on the data,
:math:`X(\beta, \gamma) = \gamma \sum_k \beta^k S_k` with :math:`S_k = \sum_{it} d_{it} s_{i,t-k}`; the
:math:`S_k` are computed once and every draw costs one polynomial evaluation.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from causalcts.errors import CausalCTSError, MissingColumnError

__all__ = [
    "CTS_OUTCOMES",
    "NOT_PER_DEVELOPER",
    "SavingsInputs",
    "assumption",
    "compare",
    "describe",
    "direct_cts_change",
    "exposure_sums",
    "parameter_draws",
    "savings",
    "unavailable",
]

#: Outcomes that are not rates per developer-week, so the savings formula does not apply to them.
NOT_PER_DEVELOPER = ("cts_sw", "log_cts", "rollback_rate", "interventions_per_deploy", "pages_per_oncall")


#: Outcomes that measure CTS-SW directly (their fit can be set beside the implied change).
CTS_OUTCOMES = ("log_cts", "cts_sw")

#: The velocity outcome counted in each CTS-SW unit.
_VELOCITY = {"deployments": "deploys_per_builder", "crs_merged": "cr_velocity"}


def assumption(outcome: str, cts_unit: str = "deployments") -> str:
    """The assumption that turns the effect on ``outcome`` into savings and a CTS-SW change, in one sentence.

    Examples
    --------
    >>> from causalcts.workflows.savings import assumption
    >>> assumption("deploys_per_builder").startswith("Assumes developer cost did not change with adoption")
    True
    >>> "not tested" in assumption("cr_velocity")
    True
    """
    unit = {"deployments": "deployment", "crs_merged": "CR merged"}.get(cts_unit, f"unit of {cts_unit!r}")
    base = (
        "Assumes developer cost did not change with adoption and that the extra output due to adoption is valued "
        "at the cost of the developer time it would otherwise need"
    )
    if _VELOCITY.get(cts_unit) == outcome:
        return f"{base}; {outcome} counts the unit CTS-SW is per ({unit}), so CTS-SW falls by the output share."
    return (
        f"{base}, and that more {outcome} means proportionally more software shipped: CTS-SW is per {unit}, "
        f"which {outcome} does not count, so the CTS-SW change is implied, not tested"
        + (f" (estimate {_VELOCITY[cts_unit]} to test it)." if cts_unit in _VELOCITY else ".")
    )


@dataclass(frozen=True)
class SavingsInputs:
    """The data side of the savings: the lag sums :math:`S_k`, the observed output :math:`Y`, developer-weeks
    and the developer cost (None when neither ``dev_cost`` nor a cost per developer-week is known)."""

    lag_sums: np.ndarray
    observed_output: float
    developer_weeks: float
    cost: float | None
    cost_source: str


def exposure_sums(
    frame: pd.DataFrame,
    *,
    entity: str,
    time: str,
    share: str,
    outcome: str,
    developers: str,
    cost_per_developer_week: float | None = None,
    cost_column: str = "dev_cost",
) -> SavingsInputs:
    """Lag sums :math:`S_k = \\sum_{it} d_{it} s_{i,t-k}`, output and developer-weeks of a panel (module docstring).

    ``time`` must hold whole periods (as :func:`causalcts.workflows.spec.load_data` gives). Rows with a missing
    outcome or developer count are left out of :math:`Y`, :math:`S_k` and the developer-weeks; a missing share
    counts as 0. The frame is not modified.

    Examples
    --------
    >>> import pandas as pd
    >>> from causalcts.workflows.savings import exposure_sums
    >>> f = pd.DataFrame({"team": [1, 1, 1], "week": [0, 1, 2], "s": [0.0, 0.5, 1.0],
    ...                   "y": [1.0, 1.0, 1.0], "developers": [2, 2, 2]})
    >>> ins = exposure_sums(f, entity="team", time="week", share="s", outcome="y", developers="developers")
    >>> ins.lag_sums.tolist(), ins.observed_output, ins.developer_weeks
    ([3.0, 1.0, 0.0], 6.0, 6.0)
    """
    for c in (entity, time, share, outcome, developers):
        if c not in frame.columns:
            raise MissingColumnError(f"The savings need the column {c!r}; columns are {list(frame.columns)}.")
    teams, team_code = np.unique(frame[entity].to_numpy(), return_inverse=True)
    period = pd.to_numeric(frame[time]).to_numpy()
    if np.any(period != np.round(period)):
        raise CausalCTSError(f"The savings need whole periods in {time!r}.")
    period = (period - period.min()).astype(np.int64)
    n_t = int(period.max()) + 1
    dev = pd.to_numeric(frame[developers], errors="coerce").to_numpy(dtype=float)
    y = pd.to_numeric(frame[outcome], errors="coerce").to_numpy(dtype=float)
    s = np.nan_to_num(pd.to_numeric(frame[share], errors="coerce").to_numpy(dtype=float))
    used = np.isfinite(dev) & np.isfinite(y)
    D = np.zeros((len(teams), n_t))
    A = np.zeros((len(teams), n_t))
    D[team_code[used], period[used]] = dev[used]
    A[team_code, period] = s
    lag_sums = np.array([np.sum(D[:, k:] * A[:, : n_t - k]) for k in range(n_t)])
    cost, source = (
        None,
        (
            f"unknown: give cost_per_developer_week in the spec, or a {cost_column!r} column (or name the cost "
            "column with the spec's cost_column)"
        ),
    )
    if cost_per_developer_week is not None:
        cost, source = float(cost_per_developer_week) * float(dev[used].sum()), "cost_per_developer_week of the spec"
    elif cost_column in frame.columns:
        c = pd.to_numeric(frame[cost_column], errors="coerce").to_numpy(dtype=float)
        if np.isfinite(c[used]).all():
            cost, source = float(c[used].sum()), f"the {cost_column!r} column summed over the team-weeks used"
    return SavingsInputs(
        lag_sums=lag_sums,
        observed_output=float(np.sum(y[used] * dev[used])),
        developer_weeks=float(dev[used].sum()),
        cost=cost,
        cost_source=source,
    )


def parameter_draws(result, persistence: str, effect: str, *, n: int, seed: int) -> tuple[np.ndarray, np.ndarray, str]:
    """Draws of (persistence, effect): posterior draws of a Bayesian fit, else ``n`` draws from N(estimate, cov).

    Returns the two arrays and a sentence saying where they come from.

    Examples
    --------
    >>> import causalcts
    >>> from causalcts.workflows.savings import parameter_draws
    >>> sim = causalcts.simulate(n_teams=60, n_weeks=10, seed=2)
    >>> res = causalcts.fit("cr_velocity ~ L(cr_velocity, 1) + ai_share", sim.data, method="within")
    >>> b, g, how = parameter_draws(res, "L1.cr_velocity", "ai_share", n=500, seed=1)
    >>> b.shape, how.startswith("500 draws from the normal")
    ((500,), True)
    """
    idata = getattr(result, "idata", None)
    post = getattr(idata, "posterior", None) if idata is not None else None
    if post is not None and "beta" in post and "term" in post["beta"].dims:
        beta = post["beta"]
        b = beta.sel(term=persistence).values.ravel()
        g = beta.sel(term=effect).values.ravel()
        return b, g, f"{b.size} posterior draws of the Bayesian fit"
    names = [persistence, effect]
    mean = result.params[names].to_numpy(dtype=float)
    cov = result.cov.loc[names, names].to_numpy(dtype=float)
    rng = np.random.default_rng(seed)
    draws = rng.multivariate_normal(mean, cov, size=n, method="eigh")
    return draws[:, 0], draws[:, 1], f"{n} draws from the normal distribution of the estimates (estimate, covariance)"


def _interval(point: float, draws: np.ndarray, level: float) -> dict[str, float]:
    lo, hi = np.quantile(draws, [(1 - level) / 2, 1 - (1 - level) / 2])
    return {"estimate": float(point), "lower": float(lo), "upper": float(hi)}


def _share_saved(inputs: SavingsInputs, b: np.ndarray, g: np.ndarray) -> np.ndarray:
    """X / Y for each (beta, gamma): the share of the observed output due to adoption."""
    powers = np.power.outer(np.asarray(b, dtype=float), np.arange(inputs.lag_sums.size))
    return np.asarray(g, dtype=float) * (powers @ inputs.lag_sums) / inputs.observed_output


def savings(
    inputs: SavingsInputs,
    *,
    persistence: float,
    effect: float,
    persistence_draws: np.ndarray,
    effect_draws: np.ndarray,
    weeks_per_year: float = 52.0,
    level: float = 0.95,
    bayesian: bool = False,
) -> dict[str, Any]:
    """Savings of a rollout (module docstring) at the estimate, with intervals from the parameter draws.

    Parameters
    ----------
    inputs
        :func:`exposure_sums` of the data.
    persistence, effect
        Point estimates of beta (the outcome's lag) and gamma (the share's coefficient).
    persistence_draws, effect_draws
        Paired draws of beta and gamma (:func:`parameter_draws`).
    weeks_per_year
        Working weeks in an engineering-year.
    level
        Level of the intervals.
    bayesian
        True when the draws are posterior draws: the estimate is then their mean, not the plug-in.

    Returns
    -------
    dict
        ``share_of_output``, ``throughput_change``, ``cts_change``, ``engineering_years`` and ``money`` (None
        values when the cost is unknown), each with ``estimate``, ``lower`` and ``upper``; ``developer_weeks``,
        ``observed_output``, ``cost``, ``cost_source``, ``level``, ``n_draws``.

    Examples
    --------
    >>> import numpy as np
    >>> from causalcts.metrics import capacity_saved
    >>> from causalcts.workflows.savings import SavingsInputs, savings
    >>> ins = SavingsInputs(np.array([100.0, 90.0, 80.0]), observed_output=1500.0, developer_weeks=1040.0,
    ...                     cost=4_160_000.0, cost_source="example")
    >>> rng = np.random.default_rng(0)
    >>> out = savings(ins, persistence=0.5, effect=0.1, persistence_draws=rng.normal(0.5, 0.02, 1000),
    ...               effect_draws=rng.normal(0.1, 0.01, 1000))
    >>> round(out["share_of_output"]["estimate"], 4)   # 0.1 * (100 + 0.5 * 90 + 0.25 * 80) / 1500
    0.011
    >>> p = out["throughput_change"]["estimate"]
    >>> ref = capacity_saved(developer_weeks=1040.0, dev_cost=4_160_000.0, throughput_change=p)
    >>> bool(np.isclose(out["engineering_years"]["estimate"], ref.engineering_years))
    True
    """
    if inputs.observed_output <= 0:
        raise CausalCTSError("The observed output is zero: no savings can be expressed as a share of it.")
    b = np.asarray(persistence_draws, dtype=float)
    g = np.asarray(effect_draws, dtype=float)
    share_draws = _share_saved(inputs, b, g)
    point = (
        float(share_draws.mean())
        if bayesian
        else float(_share_saved(inputs, np.array([persistence]), np.array([effect]))[0])
    )
    share_draws = share_draws[np.isfinite(share_draws)]
    years = inputs.developer_weeks / weeks_per_year

    def through(x):
        return x / (1 - x)

    draws_ok = share_draws < 1  # a share of 1 or more would mean no output without adoption
    out: dict[str, Any] = {
        "share_of_output": _interval(point, share_draws, level),
        "throughput_change": _interval(through(point), through(share_draws[draws_ok]), level),
        "cts_change": _interval(-point, -share_draws, level),
        "engineering_years": _interval(point * years, share_draws * years, level),
        "money": (
            _interval(point * inputs.cost, share_draws * inputs.cost, level)
            if inputs.cost is not None
            else {"estimate": None, "lower": None, "upper": None}
        ),
        "developer_weeks": inputs.developer_weeks,
        "engineering_years_used": years,
        "observed_output": inputs.observed_output,
        "cost": inputs.cost,
        "cost_source": inputs.cost_source,
        "weeks_per_year": float(weeks_per_year),
        "level": float(level),
        "n_draws": int(share_draws.size),
        "available": True,
    }
    # the CTS-SW change interval: -share; lower and upper swap under the sign change
    c = out["cts_change"]
    c["lower"], c["upper"] = min(c["lower"], c["upper"]), max(c["lower"], c["upper"])
    return out


def direct_cts_change(
    inputs: SavingsInputs,
    outcome: str,
    *,
    persistence: float,
    effect: float,
    persistence_draws: np.ndarray,
    effect_draws: np.ndarray,
    level: float = 0.95,
    bayesian: bool = False,
) -> dict[str, float]:
    """The relative CTS-SW change over the data from a fit of a CTS-SW outcome (module docstring).

    ``inputs`` are :func:`exposure_sums` with ``outcome`` (``log_cts`` or ``cts_sw``) as the outcome; the
    parameters are that fit's lag and share coefficients. Returns ``estimate``, ``lower``, ``upper``.

    Examples
    --------
    >>> import numpy as np
    >>> from causalcts.workflows.savings import SavingsInputs, direct_cts_change
    >>> ins = SavingsInputs(np.array([50.0, 0.0]), observed_output=800.0, developer_weeks=100.0, cost=None,
    ...                     cost_source="")
    >>> out = direct_cts_change(ins, "log_cts", persistence=0.0, effect=0.1, persistence_draws=np.zeros(3),
    ...                         effect_draws=np.full(3, 0.1))
    >>> round(out["estimate"], 6) == round(float(np.exp(0.1 * 50 / 100) - 1), 6)
    True
    """
    if outcome not in CTS_OUTCOMES:
        raise CausalCTSError(f"direct_cts_change needs a CTS-SW outcome {CTS_OUTCOMES}, not {outcome!r}.")
    if inputs.developer_weeks <= 0 or (outcome == "cts_sw" and inputs.observed_output <= 0):
        raise CausalCTSError(f"No developer-weeks or no observed {outcome!r}: the CTS-SW change is undefined.")

    def change(b: np.ndarray, g: np.ndarray) -> np.ndarray:
        powers = np.power.outer(np.asarray(b, dtype=float), np.arange(inputs.lag_sums.size))
        x = np.asarray(g, dtype=float) * (powers @ inputs.lag_sums)
        return np.exp(x / inputs.developer_weeks) - 1 if outcome == "log_cts" else x / inputs.observed_output

    draws = change(persistence_draws, effect_draws)
    point = float(draws.mean()) if bayesian else float(change(np.array([persistence]), np.array([effect]))[0])
    return _interval(point, draws[np.isfinite(draws)], level)


def compare(implied: Mapping[str, Any], direct: Mapping[str, Any], outcome: str, method: str) -> dict[str, Any]:
    """Set the implied CTS-SW change beside the direct one; verdict ``"warn"`` when it lies outside the interval.

    Examples
    --------
    >>> from causalcts.workflows.savings import compare
    >>> row = compare({"estimate": -0.06}, {"estimate": 0.01, "lower": -0.02, "upper": 0.04}, "log_cts", "FE")
    >>> row["verdict"], row["implied_inside"]
    ('warn', False)
    """
    lo, hi, est = direct["lower"], direct["upper"], implied["estimate"]
    inside = bool(lo <= est <= hi)
    note = (
        f"the implied CTS-SW change {100 * est:+.1f}% lies "
        + ("inside" if inside else "outside")
        + f" the direct estimate's interval ({100 * lo:+.1f}% to {100 * hi:+.1f}%) from the {outcome} fit"
        + ("" if inside else ": the data do not support the savings' assumption; read them with caution")
    )
    return {
        "outcome": outcome,
        "method": method,
        "estimate": direct["estimate"],
        "lower": lo,
        "upper": hi,
        "implied_inside": inside,
        "verdict": "pass" if inside else "warn",
        "note": note,
    }


def unavailable(reason: str) -> dict[str, Any]:
    """The savings block when the savings cannot be computed (every number None, and the reason)."""
    empty = {"estimate": None, "lower": None, "upper": None}
    keys = ("share_of_output", "throughput_change", "cts_change", "engineering_years", "money")
    return {**{k: dict(empty) for k in keys}, "available": False, "reason": reason}


def describe(block: Mapping[str, Any]) -> str:
    """One paragraph for the report: the engineering-years and money saved with their intervals, the implied
    CTS-SW change, the outcome they rest on and the assumption, and the direct CTS-SW estimate when there is one."""
    if not block.get("available", True):
        return f"Savings not computed: {block['reason']}"
    ey, m = block["engineering_years"], block["money"]
    pct = int(round(100 * block["level"]))
    basis = block.get("basis")
    text = (
        f"Adoption saved {ey['estimate']:.1f} engineering-years ({pct}% interval {ey['lower']:.1f} to "
        f"{ey['upper']:.1f}) of the {block['engineering_years_used']:.1f} used"
    )
    if m["estimate"] is not None:
        text += f", worth {m['estimate']:,.0f} ({m['lower']:,.0f} to {m['upper']:,.0f})"
    c = block["cts_change"]
    text += (
        f"; implied CTS-SW change {100 * c['estimate']:+.1f}% ({100 * c['lower']:+.1f}% to "
        f"{100 * c['upper']:+.1f}%)" + (f", computed from the effect on {basis}." if basis else ".")
    )
    if block.get("assumption"):
        text += f" {block['assumption']}"
    d = block.get("direct")
    if d:
        text += (
            f" Direct estimate from the {d['outcome']} fit: CTS-SW changed by {100 * d['estimate']:+.1f}% "
            f"({100 * d['lower']:+.1f}% to {100 * d['upper']:+.1f}%)"
            + (
                "; the implied change lies inside it."
                if d["implied_inside"]
                else "; WARNING: the implied change lies outside it, so the data contradict the assumption."
            )
        )
    return text
