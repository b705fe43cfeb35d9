r"""One formula language for every model: formulaic's syntax plus gap-aware panel operators.

The fixed part of a formula is read by `formulaic <https://matthewwardrop.github.io/formulaic/>`_,
so ``np.log(x)``, ``C(team_size)``, ``x:z``, ``x*z``, ``I(x**2)``, ``Q("odd name")`` and backticks
work as in R. On top of it, three operators use the panel's entity and time and never reach across
a missing period:

* ``L(x, k)`` is lag ``k`` of ``x``; ``L(x, a:b)`` adds lags ``a..b`` (lag 0 is ``x`` itself);
  ``L(x)`` is lag 1.
* ``F(x, k)`` is lead ``k`` (``F(x, a:b)``, ``F(x)`` as for ``L``), for placebo and strict
  exogeneity tests.
* ``D(x)`` is the first difference :math:`x_t - x_{t-1}`, missing after a gap.

The argument may itself be an expression (``L(np.log(x), 1)``, ``D(x:z)``), evaluated first and
then shifted. Columns are labelled Stata-style: ``n``, ``L1.n``, ``L2.n``, ``F1.x``, ``D.x``,
``L1.np.log(x)``.

The operators are found by a pre-pass (balanced parentheses), computed with
:meth:`causalcts.data.Panel.lag` and replaced by placeholder columns; formulaic then builds the rest
of the design on a frame holding those columns. This module parses without data
(:func:`formula_spec`, :func:`parse_formula`) and evaluates on a frame (:func:`evaluate_rhs`);
:func:`causalcts.data.design.build_design` is the panel-facing entry point.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from formulaic import Formula, model_matrix
from formulaic.errors import FormulaicError

from causalcts.data.panel import Panel, lag_name
from causalcts.errors import SpecificationError, describe_rows

__all__ = [
    "FormulaSpec",
    "Term",
    "closing_parenthesis",
    "evaluate_rhs",
    "formula_spec",
    "parse_formula",
    "split_formula",
    "split_top_level",
]

_CALL = re.compile(r"(?<![\w.])([LFD])\s*\(")
_CATEGORICAL = re.compile(r"(?<![\w.])C\s*\(")
_TOKEN = re.compile(r"__cts(\d+)__")
_LAGS = re.compile(r"^\s*(-?\d+)\s*(?::\s*(-?\d+))?\s*$")
_ANSI = re.compile(r"\x1b\[[0-9;]*m|[⧛⧚]")
#: Names a formula may use besides the data's columns and formulaic's transforms.
_CONTEXT = {"np": np, "numpy": np}


@dataclass(frozen=True)
class Term:
    """One regressor column: ``variable`` at lag ``lag`` (0 = contemporaneous, negative = lead).

    ``variable`` is a data column or a derived column (``np.log(x)``, ``C(g)[T.b]``, ``D.x``) that
    :func:`causalcts.data.design.build_design` computes and attaches to the panel.
    """

    variable: str
    lag: int = 0

    @property
    def name(self) -> str:
        return lag_name(self.variable, self.lag)


@dataclass(frozen=True)
class _Op:
    """One panel operator call, replaced in the formula by the placeholder ``token``."""

    token: str
    kind: str  # "L", "F" or "D"
    base_text: str  # the argument, with inner operators already replaced by placeholders
    base_name: str  # its Stata-style name (``np.log(x)``, ``D.x``)
    lag: int  # positive lag, negative lead; 0 for D
    call: str  # the text the user wrote, for messages

    @property
    def name(self) -> str:
        return f"D.{self.base_name}" if self.kind == "D" else lag_name(self.base_name, self.lag)

    @property
    def term(self) -> Term:
        return Term(self.name, 0) if self.kind == "D" else Term(self.base_name, self.lag)


def _formulaic_message(err: Exception) -> str:
    return _ANSI.sub("", str(err)).strip().splitlines()[0]


def closing_parenthesis(text: str, start: int) -> int:
    """Index of the parenthesis that closes the one at ``text[start]``; quotes are skipped."""
    depth, quote = 0, None
    for i in range(start, len(text)):
        ch = text[i]
        if quote:
            if ch == quote:
                quote = None
        elif ch in "'\"`":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
            if depth == 0:
                return i
    raise SpecificationError(f"Unbalanced parentheses in {text[start - 1 :]!r}.")


def split_top_level(text: str, sep: str) -> list[str]:
    """Split ``text`` at ``sep`` characters outside parentheses, brackets and quotes."""
    parts: list[str] = []
    cur: list[str] = []
    depth, quote = 0, None
    for ch in text:
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"`":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        if ch == sep and depth == 0 and quote is None:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return parts


def split_formula(formula: str) -> tuple[str, str]:
    """Split ``"y ~ x"`` into its two sides; one ``~`` outside parentheses is required.

    Examples
    --------
    >>> from causalcts.data.formula import split_formula
    >>> split_formula("n ~ L(n, 1) + w")
    ('n', 'L(n, 1) + w')
    """
    sides = split_top_level(formula, "~") if isinstance(formula, str) else []
    if len(sides) != 2 or not sides[0].strip() or not sides[1].strip():
        raise SpecificationError(f"The formula {formula!r} must have the form 'y ~ x1 + L(x2, 0:1)'.")
    return sides[0].strip(), sides[1].strip()


class _Rewriter:
    """Replace ``L``/``F``/``D`` calls by placeholder names, innermost first."""

    def __init__(self) -> None:
        self.ops: list[_Op] = []

    def rename(self, text: str) -> str:
        return _TOKEN.sub(lambda m: self.ops[int(m.group(1))].name, text)

    def rewrite(self, text: str) -> str:
        out, i = [], 0
        while (m := _CALL.search(text, i)) is not None:
            close = closing_parenthesis(text, m.end() - 1)
            call = text[m.start() : close + 1]
            out.append(text[i : m.start()])
            out.append(self._expand(m.group(1), split_top_level(text[m.end() : close], ","), call))
            i = close + 1
        out.append(text[i:])
        return "".join(out)

    def _base_name(self, base_text: str, call: str) -> str:
        try:
            terms = [str(t) for t in Formula(f"0 + ({base_text})")]
        except FormulaicError as err:
            raise SpecificationError(f"Cannot read {call!r}: {_formulaic_message(err)}") from None
        if len(terms) != 1:
            raise SpecificationError(
                f"{call!r} must shift one variable or expression, but its argument has {len(terms)} terms."
            )
        return self.rename(terms[0])

    def _add(self, kind: str, base_text: str, base_name: str, lag: int, call: str) -> str:
        token = f"__cts{len(self.ops)}__"
        self.ops.append(_Op(token, kind, base_text, base_name, lag, call))
        return token

    def _expand(self, kind: str, args: list[str], call: str) -> str:
        if not args[0].strip():
            raise SpecificationError(f"{call!r} names no variable; write e.g. {kind}(x{'' if kind == 'D' else ', 1'}).")
        base_text = self.rewrite(args[0].strip())
        base_name = self._base_name(base_text, call)
        if kind == "D":
            if len(args) != 1:
                raise SpecificationError(
                    f"{call!r}: D() takes one argument and gives the first difference x_t - x_(t-1); "
                    "nest it, D(D(x)), for the second difference."
                )
            return self._add(kind, base_text, base_name, 0, call)
        if len(args) > 2:
            raise SpecificationError(f"{call!r} has {len(args)} arguments; use {kind}(x, k) or {kind}(x, first:last).")
        m = _LAGS.match(args[1]) if len(args) == 2 else None
        if len(args) == 2 and m is None:
            raise SpecificationError(
                f"Cannot read the {'lags' if kind == 'L' else 'leads'} in {call!r}; use {kind}(x, k) or "
                f"{kind}(x, first:last) with whole numbers."
            )
        a = int(m.group(1)) if m else 1
        b = int(m.group(2)) if m and m.group(2) is not None else a
        word = "lag" if kind == "L" else "lead"
        if a < 0 or b < 0:
            hint = " use F(x, k) for a lead" if kind == "L" else " use L(x, k) for a lag"
            raise SpecificationError(f"{call!r} asks for a {word} below 0;{hint}.")
        if b < a:
            raise SpecificationError(f"In {call!r} the {word}s must run from the smaller to the larger number.")
        sign = 1 if kind == "L" else -1
        tokens = [self._add(kind, base_text, base_name, sign * k, call) for k in range(a, b + 1)]
        return tokens[0] if len(tokens) == 1 else "(" + " + ".join(tokens) + ")"


def _required(text: str) -> set[str]:
    """Data columns an expression reads (placeholders excluded)."""
    try:
        names = Formula(f"0 + ({text})").required_variables
    except FormulaicError as err:
        raise SpecificationError(f"Cannot read {text!r}: {_formulaic_message(err)}") from None
    return {n for n in names if not _TOKEN.fullmatch(n)}


def _term_required(term) -> set[str]:
    """Data columns one formulaic term reads (placeholders excluded)."""
    out: set[str] = set()
    for factor in term.factors:
        kind = factor.eval_method.value
        if kind == "lookup" and not _TOKEN.fullmatch(factor.expr):
            out.add(factor.expr)
        elif kind == "python":
            out |= _required(factor.expr)
    return out


def _split_categorical(text: str) -> tuple[set[str], set[str]]:
    """(columns read as numbers, columns read only inside ``C()``) of an expression."""
    rest, cats, i = [], set(), 0
    while (m := _CATEGORICAL.search(text, i)) is not None:
        close = closing_parenthesis(text, m.end() - 1)
        cats |= _required(text[m.start() : close + 1])
        rest.append(text[i : m.start()] + "__cts_c__")
        i = close + 1
    rest.append(text[i:])
    numeric = _required("".join(rest)) - {"__cts_c__"}
    return numeric, cats - numeric


@dataclass(frozen=True)
class FormulaSpec:
    """A formula read without data: its outcome, terms and the data columns it needs.

    ``terms`` holds one :class:`Term` per formula term; a categorical term such as ``C(g)`` is one
    term here and expands to one column per level once the data are known.
    """

    formula: str
    outcome: str
    terms: tuple[Term, ...]
    intercept: bool
    """Whether formulaic adds a constant (False after ``- 1`` or ``0 +``)."""
    numeric: tuple[str, ...]
    """Data columns read as numbers."""
    categorical: tuple[str, ...]
    """Data columns read only inside ``C()``."""
    lhs: str = field(repr=False, default="")
    rhs: str = field(repr=False, default="")
    ops: tuple[_Op, ...] = field(repr=False, default=())

    @property
    def variables(self) -> set[str]:
        """Names of the outcome and of every term's variable (data or derived columns)."""
        return {self.outcome, *(t.variable for t in self.terms)}

    def rename(self, text: str) -> str:
        return _TOKEN.sub(lambda m: self.ops[int(m.group(1))].name, text)


