"""lme4-style formulas: ``y ~ x1 + np.log(x2) + (1 + x1 | g)``, ``(1 | g)``, ``(x1 || g)``.

The random-effects bars are split off here; the fixed part and the inside of each bar are read by
the one formula parser of :mod:`causalcts.data.formula` (formulaic syntax: ``np.log(x)``, ``C(f)``,
``x:z``, ``I(x**2)``, ``Q("odd name")``). Several bars on the same grouping factor are independent
blocks, as in lme4; ``(x || g)`` is ``(1 | g) + (0 + x | g)``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from causalcts.data.formula import (
    FormulaSpec,
    closing_parenthesis,
    evaluate_rhs,
    formula_spec,
    split_formula,
    split_top_level,
)
from causalcts.errors import MissingValueError, SpecificationError, describe_rows

__all__ = ["MixedFormula", "mixed_columns", "parse_mixed_formula"]

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*$")


@dataclass(frozen=True)
class MixedFormula:
    """Parsed model: outcome, fixed terms, random terms, grouping column and correlation structure.

    ``fixed`` and ``random`` name the design columns (``"Intercept"`` for the constant); a
    categorical term such as ``C(f)`` is one name before the data are seen and one name per column
    after :func:`mixed_columns`. ``correlated`` is False for ``||`` and for several bars, whose
    effects are independent.
    """

    outcome: str
    fixed: tuple[str, ...]  # "Intercept" for the constant
    random: tuple[str, ...]
    group: str
    correlated: bool
    fixed_spec: FormulaSpec | None = field(default=None, repr=False, compare=False)
    random_specs: tuple[FormulaSpec, ...] = field(default=(), repr=False, compare=False)
    double_bars: tuple[bool, ...] = field(default=(), repr=False, compare=False)
    """For each bar, whether it is ``||`` (independent effects)."""

    @property
    def _specs(self) -> tuple[FormulaSpec, ...]:
        return (self.fixed_spec, *self.random_specs) if self.fixed_spec is not None else ()

    @property
    def categorical(self) -> tuple[str, ...]:
        """Data columns read only as categories (inside ``C()``)."""
        cats = {c for s in self._specs for c in s.categorical}
        return tuple(sorted(cats - set(self.numeric)))

    @property
    def numeric(self) -> tuple[str, ...]:
        """Data columns read as numbers (the grouping column excluded)."""
        if not self._specs:  # built by hand: every name is a column
            names = (self.outcome, *self.fixed, *self.random)
            return tuple(n for n in dict.fromkeys(names) if n != "Intercept")
        return tuple(sorted({c for s in self._specs for c in s.numeric} - {self.group}))

    @property
    def columns(self) -> tuple[str, ...]:
        """Every data column the formula reads, the grouping column excluded."""
        return (*self.numeric, *self.categorical)


def _bars(rhs: str, formula: str) -> tuple[list[str], list[tuple[str, bool, str]]]:
    """Split the right-hand side into fixed parts and ``(inner, double_bar, group)`` bars."""
    fixed, bars = [], []
    for part in split_top_level(rhs, "+"):
        text = part.strip()
        if text.startswith("(") and closing_parenthesis(text, 0) == len(text) - 1:
            pieces = split_top_level(text[1:-1], "|")
            if len(pieces) in (2, 3) and (len(pieces) == 2 or pieces[1] == ""):
                bars.append((pieces[0].strip(), len(pieces) == 3, pieces[-1].strip()))
                continue
        if "|" in text:
            raise SpecificationError(
                f"Cannot read {text!r} in {formula!r}: add random-effects terms as '+ (1 + x | group)'."
            )
        fixed.append(text)
    return fixed, bars


def _no_panel_ops(spec: FormulaSpec, where: str) -> None:
    if spec.ops:
        raise SpecificationError(
            f"{spec.ops[0].call!r} in {where}: L(), F() and D() need a panel with entity and time "
            "(causalcts.fit); a mixed model has no time order. Compute the column first."
        )


def _structure(blocks: list[tuple[list[str], bool]], group: str) -> bool:
    """Whether the random effects are correlated; raise for block structures the model cannot fit."""
    if len(blocks) == 1:
        names, double = blocks[0]
        return not double
    for names, double in blocks:
        if len(names) > 1 and not double:
            raise SpecificationError(
                f"Several bars on {group!r} with a correlated block ({' + '.join(names)} | {group}) are not "
                f"supported: put every effect in one bar, (1 + x | {group}) for correlated effects or "
                f"(1 + x || {group}) for independent ones."
            )
    return False


def _random_names(blocks: list[tuple[list[str], bool]], group: str) -> tuple[str, ...]:
    out: list[str] = []
    for names, _ in blocks:
        for n in names:
            if n in out:
                raise SpecificationError(f"The random effect {n!r} is listed twice for {group!r}.")
            out.append(n)
    if not out:
        raise SpecificationError("The random-effects term has no effect; use (1 | group) for a random intercept.")
    return tuple(out)


def parse_mixed_formula(formula: str) -> MixedFormula:
    """Parse an lme4 formula with one grouping factor.

    Examples
    --------
    >>> from causalcts.bayes.formula_re import parse_mixed_formula
    >>> spec = parse_mixed_formula("Reaction ~ Days + (Days | Subject)")
    >>> spec.outcome, spec.fixed, spec.random, spec.group, spec.correlated
    ('Reaction', ('Intercept', 'Days'), ('Intercept', 'Days'), 'Subject', True)
    >>> parse_mixed_formula("y ~ np.log(x) + (x || g)").fixed
    ('Intercept', 'np.log(x)')
    >>> parse_mixed_formula("y ~ x + (1 | g) + (0 + x | g)") == parse_mixed_formula("y ~ x + (x || g)")
    True
    """
    lhs, rhs = split_formula(formula if isinstance(formula, str) else "")
    fixed_parts, bars = _bars(rhs, formula)
    if not bars:
        raise SpecificationError(f"{formula!r} has no random-effects term such as '(1 | team)'.")
    groups = {g for _, _, g in bars}
    if len(groups) != 1:
        raise SpecificationError(f"One grouping factor is supported; the formula has {sorted(groups)}.")
    group = groups.pop().strip("`")
    if not _NAME.match(group) and not bars[0][2].startswith("`"):
        raise SpecificationError(f"The grouping factor {group!r} must be a column name.")
    fixed_spec = formula_spec(f"{lhs} ~ {' + '.join(fixed_parts) or '1'}", allow_empty=True)
    _no_panel_ops(fixed_spec, "the fixed part")
    random_specs, blocks = [], []
    for inner, double, _ in bars:
        if not inner:
            raise SpecificationError(f"Empty random-effects term in {formula!r}.")
        rspec = formula_spec(f"{lhs} ~ {inner}", allow_empty=True)
        _no_panel_ops(rspec, "the random part")
        random_specs.append(rspec)
        blocks.append(((["Intercept"] if rspec.intercept else []) + [t.name for t in rspec.terms], double))
    correlated = _structure(blocks, group)
    return MixedFormula(
        outcome=fixed_spec.outcome,
        fixed=tuple((["Intercept"] if fixed_spec.intercept else []) + [t.name for t in fixed_spec.terms]),
        random=_random_names(blocks, group),
        group=group,
        correlated=correlated,
        fixed_spec=fixed_spec,
        random_specs=tuple(random_specs),
        double_bars=tuple(double for _, double in blocks),
    )


def mixed_columns(spec: MixedFormula, frame: pd.DataFrame) -> tuple[MixedFormula, dict[str, np.ndarray]]:
    """Evaluate a mixed formula on ``frame``: the spec with categorical terms expanded, and every column.

    ``frame`` holds the rows to use, numeric columns already numbers. The result maps the outcome
    and every fixed and random column name (``"Intercept"`` included) to its values.

    Examples
    --------
    >>> import pandas as pd
    >>> from causalcts.bayes.formula_re import mixed_columns, parse_mixed_formula
    >>> df = pd.DataFrame({"y": [1.0, 2, 3, 4], "x": [1.0, 2, 4, 8], "f": ["a", "b", "a", "b"],
    ...                    "g": [1, 1, 2, 2]})
    >>> spec, cols = mixed_columns(parse_mixed_formula("y ~ np.log2(x) + C(f) + (1 | g)"), df)
    >>> spec.fixed, cols["np.log2(x)"].tolist()
    (('Intercept', 'np.log2(x)', 'C(f)[T.b]'), [0.0, 1.0, 2.0, 3.0])
    """
    for c in spec.categorical:
        bad = frame[c].isna().to_numpy()
        if bad.any():
            raise MissingValueError(f"The categorical column {c!r} is missing in {describe_rows(frame.index[bad])}.")
    if spec.fixed_spec is None:  # built by hand: names are columns
        cols = {n: frame[n].to_numpy(dtype=float) for n in spec.numeric}
        cols["Intercept"] = np.ones(len(frame))
        return spec, cols
    y, fixed = evaluate_rhs(spec.fixed_spec, frame)
    cols = {spec.outcome: y, **dict(zip(fixed.names, fixed.matrix.T))}
    blocks = []
    for rspec, double in zip(spec.random_specs, spec.double_bars):
        _, ev = evaluate_rhs(rspec, frame)
        blocks.append((ev.names, double))
        for n, v in zip(ev.names, ev.matrix.T):
            cols.setdefault(n, v)
    if len(blocks) > 1:
        _structure(blocks, spec.group)
    out = replace(spec, fixed=tuple(fixed.names), random=_random_names(blocks, spec.group))
    return out, cols
