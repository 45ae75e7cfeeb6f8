"""Aggregate model-steps per second: K small models trained one after another vs as one ensemble.

The models are the demo preset (x+y mod 31, 1-layer transformer, d_model 64, d_mlp 256, full batch
AdamW), K members differing in seed, lr and weight decay as in a sweep. "loop" trains the K models
sequentially, each with the single-run step (lr schedule, forward, float64 loss, backward, UpdateRule);
"ensemble" does the same K updates with grokscope.training.ensemble (stacked parameters, vmap, batched
AdamW). Evaluation and checkpoint I/O are left out of both. Rounds alternate loop and ensemble in one
process, so machine load hits both alike; the table reports medians over rounds and the ratio.

    python benchmarks/ensemble.py [--ks 1,8,32,128] [--steps 3] [--rounds 3] [--device auto]
                                  [--batch-size N] [--threads 1]

On CPU it measures CPU; with --device auto it runs on the GPU where torch sees one (CUDA), and
--device both measures CPU and then CUDA in the same run.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from dataclasses import replace

import torch

from grokscope import get_preset
from grokscope.models import build_model
from grokscope.tasks import build_task
from grokscope.training.common import Sampler
from grokscope.training.ensemble import Ensemble
from grokscope.training.losses import loss_fn
from grokscope.training.optim import UpdateRule, lr_at


def _configs(k: int, steps: int, batch_size: int | None, device: str) -> list:
    base = get_preset("demo")
    base = replace(base, train=replace(base.train, steps=max(steps + 1, 100), batch_size=batch_size,
                                       device=device))
    return [replace(base, seed=i, optim=replace(base.optim, lr=base.optim.lr * (0.5 + (i % 4) / 4),
                                                weight_decay=0.5 + i % 3)) for i in range(k)]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


class _Single:
    """One model with the single-run inner step (what training.stepper.SingleStepper does per step)."""

    def __init__(self, cfg, device: torch.device):
        t = cfg.task
        self.cfg = cfg
        self.task = build_task(t.kind, t.op, p=t.p, train_fraction=t.train_fraction, split_seed=cfg.seed)
        torch.manual_seed(cfg.seed)
        self.model = build_model(cfg.model, self.task).to(device)
        self.update = UpdateRule(cfg.optim, self.model)
        self.x = self.task.tokens(self.task.train_idx).to(device)  # (n_train, 4)
        self.y = self.task.train_labels.to(device)
        self.sampler = Sampler(self.x.shape[0], cfg.train.batch_size, cfg.seed)
        self.step = 0

    def train_step(self) -> None:
        cfg, x, y = self.cfg, self.x, self.y
        idx = self.sampler.next()  # None: full batch
        if idx is not None:
            x, y = x[idx.to(x.device)], y[idx.to(x.device)]
        self.update.set_lr(lr_at(cfg.optim, self.step, cfg.train.steps))
        loss = loss_fn(self.model(x), y, cfg.train.loss, cfg.train.loss_dtype)
        self.update.zero_grad()
        loss.backward()
        self.update.step()
        self.step += 1


def _loop_rate(singles: list[_Single], steps: int, device: torch.device) -> float:
    _sync(device)
    t0 = time.perf_counter()
    for s in singles:
        for _ in range(steps):
            s.train_step()
    _sync(device)
    return len(singles) * steps / (time.perf_counter() - t0)


def _ensemble_rate(ens: Ensemble, steps: int, device: torch.device) -> float:
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        ens.train_step()
    _sync(device)
    return ens.K * steps / (time.perf_counter() - t0)


def measure(device: torch.device, ks: list[int], steps: int, rounds: int, batch_size: int | None) -> list:
    rows = []
    for k in ks:
        cfgs = _configs(k, steps * (rounds + 1), batch_size, device.type)
        singles = [_Single(c, device) for c in cfgs]
        ens = Ensemble(cfgs, device)
        for s in singles:  # warm up kernels and optimizer state
            s.train_step()
        ens.train_step()
        loop, vec = [], []
        for _ in range(rounds):
            loop.append(_loop_rate(singles, steps, device))
            vec.append(_ensemble_rate(ens, steps, device))
        a, b = statistics.median(loop), statistics.median(vec)
        rows.append((k, a, b, b / a))
        print(f"  {device.type:>4}  K={k:<4d} loop {a:9.1f}  ensemble {b:9.1f}  x{b / a:.2f}", flush=True)
        del singles, ens
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ks", default="1,8,32,128", help="ensemble sizes, comma separated")
    ap.add_argument("--steps", type=int, default=3, help="steps per model per round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "both"],
                    help="auto: cuda if available, else cpu; both: cpu, then cuda if available")
    ap.add_argument("--batch-size", type=int, default=None, help="minibatch size (default: full batch)")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    ks = [int(k) for k in args.ks.split(",")]
    cuda = torch.cuda.is_available()
    if args.device == "both":
        devices = ["cpu"] + (["cuda"] if cuda else [])
    elif args.device == "auto":
        devices = ["cuda" if cuda else "cpu"]
    else:
        devices = [args.device]
    print(f"machine: {platform.machine()} {platform.processor() or ''} {os.cpu_count()} cores, load "
          f"{os.getloadavg()[0]:.2f}; torch {torch.__version__}, {args.threads} thread(s)"
          + (f"; GPU {torch.cuda.get_device_name(0)}" if cuda else "; no GPU"))
    batch = "full batch" if args.batch_size is None else f"batch {args.batch_size}"
    print(f"demo models (x+y mod 31, 1 layer d64), {batch}, {args.steps} steps x {args.rounds} rounds; "
          "model-steps/s (median over rounds)")
    results = {d: measure(torch.device(d), ks, args.steps, args.rounds, args.batch_size) for d in devices}
    print()
    print("| device | K | loop model-steps/s | ensemble model-steps/s | ensemble / loop |")
    print("|---|---:|---:|---:|---:|")
    for d, rows in results.items():
        for k, a, b, r in rows:
            print(f"| {d} | {k} | {a:.1f} | {b:.1f} | {r:.2f}x |")


if __name__ == "__main__":
    main()
