"""Prediction sets with a coverage guarantee (split conformal prediction), for the tickets a person triages.

For each ticket, the smallest set of queues that contains the right one with probability >= 1 - alpha, over the
draw of the calibration tickets and of the ticket (marginal coverage; Vovk et al. 2005, Angelopoulos & Bates 2021).
Calibrated on the calibration split, which chose nothing (no checkpoint, temperature or weight), so its tickets and
a live ticket are exchangeable when live tickets are drawn like them.

The conformity score is LAC's (least ambiguous set-valued classifier, Sadinle et al. 2019): 1 - the right queue's
probability; a queue is in the set when its probability reaches 1 - q. It gives the smallest sets on average, with
coverage close to exact. Adaptive prediction sets (Romano et al. 2020) were measured on the real benchmark and left
out: without randomisation (a router must answer the same ticket the same way) they covered 99.9% of test tickets at
alpha 0.1 with 3.6 queues a set, because the calibrated probabilities are sharp (benchmarks/RESULTS.md).

q is the ceil((n + 1)(1 - alpha)) / n quantile of the n calibration scores (``inf`` when n is too small: every
queue). Every set holds at least the predicted queue. numpy only: the slim install computes sets too.
"""

from __future__ import annotations

import math

import numpy as np

SET_METHOD = "lac"
DEFAULT_SET_ALPHA = 0.1


def conformity_scores(probabilities: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """How badly each ticket's right queue fits the model's probabilities: 1 - its probability (larger: worse).
    A label of -1 (a queue the model does not know, from `calibrate`) scores 1: no set can hold it."""
    return 1.0 - _right_queue(np.asarray(probabilities, dtype=float), labels)


def _right_queue(values: np.ndarray, labels) -> np.ndarray:
    """Each row's value at its label; 0 (False) for label -1."""
    labels = np.asarray(labels, dtype=int)
    picked = values[np.arange(len(labels)), np.maximum(labels, 0)]
    return np.where(labels >= 0, picked, 0)


def conformal_quantile(scores: np.ndarray, alpha: float) -> float:
    """The ceil((n + 1)(1 - alpha)) / n empirical quantile of ``scores`` (the order statistic of that rank);
    ``inf`` when that rank exceeds n (too few calibration tickets for this alpha)."""
    if not 0 < alpha < 1:
        raise ValueError(f"set_alpha must be in (0, 1), got {alpha}")
    scores = np.sort(np.asarray(scores, dtype=float))
    rank = math.ceil((len(scores) + 1) * (1 - alpha))
    return float("inf") if rank > len(scores) else float(scores[rank - 1])


def prediction_sets(probabilities: np.ndarray, quantile: float) -> np.ndarray:
    """A (tickets, queues) mask: the queues whose probability reaches 1 - q. The top queue is always in it."""
    probabilities = np.asarray(probabilities, dtype=float)
    members = probabilities >= 1.0 - quantile
    members[np.arange(len(probabilities)), probabilities.argmax(axis=1)] = True
    return members


def calibrate_sets(probabilities: np.ndarray, labels: np.ndarray, alpha: float) -> dict:
    """What an export stores (``prediction_sets`` in config.json): the method, alpha, q and the calibration size."""
    quantile = conformal_quantile(conformity_scores(probabilities, labels), alpha)
    return {"method": SET_METHOD, "alpha": alpha, "quantile": None if math.isinf(quantile) else quantile,
            "calibration_size": int(len(labels))}


def set_stats(members: np.ndarray, labels: np.ndarray) -> dict:
    """Empirical coverage and the mean, median and largest set size on labelled tickets."""
    members, labels = np.asarray(members, dtype=bool), np.asarray(labels, dtype=int)
    sizes = members.sum(axis=1)
    return {"coverage": float(_right_queue(members, labels).mean()) if len(labels) else 0.0,
            "mean_size": float(sizes.mean()) if len(sizes) else 0.0,
            "median_size": float(np.median(sizes)) if len(sizes) else 0.0,
            "max_size": int(sizes.max()) if len(sizes) else 0}


def stored_quantile(settings) -> float:
    """q from an export's stored settings; a missing or unreadable q fails open to every queue (``inf``): a set
    that is too large costs a person a look, a set that is too small breaks the promise."""
    value = (settings or {}).get("quantile")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        return float("inf")
    return float(value)
