"""Fine-tune a ticket classifier: data -> tokenise -> focal-loss Trainer -> evaluate -> reports -> export.

    python train.py                                  # configs/cpu.yaml: the embedded encoder, offline
    accelerate launch train.py --config configs/t4.yaml
    python train.py --config configs/cpu.yaml --num_train_epochs 1 --output_dir outputs/try
"""

from __future__ import annotations

import hashlib
import json
import logging
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import datasets
import numpy as np
import torch
import transformers
from transformers import AutoTokenizer, DataCollatorWithPadding, EarlyStoppingCallback, set_seed

from custom_trainer import TicketClassifier, class_weights
from custom_trainer.losses import CLASS_WEIGHT_POWERS
from custom_trainer.arguments import DataArguments, ModelArguments, TicketTrainingArguments, parse_args
from custom_trainer.audit import audit_file, summarize_audit
from custom_trainer.baseline import ADVICE, baseline_metrics, compare_to_baseline, ticket_strings
from custom_trainer.contrastive import contrastive_stage, stage_plan, stage_step_cost
from custom_trainer.small_exports import encoder_plan, projected_run_seconds, reading_plan
from custom_trainer.confidence import RoutingRule, fit_routing, softmax
from custom_trainer.cpu_memory import keep_freed_memory_for
from custom_trainer.combine import choose, export_weights, log_prior
from custom_trainer.encoders import (EMBEDDED, LARGER, LARGER_INSTALL, larger_encoder_path, larger_encoder_pieces,
                                     resolve_encoder)
from custom_trainer.evaluation import bootstrap_intervals
from custom_trainer.export import export_model, model_card
from custom_trainer.fields import field_specs, fields_summary, finish_fields, split_scores
from custom_trainer.metrics import classification_metrics, make_compute_metrics
from custom_trainer.probe import probe_head, sentence_vectors
from custom_trainer.reports import strip_prefix, write_reports
from custom_trainer.run_report import write_run_report
from custom_trainer.trainer import EvaluationClock, TicketTrainer, epoch_history
from custom_trainer.wide import fit_wide, wide_logits
from ticket_data import build_dataset, ticket_tokenizer, tokenize_dataset
from ticket_data.builder import GROUPED_BY
from ticket_data.loading import extra_field_labels, load_tickets_with_report, summarize_report
from ticket_data.preprocessing import clean_text
from ticket_data.tokenization import encode_tickets
from ticket_router.atomic import atomic_path, write_text
from ticket_router.certification import check_queue_targets, parse_queue_targets
from ticket_router.contract import SEEN_TICKETS_FILE, format_interval
from ticket_router.prediction_sets import calibrate_sets, prediction_sets, set_stats, stored_quantile
from ticket_router.seen_tickets import write as write_seen_tickets
from ticket_router.similar import INDEX_FILE, write_index
from ticket_router.tables import write_table
from ticket_router.guarantee_card import frontier_lines, guarantee_line

logger = logging.getLogger("train")


def load_data(data_args: DataArguments, seed: int) -> tuple[datasets.DatasetDict, dict]:
    """The splits, and the data report: what was read, skipped, merged, dropped and removed."""
    if data_args.train_file is not None:
        seed = seed if data_args.split_seed is None else data_args.split_seed
        return load_tickets_with_report(
            data_args.train_file,
            test=data_args.test_file,
            text_columns=tuple(data_args.text_columns),
            label_column=data_args.label_column,
            validation_size=data_args.validation_size,
            test_size=data_args.test_size,
            seed=seed,
            policy=data_args.data_policy,
            calibration_size=data_args.calibration_size,
            extra_label_columns=data_args.extra_label_columns,
        )
    options = {} if data_args.corpus_size is None else {"per_category": data_args.corpus_size}
    raw = build_dataset(data_args.dataset, cache_dir=data_args.dataset_cache_dir,
                        calibration_fraction=data_args.calibration_size, **options)
    return raw, {"corpus": data_args.dataset, "splits": {split: len(rows) for split, rows in raw.items()}}


def token_length_profile(raw: datasets.DatasetDict, tokenizer, max_length: int, sample: int = 20_000, seed: int = 0) -> dict:
    """Tokens per training ticket before truncation (a seeded sample of at most ``sample``; fields longer than
    any ticket needs are cut first, see `encode_tickets`): percentiles and the share that ``max_length`` cuts."""
    train = raw["train"]
    rows = np.random.default_rng(seed).permutation(len(train))[:sample] if len(train) > sample else np.arange(len(train))
    subset = train.select(rows)
    encoded = encode_tickets(tokenizer, subset["subject"], subset["description"], max_length=max_length,
                             truncation=False)
    lengths = np.array([len(ids) for ids in encoded["input_ids"]])
    p50, p90, p99 = (int(np.percentile(lengths, q)) for q in (50, 90, 99))
    return {"p50": p50, "p90": p90, "p99": p99, "max": int(lengths.max()), "max_length": max_length,
            "share_truncated": float((lengths > max_length).mean()), "tickets_measured": int(len(lengths))}


