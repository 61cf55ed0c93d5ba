"""Certify an auto-route rule on labelled tickets that chose nothing (Learn-then-Test, one pre-registered sequence).

The promise. Let R be the share of misrouted tickets among the tickets the rule auto-routes, for tickets drawn like the
calibration tickets. With probability at least 1 - delta over the draw of the calibration tickets, R <= max_misrouting
(and, for a queue given its own target, the share misrouted among the tickets auto-routed *to that queue* is at most
its target). The calibration tickets must have chosen nothing: not the checkpoint, not the temperature, not the
weights, not the threshold grid or where the test starts. `train.py` carves them out of the training file for this
alone; `ticket-classifier calibrate` takes a desk's own labelled tickets. The binomial bound below assumes the tickets
are independent draws: tickets of one incident or one template are not, and the promise is then only indicative.

The test. A rule is a score s (the top calibrated probability, or its margin over the runner-up) and a threshold lam
on a grid fixed in advance. For each lam, H(lam): R(lam) > alpha. With n calibration tickets routed at lam and k of them
misrouted, p(lam) = P[Binomial(n, alpha) <= k] is a valid p-value (exact for 0/1 losses). The thresholds are tested in
one fixed sequence, from a start point down the grid, each at the full level, stopping at the first that is not
rejected (fixed-sequence testing: no false rejection with probability >= 1 - level, however long the sequence). The
rule routes tickets scoring >= the lowest rejected threshold; if the start is not rejected, nothing is routed.

Pre-registration. The score and the start point are chosen *before* the calibration tickets are looked at, from
validation counts (`grid_counts` of the validation tickets, stored in the export): the start where the projected
evidence is strongest, the score that projects the most coverage. Validation tickets are independent of the
calibration tickets, so the sequence is fixed with respect to the draw that certifies it. An earlier version spread
delta over 72 sequences (2 scores x 9 label groups x 4 start points) chosen on the calibration tickets themselves;
one sequence spends the whole delta (benchmarks/RESULTS.md compares the two).

Families. Queues with their own target (Security at 1%) are certified one by one on the tickets predicted as them;
the other queues share one threshold and the default target. Each family's sequence runs at delta / (number of
families): with probability >= 1 - delta every family holds its target at once (Bonferroni). Triage queues (the merged
rare-queue bucket, `never_auto_route`) are never routed and form no family.

numpy only: the slim install (no torch, no scipy) re-certifies an export with `ticket-classifier calibrate`.
"""

from __future__ import annotations


import math
from collections.abc import Mapping, Sequence

import numpy as np

from .rule import ROUTING_SCORES, RoutingRule, routed_stats, routing_scores

# The candidate thresholds, fixed before any data is seen: every 0.01 from 0.30 to 0.90, then dense near 1 where
# models separate their sure tickets (100 values, descending).
THRESHOLD_GRID = np.unique(np.round(np.r_[np.linspace(0.3, 0.9, 61), 1 - np.geomspace(0.1, 1e-4, 40)], 6))[::-1]
# The menu a desk chooses its target from: what each would buy on the calibration tickets.
FRONTIER_TARGETS = (0.01, 0.02, 0.03, 0.05, 0.10)


_LOG_FACTORIALS = np.zeros(1)


def _log_factorials(n: int) -> np.ndarray:
    """log(i!) for i = 0..n (a table grown on demand)."""
    global _LOG_FACTORIALS
    if len(_LOG_FACTORIALS) <= n:
        size = max(n + 1, 2 * len(_LOG_FACTORIALS))
        _LOG_FACTORIALS = np.r_[0.0, np.cumsum(np.log(np.arange(1, size)))]
    return _LOG_FACTORIALS


def log_binomial_cdf(k: int, n: int, p: float) -> float:
    """log P[Binomial(n, p) <= k], summed exactly in log space (no scipy; no underflow for large n)."""
    k, n = int(k), int(n)
    if n <= 0 or k >= n:
        return 0.0
    if k < 0:
        return -math.inf
    table = _log_factorials(n)
    i = np.arange(k + 1)
    log_pmf = table[n] - table[i] - table[n - i] + i * math.log(p) + (n - i) * math.log1p(-p)
    top = log_pmf.max()
    return float(min(0.0, top + math.log(np.exp(log_pmf - top).sum())))


