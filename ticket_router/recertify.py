"""`ticket-classifier calibrate`: re-certify an export's routing rule on a desk's own labelled tickets, no retraining:
from a labelled file (`--input`) or from the decision log (`--decision_log`).

The model, its temperature and the sequence pre-registered on its validation tickets stay as they are; only the
thresholds change, certified on the given tickets (ticket_router/certification.py). The result is written as a new
version of the export (ticket_router/atomic.py: the ``model`` link switches by one rename, only if it still names the
version this command read; the previous version is kept intact beside it): config.json (rule, guarantee, profile),
the model card's "Routing" section (what the rule was certified on), manifest.json, and the ONNX manifest when there
is an ONNX export. numpy only: the slim install calibrates an ONNX export.

Which tickets may certify (left out and counted otherwise):
- tickets with text and a final queue, each text once;
- not a ticket the export trained on or chose anything with (its train and validation splits, `seen_tickets.npy`);
- from the log, only tickets a person decided (they went to triage; an auto-routed ticket's final queue is usually
  the model's own answer), in two groups certified apart and joined by Bonferroni: the tickets the rule in force
  auto-routed, through their audit sample (`serve --audit_rate`), and the tickets it sent to triage. The new rule
  routes a ticket only at a threshold both groups certify, so its misrouting is at most the target in each group and
  hence overall;
- with ``menu_share``, a fixed part of the tickets (by text hash) is held back for the menu and never certifies: a
  target read off a menu must not be certified on the tickets that showed it.

Repeated looks at a growing log: every certification from the log uses all its eligible tickets, and the k-th look
(counted in the log's ``looks`` table) spends delta x 6 / (pi^2 k^2) of the promise, so that all looks together hold
with probability >= 1 - delta (the shares sum to delta): 61% of delta at the first look, 15% at the second.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import time
from pathlib import Path

import numpy as np

from .atomic import versioned_folder
from .backends import ONNX_MANIFEST
from .certification import (certified_routing, families_of, frontier, parse_queue_targets, preregister_score,
                            routing_profile, single_threshold)
from .contract import PREDICTION_SETS_KEY, hash_prefix64, ticket_text_sha256
from .guarantee_card import routing_card
from .manifest import MANIFEST, ONNX_FOLDER, read_json, sha256_of, verify_export
from .prediction_sets import DEFAULT_SET_ALPHA, calibrate_sets
from .rule import RoutingRule
from . import seen_tickets

REWRITTEN = ("config.json", "README.md", MANIFEST, f"{ONNX_FOLDER}/{ONNX_MANIFEST}")
MENU_BUCKETS = 1000


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


def look_delta(delta: float, look: int) -> float:
    """The share of delta the ``look``-th certification from a log spends: delta x 6 / (pi^2 look^2)."""
    return delta * 6.0 / (math.pi ** 2 * look ** 2)


def settings(router, max_misrouting, delta, queue_targets) -> dict:
    """The export's stored pre-registration, and the target, delta and queue targets (the export's by default)."""
    stored = router.config.get("routing_guarantee") or {}
    validation_counts = stored.get("validation_counts")
    if not validation_counts:
        raise ValueError(f"{router.model_dir}: the export stores no validation counts to pre-register the test on "
                         "(trained before `calibrate` existed); retrain it")
    return {"validation_counts": validation_counts,
            "max_misrouting": stored.get("max_misrouting", 0.03) if max_misrouting is None else max_misrouting,
            "delta": stored.get("delta", 0.05) if delta is None else delta,
            "queue_targets": parse_queue_targets(stored.get("queue_max_misrouting") or {} if queue_targets is None
                                                 else queue_targets, router.labels)}


def eligible(router, subjects, descriptions, usable: np.ndarray, menu_share: float = 0.0):
    """Of the ``usable`` tickets (cleaned texts), which may certify: each text once, none the export trained on or
    chose with, none of the held-back menu part. Returns (certify mask, menu mask, counts left out)."""
    hashes = np.array([ticket_text_sha256(s, d) for s, d in zip(subjects, descriptions)], dtype=object)
    seen = seen_tickets.load(router.model_dir)
    trained = np.zeros(len(hashes), dtype=bool)
    trained[usable] = seen_tickets.seen_mask(seen, hashes[usable])
    repeated = np.zeros(len(hashes), dtype=bool)
    first = {}
    for i in np.flatnonzero(usable & ~trained):
        repeated[i] = hashes[i] in first
        first.setdefault(hashes[i], i)
    menu = np.zeros(len(hashes), dtype=bool)
    if menu_share > 0:
        cut = int(round(menu_share * MENU_BUCKETS))
        menu = np.array([hash_prefix64(h) % MENU_BUCKETS < cut for h in hashes], dtype=bool) & usable & ~trained & ~repeated
    use = usable & ~trained & ~repeated & ~menu
    left_out = {"trained_or_validated": int(trained.sum()), "repeated_texts": int(repeated.sum()),
                "held_back_for_the_menu": int(menu.sum())}
    if seen is None:
        left_out["trained_or_validated"] = None  # unknown: the export keeps no list of its training tickets
    return use, menu, left_out


def counts_below(validation_counts: dict, score: str, bounds: list) -> dict:
    """Validation counts of the tickets a rule with per-queue ``bounds`` (threshold, or None: never routed) would not
    have auto-routed: what a group of triaged tickets looks like on validation, to pre-register its sequence on."""
    grid = np.asarray(validation_counts["grid"])
    routed = np.asarray(validation_counts[score]["routed"], dtype=np.int64).copy()
    errors = np.asarray(validation_counts[score]["errors"], dtype=np.int64).copy()
    for label, bound in enumerate(bounds):
        if bound is None:
            continue
        at = int(np.argmin(np.abs(grid - bound)))
        above = grid >= bound
        routed[:, label] = np.where(above, 0, routed[:, label] - routed[at, label])
        errors[:, label] = np.where(above, 0, errors[:, label] - errors[at, label])
    return {**validation_counts, score: {"routed": routed.tolist(), "errors": errors.tolist()}}


def certify_groups(router, groups: dict, setting: dict, delta: float, certified_on: str,
                   unsampled: dict | None = None, with_frontier: bool = True, below: dict | None = None,
                   score: str | None = None) -> tuple[RoutingRule, dict]:
    """One rule certified on each group of tickets apart at delta / groups (Bonferroni) and joined: a queue's
    threshold is the highest any group needs (never routed when a group certifies nothing for it). ``groups``:
    {name: (probabilities, labels)}; ``unsampled``: {name: count} of groups the population holds but no ticket of
    which may certify (then nothing is routed: the promise cannot be kept for them).

    ``below``: {group name: per-queue bounds} for a group of tickets the rule in force triaged, when that rule scored
    as this export does (same weights, backend and ``score``): no such ticket scores at or above its queue's bound,
    so at those thresholds the group routes nothing and holds any target. Its sequence is pre-registered on the
    validation tickets below the bounds, and where it certifies nothing the bound stands for it."""
    labels_names = router.labels
    triage = router.rule.triage_ids
    below = below or {}
    present = {name: group for name, group in groups.items() if len(group[1])}
    target, queue_targets = setting["max_misrouting"], setting["queue_targets"]
    total = sum(len(group[1]) for group in present.values())
    if not present or unsampled:
        rule, guarantee = certified_routing(None, None, None, [], labels_names, target, delta, triage, queue_targets,
                                            certified_on, validation_counts=setting["validation_counts"])
        why = ("; ".join(f"{count} tickets the rule in force auto-routed ({name}) and none a person decided: serve "
                         "with --audit_rate so that some are" for name, count in (unsampled or {}).items())
               or "no ticket may certify")
        guarantee["certified_on"] = f"nothing ({why})"
        return rule, guarantee
    level = delta / len(present)
    families = families_of(labels_names, target, triage, queue_targets)
    if score is None:
        score = preregister_score(setting["validation_counts"], families, level / max(len(families), 1), total)
    results, thresholds_by_group = {}, {}
    for name, (probabilities, labels) in present.items():
        bounds = below.get(name)
        counts = (counts_below(setting["validation_counts"], score, bounds) if bounds is not None
                  else setting["validation_counts"])
        results[name] = certified_routing(None, None, probabilities, labels, labels_names, target, level, triage,
                                          queue_targets, certified_on, validation_counts=counts, score=score,
                                          with_frontier=with_frontier and len(present) == 1)
        thresholds = list(results[name][0].label_thresholds)
        if bounds is not None:
            thresholds = [bound if bound is not None and (t is None or t > bound) else t
                          for t, bound in zip(thresholds, bounds)]
        thresholds_by_group[name] = thresholds
    thresholds = []
    for i in range(len(labels_names)):
        values = [group[i] for group in thresholds_by_group.values()]
        thresholds.append(None if any(v is None for v in values) else max(values))
    rule = RoutingRule(tuple(thresholds), score, tuple(sorted(int(i) for i in triage)))
    probabilities = np.concatenate([group[0] for group in present.values()])
    labels = np.concatenate([group[1] for group in present.values()])
    stats = rule.stats(probabilities, labels)
    guarantee = {**next(iter(results.values()))[1], "delta": delta, "calibration_size": int(total),
                 "calibration": {"coverage": stats["coverage"], "misrouting": stats["misrouting"],
                                 "auto_routed": stats["auto_routed"]}}
    if len(present) > 1 or below:
        guarantee.update(level_per_group=level, families=[], groups={
            name: {"tickets": int(len(present[name][1])), "families": g["families"],
                   "calibration": g.get("calibration"), "below_the_rule_in_force": name in below}
            for name, (_, g) in results.items()})
        for name, (_, g) in results.items():
            guarantee["families"] += [{**family, "group": name} for family in g["families"]]
        guarantee["frontier"] = frontier(probabilities, labels, setting["validation_counts"], labels_names, delta,
                                         triage, queue_targets) if with_frontier else []
    return rule, guarantee


def triage_bounds(router, versions: dict, fingerprints) -> list | None:
    """Per queue, the highest threshold the rules in force had while these triaged tickets were logged (None: a
    queue some rule never routed), when every one of those versions scored as ``router`` does (same weights, backend
    and routing score); None when one did not (the tickets are then taken as they come, with no bound)."""
    from .decision_log.store import version_record

    mine = version_record(router)
    bounds = None
    for fingerprint in set(fingerprints):
        version = versions.get(fingerprint)
        if version is None or version["weights_sha256"] != mine["weights_sha256"] or \
                version["backend"] != mine["backend"] or version["rule"]["score"] != router.rule.score:
            return None
        rule = [version["rule"]["thresholds"].get(name) for name in router.labels]
        bounds = rule if bounds is None else [None if a is None or b is None else max(a, b)
                                              for a, b in zip(bounds, rule)]
    return bounds


def finish(router, rule, guarantee, probabilities, labels, left_out, unknown, menu=None) -> dict:
    """The result `write_recalibrated` writes: rule, guarantee (with what was left out), profile and sets."""
    guarantee["left_out"] = left_out
    guarantee["unknown_queues"] = unknown  # kept: auto-routed, they count as misrouted
    guarantee["scored_with"] = {"backend": router.backend.name,
                                "quantization": getattr(router.backend, "quantization", None)}
    alpha = (router.config.get(PREDICTION_SETS_KEY) or {}).get("alpha") or DEFAULT_SET_ALPHA
    result = {"rule": rule, "guarantee": guarantee, "tickets": int(len(labels)),
              "profile": routing_profile(probabilities, labels, rule, router.labels) if len(labels) else None}
    if len(labels):
        # The conformal sets are calibrated on the same tickets, at the export's alpha (each promise holds on its own).
        result["prediction_sets"] = calibrate_sets(probabilities, labels, alpha)
    if menu is not None:
        result["menu"] = menu
    return result


def menu_rows(router, setting, probabilities, labels) -> list[dict]:
    """The frontier of targets on the held-back part (what `--dry_run --menu_share` prints)."""
    if not len(labels):
        return []
    return frontier(probabilities, labels, setting["validation_counts"], router.labels, setting["delta"],
                    router.rule.triage_ids, setting["queue_targets"])


def recalibrate(router, frame, text_columns, label_column: str, max_misrouting: float | None = None,
                delta: float | None = None, queue_targets=None, source: str = "", batch_size: int = 64,
                progress: bool = False, menu_share: float = 0.0) -> dict:
    """The new rule, guarantee and profile for ``router``'s export, certified on the labelled rows of ``frame``."""
    from ticket_data.loading import ticket_texts

    setting = settings(router, max_misrouting, delta, queue_targets)
    ids, blank, unknown = labelled_tickets(frame, label_column, router.labels)
    subjects, descriptions = ticket_texts(frame, text_columns)
    no_text = ((subjects == "") & (descriptions == "")).to_numpy()
    usable = ~no_text & ~blank
    use, menu, left_out = eligible(router, subjects.tolist(), descriptions.tolist(), usable, menu_share)
    left_out = {"blank_labels": int((blank & ~no_text).sum()), "no_text": int(no_text.sum()), **left_out}
    if not (use | menu).any():
        raise ValueError(f"{source}: no labelled ticket with text in column {label_column!r} may certify "
                         f"(left out: {left_out})")
    scored = use | menu
    probabilities = router.predict_proba(subjects[scored].tolist(), descriptions[scored].tolist(),
                                         batch_size=batch_size, progress=progress, cleaned=True)
    in_use = use[scored]
    certified_on = (f"{source}: {int(use.sum())} labelled tickets given to `ticket-classifier calibrate` on "
                    f"{time.strftime('%Y-%m-%d')}" + (f" (sha256 {sha256_of(source)[:12]})" if Path(source).is_file()
                                                      else ""))
    rule, guarantee = certify_groups(router, {"labelled": (probabilities[in_use], ids[use])}, setting,
                                     setting["delta"], certified_on)
    menu_table = menu_rows(router, setting, probabilities[~in_use], ids[menu]) if menu_share > 0 else None
    return finish(router, rule, guarantee, probabilities[in_use], ids[use], left_out, unknown, menu_table)