def data_fingerprint(raw: datasets.DatasetDict) -> str:
    """sha256 of every split's rows in order: changes whenever the data does."""
    digest = hashlib.sha256()
    for split in ("train", "validation", "test", "calibration"):
        if split not in raw:
            continue
        digest.update(split.encode())
        digest.update(json.dumps(raw[split].features["label"].names).encode())
        for row in raw[split]:
            digest.update(json.dumps([row["subject"], row["description"], row["label"]]).encode())
    return digest.hexdigest()


def routing_summary(routing: dict) -> str:
    """The routing rule, its guarantee, what it did on calibration and test, and the menu of targets, in a few lines."""
    guarantee, previous = routing["guarantee"], routing["test"]["previous_rule"]
    lines = [f"routing: {routing['rule']['description']}; {guarantee_line(guarantee)}"]
    if "calibration" in routing:
        lines.append(f"  auto-routed / misrouted among them: calibration {routing['calibration']['coverage']:.1%} / "
                     f"{routing['calibration']['misrouting']:.2%}, test {routing['test']['coverage']:.1%} / "
                     f"{routing['test']['misrouting']:.2%} (previous rule, no guarantee: test {previous['coverage']:.1%}"
                     f" / {previous['misrouting']:.2%})")
    lines += ["  " + line for line in frontier_lines(guarantee)]
    return "\n".join(lines)


def prediction_set_summary(sets: dict | None) -> str:
    """One line on the conformal sets, or nothing when the run has none."""
    if not sets:
        return ""
    test = sets["test"]
    return (f"prediction sets ({1 - sets['alpha']:.0%}, calibrated on {sets['calibration_size']} tickets): test coverage "
            f"{test['coverage']:.1%}, mean size {test['mean_size']:.2f}, median {test['median_size']:g}\n")


def combination_summary(combination: dict | None) -> str:
    if not combination:
        return ""
    bagged = combination.get("bagging")
    how = f" (the mean of the choices on {bagged['resamples']} resamples of validation)" if bagged else ""
    return (f"combined for {combination['target']} on validation: wide weight {combination['wide_weight']:g}, prior "
            f"correction {combination['prior_strength']:+g}{how} (head alone: validation macro-F1 "
            f"{combination['head_alone_validation']['macro_f1']:.4f}, accuracy "
            f"{combination['head_alone_validation']['accuracy']:.4f})\n")


def pick(metrics: dict, keys=("accuracy", "macro_f1", "weighted_f1")) -> dict:
    return {key: metrics[key] for key in keys}


def last_complete_checkpoint(output_dir: str | Path) -> str | None:
    """The newest checkpoint whose trainer_state.json (the Trainer writes it last) is complete.

    A run killed while saving leaves a partial checkpoint folder; resuming from it would fail.
    """
    found = sorted(Path(output_dir).glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[-1]) if p.name.split("-")[-1].isdigit() else -1)
    for checkpoint in reversed(found):
        try:
            json.loads((checkpoint / "trainer_state.json").read_text())
            return str(checkpoint)
        except (OSError, ValueError):
            logger.warning("skipping incomplete checkpoint %s", checkpoint)
    return None


def resume_checkpoint(args: TicketTrainingArguments) -> str | None:
    """``resume_from_checkpoint: auto`` continues from the newest complete checkpoint in output_dir, if any."""
    if args.resume_from_checkpoint in ("auto", "true", "True"):
        last = last_complete_checkpoint(args.output_dir)
        if last is not None:
            logger.info("resuming from %s", last)
        return last
    return args.resume_from_checkpoint


@dataclass
class PreparedData:
    """The splits and what the run knows about them before training."""

    raw: datasets.DatasetDict
    report: dict  # what was read, skipped, merged, dropped and removed (reports/data_report.json)
    label_names: list[str]
    triage_labels: list[str]  # never auto-routed: the merged bucket of rare queues and never_auto_route
    queue_targets: dict
    source: str
    fields: dict  # extra label fields: {name: labels} (empty: one field)


def prepare_data(data_args: DataArguments, model_args: ModelArguments, seed: int) -> PreparedData:
    """Load the splits and check every label-dependent setting before an hour of training, not after."""
    raw, report = load_data(data_args, seed)
    if "calibration" in raw and len(raw["calibration"]) == 0:
        raise ValueError(f"the `{data_args.dataset}` corpus: no calibration ticket is left once copies of other splits "
                         "are removed; raise calibration_size, or set it to 0 (nothing auto-routed until calibrate)")
    label_names = raw["train"].features["label"].names
    # The merged bucket of rare queues is not a queue: whatever lands there goes to a person.
    triage_labels = [name for name in [report.get("labels", {}).get("merged_into")] if name in label_names]
    unknown = sorted(set(model_args.never_auto_route) - set(label_names))
    if unknown:
        raise ValueError(f"never_auto_route: label(s) {unknown} are not among the data's labels {label_names}")
    triage_labels += [name for name in model_args.never_auto_route if name not in triage_labels]
    queue_targets = parse_queue_targets(model_args.queue_max_misrouting, label_names)
    check_queue_targets(queue_targets, model_args.max_misrouting, triage_labels)
    source = data_args.train_file or f"the `{data_args.dataset}` synthetic corpus"
    logger.info("data: %s; splits %s; %d labels", source, {k: len(v) for k, v in raw.items()}, len(label_names))
    fields = extra_field_labels(report)
    for name, labels in fields.items():
        logger.info("extra field %s: %d labels %s", name, len(labels), labels)
    return PreparedData(raw, report, label_names, triage_labels, queue_targets, source, fields)


