"""What a small export of balanced labels gets by default (issue 38), decided from its training split and said in
the data report with why: a contrastive stage before the head (`stage_plan`) and, where many of its tickets are
longer than ``max_length``, reading them by their two ends (`reading_plan`).

Both were measured at 300 training tickets of three balanced issue types (five Jira projects, five draws of GitHub
issues) against the run without them, each with a check written down before its runs; both lost or were not tried
on long-tailed queues and larger exports, which keep the plain recipe (benchmarks/RESULTS.md, issue 38).
"""

from __future__ import annotations

from collections import Counter

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
