import pytest
import torch
from torch import nn
from transformers import AutoTokenizer, DataCollatorWithPadding

from custom_trainer import TicketClassifier
from custom_trainer import dropout as dropout_module
from custom_trainer.arguments import TicketTrainingArguments
from custom_trainer.dropout import (ATTENTION_IMPLEMENTATION, CheapDropout, attention_with_cheap_dropout,
                                    cheap_dropout, cheap_dropout_masks, keep_mask)
from custom_trainer.trainer import TicketTrainer
from ticket_data import ticket_tokenizer

from test_trainer import LABELS, tiny_dataset


@pytest.mark.parametrize("p", [0.1, 0.3, 0.5])
def test_keep_mask_drops_p_of_the_elements(p):
    torch.manual_seed(0)
    mask = keep_mask((1000, 1000), p)
    assert mask.dtype == torch.bool and mask.shape == (1000, 1000)
    # 1e6 Bernoulli draws: the standard error of the kept share is under 0.0005.
    assert abs(mask.float().mean().item() - (1 - p)) < 0.003
    # Neighbours come from the same 64-bit word: they must still be independent (P(both kept) = (1 - p)^2).
    pairs = (mask[:, 0::2] & mask[:, 1::2]).float().mean().item()
    assert abs(pairs - (1 - p) ** 2) < 0.004


def test_keep_mask_odd_sizes_and_bad_probability():
    assert keep_mask((3, 5, 7), 0.0).all()
    assert keep_mask((1,), 0.2).shape == (1,)
    with pytest.raises(ValueError, match="1.0"):
        keep_mask((4,), 1.0)


def test_keep_mask_follows_the_seed():
    torch.manual_seed(3)
    first = keep_mask((64, 64), 0.1)
    torch.manual_seed(3)
    assert torch.equal(first, keep_mask((64, 64), 0.1))
    assert not torch.equal(first, keep_mask((64, 64), 0.1))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_cheap_dropout_scales_kept_elements_and_routes_gradient_through_them(dtype):
    torch.manual_seed(0)
    x = torch.rand(64, 33, dtype=dtype) + 0.5
    x.requires_grad_(True)
    out = cheap_dropout(x, 0.25)
    kept = out != 0
    assert 0.6 < kept.float().mean().item() < 0.9
    torch.testing.assert_close(out[kept], (x[kept] / 0.75).to(dtype))
    upstream = torch.rand_like(out)
    out.backward(upstream)
    torch.testing.assert_close(x.grad, (upstream * kept / 0.75).to(dtype))
    assert cheap_dropout(x, 0.25, training=False) is x
    assert cheap_dropout(x, 0.0) is x


def _attention_inputs(masked_keys: int):
    torch.manual_seed(1)
    query, key, value = (torch.randn(2, 3, 6, 4) for _ in range(3))
    mask = torch.ones(2, 1, 6, 6, dtype=torch.bool)
    mask[0, :, :, 6 - masked_keys:] = False  # the first ticket's last tokens are padding
    return query, key, value, mask