def audit_export(data_args: DataArguments, args: TicketTrainingArguments) -> dict | None:
    """The audit of train_file (custom_trainer/audit.py): written to reports/ before training, changes nothing."""
    if not (data_args.train_file and data_args.audit and args.should_save):
        return None
    report, flagged, _ = audit_file(data_args.train_file, data_args.text_columns, data_args.label_column,
                                    data_args.data_policy, seed=args.seed, progress=not args.disable_tqdm)
    reports = Path(args.output_dir) / "reports"
    reports.mkdir(parents=True, exist_ok=True)
    write_text(reports / "audit.json", json.dumps(report, indent=2, default=str) + "\n")
    write_table(flagged.assign(label=""), reports / "label_issues.csv")
    print("\naudit of the export (reports/audit.json):\n" + summarize_audit(report) + "\n", flush=True)
    return {"likely_label_errors": report["likely_label_errors"]["count"],
            "suggested_merges": report["suggested_merges"],
            "near_duplicate_groups": report["near_duplicates"]["groups"], "seconds": report["seconds"]}


def plan_reading(data: PreparedData, tokenizer, data_args: DataArguments) -> DataArguments:
    """How the run reads its tickets (custom_trainer/small_exports.py ``reading_plan``, on the training tickets'
    token lengths): the data report's ``token_lengths`` and ``reading`` (with why), and the data arguments the run
    reads with from here on (the model, its export and the wide part take max_length and head_tail_length)."""
    data.report["token_lengths"] = token_length_profile(data.raw, tokenizer, data_args.max_length)
    reading = reading_plan(data_args.head_tail_length, data_args.max_length, data_args.chunk_length,
                           data_args.tail_length, data.report["token_lengths"]["share_truncated"],
                           data.raw["train"]["label"])
    data.report["reading"] = reading
    logger.info("reading: max_length %d, head_tail_length %d (%s)", reading["max_length"],
                reading["head_tail_length"], reading["why"])
    return replace(data_args, max_length=reading["max_length"], head_tail_length=reading["head_tail_length"])


def bf16_on_cpu(args: TicketTrainingArguments) -> bool:
    """Whether the steps outside the Trainer (the stage, the probe) run under bf16 autocast on the CPU."""
    return args.bf16 and (args.use_cpu or not torch.cuda.is_available())


