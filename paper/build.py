"""Build the paper's figures with one command: ``python paper/build.py``.

Every figure is written by a named script from committed inputs; FIGURES.md maps each figure to the
command that made it. ``--rerun`` also reruns the smoke recovery grid and the small SBC first (minutes);
without it the committed benchmark outputs in benchmarks/results/ are used.
"""

from __future__ import annotations

import argparse
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIG = ROOT / "paper" / "figures"
RES = ROOT / "benchmarks" / "results"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rerun", action="store_true")
    args = ap.parse_args()
    import causalcts
    from causalcts.demo import run_demo
    from causalcts.plots.report import write_report

    FIG.mkdir(parents=True, exist_ok=True)
    rows = []
    t0 = time.perf_counter()
    rep = run_demo(FIG / "demo", echo=lambda *a: None)
    rows += [(p.relative_to(ROOT), "causalcts demo (causalcts/demo.py), seed 1") for p in rep.figures]
    if args.rerun:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "causalcts.cli",
                "bench",
                "recovery",
                "--grid",
                "smoke",
                "--out",
                str(RES / "smoke"),
            ],
            check=True,
        )
        subprocess.run([sys.executable, str(ROOT / "benchmarks" / "sbc.py"), "--sims", "100"], check=True)
    for name in ("headline", "smoke"):
        folder = RES / name
        if (folder / "cells").exists():
            for path in write_report(folder).values():
                if path.suffix == ".png":
                    dest = FIG / f"{name}_{path.name}"
                    shutil.copy(path, dest)
                    rows.append((dest.relative_to(ROOT), f"causalcts bench report benchmarks/results/{name}"))
        elif (folder / "summary.md").exists():
            for png in folder.glob("*.png"):
                dest = FIG / f"{name}_{png.name}"
                shutil.copy(png, dest)
                rows.append((dest.relative_to(ROOT), f"causalcts bench report benchmarks/results/{name} (committed)"))
    for png in RES.glob("sbc_*.png"):
        dest = FIG / png.name
        shutil.copy(png, dest)
        rows.append((dest.relative_to(ROOT), "python benchmarks/sbc.py --sims 200"))
    lines = [
        "# Figures",
        "",
        f"Built by `python paper/build.py` in {time.perf_counter() - t0:.0f} s with causalcts "
        f"{causalcts.__version__}, Python {platform.python_version()} on {platform.machine()}.",
        "",
        "| figure | made by |",
        "|---|---|",
    ]
    lines += [f"| `{p}` | `{cmd}` |" for p, cmd in rows]
    (ROOT / "paper" / "FIGURES.md").write_text("\n".join(lines) + "\n")
    print(f"{len(rows)} figures in {FIG}; see paper/FIGURES.md")


if __name__ == "__main__":
    main()
