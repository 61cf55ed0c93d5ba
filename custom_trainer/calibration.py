"""Calibrated confidence and abstention: temperature scaling and the auto-route rule.

Both are fitted on the validation split at the end of training and stored in the exported config
(``calibration_temperature``; ``routing_score`` and ``auto_route_thresholds``, a threshold per label certified by
custom_trainer/risk_control.py), so `pipeline` scores are calibrated too. The rule itself, the one place that
decides auto-route or triage, is `ticket_router.rule.RoutingRule`.
"""

from __future__ import annotations

import numpy as np
import torch

from ticket_router.rule import RoutingRule, auto_routed, routed_stats, softmax

from .risk_control import certify_routing, coverage_with_more_calibration

__all__ = ["RoutingRule", "auto_routed", "routed_stats", "softmax"]  # the rule lives in ticket_router/rule.py


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


def routing_stats(
    confidence: np.ndarray, correct: np.ndarray, threshold: float, predicted=None, triage_ids=()
) -> dict[str, float]:
    routed = auto_routed(confidence, predicted if predicted is not None else np.zeros(len(confidence)), threshold,
                         triage_ids if predicted is not None else ())
    return routed_stats(correct, routed)


def coverage_curve(confidence: np.ndarray, correct: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Coverage and accuracy among the auto-routed tickets, for every threshold."""
    order = np.argsort(-confidence, kind="stable")
    counts = np.arange(1, len(order) + 1)
    return counts / len(order), np.cumsum(correct[order]) / counts


def routing_profile(probabilities: np.ndarray, labels: np.ndarray, rule: RoutingRule, label_names, bins: int = 20) -> dict:
    """What routing looked like on the calibration (validation) tickets, for `ticket-classifier monitor`."""
    predicted, scores, routed = rule.decide(probabilities)
    stats = routed_stats(predicted == np.asarray(labels), routed)
    return {
        "tickets": len(predicted),
        "coverage": stats["coverage"],
        "misrouting": stats["misrouting"],
        "score_histogram": np.histogram(scores, bins=bins, range=(0.0, 1.0))[0].tolist(),
        "predicted_mix": {name: float((predicted == i).mean()) for i, name in enumerate(label_names)},
    }


def fit_rules(probabilities: np.ndarray, labels: np.ndarray, max_misrouting: float, delta: float, triage_ids=()):
    """(previous rule, certified rule, the certified policy) fitted on calibrated validation probabilities.

    The previous rule: the lowest top-probability threshold whose misrouting on these tickets is <= the target
    (no guarantee). The certified rule: custom_trainer/risk_control.py; triage labels never auto-routed in both."""
    probabilities, labels = np.asarray(probabilities), np.asarray(labels)
    num_labels = probabilities.shape[-1]
    predicted = probabilities.argmax(-1)
    eligible = ~np.isin(predicted, list(triage_ids))
    naive = choose_threshold(probabilities.max(-1)[eligible], (predicted == labels)[eligible], max_misrouting)
    previous = RoutingRule(tuple([naive] * num_labels), "probability", tuple(triage_ids))
    policy = certify_routing(probabilities, labels, max_misrouting, delta, triage_ids)
    thresholds = policy.thresholds_for(np.arange(num_labels))
    never = set(int(i) for i in triage_ids)
    certified = RoutingRule(tuple(None if np.isinf(t) or i in never else float(t) for i, t in enumerate(thresholds)),
                            policy.score, tuple(triage_ids))
    return previous, certified, policy


def fit_routing(val_logits, val_labels, test_logits, test_labels, max_misrouting: float, triage_ids=(),
                delta: float = 0.05, label_names=None) -> dict:
    """Fit temperature and the certified routing rule on validation; report both splits.

    The rule (custom_trainer/risk_control.py) misroutes at most ``max_misrouting`` of the tickets it auto-routes
    with probability >= 1 - ``delta`` over the validation draw. The previous rule (the lowest threshold whose
    validation misrouting is <= the target, no guarantee) is reported beside it. Tickets predicted as a
    ``triage_ids`` label are never auto-routed.
    """
    val_labels, test_labels = np.asarray(val_labels), np.asarray(test_labels)
    num_labels = np.asarray(val_logits).shape[-1]
    label_names = list(label_names) if label_names is not None else [str(i) for i in range(num_labels)]
    temperature = fit_temperature(val_logits, val_labels)
    report = {"temperature": temperature, "max_misrouting": max_misrouting, "delta": delta}
    calibrated = {}
    for split, logits, labels in (("validation", val_logits, val_labels), ("test", test_logits, test_labels)):
        probabilities = softmax(logits / temperature)
        calibrated[split] = probabilities
        report[split] = {
            "ece_before": expected_calibration_error(softmax(logits), labels),
            "ece_after": expected_calibration_error(probabilities, labels),
        }
    val_probabilities = calibrated["validation"]
    naive_rule, rule, policy = fit_rules(val_probabilities, val_labels, max_misrouting, delta, triage_ids)
    naive = naive_rule.label_thresholds[0]
    report["rule"] = {
        "score": rule.score,
        "per_label": policy.label_thresholds is not None,
        "thresholds": {name: rule.label_thresholds[i] for i, name in enumerate(label_names)},
        "description": rule.describe(),
        "candidates": policy.details["candidates"],
    }
    report["guarantee"] = {
        "max_misrouting": max_misrouting, "delta": delta, "calibration_size": int(len(val_labels)),
        "method": "Learn-then-Test: exact binomial p-values, fixed-sequence testing from several start points, "
                  "Bonferroni over sequences (custom_trainer/risk_control.py)",
        "coverage_with_more_calibration": {
            f"{factor}x": value for factor, value in coverage_with_more_calibration(
                val_probabilities, val_labels, policy, max_misrouting, delta, triage_ids=triage_ids).items()},
    }
    # The scalar the earlier exports stored; kept for readers that show one number (None: per label).
    report["threshold"] = policy.threshold
    report["triage_labels"] = sorted(int(i) for i in triage_ids)
    for split, labels in (("validation", val_labels), ("test", test_labels)):
        report[split].update(rule.stats(calibrated[split], labels))
        report[split]["previous_rule"] = {"threshold": naive, **naive_rule.stats(calibrated[split], labels)}
    report["profile"] = routing_profile(val_probabilities, val_labels, rule, label_names)
    return report
