r"""Exact removal of entity and period effects (Frisch-Waugh-Lovell) for the rollout designs.

After removing entity means, the entity-demeaned period dummies are partialled out through their
:math:`P \times P` cross-product built from the entity-by-period incidence matrix, so no
:math:`n \times P` dummy matrix is formed; exact on unbalanced panels. (The same algebra as
``causalcts.estimators.linear.within_transform``; a sibling folder of layer 3 cannot import it.)
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def group_demean(M: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """Subtract each group's column means (codes 0..G-1) from the rows of ``M``."""
    n_g = int(codes.max()) + 1
    counts = np.bincount(codes, minlength=n_g).astype(float)
    sums = np.zeros((n_g, M.shape[1]))
    np.add.at(sums, codes, M)
    return M - (sums / counts[:, None])[codes]


def two_way_demean(M: np.ndarray, ent: np.ndarray, per: np.ndarray) -> np.ndarray:
    """Residuals of the columns of ``M`` on entity and period dummies (codes 0..N-1 and 0..P-1)."""
    out = group_demean(M, ent)
    n_ent, P = int(ent.max()) + 1, int(per.max()) + 1
    C = sp.csr_matrix((np.ones(len(ent)), (ent, per)), shape=(n_ent, P))
    Ti = np.asarray(C.sum(axis=1)).ravel()
    n_t = np.asarray(C.sum(axis=0)).ravel()
    G = np.diag(n_t) - (C.T @ sp.diags(1.0 / Ti) @ C).toarray()  # D~'D~
    R = np.zeros((P, M.shape[1]))
    np.add.at(R, per, out)  # D~'x~ = D'x~
    delta = np.linalg.pinv(G, rcond=1e-12, hermitian=True) @ R
    team_mean_delta = (C @ delta) / Ti[:, None]
    return out - (delta[per] - team_mean_delta[ent])
