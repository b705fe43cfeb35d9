"""The results interface shared by every estimator, frequentist or Bayesian.

One contract for every family: ``params``, ``std_errors``, ``cov``, ``conf_int(level)``, ``nobs``,
``n_entities``, ``method``, ``formula``, ``spec``, ``to_frame(level)``, ``summary()`` (a
:class:`~causalcts.results.summary.Summary`: text, HTML and LaTeX), ``to_dict()``, ``to_json(path)``,
``from_json(path)`` and :func:`load`. Families add fields on top (``cov_re``, ``scale``, ``llf``,
``idata`` in :class:`causalcts.bayes.results.BayesResults`); every field survives a JSON round trip.

The intercept, where a model has one, is labelled ``"Intercept"`` (as formulaic and statsmodels do).
"""

from __future__ import annotations

import copy
import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from scipy import stats

from causalcts.errors import CausalCTSError
from causalcts.results.serialize import decode, encode
from causalcts.results.summary import Summary

__all__ = ["EstimationResults", "compare", "load"]

#: Version tag written into saved results; files without it are read as causalcts 0.1 JSON.
FORMAT = "causalcts-results/2"
_MAPPINGS = ("tests", "info", "spec")
#: Keys every causalcts 0.1 results file has (files without the ``format`` tag).
_LEGACY_KEYS = (
    "params",
    "std_errors",
    "cov",
    "nobs",
    "n_entities",
    "method",
    "formula",
    "cov_type",
    "n_instruments",
    "tests",
    "dist",
    "df_resid",
    "outcome_lags",
    "info",
)
_JSON_TYPES = {dict: "object", list: "array", str: "string", int: "number", float: "number", bool: "boolean"}


