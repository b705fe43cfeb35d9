r"""Which drivers move CTS-SW most, and how much the answer depends on the priors.

:func:`driver_sensitivity` turns the coefficients of a model of log CTS-SW into the effect of a
one-standard-deviation change in each driver, in percent:
:math:`100\,(e^{\beta_j s_j} - 1)` with :math:`s_j` the driver's SD in the data, computed draw by
draw for sampled fits (so the credible interval is exact) and by the delta method otherwise.
:func:`prior_sensitivity` refits with every prior scale multiplied by, e.g., 0.5 and 2 and reports how
far each posterior mean moves, in posterior SDs of the reference fit.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy import stats

from causalcts.bayes.mixed import mixed
from causalcts.bayes.results import BayesResults
from causalcts.errors import CausalCTSError, ConvergenceWarning, MissingColumnError
from causalcts.results.base import EstimationResults

__all__ = ["driver_sensitivity", "prior_sensitivity"]


def driver_sensitivity(
    result: EstimationResults,
    data: pd.DataFrame,
    *,
    drivers: list[str] | None = None,
    level: float = 0.95,
    log_outcome: bool | None = None,
) -> pd.DataFrame:
    """Effect on the outcome of a one-SD change in each driver, ranked by size.

    Parameters
    ----------
    result
        A fit whose outcome is log CTS-SW (or any outcome; see ``log_outcome``).
    data
        The data the drivers' SDs are taken from.
    drivers
        Terms to rank (default: every term but the intercept).
    log_outcome
        If True (default when the outcome's name starts with ``log``) effects are percent changes,
        ``100 (exp(beta * sd) - 1)``; else changes in the outcome's units, ``beta * sd``.

    Returns
    -------
    DataFrame indexed by driver, sorted by the size of the effect, with ``sd``, ``effect``,
    ``lower``, ``upper`` and ``rank``.
    """
    outcome = result.formula.split("~")[0].strip()
    if log_outcome is None:
        log_outcome = outcome.lower().startswith("log")
    names = drivers or [t for t in result.params.index if t not in ("Intercept", "const", "_cons")]
    missing = [d for d in names if d not in data.columns]
    if missing:
        raise MissingColumnError(f"Driver column(s) {missing} are not in the data.")
    unknown = [d for d in names if d not in result.params.index]
    if unknown:
        raise CausalCTSError(f"{unknown} are not terms of the model; terms are {list(result.params.index)}.")
    lo, hi = (1 - level) / 2, 1 - (1 - level) / 2
    rows = {}
    idata = getattr(result, "idata", None)
    for d in names:
        sd = float(pd.to_numeric(data[d], errors="coerce").std())
        if idata is not None and "beta" in idata.posterior and d in idata.posterior["beta"].coords["term"].values:
            draws = idata.posterior["beta"].sel(term=d).values.ravel() * sd
            eff = 100 * np.expm1(draws) if log_outcome else draws
            est, lower, upper = float(np.mean(eff)), float(np.quantile(eff, lo)), float(np.quantile(eff, hi))
        else:
            b, se = float(result.params[d]), float(result.std_errors[d])
            z = stats.norm.ppf(hi)
            lin = np.array([b * sd, (b - z * se) * sd, (b + z * se) * sd])
            eff = 100 * np.expm1(lin) if log_outcome else lin
            est, lower, upper = float(eff[0]), float(min(eff[1], eff[2])), float(max(eff[1], eff[2]))
        rows[d] = {"sd": sd, "effect": est, "lower": lower, "upper": upper}
    out = pd.DataFrame(rows).T
    out = out.reindex(out["effect"].abs().sort_values(ascending=False).index)
    out["rank"] = np.arange(1, len(out) + 1)
    out.attrs["unit"] = "percent change in the outcome" if log_outcome else "change in the outcome"
    return out


def prior_sensitivity(
    formula: str,
    data: pd.DataFrame,
    *,
    scales: tuple[float, ...] = (0.5, 2.0),
    reference: BayesResults | None = None,
    **kwargs,
) -> pd.DataFrame:
    """Refit a mixed model with every prior scale multiplied by each of ``scales``; report what moves.

    Returns a DataFrame with one row per (parameter, prior scale): the posterior mean and SD, and the
    shift from the reference fit (prior scale 1) in reference posterior SDs; ``moves`` is True where
    the shift exceeds a quarter SD.
    """
    kwargs.setdefault("method", "nuts")
    if kwargs["method"] != "nuts":
        raise CausalCTSError("Prior sensitivity needs method='nuts'.")
    ref = reference or mixed(formula, data, prior_scale=1.0, **kwargs)
    rows = []
    fits = {1.0: ref}
    for s in scales:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            fits[s] = mixed(formula, data, prior_scale=s, **kwargs)
    for s, r in fits.items():
        extra = {"sigma": float(r.idata.posterior["sigma"].mean())}
        extra_ref = {"sigma": (float(ref.idata.posterior["sigma"].mean()), float(ref.idata.posterior["sigma"].std()))}
        for name in r.params.index:
            shift = (r.params[name] - ref.params[name]) / ref.std_errors[name]
            rows.append(
                {
                    "parameter": name,
                    "prior_scale": s,
                    "mean": float(r.params[name]),
                    "sd": float(r.std_errors[name]),
                    "shift_in_sd": float(shift),
                    "converged": r.converged,
                }
            )
        for name, v in extra.items():
            m0, s0 = extra_ref[name]
            rows.append(
                {
                    "parameter": name,
                    "prior_scale": s,
                    "mean": v,
                    "sd": float(r.idata.posterior[name].std()),
                    "shift_in_sd": (v - m0) / s0,
                    "converged": r.converged,
                }
            )
    out = pd.DataFrame(rows).sort_values(["parameter", "prior_scale"]).reset_index(drop=True)
    out["moves"] = out["shift_in_sd"].abs() > 0.25
    return out