def p_value(errors: int, routed: int, alpha: float) -> float:
    """P[Binomial(routed, alpha) <= errors]: small when `routed` tickets with `errors` misrouted show R <= alpha."""
    return 1.0 if routed <= 0 else math.exp(log_binomial_cdf(int(errors), int(routed), alpha))


def tickets_needed(alpha: float, level: float) -> int:
    """The fewest routed tickets that can certify ``alpha`` at ``level`` even with no error at all."""
    return int(math.ceil(math.log(level) / math.log1p(-alpha)))


def grid_counts(probabilities: np.ndarray, labels: np.ndarray, grid: np.ndarray = THRESHOLD_GRID) -> dict:
    """For each score, grid threshold and predicted label: tickets scoring >= the threshold, and misrouted among them.

    What pre-registration needs of the validation tickets (stored in the export, a few KB), and what certification
    needs of the calibration tickets."""
    probabilities, labels = np.asarray(probabilities, dtype=float), np.asarray(labels)
    num_labels = probabilities.shape[-1]
    predicted = probabilities.argmax(axis=-1)
    onehot = np.zeros((len(predicted), num_labels), dtype=np.int64)
    onehot[np.arange(len(predicted)), predicted] = 1
    wrong = (predicted != labels)[:, None] * onehot
    counts = {"tickets": int(len(labels)), "grid": [float(g) for g in grid]}
    for score in ROUTING_SCORES:
        above = (routing_scores(probabilities, score)[None, :] >= np.asarray(grid)[:, None]).astype(np.int64)
        counts[score] = {"routed": (above @ onehot).tolist(), "errors": (above @ wrong).tolist()}
    return counts


