"""One multi-field model against one model per field, on the same real tickets: queue, type and size.

    python benchmarks/bench_fields.py --prepare_only                # build and check the data files only (seconds)
    python benchmarks/bench_fields.py                               # 4 training runs, then route the test file 4 times
    python benchmarks/bench_fields.py --skip_train                  # reuse outputs/fields/<run>/, route and tabulate
    python benchmarks/bench_fields.py --size 3000 -- --num_train_epochs 2   # flags after `--` go to every train.py run

The question (docs/data.md, "Several fields from one model"): does one model with a head per field
(`--label_column queue --extra_label_columns type size`) do as well as three models trained on one field each, and
what does it save? The goal: within 1 point per field, at about a third of the cost. Trained on the same training
file and measured on the same test file, the runs are:
- multi: `--label_column queue --extra_label_columns type size` (one model, three heads);
- queue, type, size: `--label_column <field>` alone (three models).
Each run is `train.py --train_file ... --test_file ... --text_columns title description --output_dir
outputs/fields/<run> --disable_tqdm true` plus the flags after `--` (default config: configs/cpu.yaml), in a
subprocess from the repository root with this interpreter, timed by wall clock (metrics.json's train_runtime_s is
reported too). Each export then routes the test file (`ticket-classifier predict --model outputs/fields/<run>/model
--input test.csv --output outputs/fields/routed/<run>.csv --text_columns title description --quiet`), timed by wall
clock: a fresh process, imports and model load included, as a nightly batch pays them; the multi-field model once,
the single-field models once each. Prints, per field, accuracy and macro-F1 of both on test (metrics.json: the
routed field at the top level, the extra ones under `fields.<name>`), the difference in points and the TF-IDF +
logistic-regression baseline, then training and routing time of one model against the three; writes
outputs/fields/summary.json. Timings on a shared 2-core machine are noisy: compare them run against run, not
against other days.

Data: the Tawosi Jira dataset (SOLAR-group/AgileEffortEstimation @291e22a8, `datasets/Tawosi_Dataset/`), read raw
from ../shared/external_data/AgileEffortEstimation (never copied into the repository). Per project, `<P>_deep-se.csv`
has issuekey, created, title, description, storypoint; `<P>_tfidf-se.csv` has one-hot issue types (`t_*`) and
components (`c_*`); they are joined on issuekey (every key matches). The desk-like export built from them
(deterministic, seed 0; outputs/fields/data/, with stats.json):
- projects: the `--n_projects` (4) with the most issues that have exactly one component (MULE, EVG, TISTUD, DNN),
  or `--projects`; only issues with exactly one component are kept;
- rows with the same title and description as an earlier row are dropped (clones would sit on both sides of the split);
- queue = "<project>/<component>"; the pool is drawn down to `--size` tickets (4,000) stratified by queue, after
  leaving out components too small to keep `--min_queue` (15) tickets in the draw; queues left under 15 after the
  draw are dropped too (so the file holds a little under `--size`);
- type = the Jira issue type (Bug, Task, Improvement, ...), types with fewer than `--min_type` (30) rows in the draw
  merged into "Other";
- size = the story points bucketed: small (<= 2, zero and half points included), medium (3-5), large (>= 8). This is
  an effort field standing in for a priority-like field: desks rarely export priority this cleanly, and story
  points are what this dataset has; it is noisy and hard to read from text (the dataset's own paper finds text
  models barely beat the median estimate), and each team sets its own scale;
- text columns: title, description (Jira wiki markup and code kept, newlines already flattened in the source);
- split: 20% test, stratified by queue, seed 0 (random, not by date: the files carry `created` if a time split is
  wanted). Validation and calibration are carved from the training file by train.py, stratified by each run's
  routed field, so the training rows differ slightly between the runs; the test file is the same for all.
Caveats: type and size are partly given away by the project (MULE alone has "Enhancement.Request", EVG
"Build.Failure"; teams size differently), which the queue head also learns; the data has no licence file and is a
subset of TAWOS, whose terms say research purposes only: keep it and everything built from it out of the repository
(outputs/ is ignored by git).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
RAW = REPO.parent / "shared" / "external_data" / "AgileEffortEstimation"
TAWOSI = RAW / "datasets" / "Tawosi_Dataset"
OUTPUT = REPO / "outputs" / "fields"
TEXT_COLUMNS = ("title", "description")
FIELDS = ("queue", "type", "size")
SIZES = ("small", "medium", "large")
RUNS = {  # run name -> the label flags of its train.py call
    "multi": ["--label_column", "queue", "--extra_label_columns", "type", "size"],
    **{field: ["--label_column", field] for field in FIELDS},
}


# ---------------------------------------------------------------------------------------------------------- data
def load_project(project: str) -> pd.DataFrame:
    """One project's issues: the deep-se file's text and story points joined with the tfidf-se file's issue type
    and components (one-hot columns) on issuekey."""
    onehot = pd.read_csv(TAWOSI / f"{project}_tfidf-se.csv")
    text = pd.read_csv(TAWOSI / f"{project}_deep-se.csv", dtype={"title": str, "description": str})
    types = [c for c in onehot.columns if c.startswith("t_")]
    components = [c for c in onehot.columns if c.startswith("c_")]
    n_types = onehot[types].sum(axis=1)
    if not (n_types == 1).all():
        raise ValueError(f"{project}: {int((n_types != 1).sum())} issues without exactly one issue type")
    frame = pd.DataFrame({
        "issuekey": onehot["issuekey"],
        "type": onehot[types].idxmax(axis=1).str[2:],
        "n_components": onehot[components].sum(axis=1).astype(int),
        "component": onehot[components].idxmax(axis=1).str[2:] if components else "",
    })
    frame = frame.merge(text[["issuekey", "created", "title", "description", "storypoint"]], on="issuekey",
                        how="inner", validate="one_to_one")
    if len(frame) != len(onehot):
        raise ValueError(f"{project}: {len(onehot) - len(frame)} issue keys of the tfidf-se file not in deep-se")
    frame.insert(0, "project", project)
    return frame


def available_projects() -> list[str]:
    """Projects with both files (DM, MESOS and TIMOB lack their tfidf-se file in the snapshot)."""
    return sorted(p.name.split("_")[0] for p in TAWOSI.glob("*_tfidf-se.csv")
                  if (TAWOSI / p.name.replace("_tfidf-se", "_deep-se")).is_file())


def size_bucket(points: pd.Series) -> pd.Series:
    return pd.Series(np.select([points <= 2, points <= 5], ["small", "medium"], "large"), index=points.index)


def clean(text: pd.Series) -> pd.Series:
    return text.fillna("").astype(str).str.strip()


def build(args) -> tuple[Path, Path, dict]:
    """The desk-like export (module docstring), written as train.csv and test.csv; returns their paths and stats."""
    from sklearn.model_selection import train_test_split

    projects = available_projects()
    unknown = sorted(set(args.projects or []) - set(projects))
    if unknown:
        sys.exit(f"bench_fields: no such project(s) {unknown}; available: {projects}")
    frames = {p: load_project(p) for p in (args.projects or projects)}
    single = {p: f[f["n_components"] == 1] for p, f in frames.items()}
    chosen = args.projects or sorted(single, key=lambda p: (-len(single[p]), p))[: args.n_projects]
    pool = pd.concat([single[p] for p in chosen], ignore_index=True)
    pool["title"], pool["description"] = clean(pool["title"]), clean(pool["description"])
    read = len(pool)
    pool = pool[(pool["title"] != "") | (pool["description"] != "")]
    no_text = read - len(pool)
    normalised = (pool["title"] + " " + pool["description"]).str.lower().str.replace(r"\s+", " ", regex=True)
    duplicates = int(normalised.duplicated().sum())
    pool = pool[~normalised.duplicated()].copy()  # files are in creation order: the first filing is kept
    pool["queue"] = pool["project"] + "/" + pool["component"]

    # Components too small to keep min_queue tickets in a draw of `size` are left out before drawing.
    share = min(1.0, args.size / len(pool))
    counts = pool["queue"].value_counts()
    pool = pool[pool["queue"].isin(counts[counts * share >= args.min_queue].index)]
    if len(pool) > args.size:
        pool, _ = train_test_split(pool, train_size=args.size, random_state=args.seed, stratify=pool["queue"])
    counts = pool["queue"].value_counts()
    sample = pool[pool["queue"].isin(counts[counts >= args.min_queue].index)].copy()

    types = sample["type"].value_counts()
    merged_types = sorted(types[types < args.min_type].index)
    sample.loc[sample["type"].isin(merged_types), "type"] = "Other"
    sample["size"] = size_bucket(sample["storypoint"])
    train, test = train_test_split(sample, test_size=args.test_share, random_state=args.seed, stratify=sample["queue"])
    columns = ["issuekey", "project", "created", "storypoint", *TEXT_COLUMNS, *FIELDS]
    args.data_dir.mkdir(parents=True, exist_ok=True)
    paths = args.data_dir / "train.csv", args.data_dir / "test.csv"
    for path, frame in zip(paths, (train, test)):
        frame.sort_index()[columns].to_csv(path, index=False)

    text = sample["title"] + " " + sample["description"]
    stats = {
        "source": f"{TAWOSI} (SOLAR-group/AgileEffortEstimation @{source_commit()})",
        "projects": chosen, "seed": args.seed,
        "rows": {"single_component_issues": read, "no_text": no_text, "duplicate_texts": duplicates,
                 "file": len(sample), "train": len(train), "test": len(test)},
        "rows_per_project": {k: int(v) for k, v in sample["project"].value_counts().items()},
        "queues": int(sample["queue"].nunique()),
        "types_merged_into_Other": merged_types,
        "storypoint": {str(k): int(v) for k, v in sample["storypoint"].value_counts().sort_index().items()},
        "text_chars": {name: quantiles(series.str.len()) for name, series in
                       (("title + description", text), ("title", sample["title"]),
                        ("description", sample["description"]))},
        "blank_description_share": round(float((sample["description"] == "").mean()), 3),
        "fields": {field: {split: {str(k): int(v) for k, v in frame[field].value_counts().items()}
                           for split, frame in (("train", train), ("test", test))} for field in FIELDS},
        "majority_share_test": {field: round(float(test[field].value_counts(normalize=True).iloc[0]), 3)
                                for field in FIELDS},
    }
    (args.data_dir / "stats.json").write_text(json.dumps(stats, indent=2) + "\n")
    return paths[0], paths[1], stats


def quantiles(lengths: pd.Series) -> dict:
    points = {"p10": 0.1, "p25": 0.25, "median": 0.5, "p75": 0.75, "p90": 0.9}
    return {**{k: int(lengths.quantile(q)) for k, q in points.items()}, "max": int(lengths.max())}


def source_commit() -> str:
    path = RAW / "SOURCE_COMMIT"
    return path.read_text().strip()[:8] if path.is_file() else "unknown commit"


def print_stats(stats: dict, train: Path, test: Path) -> None:
    rows = stats["rows"]
    print(f"data: {train} ({rows['train']} tickets), {test} ({rows['test']} tickets)")
    print(f"projects {', '.join(stats['projects'])}: {rows['single_component_issues']} issues with one component, "
          f"{rows['no_text']} without text, {rows['duplicate_texts']} repeated texts dropped; "
          f"{rows['file']} drawn in {stats['queues']} queues ({stats['rows_per_project']})")
    lengths = stats["text_chars"]
    both = lengths["title + description"]
    print("text chars (title + description): " + ", ".join(f"{k} {v}" for k, v in both.items())
          + f"; title median {lengths['title']['median']}; blank descriptions "
          f"{stats['blank_description_share']:.1%}")
    print(f"story points: {stats['storypoint']}; types merged into Other: {stats['types_merged_into_Other'] or 'none'}")
    for field in FIELDS:
        train_counts, test_counts = stats["fields"][field]["train"], stats["fields"][field]["test"]
        shown = list(train_counts.items())
        listed = ", ".join(f"{k} {v}/{test_counts.get(k, 0)}" for k, v in shown[:12])
        last, count = shown[-1]
        more = (f", ... ({len(shown) - 12} more; smallest {last} {count}/{test_counts.get(last, 0)})"
                if len(shown) > 12 else "")
        print(f"{field}: {len(shown)} classes, train/test: {listed}{more}; majority share on test "
              f"{stats['majority_share_test'][field]:.1%}")


# ------------------------------------------------------------------------------------------------------- running
def train_run(name: str, train: Path, test: Path, output: Path, extra: list[str]) -> float:
    command = [sys.executable, "train.py", "--train_file", str(train), "--test_file", str(test),
               "--text_columns", *TEXT_COLUMNS, *RUNS[name], "--output_dir", str(output / name),
               "--disable_tqdm", "true", *extra]
    print(f"\n[{name}] {' '.join(command)}", flush=True)
    return timed(command, f"train.py for run {name!r}")


def timed(command: list[str], what: str) -> float:
    """Wall-clock seconds of a subprocess run from the repository root; exits, naming ``what``, when it fails."""
    started = time.perf_counter()
    done = subprocess.run(command, cwd=REPO)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"{Path(sys.argv[0]).stem}: {what} failed (exit {done.returncode})")
    return seconds


def classifier_command() -> list[str]:
    script = Path(sys.executable).parent / "ticket-classifier"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "ticket_router.cli"]


def route_run(name: str, test: Path, output: Path) -> tuple[float, Path]:
    routed = output / "routed" / f"{name}.csv"
    routed.parent.mkdir(parents=True, exist_ok=True)
    command = [*classifier_command(), "predict", "--model", str(output / name / "model"), "--input", str(test),
               "--output", str(routed), "--text_columns", *TEXT_COLUMNS, "--quiet"]
    print(f"[{name}] {' '.join(command)}", flush=True)
    return timed(command, f"routing the test file with run {name!r}"), routed


def field_figures(metrics: dict, field: str) -> dict:
    """A field's test figures, baseline and bootstrap interval from one run's metrics.json."""
    part = metrics if metrics.get("fields") is None or field not in metrics["fields"] else metrics["fields"][field]
    pick = lambda figures: {k: figures[k] for k in ("accuracy", "macro_f1") if k in figures}  # noqa: E731
    return {"test": pick(part["test"]), "baseline": pick(part["baseline"]["test"]),
            "macro_f1_interval": part.get("intervals", {}).get("test", {}).get("macro_f1")}


def routed_accuracy(routed: Path, test: Path, field: str, multi: bool) -> float:
    """The export's accuracy on the test file (a check that the export gives what metrics.json says)."""
    column = "predicted" if not multi or field == "queue" else f"predicted_{field}"
    predicted = pd.read_csv(routed, usecols=[column])[column].astype(str)
    truth = pd.read_csv(test, usecols=[field])[field].astype(str)
    return float((predicted.to_numpy() == truth.to_numpy()).mean())


