"""Full simulation-based calibration of both Bayesian models (the tests run a small version, marked slow).

python benchmarks/sbc.py --sims 200          # writes benchmarks/results/sbc_*.{parquet,json,png}
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from causalcts.evaluation.calibration import sbc_dynamic, sbc_mixed  # noqa: E402

OUT = Path(__file__).resolve().parent / "results"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sims", type=int, default=200)
    ap.add_argument("--seed", type=int, default=2024)
    args = ap.parse_args()
    OUT.mkdir(exist_ok=True)
    summary = {}
    for name, fn in (("mixed", sbc_mixed), ("dynamic", sbc_dynamic)):
        t = time.perf_counter()
        res = fn(args.sims, seed=args.seed, progress=True)
        secs = time.perf_counter() - t
        res.ranks.to_parquet(OUT / f"sbc_{name}.parquet")
        uni = res.uniformity(bins=10)
        summary[name] = {"seconds": secs, "design": res.design, "uniformity": uni.to_dict(orient="index")}
        res.plot()
        plt.savefig(OUT / f"sbc_{name}.png", dpi=120, bbox_inches="tight")
        plt.close("all")
        print(f"{name}: {args.sims} simulations in {secs:.0f} s")
        print(uni.to_string(float_format=lambda v: f"{v:.3f}"))
    (OUT / "sbc.json").write_text(json.dumps(summary, indent=2, default=float))


if __name__ == "__main__":
    main()
