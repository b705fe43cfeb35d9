r"""The collapsed Bayesian ML-SEM: the nuisance regressions of :class:`causalcts.models.sem.Profile` integrated out.

On complete data without time-invariant regressors (where :func:`causalcts.models.sem.profile_layout` applies),
:math:`w = (I - B)y - \Gamma u` (Jacobian 1) turns the ML-SEM density into
:math:`p(u_s)\,p(\bar w \mid u_s)\,p(c)\,\prod_j p(u_{p,j} \mid X_j)`: the saturated exogenous block
:math:`u_s`; the regression of the weighted mean :math:`\bar w = a'w`, :math:`a = D^{-1}1/1'D^{-1}1`, on
:math:`(1, u_s)`, coefficients :math:`\lambda`, variance :math:`s_b^2 = \psi^* + 1/1'D^{-1}1` with
:math:`\psi^*` the team effect's variance given :math:`u_s`; the contrasts :math:`c = (I - 1a')w`,
:math:`N(\kappa, (I - 1a')D(I - a1'))`; and each predetermined column regressed on
:math:`X_j = (1, u_s, \bar w, w_{T_j}, u_{p,<j})` (coefficients :math:`b_j`, variance :math:`s_j^2`). Every
nuisance block is variation-free from the structural parameters :math:`\phi = (\beta, \gamma, \log d)`.

Prior. Structural, as :mod:`causalcts.bayes.dynamic_sem` states it: :math:`\beta_k, \gamma_j \sim
N(0, (2.5c)^2)`, :math:`\sqrt{d_t} \sim \text{HalfNormal}(c)` (``beta_scale``, ``sigma_scale``, standardised
units). Nuisance, the standard noninformative prior of each block: flat on the wave intercepts :math:`\nu` and
on every mean; :math:`p(\Phi_{ss}) \propto |\Phi_{ss}|^{-(q_s+1)/2}`; :math:`p(\lambda, s_b^2) \propto s_b^{-2}`
on :math:`s_b^2 > 0` (so :math:`\psi^* > -1/1'D^{-1}1`: like ``method="ml"``, only the observed covariance
must be positive definite; ``truncate=True`` restricts it to :math:`\psi^* > 0`, an option the fit does not
use); :math:`p(b_j, s_j^2) \propto s_j^{-2}`. ``intercept_scale``, ``re_scale`` and ``cov_scale``
are not used.

Collapsing (exact). A regression :math:`y = Xb + e` with :math:`p(b, s^2) \propto s^{-2}` integrates to
:math:`\Gamma(\tfrac{n-k}{2})\,\pi^{-(n-k)/2}\,|X'X|^{-1/2}\,\mathrm{RSS}^{-(n-k)/2}`. Integrating
:math:`\nu` out of :math:`w_i \mid u_{s,i} \sim N(\nu + 1\lambda'(u_{s,i} - \bar u_s), \psi^*11' + D)`, with
:math:`|\psi^*11' + D| = |D|\,1'D^{-1}1\,s_b^2`, leaves :math:`(|D|\,1'D^{-1}1)^{-(N-1)/2}
\exp(-\tfrac N2 \mathrm{tr}(D^{-1}(I - 1a')S_{ww}(I - a1')))` times the regression of :math:`\bar w` on the
centred :math:`u_s` (:math:`k = 1 + q_s`); with ``truncate`` that block gains the factor
:math:`P(\tfrac{N-k}{2}, \mathrm{RSS}\cdot 1'D^{-1}1/2)` (regularised lower incomplete gamma). Every RSS and
:math:`|X_j'X_j|` is a diagonal entry of one Cholesky factor (:meth:`Profile.value`), so the log marginal
posterior of :math:`\phi` (:class:`CollapsedPosterior`) and its analytic gradient (reverse mode through that
factor: :math:`\partial \log L_{rr}^2 / \partial M = u_r u_r'`, :math:`u_r` row ``r`` of :math:`L^{-1}`) cost
:math:`O(p^3)` whatever :math:`N`. With the exponents :math:`N - k` and :math:`N - 1` replaced by :math:`N`
and the :math:`|X'X|` factors dropped (``ml=True``) it is :math:`-\tfrac N2 F_p(\phi)` plus a constant, so its
maximum is the ML estimate; the exponents as they are move the mode (flat structural prior) by :math:`O(1/N)`,
a vanishing :math:`O(1/\sqrt N)` fraction of a posterior SD (``tests/test_bayes_sem.py``).

Sampling and outputs. NUTS (nutpie, ``from_pyfunc``) samples :math:`\phi` (tens of dimensions), whitened at
the ML point with the profile Hessian, at target acceptance 0.9: along the direction that trades the overall
level of :math:`D` against :math:`\psi^*` the posterior is flat-topped with steep sides (it is not Gaussian:
curvature 0.3 at the centre, 5 four SDs out, feedback test), where the default 0.8 gave 3 or 4 divergences in
2,000 draws and 0.9 none in five seeds. Then, draw by draw, the nuisance quantities the results report come
from their exact conditional posteriors (:func:`nuisance_draws`): :math:`\Phi_{ss} \sim
\text{Inv-Wishart}(N - 1, NS_{ss})`, :math:`1/s_b^2` a gamma (truncated to :math:`\psi^* > 0` with
``truncate``), :math:`\lambda \mid s_b^2` normal, so that the team effect's variance is
:math:`\psi = \psi^* + \lambda'\Phi_{ss}\lambda`; the wave intercepts :math:`\nu \sim N(\bar w, (\psi 11' + D)/N)`
(the mean of :math:`w` given every covariance parameter, flat prior).
"""

