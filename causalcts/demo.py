"""The end-to-end demonstration behind ``causalcts demo``.

Simulate teams with a known AI-adoption effect, run the exogeneity checks on the model, estimate the
effect with several methods (the GMM fits treat ``ai_share`` as the checks allow: a standard instrument
when its lead test passes, predetermined when it fails) and with the estimator the checks recommend
(:func:`~causalcts.diagnostics.fit_auto`), print each estimate beside the truth, and write the figures and a
JSON record to a folder.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from causalcts.diagnostics import check_exogeneity, fit_auto
from causalcts.estimators import fit
from causalcts.estimators.bias import nickell_bias
from causalcts.simulate import simulate

__all__ = ["DemoReport", "run_demo"]

FORMULA = "cr_velocity ~ L(cr_velocity, 1) + ai_share + rollback_rate + interventions_per_deploy"
TREATMENT = "ai_share"


@dataclass(frozen=True)
class DemoReport:
    table: pd.DataFrame
    checks: pd.DataFrame
    out_dir: Path
    figures: list[Path]


def run_demo(
    out_dir: str | Path = "causalcts-demo",
    *,
    n_teams: int = 300,
    n_weeks: int = 26,
    effect: float = 0.10,
    persistence: float = 0.5,
    feedback: float = 0.0,
    seed: int = 1,
    echo=print,
) -> DemoReport:
    """Run the demonstration and return the comparison table and the exogeneity checks.

    ``feedback`` is the simulator's (adoption that reacts to the team's past outcomes; 0 by default): with
    it the lead test of ``ai_share`` fails and the GMM fits and the recommendation change accordingly.

    Examples
    --------
    >>> import tempfile
    >>> from causalcts.demo import run_demo
    >>> rep = run_demo(tempfile.mkdtemp(), n_teams=60, n_weeks=12, echo=lambda *a: None)
    >>> sorted(rep.table.columns)[:3]
    ['effect', 'effect_lower', 'effect_upper']
    >>> rep.table.index[-1]
    'recommended by the checks (bias-corrected)'
    >>> rep.checks.loc["ai_share", "verdict"]
    'pass'
    """
    from matplotlib.figure import Figure  # not pyplot: no window opens and the session's backend is left alone

    from causalcts.plots import plot_adoption, plot_estimates

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    echo(
        f"Simulating {n_teams} teams over {n_weeks} weeks (persistence {persistence}, effect of full adoption "
        f"{effect} CRs per developer-week, seed {seed})..."
    )
    sim = simulate(n_teams, n_weeks, persistence=persistence, effect=effect, feedback=feedback, seed=seed)
    truth_b = sim.truth.persistence["cr_velocity"]
    truth_g = sim.truth.effect["cr_velocity"]
    checks = check_exogeneity(FORMULA, sim.data, treatment=TREATMENT)
    echo("Exogeneity checks (lead test of each regressor; does each control respond to ai_share?):")
    echo(checks[["test", "statistic", "pvalue", "verdict"]].to_string(float_format=lambda v: f"{v:8.4f}"))
    exogenous = checks.loc[checks["test"] == "lead"].loc[TREATMENT, "verdict"] != "fail"
    if exogenous:
        gmm: dict[str, Any] = dict(gmm={"cr_velocity": (2, 5)})
        echo(f"{TREATMENT} passes its lead test: the GMM fits below use it as a standard instrument.")
    else:
        gmm = dict(gmm={"cr_velocity": (2, 5), TREATMENT: (1, 4)}, predetermined=[TREATMENT])
        echo(
            f"{TREATMENT} fails its lead test (adoption reacts to past outcomes): the GMM fits below treat it as "
            "predetermined; the within, jackknife and bias-corrected rows assume strict exogeneity and are shown "
            "only for comparison."
        )
    gmm_note = "" if exogenous else f" ({TREATMENT} predetermined)"
    methods: dict[str, dict[str, Any]] = {
        "within (fixed effects)": dict(method="within"),
        "half-panel jackknife": dict(method="jackknife"),
        "bias-corrected FE": dict(method="bias-corrected"),
        f"difference GMM{gmm_note}": dict(method="diff-gmm", collapse=True, steps=2, **gmm),
        f"system GMM{gmm_note}": dict(method="sys-gmm", collapse=True, steps=2, **gmm),
    }
    methods["recommended by the checks"] = {}  # fit_auto: the checks, then the estimator they allow
    results, rows = {}, []
    for label, kw in methods.items():
        echo(f"  estimating with {label}..." if kw else "  fitting what the checks recommend (fit_auto)...")
        with warnings.catch_warnings(record=True) as caught:  # shown, not hidden
            warnings.simplefilter("always")
            r = fit(FORMULA, sim.data, **kw) if kw else fit_auto(FORMULA, sim.data, treatment=TREATMENT)
        for w in dict.fromkeys(f"{w.category.__name__}: {w.message}" for w in caught):
            echo(f"    warning: {w}")
        if not kw:
            label = f"{label} ({r.method})"
            echo(f"    {r.info['recommendation']}")
        results[label] = r
        ci = r.conf_int(0.95)
        lr = r.long_run("ai_share")
        rows.append(
            {
                "method": label,
                "persistence": r.params["L1.cr_velocity"],
                "effect": r.params["ai_share"],
                "effect_lower": ci.loc["ai_share", "lower"],
                "effect_upper": ci.loc["ai_share", "upper"],
                "long_run_effect": lr["estimate"],
            }
        )
    table = pd.DataFrame(rows).set_index("method")
    truth_row = pd.DataFrame(
        [{"persistence": truth_b, "effect": truth_g, "long_run_effect": sim.truth.long_run_effect["cr_velocity"]}],
        index=pd.Index(["TRUTH"], name="method"),
    )
    show = pd.concat([table, truth_row])
    echo("")
    echo(show.to_string(float_format=lambda v: f"{v:8.4f}", na_rep=""))
    echo("")
    within_bias = table.loc["within (fixed effects)", "persistence"] - truth_b
    echo(
        f"Nickell's formula predicts a within-estimator bias of about {nickell_bias(truth_b, n_weeks - 1):+.3f} in "
        f"persistence with {n_weeks - 1} weeks in the regression (for a pure AR(1); this model also has "
        f"covariates and week effects); the within row shows {within_bias:+.3f}."
    )
    figs = []
    fig = Figure(figsize=(7, 4))
    plot_adoption(sim.data, ax=fig.subplots())
    figs.append(out / "adoption.png")
    fig.savefig(figs[-1], dpi=120, bbox_inches="tight")
    for term, truth in (("ai_share", truth_g), ("L1.cr_velocity", truth_b)):
        fig = Figure(figsize=(7, 3.5))
        plot_estimates(results, term, truth=truth, ax=fig.subplots())
        figs.append(out / f"estimates_{term.replace('.', '_')}.png")
        fig.savefig(figs[-1], dpi=120, bbox_inches="tight")
    (out / "demo_results.json").write_text(
        json.dumps(
            {
                "truth": sim.truth.to_dict(),
                "design": sim.design.to_dict(),
                "checks": checks.reset_index().to_dict(orient="records"),
                "estimates": {k: v.to_dict() for k, v in results.items()},
            },
            indent=2,
            default=float,
        )
    )
    echo(f"Figures and results written to {out.resolve()}/ ({', '.join(p.name for p in figs)}, demo_results.json)")
    return DemoReport(table=table, checks=checks, out_dir=out, figures=figs)
