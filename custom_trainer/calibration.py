"""Calibrated confidence and abstention: temperature scaling and the auto-route threshold.

Both are fitted on the validation split at the end of training and stored in the exported config
(``calibration_temperature``, ``auto_route_threshold``), so `pipeline` scores are calibrated too.
"""

from __future__ import annotations

import numpy as np
import torch


def fit_temperature(logits: np.ndarray, labels: np.ndarray, max_iter: int = 200) -> float:
    """The temperature T > 0 that minimises the negative log-likelihood of softmax(logits / T)."""
    logits_t = torch.as_tensor(np.asarray(logits), dtype=torch.float64)
    labels_t = torch.as_tensor(np.asarray(labels), dtype=torch.long)
    log_t = torch.zeros(1, dtype=torch.float64, requires_grad=True)  # optimise log T: T stays positive
    optimizer = torch.optim.LBFGS([log_t], lr=0.1, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(logits_t / log_t.exp(), labels_t)
        loss.backward()
        return loss

    optimizer.step(closure)
    temperature = float(log_t.exp().item())
    # Perfectly separable validation data drives T towards 0 (ever sharper) without telling anything about
    # new tickets; keep T in a range where it only corrects the model's over- or under-confidence.
    return float(np.clip(temperature, 0.25, 20.0))


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)


def expected_calibration_error(probabilities: np.ndarray, labels: np.ndarray, bins: int = 15) -> float:
    """ECE: the gap between confidence and accuracy, averaged over equal-width confidence bins."""
    confidence = probabilities.max(axis=-1)
    correct = probabilities.argmax(axis=-1) == np.asarray(labels)
    edges = np.linspace(0.0, 1.0, bins + 1)
    error = 0.0
    for low, high in zip(edges[:-1], edges[1:]):
        in_bin = (confidence > low) & (confidence <= high)
        if in_bin.any():
            error += in_bin.mean() * abs(correct[in_bin].mean() - confidence[in_bin].mean())
    return float(error)


def choose_threshold(confidence: np.ndarray, correct: np.ndarray, max_misrouting: float) -> float:
    """The lowest confidence threshold whose auto-routed tickets (confidence >= threshold) are misrouted at
    most ``max_misrouting`` of the time: the largest coverage that meets the target on this data.

    Returns a threshold above every confidence (nothing auto-routed) when no threshold meets the target.
    """
    order = np.argsort(-confidence, kind="stable")
    sorted_confidence = confidence[order]
    errors = np.cumsum(~correct[order])
    counts = np.arange(1, len(order) + 1)
    rates = errors / counts
    # A threshold can only sit between distinct confidences: take the last index of each tie group.
    last_of_group = np.r_[sorted_confidence[1:] != sorted_confidence[:-1], True]
    feasible = np.nonzero((rates <= max_misrouting) & last_of_group)[0]
    if len(feasible) == 0:
        return float(np.nextafter(sorted_confidence[0], np.inf)) if len(order) else 1.0
    return float(sorted_confidence[feasible[-1]])


def auto_routed(confidence: np.ndarray, predicted: np.ndarray, threshold: float | None, triage_ids=()) -> np.ndarray:
    """The routing rule: a ticket is auto-routed when its calibrated confidence reaches the threshold and its
    predicted label is not one that always goes to a person (``triage_ids``: the merged rare-label bucket)."""
    confidence = np.asarray(confidence)
    routed = confidence >= (0.0 if threshold is None else threshold)
    if len(triage_ids):
        routed &= ~np.isin(np.asarray(predicted), list(triage_ids))
    return routed


def routing_stats(
    confidence: np.ndarray, correct: np.ndarray, threshold: float, predicted=None, triage_ids=()
) -> dict[str, float]:
    routed = auto_routed(confidence, predicted if predicted is not None else np.zeros(len(confidence)), threshold,
                         triage_ids if predicted is not None else ())
    return {
        "coverage": float(routed.mean()) if len(routed) else 0.0,
        "misrouting": float((~correct[routed]).mean()) if routed.any() else 0.0,
        "auto_routed": int(routed.sum()),
        "triaged": int((~routed).sum()),
    }


def coverage_curve(confidence: np.ndarray, correct: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Coverage and accuracy among the auto-routed tickets, for every threshold."""
    order = np.argsort(-confidence, kind="stable")
    counts = np.arange(1, len(order) + 1)
    return counts / len(order), np.cumsum(correct[order]) / counts


def fit_routing(val_logits, val_labels, test_logits, test_labels, max_misrouting: float, triage_ids=()) -> dict:
    """Fit temperature and threshold on validation; report both splits before and after calibration.

    Tickets predicted as a ``triage_ids`` label are never auto-routed, so the threshold is fitted on the others.
    """
    val_labels, test_labels = np.asarray(val_labels), np.asarray(test_labels)
    temperature = fit_temperature(val_logits, val_labels)
    report = {"temperature": temperature, "max_misrouting": max_misrouting}
    calibrated = {}
    for split, logits, labels in (("validation", val_logits, val_labels), ("test", test_logits, test_labels)):
        probabilities = softmax(logits / temperature)
        calibrated[split] = probabilities
        report[split] = {
            "ece_before": expected_calibration_error(softmax(logits), labels),
            "ece_after": expected_calibration_error(probabilities, labels),
        }
    val_confidence, val_predicted = calibrated["validation"].max(-1), calibrated["validation"].argmax(-1)
    eligible = ~np.isin(val_predicted, list(triage_ids))
    report["threshold"] = choose_threshold(val_confidence[eligible], (val_predicted == val_labels)[eligible], max_misrouting)
    report["triage_labels"] = sorted(int(i) for i in triage_ids)
    for split, labels in (("validation", val_labels), ("test", test_labels)):
        probabilities = calibrated[split]
        predicted = probabilities.argmax(-1)
        report[split].update(routing_stats(probabilities.max(-1), predicted == labels, report["threshold"],
                                           predicted, triage_ids))
    return report
