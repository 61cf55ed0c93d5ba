"""Do cheap dropout masks train like torch's? The mean gradient over many mask draws, against bernoulli_'s.

    python benchmarks/dropout_gradients.py [--draws 60]

Cheap masks (custom_trainer/dropout.py) are other random numbers than `bernoulli_`'s, so two runs differ as runs with
two seeds do; what must not differ is what training follows on average. On one fixed batch of 8 tickets (the
embedded encoder, bf16 autocast as a bf16 CPU trains, training mode), the gradient of a fixed loss is drawn
``--draws`` times with each kind of mask, for the parameters of layer 3 and of layer 0's attention. Printed: the
z-scores of the difference of the two mean gradients (each element's difference over its standard error), beside the
same for two independent sets of bernoulli_ draws. Same distribution of z, same cosine: the same expected gradient.
Figures go to benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def mean_gradient(encoder, params, batch, target, cheap: bool, draws: int, first_seed: int):
    from custom_trainer.dropout import cheap_dropout_masks

    gradients = []
    with cheap_dropout_masks(encoder, enabled=cheap):
        for draw in range(draws):
            torch.manual_seed(first_seed + draw)
            with torch.autocast("cpu", dtype=torch.bfloat16):
                sentence = encoder(**batch).last_hidden_state[:, 0]
            loss = ((sentence.float() - target) ** 2).mean()
            gradients.append(torch.cat([g.flatten() for g in torch.autograd.grad(loss, params)]))
    stacked = torch.stack(gradients)
    return stacked.mean(0), stacked.std(0) / draws ** 0.5


def compare(a, b) -> str:
    (mean_a, error_a), (mean_b, error_b) = a, b
    z = (mean_a - mean_b) / (error_a ** 2 + error_b ** 2).sqrt().clamp_min(1e-12)
    cosine = torch.nn.functional.cosine_similarity(mean_a, mean_b, 0)
    return f"mean |z| {z.abs().mean():.3f}, share |z| > 3 {(z.abs() > 3).float().mean():.4f}, cosine {cosine:.5f}"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--draws", type=int, default=60)
    args = parser.parse_args(argv)
    from transformers import AutoModel

    from custom_trainer.encoders import embedded_encoder_path

    encoder = AutoModel.from_pretrained(embedded_encoder_path(), attn_implementation="sdpa")
    encoder.train()
    torch.manual_seed(0)
    input_ids = torch.randint(1000, 20000, (8, 24))
    attention_mask = torch.ones(8, 24, dtype=torch.long)
    attention_mask[:4, 16:] = 0  # half the tickets padded
    batch = {"input_ids": input_ids, "attention_mask": attention_mask}
    target = torch.randn(8, encoder.config.hidden_size)
    params = [p for name, p in encoder.named_parameters() if "layer.3." in name or "layer.0.attention" in name]
    bernoulli = mean_gradient(encoder, params, batch, target, False, args.draws, 0)
    cheap = mean_gradient(encoder, params, batch, target, True, args.draws, 0)
    bernoulli_again = mean_gradient(encoder, params, batch, target, False, args.draws, 10_000)
    print(f"{args.draws} draws each, {sum(p.numel() for p in params):,} gradient elements")
    print(f"bernoulli_ against cheap masks:  {compare(bernoulli, cheap)}")
    print(f"bernoulli_ against bernoulli_:   {compare(bernoulli, bernoulli_again)}")
    print(f"mean gradient norms: bernoulli_ {bernoulli[0].norm():.4f}, cheap {cheap[0].norm():.4f}, "
          f"bernoulli_ again {bernoulli_again[0].norm():.4f}")


if __name__ == "__main__":
    main()
