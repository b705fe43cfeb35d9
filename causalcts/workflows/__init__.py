"""Workflows (layer 6): the natural-experiment analysis behind ``causalcts analyze``.

A rollout spec (:mod:`causalcts.workflows.spec`) names the data, the treatment share, the outcomes and the
controls; :func:`~causalcts.workflows.analyze.analyze` fits the dynamic panel estimators of the registry, runs
the diagnostics (:mod:`causalcts.workflows.checks`), picks a recommended estimate, carries it into
engineering-years and money saved (:mod:`causalcts.workflows.savings`) and writes a report
(:mod:`causalcts.workflows.render`: HTML, Markdown, JSON and figures).
"""

from causalcts.workflows.analyze import AnalysisOutput, analyze, analyze_experiment
from causalcts.workflows.spec import RolloutSpec, load_data, load_spec, parse_spec

__all__ = ["AnalysisOutput", "RolloutSpec", "analyze", "analyze_experiment", "load_data", "load_spec", "parse_spec"]
