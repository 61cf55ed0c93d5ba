"""Screens on frozen all-mpnet-base-v2 vectors, cheap enough to run before a full recipe check (issue 38).

    python benchmarks/screen_frozen_vectors.py --runs outputs/long_tickets_s17/data/* ...      # read lengths
    python benchmarks/screen_frozen_vectors.py --heads --reads 128 --runs ...                  # heads, untuned
    python benchmarks/screen_frozen_vectors.py --exports outputs/long_tickets_s20_mpnet/mpnet/EVG ...  # heads, staged
    python benchmarks/screen_frozen_vectors.py --mix --exports ...                             # a head on more tickets

Every run folder is one benchmarks/bench_long_tickets.py wrote (train.csv, test.csv; title and description, label
`type`). The encoder is all-mpnet-base-v2 as the project installs it (the five registry packages put together,
custom_trainer.encoders.larger_encoder_path), mean-pooled.

- Read lengths (default): the untuned encoder reads each ticket by its two ends at several lengths (a ticket longer
  than the read: its first read - 2 - tail tokens and its last tail tokens between its two special tokens; tail 32
  at 128, `--tail` above), and scikit-learn's LogisticRegression (SetFit's head) on the normalised vectors of
  train.csv is scored on test.csv. The stage is left out: this ranks read lengths for the untuned encoder, not the
  recipe. Not the project's reading exactly: title and description are joined by a space as one text (the project
  reads the cleaned pair, ticket_data's clean_text, with the tokenizer's separator between them), the end is the
  ticket's own (the project cuts a ticket to max_length, 512, first, then keeps that cut's last tail_length tokens),
  and `head_tail_length` counts the special tokens in the two ends (one token apart at 128 / 32).
- ``--heads``: on the same vectors of the first read, SetFit's head (LogisticRegression on the normalised vectors)
  against the project's (custom_trainer.modeling.make_head, trained by custom_trainer.probe.fit_head with the
  default focal loss, 20 passes, learning rate 1e-3, as the default trains its head on the stage's frozen vectors,
  but with PyTorch's default initialisation and no class weights: the model's head starts from normal(0, 0.02), and
  these balanced runs' class weights are near 1), the project's on raw and on normalised vectors, three seeds each
  (their mean is reported).
- ``--exports``: the same heads on the vectors of finished runs' exports (a run folder with model/; the bench's
  data/<run>/ beside the recipe's folder): for the default's all-mpnet-base-v2 runs, the contrastive stage's encoder,
  read as the router reads a ticket (ticket_router.Router, title as subject). Both heads train on all of train.csv;
  the run's own head (trained on its training split only, 80 to 240 tickets on the bench's runs) is printed beside
  them from reports/metrics.json `combination.head_only`.
- ``--exports ... --mix``: each run's own final model on test against the same mix (the run's chosen wide_scale and
  bias_shift, its own wide logits from reports/combination_inputs.npz) over the project's head refitted on all of
  train.csv (three seeds); the replay of the run's own final model must match its recorded test macro-F1.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score
from transformers import AutoModel, AutoTokenizer

TEXT_COLUMNS = ["title", "description"]


def two_ends(ids: list[int], read: int, tail: int) -> list[int]:
    """A ticket's token ids cut to ``read`` tokens with its special tokens: its first read - 2 - tail and last tail."""
    room = read - 2
    return ids if len(ids) <= room else ids[:room - tail] + ids[-tail:]


def vectors(model, tokenizer, texts: list[str], read: int, tail: int, batch_size: int = 32,
            normalise: bool = True) -> np.ndarray:
    ids = [two_ends(tokenizer(t, add_special_tokens=False, truncation=True, max_length=4096)["input_ids"], read, tail)
           for t in texts]
    order = np.argsort([len(i) for i in ids])  # sorted batches pad little
    out = np.zeros((len(texts), model.config.hidden_size), dtype=np.float32)
    for start in range(0, len(texts), batch_size):
        chunk = order[start:start + batch_size]
        batch = tokenizer.pad({"input_ids": [[tokenizer.cls_token_id, *ids[i], tokenizer.sep_token_id] for i in chunk]},
                              return_tensors="pt")
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
            hidden = model(**batch).last_hidden_state.float()
        mask = batch["attention_mask"].unsqueeze(-1).float()
        pooled = (hidden * mask).sum(1) / mask.sum(1)  # mean pooling, as sentence-transformers does for this model
        out[chunk] = (torch.nn.functional.normalize(pooled, dim=-1) if normalise else pooled).numpy()
    return out


