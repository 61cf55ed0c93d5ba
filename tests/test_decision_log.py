"""The decision log (ticket_router/decision_log/), on SQLite and on a real PostgreSQL server: the schema made on first
use, every routed ticket recorded with its id (the service, the page, a CSV, the CLI), writes that survive a database
that is down, a bounded buffer that counts what it drops, final queues back that apply once, the audit sample."""

import json
import threading
import time

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("sqlalchemy", reason="the log extra (SQLAlchemy, alembic) is not installed")

from ticket_router.decision_log.feedback import apply_feedback  # noqa: E402
from ticket_router.decision_log.records import decision_rows  # noqa: E402
from ticket_router.decision_log.store import DecisionLog  # noqa: E402
from ticket_router.decision_log.tickets import read_frame  # noqa: E402
from ticket_router.decision_log.writer import LogWriter  # noqa: E402


@pytest.fixture(scope="module")
def router(tiny_onnx):
    from ticket_router.router import Router

    return Router(tiny_onnx, backend="onnx")


def rows_for(router, n: int, prefix: str = "T", start: int = 0) -> list[dict]:
    subjects = [f"printer jam on floor {i}" for i in range(start, start + n)]
    descriptions = [f"tray {i} is stuck" for i in range(start, start + n)]
    probabilities = router.predict_proba(subjects, descriptions)
    decisions = router.decisions(probabilities)
    ids = [f"{prefix}{i:05d}" for i in range(start, start + n)]
    return decision_rows(router, probabilities, decisions, subjects, descriptions, ids, [False] * n, "cli")


def count(log) -> int:
    return len(read_frame(log, columns=("id",)))


def test_the_schema_is_made_on_first_use_and_versioned(log_url):
    log = DecisionLog.open(log_url)
    assert log.schema_revision() == "0001"
    again = DecisionLog.open(log_url)  # a second process opening the same log: nothing to do
    assert again.schema_revision() == "0001" and count(again) == 0


def test_opening_a_log_that_is_not_there_for_reading_says_so(tmp_path):
    with pytest.raises(ValueError, match="no such log"):
        DecisionLog.open(str(tmp_path / "missing.db"), create=False)
    with pytest.raises(ValueError, match="runs on SQLite .* or PostgreSQL"):
        DecisionLog.open("mysql://x/y")


def test_the_writer_loses_no_ticket_and_writes_within_seconds(log_url, router):
    log = DecisionLog.open(log_url)
    writer = LogWriter(log, batch=300, interval=0.2)
    rows = rows_for(router, 1000)
    started = time.monotonic()
    for part in range(0, 1000, 37):
        writer.record(rows[part:part + 37])
    while count(log) < 1000 and time.monotonic() - started < 5:
        time.sleep(0.05)
    assert count(log) == 1000 and time.monotonic() - started < 5  # every ticket, within the promised 5 s
    assert writer.status()["written"] == 1000 and writer.status()["pending"] == 0
    writer.close()
    stored = read_frame(log)
    assert sorted(stored["ticket_id"]) == sorted(row["ticket_id"] for row in rows)  # each once
    first = stored.iloc[0]
    assert first["model_fingerprint"] == router.fingerprint and first["source"] == "cli"
    assert set(json.loads(first["probabilities"])) == set(router.labels)


def test_a_database_that_is_down_delays_nothing_and_loses_nothing(tmp_path, router):
    log = DecisionLog.open(str(tmp_path / "decisions.db"))
    real_write, down = log.write, {"calls": 0}

    def failing(rows, versions_seen=()):
        down["calls"] += 1
        if down["calls"] <= 3:
            raise OSError("could not connect to server (injected)")
        return real_write(rows, versions_seen)

    log.write = failing
    writer = LogWriter(log, interval=0.1, max_backoff=0.4)
    started = time.monotonic()
    assert writer.record(rows_for(router, 50)) == 0
    assert time.monotonic() - started < 0.05  # the caller never waits for the database
    deadline = time.monotonic() + 10
    while writer.status()["written"] < 50 and time.monotonic() < deadline:
        time.sleep(0.05)
    status = writer.status()
    assert status["written"] == 50 and status["failed_writes"] == 3 and status["dropped"] == 0
    assert count(log) == 50
    writer.close()


