"""Calibrated confidence and abstention: temperature scaling and the auto-route rule.

The temperature is fitted on the validation split (which also chose the checkpoint); the auto-route rule is certified
on the calibration split, which chose nothing (ticket_router/certification.py), with its test sequence pre-registered
on validation. Both are stored in the exported config (``calibration_temperature``; ``routing_score`` and
``auto_route_thresholds``), so `pipeline` scores are calibrated too. The rule itself, the one place that decides
auto-route or triage, is `ticket_router.rule.RoutingRule`.
"""

from __future__ import annotations

import numpy as np
import torch

from ticket_router.certification import certified_routing, routing_profile, single_threshold
from ticket_router.rule import RoutingRule, softmax


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


def coverage_curve(confidence: np.ndarray, correct: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Coverage and accuracy among the auto-routed tickets, for every threshold."""
    order = np.argsort(-confidence, kind="stable")
    counts = np.arange(1, len(order) + 1)
    return counts / len(order), np.cumsum(correct[order]) / counts


def previous_rule(probabilities: np.ndarray, labels: np.ndarray, max_misrouting: float, triage_ids=()) -> RoutingRule:
    """The rule of the first exports, reported beside the certified one: the lowest top-probability threshold whose
    misrouting on these (validation) tickets is <= the target. No guarantee."""
    probabilities, labels = np.asarray(probabilities), np.asarray(labels)
    predicted = probabilities.argmax(-1)
    eligible = ~np.isin(predicted, list(triage_ids))
    naive = choose_threshold(probabilities.max(-1)[eligible], (predicted == labels)[eligible], max_misrouting)
    never = {int(i) for i in triage_ids}
    return RoutingRule(tuple(None if i in never else naive for i in range(probabilities.shape[-1])), "probability",
                       tuple(sorted(never)))


def fit_routing(val_logits, val_labels, cal_logits, cal_labels, test_logits, test_labels, max_misrouting: float,
                triage_ids=(), delta: float = 0.05, label_names=None, queue_targets=None,
                certified_on: str = "the calibration split") -> dict:
    """Fit the temperature on validation and certify the routing rule on the calibration tickets; report every split.

    The rule (ticket_router/certification.py) misroutes at most ``max_misrouting`` of the tickets it auto-routes (and
    each queue of ``queue_targets`` at most its own target) with probability >= 1 - ``delta`` over the draw of the
    calibration tickets. ``cal_logits`` None (no calibration split): nothing is auto-routed. The previous rule (the
    lowest threshold whose validation misrouting is <= the target, no guarantee) is reported beside it. Tickets
    predicted as a ``triage_ids`` label are never auto-routed.
    """
    val_labels, test_labels = np.asarray(val_labels), np.asarray(test_labels)
    num_labels = np.asarray(val_logits).shape[-1]
    label_names = list(label_names) if label_names is not None else [str(i) for i in range(num_labels)]
    temperature = fit_temperature(val_logits, val_labels)
    report = {"temperature": temperature, "max_misrouting": max_misrouting, "delta": delta}
    splits = [("validation", val_logits, val_labels), ("test", test_logits, test_labels)]
    if cal_logits is not None:
        splits.insert(1, ("calibration", cal_logits, np.asarray(cal_labels)))
    calibrated = {}
    for split, logits, labels in splits:
        probabilities = softmax(np.asarray(logits) / temperature)
        calibrated[split] = (probabilities, labels)
        report[split] = {
            "ece_before": expected_calibration_error(softmax(np.asarray(logits)), labels),
            "ece_after": expected_calibration_error(probabilities, labels),
        }
    cal = calibrated.get("calibration", (None, np.zeros(0)))
    rule, guarantee = certified_routing(*calibrated["validation"], *cal, label_names, max_misrouting, delta, triage_ids,
                                        queue_targets, certified_on)
    naive_rule = previous_rule(*calibrated["validation"], max_misrouting, triage_ids)
    report["rule"] = {"score": rule.score, "thresholds": dict(zip(label_names, rule.label_thresholds)),
                      "description": rule.describe()}
    report["guarantee"] = guarantee
    report["threshold"] = single_threshold(rule)
    report["triage_labels"] = sorted(int(i) for i in triage_ids)
    for split, (probabilities, labels) in calibrated.items():
        report[split].update(rule.stats(probabilities, labels))
        report[split]["previous_rule"] = {"threshold": next((t for t in naive_rule.label_thresholds if t is not None),
                                                            None), **naive_rule.stats(probabilities, labels)}
    # What routing looked like on tickets drawn like live ones, for `ticket-classifier monitor`.
    profile_split = "calibration" if "calibration" in calibrated else "validation"
    report["profile"] = routing_profile(*calibrated[profile_split], rule, label_names)
    report["profile"]["split"] = profile_split
    return report
