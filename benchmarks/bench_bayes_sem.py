"""Speed of the Bayesian ML-SEM (``method="bayes"`` with ``predetermined=``) on 2,000 teams x 39 weeks.

Target (issue 9): ``cr_velocity ~ L(cr_velocity, 1) + ai_share`` with ``ai_share`` predetermined, min bulk and
tail ESS >= 400 and R-hat <= 1.01 (over the coefficients, the team-effect variance and the error variances)
in <= 60 s on 2 cores. On these complete data the collapsed sampler runs (``info["collapsed"]``: NUTS on the
coefficients and error variances only, the nuisance blocks integrated out; ``n_sampled`` dimensions against the
model's ``n_params``); ``sampler="full"`` would sample all of them (71 s before). Prints one JSON line (wall
and CPU seconds, of which the ML start and whitening, the model's size, the diagnostics, the estimates against
``method="ml"``) and writes it to ``benchmarks/results/bayes_sem.json``. CPU seconds are reported too: wall time
inflates on a shared machine.

    python benchmarks/bench_bayes_sem.py [n_teams] [n_weeks] [chains] [draws] [tune]
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import causalcts

HERE = Path(__file__).resolve().parent


def main(n_teams: int = 2000, n_weeks: int = 39, chains: int = 2, draws: int = 500, tune: int = 300) -> dict:
    sim = causalcts.simulate(n_teams, n_weeks, feedback=0.3, seed=1)
    formula = "cr_velocity ~ L(cr_velocity, 1) + ai_share"
    out = {
        "n_teams": n_teams,
        "n_weeks": n_weeks,
        "formula": formula,
        "predetermined": ["ai_share"],
        "chains": chains,
        "draws": draws,
        "tune": tune,
        "cores": 2,
    }
    t, c = time.perf_counter(), time.process_time()
    r = causalcts.fit(
        formula,
        sim.data,
        method="bayes",
        predetermined=["ai_share"],
        chains=chains,
        draws=draws,
        tune=tune,
        seed=1,
        cores=2,
    )
    out["seconds"] = time.perf_counter() - t
    out["cpu_seconds"] = time.process_time() - c
    diag = r.diagnostics
    stats = r.idata.sample_stats
    out |= {
        "seconds_ml_start_and_whitening": r.info["seconds_ml_start"],
        "n_params": r.info["n_params"],
        "collapsed": bool(r.info["collapsed"]),
        "n_sampled": r.info["n_sampled"],
        "sampler": r.info["sampler"],
        "n_observed_variables": r.info["n_observed_variables"],
        "min_ess_bulk": float(diag["ess_bulk"].min()),
        "min_ess_tail": float(diag["ess_tail"].min()),
        "max_r_hat": float(diag["r_hat"].max()),
        "divergences": int(r.info["divergences"]),
        "mean_leapfrog_steps": float(stats["n_steps"].values.mean()),
        "converged": bool(r.converged),
        "worst_r_hat": diag["r_hat"].sort_values().tail(3).to_dict(),
        "target_met": bool(
            out["seconds"] <= 60
            and diag["ess_bulk"].min() >= 400
            and diag["ess_tail"].min() >= 400
            and diag["r_hat"].max() <= 1.01
        ),
        "params": r.params.to_dict(),
        "posterior_sd": r.std_errors.to_dict(),
        "ml_estimates": r.info["ml_estimates"],
        "truth": {
            "L1.cr_velocity": sim.truth.persistence["cr_velocity"],
            "ai_share": sim.truth.effect["cr_velocity"],
        },
    }
    return out


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:6]]
    result = main(*args)
    print(json.dumps(result))
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "bayes_sem.json").write_text(json.dumps(result, indent=1) + "\n")
