"""The ``causalcts`` command line.

Examples::

    causalcts demo
    causalcts simulate --teams 500 --weeks 104 --seed 1 -o panel.parquet
    causalcts fit panel.parquet "cr_velocity ~ L(cr_velocity, 1) + ai_share" --method diff-gmm --collapse
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from causalcts.errors import CausalCTSError

DESCRIPTION = """\
causalcts measures what developer tools and practices (AI coding tools above all) do to software
delivery: cost-to-serve-software (CTS-SW), CR velocity and deployment velocity, from weekly team
telemetry, with dynamic panel estimators that match Stata and R and simulations with known truth.

Start with `causalcts demo`: it simulates teams with a known AI-adoption effect, estimates it with
five methods, prints each estimate next to the truth and writes figures to a folder."""


#: Defaults of `causalcts fit` where they differ from Python's: applied only when the method takes the option.
_FIT_DEFAULTS = {"seed": 1, "collapse": True, "max_lag": 4}
#: `causalcts fit` flag -> the fit() option it sets.
_FIT_FLAGS = {"seed": "--seed", "collapse": "--collapse/--no-collapse", "steps": "--steps", "gmm": "--max-lag"}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="causalcts", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    d = sub.add_parser(
        "demo", help="simulate, estimate a known AI-adoption effect, print it beside the truth, save figures"
    )
    d.add_argument(
        "--out", "-o", default="causalcts-demo", help="folder for figures and results (default: %(default)s)"
    )
    d.add_argument("--teams", type=int, default=300, help="number of teams (default: %(default)s)")
    d.add_argument("--weeks", type=int, default=26, help="number of weeks (default: %(default)s)")
    d.add_argument(
        "--effect", type=float, default=0.10, help="true short-run effect of full adoption (default: %(default)s)"
    )
    d.add_argument("--persistence", type=float, default=0.5, help="true persistence beta (default: %(default)s)")
    d.add_argument("--seed", type=int, default=1, help="random seed (default: %(default)s)")

    s = sub.add_parser("simulate", help="write a simulated team-week panel (Parquet or CSV) and its truth (JSON)")
    s.add_argument("--teams", type=int, default=200, help="number of teams (default: %(default)s)")
    s.add_argument("--weeks", type=int, default=52, help="number of weeks (default: %(default)s)")
    s.add_argument("--seed", type=int, default=None, help="random seed; the same seed gives the same file")
    s.add_argument("--effect", type=float, default=None, help="short-run effect of ai_share on both outcomes")
    s.add_argument("--persistence", type=float, default=0.5, help="persistence beta (default: %(default)s)")
    s.add_argument("--outcome-model", choices=["gaussian", "count"], default="gaussian")
    s.add_argument("--missing-weeks", type=float, default=0.0, help="share of team-weeks missing at random")
    s.add_argument(
        "--output", "-o", required=True, help="output file, .parquet or .csv; truth goes to <name>.truth.json"
    )

    b = sub.add_parser("bench", help="simulation recovery studies: which estimator recovers a known effect")
    bsub = b.add_subparsers(dest="bench_command", metavar="BENCH")
    r = bsub.add_parser("recovery", help="run a grid of designs x methods x replications (resumable)")
    r.add_argument(
        "--grid",
        default="smoke",
        help="a grid shipped with causalcts (smoke, paper, headline) or a path to a TOML grid (default: %(default)s)",
    )
    r.add_argument("--engine", choices=["local", "dask"], default="local")
    r.add_argument("--scheduler", default=None, help="Dask scheduler address (default: a LocalCluster)")
    r.add_argument("--workers", type=int, default=None, help="processes (local) or LocalCluster workers")
    r.add_argument("--out", required=True, help="output folder; cells already there are skipped")
    rep = bsub.add_parser("report", help="summary table (with Monte Carlo SEs), markdown and figures of a run")
    rep.add_argument("dir", help="output folder of `causalcts bench recovery`")

    an = sub.add_parser(
        "analyze",
        help="analyse a rollout from a spec file: estimates, diagnostics, savings, an HTML and Markdown report",
    )
    an.add_argument("specs", nargs="+", metavar="SPEC", help="TOML spec file(s) of the rollout(s)")
    an.add_argument("--out", "-o", required=True, help="report folder (written atomically; must be new or empty)")
    an.add_argument("--overwrite", action="store_true", help="replace an existing report folder")
    an.add_argument("--no-progress", action="store_true", help="hide the progress bar")

    f = sub.add_parser("fit", help="estimate a dynamic panel model on a CSV or Parquet file")
    f.add_argument("data", help="CSV or Parquet file, one row per team and week")
    f.add_argument("formula", help="e.g. 'cr_velocity ~ L(cr_velocity, 1) + ai_share + rollback_rate'")
    f.add_argument("--entity", default="team", help="column naming the team (default: %(default)s)")
    f.add_argument("--time", default="week", help="column naming the week or date (default: %(default)s)")
    f.add_argument("--method", default="diff-gmm", choices=_method_names(), help="(default: %(default)s)")
    # the method options default to None: only what the user sets is passed, so an option the method does not take
    # is an error (as in Python), and the CLI's own defaults (_FIT_DEFAULTS) apply only to the methods that take them
    f.add_argument(
        "--seed", type=int, default=None, help=f"bayes: seed of the sampler (default: {_FIT_DEFAULTS['seed']})"
    )
    f.add_argument("--no-time-effects", action="store_true", help="drop the week effects")
    f.add_argument(
        "--collapse",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="diff-gmm, sys-gmm: one instrument column per lag (default: collapsed; --no-collapse for xtabond2's "
        "default, which is slow on long panels)",
    )
    f.add_argument(
        "--max-lag",
        type=int,
        default=None,
        help=f"diff-gmm, sys-gmm: last lag of the outcome used as an instrument, from lag 2 (default: "
        f"{_FIT_DEFAULTS['max_lag']}; -1 for every available lag)",
    )
    f.add_argument(
        "--steps", type=int, choices=[1, 2], default=None, help="diff-gmm, sys-gmm: one- or two-step (default: 1)"
    )
    f.add_argument("--json", default=None, help="also save the results as JSON to this path")
    return p


def _simulate(args) -> None:
    from causalcts.simulate import simulate

    sim = simulate(
        args.teams,
        args.weeks,
        seed=args.seed,
        effect=args.effect,
        persistence=args.persistence,
        outcome_model=args.outcome_model,
        missing_weeks=args.missing_weeks,
    )
    out = Path(args.output)
    if out.suffix.lower() == ".csv":
        sim.data.to_csv(out, index=False)
        import json

        out.with_suffix(".truth.json").write_text(
            json.dumps({"truth": sim.truth.to_dict(), "design": sim.design.to_dict()}, indent=2)
        )
    elif out.suffix.lower() in (".parquet", ".pq"):
        sim.save(out)
    else:
        raise CausalCTSError(f"Output {out} must end in .parquet or .csv.")
    print(
        f"Wrote {len(sim.data)} team-weeks ({args.teams} teams x {args.weeks} weeks) to {out} and the truth to "
        f"{out.with_suffix('.truth.json')}."
    )


def _method_names() -> tuple[str, ...]:
    from causalcts import registry

    return registry.names()


def _fit(args) -> None:
    import pandas as pd

    from causalcts import metrics, registry
    from causalcts.api import fit
    from causalcts.data.formula import parse_formula
    from causalcts.errors import DataFileError, SpecificationError

    dep, _ = parse_formula(args.formula)
    method = registry.get(args.method)
    if args.max_lag is not None and args.max_lag != -1 and args.max_lag < 2:
        raise CausalCTSError(f"--max-lag must be 2 or more (or -1 for every lag), not {args.max_lag}.")

    def gmm(max_lag):
        return {dep: (2, None if max_lag == -1 else max_lag)}

    # what the user set goes to fit() as it is; an option the method does not take is an error naming the flag
    given = {"seed": args.seed, "collapse": args.collapse, "steps": args.steps}
    given["gmm"] = None if args.max_lag is None else gmm(args.max_lag)
    given = {k: v for k, v in given.items() if v is not None}
    bad = [k for k in given if k not in method.options]
    if bad:
        flags = [
            f"{_FIT_FLAGS[k]} ({', '.join(m for m in registry.names() if k in registry.get(m).options)} only)"
            for k in bad
        ]
        raise SpecificationError(
            f"{' and '.join(flags)} {'does' if len(flags) == 1 else 'do'} not apply to --method {args.method}; "
            f"leave {'it' if len(flags) == 1 else 'them'} out."
        )
    defaults = {"seed": _FIT_DEFAULTS["seed"], "collapse": _FIT_DEFAULTS["collapse"]}
    defaults["gmm"] = gmm(_FIT_DEFAULTS["max_lag"])
    options = {**{k: v for k, v in defaults.items() if k in method.options}, **given}
    path = Path(args.data)
    if path.suffix.lower() not in (".csv", ".parquet", ".pq"):
        raise DataFileError(f"Cannot read {path}: use a .csv or .parquet file.")
    if not path.exists():
        raise DataFileError(f"No such file: {path}")
    frame = pd.read_csv(path) if path.suffix.lower() == ".csv" else pd.read_parquet(path)
    # metrics the formula names that the file lacks (cr_velocity, rollback_rate, ...) are derived from raw counts
    derivable = [c for c in method.columns(args.formula, options) if c not in frame.columns and c in metrics.DERIVED]
    if derivable:
        frame = metrics.derive(frame, derivable)
    res = fit(
        args.formula,
        frame,
        entity=args.entity,
        time=args.time,
        method=args.method,
        time_effects=not args.no_time_effects,
        **options,
    )
    print(res.summary())
    if args.json:
        res.to_json(args.json)
        print(f"Results saved to {args.json}.")


def _analyze(args) -> None:
    from causalcts.workflows.analyze import analyze

    res = analyze(args.specs, args.out, overwrite=args.overwrite, progress=not args.no_progress, echo=print)
    print(f"Wrote {res.out_dir}/report.html, report.md, results.json and figures/ ({len(res.files)} files).")


def _bench(args, parser) -> None:
    from causalcts.evaluation.montecarlo import load_grid, run_grid
    from causalcts.plots.report import write_report

    if args.bench_command == "recovery":
        grid = load_grid(args.grid)
        n_cells = len(grid.designs) * grid.replications
        print(
            f"Grid {grid.name!r}: {len(grid.designs)} designs x {grid.replications} replications = {n_cells} cells, "
            f"methods {', '.join(grid.methods)}; engine {args.engine}; results in {args.out}/ "
            "(finished cells are kept)."
        )
        results = run_grid(grid, args.out, engine=args.engine, workers=args.workers, scheduler=args.scheduler)
        failed = int((results["error"] != "").sum())
        warned = int((results["warnings"].fillna("") != "").sum()) if "warnings" in results else 0
        print(
            f"Done: {len(results)} rows, {failed} failed fits recorded, {warned} rows with causalcts warnings "
            f"recorded. Next: causalcts bench report {args.out}"
        )
    elif args.bench_command == "report":
        paths = write_report(args.dir)
        print(paths["text"].read_text())
        print(f"Wrote {', '.join(str(p) for p in paths.values())}")
    else:
        parser.parse_args(["bench", "--help"])


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        if args.command == "demo":
            from causalcts.demo import run_demo

            run_demo(
                args.out,
                n_teams=args.teams,
                n_weeks=args.weeks,
                effect=args.effect,
                persistence=args.persistence,
                seed=args.seed,
            )
        elif args.command == "simulate":
            _simulate(args)
        elif args.command == "fit":
            _fit(args)
        elif args.command == "bench":
            _bench(args, parser)
        elif args.command == "analyze":
            _analyze(args)
    except CausalCTSError as err:
        print(f"causalcts: error: {err}", file=sys.stderr)
        return 2
    except FileNotFoundError as err:
        print(f"causalcts: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
