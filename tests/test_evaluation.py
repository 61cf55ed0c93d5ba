"""The metrics as local `evaluate` modules (offline, loaded by path) and the bootstrap intervals."""

import os

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score

from custom_trainer.evaluation import _macro_f1, bootstrap_intervals, load_metric
from ticket_router.rule import routed_stats


def test_the_suite_runs_offline():
    assert os.environ["HF_HUB_OFFLINE"] == "1" and os.environ["HF_EVALUATE_OFFLINE"] == "1"


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_classification_module_equals_scikit_learn(seed):
    rng = np.random.default_rng(seed)
    names = [f"queue {i}" for i in range(6)]
    labels = rng.integers(0, 5, 300)  # label 5 never occurs...
    predicted = np.where(rng.random(300) < 0.6, labels, rng.integers(0, 4, 300))  # ...and 4 and 5 are never predicted
    result = load_metric("ticket_classification").compute(predictions=predicted, references=labels, label_names=names)
    ids = list(range(6))
    assert result["accuracy"] == pytest.approx(accuracy_score(labels, predicted))
    assert result["macro_f1"] == pytest.approx(f1_score(labels, predicted, labels=ids, average="macro", zero_division=0))
    assert result["weighted_f1"] == pytest.approx(f1_score(labels, predicted, labels=ids, average="weighted", zero_division=0))
    per_label = f1_score(labels, predicted, labels=ids, average=None, zero_division=0)
    assert [result[f"f1_{name}"] for name in names] == pytest.approx(per_label.tolist())
    assert result["f1_queue 5"] == 0.0
    # Without names: the labels that occur, keyed by id.
    unnamed = load_metric("ticket_classification").compute(predictions=predicted, references=labels)
    assert set(k for k in unnamed if k.startswith("f1_")) == {f"f1_{i}" for i in range(5)}


def test_routing_module_equals_the_routing_rule():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 4, 200)
    predicted = np.where(rng.random(200) < 0.7, labels, rng.integers(0, 4, 200))
    scores = rng.random(200)
    result = load_metric("ticket_routing").compute(predictions=predicted, references=labels, scores=scores,
                                                   threshold=0.4, triage_ids=[2])
    expected = routed_stats(predicted == labels, (scores >= 0.4) & (predicted != 2))
    assert result == pytest.approx(expected)


def test_unknown_module_is_named():
    with pytest.raises(ValueError, match=r"unknown metric 'f1'; this package ships"):
        load_metric("f1")


def test_bootstrap_intervals_contain_the_point_values_and_shrink_with_data():
    rng = np.random.default_rng(4)
    widths = []
    for n in (150, 5000):
        labels = rng.integers(0, 5, n)
        predicted = np.where(rng.random(n) < 0.8, labels, rng.integers(0, 5, n))
        routed = rng.random(n) < 0.6
        intervals = bootstrap_intervals(labels, predicted, 5, routed, n_resamples=500, seed=0)
        point = load_metric("ticket_classification").compute(predictions=predicted, references=labels,
                                                             label_names=list("abcde"))
        assert intervals["accuracy"][0] <= point["accuracy"] <= intervals["accuracy"][1]
        assert intervals["macro_f1"][0] <= point["macro_f1"] <= intervals["macro_f1"][1]
        misrouting = (predicted != labels)[routed].mean()
        assert intervals["misrouting"][0] <= misrouting <= intervals["misrouting"][1]
        assert intervals["coverage"][0] <= routed.mean() <= intervals["coverage"][1]
        assert intervals["n_resamples"] == 500 and intervals["confidence"] == 0.95
        widths.append(intervals["macro_f1"][1] - intervals["macro_f1"][0])
    assert widths[1] < widths[0] / 3  # ~sqrt(33) narrower


def test_bootstrap_macro_f1_is_the_modules():
    rng = np.random.default_rng(5)
    labels, predicted = rng.integers(0, 4, 100), rng.integers(0, 3, 100)
    confusion = np.bincount(labels * 4 + predicted, minlength=16).reshape(4, 4)
    module = load_metric("ticket_classification").compute(predictions=predicted, references=labels,
                                                          label_names=list("abcd"))
    assert _macro_f1(confusion) == pytest.approx(module["macro_f1"])
