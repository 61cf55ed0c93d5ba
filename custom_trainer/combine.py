"""How the export combines its parts, chosen on validation: the head, the wide part's weight, and a prior correction.

Two levers the fine-tuned head cannot pull by itself (issue 26):
- the wide part (custom_trainer/wide.py), a logistic regression over the tokenizer's uni- and bigrams, errs on
  other tickets than the encoder; mixed in with a weight, it keeps what a TF-IDF model knows on real exports;
- logit adjustment (Menon et al. 2021, "Long-tail learning via logit adjustment"): subtracting ``tau`` times the log
  of the training prior from the logits. ``tau > 0`` favours rare queues (macro-F1), ``tau < 0`` undoes the class
  weights of the loss and favours the big queues (accuracy: a router's misrouting is counted per ticket). One
  trained model serves either, without retraining.

Both are chosen together on the validation split for what the run reports (``combine_for``): by default the smaller
of the two margins, accuracy and macro-F1, over the run's own TF-IDF + logistic-regression baseline, because the
promise is to be at least the baseline on both. The calibration split chooses nothing (it certifies the routing
rule afterwards), and test is never looked at. In the export the choice becomes plain weights: ``wide_scale`` and a
shift of the head's output bias, so `pipeline`, ONNX and the router all compute it without new code.

The choice is bagged (issue 38): the grid is searched on bootstrap resamples of validation and the export takes the
mean of the chosen weights and of the chosen strengths (`bagged_choice`), so a few dozen validation tickets no longer
throw the choice into a far corner of the grid. On few validation tickets the prior correction is also kept from
undoing the class weights. Both failures
measured on small exports were a negative strength chosen on a few dozen to a few hundred validation tickets (-0.25
on 316 tickets cut test macro-F1 from 0.758 to 0.669, zeroing two rare teams; -1 on 88 cut it from 0.523 to 0.377):
the rare queues that pay for it hold two or three validation tickets, so validation cannot see the cost. Below
`MIN_VALIDATION_FOR_NEGATIVE_PRIOR` validation tickets the grid holds no negative strength; above it (where a desk's
catch-all queue made -0.5 worth 11 accuracy points) the whole grid is searched. Measured over many small subsamples
in benchmarks/bench_selection.py.
"""

from __future__ import annotations

import numpy as np

COMBINE_TARGETS = ("both", "accuracy", "macro_f1", "none")
# Weight of the wide part in the mix (1 - w) * head + w * wide: 0 is the head alone; 0.95 is nearly the wide part
# alone (the export keeps the head, so 1 is not offered).
WIDE_WEIGHTS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95)
# Logit-adjustment strengths: 0 is the model as trained; Menon et al.'s tau = 1 is the balanced-error optimum.
PRIOR_STRENGTHS = (-1.0, -0.75, -0.5, -0.25, 0.0, 0.25, 0.5, 0.75, 1.0)


def log_prior(train_labels, num_labels: int) -> np.ndarray:
    """Log of the training split's label frequencies, add-one smoothed (a label with no ticket stays finite)."""
    counts = np.bincount(np.asarray(train_labels, dtype=np.int64), minlength=num_labels).astype(np.float64) + 1.0
    return np.log(counts / counts.sum())


def combined_logits(head: np.ndarray, wide: np.ndarray | None, wide_weight: float, prior_strength: float,
                    prior: np.ndarray) -> np.ndarray:
    """(1 - w) * head + w * wide - tau * log prior."""
    logits = (1.0 - wide_weight) * np.asarray(head, dtype=np.float64)
    if wide is not None and wide_weight:
        logits = logits + wide_weight * np.asarray(wide, dtype=np.float64)
    return logits - prior_strength * prior[np.newaxis, :]