from __future__ import annotations

import numpy as np
from scipy import linalg, special, stats

from causalcts.models.sem import Profile

__all__ = ["CollapsedPosterior", "nuisance_draws"]


class CollapsedPosterior:
    """Log marginal posterior of ``phi = (coefficients, log error variances)`` (module docstring) with gradient.

    ``scales`` holds ``beta_scale`` and ``sigma_scale`` (internal units); ``ml=True`` gives the ML-exponent
    version (flat structural prior, no Jacobian): ``-N/2 F_p`` up to a constant, for checks; ``truncate=True``
    restricts the team effect's variance given ``u_s`` to be positive (module docstring).

    Examples
    --------
    >>> import causalcts
    >>> from causalcts.data.panel import Panel
    >>> from causalcts.models import sem
    >>> sim = causalcts.simulate(n_teams=60, n_weeks=5, seed=1)
    >>> panel = Panel(sim.data, columns=["cr_velocity", "ai_share"])
    >>> wide, _ = sem.build_wide("cr_velocity ~ L(cr_velocity, 1) + ai_share", panel, ["ai_share"], False)
    >>> prof = sem.profile_layout(wide, sem.missingness_patterns(wide.Z))
    >>> post = CollapsedPosterior(prof, wide.Z.shape[0], {"beta_scale": 2.5, "sigma_scale": 1.0})
    >>> lp, grad = post.logp(prof.start(sem.start_values(wide)))
    >>> bool(np.isfinite(lp)), grad.shape
    (True, (6,))
    """

    def __init__(self, prof: Profile, N: int, scales: dict, ml: bool = False, truncate: bool = False) -> None:
        L = prof.layout
        self.prof, self.layout, self.N, self.ml, self.truncate = prof, L, int(N), ml, truncate and not ml
        self.scales = scales
        self.q, self.m, self.k = L.q, L.m, L.n_coef
        self.ndim = prof.n_profile
        order = prof.order
        self.n_rows = len(order)
        self.qs = len(prof.s_idx)
        self.rb = self.qs  # the row of the weighted mean
        self.u_rows = np.flatnonzero((order >= 0) & (order < L.q))
        self.w_rows = np.flatnonzero(order >= L.q)
        self.w_wave = order[self.w_rows] - L.q
        # weight of each log L_rr^2 (L the Cholesky factor of the ordered covariance) in the log density
        c = np.zeros(self.n_rows)
        n = float(N)
        if ml:
            c[self.rb] = -n / 2
            c[prof.p_rows] += -n / 2
            self.n_mean = n
        else:
            c[self.rb] = -(n - 1 - self.qs) / 2
            for r in prof.p_rows:
                c[r] += -(n - 1 - r) / 2  # k_j = 1 + r regressors (intercept and the r rows before)
                c[:r] += -0.5  # |X_j'X_j|^{-1/2}
            self.n_mean = n - 1  # the contrasts' mean integrated out
        self.c = c
        self.half_nu = (n - 1 - self.qs) / 2

    # ------------------------------------------------------------------ pieces
    def _bg(self, coef: np.ndarray):
        L = self.layout
        B = np.zeros((self.m, self.m))
        np.add.at(B, (L.b_pos[1], L.b_pos[2]), coef[L.b_pos[0]])
        G = np.zeros((self.m, self.q))
        np.add.at(G, (L.g_pos[1], L.g_pos[2]), coef[L.g_pos[0]])
        return B, G

    def _d(self, phi: np.ndarray) -> np.ndarray:
        v = np.exp(phi[self.k :])
        return np.full(self.m, v[0]) if self.layout.error_inv else v

    def _ordered(self, phi: np.ndarray):
        B, G = self._bg(phi[: self.k])
        Tw = np.hstack([-G, np.eye(self.m) - B])
        d = self._d(phi)
        h = 1.0 / d
        s = float(h.sum())
        a = h / s
        Q = np.zeros((self.n_rows, self.layout.p))
        Q[self.u_rows, self.prof.order[self.u_rows]] = 1.0
        Q[self.w_rows] = Tw[self.w_wave]
        Q[self.rb] = a @ Tw
        return Tw, d, h, s, a, Q

    # ------------------------------------------------------------------ density
    def logp(self, phi: np.ndarray) -> tuple[float, np.ndarray]:
        """Log marginal posterior at ``phi`` (up to a constant) and its gradient; -inf outside the support."""
        k, N, S = self.k, float(self.N), self.prof.S
        Tw, d, h, s, a, Q = self._ordered(phi)
        QS = Q @ S
        try:
            Lc = np.linalg.cholesky(QS @ Q.T)
        except np.linalg.LinAlgError:
            return -np.inf, np.zeros(self.ndim)
        ld = 2.0 * np.log(np.diag(Lc))
        cw = self.c.copy()
        ll = float(cw @ ld)
        s_bar = 0.0
        if self.truncate:  # the wave-mean variance above 1/1'D^-1 1: team effect variance given u_s positive
            x = 0.5 * N * np.exp(ld[self.rb]) * s
            P = float(special.gammainc(self.half_nu, x))
            if not P > 0:
                return -np.inf, np.zeros(self.ndim)
            ll += np.log(P)
            r = np.exp((self.half_nu - 1) * np.log(x) - x - special.gammaln(self.half_nu) - np.log(P))
            cw[self.rb] += r * x
            s_bar += r * x / s
        TS = Tw @ S
        Sww = TS @ Tw.T
        Sh = Sww @ h
        ftr = float(h @ np.diag(Sww) - h @ Sh / s)
        logd_sum = float(np.log(d).sum())
        ll += -0.5 * self.n_mean * (logd_sum + np.log(s)) - 0.5 * N * ftr
        # gradient: d log L_rr^2 / dM = u_r u_r' (u_r row r of L^-1), M = Q S Q'
        U = linalg.solve_triangular(Lc, np.eye(self.n_rows), lower=True)
        GM = U.T @ (cw[:, None] * U)
        Qbar = 2.0 * GM @ QS
        Tbar = np.zeros_like(Tw)
        np.add.at(Tbar, self.w_wave, Qbar[self.w_rows])
        a_bar = Tw @ Qbar[self.rb]
        Tbar += np.outer(a, Qbar[self.rb])
        Ktr = np.diag(h) - np.outer(h, h) / s
        Tbar += -N * Ktr @ TS
        h_bar = -0.5 * N * (np.diag(Sww) - 2.0 * Sh / s)
        s_bar += -0.5 * N * float(h @ Sh) / s**2 - 0.5 * self.n_mean / s
        h_bar += a_bar / s
        s_bar += -float(a_bar @ h) / s**2
        h_bar += s_bar
        g_logd = -h * h_bar - 0.5 * self.n_mean
        grad = np.zeros(self.ndim)
        L = self.layout
        Bbar, Gbar = -Tbar[:, self.q :], -Tbar[:, : self.q]
        gc = np.zeros(k)
        np.add.at(gc, L.b_pos[0], Bbar[L.b_pos[1], L.b_pos[2]])
        np.add.at(gc, L.g_pos[0], Gbar[L.g_pos[1], L.g_pos[2]])
        grad[:k] = gc
        grad[k:] = g_logd.sum(keepdims=True) if L.error_inv else g_logd
        if not self.ml:  # structural prior (module docstring) and the log-variance Jacobian
            coef, lv = phi[:k], phi[k:]
            bs, ss = self.scales["beta_scale"], self.scales["sigma_scale"]
            ll += -0.5 * float(coef @ coef) / bs**2
            grad[:k] += -coef / bs**2
            v = np.exp(lv)
            ll += float(np.sum(-v / (2 * ss**2) - 0.5 * lv + lv))
            grad[k:] += -v / (2 * ss**2) + 0.5
        return float(ll), grad


