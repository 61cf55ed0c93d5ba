"""One model, several fields (train.py extra_label_columns): queue, priority and type from one encoder pass. Data with
blank and rare values, the masked loss, each field against its own baseline in metrics.json, the export's fields on
every backend (PyTorch, transformers, ONNX int8), in routed files, in the service and in `evaluate`."""

import json

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import multi_field_tickets
from ticket_data.loading import load_tickets_with_report

def test_blank_and_rare_values_of_a_field_train_the_others_and_are_counted(tmp_path):
    tickets = multi_field_tickets()
    tickets.loc[:4, "type"] = "odd one"  # 5 rows: rare
    tickets.to_csv(tmp_path / "t.csv", index=False)
    data, report = load_tickets_with_report(tmp_path / "t.csv", extra_label_columns=["priority", "type"])
    priority, kind = report["fields"]["priority"], report["fields"]["type"]
    blank_ids = sum(int(row[0] == -1) for split in data for row in data[split]["extra_labels"])
    assert sum(priority["blank"].values()) == blank_ids > 0  # counted, not skipped: the rows stay
    removed = report["files"]["train"]["removed"].get("duplicates_of_train", 0)
    assert sum(len(data[split]) for split in data) == len(tickets) - removed
    assert set(kind["rare"]["values"]) == {"odd one"} and "odd one" not in kind["labels"]  # rare in train
    assert priority["labels"] == ["critical", "high", "low", "medium"]
    assert all(len(row) == 2 for row in data["train"]["extra_labels"])
    with pytest.raises(ValueError, match=r"missing column\(s\) \['severity'\]") as error:
        load_tickets_with_report(tmp_path / "t.csv", extra_label_columns=["severity"])
    assert "t.csv" in str(error.value)
    tickets.assign(type="incident").to_csv(tmp_path / "one.csv", index=False)
    with pytest.raises(ValueError, match="extra label column 'type': 1 value"):
        load_tickets_with_report(tmp_path / "one.csv", extra_label_columns=["type"])


def test_a_blank_field_adds_nothing_to_the_loss_nor_to_its_heads_gradient(tiny_bert):
    from custom_trainer import TicketClassifier

    torch.manual_seed(0)
    model = TicketClassifier.from_encoder(str(tiny_bert), {0: "a", 1: "b"}, extra_fields=[
        {"name": "priority", "labels": ["low", "high"]}]).eval()  # no dropout: the two calls compare
    inputs = {"input_ids": torch.tensor([[2, 40, 41, 3], [2, 42, 43, 3]]), "attention_mask": torch.ones(2, 4,
                                                                                                       dtype=torch.long)}
    routed_only = model(**inputs, labels=torch.tensor([0, 1])).loss
    blank = model(**inputs, labels=torch.tensor([[0, -100], [1, -100]]))
    assert torch.allclose(blank.loss, routed_only) and blank.field_logits.shape == (2, 2)
    blank.loss.backward()
    assert all(p.grad is None or not p.grad.any() for p in model.head_fields.parameters())
    torch.manual_seed(0)
    plain = TicketClassifier.from_encoder(str(tiny_bert), {0: "a", 1: "b"})
    assert torch.equal(plain.head[1].weight, model.head[1].weight)  # the routed head draws what it drew before


def test_every_field_is_reported_against_its_own_baseline(fields_run):
    run, metrics, _ = fields_run
    assert not any(key.startswith(("priority_", "type_")) for key in metrics["validation"])  # routed field's, as before
    for name in ("priority", "type"):
        field = metrics["fields"][name]
        assert {"validation", "test", "baseline", "intervals", "confusion", "temperature"} <= set(field)
        assert field["test"]["macro_f1"] >= field["baseline"]["test"]["macro_f1"] - 0.05
        low, high = field["intervals"]["test"]["macro_f1"]
        assert low <= field["test"]["macro_f1"] <= high
    assert metrics["fields"]["priority"]["blank"]["test"] > 0
    stored = json.loads((run / "reports" / "metrics.json").read_text())
    assert set(stored["fields"]) == {"priority", "type"}
    assert "## Other fields" in (run / "model" / "README.md").read_text()
    assert 'id="field-priority"' in (run / "reports" / "index.html").read_text()


def test_the_export_gives_every_field_on_every_backend(fields_run, tmp_path):
    from custom_trainer.export import load_exported_model
    from custom_trainer.onnx_export import export_onnx
    from ticket_router.router import Router

    run, _, tickets = fields_run
    model_dir = run / "model"
    sample = tickets.sample(40, random_state=0)
    subjects, descriptions = sample["subject"].tolist(), sample["description"].tolist()
    plain = Router(model_dir).score(subjects, descriptions)
    assert set(plain.fields) == {"priority", "type"}
    model, tokenizer = load_exported_model(model_dir)
    encoded = tokenizer(subjects, descriptions, padding=True, truncation=True, return_tensors="pt")
    from custom_trainer.modeling import split_field_logits

    with torch.no_grad():
        output = model(**encoded)
    per_field = split_field_logits(output.field_logits, [len(f["labels"]) for f in model.config.extra_fields])
    for index, name in enumerate(("priority", "type")):
        expected = torch.softmax(per_field[index], -1).numpy()
        assert np.abs(plain.fields[name] - expected).max() < 1e-4  # the plain forward is the model's
    export_onnx(model_dir, quantize="int8")
    onnx = Router(model_dir, backend="onnx").score(subjects, descriptions)
    for name in ("priority", "type"):
        assert (onnx.fields[name].argmax(1) == plain.fields[name].argmax(1)).mean() >= 0.95
    from transformers import pipeline

    classify = pipeline("text-classification", model=str(model_dir), trust_remote_code=True)
    answer = classify({"text": subjects[0], "text_pair": descriptions[0]})
    assert answer["label"] in Router(model_dir).labels  # the pipeline gives the routed field


def test_routed_files_the_service_and_evaluate_give_every_field(fields_run, tmp_path, capsys):
    from fastapi.testclient import TestClient

    from ticket_router.cli import main
    from ticket_router.router import Router
    from ticket_router.service import create_app

    run, _, tickets = fields_run
    sample = tickets.sample(60, random_state=1)
    sample.to_csv(tmp_path / "in.csv", index=False)
    assert main(["predict", "--model", str(run / "model"), "--input", str(tmp_path / "in.csv"), "--output",
                 str(tmp_path / "out.csv"), "--quiet"]) == 0
    out = pd.read_csv(tmp_path / "out.csv")
    for column in ("predicted", "predicted_priority", "predicted_type", "score_type", "prediction_set_priority"):
        assert column in out.columns
    assert set(out["predicted_priority"]) <= {"critical", "high", "low", "medium"}
    with TestClient(create_app(Router(run / "model"), max_batch=8, batch_wait_ms=0)) as client:
        answer = client.post("/predict", json={"subject": sample["subject"].iloc[0]}).json()
    assert set(answer["fields"]) == {"priority", "type"} and answer["fields"]["type"]["top3"]
    assert main(["evaluate", "--model", str(run / "model"), "--input", str(tmp_path / "in.csv"), "--quiet",
                 "--n_resamples", "50"]) == 0
    printed = capsys.readouterr().out
    assert "field priority (column 'priority'" in printed and "field type (column 'type'" in printed
