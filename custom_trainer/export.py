"""The export of a trained model: the folder `pipeline("text-classification")` and the router load, its manifest and
its model card.

The folder is written as a new version beside its final place (``.model-versions/<version>/``) and ``model`` (a
symbolic link) is switched to it by one rename (ticket_router/atomic.py): an export that fails or crashes at any point
leaves the previous model (or none), never a partial one, and ``model`` is never missing. ``manifest.json`` records labels, encoder, data
fingerprint, metrics, library versions and a sha256 of every file; `ticket_router.manifest.verify_export` checks it.
"""

from __future__ import annotations

import json
from pathlib import Path

from ticket_router.atomic import versioned_folder
from ticket_router.contract import POOLING_NAMES, format_interval
from ticket_router.guarantee_card import routing_card
from ticket_router.manifest import MANIFEST, sha256_of, verify_export

from .baseline import compare_to_baseline

__all__ = ["MANIFEST", "export_model", "load_exported_model", "model_card", "verify_export"]


def library_versions() -> dict[str, str]:
    import datasets
    import torch
    import transformers

    return {"torch": torch.__version__, "transformers": transformers.__version__, "datasets": datasets.__version__}


def export_model(model, tokenizer, target: str | Path, manifest: dict, model_card: str, extra_files=None) -> Path:
    """Write model, tokenizer, model card and manifest as a new version and point ``target`` at it
    (ticket_router/atomic.py: a crash at any point leaves ``target`` a complete model, the old or the new).
    ``extra_files``: {name: function writing that file at the path it is given} (the similar-ticket index), hashed
    in the manifest like every other file."""
    with versioned_folder(target) as staging:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        for name, write in (extra_files or {}).items():
            write(staging / name)
        (staging / "README.md").write_text(model_card)
        files = {
            path.relative_to(staging).as_posix(): sha256_of(path)
            for path in sorted(staging.rglob("*"))
            if path.is_file()
        }
        full_manifest = {
            **manifest,
            "labels": [model.config.id2label[i] for i in range(model.config.num_labels)],
            "library_versions": library_versions(),
            "files": files,
        }
        (staging / MANIFEST).write_text(json.dumps(full_manifest, indent=2) + "\n")
    return Path(target)


def load_exported_model(folder: str | Path):
    """Verify an exported folder against its manifest, then load (model, tokenizer) for prediction."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    import custom_trainer  # noqa: F401  (registers the model with the Auto classes)

    verify_export(folder)
    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    return model, tokenizer


def similar_card(index: dict | None) -> str:
    """The card's note on the similar-ticket index (nothing when the export has none)."""
    if not index:
        return ""
    texts = ("with their texts (first 300 characters each: the user opted in with `similar_texts`)" if index["texts"]
             else "without their texts (row numbers of the training split and queues only)")
    return (f"## Similar tickets\n\n`{index['file']}` holds the sentence vectors of the {index['tickets']} training "
            f"tickets ({index['dimensions']} dimensions, {index['dtype']}) {texts}; `predict --similar K` and the "
            "service's `POST /similar` return the K nearest by cosine.\n\n")


def combination_text(combination: dict | None) -> str:
    """How the export combines head, wide part and prior correction, and what validation said (card and run report)."""
    if not combination:
        return "The head's logits as trained (`combine_for: none`): no wide part, no prior correction."
    target = {"both": "the smaller of the accuracy and macro-F1 margins over the baseline", "accuracy": "accuracy",
              "macro_f1": "macro-F1"}[combination["target"]]
    chosen, head, base = combination["validation"], combination["head_alone_validation"], combination["baseline_validation"]
    strength = combination["prior_strength"]
    direction = ("towards rare queues" if strength > 0 else "towards the big queues" if strength < 0 else "none")
    wide = ("the wide part (a logistic regression over the tokenizer's uni- and bigrams, inside the model) with weight "
            f"{combination['wide_weight']:g} in (1 - w) x head + w x wide" if combination["wide"] is not None
            else "no wide part (`wide_buckets: 0`)")
    bagged = combination.get("bagging")
    how = (f" (each the mean of the choices on {bagged['resamples']} bootstrap resamples of validation; the best "
           f"single choice on all of it was weight {combination['single_choice']['wide_weight']:g}, prior correction "
           f"{combination['single_choice']['prior_strength']:+g})" if bagged else "")
    return (f"Chosen on the validation split for {target} (`combine_for: {combination['target']}`): {wide}; a prior "
            f"correction (logit adjustment) of {strength:+g} x log(training share of each queue), {direction}{how}. "
            f"Validation accuracy / macro-F1: head alone {head['accuracy']:.4f} / {head['macro_f1']:.4f}, combined "
            f"{chosen['accuracy']:.4f} / {chosen['macro_f1']:.4f}"
            + (f", baseline {base['accuracy']:.4f} / {base['macro_f1']:.4f}" if base else "") + ". Both are plain "
            "weights of the export (`wide_scale` in config.json, a shift of the head's output bias): every backend "
            "computes them. Another target needs a new run with `combine_for` set.")


