r"""Simulation-based calibration (SBC) of the Bayesian models (Talts et al. 2018; Modrak et al. 2023).

Repeat: draw parameters from the prior, simulate a data set from the model, fit it, and record the
rank of each true parameter among the posterior draws. If the sampler and the model code are right
the ranks are uniform. Following Modrak et al., the log-likelihood of the simulated data is also a
test quantity: the rank of :math:`\log p(y \mid \theta^\star)` among :math:`\log p(y \mid \theta_s)`.

Two designs are provided: the hierarchical mixed model with a correlated random intercept and
slope (:func:`sbc_mixed`) and the Bayesian dynamic panel (:func:`sbc_dynamic`). Each simulation
derives its seed from ``numpy.random.SeedSequence(seed).spawn``, so any single simulation can be
rerun alone.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from causalcts.bayes.dynamic import fit_bayes_dynamic
from causalcts.bayes.mixed import mixed
from causalcts.errors import CausalCTSError, ConvergenceWarning

__all__ = ["SBCResult", "sbc_dynamic", "sbc_mixed"]


@dataclass(frozen=True)
class SBCResult:
    """Ranks (one row per simulation, one column per quantity) out of ``n_draws`` posterior draws."""

    ranks: pd.DataFrame
    n_draws: int
    design: dict

    def uniformity(self, bins: int = 10) -> pd.DataFrame:
        """Chi-square test of uniform ranks per quantity (statistic, df, p-value)."""
        rows = {}
        edges = np.linspace(0, self.n_draws + 1, bins + 1)
        for col in self.ranks.columns:
            counts, _ = np.histogram(self.ranks[col].to_numpy(), bins=edges)
            chi2, p = stats.chisquare(counts)
            rows[col] = {"statistic": float(chi2), "df": bins - 1, "pvalue": float(p)}
        return pd.DataFrame(rows).T

    def plot(self, ax=None):
        """ECDF of the scaled ranks minus the uniform CDF, with a 95% simultaneous band (approximate, Kolmogorov)."""
        import matplotlib.pyplot as plt

        ax = ax or plt.subplots(figsize=(7, 4))[1]
        n = len(self.ranks)
        u = np.linspace(0, 1, 201)
        for col in self.ranks.columns:
            r = np.sort(self.ranks[col].to_numpy() / (self.n_draws + 1))
            ax.plot(u, np.searchsorted(r, u, side="right") / n - u, label=col, lw=1)
        band = 1.36 / np.sqrt(n)
        ax.fill_between(u, -band, band, color="grey", alpha=0.2, label="95% band")
        ax.axhline(0, color="black", lw=0.8)
        ax.set(xlabel="fractional rank", ylabel="ECDF - uniform", title=f"SBC over {n} simulations")
        ax.legend(fontsize=7, ncol=2)
        return ax


def _thin_ranks(
    true: dict[str, float],
    idata,
    names: dict[str, tuple[str, str | None]],
    n_draws: int,
    rng: np.random.Generator,
    loglik_true: float,
) -> dict[str, int]:
    post = idata.posterior
    total = post.sizes["chain"] * post.sizes["draw"]
    take = np.sort(rng.choice(total, size=n_draws, replace=False))
    out = {}
    for label, (var, coord) in names.items():
        da = post[var] if coord is None else post[var].sel({post[var].dims[-1]: coord})
        vals = da.values.reshape(-1)[take]
        out[label] = int((vals < true[label]).sum())
    ll = post["loglik"].values.reshape(-1)[take]
    out["loglik"] = int((ll < loglik_true).sum())
    return out


def _seed_int(seed: int | np.random.Generator | None) -> int:
    """An int seed from an int, a Generator (its next draw) or None (fresh entropy); recorded on the result."""
    if seed is None:
        return int(np.random.SeedSequence().entropy % (2**63))  # type: ignore[operator]  # entropy is an int here
    if isinstance(seed, np.random.Generator):
        return int(seed.integers(2**63 - 1))
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise CausalCTSError(f"seed={seed!r} must be a non-negative int, a numpy Generator or None.")
    return int(seed)


def _iterate(n_sims, seed, one, progress):
    children = np.random.SeedSequence(seed).spawn(n_sims)
    it = range(n_sims)
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(it, desc="SBC", unit="sim")
    rows = []
    for i in it:
        rows.append(one(children[i]))
    return pd.DataFrame(rows)


def sbc_mixed(
    n_sims: int = 100,
    *,
    n_groups: int = 20,
    n_per_group: int = 8,
    n_draws: int = 99,
    chains: int = 2,
    draws: int = 300,
    tune: int = 300,
    seed: int | np.random.Generator | None = 0,
    progress: bool = False,
) -> SBCResult:
    """SBC of ``mixed(..., method="nuts")`` with a correlated random intercept and slope.

    Prior (absolute): intercept and slope N(0, 1); sigma HalfNormal(1); random-effect SDs HalfNormal(1)
    and HalfNormal(0.5); correlation LKJ(2), i.e. (rho + 1) / 2 ~ Beta(2, 2).
    """
    priors = {"beta_mu": [0.0, 0.0], "beta_sd": [1.0, 1.0], "sigma_sd": 1.0, "re_sd": [1.0, 0.5], "lkj_eta": 2.0}
    names = {
        "Intercept": ("beta", "Intercept"),
        "x": ("beta", "x"),
        "sigma": ("sigma", None),
        "sd_Intercept": ("re_sd", "Intercept"),
        "sd_x": ("re_sd", "x"),
        "rho": ("re_corr", None),
    }

    def one(ss):
        rng = np.random.default_rng(ss)
        beta = rng.normal(0, 1, 2)
        sigma = abs(rng.normal(0, 1))
        sds = np.abs(rng.normal(0, [1.0, 0.5]))
        rho = 2 * rng.beta(2.0, 2.0) - 1
        cov = np.array([[sds[0] ** 2, rho * sds[0] * sds[1]], [rho * sds[0] * sds[1], sds[1] ** 2]])
        g = np.repeat(np.arange(n_groups), n_per_group)
        x = rng.normal(size=len(g))
        b = rng.multivariate_normal([0, 0], cov, size=n_groups)
        y = beta[0] + beta[1] * x + b[g, 0] + b[g, 1] * x + sigma * rng.normal(size=len(g))
        df = pd.DataFrame({"y": y, "x": x, "g": g})
        fit_seed = int(rng.integers(2**31 - 1))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            res = mixed(
                "y ~ x + (1 + x | g)",
                df,
                method="nuts",
                chains=chains,
                draws=draws,
                tune=tune,
                seed=fit_seed,
                priors=priors,
                team_effect_draws=1,
            )
        true = {"Intercept": beta[0], "x": beta[1], "sigma": sigma, "sd_Intercept": sds[0], "sd_x": sds[1], "rho": rho}
        ll_true = float(
            sum(
                stats.multivariate_normal(
                    np.column_stack([np.ones(n_per_group), x[g == k]]) @ beta,
                    np.column_stack([np.ones(n_per_group), x[g == k]])
                    @ cov
                    @ np.column_stack([np.ones(n_per_group), x[g == k]]).T
                    + sigma**2 * np.eye(n_per_group),
                ).logpdf(y[g == k])
                for k in range(n_groups)
            )
        )
        out = _thin_ranks(true, res.idata, names, n_draws, rng, ll_true)
        out["converged"] = res.converged
        return out

    seed = _seed_int(seed)
    ranks = _iterate(n_sims, seed, one, progress)
    design = {
        "model": "mixed",
        "n_sims": n_sims,
        "n_groups": n_groups,
        "n_per_group": n_per_group,
        "converged_share": float(ranks.pop("converged").mean()),
        "seed": seed,
    }
    return SBCResult(ranks=ranks, n_draws=n_draws, design=design)


def sbc_dynamic(
    n_sims: int = 100,
    *,
    n_teams: int = 30,
    n_weeks: int = 8,
    n_draws: int = 99,
    chains: int = 2,
    draws: int = 300,
    tune: int = 300,
    seed: int | np.random.Generator | None = 0,
    progress: bool = False,
) -> SBCResult:
    """SBC of ``fit(..., method="bayes", time_effects=False)`` (the Bayesian dynamic panel).

    Prior (absolute): persistence N(0.5, 0.2^2); effect of x N(0, 0.5^2); initial-condition and
    Mundlak coefficients N(0, 0.5^2); intercept N(0, 1); sigma HalfNormal(0.5); team-effect SD
    HalfNormal(0.5). Data: y_i0 ~ N(0, 1), x_it ~ N(0, 1), a_i = mu + delta y_i0 + pi xbar_i + u_i,
    y_it = a_i + beta y_i,t-1 + gamma x_it + sigma e_it.
    """
    # fixed-effect order of the dynamic model: L1.y, x, initial(y), mean(x), Intercept
    mu0 = [0.5, 0.0, 0.0, 0.0, 0.0]
    sd0 = [0.2, 0.5, 0.5, 0.5, 1.0]
    priors = {"beta_mu": mu0, "beta_sd": sd0, "sigma_sd": 0.5, "re_sd": [0.5]}
    labels = ["L1.y", "x", "initial(y)", "mean(x)", "Intercept"]
    names = {lab: ("beta", lab) for lab in labels} | {"sigma": ("sigma", None), "sd_team": ("re_sd", "Intercept")}

    def one(ss):
        rng = np.random.default_rng(ss)
        b = rng.normal(mu0, sd0)
        sigma = abs(rng.normal(0, 0.5))
        sd_a = abs(rng.normal(0, 0.5))
        y0 = rng.normal(size=n_teams)
        x = rng.normal(size=(n_teams, n_weeks))
        a = b[4] + b[2] * y0 + b[3] * x.mean(axis=1) + sd_a * rng.normal(size=n_teams)
        y = np.empty((n_teams, n_weeks + 1))
        y[:, 0] = y0
        for t in range(n_weeks):
            y[:, t + 1] = a + b[0] * y[:, t] + b[1] * x[:, t] + sigma * rng.normal(size=n_teams)
        df = pd.DataFrame(
            {
                "team": np.repeat(np.arange(n_teams), n_weeks + 1),
                "week": np.tile(np.arange(n_weeks + 1), n_teams),
                "y": y.ravel(),
                "x": np.column_stack([np.zeros(n_teams), x]).ravel(),
            }
        )
        fit_seed = int(rng.integers(2**31 - 1))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            res = fit_bayes_dynamic(
                "y ~ L(y, 1) + x",
                df,
                time_effects=False,
                chains=chains,
                draws=draws,
                tune=tune,
                seed=fit_seed,
                priors=priors,
                team_effect_draws=1,
            )
        true = dict(zip(labels, b)) | {"sigma": sigma, "sd_team": sd_a}
        resid = y[:, 1:] - b[0] * y[:, :-1] - b[1] * x - (b[4] + b[2] * y0 + b[3] * x.mean(axis=1))[:, None]
        cov = sigma**2 * np.eye(n_weeks) + sd_a**2 * np.ones((n_weeks, n_weeks))
        ll_true = float(stats.multivariate_normal(np.zeros(n_weeks), cov).logpdf(resid).sum())
        out = _thin_ranks(true, res.idata, names, n_draws, rng, ll_true)
        out["converged"] = res.converged
        return out

    seed = _seed_int(seed)
    ranks = _iterate(n_sims, seed, one, progress)
    design = {
        "model": "dynamic",
        "n_sims": n_sims,
        "n_teams": n_teams,
        "n_weeks": n_weeks,
        "converged_share": float(ranks.pop("converged").mean()),
        "seed": seed,
    }
    return SBCResult(ranks=ranks, n_draws=n_draws, design=design)
