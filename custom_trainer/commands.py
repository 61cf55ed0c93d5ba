"""The `ticket-classifier` commands that need the training libraries, registered as entry points (pyproject.toml,
group ``ticket_classifier.commands``) so the runtime's CLI (ticket_router/cli.py) offers them without importing this
package:

    ticket-classifier evaluate    --model DIR --input labelled.csv [--label_column category] [--onnx]
    ticket-classifier export-onnx --model DIR [--quantize int8]
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from ticket_router.cli import add_model_arguments, open_router
from ticket_router.contract import format_interval


def evaluate_main(argv: list[str]) -> int:
    """Classification report, intervals and routing of a labelled file: the stock pipeline through evaluate's
    evaluator (PyTorch), or the ONNX export's predictions (``--onnx``)."""
    parser = argparse.ArgumentParser(prog="ticket-classifier evaluate", description=evaluate_main.__doc__)
    add_model_arguments(parser)
    parser.add_argument("--input", required=True)
    parser.add_argument("--label_column", default="category")
    parser.add_argument("--field_columns", nargs="*", default=None, metavar="FIELD=COLUMN",
                        help="with extra fields: each field's label column (default: the field's own name, where the "
                        "file has such a column)")
    parser.add_argument("--n_resamples", type=int, default=1000, help="bootstrap resamples for the 95%% intervals")
    args = parser.parse_args(argv)

    from ticket_data.loading import ticket_texts
    from ticket_router.rule import routed_stats
    from ticket_router.tables import read_input, route_frame

    from .evaluation import bootstrap_intervals, evaluate_pipeline
    from .export import load_exported_model
    from .metrics import classification_metrics, report_text

    frame = read_input(args.input, [*args.text_columns, args.label_column], args.extra_fields)
    router = open_router(args)
    routed = route_frame(router, frame, args.text_columns, args.batch_size, progress=not args.quiet)
    routed = routed[routed["error"].isna()]
    unknown = sorted(set(routed[args.label_column].astype(str)) - set(router.labels))
    if unknown:
        raise ValueError(f"{args.input}: label(s) {unknown} in column {args.label_column!r} are not among the "
                         f"model's labels {router.labels}")
    index = {label: i for i, label in enumerate(router.labels)}
    labels = routed[args.label_column].astype(str).map(index).to_numpy()
    predicted = routed["predicted"].map(index).to_numpy()
    print(report_text(labels, predicted, router.labels))
    auto = (routed["route"] == "auto").to_numpy()
    stats = routed_stats(predicted == labels, auto)
    intervals = bootstrap_intervals(labels, predicted, len(router.labels), auto, n_resamples=args.n_resamples)
    if args.onnx:
        metrics = classification_metrics(labels, predicted, router.labels)
        print(f"accuracy {metrics['accuracy']:.4f} {format_interval(intervals['accuracy'])}  macro-F1 "
              f"{metrics['macro_f1']:.4f} {format_interval(intervals['macro_f1'])}  weighted-F1 "
              f"{metrics['weighted_f1']:.4f} (ONNX Runtime; 95% intervals from {args.n_resamples} bootstrap resamples)")
    else:
        # The stock pipeline, scored by evaluate's evaluator: what a user of the export gets, with its speed.
        model, tokenizer = load_exported_model(router.model_dir)
        subjects, descriptions = ticket_texts(routed, args.text_columns)
        scored = evaluate_pipeline(model, tokenizer, subjects.tolist(), descriptions.tolist(), labels,
                                   router.labels, args.batch_size, args.n_resamples)
        weighted = classification_metrics(labels, predicted, router.labels)["weighted_f1"]
        print("  ".join(f"{name} {scored[key]['score']:.4f} {format_interval(scored[key]['interval'])}"
                        for key, name in (("accuracy", "accuracy"), ("macro_f1", "macro-F1")))
              + f"  weighted-F1 {weighted:.4f}  (pipeline through evaluate.evaluator; 95% intervals from "
              f"{args.n_resamples} bootstrap resamples; {scored['tickets_per_second']:.1f} tickets/s)")
    print(f"routing ({router.rule.describe()}): {stats['coverage']:.1%} "
          f"{format_interval(intervals['coverage'], percent=True)} auto-routed, {stats['misrouting']:.2%} "
          f"{format_interval(intervals['misrouting'], percent=True)} of them misrouted")
    columns = dict(entry.split("=", 1) for entry in args.field_columns or [])
    for field in router.fields:
        column = columns.get(field["name"], field["name"])
        if column not in routed.columns:
            print(f"field {field['name']}: no column {column!r} in {args.input} (give --field_columns "
                  f"{field['name']}=COLUMN)")
            continue
        print(field_report(routed, field, column, args.n_resamples))
    return 0


def field_report(routed, field: dict, column: str, n_resamples: int) -> str:
    """An extra field's classification report and intervals on the rows that have a value for it."""
    import pandas as pd

    from ticket_data.preprocessing import clean_label

    from .evaluation import bootstrap_intervals
    from .metrics import classification_metrics, report_text

    names = field["labels"]
    index = {label: i for i, label in enumerate(names)}
    truth = routed[column].map(lambda v: "" if pd.isna(v) else clean_label(v))
    known = truth.isin(index).to_numpy()
    labels = truth[known].map(index).to_numpy()
    predicted = routed.loc[known, f"predicted_{field['name']}"].map(index).to_numpy()
    metrics = classification_metrics(labels, predicted, names)
    intervals = bootstrap_intervals(labels, predicted, len(names), n_resamples=n_resamples)
    return (f"\nfield {field['name']} (column {column!r}; {int(known.sum())} rows with a known value, "
            f"{int((~known).sum())} blank or unknown):\n{report_text(labels, predicted, names)}"
            f"accuracy {metrics['accuracy']:.4f} {format_interval(intervals['accuracy'])}  macro-F1 "
            f"{metrics['macro_f1']:.4f} {format_interval(intervals['macro_f1'])}")


