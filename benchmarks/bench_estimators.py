"""Speed and memory of the frequentist estimators against their peers, measured in the same run.

Targets (issue: dynamic-panel estimators):
* Difference GMM, collapsed instruments, week effects, 2,000 teams x 104 weeks: at least 20 times faster
  than pydynpd 0.2.2 on the same specification, with the same estimates, and peak memory under 500 MB.
* Within/TWFE on 2,000 x 260: no slower than pyfixest.

pydynpd needs numpy < 2.3, so it runs in its own virtual environment (PYDYNPD_PYTHON, default
/tmp/pydynpd-venv/bin/python; see benchmarks/pydynpd_crosscheck.py for how to make it). Each side runs
in a fresh subprocess so that its peak resident memory is its own. A peer that cannot run is recorded
as a failure in the results, never silently skipped.

    python benchmarks/bench_estimators.py            # writes benchmarks/results/estimators.json
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
PYDYNPD_PYTHON = os.environ.get("PYDYNPD_PYTHON", "/tmp/pydynpd-venv/bin/python")

OURS_GMM = r"""
import json, resource, sys, time
import pandas as pd
import causalcts
d = pd.read_parquet(sys.argv[1])
t = time.perf_counter()
r = causalcts.fit("cr_velocity ~ L(cr_velocity, 1) + ai_share + rollback_rate", d, method="diff-gmm",
                  gmm={"cr_velocity": (2, None)}, collapse=True, steps=2, time_effects=True)
wall = time.perf_counter() - t
print(json.dumps({"seconds": wall, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "params": r.params.to_dict(), "std_errors": r.std_errors.to_dict(),
                  "n_instruments": r.n_instruments}))
"""

PEER_GMM = r"""
import contextlib, io, json, resource, sys, time
import pandas as pd
from pydynpd import regression
d = pd.read_parquet(sys.argv[1]) if sys.argv[1].endswith(".parquet") else pd.read_csv(sys.argv[1])
T = int(d["week"].nunique())
cmd = (f"cr_velocity L(1:1).cr_velocity ai_share rollback_rate | gmm(cr_velocity, 2:{T - 1}) "
       "iv(ai_share rollback_rate) | nolevel timedumm collapse")
t = time.perf_counter()
with contextlib.redirect_stdout(io.StringIO()):
    m = regression.abond(cmd, d, ["team", "week"]).models[0]
wall = time.perf_counter() - t
tab = m.regression_table
print(json.dumps({"seconds": wall, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "params": dict(zip(map(str, tab.variable), map(float, tab.coefficient))),
                  "std_errors": dict(zip(map(str, tab.variable), map(float, tab.std_err))),
                  "command": cmd}))
"""

WITHIN = r"""
import json, sys, time, warnings
import numpy as np, pandas as pd
import causalcts
d = pd.read_parquet(sys.argv[1])
which = sys.argv[2]
p = causalcts.Panel(d)
d = p.data.assign(lag_y=p.lag("cr_velocity").to_numpy()).dropna(subset=["lag_y"])
def ours():
    return causalcts.fit("cr_velocity ~ lag_y + ai_share + rollback_rate", d, method="within", time_effects=True)
def peer():
    import pyfixest as pf
    return pf.feols("cr_velocity ~ lag_y + ai_share + rollback_rate | team + week", data=d, vcov={"CRV1": "team"})
def linearmodels_peer():
    from linearmodels import PanelOLS
    di = d.set_index(["team", "week"])
    return PanelOLS(di["cr_velocity"], di[["lag_y", "ai_share", "rollback_rate"]], entity_effects=True,
                    time_effects=True).fit(cov_type="clustered", cluster_entity=True)
fn = {"ours": ours, "peer": peer, "linearmodels": linearmodels_peer}[which]
warnings.simplefilter("ignore")
fn()  # warm-up (imports, JIT)
times = []
for _ in range(3):
    t = time.perf_counter(); r = fn(); times.append(time.perf_counter() - t)
