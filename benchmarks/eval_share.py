"""Share of wall time in evaluations and checkpoints, per preset at its default schedule.

Each preset trains on one thread for its budget or --steps (whichever is smaller; stop rules as the
preset sets them), without the report or figure, and the run's summary.json `timing` gives this
session's seconds in the training loop, in evaluations and in checkpoints. Also printed: the
number of evaluations, the steps per evaluation, and the dating resolution of the memorized and
generalized events (the steps since the evaluation before each).

    python benchmarks/eval_share.py [--presets demo,power2022,nanda2023,grokfast2024] [--steps 3000]
"""

from __future__ import annotations

import argparse
import os
import tempfile
from dataclasses import replace

import grokscope
from grokscope import get_preset


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--presets", default="demo,power2022,nanda2023,grokfast2024")
    ap.add_argument("--steps", type=int, default=3000, help="at most this many steps per preset")
    args = ap.parse_args()
    load0 = os.getloadavg()[0]
    rows = []
    for name in args.presets.split(","):
        cfg = get_preset(name)
        cfg = replace(cfg, train=replace(cfg.train, steps=min(cfg.train.steps, args.steps), threads=1),
                      log=replace(cfg.log, report=False, figure=False, progress=False))
        with tempfile.TemporaryDirectory() as tmp:
            r = grokscope.train(cfg, os.path.join(tmp, "run"))
        t, ev = r.summary["timing"], r.summary["events"]
        rows.append((name, r.summary["steps_done"], len(r.metrics), t["session_seconds"], t["eval_seconds"],
                     t["checkpoint_seconds"], ev.get("memorized_step"), ev.get("memorized_resolution"),
                     ev.get("generalized_step"), ev.get("generalized_resolution")))
        print(f"{name}: done", flush=True)
    print(f"\n1 thread; load avg {load0:.2f} before, {os.getloadavg()[0]:.2f} after")
    print(f"{'preset':<13} {'steps':>6} {'evals':>6} {'wall s':>8} {'eval %':>7} {'ckpt %':>7}  "
          f"{'memorized (resolution)':>23}  {'generalized (resolution)':>25}")
    for name, steps, n, wall, ev_s, ck_s, mem, mres, gen, gres in rows:
        dated = lambda s, res: "-" if s is None else f"{s:,} ({res:,})"
        print(f"{name:<13} {steps:>6,} {n:>6} {wall:>8.1f} {100 * ev_s / wall:>6.1f}% "
              f"{100 * ck_s / wall:>6.1f}%  {dated(mem, mres):>23}  {dated(gen, gres):>25}")


if __name__ == "__main__":
    main()
