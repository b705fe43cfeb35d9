"""Results of Bayesian and likelihood mixed-model fits: the shared interface plus what only they have."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from causalcts.errors import ConvergenceWarning
from causalcts.results.base import EstimationResults

__all__ = ["BayesResults", "diagnose"]

RHAT_MAX = 1.01
#: Minimum bulk and tail ESS per chain (Vehtari et al. 2021 recommend 100 per chain; 400 for 4 chains).
ESS_PER_CHAIN = 100


@dataclass(frozen=True, eq=False)
class BayesResults(EstimationResults):
    """Estimation results with the mixed-model and sampler extras.

    ``params`` are posterior means (or REML/ML estimates), ``std_errors`` posterior SDs (or the
    usual standard errors), ``conf_int(level)`` equal-tailed credible intervals for sampled fits.
    Also: ``cov_re`` (random-effects covariance, labelled), ``scale`` (residual variance),
    ``llf`` (maximised log-likelihood or REML criterion / -2 for REML and ML fits, else None),
    ``idata`` (ArviZ InferenceData for sampled fits), ``diagnostics`` (R-hat, ESS, divergences)
    and ``converged``.
    """

    cov_re: pd.DataFrame | None = None
    scale: float | None = None
    llf: float | None = None
    idata: Any = None
    diagnostics: pd.DataFrame | None = None
    converged: bool = True
    random_effects: pd.DataFrame | None = None

    def conf_int(self, level: float = 0.95) -> pd.DataFrame:
        if self.idata is None:
            return super().conf_int(level)
        self._critical(level)  # validates the level
        post = self.idata.posterior
        lo, hi = (1 - level) / 2, 1 - (1 - level) / 2
        rows = {}
        for name in self.params.index:
            var, coord = self._locate(name)
            da = post[var] if coord is None else post[var].sel(term=coord)
            vals = da.values.ravel()
            rows[name] = (float(np.quantile(vals, lo)), float(np.quantile(vals, hi)))
        return pd.DataFrame(rows, index=["lower", "upper"]).T

    def _locate(self, name: str) -> tuple[str, str | None]:
        post = self.idata.posterior
        if "beta" in post and "term" in post["beta"].dims and name in post["beta"].coords["term"].values:
            return "beta", name
        return name, None

    def long_run(self, variable: str, level: float = 0.95) -> dict[str, float]:
        """Long-run effect gamma / (1 - beta); for sampled fits computed draw by draw (its posterior)."""
        if self.idata is None or not self.outcome_lags:
            return super().long_run(variable, level)
        post = self.idata.posterior["beta"]
        terms = [
            t
            for t in post.coords["term"].values
            if t == variable or (t.startswith("L") and t.split(".", 1)[-1] == variable)
        ]
        terms = [t for t in terms if t not in self.outcome_lags]
        if not terms:
            return super().long_run(variable, level)
        rho = post.sel(term=list(self.outcome_lags)).sum("term")
        lr = (post.sel(term=terms).sum("term") / (1 - rho)).values.ravel()
        lo, hi = (1 - level) / 2, 1 - (1 - level) / 2
        return {
            "estimate": float(lr.mean()),
            "std_error": float(lr.std(ddof=1)),
            "lower": float(np.quantile(lr, lo)),
            "upper": float(np.quantile(lr, hi)),
            "level": level,
        }

    def summary(self) -> str:
        text = super().summary()
        extra = []
        if self.cov_re is not None:
            extra += ["", "Random-effects covariance:", self.cov_re.to_string(float_format=lambda v: f"{v:.6g}")]
        if self.scale is not None:
            extra.append(f"Residual variance: {self.scale:.6g}")
        if self.llf is not None:
            extra.append(f"Log-likelihood: {self.llf:.6g}")
        if self.diagnostics is not None:
            extra.append(
                f"Converged: {self.converged} (max R-hat {self.diagnostics['r_hat'].max():.4f}, "
                f"min bulk ESS {self.diagnostics['ess_bulk'].min():.0f}, "
                f"divergences {int(self.info.get('divergences', 0))})"
            )
        return "\n".join([text, *extra])


def diagnose(idata, var_names: list[str], *, label: str = "model") -> tuple[pd.DataFrame, bool, int]:
    """R-hat, bulk and tail ESS per scalar, divergences; warn with :class:`ConvergenceWarning` on trouble."""
    import arviz as az

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        summ = az.summary(idata, var_names=var_names, kind="diagnostics")
    diag = summ[["r_hat", "ess_bulk", "ess_tail"]].astype(float)
    div = int(idata.sample_stats["diverging"].values.sum()) if "diverging" in idata.sample_stats else 0
    ess_min = ESS_PER_CHAIN * int(idata.posterior.sizes["chain"])
    problems = []
    if div:
        problems.append(f"{div} divergent transitions")
    if (diag["r_hat"] > RHAT_MAX).any():
        problems.append(f"R-hat up to {diag['r_hat'].max():.3f} (> {RHAT_MAX})")
    if (diag["ess_bulk"] < ess_min).any() or (diag["ess_tail"] < ess_min).any():
        problems.append(
            f"bulk ESS as low as {diag['ess_bulk'].min():.0f} and tail ESS as low as "
            f"{diag['ess_tail'].min():.0f} (< {ess_min})"
        )
    if problems:
        warnings.warn(
            f"The {label} sampler did not converge cleanly: {'; '.join(problems)}. Treat the estimates "
            "with caution; run more draws or tune longer.",
            ConvergenceWarning,
            stacklevel=3,
        )
    return diag, not problems, div