def choose_encoder(encoder_path: str, data: PreparedData, data_args: DataArguments, model_args: ModelArguments,
                   args: TicketTrainingArguments, started: float):
    """The encoder the run trains, its tokenizer and its reading plan: the larger all-mpnet-base-v2 instead of the
    embedded encoder for a small export of balanced labels, where its packages are installed and timed steps of
    its stage on a throwaway copy project the run within ``small_export_budget_s`` (with 8 passes, or else 4)
    (custom_trainer/small_exports.py ``encoder_plan``); said in the data report's ``encoder``, with why."""
    recipe = data.report["recipe"]
    batch_size = args.contrastive_batch_size or args.per_device_train_batch_size
    sizes = {split: len(rows) for split, rows in data.raw.items()}
    larger = {}

    def prepared() -> dict:  # the larger encoder's folder, tokenizer and reading plan, made once
        if not larger:
            path = str(larger_encoder_path())
            tokenizer = ticket_tokenizer(AutoTokenizer.from_pretrained(path))
            larger.update(path=path, tokenizer=tokenizer, data_args=plan_reading(data, tokenizer, data_args))
        return larger

    timed = {}

    def projected(passes: float) -> float:  # the steps are timed once, the passes are arithmetic
        if not timed:
            on_gpu = [torch.device(args.device).index or 0] if torch.device(args.device).type == "cuda" else []
            with torch.random.fork_rng(devices=on_gpu):  # the timing draws no random number the run would draw
                timed.update(timed_steps(**prepared()))
        return projected_run_seconds(stage_epochs=passes, **timed)

    def timed_steps(path: str, tokenizer, data_args: DataArguments) -> dict:
        count = min(batch_size, sizes["train"])
        sample = tokenize_dataset(data.raw["train"].shuffle(seed=args.seed).select(range(count)), tokenizer,
                                  max_length=data_args.max_length)
        throwaway, _ = build_model(path, data, data_args, model_args)
        cost = stage_step_cost(throwaway, sample, DataCollatorWithPadding(tokenizer), count, bf16=bf16_on_cpu(args),
                               device=args.device)
        del throwaway
        logger.info("larger encoder: the first %d contrastive steps of %d tickets took %.2f s, a step after them "
                    "%.2f s, scoring them %.2f s", cost["warmup_steps"], count, cost["warmup_s"], cost["step_s"],
                    cost["forward_s"])
        read_again = 2 * sizes["train"] + 2 * sizes["validation"] + sizes["test"] + sizes.get("calibration", 0)
        return {"step_s": cost["step_s"], "forward_s": cost["forward_s"], "train_tickets": sizes["train"],
                "forward_tickets": read_again, "batch_size": count, "elapsed_s": time.time() - started,
                "warmup_s": cost["warmup_s"], "warmup_steps": cost["warmup_steps"]}

    installed = larger_encoder_pieces() is not None
    if model_args.larger_encoder_for_small_exports and not installed:
        raise ValueError(f"larger_encoder_for_small_exports: true needs {LARGER}'s packages: {LARGER_INSTALL}")
    plan = encoder_plan(model_args.larger_encoder_for_small_exports, model_args.model_name_or_path == EMBEDDED,
                        args.contrastive_epochs is None and recipe["contrastive_epochs"] > 0, recipe["fine_tune"],
                        installed, projected, model_args.small_export_budget_s, recipe["contrastive_epochs"])
    data.report["encoder"] = {"name": LARGER if plan["larger"] else model_args.model_name_or_path, **plan}
    if plan["contrastive_epochs"] is not None:  # the larger encoder fits with fewer passes of the stage: said in both
        recipe["contrastive_epochs"] = plan["contrastive_epochs"]
        recipe["why"] += f"; {plan['contrastive_epochs']:g} passes with {LARGER} (see encoder)"
        logger.info("contrastive stage before the head: %g passes with %s instead", recipe["contrastive_epochs"],
                    LARGER)
    logger.info("encoder: %s (%s)", data.report["encoder"]["name"], plan["why"])
    if plan["larger"]:
        chosen = replace(model_args, model_name_or_path=LARGER, larger_encoder_for_small_exports=None)  # said in why
        return prepared()["path"], chosen, larger["tokenizer"], larger["data_args"]
    tokenizer = ticket_tokenizer(AutoTokenizer.from_pretrained(encoder_path))
    return encoder_path, model_args, tokenizer, plan_reading(data, tokenizer, data_args)


def tokenize(data: PreparedData, tokenizer, data_args: DataArguments, args: TicketTrainingArguments):
    """The tokenised splits; the data report, with the token lengths and the reading plan, is written before
    training, so a user can read it while (or instead of) waiting."""
    tokenizer.model_max_length = data_args.max_length
    if args.should_save:
        reports = Path(args.output_dir) / "reports"
        reports.mkdir(parents=True, exist_ok=True)
        write_text(reports / "data_report.json", json.dumps(data.report, indent=2) + "\n")
        if "files" in data.report:
            print("\n" + summarize_report(data.report) + "\n", flush=True)
    with args.main_process_first(desc="tokenizing"):
        tokenized = tokenize_dataset(data.raw, tokenizer, max_length=data_args.max_length)
    return tokenized


def fit_baseline(data: PreparedData, seed: int) -> dict:
    """The bar the model must clear: TF-IDF + logistic regression on the same training split (seconds on CPU)."""
    baseline = baseline_metrics(data.raw, data.label_names, seed=seed)
    logger.info("baseline (%s): validation accuracy %.4f, macro-F1 %.4f (%.0f s)", baseline["name"],
                baseline["validation"]["accuracy"], baseline["validation"]["macro_f1"], baseline["seconds"])
    return baseline


def build_model(encoder_path: str, data: PreparedData, data_args: DataArguments, model_args: ModelArguments):
    """The classifier around the pretrained encoder, with its class weights (None: 'none') and frozen parts."""
    power = CLASS_WEIGHT_POWERS[model_args.class_weighting]
    weights = class_weights(data.raw["train"]["label"], len(data.label_names), power=power) if power > 0 else None
    model = TicketClassifier.from_encoder(
        encoder_path,
        dict(enumerate(data.label_names)),
        head_hidden_size=model_args.head_hidden_size,
        classifier_dropout=model_args.classifier_dropout,
        focal_gamma=model_args.focal_gamma,
        class_weights=None if weights is None else weights.tolist(),
        max_input_length=data_args.max_length,
        chunk_length=data_args.chunk_length,
        head_tail_length=data_args.head_tail_length,
        tail_length=data_args.tail_length if data_args.head_tail_length else 0,
        pooling=model_args.pooling,
        triage_labels=data.triage_labels,
        wide_buckets=model_args.wide_buckets if model_args.combine_for != "none" else 0,
        extra_fields=field_specs(data.fields, data.raw["train"]["extra_labels"] if data.fields else [], power,
                                 model_args.field_loss_weights) if data.fields else None,
    )
    if model_args.freeze_word_embeddings:
        model.encoder.get_input_embeddings().weight.requires_grad_(False)
    model.freeze_lower_layers(model_args.frozen_layers)
    return model, weights


