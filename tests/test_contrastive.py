"""The contrastive sentence-pair stage (SetFit's objective over every pair in a batch)."""

import json

import pytest
import torch

from custom_trainer.contrastive import contrastive_stage, pair_loss, stage_plan, stage_step_cost
from custom_trainer.probe import sentence_vectors
from tests.test_probe import setup


def test_pair_loss_is_zero_when_queues_cluster_and_orthogonal():
    vectors = torch.tensor([[1.0, 0.0], [2.0, 0.0], [0.0, 3.0], [0.0, 0.5]])
    labels = torch.tensor([0, 0, 1, 1])
    assert float(pair_loss(vectors, labels)) == pytest.approx(0.0, abs=1e-7)


def test_pair_loss_weighs_positive_and_negative_pairs_alike():
    # one positive pair at cosine 0 (error 1), five negative pairs at cosine 0 (error 0): (1 + 0) / 2,
    # not the 1/6 a plain mean over the six pairs would give
    vectors = torch.eye(4)
    labels = torch.tensor([0, 0, 1, 2])
    assert float(pair_loss(vectors, labels)) == pytest.approx(0.5)
    # a negative pair pointing the same way costs its squared cosine
    same_way = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    assert float(pair_loss(same_way, torch.tensor([0, 1]))) == pytest.approx(1.0)


def test_pair_loss_skips_unlabelled_rows_and_backpropagates_on_a_lone_row():
    vectors = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]], requires_grad=True)
    # the unlabelled third row would make the pair (0, 2) a positive at cosine 0 if it were counted
    assert float(pair_loss(vectors, torch.tensor([0, 0, -100])).detach()) == pytest.approx(0.0, abs=1e-7)
    lone = pair_loss(vectors, torch.tensor([0, -100, -100]))
    lone.backward()
    assert float(lone.detach()) == 0.0 and vectors.grad is not None


def test_the_stage_pulls_queues_apart_and_leaves_the_head_alone(tiny_bert, seed_dataset):
    model, data, collator = setup(tiny_bert, seed_dataset, n=96)
    vectors, labels = sentence_vectors(model, data, collator)
    before = float(pair_loss(vectors, labels))
    head_before = {k: v.clone() for k, v in model.head.state_dict().items()}
    encoder_before = {k: v.clone() for k, v in model.encoder.state_dict().items()}
    model.eval()
    result = contrastive_stage(model, data, collator, epochs=8, learning_rate=1e-3, batch_size=32, seed=0)
    assert result["steps"] == 8 * 3  # 96 tickets in batches of 32
    assert not model.training  # handed back in the mode it came in
    after = float(pair_loss(*sentence_vectors(model, data, collator)))
    assert after < 0.7 * before, (before, after)
    assert any(not torch.equal(v, encoder_before[k]) for k, v in model.encoder.state_dict().items())
    for key, value in model.head.state_dict().items():
        assert torch.equal(value, head_before[key]), key


def test_a_stage_of_one_step_runs(tiny_bert, seed_dataset):
    """One step in all (its warm-up is the whole schedule): the learning-rate schedule must not divide by zero."""
    model, data, collator = setup(tiny_bert, seed_dataset, n=16)
    result = contrastive_stage(model, data, collator, epochs=1, learning_rate=1e-3, batch_size=32, seed=0)
    assert result["steps"] == 1


def test_the_stage_shows_its_steps_only_when_asked(tiny_bert, seed_dataset, capsys):
    model, data, collator = setup(tiny_bert, seed_dataset, n=32)
    contrastive_stage(model, data, collator, epochs=2, learning_rate=1e-3, batch_size=16, seed=0, progress=True)
    shown = capsys.readouterr().err
    assert "contrastive stage" in shown and "4/4" in shown and "loss=" in shown, shown
    contrastive_stage(model, data, collator, epochs=2, learning_rate=1e-3, batch_size=16, seed=0)
    assert "contrastive stage" not in capsys.readouterr().err


def test_a_stage_that_fails_closes_its_bar(tiny_bert, seed_dataset, monkeypatch):
    """A step that raises still ends the bar's line (the traceback does not start mid-bar)."""
    import tqdm.auto

    import custom_trainer.contrastive as contrastive

    bars = []

    class Recorded(tqdm.auto.tqdm):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            bars.append(self)

    calls = []

    def failing(vectors, labels):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("step 2 fails")
        return pair_loss(vectors, labels)

    model, data, collator = setup(tiny_bert, seed_dataset, n=32)
    monkeypatch.setattr(tqdm.auto, "tqdm", Recorded)  # after the setup, whose tokenising has bars of its own
    monkeypatch.setattr(contrastive, "pair_loss", failing)
    with pytest.raises(RuntimeError, match="step 2 fails"):
        contrastive_stage(model, data, collator, epochs=2, learning_rate=1e-3, batch_size=16, seed=0, progress=True)
    assert len(bars) == 1 and bars[0].n == 1 and bars[0].disable  # closed: tqdm disables a bar it closes


