"""Similar tickets (ticket_router/similar.py): exact cosine search, an export's index on both backends and in the
CLI, texts only when opted in."""

import json

import numpy as np
import pandas as pd
import pytest

from ticket_router.similar import INDEX_FILE, MAX_K, SimilarIndex, write_index


def test_search_is_exact_cosine_best_first(tmp_path):
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(500, 16))
    summary = write_index(tmp_path / "index.npz", vectors, rng.integers(0, 3, 500), np.arange(500) + 100)
    assert summary == {"tickets": 500, "dimensions": 16, "dtype": "float16", "texts": False, "file": "index.npz"}
    index = SimilarIndex(tmp_path / "index.npz")
    queries = rng.normal(size=(7, 16))
    positions, similarities = index.search(queries, 5)
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    expected = (queries / np.linalg.norm(queries, axis=1, keepdims=True)) @ unit.T
    for row in range(7):
        assert positions[row].tolist() == np.argsort(-expected[row])[:5].tolist()
        assert similarities[row] == pytest.approx(expected[row][positions[row]], abs=2e-3)  # float16 storage
    found = index.neighbours(queries[:1], 3, ["a", "b", "c"])[0]
    assert [n["row"] for n in found] == (positions[0][:3] + 100).tolist() and "text" not in found[0]
    for k in (0, MAX_K + 1, 2.0):
        with pytest.raises(ValueError, match="k must be an integer"):
            index.search(queries, k)


def test_texts_are_stored_only_when_asked_and_cut(tmp_path):
    write_index(tmp_path / "i.npz", np.eye(3), [0, 1, 2], [0, 1, 2], texts=["a" * 1000, "b", "c"])
    found = SimilarIndex(tmp_path / "i.npz").neighbours(np.array([[1.0, 0, 0]]), 1, ["x", "y", "z"])[0][0]
    assert found == {"row": 0, "label": "x", "similarity": 1.0, "text": "a" * 300}


def test_the_export_index_finds_the_same_neighbours_on_both_backends(tiny_onnx, tiny_run):
    from ticket_router.router import Router

    output_dir, metrics = tiny_run
    assert metrics["similar_index"]["texts"] and (tiny_onnx / INDEX_FILE).is_file()
    assert INDEX_FILE in json.loads((tiny_onnx / "manifest.json").read_text())["files"]
    assert "## Similar tickets" in (tiny_onnx / "README.md").read_text()
    tickets = pd.read_csv(output_dir / "reports" / "predictions.csv", keep_default_na=False).head(5)
    torch_router, onnx_router = Router(tiny_onnx), Router(tiny_onnx, backend="onnx")
    by_torch = torch_router.similar_tickets(tickets["subject"].tolist(), tickets["description"].tolist(), k=4)
    by_onnx = onnx_router.similar_tickets(tickets["subject"].tolist(), tickets["description"].tolist(), k=4)
    for mine, theirs in zip(by_torch, by_onnx):
        assert [n["similarity"] for n in mine] == sorted((n["similarity"] for n in mine), reverse=True)
        assert [n["similarity"] for n in mine] == pytest.approx([n["similarity"] for n in theirs], abs=2e-3)
        assert all(n["label"] in torch_router.labels and n["text"] for n in mine)
    # A ticket's own vector, put in an index, is its own nearest neighbour.
    encoded = torch_router.encoder.encode(tickets["subject"].tolist(), tickets["description"].tolist())
    logits, vectors = torch_router.backend.logits_and_vectors(torch_router.encoder.pad(encoded))
    np.testing.assert_allclose(logits, torch_router.backend.logits(torch_router.encoder.pad(encoded)), atol=1e-5)
    index = SimilarIndex.__new__(SimilarIndex)
    index.vectors = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    index.labels, index.rows, index.texts = np.zeros(5, dtype=int), np.arange(5), None
    assert index.search(vectors, 1)[0].ravel().tolist() == [0, 1, 2, 3, 4]


def test_predict_similar_from_the_command_line(tiny_onnx, capsys):
    from ticket_router.cli import main

    assert main(["predict", "--onnx", "--model", str(tiny_onnx), "--subject", "printer jam", "--similar", "3"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("similar ")]
    assert len(lines) == 3 and lines[0].startswith("similar 1. training row ")
