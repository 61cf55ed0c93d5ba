"""The routing promise end to end: a run whose calibration split certifies a rule that routes a real share, the
router giving training's routes on it, `ticket-classifier calibrate` re-certifying the export as a new version, and
`monitor` checking the promise on tickets whose final queues came back."""

import json

import numpy as np
import pandas as pd
import pytest

from ticket_data.loading import load_tickets_with_report
from ticket_router.cli import main as cli
from ticket_router.manifest import verify_export
from ticket_router.router import Router


def test_the_calibration_split_chose_nothing_and_shares_no_text(routable_run):
    run, metrics, tickets = routable_run
    sizes = metrics["data"]["sizes"]
    raw, report = load_tickets_with_report(tickets, seed=7, calibration_size=0.3)
    assert {split: len(rows) for split, rows in raw.items()} == sizes
    texts = {split: set(zip(raw[split]["subject"], raw[split]["description"])) for split in raw}
    calibration = texts["calibration"]
    assert len(calibration) == sizes["calibration"]  # no text twice
    assert not calibration & (texts["train"] | texts["validation"] | texts["test"])
    assert report["duplicates"]["removed_from_calibration"] > 0
    # It certified, and nothing else: the temperature was fitted on validation, the checkpoint chosen there.
    assert metrics["routing"]["guarantee"]["calibration_size"] == sizes["calibration"]
    assert metrics["routing"]["guarantee"]["validation_counts"]["tickets"] == sizes["validation"]


def test_a_real_share_is_routed_and_the_router_gives_trainings_routes(routable_run):
    run, metrics, _ = routable_run
    routing = metrics["routing"]
    assert routing["calibration"]["coverage"] > 0.5 and routing["test"]["coverage"] > 0.5
    assert routing["calibration"]["misrouting"] <= 0.05
    predictions = pd.read_csv(run / "reports" / "predictions.csv", keep_default_na=False)
    routes = predictions["route"]
    assert (routes == "auto").any()
    router = Router(run / "model")
    decisions = router.route(predictions["subject"].tolist(), predictions["description"].tolist())
    assert [d["route"] for d in decisions] == routes.tolist()
    assert [d["label"] for d in decisions] == predictions["predicted"].tolist()


def calibrate(run, tickets: pd.DataFrame, tmp_path, *flags):
    path = tmp_path / "labelled.csv"
    tickets.to_csv(path, index=False)
    return cli(["calibrate", "--model", str(run / "model"), "--input", str(path), "--label_column", "queue",
                "--quiet", *flags]), path


@pytest.fixture
def routable_copy(routable_run, tmp_path):
    """The routable run's output folder, copied (links and versions kept): calibrate writes new versions in it."""
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(routable_run[0], copy, symlinks=True)
    return copy, routable_run[1]


def labelled_tickets(run):
    """The run's test tickets with the queue people assigned, as a desk's labelled export would have them."""
    predictions = pd.read_csv(run / "reports" / "predictions.csv", keep_default_na=False)
    tickets = predictions[["subject", "description"]].assign(queue=predictions["label"])
    key = (tickets["subject"] + "\n" + tickets["description"]).str.casefold()
    return tickets[~key.duplicated()].reset_index(drop=True)


def test_calibrate_writes_a_new_version_and_keeps_the_previous_one(routable_copy, tmp_path, capsys):
    run, metrics = routable_copy
    before = (run / "model").resolve()
    before_config = (before / "config.json").read_text()
    reading = Router(run / "model")  # a router already serving when the new version lands
    tickets = labelled_tickets(run)
    tickets.loc[0, "queue"] = ""  # a ticket whose queue never came back
    tickets = pd.concat([tickets, tickets.iloc[[1]]], ignore_index=True)  # and one that came twice
    code, source = calibrate(run, tickets, tmp_path, "--max_misrouting", "0.2", "--delta", "0.1")
    out = capsys.readouterr().out
    assert code == 0, out
    after = (run / "model").resolve()
    assert after != before and (before / "config.json").read_text() == before_config  # the old version is intact
    verify_export(run / "model")
    config = json.loads((after / "config.json").read_text())
    guarantee = config["routing_guarantee"]
    assert guarantee["max_misrouting"] == 0.2 and guarantee["delta"] == 0.1
    # Templated tickets: a few test texts are also training texts, which never certify (the export keeps their hashes).
    trained = guarantee["left_out"]["trained_or_validated"]
    assert guarantee["calibration_size"] == len(tickets) - 2 - trained
    assert guarantee["left_out"]["blank_labels"] == 1 and guarantee["left_out"]["repeated_texts"] == 1
    assert str(source) in guarantee["certified_on"]
    assert str(source) in (after / "README.md").read_text().replace("\n", " ")
    manifest = json.loads((after / "manifest.json").read_text())
    assert manifest["calibrations"][-1]["previous_version"] == before.name
    # The router reads the new rule; on these tickets it routes what the certification says it does.
    from ticket_router import seen_tickets
    from ticket_router.contract import ticket_text_sha256

    router = Router(run / "model")
    certifying = tickets[1:-1]
    fresh = ~seen_tickets.seen_mask(seen_tickets.load(router.model_dir), [
        ticket_text_sha256(s, d) for s, d in zip(certifying["subject"], certifying["description"])])
    assert int((~fresh).sum()) == trained
    routed = [d["route"] == "auto" for d in router.route(certifying["subject"][fresh].tolist(),
                                                         certifying["description"][fresh].tolist())]
    assert np.mean(routed) == pytest.approx(guarantee["calibration"]["coverage"])
    assert guarantee["calibration"]["coverage"] > 0
    assert "auto-routed" in out and "written: a new version" in out
    # The conformal sets are calibrated again on the same tickets, at the export's alpha.
    sets = config["prediction_sets"]
    assert sets["calibration_size"] == len(tickets) - 2 - trained and sets["alpha"] == json.loads(before_config)["prediction_sets"]["alpha"]
    assert sets["quantile"] != json.loads(before_config)["prediction_sets"]["quantile"] and "prediction sets: " in out
    assert router.set_quantile == (sets["quantile"] if sets["quantile"] is not None else float("inf"))
    # The router that was already running keeps reading the version it resolved at start, file by file: its lazily
    # loaded transformers model comes from the old version, with the old thresholds, not the new link's.
    assert reading.model_dir == before and reading.rule != router.rule
    assert reading.backend.model.config.auto_route_thresholds == json.loads(before_config)["auto_route_thresholds"]


