"""Audit an export before training: likely label errors, queues that overlap, near-duplicate tickets, and what a
certified routing rule could reach on this data.

Everything starts from out-of-fold predicted probabilities of a cheap model: the run's own baseline (TF-IDF word 1-2
grams + logistic regression, custom_trainer/baseline.py), fitted k times, each ticket scored by the fit that never saw
it. Confident learning (Northcutt et al. 2021, through `cleanlab`) turns them into likely label errors and the
estimated share of wrong labels per queue; the out-of-fold confusion, read in both directions, into queues that do
the same work. Near-duplicates are found by text alone. Nothing here changes the data: `apply_actions` does, only
when asked (drop flagged rows above a score, merge queues, relabel from a reviewed CSV), and says what it did.

Functions take plain arrays (``labels``: int ids, ``pred_probs``: one row of probabilities per ticket), as cleanlab's.
"""

from __future__ import annotations

import logging
import re
import time
import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd

from .baseline import fit_baseline, ticket_strings

logger = logging.getLogger(__name__)

FOLDS = 5
# A pair of queues is suggested for a merge when, out of fold, at least this share of each queue's tickets is
# predicted as the other: the text does not tell them apart in either direction.
MERGE_CONFUSION = 0.25
EXAMPLES_PER_PAIR = 3
ROWS_IN_JSON = 200  # flagged rows kept in audit.json; the CSV holds all of them
# Certification reach is estimated on splits shaped like train.py's defaults: 10% validation, 10% calibration.
REACH_SHARE = 0.1


def out_of_fold_probabilities(texts: Sequence[str], labels: np.ndarray, num_labels: int, folds: int = FOLDS,
                              seed: int = 0, progress: bool = True) -> np.ndarray:
    """(n, num_labels) probabilities, each row from the baseline fitted on the other folds (stratified). A queue
    absent from a fold's training part gets probability 0 there."""
    from sklearn.model_selection import StratifiedKFold
    from tqdm.auto import tqdm

    labels, texts = np.asarray(labels), np.asarray(texts, dtype=object)
    with warnings.catch_warnings():  # a queue with fewer tickets than folds: sklearn warns, and splits anyway
        warnings.simplefilter("ignore", UserWarning)
        parts = list(StratifiedKFold(folds, shuffle=True, random_state=seed).split(texts, labels))
    probabilities = np.zeros((len(labels), num_labels))
    for train, held_out in tqdm(parts, desc="audit: out-of-fold fits", disable=not progress):
        model = fit_baseline(list(texts[train]), labels[train], seed)
        probabilities[np.ix_(held_out, model.classes_)] = model.predict_proba(list(texts[held_out]))
    return probabilities


def likely_label_errors(labels: np.ndarray, pred_probs: np.ndarray) -> pd.DataFrame:
    """Rows confident learning flags (cleanlab's ``find_label_issues``, pruning by noise rate), most likely first:
    row index, suggested label id (the out-of-fold argmax) and a score in [0, 1] (1 - the given label's
    out-of-fold probability, cleanlab's self-confidence)."""
    from cleanlab.filter import find_label_issues

    labels, pred_probs = np.asarray(labels), np.asarray(pred_probs)
    flagged = find_label_issues(labels, pred_probs, filter_by="prune_by_noise_rate",
                                return_indices_ranked_by="self_confidence")
    score = 1.0 - pred_probs[np.arange(len(labels)), labels]
    return pd.DataFrame({"row": flagged, "suggested": pred_probs[flagged].argmax(axis=1),
                         "score": score[flagged].round(6)})