def test_stage_step_cost_times_a_step_and_a_scoring_batch(tiny_bert, seed_dataset):
    model, data, collator = setup(tiny_bert, seed_dataset, n=32)
    cost = stage_step_cost(model, data, collator, 32)
    assert cost["step_s"] > 0 and cost["forward_s"] > 0 and cost["warmup_s"] > 0, cost
    assert cost["step_s"] < 60 and cost["forward_s"] < 60  # seconds, not milliseconds or a count


def test_stage_step_cost_times_the_first_steps_apart(tiny_bert, seed_dataset, monkeypatch):
    """The slow first steps are summed into warmup_s, the steady step is the mean of the steps after them."""
    import custom_trainer.contrastive as contrastive

    model, data, collator = setup(tiny_bert, seed_dataset, n=32)
    stage = contrastive.contrastive_stage

    def timed_as_written(*args, step_seconds, **kwargs):  # the real stage, then step seconds written by hand
        result = stage(*args, **kwargs)
        step_seconds.extend([7.0, 6.0, 4.0, 3.0][:result["steps"]])
        return result

    monkeypatch.setattr(contrastive, "contrastive_stage", timed_as_written)
    cost = stage_step_cost(model, data, collator, 32)
    assert (cost["warmup_s"], cost["step_s"]) == (13.0, 3.5)


def test_no_stage_keeps_freed_memory_only_where_the_trainer_does(tiny_bert, tmp_path, dataset_cache, monkeypatch):
    from custom_trainer import cpu_memory
    from custom_trainer.arguments import parse_args
    from tests.conftest import tiny_run_flags
    import train

    calls = []
    monkeypatch.setattr(cpu_memory, "keep_freed_memory", lambda: calls.append("memory kept") or True)
    monkeypatch.setattr(train, "contrastive_stage", lambda *a, **k: calls.append("stage"))
    flags = tiny_run_flags(tiny_bert, tmp_path / "run", dataset_cache)
    data_args, model_args, args, _ = parse_args([*flags, "--num_train_epochs", "1", "--contrastive_epochs", "0"])
    train.main(data_args, model_args, args)
    assert calls == ["memory kept"]  # the Trainer's own; nothing earlier where no stage runs


@pytest.mark.parametrize("disable_tqdm", ["true", "false"])
def test_train_py_records_the_stage(tiny_bert, tmp_path, dataset_cache, monkeypatch, disable_tqdm):
    from custom_trainer.arguments import parse_args
    from tests.conftest import tiny_run_flags
    import train

    from custom_trainer import cpu_memory

    calls, shown, stage = [], [], train.contrastive_stage
    monkeypatch.setattr(cpu_memory, "keep_freed_memory", lambda: calls.append("memory kept") or True)
    monkeypatch.setattr(train, "contrastive_stage",
                        lambda *a, **k: calls.append("stage") or shown.append(k["progress"]) or stage(*a, **k))
    flags = tiny_run_flags(tiny_bert, tmp_path / "run", dataset_cache)
    data_args, model_args, args, _ = parse_args([*flags, "--num_train_epochs", "1", "--contrastive_epochs", "1",
                                                 "--contrastive_batch_size", "4", "--disable_tqdm", disable_tqdm])
    metrics = train.main(data_args, model_args, args)
    # The stage runs before the Trainer, with freed memory kept as the Trainer keeps it (which asks again after it).
    assert calls == ["memory kept", "stage", "memory kept"]
    assert shown == [disable_tqdm == "false"]  # the stage's bar where the Trainer shows its own
    # A few dozen validation tickets choose no epoch: the card does not claim early stopping.
    card = (tmp_path / "run" / "model" / "README.md").read_text().replace("\n", " ")
    assert "the last epoch kept (no epoch chosen on validation)" in card and "early stopping" not in card
    report = json.loads((tmp_path / "run" / "reports" / "data_report.json").read_text())
    # Set by hand: fine-tuned after it, as before the rule (1 epoch here).
    assert report["recipe"]["contrastive_epochs"] == 1.0 and report["recipe"]["fine_tune"] is True
    assert report["recipe"]["why"].startswith("set by contrastive_epochs; fine-tuned after it")
    assert {e["epoch"] for e in metrics["evaluations"]} == {1}
    stage = metrics["head_probe"]["contrastive"]
    train_tickets = report["splits"]["train"]
    # Its own batch size (not the head's 32 or so): one pass makes a step per 4 tickets.
    assert stage["batch_size"] == 4 and stage["steps"] == train_tickets // 4 and stage["seconds"] >= 0


