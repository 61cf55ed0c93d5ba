"""The router learning from the desk (ticket_router/recertify.py, ticket_router/atomic.py, ticket_router/decision_log/):
re-certification from the log's person-decided tickets in two groups, never on a ticket the export trained on; the
promise kept over 300 simulated deployments; versions switched by compare-and-swap and picked up by a running service;
a version in use never pruned; rollback; champion and challenger; the monitor from the log; the labels exported."""

import json
import shutil
import time

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("sqlalchemy", reason="the log extra (SQLAlchemy, alembic) is not installed")

from ticket_router.cli import main as cli  # noqa: E402
from ticket_router.decision_log.feedback import apply_feedback  # noqa: E402
from ticket_router.decision_log.records import decision_rows  # noqa: E402
from ticket_router.decision_log.store import DecisionLog, version_record  # noqa: E402
from ticket_router.decision_log.tickets import read_frame  # noqa: E402
from ticket_router.router import Router  # noqa: E402


@pytest.fixture
def run(routable_run, tmp_path):
    """The routable run's output folder, copied (links and versions kept): commands write new versions in it."""
    copy = tmp_path / "run"
    shutil.copytree(routable_run[0], copy, symlinks=True)
    return copy


def fresh_tickets(seed: int = 11, per_queue: int = 60) -> pd.DataFrame:
    from ticket_data import seed_corpus

    return pd.DataFrame(seed_corpus.generate_seed_tickets(seed, per_queue)).drop(columns="template")


def route_into_log(router, log, tickets: pd.DataFrame, audit_rate: float = 0.0, prefix: str = "INC") -> list[str]:
    """Route tickets as the service does (audit sample included) and write them to the log; their ids."""
    from ticket_router.decision_log.audit import AuditSample, draw

    probabilities = router.predict_proba(tickets["subject"].tolist(), tickets["description"].tolist())
    decisions = router.decisions(probabilities)
    ids = [f"{prefix}{i:06d}" for i in range(len(tickets))]
    audits = draw(decisions, ids, AuditSample(audit_rate, 1) if audit_rate else None)
    log.write(decision_rows(router, probabilities, decisions, tickets["subject"].tolist(),
                            tickets["description"].tolist(), ids, audits, "predict"), [version_record(router)])
    return ids


def test_the_export_keeps_its_training_tickets_and_they_never_certify(run, tmp_path, capsys):
    from ticket_router import seen_tickets
    from ticket_router.contract import ticket_text_sha256
    from ticket_router.recertify import recertify_from_log

    router = Router(run / "model")
    seen = seen_tickets.load(router.model_dir)
    sizes = json.loads((run / "reports" / "metrics.json").read_text())["data"]["sizes"]
    assert seen is not None and 0 < len(seen) <= sizes["train"] + sizes["validation"]
    assert np.all(np.diff(seen.astype(np.float64)) > 0)  # sorted, each once
    # Templated tickets: some fresh ones repeat a training text word for word, and the export knows which.
    fresh = fresh_tickets(seed=12, per_queue=15)
    trained = seen_tickets.seen_mask(seen, [ticket_text_sha256(s, d) for s, d in zip(fresh["subject"],
                                                                                      fresh["description"])])
    assert trained.any() and not trained.all()
    path = tmp_path / "labelled.csv"
    fresh.to_csv(path, index=False)
    assert cli(["calibrate", "--model", str(run / "model"), "--input", str(path), "--label_column", "category",
                "--quiet", "--dry_run"]) == 0
    assert f"{int(trained.sum())} trained or validated" in capsys.readouterr().out  # from a file: left out, counted
    log = DecisionLog.open(str(tmp_path / "decisions.db"))
    ids = route_into_log(router, log, fresh)
    apply_feedback(log, zip(ids, fresh["category"], [None] * len(ids)), "file")
    result = recertify_from_log(router, log, 0.1)
    assert result["guarantee"]["left_out"]["trained_or_validated"] == int(trained[
        (read_frame(log)["route"] == "triage").to_numpy()].sum())  # from the log too
    used = set(result["used_ids"])
    stored = read_frame(log).set_index("id")
    assert not any(seen_tickets.seen_mask(seen, stored.loc[sorted(used), "text_sha256"]))