def label_noise_per_queue(labels: np.ndarray, pred_probs: np.ndarray, label_names: Sequence[str]) -> list[dict]:
    """Per queue, cleanlab's estimate of the share of its given labels that are wrong ("Label Noise") and of the
    tickets that belong to it but carry another label ("Inverse Label Noise"), noisiest first."""
    from cleanlab.dataset import rank_classes_by_label_quality

    table = rank_classes_by_label_quality(labels=np.asarray(labels), pred_probs=np.asarray(pred_probs),
                                          class_names=list(label_names))
    counts = np.bincount(np.asarray(labels), minlength=len(label_names))
    rows = [{"queue": row["Class Name"], "tickets": int(counts[int(row["Class Index"])]),
             "estimated_wrong_labels": float(row["Label Noise"]),
             "estimated_missing_tickets": float(row["Inverse Label Noise"]),
             "label_issues": int(row["Label Issues"])} for _, row in table.iterrows()]
    return sorted(rows, key=lambda r: -r["estimated_wrong_labels"])


def overlapping_queues(labels: np.ndarray, pred_probs: np.ndarray, label_names: Sequence[str],
                       merge_confusion: float = MERGE_CONFUSION, most: int = 20) -> list[dict]:
    """Pairs of queues whose tickets the out-of-fold model confuses, ranked by cleanlab's estimate of their joint
    probability (``find_overlapping_classes``), with the confusion in each direction: the share of A's tickets
    predicted B, and of B's predicted A. ``suggest_merge`` when both reach ``merge_confusion``."""
    from cleanlab.dataset import find_overlapping_classes

    labels, pred_probs = np.asarray(labels), np.asarray(pred_probs)
    predicted = pred_probs.argmax(axis=1)
    counts = np.bincount(labels, minlength=len(label_names))
    confusion = np.zeros((len(label_names), len(label_names)))
    np.add.at(confusion, (labels, predicted), 1)
    rate = confusion / np.maximum(counts, 1)[:, None]
    table = find_overlapping_classes(labels=labels, pred_probs=pred_probs, class_names=list(label_names))
    pairs = []
    for _, row in table.head(most).iterrows():
        a, b = int(row["Class Index A"]), int(row["Class Index B"])
        pairs.append({"queues": [label_names[a], label_names[b]], "joint_probability": float(row["Joint Probability"]),
                      "overlapping_tickets": int(row["Num Overlapping Examples"]),
                      "a_predicted_as_b": float(rate[a, b]), "b_predicted_as_a": float(rate[b, a]),
                      "suggest_merge": bool(min(rate[a, b], rate[b, a]) >= merge_confusion),
                      "examples": {"a_predicted_as_b": np.flatnonzero((labels == a) & (predicted == b))[:EXAMPLES_PER_PAIR].tolist(),
                                   "b_predicted_as_a": np.flatnonzero((labels == b) & (predicted == a))[:EXAMPLES_PER_PAIR].tolist()}})
    return pairs


# Near-duplicates: the same ticket with other numbers, another requester's name in the greeting or sign-off, another
# signature. Names elsewhere in the text are not recognised (it would take a name list or a tagger).
_GREETING = re.compile(r"^\s*(hi|hello|hey|dear|good (morning|afternoon|evening))\b[^,.!:\n]{0,40}[,.!:]?", re.I)
_SIGN_OFF = re.compile(r"\b(best regards|kind regards|regards|many thanks|thanks in advance|thank you|thanks|cheers|"
                       r"br|sent from my)\b", re.I)
_NUMBERS = re.compile(r"\d+")
SIGNATURE_CHARS = 120  # a sign-off, a name, a title, a phone number
_NOT_WORD = re.compile(r"[^\w]+")


def duplicate_key(subject: str, description: str) -> str:
    """The ticket with its greeting, its sign-off and everything after it (a sign-off followed by at most
    SIGNATURE_CHARS characters), its numbers and its punctuation removed, lower-cased: equal keys are
    near-duplicates."""
    text = _GREETING.sub(" ", description)
    cut = [m.start() for m in _SIGN_OFF.finditer(text) if 0 < m.start() and len(text) - m.start() <= SIGNATURE_CHARS]
    if cut:
        text = text[:cut[0]]
    text = f"{subject} {text}".casefold()
    text = _NUMBERS.sub(" ", text)
    return " ".join(_NOT_WORD.sub(" ", text).split())