# Below this many validation tickets the epoch is not chosen on validation (no early stopping, no best checkpoint):
# on a few dozen tickets the best epoch is noise, and the last epoch of the one-cycle schedule is the plain choice.
MIN_VALIDATION_TO_CHOOSE = 200


def choose_checkpoint(args: TicketTrainingArguments, validation_tickets: int) -> dict:
    """Whether validation chooses the epoch (early stopping, best checkpoint); set on ``args``. Said in metrics."""
    chosen = args.load_best_model_at_end and validation_tickets >= MIN_VALIDATION_TO_CHOOSE
    if args.load_best_model_at_end and not chosen:
        args.load_best_model_at_end = False
        logger.info("validation holds %d tickets (fewer than %d): every epoch is trained and the last one kept, "
                    "instead of choosing one on validation", validation_tickets, MIN_VALIDATION_TO_CHOOSE)
    return {"chosen_on_validation": bool(chosen), "validation_tickets": int(validation_tickets),
            "rule": f"best validation macro-F1 with early stopping from {MIN_VALIDATION_TO_CHOOSE} validation tickets; "
                    "below that, the last epoch"}


def train_model(model, weights, tokenizer, tokenized, data: PreparedData, model_args: ModelArguments,
                args: TicketTrainingArguments, callbacks) -> tuple[TicketTrainer, dict | None]:
    """The contrastive stage if the recipe makes one, the head probed on frozen vectors, then (unless the recipe
    says no fine-tuning) fine-tuning with early stopping on validation macro-F1; the model is scored in fp32 from
    then on (the exported model's arithmetic)."""
    collator = DataCollatorWithPadding(tokenizer)
    fine_tune = data.report["recipe"]["fine_tune"]
    if not fine_tune:  # SetFit's recipe: the head on the stage's vectors, no step after it (max_steps would win)
        args.num_train_epochs, args.max_steps = 0, -1
        if args.resume_from_checkpoint:
            logger.info("resume_from_checkpoint: nothing to resume, this run fine-tunes nothing; it starts over")
    resume_from = resume_checkpoint(args) if fine_tune else None
    checkpoint = choose_checkpoint(args, len(tokenized["validation"]))
    probe, contrastive = None, None
    contrastive_epochs = data.report["recipe"]["contrastive_epochs"]  # stage_plan's: set, or chosen by the rule
    if contrastive_epochs and resume_from is None:  # a resumed run has its trained encoder already
        contrastive = contrastive_stage(model, tokenized["train"], collator, contrastive_epochs,
                                        learning_rate=args.contrastive_learning_rate,
                                        batch_size=args.contrastive_batch_size or args.per_device_train_batch_size,
                                        seed=args.seed, bf16=bf16_on_cpu(args),
                                        device=args.device,
                                        progress=not args.disable_tqdm and args.process_index == 0)
    if args.head_probe_epochs > 0 and resume_from is None:  # a resumed run loads its trained head instead
        probe = probe_head(model, tokenized["train"], collator, args.head_probe_epochs,
                           learning_rate=args.head_learning_rate or 1e-3, class_weights=weights,
                           gamma=model_args.focal_gamma, seed=args.seed,
                           bf16=bf16_on_cpu(args))
    trainer = TicketTrainer(
        model=model,
        args=args,
        train_dataset=tokenized["train"],
        eval_dataset=tokenized["validation"],
        data_collator=collator,
        processing_class=tokenizer,
        compute_metrics=make_compute_metrics(data.label_names, data.fields),
        callbacks=[*([EarlyStoppingCallback(early_stopping_patience=args.early_stopping_patience)]
                     if checkpoint["chosen_on_validation"] else []), *callbacks],
    )
    trainer.train(resume_from_checkpoint=resume_from)
    trainer.use_full_precision()
    probe = {**(probe or {}), "checkpoint": checkpoint, "contrastive": contrastive}
    return trainer, probe


def score_splits(trainer: TicketTrainer, tokenized, fields: dict | None = None) -> dict:
    """Metrics, logits and labels of every held-out split, gathered over all processes by the Trainer. The
    calibration tickets are scored once the model is final: they choose nothing, they only certify. With extra
    fields each split also holds ``fields`` (custom_trainer/fields.py); the metrics are the routed field's."""
    validation = strip_prefix(trainer.evaluate(tokenized["validation"]), "eval")
    validation = {k: v for k, v in validation.items() if not any(k.startswith(f"{name}_") for name in fields or {})}
    validation_output = trainer.predict(tokenized["validation"], metric_key_prefix="validation")
    test_output = trainer.predict(tokenized["test"], metric_key_prefix="test")
    scores = {
        "validation": {"metrics": validation, "logits": validation_output.predictions,
                       "labels": validation_output.label_ids},
        "test": {"metrics": strip_prefix(test_output.metrics, "test"), "logits": test_output.predictions,
                 "labels": test_output.label_ids},
    }
    if "calibration" in tokenized:
        output = trainer.predict(tokenized["calibration"], metric_key_prefix="calibration")
        scores["calibration"] = {"logits": output.predictions, "labels": output.label_ids}
    if fields:
        split_scores(scores, fields)
        scores["test"]["metrics"] = {k: v for k, v in scores["test"]["metrics"].items()
                                     if not any(k.startswith(f"{name}_") for name in fields)}
    return scores