def prediction_sets_card(sets: dict | None) -> str:
    """The card's section on the conformal prediction sets (nothing when the run has none)."""
    if not sets:
        return ""
    floor = "any probability" if sets["quantile"] is None else f"a probability of at least {1 - sets['quantile']:.4f}"
    test = sets["test"]
    return (f"## Prediction sets\n\nFor the tickets a person triages: the queues with {floor} hold the right one for "
            f"{1 - sets['alpha']:.0%} of tickets drawn like the {sets['calibration_size']} calibration tickets (split "
            f"conformal, `{sets['method']}` score; marginal over tickets, not per queue). On test: coverage "
            f"{test['coverage']:.4f}, mean set size {test['mean_size']:.2f}, median {test['median_size']:g}, largest "
            f"{test['max_size']}.\n")


def fields_card(fields: dict | None) -> str:
    """The card's section on the extra fields: each against its own baseline, with its test interval."""
    if not fields:
        return ""
    rows = []
    for name, field in fields.items():
        test, base = field.get("test"), field["baseline"].get("test")
        if not test:
            continue
        interval = field.get("intervals", {}).get("test", {}).get("macro_f1")
        span = f" {format_interval(interval)}" if interval else ""
        baseline = f"{base['accuracy']:.4f} | {base['macro_f1']:.4f}" if base else "- | -"
        rows.append(f"| {name} | {len(field['labels'])} | {test['accuracy']:.4f} | {test['macro_f1']:.4f}{span} | "
                    f"{baseline} | {field['blank'].get('test', 0)} |")
    return ("## Other fields\n\nThe same encoder pass also predicts these fields, one head each, each with its own "
            "class weights, wide part, temperature and prediction sets (the routing rule is the routed field's "
            "alone). Test figures on the rows with a value for the field, beside TF-IDF + logistic regression "
            "fitted on the same rows:\n\n| field | labels | accuracy | macro-F1 [95%] | baseline accuracy | baseline "
            "macro-F1 | blank in test |\n| --- | --- | --- | --- | --- | --- | --- |\n" + "\n".join(rows) + "\n\n"
            "Routed files get `predicted_<field>`, `score_<field>`, `top3_<field>` and `prediction_set_<field>`; "
            "`Router.route` and the service give a `fields` object per ticket.\n\n")


def training_time_card(metrics: dict) -> str:
    """How long the run took, and on what: a desk retrains on its own machine and wants to know what to expect."""
    machine = metrics.get("training_machine")
    if not machine:
        return ""
    seconds = metrics.get("train_runtime_s", 0.0)
    fine_tuning = machine.get("fine_tuning_s")
    speed = [f"{machine['precision']} arithmetic"]
    if machine.get("cheap_dropout_masks"):
        speed.append("cheap dropout masks")
    if machine.get("freed_memory_kept"):
        speed.append("freed memory kept for reuse")
    sizes = metrics.get("data", {}).get("sizes", {})
    processes = machine.get("processes", 1)
    return (f"## Training time\n\n{int(seconds // 60)} min {seconds % 60:.0f} s for the whole run"
            f"{f' (fine-tuning {fine_tuning:.0f} s)' if fine_tuning else ''} on {sizes.get('train', '?')} training "
            f"tickets, on {machine['device']} with {machine['threads']} threads"
            f"{f' x {processes} processes' if processes > 1 else ''} ({', '.join(speed)}).\n\n")