def near_duplicates(subjects: Sequence[str], descriptions: Sequence[str], labels: np.ndarray) -> list[dict]:
    """Groups of two or more tickets with the same `duplicate_key`, largest first, each with its rows and whether
    their labels disagree."""
    keys = pd.Series([duplicate_key(s, d) for s, d in zip(subjects, descriptions)])
    keys = keys[keys != ""]
    groups = []
    for _, rows in keys.groupby(keys).groups.items():
        if len(rows) < 2:
            continue
        rows = sorted(int(r) for r in rows)
        queues = sorted({int(labels[r]) for r in rows})
        groups.append({"rows": rows, "labels": queues, "conflicting": len(queues) > 1})
    return sorted(groups, key=lambda g: (-len(g["rows"]), g["rows"][0]))


def certification_reach(pred_probs: np.ndarray, labels: np.ndarray, label_names: Sequence[str], delta: float = 0.05,
                        share: float = REACH_SHARE, seed: int = 0) -> list[dict]:
    """What a certified rule could auto-route on this data at each target of the routing menu (1, 2, 3, 5, 10%):
    the out-of-fold probabilities of a ``share`` of the tickets pre-register the test sequence, of another ``share``
    certify it, as train.py does with its validation and calibration splits (ticket_router/certification.py)."""
    from ticket_router.certification import frontier, grid_counts

    order = np.random.default_rng(seed).permutation(len(labels))
    size = max(1, int(round(share * len(labels))))
    validation, calibration = order[:size], order[size:2 * size]
    counts = grid_counts(pred_probs[validation], labels[validation])
    return frontier(pred_probs[calibration], labels[calibration], counts, list(label_names), delta)


def audit_frame(frame: pd.DataFrame, folds: int = FOLDS, seed: int = 0,
                progress: bool = True) -> tuple[dict, pd.DataFrame, np.ndarray]:
    """The audit of loaded tickets (``subject``, ``description``, ``category``, ``line``): the report (audit.json),
    every flagged row, most likely first (label_issues.csv), and every ticket's score (1 - the out-of-fold
    probability of its given label), flagged or not."""
    started = time.perf_counter()
    label_names = sorted(frame["category"].unique())
    index = {name: i for i, name in enumerate(label_names)}
    labels = frame["category"].map(index).to_numpy()
    texts = ticket_strings(frame)
    lines = frame["line"].to_numpy()
    pred_probs = out_of_fold_probabilities(texts, labels, len(label_names), folds, seed, progress)
    flagged = likely_label_errors(labels, pred_probs)
    rows = pd.DataFrame({
        "line": lines[flagged["row"]], "given": [label_names[labels[r]] for r in flagged["row"]],
        "suggested": [label_names[s] for s in flagged["suggested"]], "score": flagged["score"].to_numpy(),
        "subject": frame["subject"].to_numpy()[flagged["row"]],
        "description": frame["description"].to_numpy()[flagged["row"]],
    })
    pairs = overlapping_queues(labels, pred_probs, label_names)
    for pair in pairs:
        pair["examples"] = {way: [{"line": int(lines[r]), "subject": frame["subject"].iat[r],
                                   "description": frame["description"].iat[r][:300]} for r in found]
                            for way, found in pair["examples"].items()}
    duplicates = near_duplicates(frame["subject"].tolist(), frame["description"].tolist(), labels)
    report = {
        "tickets": int(len(frame)),
        "model": f"out-of-fold TF-IDF 1-2 grams + logistic regression, {folds} folds, seed {seed}",
        "out_of_fold": {"accuracy": float((pred_probs.argmax(1) == labels).mean())},
        "likely_label_errors": {"count": int(len(rows)), "share": float(len(rows) / max(len(frame), 1)),
                                "method": "cleanlab find_label_issues (prune_by_noise_rate), ranked by self-confidence",
                                "rows": rows.head(ROWS_IN_JSON).to_dict(orient="records")},
        "queues": label_noise_per_queue(labels, pred_probs, label_names),
        "overlapping_queues": pairs,
        "suggested_merges": [pair["queues"] for pair in pairs if pair["suggest_merge"]],
        "near_duplicates": {
            "groups": len(duplicates), "tickets": int(sum(len(g["rows"]) for g in duplicates)),
            "conflicting_groups": int(sum(g["conflicting"] for g in duplicates)),
            "largest": [{"lines": [int(lines[r]) for r in g["rows"][:20]], "size": len(g["rows"]),
                         "queues": [label_names[i] for i in g["labels"]]} for g in duplicates[:20]],
        },
        "certification_reach": certification_reach(pred_probs, labels, label_names, seed=seed),
    }
    report["seconds"] = round(time.perf_counter() - started, 1)
    return report, rows, 1.0 - pred_probs[np.arange(len(labels)), labels]