def _rhs_terms(rhs: str, rw: _Rewriter, formula: str) -> tuple[list[Term], list, bool]:
    """Terms of a rewritten right-hand side, their formulaic terms and the intercept flag."""
    parts = split_top_level(rhs, "+")
    if any(not p.strip() for p in parts):
        raise SpecificationError(f"Empty term in {formula!r} (two '+' in a row, or one at an end).")
    seen: dict[str, str] = {}
    for part in parts:
        try:
            names = [rw.rename(str(t)) for t in Formula(part) if str(t) != "1"]
        except FormulaicError as err:
            shown = rw.rename(part).strip()
            raise SpecificationError(f"Cannot read {shown!r} in {formula!r}: {_formulaic_message(err)}") from None
        for n in names:
            if n in seen:
                raise SpecificationError(
                    f"The formula {formula!r} lists {n!r} twice ({seen[n]!r} and {rw.rename(part).strip()!r})."
                )
            seen[n] = rw.rename(part).strip()
    try:
        parsed = list(Formula(rhs))
    except FormulaicError as err:
        raise SpecificationError(f"Cannot read {formula!r}: {_formulaic_message(err)}") from None
    ops = {op.token: op for op in rw.ops}
    terms, raw_terms, intercept = [], [], False
    for t in parsed:
        if str(t) == "1":
            intercept = True
            continue
        factors = list(t.factors)
        single = factors[0].expr if len(factors) == 1 else None
        terms.append(ops[single].term if single in ops else Term(rw.rename(str(t)), 0))
        raw_terms.append(t)
    return terms, raw_terms, intercept


