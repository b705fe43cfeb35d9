r"""``causalcts.pool``: combine per-rollout effect estimates by Bayesian partial pooling.

Each rollout :math:`j = 1..J` reports an effect estimate :math:`y_j` with standard error
:math:`s_j`. The model is the normal-normal hierarchical model of BDA3 section 5.5 (the eight schools)
and of R's baggr ``model = "rubin"``:

.. math::

    y_j \sim N(\theta_j, s_j^2), \qquad \theta_j \sim N(\mu, \tau^2), \qquad
    \mu \sim p(\mu), \qquad \tau \sim p(\tau),

sampled in the non-centred parameterisation :math:`\theta_j = \mu + \tau\eta_j`,
:math:`\eta_j \sim N(0, 1)`, with :math:`\log\tau` unconstrained (Jacobian included). The
log-density and its gradient are written in NumPy and sampled with nutpie's NUTS
(``nutpie.compiled_pyfunc.from_pyfunc``): there is no PyMC model to compile, so a fit starts at once.

:math:`\theta_j` is the rollout's *shrunken* effect (pulled towards :math:`\mu` the more, the larger
:math:`s_j` is against :math:`\tau`), :math:`\mu` the average effect across rollouts and
:math:`\tau` their between-rollout SD. The effect of a *new* rollout,
:math:`\tilde\theta = \mu + \tau z` with :math:`z \sim N(0, 1)` drawn once per posterior draw, is
``res.predict()``.

The priors are stated in the units of the estimates (the defaults, :math:`\mu \sim N(0, 5^2)` and
:math:`\tau \sim \text{half-Cauchy}(0, 5)`, are those of posteriordb's ``eight_schools_noncentered``
and suit effects of the size of the eight schools'; rescale them for effects in other units).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from causalcts.bayes.mixed import _check_sampler_counts, resolve_cores, resolve_seed
from causalcts.bayes.results import BayesResults, diagnose
from causalcts.errors import (
    CausalCTSError,
    DuplicateKeyError,
    EmptyPanelError,
    MissingColumnError,
    MissingValueError,
    NonNumericError,
    RangeError,
    SpecificationError,
    describe_rows,
)

__all__ = ["PooledResults", "pool"]

#: Allowed priors: name -> names of their arguments, in order.
MEAN_PRIORS = {"normal": ("loc", "scale"), "student_t": ("nu", "loc", "scale")}
SD_PRIORS = {"halfcauchy": ("scale",), "halfnormal": ("scale",), "exponential": ("rate",)}
#: Stream of the seed used for the new-rollout draws (the sampler uses the seed itself).
_PREDICT_STREAM = 11


def _describe(allowed: Mapping[str, tuple[str, ...]]) -> str:
    return ", ".join(f"({name!r}, {', '.join(args)})" for name, args in allowed.items())


def _check_prior(which: str, prior: Any, allowed: Mapping[str, tuple[str, ...]]) -> tuple:
    """Validate a prior tuple such as ``("normal", 0, 5)``; return it as (name, float, ...)."""
    ok = isinstance(prior, (tuple, list)) and len(prior) >= 1 and prior[0] in allowed
    if not ok:
        raise SpecificationError(f"{which}={prior!r} is not supported; allowed priors are {_describe(allowed)}.")
    name, args = prior[0], tuple(prior[1:])
    names = allowed[name]
    if len(args) != len(names):
        raise SpecificationError(
            f"{which}={prior!r}: the {name!r} prior takes {len(names)} argument(s), ({', '.join(names)})."
        )
    vals = []
    for arg_name, val in zip(names, args, strict=True):
        if isinstance(val, (bool, np.bool_)) or not isinstance(val, (int, float, np.integer, np.floating)):
            raise SpecificationError(f"{which}={prior!r}: {arg_name} must be a number, not {val!r}.")
        val = float(val)
        if not np.isfinite(val) or (arg_name != "loc" and val <= 0):
            need = "finite" if arg_name == "loc" else "finite and positive"
            raise SpecificationError(f"{which}={prior!r}: {arg_name} must be {need}, not {val!r}.")
        vals.append(val)
    return (name, *vals)


def _prior_logp(prior: tuple, x: float) -> tuple[float, float]:
    """Log-density (up to a constant) of a prior at ``x`` and its derivative."""
    name = prior[0]
    if name == "normal":
        _, m, s = prior
        z = (x - m) / s
        return -0.5 * z * z, -z / s
    if name == "student_t":
        _, nu, m, s = prior
        d = x - m
        return -0.5 * (nu + 1) * np.log1p(d * d / (nu * s * s)), -(nu + 1) * d / (nu * s * s + d * d)
    if name == "halfcauchy":
        s = prior[1]
        return -np.log1p((x / s) ** 2), -2 * x / (s * s + x * x)
    if name == "halfnormal":
        s = prior[1]
        return -0.5 * (x / s) ** 2, -x / (s * s)
    rate = prior[1]  # exponential
    return -rate * x, -rate


@dataclass
class _PoolingPosterior:
    """Log posterior of the non-centred model in x = (mu, log tau, eta_1..J), with its gradient."""

    y: np.ndarray
    se: np.ndarray
    prior_mean: tuple
    prior_sd: tuple

    def __post_init__(self) -> None:
        self.w = 1.0 / self.se**2
        self.ndim = len(self.y) + 2

    def logp(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        mu, u, eta = x[0], x[1], x[2:]
        tau = np.exp(u)
        r = (self.y - mu - tau * eta) * self.w  # d loglik / d theta_j
        lp_mu, d_mu = _prior_logp(self.prior_mean, mu)
        lp_tau, d_tau = _prior_logp(self.prior_sd, tau)
        lp = lp_mu + lp_tau + u - 0.5 * eta @ eta - 0.5 * float(r @ (r / self.w))
        grad = np.empty(self.ndim)
        grad[0] = d_mu + r.sum()
        grad[1] = tau * (d_tau + r @ eta) + 1.0
        grad[2:] = tau * r - eta
        return float(lp), grad

    def expand(self, x: np.ndarray) -> dict[str, np.ndarray]:
        tau = np.exp(x[1])
        return {"mu": np.asarray(x[0]), "tau": np.asarray(tau), "theta": x[0] + tau * x[2:]}

    def initial_point(self, seed: int) -> np.ndarray:
        rng = np.random.default_rng(seed)
        spread = float(np.std(self.y)) or float(np.mean(self.se))
        x = rng.uniform(-1.0, 1.0, self.ndim)
        x[0] = float(np.average(self.y, weights=self.w)) + x[0] * spread / 2
        x[1] = np.log(spread) + x[1]
        return x


def _sample(post: _PoolingPosterior, rollouts: list[str], *, chains, draws, tune, seed, cores, target_accept):
    import nutpie
    from nutpie.compiled_pyfunc import from_pyfunc

    names = ["mu", "tau", "theta"]
    model = from_pyfunc(
        post.ndim,
        make_logp_fn=lambda: lambda x, **_: post.logp(np.asarray(x, dtype=np.float64)),
        make_expand_fn=lambda *a: lambda x, **_: post.expand(np.asarray(x, dtype=np.float64)),
        expanded_dtypes=[np.dtype("float64")] * 3,
        expanded_shapes=[(), (), (len(rollouts),)],
        expanded_names=names,
        coords={"rollout": rollouts},
        dims={"theta": ("rollout",)},
        make_initial_point_fn=lambda s: post.initial_point(int(s) % (2**32)),
    )
    return nutpie.sample(
        model,
        draws=draws,
        tune=tune,
        chains=chains,
        cores=cores,
        seed=int(seed),
        target_accept=target_accept,
        progress_bar=False,
    )


def _read_frame(frame, estimate: str, std_error: str, label: str) -> tuple[np.ndarray, np.ndarray, pd.Index]:
    if not isinstance(frame, pd.DataFrame):
        raise CausalCTSError(f"frame must be a pandas DataFrame, not {type(frame).__name__}.")
    for arg, col in (("estimate", estimate), ("std_error", std_error), ("label", label)):
        if not isinstance(col, str):
            raise SpecificationError(f"{arg} must be a column name (a string), not {col!r}.")
    missing = [c for c in (estimate, std_error, label) if c not in frame.columns]
    if missing:
        raise MissingColumnError(f"Columns {missing} are not in the frame; its columns are {list(frame.columns)}.")
    labels = frame[label]
    if labels.isna().any():
        raise MissingValueError(
            f"The label column {label!r} is missing in {describe_rows(frame.index[labels.isna()])}."
        )
    dup = labels[labels.duplicated(keep=False)]
    if len(dup):
        raise DuplicateKeyError(
            f"The label column {label!r} repeats {list(pd.unique(dup))[:5]}; each rollout must appear once."
        )
    if len(frame) < 2:
        raise EmptyPanelError(f"Pooling needs at least 2 rollouts; the frame has {len(frame)}.")
    out = []
    for col in (estimate, std_error):
        s = frame[col]
        vals = pd.to_numeric(s, errors="coerce") if not pd.api.types.is_bool_dtype(s) else s.astype(float)
        bad = vals.isna() & s.notna()
        if bad.any():
            raise NonNumericError(
                f"Column {col!r} must be numeric but holds {list(pd.unique(s[bad]))[:3]} for rollouts "
                f"{list(labels[bad])[:5]}."
            )
        vals = vals.to_numpy(dtype=float)
        nonfinite = ~np.isfinite(vals)
        if nonfinite.any():
            raise MissingValueError(
                f"Column {col!r} has NaN or infinite values for rollouts {list(labels[nonfinite])[:5]}."
            )
        out.append(vals)
    y, se = out
    if (se <= 0).any():
        raise RangeError(
            f"Standard errors must be positive; column {std_error!r} has {list(se[se <= 0])[:5]} for rollouts "
            f"{list(labels[se <= 0])[:5]}."
        )
    return y, se, pd.Index(labels.to_numpy(), name=label)


def _interval(draws: np.ndarray, level: float, axis=None) -> tuple[np.ndarray, np.ndarray]:
    lo, hi = (1 - level) / 2, 1 - (1 - level) / 2
    return np.quantile(draws, lo, axis=axis), np.quantile(draws, hi, axis=axis)


@dataclass(frozen=True, eq=False)
class PooledResults(BayesResults):
    """Results of :func:`pool`: the shared Bayesian results plus the pooled effect per rollout.

    ``params`` are the posterior means of ``mu`` (average effect) and ``tau`` (between-rollout SD),
    ``std_errors`` their posterior SDs and ``conf_int(level)`` equal-tailed posterior intervals.
    ``group_effects`` is the shrunken effect of each rollout (columns ``mean``, ``sd``, ``lower``,
    ``upper``: a 95% equal-tailed interval; :meth:`effects` gives other levels), ``data`` the estimates
    and standard errors pooled, and :meth:`predict` the effect of a new rollout. ``idata`` holds the
    draws of ``mu``, ``tau``, ``theta`` (dim ``rollout``) and ``theta_new``, the pointwise
    log-likelihood (so ``arviz.loo`` is leave-one-rollout-out), the observed estimates and their SEs.
    """

    group_effects: pd.DataFrame | None = None
    data: pd.DataFrame | None = None

    def effects(self, level: float = 0.95) -> pd.DataFrame:
        """Posterior mean, SD and equal-tailed ``level`` interval of each rollout's pooled effect."""
        self._critical(level)
        theta = self.idata.posterior["theta"]
        draws = theta.values.reshape(-1, theta.sizes["rollout"])
        lower, upper = _interval(draws, level, axis=0)
        group_effects = self.group_effects
        assert group_effects is not None  # pool() always sets it
        return pd.DataFrame(
            {"mean": draws.mean(axis=0), "sd": draws.std(axis=0, ddof=1), "lower": lower, "upper": upper},
            index=group_effects.index,
        )

    def predict(self, level: float = 0.95) -> dict[str, float]:
        """Posterior predictive effect of a new rollout, :math:`\\mu + \\tau z`: mean, SD and interval.

        Returns a dict with ``mean``, ``sd``, ``lower``, ``upper`` (equal-tailed) and ``level``. The draws
        are ``res.idata.posterior["theta_new"]`` (one per posterior draw, fixed by the fit's seed).
        """
        self._critical(level)
        if self.idata is None or "theta_new" not in self.idata.posterior:
            raise CausalCTSError("These results carry no posterior draws of a new rollout's effect (theta_new).")
        draws = self.idata.posterior["theta_new"].values.ravel()
        lower, upper = _interval(draws, level)
        return {
            "mean": float(draws.mean()),
            "sd": float(draws.std(ddof=1)),
            "lower": float(lower),
            "upper": float(upper),
            "level": level,
        }

    def summary(self, level: float = 0.95):
        """The posterior of ``mu`` and ``tau``, then each rollout's raw and pooled effect."""
        from causalcts.results.summary import Summary

        lo, hi = (1 - level) / 2, 1 - (1 - level) / 2
        data = self.data
        assert data is not None  # pool() always sets it
        table = data.join(self.effects(level)).rename(columns={"lower": f"{lo:.1%}", "upper": f"{hi:.1%}"})
        tables = [self._estimates_table(level), ("Effect per rollout: raw estimate and SE, pooled posterior", table)]
        return Summary(f"causalcts {self.method} estimation", self._header(), tables, self._notes())


