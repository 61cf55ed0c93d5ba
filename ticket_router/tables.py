"""Files of tickets in, routed files out (CSV, JSONL, Parquet): what `ticket-classifier predict --input` does.

Every input row comes back with its routing (rows with no text are kept and marked, not dropped); outputs are
written atomically (ticket_router/atomic.py), and CSV cells that a spreadsheet would run as a formula are escaped.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pandas as pd

from .atomic import atomic_path
from .rule import top_k

NO_TEXT = "no text: the subject and description are empty"
OUTPUT_SUFFIXES = (".csv", ".jsonl", ".json", ".parquet", ".pq")
# Cells that Excel and other spreadsheets evaluate as formulas (CSV injection, OWASP): ticket text such as
# "=HYPERLINK(...)" or "@SUM(...)" in a routed CSV would run when a service desk opens it.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def escape_formulas(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy whose text cells starting like a formula are prefixed with ' (shown as text, not evaluated)."""
    out = frame.copy()
    for column in out.columns:
        if pd.api.types.is_object_dtype(out[column]) or pd.api.types.is_string_dtype(out[column]):
            out[column] = out[column].map(
                lambda v: "'" + v if isinstance(v, str) and v.startswith(FORMULA_PREFIXES) else v)
    return out


def check_output(path: str | Path) -> Path:
    """The output path, refused before any work when its type is not one this module writes."""
    path = Path(path)
    if path.suffix.lower() not in OUTPUT_SUFFIXES:
        raise ValueError(f"{path}: unsupported output type {path.suffix!r}; use .csv, .jsonl or .parquet")
    if path.is_dir():
        raise ValueError(f"{path}: is a folder; give a file name")
    if path.suffix.lower() in (".parquet", ".pq") and importlib.util.find_spec("pyarrow") is None:
        raise ValueError(f"{path}: writing Parquet needs pyarrow (pip install pyarrow), or write .csv or .jsonl")
    return path


def read_input(path: str | Path, columns, extra_fields: str = "error") -> pd.DataFrame:
    """A CSV, JSONL, Parquet or Excel file of tickets as a frame, after checking it has ``columns``."""
    from ticket_data.readers import read_records

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"--input {path}: file not found")
    records, _, found = read_records(path, extra_fields=extra_fields)
    missing = [c for c in columns if c not in found]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}; expected {list(columns)}, found {found}")
    return pd.DataFrame.from_records(records, columns=found)


def frame_texts(frame: pd.DataFrame, text_columns):
    """The cleaned subjects and descriptions of a frame's rows, and which rows hold any text."""
    from ticket_data.loading import ticket_texts

    subjects, descriptions = ticket_texts(frame, text_columns)
    return subjects, descriptions, ((subjects != "") | (descriptions != "")).to_numpy()


def route_frame(router, frame: pd.DataFrame, text_columns, batch_size: int = 64, progress: bool = False) -> pd.DataFrame:
    """Every input row with predicted, score, routing_score, top3, route, error and, when the export has conformal
    sets, prediction_set (the queues joined by "; ", most probable first)."""
    subjects, descriptions, has_text = frame_texts(frame, text_columns)
    scores = None
    if has_text.any():
        scores = router.score(subjects[has_text].tolist(), descriptions[has_text].tolist(), batch_size=batch_size,
                              progress=progress, cleaned=True)
    return routed_frame(router, frame, has_text, None if scores is None else scores.probabilities,
                        None if scores is None else scores.fields)


def routed_frame(router, frame: pd.DataFrame, has_text: np.ndarray, probabilities: np.ndarray | None,
                 field_probabilities: dict | None = None) -> pd.DataFrame:
    """`route_frame`'s output from the probabilities of the rows that hold text (None when none does); with extra
    fields also ``predicted_<field>``, ``score_<field>`` and ``prediction_set_<field>`` for each."""
    out = frame.copy()
    for column in ("predicted", "score", "routing_score", "top3", "route", "error"):
        out[column] = None
    for field in getattr(router, "fields", []):
        for column in ("predicted", "score", "top3", "prediction_set"):
            out[f"{column}_{field['name']}"] = None
    if probabilities is not None and len(probabilities):
        labels = router.labels
        predicted, routing_scores, routed = router.rule.decide(probabilities)
        out.loc[has_text, "predicted"] = [labels[i] for i in predicted]
        out.loc[has_text, "score"] = probabilities.max(axis=-1).round(6)
        out.loc[has_text, "routing_score"] = routing_scores.round(6)
        out.loc[has_text, "top3"] = [json.dumps([[label, round(p, 6)] for label, p in row])
                                     for row in top_k(probabilities, labels)]
        out.loc[has_text, "route"] = np.where(routed, "auto", "triage")
        sets = router.prediction_sets(probabilities)
        if sets is not None:
            out["prediction_set"] = None
            out.loc[has_text, "prediction_set"] = ["; ".join(label for label, _ in members) for members in sets]
        if field_probabilities:
            per_ticket = router.field_decisions(field_probabilities)
            for field in router.fields:
                name = field["name"]
                rows = [ticket[name] for ticket in per_ticket]
                out.loc[has_text, f"predicted_{name}"] = [row["label"] for row in rows]
                out.loc[has_text, f"score_{name}"] = [row["score"] for row in rows]
                out.loc[has_text, f"top3_{name}"] = [json.dumps([[t["label"], t["score"]] for t in row["top3"]])
                                                     for row in rows]
                out.loc[has_text, f"prediction_set_{name}"] = ["; ".join(m["label"] for m in row["prediction_set"])
                                                               if "prediction_set" in row else None for row in rows]
    out.loc[~has_text, "route"] = "triage"
    out.loc[~has_text, "error"] = NO_TEXT
    return out


def write_table(frame: pd.DataFrame, path: str | Path, escape: bool = True) -> None:
    """Write ``frame`` to ``path`` (type from the suffix) atomically: never half a file. ``escape``: CSV cells that
    look like formulas get a leading ' (routed files, opened in spreadsheets); off for data written to train on,
    which must keep its values as they were."""
    path = check_output(path)
    suffix = path.suffix.lower()
    with atomic_path(path) as partial:
        if suffix == ".csv":
            (escape_formulas(frame) if escape else frame).to_csv(partial, index=False)
        elif suffix in (".jsonl", ".json"):
            frame.to_json(partial, orient="records", lines=True, force_ascii=False)
        else:
            frame.to_parquet(partial, index=False)
