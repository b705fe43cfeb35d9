"""Diagnostics of a rollout analysis, their verdicts, and the rule that picks the recommended estimate.

Every check returns rows ``{name, variable, statistic, pvalue, verdict, note}`` with ``verdict`` one of
``"pass"``, ``"warn"``, ``"fail"``. The thresholds:

===============================================  =============================================================
check                                            verdict
===============================================  =============================================================
exogeneity of the share                          two tests in the within model: the share's lead ``F1.share``
                                                 (Wooldridge's strict-exogeneity test) and the past outcome in
                                                 a regression of the share (feedback); fail at p < 0.05, warn at
                                                 p < 0.10, else pass
control responds to adoption                     a TWFE regression of the control on the share and its lag
                                                 (joint F): fail at p < 0.05 (the control is flagged as a
                                                 possible mediator, a "bad control"), warn at p < 0.10
AR(2) (difference GMM)                           fail at p < 0.05 (lag-2 instruments invalid), warn at < 0.10
Hansen (difference GMM)                          fail at p < 0.05, warn at p < 0.10 or p > 0.99 (too many
                                                 instruments make the test weak)
TWFE negative weights (continuous share)         pass when the negative weights sum to more than -0.05, else
                                                 warn (never fail: under heterogeneous effects the static TWFE
                                                 coefficient may mislead, but the dynamic estimators compared
                                                 here are not that regression)
event-study pre-trends (onset at the threshold)  joint F test of the leads: fail at p < 0.05, warn at p < 0.10
HonestDiD breakdown value (smoothness, FLCI)     for the mean post-onset effect e0..e(lags-1): warn when 0
                                                 (not significant once linear differential trends are
                                                 allowed, smoothness M = 0: nothing to break down) or
                                                 when the interval loses significance inside the default grid
                                                 (up to the pre-periods' own non-smoothness), pass when it
                                                 never does
heterogeneity (Callaway-Sant'Anna vs TWFE)       warn when the two average post-onset effects differ by more
                                                 than 1.96 standard errors of their difference (treating them
                                                 as independent, which overstates that error), else pass
===============================================  =============================================================

The exogeneity and control-response tests are those of :func:`causalcts.diagnostics.check_exogeneity` and of
the checks :func:`causalcts.fit` attaches to its results, computed by the same code
(:mod:`causalcts.estimators.exogeneity`: within regressions, CRV1 clustered by team, :math:`F(q, G - 1)`); their
``statistic`` is that Wald F.

The recommendation rule (:func:`recommend`):

1. If no exogeneity check fails (p >= 0.05; a warning is mentioned in the reason), the share is treated as
   strictly exogenous and the first fitted of
   ``bias-corrected``, ``jackknife``, ``within``, ``bayes``, ``ml``, ``diff-gmm``, ``sys-gmm`` is recommended:
   fixed effects with the Nickell correction are consistent under strict exogeneity and more precise than GMM.
2. Otherwise (adoption reacts to outcomes, or the lead is significant at 5%) the share is only sequentially
   exogenous (predetermined) and the first fitted of ``diff-gmm`` (share instrumented by its own lags),
   ``ml``, ``sys-gmm``, ``bayes``, ``bias-corrected``, ``within`` is recommended; the reason says when its AR(2)
   or Hansen test fails.
3. When a control responds to adoption, the recommended estimate is that method's fit **without** the flagged
   controls: holding a mediator fixed would remove the part of the effect that runs through it, and the
   savings need the total effect.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from causalcts.data.panel import Panel
from causalcts.diagnostics import honest_did, twfe_weights
from causalcts.did import att_gt, event_study, event_time_name, onset_cohort
from causalcts.errors import CausalCTSError
from causalcts.estimators.exogeneity import feedback_test, lead_test, response_test

__all__ = [
    "EXOGENOUS_ORDER",
    "PREDETERMINED_ORDER",
    "control_response",
    "exogeneity_checks",
    "gmm_checks",
    "recommend",
    "rollout_design_checks",
    "twfe_weight_check",
    "verdict_from_p",
    "worst",
]

#: Preference order of methods when the share passes the exogeneity checks.
EXOGENOUS_ORDER = ("bias-corrected", "jackknife", "within", "bayes", "ml", "diff-gmm", "sys-gmm")
#: Preference order when it does not (the share is treated as predetermined).
PREDETERMINED_ORDER = ("diff-gmm", "ml", "sys-gmm", "bayes", "bias-corrected", "within", "jackknife")

_RANK = {"pass": 0, "warn": 1, "fail": 2}


def verdict_from_p(p: float | None, *, fail_below: float = 0.05, warn_below: float = 0.10) -> str:
    """``"fail"`` below ``fail_below``, ``"warn"`` below ``warn_below``, else ``"pass"`` (a missing p warns).

    Examples
    --------
    >>> from causalcts.workflows.checks import verdict_from_p
    >>> verdict_from_p(0.01), verdict_from_p(0.07), verdict_from_p(0.5)
    ('fail', 'warn', 'pass')
    """
    if p is None or not math.isfinite(p):
        return "warn"
    return "fail" if p < fail_below else "warn" if p < warn_below else "pass"


def worst(verdicts: Sequence[str]) -> str:
    """The worst of several verdicts (``"pass"`` for none).

    Examples
    --------
    >>> from causalcts.workflows.checks import worst
    >>> worst(["pass", "warn"]), worst([])
    ('warn', 'pass')
    """
    return max(verdicts, key=_RANK.__getitem__, default="pass")


def _row(name, variable, statistic, pvalue, verdict, note="") -> dict[str, Any]:
    def num(v):
        return None if v is None or not np.isfinite(v) else float(v)

    return {
        "name": name,
        "variable": variable,
        "statistic": num(statistic),
        "pvalue": num(pvalue),
        "verdict": verdict,
        "note": note,
    }


def _rhs(terms: Sequence[str]) -> str:
    return " + ".join(terms)


# ---------------------------------------------------------------------------------------------- exogeneity
def exogeneity_checks(
    frame: pd.DataFrame, *, outcome: str, share: str, controls: Sequence[str], entity: str, time: str
) -> list[dict[str, Any]]:
    """Is the share exogenous? The lead test and the feedback test (module docstring), as diagnostic rows.

    Examples
    --------
    >>> import causalcts
    >>> from causalcts.workflows.checks import exogeneity_checks
    >>> sim = causalcts.simulate(n_teams=80, n_weeks=12, seed=1)
    >>> rows = exogeneity_checks(sim.data, outcome="cr_velocity", share="ai_share", controls=[],
    ...                          entity="team", time="week")
    >>> [r["name"] for r in rows]
    ['exogeneity: lead of the share', 'exogeneity: adoption responds to the past outcome']
    """
    y, s = outcome, share
    panel = _panel(frame, [y, s, *controls], entity, time)
    lead = lead_test(f"{y} ~ " + _rhs([f"L({y}, 1)", s, *controls]), panel, panel.entity_codes, s)
    rows = [
        _row(
            "exogeneity: lead of the share",
            s,
            lead["statistic"],
            lead["pvalue"],
            verdict_from_p(lead["pvalue"]),
            f"{lead['df']} of F1.{s} in the within model of {y}; significant when next week's share predicts this "
            f"week's {y}, which strict exogeneity rules out",
        ),
    ]
    panel = _panel(frame, [s, y], entity, time)
    back = feedback_test(panel, panel.entity_codes, s, y)
    rows.append(
        _row(
            "exogeneity: adoption responds to the past outcome",
            s,
            back["statistic"],
            back["pvalue"],
            verdict_from_p(back["pvalue"]),
            f"{back['df']} of L1.{y} in a within regression of {s} on its lag and last week's {y} (feedback)",
        )
    )
    return rows


def _panel(frame: pd.DataFrame, columns: Sequence[str], entity: str, time: str) -> Panel:
    """The rows of ``frame`` where ``columns`` are all present (a DataWarning counts the others)."""
    return Panel(frame[[entity, time, *dict.fromkeys(columns)]], entity=entity, time=time, columns=columns, dropna=True)


def control_response(
    frame: pd.DataFrame, *, control: str, share: str, entity: str, time: str, share_predetermined: bool = False
) -> dict[str, Any]:
    """Does a control respond to adoption? The share and its lag in the control's TWFE regression (a diagnostic row).

    With ``share_predetermined`` (the share's lead test failed: adoption reacts to past outcomes) the test is the
    feedback-robust one of :func:`causalcts.estimators.exogeneity.response_test` (difference GMM with the share
    predetermined), as ``causalcts.check_exogeneity`` does.

    Examples
    --------
    >>> import causalcts
    >>> from causalcts.workflows.checks import control_response
    >>> sim = causalcts.simulate(n_teams=120, n_weeks=20, mediation=0.2, seed=1)
    >>> control_response(sim.data, control="rollback_rate", share="ai_share", entity="team", time="week")["verdict"]
    'fail'
    """
    panel = _panel(frame, [control, share], entity, time)
    out = response_test(panel, panel.entity_codes, control, share, predetermined_treatment=share_predetermined)
    v = verdict_from_p(out["pvalue"])
    how = (
        f"Wald {out['df']} of {share} and its lag in difference GMM of {control} on its lag with {share} "
        "predetermined (the share's lead test failed)"
        if share_predetermined
        else f"{out['df']} of {share} and its lag in a TWFE regression of {control}"
    )
    note = f"{how} (coefficient of {share} {out['coefficient']:.4g}); " + (
        "it moves with adoption: a possible mediator, shown with and without" if v == "fail" else "no clear response"
    )
    return _row("control responds to adoption", control, out["statistic"], out["pvalue"], v, note)


# ---------------------------------------------------------------------------------------------- GMM
def gmm_checks(result, *, method: str = "diff-gmm") -> list[dict[str, Any]]:
    """AR(2) and Hansen rows of a GMM result (``tests["ar2"]``, ``tests["hansen"]``)."""
    rows = []
    tests = result.tests
    if "ar2" in tests:
        ar2 = tests["ar2"]
        rows.append(
            _row(
                f"AR(2) in first differences ({method})",
                "residuals",
                ar2["statistic"],
                ar2["pvalue"],
                verdict_from_p(ar2["pvalue"]),
                "second-order serial correlation of the differenced errors invalidates lag-2 instruments",
            )
        )
    if "hansen" in tests:
        h = tests["hansen"]
        p = h["pvalue"]
        v = "warn" if p is not None and p > 0.99 else verdict_from_p(p)
        rows.append(
            _row(
                f"Hansen overidentification ({method})",
                "instruments",
                h["statistic"],
                p,
                v,
                f"{h['df']} overidentifying restrictions; p > 0.99 suggests too many instruments",
            )
        )
    return rows


# ---------------------------------------------------------------------------------------------- rollout designs
def twfe_weight_check(frame: pd.DataFrame, *, outcome: str, share: str, entity: str, time: str) -> tuple[dict, Any]:
    """Negative weights of the static TWFE coefficient of the share (de Chaisemartin-D'Haultfoeuille); row, result."""
    w = twfe_weights(frame.dropna(subset=[outcome, share]), outcome=outcome, entity=entity, time=time, treatment=share)
    s = w.sum_negative
    v = "pass" if s > -0.05 else "warn"
    note = (
        f"{w.n_negative} of {w.n_positive + w.n_negative} treated cells get negative weights; min SD of effects "
        f"compatible with beta = {w.beta:.4g} and an average effect of 0: "
        + ("not defined" if w.sigma_fe is None else f"{w.sigma_fe:.4g}")
    )
    return _row("TWFE negative weights (sum)", share, s, None, v, note), w


def _cohorts(frame: pd.DataFrame, *, share: str, entity: str, time: str, threshold: float) -> pd.DataFrame:
    """The frame with periods counted from 1 (cohort 0 is att_gt's never-treated code), ``_cohort`` and ``_onset``."""
    work = frame.assign(**{time: frame[time] - frame[time].min() + 1})
    coh = onset_cohort(work, entity=entity, time=time, share=share, threshold=threshold)
    work = work.merge(coh.rename("_cohort"), left_on=entity, right_index=True, how="left")
    work["_onset"] = work["_cohort"].where(work["_cohort"] > 0)
    return work


def rollout_design_checks(
    frame: pd.DataFrame,
    *,
    outcome: str,
    share: str,
    entity: str,
    time: str,
    cluster: str,
    threshold: float,
    window: tuple[int, int],
    level: float,
    seed: int,
) -> dict[str, Any]:
    """Event study of the onset at the threshold, its pre-trend test, HonestDiD and Callaway-Sant'Anna.

    The onset of each team is the first week its share reaches ``threshold``
    (:func:`causalcts.did.onset_cohort`). The event study is TWFE with the end points binned at
    ``window = (leads, lags)`` (so it works without never-treated teams); HonestDiD's FLCI under smoothness
    uses the unbinned coefficients ``e-(leads-1) .. e-2`` and ``e0 .. e(lags-1)``, and its target, the mean of
    ``e0 .. e(lags-1)``, is the event-study estimate row's (both leave out the binned ``e(lags)``). Under
    smoothness, M = 0 still allows a linear differential trend: a breakdown value of 0 means the effect is not
    significant once such trends are allowed, not that it fails under exact parallel trends. Callaway and
    Sant'Anna's ATT uses not-yet-treated teams as controls.

    Returns
    -------
    dict
        ``rows`` (diagnostic rows), ``event_study``, ``honest`` (the HonestDiD table or None), ``att_gt`` and
        ``att_dynamic`` (or None), ``estimates`` (rows for the estimates table), ``cohort_sizes``.
    """
    leads, lags = window
    work = _cohorts(frame.dropna(subset=[outcome]), share=share, entity=entity, time=time, threshold=threshold)
    sizes = work.drop_duplicates(entity)["_cohort"].value_counts().sort_index()
    out: dict[str, Any] = {
        "rows": [],
        "estimates": [],
        "event_study": None,
        "honest": None,
        "att_gt": None,
        "att_dynamic": None,
        "cohort_sizes": {int(k): int(v) for k, v in sizes.items()},
    }
    if (sizes.index > 0).sum() == 0:
        out["rows"].append(
            _row(
                "event-study pre-trends",
                share,
                None,
                None,
                "warn",
                f"no team reaches the onset threshold {threshold}: no rollout design",
            )
        )
        return out
    es = event_study(
        work, outcome=outcome, entity=entity, time=time, onset="_onset", leads=leads, lags=lags, cluster=cluster
    )
    out["event_study"] = es
    pre = es.tests.get("pretrend")
    if pre:
        out["rows"].append(
            _row(
                "event-study pre-trends (joint F of the leads)",
                outcome,
                pre["statistic"],
                pre["pvalue"],
                verdict_from_p(pre["pvalue"]),
                f"TWFE event study of the onset at {share} >= {threshold}; leads {pre['terms']}",
            )
        )
    # the post-onset mean over the unbinned e0 .. e(lags-1): the same target as HonestDiD's below (the binned
    # end point e(lags) pools every later week, so it is left out of both)
    post = [event_time_name(e) for e in range(0, lags)]
    post = [p for p in post if p in es.params.index]
    if post:
        avg = float(es.params[post].mean())
        w = np.full(len(post), 1 / len(post))
        se = float(np.sqrt(w @ es.cov.loc[post, post].to_numpy() @ w))
        out["estimates"].append(
            _estimate_row("event study (TWFE, onset)", f"mean of {post[0]}..{post[-1]}", avg, se, level)
        )
    pre_names = [event_time_name(e) for e in range(-(leads - 1), -1)]
    post_names = [event_time_name(e) for e in range(0, lags)]
    if all(n in es.params.index for n in pre_names + post_names) and pre_names and post_names:
        names = pre_names + post_names
        hd = honest_did(
            betahat=es.params[names].to_numpy(),
            sigma=es.cov.loc[names, names].to_numpy(),
            num_pre=len(pre_names),
            num_post=len(post_names),
            alpha=1 - level,
            seed=seed,
            l_vec=np.full(len(post_names), 1 / len(post_names)),
        )
        out["honest"] = hd
        bd = hd.attrs["breakdown"]
        v = "pass" if not np.isfinite(bd) else "warn"
        what = (
            "not significant once linear differential trends are allowed (smoothness, M = 0)"
            if bd == 0
            else "the smallest M whose FLCI contains 0"
        )
        out["rows"].append(
            _row(
                "HonestDiD breakdown value M (smoothness)",
                outcome,
                bd,
                None,
                v,
                f"mean of {post_names[0]}..{post_names[-1]}: {what if np.isfinite(bd) else 'robust'}"
                f" (grid up to {hd['M'].max():.3g}, the pre-periods' own non-smoothness)",
            )
        )
    cs = att_gt(work, outcome=outcome, entity=entity, time=time, cohort="_cohort", control="notyet", level=level)
    out["att_gt"] = cs
    simple = cs.aggregate("simple")
    lo, hi = simple.conf_int(level)
    out["estimates"].append(
        {
            "method": "Callaway-Sant'Anna (onset, not-yet-treated)",
            "term": "ATT (simple)",
            "estimate": simple.estimate,
            "std_error": simple.std_error,
            "lower": lo,
            "upper": hi,
            "level": level,
        }
    )
    dyn = cs.aggregate("dynamic")
    out["att_dynamic"] = dyn
    if "pretrend_wald" in cs.tests:
        pw = cs.tests["pretrend_wald"]
        out["rows"].append(
            _row(
                "Callaway-Sant'Anna pre-trends (Wald)",
                outcome,
                pw["statistic"],
                pw["pvalue"],
                verdict_from_p(pw["pvalue"]),
                f"{pw['df']} pre-treatment ATT(g,t) jointly zero",
            )
        )
    if post:
        se_diff = math.hypot(dyn.std_error, se)
        z = (dyn.estimate - avg) / se_diff if se_diff > 0 else float("nan")
        v = "warn" if np.isfinite(z) and abs(z) > 1.96 else "pass"
        out["rows"].append(
            _row(
                "heterogeneity: Callaway-Sant'Anna vs TWFE event study",
                outcome,
                z,
                None,
                v,
                f"CS dynamic ATT {dyn.estimate:.4g} vs TWFE post-onset mean {avg:.4g}",
            )
        )
    return out


def _estimate_row(method: str, term: str, est: float, se: float, level: float) -> dict[str, Any]:
    from scipy import stats

    z = float(stats.norm.ppf(0.5 + level / 2))
    return {
        "method": method,
        "term": term,
        "estimate": est,
        "std_error": se,
        "lower": est - z * se,
        "upper": est + z * se,
        "level": level,
    }


# ---------------------------------------------------------------------------------------------- recommendation
def recommend(
    fitted: Mapping[str, Any],
    diagnostics: Sequence[Mapping[str, Any]],
    *,
    flagged_controls: Sequence[str] = (),
) -> dict[str, Any]:
    """Pick the recommended method from the fitted ones and the diagnostics (rule in the module docstring).

    Parameters
    ----------
    fitted
        Method name -> result, the fits with the spec's controls.
    diagnostics
        Diagnostic rows; the exogeneity rows (names starting ``"exogeneity"``) and the GMM rows decide.
    flagged_controls
        Controls that respond to adoption.

    Returns
    -------
    dict
        ``method``, ``without_controls`` (the flagged controls to leave out, a list) and ``reason`` (sentences).

    Examples
    --------
    >>> from causalcts.workflows.checks import recommend
    >>> rows = [{"name": "exogeneity: lead of the share", "verdict": "fail"}]
    >>> recommend({"within": None, "diff-gmm": None}, rows)["method"]
    'diff-gmm'
    >>> recommend({"within": None, "bias-corrected": None}, [{"name": "exogeneity: x", "verdict": "pass"}])["method"]
    'bias-corrected'
    """
    if not fitted:
        raise CausalCTSError("No method was fitted, so none can be recommended.")
    exo = worst([d["verdict"] for d in diagnostics if d["name"].startswith("exogeneity")])
    order = PREDETERMINED_ORDER if exo == "fail" else EXOGENOUS_ORDER
    method = next((m for m in order if m in fitted), next(iter(fitted)))
    if exo != "fail":
        reason = (
            f"No exogeneity check fails{' (one warns, at 5% < p < 10%)' if exo == 'warn' else ''}, so the share is "
            f"treated as strictly exogenous and {method!r} is recommended (fixed effects with the Nickell correction "
            "are consistent then and more precise than GMM)."
        )
    else:
        reason = (
            "An exogeneity check fails (adoption reacts to outcomes, or next week's share predicts this week's "
            f"outcome), so the share is treated as predetermined and {method!r} is recommended"
            + (", which instruments it with its own past values." if "gmm" in method else ".")
        )
    gmm = [d for d in diagnostics if "GMM" in d["name"] or "gmm" in d["name"]]
    bad = [d["name"] for d in gmm if d["verdict"] == "fail" and method in d["name"]]
    if bad:
        reason += f" Caution: {', '.join(bad)} fail{'s' if len(bad) == 1 else ''}; its instruments may be invalid."
    if flagged_controls:
        reason += (
            f" The control(s) {list(flagged_controls)} respond to adoption (possible mediators), so the recommended "
            "estimate leaves them out: it is the total effect of adoption, which the savings need."
        )
    return {"method": method, "without_controls": list(flagged_controls), "reason": reason}


def capture(fn: Callable, *args, **kwargs) -> tuple[Any, list[str]]:
    """Call ``fn`` and return its value and the warnings it raised (as ``Category: message`` strings)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        value = fn(*args, **kwargs)
    return value, list(dict.fromkeys(f"{w.category.__name__}: {w.message}" for w in caught))
