"""``Summary``: one results table rendered as text, HTML and LaTeX (booktabs).

Every results class builds its summary from the same parts: a title, header items (method, formula,
observations, entities, covariance, inference convention), one or more tables (the estimates first)
and notes (specification tests, convergence). The parts are rendered three ways, so that a notebook,
a terminal and a paper show the same numbers.
"""

from __future__ import annotations

import html
import math
import numbers
from collections.abc import Callable, Sequence

import pandas as pd

__all__ = ["Summary", "format_value"]

_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "<": r"\textless{}",
    ">": r"\textgreater{}",
}


def _latex_escape(text: str) -> str:
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in str(text))


def format_value(value, column: str = "") -> str:
    """Format one table cell: p-values with 4 decimals, ESS as integers, R-hat with 3 decimals, else 6 digits.

    Examples
    --------
    >>> format_value(0.000012, "pvalue"), format_value(412.7, "ess_bulk"), format_value(1.23456789)
    ('<0.0001', '413', '1.23457')
    """
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, numbers.Real):
        v = float(value)
        if math.isnan(v):
            return "nan" if column else ""
        if column == "pvalue":
            return "<0.0001" if v < 1e-4 else f"{v:.4f}"
        if column.startswith("ess"):
            return f"{v:.0f}"
        if column == "r_hat":
            return f"{v:.3f}"
        return f"{v:.6g}"
    return str(value)


class Summary(str):
    """A results summary: prints as a text table, renders as HTML in notebooks and as a LaTeX tabular.

    It is a ``str`` (the text table), so ``print(res.summary())``, ``"term" in res.summary()`` and
    string methods keep working; :meth:`as_html` and :meth:`as_latex` give the other renderings.

    Parameters
    ----------
    title
        First line, e.g. ``"causalcts within estimation"``.
    header
        ``(label, value)`` pairs: method, formula, observations, entities, covariance, inference.
    tables
        ``(caption, DataFrame)`` pairs; the first is the table of estimates (one row per term).
    notes
        Free lines below the tables (specification tests, convergence).

    Examples
    --------
    >>> import pandas as pd
    >>> s = Summary("demo", [("Method", "pooled")], [("Estimates", pd.DataFrame({"estimate": [0.5]}, index=["x_1"]))])
    >>> print(s)  # doctest: +NORMALIZE_WHITESPACE
    demo
    Method: pooled
    <BLANKLINE>
    Estimates
        estimate
    x_1      0.5
    >>> "x\\\\_1" in s.as_latex() and "<table" in s.as_html()
    True
    """

    title: str  # type: ignore[assignment]  # the heading shadows str.title on purpose (public attribute)
    header: tuple[tuple[str, str], ...]
    tables: tuple[tuple[str, pd.DataFrame], ...]
    notes: tuple[str, ...]

    def __new__(
        cls,
        title: str,
        header: Sequence[tuple[str, object]] = (),
        tables: Sequence[tuple[str, pd.DataFrame]] = (),
        notes: Sequence[str] = (),
    ) -> Summary:
        head = tuple((str(k), str(v)) for k, v in header)
        tabs = tuple((str(c), t.copy()) for c, t in tables)
        foot = tuple(str(n) for n in notes)
        obj = super().__new__(cls, _render_text(title, head, tabs, foot))
        obj.title, obj.header, obj.tables, obj.notes = title, head, tabs, foot
        return obj

    def __repr__(self) -> str:
        return str.__str__(self)

    def as_text(self) -> str:
        """The plain-text table (the same as ``str(summary)``)."""
        return str.__str__(self)

    def as_html(self) -> str:
        """An HTML fragment: a header table, then each table of the summary, then the notes."""
        e = html.escape
        head = "".join(f"<tr><th style='text-align:left'>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in self.header)
        parts = [f"<div class='causalcts-summary'><p><b>{e(self.title)}</b></p>", f"<table>{head}</table>"]
        for caption, table in self.tables:
            fmt = _formatters(table)
            shown = table.copy().astype(object)
            for col in shown.columns:
                shown[col] = [fmt[col](v) for v in table[col]]
            body = shown.to_html(escape=True, border=0)
            parts.append(f"<p><i>{e(caption)}</i></p>{body}")
        if self.notes:
            parts.append("<p>" + "<br>".join(e(n) for n in self.notes) + "</p>")
        parts.append("</div>")
        return "".join(parts)

    def _repr_html_(self) -> str:
        return self.as_html()

    def as_latex(self) -> str:
        """A booktabs ``tabular`` (needs ``\\usepackage{booktabs}``): header lines, tables, notes."""
        ncol = 1 + max((t.shape[1] for _, t in self.tables), default=1)
        span = rf"\multicolumn{{{ncol}}}{{l}}"
        lines = [rf"\begin{{tabular}}{{l{'r' * (ncol - 1)}}}", r"\toprule"]
        lines.append(rf"{span}{{\textbf{{{_latex_escape(self.title)}}}}} \\")
        lines += [rf"{span}{{{_latex_escape(k)}: {_latex_escape(v)}}} \\" for k, v in self.header]
        for caption, table in self.tables:
            fmt = _formatters(table)
            pad = [""] * (ncol - 1 - table.shape[1])
            lines.append(r"\midrule")
            lines.append(rf"{span}{{\textit{{{_latex_escape(caption)}}}}} \\")
            lines.append(" & ".join(["", *(_latex_escape(c) for c in table.columns), *pad]) + r" \\")
            lines.append(r"\midrule")
            for label, row in table.iterrows():
                cells = [_latex_escape(fmt[c](row[c])) for c in table.columns]
                lines.append(" & ".join([_latex_escape(label), *cells, *pad]) + r" \\")
        if self.notes:
            lines.append(r"\midrule")
            lines += [rf"{span}{{{_latex_escape(n)}}} \\" for n in self.notes]
        lines += [r"\bottomrule", r"\end{tabular}"]
        return "\n".join(lines)


def _formatters(table: pd.DataFrame) -> dict[str, Callable[[object], str]]:
    def formatter(column: str) -> Callable[[object], str]:
        return lambda v: format_value(v, column)

    return {c: formatter(str(c)) for c in table.columns}


def _render_text(title, header, tables, notes) -> str:
    lines = [title, *(f"{k}: {v}" for k, v in header)]
    for caption, table in tables:
        lines += ["", caption, table.to_string(formatters=_formatters(table))]
    if notes:
        lines += ["", *notes]
    return "\n".join(lines)
