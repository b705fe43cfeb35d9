"""One table of speed ratios against the peers, each measured in the same run as causalcts.

    python benchmarks/collect.py --run     # run every speed benchmark, then print the table
    python benchmarks/collect.py           # print the table from benchmarks/results/*.json

Peers: pydynpd (difference GMM), pyfixest and linearmodels (within/TWFE), statsmodels MixedLM (REML),
naive PyMC models with one parameter per team (NUTS). Writes benchmarks/results/speed_table.md.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
RES = HERE / "results"


def load(name: str) -> dict:
    p = RES / name
    return json.loads(p.read_text()) if p.exists() else {}


def table() -> str:
    rows = ["| benchmark | causalcts | peer | ratio (peer / causalcts) | target |", "|---|---|---|---|---|"]
    est = load("estimators.json")
    g = est.get("diff_gmm_2000x104", {})
    if g:
        o, p = g.get("ours", {}), g.get("pydynpd", {})
        ratio = f"{g['speedup']:.1f}x faster" if "speedup" in g else f"peer failed: {p.get('error', '?')}"
        rows.append(
            f"| difference GMM, 2,000 x 104, collapsed, week effects | {o.get('seconds', float('nan')):.2f} s, "
            f"{o.get('peak_rss_mb', float('nan')):.0f} MB | pydynpd {p.get('seconds', float('nan')):.1f} s, "
            f"{p.get('peak_rss_mb', float('nan')):.0f} MB | {ratio} | >= 20x, < 500 MB |"
        )
    w = est.get("within_2000x260", {})
    if w:
        o = w.get("ours", {})
        for peer, key in (("pyfixest", "speedup"), ("linearmodels", "speedup_vs_linearmodels")):
            p = w.get(peer, {})
            if key in w:
                rows.append(
                    f"| within/TWFE, 2,000 x 260, clustered | {o['seconds']:.3f} s | {peer} {p['seconds']:.3f} s | "
                    f"{w[key]:.2f}x | >= 1x (pyfixest) |"
                )
    r = load("reml.json")
    if r:
        rows.append(
            f"| REML, random intercept and slope, {r['teams']} x {r['weeks']} | {r['causalcts_seconds']:.2f} s | "
            f"statsmodels MixedLM {r['statsmodels_seconds']:.1f} s | {r['speedup']:.0f}x | (report) |"
        )
    b = load("bayes.json")
    if b.get("integrated"):
        i = b["integrated"]
        peers = []
        for k in ("naive_noncentred", "naive_centred"):
            n = b.get(k, {})
            if "min_ess_bulk" in n:
                peers.append(f"{k[6:]}: min ESS {n['min_ess_bulk']:.0f} in {n['fit_seconds']:.0f} s")
            elif n:
                peers.append(f"{k[6:]}: {n.get('error')}")
        if "ratio_vs_best_naive" in b:
            ratio = f"{b['ratio_vs_best_naive']:.0f}x ESS/s"
        else:
            # a naive run that timed out: its ESS cannot exceed its draws, so its ESS/s is at most draws / limit
            bounds = [
                4 * b[k]["draws"] / b[k]["fit_seconds"]
                for k in ("naive_noncentred", "naive_centred")
                if "error" in b.get(k, {}) and "draws" in b[k]
            ]
            ours_rate = i["min_ess_bulk"] / i["fit_seconds"]
            ratio = (
                (
                    f">= {ours_rate / max(bounds):.0f}x ESS/s "
                    f"(bound: naive ESS <= its 4 x {b['naive_centred']['draws']} draws)"
                )
                if bounds
                else "naive not run"
            )
        rows.append(
            f"| NUTS mixed model, {b['teams']} x {b['weeks']} | min ESS {i['min_ess_bulk']:.0f}, R-hat "
            f"{i['max_rhat']:.3f}, {i['fit_seconds']:.1f} s | naive PyMC ({'; '.join(peers) or 'not run'}) | "
            f"{ratio} | >= 20x; ESS >= 400, R-hat <= 1.01, <= 30 s |"
        )
        d = b.get("dynamic", {})
        if "min_ess_bulk" in d:
            rows.append(
                f"| NUTS dynamic panel, {b['teams']} x {b['weeks']} | min ESS {d['min_ess_bulk']:.0f}, R-hat "
                f"{d['max_rhat']:.3f}, {d['fit_seconds']:.1f} s | - | - | ESS >= 400, R-hat <= 1.01, <= 30 s |"
            )
    return "\n".join(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", action="store_true", help="run the speed benchmarks first (takes long: naive PyMC)")
    ap.add_argument("--skip-naive", action="store_true")
    args = ap.parse_args()
    if args.run:
        for script in ("bench_estimators.py", "bench_reml.py"):
            subprocess.run([sys.executable, str(HERE / script)], check=True)
        subprocess.run(
            [sys.executable, str(HERE / "bench_bayes.py"), *(["--skip-naive"] if args.skip_naive else [])], check=True
        )
    text = table()
    RES.mkdir(exist_ok=True)
    (RES / "speed_table.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