def recipe_text(args, contrastive: dict | None) -> str:
    """The card's recipe: the contrastive stage if one ran, the head probe, and the fine-tuning if any."""
    stage = (f"a contrastive sentence-pair stage ({contrastive['epochs']:g} passes, lr {contrastive['learning_rate']}, "
             f"batches of {contrastive['batch_size']}), then " if contrastive else "")
    probe = (f"the head trained alone on frozen sentence vectors ({args.head_probe_epochs:g} passes)"
             if args.head_probe_epochs else "")
    # train.py's choose_checkpoint turns load_best_model_at_end off where validation is too small to choose an epoch
    epoch_choice = (f"early stopping on validation macro-F1 (patience {args.early_stopping_patience})"
                    if args.load_best_model_at_end else "the last epoch kept (no epoch chosen on validation)")
    if not args.num_train_epochs:
        setfit = " (SetFit's recipe)" if contrastive and probe else ""
        return f"{stage}{probe or 'an untrained head'}; no fine-tuning after it{setfit}, seed {args.seed}."
    return (f"{stage}{probe + ', then ' if probe else ''}lr {args.learning_rate}"
            f"{f' (head {args.head_learning_rate})' if args.head_learning_rate else ''}, weight decay "
            f"{args.weight_decay}, batch {args.per_device_train_batch_size}\nx {args.gradient_accumulation_steps} "
            f"accumulation, up to {args.num_train_epochs} epochs,\n{'one-cycle' if args.one_cycle else args.lr_scheduler_type} "
            f"schedule, gradient clipping {args.max_grad_norm},\n{epoch_choice}, seed {args.seed}.")


def model_card(data_source: str, model_args, args, metrics: dict) -> str:
    """The export's README.md: recipe, figures beside the baseline's, per-label F1, routing and its guarantee, use."""
    test, validation, baseline = metrics["test"], metrics["validation"], metrics["baseline"]
    intervals = metrics["intervals"]["test"]
    per_class = "\n".join(
        f"| {key[3:]} | {value:.4f} |" for key, value in test.items() if key.startswith("f1_")
    )
    merged, triage = metrics["data"].get("labels_merged"), metrics["data"].get("triage_labels")
    below = compare_to_baseline(metrics, baseline)
    below_note = f" **The model is below it: {'; '.join(below)}.**" if below else ""
    rare_section = ""
    if merged:
        rare_section = (
            f"\n## Rare queues\n\nLabels with too few training tickets were merged into `{triage[0]}`, which is never "
            f"auto-routed (its tickets always go to triage): "
            + ", ".join(f"{label} ({count})" for label, count in merged.items()) + ".\n"
        )
    return f"""---
library_name: transformers
pipeline_tag: text-classification
---
# Service-desk ticket classifier

Encoder `{model_args.model_name_or_path}` with a classification head on the {POOLING_NAMES[model_args.pooling]} (Dropout,
Linear -> {model_args.head_hidden_size}, GELU, Dropout, Linear), trained with focal loss
(gamma {model_args.focal_gamma}, class weights: {model_args.class_weighting}) on **{data_source}**.

Recipe: {recipe_text(args, (metrics.get("head_probe") or {}).get("contrastive"))}

| split | accuracy | macro-F1 | weighted F1 |
| --- | --- | --- | --- |
| validation | {validation['accuracy']:.4f} | {validation['macro_f1']:.4f} | {validation['weighted_f1']:.4f} |
| test | {test['accuracy']:.4f} | {test['macro_f1']:.4f} | {test['weighted_f1']:.4f} |
| validation, baseline | {baseline['validation']['accuracy']:.4f} | {baseline['validation']['macro_f1']:.4f} | {baseline['validation']['weighted_f1']:.4f} |
| test, baseline | {baseline['test']['accuracy']:.4f} | {baseline['test']['macro_f1']:.4f} | {baseline['test']['weighted_f1']:.4f} |

Test, 95% intervals ({intervals['n_resamples']} percentile-bootstrap resamples of the test tickets): accuracy
{format_interval(intervals['accuracy'])}, macro-F1 {format_interval(intervals['macro_f1'])}.

Baseline: {baseline['name']} (scikit-learn) fitted on the same training split.{below_note}

{combination_text(metrics.get("combination"))}

| label | test F1 |
| --- | --- |
{per_class}
{rare_section}
## Routing

{routing_card(metrics["routing"]["guarantee"], metrics["routing"]["rule"]["score"],
              metrics["routing"]["rule"]["thresholds"], metrics["routing"]["temperature"], metrics["routing"]["test"])}

{prediction_sets_card(metrics.get("prediction_sets"))}
{fields_card(metrics.get("fields"))}{similar_card(metrics.get("similar_index"))}{training_time_card(metrics)}## Use

```python
from transformers import pipeline
router = pipeline("text-classification", model="<this folder>", trust_remote_code=True)
router({{"text": "VPN keeps dropping", "text_pair": "Disconnects every 10 minutes since Monday."}}, top_k=3)
```

E-mail addresses are masked and whitespace collapsed by the tokenizer itself. Give `text_pair` only when the
ticket has both a subject and a description. Pass `truncation=True` for long tickets (the tokenizer's
`model_max_length` is the training length).
"""