@pytest.mark.parametrize("epochs, labels, expected, why", [
    (None, [0] * 100 + [1] * 100 + [2] * 100, 8.0, "on: 300 training tickets"),       # small, balanced
    (None, [0] * 100 + [1] * 100 + [2] * 49, 0.0, "long-tailed"),                     # rarest under half
    (None, [0] * 170 + [1] * 170 + [2] * 170, 0.0, "not a small export"),             # 510 tickets
    (None, [0] * 100 + [1] * 100 + [2] * 50, 8.0, "on:"),                             # exactly half: balanced
    (3.0, [0] * 1000 + [1] * 5, 3.0, "set by contrastive_epochs"),                    # set: the rule stays out
    (0.0, [0] * 100 + [1] * 100, 0.0, "contrastive_epochs is 0"),
])
def test_stage_plan_makes_the_stage_for_small_balanced_exports_only(epochs, labels, expected, why):
    plan = stage_plan(epochs, labels)
    assert plan["contrastive_epochs"] == expected and why in plan["why"], plan


@pytest.mark.parametrize("epochs, labels, fine_tune, head_probe, expected, why", [
    (None, [0] * 100 + [1] * 100 + [2] * 100, None, True, False, "nothing is fine-tuned (SetFit's recipe)"),
    (None, [0] * 100 + [1] * 100 + [2] * 100, True, True, True, "set by fine_tune_after_stage"),
    (None, [0] * 100 + [1] * 100 + [2] * 100, None, False, True, "head_probe_epochs is 0"),  # else no head trains
    (8.0, [0] * 100 + [1] * 100 + [2] * 100, None, True, True, "set by contrastive_epochs"),
    (8.0, [0] * 100 + [1] * 100 + [2] * 100, False, True, False, "set by fine_tune_after_stage"),
    (None, [0] * 170 + [1] * 170 + [2] * 170, False, True, True, "not a small export"),  # no stage: always fine-tuned
])
def test_stage_plan_fine_tunes_after_a_stage_it_sets_by_hand_only(epochs, labels, fine_tune, head_probe, expected,
                                                                  why):
    plan = stage_plan(epochs, labels, fine_tune, head_probe)
    assert plan["fine_tune"] is expected and why in plan["why"], plan


def test_a_small_balanced_run_makes_the_stage_by_default_and_says_why(tiny_bert, tmp_path, dataset_cache):
    from custom_trainer.arguments import parse_args
    from tests.conftest import tiny_run_flags
    import train

    flags = tiny_run_flags(tiny_bert, tmp_path / "run", dataset_cache)
    at = flags.index("--contrastive_epochs")
    del flags[at:at + 2]  # unset: the rule decides (the seed corpus of 30 a queue is small and balanced)
    # max_steps would override num_train_epochs in the Trainer: the rule's "no fine-tuning" has to hold against it;
    # and a checkpoint left in output_dir is not resumed (there is no fine-tuning to resume; the stage runs anew)
    left = tmp_path / "run" / "checkpoint-99"
    left.mkdir(parents=True)
    (left / "trainer_state.json").write_text("{}")
    metrics = train.main(*parse_args([*flags, "--num_train_epochs", "1", "--max_steps", "3",
                                      "--resume_from_checkpoint", "auto"])[:3])
    recipe = json.loads((tmp_path / "run" / "reports" / "data_report.json").read_text())["recipe"]
    assert recipe["contrastive_epochs"] == 8.0 and recipe["why"].startswith("on: "), recipe
    assert metrics["head_probe"]["contrastive"]["epochs"] == 8.0
    # SetFit's recipe: the head on the stage's frozen vectors, no epoch of fine-tuning after it.
    assert recipe["fine_tune"] is False and {e["epoch"] for e in metrics["evaluations"]} == {0}
    card = (tmp_path / "run" / "model" / "README.md").read_text()
    assert "a contrastive sentence-pair stage (8 passes" in card and "no fine-tuning after it" in card
    page = (tmp_path / "run" / "reports" / "index.html").read_text()
    assert "Contrastive stage before the head: 8 passes, then no fine-tuning (on: " in page  # the report says it too
