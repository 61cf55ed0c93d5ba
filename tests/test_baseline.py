"""The TF-IDF + logistic-regression baseline every run is compared with."""

import pytest

from custom_trainer.baseline import ADVICE, BASELINE_NAME, baseline_metrics, compare_to_baseline, ticket_strings


def test_baseline_scores_validation_and_test(seed_dataset):
    names = seed_dataset["train"].features["label"].names
    result = baseline_metrics(seed_dataset, names)
    assert result["name"] == BASELINE_NAME and result["seconds"] >= 0
    for split in ("validation", "test"):
        assert {"accuracy", "macro_f1", "weighted_f1"} <= set(result[split])
        assert len([k for k in result[split] if k.startswith("f1_")]) == 12
    # Templated synthetic tickets are easy for a bag of words: the baseline is a real bar, not a formality.
    assert result["validation"]["accuracy"] > 0.9


def test_ticket_strings_join_subject_and_description():
    assert ticket_strings({"subject": ["vpn", ""], "description": ["drops", "only body"]}) == ["vpn drops", "only body"]


def test_below_the_baseline_is_named_per_metric():
    model = {"validation": {"accuracy": 0.70, "macro_f1": 0.50}}
    baseline = {"validation": {"accuracy": 0.72, "macro_f1": 0.40}}
    below = compare_to_baseline(model, baseline)
    assert below == [f"validation accuracy 0.7000 < 0.7200 ({BASELINE_NAME})"]
    assert compare_to_baseline({"validation": {"accuracy": 0.8, "macro_f1": 0.6}}, baseline) == []
    assert "head_learning_rate" in ADVICE and "class_weighting" in ADVICE
