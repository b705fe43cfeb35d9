"""REML of the CTS-SW mixed model: causalcts (integrated likelihood) against statsmodels MixedLM, same run.

python benchmarks/bench_reml.py      # writes benchmarks/results/reml.json
"""

from __future__ import annotations

import json
import time
import warnings
from pathlib import Path

import numpy as np

import causalcts

OUT = Path(__file__).resolve().parent / "results"
FORMULA = (
    "log_cts ~ cr_velocity + rollback_rate + interventions_per_deploy + pages_per_oncall + (1 + cr_velocity | team)"
)


def main(teams: int = 500, weeks: int = 260) -> None:
    import statsmodels.formula.api as smf

    OUT.mkdir(exist_ok=True)
    d = causalcts.simulate(teams, weeks, seed=3).data
    t = time.perf_counter()
    ours = causalcts.mixed(FORMULA, d, method="reml")
    t_ours = time.perf_counter() - t
    t = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = smf.mixedlm(
            "log_cts ~ cr_velocity + rollback_rate + interventions_per_deploy + pages_per_oncall",
            d,
            groups=d["team"],
            re_formula="~cr_velocity",
        ).fit(reml=True, method="lbfgs")
    t_ref = time.perf_counter() - t
    report = {
        "teams": teams,
        "weeks": weeks,
        "causalcts_seconds": t_ours,
        "statsmodels_seconds": t_ref,
        "speedup": t_ref / t_ours,
        "llf_difference": float(ours.llf - ref.llf),
        "max_abs_param_diff": float(np.max(np.abs(ours.params.to_numpy() - ref.fe_params.to_numpy()))),
    }
    (OUT / "reml.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
