"""The routing rule (ticket_router/rule.py), read from config.json as the slim router reads it."""

import json

import numpy as np
import pytest

from ticket_router.rule import RoutingRule, label_names, routed_stats, routing_scores, top_k

PROBABILITIES = np.array([[0.90, 0.06, 0.04], [0.50, 0.45, 0.05], [0.10, 0.15, 0.75], [0.02, 0.03, 0.95]])


def config_json(**fields):
    """A config as json.loads gives it: id2label keys are strings."""
    return json.loads(json.dumps({"id2label": {"0": "Email", "1": "Network", "2": "Security"}, **fields}))


def test_per_label_thresholds_on_the_margin_and_triage_labels():
    rule = RoutingRule.from_config(config_json(routing_score="margin", triage_ids=[2],
                                               auto_route_thresholds={"Email": 0.5, "Network": 0.3, "Security": 0.1}))
    predicted, scores, routed = rule.decide(PROBABILITIES)
    assert predicted.tolist() == [0, 0, 2, 2]
    np.testing.assert_allclose(scores, [0.84, 0.05, 0.60, 0.92])
    assert routed.tolist() == [True, False, False, False]  # Security is a triage label whatever its score


def test_a_label_without_threshold_is_never_auto_routed():
    rule = RoutingRule.from_config(config_json(auto_route_thresholds={"Email": 0.4, "Network": 0.4, "Security": None}))
    assert rule.decide(PROBABILITIES)[2].tolist() == [True, True, False, False]
    assert "a threshold per label" in rule.describe()
    assert RoutingRule((None, None, None)).describe() == "nothing auto-routed (probability)"


def test_old_exports_keep_their_single_threshold():
    rule = RoutingRule.from_config(config_json(auto_route_threshold=0.8))
    assert rule.score == "probability" and rule.label_thresholds == (0.8, 0.8, 0.8)
    assert rule.decide(PROBABILITIES)[2].tolist() == [True, False, False, True]
    assert rule.describe() == "probability >= 0.8000"



def test_a_rule_fails_closed_when_thresholds_are_missing_or_unreadable():
    # No threshold at all (an export before the rule, a config edited by hand): nothing is auto-routed.
    assert not RoutingRule.from_config(config_json()).decide(PROBABILITIES)[2].any()
    assert not RoutingRule.from_config(config_json(auto_route_threshold=None)).decide(PROBABILITIES)[2].any()
    # Per label: a label missing from the table, or with a value that is not a threshold, never routes.
    rule = RoutingRule.from_config(config_json(auto_route_thresholds={"Email": 0.5, "Network": "0.1", "Security": 7}))
    assert rule.label_thresholds == (0.5, None, None)
    rule = RoutingRule.from_config(config_json(auto_route_thresholds={"Email": 0.5}))
    assert rule.label_thresholds == (0.5, None, None)
    assert not RoutingRule.from_config(config_json(auto_route_thresholds=[0.1, 0.1, 0.1])).decide(PROBABILITIES)[2].any()


def test_triage_labels_are_read_by_name_from_config_json():
    thresholds = {"Email": 0.0, "Network": 0.0, "Security": 0.0}
    rule = RoutingRule.from_config(config_json(auto_route_thresholds=thresholds, triage_labels=["Security"]))
    assert rule.triage_ids == (2,)
    predicted, _, routed = rule.decide(PROBABILITIES)
    assert routed[predicted == 2].sum() == 0 and routed[predicted != 2].all()


def test_config_objects_and_json_give_the_same_rule():
    class Config:
        id2label = {0: "Email", 1: "Network", 2: "Security"}
        auto_route_thresholds = {"Email": 0.5, "Network": 0.3, "Security": 0.1}
        routing_score = "margin"
        triage_ids = [2]

    as_json = config_json(routing_score="margin", triage_ids=[2], auto_route_thresholds=Config.auto_route_thresholds)
    assert RoutingRule.from_config(Config) == RoutingRule.from_config(as_json)


def test_bad_configs_are_named():
    with pytest.raises(ValueError, match="no id2label"):
        label_names({})
    with pytest.raises(ValueError, match="does not number its labels"):
        label_names({"id2label": {"0": "a", "5": "b"}})
    with pytest.raises(ValueError, match="routing_score must be one of"):
        RoutingRule((0.5,), score="entropy")
    with pytest.raises(ValueError, match="routing score must be one of"):
        routing_scores(PROBABILITIES, "entropy")


def test_stats_and_top_k():
    assert routed_stats([True, False, True], [True, True, False]) == {
        "coverage": pytest.approx(2 / 3), "misrouting": 0.5, "auto_routed": 2, "triaged": 1}
    assert routed_stats([], [])["coverage"] == 0.0
    assert top_k(PROBABILITIES[:1], ["Email", "Network", "Security"], k=2) == [[("Email", 0.9), ("Network", 0.06)]]
