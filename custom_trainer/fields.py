"""Extra label fields (train.py ``extra_label_columns``): one model predicts queue, priority and type from one encoder
pass, one head per field. The routed field (``label_column``) keeps everything it has (the routing rule, its
certification, the prediction sets, the combination); this module gives every extra field what a field needs on its
own, after training, with the routed field's rules:

- its baseline: TF-IDF + logistic regression on the training rows that have a value for it;
- its wide part (a logistic regression over the same token features, custom_trainer/wide.py) and the combination
  (wide weight and prior correction) chosen on its validation rows (custom_trainer/combine.py);
- its temperature (fitted on its validation rows) and its conformal prediction sets (calibrated on its calibration
  rows): calibrated confidence, top-3 and sets for every field;
- its figures on validation and test, with 95% bootstrap intervals and its confusion matrix.

Rows with a blank value for a field (label -100) are left out of that field's loss, fits and figures, and counted.
Functions take the run's pieces (scores per split: ``{"logits", "labels", "fields": {name: {...}}}``).
"""

from __future__ import annotations

import logging

import numpy as np
import torch

from .baseline import BASELINE_NAME, fit_baseline, ticket_strings
from .combine import choose, export_weights, log_prior
from .confidence import fit_temperature
from .evaluation import bootstrap_intervals
from .metrics import classification_metrics, split_fields
from .wide import feature_counts, fit_regression, wide_matrix

logger = logging.getLogger(__name__)
METRIC_KEYS = ("accuracy", "macro_f1", "weighted_f1")


def field_specs(field_labels: dict[str, list[str]], train_extra, class_weighting_power: float,
                loss_weights) -> list[dict]:
    """The config's ``extra_fields`` before training: names, labels, class weights (from the training rows that
    have a value, as the routed field's) and loss weights (``loss_weights`` in order; 1 by default)."""
    from .losses import class_weights

    specs = []
    rows = np.asarray(train_extra, dtype=np.int64).reshape(len(train_extra), -1) if len(train_extra) else None
    loss_weights = list(loss_weights or [])
    if loss_weights and len(loss_weights) != len(field_labels):
        raise ValueError(f"field_loss_weights: {len(loss_weights)} weights for {len(field_labels)} extra fields "
                         f"{list(field_labels)}")
    for index, (name, labels) in enumerate(field_labels.items()):
        known = rows[:, index][rows[:, index] >= 0]
        weights = (class_weights(known, len(labels), power=class_weighting_power).tolist()
                   if class_weighting_power > 0 else None)
        specs.append({"name": name, "labels": list(labels), "class_weights": weights,
                      "loss_weight": float(loss_weights[index]) if loss_weights else 1.0,
                      "calibration_temperature": 1.0, "wide_scale": 0.0, "prediction_sets": None})
    return specs


def split_scores(scores: dict, field_labels: dict[str, list[str]]) -> None:
    """Each split's Trainer output, in place: the routed field's logits and labels, and ``fields``: {name:
    {"logits", "labels"}} for the extra fields (labels -100 where blank)."""
    field_names, sizes = list(field_labels), [len(names) for names in field_labels.values()]
    for part in scores.values():
        logits, labels, fields = split_fields(part["logits"], part["labels"], sizes)
        part["logits"], part["labels"] = logits, labels
        part["fields"] = {name: {"logits": np.asarray(field_logits), "labels": np.asarray(field_labels)}
                          for name, (field_logits, field_labels) in zip(field_names, fields)}


def known(labels) -> np.ndarray:
    return np.asarray(labels) >= 0


def field_baseline(raw, index: int, names: list[str], seed: int) -> dict:
    """TF-IDF + logistic regression for one extra field, on the training rows that have a value for it."""
    train = raw["train"]
    labels = np.array([row[index] for row in train["extra_labels"]])
    texts = ticket_strings(train)
    model = fit_baseline([t for t, k in zip(texts, labels >= 0) if k], labels[labels >= 0], seed)
    result = {"name": BASELINE_NAME}
    for split in ("validation", "test"):
        split_labels = np.array([row[index] for row in raw[split]["extra_labels"]])
        mask = split_labels >= 0
        if mask.any():
            predicted = model.predict([t for t, k in zip(ticket_strings(raw[split]), mask) if k])
            result[split] = classification_metrics(split_labels[mask], predicted, names)
    return result


def fit_wide_fields(model, index: int, train_ids, train_labels, seed: int) -> tuple[dict, object]:
    """Extra field ``index``'s wide part, fitted on the training rows that have a value, on the routed field's
    features (its idf): written into the model; returns what the fit did and a function giving its logits."""
    labels = np.asarray(train_labels)
    rows = [ids for ids, label in zip(train_ids, labels) if label >= 0]
    config = model.config
    vocab, buckets = config.encoder_config["vocab_size"], config.wide_buckets
    idf = model.wide_idf.double().numpy()
    fitted = fit_regression(rows, labels[labels >= 0], vocab, buckets, len(config.extra_fields[index]["labels"]),
                            seed, idf=idf)
    with torch.no_grad():
        table, bias = model.wide_fields[index], model.wide_fields_bias[index]
        table.weight.copy_(torch.as_tensor(fitted["weight"].T, dtype=table.weight.dtype))
        bias.copy_(torch.as_tensor(fitted["bias"], dtype=bias.dtype))

    def logits(input_ids):
        features = wide_matrix(feature_counts(input_ids, vocab, buckets), idf)
        return features @ fitted["weight"].T + fitted["bias"]

    return fitted["info"], logits


