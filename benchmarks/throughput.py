"""Optimizer steps per second: grokscope's transformer vs a usual nn.TransformerEncoder model,
and where a grokscope step's time goes.

Both models have the power2022 shape (2 layers, d_model 128, 4 heads, d_mlp 512, ReLU, post-LN,
learned positional embeddings) and train with the same AdamW on the same minibatches of 512 from
x/y mod 97. The reference computes every position (the usual way); grokscope's last layer computes
only the answer position. Rounds alternate between the two in one process, so machine load hits
both alike; the table reports the median steps/s over rounds and the ratio.

Then, for the power2022, demo and grokfast2024 steps: the FLOPs of one forward + backward (counted
from the operand shapes by torch.utils.flop_counter), the achieved FLOP/s, this machine's sgemm
FLOP/s at exactly the step's matrix-multiply shapes (each recorded mm/addmm/bmm replayed alone on
random operands), their ratio, and the share of the step in batch selection, forward (with the
loss), backward, Grokfast filter and optimizer (median over steps).

    python benchmarks/throughput.py [--rounds 5] [--steps 20] [--threads 1]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from dataclasses import replace

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

from grokscope import get_preset
from grokscope.config import validate
from grokscope.models import build_model
from grokscope.tasks import build_task
from grokscope.training.losses import loss_fn, task_loss
from grokscope.training.stepper import SingleStepper

_MATMULS = {"mm": torch.mm, "addmm": torch.addmm, "bmm": torch.bmm}


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


class _RecordMatmuls(TorchDispatchMode):
    """Records (op, operand shapes) of every mm/addmm/bmm dispatched inside it."""

    def __init__(self):
        super().__init__()
        self.ops: list[tuple[str, list[tuple]]] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.overloadpacket.__name__
        if name in _MATMULS:
            self.ops.append((name, [tuple(a.shape) for a in args if isinstance(a, torch.Tensor)]))
        return func(*args, **(kwargs or {}))


def _matmul_flops(name: str, shapes: list[tuple]) -> int:
    *_, a, b = shapes  # addmm's first operand is the bias
    return 2 * (a[0] if name == "bmm" else 1) * a[-2] * a[-1] * b[-1]


def _sgemm_seconds(ops, repeats: int = 5) -> float:
    """Median seconds to run the recorded matrix multiplies once each, alone, on random float32."""
    operands = [(_MATMULS[name], [torch.randn(s) for s in shapes]) for name, shapes in ops]
    times = []
    for _ in range(repeats + 1):
        t = time.perf_counter()
        for f, args in operands:
            f(*args)
        times.append(time.perf_counter() - t)
    return statistics.median(times[1:])


def profile(name: str, steps: int, fused: bool = False) -> None:
    """One preset's step: FLOPs, achieved vs sgemm FLOP/s, and the share of each phase."""
    cfg = get_preset(name)
    cfg = validate(replace(cfg, optim=replace(cfg.optim, fused=fused)))
    name += " fused" if fused else ""
    st = SingleStepper(cfg, torch.device("cpu"))
    tr, update = cfg.train, st.update
    x, y, mask = st._batch()
    with FlopCounterMode(display=False) as counter, _RecordMatmuls() as rec:
        task_loss(st.model(x), y, tr.loss, tr.loss_dtype, st.task.output, mask).backward()
    flops = counter.get_total_flops()
    sgemm = sum(_matmul_flops(n, s) for n, s in rec.ops) / _sgemm_seconds(rec.ops)
    phases = {k: [] for k in ("batch", "forward", "backward", "filter", "optimizer")}
    for i in range(steps + 3):
        st.prepare(lambda *a: None)
        t0 = time.perf_counter()
        x, y, mask = st._batch()
        t1 = time.perf_counter()
        loss = task_loss(st.model(x), y, tr.loss, tr.loss_dtype, st.task.output, mask)
        t2 = time.perf_counter()
        update.zero_grad()
        loss.backward()
        t3 = time.perf_counter()
        grokfast, update.filter = update.filter, None
        if grokfast is not None:
            grokfast.step()
        t4 = time.perf_counter()
        update.step()  # clipping, weight decay, optimizer, norm control (the filter already ran)
        update.filter = grokfast
        t5 = time.perf_counter()
        st.step += 1
        if i >= 3:  # warm-up
            for k, dt in zip(phases, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4)):
                phases[k].append(dt)
    med = {k: statistics.median(v) for k, v in phases.items()}
    step = sum(med.values())
    batch = x.shape[0]
    print(f"{name:<13} batch {batch:>5}  {flops / 1e9:6.3f} GFLOP/step  "
          f"step {step * 1e3:6.1f} ms  achieved {flops / step / 1e9:5.1f} GFLOP/s  sgemm at these shapes "
          f"{sgemm / 1e9:5.1f} GFLOP/s  -> {flops / step / sgemm:.0%} of sgemm")
    print(" " * 14 + "  ".join(f"{k} {100 * v / step:.0f}%" for k, v in med.items()))


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
    print("\nwhere a step's time goes (forward + backward FLOPs; the optimizer's are not counted)")
    for name in ("power2022", "demo", "grokfast2024"):
        profile(name, args.steps)
    profile("demo", args.steps, fused=True)  # --optim.fused: torch's fused Adam kernel


if __name__ == "__main__":
    main()
