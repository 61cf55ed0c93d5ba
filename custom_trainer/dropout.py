"""Dropout masks drawn cheaply while training on a CPU.

Why: in a bf16 training step on a CPU (benchmarks/RESULTS.md, "Where a bf16 training step goes") drawing dropout masks
took 22.5% of the step on real tickets: `bernoulli_` draws one random number per element of every attention
probability matrix (batch x heads x length x length) and every hidden state, one at a time. Here the mask comes from
16-bit slices of 64-bit random words (four elements per draw), compared with a threshold: P(drop) is ``p`` rounded
to 1/65,536. Attention dropout happens inside scaled dot-product attention, whose CPU kernels draw with
`bernoulli_` too, so while training the encoder's attention runs :func:`attention_with_cheap_dropout` (the same
products, softmax and mask as SDPA's math kernel; with dropout 0, in evaluation, SDPA itself).

Not exact: the masks are other random numbers than `nn.Dropout`'s (same seed, same run, every time), so a model
trained with them differs from one trained without, as a model trained with another seed does. The mean gradient
is the same (benchmarks/dropout_gradients.py), yet validation macro-F1 was lower in all seven paired runs measured,
with no cause found: off by default (`cheap_dropout_masks`, RESULTS, issue 39). When on, `TicketTrainer` installs it
for the length of `train()` on a CPU only (CUDA's dropout kernels are fast already) and puts the plain modules back
afterwards: nothing of it reaches an export.
"""

from __future__ import annotations

import contextlib
import math

import torch
from torch import nn

ATTENTION_IMPLEMENTATION = "ticket_cheap_dropout"
_DRAW_LEVELS = 65536  # one draw: 16 random bits


def keep_mask(shape: tuple[int, ...], p: float, device: torch.device | str | None = None,
              generator: torch.Generator | None = None) -> torch.Tensor:
    """A bool mask of ``shape``, each element False (dropped) with probability ``p`` rounded to 1/65,536.

    Four elements share one 64-bit random word (torch.randint on the default generator, or ``generator``): 16 bits
    each, compared with ``p`` x 65,536 (shifted to int16's range)."""
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout probability must be in [0, 1), got {p!r}")
    count = math.prod(shape)
    words = torch.randint(-2**63, 2**63 - 1, ((count + 3) // 4,), dtype=torch.int64, device=device,
                          generator=generator)
    draws = words.view(torch.int16)[:count].view(shape)
    return draws >= -_DRAW_LEVELS // 2 + round(p * _DRAW_LEVELS)


class _MaskedDropout(torch.autograd.Function):
    """x times the 0/1 mask (in x's dtype, kept for the backward pass), then times 1 / (1 - p) as a Python float,
    as `F.dropout` computes it: the scale rounded to bf16 (1.109375 for p = 0.1) would shrink every kept element.
    The bool mask becomes 0/1 through uint8: multiplying by a bool tensor, or casting it, takes PyTorch's slow
    type-promoting path (about 6x slower than the cast from uint8 and the multiply here)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, p: float) -> torch.Tensor:
        mask = keep_mask(tuple(x.shape), p, x.device).view(torch.uint8).to(x.dtype)
        ctx.save_for_backward(mask)
        ctx.scale = 1.0 / (1.0 - p)
        return (x * mask).mul_(ctx.scale)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (mask,) = ctx.saved_tensors
        return (grad * mask).mul_(ctx.scale), None


def cheap_dropout(x: torch.Tensor, p: float, training: bool = True) -> torch.Tensor:
    """`F.dropout` with the mask of :func:`keep_mask`."""
    if not training or p == 0.0:
        return x
    return _MaskedDropout.apply(x, p)


class CheapDropout(nn.Dropout):
    """`nn.Dropout` (same ``p``, same train/eval behaviour) drawing its mask with :func:`keep_mask`."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return cheap_dropout(x, self.p, self.training)


def attention_with_cheap_dropout(module: nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                                 attention_mask: torch.Tensor | None, dropout: float = 0.0,
                                 scaling: float | None = None, **kwargs):
    """A transformers attention function (query, key, value: batch x heads x length x head size): softmax(q k^T x
    scaling + mask) with :func:`cheap_dropout`, times v, as SDPA's math kernel computes it. Without dropout
    (evaluation, or attention dropout 0) it is transformers' SDPA function itself."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    if dropout == 0.0 or kwargs.get("position_bias") is not None or getattr(module, "is_causal", False):
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      **kwargs)
    scaling = query.size(-1) ** -0.5 if scaling is None else scaling
    # SDPA's math kernel computes bf16 / fp16 attention on the CPU in fp32: its error against fp32 inputs is half of
    # what bf16 products and a bf16 softmax give (tests/test_dropout.py). The projections around it stay under
    # autocast.
    dtype = query.dtype
    with torch.autocast(query.device.type, enabled=False):
        query, key, value = query.float(), key.float(), value.float()
        scores = torch.matmul(query, key.transpose(-2, -1)) * scaling
        if attention_mask is not None:
            if attention_mask.dtype == torch.bool:  # transformers' SDPA masks: True where a token may be attended to
                scores = scores.masked_fill(~attention_mask, torch.finfo(scores.dtype).min)
            else:
                scores = scores + attention_mask
        weights = cheap_dropout(torch.softmax(scores, dim=-1), dropout, True)
        output = torch.matmul(weights, value)
    return output.to(dtype).transpose(1, 2).contiguous(), None


def _register_attention() -> None:
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(ATTENTION_IMPLEMENTATION, attention_with_cheap_dropout)
    # Without a mask function of its own, transformers builds no padding mask for an unknown implementation.
    AttentionMaskInterface.register(ATTENTION_IMPLEMENTATION, sdpa_mask)


@contextlib.contextmanager
def cheap_dropout_masks(model: nn.Module, enabled: bool = True):
    """While inside: every `nn.Dropout` of ``model`` is a :class:`CheapDropout` of the same ``p``, and encoders that
    attend through transformers' SDPA function attend through :func:`attention_with_cheap_dropout`. Restored on
    exit (also on an error), so checkpoints, the export and ONNX see the plain modules."""
    if not enabled:
        yield 0
        return
    _register_attention()
    swapped = []
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is nn.Dropout:
                cheap = CheapDropout(child.p, child.inplace)
                cheap.train(child.training)
                setattr(parent, name, cheap)
                swapped.append((parent, name, child))
    configs = {id(m.config): m.config for m in model.modules()
               if getattr(getattr(m, "config", None), "_attn_implementation", None) == "sdpa"}
    for config in configs.values():
        config._attn_implementation = ATTENTION_IMPLEMENTATION
    try:
        yield len(swapped)
    finally:
        for config in configs.values():
            config._attn_implementation = "sdpa"
        for parent, name, child in swapped:
            child.train(getattr(parent, name).training)
            setattr(parent, name, child)
