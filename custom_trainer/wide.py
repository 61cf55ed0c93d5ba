"""The wide part of the model: logistic regression over the tokenizer's uni- and bigrams, inside the model.

On real tickets a TF-IDF + logistic regression is a strong model by itself, and it errs on other tickets than the
fine-tuned encoder does. So after fine-tuning, a logistic regression is fitted on the training split over the same
token features the model computes in its forward pass (`ticket_router.torch_model.wide_features`: token ids and hashed adjacent
pairs, idf-weighted, divided by the norm of the idf values), and its weights are written into the model's wide
layer. One number, ``wide_scale``, says how much its logits count beside the head's: it is chosen on validation
for the figures the run reports (custom_trainer/combine.py), and is 0 when the wide part does not help there.
Because it lives in the model, `pipeline`, ONNX and the CLI all keep it.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import scipy.sparse as sp
import torch

from ticket_router.contract import hashed_bigrams

logger = logging.getLogger(__name__)


def feature_counts(input_ids: list[list[int]], vocab_size: int, buckets: int) -> sp.csr_matrix:
    """Per ticket, the count of every feature `ticket_router.torch_model.wide_features` gives (padding is never in ``input_ids``)."""
    indptr, indices = [0], []
    for ids in input_ids:
        ids = np.asarray(ids, dtype=np.int64)
        bigrams = hashed_bigrams(ids[:-1], ids[1:], vocab_size, buckets)
        indices.append(ids)
        indices.append(bigrams)
        indptr.append(indptr[-1] + len(ids) + len(bigrams))
    flat = np.concatenate(indices) if indices else np.zeros(0, dtype=np.int64)
    matrix = sp.csr_matrix((np.ones(len(flat), dtype=np.float64), flat, np.asarray(indptr)),
                           shape=(len(input_ids), vocab_size + buckets))
    matrix.sum_duplicates()
    return matrix


def inverse_document_frequency(counts: sp.csr_matrix) -> np.ndarray:
    """scikit-learn's smoothed idf: ln((1 + n) / (1 + df)) + 1."""
    document_frequency = np.bincount(counts.indices, minlength=counts.shape[1])
    return np.log((1.0 + counts.shape[0]) / (1.0 + document_frequency)) + 1.0


def wide_matrix(counts: sp.csr_matrix, idf: np.ndarray) -> sp.csr_matrix:
    """count x idf over sqrt(sum of count x idf^2): the forward pass's weighting (torch_model.wide_logits) in the
    sparse form the regression is fitted on; tests/test_wide.py checks the two give the same logits."""
    weighted = counts.multiply(idf[np.newaxis, :]).tocsr()
    norms = np.sqrt(np.asarray(counts.multiply((idf ** 2)[np.newaxis, :]).sum(axis=1)).ravel())
    return sp.diags(1.0 / np.maximum(norms, 1e-12)) @ weighted


def fit_regression(train_ids: list[list[int]], train_labels, vocab_size: int, buckets: int, num_labels: int,
                   seed: int = 0, C: float = 10.0, idf: np.ndarray | None = None) -> dict:
    """The wide part's logistic regression on tokenised training tickets, as arrays: ``weight`` (labels x
    features), ``bias``, ``idf``, and what the fit did (``info``). ``idf``: the weights of an earlier fit to share
    (an extra field's wide part reads the routed field's features); default: from these tickets."""
    from sklearn.linear_model import LogisticRegression

    started = time.perf_counter()
    counts = feature_counts(train_ids, vocab_size, buckets)
    idf = inverse_document_frequency(counts) if idf is None else idf
    features = wide_matrix(counts, idf)
    labels = np.asarray(train_labels)
    # Only the features some training ticket has: an all-zero column's L2-regularised weight is 0 anyway, and most
    # of the 2^18 bigram buckets are empty, so the solver works on a fraction of the parameters (same solution).
    seen = np.flatnonzero(np.bincount(counts.indices, minlength=counts.shape[1]))
    classifier = LogisticRegression(C=C, max_iter=2000, random_state=seed).fit(features[:, seen], labels)
    weight = np.zeros((num_labels, counts.shape[1]))
    bias = np.zeros(num_labels)
    if len(classifier.classes_) == 2 and classifier.coef_.shape[0] == 1:  # binary: one score for the second class
        weight[classifier.classes_[1], seen] = classifier.coef_[0]
        bias[classifier.classes_[1]] = classifier.intercept_[0]
    else:
        weight[np.ix_(classifier.classes_, seen)] = classifier.coef_
        bias[classifier.classes_] = classifier.intercept_
    info = {"features": int(counts.shape[1]), "features_seen": int(len(seen)),
            "train_accuracy": float((classifier.predict(features[:, seen]) == labels).mean()),
            "seconds": round(time.perf_counter() - started, 1)}
    return {"weight": weight, "bias": bias, "idf": idf, "info": info}


def fit_wide(model, train_ids: list[list[int]], train_labels, seed: int = 0, C: float = 10.0) -> dict:
    """Fit the logistic regression on the training split and write it into ``model``'s wide layer."""
    fitted = fit_regression(train_ids, train_labels, model.config.encoder_config["vocab_size"],
                            model.config.wide_buckets, model.config.num_labels, seed, C)
    with torch.no_grad():
        model.wide.weight.copy_(torch.as_tensor(fitted["weight"].T, dtype=model.wide.weight.dtype))
        model.wide_bias.copy_(torch.as_tensor(fitted["bias"], dtype=model.wide_bias.dtype))
        model.wide_idf.copy_(torch.as_tensor(fitted["idf"], dtype=model.wide_idf.dtype))
    result = fitted["info"]
    logger.info("wide part: logistic regression on %d token uni/bigram features (%s)", result["features"], result)
    return result


def wide_logits(model, input_ids: list[list[int]]) -> np.ndarray:
    """The wide part's logits for tokenised tickets, computed in NumPy (equal to `model.wide_logits`)."""
    counts = feature_counts(input_ids, model.config.encoder_config["vocab_size"], model.config.wide_buckets)
    features = wide_matrix(counts, model.wide_idf.double().numpy())
    return features @ model.wide.weight.double().numpy() + model.wide_bias.double().numpy()
