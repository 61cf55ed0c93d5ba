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


def make_compute_metrics(label_names: list[str]):
    """A ``compute_metrics`` for the Trainer (keys become ``eval_macro_f1``...)."""

    def compute_metrics(eval_prediction) -> dict[str, float]:
        logits = eval_prediction.predictions
        logits = logits[0] if isinstance(logits, tuple) else logits
        return classification_metrics(eval_prediction.label_ids, np.argmax(logits, axis=-1), label_names)

    return compute_metrics


def report_text(labels, predictions, label_names: list[str]) -> str:
    """The seed's classification report (4 digits)."""
    return classification_report(
        labels, predictions, labels=list(range(len(label_names))), target_names=label_names, digits=4, zero_division=0
    )
