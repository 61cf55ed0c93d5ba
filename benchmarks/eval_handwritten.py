"""Macro-F1 of exported models on the hand-written development set (benchmarks/data/handwritten_dev.csv).

    python benchmarks/eval_handwritten.py outputs/cpu/model outputs/realistic/model

The set was written by hand, not by the generators, to check how models trained on synthetic corpora route
tickets written by people. It is for evaluation only: never train on it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
DEV_SET = REPO / "benchmarks" / "data" / "handwritten_dev.csv"


def evaluate(model_dir: str, data: pd.DataFrame) -> dict:
    from custom_trainer.metrics import classification_metrics, report_text
    from ticket_router.router import Router

    router = Router(model_dir)
    probabilities = router.predict_proba(data["subject"], data["description"])
    index = {label: i for i, label in enumerate(router.labels)}
    labels = data["category"].map(index).to_numpy()
    predicted = probabilities.argmax(axis=-1)
    metrics = classification_metrics(labels, predicted, router.labels)
    metrics["report"] = report_text(labels, predicted, router.labels)
    metrics["routing"] = {**router.rule.stats(probabilities, labels), "rule": router.rule.describe()}
    wrong = data.assign(predicted=[router.labels[i] for i in predicted])
    metrics["errors"] = wrong[wrong["predicted"] != wrong["category"]]
    return metrics


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+", help="exported model folders")
    parser.add_argument("--data", default=str(DEV_SET))
    parser.add_argument("--show_errors", action="store_true")
    args = parser.parse_args(argv)
    data = pd.read_csv(args.data, keep_default_na=False)
    print(f"{args.data}: {len(data)} tickets, {data['category'].nunique()} categories\n")
    print("| model | accuracy | macro-F1 | auto-routed (stored rule) | misrouted among auto-routed | rule |")
    print("| --- | --- | --- | --- | --- | --- |")
    results = {model: evaluate(model, data) for model in args.models}
    for model, metrics in results.items():
        routing = metrics.get("routing")
        routed = f"{routing['coverage']:.1%} | {routing['misrouting']:.1%} | {routing['rule']}"
        print(f"| {model} | {metrics['accuracy']:.4f} | {metrics['macro_f1']:.4f} | {routed} |")
    for model, metrics in results.items():
        print(f"\n{model}\n{metrics['report']}")
        if args.show_errors:
            for row in metrics["errors"].itertuples():
                print(f"  [{row.category} -> {row.predicted}] {row.subject} | {row.description}")


if __name__ == "__main__":
    main()
