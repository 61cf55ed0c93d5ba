"""Prediction sets (ticket_router/prediction_sets.py): coverage >= 1 - alpha over repeated calibration draws, also for
a model that is badly over-confident; too few calibration tickets give every queue; a stored q fails open."""

import numpy as np
import pytest

from ticket_router.prediction_sets import (calibrate_sets, conformal_quantile, conformity_scores, prediction_sets,
                                           set_stats, stored_quantile)


def draw(rng, n, queues=6, sharpen=1.0):
    """Tickets whose right queue is drawn from the model's own probabilities raised to 1 / sharpen: sharpen > 1
    makes the model over-confident (its probabilities are sharper than the truth)."""
    logits = rng.normal(0, 2.0, size=(n, queues))
    truth = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    labels = np.array([rng.choice(queues, p=p) for p in truth])
    model = np.exp(logits * sharpen) / np.exp(logits * sharpen).sum(1, keepdims=True)
    return model, labels


@pytest.mark.parametrize("alpha, sharpen", [(0.1, 1.0), (0.05, 1.0), (0.1, 3.0)])
def test_coverage_holds_over_repeated_calibration_draws(alpha, sharpen):
    rng = np.random.default_rng(0)
    coverages = []
    for _ in range(200):
        cal, cal_labels = draw(rng, 300, sharpen=sharpen)
        test, test_labels = draw(rng, 500, sharpen=sharpen)
        stored = calibrate_sets(cal, cal_labels, alpha)
        coverages.append(set_stats(prediction_sets(test, stored["quantile"]), test_labels)["coverage"])
    coverages = np.array(coverages)
    # Split conformal: E[coverage] is in [1 - alpha, 1 - alpha + 1 / (n + 1)] (Monte Carlo error ~0.001 here).
    assert 1 - alpha - 0.004 <= coverages.mean() <= 1 - alpha + 1 / 301 + 0.004, coverages.mean()
    # Per draw it scatters (Beta-distributed); a draw far below the target is rare.
    assert (coverages < 1 - alpha - 0.05).mean() < 0.05


def test_the_quantile_is_the_right_order_statistic_and_too_few_tickets_give_every_queue():
    scores = np.arange(1, 20) / 20  # 19 scores: rank ceil(20 * 0.9) = 18
    assert conformal_quantile(scores, 0.1) == pytest.approx(18 / 20)
    assert conformal_quantile(scores[:8], 0.1) == float("inf")  # rank ceil(9 * 0.9) = 9 > 8
    probabilities = np.array([[0.7, 0.2, 0.1], [0.34, 0.33, 0.33]])
    assert prediction_sets(probabilities, float("inf")).all()
    assert calibrate_sets(probabilities, np.array([0, 1]), 0.1)["quantile"] is None


def test_sets_hold_the_queues_above_one_minus_q_and_always_the_top_one():
    probabilities = np.array([[0.7, 0.2, 0.1], [0.5, 0.45, 0.05], [0.4, 0.35, 0.25]])
    members = prediction_sets(probabilities, 0.6)  # probability >= 0.4
    assert members.tolist() == [[True, False, False], [True, True, False], [True, False, False]]
    assert prediction_sets(probabilities, 0.0).sum(axis=1).tolist() == [1, 1, 1]  # never empty
    assert conformity_scores(probabilities, np.array([1, 1, 2])).tolist() == pytest.approx([0.8, 0.55, 0.75])


def test_a_missing_or_unreadable_stored_quantile_fails_open():
    assert stored_quantile({"quantile": 0.42}) == 0.42
    for settings in (None, {}, {"quantile": None}, {"quantile": "0.4"}, {"quantile": -1}, {"quantile": True}):
        assert stored_quantile(settings) == float("inf")