def nothing_routed(run, tmp_path) -> None:
    """Re-certify the export on three tickets at 1%: nothing certifies, so its rule routes nothing."""
    few = fresh_tickets(seed=20, per_queue=1).head(3)
    few.to_csv(tmp_path / "few.csv", index=False)
    assert cli(["calibrate", "--model", str(run / "model"), "--input", str(tmp_path / "few.csv"), "--label_column",
                "category", "--max_misrouting", "0.01", "--quiet"]) == 0
    assert "nothing auto-routed" in Router(run / "model").rule.describe() or all(
        t is None for t in Router(run / "model").rule.label_thresholds)


def test_the_log_certifies_and_a_running_service_picks_up_the_new_version(run, tmp_path, capsys):
    """As a desk's first weeks: the rule in force routes nothing, every ticket goes to a person, their final queues
    come back, `calibrate --decision_log` certifies a rule on them while the service runs, and the same service
    routes with it (its /info changes) without a restart."""
    from fastapi.testclient import TestClient

    from ticket_router.decision_log.audit import AuditSample
    from ticket_router.service import create_app

    nothing_routed(run, tmp_path)
    capsys.readouterr()
    log_path = str(tmp_path / "decisions.db")
    log = DecisionLog.open(log_path)
    model = run / "model"
    app = create_app(Router(model), max_batch=256, batch_wait_ms=0, decision_log=log, audit=AuditSample(0.3, 1),
                     model_path=model, open_router=lambda path: Router(path), reload_interval=0.2)
    tickets = fresh_tickets(seed=11, per_queue=60)
    with TestClient(app) as client:
        before = client.get("/info").json()
        answers = []
        for start in range(0, len(tickets), 200):
            part = tickets.iloc[start:start + 200]
            body = {"tickets": [{"subject": s, "description": d, "id": f"INC{start + i:06d}"}
                                for i, (s, d) in enumerate(zip(part["subject"], part["description"]))]}
            answers += client.post("/predict", json=body).json()["predictions"]
        assert all(answer["route"] == "triage" for answer in answers)
        time.sleep(1.5)  # the writer's interval: every ticket is in the log within seconds
        finals = {"feedback": [{"id": a["id"], "queue": q} for a, q in zip(answers, tickets["category"])]}
        assert client.post("/feedback", json=finals).json()["matched"] == len(tickets)
        # Re-certify from the log while the service keeps routing: no request fails across the switch.
        import threading

        statuses, stop = [], threading.Event()

        def keep_routing():
            while not stop.is_set():
                statuses.append(client.post("/predict", json={"subject": "printer jam", "id": "LIVE"}).status_code)

        live = threading.Thread(target=keep_routing)
        live.start()
        assert cli(["calibrate", "--model", str(model), "--decision_log", log_path, "--max_misrouting", "0.1",
                    "--quiet"]) == 0
        out = capsys.readouterr().out
        assert "look 1" in out and "trained or validated" in out and "written: a new version" in out
        deadline = time.time() + 10
        while client.get("/info").json()["model_version"] == before["model_version"] and time.time() < deadline:
            time.sleep(0.1)
        time.sleep(0.3)
        stop.set()
        live.join(10)
        assert statuses and set(statuses) == {200}
        after = client.get("/info").json()
        assert after["model_version"] == model.resolve().name != before["model_version"]
        routed = client.post("/predict", json={"tickets": [{"subject": s, "description": d} for s, d in zip(
            tickets["subject"][:100], tickets["description"][:100])]}).json()["predictions"]
        assert any(answer["route"] == "auto" for answer in routed)  # the same service now auto-routes
    new = Router(model)
    guarantee = new.config["routing_guarantee"]
    assert guarantee["max_misrouting"] == 0.1 and guarantee["looks"]["look"] == 1
    assert guarantee["calibration"]["coverage"] > 0
    stored = read_frame(log)
    assert (stored["model_version"].tail(100) == new.model_dir.name).all()
    used = stored["look_id"].notna()
    assert used.any() and not (used & (stored["route"] == "auto")).any()  # only person-decided tickets certify
    # A second look spends less of delta (and keeps the rule in force when it would route less).
    assert cli(["calibrate", "--model", str(model), "--decision_log", log_path, "--max_misrouting", "0.1",
                "--quiet", "--allow_less"]) == 0
    assert Router(model).config["routing_guarantee"]["looks"]["look"] == 2


