"""`ticket-classifier`: route tickets with an exported model.

    ticket-classifier predict  --model DIR --subject S --description D [--onnx]
    ticket-classifier predict  --model DIR --input tickets.csv --output routed.csv [--onnx]
    ticket-classifier serve    --model DIR --host 127.0.0.1 --port 8000 [--onnx] [--keys keys.json]
    ticket-classifier keys create --keys keys.json --name desk [--scopes route feedback metrics]
    ticket-classifier monitor  --model DIR --input live.csv [--label_column queue]   (train extra)
    ticket-classifier calibrate --model DIR --input labelled.csv --label_column queue [--max_misrouting 0.05] [--onnx]
    ticket-classifier export-onnx --model DIR --quantize int8           (train extra; custom_trainer/commands.py)
    ticket-classifier evaluate --model DIR --input labelled.csv          (train extra; custom_trainer/commands.py)
    ticket-classifier audit --input export.csv --label_column queue      (train extra; custom_trainer/commands.py)

`pip install ticket-classifier` routes and serves ONNX exports (ONNX Runtime, no torch); `[train]` adds training,
the PyTorch backend, evaluation, monitoring and ONNX export; `[serve]` the HTTP service. `export-onnx`, `evaluate`
and `audit` belong to the training side, which registers them as entry points (contract.COMMANDS_GROUP): this
module never imports it.
"""

from __future__ import annotations

import argparse
import json
import sys
from importlib.metadata import entry_points
from pathlib import Path

from .contract import COMMANDS_GROUP

# Nothing heavy at import time: `ticket-classifier --help` must answer at once. Commands import what they use.


def open_router(args, file: bool = False):
    """The model of ``--model``; for a file (many batches), one batch per core at a time (Router's ``workers``)."""
    from .router import Router, available_cores

    return Router(args.model, backend="onnx" if args.onnx else "torch", workers=available_cores() if file else 1)


def _needs(extra: str, error: ImportError) -> ValueError:
    return ValueError(f"this command needs the {extra} extra (pip install 'ticket-classifier[{extra}]'): {error}")


def cmd_predict(args) -> int:
    # Checks that need no model come first: a wrong output name should not cost a model load and a scoring run.
    if args.input is None:
        if args.subject is None and args.description is None:
            raise ValueError("predict: give --subject and/or --description, or --input FILE --output FILE")
        if not (args.subject or "").strip() and not (args.description or "").strip():
            raise ValueError("predict: no text: the subject and description are empty")
        log = open_log(args)
        router = open_router(args)
        scores = router.score([args.subject or ""], [args.description or ""])
        probabilities = scores.probabilities
        decision = router.decisions(probabilities, scores.fields)[0]
        if log is not None:
            ticket_id = log_decisions(log, router, probabilities, [decision], [args.subject or ""],
                                      [args.description or ""], [args.id], args)[0]
            print(f"ticket {ticket_id} recorded in the decision log")
        for rank, top in enumerate(decision["top3"], start=1):
            print(f"{rank}. {top['label']}: {top['score']:.1%}")
        print(f"route: {decision['route']} (rule: {router.rule.describe()})")
        if "prediction_set" in decision:
            level = f"{1 - router.set_alpha:.0%} " if isinstance(router.set_alpha, (int, float)) else ""
            print(f"likely queues ({level}prediction set): "
                  + ", ".join(f"{member['label']} ({member['score']:.1%})" for member in decision["prediction_set"]))
        for name, field in decision.get("fields", {}).items():
            likely = (f"; likely: {', '.join(m['label'] for m in field['prediction_set'])}"
                      if "prediction_set" in field else "")
            print(f"{name}: {field['label']} ({field['score']:.1%}); top 3: "
                  + ", ".join(f"{t['label']} {t['score']:.1%}" for t in field["top3"]) + likely)
        if args.similar:
            for rank, neighbour in enumerate(router.similar_tickets([args.subject or ""], [args.description or ""],
                                                                    args.similar)[0], start=1):
                text = f": {neighbour['text'][:120]}" if "text" in neighbour else ""
                print(f"similar {rank}. training row {neighbour['row']} ({neighbour['label']}, cosine "
                      f"{neighbour['similarity']:.3f}){text}")
        if args.explain:
            from .explain import explain_ticket

            result = explain_ticket(router, args.subject or "", args.description or "")
            print(f"words that decided {result['label']} ({result['forward_passes']} forward passes; the drop in its "
                  "probability without each): " + ", ".join(f"{w['text']!r} {w['effect']:+.1%}" for w in result["words"]))
        return 0
    from .tables import check_output, read_input, route_frame, write_table

    if args.output is None:
        raise ValueError("predict: --input needs --output")
    if args.explain or args.similar:
        raise ValueError("predict: --explain and --similar take one ticket (--subject/--description), not --input")
    output = check_output(args.output)
    log = open_log(args)
    frame = read_input(args.input, args.text_columns + ([args.id_column] if args.id_column else []), args.extra_fields)
    router = open_router(args, file=True)
    if log is None:
        routed = route_frame(router, frame, args.text_columns, args.batch_size, progress=not args.quiet)
    else:
        from .tables import frame_texts, routed_frame

        subjects, descriptions, has_text = frame_texts(frame, args.text_columns)
        probabilities, fields = None, None
        if has_text.any():
            scores = router.score(subjects[has_text].tolist(), descriptions[has_text].tolist(),
                                  batch_size=args.batch_size, progress=not args.quiet, cleaned=True)
            probabilities, fields = scores.probabilities, scores.fields
        routed = routed_frame(router, frame, has_text, probabilities, fields)
        given = ([None if v is None or str(v).strip() == "" or v != v else str(v).strip()
                  for v in frame.loc[has_text, args.id_column]] if args.id_column else [None] * int(has_text.sum()))
        ids = log_decisions(log, router, probabilities, router.decisions(probabilities, fields)
                            if probabilities is not None else [], subjects[has_text].tolist(),
                            descriptions[has_text].tolist(), given, args)
        routed.insert(0, "ticket_id", None)
        routed.loc[has_text, "ticket_id"] = ids
    write_table(routed, output)
    counts = routed["route"].value_counts().to_dict()
    print(f"{len(routed)} tickets -> {output}: {counts.get('auto', 0)} auto-routed, "
          f"{counts.get('triage', 0)} to triage, {int(routed['error'].notna().sum())} without text")
    return 0


