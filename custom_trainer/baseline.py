"""The bar every run must clear: TF-IDF (word 1-2 grams) + logistic regression on the same training split.

On real, long-tailed exports this linear baseline is strong (it beat an earlier fine-tuning recipe by 46 points of
accuracy on a 49-queue export), so every run fits it, scores it on validation and test beside the model, and says
loudly when the model is below it.
"""

from __future__ import annotations

import time

import numpy as np

from .metrics import classification_metrics

BASELINE_NAME = "TF-IDF 1-2 grams + logistic regression"


def ticket_strings(split) -> list[str]:
    """Subject and description as one string (already cleaned by the data layer)."""
    return [f"{subject} {description}".strip() for subject, description in zip(split["subject"], split["description"])]


def fit_baseline(texts: list[str], labels, seed: int = 0):
    """A fitted scikit-learn pipeline: sublinear TF-IDF over word 1-2 grams, then multinomial logistic regression.

    C=10 and min_df=2 (1 for small sets) are the settings measured on the real benchmark (benchmarks/RESULTS.md).
    """
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=2 if len(texts) >= 2000 else 1)
    classifier = LogisticRegression(C=10.0, max_iter=2000, random_state=seed)
    return make_pipeline(vectorizer, classifier).fit(texts, np.asarray(labels))


def baseline_metrics(raw, label_names: list[str], seed: int = 0) -> dict:
    """Fit on ``raw["train"]``; accuracy, macro-F1, weighted F1 and per-label F1 on validation and test."""
    started = time.perf_counter()
    model = fit_baseline(ticket_strings(raw["train"]), raw["train"]["label"], seed)
    result = {"name": BASELINE_NAME}
    for split in ("validation", "test"):
        predicted = model.predict(ticket_strings(raw[split]))
        result[split] = classification_metrics(np.asarray(raw[split]["label"]), predicted, label_names)
    result["seconds"] = round(time.perf_counter() - started, 1)
    return result


def compare_to_baseline(model_metrics: dict, baseline: dict, split: str = "validation") -> list[str]:
    """The metrics (accuracy, macro-F1) on ``split`` where the model is below the baseline, as readable lines."""
    below = []
    for key, name in (("accuracy", "accuracy"), ("macro_f1", "macro-F1")):
        ours, theirs = model_metrics[split][key], baseline[split][key]
        if ours < theirs:
            below.append(f"{split} {name} {ours:.4f} < {theirs:.4f} ({BASELINE_NAME})")
    return below


ADVICE = (
    "the fine-tuned model is below the linear baseline. What to try: the wide part and the prior correction "
    "(wide_buckets > 0 with combine_for both, the defaults); more epochs (num_train_epochs) or a larger "
    "learning rate for the head (head_learning_rate); class_weighting none or sqrt when a few labels dominate; "
    "a larger max_length when many tickets are truncated (reports/data_report.json: token_lengths); or route with "
    "the baseline until the model is better."
)
