r"""``causalcts.mixed``: linear mixed models by REML, ML or NUTS on the integrated likelihood.

The random effects are integrated out analytically (:mod:`causalcts.bayes.integrated`): each group
enters through its sufficient statistics, so a likelihood gradient costs the same whatever the
number of weeks per team. Team effects are drawn afterwards from their exact conditional
distribution given each posterior draw (for caterpillar plots).

Default priors (weakly informative, scaled to the data as rstanarm does): each slope
:math:`\beta_j \sim N(0, (2.5\, s_y / s_{x_j})^2)`, the intercept :math:`N(\bar y, (10 s_y)^2)`,
:math:`\sigma \sim \text{HalfNormal}(s_y)`, random-effect SDs :math:`\text{HalfNormal}(s_y / s_{z_k})`
and an LKJ(2) prior on their correlation. ``prior_scale`` multiplies every prior scale (prior
sensitivity: refit with 0.5 and 2).
"""

from __future__ import annotations

import time
import warnings
from typing import Literal

import numpy as np
import pandas as pd
from scipy import optimize

from causalcts.bayes.fastlogp import IntegratedPosterior
from causalcts.bayes.formula_re import MixedFormula, parse_mixed_formula
from causalcts.bayes.integrated import (
    GroupStats,
    conditional_cov,
    conditional_modes,
    group_stats,
    profiled_deviance,
)
from causalcts.bayes.results import BayesResults, diagnose
from causalcts.errors import (
    CausalCTSError,
    DataWarning,
    EmptyPanelError,
    MissingColumnError,
    MissingValueError,
    NonNumericError,
    check_option,
    describe_rows,
)

__all__ = ["mixed", "prepare_mixed"]


def _numeric(frame: pd.DataFrame, col: str) -> np.ndarray:
    s = frame[col]
    if pd.api.types.is_bool_dtype(s):
        s = s.astype(float)
    if not pd.api.types.is_numeric_dtype(s):
        conv = pd.to_numeric(s, errors="coerce")
        bad = conv.isna() & s.notna()
        if bad.any():
            raise NonNumericError(
                f"Column {col!r} must be numeric but holds {list(pd.unique(s[bad]))[:3]} in "
                f"{describe_rows(s.index[bad])}."
            )
        s = conv
    return s.to_numpy(dtype=float)


def prepare_mixed(formula: str | MixedFormula, data: pd.DataFrame, *, dropna: bool = False):
    """Validate the data and return (spec, y, X, Z, group codes, group labels), rows sorted by group."""
    spec = formula if isinstance(formula, MixedFormula) else parse_mixed_formula(formula)
    if not isinstance(data, pd.DataFrame):
        raise CausalCTSError(f"data must be a pandas DataFrame, not {type(data).__name__}.")
    if data.shape[0] == 0:
        raise EmptyPanelError("The data has no rows.")
    cols = [spec.outcome, spec.group] + [c for c in (*spec.fixed, *spec.random) if c != "Intercept"]
    missing = [c for c in dict.fromkeys(cols) if c not in data.columns]
    if missing:
        raise MissingColumnError(f"The formula uses {missing}, not in the data; columns are {list(data.columns)}.")
    frame = data[list(dict.fromkeys(cols))].copy()
    num_cols = [c for c in dict.fromkeys(cols) if c != spec.group]
    vals = {c: _numeric(frame, c) for c in num_cols}
    bad = np.zeros(len(frame), bool)
    for c in num_cols:
        nb = ~np.isfinite(vals[c])
        if nb.any() and not dropna:
            raise MissingValueError(
                f"Column {c!r} has NaN or infinite values in {describe_rows(frame.index[nb])}; "
                "fix them or pass dropna=True."
            )
        bad |= nb
    gbad = frame[spec.group].isna().to_numpy()
    if gbad.any():
        raise MissingValueError(f"The grouping column {spec.group!r} is missing in {describe_rows(frame.index[gbad])}.")
    if bad.any():
        warnings.warn(
            f"Dropped {int(bad.sum())} of {len(bad)} rows with NaN or infinite values.", DataWarning, stacklevel=3
        )
    keep = ~bad
    codes, labels = pd.factorize(frame[spec.group].to_numpy()[keep], sort=True)
    order = np.argsort(codes, kind="stable")
    y = vals[spec.outcome][keep][order]

    def design(names):
        return np.column_stack([np.ones(int(keep.sum())) if n == "Intercept" else vals[n][keep] for n in names])[order]

    X, Z = design(spec.fixed), design(spec.random)
    if len(labels) < 2:
        raise EmptyPanelError(
            f"The grouping column {spec.group!r} has {len(labels)} level(s); a mixed model needs at least 2."
        )
    return spec, y, X, Z, codes[order], pd.Index(labels, name=spec.group)