def finish_fields(model, tokenized, scores: dict, raw, field_labels: dict[str, list[str]], combine_for: str,
                  set_alpha: float, n_resamples: int, seed: int) -> dict:
    """Everything an extra field needs after training (module docstring), written into ``model.config``
    (``extra_fields``) and its weights; returns ``metrics["fields"]``."""
    from ticket_router.prediction_sets import calibrate_sets, prediction_sets, set_stats, stored_quantile
    from ticket_router.rule import softmax

    results = {}
    for index, (name, names) in enumerate(field_labels.items()):
        spec = model.config.extra_fields[index]
        parts = {split: part["fields"][name] for split, part in scores.items()}
        baseline = field_baseline(raw, index, names, seed)
        train_labels = np.array([row[index] for row in raw["train"]["extra_labels"]])
        result = {"labels": names, "baseline": baseline,
                  "blank": {split: int((~known(part["labels"])).sum()) for split, part in parts.items()}}
        head_only = {split: classification_metrics(part["labels"][known(part["labels"])],
                                                   part["logits"][known(part["labels"])].argmax(-1), names)
                     for split, part in parts.items() if split in ("validation", "test") and known(part["labels"]).any()}
        validation = parts["validation"]
        mask = known(validation["labels"])
        if combine_for != "none" and mask.any():
            wide = None
            if len(model.wide_fields):
                info, wide_of = fit_wide_fields(model, index, tokenized["train"]["input_ids"], train_labels, seed)
                wide = {split: wide_of(tokenized[split]["input_ids"]) for split in parts}
                result["wide"] = info
            prior = log_prior(train_labels[train_labels >= 0], len(names))
            choice = choose(validation["logits"][mask], None if wide is None else wide["validation"][mask],
                            validation["labels"][mask], prior, combine_for, baseline.get("validation"))
            scale, shift = export_weights(choice["wide_weight"], choice["prior_strength"], prior)
            spec["wide_scale"] = float(scale) if wide is not None else 0.0
            with torch.no_grad():
                bias = model.head_fields[index][-1].bias
                bias.add_(torch.as_tensor(shift, dtype=bias.dtype))
            for split, part in parts.items():
                part["logits"] = part["logits"] + shift + (scale * wide[split] if wide is not None else 0.0)
            result["combination"] = {key: choice[key] for key in ("target", "wide_weight", "prior_strength",
                                                                  "validation", "head_alone_validation",
                                                                  "single_choice", "bagging") if key in choice}
            result["combination"]["head_only"] = head_only
        temperature = fit_temperature(validation["logits"][mask], validation["labels"][mask]) if mask.any() else 1.0
        spec["calibration_temperature"] = float(temperature)
        result["temperature"] = float(temperature)
        for split in ("validation", "test"):
            part = parts[split]
            keep = known(part["labels"])
            if keep.any():
                result[split] = classification_metrics(part["labels"][keep], part["logits"][keep].argmax(-1), names)
        test = parts["test"]
        keep = known(test["labels"])
        if keep.any():
            predicted = test["logits"][keep].argmax(-1)
            result["intervals"] = {"test": bootstrap_intervals(test["labels"][keep], predicted, len(names),
                                                               n_resamples=n_resamples, seed=seed)}
            result["confusion"] = np.bincount(test["labels"][keep] * len(names) + predicted,
                                              minlength=len(names) ** 2).reshape(len(names), len(names)).tolist()
        calibration = parts.get("calibration")
        if calibration is not None and known(calibration["labels"]).any():
            keep = known(calibration["labels"])
            sets = calibrate_sets(softmax(calibration["logits"][keep] / temperature), calibration["labels"][keep],
                                  set_alpha)
            spec["prediction_sets"] = sets
            test_keep = known(test["labels"])
            if test_keep.any():
                members = prediction_sets(softmax(test["logits"][test_keep] / temperature), stored_quantile(sets))
                sets = {**sets, "test": set_stats(members, test["labels"][test_keep])}
            result["prediction_sets"] = sets
        if "validation" in result and "validation" in baseline:
            logger.info("field %s: validation accuracy %.4f, macro-F1 %.4f (baseline %.4f, %.4f)", name,
                        result["validation"]["accuracy"], result["validation"]["macro_f1"],
                        baseline["validation"]["accuracy"], baseline["validation"]["macro_f1"])
        results[name] = result
    return results


def fields_summary(fields: dict) -> str:
    """A line per extra field for the run's summary."""
    lines = []
    for name, field in fields.items():
        test, baseline = field.get("test"), field["baseline"].get("test")
        if test is None:
            continue
        interval = field.get("intervals", {}).get("test", {}).get("macro_f1")
        span = f" [{interval[0]:.4f}, {interval[1]:.4f}]" if interval else ""
        line = f"field {name}: test macro-F1 {test['macro_f1']:.4f}{span} accuracy {test['accuracy']:.4f}"
        if baseline:
            line += f" | baseline macro-F1 {baseline['macro_f1']:.4f} accuracy {baseline['accuracy']:.4f}"
        lines.append(line)
    return "".join(line + "\n" for line in lines)
