import numpy as np
import pytest

from custom_trainer.confidence import (
    choose_threshold,
    coverage_curve,
    expected_calibration_error,
    fit_temperature,
    softmax,
)
from ticket_router.rule import auto_routed, routed_stats


def overconfident_logits(n=4000, classes=5, seed=0):
    """Logits drawn from a calibrated model at temperature 1, then sharpened 3x: the fit should find T ~ 3."""
    rng = np.random.default_rng(seed)
    true_logits = rng.normal(0, 1.5, size=(n, classes))
    probabilities = softmax(true_logits)
    labels = np.array([rng.choice(classes, p=p) for p in probabilities])
    return true_logits * 3.0, labels


def test_temperature_recovers_the_sharpening_and_lowers_ece():
    logits, labels = overconfident_logits()
    temperature = fit_temperature(logits, labels)
    assert temperature == pytest.approx(3.0, rel=0.15)
    before = expected_calibration_error(softmax(logits), labels)
    after = expected_calibration_error(softmax(logits / temperature), labels)
    assert after < before / 3
    assert after < 0.03


def test_temperature_keeps_predictions():
    logits, labels = overconfident_logits(n=500)
    temperature = fit_temperature(logits, labels)
    assert (softmax(logits / temperature).argmax(-1) == logits.argmax(-1)).all()


def test_ece_of_a_perfectly_calibrated_bin_is_zero():
    probabilities = np.array([[0.75, 0.25]] * 4)
    labels = np.array([0, 0, 0, 1])
    assert expected_calibration_error(probabilities, labels) == pytest.approx(0.0)


def test_threshold_meets_the_target_with_the_largest_coverage():
    confidence = np.array([0.99, 0.95, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4])
    correct = np.array([True, True, True, True, False, True, False, False])
    threshold = choose_threshold(confidence, correct, max_misrouting=0.2)
    assert threshold == 0.6  # 6 routed, 1 wrong = 16.7% <= 20%; adding 0.5 gives 28.6%
    stats = routed_stats(correct, confidence >= threshold)
    assert stats["coverage"] == 0.75 and stats["misrouting"] == pytest.approx(1 / 6)
    assert choose_threshold(confidence, correct, 0.0) == 0.8


def test_threshold_never_splits_ties():
    confidence = np.array([0.9, 0.9, 0.9, 0.5])
    correct = np.array([True, False, True, True])
    threshold = choose_threshold(confidence, correct, max_misrouting=0.4)
    routed = confidence >= threshold
    assert (~correct[routed]).mean() <= 0.4


def test_no_feasible_threshold_routes_nothing():
    confidence = np.array([0.9, 0.8])
    correct = np.array([False, False])
    threshold = choose_threshold(confidence, correct, 0.03)
    assert routed_stats(correct, confidence >= threshold)["coverage"] == 0.0


def test_coverage_curve():
    coverage, accuracy = coverage_curve(np.array([0.9, 0.8, 0.7]), np.array([True, False, True]))
    assert coverage.tolist() == pytest.approx([1 / 3, 2 / 3, 1.0])
    assert accuracy.tolist() == pytest.approx([1.0, 0.5, 2 / 3])


def test_triage_labels_are_never_auto_routed():
    from custom_trainer.confidence import fit_routing

    confidence = np.array([0.99, 0.99, 0.2, 0.99])
    predicted = np.array([0, 3, 0, 1])
    assert auto_routed(confidence, predicted, 0.5).tolist() == [True, True, False, True]
    assert auto_routed(confidence, predicted, 0.5, triage_ids=[3]).tolist() == [True, False, False, True]
    assert auto_routed(confidence, predicted, 0.0, triage_ids=[0]).tolist() == [False, True, False, True]
    with pytest.raises(ValueError, match="threshold is None"):  # None never means "route everything"
        auto_routed(confidence, predicted, None)

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, 400)
    logits = rng.normal(size=(400, 4)) + 4 * np.eye(4)[labels]
    logits[:50] = 8 * np.eye(4)[3]  # sure predictions of the bucket (label 3)
    routing = fit_routing(logits, labels, logits, labels, logits, labels, 0.03, triage_ids=[3])
    predicted_bucket = softmax(logits / routing["temperature"]).argmax(-1) == 3
    assert routing["triage_labels"] == [3] and routing["rule"]["thresholds"]["3"] is None
    assert 0 < routing["test"]["auto_routed"] <= int((~predicted_bucket).sum())


def test_fit_routing_certifies_on_calibration_and_reports_the_guarantee_and_the_previous_rule():
    from custom_trainer.confidence import RoutingRule, fit_routing

    rng = np.random.default_rng(1)

    def draw(n):
        labels = rng.integers(0, 4, n)
        return rng.normal(size=(n, 4)) + 5 * np.eye(4)[labels], labels

    (val, val_y), (cal, cal_y), (test, test_y) = draw(2000), draw(3000), draw(2000)
    names = ["Email", "Network", "Printing", "Security"]
    routing = fit_routing(val, val_y, cal, cal_y, test, test_y, 0.03, triage_ids=[3], delta=0.05, label_names=names)
    guarantee = routing["guarantee"]
    assert guarantee["calibration_size"] == 3000 and guarantee["delta"] == 0.05
    assert guarantee["certified_on"] == "the calibration split"
    assert routing["rule"]["thresholds"]["Security"] is None  # a triage label is never auto-routed
    assert routing["calibration"]["coverage"] > 0.3 and routing["test"]["coverage"] > 0.3
    assert routing["calibration"]["misrouting"] <= 0.03 and routing["test"]["misrouting"] <= 0.03
    previous = routing["validation"]["previous_rule"]
    assert previous["misrouting"] <= 0.03 and previous["coverage"] >= routing["validation"]["coverage"]

    class Config:  # what an export carries
        id2label = dict(enumerate(names))
        num_labels = 4
        routing_score = routing["rule"]["score"]
        auto_route_thresholds = routing["rule"]["thresholds"]
        triage_labels = ["Security"]

    rule = RoutingRule.from_config(Config)
    _, _, routed = rule.decide(softmax(cal / routing["temperature"]))
    assert routed.mean() == pytest.approx(routing["calibration"]["coverage"])
    assert routing["profile"]["coverage"] == pytest.approx(routing["calibration"]["coverage"])
