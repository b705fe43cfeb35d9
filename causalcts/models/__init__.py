"""Model likelihoods shared by the frequentist and Bayesian families (layer 2: imports data and errors).

One reference likelihood per model: :mod:`causalcts.models.sem` is the ML-SEM dynamic panel, fitted by
``method="ml"`` (:mod:`causalcts.estimators.mlsem`) and sampled by ``method="bayes"`` with ``predetermined=``
(:mod:`causalcts.bayes.dynamic_sem`).
"""