def apply_actions(frame: pd.DataFrame, flagged: pd.DataFrame, drop_above: float | None = None,
                  merges: Sequence[str] = (), relabelled: pd.DataFrame | None = None) -> tuple[pd.DataFrame, dict]:
    """The export with the chosen actions applied (none by default), and what each changed, by line:
    ``relabelled`` (a reviewed label_issues.csv: rows with a ``line`` and a ``label`` column set by a person),
    then ``merges`` ("A+B" or "A+B=Name": every ticket of those queues gets the name, the first one by default),
    then rows flagged with a score above ``drop_above`` dropped."""
    known = set(frame["category"])  # queues of the export, before any relabelling
    frame = frame.copy()
    done = {}
    if relabelled is not None:
        for column in ("line", "label"):
            if column not in relabelled.columns:
                raise ValueError(f"the reviewed file needs a {column!r} column (the audit's label_issues.csv with a "
                                 f"'label' column filled in), got {list(relabelled.columns)}")
        reviewed = relabelled[relabelled["label"].astype(str).str.strip() != ""]
        new = dict(zip(reviewed["line"].astype(int), reviewed["label"].astype(str).str.strip()))
        unknown = sorted(set(new) - set(frame["line"]))
        if unknown:
            raise ValueError(f"the reviewed file names line(s) {unknown[:5]} that are not tickets of the export")
        hit = frame["line"].isin(new)
        changed = hit & (frame["line"].map(new) != frame["category"])
        frame.loc[hit, "category"] = frame.loc[hit, "line"].map(new)
        done["relabelled"] = {"count": int(changed.sum()), "lines": frame.loc[changed, "line"].tolist()[:ROWS_IN_JSON]}
    merged = []
    for entry in merges:
        queues, _, name = entry.partition("=")
        parts = [q.strip() for q in queues.split("+") if q.strip()]
        missing = sorted(set(parts) - known)
        if len(parts) < 2 or missing:
            raise ValueError(f"--merge {entry!r}: name two or more queues of the export joined by '+' "
                             f"(not found: {missing})" if missing else f"--merge {entry!r}: name two or more queues")
        target = name.strip() or parts[0]
        hit = frame["category"].isin(parts)
        frame.loc[hit, "category"] = target
        merged.append({"queues": parts, "into": target, "tickets": int(hit.sum())})
    if merged:
        done["merged"] = merged
    if drop_above is not None:
        lines = set(flagged.loc[flagged["score"] > drop_above, "line"].astype(int))
        dropped = frame["line"].isin(lines)
        done["dropped"] = {"above_score": drop_above, "count": int(dropped.sum()),
                           "lines": frame.loc[dropped, "line"].tolist()[:ROWS_IN_JSON]}
        frame = frame[~dropped]
    return frame, done


