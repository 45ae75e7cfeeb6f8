"""Optimizer steps per second: grokscope's transformer vs a usual nn.TransformerEncoder model.

Both models have the power2022 shape (2 layers, d_model 128, 4 heads, d_mlp 512, ReLU, post-LN,
learned positional embeddings) and train with the same AdamW on the same minibatches of 512 from
x/y mod 97. The reference computes every position (the usual way); grokscope's last layer computes
only the answer position. Rounds alternate between the two in one process, so machine load hits
both alike; the table reports the median steps/s over rounds and the ratio.

    python benchmarks/throughput.py [--rounds 5] [--steps 20] [--threads 1]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import torch
from torch import nn

from grokscope import get_preset
from grokscope.models import build_model
from grokscope.tasks import build_task
from grokscope.training.losses import loss_fn


class Reference(nn.Module):
    """The straightforward model: embeddings + nn.TransformerEncoder over all positions + a head."""

    def __init__(self, d_vocab: int, d_out: int, d_model=128, n_heads=4, d_mlp=512, n_layers=2, n_ctx=4):
        super().__init__()
        self.tok = nn.Embedding(d_vocab, d_model)
        self.pos = nn.Embedding(n_ctx, d_model)
        layer = nn.TransformerEncoderLayer(d_model, n_heads, d_mlp, dropout=0.0, activation="relu",
                                           batch_first=True, norm_first=False)
        self.encoder = nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False)
        self.head = nn.Linear(d_model, d_out)
        self.register_buffer("mask", nn.Transformer.generate_square_subsequent_mask(n_ctx))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        h = self.tok(tokens) + self.pos.weight[: tokens.shape[1]]  # (batch, pos, d_model)
        h = self.encoder(h, mask=self.mask, is_causal=True)
        return self.head(h)[:, -1]  # logits at every position, answer read at the last


def _steps_per_second(model, batches, labels, steps: int) -> float:
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.98), weight_decay=1.0)
    t0 = time.perf_counter()
    for i in range(steps):
        x, y = batches[i % len(batches)], labels[i % len(labels)]
        loss = loss_fn(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return steps / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=20, help="optimizer steps per model per round")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cfg = get_preset("power2022")
    t = cfg.task
    task = build_task(t.kind, t.op, p=t.p, train_fraction=t.train_fraction, split_seed=0)
    torch.manual_seed(0)
    ours = build_model(cfg.model, task)
    ref = Reference(task.vocab_size, task.n_classes)
    tokens, labels = task.tokens(task.train_idx), task.train_labels
    g = torch.Generator().manual_seed(0)
    perms = [torch.randperm(tokens.shape[0], generator=g)[:512] for _ in range(8)]
    xb, yb = [tokens[i] for i in perms], [labels[i] for i in perms]
    n_ours = sum(p.numel() for p in ours.parameters())
    n_ref = sum(p.numel() for p in ref.parameters())
    for m in (ours, ref):  # warm up allocator and kernels
        _steps_per_second(m, xb, yb, 3)
    rates = {"grokscope": [], "reference": []}
    for _ in range(args.rounds):
        rates["grokscope"].append(_steps_per_second(ours, xb, yb, args.steps))
        rates["reference"].append(_steps_per_second(ref, xb, yb, args.steps))
    med = {k: statistics.median(v) for k, v in rates.items()}
    print(f"machine: {platform.machine()} {os.cpu_count()} cores, torch {torch.__version__}, "
          f"threads {args.threads}, load avg {os.getloadavg()[0]:.2f}")
    print(f"power2022 model, batch 512, {args.rounds} alternating rounds of {args.steps} steps")
    print(f"{'model':<12} {'params':>9} {'steps/s (median)':>17} {'min':>7} {'max':>7}")
    for k, n in (("reference", n_ref), ("grokscope", n_ours)):
        print(f"{k:<12} {n:>9,} {med[k]:>17.2f} {min(rates[k]):>7.2f} {max(rates[k]):>7.2f}")
    print(f"ratio grokscope/reference: {med['grokscope'] / med['reference']:.2f}x")


if __name__ == "__main__":
    main()