def _parse(formula: str, *, allow_empty: bool = False) -> FormulaSpec:
    lhs, rhs = split_formula(formula)
    rw = _Rewriter()
    lhs_rw, rhs_rw = rw.rewrite(lhs), rw.rewrite(rhs)
    try:
        outcome_terms = [str(t) for t in Formula(f"0 + ({lhs_rw})")]
    except FormulaicError as err:
        raise SpecificationError(f"Cannot read the outcome {lhs!r}: {_formulaic_message(err)}") from None
    if len(outcome_terms) != 1:
        raise SpecificationError(f"The outcome {lhs!r} must be one column or expression.")
    outcome = rw.rename(outcome_terms[0])
    terms, raw_terms, intercept = _rhs_terms(rhs_rw, rw, formula)
    if not terms and not allow_empty:
        raise SpecificationError(f"The formula {formula!r} has no regressors.")
    # the outcome's own columns, also inside L/F/D on the left (D(y) ~ y is y_t on both sides)
    outcome_cols = _required(lhs_rw) | {c for op in rw.ops if op.token in lhs_rw for c in _required(op.base_text)}
    for term, raw in zip(terms, raw_terms):
        if (term.variable == outcome and term.lag == 0) or (_term_required(raw) & outcome_cols):
            raise SpecificationError(
                f"The outcome {outcome!r} cannot be its own contemporaneous regressor ({term.name!r}); "
                "use its lags, L(y, 1)."
            )
    numeric, categorical = set(), set()
    for text in (lhs_rw, rhs_rw, *(op.base_text for op in rw.ops)):
        num, cat = _split_categorical(text)
        numeric |= num
        categorical |= cat
    categorical -= numeric
    return FormulaSpec(
        formula=formula,
        outcome=outcome,
        terms=tuple(terms),
        intercept=intercept,
        numeric=tuple(sorted(numeric)),
        categorical=tuple(sorted(categorical)),
        lhs=lhs_rw,
        rhs=rhs_rw,
        ops=tuple(rw.ops),
    )