def points(a: float, b: float) -> str:
    return f"{100 * (a - b):+.1f}"


def interval(figures: dict) -> str:
    return "n/a" if not figures["macro_f1_interval"] else "{:.3f}-{:.3f}".format(*figures["macro_f1_interval"])


def report(results: dict, n_test: int, recipe: list[str], machine: str) -> dict:
    multi, singles = results["multi"], [results[f] for f in FIELDS]
    rows = {}
    print(f"\nmulti-field vs single-field models, {n_test} test tickets; recipe: {' '.join(recipe) or '(defaults)'}; "
          f"machine: {machine}")
    print("| field | multi-field acc / macro-F1 | single-field acc / macro-F1 | difference acc / macro-F1 (points) | "
          "macro-F1 95% interval multi / single | baseline (TF-IDF + LR) macro-F1 |")
    print("| --- | --- | --- | --- | --- | --- |")
    for field in FIELDS:
        m, s = field_figures(multi["metrics"], field), field_figures(results[field]["metrics"], field)
        behind = round(100 * (s["test"]["macro_f1"] - m["test"]["macro_f1"]), 6)
        print(f"| {field} | {m['test']['accuracy']:.4f} / {m['test']['macro_f1']:.4f} | {s['test']['accuracy']:.4f} / "
              f"{s['test']['macro_f1']:.4f} | {points(m['test']['accuracy'], s['test']['accuracy'])} / "
              f"{points(m['test']['macro_f1'], s['test']['macro_f1'])} | {interval(m)} / {interval(s)} | "
              f"{m['baseline']['macro_f1']:.4f} |")
        rows[field] = {"multi": m, "single": s,
                       "difference_points": {k: round(100 * (m["test"][k] - s["test"][k]), 2) for k in m["test"]},
                       "within_1_point_macro_f1": behind <= 1,
                       "export_accuracy": {"multi": multi.get("export_accuracy", {}).get(field),
                                           "single": results[field].get("export_accuracy", {}).get(field)}}
    cost = {}
    print("\n| cost | multi-field (1 model) | single-field (3 models) | ratio |")
    print("| --- | --- | --- | --- |")
    for key, label in (("train_wall_s", "training, wall clock"), ("train_runtime_s", "training, train_runtime_s"),
                       ("route_wall_s", "routing the test file, wall clock")):
        if multi.get(key) is None or any(s.get(key) is None for s in singles):
            continue
        one, three = multi[key], sum(s[key] for s in singles)
        cost[key] = {"multi": round(one, 1), "single": {f: round(results[f][key], 1) for f in FIELDS},
                     "single_total": round(three, 1), "ratio": round(one / three, 3)}
        rate = f" ({n_test / one:.1f} / {n_test / three:.1f} tickets/s)" if key == "route_wall_s" else ""
        print(f"| {label}{rate} | {one:.0f} s | {three:.0f} s ({' + '.join(f'{results[f][key]:.0f}' for f in FIELDS)}) "
              f"| {one / three:.2f} |")
    met = [f for f in FIELDS if rows[f]["within_1_point_macro_f1"]]
    print(f"\ngoal: no more than 1 point below the single-field model per field (macro-F1): {len(met)}/{len(FIELDS)} "
          f"({', '.join(met) or 'none'}); "
          + ", ".join(f"{k} ratio {v['ratio']:.2f}" for k, v in cost.items()) + " (goal: about 0.33)")
    for field in FIELDS:
        for run, figures in (("multi", rows[field]["multi"]), ("single", rows[field]["single"])):
            exported = rows[field]["export_accuracy"][run]
            if exported is not None and abs(exported - figures["test"]["accuracy"]) > 0.005:
                print(f"note: {field} ({run}): the export's accuracy on the routed file {exported:.4f} differs from "
                      f"metrics.json's {figures['test']['accuracy']:.4f}")
    return {"fields": rows, "cost": cost}