def pool(
    frame: pd.DataFrame,
    *,
    estimate: str,
    std_error: str,
    label: str,
    prior_mean: tuple = ("normal", 0, 5),
    prior_sd: tuple = ("halfcauchy", 5),
    chains: int = 4,
    draws: int = 1000,
    tune: int = 1000,
    seed: int | np.random.Generator | None = None,
    target_accept: float = 0.95,
) -> PooledResults:
    """Combine per-rollout effect estimates by Bayesian partial pooling (baggr's "rubin" model).

    Parameters
    ----------
    frame
        One row per rollout.
    estimate, std_error, label
        Columns of the effect estimate, its standard error (finite, > 0) and the rollout's name (unique).
    prior_mean
        Prior of the average effect ``mu``, in the estimates' units: ``("normal", loc, scale)`` or
        ``("student_t", nu, loc, scale)``.
    prior_sd
        Prior of the between-rollout SD ``tau``: ``("halfcauchy", scale)``, ``("halfnormal", scale)``
        or ``("exponential", rate)``.
    chains, draws, tune
        NUTS settings (nutpie): chains, kept draws per chain, warm-up draws per chain.
    seed
        An int, a ``numpy.random.Generator`` (its next integer is used) or None (fresh entropy); the int
        used is recorded in ``res.info["seed"]`` and ``res.spec["seed"]`` and reproduces the draws bit for bit.
    target_accept
        NUTS target acceptance rate; 0.95 (posteriordb's reference runs use Stan's ``adapt_delta=0.95``),
        because with few rollouts the funnel between ``tau`` and the effects gives a few divergences at 0.8.

    Returns
    -------
    PooledResults
        ``params`` (``mu``, ``tau``), ``group_effects``, ``predict()``, ``idata``, ``diagnostics`` and
        ``converged``; a :class:`~causalcts.errors.ConvergenceWarning` is raised for divergences, R-hat
        above 1.01 or bulk/tail ESS under 100 per chain.

    Examples
    --------
    >>> import pandas as pd
    >>> import causalcts.bayes.pooling as pooling
    >>> frame = pd.DataFrame({"rollout": ["A", "B", "C"], "att": [1.0, 3.0, 2.0], "se": [1.0, 1.0, 2.0]})
    >>> import warnings
    >>> from causalcts.errors import ConvergenceWarning
    >>> with warnings.catch_warnings():  # a short run, for speed; it warns of its low ESS
    ...     warnings.simplefilter("ignore", ConvergenceWarning)
    ...     res = pooling.pool(frame, estimate="att", std_error="se", label="rollout", draws=200, tune=200, seed=1)
    >>> list(res.params.index), list(res.group_effects.columns)
    (['mu', 'tau'], ['mean', 'sd', 'lower', 'upper'])
    >>> bool(res.group_effects["mean"].between(0.5, 3.5).all())
    True
    """
    t0 = time.perf_counter()
    y, se, labels = _read_frame(frame, estimate, std_error, label)
    pm_ = _check_prior("prior_mean", prior_mean, MEAN_PRIORS)
    ps_ = _check_prior("prior_sd", prior_sd, SD_PRIORS)
    _check_sampler_counts(chains, draws, tune, 0)
    if not (isinstance(target_accept, (float, int)) and 0 < target_accept < 1):
        raise CausalCTSError(f"target_accept must lie strictly between 0 and 1, not {target_accept!r}.")
    seed = resolve_seed(seed)
    cores = resolve_cores(None, chains)
    rollouts = [str(v) for v in labels]
    if len(set(rollouts)) < len(rollouts):
        raise DuplicateKeyError(f"The labels of column {label!r} are not unique once written as text: {rollouts}.")
    post = _PoolingPosterior(y, se, pm_, ps_)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        raw = _sample(
            post,
            rollouts,
            chains=chains,
            draws=draws,
            tune=tune,
            seed=seed,
            cores=cores,
            target_accept=float(target_accept),
        )
    idata = _finish_idata(raw, y, se, rollouts, estimate, seed)
    diag, ok, div = diagnose(idata, ["mu", "tau", "theta"], label="pooling")
    p = idata.posterior
    mt = np.column_stack([p["mu"].values.ravel(), p["tau"].values.ravel()])
    names = ["mu", "tau"]
    theta = p["theta"].values.reshape(-1, len(rollouts))
    lower, upper = _interval(theta, 0.95, axis=0)
    group = pd.DataFrame(
        {"mean": theta.mean(axis=0), "sd": theta.std(axis=0, ddof=1), "lower": lower, "upper": upper}, index=labels
    )
    spec = {
        "estimate": estimate,
        "std_error": std_error,
        "label": label,
        "prior_mean": tuple(prior_mean),
        "prior_sd": tuple(prior_sd),
        "chains": chains,
        "draws": draws,
        "tune": tune,
        "seed": seed,
        "target_accept": float(target_accept),
    }
    return PooledResults(
        params=pd.Series(mt.mean(axis=0), index=names),
        std_errors=pd.Series(mt.std(axis=0, ddof=1), index=names),
        cov=pd.DataFrame(np.cov(mt, rowvar=False), index=names, columns=names),
        nobs=len(y),
        n_entities=len(y),
        method="pool",
        formula=f"{estimate} ~ N(theta[{label}], {std_error}^2), theta ~ N(mu, tau^2)",
        cov_type="posterior",
        idata=idata,
        diagnostics=diag,
        converged=ok,
        group_effects=group,
        data=pd.DataFrame({"estimate": y, "std_error": se}, index=labels),
        info={
            "sampler": "nutpie (NumPy log-density, non-centred)",
            "divergences": div,
            "seconds": time.perf_counter() - t0,
            "chains": chains,
            "draws": draws,
            "tune": tune,
            "seed": seed,
            "target_accept": float(target_accept),
            "prior_mean": list(pm_),
            "prior_sd": list(ps_),
        },
        spec=spec,
    )


