"""What combining (custom_trainer/combine.py: the wide part's weight and a prior correction, chosen on validation)
does to an already trained model, without retraining it: the step train.py runs after training, on a saved model.

    python benchmarks/combine_posthoc.py outputs/recipes/session9/its_lt/model -- \
        --config configs/it_service_tickets.yaml --train_file outputs/recipes/data/its_lt100.csv \
        --test_file ../shared/data/it_service_tickets/test.csv

The flags after `--` are the training run's (they rebuild its splits and its baseline). The model's logits on
validation and test are cached beside it (combine_logits.npz), so a second call takes seconds. Prints accuracy and
macro-F1 of the head alone, the wide part alone, the baseline and the choice for each `combine_for` target, on
validation and test. Models trained before issue 26 have no wide part: it is fitted here as train.py fits it.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def head_logits(model, collator, dataset, batch_size: int = 128) -> np.ndarray:
    """The model's logits for a tokenised split, in its order; scored in batches of similar length."""
    order = np.argsort(dataset["length"], kind="stable")
    logits = np.zeros((len(dataset), model.config.num_labels))
    columns = {c: dataset[c] for c in ("input_ids", "attention_mask", "token_type_ids") if c in dataset.column_names}
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            rows = order[start:start + batch_size]
            batch = collator([{c: values[int(i)] for c, values in columns.items()} for i in rows])
            logits[rows] = model(**batch).logits.float().numpy()
    return logits


def main(argv=None) -> dict:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--" not in argv or argv.index("--") != 1:
        sys.exit(__doc__)
    model_dir, flags = Path(argv[0]), argv[2:]
    from transformers import DataCollatorWithPadding

    from custom_trainer.arguments import parse_args
    from custom_trainer.baseline import baseline_metrics
    from custom_trainer.evaluation import bootstrap_intervals
    from ticket_router.contract import format_interval
    from custom_trainer.combine import COMBINE_TARGETS, choose_combination, combined_logits, log_prior
    from custom_trainer.export import load_exported_model
    from custom_trainer.metrics import classification_metrics
    from custom_trainer.wide import feature_counts, fit_regression, wide_matrix
    from ticket_data import tokenize_dataset
    from train import load_data

    started = time.time()
    data_args, model_args, training_args, _ = parse_args(flags)
    raw, _ = load_data(data_args, training_args.seed)
    names = raw["train"].features["label"].names
    model, tokenizer = load_exported_model(str(model_dir))
    model.eval()
    tokenized = tokenize_dataset(raw, tokenizer, max_length=data_args.max_length)
    labels = {split: np.array(tokenized[split]["labels"]) for split in ("validation", "test")}
    cache = model_dir.parent / "combine_logits.npz"
    if cache.is_file():
        head = dict(np.load(cache))
    else:  # the export's logits are divided by its temperature: multiply back (the grid is over raw logits)
        collator = DataCollatorWithPadding(tokenizer)
        temperature = model.config.calibration_temperature
        head = {split: head_logits(model, collator, tokenized[split]) * temperature for split in labels}
        np.savez_compressed(cache, **head)
    baseline = baseline_metrics(raw, names, seed=training_args.seed)
    vocab, buckets = model.config.encoder_config["vocab_size"], model_args.wide_buckets
    fitted = fit_regression(tokenized["train"]["input_ids"], tokenized["train"]["labels"], vocab, buckets, len(names),
                            training_args.seed)
    wide = {split: wide_matrix(feature_counts(tokenized[split]["input_ids"], vocab, buckets), fitted["idf"])
            @ fitted["weight"].T + fitted["bias"] for split in labels}
    prior = log_prior(tokenized["train"]["labels"], len(names))

    def row(name, logits_of):
        cells = []
        for split in ("validation", "test"):
            figures = classification_metrics(labels[split], logits_of(split).argmax(-1), names)
            cells += [figures["accuracy"], figures["macro_f1"]]
        print(f"| {name} | " + " | ".join(f"{c:.4f}" for c in cells) + " |")
        return cells

    print(f"\n{model_dir}: {len(raw['train'])} / {len(raw['validation'])} / {len(raw['test'])} tickets")
    print("| system | validation accuracy | validation macro-F1 | test accuracy | test macro-F1 |")
    print("| --- | --- | --- | --- | --- |")
    results = {"head alone": row("head alone", lambda s: head[s]), "wide part alone": row("wide part alone", lambda s: wide[s])}
    results["baseline"] = [baseline[s][k] for s in ("validation", "test") for k in ("accuracy", "macro_f1")]
    print("| baseline | " + " | ".join(f"{c:.4f}" for c in results["baseline"]) + " |")
    for target in COMBINE_TARGETS[:-1]:
        choice = choose_combination(head["validation"], wide["validation"], labels["validation"], prior, target,
                                    baseline["validation"])
        name = f"combined for {target} (w {choice['wide_weight']}, tau {choice['prior_strength']:+})"
        results[name] = row(name, lambda s: combined_logits(head[s], wide[s], choice["wide_weight"],
                                                            choice["prior_strength"], prior))
        if target == "both":  # the default: its test figures with 95% bootstrap intervals, as train.py reports them
            predicted = combined_logits(head["test"], wide["test"], choice["wide_weight"], choice["prior_strength"],
                                        prior).argmax(-1)
            intervals = bootstrap_intervals(labels["test"], predicted, len(names), np.zeros(len(predicted), bool),
                                            n_resamples=1000, seed=training_args.seed)
            results["intervals"] = {k: intervals[k] for k in ("accuracy", "macro_f1")}
            print(f"  test 95% intervals: accuracy {format_interval(intervals['accuracy'])}, macro-F1 "
                  f"{format_interval(intervals['macro_f1'])}")
    print(f"({time.time() - started:.0f} s)")
    return results


if __name__ == "__main__":
    main()
