"""Where the logits come from: PyTorch (the `train` extra) or ONNX Runtime (the slim install).

A backend takes a padded batch of int64 arrays (ticket_router/encoding.py) and returns calibrated logits (the
export divides by its temperature inside the model and inside the ONNX graph). `Router` composes one of them with
the encoder and the rule.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from .contract import EXTRA_FIELDS_KEY, FIELD_OUTPUT, MODEL_CLASSES_GROUP
from .manifest import ONNX_FOLDER, read_json, sha256_of

BACKENDS = ("torch", "onnx")
ONNX_MANIFEST = "onnx_manifest.json"
VECTOR_OUTPUT = "sentence_vector"  # the ONNX graph's second output (custom_trainer/onnx_export.py)


class TorchBackend:
    """The exported model on PyTorch, in fp32, without autograd.

    BERT-family and DistilBERT exports run through `ticket_router.torch_model` (torch and safetensors only, no
    transformers to import: seconds less per process); anything else through transformers' `from_pretrained`.
    ``model`` is the transformers model either way, loaded when first asked for (the stock pipeline of `evaluate`)."""

    name = "torch"

    def __init__(self, model_dir: str | Path, threads: int | None = None, config: dict | None = None):
        """``config``: the export's config.json when the caller has read it already (`Router` has)."""
        try:
            import torch
        except ImportError:
            raise ValueError("the PyTorch backend needs the train extra (pip install 'ticket-classifier[train]'); "
                             "the slim install routes an ONNX export: add --onnx") from None
        from .torch_model import TicketClassifierForward, unsupported_reason

        self.threads = threads
        self._torch = torch
        self.model_dir = Path(model_dir)
        self._model = None
        if config is None:
            config = read_json(self.model_dir / "config.json", "model config")
        self.fallback_reason = unsupported_reason(self.model_dir, config)
        if self.fallback_reason is None:
            self._forward = TicketClassifierForward(self.model_dir, config).outputs
        else:
            model = self.model

            def forward(**inputs):
                pooled = model.sentence_vectors(**inputs)
                logits = model.logits_from(pooled, inputs["input_ids"], inputs.get("attention_mask"))
                fields = (model.field_logits_from(pooled, inputs["input_ids"], inputs.get("attention_mask"))
                          if getattr(model, "head_fields", None) else ())
                return logits, pooled, fields

            self._forward = forward
        self.input_names = ("input_ids", "attention_mask", "token_type_ids")

    @property
    def model(self):
        """The export as transformers loads it (`AutoModelForSequenceClassification`), in eval mode."""
        if self._model is None:
            try:
                from transformers import AutoModelForSequenceClassification
            except ImportError:
                raise ValueError("this export needs transformers (pip install 'ticket-classifier[train]')") from None
            register_model_classes()
            self._model = AutoModelForSequenceClassification.from_pretrained(self.model_dir).eval()
        return self._model

    @contextmanager
    def scoring(self):
        """``threads`` for the calls made inside, then the process's own count again: torch has one thread count
        for the whole process, and a router should not change it for the code around it."""
        if not self.threads:
            yield
            return
        before = self._torch.get_num_threads()
        self._torch.set_num_threads(self.threads)
        try:
            yield
        finally:
            self._torch.set_num_threads(before)

    def outputs(self, batch: dict[str, np.ndarray], vectors: bool = False):
        """Logits, the sentence vectors (similar-ticket search; None unless asked for) and each extra field's
        logits, from one forward pass."""
        with self._torch.inference_mode():
            inputs = {name: self._torch.from_numpy(batch[name]) for name in self.input_names}
            logits, pooled, fields = self._forward(**inputs)
            return (logits.float().numpy(), pooled.float().numpy() if vectors else None,
                    [field.float().numpy() for field in fields])

    def logits(self, batch: dict[str, np.ndarray]) -> np.ndarray:
        return self.outputs(batch)[0]

    def logits_and_vectors(self, batch: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Logits and sentence vectors (similar-ticket search) from one forward pass."""
        return self.outputs(batch, vectors=True)[:2]


def register_model_classes() -> None:
    """Load the model classes the training side registers as entry points (custom_trainer: loading it registers
    the ticket classifier with transformers' Auto classes), without this package naming it."""
    from importlib.metadata import entry_points

    found = entry_points(group=MODEL_CLASSES_GROUP)
    if not found:
        raise ValueError(f"no model classes registered ({MODEL_CLASSES_GROUP}); install the train extra "
                         "(pip install 'ticket-classifier[train]')")
    for entry in found:
        entry.load()


class OnnxBackend:
    """The graph of ``<model>/onnx/`` (written by custom_trainer/onnx_export.py) on ONNX Runtime's CPU provider,
    after checking it is the one exported from this model folder."""

    name = "onnx"

    def __init__(self, model_dir: str | Path, onnx_dir: str | Path | None = None, threads: int | None = None):
        try:
            import onnxruntime as ort
        except ImportError:
            raise ValueError("the ONNX backend needs onnxruntime (pip install ticket-classifier)") from None
        model_dir = Path(model_dir)
        onnx_dir = Path(onnx_dir) if onnx_dir is not None else model_dir / ONNX_FOLDER
        manifest_path = onnx_dir / ONNX_MANIFEST
        if not manifest_path.is_file():
            raise ValueError(f"{onnx_dir}: no ONNX export; run `ticket-classifier export-onnx --model {model_dir}` "
                             "(with the train extra installed)")
        manifest = read_json(manifest_path, "ONNX manifest")
        name = manifest.get("file")
        if not isinstance(name, str) or Path(name).name != name:
            raise ValueError(f"{manifest_path}: 'file' must name a file in {onnx_dir}, got {name!r}")
        graph = onnx_dir / name
        if not graph.is_file() or sha256_of(graph) != manifest.get("sha256"):
            raise ValueError(f"{graph}: missing or does not match {ONNX_MANIFEST}; export again")
        if manifest.get("model_manifest_sha256") != sha256_of(model_dir / "manifest.json"):
            raise ValueError(f"{onnx_dir}: exported from another version of {model_dir}; export again")
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(graph), options, providers=["CPUExecutionProvider"])
        self.input_names = tuple(i.name for i in self.session.get_inputs())
        self.quantize = manifest.get("quantize")
        config = read_json(model_dir / "config.json", "model config")
        self.field_count = len(config.get(EXTRA_FIELDS_KEY) or [])
        self.quantization = manifest.get("quantization")  # how an int8 graph was made (None: fp32, or older exports)

    @contextmanager
    def scoring(self):
        """Nothing to set: the session was made with its thread count."""
        yield

    def outputs(self, batch: dict[str, np.ndarray], vectors: bool = False):
        """Logits, the sentence vectors (None unless asked for) and each extra field's logits, from one run of the
        graph; graphs exported before vectors (or before extra fields) have none."""
        available = {output.name for output in self.session.get_outputs()}
        if vectors and VECTOR_OUTPUT not in available:
            raise ValueError("this ONNX export has no sentence vectors (exported before similar-ticket search); "
                             "run `ticket-classifier export-onnx` again")
        fields = [FIELD_OUTPUT.format(i) for i in range(self.field_count)]
        if any(name not in available for name in fields):
            raise ValueError("this ONNX export has no outputs for the model's extra fields (exported before them); "
                             "run `ticket-classifier export-onnx` again")
        names = ["logits", *([VECTOR_OUTPUT] if vectors else []), *fields]
        results = self.session.run(names, {name: batch[name] for name in self.input_names})
        return results[0], results[1] if vectors else None, list(results[2 if vectors else 1:])

    def logits(self, batch: dict[str, np.ndarray]) -> np.ndarray:
        return self.session.run(["logits"], {name: batch[name] for name in self.input_names})[0]

    def logits_and_vectors(self, batch: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Logits and sentence vectors from one run of the graph; graphs exported before vectors have none."""
        return self.outputs(batch, vectors=True)[:2]


def write_onnx_manifest(onnx_dir: Path, graph: Path, quantize: str | None, model_dir: Path,
                        quantization: dict | None = None) -> None:
    from .atomic import write_text

    manifest = {"file": graph.name, "quantize": quantize, "quantization": quantization, "sha256": sha256_of(graph),
                "model_manifest_sha256": sha256_of(model_dir / "manifest.json")}
    write_text(onnx_dir / ONNX_MANIFEST, json.dumps(manifest, indent=2) + "\n")
