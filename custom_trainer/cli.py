"""`ticket-classifier`: route tickets with an exported model.

    ticket-classifier predict  --model DIR --subject S --description D
    ticket-classifier predict  --model DIR --input tickets.csv --output routed.csv
    ticket-classifier evaluate --model DIR --input labelled.csv
    ticket-classifier monitor  --model DIR --input live.csv [--label_column queue]
    ticket-classifier export-onnx --model DIR --quantize int8
    ticket-classifier serve    --model DIR --host 127.0.0.1 --port 8000
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd

NO_TEXT = "no text: the subject and description are empty"


def _load_router(model_dir: str, onnx: bool = False):
    if onnx:
        from .onnx_export import OnnxRouter

        return OnnxRouter(model_dir)
    from .predict import TicketRouter

    return TicketRouter(model_dir)


def route_frame(router, frame: pd.DataFrame, text_columns, batch_size: int, progress: bool) -> pd.DataFrame:
    """Every input row with predicted, score, top3, route and error (rows with no text are kept, not dropped)."""
    from ticket_data.loading import ticket_texts

    from .reports import top_k

    subjects, descriptions = ticket_texts(frame, text_columns)
    has_text = ((subjects != "") | (descriptions != "")).to_numpy()
    out = frame.copy()
    for column in ("predicted", "score", "routing_score", "top3", "route", "error"):
        out[column] = None
    if has_text.any():
        probabilities = router.predict_proba(subjects[has_text].tolist(), descriptions[has_text].tolist(),
                                             batch_size=batch_size, progress=progress)
        labels = router.labels
        predicted, routing_scores, routed = router.rule.decide(probabilities)
        out.loc[has_text, "predicted"] = [labels[i] for i in predicted]
        out.loc[has_text, "score"] = probabilities.max(axis=-1).round(6)
        out.loc[has_text, "routing_score"] = routing_scores.round(6)
        out.loc[has_text, "top3"] = [json.dumps([[label, round(p, 6)] for label, p in row])
                                     for row in top_k(probabilities, labels)]
        out.loc[has_text, "route"] = np.where(routed, "auto", "triage")
    out.loc[~has_text, "route"] = "triage"
    out.loc[~has_text, "error"] = NO_TEXT
    return out


def write_table(frame: pd.DataFrame, path: Path) -> None:
    """Write beside the target and rename into place: an interrupted write never leaves half a file."""
    suffix = path.suffix.lower()
    partial = path.with_name(f".{path.name}.partial-{os.getpid()}")
    try:
        if suffix == ".csv":  # opened in spreadsheets: text that looks like a formula is escaped
            from .reports import escape_formulas

            escape_formulas(frame).to_csv(partial, index=False)
        elif suffix in (".jsonl", ".json"):
            frame.to_json(partial, orient="records", lines=True, force_ascii=False)
        elif suffix in (".parquet", ".pq"):
            frame.to_parquet(partial, index=False)
        else:
            raise ValueError(f"{path}: unsupported output type {suffix!r}; use .csv, .jsonl or .parquet")
        os.replace(partial, path)
    finally:
        if partial.exists():
            partial.unlink()


def read_input(path: str, text_columns) -> pd.DataFrame:
    from ticket_data.readers import read_records

    records, _, columns = read_records(Path(path))
    missing = [c for c in text_columns if c not in columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}; expected {list(text_columns)}, found {columns}")
    return pd.DataFrame.from_records(records, columns=columns)


OUTPUT_SUFFIXES = (".csv", ".jsonl", ".json", ".parquet", ".pq")


def cmd_predict(args) -> int:
    # Checks that need no model come first: a wrong output name should not cost a model load and a scoring run.
    if args.output is not None and Path(args.output).suffix.lower() not in OUTPUT_SUFFIXES:
        raise ValueError(f"{args.output}: unsupported output type {Path(args.output).suffix!r}; use .csv, .jsonl or .parquet")
    if args.input is not None and not Path(args.input).is_file():
        raise ValueError(f"--input {args.input}: file not found")
    router = _load_router(args.model, args.onnx)
    if args.input is None:
        if args.subject is None and args.description is None:
            raise ValueError("predict: give --subject and/or --description, or --input FILE --output FILE")
        frame = pd.DataFrame({"subject": [args.subject or ""], "description": [args.description or ""]})
        row = route_frame(router, frame, ("subject", "description"), 1, False).iloc[0]
        if row["error"]:
            raise ValueError(f"predict: {row['error']}")
        for rank, (label, probability) in enumerate(json.loads(row["top3"]), start=1):
            print(f"{rank}. {label}: {probability:.1%}")
        print(f"route: {row['route']} (rule: {router.rule.describe()})")
        return 0
    if args.output is None:
        raise ValueError("predict: --input needs --output")
    frame = read_input(args.input, args.text_columns)
    routed = route_frame(router, frame, args.text_columns, args.batch_size, progress=True)
    write_table(routed, Path(args.output))
    counts = routed["route"].value_counts().to_dict()
    print(f"{len(routed)} tickets -> {args.output}: {counts.get('auto', 0)} auto-routed, "
          f"{counts.get('triage', 0)} to triage, {int(routed['error'].notna().sum())} without text")
    return 0


def cmd_evaluate(args) -> int:
    from ticket_data.loading import ticket_texts

    from .evaluation import bootstrap_intervals, evaluate_pipeline
    from .metrics import classification_metrics, report_text

    router = _load_router(args.model, args.onnx)
    frame = read_input(args.input, [*args.text_columns, args.label_column])
    routed = route_frame(router, frame, args.text_columns, args.batch_size, progress=True)
    routed = routed[routed["error"].isna()]
    unknown = sorted(set(routed[args.label_column].astype(str)) - set(router.labels))
    if unknown:
        raise ValueError(f"{args.input}: label(s) {unknown} in column {args.label_column!r} are not among the "
                         f"model's labels {router.labels}")
    index = {label: i for i, label in enumerate(router.labels)}
    labels = routed[args.label_column].astype(str).map(index).to_numpy()
    predicted = routed["predicted"].map(index).to_numpy()
    print(report_text(labels, predicted, router.labels))
    from .calibration import routed_stats

    auto = (routed["route"] == "auto").to_numpy()
    stats = routed_stats(predicted == labels, auto)
    intervals = bootstrap_intervals(labels, predicted, len(router.labels), auto, n_resamples=args.n_resamples)
    if args.onnx:
        metrics = classification_metrics(labels, predicted, router.labels)
        print(f"accuracy {metrics['accuracy']:.4f} {_interval(intervals['accuracy'])}  macro-F1 "
              f"{metrics['macro_f1']:.4f} {_interval(intervals['macro_f1'])}  weighted-F1 {metrics['weighted_f1']:.4f} "
              f"(ONNX Runtime; 95% intervals from {args.n_resamples} bootstrap resamples)")
    else:
        # The stock pipeline, scored by evaluate's evaluator: what a user of the export gets, with its speed.
        subjects, descriptions = ticket_texts(routed, args.text_columns)
        scored = evaluate_pipeline(router.model, router.tokenizer, subjects.tolist(), descriptions.tolist(), labels,
                                   router.labels, args.batch_size, args.n_resamples)
        weighted = classification_metrics(labels, predicted, router.labels)["weighted_f1"]
        print("  ".join(f"{name} {scored[key]['score']:.4f} {_interval(scored[key]['interval'])}"
                        for key, name in (("accuracy", "accuracy"), ("macro_f1", "macro-F1")))
              + f"  weighted-F1 {weighted:.4f}  (pipeline through evaluate.evaluator; 95% intervals from {args.n_resamples} bootstrap resamples; "
              f"{scored['tickets_per_second']:.1f} tickets/s)")
    print(f"routing ({router.rule.describe()}): {stats['coverage']:.1%} {_interval(intervals['coverage'], 100)} "
          f"auto-routed, {stats['misrouting']:.2%} {_interval(intervals['misrouting'], 100)} of them misrouted")
    return 0


def cmd_monitor(args) -> int:
    """Exit 0 when live tickets look like validation, 1 when a check fires (see custom_trainer/monitor.py)."""
    from .monitor import MonitorThresholds, compare_to_profile, plot_monitor, summarize

    thresholds = MonitorThresholds(args.coverage_tolerance, args.mix_tolerance, args.significance)
    output_dir = Path(args.output_dir)
    if output_dir.exists() and not output_dir.is_dir():
        raise ValueError(f"--output_dir {output_dir} exists and is not a folder")
    router = _load_router(args.model, args.onnx)
    config = router.config
    profile, guarantee = getattr(config, "routing_profile", None), getattr(config, "routing_guarantee", None)
    if not profile or not guarantee:
        raise ValueError(f"{args.model}: the export has no validation profile (trained before the monitor existed); "
                         "retrain it to monitor it")
    columns = [*args.text_columns, *([args.label_column] if args.label_column else [])]
    frame = read_input(args.input, columns)
    routed = route_frame(router, frame, args.text_columns, args.batch_size, progress=True)
    routed = routed[routed["error"].isna()]
    index = {label: i for i, label in enumerate(router.labels)}
    report = compare_to_profile(
        routed["predicted"].map(index).to_numpy(), routed["routing_score"].astype(float).to_numpy(),
        (routed["route"] == "auto").to_numpy(), profile, guarantee, router.labels,
        routed[args.label_column].astype(str).tolist() if args.label_column else None, thresholds)
    report["input"] = str(args.input)
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "monitor.json").write_text(json.dumps(report, indent=2) + "\n")
    plot_monitor(report, output_dir / "monitor.png")
    print(summarize(report))
    print(f"report: {output_dir / 'monitor.json'}, {output_dir / 'monitor.png'}")
    return 0 if report["ok"] else 1


def _interval(bounds, scale: float = 1.0) -> str:
    unit = "%" if scale == 100 else ""
    digits = 1 if scale == 100 else 4
    return f"[{bounds[0] * scale:.{digits}f}{unit}, {bounds[1] * scale:.{digits}f}{unit}]"


def cmd_export_onnx(args) -> int:
    from .onnx_export import export_onnx

    path = export_onnx(args.model, args.output, quantize=args.quantize)
    print(f"ONNX model: {path}")
    return 0


def cmd_serve(args) -> int:
    from .serving import serve

    serve(args.model, host=args.host, port=args.port, max_batch=args.max_batch, max_chars=args.max_chars)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ticket-classifier", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)

    def common(sub, onnx=True):
        sub.add_argument("--model", required=True, help="exported model folder (outputs/.../model)")
        sub.add_argument("--text_columns", nargs="+", default=["subject", "description"])
        sub.add_argument("--batch_size", type=int, default=64)
        if onnx:
            sub.add_argument("--onnx", action="store_true", help="run the ONNX export (model folder's onnx/)")

    predict = commands.add_parser("predict", help="top-3 for one ticket, or route a file of tickets")
    common(predict)
    predict.add_argument("--subject")
    predict.add_argument("--description")
    predict.add_argument("--input", help="CSV, JSONL or Parquet of tickets")
    predict.add_argument("--output", help="where to write every input row with its routing")
    predict.set_defaults(func=cmd_predict)

    evaluate = commands.add_parser("evaluate", help="classification report for a labelled file")
    common(evaluate)
    evaluate.add_argument("--input", required=True)
    evaluate.add_argument("--label_column", default="category")
    evaluate.add_argument("--n_resamples", type=int, default=1000, help="bootstrap resamples for the 95%% intervals")
    evaluate.set_defaults(func=cmd_evaluate)

    monitor = commands.add_parser("monitor", help="compare live tickets with the validation profile; exit 1 on drift")
    common(monitor)
    monitor.add_argument("--input", required=True, help="live tickets (CSV, JSONL or Parquet)")
    monitor.add_argument("--label_column", default=None, help="the label people finally assigned, if known")
    monitor.add_argument("--output_dir", default="monitor", help="where monitor.json and monitor.png go")
    monitor.add_argument("--coverage_tolerance", type=float, default=0.10,
                         help="how far (absolute) the auto-routed share may move from validation's")
    monitor.add_argument("--mix_tolerance", type=float, default=0.15,
                         help="largest total-variation distance of the predicted-label mix from validation's")
    monitor.add_argument("--significance", type=float, default=0.01, help="label-mix drift must be beyond noise at this level")
    monitor.set_defaults(func=cmd_monitor)

    export = commands.add_parser("export-onnx", help="export to ONNX (optionally int8-quantised) for ONNX Runtime")
    export.add_argument("--model", required=True)
    export.add_argument("--output", default=None, help="default: <model>/onnx/")
    export.add_argument("--quantize", choices=["int8"], default=None)
    export.set_defaults(func=cmd_export_onnx)

    serve = commands.add_parser("serve", help="HTTP service: POST /predict, GET /health, GET /info")
    serve.add_argument("--model", required=True)
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--max_batch", type=int, default=256, help="largest batch one request may send")
    serve.add_argument("--max_chars", type=int, default=20_000, help="longest subject or description accepted")
    serve.set_defaults(func=cmd_serve)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ValueError as error:
        print(f"ticket-classifier: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
