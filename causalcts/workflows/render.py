"""The report as a document (sections of paragraphs, tables and figures) rendered to HTML and Markdown.

Every number on the report comes from the ``results.json`` dictionary passed in, through one table renderer
(:func:`table`), so the HTML page and the Markdown file hold the same content. The HTML page is self-contained:
its style sheet is inline, its figures are base64 PNG ``data:`` URIs, and it loads no script, font or style
sheet from anywhere.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jinja2

from causalcts.workflows.savings import describe

__all__ = ["TEMPLATES", "document", "fmt", "render", "table"]

#: Folder of the jinja2 templates (package data: ``workflows/templates/*.j2``).
TEMPLATES = Path(__file__).with_name("templates")


def fmt(value: Any, kind: str = "num") -> str:
    """A number as report text: ``num`` 4 significant digits, ``p`` p-values, ``money``, ``pct``, ``int``.

    Examples
    --------
    >>> from causalcts.workflows.render import fmt
    >>> fmt(0.123456), fmt(None), fmt(0.00001, "p"), fmt(1234567.8, "money"), fmt(-0.0312, "pct")
    ('0.1235', '', '<0.0001', '1,234,568', '-3.1%')
    """
    if value is None:
        return ""
    if isinstance(value, bool) or isinstance(value, str):
        return str(value)
    if kind == "p":
        return "<0.0001" if value < 1e-4 else f"{value:.4f}"
    if kind == "money":
        return f"{value:,.0f}"
    if kind == "pct":
        return f"{100 * value:+.1f}%"
    if kind == "int":
        return f"{int(value):,}"
    if isinstance(value, int):
        return str(value)
    return f"{value:.4g}"


def table(
    rows: Sequence[Mapping[str, Any]],
    columns: Sequence[tuple[str, str, str]],
    *,
    caption: str = "",
    table_id: str = "",
    css: str = "",
) -> dict[str, Any]:
    """A table block: ``columns`` are (key, header, format kind); cells are formatted with :func:`fmt`.

    Examples
    --------
    >>> from causalcts.workflows.render import table
    >>> t = table([{"m": "within", "b": 0.51234}], [("m", "method", "str"), ("b", "estimate", "num")])
    >>> t["header"], t["rows"]
    (['method', 'estimate'], [['within', '0.5123']])
    """
    return {
        "type": "table",
        "caption": caption,
        "id": table_id,
        "css": css,
        "header": [h for _, h, _ in columns],
        "rows": [[fmt(r.get(k), kind) for k, _, kind in columns] for r in rows],
    }


def _p(text: str) -> dict[str, Any]:
    return {"type": "p", "text": text}


def _fig(files: Mapping[str, str], name: str) -> list[dict[str, Any]]:
    return (
        [{"type": "figure", "file": f"figures/{name}", "name": name, "caption": files[name]}] if name in files else []
    )


def _slug(text: str) -> str:
    import re

    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower()


_EST = [
    ("method", "method", "str"),
    ("term", "term", "str"),
    ("estimate", "estimate", "num"),
    ("std_error", "std. error", "num"),
    ("lower", "lower", "num"),
    ("upper", "upper", "num"),
]
_LR = [
    ("method", "method", "str"),
    ("estimate", "long-run effect", "num"),
    ("std_error", "std. error", "num"),
    ("lower", "lower", "num"),
    ("upper", "upper", "num"),
]
_DIAG = [
    ("name", "check", "str"),
    ("variable", "variable", "str"),
    ("statistic", "statistic", "num"),
    ("pvalue", "p-value", "p"),
    ("verdict", "verdict", "str"),
    ("note", "note", "str"),
]


def _audit_section(r: Mapping[str, Any], files: Mapping[str, str]) -> dict[str, Any]:
    a, spec = r["audit"], r["spec"]
    facts = [
        ("teams", a["teams"]),
        ("weeks", a["weeks"]),
        ("first week", a["first_week"]),
        ("last week", a["last_week"]),
        ("team-weeks (rows)", a["rows"]),
        ("balanced", "yes" if a["balanced"] else "no"),
        ("team-weeks missing from a full panel", a["missing_team_weeks"]),
        ("gaps inside a team's series", a["gaps_inside_teams"]),
        ("teams with gaps", a["teams_with_gaps"]),
        ("teams joining late", a["teams_joining_late"]),
        ("teams leaving early", a["teams_leaving_early"]),
        ("teams reaching the onset threshold", a["cohorts"]["treated_teams"]),
        ("teams never reaching it", a["cohorts"]["never_treated_teams"]),
        ("first / last onset week", f"{a['cohorts']['first_onset']} / {a['cohorts']['last_onset']}"),
    ]
    sh = a["share"]
    share_rows = [{"stat": "mean", "value": sh["mean"]}, {"stat": "SD", "value": sh["sd"]}]
    share_rows += [{"stat": f"quantile {k}", "value": v} for k, v in sh["quantiles"].items()]
    share_rows += [
        {"stat": "share of team-weeks at 0", "value": sh["share_of_team_weeks_at_zero"]},
        {
            "stat": f"share of team-weeks at or above {a['onset_threshold']:g}",
            "value": sh["share_of_team_weeks_at_or_above_threshold"],
        },
        {"stat": "mean in the last week", "value": sh["mean_in_last_week"]},
    ]
    blocks = [
        _p(f"Data: {spec['data']} ({spec['entity']} x {spec['time']}); treatment {spec['treatment']!r}."),
        table(
            [{"k": k, "v": v} for k, v in facts],
            [("k", "fact", "str"), ("v", "value", "num")],
            caption="The panel",
            table_id="audit",
        ),
        table(
            a["missingness"],
            [("column", "column", "str"), ("missing", "missing", "int"), ("share_missing", "share missing", "num")],
            caption="Missing values",
        ),
        table(
            share_rows,
            [("stat", "statistic", "str"), ("value", f"{spec['treatment']}", "num")],
            caption="Distribution of the share",
        ),
        *_fig(files, "adoption_by_cohort.png"),
        *_fig(files, "share_distribution.png"),
    ]
    return {"title": "Data audit", "id": "audit", "blocks": blocks}


def _metrics_section(r: Mapping[str, Any]) -> dict[str, Any]:
    rows = [
        {"name": m["name"], "from": ", ".join(m["from"]), "description": m["description"]} for m in r["metrics_derived"]
    ]
    blocks = [
        table(
            rows,
            [("name", "metric", "str"), ("from", "computed from", "str"), ("description", "meaning", "str")],
            caption="Metrics derived from raw telemetry columns",
            table_id="metrics",
        ),
        _p("Used as given in the data: " + (", ".join(r["columns_used_as_given"]) or "none") + "."),
    ]
    if not rows:
        blocks[0] = _p("No metric was derived: every outcome and control is a column of the data.")
    return {"title": "Metrics", "id": "metrics", "blocks": blocks}


def _outcome_section(y: str, o: Mapping[str, Any], share: str, files: Mapping[str, str]) -> dict[str, Any]:
    slug = _slug(y).replace("-", "_")
    rec = o["recommended"]
    lr = rec["long_run"]
    lr_rows = [{"method": m, **v} for m, v in o["long_run"].items()]
    blocks: list[dict[str, Any]] = [
        _p(f"Model: {o['formula']}, with team and week effects; the long-run effect is gamma / (1 - beta)."),
        table(
            o["estimates"],
            _EST,
            caption="Main estimates, side by side",
            table_id=f"estimates-{_slug(y)}",
            css="estimates",
        ),
        table(lr_rows, _LR, caption="Long-run effects", table_id=f"long-run-{_slug(y)}"),
        *_fig(files, f"estimates_{slug}.png"),
        table(
            [rec],
            [
                ("method", "recommended method", "str"),
                ("estimate", "estimate", "num"),
                ("std_error", "std. error", "num"),
                ("lower", "lower", "num"),
                ("upper", "upper", "num"),
            ],
            caption=f"Recommended estimate of the effect of {share}",
            table_id=f"recommended-{_slug(y)}",
        ),
        _p(
            f"Long-run effect of the recommended fit: {fmt(lr['estimate'])} ({fmt(lr['lower'])} to {fmt(lr['upper'])})."
        ),
        _p("Why: " + rec["reason"]),
        table(o["diagnostics"], _DIAG, caption="Diagnostics", table_id=f"diagnostics-{_slug(y)}", css="diagnostics"),
    ]
    w = o["without_flagged_controls"]
    if o["flagged_controls"]:
        blocks += [
            _p(
                f"Controls that respond to adoption: {', '.join(o['flagged_controls'])}. Holding a mediator fixed "
                f"removes the part of the effect that runs through it; the estimates without them ({w['formula']}):"
            ),
            table(
                w["estimates"],
                _EST,
                caption="Estimates without the flagged controls",
                table_id=f"without-controls-{_slug(y)}",
            ),
            table(
                [{"method": m, **v} for m, v in w["long_run"].items()],
                _LR,
                caption="Long-run effects without the flagged controls",
            ),
        ]
    d = o["rollout_design"]
    if d["estimates"]:
        blocks.append(
            table(
                d["estimates"],
                _EST,
                caption="Rollout design: onset at the share threshold",
                table_id=f"rollout-{_slug(y)}",
            )
        )
    blocks += _fig(files, f"event_study_{slug}.png")
    if d["honest"]:
        blocks.append(
            table(
                d["honest"],
                [("M", "M", "num"), ("lower", "lower", "num"), ("upper", "upper", "num")],
                caption=f"HonestDiD (smoothness, FLCI) for the mean post-onset effect; breakdown M = "
                f"{fmt(d['breakdown']) or 'none on the grid'}",
            )
        )
    blocks += _fig(files, f"honest_{slug}.png") + _fig(files, f"twfe_weights_{slug}.png")
    if o["failed_methods"]:
        blocks.append(
            {
                "type": "list",
                "title": "Methods that failed",
                "items": [f"{m}: {msg}" for m, msg in o["failed_methods"].items()],
            }
        )
    return {"title": f"Outcome: {y}", "id": f"outcome-{_slug(y)}", "blocks": blocks}


def _savings_section(s: Mapping[str, Any]) -> dict[str, Any]:
    if not s.get("available", True):
        return {"title": "Savings", "id": "savings", "blocks": [_p(describe(s))]}
    pct = int(round(100 * s["level"]))
    rows = [
        {"q": "share of output due to adoption", **s["share_of_output"]},
        {"q": "throughput change", **s["throughput_change"]},
        {"q": "CTS-SW change (implied)", **s["cts_change"]},
        {"q": "engineering-years saved", **s["engineering_years"]},
        {"q": "money saved", **s["money"]},
    ]
    d = s.get("direct")
    if d:
        rows.append({"q": f"CTS-SW change, direct ({d['outcome']} fit; {d['verdict']})", **d})
    blocks = [
        _p(describe(s)),
        table(
            rows,
            [
                ("q", "quantity", "str"),
                ("estimate", "estimate", "num"),
                ("lower", f"lower ({pct}%)", "num"),
                ("upper", f"upper ({pct}%)", "num"),
            ],
            caption="Savings",
            table_id="savings",
        ),
        _p(
            f"From the recommended fit for {s['outcome']} ({s['method']}); intervals from {s['draws_from']}. "
            f"Developer-weeks {fmt(s['developer_weeks'], 'int')} ({fmt(s['engineering_years_used'])} engineering-years "
            f"at {fmt(s['weeks_per_year'])} weeks a year); cost from {s['cost_source']}."
        ),
        _p(
            "Formula: the share adds E_it = gamma * sum_k beta^k s_i,t-k to each team-week's rate (weeks before the "
            "data and missing weeks count as share 0). The output due to adoption is X = sum E_it d_it out of the "
            "observed Y = sum y_it d_it (d: developers), so at constant output adoption saved the share X / Y of the "
            "developer time and cost: engineering-years = X / Y * developer-weeks / weeks per year, money = X / Y * "
            "cost, CTS-SW change = -X / Y (throughput change p = X / (Y - X))."
        ),
    ]
    return {"title": "Savings", "id": "savings", "blocks": blocks}


def _summary_section(r: Mapping[str, Any]) -> dict[str, Any]:
    rows = []
    for y, o in r["outcomes"].items():
        rec = o["recommended"]
        fails = [d["name"] for d in o["diagnostics"] if d["verdict"] == "fail"]
        rows.append(
            {
                "outcome": y,
                "method": rec["method"],
                "estimate": rec["estimate"],
                "lower": rec["lower"],
                "upper": rec["upper"],
                "long_run": rec["long_run"]["estimate"],
                "fails": ", ".join(fails) or "none",
            }
        )
    blocks = [
        table(
            rows,
            [
                ("outcome", "outcome", "str"),
                ("method", "recommended", "str"),
                ("estimate", "effect", "num"),
                ("lower", "lower", "num"),
                ("upper", "upper", "num"),
                ("long_run", "long-run", "num"),
                ("fails", "failed checks", "str"),
            ],
            caption="Recommended estimates",
            table_id="summary",
        ),
        _p(describe(r["savings"])),
    ]
    return {"title": "Summary", "id": "summary", "blocks": blocks}


def _repro_section(r: Mapping[str, Any]) -> dict[str, Any]:
    spec = [{"k": k, "v": ", ".join(map(str, v)) if isinstance(v, list) else v} for k, v in r["spec"].items()]
    blocks = [
        _p(
            f"causalcts {r['causalcts_version']}; methods fitted: {', '.join(r['methods'])}; "
            f"analysis time {fmt(r['elapsed_seconds'])} s."
        ),
        table(spec, [("k", "key", "str"), ("v", "value", "num")], caption="The spec, with defaults filled in"),
    ]
    return {"title": "Reproducibility", "id": "reproducibility", "blocks": blocks}


def _single(r: Mapping[str, Any]) -> list[dict[str, Any]]:
    files = {f["file"].split("/", 1)[1]: f["caption"] for f in r.get("figures", [])}
    share = r["spec"]["treatment"]
    sections = [_summary_section(r), _audit_section(r, files), _metrics_section(r)]
    sections += [_outcome_section(y, o, share, files) for y, o in r["outcomes"].items()]
    sections.append(_savings_section(r["savings"]))
    if r["warnings"]:
        sections.append(
            {
                "title": "Warnings raised during the analysis",
                "id": "warnings",
                "blocks": [{"type": "list", "title": "", "items": r["warnings"]}],
            }
        )
    sections.append(_repro_section(r))
    return sections


def _several(r: Mapping[str, Any]) -> list[dict[str, Any]]:
    files = {f["file"].split("/", 1)[1]: f["caption"] for f in r.get("figures", [])}
    rows, links = [], []
    for slug, e in r["experiments"].items():
        links.append({"href": f"{slug}/report.html", "text": f"{e['name']}: full report"})
        for y, o in e["outcomes"].items():
            rec = o["recommended"]
            rows.append(
                {
                    "experiment": e["name"],
                    "outcome": y,
                    "method": rec["method"],
                    "estimate": rec["estimate"],
                    "lower": rec["lower"],
                    "upper": rec["upper"],
                    "long_run": rec["long_run"]["estimate"],
                    "years": e["savings"]["engineering_years"]["estimate"],
                }
            )
    blocks = [
        table(
            rows,
            [
                ("experiment", "experiment", "str"),
                ("outcome", "outcome", "str"),
                ("method", "recommended", "str"),
                ("estimate", "effect", "num"),
                ("lower", "lower", "num"),
                ("upper", "upper", "num"),
                ("long_run", "long-run", "num"),
                ("years", "engineering-years saved", "num"),
            ],
            caption="Recommended estimates by experiment",
            table_id="estimates-experiments",
            css="estimates",
        ),
        {"type": "links", "items": links},
    ]
    sections = [{"title": "Experiments", "id": "experiments", "blocks": blocks}]
    pooled = r["pooled"]
    pblocks: list[dict[str, Any]] = []
    if not pooled or not pooled.get("done"):
        pblocks.append(_p("Pooled view not done: " + ((pooled or {}).get("reason") or "no pooling available") + "."))
    else:
        pblocks.append(
            _p(
                f"Partial pooling (causalcts.bayes.pooling.pool) of the {pooled['quantity']} of each "
                "outcome: each experiment's effect is shrunk towards the average mu by as much as its own "
                "standard error is large against the spread tau between experiments."
            )
        )
        for y, p in pooled["outcomes"].items():
            if not p.get("done"):
                pblocks.append(_p(f"{y}: not pooled ({p['reason']})."))
                continue
            pblocks.append(
                table(
                    p["experiments"],
                    [
                        ("experiment", "experiment", "str"),
                        ("estimate", "own estimate", "num"),
                        ("lower", "lower", "num"),
                        ("upper", "upper", "num"),
                        ("pooled_mean", "pooled", "num"),
                        ("pooled_lower", "pooled lower", "num"),
                        ("pooled_upper", "pooled upper", "num"),
                    ],
                    caption=f"Pooled long-run effect on {y}",
                    table_id=f"pooled-{_slug(y)}",
                )
            )
            pblocks.append(
                _p(
                    f"Average effect mu {fmt(p['mu']['estimate'])} ({fmt(p['mu']['lower'])} to "
                    f"{fmt(p['mu']['upper'])}); between-rollout SD tau {fmt(p['tau']['estimate'])}; a new "
                    f"rollout: {fmt(p['new_rollout']['estimate'])} ({fmt(p['new_rollout']['lower'])} to "
                    f"{fmt(p['new_rollout']['upper'])}). Priors: mu ~ {p['priors']['mu']}, tau ~ "
                    f"{p['priors']['tau']}."
                )
            )
            pblocks += _fig(files, f"pooled_{_slug(y).replace('-', '_')}.png")
    sections.append({"title": "Pooled view", "id": "pooled", "blocks": pblocks})
    return sections


def document(results: Mapping[str, Any], *, kind: str) -> list[dict[str, Any]]:
    """The report's sections (``kind`` ``"single"``: one experiment; ``"several"``: the combined view)."""
    return _single(results) if kind == "single" else _several(results)


def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html.j2",), default_for_string=False),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def _md_cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def render(results: Mapping[str, Any], images: Mapping[str, bytes], *, kind: str, title: str) -> tuple[str, str]:
    """The HTML page (figures embedded as base64 PNG) and the Markdown file (figures linked) of a report.

    Examples
    --------
    >>> from causalcts.workflows.render import render
    >>> res = {"experiments": {}, "pooled": {"done": False, "reason": "one experiment"}, "figures": []}
    >>> html, md = render(res, {}, kind="several", title="Demo")
    >>> "<script src" in html, md.splitlines()[0]
    (False, '# Demo')
    """
    sections = document(results, kind=kind)
    env = _environment()
    env.filters["md"] = _md_cell
    encoded = {name: base64.b64encode(data).decode("ascii") for name, data in images.items()}
    context = {"title": title, "sections": sections, "images": encoded, "version": results.get("causalcts_version", "")}
    return env.get_template("report.html.j2").render(**context), env.get_template("report.md.j2").render(**context)
