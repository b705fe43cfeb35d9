"""Build the paper with one command: ``python paper/build.py``.

    python paper/build.py                 # the PDF from the committed results (benchmarks/results/, paper/results/)
    python paper/build.py --rerun         # rerun everything behind it first (grids, SBC, benchmarks, example)
    python paper/build.py --quick --out D # end to end on small settings (tiny grid, small SBC, small example): CI

Steps: (1) the results: committed ones, or rerun, or small fresh ones with ``--quick``; (2) every number and table
(``paper/scripts/paper_numbers.py``) and every figure (``paper/scripts/paper_figures.py``) from those files, into
``<out>/generated/numbers.json`` and ``<out>/generated/figures/``; (3) ``<out>/REPRODUCE.md``, the table that maps
each figure, table and group of in-text numbers to its script, inputs, seed, run time, software and hardware, with
the version and date of every results file read; (4) ``benchmarks/README.md`` from ``benchmarks/README.md.in``
(only when building from the committed results into ``paper/``); (5) ``<out>/paper.pdf`` with Typst (the ``typst``
package, offline). The build fails when a number or a figure the manuscript asks for is missing (the manuscript's
``v()`` and ``fig()`` panic), or when a required section or figure count is missing from the compiled document.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PAPER = ROOT / "paper"
RES = ROOT / "benchmarks" / "results"
SCRIPTS = PAPER / "scripts"
SOURCES = ("paper.typ", "template.typ", "refs.bib")
EXAMPLES = ROOT / "examples" / "rollouts"
GRIDS = ROOT / "causalcts" / "evaluation" / "grids"
#: Sections the compiled paper must have (checked after compiling).
REQUIRED_SECTIONS = (
    "Introduction",
    "Cost to serve software and its drivers",
    "The hierarchical model of CTS-SW",
    "The dynamic panel model and its traps",
    "Estimators and what each assumes",
    "Simulation study",
    "Speed against peer tools",
    "A worked natural experiment",
    "Limitations",
    "Reproducibility",
)
MIN_FIGURES = 5
#: Which script wrote each committed results file (for the reproduction table).
PRODUCERS = {
    "estimators.json": "python benchmarks/bench_estimators.py",
    "reml.json": "python benchmarks/bench_reml.py",
    "bayes.json": "python benchmarks/bench_bayes.py",
    "gpu.json": "python benchmarks/bench_gpu.py (GPU)",
    "mlsem.json": "python benchmarks/bench_mlsem.py",
    "sbc.json": "python benchmarks/sbc.py",
    "sbc_mixed.png": "python benchmarks/sbc.py",
    "sbc_dynamic.png": "python benchmarks/sbc.py",
    "summary.parquet": "causalcts bench recovery --grid {grid}; causalcts bench report",
    "grid.json": "causalcts bench recovery --grid {grid}",
    "timing.json": "causalcts bench recovery --grid {grid}; causalcts bench report (cells' timings)",
    "results.json": "causalcts analyze {spec}",
}

sys.path.insert(0, str(SCRIPTS))


class BuildError(RuntimeError):
    """A number, figure or section the paper needs is missing."""


# ------------------------------------------------------------------------------------------------ provenance
def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=20).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def file_provenance(path: Path, fresh: bool) -> dict[str, str]:
    """Version of causalcts and date that produced ``path``: this build for fresh files, else its git commit."""
    import causalcts

    if not fresh:
        try:
            rel = str(path.resolve().relative_to(ROOT))
        except ValueError:
            rel = ""
        log = _git("log", "-1", "--format=%H %cs", "--", rel).split() if rel else []
        dirty = _git("status", "--porcelain", "--", rel) if rel else "?"
        if len(log) == 2 and not dirty:
            commit, date = log
            pyproject = _git("show", f"{commit}:pyproject.toml")
            m = re.search(r'^version\s*=\s*"([^"]+)"', pyproject, re.M)
            return {"version": m.group(1) if m else "unknown", "date": date, "commit": commit[:9]}
    mtime = _dt.date.fromtimestamp(path.stat().st_mtime).isoformat() if path.exists() else "n/a"
    return {"version": causalcts.__version__, "date": mtime, "commit": "this build" if fresh else "uncommitted"}


def software() -> dict[str, str]:
    from importlib import metadata

    out = {"python": platform.python_version()}
    for pkg in ("causalcts", "numpy", "pandas", "scipy", "matplotlib", "nutpie", "pymc", "numba", "typst"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return out


def hardware() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f", {kb / 2**20:.0f} GiB memory"
    except (OSError, ValueError, IndexError):
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{cpu}, {cores} cores available{mem}, {platform.system()} {platform.machine()}"


# --------------------------------------------------------------------------------------------------- the build
class Build:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.quick = args.quick
        default_out = PAPER / "build" / "quick" if args.quick else PAPER
        self.out = Path(args.out).resolve() if args.out else default_out
        self.gen = self.out / "generated"
        self.figs = self.gen / "figures"
        self.results = self.out / "results" if self.quick else None  # fresh small results of --quick
        self.fresh: set[Path] = set()
        self.records: list[dict[str, Any]] = []
        self.figures: dict[str, Path] = {}
        self.grid_runs: list[dict[str, Any]] = []
        self.example_spec = EXAMPLES / f"{args.example}.toml"
        self.t0 = time.perf_counter()

    def say(self, msg: str) -> None:
        print(f"[{time.perf_counter() - self.t0:6.1f} s] {msg}", flush=True)

    @contextmanager
    def step(self, kind: str, name: str, script: str, inputs: list[Path], seed: str = "-"):
        t = time.perf_counter()
        rec = {"kind": kind, "name": name, "script": script, "inputs": inputs, "seed": seed}
        yield rec
        rec["seconds"] = time.perf_counter() - t
        self.records.append(rec)

    def rel(self, p: Path | str) -> str:
        p = Path(p)
        try:
            return str(p.resolve().relative_to(ROOT))
        except ValueError:
            try:
                return "<out>/" + str(p.resolve().relative_to(self.out))
            except ValueError:
                return str(p)

    # ---- (1) results
    def run_results(self) -> dict[str, Any]:
        """Where each input is; produce it first with --rerun (full settings) or --quick (small settings)."""
        a = self.args
        inp: dict[str, Any] = {
            "res": RES,
            "headline": RES / "headline",
            "paper_grid": RES / "paper",
            "exog": RES / "exogeneity",  # --quick reads the committed summary, as it does the headline grid's
            "sbc_json": RES / "sbc.json",
            "sbc_png": {"sbc_mixed": RES / "sbc_mixed.png", "sbc_dynamic": RES / "sbc_dynamic.png"},
            "example": PAPER / "results" / "example",
            "example_spec": EXAMPLES / f"{a.example}.toml",
            "example_truth": EXAMPLES / f"{a.example}.truth.json",
            "quick_grid": None,
        }
        if self.quick:
            self.results.mkdir(parents=True, exist_ok=True)
            inp["quick_grid"] = self._grid(PAPER / "grids" / "quick.toml", self.results / "quick", workers=1)
            inp["sbc_json"], inp["sbc_png"] = self._sbc(self.results, sims=a.sbc_sims or 8, small=True)
            inp["example"] = self._example(self.results / "example", small=True)
            # like the headline and exogeneity grids, the committed paper-grid summary is read when it exists
            inp["paper_grid"] = inp["paper_grid"] if (inp["paper_grid"] / "summary.parquet").exists() else None
        elif a.rerun:
            self._grid("headline", RES / "headline", workers=a.workers)
            self._grid("paper", RES / "paper", workers=a.workers)
            self._grid("exogeneity", RES / "exogeneity", workers=a.workers)
            inp["sbc_json"], inp["sbc_png"] = self._sbc(RES, sims=a.sbc_sims or 200, small=False)
            self.say("speed benchmarks: python benchmarks/collect.py --run")
            subprocess.run([sys.executable, str(ROOT / "benchmarks" / "collect.py"), "--run"], check=True)
            self.fresh |= {RES / n for n in ("estimators.json", "reml.json", "bayes.json", "mlsem.json")}
            inp["example"] = self._example(PAPER / "results" / "example", small=False)
        if not (inp["example"] / "results.json").exists():  # never built: run it (about a minute)
            inp["example"] = self._example(PAPER / "results" / "example", small=False)
        return inp

    def _grid(self, grid: str | Path, folder: Path, workers: int | None) -> Path:
        from causalcts.evaluation.montecarlo import run_grid
        from causalcts.plots.report import write_report

        self.say(f"recovery grid {grid} -> {self.rel(folder)} (resumable: finished cells are kept)")
        run_grid(grid, folder, engine=self.args.engine, workers=workers, scheduler=self.args.scheduler, progress=True)
        write_report(folder)
        self.fresh |= {folder / "summary.parquet", folder / "grid.json"}
        return folder

    def _sbc(self, folder: Path, sims: int, small: bool) -> tuple[Path, dict[str, Path]]:
        if not small:  # the benchmark script itself, with the number of simulations it records
            self.say(f"SBC: python benchmarks/sbc.py --sims {sims}")
            subprocess.run([sys.executable, str(ROOT / "benchmarks" / "sbc.py"), "--sims", str(sims)], check=True)
        else:
            from causalcts.evaluation.calibration import sbc_dynamic, sbc_mixed

            self.say(f"small SBC: {sims} simulations per model")
            summary = {}
            for name, fn in (("mixed", sbc_mixed), ("dynamic", sbc_dynamic)):
                t = time.perf_counter()
                r = fn(sims, seed=2024, draws=100, tune=100, n_draws=19)
                uni = r.uniformity(bins=4)
                summary[name] = {
                    "seconds": time.perf_counter() - t,
                    "design": r.design,
                    "uniformity": uni.to_dict(orient="index"),
                }
                from matplotlib.figure import Figure

                fig = Figure(figsize=(9, 4))
                ax = fig.subplots()
                try:
                    r.plot(ax=ax)
                except TypeError:
                    r.plot()
                fig.savefig(folder / f"sbc_{name}.png", dpi=110, bbox_inches="tight")
            (folder / "sbc.json").write_text(json.dumps(summary, indent=2, default=float))
        pngs = {f"sbc_{n}": folder / f"sbc_{n}.png" for n in ("mixed", "dynamic")}
        self.fresh |= {folder / "sbc.json", *pngs.values()}
        return folder / "sbc.json", pngs

    def _example(self, folder: Path, small: bool) -> Path:
        """``causalcts analyze`` on the shipped example rollout (small: fewer teams, the fast methods)."""
        try:
            from causalcts.workflows.analyze import analyze
        except ImportError:
            self.say("causalcts.workflows is not available: the worked example is left out")
            return folder
        spec = EXAMPLES / f"{self.args.example}.toml"
        if not spec.exists():
            self.say(f"{self.rel(spec)} does not exist (python examples/rollouts/make_rollouts.py writes it)")
            return folder
        if small:
            import pandas as pd

            src = self.results / "example_input"
            src.mkdir(parents=True, exist_ok=True)
            text = spec.read_text()
            data_name = re.search(r'^data\s*=\s*"([^"]+)"', text, re.M).group(1)
            df = pd.read_csv(EXAMPLES / data_name)
            teams = sorted(df["team"].unique())[: self.args.example_teams]
            df[df["team"].isin(teams)].to_csv(src / data_name, index=False)
            text = re.sub(r"^outcomes\s*=.*$", 'outcomes = ["cr_velocity"]', text, flags=re.M)
            text += 'methods = ["within", "bias-corrected"]\n'
            spec = src / spec.name
            spec.write_text(text)
        self.example_spec = spec
        self.say(f"worked example: causalcts analyze {self.rel(spec)}")
        analyze(spec, folder, overwrite=True, progress=False, echo=lambda *a: None)
        self.fresh |= {folder / "results.json"}
        return folder

    # ---- (2) numbers, tables, figures
    def collect(self, inp: dict[str, Any]):
        import pandas as pd
        import paper_figures as pf
        import paper_numbers as pn

        c = pn.Collected()
        crit = pn.criteria_values(c, PAPER / "criteria.toml")
        pn.methods_table(c)
        pn.speed(c, inp["res"])
        pn.sbc(c, inp["sbc_json"])
        pn.headline(c, inp["headline"], crit)
        pn.grid_designs(c, ROOT / "causalcts" / "evaluation" / "grids" / "paper.toml", "paper")
        pn.projection(c, ROOT / "causalcts" / "evaluation" / "grids" / "paper.toml", inp["headline"])
        paper_grid = inp["paper_grid"]
        if paper_grid and not (paper_grid / "summary.parquet").exists() and (paper_grid / "cells").exists():
            from causalcts.plots.report import write_report

            write_report(paper_grid)  # cells of a partial run: summarise what exists
        pn.study(c, paper_grid, "paper", list(pn.METHOD_NAMES), crit)
        if inp["quick_grid"]:
            pn.grid_designs(c, PAPER / "grids" / "quick.toml", "quick")
        pn.study(c, inp["quick_grid"], "quick", list(pn.METHOD_NAMES))
        exog = inp["exog"]
        if not self.quick and not (exog / "summary.parquet").exists() and (exog / "cells").exists():
            from causalcts.plots.report import write_report

            write_report(exog)  # cells of a run without its report: summarise what exists
        exog_toml = GRIDS / "exogeneity.toml"
        exog_crit = pn.exogeneity(c, exog, exog_toml, PAPER / "criteria.toml")
        pn.example(c, inp["example"], inp["example_truth"])
        c.flags["quick"] = self.quick
        c.values["meta.version"] = __import__("causalcts").__version__
        c.values["meta.date"] = _dt.date.today().isoformat()
        c.values["meta.python"] = platform.python_version()
        c.values["meta.mode"] = (
            "quick (small settings)" if self.quick else ("rerun" if self.args.rerun else "committed results")
        )
        c.values["meta.example"] = self.args.example

        # figures
        self.figs.mkdir(parents=True, exist_ok=True)
        for old in self.figs.glob("*.png"):
            old.unlink()
        load = lambda n: json.loads((inp["res"] / n).read_text()) if (inp["res"] / n).exists() else {}  # noqa: E731
        ins = [inp["res"] / n for n in ("estimators.json", "reml.json", "bayes.json")]
        with self.step("figure", "speed", "paper/scripts/paper_figures.py:speed", ins):
            self.figures.update(pf.speed(load("estimators.json"), load("reml.json"), load("bayes.json"), self.figs))
        head = pd.read_parquet(inp["headline"] / "summary.parquet")
        design = json.loads((inp["headline"] / "grid.json").read_text())["designs"][0]
        w = head[(head["method"] == "within") & head["term"].str.startswith("L1.")]
        from causalcts.evaluation.montecarlo import load_grid

        betas = tuple({float(d.get("persistence", 0.5)) for d in load_grid("paper").designs})
        hin = [inp["headline"] / "summary.parquet", inp["headline"] / "grid.json"]
        with self.step("figure", "nickell", "paper/scripts/paper_figures.py:nickell_curve", hin):
            self.figures.update(
                pf.nickell_curve(
                    float(design["persistence"]),
                    int(design["n_weeks"]) - 1,
                    float(w["bias"].iloc[0]) if len(w) else None,
                    float(w["bias_mcse"].iloc[0]) if len(w) else None,
                    self.figs,
                    betas,
                )
            )
        with self.step(
            "figure", "headline_*", "paper/scripts/paper_figures.py:recovery", hin, seed=str(c.values["headline.seed"])
        ):
            self.figures.update(pf.recovery(head, "headline", self.figs))
        for name in ("paper", "quick"):
            folder = paper_grid if name == "paper" else inp["quick_grid"]
            if c.flags.get(f"{name}_run"):
                s = pd.read_parquet(folder / "summary.parquet")
                with self.step(
                    "figure", f"{name}_*", "paper/scripts/paper_figures.py:recovery", [folder / "summary.parquet"]
                ):
                    self.figures.update(pf.recovery(s, name, self.figs))
        if c.flags.get("exog_run"):
            ein = [exog / "summary.parquet", exog_toml, PAPER / "criteria.toml"]
            with self.step(
                "figure", "exog_*", "paper/scripts/paper_figures.py:exogeneity", ein, seed=c.values["exog.seed"]
            ):
                es = pn.exog_summary(exog / "summary.parquet", exog_toml, exog_crit)
                self.figures.update(pf.exogeneity(es, exog_crit, self.figs))

        # the recovery grids behind the paper: command, seed, replications, time of the fits (each fit's own
        # timing in its worker, summed: not CPU time, a sampler's chains run in threads)
        def grid_run(name: str, folder: Path, seed: str, reps: str, time: str, workers: str = "") -> dict[str, Any]:
            out = f"benchmarks/results/{name}"
            return {
                "results": folder / "summary.parquet",
                "grid": GRIDS / f"{name}.toml",
                "command": f"causalcts bench recovery --grid {name}{workers} --out {out}; causalcts bench report {out}",
                "seed": seed,
                "reps": reps,
                "time": time,
            }

        v = c.values
        self.grid_runs = [
            grid_run(
                "headline",
                inp["headline"],
                v["headline.seed"],
                v["headline.reps"],
                f"{v['headline.cpu_minutes']} min of fits summed (per-fit seconds of the summary x replications)",
            )
        ]
        if c.flags.get("paper_run") and inp["paper_grid"]:
            timed = (
                f"{v['study_paper.wall_minutes']} min wall ({v['study_paper.wall_from']}); "
                f"{v['study_paper.fit_minutes']} min of fits summed (`timing.json`)"
            )
            self.grid_runs.append(
                grid_run(
                    "paper",
                    inp["paper_grid"],
                    v["grid_paper.seed"],
                    v["study_paper.reps_run"],
                    timed if c.flags.get("paper_timed") else "not recorded (no `timing.json`)",
                    workers=" --workers 2",
                )
            )
        if c.flags.get("exog_run"):
            how = (
                "cells' `seconds` summed, one per fit"
                if v["exog.seconds_from"] == "cells"
                else "summary's mean seconds per fit x fits; the cells are not committed"
            )
            self.grid_runs.append(
                grid_run(
                    "exogeneity",
                    exog,
                    v["exog.seed"],
                    v["exog.reps"],
                    f"{v['exog.cpu_minutes']} min of fits summed ({v['exog.cpu_hours']} h; the {how})",
                )
            )
        sbc_seed = c.values.get("sbc.mixed.seed", "-")
        with self.step(
            "figure",
            "sbc_*",
            "benchmarks/sbc.py (copied)" if not self.quick else "paper/build.py:_sbc",
            list(inp["sbc_png"].values()),
            seed=sbc_seed,
        ) as rec:
            self.figures.update(pf.copy(inp["sbc_png"], self.figs))
            rec["per"] = inp["sbc_png"]
        if c.flags.get("example_run"):
            ex = inp["example"] / "figures"
            outcome = c.values["example.outcome"]
            srcs = {
                "example_adoption": ex / "adoption_by_cohort.png",
                "example_estimates": ex / f"estimates_{outcome}.png",
                "example_event_study": ex / f"event_study_{outcome}.png",
                "example_twfe_weights": ex / f"twfe_weights_{outcome}.png",
            }
            seed = json.loads((inp["example"] / "results.json").read_text())["spec"].get("seed", "-")
            with self.step(
                "figure",
                "example_*",
                f"causalcts analyze {self.rel(self.example_spec)} (copied)",
                list(srcs.values()),
                seed=str(seed),
            ) as rec:
                self.figures.update(pf.copy(srcs, self.figs))
                rec["per"] = srcs
        return c

    # ---- (3) reproduction table
    def reproduce_md(self, c, inp: dict[str, Any], seconds_pdf: float) -> str:
        sw = software()
        files: list[Path] = sorted({Path(p) for s in c.sources.values() for p in s["inputs"]} | {
            p for r in self.records for p in r["inputs"]})  # fmt: skip
        lines = [
            "# Reproducing the paper",
            "",
            "Generated by `python paper/build.py` (do not edit). Mode: "
            f"**{c.values['meta.mode']}**; built {c.values['meta.date']} in {time.perf_counter() - self.t0:.0f} s "
            f"(PDF compile {seconds_pdf:.1f} s).",
            "",
            "Software: " + ", ".join(f"{k} {v}" for k, v in sw.items()) + ".",
            "",
            f"Hardware of this build: {hardware()}. The committed results files do not record their hardware.",
            "",
            "| command | what it does |",
            "|---|---|",
            "| `python paper/build.py` | the PDF from the committed results |",
            "| `python paper/build.py --quick --out DIR` | end to end on small settings (what CI runs) |",
            "| `python paper/build.py --rerun` | reruns the grids (resumable), the SBC, the speed benchmarks and the "
            "example first |",
            "",
            "## Results files read",
            "",
            "Numbers from files produced by an older causalcts are that version's numbers, not the current one's.",
            "",
            "| file | causalcts version | date | commit | produced by |",
            "|---|---|---|---|---|",
        ]
        for p in files:
            p = Path(p)
            full = p if p.is_absolute() else ROOT / p
            if not full.exists() or full.suffix in (".py",):
                continue
            prov = file_provenance(full, full in self.fresh or (self.quick and str(full).startswith(str(self.out))))
            grid = full.parent.name
            producer = PRODUCERS.get(full.name, "written by hand before the runs" if full.suffix == ".toml" else "-")
            producer = producer.format(grid=grid, spec=self.rel(self.example_spec))
            if full.name == "sbc.json":
                d = json.loads(full.read_text())
                producer += " --sims " + "/".join(sorted({str(v["design"]["n_sims"]) for v in d.values()}))
            lines.append(
                f"| `{self.rel(full)}` | {prov['version']} | {prov['date']} | {prov['commit']} | `{producer}` |"
            )
        lines += [
            "",
            "## Figures",
            "",
            "| figure | made by | inputs | seed | time (this build) |",
            "|---|---|---|---|---|",
        ]
        for r in (r for r in self.records if r["kind"] == "figure"):
            names = [n for n in self.figures if re.fullmatch(r["name"].replace("*", ".*"), n)]
            for n in names:
                ins = [r["per"][n]] if n in r.get("per", {}) else r["inputs"]
                lines.append(
                    f"| `generated/figures/{n}.png` | `{r['script']}` | "
                    + ", ".join(f"`{self.rel(i)}`" for i in ins)
                    + f" | {r['seed']} | {r['seconds']:.1f} s |"
                )
        lines += [
            "",
            "## Recovery grids",
            "",
            "| results | grid (written before the run) | command | seed | replications | run time of the fits |",
            "|---|---|---|---|---|---|",
        ]
        for g in self.grid_runs:
            lines.append(
                f"| `{self.rel(g['results'])}` | `{self.rel(g['grid'])}` | `{g['command']}` | {g['seed']} | "
                f"{g['reps']} | {g['time']} |"
            )
        lines += ["", "## Tables", "", "| table | made by | inputs | rows |", "|---|---|---|---|"]
        for k, s in c.sources.items():
            if k.startswith("table:"):
                lines.append(
                    f"| {k[6:]} | `{s['script']}` | "
                    + ", ".join(f"`{self.rel(i)}`" for i in s["inputs"])
                    + f" | {s['keys']} |"
                )
        lines += [
            "",
            "## In-text numbers",
            "",
            'Every number in `paper/paper.typ` is `v("group.key")`, read from `generated/numbers.json`; '
            "each group comes from:",
            "",
            "| group | numbers | made by | inputs |",
            "|---|---|---|---|",
        ]
        for k, s in c.sources.items():
            if not k.startswith("table:"):
                lines.append(
                    f"| `{k}` | {s['keys']} | `{s['script']}` | "
                    + ", ".join(f"`{self.rel(i)}`" for i in s["inputs"])
                    + " |"
                )
        steps = [r for r in self.records if r["kind"] != "figure"]
        if steps:
            lines += ["", "## Steps of this build", "", "| step | time |", "|---|---|"]
            lines += [f"| {r['name']} | {r['seconds']:.1f} s |" for r in steps]
        return "\n".join(lines) + "\n"

    # ---- (4) benchmarks/README.md
    def render_readme(self, c, template: Path, dest: Path) -> None:
        text = re.sub(r"\A<!--.*?-->\n", "", template.read_text(), count=1, flags=re.S)  # the template's own note
        flags = getattr(c, "flags", {})
        # {{#if flag}} ... {{else}} ... {{/if}}: text kept only when the flag is set (results that may not exist);
        # blocks may nest: the innermost (a body without another {{#if) are resolved first, until none is left
        block = re.compile(
            r"\{\{#if ([^{}]+)\}\}((?:(?!\{\{#if).)*?)(?:\{\{else\}\}((?:(?!\{\{#if).)*?))?\{\{/if\}\}", re.S
        )
        while True:
            text, k = block.subn(lambda m: m.group(2) if flags.get(m.group(1).strip()) else (m.group(3) or ""), text)
            if not k:
                break

        def fill(m: re.Match) -> str:
            key = m.group(1).strip()
            if key.startswith("table:"):
                t = c.tables.get(key[6:])
                if t is None:
                    raise BuildError(f"{template.name}: no table {key[6:]!r}")
                rows = ["| " + " | ".join(t["columns"]) + " |", "|" + "---|" * len(t["columns"])]
                return "\n".join(rows + ["| " + " | ".join(r) + " |" for r in t["rows"]])
            if key not in c.values:
                raise BuildError(f"{template.name}: unfilled placeholder {{{{{key}}}}}")
            return c.values[key].replace("\u2212", "-")

        out = re.sub(r"\{\{([^{}]+)\}\}", fill, text)
        if "{{" in out:
            raise BuildError(f"{template.name}: a placeholder stays unfilled")
        dest.write_text(out)

    # ---- (5) PDF
    def compile_pdf(self) -> float:
        import typst

        if self.out != PAPER:
            for name in SOURCES:
                shutil.copy(PAPER / name, self.out / name)
        t = time.perf_counter()
        try:
            typst.compile(str(self.out / "paper.typ"), output=str(self.out / "paper.pdf"), root=str(self.out))
        except Exception as err:  # typst raises its own error type with the panic message
            raise BuildError(f"Typst failed (an unfilled number or a missing figure panics): {err}") from None
        return time.perf_counter() - t

    def check_pdf(self) -> dict[str, Any]:
        return check_document(self.out)


def count_pages(pdf: Path) -> int:
    """Pages of a PDF: its ``/Type /Page`` objects (not ``/Pages``); Typst writes them uncompressed."""
    return len(re.findall(rb"/Type\s*/Page(?![a-zA-Z])", pdf.read_bytes()))


def check_document(out: Path) -> dict[str, Any]:
    """Pages, headings and figures of the compiled paper in ``out``; raise if a section or figure is missing."""
    import typst

    typ = str(out / "paper.typ")
    heads = json.loads(typst.query(typ, "heading", field="body", root=str(out)))
    titles = [h if isinstance(h, str) else _plain(h) for h in heads]
    figures = json.loads(typst.query(typ, "figure.where(kind: image)", root=str(out)))
    missing = [s for s in REQUIRED_SECTIONS if not any(s.lower() == t.lower() for t in titles)]
    if missing:
        raise BuildError(f"sections missing from the paper: {missing}")
    if len(figures) < MIN_FIGURES:
        raise BuildError(f"{len(figures)} figures in the paper, fewer than {MIN_FIGURES}")
    return {"pages": count_pages(out / "paper.pdf"), "sections": titles, "figures": len(figures)}


def _plain(node: Any) -> str:
    """The text of a Typst content node (as ``typst query`` returns it)."""
    if isinstance(node, str):
        return node
    if isinstance(node, list):
        return "".join(_plain(n) for n in node)
    if isinstance(node, dict):
        if "text" in node:
            return node["text"]
        if node.get("func") == "space":
            return " "
        if "children" in node:
            return "".join(_plain(n) for n in node["children"])
        if "body" in node:
            return _plain(node["body"])
    return ""


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--rerun", action="store_true", help="rerun the grids, SBC, benchmarks and example first")
    mode.add_argument("--quick", action="store_true", help="end to end on small settings (CI)")
    ap.add_argument("--out", help="output folder (default: paper/, or paper/build/quick with --quick)")
    ap.add_argument("--engine", choices=("local", "dask"), default="local", help="engine of the recovery grids")
    ap.add_argument("--scheduler", help="Dask scheduler address (with --engine dask)")
    ap.add_argument("--workers", type=int, help="processes of the recovery grids")
    ap.add_argument("--sbc-sims", type=int, help="SBC simulations per model (default 200; 8 with --quick)")
    ap.add_argument("--example", default="steady", help="the example rollout of examples/rollouts/ (default steady)")
    ap.add_argument("--example-teams", type=int, default=40, help="teams of the small example of --quick")
    args = ap.parse_args(argv)
    b = Build(args)
    b.out.mkdir(parents=True, exist_ok=True)
    b.say(f"building into {b.out} ({'quick' if b.quick else 'rerun' if args.rerun else 'committed results'})")
    with b.step("step", "results (rerun or small runs)", "paper/build.py:run_results", []):
        inp = b.run_results()
    with b.step("step", "numbers, tables, figures", "paper/build.py:collect", []):
        c = b.collect(inp)
    b.gen.mkdir(parents=True, exist_ok=True)
    doc = {
        "values": c.values,
        "flags": c.flags,
        "tables": c.tables,
        "figures": {k: f"generated/figures/{p.name}" for k, p in sorted(b.figures.items())},
    }
    (b.gen / "numbers.json").write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
    b.say(f"{len(c.values)} numbers, {len(c.tables)} tables, {len(b.figures)} figures -> {b.rel(b.gen)}")
    template = ROOT / "benchmarks" / "README.md.in"
    readme = ROOT / "benchmarks" / "README.md" if b.out == PAPER else b.out / "benchmarks-README.md"
    b.render_readme(c, template, readme)
    b.say(f"wrote {b.rel(readme)}")
    secs = b.compile_pdf()
    info = b.check_pdf()
    (b.out / "REPRODUCE.md").write_text(b.reproduce_md(c, inp, secs))
    pdf, rep = b.rel(b.out / "paper.pdf"), b.rel(b.out / "REPRODUCE.md")
    b.say(f"wrote {pdf}: {info['pages']} pages, {info['figures']} figures; {rep}")
    return info


if __name__ == "__main__":
    try:
        main()
    except BuildError as err:
        sys.exit(f"paper/build.py: {err}")