def formula_spec(formula: str, *, allow_empty: bool = False) -> FormulaSpec:
    """Read a formula without data: outcome, terms, intercept and the data columns it uses.

    ``allow_empty`` accepts a right-hand side with no regressor (``y ~ 1``), as the fixed part of a
    mixed model may be. Raises :class:`~causalcts.errors.SpecificationError` naming the term for a malformed call, a
    lag below 0, a term listed twice or the outcome at lag 0 on the right.

    Examples
    --------
    >>> from causalcts.data.formula import formula_spec
    >>> spec = formula_spec("np.log(n) ~ L(np.log(n), 1) + F(w, 1) + D(k) + C(ind)")
    >>> spec.outcome, [t.name for t in spec.terms]
    ('np.log(n)', ['L1.np.log(n)', 'F1.w', 'D.k', 'C(ind)'])
    >>> spec.numeric, spec.categorical
    (('k', 'n', 'w'), ('ind',))
    """
    return _parse(formula, allow_empty=allow_empty)


def parse_formula(formula: str) -> tuple[str, list[Term]]:
    """Split ``"y ~ L(y, 1) + x"`` into the outcome and its regressor terms (no data needed).

    Examples
    --------
    >>> from causalcts.data.formula import parse_formula
    >>> y, terms = parse_formula("n ~ L(n, 1:2) + L(w, 0:1) + k")
    >>> y, [t.name for t in terms]
    ('n', ['L1.n', 'L2.n', 'w', 'L1.w', 'k'])
    """
    spec = _parse(formula)
    return spec.outcome, list(spec.terms)


