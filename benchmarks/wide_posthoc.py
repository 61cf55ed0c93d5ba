"""What the wide part (custom_trainer/wide.py) would add to an already trained model, without retraining it.

    python benchmarks/wide_posthoc.py outputs/recipes/r1_lp_headlr/its_8k/model -- \
        --config configs/it_service_tickets.yaml --train_file outputs/recipes/data/its_8k.csv \
        --test_file ../shared/data/it_service_tickets/test.csv

The flags after `--` are the training run's (they rebuild its splits). Fits the wide logistic regression on the
training split, picks its scale by validation log-loss (as train.py does with --wide_buckets), and prints accuracy
and macro-F1 of the head alone, the wide part alone and both, on validation and test.
"""

from __future__ import annotations

import sys
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


def main(argv=None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--" not in argv or argv.index("--") != 1:
        sys.exit(__doc__)
    model_dir, flags = argv[0], argv[2:]
    from sklearn.linear_model import LogisticRegression
    from transformers import DataCollatorWithPadding

    from custom_trainer.arguments import parse_args
    from custom_trainer.export import load_exported_model
    from custom_trainer.metrics import classification_metrics
    from custom_trainer.wide import feature_counts, fit_wide_scale, inverse_document_frequency, wide_matrix
    from ticket_data import tokenize_dataset
    from train import load_data

    data_args, _, training_args, _ = parse_args(flags)
    raw, _ = load_data(data_args, training_args.seed)
    names = raw["train"].features["label"].names
    model, tokenizer = load_exported_model(model_dir)
    model.eval()
    tokenized = tokenize_dataset(raw, tokenizer, max_length=data_args.max_length)
    vocab, buckets = model.config.encoder_config["vocab_size"], 2 ** 18
    counts = feature_counts(tokenized["train"]["input_ids"], vocab, buckets)
    idf = inverse_document_frequency(counts)
    wide = LogisticRegression(C=10.0, max_iter=2000).fit(wide_matrix(counts, idf), np.array(tokenized["train"]["labels"]))
    collator = DataCollatorWithPadding(tokenizer)
    outputs = {}
    for split in ("validation", "test"):
        features = wide_matrix(feature_counts(tokenized[split]["input_ids"], vocab, buckets), idf)
        outputs[split] = (head_logits(model, collator, tokenized[split]), wide.decision_function(features),
                          np.array(tokenized[split]["labels"]))
    scale = fit_wide_scale(*outputs["validation"])
    print(f"wide scale (validation log-loss): {scale:.3f}")
    print("| part | validation accuracy | validation macro-F1 | test accuracy | test macro-F1 |")
    print("| --- | --- | --- | --- | --- |")
    for name, combine in (("head alone", lambda h, w: h), ("wide alone", lambda h, w: w),
                          ("head + wide", lambda h, w: h + scale * w)):
        cells = []
        for split in ("validation", "test"):
            head, wide_logits, labels = outputs[split]
            metrics = classification_metrics(labels, combine(head, wide_logits).argmax(-1), names)
            cells += [f"{metrics['accuracy']:.4f}", f"{metrics['macro_f1']:.4f}"]
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
