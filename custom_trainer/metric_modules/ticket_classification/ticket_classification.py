"""Ticket classification: accuracy, macro-F1, weighted F1 and the F1 of every label, as an `evaluate` metric.

Shipped inside the `custom_trainer` package and loaded by path (`custom_trainer.evaluation.load_metric`), so it
works offline; the numbers are scikit-learn's.
"""

import datasets
import evaluate
from sklearn.metrics import accuracy_score, f1_score

_DESCRIPTION = """Accuracy, macro-F1 (every label counts the same, including labels never predicted), weighted F1 and
per-label F1 of a ticket classifier."""

_KWARGS_DESCRIPTION = """
Args:
    predictions (list of int): predicted label ids.
    references (list of int): true label ids.
    label_names (list of str, optional): the name of every label id, in id order. With it, every label counts in
        macro-F1 and gets an `f1_<name>` key; without it, the labels are those that occur in either list and keys
        are `f1_<id>`.
Returns:
    accuracy, macro_f1, weighted_f1 (floats) and f1_<label> for every label; with config_name "summary", only
    accuracy and macro_f1 (what `evaluate.evaluator` bootstraps: it resamples once per key).
Examples:
    >>> metric = load_metric("ticket_classification")
    >>> metric.compute(predictions=[0, 1, 1], references=[0, 1, 2], label_names=["a", "b", "c"])["macro_f1"]
    0.5555555555555555
"""


def classification_scores(predictions, references, label_names=None) -> dict:
    if label_names is not None:
        ids, names = list(range(len(label_names))), list(label_names)
    else:
        ids = sorted(set(int(i) for i in predictions) | set(int(i) for i in references))
        names = [str(i) for i in ids]
    per_label = f1_score(references, predictions, labels=ids, average=None, zero_division=0)
    scores = {
        "accuracy": float(accuracy_score(references, predictions)),
        "macro_f1": float(f1_score(references, predictions, labels=ids, average="macro", zero_division=0)),
        "weighted_f1": float(f1_score(references, predictions, labels=ids, average="weighted", zero_division=0)),
    }
    scores.update({f"f1_{name}": float(value) for name, value in zip(names, per_label)})
    return scores


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class TicketClassification(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}),
        )

    def _compute(self, predictions, references, label_names=None):
        scores = classification_scores(predictions, references, label_names)
        if self.config_name == "summary":
            return {key: scores[key] for key in ("accuracy", "macro_f1")}
        return scores
