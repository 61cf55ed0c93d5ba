"""The exported classifier's inference forward in plain PyTorch, for BERT-family and DistilBERT encoders.

Routing a file with the PyTorch backend spent more time starting than scoring small files: importing transformers
and the export's model code, then `from_pretrained`, took ~2.7 s of a 15 s run on 5,000 tickets (benchmarks/RESULTS.md).
The weights are plain tensors in ``model.safetensors``; the forward below is the same arithmetic as the training
side's `TicketClassifier` in eval mode (encoder, pooling, head, wide part, temperature), with the query, key and value
projections as one matrix product. It needs torch and safetensors only. `pool` and `wide_logits` are the one
definition of the pooling and of the wide part's forward: the training side's model calls them too.
tests/test_router_torch_model.py checks its logits against the transformers model's, and `TorchBackend` falls back
to transformers for any encoder or setting this file does not cover (`unsupported_reason` says which).
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from .contract import (CHUNK_KEY, EXTRA_FIELDS_KEY, FIELD_HEADS, HEAD_HIDDEN_LINEAR, HEAD_OUTPUT_LINEAR, HEAD_TAIL_KEY,
                       MODEL_TYPE, POOLING_KEY, TAIL_KEY, TEMPERATURE_KEY, WIDE_BUCKETS_KEY, WIDE_SCALE_KEY, hashed_bigrams)

WEIGHTS = "model.safetensors"
ACTIVATIONS = {
    "gelu": F.gelu,
    "gelu_new": lambda x: F.gelu(x, approximate="tanh"),
    "gelu_pytorch_tanh": lambda x: F.gelu(x, approximate="tanh"),
    "relu": F.relu,
}
# Where each architecture keeps its weights: the embeddings prefix, the layer prefix, and each piece within a layer.
LAYOUTS = {
    "bert": {
        "embeddings": "embeddings.", "layers": "encoder.layer.{}.",
        "query": "attention.self.query", "key": "attention.self.key", "value": "attention.self.value",
        "attention_out": "attention.output.dense", "attention_norm": "attention.output.LayerNorm",
        "ffn_in": "intermediate.dense", "ffn_out": "output.dense", "output_norm": "output.LayerNorm",
    },
    "distilbert": {
        "embeddings": "embeddings.", "layers": "transformer.layer.{}.",
        "query": "attention.q_lin", "key": "attention.k_lin", "value": "attention.v_lin",
        "attention_out": "attention.out_lin", "attention_norm": "sa_layer_norm",
        "ffn_in": "ffn.lin1", "ffn_out": "ffn.lin2", "output_norm": "output_layer_norm",
    },
}


def unsupported_reason(model_dir: str | Path, config: dict) -> str | None:
    """None when `TicketClassifierForward` reproduces this export; otherwise what it does not cover."""
    encoder = config.get("encoder_config") or {}
    kind = encoder.get("model_type")
    if config.get("model_type") != MODEL_TYPE:
        return f"model_type {config.get('model_type')!r} is not the project's ticket-classifier"
    if kind not in LAYOUTS:
        return f"encoder type {kind!r} (covered: {sorted(LAYOUTS)})"
    activation = encoder.get("hidden_act") if kind == "bert" else encoder.get("activation")
    if activation not in ACTIVATIONS:
        return f"activation {activation!r}"
    if kind == "bert" and encoder.get("position_embedding_type", "absolute") != "absolute":
        return f"position_embedding_type {encoder.get('position_embedding_type')!r}"
    if kind == "bert" and encoder.get("is_decoder"):
        return "a decoder encoder"
    if not (Path(model_dir) / WEIGHTS).is_file():
        return f"no single {WEIGHTS} (sharded or another format)"
    return None


def pool(hidden: torch.Tensor, attention_mask: torch.Tensor | None, pooling: str) -> torch.Tensor:
    """The sentence vector the head reads (contract.POOLINGS): the first token, or the mean of the real tokens."""
    if pooling == "cls":
        return hidden[:, 0]
    if attention_mask is None:
        return hidden.mean(dim=1)
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)


def to_windows(tensors: list, chunk: int) -> tuple[list, int]:
    """Each (batch, length) tensor as (batch x windows, chunk): padded on the right with zeros to a whole number of
    windows, then cut. Returns the windowed tensors and the number of windows."""
    length = tensors[0].shape[1]
    pad = (chunk - length % chunk) % chunk  # no Python branch on it: the ONNX export traces this with dynamic sizes
    out = []
    for tensor in tensors:
        out.append(None if tensor is None else F.pad(tensor, (0, pad)).reshape(-1, chunk))
    return out, None


def from_windows(hidden: torch.Tensor, mask: torch.Tensor, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The windows' token vectors back as (batch, windows x chunk, hidden), with their mask; a window of padding
    only (its attention is all masked and may give NaN) is zeroed, so pooling never reads it."""
    mask = mask.reshape(batch, -1)
    hidden = hidden.reshape(batch, -1, hidden.shape[-1])
    hidden = torch.where(mask.unsqueeze(-1).bool(), hidden, torch.zeros((), dtype=hidden.dtype))
    return hidden, mask