def open_log(args):
    """The decision log of ``--decision_log`` (None without it), opened before any scoring: a bad URL costs nothing."""
    if getattr(args, "decision_log", None) is None:
        return None
    from .decision_log.store import DecisionLog

    return DecisionLog.open(args.decision_log)


def log_decisions(log, router, probabilities, decisions, subjects, descriptions, ticket_ids, args) -> list[str]:
    """Record routed tickets (source "cli"); returns their ids (made up where none was given)."""
    from .decision_log.records import check_ticket_id, decision_rows, new_ticket_id
    from .decision_log.store import version_record

    ids = [check_ticket_id(i) if i is not None else new_ticket_id() for i in ticket_ids]
    if ids:
        log.write(decision_rows(router, probabilities, decisions, subjects, descriptions, ids, [False] * len(ids),
                                "cli", store_text=not args.log_hashes_only), [version_record(router)])
    return ids


def field_monitor(routed, fields: list[dict]) -> dict:
    """Each extra field on live tickets: the mix of predicted values and, where the file has the field's column
    (named like the field), the share predicted right among the rows with a value."""
    report = {}
    for field in fields:
        name = field["name"]
        predicted = routed[f"predicted_{name}"]
        entry = {"predicted_mix": {label: float((predicted == label).mean()) for label in field["labels"]}}
        if name in routed.columns:
            known = routed[name].notna() & (routed[name].astype(str).str.strip() != "")
            if known.any():
                entry["accuracy"] = float((predicted[known] == routed.loc[known, name].astype(str).str.strip()).mean())
                entry["labelled"] = int(known.sum())
        report[name] = entry
    return report


