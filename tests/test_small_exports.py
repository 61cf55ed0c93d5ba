"""What a small export of balanced labels gets by default: the rule's cases, and a run that follows it."""

import json

import pytest

from custom_trainer.small_exports import reading_plan, small_and_balanced

BALANCED_300 = [0] * 100 + [1] * 100 + [2] * 100


@pytest.mark.parametrize("labels, small, words", [
    (BALANCED_300, True, "300 training tickets (under 500)"),
    ([0] * 100 + [1] * 100 + [2] * 50, True, "rarest 50, largest 100"),   # exactly half: balanced
    ([0] * 100 + [1] * 100 + [2] * 49, False, "long-tailed"),
    ([0] * 250 + [1] * 250, False, "500 training tickets, not a small export"),
])
def test_small_and_balanced_says_which_and_why(labels, small, words):
    result, why = small_and_balanced(labels)
    assert result is small and words in why, why


@pytest.mark.parametrize("set_to, chunk, tail, share, labels, expected, words", [
    (None, 0, 32, 0.43, BALANCED_300, (512, 128), "on: 300 training tickets"),
    (None, 0, 32, 0.20, BALANCED_300, (512, 128), "on:"),                    # at the threshold
    (None, 0, 32, 0.19, BALANCED_300, (128, 0), "under 20%"),
    (None, 0, 32, 0.43, [0] * 200 + [1] * 50, (128, 0), "long-tailed"),
    (None, 0, 32, 0.43, [0] * 300 + [1] * 300, (128, 0), "not a small export"),
    (None, 64, 32, 0.43, BALANCED_300, (128, 0), "chunk_length"),            # windows asked for instead
    (None, 0, 128, 0.43, BALANCED_300, (128, 0), "tail_length 128"),
    (0, 0, 32, 0.43, BALANCED_300, (128, 0), "head_tail_length is 0"),       # set: the rule stays out
    (96, 0, 32, 0.0, [0] * 1000 + [1] * 3, (128, 96), "set by head_tail_length"),
])
def test_reading_plan_reads_long_tickets_of_small_balanced_exports_by_their_two_ends(
        set_to, chunk, tail, share, labels, expected, words):
    plan = reading_plan(set_to, 128, chunk, tail, share, labels)
    assert (plan["max_length"], plan["head_tail_length"]) == expected and words in plan["why"], plan


def test_a_small_balanced_run_of_long_tickets_reads_them_by_their_two_ends(tiny_bert, tmp_path, dataset_cache):
    """The seed corpus of 30 a queue is small and balanced; at max_length 16 most of its tickets are long, so the
    unset rule reads them by their ends out of 64 tokens: the model, its export and the reports say so."""
    from custom_trainer.arguments import parse_args
    from tests.conftest import tiny_run_flags
    import train

    flags = tiny_run_flags(tiny_bert, tmp_path / "run", dataset_cache)
    at = flags.index("--head_tail_length")
    del flags[at:at + 2]  # unset: the rule decides
    train.main(*parse_args([*flags, "--num_train_epochs", "1", "--max_length", "16", "--tail_length", "4"])[:3])
    reports = tmp_path / "run" / "reports"
    reading = json.loads((reports / "data_report.json").read_text())["reading"]
    assert (reading["max_length"], reading["head_tail_length"]) == (64, 16) and reading["why"].startswith("on: ")
    config = json.loads((tmp_path / "run" / "model" / "config.json").read_text())
    assert (config["max_input_length"], config["head_tail_length"], config["tail_length"]) == (64, 16, 4)
    assert "Long tickets read by: first and last tokens, 16 of up to 64" in (reports / "index.html").read_text()


# encoder_plan: the larger encoder for a small balanced export, where installed and within the budget.
def _never_timed(passes):
    raise AssertionError("the projection was asked for where the answer does not depend on it")


