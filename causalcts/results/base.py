"""The results interface shared by every estimator, frequentist or Bayesian."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from causalcts.errors import CausalCTSError

__all__ = ["EstimationResults", "compare"]


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
        Stata-style (``L1.n``, ``w``, ``L1.w``).
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
    tests: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))
    dist: str = "normal"
    df_resid: float | None = None
    outcome_lags: tuple[str, ...] = ()
    info: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))
    spec: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))
    """What ``fit`` was called with (formula, method, entity, time and every option), enough to refit."""
    resid: pd.Series | None = None
    """Residuals of the estimating equation, indexed by (entity, time) of the estimation sample."""
    fitted: pd.Series | None = None
    """Fitted values of the estimating equation, same index as ``resid``."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "params", _freeze(self.params.rename("params")))
        object.__setattr__(self, "std_errors", _freeze(self.std_errors.rename("std_errors")))
        object.__setattr__(self, "cov", _freeze(self.cov))
        object.__setattr__(
            self, "tests", MappingProxyType({k: MappingProxyType(dict(v)) for k, v in dict(self.tests).items()})
        )
        object.__setattr__(self, "info", MappingProxyType(dict(self.info)))
        object.__setattr__(self, "spec", MappingProxyType(dict(self.spec)))
        for name in ("resid", "fitted"):
            value = object.__getattribute__(self, name)
            if value is not None:
                object.__setattr__(self, name, _freeze(value))

    def __getattribute__(self, name: str):
        # hand out copies, so that no caller can change a result in place
        value = object.__getattribute__(self, name)
        if name in ("params", "std_errors", "cov", "resid", "fitted") and value is not None:
            return value.copy()
        return value

    @property
    def sample(self) -> pd.MultiIndex | None:
        """(entity, time) pairs of the estimation sample, where the estimator records residuals."""
        return None if self.resid is None else self.resid.index

    # ------------------------------------------------------------------ inference
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
        if not 0 < level < 1:
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

    def summary(self) -> str:
        """A text table of the estimates and tests."""
        head = [
            f"causalcts {self.method} estimation",
            f"Formula: {self.formula}",
            f"Observations: {self.nobs}   Entities: {self.n_entities}"
            + (f"   Instruments: {self.n_instruments}" if self.n_instruments else "")
            + f"   Covariance: {self.cov_type}",
        ]
        table = self.to_frame().rename(columns={"statistic": "z" if self.dist == "normal" else "t"})
        body = table.to_string(float_format=lambda v: f"{v:.6g}")
        lines = [*head, "", body]
        if self.tests:
            lines.append("")
            for name, t in self.tests.items():
                parts = [f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in t.items()]
                lines.append(f"{name}: " + ", ".join(parts))
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()

    def __repr__(self) -> str:
        return f"<EstimationResults {self.method}: {len(self.params)} terms, {self.nobs} obs>"

    def _repr_html_(self) -> str:
        head = f"<p><b>causalcts {self.method}</b>: {self.formula}<br>nobs={self.nobs}, entities={self.n_entities}"
        head += f", instruments={self.n_instruments}" if self.n_instruments else ""
        head += f", covariance={self.cov_type}</p>"
        tests = ""
        if self.tests:
            rows = "".join(
                f"<tr><td>{n}</td><td>{', '.join(f'{k}={v:.4g}' if isinstance(v, float) else f'{k}={v}' for k, v in t.items())}</td></tr>"
                for n, t in self.tests.items()
            )
            tests = f"<table>{rows}</table>"
        return head + self.to_frame().to_html(float_format=lambda v: f"{v:.5g}") + tests

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict of everything in the results."""
        return {
            "method": self.method,
            "formula": self.formula,
            "cov_type": self.cov_type,
            "nobs": self.nobs,
            "n_entities": self.n_entities,
            "n_instruments": self.n_instruments,
            "params": self.params.to_dict(),
            "std_errors": self.std_errors.to_dict(),
            "cov": self.cov.to_numpy().tolist(),
            "tests": {k: dict(v) for k, v in self.tests.items()},
            "dist": self.dist,
            "df_resid": self.df_resid,
            "outcome_lags": list(self.outcome_lags),
            "info": {k: v for k, v in self.info.items() if isinstance(v, (int, float, str, bool, list, dict))},
        }

    def to_json(self, path: str | Path) -> Path:
        """Save the results as JSON (never pickle)."""
        path = Path(path)
        path.write_text(json.dumps(self.to_dict(), indent=2, default=float))
        return path

    @classmethod
    def from_json(cls, path: str | Path) -> EstimationResults:
        """Load results saved by :meth:`to_json`."""
        d = json.loads(Path(path).read_text())
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


def compare(results: dict[str, EstimationResults], *, stat: str = "std_errors") -> pd.DataFrame:
    """Side-by-side table of several results: estimates with ``stat`` below each, one column per model."""
    cols = {}
    for name, r in results.items():
        s = getattr(r, stat)
        cols[name] = (
            pd.concat({"estimate": r.params, stat: s}, axis=0).swaplevel().sort_index(level=0, sort_remaining=False)
        )
    return pd.DataFrame(cols)
