"""Optional JAX/numpyro backend for GPUs: the same integrated log posterior, differentiated by JAX.

Install with ``pip install "causalcts[gpu]"`` (JAX and numpyro; a CUDA build of jaxlib for a GPU) and
pass ``sampler="numpyro"`` to :func:`causalcts.mixed` or ``causalcts.fit(method="bayes")``. The
computation runs in float64: in float32 the sufficient-statistic sums lose the precision the
likelihood needs and the sampler does not converge. Chains run vectorised on one device.
"""

from __future__ import annotations

import numpy as np

from causalcts.bayes.fastlogp import LOG2PI, IntegratedPosterior

__all__ = ["make_jax_logp", "sample_numpyro"]


def make_jax_logp(post: IntegratedPosterior):
    """A JAX function ``x -> log posterior`` equal to ``post.logp(x)[0]``."""
    import jax

    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp

    st = post.st
    p, q, has_rho = post.p, post.q, post.has_rho
    G = post.G
    f = lambda a: jnp.asarray(np.asarray(a, dtype=np.float64))  # noqa: E731
    si00, si01, si11 = f(post.si00), f(post._si01), f(post._si11)
    B0, B1, by0, by1 = f(post.B0), f(post._B1), f(post.by0), f(post._by1)
    Sxx, beta_w = f(st.Sxx_w), f(st.beta_w)
    beta_mu, beta_sd, re_sd = f(post.beta_mu), f(post.beta_sd), f(post.re_sd)
    n, logdet_S, rss_min = float(st.n), float(st.logdet_S), float(st.rss_w_min)
    sigma_sd, eta = float(post.sigma_sd), float(post.lkj_eta)

    def logp(x):
        beta = x[:p]
        v = x[p]
        u = x[p + 1 : p + 1 + q]
        s2 = jnp.exp(2 * v)
        sd = jnp.exp(u)
        rho = jnp.tanh(x[p + 1 + q]) if has_rho else 0.0
        d = beta - beta_w
        R = rss_min + d @ (Sxx @ d)
        w0 = by0 - B0 @ beta
        if q == 1:
            k = s2 * si00 + sd[0] ** 2
            logdetK = jnp.sum(jnp.log(k))
            quad = jnp.sum(w0 * w0 / k)
        else:
            w1 = by1 - B1 @ beta
            a = s2 * si00 + sd[0] ** 2
            b = s2 * si01 + rho * sd[0] * sd[1]
            c = s2 * si11 + sd[1] ** 2
            det = a * c - b * b
            logdetK = jnp.sum(jnp.log(det))
            quad = jnp.sum((c * w0 * w0 - 2 * b * w0 * w1 + a * w1 * w1) / det)
        ll = -0.5 * (n * LOG2PI + (n - q * G) * jnp.log(s2) + logdet_S + logdetK + R / s2 + quad)
        zb = (beta - beta_mu) / beta_sd
        lp = ll - 0.5 * zb @ zb
        lp = lp - 0.5 * (jnp.exp(v) / sigma_sd) ** 2 + v
        lp = lp + jnp.sum(-0.5 * (sd / re_sd) ** 2 + u)
        if has_rho:
            lp = lp + eta * jnp.log1p(-rho * rho)
        return lp

    return logp


def sample_numpyro(post: IntegratedPosterior, *, coords, dims, chains, draws, tune, seed):
    """NUTS from numpyro on the JAX log posterior; returns ArviZ InferenceData like the nutpie path."""
    import arviz as az
    import jax
    import jax.numpy as jnp
    from numpyro.infer import MCMC, NUTS

    logp = make_jax_logp(post)
    kernel = NUTS(potential_fn=lambda x: -logp(x))
    mcmc = MCMC(
        kernel, num_warmup=tune, num_samples=draws, num_chains=chains, chain_method="vectorized", progress_bar=False
    )
    init = jnp.stack([jnp.asarray(post.initial_point(int(seed or 0) + c)) for c in range(chains)])
    mcmc.run(jax.random.PRNGKey(int(seed or 0)), init_params=init, extra_fields=("diverging",))
    x = np.asarray(mcmc.get_samples(group_by_chain=True))  # (chains, draws, ndim)
    div = np.asarray(mcmc.get_extra_fields(group_by_chain=True)["diverging"])
    expanded = [[post.expand(x[c, d]) for d in range(x.shape[1])] for c in range(x.shape[0])]
    names = list(expanded[0][0])
    posterior = {k: np.array([[e[k] for e in row] for row in expanded]) for k in names}
    return az.from_dict(
        posterior=posterior,
        sample_stats={"diverging": div},
        coords=coords,
        dims={k: list(v) for k, v in dims.items() if k in names},
    )
