import pytest
import torch

from conftest import REPO
from custom_trainer import TicketClassifier
from custom_trainer.arguments import parse_args


def write_yaml(tmp_path, text):
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return str(path)


def test_yaml_sets_defaults_and_flags_override(tmp_path):
    config = write_yaml(tmp_path, "learning_rate: 3.0e-4\nnum_train_epochs: 2\ntext_columns: [Document]\n")
    data, model, training, _ = parse_args(["--config", config, "--num_train_epochs", "5", "--output_dir", str(tmp_path)])
    assert training.learning_rate == 3e-4
    assert training.num_train_epochs == 5
    assert data.text_columns == ["Document"]
    assert model.model_name_or_path == "embedded"


def test_yaml_null_sets_none_and_numbers_take_the_fields_type(tmp_path):
    config = write_yaml(tmp_path, "save_total_limit: null\nhead_learning_rate: null\nnum_train_epochs: 6\n"
                        "learning_rate: 2e-5\n")
    _, _, training, _ = parse_args(["--config", config, "--output_dir", str(tmp_path)])
    assert training.save_total_limit is None  # the default is 2: null is honoured, not dropped
    assert training.head_learning_rate is None
    assert training.num_train_epochs == 6.0 and isinstance(training.num_train_epochs, float)
    assert training.learning_rate == 2e-5  # YAML reads 2e-5 as a string; the parser makes it the float
    _, _, training, _ = parse_args(["--config", config, "--save_total_limit", "3", "--output_dir", str(tmp_path)])
    assert training.save_total_limit == 3  # a flag still overrides the YAML


def test_null_for_a_field_that_cannot_be_none_is_named(tmp_path):
    config = write_yaml(tmp_path, "learning_rate: null\nfocal_gamma: 1.0\n")
    with pytest.raises(ValueError, match=r"key\(s\) \['learning_rate'\] cannot be null"):
        parse_args(["--config", config])


def test_a_renamed_key_names_its_new_name(tmp_path):
    config = write_yaml(tmp_path, "linear_probe_epochs: 5\n")
    with pytest.raises(ValueError, match=r"renamed key\(s\): linear_probe_epochs -> head_probe_epochs"):
        parse_args(["--config", config])


def test_default_config_is_cpu_yaml():
    data, model, training, path = parse_args([])
    assert path.name == "cpu.yaml"
    assert model.model_name_or_path == "embedded" and data.dataset


def test_unknown_key_is_named(tmp_path):
    config = write_yaml(tmp_path, "learning_rate: 1.0e-4\nlearnig_rate: 2\n")
    with pytest.raises(ValueError, match=r"config\.yaml: unknown key\(s\) \['learnig_rate'\]"):
        parse_args(["--config", config])


def test_wrong_type_is_named(tmp_path):
    config = write_yaml(tmp_path, "per_device_train_batch_size: many\n")
    with pytest.raises(ValueError, match=r"--per_device_train_batch_size.*invalid int value: 'many'"):
        parse_args(["--config", config])


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--learning_rate=-1e-5"], "learning_rate must be > 0, got -1e-05"),
        (["--early_stopping_patience", "0"], "early_stopping_patience must be >= 1, got 0"),
        (["--focal_gamma", "-2"], "focal_gamma must be >= 0, got -2.0"),
        (["--frozen_layers", "-1"], "frozen_layers must be >= 0, got -1"),
        (["--contrastive_batch_size", "1"], r"contrastive_batch_size must be >= 2 \(a pair\), got 1"),
        (["--fine_tune_after_stage", "false", "--head_probe_epochs", "0"],
         "fine_tune_after_stage false with head_probe_epochs 0 would train no head at all"),
        (["--pooling", "max"], r"pooling must be one of \('cls', 'mean'\), got 'max'"),
        (["--small_export_budget_s", "0"], "small_export_budget_s must be > 0, got 0.0"),
        (["--larger_encoder_for_small_exports", "true", "--model_name_or_path", "/some/encoder"],
         "larger_encoder_for_small_exports: true replaces the embedded encoder, but model_name_or_path is "
         "'/some/encoder': set one of them"),
        (["--max_length", "2"], "max_length must be >= 8 tokens, got 2"),
        (["--head_tail_length", "128"], r"head_tail_length must be 0 or between 8 and max_length - 1 \(127\), got 128"),
        (["--max_length", "512", "--head_tail_length", "128", "--tail_length", "128"],
         r"tail_length must be between 1 and head_tail_length - 1 \(127\), got 128"),
        (["--max_length", "512", "--head_tail_length", "128", "--chunk_length", "128"],
         r"head_tail_length \(128\) and chunk_length \(128\) are two ways to read long tickets: set one"),
        (["--train_file", "/no/such/tickets.csv"], r"train_file: file not found: /no/such/tickets\.csv"),
    ],
)
def test_impossible_values_fail_before_training(flags, message):
    with pytest.raises(ValueError, match=message):
        parse_args(flags)


def test_missing_config_file():
    with pytest.raises(ValueError, match=r"--config: file not found: nowhere\.yaml"):
        parse_args(["--config", "nowhere.yaml"])


