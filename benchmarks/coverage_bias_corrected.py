"""Coverage of ``fit(method="bias-corrected")`` intervals: the within covariance (0.2) against the corrected one.

Issue 9: the bias-corrected estimate used to report the full-sample within covariance, whose 90% intervals for
the persistence covered 0.74-0.79 at T = 8. The estimator now reports the delta-method covariance through the
correction (``causalcts/estimators/bias.py`` docstring). One run measures both: the old intervals are the
bias-corrected estimate with ``info["within_std_errors"]`` (exactly the 0.2 covariance, that of
``method="within"``), the new ones its own ``std_errors``; the long-run effect's old interval uses the within
covariance in the same delta method. Designs: N = 300 teams, persistence 0.5, effect 0.1, ``selection=1.0``,
``feedback=0``, simulate()'s defaults otherwise, T = 8 and 26. Each replication's seed is
``SeedSequence([seed, T, replication])``, so any one can be rerun alone. Single process (the machine is shared).

    python benchmarks/coverage_bias_corrected.py [replications] [seed]

Writes ``benchmarks/results/coverage_bias_corrected.json`` and prints a table. Coverage is followed by its Monte
Carlo SE ``sqrt(p (1 - p) / R)``.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
from scipy import stats

import causalcts

HERE = Path(__file__).resolve().parent
FORMULA = "cr_velocity ~ L(cr_velocity, 1) + ai_share + rollback_rate"  # as the exogeneity grid
DESIGN = {"n_teams": 300, "persistence": 0.5, "effect": 0.1, "selection": 1.0, "feedback": 0.0}
TERMS = ["L1.cr_velocity", "ai_share"]


def _long_run(params, cov) -> tuple[float, float]:
    b, g = params["L1.cr_velocity"], params["ai_share"]
    grad = np.array([g / (1 - b) ** 2, 1 / (1 - b)])
    return g / (1 - b), float(np.sqrt(grad @ cov.loc[TERMS, TERMS].to_numpy() @ grad))


def one_replication(n_weeks: int, rep: int, seed: int) -> dict:
    rng = np.random.default_rng(np.random.SeedSequence([seed, n_weeks, rep]))
    sim = causalcts.simulate(n_weeks=n_weeks, seed=rng, **DESIGN)
    bc = causalcts.fit(FORMULA, sim.data, method="bias-corrected")
    una = causalcts.fit(FORMULA, sim.data, method="bias-corrected", cov="unadjusted")
    within = causalcts.fit(FORMULA, sim.data, method="within")  # its covariance is the one 0.2 reported
    lr = bc.long_run("ai_share")
    _, lr_old_se = _long_run(bc.params, within.cov)
    out = {"estimate": {t: float(bc.params[t]) for t in TERMS}, "long_run": lr["estimate"]}
    out["se_new"] = {t: float(bc.std_errors[t]) for t in TERMS} | {"long_run": lr["std_error"]}
    out["se_old"] = {t: float(bc.info["within_std_errors"][t]) for t in TERMS} | {"long_run": lr_old_se}
    out["se_unadjusted"] = {t: float(una.std_errors[t]) for t in TERMS} | {
        "long_run": una.long_run("ai_share")["std_error"]
    }
    truth = {
        "L1.cr_velocity": sim.truth.persistence["cr_velocity"],
        "ai_share": sim.truth.effect["cr_velocity"],
        "long_run": sim.truth.long_run_effect["cr_velocity"],
    }
    return out | {"truth": truth, "df": float(bc.df_resid)}


def summarise(reps: list[dict], level: float) -> dict:
    R = len(reps)
    out: dict = {}
    for term in [*TERMS, "long_run"]:
        est = np.array([r["long_run"] if term == "long_run" else r["estimate"][term] for r in reps])
        truth = reps[0]["truth"][term]
        row = {"truth": truth, "bias": float(est.mean() - truth), "empirical_sd": float(est.std(ddof=1))}
        for kind in ("old", "new", "unadjusted"):
            se = np.array([r[f"se_{kind}"][term] for r in reps])
            q = stats.t.ppf(0.5 + level / 2, np.array([r["df"] for r in reps]))
            p = float((np.abs(est - truth) <= q * se).mean())
            row[kind] = {
                "coverage": p,
                "mcse": float(np.sqrt(p * (1 - p) / R)),
                "mean_se_over_sd": float(se.mean() / est.std(ddof=1)),
            }
        out[term] = row
    return out


def main(replications: int = 300, seed: int = 20261127) -> dict:
    result: dict = {
        "formula": FORMULA,
        "design": DESIGN,
        "replications": replications,
        "seed": seed,
        "level": 0.9,
        "causalcts": causalcts.__version__,
        "command": f"python benchmarks/coverage_bias_corrected.py {replications} {seed}",
        "old": "bias-corrected estimate with the within covariance (0.2)",
        "new": "bias-corrected estimate with its delta-method covariance, clustered (default)",
        "unadjusted": "the same with cov='unadjusted'",
        "designs": {},
    }
    cpu = time.process_time()
    for n_weeks in (8, 26):
        reps = [one_replication(n_weeks, r, seed) for r in range(replications)]
        result["designs"][f"T={n_weeks}"] = summarise(reps, 0.9)
    result["cpu_seconds"] = time.process_time() - cpu
    return result


def table(result: dict) -> str:
    lines = [
        "| T | term | bias | SD | old cover (MCSE) | new cover (MCSE) | unadjusted cover (MCSE) | SE/SD old, new |"
    ]
    lines.append("|---|---|---|---|---|---|---|---|")
    for design, rows in result["designs"].items():
        for term, row in rows.items():
            cells = [f"{row[k]['coverage']:.3f} ({row[k]['mcse']:.3f})" for k in ("old", "new", "unadjusted")]
            ratio = f"{row['old']['mean_se_over_sd']:.2f}, {row['new']['mean_se_over_sd']:.2f}"
            head = f"| {design[2:]} | {term} | {row['bias']:+.4f} | {row['empirical_sd']:.4f}"
            lines.append(f"{head} | {' | '.join(cells)} | {ratio} |")
    return "\n".join(lines)


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:3]]
    result = main(*args)
    print(table(result))
    print(f"{result['cpu_seconds']:.0f} CPU-seconds")
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "coverage_bias_corrected.json").write_text(json.dumps(result, indent=1) + "\n")
