"""`Router`: an exported ticket classifier that scores and routes tickets, on PyTorch or ONNX Runtime.

    router = Router("outputs/realistic/model", backend="onnx")
    router.route(["VPN drops"], ["since the update it disconnects every hour"])
    -> [{"label": "Network", "score": 0.97, "routing_score": 0.97, "top3": [...], "route": "auto",
         "prediction_set": [...]}]   # prediction_set: when the export has conformal sets

The folder is checked against its manifest before anything is loaded; the rule (ticket_router/rule.py) comes from
its config.json, the tokenizer from its tokenizer.json, the logits from the chosen backend.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .backends import BACKENDS, OnnxBackend, TorchBackend
from .encoding import TicketEncoder
from .manifest import read_json, sha256_of, verify_export
from .contract import EXTRA_FIELDS_KEY, PREDICTION_SETS_KEY
from .prediction_sets import prediction_sets, stored_quantile
from .similar import INDEX_FILE, SimilarIndex
from .rule import RoutingRule, label_names, softmax, top_k

@dataclass
class Scores:
    """What one pass over some tickets gives: the routed field's probabilities, the sentence vectors (when asked
    for) and each extra field's probabilities ({name: array})."""

    probabilities: np.ndarray
    vectors: np.ndarray | None = None
    fields: dict = field(default_factory=dict)

    def rows(self, part) -> "Scores":
        return Scores(self.probabilities[part], None if self.vectors is None else self.vectors[part],
                      {name: values[part] for name, values in self.fields.items()})


