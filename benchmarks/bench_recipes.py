"""One training recipe across the datasets the team can see, against the TF-IDF + logistic-regression baseline.

    python benchmarks/bench_recipes.py                                 # the default recipe, every dataset
    python benchmarks/bench_recipes.py --datasets its_8k -- --focal_gamma 0 --class_weighting none

Datasets (the real ones are built from ../shared/data/it_service_tickets, never copied into the repository; the
files go to outputs/recipes/data/, deterministic, seed 0):
- realistic: the synthetic `realistic` corpus (configs/realistic.yaml);
- its_8k: a fixed 8,000-ticket stratified subsample of train.csv, the full test.csv (quick comparisons);
- its_lt: train.csv subsampled per label to a 100:1 exponential profile, as CIFAR-LT is made from CIFAR-10
  (head label 4,000 tickets down to 40: 8,252 tickets), the full test.csv.
Validation is carved from each training file (10%, stratified). Arguments after `--` go to train.py for every
dataset (the recipe under test). Prints model vs baseline on test with the time each run took.
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
REAL = REPO.parent / "shared" / "data" / "it_service_tickets"
DATA_DIR = REPO / "outputs" / "recipes" / "data"
TEXT, LABEL = "Document", "Topic_group"


def its_8k(seed: int = 0, size: int = 8000) -> Path:
    from sklearn.model_selection import train_test_split

    path = DATA_DIR / f"its_{size // 1000}k.csv"
    if not path.exists():
        train = pd.read_csv(REAL / "train.csv")
        sample, _ = train_test_split(train, train_size=size, random_state=seed, stratify=train[LABEL])
        path.parent.mkdir(parents=True, exist_ok=True)
        sample.to_csv(path, index=False)
    return path


def its_long_tailed(seed: int = 0, head: int = 4000, imbalance: float = 100.0) -> Path:
    """Labels ranked by frequency; label i keeps head * imbalance ** (-i / (C - 1)) tickets, drawn at random."""
    path = DATA_DIR / f"its_lt{int(imbalance)}.csv"
    if not path.exists():
        train = pd.read_csv(REAL / "train.csv")
        ranked = train[LABEL].value_counts().index.tolist()
        parts = []
        for rank, label in enumerate(ranked):
            keep = int(head * imbalance ** (-rank / (len(ranked) - 1)))
            rows = train[train[LABEL] == label]
            parts.append(rows.sample(n=min(keep, len(rows)), random_state=seed))
        path.parent.mkdir(parents=True, exist_ok=True)
        pd.concat(parts).sample(frac=1, random_state=seed).to_csv(path, index=False)
    return path


def dataset_flags(name: str) -> list[str]:
    if name == "realistic":
        return ["--config", str(REPO / "configs" / "realistic.yaml")]
    train = its_8k() if name == "its_8k" else its_long_tailed()
    return ["--config", str(REPO / "configs" / "it_service_tickets.yaml"), "--train_file", str(train),
            "--test_file", str(REAL / "test.csv")]


DATASETS = ("realistic", "its_8k", "its_lt")
REAL_DATASETS = ("its_8k", "its_lt")


def main(argv=None) -> dict:
    argv = list(sys.argv[1:] if argv is None else argv)
    recipe = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=DATASETS)
    parser.add_argument("--output_dir", default=str(REPO / "outputs" / "recipes"))
    parser.add_argument("--name", default="default", help="a name for the recipe (output folder, result file)")
    args = parser.parse_args(argv)
    if any(name in REAL_DATASETS for name in args.datasets) and not (REAL / "train.csv").is_file():
        sys.exit(f"bench_recipes: real benchmark data not found in {REAL}")

    import logging

    from custom_trainer.arguments import parse_args
    from train import main as train_main

    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)

    results = {}
    for name in args.datasets:
        output = Path(args.output_dir) / args.name / name
        flags = dataset_flags(name) + ["--output_dir", str(output), "--disable_tqdm", "true"] + recipe
        started = time.time()
        metrics = train_main(*parse_args(flags)[:3])
        results[name] = {"model": metrics["test"], "baseline": metrics["baseline"]["test"],
                         "model_validation": metrics["validation"], "baseline_validation": metrics["baseline"]["validation"],
                         "seconds": round(time.time() - started, 1), "sizes": metrics["data"]["sizes"]}

    print(f"\nrecipe {args.name!r}: {' '.join(recipe) or '(defaults)'}; machine: {cpu_flags()}")
    print("| dataset | train / val / test | model acc | model macro-F1 | baseline acc | baseline macro-F1 | "
          "margin acc / macro-F1 (points) | time |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for name, row in results.items():
        model, base, sizes = row["model"], row["baseline"], row["sizes"]
        print(f"| {name} | {sizes['train']} / {sizes['validation']} / {sizes['test']} | {model['accuracy']:.4f} | "
              f"{model['macro_f1']:.4f} | {base['accuracy']:.4f} | {base['macro_f1']:.4f} | "
              f"{100 * (model['accuracy'] - base['accuracy']):+.1f} / {100 * (model['macro_f1'] - base['macro_f1']):+.1f} | "
              f"{row['seconds']:.0f} s |")
    out = Path(args.output_dir) / f"{args.name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"recipe": recipe, "machine": cpu_flags(), "results": results}, indent=2) + "\n")
    print(f"written: {out}")
    return results


def cpu_flags() -> str:
    """The processor and whether it has AVX-512 (training speed differs by ~2x between the two kinds here)."""
    try:
        info = Path("/proc/cpuinfo").read_text()
        model = re.search(r"model name\s*:\s*(.*)", info)
        kind = "AVX-512" if "avx512f" in info else "AVX2" if "avx2" in info else "no AVX2"
        return f"{model.group(1).strip() if model else platform.processor()}, {kind}"
    except OSError:
        return platform.processor() or platform.machine()


if __name__ == "__main__":
    main()
