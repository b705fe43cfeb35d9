"""Write the summary table, markdown and figures of a recovery study folder."""

from __future__ import annotations

from pathlib import Path

from causalcts.evaluation.montecarlo import load_results, summarize, summary_markdown

__all__ = ["write_report"]


def write_report(out_dir: str | Path) -> dict[str, Path]:
    """Summarise ``out_dir``'s results; write ``summary.parquet``, ``summary.md`` and PNG figures."""
    import matplotlib.pyplot as plt

    from causalcts.plots import plot_bias_vs_t, plot_coverage, plot_rmse

    out = Path(out_dir)
    results = load_results(out)
    summary = summarize(results)
    paths = {"summary": out / "summary.parquet", "markdown": out / "summary.md"}
    summary.to_parquet(paths["summary"], index=False)
    paths["markdown"].write_text(summary_markdown(summary) + "\n")
    for term in summary["term"].unique():
        safe = term.replace(".", "_")
        if "n_weeks" in summary and summary["n_weeks"].nunique() > 1:
            fig, ax = plt.subplots(figsize=(7, 4))
            plot_bias_vs_t(summary, term, ax=ax)
            paths[f"bias_{safe}"] = out / f"bias_vs_T_{safe}.png"
            fig.savefig(paths[f"bias_{safe}"], dpi=110, bbox_inches="tight")
            plt.close(fig)
        fig = plt.figure(figsize=(8, 0.3 * len(summary[summary["term"] == term]) + 1.5))
        plot_coverage(summary, term, ax=fig.gca())
        paths[f"coverage_{safe}"] = out / f"coverage_{safe}.png"
        fig.savefig(paths[f"coverage_{safe}"], dpi=110, bbox_inches="tight")
        plt.close(fig)
        fig, ax = plt.subplots(figsize=(7, 3))
        plot_rmse(summary, term, ax=ax)
        paths[f"rmse_{safe}"] = out / f"rmse_{safe}.png"
        fig.savefig(paths[f"rmse_{safe}"], dpi=110, bbox_inches="tight")
        plt.close(fig)
    return paths