def read_split(folder: Path, split: str) -> pd.DataFrame:
    """A bench run's train.csv or test.csv, every cell a string as written (an empty description stays empty)."""
    return pd.read_csv(folder / f"{split}.csv", dtype=str, keep_default_na=False)


def project_head_logits(train_x: np.ndarray, train_y: torch.Tensor, test_x: np.ndarray, labels: int,
                        seed: int) -> np.ndarray:
    """Test logits of the project's head (custom_trainer.modeling.make_head, 256 wide, dropout 0.3) trained on fixed
    vectors by custom_trainer.probe.fit_head as the default trains it (20 passes, learning rate 1e-3, focal loss)."""
    from custom_trainer.modeling import make_head
    from custom_trainer.probe import fit_head

    torch.manual_seed(seed)
    head = make_head(train_x.shape[1], 256, labels, 0.3)
    fit_head(None, torch.from_numpy(train_x), train_y, 20.0, 1e-3, gamma=2.0, seed=seed, head=head)
    with torch.no_grad():
        return head(torch.from_numpy(test_x)).numpy()


def compare_heads(model, tokenizer, run: str, texts: dict, train_labels, test_labels, read: int, tail: int = 32,
                  raw: dict | None = None) -> list[dict]:
    if raw is None:
        raw = {s: vectors(model, tokenizer, texts[s], read, tail, normalise=False) for s in ("train", "test")}
    names = sorted(set(train_labels))
    unseen = sorted(set(test_labels) - set(names))
    if unseen:
        raise ValueError(f"{run}: test labels {unseen} are not in its train.csv")
    y_train = torch.tensor([names.index(v) for v in train_labels])
    y_test = np.array([names.index(v) for v in test_labels])
    normalised = {s: raw[s] / np.linalg.norm(raw[s], axis=1, keepdims=True) for s in raw}
    predictions = {"logistic_regression": LogisticRegression(max_iter=2000).fit(normalised["train"], y_train.numpy())
                   .predict(normalised["test"])}
    for seed in range(3):
        for name, x in (("project_head", raw), ("project_head_normalised", normalised)):
            predictions[f"{name}_{seed}"] = project_head_logits(x["train"], y_train, x["test"], len(names),
                                                                seed).argmax(-1)
    rows = []
    for name, predicted in predictions.items():
        seeded = name[-1].isdigit()
        row = {"run": run, "head": name.rstrip("_0123456789") if seeded else name, "seed": name[-1] if seeded else None,
               "accuracy": accuracy_score(y_test, predicted), "macro_f1": f1_score(y_test, predicted, average="macro")}
        rows.append(row)
        print(json.dumps(row), flush=True)
    frame = pd.DataFrame(rows)
    return frame.groupby(["run", "head"], as_index=False)[["accuracy", "macro_f1"]].mean().to_dict("records")


def compare_heads_on_exports(args) -> None:
    from ticket_router import Router

    rows = []
    for run in map(Path, args.exports):
        data = run.parent.parent / "data" / run.name
        frames = {split: read_split(data, split) for split in ("train", "test")}
        router = Router(run / "model")
        raw = {split: router.predict_proba(list(f["title"]), list(f["description"]), vectors=True)[1].astype(np.float32)
               for split, f in frames.items()}
        own = json.loads((run / "reports" / "metrics.json").read_text())["combination"]["head_only"]["test"]
        print(json.dumps({"run": run.name, "own_head": own}), flush=True)
        if args.mix:
            rows.extend(replay_mix(run, raw, frames["train"][args.label_column], frames["test"][args.label_column]))
            continue
        rows.extend(compare_heads(None, None, run.name, None, frames["train"][args.label_column],
                                  frames["test"][args.label_column], 128, raw=raw))
    write_and_tabulate(rows, "head", args.output)


