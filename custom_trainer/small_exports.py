"""What a small export of balanced labels gets by default (issue 38), decided from its training split and said in
the data report with why: a contrastive stage before the head (`stage_plan`), where many of its tickets are
longer than ``max_length``, reading them by their two ends (`reading_plan`), and, where it is installed and timed
steps say the run fits its budget, the larger encoder all-mpnet-base-v2 (`encoder_plan`; with half the stage's
passes where only that fits).

Both were measured at 300 training tickets of three balanced issue types (five Jira projects, five draws of GitHub
issues) against the run without them, each with a check written down before its runs; both lost or were not tried
on long-tailed queues and larger exports, which keep the plain recipe (benchmarks/RESULTS.md, issue 38).
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Callable

SMALL_EXPORT = 500  # training tickets, fewer: small
BALANCED = 0.5  # the rarest label holds at least this share of the largest label's tickets
LONG_SHARE = 0.2  # reading by the two ends when at least this share of training tickets is over max_length
READ_FACTOR = 4  # ... out of this many times max_length tokens (128 -> 512)
MEASURED = ("measured at 300 training tickets: it gained on balanced issue types; long-tailed queues and larger "
            "exports keep the plain recipe (benchmarks/RESULTS.md, issue 38)")


def small_and_balanced(train_labels) -> tuple[bool, str]:
    """Whether the training split (its label ids) is a small export of balanced labels, and the sizes that say so."""
    counts = Counter(int(label) for label in train_labels)
    size, rarest, largest = sum(counts.values()), min(counts.values(), default=0), max(counts.values(), default=0)
    if size >= SMALL_EXPORT:
        return False, f"{size} training tickets, not a small export (under {SMALL_EXPORT})"
    if rarest < BALANCED * largest:
        return False, (f"the rarest label has {rarest} training tickets, under {BALANCED:g} x the largest label's "
                       f"{largest} (long-tailed)")
    return True, f"{size} training tickets (under {SMALL_EXPORT}), labels balanced (rarest {rarest}, largest {largest})"


def reading_plan(head_tail_length: int | None, max_length: int, chunk_length: int, tail_length: int,
                 share_over: float, train_labels) -> dict:
    """How the run reads its tickets: ``{"max_length", "head_tail_length", "why"}``.

    head_tail_length: as set (None = unset: the rule decides; 0 = off); max_length, chunk_length, tail_length: as set;
    share_over: the share of training tickets longer than ``max_length`` tokens (the data report's token lengths).
    Unset, a small balanced export with at least ``LONG_SHARE`` of its tickets over ``max_length`` is read by its
    two ends out of ``READ_FACTOR * max_length`` tokens (the encoder still reads ``max_length``); otherwise as set."""
    if head_tail_length is not None:
        return {"max_length": max_length, "head_tail_length": head_tail_length,
                "why": "set by head_tail_length" if head_tail_length else "off: head_tail_length is 0"}
    plain = {"max_length": max_length, "head_tail_length": 0}
    if chunk_length:
        return {**plain, "why": "off: chunk_length reads long tickets in windows"}
    if not 0 < tail_length < max_length:
        return {**plain, "why": f"off: tail_length {tail_length} does not fit in max_length {max_length}"}
    small, sizes = small_and_balanced(train_labels)
    if not small:
        return {**plain, "why": f"off: {sizes}; {MEASURED}"}
    if share_over < LONG_SHARE:
        return {**plain, "why": f"off: {share_over:.0%} of training tickets over {max_length} tokens, under "
                                f"{LONG_SHARE:.0%}"}
    return {"max_length": READ_FACTOR * max_length, "head_tail_length": max_length,
            "why": f"on: {sizes}; {share_over:.0%} of training tickets over {max_length} tokens: each is read by its "
                   f"first and last tokens out of {READ_FACTOR * max_length}; {MEASURED}"}


LARGER_MEASURED = ("measured with the stage and the head on its frozen vectors: +1.7 macro-F1 over all-MiniLM-L6-v2 on "
                   "eight 300-ticket runs, +0.95 on eight fresh small runs, for about 2.7x the time "
                   "(benchmarks/RESULTS.md, issue 38)")
FEWER_PASSES = 4.0  # the larger encoder's stage where the rule's passes do not fit the budget
FEWER_MEASURED = ("with 4 passes: +1.19 macro-F1 and +1.17 accuracy over all-MiniLM-L6-v2 with 8 on eight fresh "
                  "small runs, under a check written down before them (benchmarks/RESULTS.md, issue 38, session 22)")


def encoder_plan(setting: bool | None, default_encoder: bool, stage_by_rule: bool, fine_tune: bool, installed: bool,
                 projected_seconds: Callable[[float], float], budget_s: float, passes: float = 8.0) -> dict:
    """Whether the run trains the larger encoder all-mpnet-base-v2 instead of the embedded all-MiniLM-L6-v2, and
    with how many passes of the contrastive stage: ``{"larger": bool, "contrastive_epochs": float | None, "why": str,
    "projected_s": float | None}`` (``contrastive_epochs`` None: the recipe's, unchanged).

    setting: ``larger_encoder_for_small_exports`` as set (None = unset: the rule decides); default_encoder: whether
    ``model_name_or_path`` is the embedded encoder (another encoder set by hand is never replaced); stage_by_rule:
    whether the rule made the contrastive stage (a small export of balanced labels); fine_tune: whether the whole
    model is fine-tuned after the stage (the larger encoder was measured without it, and the projection leaves
    fine-tuning out: unset, it keeps the embedded encoder then); installed: whether the larger
    encoder's packages are installed; projected_seconds: called only when the answer depends on it, the whole run's
    projected seconds with the larger encoder and a stage of the given passes (timed steps of its stage,
    `projected_run_seconds`); budget_s: ``small_export_budget_s``; passes: the rule's passes of the stage. Unset, a
    small balanced export gets the larger encoder where it is installed and the projection is within the budget,
    with ``passes``, else with ``FEWER_PASSES`` where that fits; set true, wherever it is installed, untimed."""
    off = {"larger": False, "contrastive_epochs": None, "projected_s": None}
    if setting is False:
        return {**off, "why": "off: larger_encoder_for_small_exports is false"}
    if not default_encoder:
        return {**off, "why": "off: model_name_or_path is set, the rule does not choose"}
    if setting is None and not stage_by_rule:
        return {**off, "why": "off: only where the rule makes the contrastive stage, on a small export of balanced "
                              "labels (see recipe)"}
    if setting is None and fine_tune:
        return {**off, "why": "off: the model is fine-tuned after the stage (fine_tune_after_stage or head_probe_epochs "
                              "0); the larger encoder was measured without fine-tuning, and its time is not projected"}
    if not installed:
        return {**off, "why": "off: all-mpnet-base-v2's packages are not installed (docs/training.md, 'Few tickets: "
                              "a larger encoder')"}
    if setting:
        return {"larger": True, "contrastive_epochs": None, "projected_s": None,
                "why": "on: set by larger_encoder_for_small_exports"}
    projected = float(projected_seconds(passes))
    if projected <= budget_s:
        return {"larger": True, "contrastive_epochs": None, "projected_s": round(projected, 1),
                "why": f"on: a small export of balanced labels; timed steps of its stage project "
                       f"{_seconds(projected, budget_s)} s "
                       f"for the run on this machine, within small_export_budget_s {budget_s:g}; {LARGER_MEASURED}; "
                       "larger_encoder_for_small_exports overrides"}
    over = (f"timed steps of its stage project {_seconds(projected, budget_s)} s for the run on this machine with "
            f"{passes:g} passes, over small_export_budget_s {budget_s:g}")
    fewer = float(projected_seconds(FEWER_PASSES)) if passes > FEWER_PASSES else None
    if fewer is not None and fewer <= budget_s:
        return {"larger": True, "contrastive_epochs": FEWER_PASSES, "projected_s": round(fewer, 1),
                "why": f"on, with {FEWER_PASSES:g} passes of the stage: a small export of balanced labels; {over}, "
                       f"{_seconds(fewer, budget_s)} s with {FEWER_PASSES:g}; {FEWER_MEASURED}; "
                       "larger_encoder_for_small_exports overrides"}
    fewer_too = f" ({_seconds(fewer, budget_s)} s with {FEWER_PASSES:g} passes)" if fewer is not None else ""
    return {"larger": False, "contrastive_epochs": None, "projected_s": round(projected, 1),
            "why": f"off: {over}{fewer_too}; larger_encoder_for_small_exports overrides"}


def _seconds(seconds: float, budget_s: float) -> str:
    """Seconds as the reasons print them: whole, or to a tenth within a second of the budget (600.4 is not "600")."""
    return f"{seconds:.1f}" if abs(seconds - budget_s) < 1 else f"{seconds:.0f}"


def projected_run_seconds(step_s: float, forward_s: float, train_tickets: int, forward_tickets: int,
                          stage_epochs: float, batch_size: int, elapsed_s: float, fixed_s: float = 15.0,
                          warmup_s: float = 0.0, warmup_steps: int = 0) -> float:
    """The run's seconds projected from timed stage steps and a timed scoring batch of ``batch_size`` tickets.

    step_s: seconds of one steady contrastive step of ``batch_size`` tickets; warmup_s: seconds of the stage's first
    ``warmup_steps`` steps together (slower than the steady ones; 0, 0: none counted apart); forward_s: seconds of
    one fp32 forward over ``batch_size`` tickets (the scored splits are read in fp32); train_tickets: the training
    split; forward_tickets: tickets read once more after training (validation twice, test, calibration, the training
    split for the head probe and for the similar-tickets index); stage_epochs: the stage's passes; elapsed_s: seconds
    the run has taken so far; fixed_s: the baseline, the wide part, the reports and the export."""
    steps = stage_steps(train_tickets, batch_size, stage_epochs)
    warm = min(steps, warmup_steps)
    stage_s = (warmup_s * warm / warmup_steps if warm else 0.0) + (steps - warm) * step_s
    return elapsed_s + stage_s + math.ceil(forward_tickets / batch_size) * forward_s + fixed_s


def stage_steps(tickets: int, batch_size: int, epochs: float) -> int:
    """Steps of a contrastive stage of ``epochs`` passes over ``tickets`` in batches of ``batch_size``: a last
    partial batch is dropped (a pair-wise loss over a few tickets is noise), unless there is only one batch."""
    per_epoch = tickets // batch_size if tickets > batch_size else 1
    return max(1, round(epochs * per_epoch))