def cmd_monitor(args) -> int:
    """Exit 0 when live tickets look like the calibration tickets, 1 when a check fires (see ticket_router/monitor.py)."""
    try:
        from .monitor import MonitorThresholds, compare_to_profile, plot_monitor, summarize
    except ImportError as error:
        raise _needs("train", error) from None
    from .atomic import write_text
    from .tables import read_input, route_frame

    thresholds = MonitorThresholds(args.coverage_tolerance, args.mix_tolerance, args.significance)
    output_dir = Path(args.output_dir)
    if output_dir.exists() and not output_dir.is_dir():
        raise ValueError(f"--output_dir {output_dir} exists and is not a folder")
    if (args.input is None) == (args.decision_log is None):
        raise ValueError("monitor: give the live tickets as --input FILE or --decision_log URL, one of the two")
    if args.decision_log is not None:
        from .decision_log.monitoring import monitor_log, summarize_log
        from .decision_log.store import DecisionLog, redacted

        log = DecisionLog.open(args.decision_log, create=False)
        router = open_router(args, file=True)
        report = monitor_log(router, log, thresholds)
        report["decision_log"] = redacted(log.url)
        output_dir.mkdir(parents=True, exist_ok=True)
        write_text(output_dir / "monitor.json", json.dumps(report, indent=2, default=str) + "\n")
        if "drift" in report:
            plot_monitor(report["drift"], output_dir / "monitor.png")
        print(summarize_log(report))
        print(f"report: {output_dir / 'monitor.json'}" + (f", {output_dir / 'monitor.png'}" if "drift" in report else ""))
        return 0 if report["ok"] else 1
    columns = [*args.text_columns, *([args.label_column] if args.label_column else [])]
    frame = read_input(args.input, columns, args.extra_fields)
    router = open_router(args, file=True)
    profile, guarantee = router.config.get("routing_profile"), router.config.get("routing_guarantee")
    if not profile or not guarantee:
        raise ValueError(f"{args.model}: the export has no calibration profile (trained before the monitor existed); "
                         "retrain it to monitor it")
    routed = route_frame(router, frame, args.text_columns, args.batch_size, progress=not args.quiet)
    routed = routed[routed["error"].isna()]
    index = {label: i for i, label in enumerate(router.labels)}
    report = compare_to_profile(
        routed["predicted"].map(index).to_numpy(), routed["routing_score"].astype(float).to_numpy(),
        (routed["route"] == "auto").to_numpy(), profile, guarantee, router.labels,
        routed[args.label_column].tolist() if args.label_column else None, thresholds)
    report["input"] = str(args.input)
    if router.fields:
        report["fields"] = field_monitor(routed, router.fields)
    output_dir.mkdir(parents=True, exist_ok=True)
    write_text(output_dir / "monitor.json", json.dumps(report, indent=2) + "\n")
    plot_monitor(report, output_dir / "monitor.png")
    print(summarize(report))
    print(f"report: {output_dir / 'monitor.json'}, {output_dir / 'monitor.png'}")
    return 0 if report["ok"] else 1


