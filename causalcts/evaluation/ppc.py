"""Posterior predictive checks for mixed-model fits.

Replicated outcomes are drawn for the observed rows from posterior draws of the fixed effects, the
residual SD and the team effects (drawn from their exact conditional), and summary statistics of
the replicates are compared with the observed ones: a statistic far in the tail of its replicated
distribution points at misfit.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from causalcts.bayes.mixed import prepare_mixed
from causalcts.errors import CausalCTSError

__all__ = ["posterior_predictive"]

STATISTICS = {
    "mean": lambda y, g: float(np.mean(y)),
    "sd": lambda y, g: float(np.std(y)),
    "sd_of_team_means": lambda y, g: float(np.std(np.bincount(g, weights=y) / np.bincount(g))),
    "min": lambda y, g: float(np.min(y)),
    "max": lambda y, g: float(np.max(y)),
}


def posterior_predictive(result, data: pd.DataFrame, *, n_draws: int = 100, seed: int | None = None):
    """Replicate the outcome and compare statistics with the data.

    Returns ``(replicates, table)``: an array ``(n_draws, n_rows)`` of replicated outcomes (rows in
    the model's order: sorted by group) and a DataFrame with, per statistic, the observed value, the
    replicates' mean and the posterior predictive p-value P(T(y_rep) >= T(y)).
    """
    idata = getattr(result, "idata", None)
    if idata is None or "team_effects" not in idata.groups():
        raise CausalCTSError(
            "Posterior predictive checks need a sampled mixed-model fit (causalcts.mixed, method='nuts')."
        )
    spec, y, X, Z, codes, labels = prepare_mixed(result.formula, data)
    te = idata["team_effects"]["team_effect"]
    post = idata.posterior
    rng = np.random.default_rng(seed)
    chains, draws_kept = te.sizes["chain"], te.sizes["draw"]
    kept_draws = te["draw"].values
    pick = rng.choice(chains * draws_kept, size=min(n_draws, chains * draws_kept), replace=False)
    reps = np.empty((len(pick), len(y)))
    for k, flat in enumerate(pick):
        c, j = divmod(int(flat), draws_kept)
        d = int(kept_draws[j])
        beta = post["beta"].values[c, d]
        sigma = float(post["sigma"].values[c, d])
        b = te.values[c, j]  # (groups, q)
        reps[k] = X @ beta + np.einsum("nq,nq->n", Z, b[codes]) + sigma * rng.standard_normal(len(y))
    rows = {}
    for name, f in STATISTICS.items():
        obs = f(y, codes)
        rep = np.array([f(r, codes) for r in reps])
        rows[name] = {"observed": obs, "replicated_mean": float(rep.mean()), "ppp": float((rep >= obs).mean())}
    return reps, pd.DataFrame(rows).T