def recertify_from_log(router, log, max_misrouting: float | None = None, delta: float | None = None,
                       queue_targets=None, batch_size: int = 64, progress: bool = False,
                       menu_share: float = 0.0, only_rows=None) -> dict:
    """The new rule certified on the log's person-decided tickets (module docstring): two groups, the k-th look's
    share of delta. ``only_rows``: log row ids that may certify (`promote`'s certification part). The result also
    carries the log rows used (``used_ids``) and the look number."""
    from ticket_data.preprocessing import clean_label, clean_text

    from .decision_log.tickets import has_text, person_decided, read_frame
    from .decision_log.schema import decisions, looks

    setting = settings(router, max_misrouting, delta, queue_targets)
    frame = person_decided(log)
    if only_rows is not None:
        frame = frame[frame["id"].isin(set(only_rows))].reset_index(drop=True)
    auto_by_rule = read_frame(log, decisions.c.rule_route == "auto", columns=("id", "audit"))
    text = has_text(frame).to_numpy()
    subjects = [clean_text(v) for v in frame["subject"]]
    descriptions = [clean_text(v) for v in frame["description"]]
    blank_text = np.array([not (s or d) for s, d in zip(subjects, descriptions)], dtype=bool)
    usable = text & ~blank_text
    use, menu, left_out = eligible(router, subjects, descriptions, usable, menu_share)
    left_out = {"hash_only": int((~text).sum()), "no_text": int((text & blank_text).sum()), **left_out}
    with log.engine.connect() as connection:
        from sqlalchemy import func, select

        earlier = connection.execute(select(func.count()).select_from(looks).where(looks.c.kind == "certify")).scalar()
    look = int(earlier or 0) + 1
    spent = look_delta(setting["delta"], look)
    index = {name: i for i, name in enumerate(router.labels)}
    finals = frame["final_queue"].map(clean_label)
    ids = finals.map(lambda name: index.get(name, -1)).to_numpy()
    unknown = sorted(set(finals[(ids == -1)]))
    scored = use | menu
    log_versions = log.versions()
    probabilities = logged_or_scored(router, frame, scored, subjects, descriptions, log_versions, batch_size, progress)
    in_use = use[scored]
    audited = (frame["rule_route"] == "auto").to_numpy()  # went to triage although the rule said auto: the audit
    triaged_name = "triaged by the rule in force"
    groups = {"audited (auto-routed by the rule in force)": (probabilities[in_use & audited[scored]], ids[use & audited]),
              triaged_name: (probabilities[in_use & ~audited[scored]], ids[use & ~audited])}
    unsampled = {}
    if len(auto_by_rule) and not (use & audited).any():
        unsampled["auto-routed"] = int(len(auto_by_rule))
    bounds = triage_bounds(router, log_versions, frame["model_fingerprint"][use & ~audited])
    certified_on = (f"the decision log ({log_name(log)}): {int(use.sum())} tickets a person decided "
                    f"({int((use & audited).sum())} from the audit sample of auto-routed tickets, "
                    f"{int((use & ~audited).sum())} triaged), look {look} spending {spent:.4f} of delta "
                    f"{setting['delta']}, on {time.strftime('%Y-%m-%d')}")
    rule, guarantee = certify_groups(router, groups, setting, spent, certified_on, unsampled,
                                     below={triaged_name: bounds} if bounds is not None else None,
                                     score=router.rule.score if bounds is not None else None)
    guarantee["delta"] = setting["delta"]
    guarantee["looks"] = {"look": look, "delta_spent": spent,
                          "method": "every eligible ticket of the log at each look; look k spends delta x 6/(pi^2 k^2)"}
    menu_table = menu_rows(router, setting, probabilities[~in_use], ids[menu]) if menu_share > 0 else None
    result = finish(router, rule, guarantee, probabilities[in_use], ids[use], left_out, unknown, menu_table)
    result["used_ids"] = frame["id"].to_numpy()[use].tolist()
    result["look"] = look
    result["coverage_in_force"] = coverage_in_force(router, log, rule)
    return result


