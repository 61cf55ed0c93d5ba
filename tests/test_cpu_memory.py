import json
import subprocess
import sys
import textwrap

import pytest

from custom_trainer import cpu_memory

pytestmark = pytest.mark.skipif(cpu_memory._glibc() is None, reason="glibc's malloc only (this C library is not glibc)")

# Run in a child process: the setting is process-wide and stays for the process's life.
PROBE = textwrap.dedent("""
    import ctypes, json, sys
    import torch
    from custom_trainer.cpu_memory import keep_freed_memory, _glibc

    class Info(ctypes.Structure):  # glibc's struct mallinfo2
        _fields_ = [(name, ctypes.c_size_t) for name in
                    ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                     "keepcost")]

    libc = _glibc()
    libc.mallinfo2.restype = Info
    applied = keep_freed_memory() if sys.argv[1] == "on" else False
    big = torch.ones(64 * 1024 * 1024 // 4)  # 64 MB: above any mmap threshold glibc allows
    during = libc.mallinfo2()
    del big
    after = libc.mallinfo2()
    print(json.dumps({"applied": applied, "mapped_during": during.hblkhd, "heap_free_after": after.fordblks}))
""")


def probe(setting: str) -> dict:
    done = subprocess.run([sys.executable, "-c", PROBE, setting], capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_large_blocks_come_from_the_heap_and_stay_after_free():
    off, on = probe("off"), probe("on")
    # glibc's default: the 64 MB tensor is its own mapping, unmapped when freed.
    assert off["mapped_during"] >= 64 * 1024 * 1024
    assert on["applied"] is True
    # kept: served from the heap, and still there (free, for the next step) once the tensor is gone.
    assert on["mapped_during"] < 64 * 1024 * 1024
    assert on["heap_free_after"] >= 64 * 1024 * 1024


def test_training_losses_are_identical_with_and_without(tiny_bert, tmp_path):
    script = textwrap.dedent(f"""
        import json, sys, torch
        from transformers import AutoTokenizer, DataCollatorWithPadding, TrainerCallback
        from custom_trainer import TicketClassifier
        from custom_trainer.arguments import TicketTrainingArguments
        from custom_trainer.trainer import TicketTrainer
        from ticket_data import ticket_tokenizer
        from tests.test_trainer import LABELS, tiny_dataset

        torch.manual_seed(0)
        model = TicketClassifier.from_encoder({str(tiny_bert)!r}, LABELS)
        tokenizer = ticket_tokenizer(AutoTokenizer.from_pretrained({str(tiny_bert)!r}))
        args = TicketTrainingArguments(output_dir={str(tmp_path)!r} + "/" + sys.argv[1], max_steps=4,
                                       per_device_train_batch_size=8, logging_steps=1, eval_strategy="no",
                                       save_strategy="no", load_best_model_at_end=False, use_cpu=True,
                                       disable_tqdm=True, cpu_precision="fp32",
                                       keep_freed_memory=sys.argv[1] == "on")
        trainer = TicketTrainer(model=model, args=args, train_dataset=tiny_dataset(tokenizer, 32),
                                data_collator=DataCollatorWithPadding(tokenizer))
        trainer.train()
        from custom_trainer import cpu_memory
        print(json.dumps({{"applied": cpu_memory._applied,
                          "losses": [e["loss"] for e in trainer.state.log_history if "loss" in e],
                          "weights": [float(p.double().sum()) for p in model.parameters()]}}))
    """)
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    runs = {}
    for setting in ("off", "on"):
        done = subprocess.run([sys.executable, "-c", script, setting], capture_output=True, text=True, cwd=repo)
        assert done.returncode == 0, done.stderr[-2000:]
        runs[setting] = json.loads(done.stdout.strip().splitlines()[-1])
    assert runs["on"]["applied"] is True and runs["off"]["applied"] is False
    assert len(runs["on"]["losses"]) == 4
    assert runs["on"]["losses"] == runs["off"]["losses"]
    assert runs["on"]["weights"] == runs["off"]["weights"]  # bit for bit, not only the rounded logged losses


@pytest.mark.parametrize("device, asked, applies", [("cpu", True, True), ("cpu", False, False), ("cuda", True, False)])
def test_kept_only_where_asked_on_a_cpu(monkeypatch, device, asked, applies):
    from types import SimpleNamespace

    calls = []
    monkeypatch.setattr(cpu_memory, "keep_freed_memory", lambda: calls.append(1) or True)
    args = SimpleNamespace(device=SimpleNamespace(type=device), keep_freed_memory=asked)
    assert cpu_memory.keep_freed_memory_for(args) is applies
    assert len(calls) == int(applies)  # glibc is never touched where it does not apply