def cmd_calibrate(args) -> int:
    """Re-certify the routing rule on labelled tickets (a file, or the decision log) and write it as a new version of
    the export."""
    from .guarantee_card import frontier_lines, guarantee_line, menu_line
    from .recertify import recalibrate, recertify_from_log, write_recalibrated

    for name, value in (("max_misrouting", args.max_misrouting), ("delta", args.delta)):
        if value is not None and not 0 < value < 1:
            raise ValueError(f"--{name} must be a fraction in (0, 1), got {value}")
    if not 0 <= args.menu_share < 1:
        raise ValueError(f"--menu_share must be a share in [0, 1), got {args.menu_share}")
    if (args.input is None) == (args.decision_log is None):
        raise ValueError("calibrate: give the labelled tickets as --input FILE (with --label_column) or "
                         "--decision_log URL, one of the two")
    log = None
    if args.decision_log is not None:
        from .decision_log.store import DecisionLog

        log = DecisionLog.open(args.decision_log, create=False)
        router = open_router(args, file=True)
        result = recertify_from_log(router, log, args.max_misrouting, args.delta, args.queue_max_misrouting,
                                    args.batch_size, progress=not args.quiet, menu_share=args.menu_share)
        what = "tickets of the decision log"
    else:
        from .tables import read_input

        if not args.label_column:
            raise ValueError("calibrate --input needs --label_column (the queue people finally assigned)")
        frame = read_input(args.input, [*args.text_columns, args.label_column], args.extra_fields)
        router = open_router(args, file=True)
        result = recalibrate(router, frame, args.text_columns, args.label_column, args.max_misrouting, args.delta,
                             args.queue_max_misrouting, str(args.input), args.batch_size, progress=not args.quiet,
                             menu_share=args.menu_share)
        what = "labelled tickets"
    guarantee, rule = result["guarantee"], result["rule"]
    print(f"{result['tickets']} {what} certify: {rule.describe()}; {guarantee_line(guarantee)}")
    print(f"  certified on {guarantee['certified_on']}")
    if guarantee.get("calibration"):
        print(f"  on these tickets: {guarantee['calibration']['coverage']:.1%} auto-routed, "
              f"{guarantee['calibration']['misrouting']:.2%} of them misrouted")
    for name, group in (guarantee.get("groups") or {}).items():
        print(f"  {name}: {group['tickets']} tickets")
    left = {k: v for k, v in guarantee["left_out"].items() if v}
    print("  left out: " + (", ".join(f"{v} {k.replace('_', ' ')}" for k, v in left.items()) or "none"))
    if guarantee["left_out"].get("trained_or_validated") is None:
        print("  (this export keeps no list of the tickets it trained on: retrain it so that they are left out)")
    if guarantee["unknown_queues"]:
        print(f"  kept, counted as misrouted when auto-routed: queues the model does not know "
              f"{guarantee['unknown_queues']}")
    if result.get("menu") is not None:
        print("  " + menu_line(result["menu"], guarantee["left_out"]["held_back_for_the_menu"]))
    else:
        for line in frontier_lines(guarantee):
            print("  " + line)
        if args.dry_run and guarantee.get("frontier"):
            print("  careful: a target read off this menu must not be certified on these same tickets (it would "
                  "promise more than it keeps); run --dry_run with --menu_share 0.3 to read the menu on a held-back "
                  "part, then certify with the same --menu_share")
    sets = result.get("prediction_sets")
    if sets:
        floor = "any probability" if sets["quantile"] is None else f"probability >= {1 - sets['quantile']:.4f}"
        print(f"prediction sets: the queues with {floor} hold the right one for {1 - sets['alpha']:.0%} of tickets "
              f"drawn like these {sets['calibration_size']}")
    if args.dry_run:
        print("--dry_run: the export is unchanged")
        return 0
    compared = result.get("coverage_in_force") or {}
    if compared.get("in_force") is not None and compared["new"] < compared["in_force"] and not args.allow_less:
        needed = [f"{f['family']}: ~{f['calibration_tickets_needed']:,}" for f in guarantee.get("families", [])
                  if f.get("threshold") is None and f.get("calibration_tickets_needed")]
        print(f"kept the rule in force: on the {compared['tickets']} tickets it routed it auto-routes "
              f"{compared['in_force']:.1%}, the rule these tickets certify would auto-route {compared['new']:.1%} "
              "(its own promise still holds; more person-decided tickets, audited ones above all, will certify more"
              + (f"; tickets needed per group and family: {', '.join(needed)}" if needed else "")
              + "); --allow_less writes it anyway")
        return 0
    path = write_recalibrated(args.model, router, result)
    version = Path(path).resolve()
    if log is not None:
        from .decision_log.looks import record_look

        record_look(log, "certify", version, result)
    print(f"written: a new version of {path} (now {version.name}; the previous version {router.model_dir.name} is "
          "kept beside it); a running service picks it up within its --reload_interval")
    return 0


def cmd_serve(args) -> int:
    from .service.app import check_exposure

    check_exposure(args.host, args.keys, args.insecure)  # before FastAPI is imported or the model loaded
    try:
        from .service.app import serve
    except ImportError as error:
        raise _needs("serve", error) from None
    serve(args.model, host=args.host, port=args.port, max_batch=args.max_batch, max_chars=args.max_chars,
          backend="onnx" if args.onnx else "torch", max_queue=args.max_queue, batch_wait_ms=args.batch_wait_ms,
          docs=args.docs, workers=args.workers, score_batch=args.score_batch, keys_file=args.keys,
          allowed_hosts=args.allowed_hosts, insecure=args.insecure, with_metrics=not args.no_metrics,
          decision_log=args.decision_log, audit_rate=args.audit_rate, audit_seed=args.audit_seed,
          log_text=not args.log_hashes_only, reload_interval=args.reload_interval)
    return 0


def add_log_arguments(sub: argparse.ArgumentParser) -> None:
    """Where routed tickets are recorded (serve, predict)."""
    sub.add_argument("--decision_log", default=None, metavar="URL",
                     help="record every routed ticket in this decision log: a SQLite file (decisions.db, made on first "
                     "use) or postgresql://user@host/db (several replicas); nothing is logged without it")
    sub.add_argument("--log_hashes_only", action="store_true",
                     help="with --decision_log: keep a hash of each ticket's text, not the text (a retrain and "
                     "re-certification from the log then need the texts from elsewhere)")