def _family_counts(counts: dict, score: str, family: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    table = counts[score]
    family = list(family)
    routed = np.asarray(table["routed"], dtype=np.int64)[:, family].sum(axis=1)
    errors = np.asarray(table["errors"], dtype=np.int64)[:, family].sum(axis=1)
    return routed, errors


def run_sequence(routed: np.ndarray, errors: np.ndarray, alpha: float, level: float, start: int) -> int | None:
    """Fixed-sequence testing down the grid from index ``start``: the index of the lowest rejected threshold, or None
    when the start itself is not rejected."""
    lowest = None
    for g in range(start, len(routed)):
        if p_value(errors[g], routed[g], alpha) > level:
            break
        lowest = g
    return lowest


_CRITICAL: dict = {}  # (alpha, level) -> the table for n = 0..len-1, grown as larger n are asked for
_CRITICAL_KEYS = 64


def critical_errors(routed_max: int, alpha: float, level: float) -> np.ndarray:
    """For n = 0..routed_max routed tickets, the most errors that still reject H: R > alpha at ``level`` (-1: none do,
    as for n = 0). ``errors <= critical[n]`` is the same test as ``p_value(errors, n, alpha) <= level``. Kept per
    (alpha, level) and extended when a larger n is asked for (a read-only view): pre-registration asks for the same
    table for every family, score, frontier row and look."""
    key = (float(alpha), float(level))
    table = _CRITICAL.get(key)
    if table is None or len(table) <= routed_max:
        done = 0 if table is None else len(table)
        grown = np.full(max(routed_max + 1, 2 * done), -1, dtype=np.int64)
        if table is not None:
            grown[:done] = table
        for n in range(max(done, 1), len(grown)):
            k = int(grown[n - 1]) + 1  # never more than one above the critical value for n - 1
            while k >= 0 and p_value(k, n, alpha) > level:
                k -= 1
            grown[n] = k
        if len(_CRITICAL) >= _CRITICAL_KEYS and key not in _CRITICAL:
            _CRITICAL.pop(next(iter(_CRITICAL)))
        _CRITICAL[key] = table = grown
    view = table[:routed_max + 1]
    view.flags.writeable = False
    return view


# Whether certification runs each family's sequence for both scores (Bonferroni over them) rather than one score
# pre-registered on validation: measured on the real benchmark's runs (RESULTS, issue 31).
HEDGE_SCORES = False
BOOTSTRAP_DRAWS = 200  # simulated calibration sets per pre-registration (seeded: the choice is reproducible)
START_PASS_RATE = 0.99  # a start must pass in this share of the simulated calibration sets


def preregister(validation_counts: dict, family: Sequence[int], alpha: float, level: float,
                calibration_tickets: int, score: str | None = None, draws: int = BOOTSTRAP_DRAWS) -> dict:
    """Score and start point of one family's sequence, chosen on the validation tickets alone.

    Calibration sets of ``calibration_tickets`` are simulated from the validation tickets (a Bayesian bootstrap over
    their score bins, right and wrong, from the stored counts, then a multinomial draw), and the sequence is run on
    each from every start point. The start is the highest threshold whose test passes in `START_PASS_RATE` of the draws (or, when none
    does, the one that certifies the most on average); the score (unless given) is the one whose sequence from its
    start certifies the most tickets on average."""
    n_val = max(validation_counts["tickets"], 1)
    n = int(calibration_tickets)
    critical = critical_errors(n, alpha, level)
    rng = np.random.default_rng(0)
    best = None
    for candidate_score in ROUTING_SCORES if score is None else (score,):
        routed, errors = _family_counts(validation_counts, candidate_score, family)
        # Tickets per bin between consecutive grid thresholds, right and wrong, and all the others (below the lowest
        # threshold or outside the family): the categories a resampled ticket falls in.
        right_bins = np.diff(np.r_[0, routed - errors])
        wrong_bins = np.diff(np.r_[0, errors])
        others = n_val - routed[-1]
        weights = np.r_[right_bins, wrong_bins, others].astype(float)
        # Two samples differ by twice one sample's noise: the share of each bin is drawn first (a Bayesian bootstrap of
        # validation, its own sampling noise), then a calibration set from those shares.
        shares = rng.dirichlet(weights + 1e-3, size=draws)
        sample = rng.multinomial(n, shares)
        grid_size = len(routed)
        sim_routed = np.cumsum(sample[:, :grid_size] + sample[:, grid_size:2 * grid_size], axis=1)
        sim_errors = np.cumsum(sample[:, grid_size:2 * grid_size], axis=1)
        passes = sim_errors <= critical[sim_routed]
        # run[:, g]: how many thresholds from g down pass in a row (fixed-sequence testing stops at the first failure).
        run = np.zeros((draws, grid_size + 1), dtype=np.int64)
        for g in range(grid_size - 1, -1, -1):
            run[:, g] = np.where(passes[:, g], run[:, g + 1] + 1, 0)
        end = np.clip(np.arange(grid_size)[None, :] + run[:, :grid_size] - 1, 0, grid_size - 1)
        certified = np.where(run[:, :grid_size] > 0, np.take_along_axis(sim_routed, end, axis=1), 0)
        expected = certified.mean(axis=0)
        # The highest start that passes in nearly every simulated draw: starting high costs nothing when the tickets
        # below keep passing, and the sequence stops by itself where the evidence ends. A lower start, where
        # validation alone looks best, is where a calibration draw that is less lucky than validation (validation
        # chose the checkpoint and the temperature) fails at once (measured: RESULTS, issue 31).
        robust = np.flatnonzero(passes.mean(axis=0) >= START_PASS_RATE)
        start = int(robust[0]) if len(robust) else int(np.argmax(expected))
        candidate = {"score": candidate_score, "start_index": start, "start": float(validation_counts["grid"][start]),
                     "projected_routed": float(expected[start]),
                     "projected_certifies": float((certified[:, start] > 0).mean())}
        if best is None or candidate["projected_routed"] > best["projected_routed"]:
            best = candidate
    return best


def _calibration_needed(validation_counts: dict, family, alpha: float, level: float, score: str) -> int | None:
    """The smallest calibration size (doubling, then bisecting) whose projected sequence certifies something; None
    when even 64x the validation tickets would not (the model makes too many errors at every threshold)."""
    routed, errors = _family_counts(validation_counts, score, family)
    n_val = max(validation_counts["tickets"], 1)

    def certifies(size: int) -> bool:
        scale = size / n_val
        n, k = np.round(routed * scale).astype(np.int64), np.floor(errors * scale).astype(np.int64)
        return any(p_value(kk, nn, alpha) <= level for kk, nn in zip(k, n))

    high = 16
    while not certifies(high):
        high *= 2
        if high > 64 * n_val:
            return None
    low = high // 2
    while high - low > max(1, low // 50):
        middle = (low + high) // 2
        low, high = (low, middle) if certifies(middle) else (middle, high)
    return int(high)


def _more_than(needed: int | None, available: int) -> int | None:
    return needed if needed is not None and needed > available else None


def parse_queue_targets(entries, label_names: Sequence[str]) -> dict[str, float]:
    """``["Security=0.01", ...]`` or a mapping, checked against the labels: {queue: target}."""
    if isinstance(entries, Mapping):
        items = list(entries.items())
    else:
        items = []
        for entry in entries or ():
            name, sep, value = str(entry).rpartition("=")
            if not sep or not name:
                raise ValueError(f"queue_max_misrouting: {entry!r} is not QUEUE=TARGET (e.g. Security=0.01)")
            items.append((name, value))
    targets = {}
    for name, value in items:
        if name not in label_names:
            raise ValueError(f"queue_max_misrouting: queue {name!r} is not among the labels {list(label_names)}")
        try:
            target = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"queue_max_misrouting: {name}={value!r} is not a number") from None
        if not 0 < target < 1:
            raise ValueError(f"queue_max_misrouting: {name}={target} must be a fraction in (0, 1)")
        targets[name] = target
    return targets


def check_queue_targets(queue_targets: Mapping[str, float], max_misrouting: float, triage_names=()) -> None:
    """Queue targets the promise can carry: stricter than the overall target (the promise is "at most max_misrouting
    of all auto-routed tickets"), and none for a queue that is never auto-routed."""
    for name, target in queue_targets.items():
        if target > max_misrouting:
            raise ValueError(f"queue_max_misrouting: {name}={target} is looser than max_misrouting {max_misrouting}; "
                             "a queue's own target must be at most the overall one")
        if name in triage_names:
            raise ValueError(f"queue_max_misrouting: {name} is never auto-routed (a triage queue); it needs no target")


def certify(calibration_probabilities: np.ndarray, calibration_labels: np.ndarray, validation_counts: dict,
            label_names: Sequence[str], max_misrouting: float, delta: float = 0.05, triage_ids: Sequence[int] = (),
            queue_targets: Mapping[str, float] | None = None, hedge_scores: bool = HEDGE_SCORES,
            score: str | None = None, registered_size: int | None = None) -> dict:
    """Certify on calibrated calibration probabilities, with sequences pre-registered on ``validation_counts``.

    ``score``: the routing score, fixed by the caller (several groups of tickets certified apart must share one
    rule's score); ``registered_size``: the number of tickets the start points are pre-registered for (default: these
    tickets'). Both must be chosen without looking at the tickets' labels.

    ``hedge_scores``: run every family's sequence for both scores (each at delta / (families x 2)) and keep the score
    that certifies more calibration tickets (all sequences hold at once with probability >= 1 - delta, so the choice
    is covered); otherwise one score, pre-registered on validation, at delta / families.

    Returns the rule ({"score", "thresholds": {label: threshold or None}}), one entry per family (target, start,
    threshold, routed, misrouted, p-value), and coverage and misrouting on the calibration tickets."""
    if not 0 < max_misrouting < 1:
        raise ValueError(f"max_misrouting must be in (0, 1), got {max_misrouting}")
    if not 0 < delta < 1:
        raise ValueError(f"delta must be in (0, 1), got {delta}")
    label_names = list(label_names)
    queue_targets = dict(queue_targets or {})
    probabilities = np.asarray(calibration_probabilities, dtype=float)
    labels = np.asarray(calibration_labels)
    if probabilities.ndim != 2 or probabilities.shape[1] != len(label_names) or len(probabilities) != len(labels):
        raise ValueError(f"calibration probabilities of shape {probabilities.shape} do not match {len(labels)} labels "
                         f"of {len(label_names)} queues")
    if validation_counts.get("grid") != [float(g) for g in THRESHOLD_GRID]:
        raise ValueError("validation counts were made on another threshold grid; re-export the model")
    triage = {int(i) for i in triage_ids}
    check_queue_targets(queue_targets, max_misrouting, [label_names[i] for i in triage])
    families = families_of(label_names, max_misrouting, triage, queue_targets)
    n = len(labels)
    calibration_counts = grid_counts(probabilities, labels)
    # The number of sequences is fixed before the calibration tickets are looked at: each gets an equal share of delta.
    if hedge_scores and score is None:
        scores, level = ROUTING_SCORES, delta / max(len(families) * len(ROUTING_SCORES), 1)
    else:
        level = delta / max(len(families), 1)
        # One score for the whole rule (RoutingRule has one): the one the default family (or the first) pre-registers.
        scores = (score,) if score is not None else (preregister_score(validation_counts, families, level, n),)
    best = None
    for candidate in scores:
        result = _certify_families(candidate, families, level, validation_counts, calibration_counts, label_names,
                                   triage, probabilities, labels, registered_size)
        if best is None or result["auto_routed"] > best["auto_routed"]:
            best = result
    return {**best, "level_per_sequence": level, "sequences": len(families) * len(scores), "calibration_size": int(n)}


def families_of(label_names, max_misrouting: float, triage_ids=(), queue_targets=None) -> list[tuple]:
    """(name, member label ids, target) of each family: the default one, then each queue with its own target."""
    label_names, queue_targets, triage = list(label_names), dict(queue_targets or {}), {int(i) for i in triage_ids}
    own = [label_names.index(name) for name in queue_targets]
    default = [i for i in range(len(label_names)) if i not in triage and i not in own]
    return ([("default", default, max_misrouting)] if default else []) + [
        (label_names[i], [i], queue_targets[label_names[i]]) for i in own]


def preregister_score(validation_counts: dict, families, level: float, n: int) -> str:
    """The one routing score of a rule: the one the default family (or the first) pre-registers for n tickets."""
    return preregister(validation_counts, families[0][1], families[0][2], level, n)["score"] if families else "probability"


def _certify_families(score, families, level, validation_counts, calibration_counts, label_names, triage,
                      probabilities, labels, registered_size: int | None = None) -> dict:
    """Each family's pre-registered sequence on ``score``, run on the calibration counts; the rule they make."""
    n = len(labels)
    thresholds: dict[str, float | None] = {name: None for name in label_names}
    report_families = []
    for name, members, target in families:
        plan = preregister(validation_counts, members, target, level, registered_size or n, score)
        routed, errors = _family_counts(calibration_counts, score, members)
        lowest = run_sequence(routed, errors, target, level, plan["start_index"])
        threshold = None if lowest is None else float(THRESHOLD_GRID[lowest])
        for i in members:
            thresholds[label_names[i]] = threshold
        at = plan["start_index"] if lowest is None else lowest
        report_families.append({
            "family": name, "queues": [label_names[i] for i in members], "max_misrouting": target, "score": score,
            "start": plan["start"], "threshold": threshold, "routed": int(routed[at]) if lowest is not None else 0,
            "misrouted": int(errors[at]) if lowest is not None else 0,
            "p_value": p_value(errors[at], routed[at], target),
            # Only where nothing was certified: how many calibration tickets this target would take at the error
            # rate validation shows (None when that is no more than there were: calibration showed more errors).
            "calibration_tickets_needed": None if threshold is not None else _more_than(
                _calibration_needed(validation_counts, members, target, level, score), n),
        })
    rule = RoutingRule(tuple(thresholds[name] for name in label_names), score, tuple(sorted(triage)))
    stats = rule.stats(probabilities, labels) if n else {"coverage": 0.0, "misrouting": 0.0, "auto_routed": 0}
    return {"score": score, "thresholds": thresholds, "families": report_families, "coverage": stats["coverage"],
            "misrouting": stats["misrouting"], "auto_routed": stats["auto_routed"]}


def frontier(calibration_probabilities, calibration_labels, validation_counts: dict, label_names, delta: float,
             triage_ids=(), queue_targets=None, targets: Sequence[float] = FRONTIER_TARGETS) -> list[dict]:
    """The menu: for each default target, the coverage certified on the calibration tickets (each row a
    certification of its own at delta; not the stored rule)."""
    rows = []
    for target in targets:
        # A queue's own target stays its own, or this row's when that is stricter.
        held = {name: min(goal, target) for name, goal in (queue_targets or {}).items()}
        result = certify(calibration_probabilities, calibration_labels, validation_counts, label_names, target,
                         delta, triage_ids, held)
        needed = [f["calibration_tickets_needed"] for f in result["families"] if f["threshold"] is None]
        rows.append({"max_misrouting": target, "coverage": result["coverage"], "misrouting": result["misrouting"],
                     "score": result["score"],
                     "calibration_tickets_needed": max((x for x in needed if x is not None), default=None)
                     if needed else None})
    return rows


def single_threshold(rule: RoutingRule) -> float | None:
    """The one threshold every routable (non-triage) label shares, for readers that show one number; None when
    they differ or some label is never routed (both mean: read the per-label table)."""
    values = {t for i, t in enumerate(rule.label_thresholds) if i not in set(rule.triage_ids)}
    return values.pop() if len(values) == 1 and None not in values else None


def routing_profile(probabilities: np.ndarray, labels: np.ndarray, rule: RoutingRule, label_names, bins: int = 20) -> dict:
    """What routing looked like on the calibration tickets, for `ticket-classifier monitor` to compare live tickets with."""
    predicted, scores, routed = rule.decide(probabilities)
    stats = routed_stats(predicted == np.asarray(labels), routed)
    return {
        "tickets": len(predicted),
        "coverage": stats["coverage"],
        "misrouting": stats["misrouting"],
        "score_histogram": np.histogram(scores, bins=bins, range=(0.0, 1.0))[0].tolist(),
        "predicted_mix": {name: float((predicted == i).mean()) for i, name in enumerate(label_names)},
    }


GUARANTEE_METHOD = ("Learn-then-Test on the calibration tickets: exact binomial p-values, one fixed sequence of "
                    "thresholds per family whose score and start were pre-registered on validation, Bonferroni over "
                    "families (ticket_router/certification.py)")
INDEPENDENCE = ("The bound assumes the calibration tickets are independent draws like the live tickets; tickets of "
                "one incident, template or problem are not, and then the promise is only indicative.")


def certified_routing(val_probabilities, val_labels, cal_probabilities, cal_labels, label_names, max_misrouting: float,
                      delta: float, triage_ids=(), queue_targets=None, certified_on: str = "",
                      validation_counts: dict | None = None, score: str | None = None,
                      with_frontier: bool = True) -> tuple[RoutingRule, dict]:
    """The certified rule and its guarantee (with the frontier), from calibrated probabilities; the sequences are
    pre-registered on the validation tickets (or on ``validation_counts`` an export stored). No calibration tickets:
    a rule that routes nothing, and a guarantee that says so."""
    label_names = list(label_names)
    if validation_counts is None:
        validation_counts = grid_counts(val_probabilities, val_labels)
    guarantee = {"max_misrouting": max_misrouting, "delta": delta, "queue_max_misrouting": dict(queue_targets or {}),
                 "method": GUARANTEE_METHOD, "assumes": INDEPENDENCE, "certified_on": certified_on,
                 "validation_counts": validation_counts}
    if cal_probabilities is None or len(cal_labels) == 0:
        rule = RoutingRule(tuple([None] * len(label_names)), "probability", tuple(sorted(int(i) for i in triage_ids)))
        guarantee.update(calibration_size=0, families=[], frontier=[], certified_on="nothing (no calibration tickets): "
                         "nothing is auto-routed until `ticket-classifier calibrate` certifies a rule")
        return rule, guarantee
    result = certify(cal_probabilities, cal_labels, validation_counts, label_names, max_misrouting, delta, triage_ids,
                     queue_targets, score=score)
    rule = RoutingRule(tuple(result["thresholds"][name] for name in label_names), result["score"],
                       tuple(sorted(int(i) for i in triage_ids)))
    guarantee.update(
        calibration_size=result["calibration_size"], families=result["families"],
        level_per_sequence=result["level_per_sequence"],
        calibration={"coverage": result["coverage"], "misrouting": result["misrouting"],
                     "auto_routed": result["auto_routed"]},
        frontier=frontier(cal_probabilities, cal_labels, validation_counts, label_names, delta, triage_ids,
                          queue_targets) if with_frontier else [],
    )
    return rule, guarantee
