"""Ticket routing: the share of tickets auto-routed and the share of those that are misrouted, as an `evaluate`
metric. A ticket is auto-routed when its calibrated confidence reaches the threshold and its predicted label is
not one that always goes to triage (`custom_trainer.calibration.auto_routed`, the project's one rule)."""

import datasets
import evaluate
import numpy as np
from custom_trainer.calibration import auto_routed

_DESCRIPTION = "Coverage (share auto-routed) and misrouting among auto-routed tickets at a confidence threshold."

_KWARGS_DESCRIPTION = """
Args:
    predictions (list of int): predicted label ids.
    references (list of int): true label ids.
    scores (list of float): calibrated confidence of each prediction.
    threshold (float): the auto-route threshold (None: every ticket is auto-routed).
    triage_ids (list of int, optional): labels never auto-routed.
Returns:
    coverage, misrouting (floats), auto_routed, triaged (ints). misrouting is 0 when nothing is auto-routed.
"""


def routing_scores(predictions, references, scores, threshold=None, triage_ids=()) -> dict:
    predictions, references = np.asarray(predictions), np.asarray(references)
    routed = auto_routed(np.asarray(scores, dtype=float), predictions, threshold, list(triage_ids))
    wrong = predictions != references
    return {
        "coverage": float(routed.mean()) if len(routed) else 0.0,
        "misrouting": float(wrong[routed].mean()) if routed.any() else 0.0,
        "auto_routed": int(routed.sum()),
        "triaged": int((~routed).sum()),
    }


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

    def _compute(self, predictions, references, scores, threshold=None, triage_ids=()):
        return routing_scores(predictions, references, scores, threshold, triage_ids)