def test_without_an_audit_sample_auto_routed_tickets_block_certification(run, tmp_path, capsys):
    from ticket_router.recertify import recertify_from_log

    router = Router(run / "model")
    log_path = str(tmp_path / "decisions.db")
    log = DecisionLog.open(log_path)
    tickets = fresh_tickets(seed=13, per_queue=30)
    ids = route_into_log(router, log, tickets, audit_rate=0.0)
    apply_feedback(log, zip(ids, tickets["category"], [None] * len(ids)), "file")
    result = recertify_from_log(router, log, 0.1)
    assert result["rule"].label_thresholds == tuple([None] * len(router.labels))
    assert "serve with --audit_rate" in result["guarantee"]["certified_on"]
    version = (run / "model").resolve()
    assert cli(["calibrate", "--model", str(run / "model"), "--decision_log", log_path, "--max_misrouting", "0.1",
                "--quiet"]) == 0
    assert "kept the rule in force" in capsys.readouterr().out and (run / "model").resolve() == version


class SimulatedRouter:
    """What `certify_groups` reads of a router: labels, the rule's triage queues, the stored pre-registration."""

    def __init__(self, labels, validation_counts, target, delta):
        from ticket_router.rule import RoutingRule

        self.labels = labels
        self.rule = RoutingRule(tuple([None] * len(labels)))
        self.config = {"routing_guarantee": {"validation_counts": validation_counts, "max_misrouting": target,
                                             "delta": delta}}


def test_two_groups_certified_apart_keep_the_promise_in_300_simulated_deployments():
    """A deployment: the rule in force auto-routes the tickets it is sure of (probability >= 0.77, group A), a
    person triages the rest (group T); the desk's final queue of an auto-routed ticket is the model's answer, except
    for the audit sample (10%), which a person decided. Certifying on the audited A tickets and the T tickets apart
    (Bonferroni; T pre-registered below the rule in force, where it can route nothing) keeps the new rule's true
    misrouting under the target in >= 1 - delta of 300 draws, measured on 100,000 fresh tickets. Certifying instead
    on every ticket with the desk's final queues (the auto-routed ones counted right) breaks it more often than the
    promise allows: the simulation reaches the failure the groups guard against."""
    from test_router_certification import NAMES, simulate

    from ticket_router.certification import grid_counts
    from ticket_router.recertify import certify_groups, settings
    from ticket_router.rule import softmax

    alpha, delta, draws, audit_rate, in_force_at = 0.05, 0.1, 300, 0.1, 0.77
    rng = np.random.default_rng(11)
    fresh, fresh_y = simulate(rng, 100_000)
    fresh_p = softmax(fresh / 2.0)
    validation, validation_y = simulate(rng, 2000)
    router = SimulatedRouter(NAMES, grid_counts(softmax(validation / 2.0), validation_y), alpha, delta)
    setting = settings(router, None, None, None)
    broken = naive_broken = routed_any = 0
    for _ in range(draws):
        logits, truth = simulate(rng, 3000)
        probabilities = softmax(logits / 2.0)
        predicted = probabilities.argmax(-1)
        in_force = probabilities.max(-1) >= in_force_at  # group A: what the rule in force auto-routed
        audited = in_force & (rng.random(len(truth)) < audit_rate)
        groups = {"audited": (probabilities[audited], truth[audited]),
                  "triaged": (probabilities[~in_force], truth[~in_force])}
        rule, _ = certify_groups(router, groups, setting, delta, "simulation", with_frontier=False,
                                 below={"triaged": [in_force_at] * len(NAMES)}, score="probability")
        stats = rule.stats(fresh_p, fresh_y)
        routed_any += stats["coverage"] > 0
        broken += stats["coverage"] > 0 and stats["misrouting"] > alpha
        desk = np.where(in_force & ~audited, predicted, truth)  # auto-routed tickets: the model's answer stuck
        naive, _ = certify_groups(router, {"all": (probabilities, desk)}, setting, delta, "naive", with_frontier=False)
        naive_stats = naive.stats(fresh_p, fresh_y)
        naive_broken += naive_stats["coverage"] > 0 and naive_stats["misrouting"] > alpha
    assert routed_any > draws / 2  # not a vacuous pass: the groups certify a real share
    assert broken <= delta * draws
    assert naive_broken > 1.5 * delta * draws