def export_onnx_main(argv: list[str]) -> int:
    """Export a model folder to ONNX (optionally int8-quantised) for the ONNX Runtime backend (``--onnx``)."""
    parser = argparse.ArgumentParser(prog="ticket-classifier export-onnx", description=export_onnx_main.__doc__)
    parser.add_argument("--model", required=True)
    parser.add_argument("--output", default=None, help="default: <model>/onnx/")
    parser.add_argument("--quantize", choices=["int8"], default=None)
    args = parser.parse_args(argv)

    from .onnx_export import export_onnx

    path = export_onnx(args.model, args.output, quantize=args.quantize)
    how = " (dynamic int8, per-channel 7-bit weights: the same routes on CPUs with and without VNNI)" if args.quantize else ""
    print(f"ONNX model: {path}{how}")
    return 0


def same_file(a, b) -> bool:
    """Whether two paths name one file (links and relative paths included)."""
    a, b = Path(a), Path(b)
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return a.resolve() == b.resolve()


def audit_main(argv: list[str]) -> int:
    """Audit a labelled export before training: likely label errors (confident learning on out-of-fold
    probabilities), queues that overlap, near-duplicate tickets and what a certified routing rule could reach.
    Writes audit.json and label_issues.csv; with --write_clean, the export with the chosen actions applied."""
    parser = argparse.ArgumentParser(prog="ticket-classifier audit", description=audit_main.__doc__)
    parser.add_argument("--input", required=True, help="the labelled export (CSV, TSV, JSONL, Parquet or Excel)")
    parser.add_argument("--text_columns", nargs="+", default=["subject", "description"])
    parser.add_argument("--label_column", default="category")
    parser.add_argument("--output_dir", default="audit", help="where audit.json and label_issues.csv go")
    parser.add_argument("--folds", type=int, default=5, help="out-of-fold fits of the TF-IDF model")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--write_clean", default=None, metavar="FILE",
                        help="write a copy of the export, its own columns and values, with the actions below applied "
                        "(none by default), to train on (.csv, .jsonl or .parquet); never --input itself (refused), "
                        "an existing other file is replaced whole")
    parser.add_argument("--drop_above", type=float, default=None, metavar="SCORE",
                        help="with --write_clean: leave out flagged rows whose score is above SCORE (0 to 1)")
    parser.add_argument("--merge", nargs="*", default=[], metavar="A+B[=NAME]",
                        help="with --write_clean: merge these queues (into NAME, default the first)")
    parser.add_argument("--relabel", default=None, metavar="REVIEWED.csv",
                        help="with --write_clean: label_issues.csv with a 'label' column a person filled in")
    args = parser.parse_args(argv)
    if args.folds < 2:
        raise ValueError(f"--folds must be >= 2, got {args.folds}")
    if args.drop_above is not None and not 0 <= args.drop_above <= 1:
        raise ValueError(f"--drop_above must be a score in [0, 1], got {args.drop_above}")
    acting = args.drop_above is not None or args.merge or args.relabel
    if acting and not args.write_clean:
        raise ValueError("--drop_above, --merge and --relabel change a copy of the export: give --write_clean FILE")
    output_dir = Path(args.output_dir)
    if output_dir.exists() and not output_dir.is_dir():
        raise ValueError(f"--output_dir {output_dir} exists and is not a folder")

    import json

    from ticket_router.atomic import write_text
    from ticket_router.tables import check_output, write_table

    from .audit import apply_actions, audit_file, cleaned_copy, summarize_audit

    clean_path = check_output(args.write_clean) if args.write_clean else None  # before minutes of work
    if clean_path is not None and same_file(clean_path, args.input):
        raise ValueError(f"--write_clean {args.write_clean} is --input: the cleaned copy never overwrites the export "
                         "it was made from; give another file")
    relabelled = None
    if args.relabel:
        from ticket_router.tables import read_input

        if not Path(args.relabel).is_file():
            raise ValueError(f"--relabel {args.relabel}: file not found")
        relabelled = read_input(args.relabel, ["line", "label"], "error")
    report, flagged, frame = audit_file(args.input, args.text_columns, args.label_column, folds=args.folds,
                                        seed=args.seed, progress=not args.quiet)
    if clean_path is not None:
        cleaned, report["actions"] = apply_actions(frame, flagged, args.drop_above, args.merge, relabelled)
        table = cleaned_copy(args.input, args.label_column, frame, cleaned)
        report["actions"]["written"] = {"path": str(clean_path), "rows": int(len(table))}
        write_table(table, clean_path, escape=False)
    output_dir.mkdir(parents=True, exist_ok=True)
    write_text(output_dir / "audit.json", json.dumps(report, indent=2, default=str) + "\n")
    write_table(flagged.assign(label=""), output_dir / "label_issues.csv")
    print(summarize_audit(report))
    print(f"report: {output_dir / 'audit.json'}; flagged rows: {output_dir / 'label_issues.csv'} (fill in 'label' "
          "and pass it back with --relabel)" + (f"; cleaned export: {clean_path}" if clean_path else ""))
    return 0
