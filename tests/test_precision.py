import numpy as np
import pytest
import torch
from transformers import AutoTokenizer, DataCollatorWithPadding

from custom_trainer import TicketClassifier
from custom_trainer.arguments import TicketTrainingArguments
from custom_trainer.precision import cpu_flags, native_bf16, resolve_cpu_precision
from custom_trainer.trainer import TicketTrainer
from ticket_data import ticket_tokenizer

from test_trainer import LABELS, tiny_dataset

AMX = frozenset({"avx2", "avx512f", "amx_tile", "amx_bf16"})
AVX512_BF16 = frozenset({"avx2", "avx512f", "avx512_bf16"})
AVX2 = frozenset({"avx", "avx2", "fma"})


@pytest.mark.parametrize("flags, expected", [(AMX, "bf16"), (AVX512_BF16, "bf16"), (AVX2, "fp32"), (frozenset(), "fp32")])
def test_auto_picks_bf16_only_with_native_bf16(flags, expected):
    assert resolve_cpu_precision("auto", flags) == expected
    assert native_bf16(flags) is (expected == "bf16")


@pytest.mark.parametrize("cap, expected", [("AVX2", "fp32"), ("avx512_core", "fp32"), ("AVX512_CORE_AMX", "bf16"),
                                           ("ALL", "bf16"), ("", "bf16")])
def test_a_onednn_isa_cap_below_bf16_means_fp32(monkeypatch, cap, expected):
    # ONEDNN_MAX_CPU_ISA=AVX2 on an AMX processor: oneDNN emulates bf16, so auto must not choose it.
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", cap)
    assert resolve_cpu_precision("auto", AMX) == expected


def test_explicit_choice_is_kept_and_a_bad_one_named():
    assert resolve_cpu_precision("fp32", AMX) == "fp32"
    assert resolve_cpu_precision("bf16", AVX2) == "bf16"
    with pytest.raises(ValueError, match="cpu_precision must be one of .*got 'fp8'"):
        resolve_cpu_precision("fp8")
    with pytest.raises(ValueError, match="got 'fp8'"):
        TicketTrainingArguments(output_dir="x", use_cpu=True, cpu_precision="fp8")


def test_cpu_flags_read_from_cpuinfo(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu avx2 amx_bf16\n\nprocessor\t: 1\nflags\t\t: fpu avx2 amx_bf16\n")
    assert cpu_flags.__wrapped__(str(cpuinfo)) == {"fpu", "avx2", "amx_bf16"}
    assert cpu_flags.__wrapped__(str(tmp_path / "missing")) == frozenset()


def test_arguments_turn_on_bf16_autocast_on_cpu(tmp_path):
    bf16 = TicketTrainingArguments(output_dir=str(tmp_path), use_cpu=True, cpu_precision="bf16")
    assert bf16.bf16 and bf16.use_cpu
    fp32 = TicketTrainingArguments(output_dir=str(tmp_path), use_cpu=True, cpu_precision="fp32")
    assert not fp32.bf16
    auto = TicketTrainingArguments(output_dir=str(tmp_path), use_cpu=True)
    assert auto.bf16 is (native_bf16() and not torch.cuda.is_available())


def test_bf16_training_then_fp32_scoring(tiny_bert, tmp_path):
    """Trained under bf16 autocast, the final figures are the exported model's: fp32, like `model(...)` itself."""
    tokenizer = ticket_tokenizer(AutoTokenizer.from_pretrained(tiny_bert))
    data = tiny_dataset(tokenizer, 32)
    torch.manual_seed(0)
    model = TicketClassifier.from_encoder(str(tiny_bert), LABELS)
    args = TicketTrainingArguments(output_dir=str(tmp_path), max_steps=3, per_device_train_batch_size=8,
                                   eval_strategy="no", save_strategy="no", load_best_model_at_end=False,
                                   use_cpu=True, disable_tqdm=True, cpu_precision="bf16", report_to="none")
    trainer = TicketTrainer(model=model, args=args, train_dataset=data, data_collator=DataCollatorWithPadding(tokenizer))
    trainer.train()
    mixed = trainer.predict(data).predictions
    trainer.use_full_precision()
    full = trainer.predict(data).predictions
    model.eval()
    with torch.no_grad():
        batch = DataCollatorWithPadding(tokenizer)([{k: row[k] for k in ("input_ids", "attention_mask", "token_type_ids")}
                                                    for row in data])
        reference = model(**batch).logits.numpy()
    np.testing.assert_allclose(full, reference, atol=1e-5)
    assert np.abs(mixed - reference).max() > 1e-4  # the autocast really ran in bf16 before