@pytest.mark.parametrize("setting, default_encoder, by_rule, fine_tune, installed, words", [
    (False, True, True, False, True, "larger_encoder_for_small_exports is false"),
    (None, False, True, False, True, "model_name_or_path is set"),     # a hand-set encoder is never replaced
    (True, False, True, False, True, "model_name_or_path is set"),
    (None, True, False, False, True, "only where the rule makes the contrastive stage"),
    (None, True, True, True, True, "fine-tuned after the stage"),      # measured, and projected, without it
    (None, True, True, False, False, "not installed"),
])
def test_encoder_plan_keeps_the_embedded_encoder_without_timing_when_it_cannot_apply(setting, default_encoder,
                                                                                     by_rule, fine_tune, installed,
                                                                                     words):
    from custom_trainer.small_exports import encoder_plan

    plan = encoder_plan(setting, default_encoder, by_rule, fine_tune, installed, _never_timed, 600)
    assert plan["larger"] is False and plan["projected_s"] is None and words in plan["why"], plan


@pytest.mark.parametrize("setting, by_rule, projected, larger, words", [
    (None, True, 250.0, True, "within small_export_budget_s 600"),
    (None, True, 600.0, True, "project 600.0 s"),                  # at the budget
    (None, True, 600.5, False, "project 600.5 s for the run on this machine with 8 passes, over small_export_budget_s 600"),
])
def test_encoder_plan_decides_on_the_projection_unless_set(setting, by_rule, projected, larger, words):
    from custom_trainer.small_exports import encoder_plan

    plan = encoder_plan(setting, True, by_rule, False, True, lambda passes: projected, 600)
    assert plan["larger"] is larger and plan["projected_s"] == projected and words in plan["why"], plan
    assert plan["contrastive_epochs"] is None, plan  # fits with the rule's passes, or not even with fewer


@pytest.mark.parametrize("per_pass, larger, passes, projected, words", [
    (70.0, True, None, 560.0, "within small_export_budget_s 600"),           # 8 passes fit
    (100.0, True, 4.0, 400.0, "on, with 4 passes of the stage"),             # 8 do not (800 s), 4 do
    (160.0, False, None, 1280.0, "over small_export_budget_s 600 (640 s with 4 passes)"),  # neither
])
def test_encoder_plan_takes_fewer_passes_where_the_rules_do_not_fit(per_pass, larger, passes, projected, words):
    from custom_trainer.small_exports import encoder_plan

    asked = []

    def projected_seconds(stage_passes):
        asked.append(stage_passes)
        return per_pass * stage_passes

    plan = encoder_plan(None, True, True, False, True, projected_seconds, 600, 8.0)
    assert plan["larger"] is larger and plan["contrastive_epochs"] == passes, plan
    assert plan["projected_s"] == projected and words in plan["why"], plan
    assert asked == ([8.0] if per_pass == 70.0 else [8.0, 4.0])


def test_encoder_plan_tries_no_fewer_passes_than_it_has():
    from custom_trainer.small_exports import encoder_plan

    asked = []
    plan = encoder_plan(None, True, True, False, True, lambda passes: asked.append(passes) or 900.0, 600, 4.0)
    assert not plan["larger"] and asked == [4.0] and "with 4 passes" in plan["why"], plan


@pytest.mark.parametrize("by_rule", [True, False])
def test_encoder_plan_set_true_takes_the_larger_encoder_untimed(by_rule):
    from custom_trainer.small_exports import encoder_plan

    plan = encoder_plan(True, True, by_rule, True, True, _never_timed, 600)  # whatever the export, machine, recipe
    assert plan == {"larger": True, "contrastive_epochs": None, "projected_s": None,
                    "why": "on: set by larger_encoder_for_small_exports"}


def test_projected_run_seconds_counts_the_stage_steps_and_the_scoring_batches():
    from custom_trainer.small_exports import projected_run_seconds

    # 240 training tickets in batches of 32: 7 full steps a pass (the last partial batch is dropped), 8 passes = 56
    # steps; 870 tickets scored = 28 batches; plus what the run took so far and the fixed part.
    seconds = projected_run_seconds(3.0, 1.0, 240, 870, 8.0, 32, elapsed_s=20.0, fixed_s=15.0)
    assert seconds == 20.0 + 56 * 3.0 + 28 * 1.0 + 15.0
    # fewer training tickets than a batch: one step a pass
    assert projected_run_seconds(2.0, 0.0, 20, 0, 8.0, 32, elapsed_s=0.0, fixed_s=0.0) == 16.0


