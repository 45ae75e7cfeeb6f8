"""The side-by-side of docs/rl.md: the same hidden rule learned by supervision, exact policy
gradient, REINFORCE and DQN, measured in one go.

Parts (each run is its own process on one thread, --workers at a time):

- bandit: the modular-bandit presets (--bandit) for --seeds seeds: memorized step (train accuracy
  >= 0.99, greedy success on the training contexts), the steps where held-out accuracy reaches
  0.5 / 0.9 / 0.99, the delay ratio at 0.9 (test 0.9 step / memorized step), the detector's outcome
  class, final train / test accuracy, training seconds;
- wd: the same presets with weight decay 0 (seed 0): does the held-out jump need weight decay?
- grid: the gridworld presets (--grid) for the seeds, the same numbers plus greedy-rollout success
  on the held-out goals.

    python benchmarks/rl.py [--parts bandit,wd,grid] [--seeds 3] [--workers 2] [--keep DIR] [--json F]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor

PARTS = ("bandit", "wd", "grid")
BANDIT = ("rl_bandit_supervised", "rl_bandit_pg", "rl_bandit_reinforce", "rl_bandit_dqn")
GRID = ("rl_grid_supervised", "rl_grid_dqn")


def run(job: tuple) -> dict:
    """Train preset `name` with seed and dotted overrides in this process (one thread); its numbers."""
    part, name, seed, overrides, keep = job
    import torch

    torch.set_num_threads(1)
    from dataclasses import replace

    import grokscope
    from grokscope.config import LogConfig, apply_overrides
    from grokscope.detect import first_step

    cfg = apply_overrides(grokscope.get_preset(name), {k: str(v) for k, v in overrides.items()})
    cfg = replace(cfg, seed=seed, log=LogConfig(figure=keep is not None, report=keep is not None,
                                                progress=False))
    with tempfile.TemporaryDirectory() as tmp:
        label = "-".join([name, str(seed), *(f"{k.split('.')[-1]}{v}" for k, v in overrides.items())])
        r = grokscope.train(cfg, os.path.join(keep, part, label) if keep else os.path.join(tmp, "run"))
    m = r.metrics
    mem, t90 = first_step(m, "train_acc", 0.99), first_step(m, "test_acc", 0.9)
    last = m[-1]
    return {"part": part, "preset": name, "agent": cfg.agent.kind, "seed": seed,
            "weight_decay": cfg.optim.weight_decay, "memorized": mem,
            "test_at_mem": next((x["test_acc"] for x in m if mem is not None and x["step"] >= mem), None),
            "t50": first_step(m, "test_acc", 0.5), "t90": t90, "t99": first_step(m, "test_acc", 0.99),
            "ratio_0.9": t90 / mem if t90 is not None and mem else None, "outcome": r.summary.get("phase"),
            "final_train": last["train_acc"], "final_test": last["test_acc"],
            "final_test_success": last.get("test_success"), "steps": cfg.train.steps,
            "train_seconds": r.summary["timing"]["session_seconds"]}


def _f(v, spec=".3f") -> str:
    return "-" if v is None else format(v, spec)


def _step(v) -> str:
    return "never" if v is None else f"{v:,}"


COLUMNS = (("part", 6), ("preset", 22), ("seed", 4), ("wd", 4), ("memorized", 9), ("test there", 10),
           ("test 0.5", 8), ("test 0.9", 8), ("test 0.99", 9), ("ratio", 6), ("outcome", 13), ("final", 9),
           ("s", 5))


def table(rows: list[dict]) -> str:
    lines = [" ".join(f"{name:>{w}}" for name, w in COLUMNS)]
    for r in rows:
        cells = (r["part"], r["preset"], r["seed"], f"{r['weight_decay']:g}", _step(r["memorized"]),
                 _f(r["test_at_mem"], ".2f"), _step(r["t50"]), _step(r["t90"]), _step(r["t99"]),
                 _f(r["ratio_0.9"], ".1f"), r["outcome"] or "-",
                 f"{_f(r['final_train'], '.2f')}/{_f(r['final_test'], '.2f')}", f"{r['train_seconds']:.0f}")
        lines.append(" ".join(f"{c:>{w}}" for c, (_, w) in zip(cells, COLUMNS)))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--parts", default=",".join(PARTS))
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--bandit", default=",".join(BANDIT))
    ap.add_argument("--grid", default=",".join(GRID))
    ap.add_argument("--keep", default=None, help="keep the run directories under DIR")
    ap.add_argument("--json", default=None, help="write the rows to this JSON file")
    a = ap.parse_args(argv)
    parts = a.parts.split(",")
    bad = [p for p in parts if p not in PARTS]
    if bad:
        print(f"parts: unknown {bad}; choose from {', '.join(PARTS)}", file=sys.stderr)
        return 2
    jobs = []
    if "bandit" in parts:
        jobs += [("bandit", n, s, {}, a.keep) for n in a.bandit.split(",") for s in range(a.seeds)]
    if "wd" in parts:
        jobs += [("wd", n, 0, {"optim.weight_decay": 0.0}, a.keep) for n in a.bandit.split(",")]
    if "grid" in parts:
        jobs += [("grid", n, s, {}, a.keep) for n in a.grid.split(",")
                 for s in range(a.seeds)]
    cpu = platform.processor() or platform.machine()
    print(f"{len(jobs)} runs, {a.workers} at a time, 1 thread each ({cpu}, {os.cpu_count()} CPUs)",
          flush=True)
    rows = []
    with ProcessPoolExecutor(a.workers) as pool:
        for row in pool.map(run, jobs):
            rows.append(row)
            print(table([row]).splitlines()[1], flush=True)
    print()
    print(table(rows))
    if a.json:
        with open(a.json + ".tmp", "w") as f:
            json.dump(rows, f, indent=1)
        os.replace(a.json + ".tmp", a.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