def pool_windows(encode, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids, chunk: int,
                 pooling: str) -> torch.Tensor:
    """Sentence vectors of tickets longer than ``chunk`` tokens: ``encode(ids, mask, token types)`` (the encoder,
    returning token vectors) runs on windows of ``chunk`` tokens, and `pool` runs over the real tokens of all of a
    ticket's windows (contract.CHUNK_KEY). A window of padding only attends to its first position, so no softmax is
    all masked; pooling never reads it."""
    batch = input_ids.shape[0]
    (ids, real, types), _ = to_windows([input_ids, attention_mask, token_type_ids], chunk)
    attend = real.clone()
    attend[:, 0] = 1
    hidden, mask = from_windows(encode(ids, attend, types), real, batch)
    return pool(hidden, mask, pooling)


def head_and_tail(tensors: list, attention_mask: torch.Tensor, window: int, tail: int) -> list:
    """Each (batch, length) tensor cut to at most ``window`` tokens (contract.HEAD_TAIL_KEY): a ticket with more than
    ``window`` real tokens keeps its first ``window - tail`` and its last ``tail`` real tokens (right padding, as the
    tokenizers pad), a shorter one is unchanged. One gather and no Python branch on the lengths, so the ONNX export
    traces it with dynamic sizes."""
    real = attention_mask.sum(dim=1, keepdim=True)
    positions = torch.arange(window, device=attention_mask.device)[: attention_mask.shape[1]].unsqueeze(0)
    shift = (real - window).clamp(min=0)  # 0 for a ticket that fits
    index = torch.where(positions < window - tail, positions, positions + shift)
    index = index.expand(attention_mask.shape[0], -1)
    return [None if tensor is None else tensor.gather(1, index) for tensor in tensors]


def wide_features(input_ids: torch.Tensor, attention_mask: torch.Tensor, vocab_size: int, buckets: int):
    """Feature index and weight (1 where the token, or both tokens of a bigram, are real) of every token unigram
    (its id) and adjacent-token bigram (hashed into ``buckets`` after the vocabulary)."""
    ids = input_ids.long()
    mask = attention_mask.to(torch.float32)
    bigrams = hashed_bigrams(ids[:, :-1], ids[:, 1:], vocab_size, buckets)
    return torch.cat([ids, bigrams], dim=1), torch.cat([mask, mask[:, :-1] * mask[:, 1:]], dim=1)


def wide_logits(input_ids: torch.Tensor, attention_mask: torch.Tensor, vocab_size: int, buckets: int,
                weight: torch.Tensor, bias: torch.Tensor, idf: torch.Tensor) -> torch.Tensor:
    """The wide part: sum over features of idf x weight, over the L2-norm of the idf values, plus the bias
    (``weight``: one row per feature; custom_trainer/wide.py fits it on the same features in sparse form)."""
    index, present = wide_features(input_ids, attention_mask, vocab_size, buckets)
    values = idf[index] * present
    norm = values.pow(2).sum(dim=1, keepdim=True).clamp(min=1e-12).sqrt()
    return (values.unsqueeze(-1) * weight[index]).sum(dim=1) / norm + bias


