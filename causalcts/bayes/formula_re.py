"""lme4-style formulas: ``y ~ x1 + x2 + (1 + x1 | g)``, ``(1 | g)``, ``(x1 || g)``."""

from __future__ import annotations

import re
from dataclasses import dataclass

from causalcts.errors import SpecificationError

__all__ = ["MixedFormula", "parse_mixed_formula"]

_RE = re.compile(r"\(([^()|]*?)(\|\|?)([^()|]*)\)")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class MixedFormula:
    """Parsed model: outcome, fixed terms, random terms, grouping column and correlation structure."""

    outcome: str
    fixed: tuple[str, ...]  # "Intercept" for the constant
    random: tuple[str, ...]
    group: str
    correlated: bool


def _terms(text: str, where: str) -> tuple[list[str], bool]:
    intercept = True
    names: list[str] = []
    text = re.sub(r"-\s*1\b", "+ 0", text)
    for raw in text.split("+"):
        t = raw.strip()
        if t in ("1", ""):
            if t == "" and text.strip():
                raise SpecificationError(f"Empty term in {where} {text!r}.")
            continue
        if t in ("0", "-1"):
            intercept = False
            continue
        if t.startswith("-"):
            raise SpecificationError(f"Only '0' or '-1' may be subtracted in {where} {text!r}.")
        if not _NAME.match(t):
            raise SpecificationError(
                f"Cannot read the term {t!r} in {where} {text!r}; use column names (transform columns beforehand)."
            )
        if t in names:
            raise SpecificationError(f"{t!r} appears twice in {where} {text!r}.")
        names.append(t)
    return names, intercept


def parse_mixed_formula(formula: str) -> MixedFormula:
    """Parse an lme4 formula with one grouping factor.

    Examples
    --------
    >>> from causalcts.bayes.formula_re import parse_mixed_formula
    >>> parse_mixed_formula("Reaction ~ Days + (Days | Subject)")
    MixedFormula(outcome='Reaction', fixed=('Intercept', 'Days'), random=('Intercept', 'Days'), group='Subject', correlated=True)
    >>> parse_mixed_formula("y ~ x + (x || g)").correlated
    False
    """
    if not isinstance(formula, str) or formula.count("~") != 1:
        raise SpecificationError(f"The formula {formula!r} must look like 'y ~ x + (1 + x | group)'.")
    lhs, rhs = (s.strip() for s in formula.split("~"))
    if not _NAME.match(lhs):
        raise SpecificationError(f"The outcome {lhs!r} must be a single column name.")
    bars = _RE.findall(rhs)
    if not bars:
        raise SpecificationError(f"{formula!r} has no random-effects term such as '(1 | team)'.")
    groups = {g.strip() for _, _, g in bars}
    if len(groups) != 1:
        raise SpecificationError(f"One grouping factor is supported; the formula has {sorted(groups)}.")
    group = groups.pop()
    if not _NAME.match(group):
        raise SpecificationError(f"The grouping factor {group!r} must be a column name.")
    fixed_text = _RE.sub("", rhs).strip().strip("+").strip()
    fixed_text = re.sub(r"\+\s*\+", "+", fixed_text)
    fixed, f_icpt = _terms(fixed_text if fixed_text else "1", "the fixed part")
    random: list[str] = []
    correlated = True
    for inner, bar, _ in bars:
        names, r_icpt = _terms(inner, "the random part")
        if bar == "||":
            correlated = False
        if len(bars) > 1:
            correlated = False  # separate terms for one factor are independent, as in lme4
        block = (["Intercept"] if r_icpt else []) + names
        for n in block:
            if n in random:
                raise SpecificationError(f"The random effect {n!r} is listed twice.")
        random.extend(block)
    if not random:
        raise SpecificationError("The random-effects term has no effect; use (1 | group) for a random intercept.")
    return MixedFormula(lhs, tuple((["Intercept"] if f_icpt else []) + fixed), tuple(random), group, correlated)
