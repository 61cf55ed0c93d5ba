"""`Router` (ticket_router/router.py): the training run's own predictions, from either backend, with its rule."""

import json

import numpy as np
import pandas as pd
import pytest

from ticket_router.router import Router


@pytest.fixture(scope="module")
def test_tickets(tiny_run):
    return pd.read_csv(tiny_run[0] / "reports" / "predictions.csv", keep_default_na=False)


@pytest.mark.parametrize("backend", ["torch", "onnx"])
def test_router_reproduces_the_training_reports(tiny_onnx, test_tickets, backend):
    router = Router(tiny_onnx, backend=backend)
    probabilities = router.predict_proba(test_tickets["subject"], test_tickets["description"], batch_size=7)
    assert probabilities.shape == (len(test_tickets), 12)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    assert [router.labels[i] for i in probabilities.argmax(-1)] == test_tickets["predicted"].tolist()
    np.testing.assert_allclose(probabilities.max(-1), test_tickets["score"], atol=1e-4)
    decisions = router.decisions(probabilities)
    assert [d["route"] for d in decisions] == test_tickets["route"].tolist()


def test_route_gives_label_scores_top3_and_route(tiny_onnx, tiny_run):
    router = Router(tiny_onnx)
    [decision] = router.route(["Printer paper jam"], ["Urgent: printer paper jam on floor 2"])
    assert decision["label"] == decision["top3"][0]["label"] and decision["score"] == decision["top3"][0]["score"]
    assert [t["score"] for t in decision["top3"]] == sorted((t["score"] for t in decision["top3"]), reverse=True)
    assert decision["route"] in ("auto", "triage") and 0 <= decision["routing_score"] <= 1
    config = json.loads((tiny_onnx / "config.json").read_text())
    assert router.rule.score == config["routing_score"] and router.max_length == config["max_input_length"]


def test_order_and_batch_size_do_not_change_the_scores(tiny_onnx, test_tickets):
    router = Router(tiny_onnx, backend="onnx")
    subjects, descriptions = test_tickets["subject"].tolist(), test_tickets["description"].tolist()
    whole = router.predict_proba(subjects, descriptions, batch_size=64)
    reversed_ = router.predict_proba(subjects[::-1], descriptions[::-1], batch_size=3)[::-1]
    np.testing.assert_allclose(whole, reversed_, atol=1e-5)


def test_a_bad_backend_or_folder_is_a_clear_error(tiny_onnx, tmp_path):
    with pytest.raises(ValueError, match="backend must be one of"):
        Router(tiny_onnx, backend="tensorrt")
    with pytest.raises(ValueError, match="no such model folder"):
        Router(tmp_path / "missing")


def test_long_inputs_are_scored_chunk_by_chunk_with_the_same_result(tiny_onnx, test_tickets, monkeypatch):
    import ticket_router.router as router_module

    router = Router(tiny_onnx, backend="onnx")
    subjects, descriptions = test_tickets["subject"].tolist(), test_tickets["description"].tolist()
    whole = router.predict_proba(subjects, descriptions)
    monkeypatch.setattr(router_module, "ENCODE_CHUNK", 7)
    np.testing.assert_allclose(router.predict_proba(subjects, descriptions, batch_size=5), whole, atol=1e-6)
    with pytest.raises(ValueError, match="3 subjects but 2 descriptions"):
        router.predict_proba(["a", "b", "c"], ["x", "y"])


@pytest.mark.parametrize("backend", ["torch", "onnx"])
def test_batches_scored_on_several_workers_keep_their_rows(tiny_onnx, test_tickets, backend):
    subjects, descriptions = test_tickets["subject"].tolist(), test_tickets["description"].tolist()
    import torch

    threads = torch.get_num_threads()
    one = Router(tiny_onnx, backend=backend).predict_proba(subjects, descriptions, batch_size=3)
    two = Router(tiny_onnx, backend=backend, workers=2).predict_proba(subjects, descriptions, batch_size=3)
    np.testing.assert_allclose(two, one, atol=1e-5)
    assert torch.get_num_threads() == threads  # one thread per worker while scoring, the process's count after
    with pytest.raises(ValueError, match="workers must be an integer >= 1, got 0"):
        Router(tiny_onnx, workers=0)
