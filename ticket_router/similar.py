"""Similar tickets: the training tickets nearest to a new one, by the cosine of the sentence vectors the model's head
reads (the pooled encoder output; custom_trainer/onnx_export.py gives the ONNX graph the same second output).

The index is optional (train.py ``similar_index``) and lives in the export as ``similar_index.npz``, listed and
hashed in its manifest: unit vectors in float16, each ticket's label id and its row in the training split, and its
text (at most ``TEXT_CHARS`` characters) only when the user opted in (``similar_texts``). Search is exact: one
matrix product over the whole index (benchmarks/bench_similar.py: 50,000 tickets on 2 cores). numpy only.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

INDEX_FILE = "similar_index.npz"
TEXT_CHARS = 300  # characters kept of each training ticket's text, when texts are opted in
MAX_K = 20  # most neighbours one query may ask for


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to length 1 (a zero row stays zero), in float32."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


def write_index(path: str | Path, vectors: np.ndarray, labels, rows, texts=None) -> dict:
    """Save the index; returns what the model card and metrics say about it."""
    vectors = unit_rows(vectors).astype(np.float16)
    arrays = {"vectors": vectors, "labels": np.asarray(labels, dtype=np.int32), "rows": np.asarray(rows, dtype=np.int64)}
    if texts is not None:
        arrays["texts"] = np.array([str(text)[:TEXT_CHARS] for text in texts], dtype=str)
    with open(path, "wb") as handle:
        np.savez_compressed(handle, **arrays)
    return {"tickets": int(len(vectors)), "dimensions": int(vectors.shape[1]), "dtype": "float16",
            "texts": texts is not None, "file": Path(path).name}


class SimilarIndex:
    """An export's index, ready to search (vectors held in float32 for the matrix product)."""

    def __init__(self, path: str | Path):
        with np.load(path, allow_pickle=False) as stored:
            self.vectors = stored["vectors"].astype(np.float32)
            self.labels = stored["labels"]
            self.rows = stored["rows"]
            self.texts = stored["texts"] if "texts" in stored.files else None
        if not (len(self.vectors) == len(self.labels) == len(self.rows)):
            raise ValueError(f"{path}: vectors, labels and rows differ in length")

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` nearest index rows of each query (cosine, best first): positions and similarities."""
        if not (isinstance(k, int) and 1 <= k <= MAX_K):
            raise ValueError(f"k must be an integer from 1 to {MAX_K}, got {k!r}")
        k = min(k, len(self.vectors))
        similarities = unit_rows(queries) @ self.vectors.T
        top = np.argpartition(-similarities, k - 1, axis=1)[:, :k]
        picked = np.take_along_axis(similarities, top, axis=1)
        order = np.argsort(-picked, axis=1, kind="stable")
        return np.take_along_axis(top, order, axis=1), np.take_along_axis(picked, order, axis=1)

    def neighbours(self, queries: np.ndarray, k: int, label_names: list[str]) -> list[list[dict]]:
        """For each query, its ``k`` nearest training tickets: row, queue, similarity (and text when stored)."""
        positions, similarities = self.search(queries, k)
        result = []
        for found, scores in zip(positions, similarities):
            result.append([{"row": int(self.rows[i]), "label": label_names[int(self.labels[i])],
                            "similarity": round(float(s), 4),
                            **({"text": str(self.texts[i])} if self.texts is not None else {})}
                           for i, s in zip(found, scores)])
        return result
