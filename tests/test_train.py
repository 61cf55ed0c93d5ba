"""train.py end to end on a tiny encoder: outputs, metrics, and the exported model in a fresh process."""

import json
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest

from conftest import REPO, tiny_run_flags
from custom_trainer.arguments import parse_args
from custom_trainer.export import verify_export

OUTPUTS = [
    "model/config.json", "model/model.safetensors", "model/tokenizer.json", "model/README.md", "model/manifest.json",
    "model/modeling.py", "reports/metrics.json", "reports/classification_report.txt", "reports/confusion_matrix.png",
    "reports/training_curves.png", "reports/predictions.csv", "reports/routing_curve.png",
]


def test_writes_every_output(tiny_run):
    output_dir, metrics = tiny_run
    for name in OUTPUTS:
        assert (output_dir / name).is_file(), name
    saved = json.loads((output_dir / "reports" / "metrics.json").read_text())
    for split in ("validation", "test"):
        assert {"accuracy", "macro_f1", "weighted_f1"} <= set(saved[split])
        assert len([k for k in saved[split] if k.startswith("f1_")]) == 12
    assert saved["test"]["macro_f1"] == pytest.approx(metrics["test"]["macro_f1"])
    assert "0." in (output_dir / "reports" / "classification_report.txt").read_text()
    # A tiny model trained for seconds still learns something: well above chance (1/12).
    assert saved["validation"]["accuracy"] > 0.3


def test_predictions_csv_matches_the_test_metrics(tiny_run):
    output_dir, metrics = tiny_run
    predictions = pd.read_csv(output_dir / "reports" / "predictions.csv")
    assert list(predictions.columns) == ["subject", "description", "label", "predicted", "score", "top3",
                                         "routing_score", "route"]
    accuracy = (predictions["label"] == predictions["predicted"]).mean()
    assert accuracy == pytest.approx(metrics["test"]["accuracy"])
    thresholds = metrics["routing"]["rule"]["thresholds"]
    expected = [thresholds[label] is not None and score >= thresholds[label]
                for label, score in zip(predictions["predicted"], predictions["routing_score"])]
    assert expected == (predictions["route"] == "auto").tolist()
    assert (predictions["route"] == "auto").mean() == pytest.approx(metrics["routing"]["test"]["coverage"])
    top3 = json.loads(predictions["top3"][0])
    assert len(top3) == 3 and top3[0][0] == predictions["predicted"][0]


def test_calibration_and_threshold_travel_with_the_export(tiny_run):
    output_dir, metrics = tiny_run
    config = json.loads((output_dir / "model" / "config.json").read_text())
    routing = metrics["routing"]
    assert config["calibration_temperature"] == pytest.approx(routing["temperature"])
    assert config["auto_route_threshold"] == pytest.approx(routing["threshold"])
    assert config["auto_route_thresholds"] == routing["rule"]["thresholds"]
    assert config["routing_score"] == routing["rule"]["score"]
    calibration = metrics["data"]["sizes"]["calibration"]
    assert calibration > 0 and config["routing_guarantee"]["calibration_size"] == calibration
    assert config["routing_guarantee"]["delta"] == 0.05 and config["routing_guarantee"]["max_misrouting"] == 0.03
    assert config["routing_profile"]["tickets"] == calibration
    card = (output_dir / "model" / "README.md").read_text().replace("\n", " ")
    assert f"misrouting <= 3% of auto-routed tickets, with probability >= 95% (Learn-then-Test on {calibration} " \
           "calibration tickets that chose nothing)" in card
    assert f"Certified on the calibration split: {calibration} tickets set aside" in card
    assert routing["validation"]["misrouting"] <= routing["max_misrouting"]
    assert routing["validation"]["ece_after"] <= routing["validation"]["ece_before"] + 1e-9
    saved = json.loads((output_dir / "reports" / "metrics.json").read_text())
    assert {"ece_before", "ece_after", "coverage", "misrouting"} <= set(saved["routing"]["test"])


def test_export_manifest_verifies(tiny_run):
    output_dir, metrics = tiny_run
    manifest = verify_export(output_dir / "model")
    assert manifest["data_fingerprint"] == metrics["data"]["fingerprint"]
    assert len(manifest["labels"]) == 12