def cleaned_copy(path, label_column: str, audited: pd.DataFrame, cleaned: pd.DataFrame, csv_delimiter=None,
                 extra_fields: str = "error") -> pd.DataFrame:
    """The export's own rows and columns, every value as read, except what the actions asked: the label of a
    relabelled or merged row set to its new queue, dropped rows left out. ``audited``: `audit_file`'s frame (cleaned
    labels by line); ``cleaned``: `apply_actions`' result. Rows the loader skipped (no text or no label) are kept as
    they were, since no action was asked of them. Written without spreadsheet escaping: it is data to train on."""
    from ticket_data.readers import read_records

    records, lines, columns = read_records(path, csv_delimiter, extra_fields)
    before = dict(zip(audited["line"].astype(int), audited["category"]))
    after = dict(zip(cleaned["line"].astype(int), cleaned["category"]))
    dropped = set(before) - set(after)
    rows = []
    for record, line in zip(records, lines):
        if line in dropped:
            continue
        if line in after and after[line] != before[line]:
            record = {**record, label_column: after[line]}
        rows.append(record)
    return pd.DataFrame.from_records(rows, columns=columns)


def audit_file(path, text_columns: Sequence[str], label_column: str, policy=None, folds: int = FOLDS, seed: int = 0,
               progress: bool = True) -> tuple[dict, pd.DataFrame, pd.DataFrame]:
    """Read an export with the loader's rules and errors (ticket_data/loading.py: rows without text or label are
    skipped and reported by line), then audit it. Returns the report, the flagged rows and the audited frame (with
    every ticket's ``audit_score``); the report's ``rows`` account for every row read (audited + skipped)."""
    from ticket_data.loading import DataPolicy, read_labelled

    frame, read = read_labelled(path, text_columns, label_column, policy or DataPolicy())
    if frame["category"].nunique() < 2:
        raise ValueError(f"{path}: column {label_column!r} holds fewer than two queues; nothing to audit")
    frame = frame.reset_index(drop=True)
    report, flagged, frame["audit_score"] = audit_frame(frame, folds, seed, progress)
    skipped = {reason: entry["count"] for reason, entry in read["skipped"].items()}
    report = {"input": str(path), "rows": {"read": read["rows_read"], "audited": int(len(frame)), "skipped": skipped,
                                           "skipped_lines": {k: v["lines"] for k, v in read["skipped"].items()}},
              **report}
    assert report["rows"]["audited"] + sum(skipped.values()) == report["rows"]["read"], report["rows"]
    return report, flagged, frame


def summarize_audit(report: dict) -> str:
    """The audit in a few lines for the terminal."""
    errors, dupes = report["likely_label_errors"], report["near_duplicates"]
    lines = [f"{report['rows']['read']} rows read, {report['rows']['audited']} audited, skipped {report['rows']['skipped'] or 'none'}; "
             f"out-of-fold accuracy {report['out_of_fold']['accuracy']:.3f} ({report['model']})",
             f"likely label errors: {errors['count']} ({errors['share']:.1%}); noisiest queues: "
             + ", ".join(f"{q['queue']} {q['estimated_wrong_labels']:.0%}" for q in report["queues"][:5])]
    for pair in report["overlapping_queues"][:5]:
        a, b = pair["queues"]
        lines.append(f"overlap {a} / {b}: {pair['a_predicted_as_b']:.0%} of {a} predicted {b}, "
                     f"{pair['b_predicted_as_a']:.0%} of {b} predicted {a}" + ("  -> suggested merge" if pair["suggest_merge"] else ""))
    lines.append(f"near-duplicates: {dupes['groups']} groups, {dupes['tickets']} tickets, {dupes['conflicting_groups']} "
                 "groups with conflicting labels")
    reach = ", ".join(f"{entry['max_misrouting']:.0%} -> {entry['coverage']:.0%}" for entry in report["certification_reach"])
    lines.append(f"what a certified rule could auto-route (baseline model, out of fold): {reach}")
    return "\n".join(lines)