ENCODE_CHUNK = 4096  # tickets encoded at once: sorting by length works within a chunk, memory stays bounded


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class Router:
    """``workers``: batches scored at once, each on one core (``threads`` is then 1). Many small batches, as when
    routing a file, keep the cores busier this way than one batch at a time over all cores, whose small operations
    leave threads waiting (5,000 short tickets: 18% faster on ONNX Runtime, 11% on PyTorch, benchmarks/RESULTS.md).
    One batch at a time (``workers=1``, the service's micro-batches) uses ``threads`` cores for each operation (default:
    the backend's own choice, every core)."""

    def __init__(self, model_dir: str | Path, backend: str = "torch", onnx_dir: str | Path | None = None,
                 threads: int | None = None, workers: int = 1):
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        if not (isinstance(workers, int) and workers >= 1):
            raise ValueError(f"workers must be an integer >= 1, got {workers!r}")
        self.workers = workers
        self._pool = None  # the workers' threads, made on first use and kept: the service scores many small calls
        if workers > 1:
            threads = 1
        # `model` is a link to the current version (ticket_router/atomic.py): resolved once, so every file is read
        # from one version even if `calibrate` or a new training run switches the link meanwhile.
        self.model_dir = Path(model_dir).resolve()
        self.manifest = verify_export(self.model_dir)
        # manifest.json hashes every file of the export: its own hash names this exact version (logs, /info, metrics).
        self.fingerprint = sha256_of(self.model_dir / "manifest.json")[:16]
        # The weights alone (a re-certified version keeps them): the hashes the manifest lists for its weight files.
        weights = sorted(f"{name}:{digest}" for name, digest in (self.manifest.get("files") or {}).items()
                         if name.endswith((".safetensors", ".bin")))
        self.weights_fingerprint = hashlib.sha256("\n".join(weights).encode()).hexdigest()[:16]
        self.config = read_json(self.model_dir / "config.json", "model config")
        self.labels = label_names(self.config)
        self.max_length = int(self.config.get("max_input_length") or 128)
        self.rule = RoutingRule.from_config(self.config)
        # q of the conformal sets; None: the export has none (trained without a calibration split, or before sets).
        stored = self.config.get(PREDICTION_SETS_KEY)
        self.set_quantile = None if stored is None else stored_quantile(stored)
        self.set_alpha = (stored or {}).get("alpha")
        self._similar_path = self.model_dir / INDEX_FILE  # hashed in the manifest, checked above
        self._similar_index = None  # loaded when first searched: no start-up cost for routing alone
        self.encoder = TicketEncoder(self.model_dir, self.max_length)
        # Extra fields (queue, priority, type from one pass): name, labels, and the conformal sets' quantile.
        self.fields = [{"name": field["name"], "labels": list(field["labels"]),
                        "set_quantile": None if not field.get(PREDICTION_SETS_KEY) else stored_quantile(
                            field[PREDICTION_SETS_KEY]),
                        "set_alpha": (field.get(PREDICTION_SETS_KEY) or {}).get("alpha")}
                       for field in self.config.get(EXTRA_FIELDS_KEY) or []]
        self.backend = (OnnxBackend(self.model_dir, onnx_dir, threads) if backend == "onnx"
                        else TorchBackend(self.model_dir, threads, self.config))

    def predict_proba(self, subjects: Sequence, descriptions: Sequence, batch_size: int = 64,
                      progress: bool = False, cleaned: bool = False, vectors: bool = False):
        """Calibrated class probabilities of the routed field, one row per ticket, in input order; with
        ``vectors``, (probabilities, sentence vectors) from the same forward passes (similar-ticket search).
        `score` gives the extra fields' probabilities too."""
        scores = self.score(subjects, descriptions, batch_size, progress, cleaned, vectors)
        return (scores.probabilities, scores.vectors) if vectors else scores.probabilities

    def score(self, subjects: Sequence, descriptions: Sequence, batch_size: int = 64, progress: bool = False,
              cleaned: bool = False, vectors: bool = False) -> "Scores":
        """Every field's calibrated probabilities (and the sentence vectors when ``vectors``), from one encoder pass
        per batch.

        Tickets are encoded a chunk at a time (`ENCODE_CHUNK`), so memory stays bounded on any file, and scored in
        batches of similar length (sorted within the chunk), each padded to its longest. ``cleaned``: the texts are
        already `ticket_data.preprocessing.clean_text`'s output (saves cleaning them twice)."""
        if len(subjects) != len(descriptions):
            raise ValueError(f"{len(subjects)} subjects but {len(descriptions)} descriptions")
        probabilities = np.zeros((len(subjects), len(self.labels)), dtype=np.float32)
        field_probabilities = {field["name"]: np.zeros((len(subjects), len(field["labels"])), dtype=np.float32)
                               for field in self.fields}
        sentence_vectors = None
        with ExitStack() as stack:
            pool = None
            if self.workers > 1 and len(subjects) > batch_size:
                if self._pool is None:
                    self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="ticket-router")
                pool = self._pool
            bar = None
            if progress:
                from tqdm.auto import tqdm

                bar = stack.enter_context(tqdm(total=len(subjects), desc="Routing", unit="ticket"))
            stack.enter_context(self.backend.scoring())
            for chunk in range(0, len(subjects), ENCODE_CHUNK):
                encoded = self.encoder.encode(subjects[chunk : chunk + ENCODE_CHUNK],
                                              descriptions[chunk : chunk + ENCODE_CHUNK], cleaned)
                order = np.argsort([len(ids) for ids, _ in encoded], kind="stable")
                batches = [order[start : start + batch_size] for start in range(0, len(order), batch_size)]

                def score(rows):
                    padded = self.encoder.pad([encoded[i] for i in rows])
                    if not (vectors or self.fields):
                        return self.backend.logits(padded), None, ()
                    return self.backend.outputs(padded, vectors)

                # Both backends release the GIL while they compute; map keeps the batches' order (and cancels the
                # batches not started if this loop stops on an error).
                for rows, (logits, pooled, fields) in zip(batches, pool.map(score, batches) if pool else
                                                          map(score, batches)):
                    probabilities[chunk + rows] = softmax(logits)
                    for field, field_logits in zip(self.fields, fields):
                        field_probabilities[field["name"]][chunk + rows] = softmax(field_logits)
                    if pooled is not None:
                        if sentence_vectors is None:
                            sentence_vectors = np.zeros((len(subjects), pooled.shape[1]), dtype=np.float32)
                        sentence_vectors[chunk + rows] = pooled
                    if bar is not None:
                        bar.update(len(rows))
        return Scores(probabilities, sentence_vectors, field_probabilities)

    @property
    def has_similar_index(self) -> bool:
        """Whether the export has a similar-ticket index (without reading it)."""
        return self._similar_index is not None or self._similar_path.is_file()

    @property
    def similar_index(self) -> SimilarIndex | None:
        """The export's similar-ticket index (None: it has none), read on first use."""
        if self._similar_index is None and self._similar_path.is_file():
            self._similar_index = SimilarIndex(self._similar_path)
        return self._similar_index

    def similar_tickets(self, subjects: Sequence, descriptions: Sequence, k: int = 5,
                        batch_size: int = 64) -> list[list[dict]]:
        """For each ticket, the ``k`` most similar training tickets of the export's index (train.py
        ``similar_index``), with their queues and cosine similarity."""
        if self.similar_index is None:
            raise ValueError(f"{self.model_dir}: no similar-ticket index; train with --similar_index true")
        _, vectors = self.predict_proba(subjects, descriptions, batch_size, vectors=True)
        return self.similar_from_vectors(vectors, k)

    def similar_from_vectors(self, vectors: np.ndarray, k: int = 5) -> list[list[dict]]:
        """`similar_tickets` for sentence vectors already computed (`predict_proba(..., vectors=True)`)."""
        if self.similar_index is None:
            raise ValueError(f"{self.model_dir}: no similar-ticket index; train with --similar_index true")
        return self.similar_index.neighbours(vectors, k, self.labels)

    def route(self, subjects: Sequence, descriptions: Sequence, batch_size: int = 64) -> list[dict]:
        """For each ticket: the label, its probability, the routing score, the top 3, auto or triage, and the extra
        fields."""
        scores = self.score(subjects, descriptions, batch_size)
        return self.decisions(scores.probabilities, scores.fields)

    def prediction_sets(self, probabilities: np.ndarray) -> list[list[tuple[str, float]]] | None:
        """Each ticket's conformal prediction set (the queues that hold the right one with probability >= 1 -
        alpha), most probable first; None when the export has no sets."""
        if self.set_quantile is None:
            return None
        members = prediction_sets(probabilities, self.set_quantile)
        return [[(self.labels[i], float(row[i])) for i in np.argsort(-row, kind="stable") if chosen[i]]
                for row, chosen in zip(probabilities, members)]

    def field_decisions(self, field_probabilities: dict) -> list[dict]:
        """Each ticket's extra fields: {name: {"label", "score", "top3", "prediction_set"}} (the set when the
        field has one)."""
        per_field = []
        for field in self.fields:
            probabilities = field_probabilities[field["name"]]
            tops = top_k(probabilities, field["labels"])
            members = (prediction_sets(probabilities, field["set_quantile"]) if field["set_quantile"] is not None
                       else None)
            rows = []
            for i, top in enumerate(tops):
                entry = {"label": top[0][0], "score": round(top[0][1], 6),
                         "top3": [{"label": label, "score": round(p, 6)} for label, p in top]}
                if members is not None:
                    entry["prediction_set"] = [{"label": field["labels"][j], "score": round(float(probabilities[i, j]), 6)}
                                               for j in np.argsort(-probabilities[i], kind="stable") if members[i, j]]
                rows.append(entry)
            per_field.append(rows)
        return [{field["name"]: rows[i] for field, rows in zip(self.fields, per_field)}
                for i in range(len(per_field[0]) if per_field else 0)]

    def decisions(self, probabilities: np.ndarray, field_probabilities: dict | None = None) -> list[dict]:
        """The routed field's decision per ticket (label, score, routing score, top 3, route, prediction set) and,
        given the extra fields' probabilities, ``fields``: each one's label, score, top 3 and prediction set."""
        _, scores, routed = self.rule.decide(probabilities)
        sets = self.prediction_sets(probabilities)
        decisions = [
            {"label": top[0][0], "score": round(top[0][1], 6), "routing_score": round(float(score), 6),
             "top3": [{"label": label, "score": round(p, 6)} for label, p in top],
             "route": "auto" if auto else "triage"}
            for top, score, auto in zip(top_k(probabilities, self.labels), scores, routed)
        ]
        if sets is not None:
            for decision, members in zip(decisions, sets):
                decision["prediction_set"] = [{"label": label, "score": round(p, 6)} for label, p in members]
        if self.fields and field_probabilities:
            for decision, fields in zip(decisions, self.field_decisions(field_probabilities)):
                decision["fields"] = fields
        return decisions