def test_projected_run_seconds_counts_the_slow_first_steps_once():
    from custom_trainer.small_exports import projected_run_seconds

    # the first two steps took 14 s together, a later one 3.5 s: 14 + 54 x 3.5 for 56 steps
    seconds = projected_run_seconds(3.5, 0.0, 240, 0, 8.0, 32, elapsed_s=0.0, fixed_s=0.0, warmup_s=14.0,
                                    warmup_steps=2)
    assert seconds == 14.0 + 54 * 3.5
    # a one-step stage pays half the warm-up it was timed at, and no steady step
    assert projected_run_seconds(3.5, 0.0, 20, 0, 1.0, 32, elapsed_s=0.0, fixed_s=0.0, warmup_s=14.0,
                                 warmup_steps=2) == 7.0


@pytest.fixture
def larger_stand_in(monkeypatch, tiny_bert, tiny_distilbert):
    """The embedded encoder stood in for by tiny_bert, the installed larger one by tiny_distilbert (no 420 MB)."""
    import train

    monkeypatch.setattr(train, "resolve_encoder", lambda name: str(tiny_bert))
    monkeypatch.setattr(train, "larger_encoder_pieces", lambda: ["installed"])
    monkeypatch.setattr(train, "larger_encoder_path", lambda: tiny_distilbert)


def _default_run_flags(tiny_bert, output_dir, dataset_cache) -> list[str]:
    from tests.conftest import tiny_run_flags

    flags = tiny_run_flags(tiny_bert, output_dir, dataset_cache)
    flags[flags.index("--model_name_or_path") + 1] = "embedded"  # left at its default
    flags[flags.index("--corpus_size") + 1] = "12"  # 12 tickets a queue: still small and balanced, and quick
    at = flags.index("--contrastive_epochs")
    del flags[at:at + 2]  # unset: the rule makes the stage (the seed corpus of 30 a queue is small and balanced)
    return flags


@pytest.mark.parametrize("budget, setting, larger, words", [
    (3600, [], True, "within small_export_budget_s 3600"),
    (0.01, [], False, "over small_export_budget_s 0.01"),
    (0.01, ["--larger_encoder_for_small_exports", "true"], True, "set by larger_encoder_for_small_exports"),
])
def test_a_small_balanced_run_trains_the_larger_encoder_when_a_timed_step_fits_the_budget(
        larger_stand_in, tiny_bert, tmp_path, dataset_cache, budget, setting, larger, words):
    from custom_trainer.arguments import parse_args
    import train

    flags = _default_run_flags(tiny_bert, tmp_path / "run", dataset_cache)
    train.main(*parse_args([*flags, "--small_export_budget_s", str(budget), *setting])[:3])
    encoder = json.loads((tmp_path / "run" / "reports" / "data_report.json").read_text())["encoder"]
    assert encoder["larger"] is larger and words in encoder["why"], encoder
    assert (encoder["projected_s"] is None) == bool(setting), encoder  # timed unless set
    config = json.loads((tmp_path / "run" / "model" / "config.json").read_text())
    card = (tmp_path / "run" / "model" / "README.md").read_text()
    if larger:  # the export is the larger encoder's, and the card names it
        assert encoder["name"] == "all-mpnet-base-v2"
        assert config["encoder_config"]["model_type"] == "distilbert", config.get("encoder_config")
        assert "Encoder `all-mpnet-base-v2`" in card
    else:
        assert encoder["name"] == "embedded"
        assert config["encoder_config"]["model_type"] == "bert"
        assert "Encoder `embedded`" in card
    page = (tmp_path / "run" / "reports" / "index.html").read_text()
    assert f"Encoder: {encoder['name']} (" in page