def routed_labels(labels) -> np.ndarray:
    """The routed field's label ids (with extra fields, the first of each row's ids)."""
    labels = np.asarray(labels)
    return labels[:, 0] if labels.ndim == 2 else labels


def combine_parts(trainer: TicketTrainer, tokenized, scores: dict, data: PreparedData, model_args: ModelArguments,
                  baseline: dict, seed: int) -> dict | None:
    """The wide part (custom_trainer/wide.py) fitted on train, then its weight and a prior correction chosen on
    validation (custom_trainer/combine.py) and written into the model; every split's logits and figures become the
    combined model's. None with combine_for 'none' (the head as trained)."""
    if model_args.combine_for == "none":
        return None
    model, validation, test = trainer.model, scores["validation"], scores["test"]
    fitted, wide = None, None
    if model_args.wide_buckets:
        fitted = fit_wide(model, tokenized["train"]["input_ids"], routed_labels(tokenized["train"]["labels"]), seed)
        wide = {split: wide_logits(model, tokenized[split]["input_ids"]) for split in scores}
    prior = log_prior(routed_labels(tokenized["train"]["labels"]), len(data.label_names))
    choice = choose(validation["logits"], None if wide is None else wide["validation"], validation["labels"], prior,
                    model_args.combine_for, baseline["validation"])
    scale, shift = export_weights(choice["wide_weight"], choice["prior_strength"], prior)
    model.config.wide_scale = scale if wide is not None else 0.0
    with torch.no_grad():  # the prior correction is a shift of the head's output bias: every backend computes it
        model.head[-1].bias.add_(torch.as_tensor(shift, dtype=model.head[-1].bias.dtype))
    choice.update({"wide_scale": model.config.wide_scale, "bias_shift": shift.tolist(), "wide": fitted,
                   "head_only": {"validation": pick(validation["metrics"]), "test": pick(test["metrics"])}})
    for split, part in scores.items():  # what the choice was made from, kept for reports/combination_inputs.npz
        part["head_logits"] = part["logits"]
        if wide is not None:
            part["wide_logits"] = wide[split]
    scores["validation"]["prior"] = prior
    for split, part in scores.items():
        part["logits"] = part["logits"] + shift + (scale * wide[split] if wide is not None else 0.0)
        if "metrics" in part:
            part["metrics"].update(classification_metrics(part["labels"], part["logits"].argmax(-1), data.label_names))
    logger.info("combined for %s on validation: wide weight %.2f, prior strength %+.2f: accuracy %.4f, macro-F1 "
                "%.4f (head alone %.4f, %.4f; baseline %.4f, %.4f)", choice["target"], choice["wide_weight"],
                choice["prior_strength"], choice["validation"]["accuracy"], choice["validation"]["macro_f1"],
                choice["head_alone_validation"]["accuracy"], choice["head_alone_validation"]["macro_f1"],
                baseline["validation"]["accuracy"], baseline["validation"]["macro_f1"])
    return choice


def certify_routing(config, scores: dict, data: PreparedData, data_args: DataArguments,
                    model_args: ModelArguments) -> tuple[dict, RoutingRule]:
    """Temperature (fitted on validation) and the auto-route rule (certified on the calibration split, which chose
    nothing), stored in the exported config."""
    certified_on = ""
    if "calibration" in data.raw:
        certified_on = (f"the calibration split: {len(data.raw['calibration'])} tickets set aside from {data.source} "
                        "before training, used for nothing else")
        group = None if data_args.train_file else GROUPED_BY.get(data_args.dataset)
        if group:
            certified_on += (f"; they are whole {group}s of a synthetic corpus, and tickets of one {group} are not "
                             "independent draws: the promise is indicative only")
    calibration = scores.get("calibration", {})
    routing = fit_routing(scores["validation"]["logits"], scores["validation"]["labels"], calibration.get("logits"),
                          calibration.get("labels"), scores["test"]["logits"], scores["test"]["labels"],
                          model_args.max_misrouting, config.triage_ids, model_args.routing_delta, data.label_names,
                          data.queue_targets, certified_on)
    config.calibration_temperature = routing["temperature"]
    config.auto_route_threshold = routing["threshold"]
    config.routing_score = routing["rule"]["score"]
    config.auto_route_thresholds = routing["rule"]["thresholds"]
    config.routing_guarantee = routing["guarantee"]
    config.routing_profile = routing["profile"]
    if calibration:  # the conformal sets, calibrated on the same tickets (each promise holds on its own)
        probabilities = softmax(calibration["logits"] / routing["temperature"])
        config.prediction_sets = calibrate_sets(probabilities, calibration["labels"], model_args.set_alpha)
    return routing, RoutingRule.from_config(config)