def logged_or_scored(router, frame, rows, subjects, descriptions, versions: dict, batch_size: int = 64,
                     progress: bool = False) -> np.ndarray:
    """The probabilities of the chosen log rows under ``router``'s export: the logged ones where the version that
    logged them has the same weights and backend (a re-certification: the same model, another rule), the rest scored
    again. Re-certifying a log of 100,000 tickets then costs no scoring."""
    from .decision_log.store import version_record

    mine = version_record(router)
    same = np.array([(versions.get(fingerprint) or {}).get("weights_sha256") == mine["weights_sha256"] and
                     (versions.get(fingerprint) or {}).get("backend") == mine["backend"]
                     for fingerprint in frame["model_fingerprint"]], dtype=bool)
    chosen = np.flatnonzero(rows)
    probabilities = np.zeros((len(chosen), len(router.labels)), dtype=np.float64)
    again = [i for i, row in enumerate(chosen) if not same[row]]
    for i, row in enumerate(chosen):
        if same[row]:
            logged = json.loads(frame["probabilities"].iloc[row])
            probabilities[i] = [logged.get(name, 0.0) for name in router.labels]
    if again:
        probabilities[again] = router.predict_proba([subjects[chosen[i]] for i in again],
                                                    [descriptions[chosen[i]] for i in again], batch_size=batch_size,
                                                    progress=progress, cleaned=True)
    return probabilities


