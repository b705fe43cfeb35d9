"""Write the example rollouts: simulated team-week telemetry with known truth, and their spec files.

Run from anywhere: ``python examples/rollouts/make_rollouts.py``. The same seeds give the same files bit for bit.
Each data set keeps only the raw telemetry columns, so ``causalcts analyze`` derives ``cr_velocity``,
``deploys_per_builder``, ``rollback_rate`` and ``interventions_per_deploy`` from the counts; the truth goes to
``<name>.truth.json`` beside the data (never read by the analysis).
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

import causalcts

HERE = Path(__file__).resolve().parent
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
N_TEAMS, N_WEEKS = 120, 30

#: name -> (title, simulate() keywords, whether the week is written as dates)
ROLLOUTS = {
    "steady": ("Steady rollout: exogenous adoption", dict(seed=11), False),
    "feedback": ("Adoption reacts to outcomes", dict(feedback=0.8, seed=12), False),
    "mediator": ("Adoption raises the rollback rate (a mediator control)", dict(mediation=0.15, seed=13), True),
}

SPEC = """name = "{title}"
data = "{name}.csv"
entity = "team"
time = "week"
treatment = "ai_share"
outcomes = ["cr_velocity", "deploys_per_builder"]
controls = ["rollback_rate", "interventions_per_deploy"]
cost_per_developer_week = 4000.0
seed = 1
"""


def main() -> None:
    experiments = []
    truths = {}
    for name, (title, kw, dates) in ROLLOUTS.items():
        sim = causalcts.simulate(N_TEAMS, N_WEEKS, **kw)
        data = sim.data[RAW].copy()
        if dates:  # ISO dates of the Monday of each week
            data["week"] = (pd.Timestamp("2025-01-06") + pd.to_timedelta(7 * data["week"], unit="D")).dt.strftime(
                "%Y-%m-%d"
            )
        data.to_csv(HERE / f"{name}.csv", index=False)
        truth = {"truth": sim.truth.to_dict(), "design": sim.design.to_dict()}
        (HERE / f"{name}.truth.json").write_text(json.dumps(truth, indent=2) + "\n")
        (HERE / f"{name}.toml").write_text(SPEC.format(title=title, name=name))
        experiments.append((title, name))
        truths[name] = sim.truth
    shared = "\n".join(SPEC.splitlines()[2:]) + "\n"
    listing = "".join(f'\n[[experiments]]\nname = "{t}"\ndata = "{n}.csv"\n' for t, n in experiments)
    (HERE / "all.toml").write_text(
        "# The three rollouts of this folder, analysed side by side and pooled.\n" + shared + listing
    )
    for name, t in truths.items():
        print(name, "effect", dict(t.effect), "long-run", dict(t.long_run_effect), "total", dict(t.total_effect))


if __name__ == "__main__":
    main()
