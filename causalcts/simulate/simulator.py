r"""Simulated team-week telemetry with known truth.

The data-generating process
---------------------------
For team :math:`i`, week :math:`t` and each outcome :math:`o` (``cr_velocity``, CRs merged per
developer-week, and ``deploys_per_builder``, deployments per builder-week):

.. math::

    y^o_{it} = a^o_i + \lambda^o_t + \beta_o\, y^o_{i,t-1} + \gamma^o_i\, E_{it}
               + \delta^o_{rb}\, r_{it} + \delta^o_{iv}\, v_{it} + \sigma_o\, \varepsilon_{it}

* :math:`a^o_i \sim N(\cdot, \text{team\_sd}^2)`, centred so that the stationary mean without
  adoption is ``baseline[o]``; the two outcomes' team effects correlate at 0.5.
* :math:`\lambda^o_t \sim N(0, \text{week\_sd}^2)`: week shocks common to all teams.
* :math:`E_{it}` is the adoption exposure: the observed ``ai_share`` :math:`A_{it}` itself when
  ``effect_buildup`` is 1, else its exponential smoothing
  :math:`E_{it} = E_{i,t-1} + (A_{it} - E_{i,t-1}) / \text{effect\_buildup}`.
* :math:`\gamma^o_i = \gamma^o + \text{effect\_sd}\cdot \eta_i + \text{cohort\_effect}\,(1 - 2 u_i)`
  (team-varying effects). :math:`u_i \sim U(0, 1)` is the team's place in the rollout window (its start
  is at that fraction of the window; with ``selection`` the start also moves with :math:`a_i`), so with
  ``cohort_effect`` > 0 the earliest adopters gain :math:`\gamma + \text{cohort\_effect}`, the latest
  :math:`\gamma - \text{cohort\_effect}` (< 0: early adopters gain less). Both terms have mean 0 over
  teams, so the ATE over teams is :math:`\gamma` (``Truth.effect``); the effect a regression estimates
  weights teams by their exposure (``Truth.exposure_weighted_effect``) and differs from it when the
  effect is tied to the adoption cohort.
* The team-week change-failure probability :math:`p_{it}` (``rollback_rate_latent``), DORA's 5 to 40
  percent, is a team level plus ``mediation`` times :math:`A_{it}` (adoption moves it: a mediator) plus
  noise, clipped to [0, 1]; the intervention rate per deployment :math:`\nu_{it}`
  (``interventions_per_deploy_latent``) is exogenous. Rollbacks are
  :math:`\mathrm{Binomial}(\text{deployments}_{it}, p_{it})` and interventions
  :math:`\mathrm{Poisson}(\text{deployments}_{it}\,\nu_{it})`.
* Every column a user could compute from the counts is exactly that computation (what
  :func:`causalcts.metrics.add_metrics` gives): ``cr_velocity = crs_merged / developers``,
  ``deploys_per_builder = deployments / developers``, ``rollback_rate = rollbacks / deployments``,
  ``interventions_per_deploy = interventions / deployments``, ``pages_per_oncall``, ``log_cts``.
  The covariates :math:`r_{it}, v_{it}` of the ``cr_velocity`` equation are these observed rates.
  The week's deployments are the denominators of those rates, so the ``deploys_per_builder``
  equation (drawn first) uses the latent rates :math:`p_{it}, \nu_{it}` instead; in that equation an
  observed rate is a noisy measure of the true covariate. Every team deploys at least once a week.
* Counts: the equation gives the expected rate; the week's count is that rate times developers,
  rounded (``"gaussian"``) or Poisson (``"count"``), and the observed rate (count / developers) is the
  outcome and the next week's lag. The lag in the equation is therefore the observed column and the
  conditional mean stays linear, so the truth is what a regression on the data estimates.
* Adoption: each team's rollout starts at a staggered week :math:`s_i`; the latent share follows
  an S-curve :math:`c_i\,\mathrm{logistic}(k_i (t - s_i) + \phi\, z_{i,t-1})` that plateaus at the
  ceiling :math:`c_i` and can fall (``adoption_decline``). :math:`z_{i,t-1}` is the team's
  standardised past outcome (``feedback`` :math:`\phi`); with ``selection`` > 0 teams with larger
  :math:`a_i` adopt earlier and more fully. The observed share is
  :math:`\mathrm{Binomial}(\text{developers}_{it}, \cdot) / \text{developers}_{it}`.
* ``outcome_model="gaussian"``: :math:`\varepsilon_{it} \sim N(0,1)` and ``y`` is the right-hand side
  rounded to whole counts (rounding noise below ``1 / (2 developers)``, about 0.04 for 7 developers).
  ``"count"``: the right-hand side with :math:`\varepsilon` is a rate :math:`m_{it}`
  (floored at 0.001) and ``y`` is ``Poisson(developers * m) / developers`` — the conditional mean
  is still the linear equation, so the truth is unchanged; the noise is count noise.
* CTS-SW: :math:`\log \mathrm{CTS}_{it} = c_0 + b_{0i} + (b_{vel} + b_{1i})\,\text{cr\_velocity}_{it}
  + b_{rb} r_{it} + b_{iv} v_{it} + b_{pg}\,\text{pages\_per\_oncall}_{it} + 0.1\,\epsilon_{it}`
  with correlated team intercepts and slopes, drawn after the counts, so its drivers are the observed
  columns; ``dev_cost`` is then ``CTS * deployments``.

Calibration of the defaults (public figures)
--------------------------------------------
* About 1 to 2 PRs merged per developer-week: ``baseline["cr_velocity"] = 1.5``.
* Full adoption raising throughput by about 5 to 25 percent: Cui et al. (2024, field experiments
  at Microsoft, Accenture and a Fortune-100 firm) report +26 percent completed pull requests per
  week; Peng et al. (2023) a lab task finished 55.8 percent faster. The default short-run effect
  0.10 CRs per developer-week with persistence 0.5 gives a long-run effect of 0.20, 13 percent of
  the baseline.
* Change failure rates of 5 to 40 percent (DORA, State of DevOps reports): team rollback rates
  are drawn in that range.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from types import MappingProxyType
from typing import Literal

import numpy as np
import pandas as pd

from causalcts.data.panel import Panel
from causalcts.errors import CausalCTSError, check_option

__all__ = ["OUTCOMES", "Simulation", "SimulationDesign", "Truth", "simulate"]

#: The two outcomes of the dynamic panel model.
OUTCOMES: tuple[str, ...] = ("cr_velocity", "deploys_per_builder")

_DEFAULT_EFFECT = {"cr_velocity": 0.10, "deploys_per_builder": 0.06}
_DEFAULT_BASELINE = {"cr_velocity": 1.5, "deploys_per_builder": 1.0}
_DEFAULT_COVARIATES = {"rollback_rate": -0.5, "interventions_per_deploy": -0.2}
_DEFAULT_CTS = {
    "cr_velocity": -0.35,
    "rollback_rate": 0.8,
    "interventions_per_deploy": 0.3,
    "pages_per_oncall": -0.05,
}


def _per_outcome(value: float | dict[str, float], name: str) -> dict[str, float]:
    if isinstance(value, dict):
        unknown = set(value) - set(OUTCOMES)
        if unknown:
            raise CausalCTSError(f"{name} names unknown outcome(s) {sorted(unknown)}; outcomes are {list(OUTCOMES)}.")
        missing = set(OUTCOMES) - set(value)
        if missing:
            raise CausalCTSError(f"{name} must give a value for every outcome; missing {sorted(missing)}.")
        return {o: float(value[o]) for o in OUTCOMES}
    return {o: float(value) for o in OUTCOMES}


@dataclass(frozen=True)
class SimulationDesign:
    """Every knob of :func:`simulate`; see its docstring. Stored on the result for reproducibility."""

    n_teams: int = 200
    n_weeks: int = 52
    persistence: dict[str, float] = field(default_factory=lambda: {o: 0.5 for o in OUTCOMES})
    effect: dict[str, float] = field(default_factory=lambda: dict(_DEFAULT_EFFECT))
    effect_sd: float = 0.0
    cohort_effect: float = 0.0
    effect_buildup: float = 1.0
    baseline: dict[str, float] = field(default_factory=lambda: dict(_DEFAULT_BASELINE))
    team_sd: float = 0.1
    noise_sd: float = 0.2
    week_sd: float = 0.05
    covariate_effects: dict[str, float] = field(default_factory=lambda: dict(_DEFAULT_COVARIATES))
    rollout_window: tuple[float, float] = (0.1, 0.7)
    adoption_speed: float = 0.3
    adoption_ceiling: float = 0.8
    adoption_decline: float = 0.0
    selection: float = 0.0
    feedback: float = 0.0
    mediation: float = 0.0
    outcome_model: Literal["gaussian", "count"] = "gaussian"
    missing_weeks: float = 0.0
    unbalanced: float = 0.0
    cts_drivers: dict[str, float] = field(default_factory=lambda: dict(_DEFAULT_CTS))
    burn_in: int = 50
    seed: int | None = None
    seed_entropy: int | None = None
    """The integer seed of the run: ``seed`` itself, or the fresh entropy drawn when ``seed`` was None
    (None only when a Generator was passed)."""

    def to_dict(self) -> dict:
        d = asdict(self)
        d["rollout_window"] = list(self.rollout_window)
        return d


def _freeze(value: object) -> object:
    """A read-only copy: mappings become MappingProxyType, arrays non-writeable copies, lists tuples."""
    if isinstance(value, Mapping):
        return MappingProxyType({k: _freeze(v) for k, v in value.items()})
    if isinstance(value, np.ndarray):
        arr = value.copy()
        arr.setflags(write=False)
        return arr
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    return value


def _unproxy(value: object) -> object:
    """A picklable copy of a frozen value: read-only mappings become dicts; tuples and arrays stay as they are."""
    if isinstance(value, Mapping):
        return {k: _unproxy(v) for k, v in value.items()}
    if type(value) is tuple:
        return tuple(_unproxy(v) for v in value)
    return value


def _thaw(value: object) -> object:
    """Plain JSON-ready copy of a frozen value."""
    if isinstance(value, Mapping):
        return {k: _thaw(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, tuple):
        return [_thaw(v) for v in value]
    return value


@dataclass(frozen=True)
class Truth:
    """The true parameters behind a simulated panel (never seen by an estimator).

    Read-only all the way down: the attributes cannot be set, the dicts are
    :class:`types.MappingProxyType` views that refuse assignment, and :attr:`teams` returns a
    fresh copy each time, so changing it never changes the truth.
    """

    persistence: dict[str, float]
    """beta of each outcome."""
    effect: dict[str, float]
    """Mean short-run effect gamma of ``ai_share`` on each outcome (the direct effect): the ATE over teams,
    E[gamma_i], of the population the teams are drawn from."""
    long_run_effect: dict[str, float]
    """gamma / (1 - beta) of each outcome."""
    total_effect: dict[str, float]
    """Short-run effect including the path through the mediator: gamma + delta_rb * mediation."""
    team_sd: float
    """SD of the team effects a_i in the outcome equations."""
    effect_sd: float
    """SD of the team-specific effects gamma_i around gamma."""
    cohort_effect: float
    """How much more the earliest adopters gain than gamma (the latest gain as much less); 0: none."""
    team_average_effect: dict[str, float]
    """The ATE over this panel's teams: the mean of gamma_i over the simulated teams (``effect`` is its
    expectation)."""
    exposure_weighted_effect: dict[str, float]
    """The average of gamma_i that a two-way (team and week) fixed-effects regression of the outcome on the
    exposure E_it targets in this panel: sum_it w_it gamma_i with w_it = e_it E_it / sum_it e_it E_it, where
    e_it is E_it net of team and week means over the observed team-weeks (de Chaisemartin and
    D'Haultfoeuille 2020). Teams with more variation in exposure (early, steep adopters) weigh more, so it
    differs from the ATE over teams when the effect is tied to the adoption cohort (``cohort_effect``); it
    equals ``effect`` when effects are homogeneous. With a lagged outcome in the regression it is the
    static regression's weighting, an approximation."""
    noise_sd: float
    covariate_effects: dict[str, float]
    """Coefficients of the rollback and intervention rates in both outcome equations: of the observed
    ``rollback_rate`` and ``interventions_per_deploy`` in the ``cr_velocity`` equation, of the latent
    ``rollback_rate_latent`` and ``interventions_per_deploy_latent`` in the ``deploys_per_builder`` one."""
    mediation: float
    """Effect of ``ai_share`` on ``rollback_rate``."""
    cts_drivers: dict[str, float]
    """Coefficients of the drivers (observed columns) in the log CTS-SW equation."""
    cts_team_sd: dict[str, float]
    """SDs of the team intercepts and cr_velocity slopes in log CTS-SW, and their correlation."""
    _teams: pd.DataFrame = field(repr=False)

    def __post_init__(self) -> None:
        for f in fields(self):
            if f.name != "_teams":
                object.__setattr__(self, f.name, _freeze(getattr(self, f.name)))
        object.__setattr__(self, "_teams", self._teams.copy(deep=True))

    # pickle and deepcopy (multiprocessing, joblib): the read-only mappings travel as dicts and are frozen again
    def __getstate__(self) -> dict[str, object]:
        return {k: _unproxy(v) for k, v in self.__dict__.items()}

    def __setstate__(self, state: dict[str, object]) -> None:
        for k, v in state.items():
            object.__setattr__(self, k, v)
        self.__post_init__()

    @property
    def teams(self) -> pd.DataFrame:
        """Per team: the team effects a_i of each outcome, gamma_i, rollout start, CTS-SW team effects.

        A new copy on every access.
        """
        return self._teams.copy(deep=True)

    def to_dict(self) -> dict:
        """Every parameter but ``teams`` as plain, JSON-ready dicts and numbers."""
        return {f.name: _thaw(getattr(self, f.name)) for f in fields(self) if f.name != "_teams"}


@dataclass(frozen=True)
class Simulation:
    """A simulated panel: ``data`` in the telemetry schema, the ``truth`` and the ``design``."""

    data: pd.DataFrame
    truth: Truth
    design: SimulationDesign

    @property
    def seed(self) -> int | None:
        """The integer seed that reproduces this run (``design.seed_entropy``)."""
        return self.design.seed_entropy

    def panel(self) -> Panel:
        """The data as a validated :class:`~causalcts.Panel` (entity ``team``, time ``week``)."""
        return Panel(self.data, entity="team", time="week")

    def save(self, path: str | Path) -> Path:
        """Write ``data`` as Parquet and the truth and design as JSON beside it (``<stem>.truth.json``)."""
        path = Path(path)
        self.data.to_parquet(path, index=False)
        meta = {"truth": self.truth.to_dict(), "design": self.design.to_dict()}
        path.with_suffix(".truth.json").write_text(json.dumps(meta, indent=2))
        return path


def _logistic(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def simulate(
    n_teams: int = 200,
    n_weeks: int = 52,
    *,
    persistence: float | dict[str, float] = 0.5,
    effect: float | dict[str, float] | None = None,
    effect_sd: float = 0.0,
    cohort_effect: float = 0.0,
    effect_buildup: float = 1.0,
    baseline: dict[str, float] | None = None,
    team_sd: float = 0.1,
    noise_sd: float = 0.2,
    week_sd: float = 0.05,
    covariate_effects: dict[str, float] | None = None,
    rollout_window: tuple[float, float] = (0.1, 0.7),
    adoption_speed: float = 0.3,
    adoption_ceiling: float = 0.8,
    adoption_decline: float = 0.0,
    selection: float = 0.0,
    feedback: float = 0.0,
    mediation: float = 0.0,
    outcome_model: Literal["gaussian", "count"] = "gaussian",
    missing_weeks: float = 0.0,
    unbalanced: float = 0.0,
    cts_drivers: dict[str, float] | None = None,
    burn_in: int = 50,
    seed: int | np.random.Generator | None = None,
) -> Simulation:
    """Simulate weekly team telemetry with a known AI-adoption effect.

    The model and the calibration of the defaults are in this module's docstring
    (``help(causalcts.simulate)``).

    Parameters
    ----------
    n_teams, n_weeks
        Panel size (before any missing weeks or late entry).
    persistence
        beta, for both outcomes or as ``{outcome: beta}``; must lie in [0, 1).
    effect
        Mean short-run effect gamma of ``ai_share`` (0 gives a null), for both outcomes or per outcome.
        Default ``{"cr_velocity": 0.10, "deploys_per_builder": 0.06}``.
    effect_sd
        SD of team-specific effects around ``effect`` (heterogeneity, independent of the rollout).
    cohort_effect
        Effect tied to the adoption cohort: a team at fraction u of the rollout window gains
        ``effect + cohort_effect * (1 - 2u)`` (early adopters more when positive, less when negative). The
        ATE over teams stays ``effect``; ``truth.exposure_weighted_effect`` is what a regression targets.
    effect_buildup
        Weeks for the effect to build up (1: immediate).
    team_sd, noise_sd, week_sd
        SDs of team effects, idiosyncratic shocks and week shocks.
    covariate_effects
        Coefficients of ``rollback_rate`` and ``interventions_per_deploy`` in the outcome equations.
    rollout_window
        Fractions of the observed weeks between which team rollouts start (staggered adoption).
    adoption_speed, adoption_ceiling, adoption_decline
        S-curve steepness per week, mean plateau share, and share lost per week after the plateau.
    selection
        Correlation-like strength of selection: teams with larger team effects adopt earlier and more.
    feedback
        Effect of the team's standardised past outcome on its adoption index (reverse causality).
    mediation
        Effect of ``ai_share`` on ``rollback_rate`` (adoption moves a covariate: a mediator).
    outcome_model
        ``"gaussian"`` or ``"count"`` (Poisson counts whose conditional mean is the linear model).
    missing_weeks
        Share of team-weeks missing at random (gaps inside a team's series).
    unbalanced
        Share of teams that join late or leave early.
    cts_drivers
        Coefficients of the drivers in the log CTS-SW equation.
    burn_in
        Weeks simulated before the first observed week (without adoption), so series start near
        their stationary distribution.
    seed
        Non-negative integer, None or a :class:`numpy.random.Generator`; the same integer gives the
        same frame bit for bit. None draws fresh entropy and records it in ``design.seed_entropy``
        (also ``sim.seed``): ``simulate(..., seed=sim.seed)`` reproduces the run.

    Returns
    -------
    Simulation
        ``.data``: the telemetry schema plus the metrics computed from its counts (``cr_velocity``,
        ``deploys_per_builder``, ``rollback_rate``, ``interventions_per_deploy``, ``pages_per_oncall``,
        ``log_cts``, exactly as :func:`causalcts.metrics.add_metrics` computes them) and the latent
        rates ``rollback_rate_latent`` and ``interventions_per_deploy_latent``; ``.truth`` (read-only)
        and ``.design`` (``design.seed_entropy`` reproduces the run, also when ``seed`` is None).

    Examples
    --------
    >>> import causalcts
    >>> sim = causalcts.simulate(n_teams=50, n_weeks=20, effect=0.1, seed=1)
    >>> sim.data.shape[0], sim.truth.long_run_effect["cr_velocity"]
    (1000, 0.2)
    >>> sim.data[["team", "week", "developers", "ai_share"]].dtypes.tolist()[:2]
    [dtype('int64'), dtype('int64')]

    Early adopters gaining more: the ATE over teams stays ``effect``, a regression's weighting does not.

    >>> t = causalcts.simulate(n_teams=300, n_weeks=8, effect=0.1, cohort_effect=0.1, seed=1).truth
    >>> t.effect["cr_velocity"], round(t.exposure_weighted_effect["cr_velocity"], 2)
    (0.1, 0.13)
    """
    check_option("outcome_model", outcome_model, ("gaussian", "count"))
    rng, entropy = _generator(seed)
    if int(n_teams) < 2:
        raise CausalCTSError(f"n_teams={n_teams}: a panel needs at least 2 teams.")
    if int(n_weeks) < 2:
        raise CausalCTSError(f"n_weeks={n_weeks}: a panel needs at least 2 weeks.")
    beta = _per_outcome(persistence, "persistence")
    for o, b in beta.items():
        if not 0 <= b < 1:
            raise CausalCTSError(f"persistence for {o} is {b}; it must lie in [0, 1) for a stationary process.")
    gamma = _per_outcome(_DEFAULT_EFFECT if effect is None else effect, "effect")
    base = _per_outcome(baseline or _DEFAULT_BASELINE, "baseline")
    cov = {**_DEFAULT_COVARIATES, **(covariate_effects or {})}
    cts = {**_DEFAULT_CTS, **(cts_drivers or {})}
    for name, val, lo, hi in (
        ("missing_weeks", missing_weeks, 0, 0.9),
        ("unbalanced", unbalanced, 0, 1),
        ("adoption_ceiling", adoption_ceiling, 0, 1),
        ("adoption_decline", adoption_decline, 0, 1),
    ):
        if not lo <= val <= hi:
            raise CausalCTSError(f"{name}={val} must lie in [{lo}, {hi}].")
    for name, val in (("team_sd", team_sd), ("noise_sd", noise_sd), ("week_sd", week_sd), ("effect_sd", effect_sd)):
        if val < 0:
            raise CausalCTSError(f"{name}={val} is a standard deviation and cannot be negative.")
    if not np.isfinite(cohort_effect):
        raise CausalCTSError(f"cohort_effect={cohort_effect} must be a finite number (0: no cohort-specific effect).")
    if effect_buildup < 1:
        raise CausalCTSError(f"effect_buildup={effect_buildup} must be at least 1 week.")
    lo_w, hi_w = rollout_window
    if not 0 <= lo_w <= hi_w:
        raise CausalCTSError(f"rollout_window={rollout_window} must be two fractions, the first no larger.")

    design = SimulationDesign(
        n_teams=int(n_teams),
        n_weeks=int(n_weeks),
        persistence=beta,
        effect=gamma,
        effect_sd=effect_sd,
        cohort_effect=float(cohort_effect),
        effect_buildup=effect_buildup,
        baseline=base,
        team_sd=team_sd,
        noise_sd=noise_sd,
        week_sd=week_sd,
        covariate_effects=cov,
        rollout_window=(lo_w, hi_w),
        adoption_speed=adoption_speed,
        adoption_ceiling=adoption_ceiling,
        adoption_decline=adoption_decline,
        selection=selection,
        feedback=feedback,
        mediation=mediation,
        outcome_model=outcome_model,
        missing_weeks=missing_weeks,
        unbalanced=unbalanced,
        cts_drivers=cts,
        burn_in=int(burn_in),
        seed=int(seed) if isinstance(seed, (int, np.integer)) else None,
        seed_entropy=entropy,
    )
    return _run(design, rng)


def _generator(seed: int | np.random.Generator | None) -> tuple[np.random.Generator, int | None]:
    """The generator of a run and the integer that reproduces it (None for a caller's Generator)."""
    if isinstance(seed, np.random.Generator):
        return seed, None
    if seed is None:
        sequence = np.random.SeedSequence()
        return np.random.default_rng(sequence), int(sequence.entropy)  # type: ignore[arg-type]  # an int when drawn
    if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool) and seed >= 0:
        return np.random.default_rng(int(seed)), int(seed)
    raise CausalCTSError(
        f"seed={seed!r} is not a seed: use a non-negative integer, None (fresh entropy, recorded in "
        "design.seed_entropy) or a numpy.random.Generator."
    )


def _regression_weights(exposure: np.ndarray, team: np.ndarray, week: np.ndarray) -> np.ndarray:
    """Weights w_it = e_it E_it / sum(e E) of a two-way fixed-effects regression on the exposure E.

    e is E net of team and week means (alternating projections, exact in a balanced panel after one pass).
    NaN weights when the exposure does not vary net of the fixed effects (no adoption in the panel).
    """
    resid = exposure.astype(float).copy()
    for _ in range(200):
        before = resid.copy()
        resid -= (np.bincount(team, resid) / np.maximum(np.bincount(team), 1))[team]
        resid -= (np.bincount(week, resid) / np.maximum(np.bincount(week), 1))[week]
        if np.max(np.abs(resid - before)) < 1e-13:
            break
    denom = float(resid @ exposure)
    if abs(denom) < 1e-12:
        return np.full(len(exposure), np.nan)
    return resid * exposure / denom


def _run(d: SimulationDesign, rng: np.random.Generator) -> Simulation:
    n, T, B = d.n_teams, d.n_weeks, d.burn_in
    total = T + B
    # ---- team-level draws (fixed order: reproducibility depends on it)
    z_team = rng.standard_normal((n, 2)) @ np.linalg.cholesky(np.array([[1.0, 0.5], [0.5, 1.0]])).T
    eta = rng.standard_normal(n)
    size0 = 3 + rng.poisson(4.0, n)
    size_steps = rng.choice([-1, 0, 1], size=(n, total), p=[0.015, 0.97, 0.015])
    rb_level = 0.05 + 0.35 * rng.beta(2.0, 5.0, n)
    iv_level = rng.gamma(4.0, 0.3 / 4.0, n)
    page_rate = rng.gamma(3.0, 2.0 / 3.0, n)
    start_u = rng.uniform(size=n)
    speed = d.adoption_speed * np.exp(0.3 * rng.standard_normal(n))
    ceil_logit = np.log(d.adoption_ceiling / (1 - d.adoption_ceiling + 1e-12) + 1e-12) + 0.5 * rng.standard_normal(n)
    cts_re = rng.standard_normal((n, 2)) @ np.linalg.cholesky(np.array([[1.0, 0.3], [0.3, 1.0]])).T
    # ---- shocks
    eps = rng.standard_normal((total, len(OUTCOMES), n))
    week_shock = d.week_sd * rng.standard_normal((total, len(OUTCOMES)))
    rb_noise = 0.03 * rng.standard_normal((total, n))
    iv_noise = 0.2 * rng.standard_normal((total, n))
    cts_noise = rng.standard_normal((total, n))

    # team effects on the outcome equations, centred on the stationary baseline
    sel = z_team[:, 0]
    mean_rb = 0.05 + 0.35 * 2.0 / 7.0
    mean_iv = 0.3 * np.exp(0.02)
    a = np.empty((len(OUTCOMES), n))
    g = np.empty((len(OUTCOMES), n))
    for j, o in enumerate(OUTCOMES):
        b = d.persistence[o]
        shift = (
            d.covariate_effects["rollback_rate"] * mean_rb + d.covariate_effects["interventions_per_deploy"] * mean_iv
        )
        a[j] = (1 - b) * d.baseline[o] - shift + d.team_sd * z_team[:, j]
        g[j] = d.effect[o] + d.effect_sd * eta
        if d.cohort_effect != 0:  # only then: default runs stay bit for bit what they were
            g[j] = g[j] + d.cohort_effect * (1.0 - 2.0 * start_u)

    # adoption timing and ceiling, with selection on the team effect
    lo_w, hi_w = d.rollout_window
    start = B + T * (lo_w + (hi_w - lo_w) * start_u) - d.selection * sel * T * (hi_w - lo_w) / 2
    ceiling = _logistic(ceil_logit + d.selection * sel)

    # ---- dynamic recursion, vectorised over teams
    devs = np.maximum(2, size0[:, None] + np.cumsum(size_steps, axis=1)).T  # (total, n)
    y = np.empty((total, len(OUTCOMES), n))
    share = np.zeros((total, n))
    expo = np.zeros((total, n))
    rb = np.empty((total, n))
    iv = np.empty((total, n))
    counts = {k: np.empty((total, n), dtype=np.int64) for k in ("crs", "deploys", "rollbacks", "interventions")}
    rb_obs = np.empty((total, n))
    iv_obs = np.empty((total, n))
    y_prev = np.array(
        [
            (
                a[j]
                + d.covariate_effects["rollback_rate"] * mean_rb
                + d.covariate_effects["interventions_per_deploy"] * mean_iv
            )
            / (1 - d.persistence[o])
            for j, o in enumerate(OUTCOMES)
        ]
    )
    sd_y = np.array([d.noise_sd / np.sqrt(1 - d.persistence[o] ** 2) + 1e-12 for o in OUTCOMES])
    mu_team = y_prev.copy()
    betas = np.array([d.persistence[o] for o in OUTCOMES])
    d_rb, d_iv = d.covariate_effects["rollback_rate"], d.covariate_effects["interventions_per_deploy"]
    e_prev = np.zeros(n)

    def observe(mean: np.ndarray, shock: np.ndarray, team_size: np.ndarray, floor: int) -> np.ndarray:
        """Whole-number count of the week whose rate (count / developers) the equation gives."""
        if d.outcome_model == "gaussian":
            count = np.rint(np.maximum(mean + d.noise_sd * shock, 0.0) * team_size)
        else:
            count = rng.poisson(team_size * np.maximum(mean + d.noise_sd * shock, 1e-3))
        return np.maximum(count, floor).astype(np.int64)

    for t in range(total):
        plateau_end = start + 6.0 / np.maximum(speed, 1e-6)
        decline = np.clip(1 - d.adoption_decline * np.maximum(0.0, t - plateau_end), 0.0, 1.0)
        z_fb = (y_prev[0] - mu_team[0]) / sd_y[0]
        # the tool reaches a team at its rollout start; use then climbs an S-curve towards the ceiling
        latent = ceiling * decline * _logistic(speed * (t - start) - 2.0 + d.feedback * z_fb)
        latent = np.where((t >= B) & (t >= start), latent, 0.0)
        s = rng.binomial(devs[t], np.clip(latent, 0, 1)) / devs[t]
        share[t] = s
        e_now = s if d.effect_buildup == 1 else e_prev + (s - e_prev) / d.effect_buildup
        expo[t] = e_now
        e_prev = e_now
        rb[t] = np.clip(rb_level + d.mediation * s + rb_noise[t], 0.0, 1.0)
        iv[t] = iv_level * np.exp(iv_noise[t])
        # deployments first: the week's deployments are the denominators of the observed rates, so the
        # deploys_per_builder equation uses the latent rates; at least one deployment a week
        mean_d = a[1] + week_shock[t, 1] + betas[1] * y_prev[1] + g[1] * e_now + d_rb * rb[t] + d_iv * iv[t]
        dep = observe(mean_d, eps[t, 1], devs[t], floor=1)
        rbk = rng.binomial(dep, rb[t])
        ivn = rng.poisson(dep * iv[t])
        rb_obs[t] = rbk / dep
        iv_obs[t] = ivn / dep
        # cr_velocity depends on the observed rates, exactly the columns a user computes from the counts
        mean_c = a[0] + week_shock[t, 0] + betas[0] * y_prev[0] + g[0] * e_now + d_rb * rb_obs[t] + d_iv * iv_obs[t]
        crs_t = observe(mean_c, eps[t, 0], devs[t], floor=0)
        for key, value in (("crs", crs_t), ("deploys", dep), ("rollbacks", rbk), ("interventions", ivn)):
            counts[key][t] = value
        # the observed rates feed the next week (the conditional mean stays the linear equation)
        y[t, 0] = crs_t / devs[t]
        y[t, 1] = dep / devs[t]
        y_prev = y[t]

    sl = slice(B, total)
    devs_o, share_o, rb_o, iv_o = devs[sl], share[sl], rb[sl], iv[sl]
    crv, dpb = y[sl, 0], y[sl, 1]
    crs, deploys = counts["crs"][sl], counts["deploys"][sl]
    rollbacks, interventions = counts["rollbacks"][sl], counts["interventions"][sl]
    oncall = np.maximum(1, np.rint(devs_o / 4.0))
    pages = rng.poisson(oncall * page_rate[None, :])
    ppo = pages / oncall
    sd_b0, sd_b1 = 0.3, 0.1
    b0 = sd_b0 * cts_re[:, 0]
    b1 = sd_b1 * cts_re[:, 1]
    # CTS-SW is drawn after every count, so its drivers are the observed rates
    log_cts_latent = (
        np.log(4000.0 / 1.0)
        + b0[None, :]
        + (d.cts_drivers["cr_velocity"] + b1[None, :]) * crv
        + d.cts_drivers["rollback_rate"] * rb_obs[sl]
        + d.cts_drivers["interventions_per_deploy"] * iv_obs[sl]
        + d.cts_drivers["pages_per_oncall"] * ppo
        + 0.1 * cts_noise[sl]
    )
    dev_cost = np.exp(log_cts_latent) * deploys
    log_cts = np.log(dev_cost / deploys)  # what metrics.log_cts computes from the counts

    weeks = np.arange(T)
    frame = pd.DataFrame(
        {
            "team": np.tile(np.arange(n), T),
            "week": np.repeat(weeks, n),
            "developers": devs_o.ravel().astype(np.int64),
            "crs_merged": crs.ravel(),
            "deployments": deploys.ravel(),
            "rollbacks": rollbacks.ravel(),
            "interventions": interventions.ravel(),
            "pages": pages.ravel().astype(np.int64),
            "oncall_builders": oncall.ravel().astype(np.int64),
            "ai_share": share_o.ravel(),
            "dev_cost": dev_cost.ravel(),
            "cr_velocity": crv.ravel(),
            "deploys_per_builder": dpb.ravel(),
            "rollback_rate": rb_obs[sl].ravel(),
            "interventions_per_deploy": iv_obs[sl].ravel(),
            "pages_per_oncall": ppo.ravel(),
            "log_cts": log_cts.ravel(),
            "rollback_rate_latent": rb_o.ravel(),
            "interventions_per_deploy_latent": iv_o.ravel(),
        }
    )
    exposure = expo[sl].ravel()
    keep = np.ones(len(frame), dtype=bool)
    if d.unbalanced > 0:
        late = rng.uniform(size=n) < d.unbalanced
        entry = np.where(late, rng.integers(0, max(1, T // 2), n), 0)
        exit_ = np.where(late, T - rng.integers(0, max(1, T // 4), n), T)
        tt, ii = frame["week"].to_numpy(), frame["team"].to_numpy()
        keep &= (tt >= entry[ii]) & (tt < exit_[ii])
    if d.missing_weeks > 0:
        keep &= rng.uniform(size=len(frame)) >= d.missing_weeks
    weights = _regression_weights(exposure[keep], frame["team"].to_numpy()[keep], frame["week"].to_numpy()[keep])
    team_of = frame["team"].to_numpy()[keep]
    frame = frame.loc[keep].sort_values(["team", "week"], kind="stable").reset_index(drop=True)

    teams = pd.DataFrame(
        {
            "team": np.arange(n),
            "team_effect_cr_velocity": a[0],
            "team_effect_deploys_per_builder": a[1],
            "effect_cr_velocity": g[0],
            "effect_deploys_per_builder": g[1],
            "rollout_start": start - B,
            "adoption_ceiling": ceiling,
            "cts_intercept": b0,
            "cts_slope_cr_velocity": b1,
        }
    )
    truth = Truth(
        persistence=dict(d.persistence),
        effect=dict(d.effect),
        long_run_effect={o: d.effect[o] / (1 - d.persistence[o]) for o in OUTCOMES},
        total_effect={o: d.effect[o] + d.covariate_effects["rollback_rate"] * d.mediation for o in OUTCOMES},
        team_sd=d.team_sd,
        effect_sd=d.effect_sd,
        cohort_effect=d.cohort_effect,
        team_average_effect={o: float(g[j].mean()) for j, o in enumerate(OUTCOMES)},
        exposure_weighted_effect={
            o: float(weights @ g[j][team_of]) if np.isfinite(weights).all() else d.effect[o]
            for j, o in enumerate(OUTCOMES)
        },
        noise_sd=d.noise_sd,
        covariate_effects=dict(d.covariate_effects),
        mediation=d.mediation,
        cts_drivers=dict(d.cts_drivers),
        cts_team_sd={"intercept": sd_b0, "cr_velocity": sd_b1, "correlation": 0.3, "residual": 0.1},
        _teams=teams,
    )
    return Simulation(data=frame, truth=truth, design=d)
