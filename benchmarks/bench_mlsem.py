"""Speed of the ML-SEM dynamic panel (``method="ml"``) on long balanced panels, with and without controls.

Targets: issue 9, a fit of ``cr_velocity ~ L(cr_velocity, 1) + ai_share`` with ``ai_share`` predetermined on
2,000 teams x 39 weeks in seconds; issue 11, the same with the two strictly exogenous controls
(``rollback_rate``, ``interventions_per_deploy``) on 120 x 30, 400 x 39 and 2,000 x 52 well under a minute.
Complete data without time-invariant regressors take the concentrated likelihood (``causalcts.models.sem.Profile``);
``general_path`` refits two cases on the general path (every parameter optimised jointly, as before) and records
the largest differences. Prints one JSON object and writes it to ``benchmarks/results/mlsem.json``; the top-level
keys are the issue 9 case.

    python benchmarks/bench_mlsem.py [n_teams] [n_weeks]
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from unittest import mock

import numpy as np

import causalcts
from causalcts.estimators import mlsem

HERE = Path(__file__).resolve().parent
FORMULA = "cr_velocity ~ L(cr_velocity, 1) + ai_share"
CONTROLS = FORMULA + " + rollback_rate + interventions_per_deploy"
CONTROL_SIZES = ((120, 30), (400, 39), (2000, 52))
GENERAL_CASES = ((FORMULA, 2000, 39), (CONTROLS, 120, 20))  # sizes the general path fits in seconds to minutes


def _fit(formula, data, cov, general=False):
    t, c = time.perf_counter(), time.process_time()
    if general:  # the general path: no concentration
        with mock.patch.object(mlsem, "profile_layout", return_value=None):
            r = causalcts.fit(formula, data, method="ml", predetermined=["ai_share"], cov=cov)
    else:
        r = causalcts.fit(formula, data, method="ml", predetermined=["ai_share"], cov=cov)
    # wall time inflates on a shared machine; CPU seconds are the comparable number
    return r, time.perf_counter() - t, time.process_time() - c


def _case(formula, n_teams, n_weeks, feedback, general=False) -> dict:
    sim = causalcts.simulate(n_teams, n_weeks, feedback=feedback, seed=1)
    out: dict = {"n_teams": n_teams, "n_weeks": n_weeks, "formula": formula, "predetermined": ["ai_share"]}
    fits = {}
    for cov in ("unadjusted", "robust"):
        fits[cov], out[f"seconds_{cov}"], out[f"cpu_seconds_{cov}"] = _fit(formula, sim.data, cov, general)
    r = fits["robust"]
    out |= {
        "concentrated": r.info["concentrated"],
        "n_params": r.info["n_params"],
        "n_observed_variables": r.info["n_observed_variables"],
        "iterations": r.info["iterations"],
        "converged": r.info["converged"],
        "max_abs_gradient": r.info["max_abs_gradient"],
        "params": r.params.to_dict(),
        "std_errors": fits["unadjusted"].std_errors.to_dict(),
        "std_errors_robust": r.std_errors.to_dict(),
        "chi2": dict(r.tests["saturated_lr"]),
    }
    return out


def _compare(fast: dict, slow: dict) -> dict:
    def rel(a, b):
        a, b = np.array(list(a.values())), np.array(list(b.values()))
        return float(np.max(np.abs(a - b) / np.abs(b)))

    return {
        "max_rel_diff_params": rel(fast["params"], slow["params"]),
        "max_rel_diff_std_errors": rel(fast["std_errors"], slow["std_errors"]),
        "max_rel_diff_std_errors_robust": rel(fast["std_errors_robust"], slow["std_errors_robust"]),
        "diff_chi2": fast["chi2"]["statistic"] - slow["chi2"]["statistic"],
    }


def main(n_teams: int = 2000, n_weeks: int = 39) -> dict:
    out = _case(FORMULA, n_teams, n_weeks, feedback=0.3)
    out["controls"] = [_case(CONTROLS, n, t, feedback=1.0) for n, t in CONTROL_SIZES]
    out["general_path"] = []
    for formula, n, t in GENERAL_CASES:
        feedback = 0.3 if formula == FORMULA else 1.0
        fast = out if (formula, n, t) == (FORMULA, n_teams, n_weeks) else _case(formula, n, t, feedback)
        slow = _case(formula, n, t, feedback, general=True)
        out["general_path"].append(
            {"fast_cpu_seconds_robust": fast["cpu_seconds_robust"], **slow, **_compare(fast, slow)}
        )
    return out


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:3]]
    result = main(*args)
    print(json.dumps(result))
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "mlsem.json").write_text(json.dumps(result, indent=1) + "\n")
