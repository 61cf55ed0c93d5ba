from custom_trainer.contrastive import stage_plan
from custom_trainer.run_report import _data_section
from custom_trainer.small_exports import MEASURED, reading_plan

SMALL_BALANCED = [0] * 80 + [1] * 80 + [2] * 80


def test_the_data_section_gives_the_shared_reason_of_stage_and_reading_once():
    recipe = stage_plan(None, SMALL_BALANCED)
    reading = reading_plan(None, 128, 0, 32, 0.4, SMALL_BALANCED)
    assert MEASURED in recipe["why"] and MEASURED in reading["why"]  # both plans give it: the case this test is for
    html = _data_section({"recipe": recipe, "reading": reading})
    assert html.count("long-tailed queues and larger exports keep the plain recipe") == 1
    assert html.count("240 training tickets (under 500)") == 1
    assert "40% of training tickets over 128 tokens" in html  # what only the reading says stays
    assert "contrastive_epochs overrides" in html


def test_a_reason_with_nothing_new_left_is_not_given_in_empty_brackets():
    html = _data_section({"recipe": {"contrastive_epochs": 0.0, "why": "off: a; b"},
                          "reading": {"max_length": 128, "head_tail_length": 0, "why": "b; off: a"}})
    assert "Long tickets read by: the first 128 tokens.</p>" in html
    assert "()" not in html


def test_untrusted_text_in_a_reason_is_escaped():
    html = _data_section({"recipe": {"contrastive_epochs": 0.0, "why": "<script>x</script>"}})
    assert "<script>" not in html and "&lt;script&gt;" in html