def test_t4_config_is_the_seeds_recipe_in_fp16(tiny_distilbert, tmp_path):
    data, model_args, training, _ = parse_args(
        ["--config", str(REPO / "configs" / "t4.yaml"), "--output_dir", str(tmp_path)]
    )
    assert model_args.model_name_or_path == "distilbert-base-uncased"
    assert training.fp16 and not training.bf16
    assert (training.learning_rate, training.weight_decay, training.per_device_train_batch_size) == (2e-5, 0.01, 32)
    assert (training.num_train_epochs, training.max_grad_norm, training.early_stopping_patience) == (10, 1.0, 3)
    assert training.one_cycle and training.metric_for_best_model == "macro_f1" and training.load_best_model_at_end
    assert data.dataset == "seed"

    model = TicketClassifier.from_encoder(str(tiny_distilbert), {0: "a", 1: "b"})
    assert model.encoder.config.model_type == "distilbert"
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device: fp16 training steps need a GPU (the arguments were checked above)")
    from train import main

    training.max_steps, training.num_train_epochs = 3, 1
    model_args.model_name_or_path = str(tiny_distilbert)
    data.corpus_size = 10
    metrics = main(data, model_args, training)
    assert "macro_f1" in metrics["test"]


def test_embedded_encoder_is_verified(monkeypatch):
    from custom_trainer import encoders

    assert (encoders.embedded_encoder_path() / "config.json").is_file()
    monkeypatch.setattr(encoders, "EMBEDDED_SHA256", "0" * 64)
    with pytest.raises(ValueError, match=r"model\.safetensors has sha256 53aa5117.*expected 0000"):
        encoders.embedded_encoder_path()


def test_unreachable_hub_model_fails_at_once_naming_the_key():
    from custom_trainer.encoders import resolve_encoder

    with pytest.raises(ValueError, match=r"model_name_or_path: 'some-org/not-cached-model' .*embedded"):
        resolve_encoder("some-org/not-cached-model")


def test_bf16_on_a_gpu_without_it_fails_before_training(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a, **k: "Tesla T4")
    with pytest.raises(ValueError, match=r"bf16: Tesla T4 has no bfloat16 support"):
        parse_args(["--bf16", "true"])


def test_test_labels_missing_from_train_fail_before_training(tmp_path):
    import pandas as pd

    from train import load_data

    pd.DataFrame({"subject": ["a"] * 9, "description": "b", "category": ["x", "y", "z"] * 3}).to_csv(tmp_path / "tr.csv", index=False)
    pd.DataFrame({"subject": ["a"], "description": "b", "category": ["w"]}).to_csv(tmp_path / "te.csv", index=False)
    data, _, training, _ = parse_args(["--train_file", str(tmp_path / "tr.csv"), "--test_file", str(tmp_path / "te.csv"),
                                       "--rare_labels", "error", "--min_examples_per_label", "3"])
    with pytest.raises(ValueError, match=r"te\.csv: label\(s\) \['w'\]"):
        load_data(data, training.seed)


def test_data_policy_arguments():
    data, *_ = parse_args(["--rare_labels", "drop", "--min_examples_per_label", "25", "--strict_data", "true",
                           "--csv_delimiter", "\\t", "--rare_label_name", "Triage"])
    policy = data.data_policy
    assert (policy.rare_labels, policy.min_examples_per_label, policy.strict_data, policy.csv_delimiter,
            policy.rare_label_name) == ("drop", 25, True, "\t", "Triage")
    assert parse_args([])[0].data_policy.rare_labels == "merge"  # the default: a long tail trains without edits
    with pytest.raises(ValueError, match=r"rare_labels must be one of \('merge', 'drop', 'error'\), got 'keep'"):
        parse_args(["--rare_labels", "keep"])
    with pytest.raises(ValueError, match="min_examples_per_label must be an integer >= 1, got 0"):
        parse_args(["--min_examples_per_label", "0"])


def test_split_seed_keeps_the_splits_while_the_training_seed_changes(tmp_path):
    import pandas as pd

    from train import load_data

    rows = 60
    pd.DataFrame({"subject": [f"ticket {i}" for i in range(rows)], "description": "text",
                  "category": ["x", "y", "z"] * (rows // 3)}).to_csv(tmp_path / "tr.csv", index=False)

    def validation(*flags):
        data, _, training, _ = parse_args(["--train_file", str(tmp_path / "tr.csv"), *flags])
        return sorted(load_data(data, training.seed)[0]["validation"]["subject"])

    assert validation("--seed", "1") != validation("--seed", "2")  # by default the carve-out follows the seed
    assert validation("--seed", "1", "--split_seed", "42") == validation("--seed", "2", "--split_seed", "42")


def test_the_configuration_reference_in_docs_is_current():
    from custom_trainer.arguments import configuration_reference

    committed = (REPO / "docs" / "configuration.md").read_text()
    assert committed == configuration_reference(), (
        "docs/configuration.md is stale: python -m custom_trainer.arguments > docs/configuration.md")
    assert "`head_probe_epochs`" in committed and "`class_weighting`" in committed


def test_help_lists_every_key_and_does_not_crash_on_a_percent(capsys):
    """A help text saying "95% intervals" made `python train.py --help` crash (argparse formats help with %)."""
    import dataclasses

    from custom_trainer.arguments import ARGUMENT_CLASSES, parse_args

    with pytest.raises(SystemExit) as exited:
        parse_args(["--help"])
    assert exited.value.code == 0
    text = capsys.readouterr().out
    assert "95% intervals" in text.replace("\n", " ").replace("  ", " ") or "95%" in text
    for cls in ARGUMENT_CLASSES:
        for field in dataclasses.fields(cls):
            if field.init and field.name in cls.__dict__.get("__annotations__", {}):
                assert f"--{field.name}" in text, field.name


@pytest.mark.process
def test_every_command_answers_help():
    import subprocess
    import sys

    from ticket_router.cli import build_parser

    commands = build_parser()._subparsers._group_actions[0].choices
    for name in commands:
        done = subprocess.run([sys.executable, "-m", "ticket_router.cli", name, "--help"], capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == 0 and "usage" in done.stdout.lower(), (name, done.stderr[-500:])
