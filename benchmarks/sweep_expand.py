"""Wall seconds of expanding a sweep spec (target: 10,000 runs in <= 5 s), and of refusing one.

Expands a grid over optim.lr x optim.weight_decay (default 100 x 100 = 10,000 runs, one seed) on
the demo preset: every run typed, built and validated, as `grokscope sweep` does before anything
is written. Also times the refusal of a 1000 x 1000 spec (counted, never built) and, for
comparison, validating runs one by one the old way (apply_overrides + validate per run, timed
over `--reference` runs and scaled). Prints the seconds.

    python benchmarks/sweep_expand.py [--lr 100] [--wd 100] [--seeds 1] [--reference 500]
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from dataclasses import replace

from grokscope.config import apply_overrides, validate
from grokscope.errors import ConfigError
from grokscope.sweep.spec import SweepSpec, parse_axis, parse_seeds

TARGET_S = 5.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lr", type=int, default=100, help="points of optim.lr (log-spaced)")
    ap.add_argument("--wd", type=int, default=100, help="points of optim.weight_decay")
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--reference", type=int, default=500,
                    help="runs to time the per-run apply_overrides + validate way on (0: skip)")
    args = ap.parse_args()
    spec = SweepSpec(axes=(parse_axis("optim.lr", f"log:1e-4:1e-2:{args.lr}"),
                           parse_axis("optim.weight_decay", f"0:1:{args.wd}")),
                     seeds=parse_seeds(args.seeds))
    n = spec.count()
    print(f"python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} cores; "
          f"{args.lr} x {args.wd} x {args.seeds} seeds = {n:,} runs")

    big = SweepSpec(axes=(parse_axis("optim.lr", "log:1e-4:1e-2:1000"),
                          parse_axis("optim.weight_decay", "0:1:1000")))
    t = time.perf_counter()
    try:
        big.expand()
    except ConfigError as e:
        print(f"refused 1000 x 1000 in {time.perf_counter() - t:.4f} s: {e}")

    t = time.perf_counter()
    runs = spec.expand(max_runs=None)
    seconds = time.perf_counter() - t
    print(f"expanded {len(runs):,} runs in {seconds:.2f} s ({seconds / len(runs) * 1e3:.3f} ms a run; "
          f"{seconds / TARGET_S:.2f} of the {TARGET_S:.0f} s target)")

    if args.reference:
        base = spec.base_config()
        t = time.perf_counter()
        for r in runs[:args.reference]:
            texts = {a.field: a.values[i] for a, i in zip(spec.axes, _index(spec, r))}
            validate(replace(apply_overrides(base, texts), seed=r.seed, name=r.config.name))
        per = (time.perf_counter() - t) / min(args.reference, len(runs))
        print(f"per run apply_overrides + validate (the old way): {per * 1e3:.3f} ms a run, "
              f"{per * len(runs):.1f} s for {len(runs):,}")


def _index(spec: SweepSpec, run) -> list[int]:
    from grokscope.sweep.spec import value_text

    return [a.values.index(value_text(run.values[a.field])) for a in spec.axes]


if __name__ == "__main__":
    main()