def test_cheap_attention_is_sdpa_when_nothing_is_dropped(monkeypatch):
    """With the dropout made an identity (but the cheap path still taken: dropout > 0), the products, the scaling,
    the boolean padding mask and the softmax are those of transformers' SDPA function."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    module = nn.Module()
    module.is_causal = False
    query, key, value, mask = _attention_inputs(masked_keys=2)
    expected, _ = sdpa_attention_forward(module, query, key, value, mask, dropout=0.0, scaling=0.5)
    monkeypatch.setattr(dropout_module, "cheap_dropout", lambda x, p, training=True: x)
    got, _ = attention_with_cheap_dropout(module, query, key, value, mask, dropout=0.1, scaling=0.5)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    # A float mask (eager implementations) adds instead.
    additive = torch.zeros(mask.shape).masked_fill(~mask, torch.finfo(torch.float32).min)
    got, _ = attention_with_cheap_dropout(module, query, key, value, additive, dropout=0.1, scaling=0.5)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def _tiny_model(encoder):
    torch.manual_seed(0)
    return TicketClassifier.from_encoder(str(encoder), LABELS)


def test_context_swaps_dropout_and_attention_and_puts_them_back(tiny_bert):
    model = _tiny_model(tiny_bert)
    plain = {name: module for name, module in model.named_modules() if type(module) is nn.Dropout}
    assert plain
    model.eval()
    with cheap_dropout_masks(model) as swapped:
        assert swapped == len(plain)
        assert all(type(module) is CheapDropout for name, module in model.named_modules() if name in plain)
        assert all(not module.training for name, module in model.named_modules() if name in plain)
        assert model.encoder.config._attn_implementation == ATTENTION_IMPLEMENTATION
        model.train()
    assert {name: module for name, module in model.named_modules() if type(module) is nn.Dropout} == plain
    assert all(module.training for module in plain.values())  # the mode set inside is kept
    assert model.encoder.config._attn_implementation == "sdpa"
    with cheap_dropout_masks(model, enabled=False) as swapped:
        assert swapped == 0 and type(next(iter(plain.values()))) is nn.Dropout


def test_encoder_attends_through_the_cheap_path_and_ignores_padding(tiny_bert, monkeypatch):
    """In training, attention goes through attention_with_cheap_dropout, and with the same seed (same masks drawn)
    the first tokens' states do not depend on what the padded positions hold: the padding mask reaches it."""
    model = _tiny_model(tiny_bert)
    model.train()
    calls = []
    real = dropout_module.attention_with_cheap_dropout

    def counting(*args, **kwargs):
        calls.append(kwargs.get("dropout"))
        return real(*args, **kwargs)

    monkeypatch.setattr(dropout_module, "attention_with_cheap_dropout", counting)
    ids = torch.randint(40, 90, (2, 9))
    attention = torch.ones(2, 9, dtype=torch.long)
    attention[0, 5:] = 0
    other = ids.clone()
    other[0, 5:] = 41
    with cheap_dropout_masks(model):
        torch.manual_seed(5)
        first = model.encoder(input_ids=ids, attention_mask=attention).last_hidden_state
        torch.manual_seed(5)
        second = model.encoder(input_ids=other, attention_mask=attention).last_hidden_state
        torch.manual_seed(6)
        third = model.encoder(input_ids=ids, attention_mask=attention).last_hidden_state
    assert len(calls) == 3 * model.encoder.config.num_hidden_layers and all(p > 0 for p in calls)
    torch.testing.assert_close(first[0, :5], second[0, :5])
    assert not torch.allclose(first[0, :5], third[0, :5])  # other seed, other masks: dropout is on


@pytest.mark.parametrize("enabled", [True, False])
def test_trainer_uses_cheap_masks_on_cpu_only_while_training(tiny_bert, tmp_path, monkeypatch, enabled):
    model = _tiny_model(tiny_bert)
    drawn = []
    real = dropout_module.keep_mask
    monkeypatch.setattr(dropout_module, "keep_mask", lambda *a, **k: drawn.append(1) or real(*a, **k))
    tokenizer = ticket_tokenizer(AutoTokenizer.from_pretrained(tiny_bert))
    args = TicketTrainingArguments(output_dir=str(tmp_path), per_device_train_batch_size=8, max_steps=2,
                                   eval_strategy="no", save_strategy="no", load_best_model_at_end=False,
                                   use_cpu=True, disable_tqdm=True, cpu_precision="fp32",
                                   cheap_dropout_masks=enabled)
    TicketTrainer(model=model, args=args, train_dataset=tiny_dataset(tokenizer, 16),
                  data_collator=DataCollatorWithPadding(tokenizer)).train()
    assert bool(drawn) == enabled
    assert not any(isinstance(m, CheapDropout) for m in model.modules())
    assert model.encoder.config._attn_implementation == "sdpa"


def test_cheap_attention_in_bf16_keeps_sdpa_s_precision(monkeypatch):
    """SDPA's math kernel computes bf16 attention in fp32 on the CPU; the cheap path must not be less exact (a bf16
    softmax and bf16 products doubled the error and cost validation macro-F1 on real tickets)."""
    import torch.nn.functional as F

    module = nn.Module()
    module.is_causal = False
    torch.manual_seed(0)
    query, key, value = (torch.randn(4, 12, 48, 32) * 2 for _ in range(3))
    exact = F.scaled_dot_product_attention(query, key, value).transpose(1, 2)
    monkeypatch.setattr(dropout_module, "cheap_dropout", lambda x, p, training=True: x)
    low = [t.bfloat16() for t in (query, key, value)]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got, _ = attention_with_cheap_dropout(module, *low, None, dropout=0.1)
        sdpa = F.scaled_dot_product_attention(*low).transpose(1, 2)
    assert got.dtype == torch.bfloat16
    assert (got.float() - exact).abs().mean() <= 1.1 * (sdpa.float() - exact).abs().mean()


def test_cheap_dropout_in_bf16_scales_as_f_dropout_does():
    """Kept elements are x * (1 / (1 - p)) computed as F.dropout computes it, not x times a bf16-rounded scale
    (1.109375 for p = 0.1: every kept element 0.14% too small)."""
    import torch.nn.functional as F

    x = torch.full((4096,), 3.0, dtype=torch.bfloat16)
    ours = cheap_dropout(x, 0.1)
    theirs = F.dropout(x, 0.1, training=True)
    assert torch.equal(ours[ours != 0].unique(), theirs[theirs != 0].unique())