def test_a_full_buffer_drops_and_counts_never_silently(tmp_path, router):
    log = DecisionLog.open(str(tmp_path / "decisions.db"))
    log.write = lambda rows, versions_seen=(): (_ for _ in ()).throw(OSError("down (injected)"))
    writer = LogWriter(log, max_pending=30, interval=0.05, max_backoff=0.1)
    assert writer.record(rows_for(router, 20)) == 0
    assert writer.record(rows_for(router, 20, start=20)) == 10
    time.sleep(0.3)
    status = writer.status()
    assert status["pending"] == 30 and status["dropped"] == 10 and status["failed_writes"] >= 1
    assert not status["healthy"] and "down (injected)" in status["last_error"]
    writer.close(timeout=0.3)


def test_final_queues_apply_once_and_count_what_they_did(log_url, router):
    log = DecisionLog.open(log_url)
    log.write(rows_for(router, 5))
    items = [("T00000", "Network", None), ("T00001", " Printing ", "Hardware"), ("T00001", "Email", None),
             ("nobody", "Network", None), ("T00002", "", None), ("T00003", "Brand New Queue", None)]
    first = apply_feedback(log, items, "file")
    assert first["matched"] == 3 and first["newly_set"] == 3 and first["unknown_ids"] == 1
    assert first["skipped"] == {"blank_id": 0, "blank_queue": 1, "repeated_id": 1}
    assert first["unknown_queues"] == {"Brand New Queue": 1}  # kept, counted
    stamped = read_frame(log).set_index("ticket_id")
    again = apply_feedback(log, items, "file")  # the same file twice changes nothing
    assert again["unchanged"] == 3 and again["newly_set"] == again["changed"] == 0
    assert read_frame(log).set_index("ticket_id")["final_queue"].equals(stamped["final_queue"])
    changed = apply_feedback(log, [("T00000", "Security", None)], "api")
    assert changed["changed"] == 1
    final = read_frame(log).set_index("ticket_id")
    assert final.loc["T00000", "final_queue"] == "Security" and final.loc["T00001", "closing_queue"] == "Hardware"
    assert final.loc["T00001", "final_queue"] == "Printing" and pd.isna(final.loc["T00004", "final_queue"])