def write_outputs(trainer: TicketTrainer, tokenizer, tokenized_train, scores: dict, metrics: dict, rule: RoutingRule,
                  data: PreparedData, model_args: ModelArguments, args: TicketTrainingArguments) -> None:
    """reports/ (scores.npz, metrics, figures, predictions) and the export, written by the main process."""
    output_dir, temperature = Path(args.output_dir), metrics["routing"]["temperature"]
    # Calibrated probabilities of every held-out split: what benchmarks/routing_guarantee.py compares
    # certification methods on, without scoring the splits again.
    scored = {}
    for split in ("validation", "test", "calibration"):
        if split in scores:
            scored[f"{split}_probabilities"] = softmax(scores[split]["logits"] / temperature)
            scored[f"{split}_labels"] = scores[split]["labels"]
    extra = {}  # files the export carries beside the model
    # The tickets that trained the model or chose anything (train, validation): they may never certify it or judge it
    # (`calibrate`, the decision log, `promote`), so the export keeps their text hashes.
    chose = [data.raw[split] for split in ("train", "validation") if split in data.raw]
    extra[SEEN_TICKETS_FILE] = lambda path: write_seen_tickets(
        path, [clean_text(s) for part in chose for s in part["subject"]],
        [clean_text(d) for part in chose for d in part["description"]])
    if model_args.similar_index:  # the training tickets' sentence vectors, from the final model in fp32
        vectors, labels = sentence_vectors(trainer.model, tokenized_train, DataCollatorWithPadding(tokenizer))
        texts = ticket_strings(data.raw["train"]) if model_args.similar_texts else None
        labels = routed_labels(labels.numpy())
        extra[INDEX_FILE] = lambda path: write_index(path, vectors.numpy(), labels, np.arange(len(labels)), texts)
        metrics["similar_index"] = {"tickets": int(len(labels)), "dimensions": int(vectors.shape[1]),
                                    "dtype": "float16", "texts": texts is not None, "file": INDEX_FILE}
    (output_dir / "reports").mkdir(parents=True, exist_ok=True)
    with atomic_path(output_dir / "reports" / "scores.npz") as staging, open(staging, "wb") as handle:
        np.savez_compressed(handle, **scored)
    inputs = {f"{split}_{key}": np.asarray(part[key]) for split, part in scores.items()
              for key in ("head_logits", "wide_logits", "labels", "prior") if key in part}
    if inputs:  # the combination's inputs: selection rules can be replayed on them (benchmarks/bench_selection.py)
        with atomic_path(output_dir / "reports" / "combination_inputs.npz") as staging, open(staging, "wb") as handle:
            np.savez_compressed(handle, **inputs)
    write_reports(output_dir / "reports", metrics, data.label_names, data.raw["test"].to_pandas(),
                  scores["test"]["logits"] / temperature, epoch_history(trainer.state.log_history), rule)
    test_probabilities = scored["test_probabilities"]
    write_run_report(output_dir / "reports", metrics, data.label_names, scores["test"]["labels"], test_probabilities,
                     rule.decide(test_probabilities)[2], data.report)
    manifest = {
        "encoder": model_args.model_name_or_path,
        "data_fingerprint": metrics["data"]["fingerprint"],
        "data_source": data.source,
        "metrics": {split: pick(metrics[split]) for split in ("validation", "test")},
    }
    export_model(trainer.model, tokenizer, output_dir / "model", manifest,
                 model_card(data.source, model_args, args, metrics), extra)


def print_summary(metrics: dict, output_dir: Path, seconds: float) -> None:
    """The run in a few lines, and the warning when the model is below its baseline."""
    validation, test, baseline = metrics["validation"], metrics["test"], metrics["baseline"]
    intervals = metrics["intervals"]["test"]
    routing = metrics["routing"]
    print(
        f"\nvalidation macro-F1 {validation['macro_f1']:.4f} | test macro-F1 {test['macro_f1']:.4f} "
        f"accuracy {test['accuracy']:.4f} | {seconds:.0f}s\n"
        f"test 95% intervals ({intervals['n_resamples']} bootstrap resamples): accuracy "
        f"{format_interval(intervals['accuracy'])}, macro-F1 {format_interval(intervals['macro_f1'])}, auto-routed "
        f"{format_interval(intervals['coverage'])}, misrouted among them {format_interval(intervals['misrouting'])}\n"
        f"baseline ({baseline['name']}): validation macro-F1 {baseline['validation']['macro_f1']:.4f} | test "
        f"macro-F1 {baseline['test']['macro_f1']:.4f} accuracy {baseline['test']['accuracy']:.4f}\n"
        f"{combination_summary(metrics['combination'])}"
        f"{fields_summary(metrics['fields']) if metrics.get('fields') else ''}"
        f"{routing_summary(routing)}\n"
        f"{prediction_set_summary(metrics['prediction_sets'])}"
        f"ECE {routing['test']['ece_before']:.3f} -> {routing['test']['ece_after']:.3f}\n"
        f"model:   {output_dir / 'model'}\nreports: {output_dir / 'reports'}"
    )
    below = compare_to_baseline(metrics, baseline)
    if below:
        logger.warning("BELOW THE BASELINE: %s. %s", "; ".join(below), ADVICE)
        print(f"\nWARNING: BELOW THE BASELINE: {'; '.join(below)}.\n{ADVICE}", file=sys.stderr)