def test_a_run_whose_rule_passes_do_not_fit_trains_the_larger_encoder_with_fewer(
        larger_stand_in, monkeypatch, tiny_bert, tmp_path, dataset_cache):
    """8 passes project over the budget, 4 within it: the larger encoder trains, its stage makes 4 passes, and the
    data report's recipe and encoder say so."""
    from custom_trainer.arguments import parse_args
    import train

    monkeypatch.setattr(train, "projected_run_seconds", lambda stage_epochs, **timed: 100.0 * stage_epochs)
    flags = _default_run_flags(tiny_bert, tmp_path / "run", dataset_cache)
    metrics = train.main(*parse_args([*flags, "--small_export_budget_s", "500"])[:3])
    report = json.loads((tmp_path / "run" / "reports" / "data_report.json").read_text())
    assert report["encoder"]["larger"] and report["encoder"]["contrastive_epochs"] == 4.0, report["encoder"]
    assert "on, with 4 passes of the stage" in report["encoder"]["why"]
    assert report["recipe"]["contrastive_epochs"] == 4.0 and "4 passes with all-mpnet-base-v2" in report["recipe"]["why"]
    assert metrics["head_probe"]["contrastive"]["epochs"] == 4.0, metrics["head_probe"]["contrastive"]
    card = (tmp_path / "run" / "model" / "README.md").read_text().replace("\n", " ")
    page = (tmp_path / "run" / "reports" / "index.html").read_text()
    assert "a contrastive sentence-pair stage (4 passes" in card and "Contrastive stage before the head: 4 passes" in page


def test_the_timed_first_steps_reach_the_projection(larger_stand_in, monkeypatch, tiny_bert, tmp_path,
                                                     dataset_cache):
    from custom_trainer.arguments import parse_args
    import train

    monkeypatch.setattr(train, "stage_step_cost", lambda *a, **k: {"warmup_s": 400.0, "warmup_steps": 2, "step_s": 0.0,
                                                                    "forward_s": 0.0})
    asked, projected = [], train.projected_run_seconds
    monkeypatch.setattr(train, "projected_run_seconds", lambda **kw: asked.append(kw) or projected(**kw))
    flags = _default_run_flags(tiny_bert, tmp_path / "run", dataset_cache)
    train.main(*parse_args([*flags, "--small_export_budget_s", "300"])[:3])
    encoder = json.loads((tmp_path / "run" / "reports" / "data_report.json").read_text())["encoder"]
    assert asked[0]["warmup_s"] == 400.0 and asked[0]["warmup_steps"] == 2, asked
    # 400 s of slow first steps alone are over 300 s, with 8 passes or 4: the embedded encoder
    assert not encoder["larger"] and encoder["projected_s"] >= 400.0 and "with 4 passes" in encoder["why"], encoder


def test_the_larger_encoder_asked_for_and_not_installed_fails_before_training(
        larger_stand_in, monkeypatch, tiny_bert, tmp_path, dataset_cache):
    from custom_trainer.arguments import parse_args
    import train

    monkeypatch.setattr(train, "larger_encoder_pieces", lambda: None)
    flags = _default_run_flags(tiny_bert, tmp_path / "run", dataset_cache)
    with pytest.raises(ValueError, match="larger_encoder_for_small_exports: true needs all-mpnet-base-v2's packages"):
        train.main(*parse_args([*flags, "--larger_encoder_for_small_exports", "true"])[:3])
    assert not (tmp_path / "run" / "model").exists()


def test_timing_the_larger_encoder_draws_none_of_the_runs_random_numbers(larger_stand_in, tiny_bert, tmp_path,
                                                                         dataset_cache):
    """The run that timed the larger encoder (and chose it) is the run that took it untimed, bit for bit."""
    import numpy as np

    from custom_trainer.arguments import parse_args
    import train

    scores = {}
    for name, extra in (("timed", ["--small_export_budget_s", "3600"]),
                        ("untimed", ["--larger_encoder_for_small_exports", "true"])):
        flags = _default_run_flags(tiny_bert, tmp_path / name, dataset_cache)
        train.main(*parse_args([*flags, *extra])[:3])
        encoder = json.loads((tmp_path / name / "reports" / "data_report.json").read_text())["encoder"]
        assert encoder["larger"] and (encoder["projected_s"] is None) == (name == "untimed"), encoder
        scores[name] = np.load(tmp_path / name / "reports" / "scores.npz")
    assert scores["timed"].files == scores["untimed"].files
    for key in scores["timed"].files:
        assert np.array_equal(scores["timed"][key], scores["untimed"][key]), key
