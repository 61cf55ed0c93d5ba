"""`ticket-classifier monitor --decision_log URL`: the promise judged on the desk's own tickets, from the log.

Only the tickets routed by the version in use (its fingerprint) are judged. Realised misrouting among auto-routed
tickets comes from the audit sample alone: those tickets were auto-routable by the rule, went to a person who chose a
queue without seeing the model's answer, and were drawn at random among the auto-routable ones, so their share
misrouted estimates the auto-routed tickets' without bias (the final queue of a ticket that was auto-routed is usually
the model's own answer). Each certified family gets a one-sided Clopper-Pearson interval (ticket_router/monitor.py,
`promise_check`); the promise is shown broken when a family's whole interval lies above its target. Score drift and
the predicted-queue mix are compared with the tickets the rule was certified on, and the volumes per queue reported;
drift is a warning, not a failure: only a broken promise makes the command exit 1. With no audited ticket yet it
says so and exits 0: no evidence either way.
"""

from __future__ import annotations

import numpy as np


def monitor_log(router, log, thresholds=None) -> dict:
    from ticket_data.preprocessing import clean_label

    from ..monitor import broken_families, compare_to_profile, promise_check
    from .tickets import routed_by

    profile, guarantee = router.config.get("routing_profile"), router.config.get("routing_guarantee")
    if not profile or not guarantee:
        raise ValueError(f"{router.model_dir}: the export has no calibration profile (trained before the monitor "
                         "existed); retrain it to monitor it")
    frame = routed_by(log, router.fingerprint)
    report = {"version": router.model_dir.name, "fingerprint": router.fingerprint, "tickets": int(len(frame))}
    if frame.empty:
        report.update(ok=True, alerts=[], evidence=f"no ticket in the log was routed by this version ({router.model_dir.name}) yet")
        return report
    index = {name: i for i, name in enumerate(router.labels)}
    predicted = frame["predicted"].map(lambda name: index.get(name, -1)).to_numpy()
    known = predicted >= 0  # a version's own tickets: always known, unless the log was edited
    rule_auto = (frame["rule_route"] == "auto").to_numpy()
    drift = compare_to_profile(predicted[known], frame["routing_score"].to_numpy()[known], rule_auto[known], profile,
                               guarantee, router.labels, None, thresholds)
    report["drift"] = {key: drift[key] for key in ("coverage", "label_mix", "score_histogram", "calibration_tickets")}
    report["warnings"] = drift["alerts"]
    volumes = frame.assign(queue=frame["predicted"]).groupby(["queue", "route"]).size().unstack(fill_value=0)
    report["volumes"] = {queue: {route: int(count) for route, count in row.items()} for queue, row in volumes.iterrows()}
    audited = (frame["audit"].astype(bool) & frame["final_queue"].notna()).to_numpy() & known
    finals = frame["final_queue"].map(lambda v: clean_label(v) if isinstance(v, str) else "").to_numpy()
    report["audit"] = {"auto_routable": int(rule_auto.sum()), "audited": int(frame["audit"].astype(bool).sum()),
                       "audited_with_final_queue": int(audited.sum())}
    report["alerts"] = []
    if not audited.any():
        report["evidence"] = (f"no evidence yet: {int(rule_auto.sum())} tickets were auto-routable and no audited "
                              "ticket has its final queue back (serve with --audit_rate, send final queues with "
                              "`feedback`)")
        report["ok"] = True
        return report
    wrong = np.array([router.labels[p] != f for p, f in zip(predicted[audited], finals[audited])], dtype=bool)
    check = promise_check(wrong, np.ones(int(audited.sum()), dtype=bool), predicted[audited], guarantee, router.labels)
    report["misrouting"] = {**check["overall"], "families": check["families"],
                            "confidence_per_family": check["confidence_per_family"], "queues": check["queues"]}
    report["alerts"] += broken_families(check, routed="audited auto-routable")
    overall = check["overall"]
    report["evidence"] = (f"{overall['misrouted']}/{overall['auto_routed']} audited auto-routable tickets misrouted "
                          f"({overall['rate']:.1%}, one-sided 95% interval [{overall['lower_95']:.1%}, "
                          f"{overall['upper_95']:.1%}])")
    report["ok"] = not report["alerts"]
    return report


def summarize_log(report: dict) -> str:
    lines = [f"{report['tickets']} tickets routed by {report['version']} ({report['fingerprint']})",
             report["evidence"]]
    if "audit" in report:
        audit = report["audit"]
        lines.append(f"audit sample: {audit['audited']} of {audit['auto_routable']} auto-routable tickets went to a "
                     f"person, {audit['audited_with_final_queue']} with their final queue back")
    lines += [f"warning: {warning}" for warning in report.get("warnings", [])]
    lines += [f"ALERT: {alert}" for alert in report["alerts"]]
    lines.append("promise kept so far" if report["ok"] and report.get("misrouting") else
                 "promise shown broken" if not report["ok"] else "no verdict yet")
    return "\n".join(lines)
