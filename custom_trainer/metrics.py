"""Metrics from scikit-learn (``evaluate.load`` fetches metric code from the hub and fails offline)."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import accuracy_score, classification_report, f1_score


def classification_metrics(labels, predictions, label_names: list[str]) -> dict[str, float]:
    """accuracy, macro_f1, weighted_f1 and ``f1_<label>`` for every label."""
    ids = list(range(len(label_names)))
    per_class = f1_score(labels, predictions, labels=ids, average=None, zero_division=0)
    metrics = {
        "accuracy": float(accuracy_score(labels, predictions)),
        "macro_f1": float(f1_score(labels, predictions, labels=ids, average="macro", zero_division=0)),
        "weighted_f1": float(f1_score(labels, predictions, labels=ids, average="weighted", zero_division=0)),
    }
    metrics.update({f"f1_{name}": float(score) for name, score in zip(label_names, per_class)})
    return metrics


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