# --------------------------------------------------------------------------- evaluation on data
def _model_matrix(text: str, frame: pd.DataFrame, what: str) -> pd.DataFrame:
    try:
        with np.errstate(all="ignore"):  # a NaN or infinity a transform makes is reported by _check_finite
            mm = model_matrix(text, frame, na_action="ignore", context=_CONTEXT)
    except FormulaicError as err:
        raise SpecificationError(f"Cannot evaluate {what}: {_formulaic_message(err)}") from None
    return pd.DataFrame(mm)


def _row_labels(frame: pd.DataFrame, rows: np.ndarray, panel: Panel | None) -> str:
    if panel is None:
        return describe_rows(frame.index[rows])
    pairs = list(panel.data.iloc[rows[:5]][[panel.entity, panel.time]].itertuples(index=False))
    shown = ", ".join(f"({e!r}, {t!r})" for e, t in pairs)
    more = f" (and {len(rows) - 5} more)" if len(rows) > 5 else ""
    return f"({panel.entity}, {panel.time}) = {shown}{more}"


def _check_finite(values: np.ndarray, name: str, frame, rows_ok: np.ndarray, panel: Panel | None) -> None:
    bad = ~np.isfinite(values) & rows_ok
    if bad.any():
        raise SpecificationError(
            f"The term {name!r} is NaN or infinite in {_row_labels(frame, np.flatnonzero(bad), panel)} although "
            "its inputs are finite there (the log of zero, a division by zero?): the transform does not fit the data."
        )


def _ops_finite(text: str, frame: pd.DataFrame) -> np.ndarray:
    """Rows where every placeholder that ``text`` uses is finite."""
    ok = np.ones(len(frame), bool)
    for token in set(_TOKEN.findall(text)):
        ok &= np.isfinite(frame[f"__cts{token}__"].to_numpy(dtype=float))
    return ok


@dataclass
class Evaluated:
    """Columns of one side of a formula evaluated on a frame (rows as in the frame)."""

    matrix: np.ndarray
    names: list[str]
    terms: list[Term]
    columns: dict[str, np.ndarray]
    """Values of every derived variable the terms name (bases of lagged expressions included)."""


def _operator_columns(spec: FormulaSpec, frame: pd.DataFrame, panel: Panel | None) -> dict[str, np.ndarray]:
    """Add each L/F/D placeholder to ``frame``; return the values of derived bases."""
    if not spec.ops:
        return {}
    if panel is None:
        raise SpecificationError(
            f"{spec.ops[0].call!r}: L(), F() and D() need a panel with entity and time columns "
            "(causalcts.fit); this model has none."
        )
    bases: dict[str, np.ndarray] = {}
    derived: dict[str, np.ndarray] = {}
    for op in spec.ops:
        if op.base_text not in bases:
            mm = _model_matrix(f"0 + ({op.base_text})", frame, repr(op.call))
            if mm.shape[1] != 1:
                raise SpecificationError(
                    f"{op.call!r} must shift one numeric column, but {op.base_name!r} gives {mm.shape[1]} columns "
                    f"({list(map(spec.rename, mm.columns))[:4]})."
                )
            values = mm.iloc[:, 0].to_numpy(dtype=float)
            _check_finite(values, op.base_name, frame, _ops_finite(op.base_text, frame), panel)
            bases[op.base_text] = values
            if op.base_name not in frame.columns:
                derived[op.base_name] = values
        values = bases[op.base_text]
        shifted = panel.diff(values).to_numpy() if op.kind == "D" else panel.lag(values, op.lag).to_numpy()
        frame[op.token] = shifted
        if op.kind == "D":
            derived[op.name] = shifted
    return derived


