"""`ticket-classifier calibrate`: re-certify an export's routing rule on a desk's own labelled tickets, no retraining.

The model, its temperature and the sequence pre-registered on its validation tickets stay as they are; only the
thresholds change, certified on the given tickets (ticket_router/certification.py). The result is written as a new
version of the export (ticket_router/atomic.py: the ``model`` link switches by one rename; the previous version is kept
intact beside it): config.json (rule, guarantee, profile), the model card's "Routing" section (what the rule was
certified on), manifest.json, and the ONNX manifest when there is an ONNX export. numpy only: the slim install
calibrates an ONNX export.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path

import numpy as np

from .atomic import versioned_folder
from .backends import ONNX_MANIFEST
from .certification import certified_routing, parse_queue_targets, routing_profile, single_threshold
from .contract import PREDICTION_SETS_KEY
from .guarantee_card import routing_card
from .manifest import MANIFEST, ONNX_FOLDER, read_json, sha256_of, verify_export
from .prediction_sets import DEFAULT_SET_ALPHA, calibrate_sets

REWRITTEN = ("config.json", "README.md", MANIFEST, f"{ONNX_FOLDER}/{ONNX_MANIFEST}")


def labelled_tickets(frame, label_column: str, label_names: list[str]) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Label ids of a frame's rows (-1: a queue the model does not know, counted as misrouted when auto-routed), the
    mask of rows with a blank or missing label, and the unknown queues' names. Labels are cleaned as training cleans
    them (ticket_data.preprocessing.clean_label)."""
    import pandas as pd

    from ticket_data.preprocessing import clean_label

    labels = frame[label_column].map(lambda value: "" if pd.isna(value) else clean_label(value))
    blank = (labels == "").to_numpy()
    index = {name: i for i, name in enumerate(label_names)}
    ids = labels.map(lambda name: index.get(name, -1)).to_numpy()
    return ids, blank, sorted(set(labels[(ids == -1) & ~blank]))


def recalibrate(router, frame, text_columns, label_column: str, max_misrouting: float | None = None,
                delta: float | None = None, queue_targets=None, source: str = "", batch_size: int = 64,
                progress: bool = False) -> dict:
    """The new rule, guarantee and profile for ``router``'s export, certified on the labelled rows of ``frame``."""
    from ticket_data.loading import ticket_texts

    config = router.config
    stored = config.get("routing_guarantee") or {}
    validation_counts = stored.get("validation_counts")
    if not validation_counts:
        raise ValueError(f"{router.model_dir}: the export stores no validation counts to pre-register the test on "
                         "(trained before `calibrate` existed); retrain it")
    max_misrouting = stored.get("max_misrouting", 0.03) if max_misrouting is None else max_misrouting
    delta = stored.get("delta", 0.05) if delta is None else delta
    queue_targets = parse_queue_targets(stored.get("queue_max_misrouting") or {} if queue_targets is None
                                        else queue_targets, router.labels)
    ids, blank, unknown = labelled_tickets(frame, label_column, router.labels)
    subjects, descriptions = ticket_texts(frame, text_columns)
    no_text = ((subjects == "") & (descriptions == "")).to_numpy()
    labelled = ~no_text & ~blank
    # Certification counts independent tickets: a labelled text that comes again counts once.
    keys = (subjects + "\n" + descriptions).str.casefold()
    repeated = np.zeros(len(frame), dtype=bool)
    repeated[labelled] = keys[labelled].duplicated().to_numpy()
    use = labelled & ~repeated
    left_out = {"blank_labels": int((blank & ~no_text).sum()), "no_text": int(no_text.sum()),
                "repeated_texts": int(repeated.sum())}
    if not use.any():
        raise ValueError(f"{source}: no labelled ticket with text in column {label_column!r} to certify on")
    probabilities = router.predict_proba(subjects[use].tolist(), descriptions[use].tolist(), batch_size=batch_size,
                                         progress=progress, cleaned=True)
    labels = ids[use]
    certified_on = (f"{source}: {int(use.sum())} labelled tickets given to `ticket-classifier calibrate` on "
                    f"{time.strftime('%Y-%m-%d')}" + (f" (sha256 {sha256_of(source)[:12]})" if Path(source).is_file()
                                                      else ""))
    # Validation probabilities are not needed again: the sequence is pre-registered on the stored counts.
    rule, guarantee = certified_routing(None, None, probabilities, labels, router.labels, max_misrouting, delta,
                                        router.rule.triage_ids, queue_targets, certified_on,
                                        validation_counts=validation_counts)
    guarantee["left_out"] = left_out
    guarantee["unknown_queues"] = unknown  # kept: auto-routed, they count as misrouted
    guarantee["scored_with"] = {"backend": router.backend.name,
                                "quantization": getattr(router.backend, "quantization", None)}
    # The conformal sets are calibrated on the same tickets, at the export's alpha (each promise holds on its own).
    alpha = (config.get(PREDICTION_SETS_KEY) or {}).get("alpha") or DEFAULT_SET_ALPHA
    return {"rule": rule, "guarantee": guarantee, "profile": routing_profile(probabilities, labels, rule, router.labels),
            "prediction_sets": calibrate_sets(probabilities, labels, alpha), "tickets": int(use.sum())}


