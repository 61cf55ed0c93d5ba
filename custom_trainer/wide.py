"""The wide part of the model: logistic regression over the tokenizer's uni- and bigrams, inside the model.

On real tickets a TF-IDF + logistic regression is a strong model by itself, and it errs on other tickets than the
fine-tuned encoder does. So after fine-tuning, a logistic regression is fitted on the training split over the same
token features the model computes in its forward pass (`ticket_router.torch_model.wide_features`: token ids and hashed adjacent
pairs, idf-weighted, divided by the norm of the idf values), and its weights are written into the model's wide
layer. One number, ``wide_scale``, says how much its logits count beside the head's: it is fitted on validation
together with the temperature (negative log-likelihood), and is 0 when the wide part does not help there.
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


def fit_wide(model, train_ids: list[list[int]], train_labels, seed: int = 0, C: float = 10.0) -> dict:
    """Fit the logistic regression on the training split and write it into ``model``'s wide layer."""
    from sklearn.linear_model import LogisticRegression

    started = time.perf_counter()
    vocab_size, buckets = model.config.encoder_config["vocab_size"], model.config.wide_buckets
    counts = feature_counts(train_ids, vocab_size, buckets)
    idf = inverse_document_frequency(counts)
    features = wide_matrix(counts, idf)
    labels = np.asarray(train_labels)
    classifier = LogisticRegression(C=C, max_iter=2000, random_state=seed).fit(features, labels)
    num_labels = model.config.num_labels
    weight = np.zeros((num_labels, counts.shape[1]))
    bias = np.zeros(num_labels)
    if len(classifier.classes_) == 2 and classifier.coef_.shape[0] == 1:  # binary: one score for the second class
        weight[classifier.classes_[1]], bias[classifier.classes_[1]] = classifier.coef_[0], classifier.intercept_[0]
    else:
        weight[classifier.classes_] = classifier.coef_
        bias[classifier.classes_] = classifier.intercept_
    with torch.no_grad():
        model.wide.weight.copy_(torch.as_tensor(weight.T, dtype=model.wide.weight.dtype))
        model.wide_bias.copy_(torch.as_tensor(bias, dtype=model.wide_bias.dtype))
        model.wide_idf.copy_(torch.as_tensor(idf, dtype=model.wide_idf.dtype))
    result = {"features": int(counts.shape[1]), "features_seen": int((np.bincount(counts.indices, minlength=counts.shape[1]) > 0).sum()),
              "train_accuracy": float((classifier.predict(features) == labels).mean()),
              "seconds": round(time.perf_counter() - started, 1)}
    logger.info("wide part: logistic regression on %d token uni/bigram features (%s)", counts.shape[1], result)
    return result


def wide_logits(model, input_ids: list[list[int]]) -> np.ndarray:
    """The wide part's logits for tokenised tickets, computed in NumPy (equal to `model.wide_logits`)."""
    counts = feature_counts(input_ids, model.config.encoder_config["vocab_size"], model.config.wide_buckets)
    features = wide_matrix(counts, model.wide_idf.double().numpy())
    return features @ model.wide.weight.double().numpy() + model.wide_bias.double().numpy()


def fit_wide_scale(head_logits: np.ndarray, wide: np.ndarray, labels: np.ndarray, max_scale: float = 10.0) -> float:
    """The weight of the wide logits beside the head's that minimises validation log-loss of
    softmax(a * head + b * wide) over a > 0, b >= 0; returns b / a (0: the wide part does not help)."""
    head_t = torch.as_tensor(head_logits, dtype=torch.float64)
    wide_t = torch.as_tensor(wide, dtype=torch.float64)
    labels_t = torch.as_tensor(labels, dtype=torch.long)
    log_a = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    raw_b = torch.full((1,), -2.0, dtype=torch.float64, requires_grad=True)  # b = softplus(raw_b) >= 0
    optimizer = torch.optim.LBFGS([log_a, raw_b], lr=0.5, max_iter=200, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        logits = log_a.exp() * head_t + torch.nn.functional.softplus(raw_b) * wide_t
        loss = torch.nn.functional.cross_entropy(logits, labels_t)
        loss.backward()
        return loss

    optimizer.step(closure)
    scale = float(torch.nn.functional.softplus(raw_b).item() / log_a.exp().item())
    return float(np.clip(scale, 0.0, max_scale))