def _theta_layout(q: int, correlated: bool):
    if correlated:
        rows, cols = np.tril_indices(q)
        order = np.lexsort((rows, cols))
        diag = rows[order] == cols[order]
    else:
        diag = np.ones(q, bool)
    return diag


def _fit_likelihood(spec, st: GroupStats, reml: bool):
    q = st.q
    diag = _theta_layout(q, spec.correlated)
    x0 = np.where(diag, 1.0, 0.0)
    bounds = [(0.0, None) if d else (None, None) for d in diag]
    f = lambda th: profiled_deviance(th, st, spec.correlated, reml)[0]  # noqa: E731
    best = None
    for start in (x0, x0 * 0.3, x0 * 3.0):
        res = optimize.minimize(
            f, start, method="L-BFGS-B", bounds=bounds, options={"ftol": 1e-14, "gtol": 1e-10, "maxiter": 2000}
        )
        if best is None or res.fun < best.fun:
            best = res
    res = optimize.minimize(f, best.x, method="Nelder-Mead", options={"xatol": 1e-10, "fatol": 1e-12, "maxiter": 20000})
    if res.fun > best.fun:
        res = best
    theta = res.x
    dev, info = profiled_deviance(theta, st, spec.correlated, reml)
    return theta, dev, info


def mixed(
    formula: str,
    data: pd.DataFrame,
    *,
    method: Literal["nuts", "reml", "ml"] = "nuts",
    chains: int = 4,
    draws: int = 1000,
    tune: int = 1000,
    seed: int | None = None,
    priors: dict | None = None,
    prior_scale: float = 1.0,
    sampler: Literal["auto", "nutpie", "pymc", "numpyro"] = "auto",
    dropna: bool = False,
    progressbar: bool = False,
    team_effect_draws: int = 200,
) -> BayesResults:
    """Fit a linear mixed model with lme4 syntax: ``"y ~ x + (1 + x | team)"``.

    Parameters
    ----------
    formula
        Fixed part with column names; one random-effects term per grouping factor:
        ``(1 | g)``, ``(1 + x | g)`` (correlated), ``(x || g)`` (uncorrelated).
    method
        ``"reml"`` and ``"ml"`` maximise the integrated (restricted) likelihood, as lme4 does;
        ``"nuts"`` samples the posterior of the fixed effects, residual SD and random-effects
        covariance with the random effects integrated out.
    chains, draws, tune, seed
        Sampler settings (NUTS only). ``seed`` makes the fit reproducible.
    priors
        Override default prior scales: ``{"beta_scale": 2.5, "intercept_scale": 10, "sigma_scale": 1,
        "re_scale": 1, "lkj_eta": 2}``.
    prior_scale
        Multiplies every prior scale (for prior sensitivity).
    sampler
        ``"nutpie"`` (NUTS on a numba-compiled log-density; the default under ``"auto"``), ``"pymc"``
        (PyMC's NUTS on the same likelihood written as a PyMC model) or ``"numpyro"`` (the optional
        JAX backend for GPUs, :mod:`causalcts.bayes.jaxlogp`).
    team_effect_draws
        Posterior draws per chain for which team effects are drawn from their exact conditional.

    Returns
    -------
    BayesResults

    Examples
    --------
    >>> import causalcts
    >>> sleep = causalcts.datasets.load("sleepstudy")
    >>> res = causalcts.mixed("Reaction ~ Days + (Days | Subject)", sleep, method="reml")
    >>> round(float(res.params["Days"]), 3), round(-2 * res.llf, 3)
    (10.467, 1743.628)
    """
    check_option("method", method, ("nuts", "reml", "ml"))
    check_option("sampler", sampler, ("auto", "nutpie", "pymc", "numpyro"))
    spec, y, X, Z, codes, labels = prepare_mixed(formula, data, dropna=dropna)
    from causalcts.data.panel import check_full_rank

    check_full_rank(pd.DataFrame(X, columns=list(spec.fixed)))
    st = group_stats(y, X, Z, codes)
    names = list(spec.fixed)
    re_names = list(spec.random)
    t0 = time.perf_counter()
    if method in ("reml", "ml"):
        theta, dev, info = _fit_likelihood(spec, st, reml=method == "reml")
        sigma2 = info["sigma2"]
        V = sigma2 * np.linalg.inv(info["XVX"])
        cov_re = pd.DataFrame(sigma2 * info["Lam"], index=re_names, columns=re_names)
        blups = conditional_modes(st, info["beta"], info["Lam"], info["Cinv"])
        return BayesResults(
            params=pd.Series(info["beta"], index=names),
            std_errors=pd.Series(np.sqrt(np.diag(V)), index=names),
            cov=pd.DataFrame(V, index=names, columns=names),
            nobs=st.n,
            n_entities=len(labels),
            method=method,
            formula=formula,
            cov_type="model-based",
            dist="normal",
            cov_re=cov_re,
            scale=float(sigma2),
            llf=-dev / 2.0,
            random_effects=pd.DataFrame(blups, index=labels, columns=re_names),
            info={
                "theta": theta.tolist(),
                "criterion": "REML" if method == "reml" else "ML",
                "deviance": dev,
                "seconds": time.perf_counter() - t0,
            },
        )
    return _fit_nuts(
        spec,
        st,
        y,
        X,
        Z,
        labels,
        formula=formula,
        chains=chains,
        draws=draws,
        tune=tune,
        seed=seed,
        priors=priors or {},
        prior_scale=prior_scale,
        sampler=sampler,
        progressbar=progressbar,
        team_effect_draws=team_effect_draws,
        t0=t0,
    )