PIPELINE_CHECK = textwrap.dedent(
    """
    import json, sys
    import pandas as pd
    from transformers import pipeline
    model_dir, import_project = sys.argv[1], sys.argv[2] == "import"
    if import_project:
        import custom_trainer  # registers the model type: no remote code needed
    router = pipeline("text-classification", model=model_dir, trust_remote_code=not import_project)
    frame = pd.read_csv(sys.argv[3])
    out = router([{"text": s, "text_pair": d} for s, d in zip(frame.subject, frame.description)], batch_size=32)
    mails = [router({"text": "Mail from " + a, "text_pair": "Outlook not syncing, write to " + b})
             for a, b in [("ann@corp.example.com", "x@y.org"), ("bob.smith@other.co.uk", "help-desk@it.example.net")]]
    print(json.dumps({"labels": [o["label"] for o in out], "scores": [o["score"] for o in out],
                      "project_imported": "custom_trainer" in sys.modules, "mails": mails}))
    """
)


@pytest.mark.process
@pytest.mark.parametrize("mode", ["remote_code", "import"])
def test_pipeline_in_a_fresh_process_reproduces_predictions(tiny_run, tmp_path, mode):
    output_dir, _ = tiny_run
    predictions_csv = output_dir / "reports" / "predictions.csv"
    result = subprocess.run(
        [sys.executable, "-c", PIPELINE_CHECK, str(output_dir / "model"), mode, str(predictions_csv)],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
        env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["project_imported"] == (mode == "import")
    expected = pd.read_csv(predictions_csv)
    assert out["labels"] == expected["predicted"].tolist()
    assert out["scores"] == pytest.approx(expected["score"].tolist(), abs=1e-5)
    assert out["mails"][0] == out["mails"][1]  # the address does not change the scores


def test_same_seed_same_results(tiny_bert, tmp_path, dataset_cache, tiny_run):
    from train import main

    first_dir, first = tiny_run
    second = main(*parse_args(tiny_run_flags(tiny_bert, tmp_path / "again", dataset_cache))[:3])
    timing = ("runtime", "samples_per_second", "steps_per_second")
    for split in ("validation", "test"):
        assert {k: v for k, v in second[split].items() if k not in timing} == {
            k: v for k, v in first[split].items() if k not in timing
        }
    a = pd.read_csv(first_dir / "reports" / "predictions.csv")
    b = pd.read_csv(tmp_path / "again" / "reports" / "predictions.csv")
    pd.testing.assert_frame_equal(a, b)


def test_non_finite_loss_exports_nothing(tiny_bert, tmp_path, dataset_cache, monkeypatch):
    import torch

    from custom_trainer import TicketClassifier
    from custom_trainer.trainer import NonFiniteLossError
    from train import main

    original = TicketClassifier.from_encoder.__func__

    def poisoned(cls, *args, **kwargs):
        model = original(cls, *args, **kwargs)
        with torch.no_grad():
            model.head[4].weight.fill_(float("inf"))
        return model

    monkeypatch.setattr(TicketClassifier, "from_encoder", classmethod(poisoned))
    with pytest.raises(NonFiniteLossError, match=r"at step 1, .*batch labels"):
        main(*parse_args(tiny_run_flags(tiny_bert, tmp_path / "nan", dataset_cache))[:3])
    assert not (tmp_path / "nan" / "model").exists()
    # Only the data report, written before training, is there: no metrics of a failed run.
    assert [p.name for p in (tmp_path / "nan" / "reports").iterdir()] == ["data_report.json"]


def test_data_fingerprint_changes_with_the_data(tmp_path):
    from ticket_data import load_tickets
    from train import data_fingerprint

    rows = pd.DataFrame({"subject": [f"s{i}" for i in range(30)], "description": "d", "category": ["a", "b", "c"] * 10})
    rows.to_csv(tmp_path / "one.csv", index=False)
    rows.assign(description=["d"] * 29 + ["changed"]).to_csv(tmp_path / "two.csv", index=False)
    first, again = data_fingerprint(load_tickets(tmp_path / "one.csv")), data_fingerprint(load_tickets(tmp_path / "one.csv"))
    assert first == again
    assert data_fingerprint(load_tickets(tmp_path / "two.csv")) != first


def test_an_untouched_long_tailed_export_trains_without_edits(tiny_bert, tmp_path, seed_dataset, capsys):
    """A ServiceNow-like export: semicolons, its own column names, a long tail of queues, holes, copies, artefacts."""
    from train import main

    frame = seed_dataset["train"].to_pandas()
    frame["queue"] = [seed_dataset["train"].features["label"].names[i] for i in frame["label"]]
    queues = sorted(frame["queue"].unique())
    big, rare = queues[:4], dict(zip(queues[4:9], [3, 3, 2, 2, 2]))  # 12 rare tickets: one merged bucket
    rows = pd.concat([frame[frame["queue"] == q].head(40) for q in big]
                     + [frame[frame["queue"] == q].head(n) for q, n in rare.items()])
    export = pd.DataFrame({"Number": range(len(rows)), "Short description": rows["subject"].to_numpy(),
                           "Description": rows["description"].to_numpy(), "Assignment group": rows["queue"].to_numpy()})
    export.loc[0, "Description"] = "Line one_x000D_\n<p>line&nbsp;two</p>\u200b ------"
    export = pd.concat([export, export.head(8)], ignore_index=True)  # 8 copies
    export.loc[len(export)] = [9001, "", "", big[0]]  # no text
    export.loc[len(export)] = [9002, "printer jam again", "tray 2", ""]  # no label
    path = tmp_path / "servicenow export.csv"
    export.to_csv(path, index=False, sep=";")

    flags = tiny_run_flags(tiny_bert, tmp_path / "run", "unused")
    flags[flags.index("--dataset"):flags.index("--dataset") + 6] = []  # no synthetic corpus options
    flags += ["--train_file", str(path), "--text_columns", "Short description", "Description",
              "--label_column", "Assignment group", "--num_train_epochs", "3"]
    metrics = main(*parse_args(flags)[:3])
    printed = capsys.readouterr().out

    bucket = "Other (rare queues)"
    report = json.loads((tmp_path / "run" / "reports" / "data_report.json").read_text())
    part = report["files"]["train"]
    assert part["rows_read"] == len(export)
    assert part["kept"] + part["skipped_total"] + sum(part["removed"].values()) == part["rows_read"]
    assert part["skipped"]["no_text"]["count"] == 1 and part["skipped"]["no_label"]["count"] == 1
    assert report["labels"]["merged"] == dict(sorted(rare.items())) and report["labels"]["merged_into"] == bucket
    assert report["duplicates"]["rows_repeating_an_earlier_text"] >= 8
    assert 0 <= report["token_lengths"]["share_truncated"] <= 1 and report["token_lengths"]["p50"] > 0
    assert f"merged into '{bucket}' (never auto-routed)" in printed and "1 no text (lines" in printed

    config = json.loads((tmp_path / "run" / "model" / "config.json").read_text())
    assert config["triage_labels"] == [bucket]
    assert bucket in config["id2label"].values() and metrics["data"]["triage_labels"] == [bucket]
    card = (tmp_path / "run" / "model" / "README.md").read_text()
    assert "## Rare queues" in card and all(f"{q} ({n})" in card for q, n in rare.items())
    predictions = pd.read_csv(tmp_path / "run" / "reports" / "predictions.csv")
    assert (predictions.loc[predictions["predicted"] == bucket, "route"] == "triage").all()

    # The audit of the export (custom_trainer/audit.py) ran before training, on every row read.
    audit = json.loads((tmp_path / "run" / "reports" / "audit.json").read_text())
    assert audit["rows"]["read"] == len(export) and audit["rows"]["skipped"] == {"no_text": 1, "no_label": 1}
    assert audit["near_duplicates"]["groups"] >= 8 and audit["near_duplicates"]["conflicting_groups"] == 0
    assert (tmp_path / "run" / "reports" / "label_issues.csv").is_file() and "audit of the export" in printed
    assert metrics["data"]["audit"]["near_duplicate_groups"] == audit["near_duplicates"]["groups"]


def test_baseline_beside_the_model_in_metrics_and_card(tiny_run):
    output_dir, metrics = tiny_run
    saved = json.loads((output_dir / "reports" / "metrics.json").read_text())
    baseline = saved["baseline"]
    assert baseline["name"].startswith("TF-IDF")
    for split in ("validation", "test"):
        assert 0 <= baseline[split]["macro_f1"] <= 1 and 0 <= baseline[split]["accuracy"] <= 1
    card = (output_dir / "model" / "README.md").read_text()
    assert f"| test, baseline | {baseline['test']['accuracy']:.4f} | {baseline['test']['macro_f1']:.4f} |" in card


def test_a_model_below_the_baseline_says_so_loudly(tiny_bert, tmp_path, dataset_cache, capsys):
    from train import main

    flags = tiny_run_flags(tiny_bert, tmp_path / "weak", dataset_cache) + ["--num_train_epochs", "1",
                                                                           "--learning_rate", "1e-5"]
    metrics = main(*parse_args(flags)[:3])
    captured = capsys.readouterr()
    assert metrics["validation"]["accuracy"] < metrics["baseline"]["validation"]["accuracy"]  # one tiny epoch
    assert "baseline (TF-IDF 1-2 grams + logistic regression): validation macro-F1" in captured.out
    assert "WARNING: BELOW THE BASELINE: validation accuracy" in captured.err
    assert "What to try" in captured.err
    assert "**The model is below it:" in (tmp_path / "weak" / "model" / "README.md").read_text()


@pytest.mark.process
def test_the_combination_travels_with_the_export(tiny_bert, tmp_path, dataset_cache):
    """The wide part's weight and the prior correction chosen on validation are in the exported weights: the
    export computes head + bias shift + wide_scale x wide logits by itself (pipeline) and predicts what the run
    reported."""
    from train import main

    # One epoch: a head that is still weak, so that the n-gram model has something to add on validation.
    flags = tiny_run_flags(tiny_bert, tmp_path / "wide", dataset_cache) + ["--wide_buckets", "4096",
                                                                          "--combine_for", "macro_f1",
                                                                          "--num_train_epochs", "1"]
    metrics = main(*parse_args(flags)[:3])
    config = json.loads((tmp_path / "wide" / "model" / "config.json").read_text())
    combination = metrics["combination"]
    assert config["wide_buckets"] == 4096 and config["wide_scale"] == pytest.approx(combination["wide_scale"])
    assert combination["wide_weight"] > 0  # templated tickets: the n-gram model helps on validation
    assert combination["target"] == "macro_f1" and len(combination["bias_shift"]) == 12
    assert set(combination["head_only"]) == {"validation", "test"}
    assert metrics["validation"]["macro_f1"] == pytest.approx(combination["validation"]["macro_f1"])
    # the plain best grid point is at least the head alone on validation; the export takes the bagged mix of the
    # resamples' choices (custom_trainer/combine.py), whose own validation figures are the ones reported
    assert combination["single_choice"]["validation"]["macro_f1"] >= combination["head_alone_validation"]["macro_f1"]
    assert combination["bagging"]["resamples"] == 50
    predictions_csv = tmp_path / "wide" / "reports" / "predictions.csv"
    result = subprocess.run(
        [sys.executable, "-c", PIPELINE_CHECK, str(tmp_path / "wide" / "model"), "import", str(predictions_csv)],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
        env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    expected = pd.read_csv(predictions_csv)
    assert out["labels"] == expected["predicted"].tolist()
    assert out["scores"] == pytest.approx(expected["score"].tolist(), abs=1e-4)


def test_test_figures_come_with_bootstrap_intervals(tiny_run):
    output_dir, metrics = tiny_run
    saved = json.loads((output_dir / "reports" / "metrics.json").read_text())
    intervals = saved["intervals"]["test"]
    assert intervals["n_resamples"] == 1000 and intervals["confidence"] == 0.95
    for key in ("accuracy", "macro_f1"):
        low, high = intervals[key]
        assert low <= saved["test"][key] <= high and high - low > 0  # 36 test tickets: a wide interval
    routing = saved["routing"]["test"]
    assert intervals["coverage"][0] <= routing["coverage"] <= intervals["coverage"][1]
    assert intervals["misrouting"][0] <= routing["misrouting"] <= intervals["misrouting"][1]
    card = (output_dir / "model" / "README.md").read_text()
    assert f"accuracy\n[{intervals['accuracy'][0]:.4f}, {intervals['accuracy'][1]:.4f}]" in card


def test_an_output_folder_that_cannot_be_written_is_one_line_not_a_traceback(tiny_bert, tmp_path, dataset_cache):
    from train import cli

    blocker = tmp_path / "taken"
    blocker.write_text("a file where the output folder should go")
    with pytest.raises(SystemExit) as stop:
        cli(tiny_run_flags(tiny_bert, blocker / "run", dataset_cache))
    assert str(stop.value.code).startswith("train.py: error: ") and "taken" in str(stop.value.code)


def test_frozen_word_embeddings_stay_as_pretrained_while_the_rest_trains(tiny_bert, tmp_path, dataset_cache):
    import torch
    from transformers import AutoModel

    from custom_trainer.export import load_exported_model
    from train import main

    flags = tiny_run_flags(tiny_bert, tmp_path / "frozen", dataset_cache) + ["--freeze_word_embeddings", "true",
                                                                              "--num_train_epochs", "2"]
    main(*parse_args(flags)[:3])
    trained, _ = load_exported_model(tmp_path / "frozen" / "model")
    pretrained = AutoModel.from_pretrained(tiny_bert)
    embeddings = trained.encoder.get_input_embeddings().weight
    assert torch.equal(embeddings, pretrained.get_input_embeddings().weight)
    layer = "encoder.layer.0.attention.self.query.weight"
    assert not torch.equal(trained.encoder.state_dict()[layer], pretrained.state_dict()[layer])


def test_frozen_layers_stay_as_pretrained_while_the_layers_above_train(tiny_bert, tmp_path, dataset_cache):
    import torch
    from transformers import AutoModel

    from custom_trainer.export import load_exported_model
    from train import main

    flags = tiny_run_flags(tiny_bert, tmp_path / "frozen", dataset_cache) + ["--frozen_layers", "1",
                                                                              "--num_train_epochs", "2"]
    main(*parse_args(flags)[:3])
    trained, _ = load_exported_model(tmp_path / "frozen" / "model")
    pretrained = AutoModel.from_pretrained(tiny_bert).state_dict()
    encoder = trained.encoder.state_dict()
    for name in ("embeddings.word_embeddings.weight", "embeddings.LayerNorm.weight", "encoder.layer.0.output.dense.weight"):
        assert torch.equal(encoder[name], pretrained[name]), name
    assert not torch.equal(encoder["encoder.layer.1.output.dense.weight"], pretrained["encoder.layer.1.output.dense.weight"])


def test_a_queue_target_the_promise_cannot_carry_stops_the_run_before_training(tiny_bert, tmp_path, dataset_cache):
    from train import main

    flags = tiny_run_flags(tiny_bert, tmp_path / "run", dataset_cache) + ["--queue_max_misrouting", "Security=0.05"]
    with pytest.raises(ValueError, match="Security=0.05 is looser than max_misrouting 0.03"):
        main(*parse_args(flags)[:3])
    assert not (tmp_path / "run" / "model").exists()


def test_prediction_sets_travel_with_the_export_and_reach_predict_and_the_card(tiny_run, tmp_path, capsys):
    from ticket_router.cli import main as cli
    from ticket_router.prediction_sets import prediction_sets, stored_quantile
    from ticket_router.router import Router

    output_dir, metrics = tiny_run
    sets = metrics["prediction_sets"]
    config = json.loads((output_dir / "model" / "config.json").read_text())
    assert config["prediction_sets"] == {k: sets[k] for k in ("method", "alpha", "quantile", "calibration_size")}
    assert sets["alpha"] == 0.1 and sets["calibration_size"] == metrics["data"]["sizes"]["calibration"]
    assert 0 <= sets["test"]["coverage"] <= 1 and sets["test"]["mean_size"] >= 1
    assert "## Prediction sets" in (output_dir / "model" / "README.md").read_text()
    # The router gives each ticket the set its stored q gives, most probable queue first.
    predictions = pd.read_csv(output_dir / "reports" / "predictions.csv", keep_default_na=False).head(20)
    router = Router(output_dir / "model")
    probabilities = router.predict_proba(predictions["subject"], predictions["description"])
    members = prediction_sets(probabilities, stored_quantile(config["prediction_sets"]))
    decisions = router.decisions(probabilities)
    for decision, row, chosen in zip(decisions, probabilities, members):
        assert [m["label"] for m in decision["prediction_set"]] == [
            router.labels[i] for i in np.argsort(-row, kind="stable") if chosen[i]]
        assert decision["prediction_set"][0]["label"] == decision["label"]
    predictions[["subject", "description"]].to_csv(tmp_path / "in.csv", index=False)
    assert cli(["predict", "--model", str(output_dir / "model"), "--input", str(tmp_path / "in.csv"), "--output",
                str(tmp_path / "out.csv"), "--quiet"]) == 0
    routed = pd.read_csv(tmp_path / "out.csv")
    assert routed["prediction_set"].tolist() == ["; ".join(m["label"] for m in d["prediction_set"]) for d in decisions]
    assert cli(["predict", "--model", str(output_dir / "model"), "--subject", "printer jam"]) == 0
    assert "likely queues (90% prediction set): " in capsys.readouterr().out


def test_the_machine_and_training_time_reach_metrics_and_the_card(tiny_run):
    output_dir, metrics = tiny_run
    machine = metrics["training_machine"]
    # tiny runs train on the CPU in fp32 (tiny_run_flags); cheap dropout masks are off by default (issue 39).
    assert machine["precision"] == "fp32" and machine["cheap_dropout_masks"] is False
    assert machine["threads"] >= 1 and machine["device"]
    assert 0 < machine["fine_tuning_s"] <= metrics["train_runtime_s"]
    card = (output_dir / "model" / "README.md").read_text().replace("\n", " ")
    assert "## Training time" in card
    assert f"(fine-tuning {machine['fine_tuning_s']:.0f} s) on {metrics['data']['sizes']['train']} training tickets" in card
    assert f"on {machine['device']} with {machine['threads']} threads" in card
