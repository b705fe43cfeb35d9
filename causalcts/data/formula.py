"""Formulas with lag operators: ``y ~ L(y, 1:2) + L(w, 0:1) + k``.

``L(var, a:b)`` expands to lags a..b of ``var`` (lag 0 is the variable itself), ``L(var, k)`` to
lag k. Terms are labelled Stata-style: ``n``, ``L1.n``, ``L2.n``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from causalcts.data.panel import lag_name
from causalcts.errors import SpecificationError

__all__ = ["Term", "parse_formula"]

_LAG = re.compile(r"^L\(\s*([A-Za-z_][A-Za-z0-9_]*)\s*,\s*(-?\d+)\s*(?::\s*(-?\d+))?\s*\)$")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class Term:
    """One regressor: ``variable`` at lag ``lag`` (0 = contemporaneous)."""

    variable: str
    lag: int

    @property
    def name(self) -> str:
        return lag_name(self.variable, self.lag)


def _split_plus(rhs: str) -> list[str]:
    parts, depth, cur = [], 0, []
    for ch in rhs:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "+" and depth == 0:
            parts.append("".join(cur).strip())
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur).strip())
    return parts


def parse_formula(formula: str) -> tuple[str, list[Term]]:
    """Split ``"y ~ L(y, 1) + x"`` into the outcome and its regressor terms.

    Examples
    --------
    >>> from causalcts.data.formula import parse_formula
    >>> y, terms = parse_formula("n ~ L(n, 1:2) + L(w, 0:1) + k")
    >>> y, [t.name for t in terms]
    ('n', ['L1.n', 'L2.n', 'w', 'L1.w', 'k'])
    """
    if not isinstance(formula, str) or formula.count("~") != 1:
        raise SpecificationError(f"The formula {formula!r} must have the form 'y ~ x1 + L(x2, 0:1)'.")
    lhs, rhs = (s.strip() for s in formula.split("~"))
    if not _NAME.match(lhs):
        raise SpecificationError(f"The outcome {lhs!r} must be a single column name.")
    terms: list[Term] = []
    for part in _split_plus(rhs):
        if part in ("", "1", "0", "-1"):
            if part == "":
                raise SpecificationError(f"Empty term in the formula {formula!r}.")
            continue
        m = _LAG.match(part)
        if m:
            var, a, b = m.group(1), int(m.group(2)), m.group(3)
            b = a if b is None else int(b)
            if a < 0 or b < a:
                raise SpecificationError(f"In {part!r} lags must run from a smaller to a larger non-negative number.")
            terms.extend(Term(var, k) for k in range(a, b + 1))
        elif _NAME.match(part):
            terms.append(Term(part, 0))
        else:
            raise SpecificationError(
                f"Cannot read the term {part!r} in {formula!r}; use column names and L(column, first:last)."
            )
    names = [t.name for t in terms]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise SpecificationError(f"The formula lists {dup} more than once.")
    if not terms:
        raise SpecificationError(f"The formula {formula!r} has no regressors.")
    if any(t.variable == lhs and t.lag == 0 for t in terms):
        raise SpecificationError(f"The outcome {lhs!r} cannot be its own contemporaneous regressor.")
    return lhs, terms
