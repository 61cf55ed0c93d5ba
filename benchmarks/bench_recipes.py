"""One training recipe across the datasets the team can see, against the TF-IDF + logistic-regression baseline.

    python benchmarks/bench_recipes.py                                 # the default recipe, every dataset
    python benchmarks/bench_recipes.py --datasets its_8k -- --focal_gamma 0 --class_weighting none

Datasets (the real ones are built from ../shared/data/it_service_tickets, never copied into the repository; the
files go to outputs/recipes/data/, deterministic, seed 0):
- realistic: the synthetic `realistic` corpus (configs/realistic.yaml);
- its_8k: a fixed 8,000-ticket stratified subsample of train.csv, the full test.csv (quick comparisons);
- its_lt: train.csv subsampled per label to a 100:1 exponential profile, as CIFAR-LT is made from CIFAR-10
  (head label 4,000 tickets down to 40: 8,252 tickets), the full test.csv;
- its_desk: the shape of a desk's export (`its_desk`): 5,000 tickets of train.csv relabelled into product teams
  per topic and a catch-all queue with about half the tickets, labels the text only partly shows; 3,000 tickets of
  test.csv relabelled by the same rules as its test file.
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


CATCH_ALL = "Service Desk"


def telling_words(texts: pd.Series, topics: pd.Series, per_topic: int = 5) -> dict[str, list[str]]:
    """Per topic, the words (4+ letters, in >= 20 tickets) most frequent in its tickets and least elsewhere."""
    from sklearn.feature_extraction.text import CountVectorizer

    vectorizer = CountVectorizer(binary=True, min_df=20, token_pattern=r"(?u)\b[a-z]{4,}\b", stop_words="english")
    present = vectorizer.fit_transform(texts)
    words = np.asarray(vectorizer.get_feature_names_out())
    chosen = {}
    for topic in sorted(topics.unique()):
        inside = (topics == topic).to_numpy()
        share_in = np.asarray(present[inside].mean(axis=0)).ravel()
        share_out = np.asarray(present[~inside].mean(axis=0)).ravel()
        chosen[topic] = words[np.argsort(-(share_in - share_out), kind="stable")[:per_topic]].tolist()
    return chosen


def desk_queues(frame: pd.DataFrame, words: dict[str, list[str]], catch_all: dict[str, float], rng,
                reassigned: float = 0.2) -> pd.Series:
    """The queue of each ticket under the desk's rules (its_desk's docstring)."""
    queues = []
    for text, topic in zip(frame[TEXT], frame[LABEL]):
        tokens = set(re.findall(r"[a-z]+", str(text).lower()))
        teams = words[topic] + ["other"]
        team = next((word for word in words[topic] if word in tokens), "other")
        if rng.random() < reassigned:  # who was on shift, not what the ticket says
            team = teams[rng.integers(len(teams))]
        queues.append(CATCH_ALL if rng.random() < catch_all[topic] else f"{topic} / {team}")
    return pd.Series(queues, index=frame.index)


def its_desk(seed: int = 0, train_size: int = 5000, test_size: int = 3000) -> tuple[Path, Path]:
    """A desk's export made of real tickets: many queues, a catch-all queue with close to half the tickets, and
    labels the text only partly shows. From a draw of train.csv (and one of test.csv, for its test file):
    - each topic is split into teams by product: the first of the topic's 5 most telling words (frequent in the
      topic, rare elsewhere; chosen on the training draw) that a ticket contains, else '<topic> / other' (up to
      6 teams a topic, 48 queues, some of them rare, as in real exports);
    - 20% of tickets go to a random team of their topic instead (who was on shift, not what the ticket says);
    - a catch-all 'Service Desk' queue keeps each ticket with a probability set by its topic (from 0.60 for the
      most frequent topic down to 0.20 for the rarest, close to half the tickets in all): the first line closes what
      it can, and the text shows which tickets those are only through the topic.
    The same rules (words, probabilities) and a seeded generator label the test draw."""
    train_path, test_path = DATA_DIR / "its_desk_train.csv", DATA_DIR / "its_desk_test.csv"
    if not (train_path.exists() and test_path.exists()):
        rng = np.random.default_rng(seed)
        train = pd.read_csv(REAL / "train.csv").sample(n=train_size, random_state=seed)
        test = pd.read_csv(REAL / "test.csv").sample(n=test_size, random_state=seed)
        words = telling_words(train[TEXT].astype(str), train[LABEL])
        ranked = train[LABEL].value_counts().index.tolist()
        catch_all = {topic: 0.60 - 0.40 * rank / (len(ranked) - 1) for rank, topic in enumerate(ranked)}
        for path, frame in ((train_path, train), (test_path, test)):
            desk = pd.DataFrame({TEXT: frame[TEXT], LABEL: desk_queues(frame, words, catch_all, rng)})
            path.parent.mkdir(parents=True, exist_ok=True)
            desk.to_csv(path, index=False)
    return train_path, test_path


def dataset_flags(name: str) -> list[str]:
    if name == "realistic":
        return ["--config", str(REPO / "configs" / "realistic.yaml")]
    if name == "its_desk":
        train, test = its_desk()
    else:
        train, test = (its_8k() if name == "its_8k" else its_long_tailed()), REAL / "test.csv"
    return ["--config", str(REPO / "configs" / "it_service_tickets.yaml"), "--train_file", str(train),
            "--test_file", str(test)]


DATASETS = ("realistic", "its_8k", "its_lt", "its_desk")
REAL_DATASETS = ("its_8k", "its_lt", "its_desk")


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