def scores(labels, predictions, num_labels: int) -> dict[str, float]:
    """Accuracy and macro-F1 over every label, as the project's ticket_classification metric (scikit-learn's
    ``f1_score(average="macro", zero_division=0)`` over all labels) computes them, in plain numpy: the bagged choice
    scores the grid thousands of times."""
    labels, predictions = np.asarray(labels, dtype=np.int64), np.asarray(predictions, dtype=np.int64)
    hits = labels == predictions
    true_positives = np.bincount(labels[hits], minlength=num_labels)[:num_labels]
    predicted = np.bincount(predictions, minlength=num_labels)[:num_labels]
    actual = np.bincount(labels, minlength=num_labels)[:num_labels]
    denominator = predicted + actual  # 2 tp + fp + fn
    f1 = np.divide(2.0 * true_positives, denominator, out=np.zeros(num_labels), where=denominator > 0)
    return {"accuracy": float(hits.mean()) if len(hits) else 0.0, "macro_f1": float(f1.mean())}


MIN_VALIDATION_FOR_NEGATIVE_PRIOR = 500


def prior_strengths_for(validation_tickets: int, strengths=PRIOR_STRENGTHS) -> tuple[float, ...]:
    """The prior strengths the choice may take with this many validation tickets (module docstring)."""
    if validation_tickets >= MIN_VALIDATION_FOR_NEGATIVE_PRIOR:
        return tuple(strengths)
    return tuple(t for t in strengths if t >= 0)


def objective(figures: dict, target: str, baseline: dict | None) -> tuple[float, float]:
    """What a candidate is ranked by (larger is better), then a tie-break: for 'both', the smaller margin over the
    baseline (its figures themselves without one), then the sum of the two figures."""
    total = figures["accuracy"] + figures["macro_f1"]
    if target == "both":
        base = baseline or {"accuracy": 0.0, "macro_f1": 0.0}
        return min(figures["accuracy"] - base["accuracy"], figures["macro_f1"] - base["macro_f1"]), total
    return figures[target], total


def candidate_order(has_wide: bool, wide_weights=WIDE_WEIGHTS, prior_strengths=PRIOR_STRENGTHS) -> list[tuple]:
    """The grid's (wide weight, prior strength) pairs, simplest first: no prior correction, then a little, positive
    before negative; the head alone, then more wide part."""
    weights = list(wide_weights) if has_wide else [0.0]
    return sorted(((w, t) for w in weights for t in prior_strengths), key=lambda c: (abs(c[1]), c[1] < 0, c[0]))


def candidate_predictions(head, wide, prior, target: str, wide_weights=WIDE_WEIGHTS,
                          prior_strengths=PRIOR_STRENGTHS) -> tuple[list[tuple], list[np.ndarray]]:
    """The grid's candidates in `candidate_order` and the queue each one predicts for every ticket."""
    if target not in COMBINE_TARGETS or target == "none":
        raise ValueError(f"combine_for must be one of {COMBINE_TARGETS[:-1]} to choose a combination, got {target!r}")
    order = candidate_order(wide is not None, wide_weights, prior_strengths)
    return order, [combined_logits(head, wide, w, t, prior).argmax(-1) for w, t in order]


def best_candidate(figures: list[dict], target: str, baseline: dict | None) -> int:
    """The index of the best ``objective`` among candidates in `candidate_order`; only a strictly better one
    replaces an earlier one, so a tie keeps the simpler model."""
    best, best_key = 0, None
    for index, row in enumerate(figures):
        key = objective(row, target, baseline)
        if best_key is None or key > best_key:
            best, best_key = index, key
    return best


def choose_combination(head: np.ndarray, wide: np.ndarray | None, labels, prior: np.ndarray, target: str = "both",
                       baseline: dict | None = None, wide_weights=WIDE_WEIGHTS,
                       prior_strengths=PRIOR_STRENGTHS) -> dict:
    """The (wide weight, prior strength) with the best ``objective`` on these (validation) tickets.

    Candidates are tried simplest first (no prior correction, then a little; the head alone, then more wide part),
    and only a strictly better one replaces the current choice, so a tie keeps the simpler model. Returns the choice,
    its validation figures, the head alone's, and the whole grid (for the report).
    """
    labels = np.asarray(labels)
    num_labels = np.asarray(head).shape[1]
    order, predictions = candidate_predictions(head, wide, prior, target, wide_weights, prior_strengths)
    grid = [{"wide_weight": w, "prior_strength": t, **scores(labels, predicted, num_labels)}
            for (w, t), predicted in zip(order, predictions)]
    best = grid[best_candidate(grid, target, baseline)]
    head_alone = next(row for row in grid if row["wide_weight"] == 0.0 and row["prior_strength"] == 0.0)
    return {"target": target, "wide_weight": best["wide_weight"], "prior_strength": best["prior_strength"],
            "validation": {"accuracy": best["accuracy"], "macro_f1": best["macro_f1"]},
            "head_alone_validation": {"accuracy": head_alone["accuracy"], "macro_f1": head_alone["macro_f1"]},
            "baseline_validation": None if baseline is None else {k: baseline[k] for k in ("accuracy", "macro_f1")},
            "grid": grid}


