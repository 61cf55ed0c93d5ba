"""Probe, then fine-tune (Kumar et al. 2022's "linear probe, then fine-tune", "Fine-Tuning can Distort Pretrained
Features and Underperform Out-of-Distribution"; here the probe is the whole two-layer head): the head is first trained alone on the frozen encoder's sentence vectors, so fine-tuning
starts from a classifier as good as a logistic regression on those vectors instead of from a random head whose
gradients distort the pretrained features.

The vectors are computed once (one forward pass over the training split, no gradients), then the head trains on
them for ``epochs`` passes at ``learning_rate``: seconds, even for tens of thousands of tickets.
"""

from __future__ import annotations

import logging
import time

import torch
from torch.utils.data import DataLoader

from .losses import focal_loss

logger = logging.getLogger(__name__)


@torch.no_grad()
def sentence_vectors(model, dataset, collator, batch_size: int = 128,
                     bf16: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """The pooled encoder output and the label of every row of a tokenised dataset, in dataset order; under bf16
    autocast on CPU when training uses it (custom_trainer/precision.py), the vectors returned in fp32."""
    model.eval()
    columns = [c for c in ("input_ids", "attention_mask", "token_type_ids", "labels") if c in dataset.column_names]
    order = sorted(range(len(dataset)), key=lambda i: dataset[i]["length"]) if "length" in dataset.column_names else None
    rows = dataset.select(order) if order is not None else dataset
    loader = DataLoader(rows.select_columns(columns), batch_size=batch_size, collate_fn=collator)
    vectors, labels = [], []
    for batch in loader:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            # long tickets in windows, as the model reads them; token types only where the encoder takes them (_encode)
            vectors.append(model.sentence_vectors(batch["input_ids"], batch["attention_mask"],
                                                  batch.get("token_type_ids")).float())
        labels.append(batch["labels"])
    vectors, labels = torch.cat(vectors), torch.cat(labels)
    if order is not None:  # back to dataset order
        restored = torch.empty_like(vectors)
        restored[torch.tensor(order)] = vectors
        restored_labels = torch.empty_like(labels)
        restored_labels[torch.tensor(order)] = labels
        vectors, labels = restored, restored_labels
    return vectors, labels


def fit_head(
    model,
    vectors: torch.Tensor,
    labels: torch.Tensor,
    epochs: float,
    learning_rate: float = 1e-3,
    batch_size: int = 64,
    class_weights: torch.Tensor | None = None,
    gamma: float = 0.0,
    seed: int = 0,
    head=None,
) -> dict:
    """Train ``head`` (default ``model.head``) on fixed vectors with the model's loss (AdamW, weight decay 0.01,
    linear decay); labels of -100 (a blank extra field) are skipped."""
    head = model.head if head is None else head
    head.train()
    generator = torch.Generator().manual_seed(seed)
    steps_per_epoch = max(1, (len(vectors) + batch_size - 1) // batch_size)
    total = max(1, round(epochs * steps_per_epoch))
    optimizer = torch.optim.AdamW(head.parameters(), lr=learning_rate, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0 - step / total)
    step = 0
    while step < total:
        for batch in torch.randperm(len(vectors), generator=generator).split(batch_size):
            loss = focal_loss(head(vectors[batch]), labels[batch], class_weights, gamma)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            step += 1
            if step >= total:
                break
    head.eval()
    with torch.no_grad():
        known = labels >= 0
        accuracy = float((head(vectors[known]).argmax(-1) == labels[known]).float().mean()) if known.any() else 0.0
    return {"steps": total, "train_accuracy": accuracy}


def probe_head(model, dataset, collator, epochs: float, learning_rate: float = 1e-3,
                 class_weights: torch.Tensor | None = None, gamma: float = 0.0, seed: int = 0,
                 bf16: bool = False) -> dict:
    """Vectors of ``dataset`` from the frozen encoder, then the head fitted on them. Returns what it did."""
    started = time.perf_counter()
    was_training = model.training
    vectors, labels = sentence_vectors(model, dataset, collator, bf16=bf16)
    encoded = time.perf_counter() - started
    routed = labels if labels.dim() == 1 else labels[:, 0]
    result = fit_head(model, vectors, routed, epochs, learning_rate, class_weights=class_weights, gamma=gamma, seed=seed)
    for index, (head, field) in enumerate(zip(getattr(model, "head_fields", []), model.config.extra_fields)):
        weights = field.get("class_weights")
        fitted = fit_head(model, vectors, labels[:, index + 1], epochs, learning_rate, gamma=gamma, seed=seed,
                          class_weights=None if weights is None else torch.tensor(weights), head=head)
        result[f"{field['name']}_train_accuracy"] = fitted["train_accuracy"]
    model.train(was_training)
    result.update({"vectors_seconds": round(encoded, 1), "seconds": round(time.perf_counter() - started, 1)})
    logger.info("head probe: head trained on %d frozen sentence vectors (%s)", len(vectors), result)
    return result
