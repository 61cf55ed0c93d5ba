"""The decision log's commands: `feedback`, `export-labelled`, `promote`, `rollback` (`calibrate --decision_log` and
`monitor --decision_log` live with their commands in ticket_router/cli.py).

    ticket-classifier feedback --decision_log URL --input closed.csv --id_column number --label_column first_group
    ticket-classifier export-labelled --decision_log URL --output desk_tickets.csv
    ticket-classifier promote --model M --candidate C --decision_log URL [--dry_run] [--margin 0.005]
    ticket-classifier rollback --model M
"""

from __future__ import annotations

from pathlib import Path

# numpy and the rest are imported inside each command: `ticket-classifier --help` builds these parsers and must answer
# at once.


def cmd_feedback(args) -> int:
    """Exit 0 whatever the counts; 2 for bad input: an unreadable file, a missing column, or a log that does not exist or
    cannot be opened (ticket_router/cli.py's error handling)."""
    from ..tables import read_input
    from .feedback import apply_feedback, feedback_line
    from .store import DecisionLog

    columns = [args.id_column, args.label_column, *([args.closing_column] if args.closing_column else [])]
    frame = read_input(args.input, columns, args.extra_fields)
    log = DecisionLog.open(args.decision_log, create=False)
    closing = frame[args.closing_column] if args.closing_column else [None] * len(frame)
    counts = apply_feedback(log, zip(frame[args.id_column], frame[args.label_column], closing), "file")
    print(feedback_line(counts))
    return 0


def cmd_export_labelled(args) -> int:
    """The tickets a person decided, with text and final queue, as a training file."""
    from ..tables import check_output, write_table
    from .store import DecisionLog
    from .tickets import has_text, person_decided

    output = check_output(args.output)
    log = DecisionLog.open(args.decision_log, create=False)
    frame = person_decided(log)
    kept = frame[has_text(frame)]
    table = kept.rename(columns={"final_queue": "queue"})[
        ["ticket_id", "subject", "description", "queue", "closing_queue", "decided_at", "audit", "model_version"]]
    table = table.drop_duplicates(subset="ticket_id", keep="first")
    write_table(table, output, escape=False)  # data to train on: values as the desk wrote them
    print(f"{len(table)} tickets a person decided -> {output} (train on it with --text_columns subject description "
          f"--label_column queue); left out: {int((~has_text(frame)).sum())} kept as hashes only")
    return 0


def comparison_tickets(log, routers, compare_share: float):
    """The person-decided tickets with text that none of ``routers`` trained on, each text once, split by text hash:
    (frame, cleaned subjects, cleaned descriptions, compare mask, certify mask, counts left out)."""
    import numpy as np

    from ticket_data.preprocessing import clean_label, clean_text

    from ..contract import hash_prefix64, ticket_text_sha256
    from .. import seen_tickets
    from .tickets import has_text, person_decided

    frame = person_decided(log)
    frame = frame[has_text(frame)].reset_index(drop=True)
    subjects = [clean_text(v) for v in frame["subject"]]
    descriptions = [clean_text(v) for v in frame["description"]]
    hashes = [ticket_text_sha256(s, d) for s, d in zip(subjects, descriptions)]
    trained = np.zeros(len(frame), dtype=bool)
    for router in routers:
        trained |= seen_tickets.seen_mask(seen_tickets.load(router.model_dir), hashes)
    first, repeated = set(), np.zeros(len(frame), dtype=bool)
    for i, digest in enumerate(hashes):
        repeated[i] = digest in first or not (subjects[i] or descriptions[i])
        first.add(digest)
    usable = ~trained & ~repeated
    compare = usable & np.array([hash_prefix64(h) % 1000 < compare_share * 1000 for h in hashes], dtype=bool)
    frame["final_queue"] = frame["final_queue"].map(clean_label)
    return frame, subjects, descriptions, compare, usable & ~compare, {"trained_on": int(trained.sum()),
                                                                       "repeated_or_empty": int(repeated.sum())}


def certified_coverage(router, probabilities, truth, max_misrouting, delta) -> float:
    """The share a rule certified on these tickets (as `calibrate` would) auto-routes of them."""
    import numpy as np

    from ..recertify import certify_groups, settings

    index = {name: i for i, name in enumerate(router.labels)}
    labels = np.array([index.get(name, -1) for name in truth])
    setting = settings(router, max_misrouting, delta, None)
    rule, _ = certify_groups(router, {"comparison": (probabilities, labels)}, setting, setting["delta"], "comparison",
                             with_frontier=False)
    return rule.stats(probabilities, labels)["coverage"] if len(labels) else 0.0


