"""The certification exports used before the calibration split (sessions <= 8), kept only for the comparison in
benchmarks/routing_guarantee.py: Learn-then-Test risk control (Angelopoulos et al. 2021) with 72 sequences chosen on
the certifying tickets themselves. Exports now certify with ticket_router/certification.py (one sequence per family,
pre-registered on validation, on calibration tickets that chose nothing).

The promise. Let R(policy) be the share of misrouted tickets among the tickets the policy auto-routes, on tickets
drawn like the calibration (validation) tickets. With probability at least 1 - delta over the draw of the
calibration set, the policy this module returns has R <= max_misrouting.

The bound, written down. A policy is a confidence score s (the top probability, or its margin over the runner-up)
and a threshold lam, global or one per predicted label. For each candidate lam (on a grid fixed before looking at
the data) the null hypothesis is H(lam): R(lam) > alpha. Given the n tickets lam routes on the calibration set,
their errors are independent Bernoulli(R(lam)) draws, so k errors among them give the exact binomial p-value

    p(lam) = P[Binomial(n, alpha) <= k]    (1 when n = 0),

valid under H(lam) because P[Binomial(n, R) <= k] only grows as R falls to alpha. The hypotheses are tested by
fixed-sequence testing with several start points (Learn-then-Test, section 4): from each start point in
START_POINTS, walk down the grid rejecting H(lam) while p(lam) <= level, and stop at the first that is not rejected.
One sequence at `level` makes no false rejection with probability >= 1 - level whatever its length; the
sequences of all start points, scores and label groups share delta equally (Bonferroni), so with probability
>= 1 - delta no true H is rejected anywhere. A global policy routes tickets scoring >= the lowest rejected lam;
per label, each predicted label gets its own lowest rejected lam (a label with none is never auto-routed), and
since each label's routed tickets are misrouted at most alpha of the time, so are all of them together. Among the
certified policies the one that auto-routes the most calibration tickets is kept; the union bound covers that
choice. The binomial p-value is exact for 0/1 losses (Hoeffding-Bentkus, MAPIE's default, would be looser).

What it does not promise: anything about tickets unlike the calibration set (new products, new queues): that is
what `ticket-classifier monitor` checks on live tickets.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.stats import binom

from ticket_router.rule import ROUTING_SCORES, routed_stats, routing_scores


# The candidate thresholds, fixed before any data is seen: every 0.01 from 0.30 to 0.90, then dense near 1 where
# models separate their sure tickets (101 values, tested from the top down). Fixed-sequence testing pays nothing for
# a finer grid: only the start points share delta.
THRESHOLD_GRID = np.unique(np.round(np.r_[np.linspace(0.3, 0.9, 61), 1 - np.geomspace(0.1, 1e-4, 40)], 6))[::-1]
# Where the fixed sequences start. One start at the very top would stop at once when few calibration tickets score
# that high; several starts cost a Bonferroni share each.
START_POINTS = (0.999, 0.99, 0.95, 0.9)


def binomial_p_values(errors: np.ndarray, routed: np.ndarray, alpha: float) -> np.ndarray:
    """P[Binomial(n, alpha) <= k] for each (k errors, n routed); 1 where nothing is routed."""
    errors, routed = np.asarray(errors), np.asarray(routed)
    p = binom.cdf(errors, np.maximum(routed, 1), alpha)
    return np.where(routed > 0, p, 1.0)


def fixed_sequence(p_values: np.ndarray, level: float, grid: np.ndarray = THRESHOLD_GRID,
                   starts=START_POINTS) -> float | None:
    """The lowest threshold rejected by the fixed sequences (descending `grid`) from each start; None if none."""
    lowest = None
    for start in starts:
        first = int(np.searchsorted(-grid, -start))  # grid is descending: the first point <= start
        for i in range(first, len(grid)):
            if p_values[i] > level:
                break
            lowest = grid[i] if lowest is None else min(lowest, grid[i])
    return None if lowest is None else float(lowest)


def lowest_certified(scores: np.ndarray, wrong: np.ndarray, alpha: float, level: float,
                     grid: np.ndarray = THRESHOLD_GRID, starts=START_POINTS, factor: int = 1) -> float | None:
    """The lowest grid threshold certified at `level` (misrouting <= alpha); None if none is. `factor` multiplies
    the routed and error counts (a projection of a larger calibration set, never used for the guarantee)."""
    scores, wrong = np.asarray(scores, dtype=float), np.asarray(wrong, dtype=bool)
    routed = scores[None, :] >= grid[:, None]
    n = routed.sum(axis=1) * factor
    k = (routed & wrong[None, :]).sum(axis=1) * factor
    return fixed_sequence(binomial_p_values(k, n, alpha), level, grid, starts)


@dataclass
class CertifiedPolicy:
    """A certified routing policy: which score, and the threshold(s) it must reach."""

    score: str
    threshold: float | None  # global threshold (None: per label, or nothing certified)
    label_thresholds: list[float | None] | None = None  # per predicted label (None: never auto-routed)
    coverage: float = 0.0  # share of calibration tickets it auto-routes
    misrouting: float = 0.0  # among them, on the calibration tickets
    tests: int = 0
    details: dict = field(default_factory=dict)

    def thresholds_for(self, predicted: np.ndarray) -> np.ndarray:
        """The threshold each ticket must reach, by its predicted label (inf: never auto-routed)."""
        predicted = np.asarray(predicted)
        if self.label_thresholds is None:
            return np.full(len(predicted), np.inf if self.threshold is None else self.threshold)
        table = np.array([np.inf if t is None else t for t in self.label_thresholds])
        return table[predicted]


def _evaluate(policy: CertifiedPolicy, scores, predicted, wrong, eligible) -> CertifiedPolicy:
    stats = routed_stats(~wrong, eligible & (scores >= policy.thresholds_for(predicted)))
    policy.coverage, policy.misrouting = stats["coverage"], stats["misrouting"]
    return policy


def certify_routing(probabilities: np.ndarray, labels: np.ndarray, max_misrouting: float, delta: float = 0.05,
                    triage_ids=(), scores: tuple[str, ...] = ROUTING_SCORES, per_label: bool = True,
                    grid: np.ndarray = THRESHOLD_GRID) -> CertifiedPolicy:
    """The policy (score x global or per-label thresholds) that auto-routes the most calibration tickets among
    those certified to misroute at most `max_misrouting` with probability >= 1 - delta (module docstring)."""
    if not 0 < max_misrouting < 1:
        raise ValueError(f"max_misrouting must be in (0, 1), got {max_misrouting}")
    if not 0 < delta < 1:
        raise ValueError(f"delta must be in (0, 1), got {delta}")
    probabilities, labels = np.asarray(probabilities), np.asarray(labels)
    num_labels = probabilities.shape[-1]
    predicted = probabilities.argmax(axis=-1)
    wrong = predicted != labels
    eligible = ~np.isin(predicted, list(triage_ids))
    # Labels predicted too rarely to certify even with no error at all ((1 - alpha)^n > delta) are never
    # auto-routed under per-label thresholds and get no share of delta. The choice depends only on how many
    # tickets each label is predicted for: given those counts, each label's tickets are still independent draws.
    too_few = np.log(delta) / np.log1p(-max_misrouting)
    counts = np.bincount(predicted[eligible], minlength=num_labels)
    routable = [c for c in range(num_labels) if c not in set(triage_ids) and counts[c] >= too_few]
    # Every fixed sequence (score x label group x start point) gets an equal share of delta.
    groups_per_score = 1 + (len(routable) if per_label and len(routable) > 1 else 0)
    tests = len(scores) * groups_per_score * len(START_POINTS)  # fixed sequences, each at delta / tests
    level = delta / tests

    candidates = []
    for score in scores:
        values = routing_scores(probabilities, score)
        single = lowest_certified(values[eligible], wrong[eligible], max_misrouting, level, grid)
        candidates.append(CertifiedPolicy(score, single, None, tests=tests))
        if groups_per_score > 1:
            per = [None] * num_labels
            for c in routable:
                mine = eligible & (predicted == c)
                per[c] = lowest_certified(values[mine], wrong[mine], max_misrouting, level, grid)
            candidates.append(CertifiedPolicy(score, None, per, tests=tests))
    for policy in candidates:
        _evaluate(policy, routing_scores(probabilities, policy.score), predicted, wrong, eligible)
    best = max(candidates, key=lambda p: p.coverage)
    best.details = {
        "candidates": [{"score": p.score, "per_label": p.label_thresholds is not None, "coverage": p.coverage,
                        "misrouting": p.misrouting} for p in candidates],
        "level_per_sequence": level, "start_points": list(START_POINTS),
    }
    return best
