"""ONNX export of a trained model (optionally int8 dynamic quantisation), for the ONNX Runtime backend.

The training side (torch, transformers, onnx: the `train` extra); the graph it writes runs on the slim runtime
(ticket_router/backends.OnnxBackend). The graph includes the calibration temperature, so its
probabilities are the exported model's. Written to ``<model>/onnx/`` with ``onnx_manifest.json``, which ties it to
the model folder's manifest; the model folder's own manifest still verifies (it lists only its own files).
"""

from __future__ import annotations

from pathlib import Path

from ticket_router.atomic import atomic_path
from ticket_router.backends import VECTOR_OUTPUT, write_onnx_manifest
from ticket_router.contract import FIELD_OUTPUT
from ticket_router.manifest import ONNX_FOLDER

from .export import load_exported_model

# How the int8 graph is quantised, recorded in onnx_manifest.json. Dynamic quantisation (activations quantised per
# batch at run time), int8 weights with one scale per output channel: with one scale per tensor the 6-layer MiniLM
# router disagreed with PyTorch on ~2% of tickets (probabilities off by up to 0.85); per channel on 0.2% (measured,
# 1,644 tickets). reduce_range keeps the weights in 7 bits: on x86 CPUs without VNNI (AVX2 only) ONNX Runtime's u8s8
# kernels add pairs of 8-bit products in int16, which saturates with full-range weights (the parity test failed there
# with probabilities off by 0.09; with 7-bit weights it passes). VNNI and AMX CPUs accumulate in int32 and lose little
# from the eighth bit (benchmarks/RESULTS.md), so one graph routes alike on every x86 CPU.
INT8_QUANTIZATION = {"method": "dynamic", "weight_type": "int8", "per_channel": True, "reduce_range": True}


def export_onnx(model_dir: str | Path, output: str | Path | None = None, quantize: str | None = None,
                reduce_range: bool = True) -> Path:
    """Write ``<model>/onnx/model.onnx`` (or ``model.int8.onnx`` with ``quantize="int8"``) and its manifest.

    ``reduce_range=False`` (8-bit weights) exists to measure the difference (benchmarks/bench_inference.py); exports
    keep the default, which agrees with PyTorch on CPUs with and without VNNI (INT8_QUANTIZATION)."""
    if quantize not in (None, "int8"):
        raise ValueError(f"quantize: unsupported {quantize!r}; expected 'int8' or none")
    try:
        import torch
    except ImportError:
        raise ValueError("export-onnx needs the train extra (pip install 'ticket-classifier[train]')") from None
    model_dir = Path(model_dir)
    model, tokenizer = load_exported_model(model_dir)
    output = Path(output) if output is not None else model_dir / ONNX_FOLDER
    output.mkdir(parents=True, exist_ok=True)
    names = list(tokenizer.model_input_names)
    sample = tokenizer(["vpn keeps dropping"], ["since the update it disconnects every hour"], return_tensors="pt")
    axes = {name: {0: "batch", 1: "tokens"} for name in names}
    axes["logits"] = {0: "batch"}
    axes[VECTOR_OUTPUT] = {0: "batch"}
    fields = [FIELD_OUTPUT.format(i) for i in range(len(model.config.extra_fields))]  # one output per extra field
    for name in fields:
        axes[name] = {0: "batch"}

    class LogitsAndVectors(torch.nn.Module):
        """The calibrated logits and the sentence vectors (similar-ticket search), from one encoder pass."""

        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, *inputs):
            named = dict(zip(names, inputs))
            pooled = self.model.sentence_vectors(**named, windows=True)  # no branch on the sample's length
            logits = self.model.logits_from(pooled, named["input_ids"], named.get("attention_mask"))
            extra = self.model.field_logits_from(pooled, named["input_ids"], named.get("attention_mask")) \
                if fields else ()
            return (logits, pooled, *extra)

    fp32 = output / "model.onnx"
    with atomic_path(fp32) as partial:
        # The TorchScript-based exporter needs no extra packages and handles these encoders with dynamic shapes.
        torch.onnx.export(LogitsAndVectors(), tuple(sample[n] for n in names), str(partial), input_names=names,
                          output_names=["logits", VECTOR_OUTPUT, *fields], dynamic_axes=axes, opset_version=17,
                          dynamo=False)
    final, quantization = fp32, None
    if quantize == "int8":
        from onnxruntime.quantization import QuantType, quantize_dynamic

        final = output / "model.int8.onnx"
        quantization = {**INT8_QUANTIZATION, "reduce_range": bool(reduce_range)}
        with atomic_path(final) as partial:
            quantize_dynamic(str(fp32), str(partial), weight_type=QuantType.QInt8,
                             per_channel=quantization["per_channel"], reduce_range=quantization["reduce_range"])
    write_onnx_manifest(output, final, quantize, model_dir, quantization)
    return final