def cmd_promote(args) -> int:
    """Exit 0 when the candidate was promoted (or would be, with --dry_run), 1 when it was not."""
    import numpy as np

    from ..atomic import current_version
    from ..recertify import recertify_from_log, write_recalibrated
    from ..router import Router, available_cores
    from .looks import record_look
    from .promotion import paired_bootstrap, verdict
    from .store import DecisionLog

    if not 0 < args.compare_share < 1:
        raise ValueError(f"--compare_share must be in (0, 1), got {args.compare_share}")
    log = DecisionLog.open(args.decision_log, create=False)
    backend = "onnx" if args.onnx else "torch"
    started_from = current_version(args.model)
    champion = Router(args.model, backend=backend, workers=available_cores())
    candidate = Router(args.candidate, backend=backend, workers=available_cores())
    frame, subjects, descriptions, compare, certify_part, left_out = comparison_tickets(
        log, (champion, candidate), args.compare_share)
    if not compare.any():
        raise ValueError("promote: no ticket a person decided that neither export trained on is in the log yet; send "
                         "final queues with `feedback` first")
    texts = [subjects[i] for i in np.flatnonzero(compare)], [descriptions[i] for i in np.flatnonzero(compare)]
    truth = frame["final_queue"].to_numpy()[compare]
    scored = {}
    for name, router in (("champion", champion), ("candidate", candidate)):
        probabilities = router.predict_proba(*texts, batch_size=args.batch_size, progress=not args.quiet, cleaned=True)
        scored[name] = (probabilities, np.array(router.labels, dtype=object)[probabilities.argmax(-1)])
    comparison = paired_bootstrap(truth, scored["champion"][1], scored["candidate"][1])
    promise = champion.config.get("routing_guarantee") or {}
    target = args.max_misrouting if args.max_misrouting is not None else promise.get("max_misrouting", 0.03)
    delta = args.delta if args.delta is not None else promise.get("delta", 0.05)
    coverage = {name: certified_coverage(router, scored[name][0], truth, target, delta)
                for name, router in (("champion", champion), ("candidate", candidate))}
    decision = verdict(comparison, coverage["champion"], coverage["candidate"], args.margin)
    print(f"{comparison['tickets']} tickets a person decided, that neither export trained on (left out: {left_out}; "
          f"{int(certify_part.sum())} more kept apart to certify the winner):")
    for name in ("accuracy", "macro_f1"):
        row = comparison[name]
        print(f"  {name}: champion {row['champion']:.4f}, candidate {row['candidate']:.4f}, difference "
              f"{row['difference']:+.4f} (95% lower bound {row['lower_95']:+.4f}; allowed -{args.margin:.4f})")
    print(f"  certified on these tickets: champion auto-routes {coverage['champion']:.1%}, candidate "
          f"{coverage['candidate']:.1%}")
    if not decision["promote"]:
        print("not promoted: " + "; ".join(decision["reasons"]))
        return 1
    if args.dry_run:
        print("--dry_run: the candidate would be promoted; nothing is written")
        return 0
    result = recertify_from_log(candidate, log, target, delta, None, args.batch_size, progress=not args.quiet,
                                only_rows=frame["id"].to_numpy()[certify_part].tolist())
    path = write_recalibrated(args.model, candidate, result, expected=started_from)
    version = Path(path).resolve()
    record_look(log, "promote", version, {"used_ids": frame["id"].to_numpy()[compare].tolist(),
                                          "comparison": comparison, "decision": decision})
    record_look(log, "certify", version, result)
    print(f"promoted: {args.candidate} is now {path} ({version.name}), its rule certified on "
          f"{result['tickets']} tickets that took no part in the comparison: {result['rule'].describe()}; "
          f"`ticket-classifier rollback --model {args.model}` restores {champion.model_dir.name}")
    return 0


def cmd_rollback(args) -> int:
    from ..atomic import current_version, previous_version, switch_link

    now = current_version(args.model)
    if now is None:
        raise ValueError(f"--model {args.model}: not found")
    previous = previous_version(args.model)
    if previous is None:
        raise ValueError(f"--model {args.model}: no earlier version is kept beside it")
    switch_link(args.model, previous, expected=now)
    print(f"{args.model} now names {previous.name} again (was {Path(now).name}); a running service picks it up "
          "within its --reload_interval")
    return 0


def add_log_commands(commands, add_model_arguments) -> None:
    feedback = commands.add_parser("feedback", help="final queues back into the decision log, from the ticketing "
                                   "system's export of closed tickets")
    feedback.add_argument("--decision_log", required=True, metavar="URL", help="the decision log (file or URL)")
    feedback.add_argument("--input", required=True, help="closed tickets (CSV, TSV, JSONL, Parquet or Excel)")
    feedback.add_argument("--id_column", required=True, help="the column of the ticket ids the router was given")
    feedback.add_argument("--label_column", required=True,
                          help="the FIRST queue a person chose (e.g. ServiceNow's first assignment group), not where "
                          "the ticket ended after escalations (docs/routing.md)")
    feedback.add_argument("--closing_column", default=None, help="where the ticket ended, kept for reading (optional)")
    feedback.add_argument("--extra_fields", choices=["error", "drop"], default="error",
                          help="a CSV row with more fields than the header: stop naming its line, or drop the extras")
    feedback.set_defaults(func=cmd_feedback)

    export = commands.add_parser("export-labelled", help="the tickets a person decided, from the decision log, as a "
                                 "training file")
    export.add_argument("--decision_log", required=True, metavar="URL")
    export.add_argument("--output", required=True, help="a .csv, .jsonl or .parquet file")
    export.set_defaults(func=cmd_export_labelled)

    promote = commands.add_parser("promote", help="replace the export in use by a candidate only when it proves "
                                  "better on the same person-decided tickets of the decision log")
    add_model_arguments(promote)
    promote.add_argument("--candidate", required=True, help="the challenger's export folder")
    promote.add_argument("--decision_log", required=True, metavar="URL")
    promote.add_argument("--margin", type=float, default=0.005,
                         help="how much worse (accuracy, macro-F1) the candidate may be at 95%% (default 0.5 point)")
    promote.add_argument("--compare_share", type=float, default=0.5,
                         help="share of the tickets (by text hash) that compare; the rest certify the winner")
    promote.add_argument("--max_misrouting", type=float, default=None, help="target (default: the champion's)")
    promote.add_argument("--delta", type=float, default=None, help="default: the champion's")
    promote.add_argument("--dry_run", action="store_true", help="compare and say; write nothing")
    promote.set_defaults(func=cmd_promote)

    rollback = commands.add_parser("rollback", help="point the model link at the version before the one in use")
    rollback.add_argument("--model", required=True, help="the model link (outputs/.../model)")
    rollback.set_defaults(func=cmd_rollback)