def _not_results(d: Any) -> str | None:
    """Why ``d`` (parsed JSON) is not a saved causalcts result, or None when it looks like one."""
    if not isinstance(d, dict):
        return f"it holds a JSON {_JSON_TYPES.get(type(d), 'null')}, not an object with 'format', 'params', ..."
    if "format" not in d:
        missing = [k for k in _LEGACY_KEYS if k not in d]
        if len(missing) == len(_LEGACY_KEYS):
            return "it has none of the keys a results file has ('format', 'class', 'params', 'cov', ...)"
        return f"it has no 'format' tag and lacks the keys {missing}" if missing else None
    tag = d["format"]
    if not isinstance(tag, str) or not tag.startswith("causalcts-results/"):
        return f"its 'format' is {tag!r}, not {FORMAT!r}"
    name = d.get("class", "EstimationResults")
    if not isinstance(name, str):
        return f"its 'class' is {name!r}, not the name of a results class"
    target = EstimationResults if name == "EstimationResults" else EstimationResults._classes.get(name)
    if target is None:
        return None  # from_dict names the unknown class
    required = [
        f.name
        for f in dataclasses.fields(target)
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    missing = [k for k in required if k not in d]
    return f"it lacks the keys {missing}" if missing else None


def _unproxy(value: Any) -> Any:
    """``value`` with every (nested) read-only mapping as a plain dict, so that pickle and deepcopy can copy it."""
    if isinstance(value, MappingProxyType) or type(value) is dict:
        return {k: _unproxy(v) for k, v in value.items()}
    if type(value) in (list, tuple):
        return type(value)(_unproxy(v) for v in value)
    return value


def _freeze(obj: pd.Series | pd.DataFrame) -> pd.Series | pd.DataFrame:
    out = obj.copy()
    try:
        out.values.flags.writeable = False
    except (AttributeError, ValueError):
        pass
    return out


@dataclass(frozen=True, eq=False)
class EstimationResults:
    """Immutable results of one estimation, in the statsmodels vocabulary.

    Attributes
    ----------
    params, std_errors
        Estimates and standard errors (posterior means and SDs for Bayesian fits), labelled
        Stata-style (``L1.n``, ``w``, ``L1.w``); the constant is ``"Intercept"``.
    cov
        Covariance matrix of the estimates.
    nobs, n_entities, n_instruments
        Observations used, entities, and instrument count (0 where there are none).
    tests
        Specification tests: name -> dict with ``statistic``, ``df`` (where it applies) and ``pvalue``.
    method, formula, cov_type
        What was estimated and how.
    dist
        ``"normal"`` (z statistics) or ``"t"`` (with ``df_resid``).

    Every pandas attribute is handed out as a copy, and no field can be reassigned, so a result
    never changes after ``fit`` returns it.

    Examples
    --------
    >>> import pandas as pd
    >>> res = EstimationResults(params=pd.Series({"x": 0.5}), std_errors=pd.Series({"x": 0.1}),
    ...                         cov=pd.DataFrame([[0.01]], index=["x"], columns=["x"]), nobs=100,
    ...                         n_entities=10, method="pooled", formula="y ~ x", cov_type="unadjusted")
    >>> res.conf_int(0.95).round(3).loc["x"].tolist()
    [0.304, 0.696]
    >>> res.inference
    'z (normal)'
    """

    params: pd.Series
    std_errors: pd.Series
    cov: pd.DataFrame
    nobs: int
    n_entities: int
    method: str
    formula: str
    cov_type: str
    n_instruments: int = 0
    tests: Mapping[str, Mapping[str, Any]] = field(default_factory=lambda: MappingProxyType({}))
    dist: str = "normal"
    df_resid: float | None = None
    outcome_lags: tuple[str, ...] = ()
    info: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    spec: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    """What ``fit`` was called with (formula, method, entity, time and every option), enough to refit."""
    resid: pd.Series | None = None
    """Residuals of the estimating equation, indexed by (entity, time) of the estimation sample."""
    fitted: pd.Series | None = None
    """Fitted values of the estimating equation, same index as ``resid``."""

    _classes: ClassVar[dict[str, type]] = {}

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        EstimationResults._classes[cls.__name__] = cls  # so that load() returns the right class

    def __post_init__(self) -> None:
        object.__setattr__(self, "params", self.params.rename("params"))
        object.__setattr__(self, "std_errors", self.std_errors.rename("std_errors"))
        object.__setattr__(self, "outcome_lags", tuple(self.outcome_lags))
        object.__setattr__(
            self, "tests", MappingProxyType({k: MappingProxyType(dict(v)) for k, v in dict(self.tests).items()})
        )
        object.__setattr__(self, "info", MappingProxyType(copy.deepcopy(dict(self.info))))
        object.__setattr__(self, "spec", MappingProxyType(copy.deepcopy(dict(self.spec))))
        for f in dataclasses.fields(self):
            value = object.__getattribute__(self, f.name)
            if isinstance(value, (pd.Series, pd.DataFrame)):
                object.__setattr__(self, f.name, _freeze(value))

    # pickle and deepcopy (multiprocessing, joblib, caching; files are JSON, never pickle): the read-only mappings
    # travel as dicts and __post_init__ makes the copy read-only again
    def __getstate__(self) -> dict[str, Any]:
        return {k: _unproxy(v) for k, v in object.__getattribute__(self, "__dict__").items()}

    def __setstate__(self, state: dict[str, Any]) -> None:
        for k, v in state.items():
            object.__setattr__(self, k, v)
        self.__post_init__()

    def __getattribute__(self, name: str):
        # hand out copies, so that no caller can change a result in place
        value = object.__getattribute__(self, name)
        if isinstance(value, (pd.Series, pd.DataFrame)):
            return value.copy()
        if name in ("info", "spec"):
            return MappingProxyType(copy.deepcopy(dict(value)))
        return value

    @property
    def checks(self) -> pd.DataFrame:
        """The exogeneity checks the result carries (``info["checks"]``), indexed by ``variable``.

        :func:`causalcts.fit` attaches them to every result whose formula has a lag of the outcome (the lead test
        of every regressor; with ``treatment=``, whether each control responds to it), and
        :func:`causalcts.diagnostics.fit_auto` the checks it ran. Columns ``test``, ``statistic``, ``df``,
        ``pvalue``, ``verdict``, ``coefficient``, ``detail``; an empty table when there are none.
        """
        rows = self.info.get("checks") or []
        columns = ["test", "statistic", "df", "pvalue", "verdict", "coefficient", "detail"]
        table = pd.DataFrame([dict(r) for r in rows], columns=["variable", *columns])
        return table.set_index("variable")

    def _checks_table(self) -> list[tuple[str, pd.DataFrame]]:
        """The summary's table of the exogeneity checks (none when the result carries none)."""
        table = self.checks
        if table.empty:
            return []
        cluster = self.info.get("checks_cluster")
        how = f"clustered by {cluster}; " if cluster else ""
        caption = f"Exogeneity checks ({how}fail p < 0.05, warn p < 0.10)"
        return [(caption, table[["test", "statistic", "df", "pvalue", "verdict"]])]

    @property
    def sample(self) -> pd.MultiIndex | None:
        """(entity, time) pairs of the estimation sample, where the estimator records residuals."""
        return None if self.resid is None else self.resid.index

    # ------------------------------------------------------------------ inference
    @property
    def inference(self) -> str:
        """The reference distribution of the statistics: ``"z (normal)"`` or ``"t with <df> df"``."""
        if self.dist == "t" and self.df_resid:
            return f"t with {self.df_resid:g} df"
        return "z (normal)"

    @property
    def tstats(self) -> pd.Series:
        """Estimates over standard errors (z or t statistics)."""
        return (self.params / self.std_errors).rename("tstats")

    @property
    def pvalues(self) -> pd.Series:
        """Two-sided p-values of the z (or t) statistics."""
        t = np.abs(self.tstats.to_numpy())
        if self.dist == "t" and self.df_resid:
            p = 2 * stats.t.sf(t, self.df_resid)
        else:
            p = 2 * stats.norm.sf(t)
        return pd.Series(p, index=self.params.index, name="pvalues")

    def _critical(self, level: float) -> float:
        if not isinstance(level, (int, float)) or not 0 < level < 1:
            raise CausalCTSError(f"level={level} must lie strictly between 0 and 1 (e.g. 0.95).")
        q = 0.5 + level / 2
        return float(stats.t.ppf(q, self.df_resid) if self.dist == "t" and self.df_resid else stats.norm.ppf(q))

    def conf_int(self, level: float = 0.95) -> pd.DataFrame:
        """Confidence intervals (credible intervals for Bayesian fits) with columns ``lower`` and ``upper``."""
        c = self._critical(level)
        return pd.DataFrame({"lower": self.params - c * self.std_errors, "upper": self.params + c * self.std_errors})

    def long_run(self, variable: str, level: float = 0.95) -> dict[str, float]:
        """Long-run effect of ``variable``: gamma / (1 - sum of the outcome's lag coefficients).

        gamma is the sum of the coefficients on ``variable`` and its lags. The standard error
        comes from the delta method with the full covariance of the estimates.

        Returns a dict with ``estimate``, ``std_error``, ``lower``, ``upper`` and ``level``.
        """
        terms = [t for t in self.params.index if t == variable or t.split(".", 1)[-1] == variable and t[0] == "L"]
        terms = [t for t in terms if t not in self.outcome_lags]
        if not terms:
            raise CausalCTSError(
                f"{variable!r} is not a regressor of this model; regressors are {list(self.params.index)}."
            )
        if not self.outcome_lags:
            raise CausalCTSError("long_run needs the model to include lags of the outcome.")
        b = self.params
        rho = float(b[list(self.outcome_lags)].sum())
        if rho >= 1:
            raise CausalCTSError(f"The outcome's lag coefficients sum to {rho:.3f} >= 1: no long-run effect exists.")
        gamma = float(b[terms].sum())
        est = gamma / (1 - rho)
        grad = pd.Series(0.0, index=b.index)
        grad[terms] = 1 / (1 - rho)
        grad[list(self.outcome_lags)] = gamma / (1 - rho) ** 2
        var = float(grad.to_numpy() @ self.cov.loc[b.index, b.index].to_numpy() @ grad.to_numpy())
        se = float(np.sqrt(max(var, 0.0)))
        c = self._critical(level)
        return {"estimate": est, "std_error": se, "lower": est - c * se, "upper": est + c * se, "level": level}

    # ------------------------------------------------------------------ presentation
    def to_frame(self, level: float = 0.95) -> pd.DataFrame:
        """Tidy table: one row per term with estimate, std_error, statistic, pvalue, lower, upper."""
        ci = self.conf_int(level)
        out = pd.DataFrame(
            {
                "estimate": self.params,
                "std_error": self.std_errors,
                "statistic": self.tstats,
                "pvalue": self.pvalues,
                "lower": ci["lower"],
                "upper": ci["upper"],
            }
        )
        return out.rename_axis("term")

    def _header(self) -> list[tuple[str, object]]:
        head: list[tuple[str, object]] = [
            ("Method", self.method),
            ("Formula", self.formula),
            ("Observations", self.nobs),
            ("Entities", self.n_entities),
        ]
        if self.n_instruments:
            head.append(("Instruments", self.n_instruments))
        head += [("Covariance", self.cov_type), ("Inference", self.inference)]
        return head

    def _estimates_table(self, level: float) -> tuple[str, pd.DataFrame]:
        table = self.to_frame(level).rename(columns={"statistic": "z" if self.inference.startswith("z") else "t"})
        lo, hi = (1 - level) / 2, 1 - (1 - level) / 2
        table = table.rename(columns={"lower": f"[{lo:g}", "upper": f"{hi:g}]"})
        return f"Estimates ({level:.0%} confidence intervals)", table

    def _notes(self) -> list[str]:
        notes = []
        for name, t in self.tests.items():
            parts = [f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in t.items()]
            notes.append(f"{name}: " + ", ".join(parts))
        return notes

    def summary(self, level: float = 0.95) -> Summary:
        """The results table: prints as text, renders as HTML (``_repr_html_``) and LaTeX (``as_latex()``).

        The header names the method, formula, observations, entities, covariance and the inference
        convention (z, or t with its degrees of freedom); then one row per term; then the exogeneity checks
        with their verdicts (:attr:`checks`, when the result carries them); then the tests.
        """
        tables = [self._estimates_table(level), *self._checks_table()]
        return Summary(f"causalcts {self.method} estimation", self._header(), tables, self._notes())

    def __str__(self) -> str:
        return str.__str__(self.summary())

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.method}: {len(self.params)} terms, {self.nobs} obs>"

    def _repr_html_(self) -> str:
        return self.summary().as_html()

    # ------------------------------------------------------------------ saving and loading
    def _json_fields(self) -> dict[str, Any]:
        return {f.name: object.__getattribute__(self, f.name) for f in dataclasses.fields(self)}

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict of every field (tagged where plain JSON would lose a type; see ``serialize``)."""
        out: dict[str, Any] = {"format": FORMAT, "class": type(self).__name__}
        out.update({k: self._encode_field(k, v) for k, v in self._json_fields().items()})
        return out

    def _encode_field(self, name: str, value: Any) -> Any:
        return encode(value)

    @classmethod
    def from_dict(cls, d: dict[str, Any], *, directory: str | Path | None = None) -> EstimationResults:
        """Rebuild results from :meth:`to_dict` output (or a causalcts 0.1 dict); ``directory`` holds side files."""
        reason = _not_results(d)
        if reason is not None:
            raise CausalCTSError(f"This is not a causalcts results dict: {reason}.")
        if "format" not in d:
            return cls._from_legacy(d)
        name = d.get("class", "EstimationResults")
        target = EstimationResults if name == "EstimationResults" else EstimationResults._classes.get(name)
        if target is None:
            raise CausalCTSError(f"Unknown results class {name!r}; known: {sorted(EstimationResults._classes)}.")
        if not issubclass(target, cls):
            raise CausalCTSError(f"The file holds {name} results, which {cls.__name__}.from_json cannot load.")
        names = {f.name for f in dataclasses.fields(target)}
        kwargs = {k: decode(v) for k, v in d.items() if k in names}
        return target._from_fields(kwargs, Path(directory) if directory is not None else None)

    @classmethod
    def _from_fields(cls, kwargs: dict[str, Any], directory: Path | None) -> EstimationResults:
        return cls(**kwargs)

    @classmethod
    def _from_legacy(cls, d: dict[str, Any]) -> EstimationResults:
        names = list(d["params"])
        return cls(
            params=pd.Series(d["params"]),
            std_errors=pd.Series(d["std_errors"]),
            cov=pd.DataFrame(d["cov"], index=names, columns=names),
            nobs=d["nobs"],
            n_entities=d["n_entities"],
            method=d["method"],
            formula=d["formula"],
            cov_type=d["cov_type"],
            n_instruments=d["n_instruments"],
            tests=d["tests"],
            dist=d["dist"],
            df_resid=d["df_resid"],
            outcome_lags=tuple(d["outcome_lags"]),
            info=d["info"],
        )

    def to_json(self, path: str | Path) -> Path:
        """Save every field as JSON at ``path`` (never pickle) and return the path.

        Bayesian results also write their ``idata`` to ``path.with_suffix(".nc")`` (netCDF).
        """
        path = Path(path)
        path.write_text(json.dumps(self.to_dict(), indent=1, allow_nan=False))
        return path

    @classmethod
    def from_json(cls, path: str | Path) -> EstimationResults:
        """Load results saved by :meth:`to_json`; returns the class that was saved (see :func:`load`)."""
        path = Path(path)
        try:
            d = json.loads(path.read_text())
        except FileNotFoundError:
            raise CausalCTSError(f"No results file at {str(path)!r}.") from None
        except json.JSONDecodeError as err:
            raise CausalCTSError(f"{str(path)!r} is not a causalcts results JSON file: {err}.") from None
        reason = _not_results(d)
        if reason is not None:
            raise CausalCTSError(
                f"{str(path)!r} is not a causalcts results file (written by res.to_json): {reason}."
            ) from None
        try:
            return cls.from_dict(d, directory=path.parent)
        except (KeyError, TypeError, AttributeError, IndexError) as err:
            raise CausalCTSError(
                f"{str(path)!r} is not a causalcts results file, or a damaged one ({type(err).__name__}: {err})."
            ) from None

    def equals(self, other: object) -> bool:
        """True when ``other`` is the same class and every field is equal (NaN equal to NaN, dtypes and index names
        included); ``idata`` groups are compared with :meth:`xarray.Dataset.equals`."""
        if type(other) is not type(self):
            return False
        mine, theirs = self._json_fields(), other._json_fields()
        for name, value in mine.items():
            if name == "idata":
                if not _idata_equal(value, theirs[name]):
                    return False
            elif encode(value) != encode(theirs[name]):
                return False
        return True


def _idata_equal(a, b) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if set(a.groups()) != set(b.groups()):
        return False
    return all(a[g].equals(b[g]) for g in a.groups())


def load(path: str | Path) -> EstimationResults:
    """Load any results saved with ``to_json``: the class that was saved comes back (``BayesResults`` with its
    ``idata`` from the ``.nc`` file beside the JSON).

    Examples
    --------
    >>> import tempfile, pathlib, pandas as pd
    >>> res = EstimationResults(params=pd.Series({"x": 0.5}), std_errors=pd.Series({"x": 0.1}),
    ...                         cov=pd.DataFrame([[0.01]], index=["x"], columns=["x"]), nobs=100,
    ...                         n_entities=10, method="pooled", formula="y ~ x", cov_type="unadjusted")
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     back = load(res.to_json(pathlib.Path(tmp) / "res.json"))
    >>> back.equals(res)
    True
    """
    return EstimationResults.from_json(path)


def compare(results: dict[str, EstimationResults], *, stat: str = "std_errors") -> pd.DataFrame:
    """Side-by-side table of several results: estimates with ``stat`` below each, one column per model.

    Works across families (least squares, GMM, mixed, Bayesian: posterior means and SDs).
    """
    cols = {}
    for name, r in results.items():
        try:
            s = getattr(r, stat)
        except AttributeError:
            raise CausalCTSError(f"stat={stat!r} is not an attribute of the {name!r} results.") from None
        cols[name] = (
            pd.concat({"estimate": r.params, stat: s}, axis=0).swaplevel().sort_index(level=0, sort_remaining=False)
        )
    return pd.DataFrame(cols)
