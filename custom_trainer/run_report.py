"""`reports/index.html`: one self-contained page per training run for a team lead (figures inlined, no script, no
external asset): the data report, the model against the baseline with intervals, per-queue figures with the share
auto-routed, the confusion matrix, the routing rule and its guarantee, prediction sets, the reliability diagram, the
training curves, and what to try when the model is below the baseline. Every text from the data is escaped.
"""

from __future__ import annotations

import base64
from html import escape
from pathlib import Path

import numpy as np

from ticket_router.atomic import write_text
from ticket_router.contract import format_interval
from ticket_router.guarantee_card import frontier_lines, guarantee_line

from .baseline import ADVICE, compare_to_baseline
from .export import combination_text
from .reports import save_figure

STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:64rem;color:#1d2330;line-height:1.4}
h1{font-size:1.5rem}h2{font-size:1.15rem;margin-top:2rem;border-bottom:1px solid #d5d9e2}
table{border-collapse:collapse;margin:.5rem 0}td,th{padding:.25rem .6rem;border-bottom:1px solid #e3e6ec;text-align:right}
td:first-child,th:first-child{text-align:left}img{max-width:100%;border:1px solid #e3e6ec}
.warning{background:#fff3d6;border:1px solid #e0b44a;padding:.6rem;border-radius:6px}.muted{color:#5d6576}
"""


def plot_reliability(probabilities: np.ndarray, labels: np.ndarray, path: Path, bins: int = 10) -> None:
    """Accuracy against confidence in equal-width bins, with the share of tickets in each."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == labels
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1]), 0, bins - 1)
    centers, accuracy, share = [], [], []
    for b in range(bins):
        mine = which == b
        if mine.any():
            centers.append(confidence[mine].mean())
            accuracy.append(correct[mine].mean())
            share.append(mine.mean())
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfectly calibrated")
    ax.plot(centers, accuracy, marker="o", label="model (test)")
    for x, y, s in zip(centers, accuracy, share):
        ax.annotate(f"{s:.0%}", (x, y), textcoords="offset points", xytext=(0, 6), ha="center", fontsize=7)
    ax.set_xlabel("confidence (top calibrated probability)")
    ax.set_ylabel("accuracy")
    ax.set_title("Reliability on test (labels: share of tickets)")
    ax.legend(loc="upper left")
    save_figure(fig, path)
    plt.close(fig)


def _image(path: Path, alt: str) -> str:
    if not path.is_file():
        return f"<p class=\"muted\">({escape(alt)}: not drawn for this run)</p>"
    data = base64.b64encode(path.read_bytes()).decode()
    return f"<img alt=\"{escape(alt)}\" src=\"data:image/png;base64,{data}\">"


def _table(header: list[str], rows: list[list]) -> str:
    head = "".join(f"<th>{escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _data_section(report: dict) -> str:
    parts = []
    for name, part in (report.get("files") or {}).items():
        skipped = "; ".join(f"{entry['count']} {entry['what']} (lines {', '.join(map(str, entry['lines'][:10]))}"
                            f"{', ...' if entry['count'] > 10 else ''})" for entry in part.get("skipped", {}).values())
        removed = ", ".join(f"{count} {why}" for why, count in part.get("removed", {}).items()) or "none"
        parts.append(f"<p><b>{escape(name)}</b> ({escape(part['path'])}): {part['rows_read']} rows read, "
                     f"{part['kept']} kept, skipped: {escape(skipped or 'none')}; removed: {escape(removed)}.</p>")
    labels = report.get("labels") or {}
    if labels.get("merged"):
        merged = ", ".join(f"{k} ({v})" for k, v in labels["merged"].items())
        parts.append(f"<p>Rare queues merged into <b>{escape(labels['merged_into'])}</b> (never auto-routed): "
                     f"{escape(merged)}.</p>")
    if "corpus" in report:
        parts.append(f"<p>Synthetic corpus <b>{escape(str(report['corpus']))}</b>.</p>")
    if report.get("splits"):
        parts.append("<p>Splits: " + escape(", ".join(f"{k} {v}" for k, v in report["splits"].items())) + ".</p>")
    lengths = report.get("token_lengths")
    if lengths:
        parts.append(f"<p>Tokens per ticket: median {lengths['p50']}, 90th percentile {lengths['p90']}; "
                     f"{lengths['share_truncated']:.1%} cut at {lengths['max_length']}.</p>")
    said: set[str] = set()  # the recipe's and the reading's reasons share their sizes and "measured ..." sentence
    encoder = report.get("encoder")
    if encoder:
        parts.append(f"<p>Encoder: {escape(str(encoder['name']))} ({escape(encoder['why'])}).</p>")
    recipe = report.get("recipe")
    if recipe:
        made = (f"{recipe['contrastive_epochs']:g} passes, then "
                f"{'fine-tuning' if recipe.get('fine_tune', True) else 'no fine-tuning'}"
                if recipe["contrastive_epochs"] else "none")
        parts.append(f"<p>Contrastive stage before the head: {escape(made)}{_because(recipe['why'], said)}.</p>")
    reading = report.get("reading")
    if reading:
        how = (f"first and last tokens, {reading['head_tail_length']} of up to {reading['max_length']}"
               if reading["head_tail_length"] else f"the first {reading['max_length']} tokens")
        parts.append(f"<p>Long tickets read by: {escape(how)}{_because(reading['why'], said)}.</p>")
    return "".join(parts)


def _because(why: str, said: set[str]) -> str:
    """`` (why)`` without the "; "-separated parts of it an earlier line of the report already gave (added to
    ``said``); empty when nothing new is left."""
    parts = [part for part in why.split("; ") if part not in said]
    said.update(parts)
    return f" ({escape('; '.join(parts))})" if parts else ""


def fields_section(fields: dict | None) -> str:
    """Each extra field against its own baseline, and its confusion matrix on test (rows: true, columns: predicted)."""
    if not fields:
        return ""
    parts = ["<h2>Other fields</h2><p>Predicted from the same encoder pass, one head each; figures on the rows with a "
             "value for the field.</p>"]
    for name, field in fields.items():
        test, validation, base = field.get("test"), field.get("validation"), field["baseline"]
        if not test or not validation:
            continue
        interval = field.get("intervals", {}).get("test", {})
        rows = [["model", f"{validation['accuracy']:.4f}", f"{validation['macro_f1']:.4f}", f"{test['accuracy']:.4f}",
                 f"{test['macro_f1']:.4f}"]]
        if "validation" in base and "test" in base:
            rows.append([escape(base["name"]), f"{base['validation']['accuracy']:.4f}",
                         f"{base['validation']['macro_f1']:.4f}", f"{base['test']['accuracy']:.4f}",
                         f"{base['test']['macro_f1']:.4f}"])
        parts.append(f"<h3 id=\"field-{escape(name)}\">{escape(name)}</h3>" + _table(
            ["", "validation accuracy", "validation macro-F1", "test accuracy", "test macro-F1"], rows))
        if interval:
            parts.append(f"<p>Test, 95% intervals: accuracy {format_interval(interval['accuracy'])}, macro-F1 "
                         f"{format_interval(interval['macro_f1'])}; blank in test: {field['blank'].get('test', 0)}.</p>")
        if field.get("confusion"):
            labels = [escape(label) for label in field["labels"]]
            parts.append(_table(["true \\ predicted", *labels],
                                [[label, *row] for label, row in zip(labels, field["confusion"])]))
    return "".join(parts)


def write_run_report(reports_dir: str | Path, metrics: dict, label_names: list[str], labels: np.ndarray,
                     probabilities: np.ndarray, routed: np.ndarray, data_report: dict) -> Path:
    """Write reports/reliability.png and reports/index.html (after reports.write_reports drew the other figures)."""
    from sklearn.metrics import precision_recall_fscore_support

    reports_dir = Path(reports_dir)
    labels, probabilities, routed = np.asarray(labels), np.asarray(probabilities), np.asarray(routed, dtype=bool)
    plot_reliability(probabilities, labels, reports_dir / "reliability.png")
    predicted = probabilities.argmax(axis=1)
    validation, test, baseline = metrics["validation"], metrics["test"], metrics["baseline"]
    intervals = metrics["intervals"]["test"]
    precision, recall, f1, support = precision_recall_fscore_support(
        labels, predicted, labels=list(range(len(label_names))), zero_division=0)
    queues = [[name, f"{p:.3f}", f"{r:.3f}", f"{f:.3f}", int(s),
               f"{routed[labels == i].mean():.1%}" if s else "-"]
              for i, (name, p, r, f, s) in enumerate(zip(label_names, precision, recall, f1, support))]
    below = compare_to_baseline(metrics, baseline)
    warning = (f"<p class=\"warning\" id=\"below-baseline\"><b>Below the baseline:</b> {escape('; '.join(below))}. "
               f"{escape(ADVICE)}</p>") if below else ""
    routing = metrics["routing"]
    guarantee = routing["guarantee"]
    sets = metrics.get("prediction_sets")
    sets_html = (f"<p>For the tickets a person triages, each ticket's prediction set holds the right queue for "
                 f"{1 - sets['alpha']:.0%} of tickets (calibrated on {sets['calibration_size']}). On test: coverage "
                 f"{sets['test']['coverage']:.1%}, mean size {sets['test']['mean_size']:.2f}, median "
                 f"{sets['test']['median_size']:g}, largest {sets['test']['max_size']}.</p>") if sets else \
        "<p class=\"muted\">No prediction sets (no calibration split).</p>"
    audit = (metrics.get("data") or {}).get("audit")
    audit_html = (f"<h2>Audit of the export</h2><p>{audit['likely_label_errors']} likely label errors, "
                  f"{audit['near_duplicate_groups']} groups of near-duplicates, suggested merges: "
                  f"{escape(str(audit['suggested_merges']) if audit['suggested_merges'] else 'none')} "
                  "(audit.json, label_issues.csv).</p>") if audit else ""
    body = (
        f"<h1>Training run: {escape(str(metrics['data']['source']))}</h1>"
        f"<p class=\"muted\">Data fingerprint {escape(metrics['data']['fingerprint'][:16])}; "
        f"{metrics['train_runtime_s']:.0f} s.</p>{warning}"
        "<h2>Data</h2>" + _data_section(data_report) +
        "<h2>Model against the baseline</h2>" + _table(
            ["", "validation accuracy", "validation macro-F1", "test accuracy", "test macro-F1"],
            [["model", f"{validation['accuracy']:.4f}", f"{validation['macro_f1']:.4f}", f"{test['accuracy']:.4f}",
              f"{test['macro_f1']:.4f}"],
             [escape(baseline["name"]), f"{baseline['validation']['accuracy']:.4f}",
              f"{baseline['validation']['macro_f1']:.4f}", f"{baseline['test']['accuracy']:.4f}",
              f"{baseline['test']['macro_f1']:.4f}"]]) +
        f"<p id=\"combination\">{escape(combination_text(metrics.get('combination')))}</p>"
        f"<p>Test, 95% intervals ({intervals['n_resamples']} bootstrap resamples): accuracy "
        f"{format_interval(intervals['accuracy'])}, macro-F1 {format_interval(intervals['macro_f1'])}.</p>"
        "<h2>Per queue (test)</h2>" + _table(
            ["queue", "precision", "recall", "F1", "support", "auto-routed"], queues) +
        "<h2>Confusion matrix</h2>" + _image(reports_dir / "confusion_matrix.png", "confusion matrix") +
        f"<h2>Routing and its guarantee</h2><p>{escape(routing['rule']['description'])}; "
        f"{escape(guarantee_line(guarantee))}</p>"
        f"<p>On test: {routing['test']['coverage']:.1%} auto-routed, {routing['test']['misrouting']:.2%} of them "
        "misrouted.</p><ul>" + "".join(f"<li>{escape(line)}</li>" for line in frontier_lines(guarantee)) + "</ul>"
        + _image(reports_dir / "routing_curve.png", "routing curve") +
        "<h2>Prediction sets</h2>" + sets_html +
        f"<h2>Calibration</h2><p>Expected calibration error on test {routing['test']['ece_before']:.3f} before "
        f"temperature scaling, {routing['test']['ece_after']:.3f} after (T = {routing['temperature']:.3f}).</p>"
        + _image(reports_dir / "reliability.png", "reliability diagram") + fields_section(metrics.get("fields")) +
        "<h2>Training</h2>" + _image(reports_dir / "training_curves.png", "training curves") + audit_html +
        f"<h2>When the model is below the baseline</h2><p>{escape(ADVICE)}</p>"
    )
    html = (f"<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Training run report</title>"
            f"<style>{STYLE}</style></head><body>{body}</body></html>")
    write_text(reports_dir / "index.html", html)
    return reports_dir / "index.html"