def default_prior_scales(y, X, Z, spec, priors, prior_scale):
    s_y = float(np.std(y)) or 1.0
    sx = np.array([1.0 if n == "Intercept" else (float(np.std(X[:, j])) or 1.0) for j, n in enumerate(spec.fixed)])
    sz = np.array([1.0 if n == "Intercept" else (float(np.std(Z[:, j])) or 1.0) for j, n in enumerate(spec.random)])
    absolute = {"beta_mu", "beta_sd", "sigma_sd", "re_sd"}
    p = {"beta_scale": 2.5, "intercept_scale": 10.0, "sigma_scale": 1.0, "re_scale": 1.0, "lkj_eta": 2.0, **priors}
    unknown = set(priors) - {"beta_scale", "intercept_scale", "sigma_scale", "re_scale", "lkj_eta"} - absolute
    if unknown:
        raise CausalCTSError(
            f"Unknown prior setting(s) {sorted(unknown)}; use beta_scale, intercept_scale, "
            "sigma_scale, re_scale or lkj_eta (relative to the data's scale), or beta_mu, beta_sd, "
            "sigma_sd and re_sd (absolute)."
        )
    beta_mu = np.array([float(np.mean(y)) if n == "Intercept" else 0.0 for n in spec.fixed])
    beta_sd = (
        np.array(
            [
                p["intercept_scale"] * s_y if n == "Intercept" else p["beta_scale"] * s_y / sx[j]
                for j, n in enumerate(spec.fixed)
            ]
        )
        * prior_scale
    )
    out = dict(
        beta_mu=beta_mu,
        beta_sd=beta_sd,
        sigma_sd=p["sigma_scale"] * s_y * prior_scale,
        re_sd=p["re_scale"] * s_y / sz * prior_scale,
        lkj_eta=p["lkj_eta"],
    )
    for key in absolute & set(priors):  # absolute settings replace the data-scaled defaults
        val = np.asarray(priors[key], dtype=float)
        expected = {"beta_mu": len(spec.fixed), "beta_sd": len(spec.fixed), "re_sd": len(spec.random)}.get(key)
        if expected is not None and val.shape != (expected,):
            raise CausalCTSError(
                f"priors[{key!r}] needs {expected} values, in the order {list(spec.fixed) if key.startswith('beta') else list(spec.random)}."
            )
        out[key] = val if expected is not None else float(val)
    return out