def main(data_args: DataArguments, model_args: ModelArguments, args: TicketTrainingArguments, callbacks=()) -> dict:
    started, clock = time.time(), EvaluationClock()
    set_seed(args.seed)

    encoder_path = resolve_encoder(model_args.model_name_or_path)  # an unreachable encoder fails before any data work
    data = prepare_data(data_args, model_args, args.seed)
    data.report["recipe"] = stage_plan(args.contrastive_epochs, data.raw["train"]["label"],  # said, with why
                                       args.fine_tune_after_stage, args.head_probe_epochs > 0)
    logger.info("contrastive stage before the head: %g passes, %s after it (%s)",
                data.report["recipe"]["contrastive_epochs"],
                "fine-tuning" if data.report["recipe"]["fine_tune"] else "no fine-tuning", data.report["recipe"]["why"])
    if data.report["recipe"]["contrastive_epochs"]:
        keep_freed_memory_for(args)  # the stage and the larger encoder's timing run before the Trainer, which applies it (exact)
    audit = audit_export(data_args, args)
    # e-mails masked, whitespace collapsed; the reading plan may widen max_length (a new DataArguments from here on)
    encoder_path, model_args, tokenizer, data_args = choose_encoder(encoder_path, data, data_args, model_args, args,
                                                                    started)
    tokenized = tokenize(data, tokenizer, data_args, args)
    baseline = fit_baseline(data, args.seed)
    model, weights = build_model(encoder_path, data, data_args, model_args)
    trainer, probe = train_model(model, weights, tokenizer, tokenized, data, model_args, args, [clock, *callbacks])

    scores = score_splits(trainer, tokenized, data.fields)
    combination = combine_parts(trainer, tokenized, scores, data, model_args, baseline, args.seed)
    routing, rule = certify_routing(trainer.model.config, scores, data, data_args, model_args)
    fields = None
    if data.fields:  # the extra fields: baseline, wide part, combination, temperature, sets, figures
        fields = finish_fields(trainer.model, tokenized, scores, data.raw, data.fields, model_args.combine_for,
                               model_args.set_alpha, args.bootstrap_resamples, args.seed)
    test_probabilities = softmax(scores["test"]["logits"] / routing["temperature"])
    test_predicted, _, routed = rule.decide(test_probabilities)
    sets = trainer.model.config.prediction_sets
    if sets is not None:
        members = prediction_sets(test_probabilities, stored_quantile(sets))
        sets = {**sets, "test": set_stats(members, scores["test"]["labels"])}
    intervals = bootstrap_intervals(scores["test"]["labels"], test_predicted, len(data.label_names), routed,
                                    n_resamples=args.bootstrap_resamples, seed=args.seed)
    metrics = {
        "validation": scores["validation"]["metrics"],
        "test": scores["test"]["metrics"],
        "routing": routing,
        "prediction_sets": sets,  # stored settings and, on test, coverage and set sizes (None: no calibration split)
        "intervals": {"test": intervals},  # 95% percentile-bootstrap intervals of the test figures
        "combination": combination,  # the wide part's weight and the prior correction, chosen on validation
        "baseline": baseline,
        "head_probe": probe,
        "fields": fields,  # extra label fields, each against its own baseline (None: one field)
        "data": {"source": data.source, "fingerprint": data_fingerprint(data.raw),
                 "sizes": {k: len(v) for k, v in data.raw.items()},
                 "labels_merged": data.report.get("labels", {}).get("merged", {}), "triage_labels": data.triage_labels,
                 "audit": audit},
        "train_runtime_s": round(time.time() - started, 1),
        # Where and how fast: the job's time above, the fine-tuning loop's alone, and what chose its speed.
        "training_machine": trainer.machine_record(),
        "evaluations": clock.evaluations,  # validation macro-F1 after each epoch, with seconds since start
    }
    if trainer.is_world_process_zero():
        write_outputs(trainer, tokenizer, tokenized["train"], scores, metrics, rule, data, model_args, args)
        print_summary(metrics, Path(args.output_dir), time.time() - started)
    return metrics


def cli(argv: list[str] | None = None) -> dict:
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    transformers.utils.logging.set_verbosity_warning()
    try:
        data_args, model_args, training_args, _ = parse_args(argv)
        return main(data_args, model_args, training_args)
    except (ValueError, OSError) as error:  # bad configuration or data, a file that cannot be read or written
        sys.exit(f"train.py: error: {error}")


if __name__ == "__main__":
    cli()
