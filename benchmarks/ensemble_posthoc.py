"""How far combining already trained models goes, scored without retraining: weight averages ("model soups"),
probability averages (ensembles) and the TF-IDF baseline stacked on top.

    python benchmarks/ensemble_posthoc.py --models outputs/a/model outputs/b/model outputs/a/checkpoint-3231 \
        -- --config configs/it_service_tickets.yaml

The flags after `--` rebuild the training run's splits (validation and test). Prints accuracy and macro-F1 on
validation and test of each model alone, of the uniform weight average of all of them (one model, the same size as
each: Wortsman et al. 2022, "Model soups"), of the greedy soup (models added in order of validation macro-F1 while
validation does not fall), of the probability average (an ensemble: N times the inference cost), and of the first
model and of the probability average each with the TF-IDF + logistic-regression baseline's log-probabilities added
(custom_trainer/baseline.py, fitted on the training split; its weight picked on validation macro-F1 from 0-1 by
0.1). Models must share an architecture and a pretrained starting point. Logits are cached under --cache.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def load_model(path: str):
    from transformers import AutoModelForSequenceClassification

    import custom_trainer  # noqa: F401  (registers the model with the Auto classes)

    return AutoModelForSequenceClassification.from_pretrained(path).eval()


def averaged(paths: list[str]):
    model = load_model(paths[0])
    total = {k: v.detach().clone().double() for k, v in model.state_dict().items()}
    for path in paths[1:]:
        for k, v in load_model(path).state_dict().items():
            total[k] += v.double()
    model.load_state_dict({k: (v / len(paths)).to(model.state_dict()[k].dtype) for k, v in total.items()})
    return model


def main(argv=None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--" not in argv:
        sys.exit(__doc__)
    cut = argv.index("--")
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", required=True)
    parser.add_argument("--cache", default="outputs/soup_cache")
    parser.add_argument("--skip_greedy", action="store_true")
    known = parser.parse_args(argv[:cut])
    from transformers import AutoTokenizer, DataCollatorWithPadding

    from benchmarks.combine_posthoc import head_logits
    from custom_trainer.arguments import parse_args
    from custom_trainer.metrics import classification_metrics
    from ticket_data import tokenize_dataset
    from train import load_data

    data_args, _, training_args, _ = parse_args(argv[cut + 1:])
    raw, _ = load_data(data_args, training_args.seed)
    names = raw["train"].features["label"].names
    tokenizer = AutoTokenizer.from_pretrained(known.models[0])
    tokenized = tokenize_dataset(raw, tokenizer, max_length=data_args.max_length)
    collator = DataCollatorWithPadding(tokenizer)
    labels = {split: np.array(tokenized[split]["labels"]) for split in ("validation", "test")}
    cache = Path(known.cache)
    cache.mkdir(parents=True, exist_ok=True)

    def logits_of(key: str, make) -> dict:
        file = cache / (hashlib.sha256(f"{key}|{data_args.max_length}".encode()).hexdigest()[:16] + ".npz")
        if file.exists():
            return dict(np.load(file))
        model = make()
        out = {split: head_logits(model, collator, tokenized[split]) for split in ("validation", "test")}
        np.savez(file, **out)
        return out

    def scores(logits: dict) -> list[float]:
        cells = []
        for split in ("validation", "test"):
            metrics = classification_metrics(labels[split], logits[split].argmax(-1), names)
            cells += [metrics["accuracy"], metrics["macro_f1"]]
        return cells

    def row(name: str, cells: list[float]) -> None:
        print(f"| {name} | " + " | ".join(f"{c:.4f}" for c in cells) + " |", flush=True)

    print("| model | validation accuracy | validation macro-F1 | test accuracy | test macro-F1 |")
    print("| --- | --- | --- | --- | --- |")
    single = {}
    for path in known.models:
        single[path] = logits_of(path, lambda p=path: load_model(p))
        row(path, scores(single[path]))

    def probability_mean(paths):
        return {split: np.mean([torch.softmax(torch.from_numpy(single[p][split]), -1).numpy() for p in paths], 0)
                for split in ("validation", "test")}

    row(f"probability average of all {len(known.models)}", scores(probability_mean(known.models)))
    uniform = logits_of("uniform|" + "|".join(known.models), lambda: averaged(known.models))
    row(f"uniform soup of all {len(known.models)}", scores(uniform))

    from custom_trainer.baseline import fit_baseline, ticket_strings

    baseline = fit_baseline(ticket_strings(raw["train"]), raw["train"]["label"])
    tfidf = {split: np.log(baseline.predict_proba(ticket_strings(raw[split])) + 1e-9) for split in ("validation", "test")}
    row("TF-IDF + logistic regression alone", scores(tfidf))
    first = {split: torch.log_softmax(torch.from_numpy(single[known.models[0]][split]), -1).numpy()
             for split in ("validation", "test")}
    average = {split: np.log(p + 1e-12) for split, p in probability_mean(known.models).items()}
    for name, log_probs in ((known.models[0], first), (f"probability average of all {len(known.models)}", average)):
        stacked = {w: {s: log_probs[s] + w * tfidf[s] for s in log_probs} for w in np.round(np.arange(0, 1.01, 0.1), 1)}
        weight = max(stacked, key=lambda w: (scores(stacked[w])[1], -w))
        row(f"{name} + {weight} x TF-IDF (weight by validation)", scores(stacked[weight]))
    if known.skip_greedy:
        return
    ranked = sorted(known.models, key=lambda p: -scores(single[p])[1])
    soup, best = [ranked[0]], scores(single[ranked[0]])[1]
    for path in ranked[1:]:
        trial = soup + [path]
        logits = logits_of("uniform|" + "|".join(trial), lambda t=trial: averaged(t))
        if scores(logits)[1] >= best:
            soup, best = trial, scores(logits)[1]
            print(f"greedy: kept {path} (validation macro-F1 {best:.4f})", flush=True)
    row("greedy soup: " + " + ".join(soup), scores(logits_of("uniform|" + "|".join(soup), lambda: averaged(soup))))


if __name__ == "__main__":
    main()