def main(argv=None) -> dict:
    argv = list(sys.argv[1:] if argv is None else argv)
    recipe = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=4000, help="tickets in the export, train + test (about)")
    parser.add_argument("--n_projects", type=int, default=4, help="projects with the most single-component issues")
    parser.add_argument("--projects", nargs="+", default=None, help="these Jira projects instead (e.g. MULE EVG)")
    parser.add_argument("--min_queue", type=int, default=15, help="fewest tickets a queue keeps in the export")
    parser.add_argument("--min_type", type=int, default=30, help="issue types with fewer rows become 'Other'")
    parser.add_argument("--test_share", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=0, help="seed of the draw and the split (not of training)")
    parser.add_argument("--output_dir", type=Path, default=OUTPUT, help="runs, routed files and summary.json")
    parser.add_argument("--prepare_only", action="store_true", help="build the data files, print their stats, stop")
    parser.add_argument("--skip_train", action="store_true", help="reuse the runs in output_dir; route and tabulate")
    parser.add_argument("--runs", nargs="+", default=list(RUNS), choices=list(RUNS),
                        help="train only these (the others must be in output_dir already)")
    args = parser.parse_args(argv)
    if not TAWOSI.is_dir():
        sys.exit(f"bench_fields: the Jira data (Tawosi dataset) not found in {TAWOSI}; it is read from "
                 "../shared/external_data/AgileEffortEstimation (SOLAR-group/AgileEffortEstimation, "
                 "datasets/Tawosi_Dataset), never from the repository")
    if args.size < 500:
        parser.error("--size: at least 500 tickets")
    args.output_dir = args.output_dir if args.output_dir.is_absolute() else REPO / args.output_dir
    args.data_dir = args.output_dir / "data"
    train, test, stats = build(args)
    print_stats(stats, train, test)
    if args.prepare_only:
        return {"data": stats}

    from benchmarks.bench_recipes import cpu_flags

    previous = args.output_dir / "summary.json"  # a reused run keeps the wall clock its training took then
    previous = json.loads(previous.read_text()).get("runs", {}) if previous.is_file() else {}
    results = {}
    for name in RUNS:
        metrics_path = args.output_dir / name / "reports" / "metrics.json"
        wall = previous.get(name, {}).get("train_wall_s")
        if not args.skip_train and name in args.runs:
            wall = train_run(name, train, test, args.output_dir, recipe)
        if not metrics_path.is_file():
            sys.exit(f"bench_fields: no metrics for run {name!r} ({metrics_path}); train it (drop --skip_train)")
        metrics = json.loads(metrics_path.read_text())
        results[name] = {"metrics": metrics, "train_wall_s": wall, "train_runtime_s": metrics.get("train_runtime_s"),
                         "sizes": metrics.get("data", {}).get("sizes")}
    for name in RUNS:
        seconds, routed = route_run(name, test, args.output_dir)
        results[name]["route_wall_s"] = seconds
        fields = FIELDS if name == "multi" else (name,)
        results[name]["export_accuracy"] = {f: routed_accuracy(routed, test, f, name == "multi") for f in fields}

    machine = cpu_flags()
    summary = report(results, stats["rows"]["test"], recipe, machine)
    out = args.output_dir / "summary.json"
    out.write_text(json.dumps({"recipe": recipe, "machine": machine, "data": stats, **summary,
                               "runs": {name: {k: v for k, v in row.items() if k != "metrics"}
                                        for name, row in results.items()}}, indent=2) + "\n")
    print(f"written: {out}")
    return summary


if __name__ == "__main__":
    main()
