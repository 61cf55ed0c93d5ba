"""Ticket routing: the share of tickets auto-routed and the share of those that are misrouted, as an `evaluate`
metric. A ticket is auto-routed when its calibrated confidence reaches the threshold and its predicted label is
not one that always goes to triage: `ticket_router.rule.auto_routed` and `routed_stats`, the project's one rule."""

import datasets
import evaluate
import numpy as np
from ticket_router.rule import auto_routed, routed_stats

_DESCRIPTION = "Coverage (share auto-routed) and misrouting among auto-routed tickets at a confidence threshold."

_KWARGS_DESCRIPTION = """
Args:
    predictions (list of int): predicted label ids.
    references (list of int): true label ids.
    scores (list of float): calibrated confidence of each prediction.
    threshold (float): the auto-route threshold (0, the default: every ticket is auto-routed).
    triage_ids (list of int, optional): labels never auto-routed.
Returns:
    coverage, misrouting (floats), auto_routed, triaged (ints). misrouting is 0 when nothing is auto-routed.
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class TicketRouting(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({
                "predictions": datasets.Value("int64"),
                "references": datasets.Value("int64"),
                "scores": datasets.Value("float64"),
            }),
        )

    def _compute(self, predictions, references, scores, threshold=0.0, triage_ids=()):
        predictions = np.asarray(predictions)
        routed = auto_routed(np.asarray(scores, dtype=float), predictions, threshold, list(triage_ids))
        return routed_stats(predictions == np.asarray(references), routed)