def write_recalibrated(model: str | Path, router, result: dict) -> Path:
    """A new version of the export at ``model`` (the link), with the new rule; the previous version stays intact."""
    source = router.model_dir  # the version the router read: resolved once, so nothing here mixes two versions
    rule, guarantee = result["rule"], result["guarantee"]
    config = read_json(source / "config.json", "model config")
    thresholds = dict(zip(router.labels, rule.label_thresholds))
    config.update(auto_route_thresholds=thresholds, routing_score=rule.score, routing_guarantee=guarantee,
                  routing_profile={**result["profile"], "split": "calibrate"},
                  auto_route_threshold=single_threshold(rule),
                  triage_labels=[router.labels[i] for i in rule.triage_ids],
                  **({PREDICTION_SETS_KEY: result["prediction_sets"]} if "prediction_sets" in result else {}))
    manifest = verify_export(source)  # what the router loaded, still whole
    onnx_manifest = source / ONNX_FOLDER / ONNX_MANIFEST
    onnx_valid = False
    if onnx_manifest.is_file():  # tied again below only if it is tied now: a stale ONNX export stays stale
        stored = read_json(onnx_manifest, "ONNX manifest")
        graph = source / ONNX_FOLDER / str(stored.get("file"))
        onnx_valid = (stored.get("model_manifest_sha256") == sha256_of(source / MANIFEST) and graph.is_file()
                      and sha256_of(graph) == stored.get("sha256"))
    card = (source / "README.md").read_text(encoding="utf-8") if (source / "README.md").is_file() else ""
    section = routing_card(guarantee, rule.score, thresholds, float(config.get("calibration_temperature") or 1.0))
    note = ("Re-certified by `ticket-classifier calibrate`; the figures above are the training run's, the rule below "
            "is this version's.\n\n")
    if "\n## Routing\n" in card:
        card = re.sub(r"\n## Routing\n.*?(?=\n## |\Z)", lambda _: f"\n## Routing\n\n{note}{section}\n", card, flags=re.S)
    else:
        card += f"\n## Routing\n\n{note}{section}\n"
    with versioned_folder(model) as staging:
        for path in sorted(source.rglob("*")):
            relative = path.relative_to(source).as_posix()
            if path.is_file() and relative not in REWRITTEN:
                (staging / relative).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, staging / relative)
        (staging / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        (staging / "README.md").write_text(card, encoding="utf-8")
        files = dict(manifest.get("files") or {})
        for name in ("config.json", "README.md"):
            files[name] = sha256_of(staging / name)
        history = list(manifest.get("calibrations") or [])
        history.append({"certified_on": guarantee["certified_on"], "previous_version": source.name,
                        "max_misrouting": guarantee["max_misrouting"], "delta": guarantee["delta"]})
        (staging / MANIFEST).write_text(json.dumps({**manifest, "files": files, "calibrations": history}, indent=2)
                                        + "\n", encoding="utf-8")
        if onnx_valid:  # the graph does not hold the thresholds: it stays valid, tied to the new manifest
            tied = {**read_json(onnx_manifest, "ONNX manifest"), "model_manifest_sha256": sha256_of(staging / MANIFEST)}
            (staging / ONNX_FOLDER / ONNX_MANIFEST).write_text(json.dumps(tied, indent=2) + "\n", encoding="utf-8")
        elif onnx_manifest.is_file():  # a stale export: left out rather than made to look current
            shutil.rmtree(staging / ONNX_FOLDER, ignore_errors=True)
        verify_export(staging)  # the new version checks out before the link switches to it
    return Path(model)
