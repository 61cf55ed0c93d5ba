"""A deployment simulated on the real benchmark: the router learning from the desk week by week.

    python benchmarks/bench_deployment.py --model outputs/deploy_8k/model --audit_rates 0.02 0.1

The model: trained on an 8,000-ticket stratified sample of train.csv (`python train.py --config
configs/it_service_tickets.yaml --train_file outputs/recipes/data/its_8k.csv --output_dir outputs/deploy_8k`; the
sample is benchmarks/bench_recipes.py's `its_8k`), so its own calibration split is what a desk with a few thousand
tickets has. Then test.csv (9,568 tickets, never seen in training) is streamed in weekly batches of 500 through what
the service does (ticket_router.service.context.ServiceContext.decide's steps, without HTTP): each ticket routed by
the rule in force, a seeded audit share of the auto-routable ones sent to a person, every decision written to a
decision log (SQLite). At the week's end the final queues come back: a person's choice (the true label) for the
triaged and audited tickets; for the auto-routed ones the model's own answer (nobody re-reads a ticket that
arrived in a right-looking queue: the anchoring the audit sample exists for). Then `calibrate --decision_log` at the
target (3% by default) re-certifies on the log's person-decided tickets, keeping the rule in force when the new one
would route less, and the next week is routed with whatever is in force.

`--cold_start` runs the first days of a desk instead (the shape of issue 35's check): the rule in force routes
nothing, 1,200 tickets go to people, their queues come back, `calibrate --decision_log` re-certifies at 10%, and the
next 483 tickets are routed with the new rule: its coverage and realised misrouting, beside what the export's own
calibration split certifies at 10% (its menu).

Reported per week and audit rate: the share auto-routed that week, its realised misrouting (true labels), and the
oracle: the best single top-probability threshold chosen with test.csv's labels (misrouting <= target on all of
test.csv), which no honest rule can beat. Plot: benchmarks/deployment.png (or --plot).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
REAL = REPO.parent / "shared" / "data" / "it_service_tickets"


def simulate(model: Path, tickets: pd.DataFrame, audit_rate: float, target: float, week: int, work: Path,
             backend: str) -> list[dict]:
    from ticket_router.atomic import ANY  # noqa: F401  (the export is copied: the original stays as it is)
    from ticket_router.decision_log.audit import AuditSample, draw
    from ticket_router.decision_log.feedback import apply_feedback
    from ticket_router.decision_log.looks import record_look
    from ticket_router.decision_log.records import decision_rows
    from ticket_router.decision_log.store import DecisionLog, version_record
    from ticket_router.recertify import recertify_from_log, write_recalibrated
    from ticket_router.router import Router, available_cores

    run = work / f"audit_{audit_rate:g}"
    shutil.rmtree(run, ignore_errors=True)
    run.mkdir(parents=True)
    link = run / "model"
    shutil.copytree(model.resolve(), run / ".model-versions" / "trained")
    link.symlink_to(Path(".model-versions") / "trained", target_is_directory=True)
    log = DecisionLog.open(str(run / "decisions.db"))
    sample = AuditSample(audit_rate, seed=0)
    weeks = []
    for number, start in enumerate(range(0, len(tickets), week), start=1):
        part = tickets.iloc[start:start + week]
        router = Router(link, backend=backend, workers=available_cores())
        subjects, descriptions = part["subject"].tolist(), part["description"].tolist()
        probabilities = router.predict_proba(subjects, descriptions)
        decisions = router.decisions(probabilities)
        ids = [f"W{number:02d}-{i:04d}" for i in range(len(part))]
        audits = draw(decisions, ids, sample)
        log.write(decision_rows(router, probabilities, decisions, subjects, descriptions, ids, audits, "predict"),
                  [version_record(router)])
        truth = part["label"].to_numpy()
        auto = np.array([d["route"] == "auto" and not a for d, a in zip(decisions, audits)])
        predicted = np.array([d["label"] for d in decisions], dtype=object)
        finals = np.where(auto, predicted, truth)  # anchored: an auto-routed ticket keeps the model's answer
        apply_feedback(log, zip(ids, finals, [None] * len(ids)), "file")
        routed = int(auto.sum())
        weeks.append({"week": number, "tickets": len(part), "rule": router.rule.describe(),
                      "auto_routed": routed, "coverage": routed / len(part),
                      "misrouted": int((predicted[auto] != truth[auto]).sum()),
                      "misrouting": float((predicted[auto] != truth[auto]).mean()) if routed else 0.0,
                      "audited": int(np.sum(audits))})
        started = time.perf_counter()
        result = recertify_from_log(router, log, target)
        compared = result["coverage_in_force"]
        kept = compared["in_force"] is not None and compared["new"] < compared["in_force"]
        if not kept:
            write_recalibrated(link, router, result)
            record_look(log, "certify", link.resolve(), result)
        weeks[-1].update(recertified="kept the rule in force" if kept else "new rule",
                         certified_on=result["tickets"], certify_seconds=round(time.perf_counter() - started, 1),
                         log_coverage_new=compared["new"])
        print(json.dumps({"audit_rate": audit_rate, **weeks[-1]}), flush=True)
    return weeks


def cold_start(model: Path, tickets: pd.DataFrame, target: float, work: Path, backend: str, first: int = 1200,
               then: int = 483) -> dict:
    from ticket_router.decision_log.feedback import apply_feedback
    from ticket_router.decision_log.records import decision_rows
    from ticket_router.decision_log.store import DecisionLog, version_record
    from ticket_router.recertify import recalibrate, recertify_from_log, write_recalibrated
    from ticket_router.router import Router, available_cores

    run = work / "cold_start"
    shutil.rmtree(run, ignore_errors=True)
    run.mkdir(parents=True)
    link = run / "model"
    shutil.copytree(model.resolve(), run / ".model-versions" / "trained")
    link.symlink_to(Path(".model-versions") / "trained", target_is_directory=True)
    router = Router(link, backend=backend, workers=available_cores())
    own_menu = {row["max_misrouting"]: row["coverage"] for row in router.config["routing_guarantee"]["frontier"]}
    few = tickets.head(3).rename(columns={"label": "queue"})  # certifies nothing at 1%: a rule that routes nothing
    write_recalibrated(link, router, recalibrate(router, few, ["subject", "description"], "queue", 0.01))
    router = Router(link, backend=backend, workers=available_cores())
    log = DecisionLog.open(str(run / "decisions.db"))
    part = tickets.iloc[3:3 + first]
    subjects, descriptions = part["subject"].tolist(), part["description"].tolist()
    probabilities = router.predict_proba(subjects, descriptions)
    decisions = router.decisions(probabilities)
    assert not any(d["route"] == "auto" for d in decisions)
    ids = [f"C{i:05d}" for i in range(len(part))]
    log.write(decision_rows(router, probabilities, decisions, subjects, descriptions, ids, [False] * len(ids),
                            "predict"), [version_record(router)])
    counts = apply_feedback(log, zip(ids, part["label"], [None] * len(ids)), "file")
    result = recertify_from_log(router, log, target)
    write_recalibrated(link, router, result)
    router = Router(link, backend=backend, workers=available_cores())
    following = tickets.iloc[3 + first:3 + first + then]
    decided = router.route(following["subject"].tolist(), following["description"].tolist())
    auto = np.array([d["route"] == "auto" for d in decided])
    wrong = np.array([d["label"] != truth for d, truth in zip(decided, following["label"])])
    summary = {"first_tickets": first, "matched": counts["matched"], "certified_on": result["tickets"],
               "rule": router.rule.describe(), "next_tickets": len(following),
               "coverage_next": float(auto.mean()), "misrouting_next": float(wrong[auto].mean()) if auto.any() else 0.0,
               "export_calibration_split_menu_at_target": own_menu.get(target)}
    print(json.dumps({"cold_start": summary}), flush=True)
    return summary


def oracle(model: Path, tickets: pd.DataFrame, target: float, backend: str) -> float:
    """The largest share one top-probability threshold routes with misrouting <= target on these very tickets."""
    from ticket_router.router import Router, available_cores

    router = Router(model, backend=backend, workers=available_cores())
    probabilities = router.predict_proba(tickets["subject"].tolist(), tickets["description"].tolist())
    truth = np.array([router.labels.index(label) if label in router.labels else -1 for label in tickets["label"]])
    confidence = probabilities.max(-1)
    correct = probabilities.argmax(-1) == truth
    order = np.argsort(-confidence, kind="stable")
    errors = np.cumsum(~correct[order])
    counts = np.arange(1, len(order) + 1)
    ok = errors / counts <= target
    return float(counts[ok].max() / len(order)) if ok.any() else 0.0


def plot(results: dict, best: float, target: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for rate, weeks in results.items():
        x = [w["week"] for w in weeks]
        axes[0].plot(x, [w["coverage"] for w in weeks], marker="o", label=f"audit {float(rate):.0%}")
        axes[1].plot(x, [w["misrouting"] for w in weeks], marker="o", label=f"audit {float(rate):.0%}")
    axes[0].axhline(best, color="gray", linestyle="--", label="best threshold with test labels")
    axes[0].set(xlabel="week (500 tickets)", ylabel="auto-routed share", title=f"Coverage of the certified rule at {target:.0%}")
    axes[1].axhline(target, color="tab:red", linestyle="--", label="target")
    axes[1].set(xlabel="week", ylabel="misrouted among auto-routed", title="Realised misrouting (true labels)")
    for axis in axes:
        axis.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(REPO / "outputs" / "deploy_8k" / "model"))
    parser.add_argument("--audit_rates", type=float, nargs="+", default=[0.02])
    parser.add_argument("--target", type=float, default=0.03)
    parser.add_argument("--week", type=int, default=500)
    parser.add_argument("--weeks", type=int, default=None, help="stop after this many weeks (default: all of test.csv)")
    parser.add_argument("--onnx", action="store_true", help="score with the export's ONNX graph")
    parser.add_argument("--plot", default=str(REPO / "benchmarks" / "deployment.png"))
    parser.add_argument("--cold_start", action="store_true", help="the first days of a desk instead (docstring)")
    args = parser.parse_args(argv)
    test = pd.read_csv(REAL / "test.csv").rename(columns={"Document": "subject", "Topic_group": "label"})
    test = test.assign(description="").sample(frac=1.0, random_state=0).reset_index(drop=True)
    if args.weeks:
        test = test.head(args.weeks * args.week)
    backend = "onnx" if args.onnx else "torch"
    model = Path(args.model)
    if args.cold_start:
        with tempfile.TemporaryDirectory() as work:
            return cold_start(model, test, 0.10 if args.target == 0.03 else args.target, Path(work), backend)
    best = oracle(model, test, args.target, backend)
    print(f"oracle at {args.target:.0%}: {best:.1%} of test.csv", flush=True)
    results = {}
    with tempfile.TemporaryDirectory() as work:
        for rate in args.audit_rates:
            results[str(rate)] = simulate(model, test, rate, args.target, args.week, Path(work), backend)
    plot(results, best, args.target, Path(args.plot))
    summary = {"oracle": best, "target": args.target, "weeks": results}
    print(json.dumps({"oracle": best, "target": args.target}))
    return summary


if __name__ == "__main__":
    main()
