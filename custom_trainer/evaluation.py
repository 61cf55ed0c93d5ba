"""The project's metrics as `evaluate` modules, loaded by path (offline), and bootstrap confidence intervals.

`evaluate.load("f1")` fetches metric code from the hub; these modules ship inside the package
(`custom_trainer/metric_modules/`), so `load_metric` never needs a network. A test set of a few hundred tickets
moves macro-F1 by points from draw to draw, so every report gives a 95% interval beside the point value.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

METRIC_MODULES = Path(__file__).resolve().parent / "metric_modules"
METRICS = ("ticket_classification", "ticket_routing")


@functools.lru_cache(maxsize=None)
def load_metric(name: str, config_name: str | None = None):
    """A metric module of this package (``ticket_classification`` or ``ticket_routing``), kept in memory: no
    cache files, so processes of one distributed run never share one."""
    import evaluate

    if name not in METRICS:
        raise ValueError(f"unknown metric {name!r}; this package ships {list(METRICS)}")
    return evaluate.load(str(METRIC_MODULES / name), config_name=config_name, keep_in_memory=True)


def evaluate_pipeline(model, tokenizer, subjects, descriptions, labels, label_names: list[str], batch_size: int = 64,
                      n_resamples: int = 1000, seed: int = 0) -> dict:
    """Accuracy, macro-F1 and weighted F1 of the stock ``pipeline("text-classification")`` on labelled tickets,
    through ``evaluate.evaluator("text-classification")``: bootstrap intervals, tickets per second, latency.

    Tickets go in as (text, text_pair) like in training: a ticket with one field is a single text.
    """
    import datasets
    import evaluate
    import transformers
    from transformers import pipeline

    if not hasattr(transformers, "TFPreTrainedModel"):
        # evaluate 0.4.6 checks isinstance(model, transformers.TFPreTrainedModel); transformers 5 has no TF classes.
        transformers.TFPreTrainedModel = type("TFPreTrainedModel", (), {})
    firsts, seconds = [], []
    for subject, description in zip(subjects, descriptions):
        firsts.append(subject or description)
        seconds.append(description if subject and description else None)
    data = datasets.Dataset.from_dict({"text": firsts, "text_pair": seconds, "label": list(map(int, labels))})
    router = pipeline("text-classification", model=model, tokenizer=tokenizer, batch_size=batch_size, device="cpu")
    evaluator = evaluate.evaluator("text-classification")
    # The evaluator's scipy bootstrap defaults to BCa, whose jackknife computes the metric once per ticket (minutes
    # on a 10,000-ticket file); the percentile method computes it n_resamples times.
    evaluator._compute_confidence_interval = _percentile_bootstrap
    result = evaluator.compute(
        model_or_pipeline=router, data=data, metric=load_metric("ticket_classification", "summary"),
        input_column="text", second_input_column="text_pair", label_column="label",
        label_mapping={name: i for i, name in enumerate(label_names)},
        strategy="bootstrap", n_resamples=n_resamples, random_state=seed,
    )
    return {
        **{key: {"score": float(result[key]["score"]),
                 "interval": [float(v) for v in result[key]["confidence_interval"]]}
           for key in ("accuracy", "macro_f1")},
        "tickets_per_second": float(result["samples_per_second"]),
        "n_resamples": n_resamples,
        "method": "evaluate.evaluator, percentile bootstrap",
    }


def _percentile_bootstrap(metric, metric_inputs, metric_keys, confidence_level=0.95, n_resamples=1000,
                          random_state=None) -> dict:
    """`Evaluator._compute_confidence_interval` with scipy's percentile method instead of BCa."""
    from scipy.stats import bootstrap

    names = list(metric_inputs)
    intervals = {}
    for key in metric_keys:
        result = bootstrap(
            data=list(metric_inputs.values()),
            statistic=lambda *columns, key=key: metric.compute(**dict(zip(names, columns)))[key],
            paired=True, vectorized=False, confidence_level=confidence_level, n_resamples=n_resamples,
            random_state=random_state, method="percentile",
        )
        intervals[key] = {"confidence_interval": (result.confidence_interval.low, result.confidence_interval.high),
                          "standard_error": result.standard_error}
    return intervals


def _macro_f1(confusion: np.ndarray) -> np.ndarray:
    """Macro-F1 over every label for a stack of confusion matrices (..., true, predicted); 0 where undefined."""
    tp = np.diagonal(confusion, axis1=-2, axis2=-1)
    denominator = confusion.sum(axis=-1) + confusion.sum(axis=-2)  # (tp + fn) + (tp + fp)
    f1 = np.divide(2.0 * tp, denominator, out=np.zeros(denominator.shape), where=denominator > 0)
    return f1.mean(axis=-1)


def bootstrap_intervals(
    labels,
    predicted,
    num_labels: int,
    routed=None,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict:
    """Percentile bootstrap intervals (tickets resampled with replacement) for accuracy and macro-F1, and, given
    the auto-routed mask ``routed``, for coverage and misrouting among auto-routed tickets."""
    labels, predicted = np.asarray(labels, dtype=np.int64), np.asarray(predicted, dtype=np.int64)
    n = len(labels)
    if n == 0:
        raise ValueError("bootstrap_intervals: no tickets")
    rng = np.random.default_rng(seed)
    accuracy = np.empty(n_resamples)
    macro_f1 = np.empty(n_resamples)
    coverage = np.empty(n_resamples)
    misrouting = np.empty(n_resamples)
    correct = labels == predicted
    cells = labels * num_labels + predicted
    for i in range(n_resamples):
        sample = rng.integers(0, n, n)
        accuracy[i] = correct[sample].mean()
        confusion = np.bincount(cells[sample], minlength=num_labels * num_labels).reshape(num_labels, num_labels)
        macro_f1[i] = _macro_f1(confusion)
        if routed is not None:
            chosen = np.asarray(routed)[sample]
            coverage[i] = chosen.mean()
            misrouting[i] = (~correct[sample][chosen]).mean() if chosen.any() else 0.0
    tail = 100 * (1 - confidence) / 2
    bounds = lambda values: [float(v) for v in np.percentile(values, [tail, 100 - tail])]  # noqa: E731
    result = {"method": "percentile bootstrap", "confidence": confidence, "n_resamples": n_resamples,
              "accuracy": bounds(accuracy), "macro_f1": bounds(macro_f1)}
    if routed is not None:
        result["coverage"], result["misrouting"] = bounds(coverage), bounds(misrouting)
    return result