def test_calibrate_keeps_the_onnx_export_usable(routable_copy, tmp_path, capsys):
    from custom_trainer.onnx_export import export_onnx

    run, _ = routable_copy
    export_onnx(run / "model")
    code, _ = calibrate(run, labelled_tickets(run), tmp_path, "--max_misrouting", "0.2", "--onnx")
    assert code == 0, capsys.readouterr()
    onnx = Router(run / "model", backend="onnx")
    torch = Router(run / "model")
    assert onnx.rule == torch.rule and onnx.rule.label_thresholds != (None,) * len(onnx.labels)


def test_calibrate_dry_run_writes_nothing_and_bad_input_is_named(routable_copy, tmp_path, capsys):
    run, _ = routable_copy
    before = (run / "model").resolve()
    code, _ = calibrate(run, labelled_tickets(run), tmp_path, "--dry_run")
    assert code == 0 and (run / "model").resolve() == before
    code, _ = calibrate(run, labelled_tickets(run), tmp_path, "--queue_max_misrouting", "Payroll=0.01")
    assert code == 2 and "'Payroll' is not among the labels" in capsys.readouterr().err
    code, _ = calibrate(run, labelled_tickets(run).rename(columns={"queue": "team"}), tmp_path)
    assert code == 2 and "missing column(s) ['queue']" in capsys.readouterr().err
    assert (run / "model").resolve() == before


def test_monitor_checks_the_promise_per_queue_and_skips_blank_labels(routable_copy, tmp_path, capsys):
    run, _ = routable_copy
    tickets = labelled_tickets(run)
    tickets.loc[:4, "queue"] = ""
    path = tmp_path / "live.csv"
    tickets.to_csv(path, index=False)
    code = cli(["monitor", "--model", str(run / "model"), "--input", str(path), "--label_column", "queue",
                "--output_dir", str(tmp_path / "monitor"), "--quiet"])
    report = json.loads((tmp_path / "monitor" / "monitor.json").read_text())
    misrouting = report["misrouting"]
    assert misrouting["skipped_without_label"] == 5 and misrouting["labelled"] == len(tickets) - 5
    assert "None" not in report["new_queues"] and "" not in report["new_queues"]
    assert misrouting["auto_routed"] > 0 and set(misrouting["queues"]) <= set(Router(run / "model").labels)
    assert set(misrouting["families"]) == {"default"}  # the families the rule was certified for
    assert not misrouting["broken"] and code == 0, capsys.readouterr().out
    # The same tickets with every final queue rotated: the promise is broken beyond noise, and the exit code says so.
    labels = sorted(set(tickets["queue"]) - {""})
    wrong = tickets.assign(queue=tickets["queue"].map(lambda q: labels[(labels.index(q) + 1) % len(labels)] if q else q))
    wrong.to_csv(path, index=False)
    code = cli(["monitor", "--model", str(run / "model"), "--input", str(path), "--label_column", "queue",
                "--output_dir", str(tmp_path / "monitor"), "--quiet"])
    report = json.loads((tmp_path / "monitor" / "monitor.json").read_text())
    assert code == 1 and report["misrouting"]["broken"] and report["misrouting"]["lower_95"] > 0.05
    assert report["misrouting"]["families"]["default"]["broken"]
