"""Class-weighted focal loss (Lin et al., 2017) as pure functions.

Kept free of project imports: this file travels with the exported model's code.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

IGNORE_INDEX = -100


def focal_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    alpha: torch.Tensor | None = None,
    gamma: float = 2.0,
    num_items_in_batch: int | torch.Tensor | None = None,
) -> torch.Tensor:
    """``alpha[y] * (1 - p_y) ** gamma * -log p_y``, averaged over the labelled items.

    Computed in float32 whatever the logits' dtype, so fp16 autocast cannot overflow it. With
    ``num_items_in_batch`` (the labelled items of a whole optimizer step, counted by the Trainer across
    gradient-accumulation micro-batches) the sum is divided by that count instead of this batch's size, so
    2 x 16 with accumulation gives the same update as 1 x 32.
    """
    logits = logits.float()
    valid = labels != IGNORE_INDEX
    safe_labels = labels.clamp(min=0)
    log_pt = F.log_softmax(logits, dim=-1).gather(-1, safe_labels.unsqueeze(-1)).squeeze(-1)
    pt = log_pt.exp()
    loss = -((1.0 - pt).clamp(min=0.0) ** gamma) * log_pt
    if alpha is not None:
        loss = alpha.to(device=loss.device, dtype=loss.dtype)[safe_labels] * loss
    loss = loss * valid
    if num_items_in_batch is None:
        return loss.sum() / valid.sum().clamp(min=1)
    return loss.sum() / num_items_in_batch


# Each class_weighting as the power of the inverse class frequency (0: no class weights at all).
CLASS_WEIGHT_POWERS = {"sqrt": 0.5, "inverse": 1.0, "none": 0.0}
CLASS_WEIGHTINGS = tuple(CLASS_WEIGHT_POWERS)


def class_weights(labels, num_classes: int, power: float = 1.0) -> torch.Tensor:
    """Inverse class frequency to the ``power`` (1: inverse, 0.5: its square root), normalised to sum to
    ``num_classes`` (so balanced data gives all ones)."""
    counts = torch.bincount(torch.as_tensor(list(labels), dtype=torch.long), minlength=num_classes).double()
    if len(counts) > num_classes:
        raise ValueError(f"label id {len(counts) - 1} is out of range for {num_classes} classes")
    missing = torch.nonzero(counts == 0).flatten().tolist()
    if missing:
        raise ValueError(f"class id(s) {missing} never occur in the training labels; class weights are undefined")
    inverse = counts ** -power
    return (inverse / inverse.sum() * num_classes).float()
