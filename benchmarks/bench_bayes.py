"""Bayesian speed benchmark: the integrated mixed model against the same model with one parameter per team.

Targets (issue: Bayesian models): random intercept and slope on 2,000 teams x 260 weeks (520,000 rows):
minimum bulk ESS >= 400 over every fixed effect and hyperparameter, R-hat <= 1.01, in <= 30 s wall
time on 2 cores, compilation included; at least 20 times the ESS per second of the best naive PyMC
model (non-centred and centred, sampled with nutpie) measured in the same run. The Bayesian dynamic
panel of the same size to the same standard.

Each model runs in a fresh subprocess (so compilation is counted: numba compiles the integrated
log-density in every process, about 2-4 s, since nothing is cached on disk). A naive model that exceeds
--naive-timeout is recorded as a failure with its limit, not dropped. Every sampler runs 4 chains on
--cores cores (default 2, the target machine). The naive models use the same priors as
``causalcts.mixed``'s defaults: outcome and regressors standardised, N(0, 2.5^2) coefficients,
HalfNormal(1) residual SD, HalfNormal(2.5) random-effect SDs and LKJ(1), on centred effects.

    python benchmarks/bench_bayes.py                 # writes benchmarks/results/bayes.json
    python benchmarks/bench_bayes.py --skip-naive    # only the integrated models
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

OUT = Path(__file__).resolve().parent / "results"
FORMULA = (
    "log_cts ~ cr_velocity + rollback_rate + interventions_per_deploy + pages_per_oncall + (1 + cr_velocity | team)"
)

INTEGRATED = r"""
import json, sys, time, warnings
t0 = time.perf_counter()
import pandas as pd, causalcts
d = pd.read_parquet(sys.argv[1])
t1 = time.perf_counter()
warnings.simplefilter("ignore")
r = causalcts.mixed(sys.argv[2], d, method="nuts", seed=1, cores=int(sys.argv[3]))
t2 = time.perf_counter()
diag = r.diagnostics
print(json.dumps({"fit_seconds": t2 - t1, "process_seconds": t2 - t0, "min_ess_bulk": float(diag["ess_bulk"].min()),
                  "min_ess_tail": float(diag["ess_tail"].min()), "max_rhat": float(diag["r_hat"].max()),
                  "converged": bool(r.converged), "sampler": r.info["sampler"], "params": r.params.to_dict()}))
"""

DYNAMIC = r"""
import json, sys, time, warnings
t0 = time.perf_counter()
import pandas as pd, causalcts
d = pd.read_parquet(sys.argv[1])
t1 = time.perf_counter()
warnings.simplefilter("ignore")
r = causalcts.fit("cr_velocity ~ L(cr_velocity, 1) + ai_share + rollback_rate + interventions_per_deploy", d,
                  method="bayes", seed=1, cores=int(sys.argv[2]))
t2 = time.perf_counter()
diag = r.diagnostics
print(json.dumps({"fit_seconds": t2 - t1, "process_seconds": t2 - t0, "min_ess_bulk": float(diag["ess_bulk"].min()),
                  "min_ess_tail": float(diag["ess_tail"].min()), "max_rhat": float(diag["r_hat"].max()),
                  "converged": bool(r.converged), "params": r.params.to_dict()}))
"""

NAIVE = r"""
import json, sys, time, warnings
t0 = time.perf_counter()
import numpy as np, pandas as pd, pymc as pm, nutpie, arviz as az
d = pd.read_parquet(sys.argv[1]).sort_values(["team", "week"])
centred = sys.argv[2] == "centred"
warnings.simplefilter("ignore")
g, teams = pd.factorize(d["team"])
std = lambda a: (a - a.mean(axis=0)) / a.std(axis=0)  # the standardisation causalcts.mixed applies internally
cols = ["cr_velocity", "rollback_rate", "interventions_per_deploy", "pages_per_oncall"]
X = np.column_stack([np.ones(len(d)), std(d[cols].to_numpy())])
y = std(d["log_cts"].to_numpy()); x1 = X[:, 1]
terms = ["Intercept", *cols]
with pm.Model(coords={"team": teams, "re": ["Intercept", "cr_velocity"], "term": terms}) as m:
    beta = pm.Normal("beta", mu=0.0, sigma=2.5, dims="term")
    sigma = pm.HalfNormal("sigma", 1.0)
    chol, corr, sds = pm.LKJCholeskyCov(
        "re_chol", n=2, eta=1.0, sd_dist=pm.HalfNormal.dist(sigma=2.5, shape=2), compute_corr=True
    )
    pm.Deterministic("re_corr", corr[0, 1])
    pm.Deterministic("re_sd", sds, dims="re")
    if centred:
        b = pm.MvNormal("b", mu=np.zeros(2), chol=chol, dims=("team", "re"))
    else:
        z = pm.Normal("z", 0, 1, dims=("team", "re"))
        b = pm.Deterministic("b", z @ chol.T, dims=("team", "re"))
    mu = pm.math.dot(X, beta) + b[g, 0] + b[g, 1] * x1
    pm.Normal("y", mu, sigma, observed=y)