def add_model_arguments(sub: argparse.ArgumentParser, batch: bool = True) -> None:
    """The options every command that scores tickets takes (the training side's commands too)."""
    sub.add_argument("--model", required=True, help="exported model folder (outputs/.../model)")
    sub.add_argument("--onnx", action="store_true", help="run the ONNX export (model folder's onnx/)")
    if batch:
        sub.add_argument("--text_columns", nargs="+", default=["subject", "description"])
        sub.add_argument("--batch_size", type=int, default=64)
        sub.add_argument("--quiet", action="store_true", help="no progress bar")
        sub.add_argument("--extra_fields", choices=["error", "drop"], default="error",
                         help="a CSV row with more fields than the header: stop naming its line, or drop the extras")


# What the training side's commands do, for `--help` (their options: `ticket-classifier NAME --help`).
TRAINING_COMMANDS_HELP = {
    "evaluate": "classification report for a labelled file (train extra)",
    "export-onnx": "export to ONNX (optionally int8-quantised) for ONNX Runtime (train extra)",
    "audit": "likely label errors, overlapping queues and near-duplicates of a labelled export (train extra)",
}


def training_commands() -> dict:
    """The commands the training side registered (entry points of COMMANDS_GROUP), by name; none in a checkout
    that was never pip-installed."""
    return {entry.name: entry for entry in entry_points(group=COMMANDS_GROUP)}


