"""Champion and challenger: a candidate export replaces the one in use only when it proves better on the same tickets.

The tickets: those a person decided (the log's person-decided tickets with text), that neither export trained on or
chose anything with, each text once. They are split by text hash into a comparison part and a certification part
(``compare_share``, default half): the comparison decides, the certification part then certifies the candidate's rule
on tickets that took no part in the decision.

The comparison, on the comparison part (both exports score the same tickets): a paired bootstrap (tickets drawn with
replacement, the same draws for both) of the difference candidate - champion in accuracy and macro-F1; the candidate
must not be worse at 95% by more than ``margin`` in either (the 5th percentile of the difference >= -margin, one-sided),
and its rule, certified on the comparison part as the champion's is, must auto-route at least as large a share.
Functions over plain arrays (``labels``: the person's queue per ticket as a name; predictions as names too, so two
exports with different queues compare on the same footing).
"""

from __future__ import annotations

import numpy as np

BOOTSTRAP = 2000


def macro_f1(truth: np.ndarray, predicted: np.ndarray, queues: list[str]) -> float:
    """Macro-F1 over ``queues`` (the person's queues seen in the comparison)."""
    scores = []
    for queue in queues:
        tp = float(np.sum((predicted == queue) & (truth == queue)))
        fp = float(np.sum((predicted == queue) & (truth != queue)))
        fn = float(np.sum((predicted != queue) & (truth == queue)))
        scores.append(0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn))
    return float(np.mean(scores)) if scores else 0.0


def paired_bootstrap(truth, champion, candidate, resamples: int = BOOTSTRAP, seed: int = 0) -> dict:
    """Accuracy and macro-F1 of both, and the one-sided 95% lower bound of candidate - champion for each."""
    truth, champion, candidate = (np.asarray(a, dtype=object) for a in (truth, champion, candidate))
    queues = sorted(set(truth))
    rng = np.random.default_rng(seed)
    n = len(truth)
    differences = {"accuracy": [], "macro_f1": []}
    for _ in range(resamples):
        draw = rng.integers(0, n, n)
        t, a, b = truth[draw], champion[draw], candidate[draw]
        differences["accuracy"].append(float(np.mean(b == t) - np.mean(a == t)))
        differences["macro_f1"].append(macro_f1(t, b, queues) - macro_f1(t, a, queues))
    result = {"tickets": int(n)}
    for name, measure in (("accuracy", lambda p: float(np.mean(p == truth))),
                          ("macro_f1", lambda p: macro_f1(truth, p, queues))):
        result[name] = {"champion": measure(champion), "candidate": measure(candidate),
                        "difference": measure(candidate) - measure(champion),
                        "lower_95": float(np.quantile(differences[name], 0.05))}
    return result


def verdict(comparison: dict, champion_coverage: float, candidate_coverage: float, margin: float) -> dict:
    """Whether the candidate may replace the champion, and why (or why not)."""
    reasons = []
    for name in ("accuracy", "macro_f1"):
        bound = comparison[name]["lower_95"]
        if bound < -margin:
            reasons.append(f"{name} may be worse by more than {margin:.1%} (95% lower bound of the difference "
                           f"{bound:+.2%})")
    if candidate_coverage < champion_coverage:
        reasons.append(f"it certifies less: {candidate_coverage:.1%} auto-routed against the champion's "
                       f"{champion_coverage:.1%} on the same tickets")
    return {"promote": not reasons, "reasons": reasons, "margin": margin,
            "coverage": {"champion": champion_coverage, "candidate": candidate_coverage}}