def _linear(weights: dict, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    return weights[f"{name}.weight"], weights[f"{name}.bias"]


class TicketClassifierForward:
    """Calibrated logits of an exported ticket classifier; call with int64 tensors (batch, length)."""

    def __init__(self, model_dir: str | Path, config: dict):
        reason = unsupported_reason(model_dir, config)
        if reason is not None:
            raise ValueError(f"{model_dir}: the plain PyTorch forward does not cover {reason}")
        encoder = config["encoder_config"]
        kind = encoder["model_type"]
        layout = LAYOUTS[kind]
        weights = load_file(str(Path(model_dir) / WEIGHTS))
        prefix = "encoder."
        self.hidden = encoder["hidden_size"] if kind == "bert" else encoder["dim"]
        self.heads = encoder["num_attention_heads"] if kind == "bert" else encoder["n_heads"]
        layer_count = encoder["num_hidden_layers"] if kind == "bert" else encoder["n_layers"]
        self.eps = encoder.get("layer_norm_eps", 1e-12)
        self.activation = ACTIVATIONS[encoder["hidden_act"] if kind == "bert" else encoder["activation"]]
        embeddings = prefix + layout["embeddings"]
        self.word = weights[embeddings + "word_embeddings.weight"]
        self.position = weights[embeddings + "position_embeddings.weight"]
        self.token_type = weights.get(embeddings + "token_type_embeddings.weight")  # DistilBERT has none
        self.embedding_norm = _linear(weights, embeddings + "LayerNorm")
        self.layers = []
        for index in range(layer_count):
            at = prefix + layout["layers"].format(index)
            parts = [_linear(weights, at + layout[name]) for name in ("query", "key", "value")]
            self.layers.append({
                # One (3 x hidden, hidden) product instead of three: the same dot products, fewer passes over x.
                "qkv": (torch.cat([w for w, _ in parts]).contiguous(), torch.cat([b for _, b in parts])),
                **{name: _linear(weights, at + layout[name])
                   for name in ("attention_out", "attention_norm", "ffn_in", "ffn_out", "output_norm")},
            })
        self.head_hidden = _linear(weights, HEAD_HIDDEN_LINEAR)
        self.head_out = _linear(weights, HEAD_OUTPUT_LINEAR)
        self.pooling = config.get(POOLING_KEY, "cls")
        self.chunk = int(config.get(CHUNK_KEY) or 0)
        self.head_tail = (int(config.get(HEAD_TAIL_KEY) or 0), int(config.get(TAIL_KEY) or 0))
        self.temperature = float(config.get(TEMPERATURE_KEY, 1.0))
        self.wide = None
        if config.get(WIDE_BUCKETS_KEY) and config.get(WIDE_SCALE_KEY):
            self.wide = {"weight": weights["wide.weight"], "bias": weights["wide_bias"], "idf": weights["wide_idf"],
                         "vocab_size": encoder["vocab_size"], "buckets": config[WIDE_BUCKETS_KEY]}
            self.wide_scale = float(config[WIDE_SCALE_KEY])
        # Extra fields (contract.EXTRA_FIELDS_KEY): a head each on the same sentence vector, a wide part and a
        # temperature of their own.
        self.fields = []
        for index, field in enumerate(config.get(EXTRA_FIELDS_KEY) or []):
            prefix_ = f"{FIELD_HEADS}.{index}."
            wide = None
            if config.get(WIDE_BUCKETS_KEY) and field.get("wide_scale"):
                wide = {"weight": weights[f"wide_fields.{index}.weight"], "bias": weights[f"wide_fields_bias.{index}"],
                        "idf": weights["wide_idf"], "vocab_size": encoder["vocab_size"],
                        "buckets": config[WIDE_BUCKETS_KEY]}
            self.fields.append({"hidden": _linear(weights, prefix_ + "1"), "out": _linear(weights, prefix_ + "4"),
                                "wide": wide, "wide_scale": float(field.get("wide_scale") or 0.0),
                                "temperature": float(field.get("calibration_temperature", 1.0))})

    def _norm(self, x: torch.Tensor, parameters: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        return F.layer_norm(x, (self.hidden,), parameters[0], parameters[1], self.eps)

    def _encode(self, input_ids, attention_mask, token_type_ids) -> torch.Tensor:
        batch, length = input_ids.shape
        x = self.word[input_ids] + self.position[:length]
        if self.token_type is not None:
            x = x + (self.token_type[token_type_ids] if token_type_ids is not None else self.token_type[0])
        x = self._norm(x, self.embedding_norm)
        # Padded keys are masked; a batch without padding (most, once sorted by length) needs no mask at all.
        mask = None if bool(attention_mask.all()) else attention_mask.bool()[:, None, None, :]
        head_size = self.hidden // self.heads
        for layer in self.layers:
            qkv = F.linear(x, *layer["qkv"]).view(batch, length, 3, self.heads, head_size).permute(2, 0, 3, 1, 4)
            attended = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2], attn_mask=mask,
                                                      scale=1.0 / math.sqrt(head_size))
            attended = attended.transpose(1, 2).reshape(batch, length, self.hidden)
            x = self._norm(F.linear(attended, *layer["attention_out"]) + x, layer["attention_norm"])
            inner = self.activation(F.linear(x, *layer["ffn_in"]))
            x = self._norm(F.linear(inner, *layer["ffn_out"]) + x, layer["output_norm"])
        return x

    def outputs(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None):
        """Calibrated logits, the sentence vectors the head read, and each extra field's calibrated logits, from one
        encoder pass."""
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        if self.chunk and input_ids.shape[1] > self.chunk:  # a long ticket: windows encoded alone, pooled together
            pooled = pool_windows(self._encode, input_ids, attention_mask, token_type_ids, self.chunk, self.pooling)
        elif self.head_tail[0]:  # a long ticket read by its two ends; the wide part below reads it all
            ids, mask, types = head_and_tail([input_ids, attention_mask, token_type_ids], attention_mask,
                                             *self.head_tail)
            pooled = pool(self._encode(ids, mask, types), mask, self.pooling)
        else:
            pooled = pool(self._encode(input_ids, attention_mask, token_type_ids), attention_mask, self.pooling)
        logits = F.linear(F.gelu(F.linear(pooled, *self.head_hidden)), *self.head_out)
        if self.wide is not None:
            logits = logits + self.wide_scale * wide_logits(input_ids, attention_mask, **self.wide)
        fields = []
        for field in self.fields:
            field_logits = F.linear(F.gelu(F.linear(pooled, *field["hidden"])), *field["out"])
            if field["wide"] is not None:
                field_logits = field_logits + field["wide_scale"] * wide_logits(input_ids, attention_mask,
                                                                                **field["wide"])
            fields.append(field_logits / field["temperature"])
        return logits / self.temperature, pooled, tuple(fields)

    def logits_and_vectors(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                           token_type_ids: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Calibrated logits and the sentence vectors the head read, from one encoder pass."""
        return self.outputs(input_ids, attention_mask, token_type_ids)[:2]

    def __call__(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                 token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        return self.logits_and_vectors(input_ids, attention_mask, token_type_ids)[0]
