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
