"""Metrics through the project's own `evaluate` modules (custom_trainer/metric_modules, loaded by path, offline;
the numbers are scikit-learn's)."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import classification_report


def classification_metrics(labels, predictions, label_names: list[str]) -> dict[str, float]:
    """accuracy, macro_f1, weighted_f1 and ``f1_<label>`` for every label (the ``ticket_classification`` module)."""
    from .evaluation import load_metric

    return load_metric("ticket_classification").compute(
        predictions=np.asarray(predictions).tolist(), references=np.asarray(labels).tolist(), label_names=list(label_names)
    )


def split_fields(predictions, label_ids=None, sizes: list[int] = ()):
    """The routed field's logits and labels, and each extra field's (logits, labels), from what the Trainer gathers:
    ``predictions`` is the logits, or (logits, the fields' logits side by side); ``sizes``: each extra field's label
    count; ``label_ids``: one column per field."""
    fields = []
    if isinstance(predictions, tuple):
        logits = predictions[0]
        if len(predictions) > 1 and predictions[1] is not None and sizes:
            bounds = [sum(sizes[:i]) for i in range(len(sizes) + 1)]
            fields = [np.asarray(predictions[1])[:, bounds[i]:bounds[i + 1]] for i in range(len(sizes))]
    else:
        logits = predictions
    labels = None if label_ids is None else np.asarray(label_ids)
    if labels is not None and labels.ndim == 2:
        return logits, labels[:, 0], [(field, labels[:, i + 1]) for i, field in enumerate(fields)]
    return logits, labels, [(field, None) for field in fields]


def field_metrics(logits, labels, label_names: list[str]) -> dict[str, float]:
    """`classification_metrics` of one extra field on its labelled rows (-100: blank, left out)."""
    labels = np.asarray(labels)
    known = labels >= 0
    if not known.any():
        return {}
    return classification_metrics(labels[known], np.argmax(np.asarray(logits)[known], axis=-1), label_names)


def make_compute_metrics(label_names: list[str], field_labels: dict[str, list[str]] | None = None):
    """A ``compute_metrics`` for the Trainer (keys become ``eval_macro_f1``...; an extra field's
    ``eval_<field>_macro_f1``...)."""

    def compute_metrics(eval_prediction) -> dict[str, float]:
        sizes = [len(names) for names in (field_labels or {}).values()]
        logits, labels, fields = split_fields(eval_prediction.predictions, eval_prediction.label_ids, sizes)
        metrics = classification_metrics(labels, np.argmax(logits, axis=-1), label_names)
        for (name, names), (field_logits, field_labels_) in zip((field_labels or {}).items(), fields):
            metrics.update({f"{name}_{key}": value for key, value in field_metrics(
                field_logits, field_labels_, names).items() if not key.startswith("f1_")})
        return metrics

    return compute_metrics


def report_text(labels, predictions, label_names: list[str]) -> str:
    """The seed's classification report (4 digits)."""
    return classification_report(
        labels, predictions, labels=list(range(len(label_names))), target_names=label_names, digits=4, zero_division=0
    )