def evaluate_rhs(
    spec: FormulaSpec,
    frame: pd.DataFrame,
    *,
    panel: Panel | None = None,
    intercept: bool | None = None,
    rhs: str | None = None,
) -> tuple[np.ndarray, Evaluated]:
    """Evaluate a parsed formula on ``frame``: the outcome and the regressor columns.

    Parameters
    ----------
    spec
        From :func:`formula_spec`.
    frame
        The data, one row per observation; a copy is used (placeholder columns are added to it).
        With ``panel``, the frame's rows must be the panel's rows (``panel.data``).
    panel
        Needed for ``L``, ``F`` and ``D``.
    intercept
        ``None`` keeps formulaic's ``Intercept`` column as the formula asks; ``False`` builds the
        columns as with a constant (reduced-rank dummies for ``C()``) and drops it, as the panel
        estimators do (entity effects absorb the constant).
    rhs
        Evaluate this right-hand side (text rewritten by the same parse, e.g. one random-effects
        block) instead of ``spec``'s.

    Returns
    -------
    (y, Evaluated)
        ``y`` is the outcome (NaN where an operator on the left reaches a missing period).

    Examples
    --------
    >>> import pandas as pd
    >>> from causalcts.data.formula import evaluate_rhs, formula_spec
    >>> df = pd.DataFrame({"y": [1.0, 2, 3], "x": [1.0, 4, 9], "g": ["a", "b", "a"]})
    >>> y, ev = evaluate_rhs(formula_spec("y ~ np.sqrt(x) + C(g)"), df)
    >>> ev.names, ev.matrix[:, 1].tolist()
    (['Intercept', 'np.sqrt(x)', 'C(g)[T.b]'], [1.0, 2.0, 3.0])
    """
    frame = frame.copy()
    derived = _operator_columns(spec, frame, panel)
    ops = {op.token: op for op in spec.ops}
    ymm = _model_matrix(f"0 + ({spec.lhs})", frame, f"the outcome {spec.outcome!r}")
    if ymm.shape[1] != 1:
        raise SpecificationError(f"The outcome {spec.outcome!r} gives {ymm.shape[1]} columns; it must give one.")
    y = ymm.iloc[:, 0].to_numpy(dtype=float)
    _check_finite(y, spec.outcome, frame, _ops_finite(spec.lhs, frame), panel)
    text = spec.rhs if rhs is None else rhs
    mm = _model_matrix(text + (" + 1" if intercept is False else ""), frame, repr(spec.rename(text)))
    if intercept is False and "Intercept" in mm.columns:
        mm = mm.drop(columns="Intercept")
    names, terms, columns = [], [], {}
    plain = set(spec.numeric)
    for raw in mm.columns:
        name = spec.rename(str(raw))
        values = mm[raw].to_numpy(dtype=float)
        if str(raw) in ops:
            op = ops[str(raw)]
            term = op.term
            if op.kind == "D" or op.base_name in derived:
                columns[term.variable] = derived[term.variable]
        else:
            term = Term(name, 0)
            if name not in plain and name != "Intercept":
                _check_finite(values, name, frame, _ops_finite(str(raw), frame), panel)
                columns[name] = values
        names.append(name)
        terms.append(term)
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise SpecificationError(f"The formula {spec.formula!r} lists {dup} more than once.")
    return y, Evaluated(mm.to_numpy(dtype=float), names, terms, columns)
