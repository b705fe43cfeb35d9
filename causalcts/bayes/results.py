"""Results of Bayesian and likelihood mixed-model fits: the shared interface plus what only they have."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from causalcts.errors import CausalCTSError, ConvergenceWarning
from causalcts.results.base import EstimationResults

__all__ = ["BayesResults", "add_log_likelihood", "diagnose", "pointwise_loglik"]

RHAT_MAX = 1.01
#: Minimum bulk and tail ESS per chain (Vehtari et al. 2021 recommend 100 per chain; 400 for 4 chains).
ESS_PER_CHAIN = 100
#: Posterior draws per block when the per-team log-likelihood is computed (bounds the memory used).
_DRAW_BLOCK = 256


@dataclass(frozen=True, eq=False)
class BayesResults(EstimationResults):
    """Estimation results with the mixed-model and sampler extras.

    For REML and ML fits (``method="reml"``/``"ml"``) ``params`` are the estimates and
    ``std_errors`` the model-based standard errors, with z statistics and p-values as usual.

    For sampled fits (``cov_type="posterior"``: ``mixed(method="nuts")`` and
    ``fit(method="bayes")``) ``params`` are posterior means, ``std_errors`` posterior SDs, ``cov`` the
    posterior covariance, and ``conf_int(level)`` gives **equal-tailed** posterior quantile intervals
    (not HDIs). A posterior has no test statistics: ``tstats`` and ``pvalues`` raise
    :class:`~causalcts.errors.CausalCTSError`, and the summary shows mean, SD, interval, R-hat and
    bulk/tail ESS instead.

    Also: ``cov_re`` (random-effects covariance, labelled), ``scale`` (residual variance),
    ``llf`` (maximised log-likelihood or REML criterion / -2 for REML and ML fits, else None),
    ``idata`` (ArviZ InferenceData for sampled fits, with a ``log_likelihood`` group holding the
    integrated log-likelihood of each team, so ``arviz.loo`` gives leave-one-team-out), ``diagnostics``
    (R-hat, ESS), ``converged`` and ``random_effects`` (BLUPs of REML/ML fits).

    ``to_json(path)`` writes the fields to ``path`` and the ``idata`` to ``path.with_suffix(".nc")``
    (netCDF, never pickle); :func:`causalcts.results.load` reads both back.
    """

    cov_re: pd.DataFrame | None = None
    scale: float | None = None
    llf: float | None = None
    idata: Any = None
    diagnostics: pd.DataFrame | None = None
    converged: bool = True
    random_effects: pd.DataFrame | None = None

    # ------------------------------------------------------------------ inference
    @property
    def is_posterior(self) -> bool:
        """True for sampled fits, whose intervals are posterior quantiles."""
        return self.idata is not None or self.cov_type == "posterior"

    @property
    def inference(self) -> str:
        if self.is_posterior:
            return "posterior (mean, SD, equal-tailed interval)"
        return super().inference

    def _no_tests(self, what: str):
        raise CausalCTSError(
            f"{what} do not apply to a posterior (method={self.method!r}): use res.conf_int(level) for equal-tailed "
            "posterior intervals, res.to_frame() for the posterior table, or the draws in res.idata.posterior."
        )

    @property
    def tstats(self) -> pd.Series:
        """z statistics of REML/ML fits; raise for posteriors."""
        if self.is_posterior:
            self._no_tests("z statistics")
        return super().tstats

    @property
    def pvalues(self) -> pd.Series:
        """p-values of REML/ML fits; raise for posteriors."""
        if self.is_posterior:
            self._no_tests("p-values")
        return super().pvalues

    def conf_int(self, level: float = 0.95) -> pd.DataFrame:
        """Equal-tailed posterior intervals (quantiles (1-level)/2 and (1+level)/2) for sampled fits; Wald
        intervals for REML/ML fits."""
        if not self.is_posterior:
            return super().conf_int(level)
        self._critical(level)  # validates the level
        if self.idata is None:
            raise CausalCTSError("These posterior results carry no draws (idata is None): no intervals to compute.")
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
        if name not in post:
            raise CausalCTSError(f"The posterior has no variable for the term {name!r}.")
        return name, None

    def long_run(self, variable: str, level: float = 0.95) -> dict[str, float]:
        """Long-run effect gamma / (1 - beta); for sampled fits computed draw by draw (its posterior)."""
        if self.idata is None or not self.outcome_lags:
            return super().long_run(variable, level)
        self._critical(level)
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

    # ------------------------------------------------------------------ presentation
    def _diagnostic_rows(self) -> pd.DataFrame:
        cols = ["r_hat", "ess_bulk", "ess_tail"]
        out = pd.DataFrame(np.nan, index=self.params.index, columns=cols)
        diag = self.diagnostics
        if diag is not None:
            for term in out.index:
                for label in (f"beta[{term}]", term):
                    if label in diag.index:
                        out.loc[term] = diag.loc[label, cols].to_numpy(dtype=float)
                        break
        return out

    def to_frame(self, level: float = 0.95) -> pd.DataFrame:
        """Tidy table. Posterior: estimate (mean), std_error (SD), lower, upper (equal-tailed), r_hat, ess_bulk,
        ess_tail. REML/ML: as every other result (statistic and pvalue included)."""
        if not self.is_posterior:
            return super().to_frame(level)
        ci = self.conf_int(level)
        out = pd.DataFrame({"estimate": self.params, "std_error": self.std_errors})
        out = out.join(ci).join(self._diagnostic_rows())
        return out.rename_axis("term")

    def _estimates_table(self, level: float) -> tuple[str, pd.DataFrame]:
        if not self.is_posterior:
            return super()._estimates_table(level)
        lo, hi = (1 - level) / 2, 1 - (1 - level) / 2
        table = self.to_frame(level).rename(
            columns={"estimate": "mean", "std_error": "sd", "lower": f"{lo:.1%}", "upper": f"{hi:.1%}"}
        )
        return f"Posterior ({level:.0%} equal-tailed intervals)", table

    def _header(self) -> list[tuple[str, object]]:
        head = super()._header()
        if self.is_posterior:
            info = self.info
            settings = ", ".join(f"{k}={info[k]}" for k in ("chains", "draws", "tune", "seed") if k in info)
            sampler = "; ".join(str(x) for x in (info.get("sampler"), settings) if x)
            if sampler:
                head.append(("Sampler", sampler))
        return head

    def _notes(self) -> list[str]:
        notes = super()._notes()
        if self.scale is not None:
            notes.append(f"Residual variance: {self.scale:.6g}")
        if self.llf is not None:
            notes.append(f"Log-likelihood: {self.llf:.6g}")
        if self.diagnostics is not None:
            notes.append(
                f"Converged: {self.converged} (max R-hat {self.diagnostics['r_hat'].max():.4f}, "
                f"min bulk ESS {self.diagnostics['ess_bulk'].min():.0f}, "
                f"divergences {int(self.info.get('divergences', 0))})"
            )
        return notes

    def summary(self, level: float = 0.95):
        """Estimates (posterior mean, SD, equal-tailed interval, R-hat, ESS for sampled fits), the random-effects
        covariance, residual variance, log-likelihood and convergence; text, HTML and LaTeX."""
        from causalcts.results.summary import Summary

        tables = [self._estimates_table(level), *self._checks_table()]
        if self.cov_re is not None:
            caption = "Random-effects covariance" + (" (posterior mean)" if self.is_posterior else "")
            tables.append((caption, self.cov_re))
        return Summary(f"causalcts {self.method} estimation", self._header(), tables, self._notes())

    # ------------------------------------------------------------------ saving and loading
    def to_dict(self) -> dict[str, Any]:
        """Every field but ``idata`` (netCDF, written by :meth:`to_json` beside the JSON)."""
        return super().to_dict()

    def _encode_field(self, name: str, value: Any) -> Any:
        if name == "idata":
            return None if value is None else {"__netcdf__": None}
        return super()._encode_field(name, value)

    def to_json(self, path: str | Path) -> Path:
        """Save as JSON at ``path``; the ``idata`` goes to ``path.with_suffix(".nc")`` (netCDF, never pickle)."""
        import json

        path = Path(path)
        d = self.to_dict()
        if self.idata is not None:
            nc = path.with_suffix(".nc")
            if nc == path:
                raise CausalCTSError(f"Save Bayesian results to a .json path, not {str(path)!r} (the idata uses .nc).")
            self.idata.to_netcdf(str(nc))
            d["idata"] = {"__netcdf__": nc.name}
        path.write_text(json.dumps(d, indent=1, allow_nan=False))
        return path

    @classmethod
    def _from_fields(cls, kwargs: dict[str, Any], directory: Path | None) -> BayesResults:
        marker = kwargs.get("idata")
        if isinstance(marker, dict) and "__netcdf__" in marker:
            name = marker["__netcdf__"]
            if name is None or directory is None:
                raise CausalCTSError(
                    "These results were saved without their posterior draws; save with res.to_json(path), which "
                    "writes the idata to path.with_suffix('.nc'), and load with causalcts.results.load(path)."
                )
            kwargs = {**kwargs, "idata": _read_netcdf(directory / name)}
        return cls(**kwargs)


def _read_netcdf(path: Path):
    import arviz as az

    if not path.exists():
        raise CausalCTSError(f"The posterior draws {str(path)!r} (saved beside the JSON) are missing.")
    with az.rc_context({"data.load": "eager"}):  # read into memory and close the file
        return az.from_netcdf(str(path))


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


# ---------------------------------------------------------------------- pointwise log-likelihood
def pointwise_loglik(
    y: np.ndarray,
    X: np.ndarray,
    Z: np.ndarray,
    codes: np.ndarray,
    beta: np.ndarray,
    sigma2: np.ndarray,
    Sigma: np.ndarray,
) -> np.ndarray:
    r"""Integrated log-likelihood of each group for each draw: an array (draws, groups).

    Group :math:`i` has :math:`y_i \sim N(X_i\beta, \sigma^2 I + Z_i\Sigma Z_i')`; with
    :math:`S_i = Z_i'Z_i`, :math:`K_i = \sigma^2 S_i^{-1} + \Sigma`, :math:`w_i = S_i^{-1}Z_i'(y_i - X_i\beta)`
    and the within-group residual sum of squares :math:`\mathrm{RSS}_i(\beta)` (after projecting out
    :math:`Z_i`),

    .. math:: -2\ell_i = n_i\log 2\pi + (n_i - q)\log\sigma^2 + \log|S_i| + \log|K_i|
              + \mathrm{RSS}_i(\beta)/\sigma^2 + w_i'K_i^{-1}w_i .

    Rows must be sorted by ``codes`` (0..G-1); ``beta`` is (draws, p), ``sigma2`` (draws,) and ``Sigma``
    (draws, q, q). Each group needs ``Z_i`` of full column rank.

    Examples
    --------
    >>> import numpy as np
    >>> from scipy import stats
    >>> rng = np.random.default_rng(0)
    >>> X, Z, y = np.c_[np.ones(6), rng.normal(size=6)], np.ones((6, 1)), rng.normal(size=6)
    >>> codes = np.repeat([0, 1], 3)
    >>> ll = pointwise_loglik(y, X, Z, codes, np.array([[0.1, 0.2]]), np.array([0.5]), np.array([[[0.3]]]))
    >>> ref = stats.multivariate_normal(X[:3] @ [0.1, 0.2], 0.5 * np.eye(3) + 0.3).logpdf(y[:3])
    >>> bool(np.isclose(ll[0, 0], ref, rtol=1e-12))
    True
    """
    y, X, Z = (np.asarray(a, dtype=np.float64) for a in (y, X, Z))
    starts = np.r_[0, np.flatnonzero(np.diff(codes)) + 1]
    n_g = np.diff(np.r_[starts, len(y)])
    q = Z.shape[1]
    S = np.add.reduceat(Z[:, :, None] * Z[:, None, :], starts, axis=0)
    _, logdet_S = np.linalg.slogdet(S)
    S_inv = np.linalg.inv(S)
    by = np.einsum("gij,gj->gi", S_inv, np.add.reduceat(Z * y[:, None], starts, axis=0))
    B = np.einsum("gij,gjk->gik", S_inv, np.add.reduceat(Z[:, :, None] * X[:, None, :], starts, axis=0))
    idx = np.repeat(np.arange(len(starts)), n_g)
    y_w = y - np.einsum("ni,ni->n", Z, by[idx])
    X_w = X - np.einsum("ni,nik->nk", Z, B[idx])
    a = np.add.reduceat(y_w * y_w, starts)  # within-group RSS pieces: a - 2 b'c + b'M b
    c = np.add.reduceat(X_w * y_w[:, None], starts, axis=0)
    M = np.add.reduceat(X_w[:, :, None] * X_w[:, None, :], starts, axis=0)
    beta = np.atleast_2d(beta)
    out = np.empty((beta.shape[0], len(starts)))
    const = n_g * np.log(2 * np.pi) + logdet_S
    for s in range(0, beta.shape[0], _DRAW_BLOCK):
        b, s2, Sig = beta[s : s + _DRAW_BLOCK], sigma2[s : s + _DRAW_BLOCK], Sigma[s : s + _DRAW_BLOCK]
        rss = a[None] - 2 * np.einsum("dj,gj->dg", b, c) + np.einsum("dj,gjk,dk->dg", b, M, b)
        K = s2[:, None, None, None] * S_inv[None] + Sig[:, None]
        _, logdet_K = np.linalg.slogdet(K)
        w = by[None] - np.einsum("gij,dj->dgi", B, b)
        quad = np.einsum("dgi,dgi->dg", w, np.linalg.solve(K, w[..., None])[..., 0])
        out[s : s + _DRAW_BLOCK] = -0.5 * (
            const[None] + (n_g[None] - q) * np.log(s2)[:, None] + logdet_K + rss / s2[:, None] + quad
        )
    return out


def add_log_likelihood(idata, y, X, Z, codes, *, labels: pd.Index, outcome: str) -> None:
    """Add a ``log_likelihood`` group to ``idata``: each team's integrated log-likelihood per draw.

    Reads ``beta``, ``sigma`` and ``re_cov`` (draws of the random-effects covariance) from the
    posterior; the variable is named after the outcome, its dims are (chain, draw, <group name>), so
    ``arviz.loo(idata)`` is leave-one-team-out cross-validation. ``y``, ``X``, ``Z`` are the rows the
    model was fitted to (for the dynamic panel: after removing week means), sorted by ``codes``.
    """
    import xarray as xr

    post = idata.posterior
    n_chain, n_draw = post.sizes["chain"], post.sizes["draw"]
    q = np.asarray(Z).shape[1]
    beta = post["beta"].values.reshape(n_chain * n_draw, -1)
    sigma2 = post["sigma"].values.reshape(-1) ** 2
    Sigma = post["re_cov"].values.reshape(n_chain * n_draw, q, q)
    ll = pointwise_loglik(y, X, Z, codes, beta, sigma2, Sigma)
    dim = labels.name or "group"
    ds = xr.Dataset(
        {outcome: (("chain", "draw", dim), ll.reshape(n_chain, n_draw, -1))},
        coords={"chain": post["chain"].values, "draw": post["draw"].values, dim: labels.astype(str).to_numpy()},
    )
    idata.add_groups({"log_likelihood": ds})