def test_a_switch_never_reverts_another_and_a_version_in_use_is_never_pruned(run, tmp_path, monkeypatch):
    from ticket_router import atomic
    from ticket_router.recertify import recalibrate, write_recalibrated

    model = run / "model"
    labelled = pd.read_csv(run / "reports" / "predictions.csv", keep_default_na=False)
    labelled = labelled[["subject", "description"]].assign(queue=labelled["label"])
    stale = Router(model)  # a calibrate that started on this version...
    first = stale.model_dir
    atomic.touch_lease(model, first.name)  # ...which a running service routes with
    result = recalibrate(stale, labelled, ["subject", "description"], "queue", 0.1)
    fresh_router = Router(model)
    write_recalibrated(model, fresh_router, recalibrate(fresh_router, labelled, ["subject", "description"], "queue",
                                                        0.05))  # ...meanwhile another writer switched the link
    moved_to = model.resolve()
    with pytest.raises(ValueError, match="moved since this command started"):
        write_recalibrated(model, stale, result)
    assert model.resolve() == moved_to  # the other writer's version stays in use
    for target in (0.04, 0.06, 0.07):  # more versions than are kept
        current = Router(model)
        write_recalibrated(model, current, recalibrate(current, labelled, ["subject", "description"], "queue", target))
    assert first.is_dir()  # leased: never pruned
    monkeypatch.setattr(atomic, "LEASE_TTL_S", 0)
    current = Router(model)
    write_recalibrated(model, current, recalibrate(current, labelled, ["subject", "description"], "queue", 0.08))
    assert not first.exists()  # the lease lapsed (the service stopped): pruned like any old version
    # Rollback: the version before the one in use, by compare-and-swap too.
    now = model.resolve()
    assert cli(["rollback", "--model", str(model)]) == 0
    assert model.resolve() != now and Router(model).model_dir.is_dir()


def test_a_plain_folder_copy_is_served_and_recalibrated(run, tmp_path):
    from ticket_router.recertify import recalibrate, write_recalibrated

    plain = tmp_path / "served" / "model"
    shutil.copytree(run / "model", plain, symlinks=False)  # cp -rL
    router = Router(plain)
    labelled = pd.read_csv(run / "reports" / "predictions.csv", keep_default_na=False)
    labelled = labelled[["subject", "description"]].assign(queue=labelled["label"])
    write_recalibrated(plain, router, recalibrate(router, labelled, ["subject", "description"], "queue", 0.1))
    assert plain.is_symlink() and Router(plain).config["routing_guarantee"]["max_misrouting"] == 0.1


