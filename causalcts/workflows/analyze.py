r"""The natural-experiment analysis: spec -> data audit -> fits -> diagnostics -> recommendation -> savings -> report.

:func:`analyze` is ``causalcts analyze SPEC [SPEC...] --out DIR``. For each experiment of the specs it

1. reads and checks the data (:func:`causalcts.workflows.spec.load_data`) and audits it: teams, weeks, gaps,
   missing values, the share's distribution, adoption curves by onset cohort;
2. fits, for each outcome, the dynamic panel :math:`y_{it} = \beta y_{i,t-1} + \gamma s_{it} + \delta' x_{it}
   + a_i + \lambda_t + e_{it}` with every method of the spec (default: the article's dynamic TWFE, i.e.
   ``within`` with ``L(y, 1)`` and week effects; ``bias-corrected`` FE; difference GMM with the share
   predetermined, i.e. instrumented by its lags 1 and later; the Bayesian dynamic panel, 4 chains x 1000 draws
   by default; ML-SEM with the share predetermined when there are at most 12 weeks or the panel is complete, see
   :func:`default_methods`), each with its long-run effect :math:`\gamma / (1 - \beta)`;
3. runs the diagnostics of :mod:`causalcts.workflows.checks` (exogeneity of the share, controls that respond to
   adoption, refitted without them, AR(2) and Hansen, TWFE negative weights, the event study of the onset at
   the threshold with its pre-trend test and HonestDiD breakdown value, Callaway and Sant'Anna's ATT);
4. picks the recommended estimate (:func:`causalcts.workflows.checks.recommend`) and carries it into
   engineering-years and money saved (:mod:`causalcts.workflows.savings`);
5. with several experiments, pools the recommended long-run effects with
   :func:`causalcts.bayes.pooling.pool`.

The folder gets ``report.html`` (one self-contained page), ``report.md``, ``results.json`` (every number of the
report) and ``figures/``; it is written to a temporary folder beside ``DIR`` and renamed at the end, so a
failure leaves nothing half-written. With several experiments, each has its own sub-folder with the same
files, and the top folder holds the combined report and ``results.json`` = ``{"experiments": {slug: ...},
"pooled": ...}``.

A method that fails (a singular design, too few weeks for its lags) is recorded in ``failed_methods`` with its
message and the analysis goes on; warnings raised by any step are recorded in the report, not printed.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import tempfile
import time as _time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import causalcts
from causalcts import registry
from causalcts.api import fit
from causalcts.did import onset_cohort
from causalcts.errors import CausalCTSError, SpecificationError
from causalcts.workflows import checks, figures
from causalcts.workflows import savings as sv
from causalcts.workflows.spec import RolloutData, RolloutSpec, load_data, load_spec

__all__ = ["METHOD_LABELS", "AnalysisOutput", "analyze", "analyze_experiment", "default_methods"]

#: How each method is named in the report.
METHOD_LABELS = {
    "pooled": "pooled OLS",
    "within": "dynamic TWFE (within, L(y,1) + week effects)",
    "jackknife": "half-panel jackknife FE",
    "bias-corrected": "bias-corrected FE",
    "anderson-hsiao": "Anderson-Hsiao",
    "diff-gmm": "difference GMM, share predetermined",
    "sys-gmm": "system GMM, share predetermined",
    "bayes": "Bayesian dynamic panel, share strictly exogenous",
    "ml": "ML-SEM, share predetermined",
}

#: Largest number of weeks for which ML-SEM is fitted by default on any panel; beyond it only on complete panels,
#: where its likelihood is concentrated (:func:`default_methods`); the general path's parameters grow as T^2.
ML_MAX_WEEKS = 12


def default_methods(
    n_weeks: int, *, n_teams: int | None = None, complete: bool = False, n_regressors: int = 1
) -> tuple[str, ...]:
    """Methods fitted when the spec names none: those of the article that the registry has.

    ML-SEM (share predetermined) is among them when its likelihood is cheap: up to :data:`ML_MAX_WEEKS` weeks
    always; beyond that when the panel is complete (every team observed every week, no missing values in the
    model's columns), where the likelihood is concentrated on the coefficients and error variances
    (:mod:`causalcts.models.sem`; 2,000 x 52 with two controls in 3-4 CPU-seconds,
    ``python benchmarks/bench_mlsem.py``), and there are more teams than the model's observed variables
    (``1 + (k + 1)(T - 1)`` with ``k`` time-varying regressors), which its saturated comparison needs.

    Examples
    --------
    >>> from causalcts.workflows.analyze import default_methods
    >>> default_methods(30)
    ('within', 'bias-corrected', 'diff-gmm', 'bayes')
    >>> "ml" in default_methods(39, n_teams=400, complete=True, n_regressors=3)
    True
    """
    cheap = complete and n_teams is not None and n_teams > 1 + (n_regressors + 1) * (n_weeks - 1)
    wanted = ["within", "bias-corrected", "diff-gmm", "bayes"] + (["ml"] if n_weeks <= ML_MAX_WEEKS or cheap else [])
    return tuple(m for m in wanted if m in registry.names())


def _label(method: str) -> str:
    return METHOD_LABELS.get(method, method)


def _options(method: str, spec: RolloutSpec, outcome: str) -> dict[str, Any]:
    """Options of ``causalcts.fit`` for one method: the share is predetermined wherever a method can say so."""
    s = spec.treatment
    if method in ("diff-gmm", "sys-gmm"):
        first = 2 if method == "diff-gmm" else 1
        return {
            "gmm": {outcome: (first, spec.gmm_max_lag), s: (first - 1, spec.gmm_max_lag - 1)},
            "collapse": True,
            "steps": 2,
        }
    if method == "ml":
        return {"predetermined": [s]}
    if method == "bayes":
        return {
            "chains": spec.bayes_chains,
            "draws": spec.bayes_draws,
            "tune": spec.bayes_tune,
            "seed": spec.seed,
            "cores": max(1, min(spec.bayes_chains, os.cpu_count() or 1)),
            "progressbar": False,
        }
    return {}


def _formula(outcome: str, share: str, controls: Sequence[str]) -> str:
    return f"{outcome} ~ " + " + ".join([f"L({outcome}, 1)", share, *controls])


def _num(v) -> float | None:
    if v is None:
        return None
    v = float(v)
    return v if math.isfinite(v) else None


def _estimate_rows(res, method: str, terms: Sequence[str], level: float) -> list[dict[str, Any]]:
    ci = res.conf_int(level)
    return [
        {
            "method": _label(method),
            "term": t,
            "estimate": _num(res.params[t]),
            "std_error": _num(res.std_errors[t]),
            "lower": _num(ci.loc[t, "lower"]),
            "upper": _num(ci.loc[t, "upper"]),
            "level": level,
        }
        for t in terms
        if t in res.params.index
    ]


def _long_run(res, share: str, level: float) -> dict[str, Any]:
    try:
        lr = res.long_run(share, level)
    except CausalCTSError as err:
        return {"estimate": None, "std_error": None, "lower": None, "upper": None, "level": level, "note": str(err)}
    return {k: (_num(v) if k != "level" else v) for k, v in lr.items()}


class _Progress:
    """A tqdm bar over the steps of the analysis (disabled with ``progress=False``)."""

    def __init__(self, total: int, enabled: bool) -> None:
        from tqdm.auto import tqdm

        self.bar = tqdm(total=total, disable=not enabled, desc="causalcts analyze", unit="step", leave=True)

    def step(self, what: str) -> None:
        self.bar.set_postfix_str(what[:60])
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()


# ---------------------------------------------------------------------------------------------- audit
def _audit(data: RolloutData, cohorts: pd.Series) -> dict[str, Any]:
    spec, f = data.spec, data.frame
    e, t, s = spec.entity, spec.time, spec.treatment
    n_teams = int(f[e].nunique())
    weeks = int(f[t].nunique())
    span = f.groupby(e)[t].agg(["min", "max", "count"])
    inside_gaps = int(((span["max"] - span["min"] + 1) - span["count"]).sum())
    late = int((span["min"] > f[t].min()).sum())
    early = int((span["max"] < f[t].max()).sum())
    used = list(dict.fromkeys([s, *spec.outcomes, *spec.controls]))
    missing = [
        {"column": c, "missing": int(f[c].isna().sum()), "share_missing": float(f[c].isna().mean())} for c in used
    ]
    share = f[s].astype(float)
    q = share.quantile([0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0])
    last = f.loc[f[t] == f[t].max(), s]
    return {
        "teams": n_teams,
        "weeks": weeks,
        "rows": int(len(f)),
        "first_week": data.time_labels[int(f[t].min())],
        "last_week": data.time_labels[int(f[t].max())],
        "balanced": bool(len(f) == n_teams * weeks),
        "missing_team_weeks": int(n_teams * weeks - len(f)),
        "gaps_inside_teams": inside_gaps,
        "teams_with_gaps": int(((span["max"] - span["min"] + 1) > span["count"]).sum()),
        "teams_joining_late": late,
        "teams_leaving_early": early,
        "missingness": missing,
        "share": {
            "mean": float(share.mean()),
            "sd": float(share.std()),
            "quantiles": {f"{k:g}": float(v) for k, v in q.items()},
            "share_of_team_weeks_at_zero": float((share == 0).mean()),
            "share_of_team_weeks_at_or_above_threshold": float((share >= spec.onset_threshold).mean()),
            "mean_in_last_week": float(last.mean()),
        },
        "onset_threshold": spec.onset_threshold,
        "cohorts": {
            "treated_teams": int((cohorts > 0).sum()),
            "never_treated_teams": int((cohorts == 0).sum()),
            "onset_weeks": int(cohorts[cohorts > 0].nunique()),
            "first_onset": data.time_labels.get(int(cohorts[cohorts > 0].min()) - 1) if (cohorts > 0).any() else None,
            "last_onset": data.time_labels.get(int(cohorts[cohorts > 0].max()) - 1) if (cohorts > 0).any() else None,
        },
    }


# ---------------------------------------------------------------------------------------------- one outcome
def _fit_methods(frame, spec, outcome, controls, methods, warn_log, failed, tag=""):
    fits = {}
    formula = _formula(outcome, spec.treatment, controls)
    for m in methods:
        try:
            res, ws = checks.capture(
                fit,
                formula,
                frame,
                entity=spec.entity,
                time=spec.time,
                method=m,
                dropna=True,
                checks=False,  # the exogeneity checks run once per outcome below (checks.exogeneity_checks)
                **_options(m, spec, outcome),
            )
        except CausalCTSError as err:
            failed[m + tag] = str(err)
            continue
        fits[m] = res
        warn_log.extend(f"{outcome}, {_label(m)}{tag}: {w}" for w in ws)
    return fits


def _analyze_outcome(data: RolloutData, outcome: str, methods: Sequence[str], progress: _Progress, figs: dict):
    spec, frame = data.spec, data.frame
    s, e, t, lvl = spec.treatment, spec.entity, spec.time, spec.level
    warn_log: list[str] = []
    failed: dict[str, str] = {}
    lag = f"L1.{outcome}"
    fits = _fit_methods(frame, spec, outcome, spec.controls, methods, warn_log, failed)
    progress.step(f"{outcome}: {len(fits)} methods fitted")
    diagnostics: list[dict[str, Any]] = []

    def run(what, fn, *args, **kwargs):
        try:
            value, ws = checks.capture(fn, *args, **kwargs)
        except CausalCTSError as err:
            diagnostics.append(
                {
                    "name": what,
                    "variable": s,
                    "statistic": None,
                    "pvalue": None,
                    "verdict": "warn",
                    "note": f"not computed: {err}",
                }
            )
            return None
        warn_log.extend(f"{outcome}, {what}: {w}" for w in ws)
        return value

    exo = run(
        "exogeneity checks",
        checks.exogeneity_checks,
        frame,
        outcome=outcome,
        share=s,
        controls=spec.controls,
        entity=e,
        time=t,
    )
    diagnostics.extend(exo or [])
    flagged = []
    pre = any(r["name"] == "exogeneity: lead of the share" and r["verdict"] == "fail" for r in exo or [])
    for c in spec.controls:
        row = run(
            f"control response of {c}",
            checks.control_response,
            frame,
            control=c,
            share=s,
            entity=e,
            time=t,
            share_predetermined=pre,
        )
        if row:
            diagnostics.append(row)
            if row["verdict"] == "fail":
                flagged.append(c)
    progress.step(f"{outcome}: exogeneity and controls")
    without = {}
    if flagged:
        kept = [c for c in spec.controls if c not in flagged]
        freq = [m for m in methods if registry.get(m).family != "bayes" and m in fits]
        without = _fit_methods(frame, spec, outcome, kept, freq, warn_log, failed, tag=" (without flagged)")
    for m in ("diff-gmm", "sys-gmm"):
        if m in fits:
            diagnostics.extend(checks.gmm_checks(fits[m], method=m))
    tw = run("TWFE negative weights", checks.twfe_weight_check, frame, outcome=outcome, share=s, entity=e, time=t)
    if tw:
        diagnostics.append(tw[0])
    design = run(
        "rollout design",
        checks.rollout_design_checks,
        frame,
        outcome=outcome,
        share=s,
        entity=e,
        time=t,
        cluster=spec.cluster_column,
        threshold=spec.onset_threshold,
        window=spec.window,
        level=lvl,
        seed=spec.seed,
    )
    if design:
        diagnostics.extend(design["rows"])
    progress.step(f"{outcome}: rollout diagnostics")

    estimates = [r for m, res in fits.items() for r in _estimate_rows(res, m, [s, lag], lvl)]
    long_run = {_label(m): _long_run(res, s, lvl) for m, res in fits.items()}
    if not fits:
        raise CausalCTSError(f"Every method failed for {outcome!r}: {failed}")
    rec = checks.recommend(fits, diagnostics, flagged_controls=flagged)
    chosen = without[rec["method"]] if flagged and rec["method"] in without else fits[rec["method"]]
    if flagged and rec["method"] not in without:
        rec["reason"] += " (Its fit without them failed or was not run, so the estimate keeps them.)"
        rec["without_controls"] = []
    ci = chosen.conf_int(lvl).loc[s]
    recommended = {
        "method": _label(rec["method"]),
        "method_name": rec["method"],
        "term": s,
        "estimate": _num(chosen.params[s]),
        "std_error": _num(chosen.std_errors[s]),
        "lower": _num(ci["lower"]),
        "upper": _num(ci["upper"]),
        "level": lvl,
        "without_controls": rec["without_controls"],
        "reason": rec["reason"],
        "long_run": _long_run(chosen, s, lvl),
    }
    out = {
        "formula": _formula(outcome, s, spec.controls),
        "estimates": estimates,
        "long_run": long_run,
        "diagnostics": diagnostics,
        "flagged_controls": flagged,
        "without_flagged_controls": {
            "controls": [c for c in spec.controls if c not in flagged],
            "formula": _formula(outcome, s, [c for c in spec.controls if c not in flagged]) if flagged else None,
            "estimates": [r for m, res in without.items() for r in _estimate_rows(res, m, [s, lag], lvl)],
            "long_run": {_label(m): _long_run(res, s, lvl) for m, res in without.items()},
        },
        "rollout_design": _design_block(design, lvl),
        "recommended": recommended,
        "failed_methods": failed,
        "nobs": {_label(m): int(res.nobs) for m, res in fits.items()},
        "warnings": warn_log,
    }
    slug = _slug(outcome)
    figs[f"estimates_{slug}.png"] = (
        figures.estimates_forest(estimates, long_run, share=s, outcome=outcome),
        f"Estimates of the effect of {s} on {outcome} by method",
    )
    if design and design["event_study"] is not None:
        figs[f"event_study_{slug}.png"] = (
            figures.event_study_figure(design["event_study"], outcome=outcome, level=lvl),
            f"Event study of the onset: {outcome}",
        )
    if design and design["honest"] is not None:
        figs[f"honest_{slug}.png"] = (
            figures.honest_figure(design["honest"]),
            f"HonestDiD sensitivity of the mean post-onset effect on {outcome}",
        )
    if tw:
        figs[f"twfe_weights_{slug}.png"] = (
            figures.twfe_weights_figure(tw[1]),
            f"TWFE weights of the treated team-weeks ({outcome})",
        )
    progress.step(f"{outcome}: recommendation and figures")
    return out, chosen


def _design_block(design, level) -> dict[str, Any]:
    if not design:
        return {"estimates": [], "event_study": [], "honest": [], "breakdown": None, "cohort_sizes": {}}
    es = design["event_study"]
    es_rows = []
    if es is not None:
        ci = es.conf_int(level)
        es_rows = [
            {
                "term": k,
                "event_time": int(et),
                "estimate": _num(es.params[k]),
                "std_error": _num(es.std_errors[k]),
                "lower": _num(ci.loc[k, "lower"]),
                "upper": _num(ci.loc[k, "upper"]),
            }
            for k, et in zip(es.params.index, es.info["event_times"])
        ]
    hd = design["honest"]
    honest = []
    if hd is not None:
        honest = [{"M": _num(r["M"]), "lower": _num(r["lower"]), "upper": _num(r["upper"])} for _, r in hd.iterrows()]
    return {
        "estimates": [
            {k: (_num(v) if isinstance(v, (float, np.floating)) else v) for k, v in r.items()}
            for r in design["estimates"]
        ],
        "event_study": es_rows,
        "honest": honest,
        "breakdown": _num(hd.attrs["breakdown"]) if hd is not None else None,
        "honest_original": [_num(v) for v in hd.attrs["original"]] if hd is not None else None,
        "cohort_sizes": {str(k): v for k, v in design["cohort_sizes"].items()},
    }


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_").lower() or "x"


# ---------------------------------------------------------------------------------------------- savings
def _savings(data: RolloutData, outcome: str, chosen, method: str, direct: Mapping[str, tuple] | None = None):
    """The savings block from the recommended fit of ``outcome``; ``direct`` maps a CTS-SW outcome
    (``log_cts``, ``cts_sw``) to its recommended (fit, method) to set the direct CTS-SW change beside them."""
    spec, f = data.spec, data.frame
    if outcome in sv.NOT_PER_DEVELOPER:
        return sv.unavailable(f"{outcome!r} is not a rate per developer-week; name one in 'savings_outcome'.")
    if spec.developers not in f.columns:
        return sv.unavailable(f"the data have no {spec.developers!r} column (developers per team-week).")
    lag = f"L1.{outcome}"

    def sums(y: str) -> sv.SavingsInputs:
        return sv.exposure_sums(
            f,
            entity=spec.entity,
            time=spec.time,
            share=spec.treatment,
            outcome=y,
            developers=spec.developers,
            cost_per_developer_week=spec.cost_per_developer_week,
            cost_column=spec.cost_column,
        )

    inputs = sums(outcome)
    b, g, how = sv.parameter_draws(chosen, lag, spec.treatment, n=spec.savings_draws, seed=spec.seed)
    bayesian = registry.get(method).family == "bayes"
    out = sv.savings(
        inputs,
        persistence=float(chosen.params[lag]),
        effect=float(chosen.params[spec.treatment]),
        persistence_draws=b,
        effect_draws=g,
        weeks_per_year=spec.weeks_per_year,
        level=spec.level,
        bayesian=bayesian,
    )
    out.update(
        {
            "outcome": outcome,
            "basis": outcome,
            "assumption": sv.assumption(outcome, spec.cts_unit),
            "method": _label(method),
            "draws_from": how,
            "direct": None,
        }
    )
    for y, (res, m) in (direct or {}).items():
        ylag = f"L1.{y}"
        if ylag not in res.params.index or spec.treatment not in res.params.index:
            continue
        try:
            db, dg, _ = sv.parameter_draws(res, ylag, spec.treatment, n=spec.savings_draws, seed=spec.seed)
            d = sv.direct_cts_change(
                sums(y),
                y,
                persistence=float(res.params[ylag]),
                effect=float(res.params[spec.treatment]),
                persistence_draws=db,
                effect_draws=dg,
                level=spec.level,
                bayesian=registry.get(m).family == "bayes",
            )
        except CausalCTSError:
            continue
        out["direct"] = sv.compare(out["cts_change"], d, y, _label(m))
        break
    return out


# ---------------------------------------------------------------------------------------------- one experiment
def analyze_experiment(spec: RolloutSpec, *, progress: bool = False) -> tuple[dict[str, Any], dict[str, tuple]]:
    """Analyse one experiment; return its results (JSON-ready) and its figures (file name -> (Figure, caption)).

    Examples
    --------
    >>> import pathlib, tempfile
    >>> import causalcts
    >>> from causalcts.workflows import analyze_experiment, parse_spec
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> causalcts.simulate(60, 10, seed=1).data.to_csv(folder / "a.csv", index=False)
    >>> spec, = parse_spec({"name": "A", "data": "a.csv", "entity": "team", "time": "week",
    ...                     "treatment": "ai_share", "outcomes": ["cr_velocity"], "methods": ["within"]},
    ...                    base=folder)
    >>> res, figs = analyze_experiment(spec)
    >>> res["outcomes"]["cr_velocity"]["recommended"]["method_name"], "engineering_years" in res["savings"]
    ('within', True)
    """
    bar = _Progress(2 + 4 * len(spec.outcomes), progress)
    try:
        return _experiment(spec, bar)
    finally:
        bar.close()


def _experiment(spec: RolloutSpec, bar: _Progress) -> tuple[dict[str, Any], dict[str, tuple]]:
    t0 = _time.perf_counter()
    data, load_warnings = checks.capture(load_data, spec)
    n_weeks = int(data.frame[spec.time].nunique())
    n_teams = int(data.frame[spec.entity].nunique())
    used = [c for c in (*spec.outcomes, spec.treatment, *spec.controls) if c in data.frame.columns]
    complete = len(data.frame) == n_teams * n_weeks and not data.frame[used].isna().any().any()
    methods = spec.methods or default_methods(
        n_weeks, n_teams=n_teams, complete=complete, n_regressors=1 + len(spec.controls)
    )
    figs: dict[str, tuple] = {}
    cohorts = onset_cohort(
        data.frame.assign(**{spec.time: data.frame[spec.time] + 1}),
        entity=spec.entity,
        time=spec.time,
        share=spec.treatment,
        threshold=spec.onset_threshold,
    )
    audit = _audit(data, cohorts)
    figs["adoption_by_cohort.png"] = (
        figures.adoption_by_cohort(
            data.frame, cohorts, entity=spec.entity, time=spec.time, share=spec.treatment, labels=data.time_labels
        ),
        "Adoption curves by onset cohort",
    )
    figs["share_distribution.png"] = (
        figures.share_histogram(data.frame[spec.treatment], share=spec.treatment, threshold=spec.onset_threshold),
        f"Distribution of {spec.treatment} over team-weeks",
    )
    bar.step("data audit")
    outcomes, chosen = {}, {}
    for y in spec.outcomes:
        outcomes[y], chosen[y] = _analyze_outcome(data, y, methods, bar, figs)
    so = spec.savings_from
    rec = outcomes[so]["recommended"]
    direct = {y: (chosen[y], outcomes[y]["recommended"]["method_name"]) for y in sv.CTS_OUTCOMES if y in spec.outcomes}
    savings, save_warnings = checks.capture(_savings, data, so, chosen[so], rec["method_name"], direct)
    if savings.get("direct") and savings["direct"]["verdict"] == "warn":
        save_warnings.append(savings["direct"]["note"])
    bar.step("savings")
    metrics_rows = [
        {"name": k, "from": list(v), "description": causalcts.metrics.DERIVED[k][2]} for k, v in data.derived.items()
    ]
    result = {
        "name": spec.name,
        "causalcts_version": causalcts.__version__,
        "spec": spec.to_dict(),
        "methods": list(methods),
        "method_labels": {m: _label(m) for m in methods},
        "audit": audit,
        "metrics_derived": metrics_rows,
        "columns_used_as_given": [c for c in (*spec.outcomes, *spec.controls) if c not in data.derived],
        "outcomes": outcomes,
        "savings": savings,
        "warnings": [*(f"loading the data: {w}" for w in load_warnings), *(f"savings: {w}" for w in save_warnings)]
        + [w for y in spec.outcomes for w in outcomes[y]["warnings"]],
        "elapsed_seconds": round(_time.perf_counter() - t0, 2),
    }
    return result, figs


# ---------------------------------------------------------------------------------------------- pooling
def _pool(results: Mapping[str, dict], spec: RolloutSpec) -> dict[str, Any]:
    """Partial pooling of each shared outcome's recommended long-run effect across experiments."""
    try:
        from causalcts.bayes.pooling import pool
    except ImportError:
        return {"done": False, "reason": "causalcts.bayes.pooling.pool is not available in this version."}
    names = list(results)
    shared = [y for y in next(iter(results.values()))["outcomes"] if all(y in r["outcomes"] for r in results.values())]
    out: dict[str, Any] = {"done": True, "quantity": "recommended long-run effect", "outcomes": {}, "figures": {}}
    for y in shared:
        rows = []
        for n in names:
            lr = results[n]["outcomes"][y]["recommended"]["long_run"]
            rows.append(
                {
                    "experiment": n,
                    "estimate": lr["estimate"],
                    "std_error": lr["std_error"],
                    "lower": lr["lower"],
                    "upper": lr["upper"],
                }
            )
        table = pd.DataFrame(rows)
        if table[["estimate", "std_error"]].isna().any().any():
            out["outcomes"][y] = {"done": False, "reason": "an experiment has no long-run estimate"}
            continue
        scale = float(10 * (table["estimate"].abs() + 2 * table["std_error"]).max())
        res, ws = checks.capture(
            pool,
            table,
            estimate="estimate",
            std_error="std_error",
            label="experiment",
            prior_mean=("normal", 0.0, scale),
            prior_sd=("halfnormal", scale),
            chains=spec.bayes_chains,
            draws=max(spec.bayes_draws, 500),
            tune=max(spec.bayes_tune, 500),
            seed=spec.seed,
        )
        eff = res.effects(spec.level)
        table["pooled_mean"] = eff["mean"].to_numpy()
        table["pooled_lower"] = eff["lower"].to_numpy()
        table["pooled_upper"] = eff["upper"].to_numpy()
        ci = res.conf_int(spec.level)
        mu = {
            "estimate": float(res.params["mu"]),
            "lower": float(ci.loc["mu", "lower"]),
            "upper": float(ci.loc["mu", "upper"]),
        }
        tau = {
            "estimate": float(res.params["tau"]),
            "lower": float(ci.loc["tau", "lower"]),
            "upper": float(ci.loc["tau", "upper"]),
        }
        pred = res.predict(spec.level)
        out["outcomes"][y] = {
            "done": True,
            "experiments": table.to_dict(orient="records"),
            "mu": mu,
            "tau": tau,
            "new_rollout": {"estimate": pred["mean"], "lower": pred["lower"], "upper": pred["upper"]},
            "priors": {"mu": f"normal(0, {scale:.3g})", "tau": f"half-normal({scale:.3g})"},
            "warnings": ws,
        }
        out["figures"][f"pooled_{_slug(y)}.png"] = (
            figures.pooled_forest(table, mu=mu, outcome=y),
            f"Partial pooling of the long-run effect on {y}",
        )
    return out


# ---------------------------------------------------------------------------------------------- writing
@dataclass(frozen=True)
class AnalysisOutput:
    """What :func:`analyze` wrote: the folder, its files, and the contents of its ``results.json``."""

    out_dir: Path
    files: tuple[Path, ...]
    results: Mapping[str, Any]


def _json_default(v):
    if isinstance(v, (np.floating, np.integer)):
        return v.item()
    if isinstance(v, (np.ndarray, tuple)):
        return list(v)
    if isinstance(v, Path):
        return str(v)
    raise TypeError(f"not JSON: {type(v).__name__}")


def _clean(obj):
    """NaN and infinity become None (JSON has no NaN)."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, (float, np.floating)):
        return None if not math.isfinite(float(obj)) else float(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def _write_folder(folder: Path, result: dict, figs: Mapping[str, tuple], title: str, kind: str) -> list[Path]:
    from causalcts.workflows import render

    (folder / "figures").mkdir(parents=True, exist_ok=True)
    images = {}
    listed = []
    for name, (fig, caption) in figs.items():
        data = figures.png(fig)
        (folder / "figures" / name).write_bytes(data)
        images[name] = data
        listed.append({"file": f"figures/{name}", "caption": caption})
    result["figures"] = listed
    clean = _clean(result)
    (folder / "results.json").write_text(json.dumps(clean, indent=2, default=_json_default))
    html, md = render.render(clean, images, kind=kind, title=title)
    (folder / "report.html").write_text(html, encoding="utf-8")
    (folder / "report.md").write_text(md, encoding="utf-8")
    return [
        folder / "report.html",
        folder / "report.md",
        folder / "results.json",
        *(folder / "figures" / n for n in figs),
    ]


def _install(tmp: Path, out: Path, overwrite: bool) -> None:
    """Move the finished temporary folder to ``out`` (replacing an existing one only with ``overwrite``)."""
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise SpecificationError(f"{out} exists and is not empty; pass --overwrite to replace it.")
        trash = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
        os.replace(out, trash / out.name)
        os.replace(tmp, out)
        shutil.rmtree(trash, ignore_errors=True)
        return
    if out.exists():
        out.rmdir()
    os.replace(tmp, out)


def analyze(
    specs: str | Path | RolloutSpec | Sequence[str | Path | RolloutSpec],
    out: str | Path,
    *,
    overwrite: bool = False,
    progress: bool = True,
    echo: Callable[[str], Any] | None = None,
) -> AnalysisOutput:
    """Analyse one or more rollouts and write the report folder ``out`` (module docstring).

    Parameters
    ----------
    specs
        Spec file(s) (TOML) or :class:`~causalcts.workflows.spec.RolloutSpec` objects.
    out
        Folder to write; it must not exist or be empty unless ``overwrite``.
    overwrite
        Replace an existing, non-empty ``out`` (only once the new report is complete).
    progress
        Show a tqdm progress bar on stderr.
    echo
        Called with a line of text per finished experiment (e.g. ``print``); None for silence.

    Returns
    -------
    AnalysisOutput

    Raises
    ------
    causalcts.errors.CausalCTSError
        A bad spec or data (the message names the key or column), or an ``out`` that exists; nothing is written.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> import causalcts
    >>> from causalcts.workflows import analyze, parse_spec
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> causalcts.simulate(60, 10, seed=1).data.to_csv(folder / "a.csv", index=False)
    >>> spec, = parse_spec({"name": "A", "data": "a.csv", "entity": "team", "time": "week",
    ...                     "treatment": "ai_share", "outcomes": ["cr_velocity"], "methods": ["within"]},
    ...                    base=folder)
    >>> res = analyze(spec, folder / "report", progress=False)
    >>> sorted(p.name for p in res.out_dir.iterdir())
    ['figures', 'report.html', 'report.md', 'results.json']
    """
    items = [specs] if isinstance(specs, (str, Path, RolloutSpec)) else list(specs)
    experiments: list[RolloutSpec] = []
    for item in items:
        experiments.extend([item] if isinstance(item, RolloutSpec) else load_spec(item))
    if not experiments:
        raise SpecificationError("Give at least one spec.")
    names = [s.name for s in experiments]
    if len(set(names)) < len(names):
        raise SpecificationError(f"Experiment names must be unique; got {names}.")
    out = Path(out)
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not overwrite)):
        raise SpecificationError(f"{out} exists and is not an empty folder; pass --overwrite to replace it.")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        results: dict[str, dict] = {}
        figs: dict[str, dict] = {}
        for spec in experiments:
            results[spec.name], figs[spec.name] = analyze_experiment(spec, progress=progress)
            if echo:
                rec = results[spec.name]["outcomes"][spec.savings_from]["recommended"]
                echo(
                    f"{spec.name}: recommended {rec['method']}, effect of {spec.treatment} on {spec.savings_from} "
                    f"{rec['estimate']:.4g} [{rec['lower']:.4g}, {rec['upper']:.4g}]; "
                    + sv.describe(results[spec.name]["savings"])
                )
        files: list[Path] = []
        if len(experiments) == 1:
            result = {**results[names[0]], "pooled": None}
            files = _write_folder(tmp, result, figs[names[0]], names[0], kind="single")
            final = result
        else:
            slugs = {n: _slug(n) for n in names}
            for n in names:
                files += _write_folder(tmp / slugs[n], {**results[n], "pooled": None}, figs[n], n, kind="single")
            pooled = _pool(results, experiments[0])
            pooled_figs = pooled.pop("figures", {})
            final = {
                "experiments": {slugs[n]: results[n] for n in names},
                "pooled": pooled,
                "causalcts_version": causalcts.__version__,
            }
            files += _write_folder(tmp, final, pooled_figs, "Rollouts compared", kind="several")
        _install(tmp, out, overwrite)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    moved = tuple(out / p.relative_to(tmp) for p in files)
    return AnalysisOutput(out_dir=out, files=moved, results=json.loads((out / "results.json").read_text()))
