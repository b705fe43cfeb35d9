"""Inference on arrays that any estimator family can ask for (layer 2: imports only errors, data and results).

:func:`~causalcts.inference.cluster.crv1` gives the cluster-robust covariance with fixest's small-sample
correction and t(G - 1) critical values; :func:`~causalcts.inference.wild.wild_cluster_bootstrap` the wild
cluster restricted bootstrap for few clusters.
"""

from causalcts.inference.cluster import ClusterCovariance, crv1
from causalcts.inference.wild import WildBootstrapResult, bootstrap_weights, wild_cluster_bootstrap

__all__ = ["ClusterCovariance", "WildBootstrapResult", "bootstrap_weights", "crv1", "wild_cluster_bootstrap"]
