"""Reports of a training run: metrics.json, the classification report, plots and test predictions.

Each file is written beside itself and renamed into place (ticket_router/atomic.py), metrics.json last: a run that
dies while reporting leaves every earlier report whole, and a new metrics.json means the rest is new too.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from ticket_router.atomic import atomic_path, write_text
from ticket_router.rule import RoutingRule, softmax, top_k
from ticket_router.tables import escape_formulas

from .metrics import report_text


def strip_prefix(metrics: dict, prefix: str) -> dict:
    return {key[len(prefix) + 1 :] if key.startswith(prefix + "_") else key: value for key, value in metrics.items()}


def write_reports(
    reports_dir: str | Path,
    metrics: dict,
    label_names: list[str],
    test_frame: pd.DataFrame,
    test_logits: np.ndarray,
    history: list[dict],
    rule: RoutingRule | None = None,
) -> None:
    """``test_frame`` has subject, description and label (ids); ``test_logits`` its model outputs; ``rule`` the
    exported routing rule."""
    reports_dir = Path(reports_dir)
    reports_dir.mkdir(parents=True, exist_ok=True)
    labels = test_frame["label"].to_numpy()
    probabilities = softmax(test_logits)
    predicted = probabilities.argmax(axis=-1)
    write_text(reports_dir / "classification_report.txt", report_text(labels, predicted, label_names))

    predictions = pd.DataFrame(
        {
            "subject": test_frame["subject"],
            "description": test_frame["description"],
            "label": [label_names[i] for i in labels],
            "predicted": [label_names[i] for i in predicted],
            "score": probabilities.max(axis=-1),
            "top3": [json.dumps(row) for row in top_k(probabilities, label_names)],
        }
    )
    if rule is not None:
        _, scores, routed = rule.decide(probabilities)
        predictions["routing_score"] = scores
        predictions["route"] = np.where(routed, "auto", "triage")
    with atomic_path(reports_dir / "predictions.csv") as staging:
        escape_formulas(predictions).to_csv(staging, index=False)
    plot_confusion_matrix(labels, predicted, label_names, reports_dir / "confusion_matrix.png")
    if "routing" in metrics and rule is not None:
        plot_routing_curve(scores, predicted == labels, metrics["routing"], reports_dir / "routing_curve.png")
    plot_training_curves(history, reports_dir / "training_curves.png")
    write_text(reports_dir / "metrics.json", json.dumps(metrics, indent=2) + "\n")


def save_figure(fig, path: Path) -> None:
    import matplotlib.pyplot as plt

    with atomic_path(path) as staging:
        fig.savefig(staging, dpi=110, format="png")
    plt.close(fig)


def plot_confusion_matrix(labels, predicted, label_names: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import confusion_matrix

    matrix = confusion_matrix(labels, predicted, labels=list(range(len(label_names))), normalize="true")
    size = max(6, 0.7 * len(label_names))
    fig, ax = plt.subplots(figsize=(size + 2, size))
    image = ax.imshow(matrix, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(image, ax=ax)
    ax.set_xticks(range(len(label_names)), label_names, rotation=45, ha="right")
    ax.set_yticks(range(len(label_names)), label_names)
    for i in range(len(label_names)):
        for j in range(len(label_names)):
            ax.text(j, i, f"{matrix[i, j]:.2f}", ha="center", va="center",
                    color="white" if matrix[i, j] > 0.5 else "black", fontsize=8)
    ax.set_xlabel("Predicted")
    ax.set_ylabel("True")
    ax.set_title("Confusion matrix (test, normalised by true class)")
    fig.tight_layout()
    save_figure(fig, path)


def plot_training_curves(history: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [row["epoch"] for row in history]
    fig, (loss_ax, f1_ax) = plt.subplots(1, 2, figsize=(10, 4))
    loss_ax.plot(epochs, [row["train_loss"] for row in history], marker="o", label="train (focal)")
    loss_ax.plot(epochs, [row.get("eval_loss", np.nan) for row in history], marker="o", label="validation")
    loss_ax.set_xlabel("epoch")
    loss_ax.set_ylabel("loss")
    loss_ax.legend()
    f1_ax.plot(epochs, [row["eval_macro_f1"] for row in history], marker="o", color="tab:green")
    f1_ax.set_xlabel("epoch")
    f1_ax.set_ylabel("validation macro-F1")
    for ax in (loss_ax, f1_ax):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    save_figure(fig, path)


def plot_routing_curve(confidence: np.ndarray, correct: np.ndarray, routing: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .confidence import coverage_curve

    coverage, accuracy = coverage_curve(confidence, correct)
    fig, ax = plt.subplots(figsize=(6, 4.5))
    ax.plot(coverage, accuracy, color="tab:blue", label="test")
    ax.axhline(1 - routing["max_misrouting"], color="tab:red", linestyle="--",
               label=f"target: <= {routing['max_misrouting']:.0%} misrouted")
    test = routing["test"]
    ax.scatter([test["coverage"]], [1 - test["misrouting"]], color="black", zorder=3,
               label=f"certified rule: {test['coverage']:.0%} auto-routed")
    previous = test.get("previous_rule")
    if previous:
        ax.scatter([previous["coverage"]], [1 - previous["misrouting"]], color="tab:gray", marker="x", zorder=3,
                   label=f"previous rule (no guarantee): {previous['coverage']:.0%}")
    ax.set_xlabel("coverage (share of tickets auto-routed)")
    ax.set_ylabel("accuracy among auto-routed tickets")
    ax.set_xlim(0, 1.01)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left")
    ax.set_title("Coverage / accuracy (test, calibrated confidence)")
    fig.tight_layout()
    save_figure(fig, path)
