"""Optional JAX/numpyro backend for GPUs: the same integrated log posterior, differentiated by JAX.

Install with ``pip install "causalcts[gpu]"`` (JAX and numpyro; a CUDA build of jaxlib for a GPU) and
pass ``sampler="numpyro"`` to :func:`causalcts.mixed` or ``causalcts.fit(method="bayes")``. The
density is that of the reference implementation, :func:`causalcts.bayes.integrated.log_posterior`
(tested against it to 1e-10, gradients included).

The computation runs in float64: in float32 the sufficient-statistic sums lose the precision the
likelihood needs and the sampler does not converge. Double precision is switched on only inside
:func:`x64` (a context manager, ``jax.enable_x64(True)`` or, in older JAX,
``jax.experimental.enable_x64()``), around tracing and sampling; the process-wide flag
``jax.config.jax_enable_x64`` is never changed. Call the function returned by
:func:`make_jax_logp` (and its ``jax.grad``) inside ``with x64():`` too. Chains run vectorised on
one device.
"""

from __future__ import annotations

import numpy as np

from causalcts.bayes.fastlogp import IntegratedPosterior
from causalcts.bayes.integrated import LOG2PI

__all__ = ["make_jax_logp", "sample_numpyro", "x64"]


def x64():
    """A context in which JAX computes in float64, leaving the global ``jax_enable_x64`` flag as it was."""
    import jax

    if hasattr(jax, "enable_x64"):
        return jax.enable_x64(True)
    from jax.experimental import enable_x64  # pragma: no cover - JAX < 0.6

    return enable_x64()  # pragma: no cover


def make_jax_logp(post: IntegratedPosterior):
    """A JAX function ``x -> log posterior`` equal to ``post.logp(x)[0]``; call it inside :func:`x64`."""
    import jax.numpy as jnp

    st = post.st
    p, q, has_rho = post.p, post.q, post.has_rho
    G = post.G
    arrays = dict(
        si00=post.si00,
        si01=post._si01,
        si11=post._si11,
        B0=post.B0,
        B1=post._B1,
        by0=post.by0,
        by1=post._by1,
        Sxx=st.Sxx_w,
        beta_w=st.beta_w,
        beta_mu=post.beta_mu,
        beta_sd=post.beta_sd,
        re_sd=post.re_sd,
    )
    a = {k: np.asarray(v, dtype=np.float64) for k, v in arrays.items()}  # float64 NumPy; JAX sees them under x64
    n, logdet_S, rss_min = float(st.n), float(st.logdet_S), float(st.rss_w_min)
    sigma_sd, eta = float(post.sigma_sd), float(post.lkj_eta)

    def logp(x):
        x = jnp.asarray(x)
        beta = x[:p]
        v = x[p]
        u = x[p + 1 : p + 1 + q]
        s2 = jnp.exp(2 * v)
        sd = jnp.exp(u)
        rho = jnp.tanh(x[p + 1 + q]) if has_rho else 0.0
        d = beta - a["beta_w"]
        R = rss_min + d @ (a["Sxx"] @ d)
        w0 = a["by0"] - a["B0"] @ beta
        if q == 1:
            k = s2 * a["si00"] + sd[0] ** 2
            logdetK = jnp.sum(jnp.log(k))
            quad = jnp.sum(w0 * w0 / k)
        else:
            w1 = a["by1"] - a["B1"] @ beta
            ka = s2 * a["si00"] + sd[0] ** 2
            kb = s2 * a["si01"] + rho * sd[0] * sd[1]
            kc = s2 * a["si11"] + sd[1] ** 2
            det = ka * kc - kb * kb
            logdetK = jnp.sum(jnp.log(det))
            quad = jnp.sum((kc * w0 * w0 - 2 * kb * w0 * w1 + ka * w1 * w1) / det)
        ll = -0.5 * (n * LOG2PI + (n - q * G) * jnp.log(s2) + logdet_S + logdetK + R / s2 + quad)
        zb = (beta - a["beta_mu"]) / a["beta_sd"]
        lp = ll - 0.5 * zb @ zb
        lp = lp - 0.5 * (jnp.exp(v) / sigma_sd) ** 2 + v
        lp = lp + jnp.sum(-0.5 * (sd / a["re_sd"]) ** 2 + u)
        if has_rho:
            lp = lp + eta * jnp.log1p(-rho * rho)
        return lp

    return logp


def sample_numpyro(post: IntegratedPosterior, *, coords, dims, chains, draws, tune, seed: int):
    """NUTS from numpyro on the JAX log posterior, in float64 inside :func:`x64`; returns ArviZ InferenceData."""
    import arviz as az
    import jax
    import jax.numpy as jnp
    from numpyro.infer import MCMC, NUTS

    with x64():
        logp = make_jax_logp(post)
        kernel = NUTS(potential_fn=lambda x: -logp(x))
        mcmc = MCMC(
            kernel,
            num_warmup=tune,
            num_samples=draws,
            num_chains=chains,
            chain_method="vectorized",
            progress_bar=False,
        )
        init = jnp.stack([jnp.asarray(post.initial_point(int(seed) + c)) for c in range(chains)])
        if chains == 1:
            init = init[0]  # numpyro takes one chain's initial point without the chain axis
        mcmc.run(jax.random.PRNGKey(int(seed)), init_params=init, extra_fields=("diverging",))
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
