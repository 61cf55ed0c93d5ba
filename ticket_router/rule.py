"""The routing rule: calibrated probabilities in, (predicted label, routing score, auto-route or triage) out.

The one place that decides auto-route or triage, for the CLI, the service, the monitor, the training reports and
the benchmarks. Certified at the end of training (custom_trainer/confidence.py, ticket_router/certification.py) and
stored in the exported ``config.json``: ``routing_score``, ``auto_route_thresholds`` (one per label, or null for a
label never auto-routed) and ``triage_labels`` (keys in ticket_router/contract.py). numpy only, so the slim install
(no torch) routes with it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from .contract import (LEGACY_THRESHOLD_KEY, ROUTING_SCORE_KEY, ROUTING_SCORES, THRESHOLDS_KEY, TRIAGE_LABELS_KEY,
                       routed_stats)

__all__ = ["ROUTING_SCORES", "RoutingRule", "auto_routed", "label_names", "routed_stats", "routing_scores", "softmax",
           "top_k"]


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)


def routing_scores(probabilities: np.ndarray, score: str = "probability") -> np.ndarray:
    """The confidence the threshold applies to: the top probability, or its margin over the second."""
    probabilities = np.asarray(probabilities)
    if score == "probability":
        return probabilities.max(axis=-1)
    if score == "margin":
        if probabilities.shape[-1] < 2:
            return probabilities.max(axis=-1)
        top_two = np.partition(probabilities, -2, axis=-1)[..., -2:]
        return top_two[..., 1] - top_two[..., 0]
    raise ValueError(f"routing score must be one of {ROUTING_SCORES}, got {score!r}")


def auto_routed(confidence: np.ndarray, predicted: np.ndarray, threshold, triage_ids=()) -> np.ndarray:
    """A ticket is auto-routed when its confidence score reaches its threshold and its predicted label is not one
    that always goes to a person (``triage_ids``: the merged rare-label bucket and the labels configured in
    ``never_auto_route``). ``threshold``: one number (0 routes every ticket) or one per ticket (inf: never). A
    missing threshold is never read as "route everything": None is refused here, and means "never" in a config."""
    if threshold is None:
        raise ValueError("auto_routed: threshold is None; give a number (0 routes every ticket) or one per ticket")
    confidence = np.asarray(confidence)
    routed = confidence >= np.asarray(threshold, dtype=float)
    if len(triage_ids):
        routed &= ~np.isin(np.asarray(predicted), list(triage_ids))
    return routed


def _field(config, key: str, default=None):
    """A field of a config object (transformers' PretrainedConfig) or of config.json read as a dict."""
    if isinstance(config, Mapping):
        return config.get(key, default)
    return getattr(config, key, default)


def _threshold(value) -> float | None:
    """A stored threshold, or None (never auto-routed) when it is missing or unreadable."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        return None
    return float(value)


def label_names(config) -> list[str]:
    """Label names in id order, from a config object or config.json (whose id2label keys are strings)."""
    id2label = _field(config, "id2label")
    if not id2label:
        raise ValueError("config: no id2label; not a classifier export")
    try:
        return [str(id2label[i] if i in id2label else id2label[str(i)]) for i in range(len(id2label))]
    except KeyError as error:
        raise ValueError(f"config: id2label {dict(id2label)} does not number its labels 0..{len(id2label) - 1} "
                         f"(missing {error})") from None


@dataclass(frozen=True)
class RoutingRule:
    """Auto-route a ticket when its score (``score``: the top calibrated probability or its margin over the
    runner-up) reaches the threshold of its predicted label; ``None`` thresholds and ``triage_ids`` never route."""

    label_thresholds: tuple  # one per label id: a number, or None (never auto-routed)
    score: str = "probability"
    triage_ids: tuple = ()

    def __post_init__(self):
        if self.score not in ROUTING_SCORES:
            raise ValueError(f"routing_score must be one of {ROUTING_SCORES}, got {self.score!r}")

    @classmethod
    def from_config(cls, config) -> "RoutingRule":
        """The rule an export stores. It fails closed: a label whose threshold is missing, null or not a number in
        [0, 1] is never auto-routed, and so is every label of a config without thresholds; the triage labels are
        read by name (``triage_labels``; ``triage_ids`` too where a config carries them)."""
        labels = label_names(config)
        per_label = _field(config, THRESHOLDS_KEY)
        if isinstance(per_label, Mapping):
            thresholds = tuple(_threshold(per_label.get(label)) for label in labels)
        else:  # exports before per-label thresholds: one threshold on the top probability (none: nothing routed)
            thresholds = tuple([_threshold(_field(config, LEGACY_THRESHOLD_KEY))] * len(labels))
        triage = {labels.index(name) for name in _field(config, TRIAGE_LABELS_KEY, None) or [] if name in labels}
        triage |= {int(i) for i in _field(config, "triage_ids", None) or []
                   if isinstance(i, int) and 0 <= i < len(labels)}
        score = _field(config, ROUTING_SCORE_KEY, "probability") or "probability"
        return cls(thresholds, score, tuple(sorted(triage)))

    def thresholds(self, predicted: np.ndarray) -> np.ndarray:
        table = np.array([np.inf if t is None else t for t in self.label_thresholds], dtype=float)
        return table[np.asarray(predicted, dtype=int)]

    def decide(self, probabilities: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(predicted label ids, routing scores, auto-routed mask) for rows of calibrated probabilities."""
        probabilities = np.asarray(probabilities)
        predicted = probabilities.argmax(axis=-1)
        scores = routing_scores(probabilities, self.score)
        return predicted, scores, auto_routed(scores, predicted, self.thresholds(predicted), self.triage_ids)

    def stats(self, probabilities: np.ndarray, labels: np.ndarray) -> dict:
        """`routed_stats` of this rule on calibrated probabilities with known labels."""
        predicted, _, routed = self.decide(probabilities)
        return routed_stats(predicted == np.asarray(labels), routed)

    def describe(self) -> str:
        values = {t for t in self.label_thresholds if t is not None}
        if not values:
            return f"nothing auto-routed ({self.score})"
        if len(values) == 1 and None not in self.label_thresholds:
            return f"{self.score} >= {values.pop():.4f}"
        return f"{self.score} >= a threshold per label ({min(values):.4f} to {max(values):.4f})"


def top_k(probabilities: np.ndarray, names: list[str], k: int = 3) -> list[list[tuple[str, float]]]:
    """The ``k`` most probable labels of each row, with their probabilities, best first."""
    order = np.argsort(-probabilities, axis=-1, kind="stable")[:, :k]
    return [[(names[i], float(row[i])) for i in indices] for row, indices in zip(probabilities, order)]
