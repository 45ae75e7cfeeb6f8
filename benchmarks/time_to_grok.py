"""Wall time to test accuracy 0.99 on the canonical task: the usual recipe vs grokscope's presets.

The usual recipe is the common public reimplementation of Power et al. 2022, written the usual way
here in this file: x/y mod 97, 50% train, tokens [x, op, y, =], an nn.TransformerEncoder of 2
post-LN layers (d_model 128, 4 heads, d_mlp 512, ReLU, no biases, learned positions, causal mask),
AdamW lr 1e-3, wd 1, betas (0.9, 0.98), linear warmup 0.1 -> 1 over 10 steps, batch 512 from
shuffled epochs, float32 cross-entropy, evaluation of the whole validation set every 100 steps. It
trains on grokscope's split of the same seed. Against it: `power2022` (same model and
hyperparameters), `grokfast2024` (x*y mod 97, its own task) and `speedrun` (x/y mod 97), each
trained by `grokscope.train` with its own default evaluation schedule and stopped at its first
evaluation with test accuracy >= 0.99 (no report or figure, so memory is the training's).

Every run is its own process on one thread; the rounds alternate the recipes seed by seed, so
machine load hits them alike. Printed per recipe: the median over seeds of the wall seconds from
the start of training to the first evaluation at test accuracy >= 0.99, the steps there, steps/s
with and without evaluation (and checkpoints), the evaluation share of the wall time, the peak
RSS, the ratio of the usual recipe's median wall time to the recipe's, and the median delay ratio
(the step of that evaluation over the step of the first evaluation with train accuracy >= 0.99;
the usual recipe's train accuracy is evaluated every 100 steps until it gets there).

    python benchmarks/time_to_grok.py [--seeds 3] [--recipes usual,power2022,grokfast2024,speedrun]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace

RECIPES = ("usual", "power2022", "grokfast2024", "speedrun")
MAX_STEPS = 20_000  # a run that has not reached 0.99 by then counts as not reaching it
TARGET = 0.99


def usual(seed: int) -> dict:
    """The usual recipe, as the public reimplementations write it."""
    import torch
    from torch import nn

    from grokscope.tasks import build_task

    torch.set_num_threads(1)
    task = build_task("modular", "x/y", p=97, train_fraction=0.5, split_seed=seed)
    vocab = task.vocab_size  # p + 2: grokscope's inputs are already the tokens [x, op, y, =]
    x_tr, y_tr = task.splits["train"].inputs, task.splits["train"].targets
    x_va, y_va = task.splits["test"].inputs, task.splits["test"].targets

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.tok = nn.Embedding(vocab, 128)
            self.pos = nn.Embedding(4, 128)
            layer = nn.TransformerEncoderLayer(128, 4, 512, dropout=0.0, activation="relu", batch_first=True,
                                               norm_first=False, bias=False)
            self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
            self.head = nn.Linear(128, vocab, bias=False)
            self.register_buffer("mask", nn.Transformer.generate_square_subsequent_mask(4))

        def forward(self, x):
            h = self.tok(x) + self.pos.weight  # (batch, 4, 128)
            return self.head(self.encoder(h, mask=self.mask, is_causal=True))[:, -1]  # (batch, vocab)

    torch.manual_seed(seed)
    model = Model()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.98), weight_decay=1.0)
    sched = torch.optim.lr_scheduler.LinearLR(opt, start_factor=0.1, total_iters=10)
    batch = min(512, math.ceil(len(x_tr) / 2))
    gen = torch.Generator().manual_seed(seed)
    perm, pos = torch.randperm(len(x_tr), generator=gen), 0
    eval_s, t0, step, acc, memorized = 0.0, time.perf_counter(), 0, 0.0, None
    while step < MAX_STEPS:
        if pos + batch > len(x_tr):
            perm, pos = torch.randperm(len(x_tr), generator=gen), 0
        idx = perm[pos:pos + batch]
        pos += batch
        loss = nn.functional.cross_entropy(model(x_tr[idx]), y_tr[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        step += 1
        if step % 100 == 0:
            te = time.perf_counter()
            model.eval()
            with torch.no_grad():
                right = sum((model(x_va[i:i + 512]).argmax(-1) == y_va[i:i + 512]).sum().item()
                            for i in range(0, len(x_va), 512))
                if memorized is None:  # the usual scripts log train accuracy too
                    fit = sum((model(x_tr[i:i + 512]).argmax(-1) == y_tr[i:i + 512]).sum().item()
                              for i in range(0, len(x_tr), 512))
                    memorized = step if fit / len(x_tr) >= TARGET else None
            model.train()
            acc = right / len(x_va)
            eval_s += time.perf_counter() - te
            if acc >= TARGET:
                break
    wall = time.perf_counter() - t0
    return {"wall": wall, "steps": step, "eval_seconds": eval_s, "reached": acc >= TARGET,
            "memorized": memorized}


def preset(name: str, seed: int) -> dict:
    """A grokscope preset, stopped at its first evaluation with test accuracy >= 0.99."""
    import grokscope
    from grokscope import get_preset

    cfg = get_preset(name)
    tr = replace(cfg.train, steps=min(cfg.train.steps, MAX_STEPS), stop_when="target", stop_target=TARGET,
                 stop_patience=1, threads=1, device="cpu")
    cfg = replace(cfg, seed=seed, train=tr, log=replace(cfg.log, report=False, figure=False, progress=False))
    with tempfile.TemporaryDirectory() as tmp:
        result = grokscope.train(cfg, out=os.path.join(tmp, "run"))
    hit = next((r for r in result.metrics if r["test_acc"] >= TARGET), None)
    fit = next((r for r in result.metrics if r["train_acc"] >= TARGET), None)
    timing = result.summary["timing"]
    last = result.metrics[-1]
    # the run stops at its first evaluation >= 0.99, so the session's timing is the time to it
    return {"wall": hit["elapsed"] if hit else last["elapsed"], "steps": (hit or last)["step"],
            "eval_seconds": timing["eval_seconds"] + timing["checkpoint_seconds"], "reached": hit is not None,
            "evaluations": len(result.metrics), "memorized": fit["step"] if fit else None}


def child(recipe: str, seed: int) -> None:
    out = usual(seed) if recipe == "usual" else preset(recipe, seed)
    out["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(json.dumps(out))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--recipes", default=",".join(RECIPES))
    ap.add_argument("--child", nargs=2, metavar=("RECIPE", "SEED"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child[0], int(args.child[1]))
        return
    recipes = args.recipes.split(",")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    load0 = os.getloadavg()
    rows: dict[str, list[dict]] = {r: [] for r in recipes}
    for seed in range(args.seeds):
        for recipe in recipes:
            proc = subprocess.run([sys.executable, __file__, "--child", recipe, str(seed)], env=env,
                                  capture_output=True, text=True, check=True)
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            rows[recipe].append(r)
            print(f"seed {seed} {recipe:<13} {r['wall']:7.1f} s  {r['steps']:>6,} steps  "
                  f"reached {r['reached']}  peak {r['peak_rss_mib']:.0f} MiB", flush=True)
    load1 = os.getloadavg()
    print(f"\nmachine: {platform.machine()} {os.cpu_count()} cores, 1 thread per run, load avg "
          f"{load0[0]:.2f} before, {load1[0]:.2f} after; seeds 0-{args.seeds - 1}; target test acc {TARGET}")
    med = lambda rs, f: statistics.median(f(r) for r in rs)
    base = med(rows["usual"], lambda r: r["wall"]) if "usual" in rows else None
    print(f"{'recipe':<13} {'wall to 0.99':>12} {'steps':>7} {'delay':>6} {'steps/s':>8} {'w/o eval':>9} "
          f"{'eval %':>7} {'peak MiB':>9} {'speed-up':>9}")
    for recipe, rs in rows.items():
        wall = med(rs, lambda r: r["wall"])
        steps = med(rs, lambda r: r["steps"])
        rate = med(rs, lambda r: r["steps"] / r["wall"])
        pure = med(rs, lambda r: r["steps"] / max(1e-9, r["wall"] - r["eval_seconds"]))
        share = med(rs, lambda r: 100 * r["eval_seconds"] / r["wall"])
        rss = med(rs, lambda r: r["peak_rss_mib"])
        missed = sum(not r["reached"] for r in rs)
        ratios = [r["steps"] / r["memorized"] for r in rs if r["reached"] and r.get("memorized")]
        delay = f"{statistics.median(ratios):5.1f}x" if ratios else "     -"
        ratio = f"{base / wall:8.1f}x" if base else "-"
        print(f"{recipe:<13} {wall:10.1f} s {steps:>7,.0f} {delay} {rate:>8.1f} {pure:>9.1f} {share:>6.1f}% "
              f"{rss:>9.0f} {ratio:>9}" + (f"  ({missed} of {len(rs)} never reached 0.99)" if missed else ""))


if __name__ == "__main__":
    main()
