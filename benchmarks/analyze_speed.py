"""Wall seconds of `grokscope analyze` over 100 checkpoints of a p = 113 one-layer run (target < 60 s).

Trains the nanda2023 model (x+y mod 113, 30% train, 1-layer transformer d128, d_mlp 512, full
batch) for 99 steps with a checkpoint at every step (100 checkpoints, steps 0..99), then times
`analyze` on it twice in the same process: the full command (every analysis on every checkpoint,
all figures, the report) and the numbers alone (no figures, no report). Prints the seconds, the
seconds per checkpoint and the ratio to the 60 s target.

    python benchmarks/analyze_speed.py [--checkpoints 100] [--threads 0] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

from grokscope import RunDir, get_preset, train
from grokscope.analysis.run import analyze

TARGET_S = 60.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoints", type=int, default=100)
    ap.add_argument("--threads", type=int, default=0,
                    help="torch threads; 0 (default) keeps torch's default, as `grokscope analyze` does")
    ap.add_argument("--keep", default=None, help="keep the run directory here (default: a temp dir)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    base = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="grokscope-analyze-"))
    run_dir = base / "run"
    if run_dir.exists():
        shutil.rmtree(run_dir)
    cfg = get_preset("nanda2023")
    cfg = replace(cfg, train=replace(cfg.train, steps=args.checkpoints - 1, checkpoint_every=1,
                                     eval_every=10, threads=args.threads))
    t0 = time.perf_counter()
    train(cfg, run_dir, progress=False)
    t_train = time.perf_counter() - t0
    n_ckpt = len({s for s, _ in RunDir(run_dir).list_checkpoints(include_latest=True)})

    t0 = time.perf_counter()
    analyze(run_dir)
    t_full = time.perf_counter() - t0
    t0 = time.perf_counter()
    analyze(run_dir, figures=False, report=False)
    t_numbers = time.perf_counter() - t0

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"torch {torch.__version__}, {torch.get_num_threads()} thread(s)")
    print(f"run: nanda2023 shape (p=113), {n_ckpt} checkpoints (training them took {t_train:.1f} s)")
    print("| analyze | seconds | s / checkpoint | vs 60 s target |")
    print("|---|---:|---:|---:|")
    for name, t in (("full (numbers, figures, report)", t_full), ("numbers only", t_numbers)):
        print(f"| {name} | {t:.1f} | {t / n_ckpt:.3f} | {t / TARGET_S:.2f}x |")
    print("target met" if t_full < TARGET_S else "TARGET MISSED")
    if not args.keep:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