def test_promote_replaces_the_champion_only_when_the_candidate_proves_itself(run, tiny_run, tmp_path, capsys):
    model = run / "model"
    log_path = str(tmp_path / "decisions.db")
    log = DecisionLog.open(log_path)
    router = Router(model)
    tickets = fresh_tickets(seed=14, per_queue=60)
    ids = route_into_log(router, log, tickets, audit_rate=0.2)
    apply_feedback(log, zip(ids, tickets["category"], [None] * len(ids)), "file")
    weak = tiny_run[0] / "model"  # trained on 30 tickets: worse than the champion
    champion_version = model.resolve()
    assert cli(["promote", "--model", str(model), "--candidate", str(weak), "--decision_log", log_path,
                "--quiet"]) == 1
    assert "not promoted" in capsys.readouterr().out and model.resolve() == champion_version
    twin = tmp_path / "twin"
    shutil.copytree(model.resolve(), twin)  # the same model: not worse, certifies as much
    assert cli(["promote", "--model", str(model), "--candidate", str(twin), "--decision_log", log_path,
                "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "promoted" in out and model.resolve() != champion_version
    looks = read_frame(log, columns=("look_id",))
    kinds = pd.read_sql_table("looks", log.engine)["kind"].tolist()
    assert kinds == ["promote", "certify"] and looks["look_id"].notna().any()
    assert cli(["rollback", "--model", str(model)]) == 0 and model.resolve() == champion_version


def test_monitor_from_the_log_judges_the_version_in_use_by_its_audit_sample(run, tmp_path, capsys):
    model = run / "model"
    log_path = str(tmp_path / "decisions.db")
    log = DecisionLog.open(log_path)
    router = Router(model)
    flags = ["monitor", "--model", str(model), "--decision_log", log_path, "--output_dir", str(tmp_path / "m"),
             "--quiet"]
    assert cli(flags) == 0 and "no ticket in the log was routed by this version" in capsys.readouterr().out
    tickets = fresh_tickets(seed=15, per_queue=60)
    ids = route_into_log(router, log, tickets, audit_rate=0.5)
    assert cli(flags) == 0 and "no evidence yet" in capsys.readouterr().out
    apply_feedback(log, zip(ids, tickets["category"], [None] * len(ids)), "file")
    assert cli(flags) == 0, capsys.readouterr().out
    report = json.loads((tmp_path / "m" / "monitor.json").read_text())
    assert report["misrouting"]["auto_routed"] > 0 and not report["misrouting"]["broken"]
    labels = sorted(set(tickets["category"]))
    rotated = [labels[(labels.index(q) + 1) % len(labels)] for q in tickets["category"]]
    apply_feedback(log, zip(ids, rotated, [None] * len(ids)), "file")
    assert cli(flags) == 1
    report = json.loads((tmp_path / "m" / "monitor.json").read_text())
    assert report["misrouting"]["broken"] and "promise shown broken" in capsys.readouterr().out


def test_export_labelled_writes_the_tickets_a_person_decided(run, tmp_path, capsys):
    log_path = str(tmp_path / "decisions.db")
    log = DecisionLog.open(log_path)
    tickets = fresh_tickets(seed=16, per_queue=10)
    ids = route_into_log(Router(run / "model"), log, tickets, audit_rate=0.0)
    apply_feedback(log, zip(ids, tickets["category"], [None] * len(ids)), "file")
    assert cli(["export-labelled", "--decision_log", log_path, "--output", str(tmp_path / "desk.csv")]) == 0
    exported = pd.read_csv(tmp_path / "desk.csv")
    triaged = read_frame(log)
    expected = triaged[triaged["route"] == "triage"]
    assert len(exported) == len(expected) and set(exported.columns) >= {"subject", "description", "queue"}
    assert (exported.set_index("ticket_id")["queue"] == expected.set_index("ticket_id")["final_queue"]).all()