def coverage_in_force(router, log, rule) -> dict:
    """The share of the tickets the version in force routed that it auto-routed, and the share the new rule would,
    from their logged probabilities (the same model): `calibrate` keeps the rule in force rather than write one that
    routes less. Without tickets of this version in the log, both are None."""
    from .decision_log.tickets import routed_by

    frame = routed_by(log, router.fingerprint)
    if frame.empty:
        return {"tickets": 0, "in_force": None, "new": None}
    probabilities = np.array([[json.loads(row).get(name, 0.0) for name in router.labels]
                              for row in frame["probabilities"]], dtype=np.float64)
    return {"tickets": int(len(frame)), "in_force": float((frame["rule_route"] == "auto").mean()),
            "new": float(rule.decide(probabilities)[2].mean())}


def log_name(log) -> str:
    from .decision_log.store import redacted

    return redacted(log.url)


def write_recalibrated(model: str | Path, router, result: dict, expected: str | None = None) -> Path:
    """A new version of the export at ``model`` (the link): ``router``'s export with the new rule; the previous
    version stays intact. The link switches only if it still names ``expected`` (default: the version ``router``
    read; `promote` passes the champion's), else ValueError and nothing switched."""
    source = router.model_dir  # the version the router read: resolved once, so nothing here mixes two versions
    rule, guarantee = result["rule"], result["guarantee"]
    config = read_json(source / "config.json", "model config")
    thresholds = dict(zip(router.labels, rule.label_thresholds))
    profile = result.get("profile") or config.get("routing_profile") or {}
    config.update(auto_route_thresholds=thresholds, routing_score=rule.score, routing_guarantee=guarantee,
                  routing_profile={**profile, "split": "calibrate" if result.get("profile") else profile.get("split")},
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
    with versioned_folder(model, expected=str(source) if expected is None else str(expected)) as staging:
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