def replay_mix(run: Path, raw: dict, train_labels, test_labels, seeds: int = 3) -> list[dict]:
    """The run's own final model on test against the same mix over a head refitted on all of train.csv: the run's
    chosen wide_scale and bias_shift (metrics.json `combination`) applied to the refitted head's test logits and the
    run's own wide logits (reports/combination_inputs.npz). The project's head, as `compare_heads` trains it."""
    chosen = json.loads((run / "reports" / "metrics.json").read_text())
    mix = chosen["combination"]
    inputs = np.load(run / "reports" / "combination_inputs.npz")
    names = sorted(set(train_labels))
    y_test = np.array([names.index(v) for v in test_labels])
    if not np.array_equal(y_test, inputs["test_labels"]):
        raise ValueError(f"{run}: test.csv is not the run's test split in order")
    shift = np.asarray(mix.get("bias_shift", 0.0))
    wide = mix["wide_scale"] * inputs["test_wide_logits"] + shift

    def scored(head: str, logits: np.ndarray) -> dict:
        predicted = logits.argmax(-1)
        return {"run": run.name, "head": head, "accuracy": accuracy_score(y_test, predicted),
                "macro_f1": f1_score(y_test, predicted, average="macro")}

    rows = [scored("own_head", inputs["test_head_logits"]), scored("own_final", inputs["test_head_logits"] + wide)]
    if abs(rows[1]["macro_f1"] - chosen["test"]["macro_f1"]) > 1e-9:
        raise ValueError(f"{run}: the replayed mix scores {rows[1]['macro_f1']:.4f}, the run {chosen['test']['macro_f1']:.4f}")
    y_train = torch.tensor([names.index(v) for v in train_labels])
    refitted = []
    for seed in range(seeds):
        logits = project_head_logits(raw["train"], y_train, raw["test"], len(names), seed)
        refitted += [scored("refitted_head", logits), scored("refitted_final", logits + wide)]
    frame = pd.DataFrame(refitted).groupby(["run", "head"], as_index=False)[["accuracy", "macro_f1"]].mean()
    rows += frame.to_dict("records")
    for row in rows:
        print(json.dumps(row), flush=True)
    return rows


def write_and_tabulate(rows: list[dict], column: str, output: str) -> None:
    """Write every row first (a table that cannot be drawn loses nothing), then the mean macro-F1 table by run."""
    Path(output).parent.mkdir(parents=True, exist_ok=True)
    Path(output).write_text(json.dumps(rows, indent=1))
    table = pd.DataFrame(rows).pivot_table(index="run", columns=column, values="macro_f1", aggfunc="mean")
    print(table.round(4).to_string())
    if pd.DataFrame(rows).duplicated(["run", column]).any():
        print(f"(runs sharing a folder name are averaged in this table; {output} keeps each)")
    print(f"mean macro-F1 by {column}:", table.mean().round(4).to_dict())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", nargs="+", default=[], help="folders holding train.csv and test.csv")
    parser.add_argument("--exports", nargs="+", default=[], help="bench_long_tickets.py run folders (model/ inside)")
    parser.add_argument("--reads", nargs="+", type=int, default=[128, 256, 384], help="tokens read, special ones in")
    parser.add_argument("--tail", type=int, default=64, help="tokens of a long ticket's end (32 for a 128 read)")
    parser.add_argument("--label_column", default="type")
    parser.add_argument("--heads", action="store_true", help="compare heads on the first read's vectors instead")
    parser.add_argument("--mix", action="store_true", help="with --exports: replay each run's chosen mix over a head "
                        "refitted on all of train.csv against the run's own final model")
    parser.add_argument("--output", default="outputs/screen_frozen_vectors.json")
    args = parser.parse_args()
    if not args.runs and not args.exports:
        parser.error("give --runs (folders with train.csv and test.csv) or --exports (finished run folders)")
    if args.exports:
        return compare_heads_on_exports(args)
    from custom_trainer.encoders import larger_encoder_path

    path = larger_encoder_path()
    tokenizer, model = AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path).eval()
    torch.manual_seed(0)
    rows = []
    for run in map(Path, args.runs):
        train, test = (read_split(run, split) for split in ("train", "test"))
        texts = {split: [" ".join(str(v) for v in row if str(v)) for row in frame[TEXT_COLUMNS].itertuples(index=False)]
                 for split, frame in (("train", train), ("test", test))}
        if args.heads:
            read = args.reads[0]
            rows.extend(compare_heads(model, tokenizer, run.name, texts, train[args.label_column],
                                      test[args.label_column], read, 32 if read <= 128 else args.tail))
            continue
        for read in args.reads:
            tail = 32 if read <= 128 else args.tail
            started = time.perf_counter()
            x_train, x_test = (vectors(model, tokenizer, texts[s], read, tail) for s in ("train", "test"))
            head = LogisticRegression(max_iter=2000).fit(x_train, train[args.label_column])
            predicted = head.predict(x_test)
            row = {"run": run.name, "read": read, "accuracy": accuracy_score(test[args.label_column], predicted),
                   "macro_f1": f1_score(test[args.label_column], predicted, average="macro"),
                   "seconds": round(time.perf_counter() - started, 1)}
            rows.append(row)
            print(json.dumps(row), flush=True)
    write_and_tabulate(rows, "head" if args.heads else "read", args.output)


if __name__ == "__main__":
    main()
