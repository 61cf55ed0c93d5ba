"""The guarantee of benchmarks/risk_control.py, checked on simulated scores whose error rates are known."""

import numpy as np
import pytest

from custom_trainer.confidence import choose_threshold
from benchmarks.risk_control import (
    CertifiedPolicy, binomial_p_values, certify_routing, routing_scores,
)
from ticket_router.rule import auto_routed

LOW = 1 / 3  # top probabilities lie in (1/3, 1) over 3 labels: s = 1 - (2/3) u^2, u uniform, most of them near 1
ERROR_SCALE = np.array([0.3, 0.6, 1.2])  # P(wrong | top probability s, predicted c) = ERROR_SCALE[c] * (1 - s)


def simulate(n, rng, scale=ERROR_SCALE):
    """Calibration tickets with known error rates: the predicted label uniform, its probability s = 1 - (2/3) u^2,
    the other two sharing 1 - s, and the ticket misrouted with probability scale[c] * (1 - s)."""
    predicted = rng.integers(0, 3, n)
    top = 1 - (1 - LOW) * rng.uniform(0, 1, n) ** 2
    probabilities = np.repeat(((1 - top) / 2)[:, None], 3, axis=1)
    probabilities[np.arange(n), predicted] = top
    wrong = rng.random(n) < scale[predicted] * (1 - top)
    labels = np.where(wrong, (predicted + 1 + rng.integers(0, 2, n)) % 3, predicted)
    return probabilities, labels


def top_threshold(policy: CertifiedPolicy, c: int) -> float:
    """The threshold on the top probability that the policy's threshold for label c amounts to."""
    t = policy.threshold if policy.label_thresholds is None else policy.label_thresholds[c]
    if t is None:
        return np.inf
    return t if policy.score == "probability" else (2 * t + 1) / 3  # margin = s - (1 - s) / 2


def true_misrouting(policy: CertifiedPolicy, scale=ERROR_SCALE) -> float:
    """R = sum_c P(c routed) * E[wrong | c routed] / P(routed), with P(s >= lam) = (1.5 (1 - lam))^(1/2) and
    E[1 - s | s >= lam] = (1 - lam) / 3 for s = 1 - (2/3) u^2."""
    routed_mass = error_mass = 0.0
    for c in range(3):
        lam = max(top_threshold(policy, c), LOW)
        if lam >= 1:
            continue
        mass = np.sqrt((1 - lam) / (1 - LOW))
        routed_mass += mass
        error_mass += mass * scale[c] * (1 - lam) / 3
    return error_mass / routed_mass if routed_mass else 0.0


def test_guarantee_holds_in_at_least_1_minus_delta_of_draws():
    rng = np.random.default_rng(0)
    alpha, delta, repetitions = 0.03, 0.05, 300
    broken_certified = broken_naive = 0
    coverages = []
    for _ in range(repetitions):
        probabilities, labels = simulate(3000, rng)
        policy = certify_routing(probabilities, labels, alpha, delta)
        broken_certified += true_misrouting(policy) > alpha
        coverages.append(policy.coverage)
        # Today's rule for comparison: the lowest threshold whose calibration misrouting is <= alpha.
        predicted = probabilities.argmax(-1)
        naive = choose_threshold(probabilities.max(-1), predicted == labels, alpha)
        broken_naive += true_misrouting(CertifiedPolicy("probability", naive)) > alpha
    # delta + 3 standard errors of a frequency over the repetitions.
    assert broken_certified / repetitions <= delta + 3 * np.sqrt(delta * (1 - delta) / repetitions)
    assert broken_naive / repetitions > 0.3  # the simulation can break a rule: the naive one breaks it often
    assert np.mean(coverages) > 0.05  # and the certified rule still routes something


def test_per_label_thresholds_route_more_where_labels_differ():
    rng = np.random.default_rng(1)
    scale = np.array([0.02, 0.5, 1.5])  # one label almost never wrong, one often
    probabilities, labels = simulate(20_000, rng, scale)
    single = certify_routing(probabilities, labels, 0.03, 0.05, scores=("probability",), per_label=False)
    both = certify_routing(probabilities, labels, 0.03, 0.05, scores=("probability",), per_label=True)
    assert both.label_thresholds is not None and both.coverage > single.coverage
    # the label with the fewest errors gets the lowest threshold
    assert both.label_thresholds[0] < both.label_thresholds[1] < both.label_thresholds[2]
    assert true_misrouting(both, scale) <= 0.03


def test_triage_labels_are_never_routed_and_margin_score():
    probabilities = np.array([[0.7, 0.2, 0.1], [0.5, 0.45, 0.05]])
    np.testing.assert_allclose(routing_scores(probabilities, "margin"), [0.5, 0.05])
    np.testing.assert_allclose(routing_scores(probabilities, "probability"), [0.7, 0.5])
    with pytest.raises(ValueError, match="got 'entropy'"):
        routing_scores(probabilities, "entropy")
    rng = np.random.default_rng(2)
    probabilities, labels = simulate(5000, rng)
    policy = certify_routing(probabilities, labels, 0.05, 0.05, triage_ids=[2])
    predicted = probabilities.argmax(-1)
    routed = auto_routed(routing_scores(probabilities, policy.score), predicted, policy.thresholds_for(predicted), [2])
    assert routed.any() and not routed[predicted == 2].any()
    assert routed.mean() == pytest.approx(policy.coverage)


def test_nothing_certified_when_calibration_is_too_small():
    # 0 errors in n routed tickets rejects misrouting > 3% at level l only when 0.97^n <= l: 60 tickets never do.
    probabilities = np.tile([[0.995, 0.005]], (60, 1))
    policy = certify_routing(probabilities, np.zeros(60, dtype=int), 0.03, 0.05)
    assert policy.coverage == 0.0


def test_binomial_p_value():
    assert binomial_p_values(np.array([0]), np.array([0]), 0.03)[0] == 1.0
    assert binomial_p_values(np.array([0]), np.array([100]), 0.03)[0] == pytest.approx(0.97 ** 100)
    with pytest.raises(ValueError, match="delta must be in"):
        certify_routing(np.eye(2), np.arange(2), 0.03, delta=1.5)