def build_pymc_model(st: GroupStats, spec: MixedFormula, pri: dict, names, re_names):
    """PyMC model whose likelihood is the integrated (marginal) likelihood of the mixed model."""
    import pymc as pm
    import pytensor.tensor as pt

    q = st.q
    coords = {"term": names, "re_term": re_names}
    with pm.Model(coords=coords) as model:
        beta = pm.Normal("beta", mu=pri["beta_mu"], sigma=pri["beta_sd"], dims="term")
        sigma = pm.HalfNormal("sigma", sigma=pri["sigma_sd"])
        if spec.correlated and q > 1:
            chol, corr, sds = pm.LKJCholeskyCov(
                "re_chol",
                n=q,
                eta=pri["lkj_eta"],
                sd_dist=pm.HalfNormal.dist(sigma=pri["re_sd"], shape=q),
                compute_corr=True,
            )
            pm.Deterministic("re_sd", sds, dims="re_term")
            pm.Deterministic("re_corr", corr[0, 1] if q == 2 else corr)
            Sigma = chol @ chol.T
        else:
            sds = pm.HalfNormal("re_sd", sigma=pri["re_sd"], dims="re_term")
            Sigma = pt.diag(sds**2)
        s2 = sigma**2
        Lam = Sigma / s2
        Sinv = pt.as_tensor_variable(st.S_inv)
        C = Sinv + Lam[None, :, :]
        if q == 1:
            logdet_C = pt.log(C[:, 0, 0])
            Cinv = (1.0 / C[:, 0, 0])[:, None, None]
        elif q == 2:
            a, b, d = C[:, 0, 0], C[:, 0, 1], C[:, 1, 1]
            det = a * d - b * b
            logdet_C = pt.log(det)
            Cinv = pt.stack([pt.stack([d, -b], axis=-1), pt.stack([-b, a], axis=-1)], axis=-2) / det[:, None, None]
        else:
            Cinv = pt.linalg.inv(C)
            logdet_C = pt.log(pt.linalg.det(C))
        Bc = pt.as_tensor_variable(st.B)
        w = pt.as_tensor_variable(st.by) - pt.einsum("gij,j->gi", Bc, beta) if hasattr(pt, "einsum") else None
        if w is None:  # pragma: no cover
            w = pt.as_tensor_variable(st.by) - (Bc * beta[None, None, :]).sum(-1)
        dvec = beta - st.beta_w
        quad = (
            st.rss_w_min + dvec @ pt.as_tensor_variable(st.Sxx_w) @ dvec + (w[:, :, None] * Cinv * w[:, None, :]).sum()
        )
        loglik = -0.5 * (st.n * pt.log(2 * np.pi * s2) + st.logdet_S + logdet_C.sum() + quad / s2)
        pm.Potential("integrated_loglik", loglik)
        pm.Deterministic("loglik", loglik)
    return model


def sample_model(model, *, chains, draws, tune, seed, sampler, progressbar):
    """Sample with nutpie when asked (or available under "auto"), else PyMC's NUTS."""
    import pymc as pm

    use_nutpie = sampler == "nutpie"
    if sampler == "auto":
        try:
            import nutpie  # noqa: F401

            use_nutpie = True
        except ImportError:
            use_nutpie = False
    if use_nutpie:
        import nutpie

        compiled = nutpie.compile_pymc_model(model)
        return nutpie.sample(
            compiled, draws=draws, tune=tune, chains=chains, seed=seed, progress_bar=progressbar, cores=min(chains, 2)
        ), "nutpie"
    with model:
        idata = pm.sample(
            draws=draws,
            tune=tune,
            chains=chains,
            cores=min(chains, 2),
            random_seed=seed,
            progressbar=progressbar,
            compute_convergence_checks=False,
        )
    return idata, "pymc"