t1 = time.perf_counter()
compiled = nutpie.compile_pymc_model(m, default_initialization_strategy="prior")
idata = nutpie.sample(compiled, draws=int(sys.argv[4]), tune=int(sys.argv[3]), chains=4, cores=int(sys.argv[5]),
                      seed=1, progress_bar=False)
t2 = time.perf_counter()
s = az.summary(idata, var_names=["beta", "sigma", "re_sd", "re_corr"], kind="diagnostics")
print(json.dumps({"fit_seconds": t2 - t1, "process_seconds": t2 - t0, "min_ess_bulk": float(s["ess_bulk"].min()),
                  "max_rhat": float(s["r_hat"].max())}))
"""


def run(code: str, *args: str, timeout: float) -> dict:
    t = time.perf_counter()
    try:
        p = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"did not finish within {timeout:.0f} s", "fit_seconds": timeout}
    if p.returncode != 0:
        return {"error": (p.stderr.strip().splitlines() or [f"exit {p.returncode}"])[-1]}
    out = json.loads(p.stdout.strip().splitlines()[-1])
    out["wall_seconds"] = time.perf_counter() - t
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--teams", type=int, default=2000)
    ap.add_argument("--weeks", type=int, default=260)
    ap.add_argument("--skip-naive", action="store_true")
    ap.add_argument("--naive-timeout", type=float, default=1800)
    ap.add_argument("--naive-tune", type=int, default=1000)
    ap.add_argument("--naive-draws", type=int, default=1000, help="fewer draws still estimate the ESS per second")
    ap.add_argument("--cores", type=int, default=2, help="parallel chains for every sampler")
    args = ap.parse_args()
    import causalcts

    OUT.mkdir(exist_ok=True)
    path = Path(tempfile.mkdtemp()) / "panel.parquet"
    causalcts.simulate(args.teams, args.weeks, seed=3).data.to_parquet(path)
    report = {"teams": args.teams, "weeks": args.weeks, "formula": FORMULA, "cores": args.cores}
    print(f"integrated mixed model, {args.teams} x {args.weeks} ...", flush=True)
    ours = run(INTEGRATED, str(path), FORMULA, str(args.cores), timeout=3600)
    report["integrated"] = ours
    print(f"  {json.dumps({k: v for k, v in ours.items() if k != 'params'})}", flush=True)
    print("integrated dynamic panel ...", flush=True)
    dyn = run(DYNAMIC, str(path), str(args.cores), timeout=3600)
    report["dynamic"] = dyn
    print(f"  {json.dumps({k: v for k, v in dyn.items() if k != 'params'})}", flush=True)
    if not args.skip_naive:
        for kind in ("noncentred", "centred"):
            print(f"naive PyMC model, {kind}, nutpie ...", flush=True)
            res = run(
                NAIVE,
                str(path),
                kind,
                str(args.naive_tune),
                str(args.naive_draws),
                str(args.cores),
                timeout=args.naive_timeout,
            )
            res["tune"], res["draws"] = args.naive_tune, args.naive_draws
            report[f"naive_{kind}"] = res
            print(f"  {json.dumps(res)}", flush=True)
        rates = {
            k: report[k]["min_ess_bulk"] / report[k]["fit_seconds"]
            for k in ("naive_noncentred", "naive_centred")
            if "min_ess_bulk" in report[k]
        }
        if "min_ess_bulk" in ours and rates:
            ours_rate = ours["min_ess_bulk"] / ours["fit_seconds"]
            report["ess_per_second"] = {"integrated": ours_rate, **rates}
            report["ratio_vs_best_naive"] = ours_rate / max(rates.values())
            print(
                f"ESS per second: integrated {ours_rate:.1f}, best naive {max(rates.values()):.2f} -> "
                f"{report['ratio_vs_best_naive']:.0f}x",
                flush=True,
            )
    (OUT / "bayes.json").write_text(json.dumps(report, indent=2, default=float))


if __name__ == "__main__":
    main()
