"""Steps and wall seconds to test accuracy >= 0.95 for the acceleration methods, side by side.

One fixed task (the demo's: x+y mod 31, 50% train, 1-layer d64 transformer, full batch), several
seeds, one process per core; every run stops once test accuracy holds >= 0.95 for two evaluations
or at the budget. Methods:

  adamw          AdamW, the papers' hyperparameters (lr 1e-3, wd 1, betas 0.9/0.98)
  adamw_lr_x3    AdamW with lr x (1 + lambda) = 3e-3: the step size Grokfast-EMA's lambda=2 adds,
                 a fair baseline (lucidrains/grokfast-pytorch#1)
  adam_l2        Adam with coupled L2 0.005 and no filter: grokfast_ema without the filter, to
                 separate the filter's effect from the optimizer change (ironjr/grokfast#12)
  grokfast_ema   the Grokfast paper's settings: Adam, coupled L2 0.005, EMA alpha 0.98, lambda 2
  grokfast_ma    the Grokfast paper's settings: Adam, coupled L2 0.01, MA window 100, lambda 5
  orthograd      ⊥AdamW (lr 1e-3), no weight decay
  stablemax      AdamW + StableMax cross-entropy, no weight decay
All use lr 1e-3, betas (0.9, 0.98), 10 warmup steps unless stated.

    python benchmarks/acceleration.py [--seeds 3] [--steps 15000] [--workers 2] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace

METHODS: dict[str, dict] = {
    "adamw": {},
    "adamw_lr_x3": {"lr": 3e-3},
    "adam_l2": {"name": "adam", "weight_decay": 0.005},
    "grokfast_ema": {"name": "adam", "weight_decay": 0.005, "grokfast": "ema", "grokfast_alpha": 0.98,
                     "grokfast_lamb": 2.0},
    "grokfast_ma": {"name": "adam", "weight_decay": 0.01, "grokfast": "ma", "grokfast_window": 100,
                    "grokfast_lamb": 5.0},
    "orthograd": {"orthograd": True, "weight_decay": 0.0},
    "stablemax": {"weight_decay": 0.0, "_loss": "stablemax"},
}


def config(method: str, seed: int, steps: int):
    from grokscope import get_preset

    cfg = get_preset("demo")
    optim = {k: v for k, v in METHODS[method].items() if not k.startswith("_")}
    loss = METHODS[method].get("_loss", "ce")
    return replace(
        cfg, name=method, seed=seed,
        optim=replace(cfg.optim, **{"lr": 1e-3, "weight_decay": 1.0, **optim}),
        train=replace(cfg.train, steps=steps, loss=loss, eval_every=25, stop_when="target",
                      stop_target=0.95, stop_patience=2, resume_every_seconds=0.0),
        log=replace(cfg.log, figure=False, report=False, progress=False))


def run_one(args: tuple[str, int, int]) -> dict:
    import torch

    from grokscope import train

    method, seed, steps = args
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        r = train(config(method, seed, steps), os.path.join(d, "run"), progress=False)
        wall = time.perf_counter() - t0
    ev = r.summary["events"]
    t95 = ev["test_0.95"]
    return {"method": method, "seed": seed, "steps_to_95": t95, "memorized": ev["memorized_step"],
            "wall_to_95": next((m["elapsed"] for m in r.metrics if m["step"] == t95), None),
            "wall": wall, "steps_done": r.summary["steps_done"],
            "delay_ratio_95": t95 / ev["memorized_step"] if t95 and ev["memorized_step"] else None}


def _median(values: list, budget: float) -> tuple[float, bool]:
    """Median with runs that never reached the target counted at the budget; flag if censored."""
    filled = [budget if v is None else v for v in values]
    return statistics.median(filled), any(v is None for v in values)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=15_000, help="budget per run")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--json", default=None, help="also write the per-run results here")
    args = ap.parse_args()
    jobs = [(m, s, args.steps) for m in args.methods.split(",") for s in range(args.seeds)]
    t0 = time.perf_counter()
    for m in args.methods.split(","):
        config(m, 0, args.steps)  # fail fast on a bad method before spending minutes
    results = []
    with ProcessPoolExecutor(args.workers) as pool:
        for r in pool.map(run_one, jobs):
            results.append(r)
            print(f"  {r['method']} seed {r['seed']}: steps to 0.95 {r['steps_to_95']}, "
                  f"{r['wall']:.1f} s", flush=True)
    total = time.perf_counter() - t0
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    print(f"machine: {platform.machine()} {os.cpu_count()} cores, {args.workers} workers x 1 thread, "
          f"load avg {os.getloadavg()[0]:.2f}; total {total:.0f} s")
    print(f"task: demo preset (x+y mod 31, 50%, 1-layer d64), {args.seeds} seeds, budget {args.steps} steps; "
          f"'>' = some seed did not reach 0.95 (counted at the budget)")
    base_steps, _ = _median([r["steps_to_95"] for r in results if r["method"] == "adamw"], args.steps)
    base_wall, _ = _median([r["wall_to_95"] for r in results if r["method"] == "adamw"],
                           max(r["wall"] for r in results))
    header = ("| method | steps to 0.95 (median) | per seed | wall s to 0.95 (median) | "
              "steps vs adamw | wall vs adamw | delay ratio t95/t_mem |")
    print(header)
    print("|" + "---|" * 7)
    for m in args.methods.split(","):
        rows = [r for r in results if r["method"] == m]
        steps, cens = _median([r["steps_to_95"] for r in rows], args.steps)
        wall, wcens = _median([r["wall_to_95"] for r in rows], max(r["wall"] for r in rows))
        ratios = [r["delay_ratio_95"] for r in rows if r["delay_ratio_95"] is not None]
        per_seed = ", ".join("-" if r["steps_to_95"] is None else str(r["steps_to_95"]) for r in rows)
        mark = ">" if cens else ""
        print(f"| {m} | {mark}{steps:,.0f} | {per_seed} | {'>' if wcens else ''}{wall:.1f} | "
              f"{'<' if cens else ''}{base_steps / steps:.2f}x | "
              f"{'<' if wcens else ''}{base_wall / wall:.2f}x | "
              f"{statistics.median(ratios) if ratios else float('nan'):.1f} |")


if __name__ == "__main__":
    main()