BAGGED_RESAMPLES = 50


def bagged_choice(head, wide, labels, prior, target: str = "both", baseline: dict | None = None,
                  prior_strengths=PRIOR_STRENGTHS, resamples: int = BAGGED_RESAMPLES, seed: int = 0) -> dict:
    """`choose_combination` on ``resamples`` bootstrap resamples of the (validation) tickets, and the mean of the
    chosen wide weights and of the chosen prior strengths (Breiman's bagging, applied to the choice).

    A choice on a few dozen tickets jumps between far corners of the grid with the noise of which tickets happen to
    be there; averaged over resamples it stays in a corner only when most resamples agree, and moves towards the
    middle of what they choose when they do not. With many tickets the resamples agree and the mean is the plain
    choice. Returns the two means and how far the resamples' choices spread (standard deviations)."""
    labels = np.asarray(labels)
    num_labels = np.asarray(head).shape[1]
    # Each candidate's predictions once; a resample only picks rows of them (choose_combination on the resampled
    # rows, without recomputing the logits).
    order, predictions = candidate_predictions(head, wide, prior, target, WIDE_WEIGHTS, prior_strengths)
    rng = np.random.default_rng(seed)
    weights, strengths = [], []
    for _ in range(resamples):
        rows = rng.integers(0, len(labels), len(labels))
        picked = order[best_candidate([scores(labels[rows], p[rows], num_labels) for p in predictions], target,
                                      baseline)]
        weights.append(picked[0])
        strengths.append(picked[1])
    return {"wide_weight": round(float(np.mean(weights)), 4), "prior_strength": round(float(np.mean(strengths)), 4),
            "resamples": resamples, "wide_weight_sd": round(float(np.std(weights)), 4),
            "prior_strength_sd": round(float(np.std(strengths)), 4)}


def choose(head, wide, labels, prior, target: str = "both", baseline: dict | None = None,
           resamples: int = BAGGED_RESAMPLES, seed: int = 0) -> dict:
    """The run's choice: on the grid `prior_strengths_for` allows with this validation split, the `bagged_choice`
    (``resamples`` 0: the plain `choose_combination`). The plain choice on all validation tickets stays in the
    record as ``single_choice``; ``validation`` holds the bagged choice's figures there.

    Measured over 20 draws of 300 real tickets with rare queues (benchmarks/bench_selection.py, issue 38): the plain
    choice was below the head alone on test in 4 of 20 draws; the bagged one in none, with a larger mean gain."""
    strengths = prior_strengths_for(len(labels))
    choice = choose_combination(head, wide, labels, prior, target, baseline, prior_strengths=strengths)
    choice["prior_strengths_searched"] = list(strengths)
    if resamples:
        bagged = bagged_choice(head, wide, labels, prior, target, baseline, strengths, resamples, seed)
        predicted = combined_logits(head, wide, bagged["wide_weight"], bagged["prior_strength"], prior).argmax(-1)
        choice["single_choice"] = {key: choice[key] for key in ("wide_weight", "prior_strength", "validation")}
        choice.update(wide_weight=bagged["wide_weight"], prior_strength=bagged["prior_strength"], bagging=bagged,
                      validation=scores(labels, predicted, np.asarray(head).shape[1]))
    return choice


def export_weights(wide_weight: float, prior_strength: float, prior: np.ndarray) -> tuple[float, np.ndarray]:
    """The choice as the export's weights: logits = head + bias_shift + wide_scale * wide, which is the chosen
    mix divided by (1 - w) (the same ranking; the temperature fitted afterwards absorbs the scale)."""
    keep = 1.0 - wide_weight
    return wide_weight / keep, -prior_strength * prior / keep