def run_training_command(entry, argv: list[str]) -> int:
    """Load a registered command only when asked for (it imports the training libraries) and run it."""
    try:
        command = entry.load()
    except ImportError as error:
        raise _needs("train", error) from None
    return command(argv)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ticket-classifier", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)

    predict = commands.add_parser("predict", help="top-3 for one ticket, or route a file of tickets")
    add_model_arguments(predict)
    predict.add_argument("--subject")
    predict.add_argument("--description")
    predict.add_argument("--input", help="CSV, JSONL, Parquet or Excel file of tickets")
    predict.add_argument("--output", help="where to write every input row with its routing (.csv, .jsonl, .parquet)")
    predict.add_argument("--similar", type=int, default=0, metavar="K",
                         help="one ticket: the K most similar training tickets (exports trained with similar_index)")
    add_log_arguments(predict)
    predict.add_argument("--id", default=None, help="one ticket: the desk's ticket id, kept in the decision log")
    predict.add_argument("--id_column", default=None,
                         help="a file: the column of the desk's ticket ids, kept in the decision log (made up where "
                         "blank and written to the output's ticket_id column)")
    predict.add_argument("--explain", action="store_true",
                         help="one ticket: the words whose removal lowers the predicted queue's probability most "
                         "(occlusion, at most 65 forward passes)")
    predict.set_defaults(func=cmd_predict)

    monitor = commands.add_parser("monitor", help="compare live tickets with the tickets the rule was certified on; "
                                  "exit 1 on drift or, from the decision log, when the promise is shown broken")
    add_model_arguments(monitor)
    monitor.add_argument("--input", default=None, help="live tickets (CSV, JSONL or Parquet); or --decision_log")
    monitor.add_argument("--decision_log", default=None, metavar="URL",
                         help="judge the tickets this version routed, from the decision log: misrouting from the audit "
                         "sample, per certified family; exit 1 only when the promise is shown broken")
    monitor.add_argument("--label_column", default=None, help="the label people finally assigned, if known")
    monitor.add_argument("--output_dir", default="monitor", help="where monitor.json and monitor.png go")
    monitor.add_argument("--coverage_tolerance", type=float, default=0.10,
                         help="how far (absolute) the auto-routed share may move from the calibration tickets'")
    monitor.add_argument("--mix_tolerance", type=float, default=0.15,
                         help="largest total-variation distance of the predicted-label mix from the calibration tickets'")
    monitor.add_argument("--significance", type=float, default=0.01, help="label-mix drift must be beyond noise at this level")
    monitor.set_defaults(func=cmd_monitor)

    calibrate = commands.add_parser(
        "calibrate", help="re-certify the routing rule on your labelled tickets; writes a new version of the export")
    add_model_arguments(calibrate)
    calibrate.add_argument("--input", default=None, help="labelled tickets that trained and chose nothing (CSV, JSONL, "
                           "Parquet or Excel); or --decision_log")
    calibrate.add_argument("--label_column", default=None, help="with --input: the queue people finally assigned")
    calibrate.add_argument("--decision_log", default=None, metavar="URL",
                           help="certify on the tickets a person decided in this decision log (SQLite file or "
                           "postgresql://...) instead of --input")
    calibrate.add_argument("--allow_less", action="store_true",
                           help="with --decision_log: write the new rule even when it auto-routes less than the rule in "
                           "force (by default that one is kept: its promise still holds)")
    calibrate.add_argument("--menu_share", type=float, default=0.0,
                           help="hold back this share of the tickets (fixed by text hash) for the menu of targets; "
                           "they never certify (use the same share for --dry_run and the real run)")
    calibrate.add_argument("--max_misrouting", type=float, default=None,
                           help="target share misrouted among auto-routed tickets (default: the export's)")
    calibrate.add_argument("--delta", type=float, default=None,
                           help="the promise holds with probability >= 1 - delta (default: the export's)")
    calibrate.add_argument("--queue_max_misrouting", nargs="*", default=None, metavar="QUEUE=TARGET",
                           help="queues with a target of their own, e.g. Security=0.01 (default: the export's)")
    calibrate.add_argument("--dry_run", action="store_true", help="print what would be certified; write nothing")
    calibrate.set_defaults(func=cmd_calibrate)

    for name in training_commands():  # listed for --help; main() hands their arguments over unparsed
        commands.add_parser(name, add_help=False, help=TRAINING_COMMANDS_HELP.get(name, "(train extra)"))

    serve = commands.add_parser("serve", help="HTTP service: the triage page, POST /predict, /explain, /similar, "
                                "GET /metrics, /health, /info")
    add_model_arguments(serve, batch=False)
    serve.add_argument("--host", default="127.0.0.1",
                       help="address to bind; anything but loopback needs --keys (or --insecure)")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--max_batch", type=int, default=256, help="most tickets in one request, and in one scoring call")
    serve.add_argument("--max_chars", type=int, default=20_000, help="longest subject or description accepted")
    serve.add_argument("--max_queue", type=int, default=None,
                       help="tickets that may wait to be scored before new requests get 503 (default 4 x max_batch)")
    serve.add_argument("--batch_wait_ms", type=float, default=5.0,
                       help="how long the scorer waits for more requests to fill a batch")
    serve.add_argument("--workers", type=int, default=None,
                       help="scoring calls at once, each on one core (default: one per core); fewer leaves cores free")
    serve.add_argument("--score_batch", type=int, default=None,
                       help="tickets per scoring call: a micro-batch is sorted by length and scored this many at a time "
                       "(default 2, measured: ticket_router/service/app.py)")
    serve.add_argument("--docs", action="store_true", help="serve /docs and /openapi.json (off by default)")
    serve.add_argument("--keys", default=None, metavar="FILE",
                       help="every endpoint but /health needs a key of this file (ticket-classifier keys create)")
    serve.add_argument("--allowed_hosts", nargs="+", default=None, metavar="HOST",
                       help="Host headers answered, others get 400 (default: the bind address and localhost names; "
                       "'*' answers any)")
    serve.add_argument("--insecure", action="store_true",
                       help="allow a non-loopback --host without --keys (anyone who reaches the port may route)")
    serve.add_argument("--no_metrics", action="store_true", help="no /metrics (Prometheus) and no request counting")
    add_log_arguments(serve)
    serve.add_argument("--audit_rate", type=float, default=0.0, metavar="R",
                       help="with --decision_log: send this share of the tickets the rule would auto-route to a person "
                       "instead, without the model's suggestion (what re-certification and the monitor judge "
                       "auto-routing by; e.g. 0.02)")
    serve.add_argument("--audit_seed", type=int, default=0, help="seed of the audit sample (a hash of it and the id)")
    serve.add_argument("--reload_interval", type=float, default=10.0,
                       help="seconds between checks of the model link for a new version (0: never)")
    serve.set_defaults(func=cmd_serve)

    from .service.keys import add_keys_command

    add_keys_command(commands)
    from .decision_log.commands import add_log_commands

    add_log_commands(commands, add_model_arguments)
    return parser


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    registered = training_commands()
    try:
        if argv and argv[0] in registered:
            return run_training_command(registered[argv[0]], argv[1:])
        args = build_parser().parse_args(argv)
        return args.func(args)
    except (ValueError, OSError) as error:  # bad input, a missing or unwritable file: one line, no traceback
        print(f"ticket-classifier: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