params = r.coef().to_dict() if which == "peer" else r.params.to_dict()
params = {{"lag_y": "L1.y"}.get(k, k): v for k, v in params.items()}
print(json.dumps({"seconds": min(times), "params": {k: float(v) for k, v in params.items()}}))
"""


def run(python: str, code: str, *args: str, timeout: int = 1800) -> dict:
    t = time.perf_counter()
    try:
        proc = subprocess.run([python, "-c", code, *args], capture_output=True, text=True, timeout=timeout)
    except (FileNotFoundError, subprocess.TimeoutExpired) as err:
        return {"error": f"{type(err).__name__}: {err}"}
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit {proc.returncode}"}
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["process_seconds"] = time.perf_counter() - t
    return out


def main() -> None:
    import causalcts

    RESULTS.mkdir(exist_ok=True)
    tmp = Path(tempfile.mkdtemp())
    report: dict = {"python": sys.version.split()[0], "causalcts": causalcts.__version__}

    gmm_path = tmp / "gmm.parquet"
    gmm_data = causalcts.simulate(2000, 104, seed=1).data
    gmm_data.to_parquet(gmm_path)
    gmm_data.to_csv(tmp / "gmm.csv", index=False)  # the pydynpd environment has no Parquet reader
    print("difference GMM, 2,000 x 104, collapsed, week effects: causalcts ...", flush=True)
    ours = run(sys.executable, OURS_GMM, str(gmm_path))
    print(
        f"  {ours.get('seconds', float('nan')):.2f} s, peak RSS {ours.get('peak_rss_mb', float('nan')):.0f} MB",
        flush=True,
    )
    print("  pydynpd 0.2.2 ...", flush=True)
    peer = run(PYDYNPD_PYTHON, PEER_GMM, str(tmp / "gmm.csv"))
    gmm = {"ours": ours, "pydynpd": peer}
    if "error" not in ours and "error" not in peer:
        gmm["speedup"] = peer["seconds"] / ours["seconds"]
        gmm["max_abs_param_diff"] = max(abs(ours["params"][k] - peer["params"][k]) for k in ours["params"])
        gmm["max_abs_se_diff"] = max(abs(ours["std_errors"][k] - peer["std_errors"][k]) for k in ours["std_errors"])
        print(
            f"  pydynpd {peer['seconds']:.1f} s, peak RSS {peer['peak_rss_mb']:.0f} MB -> {gmm['speedup']:.1f}x; "
            f"largest difference in estimates {gmm['max_abs_param_diff']:.2e}, in SEs {gmm['max_abs_se_diff']:.2e}"
        )
    else:
        print(f"  peer failed: {peer.get('error')}")
    report["diff_gmm_2000x104"] = gmm

    within_path = tmp / "within.parquet"
    causalcts.simulate(2000, 260, seed=2).data.to_parquet(within_path)
    print("within / TWFE, 2,000 x 260, clustered by team ...", flush=True)
    w_ours = run(sys.executable, WITHIN, str(within_path), "ours")
    w_peer = run(sys.executable, WITHIN, str(within_path), "peer")
    within = {"ours": w_ours, "pyfixest": w_peer}
    if "error" not in w_ours and "error" not in w_peer:
        within["speedup"] = w_peer["seconds"] / w_ours["seconds"]
        within["max_abs_param_diff"] = max(abs(w_ours["params"][k] - w_peer["params"][k]) for k in w_ours["params"])
        print(
            f"  causalcts {w_ours['seconds']:.3f} s, pyfixest {w_peer['seconds']:.3f} s -> {within['speedup']:.2f}x; "
            f"largest difference {within['max_abs_param_diff']:.2e}"
        )
    else:
        print(f"  failed: {w_ours.get('error') or w_peer.get('error')}")
    w_lm = run(sys.executable, WITHIN, str(within_path), "linearmodels")
    within["linearmodels"] = w_lm
    if "error" not in w_ours and "error" not in w_lm:
        within["speedup_vs_linearmodels"] = w_lm["seconds"] / w_ours["seconds"]
        print(f"  linearmodels {w_lm['seconds']:.3f} s -> {within['speedup_vs_linearmodels']:.2f}x")
    report["within_2000x260"] = within
    (RESULTS / "estimators.json").write_text(json.dumps(report, indent=2))
    print(f"written {RESULTS / 'estimators.json'}")


if __name__ == "__main__":
    main()