def nuisance_draws(post: CollapsedPosterior, phis: np.ndarray, rng: np.random.Generator):
    """Draw, for each row of ``phis``, the team effect's variance ``psi`` and the wave intercepts ``nu`` (scaled
    units) from their conditional posteriors (module docstring). Returns ``(psi, nu)``."""
    prof, N, qs, m = post.prof, post.N, post.qs, post.m
    si = prof.s_idx
    Sss = prof.S[np.ix_(si, si)]
    chol_ss = np.linalg.cholesky(N * Sss)
    n = len(phis)
    psi, nu = np.empty(n), np.empty((n, m))
    iw = stats.invwishart(df=N - 1, scale=N * Sss) if qs > 1 else None
    for i, phi in enumerate(phis):
        Tw, d, h, s, a, Q = post._ordered(phi)
        wbar_col = Tw.T @ a  # wbar = z @ wbar_col
        cov_sw = prof.S[si] @ wbar_col
        lam_hat = np.linalg.solve(Sss, cov_sw)
        rss = N * float(wbar_col @ prof.S @ wbar_col - cov_sw @ lam_hat)
        # 1/s_b^2 ~ Gamma(nu/2, rate RSS/2) truncated to 1/s_b^2 < s (psi* > 0), by the inverse CDF
        top = special.gammainc(post.half_nu, 0.5 * rss * s) if post.truncate else 1.0
        tau = 2.0 * special.gammaincinv(post.half_nu, rng.uniform() * top) / rss
        sb2 = 1.0 / tau
        lam = lam_hat + np.sqrt(sb2) * linalg.solve_triangular(chol_ss.T, rng.standard_normal(qs), lower=False)
        if iw is None:
            phi_ss = np.atleast_2d(N * Sss[0, 0] / rng.chisquare(N - 1))
        else:
            phi_ss = np.atleast_2d(iw.rvs(random_state=rng))
        psi[i] = sb2 - 1.0 / s + float(lam @ phi_ss @ lam)
        cov_w = psi[i] + np.diag(d)
        nu[i] = Tw @ prof.mean + np.linalg.cholesky(cov_w / N) @ rng.standard_normal(m)
    return psi, nu
