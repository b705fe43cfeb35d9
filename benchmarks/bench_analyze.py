"""Time ``causalcts analyze`` on 400 teams x 39 weeks with two outcomes (target: 3 minutes on 2 cores).

Run: ``python benchmarks/bench_analyze.py [--teams 400] [--weeks 39] [--cores 2]``. It simulates a rollout with
feedback and a mediator (seed 1), writes it to a temporary folder with a spec, runs the analysis with the
spec's defaults (within, bias-corrected, difference GMM, Bayesian 4 chains x 1000 draws) and prints the wall time
of the whole analysis and of each experiment, the CPU count seen, and writes ``benchmarks/results/analyze.json``.
Not a timed test: timings depend on the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

RAW = [
    "team",
    "week",
    "developers",
    "crs_merged",
    "deployments",
    "rollbacks",
    "interventions",
    "pages",
    "oncall_builders",
    "ai_share",
    "dev_cost",
]

SPEC = """name = "Benchmark rollout"
data = "rollout.csv"
entity = "team"
time = "week"
treatment = "ai_share"
outcomes = ["cr_velocity", "deploys_per_builder"]
controls = ["rollback_rate", "interventions_per_deploy"]
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--teams", type=int, default=400)
    ap.add_argument("--weeks", type=int, default=39)
    ap.add_argument("--cores", type=int, default=2, help="CPU cores the run may use (sets the affinity on Linux)")
    args = ap.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, set(sorted(os.sched_getaffinity(0))[: args.cores]))
    import causalcts
    from causalcts.workflows import analyze

    sim = causalcts.simulate(args.teams, args.weeks, feedback=0.3, mediation=0.1, seed=1)
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        sim.data[RAW].to_csv(folder / "rollout.csv", index=False)
        (folder / "spec.toml").write_text(SPEC)
        t0 = time.perf_counter()
        res = analyze(folder / "spec.toml", folder / "report", progress=False)
        wall = time.perf_counter() - t0
    record = {
        "teams": args.teams,
        "weeks": args.weeks,
        "outcomes": 2,
        "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "wall_seconds": round(wall, 1),
        "analysis_seconds": res.results["elapsed_seconds"],
        "methods": res.results["methods"],
        "machine": platform.platform(),
        "python": platform.python_version(),
        "causalcts": causalcts.__version__,
    }
    print(json.dumps(record, indent=2))
    name = "analyze.json" if (args.teams, args.weeks) == (400, 39) else f"analyze_{args.teams}x{args.weeks}.json"
    out = Path(__file__).resolve().parent / "results" / name
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
