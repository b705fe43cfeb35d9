"""Speed of the ML-SEM dynamic panel (``method="ml"``) on a balanced 2,000 teams x 39 weeks panel.

Target (issue 9): a fit of ``cr_velocity ~ L(cr_velocity, 1) + ai_share`` with ``ai_share`` predetermined on
2,000 teams x 39 weeks in seconds. Prints one JSON line (seconds per fit, the model's size, the estimates) and
writes it to ``benchmarks/results/mlsem.json``.

    python benchmarks/bench_mlsem.py [n_teams] [n_weeks]
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import causalcts

HERE = Path(__file__).resolve().parent


def main(n_teams: int = 2000, n_weeks: int = 39) -> dict:
    sim = causalcts.simulate(n_teams, n_weeks, feedback=0.3, seed=1)
    formula = "cr_velocity ~ L(cr_velocity, 1) + ai_share"
    out = {"n_teams": n_teams, "n_weeks": n_weeks, "formula": formula, "predetermined": ["ai_share"]}
    for cov in ("unadjusted", "robust"):
        t, c = time.perf_counter(), time.process_time()
        r = causalcts.fit(formula, sim.data, method="ml", predetermined=["ai_share"], cov=cov)
        out[f"seconds_{cov}"] = time.perf_counter() - t
        out[f"cpu_seconds_{cov}"] = time.process_time() - c  # wall time inflates on a shared machine
    out |= {
        "n_params": r.info["n_params"],
        "n_observed_variables": r.info["n_observed_variables"],
        "iterations": r.info["iterations"],
        "converged": r.info["converged"],
        "params": r.params.to_dict(),
        "std_errors_robust": r.std_errors.to_dict(),
        "chi2": dict(r.tests["saturated_lr"]),
    }
    return out


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:3]]
    result = main(*args)
    print(json.dumps(result))
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "mlsem.json").write_text(json.dumps(result, indent=1) + "\n")
