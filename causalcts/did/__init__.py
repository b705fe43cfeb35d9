"""Rollout designs (layer 3: imports errors, data, results and inference only).

:func:`~causalcts.did.event_study.event_study`: event studies of binary onsets (TWFE with binned end points,
or Sun and Abraham's interaction-weighted estimator) and distributed leads and lags of a continuous share,
with CRV1 or wild cluster bootstrap inference. :func:`~causalcts.did.dcdh.did_multiplegt_dyn`: de Chaisemartin and
D'Haultfoeuille's DID_l for a non-binary treatment that may switch on and off.
"""

from causalcts.did.att_gt import AggregatedATT, ATTgtResults, BootstrapBands, att_gt
from causalcts.did.cohorts import onset_cohort
from causalcts.did.dcdh import did_multiplegt_dyn
from causalcts.did.event_study import event_study, event_time_name

__all__ = [
    "AggregatedATT",
    "ATTgtResults",
    "BootstrapBands",
    "att_gt",
    "did_multiplegt_dyn",
    "event_study",
    "event_time_name",
    "onset_cohort",
]