def _finish_idata(raw, y, se, rollouts, outcome: str, seed: int):
    """Keep the sampled groups; add theta_new, the pointwise log-likelihood, observed and constant data."""
    import arviz as az
    import xarray as xr

    groups = {g: raw[g] for g in ("posterior", "sample_stats") if g in raw.groups()}
    post = groups["posterior"][["mu", "tau", "theta"]]
    n_chain, n_draw = post.sizes["chain"], post.sizes["draw"]
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), _PREDICT_STREAM]))
    z = rng.standard_normal((n_chain, n_draw))
    post["theta_new"] = (("chain", "draw"), post["mu"].values + post["tau"].values * z)
    theta = post["theta"].values
    ll = -0.5 * (np.log(2 * np.pi * se**2) + ((y - theta) / se) ** 2)
    coords = {"chain": post["chain"].values, "draw": post["draw"].values, "rollout": rollouts}
    log_lik = xr.Dataset({outcome: (("chain", "draw", "rollout"), ll)}, coords=coords)
    observed = xr.Dataset({outcome: (("rollout",), y)}, coords={"rollout": rollouts})
    constant = xr.Dataset({"std_error": (("rollout",), se)}, coords={"rollout": rollouts})
    return az.InferenceData(
        posterior=post,
        sample_stats=groups["sample_stats"],
        log_likelihood=log_lik,
        observed_data=observed,
        constant_data=constant,
    )