def test_the_service_and_the_cli_share_one_sqlite_file_at_once(tmp_path, router):
    path = str(tmp_path / "decisions.db")
    writer = LogWriter(DecisionLog.open(path), batch=20, interval=0.01)
    errors = []

    def write():
        for part in range(10):
            writer.record(rows_for(router, 20, start=20 * part))
            time.sleep(0.02)

    def feedback():
        other = DecisionLog.open(path)
        for _ in range(20):
            try:
                apply_feedback(other, [(f"T{i:05d}", "Network", None) for i in range(0, 200, 7)], "file")
            except Exception as error:  # noqa: BLE001
                errors.append(error)

    threads = [threading.Thread(target=write), threading.Thread(target=feedback)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    writer.close()
    assert not errors and writer.status()["failed_writes"] == 0 and count(DecisionLog.open(path)) == 200


def test_the_service_records_every_ticket_with_its_id_and_echoes_it(log_url, router):
    from fastapi.testclient import TestClient

    from ticket_router.service import create_app

    log = DecisionLog.open(log_url)
    app = create_app(router, max_batch=16, max_chars=500, batch_wait_ms=0, decision_log=log)
    with TestClient(app) as client:
        one = client.post("/predict", json={"subject": "VPN drops", "description": "hourly", "id": "INC0012345"})
        assert one.status_code == 200 and one.json()["id"] == "INC0012345"
        batch = client.post("/predict", json={"tickets": [{"subject": "printer jam"}, {"subject": "mail", "id": "B"}]})
        made, given = [answer["id"] for answer in batch.json()["predictions"]]
        assert made.startswith("tc-") and given == "B"
        assert client.post("/predict", json={"subject": "x", "id": ""}).status_code == 422
        assert client.post("/predict", json={"subject": "x", "id": "y" * 201}).status_code == 413
        import re

        token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/").text).group(1)
        client.post("/", data={"subject": "VPN drops", "description": "again", "ticket_id": "PAGE-1",
                               "csrf_token": token})
        csv = pd.DataFrame({"id": ["F-1", ""], "subject": ["printer jam", "wifi"], "description": ["tray", "slow"]})
        routed = client.post("/route-file", files={"file": ("t.csv", csv.to_csv(index=False), "text/csv")},
                             data={"csrf_token": token})
        assert routed.status_code == 200
        returned = pd.read_csv(__import__("io").StringIO(routed.text))
        assert returned["id"][0] == "F-1" and returned["id"][1].startswith("tc-")
        health = client.get("/health").json()
        assert "decision_log" in health
    # Shutdown wrote what waited: every ticket is in the log, with its source.
    stored = read_frame(log).set_index("ticket_id")
    assert {"INC0012345", made, "B", "PAGE-1", "F-1", returned["id"][1]} <= set(stored.index)
    assert stored.loc["INC0012345", "source"] == "predict" and stored.loc["PAGE-1", "source"] == "page"
    assert stored.loc["F-1", "source"] == "file" and stored.loc["INC0012345", "subject"] == "VPN drops"
    assert stored.loc["INC0012345", "model_version"] == router.model_dir.name


def test_a_log_of_hashes_keeps_no_text(tmp_path, router):
    from ticket_router.cli import main

    path = tmp_path / "decisions.db"
    assert main(["predict", "--model", str(router.model_dir), "--onnx", "--subject", "VPN drops", "--id", "INC9",
                 "--decision_log", str(path), "--log_hashes_only"]) == 0
    stored = read_frame(DecisionLog.open(str(path)))
    assert stored["subject"].isna().all() and stored["text_sha256"].str.len().eq(64).all()
    assert stored["ticket_id"].tolist() == ["INC9"] and stored["source"].tolist() == ["cli"]


def test_predict_logs_a_file_with_its_ids(tmp_path, router):
    from ticket_router.cli import main

    tickets = pd.DataFrame({"number": ["INC1", "", "INC3"], "subject": ["VPN drops", "printer jam", ""],
                            "description": ["hourly", "tray", ""]})
    tickets.to_csv(tmp_path / "in.csv", index=False)
    path = tmp_path / "decisions.db"
    assert main(["predict", "--model", str(router.model_dir), "--onnx", "--input", str(tmp_path / "in.csv"),
                 "--output", str(tmp_path / "out.csv"), "--quiet", "--decision_log", str(path),
                 "--id_column", "number"]) == 0
    out = pd.read_csv(tmp_path / "out.csv")
    assert out["ticket_id"][0] == "INC1" and out["ticket_id"][1].startswith("tc-") and pd.isna(out["ticket_id"][2])
    stored = read_frame(DecisionLog.open(str(path)))
    assert sorted(stored["ticket_id"]) == sorted([out["ticket_id"][0], out["ticket_id"][1]])  # the row without text
    # is not routed, so not logged


def test_the_audit_sample_hides_the_suggestion_and_flags_the_ticket(routable_run, tmp_path):
    from fastapi.testclient import TestClient

    from ticket_router.decision_log.audit import AuditSample
    from ticket_router.router import Router
    from ticket_router.service import create_app

    run, _, tickets_file = routable_run
    router = Router(run / "model")
    log = DecisionLog.open(str(tmp_path / "decisions.db"))
    # 5 tickets of each category: the file is grouped by category, and its first 60 (one category) are auto-routed
    # only where the rule happens to certify that one category.
    tickets = pd.read_csv(tickets_file).groupby("category").head(5)
    app = create_app(router, max_batch=64, batch_wait_ms=0, decision_log=log, audit=AuditSample(0.5, seed=3))
    with TestClient(app) as client:
        body = {"tickets": [{"subject": s, "description": d, "id": f"A{i}"}
                            for i, (s, d) in enumerate(zip(tickets["subject"], tickets["description"]))]}
        answers = client.post("/predict", json=body).json()["predictions"]
        again = client.post("/predict", json=body).json()["predictions"]
    audited = [a for a in answers if a["audit"]]
    assert audited and any(a["route"] == "auto" for a in answers)  # the rule routes a real share; some are audited
    assert all(a["route"] == "triage" and a["label"] is None and a["top3"] == [] for a in audited)
    assert [a["audit"] for a in again] == [a["audit"] for a in answers]  # the same ticket, the same draw
    stored = read_frame(log)
    flagged = stored[stored["audit"].astype(bool)]
    assert len(flagged) == 2 * len(audited) and (flagged["rule_route"] == "auto").all()
    assert (flagged["route"] == "triage").all() and flagged["predicted"].notna().all()  # the log keeps the answer
    share = AuditSample(0.02, seed=0)
    drawn = np.mean([share.chosen(f"INC{i}") for i in range(20000)])
    assert 0.015 < drawn < 0.025


def test_feedback_over_http_needs_its_scope_json_and_a_log(tmp_path, router):
    from fastapi.testclient import TestClient

    from ticket_router.service import create_app
    from ticket_router.service.keys import KeyStore, create_key

    keys = tmp_path / "keys.json"
    _, everything = create_key(keys, "desk")
    _, routing = create_key(keys, "router", ["route"])
    log = DecisionLog.open(str(tmp_path / "decisions.db"))
    app = create_app(router, max_batch=8, batch_wait_ms=0, decision_log=log, keys=KeyStore(keys))
    with TestClient(app) as client:
        key = {"Authorization": f"Bearer {everything}"}
        routed = client.post("/predict", json={"subject": "VPN drops", "id": "INC7"}, headers=key).json()
        assert client.post("/feedback", json={"id": "INC7", "queue": "Network"}).status_code == 401
        assert client.post("/feedback", json={"id": "INC7", "queue": "Network"},
                           headers={"Authorization": f"Bearer {routing}"}).status_code == 403
        assert client.post("/feedback", content=b'{"id": "INC7"}',
                           headers={**key, "Content-Type": "text/plain"}).status_code == 415
        answer = client.post("/feedback", json={"id": "INC7", "queue": "Network"}, headers=key)
        assert answer.status_code == 200 and answer.json()["matched"] == 1  # routed a moment ago, still matched
        batch = client.post("/feedback", json={"feedback": [{"id": "INC7", "queue": "Network"},
                                                             {"id": "nope", "queue": "Email"}]}, headers=key).json()
        assert batch["unchanged"] == 1 and batch["unknown_ids"] == 1
        assert client.post("/feedback", json={"id": "INC7"}, headers=key).status_code == 422
    assert routed["id"] == "INC7"
    without = create_app(router, max_batch=8, batch_wait_ms=0)
    with TestClient(without) as client:
        assert client.post("/feedback", json={"id": "INC7", "queue": "Network"}).status_code == 409


def test_the_feedback_command_reports_and_exits_0_whatever_the_counts(tmp_path, router, capsys):
    from ticket_router.cli import main

    log_path = tmp_path / "decisions.db"
    DecisionLog.open(str(log_path)).write(rows_for(router, 3))
    closed = pd.DataFrame({"number": ["T00000", "T00001", "X"], "first_group": ["Network", "Odd Queue", "Email"]})
    closed.to_csv(tmp_path / "closed.csv", index=False)
    flags = ["feedback", "--decision_log", str(log_path), "--input", str(tmp_path / "closed.csv"),
             "--id_column", "number", "--label_column", "first_group"]
    assert main(flags) == 0
    out = capsys.readouterr().out
    assert "2 matched (2 set" in out and "1 ids not in the log" in out and "Odd Queue" in out
    assert main(flags) == 0 and "2 unchanged" in capsys.readouterr().out
    (tmp_path / "broken.csv").write_bytes(b"\xff\xfe\x00garbage")
    assert main([*flags[:4], str(tmp_path / "broken.csv"), *flags[5:]]) == 2
