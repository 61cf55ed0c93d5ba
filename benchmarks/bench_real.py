"""Real ticket benchmark: the project's recipe against TF-IDF + logistic regression and the published DistilBERT.

    python benchmarks/bench_real.py                       # trains with configs/it_service_tickets.yaml (~1 h on 2 cores)
    python benchmarks/bench_real.py --skip_training       # reuse the model and reports of an earlier run

Hyper-parameters come from the config (chosen without looking at test.csv); test.csv is scored once.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

PUBLISHED = {"system": "DistilBERT fine-tuned (published notebook, not measured here)", "accuracy": 0.8776, "macro_f1": 0.87}


def tfidf_baseline(data) -> dict:
    """The baseline every run fits (custom_trainer/baseline.py), here trained on the whole train.csv
    (train + validation), as published baselines are."""
    import datasets

    from custom_trainer.baseline import fit_baseline, ticket_strings
    from custom_trainer.metrics import classification_metrics

    names = data["train"].features["label"].names
    whole = datasets.concatenate_datasets([data["train"], data["validation"]])
    started = time.time()
    predicted = fit_baseline(ticket_strings(whole), whole["label"]).predict(ticket_strings(data["test"]))
    metrics = classification_metrics(np.array(data["test"]["label"]), predicted, names)
    metrics["seconds"] = round(time.time() - started, 1)
    return metrics


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=str(REPO / "configs" / "it_service_tickets.yaml"))
    parser.add_argument("--skip_training", action="store_true", help="reuse output_dir's reports/metrics.json")
    known, overrides = parser.parse_known_args(argv)

    from custom_trainer.arguments import parse_args
    from train import load_data
    from train import main as train_main

    data_args, model_args, training_args, _ = parse_args(["--config", known.config, *overrides])
    if data_args.train_file is None or not Path(data_args.train_file).is_file():
        sys.exit(f"bench_real: benchmark data not found ({data_args.train_file}); see ../shared/data/it_service_tickets")
    data, _ = load_data(data_args, training_args.seed)
    names = data["train"].features["label"].names
    print(f"data: train {len(data['train'])}, validation {len(data['validation'])}, test {len(data['test'])}; {names}")

    baseline = tfidf_baseline(data)
    metrics_path = Path(training_args.output_dir) / "reports" / "metrics.json"
    started = time.time()
    if known.skip_training:
        ours = json.loads(metrics_path.read_text())
    else:
        ours = train_main(data_args, model_args, training_args)
    ours_seconds = ours.get("train_runtime_s", round(time.time() - started, 1))

    rows = [
        ("this project: " + model_args.model_name_or_path + " + focal loss", ours["test"]["accuracy"], ours["test"]["macro_f1"]),
        ("TF-IDF 1-2 grams + logistic regression (computed here)", baseline["accuracy"], baseline["macro_f1"]),
        (PUBLISHED["system"], PUBLISHED["accuracy"], PUBLISHED["macro_f1"]),
    ]
    print("\n| system (test.csv, 9,568 tickets) | accuracy | macro-F1 |\n| --- | --- | --- |")
    for name, accuracy, macro in rows:
        print(f"| {name} | {accuracy:.4f} | {macro:.4f} |")
    print("\n| label | F1 (this project) | F1 (TF-IDF + LR) |\n| --- | --- | --- |")
    for name in names:
        print(f"| {name} | {ours['test'][f'f1_{name}']:.4f} | {baseline[f'f1_{name}']:.4f} |")
    print(f"\nvalidation macro-F1 (this project): {ours['validation']['macro_f1']:.4f}")
    print(f"training + evaluation wall time: {ours_seconds:.0f} s; machine: {platform.processor() or platform.machine()}")
    result = {"ours": ours, "tfidf_logreg": baseline, "published_distilbert": PUBLISHED,
              "config": known.config, "overrides": overrides}
    out = Path(training_args.output_dir) / "bench_real.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written: {out}")
    return result


if __name__ == "__main__":
    main()
