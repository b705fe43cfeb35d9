"""Optional GPU check: the integrated mixed model sampled by numpyro (JAX, float64) on an accelerator.

Run on a machine with a CUDA build of JAX and numpyro:

    python benchmarks/bench_gpu.py --out results/   # 2,000 and 20,000 teams x 260 weeks

Records, per size, wall time (compilation included), minimum bulk ESS over fixed effects and
hyperparameters, and maximum R-hat, in gpu.json.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

FORMULA = (
    "log_cts ~ cr_velocity + rollback_rate + interventions_per_deploy + pages_per_oncall + (1 + cr_velocity | team)"
)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"))
    ap.add_argument("--teams", type=int, nargs="+", default=[2000, 20000])
    args = ap.parse_args()
    import jax

    import causalcts

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report = {"jax": jax.__version__, "devices": [str(d) for d in jax.devices()]}
    print(report, flush=True)
    for n in args.teams:
        d = causalcts.simulate(n, 260, seed=3).data
        t = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            r = causalcts.mixed(FORMULA, d, method="nuts", sampler="numpyro", seed=1, team_effect_draws=10)
        secs = time.perf_counter() - t
        row = {
            "rows": len(d),
            "seconds": secs,
            "min_ess_bulk": float(r.diagnostics["ess_bulk"].min()),
            "max_rhat": float(r.diagnostics["r_hat"].max()),
            "converged": bool(r.converged),
            "params": r.params.to_dict(),
        }
        report[f"{n}x260"] = row
        print(n, json.dumps(row), flush=True)
        (out / "gpu.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
