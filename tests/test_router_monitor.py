"""The monitor's checks on synthetic live tickets: no drift, a label-mix shift, a queue the model does not know."""

import json

import numpy as np
import pytest

from ticket_router.certification import routing_profile
from ticket_router.rule import RoutingRule
from ticket_router.monitor import MonitorThresholds, clopper_pearson, compare_to_profile

LABELS = ["Email", "Network", "Printing", "Security"]
GUARANTEE = {"max_misrouting": 0.03, "delta": 0.05, "calibration_size": 2000}
RULE = RoutingRule((0.9, 0.9, 0.9, 0.9), "probability", ())


def tickets(n, mix, rng, error=0.01):
    """Probabilities from a model that is sure of 70% of tickets (top 0.97) and unsure of the rest (top 0.6);
    the sure ones are wrong `error` of the time."""
    true = rng.choice(len(LABELS), n, p=mix)
    sure = rng.random(n) < 0.7
    predicted = true.copy()
    flip = sure & (rng.random(n) < error) | ~sure & (rng.random(n) < 0.3)
    predicted[flip] = (true[flip] + 1) % len(LABELS)
    top = np.where(sure, 0.97, 0.6)
    probabilities = np.repeat(((1 - top) / 3)[:, None], len(LABELS), axis=1)
    probabilities[np.arange(n), predicted] = top
    return probabilities, true


@pytest.fixture(scope="module")
def profile():
    probabilities, true = tickets(2000, [0.25] * 4, np.random.default_rng(0))
    return routing_profile(probabilities, true, RULE, LABELS)


def check(probabilities, true_names, profile):
    predicted, scores, routed = RULE.decide(probabilities)
    return compare_to_profile(predicted, scores, routed, profile, GUARANTEE, LABELS, true_names, MonitorThresholds())


def test_no_drift_raises_no_alert(profile):
    probabilities, true = tickets(1000, [0.25] * 4, np.random.default_rng(1))
    report = check(probabilities, [LABELS[t] for t in true], profile)
    assert report["ok"], report["alerts"]
    assert report["coverage"]["live"] == pytest.approx(0.7, abs=0.05)
    assert not report["misrouting"]["broken"] and report["new_queues"] == {}
    json.dumps(report)  # the CLI writes it as JSON


def test_label_mix_shift_is_flagged(profile):
    probabilities, true = tickets(1000, [0.7, 0.1, 0.1, 0.1], np.random.default_rng(2))
    report = check(probabilities, None, profile)
    assert report["label_mix"]["drift"] and not report["ok"]
    assert any("predicted-label mix moved" in alert and "Email +" in alert for alert in report["alerts"])


def test_small_files_are_not_flagged_for_noise(profile):
    probabilities, true = tickets(30, [0.25] * 4, np.random.default_rng(3))
    report = check(probabilities, [LABELS[t] for t in true], profile)
    assert not report["label_mix"]["drift"] and not report["coverage"]["drift"]


def test_a_new_queue_breaks_the_guarantee_and_is_named(profile):
    rng = np.random.default_rng(4)
    probabilities, true = tickets(1000, [0.25] * 4, rng)
    names = [LABELS[t] for t in true]
    # A reorganisation: a fifth of the tickets now belong to a queue the model has never seen; the model routes
    # them confidently to the old queues.
    for i in rng.choice(1000, 200, replace=False):
        names[i] = "Cloud Platform"
    report = check(probabilities, names, profile)
    assert report["misrouting"]["broken"] and not report["ok"]
    assert report["new_queues"]["Cloud Platform"]["tickets"] == 200
    assert any("Cloud Platform (200 tickets" in alert for alert in report["alerts"])


def test_coverage_drift_when_the_model_grows_unsure(profile):
    probabilities, true = tickets(1000, [0.25] * 4, np.random.default_rng(5))
    probabilities = 0.5 * probabilities + 0.5 / len(LABELS)  # everything less confident: nothing reaches 0.9
    report = check(probabilities, None, profile)
    assert report["coverage"]["drift"] and report["coverage"]["live"] == 0.0


def test_clopper_pearson():
    assert clopper_pearson(0, 0) == (0.0, 1.0)
    low, high = clopper_pearson(3, 100)
    assert 0.006 < low < 0.03 < high < 0.09
    with pytest.raises(ValueError, match="coverage_tolerance must be in"):
        MonitorThresholds(coverage_tolerance=2.0)


def test_the_promise_is_checked_family_by_family_as_it_was_certified():
    from ticket_router.monitor import promise_check

    rng = np.random.default_rng(4)
    predicted = rng.integers(0, 4, 4000)
    routed = np.ones(4000, dtype=bool)
    # Security (3) runs at 2.5%: fine for the pooled 3% default, broken for its own 1% target.
    wrong = rng.random(4000) < np.where(predicted == 3, 0.025, 0.01)
    guarantee = {**GUARANTEE, "queue_max_misrouting": {"Security": 0.01}}
    result = promise_check(wrong, routed, predicted, guarantee, LABELS)
    assert set(result["families"]) == {"default", "Security"}
    assert result["confidence_per_family"] == pytest.approx(0.975)
    assert result["families"]["Security"]["broken"] and not result["families"]["default"]["broken"]
    assert result["overall"]["broken"]
    # Without its own target Security is pooled with the rest: the pooled rate keeps the promise, nothing is broken,
    # and the per-queue rates are there for information only.
    result = promise_check(wrong, routed, predicted, GUARANTEE, LABELS)
    assert set(result["families"]) == {"default"} and not result["overall"]["broken"]
    assert all(queue["broken"] is None for queue in result["queues"].values())


def test_blank_final_labels_are_skipped_and_counted(profile):
    probabilities, true = tickets(400, [0.25] * 4, np.random.default_rng(6))
    names = [LABELS[t] for t in true]
    names[:3] = [None, "", float("nan")]
    report = check(probabilities, names, profile)
    assert report["misrouting"]["skipped_without_label"] == 3 and report["misrouting"]["labelled"] == 397
    assert report["new_queues"] == {}