def _fit_nuts(
    spec,
    st,
    y,
    X,
    Z,
    labels,
    *,
    formula,
    chains,
    draws,
    tune,
    seed,
    priors,
    prior_scale,
    sampler,
    progressbar,
    team_effect_draws,
    t0,
):
    import xarray as xr

    names, re_names = list(spec.fixed), list(spec.random)
    pri = default_prior_scales(y, X, Z, spec, priors, prior_scale)
    fast = st.q <= 2 and sampler in ("auto", "nutpie") and _has_nutpie()
    if sampler == "numpyro" and st.q > 2:
        raise CausalCTSError("sampler='numpyro' handles one or two random effects per group.")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", UserWarning)
        if sampler == "numpyro" or fast:
            logpost = IntegratedPosterior(
                st, spec.correlated, pri["beta_mu"], pri["beta_sd"], pri["sigma_sd"], pri["re_sd"], pri["lkj_eta"]
            )
            layout = dict(coords={"term": names, "re_term": re_names}, dims={"beta": ("term",), "re_sd": ("re_term",)})
            if sampler == "numpyro":
                from causalcts.bayes.jaxlogp import sample_numpyro

                idata = sample_numpyro(logpost, **layout, chains=chains, draws=draws, tune=tune, seed=seed)
                used = "numpyro (JAX log-density)"
            else:
                idata = sample_numpy_posterior(
                    logpost, **layout, chains=chains, draws=draws, tune=tune, seed=seed, progressbar=progressbar
                )
                used = "nutpie (NumPy log-density)"
        else:
            model = build_pymc_model(st, spec, pri, names, re_names)
            idata, used = sample_model(
                model, chains=chains, draws=draws, tune=tune, seed=seed, sampler=sampler, progressbar=progressbar
            )
    post = idata.posterior
    beta = post["beta"].values.reshape(-1, len(names))
    sigma = post["sigma"].values.ravel()
    if "re_chol" in post:
        chol = post["re_chol"].values.reshape(-1, st.q * (st.q + 1) // 2)
        Sig = np.array([_unpack(c, st.q) for c in chol])
    elif "re_corr" in post:
        sds = post["re_sd"].values.reshape(-1, st.q)
        rho = post["re_corr"].values.ravel()
        Sig = np.array([[[a * a, r * a * b], [r * a * b, b * b]] for (a, b), r in zip(sds, rho)])
    else:
        sds = post["re_sd"].values.reshape(-1, st.q)
        Sig = np.array([np.diag(s**2) for s in sds])
    _add_team_effects(idata, st, labels, re_names, chains, team_effect_draws, seed)
    var_names = ["beta", "sigma", "re_sd"] + (["re_corr"] if spec.correlated and st.q == 2 else [])
    diag, ok, div = diagnose(idata, var_names, label="mixed-model")
    cov_re = pd.DataFrame(Sig.mean(axis=0), index=re_names, columns=re_names)
    idata.posterior["re_cov"] = xr.DataArray(
        Sig.reshape(post.sizes["chain"], post.sizes["draw"], st.q, st.q),
        dims=("chain", "draw", "re_term", "re_term_bis"),
        coords={"re_term": re_names, "re_term_bis": re_names},
    )
    V = np.atleast_2d(np.cov(beta, rowvar=False))
    return BayesResults(
        params=pd.Series(beta.mean(axis=0), index=names),
        std_errors=pd.Series(beta.std(axis=0, ddof=1), index=names),
        cov=pd.DataFrame(V, index=names, columns=names),
        nobs=st.n,
        n_entities=len(labels),
        method="nuts",
        formula=formula,
        cov_type="posterior",
        dist="normal",
        cov_re=cov_re,
        scale=float((sigma**2).mean()),
        idata=idata,
        diagnostics=diag,
        converged=ok,
        info={
            "sampler": used,
            "divergences": div,
            "seconds": time.perf_counter() - t0,
            "chains": chains,
            "draws": draws,
            "tune": tune,
            "seed": seed,
            "prior_scale": prior_scale,
        },
    )


def _has_nutpie() -> bool:
    try:
        import nutpie  # noqa: F401
    except ImportError:  # pragma: no cover - nutpie is a dependency
        return False
    return True


def sample_numpy_posterior(logpost, *, coords, dims, chains, draws, tune, seed, progressbar):
    """Run nutpie's NUTS on a NumPy log-density object with ``logp``, ``expand``, ``initial_point``, ``ndim``."""
    import nutpie
    from nutpie.compiled_pyfunc import from_pyfunc

    example = logpost.expand(logpost.initial_point(0))
    names = list(example)
    model = from_pyfunc(
        logpost.ndim,
        make_logp_fn=lambda: lambda x, **_: logpost.logp(np.asarray(x)),
        make_expand_fn=lambda *a: (
            lambda x, **_: {k: np.asarray(v, dtype=np.float64) for k, v in logpost.expand(np.asarray(x)).items()}
        ),
        expanded_dtypes=[np.dtype("float64")] * len(names),
        expanded_shapes=[np.shape(example[k]) for k in names],
        expanded_names=names,
        coords=coords,
        dims={k: v for k, v in dims.items() if k in names},
        make_initial_point_fn=lambda s: logpost.initial_point(int(s) % (2**32)),
    )
    return nutpie.sample(
        model,
        draws=draws,
        tune=tune,
        chains=chains,
        cores=min(chains, 2),
        seed=0 if seed is None else int(seed),
        progress_bar=progressbar,
    )


def _unpack(packed: np.ndarray, q: int) -> np.ndarray:
    L = np.zeros((q, q))
    L[np.tril_indices(q)] = packed
    return L @ L.T


def _add_team_effects(idata, st: GroupStats, labels, re_names, chains, per_chain, seed):
    """Draw team effects from their exact conditional N(Lambda C^-1 w, sigma^2 Lambda C^-1 S^-1) for a subset of draws."""
    import xarray as xr

    post = idata.posterior
    n_draw = post.sizes["draw"]
    take = np.unique(np.linspace(0, n_draw - 1, min(per_chain, n_draw)).astype(int))
    rng = np.random.default_rng(np.random.SeedSequence([0 if seed is None else int(seed), 7]))
    out = np.empty((post.sizes["chain"], len(take), len(labels), st.q))
    q = st.q
    for c in range(post.sizes["chain"]):
        for j, d in enumerate(take):
            beta = post["beta"].values[c, d]
            s2 = float(post["sigma"].values[c, d]) ** 2
            if "re_chol" in post:
                Sig = _unpack(post["re_chol"].values[c, d], q)
            elif "re_corr" in post:
                a, b = post["re_sd"].values[c, d]
                r = float(post["re_corr"].values[c, d])
                Sig = np.array([[a * a, r * a * b], [r * a * b, b * b]])
            else:
                Sig = np.diag(post["re_sd"].values[c, d] ** 2)
            Lam = Sig / s2
            Cinv = np.linalg.inv(st.S_inv + Lam[None])
            mean = conditional_modes(st, beta, Lam, Cinv)
            cov = conditional_cov(st, Lam, Cinv, s2)
            Lc = np.linalg.cholesky(cov + 1e-12 * np.eye(q)[None])
            out[c, j] = mean + np.einsum("gij,gj->gi", Lc, rng.standard_normal((len(labels), q)))
    idata.add_groups(
        {
            "team_effects": xr.Dataset(
                {"team_effect": (("chain", "draw", labels.name or "group", "re_term"), out)},
                coords={
                    "chain": post["chain"].values,
                    "draw": post["draw"].values[take],
                    labels.name or "group": labels.astype(str).to_numpy(),
                    "re_term": re_names,
                },
            )
        }
    )
