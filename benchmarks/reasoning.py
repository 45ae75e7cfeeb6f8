"""The knowledge-graph presets' numbers (docs/reasoning.md), measured in one go.

Parts (each run is its own process on one thread, two at a time on a 2-core machine):

- composition: --composition PRESET for --seeds seeds: memorized step (train acc >= 0.99), test_iid
  accuracy there, the steps where test_iid reaches 0.9 / 0.95, the delay ratio at 0.9 (test_iid
  0.9 step / memorized step), final test_iid / test_ood / train_inferred accuracy, training seconds;
- comparison: --comparison PRESET for the seeds, the same numbers;
- phi: the composition preset over --phis (seed 0 unless --phi-seeds): the same numbers per phi
  and whether the steps to test_iid 0.9 fall as phi grows.

    python benchmarks/reasoning.py [--parts composition,comparison,phi] [--seeds 2] [--phis 5.4,7.2,9.0]
        [--composition wang2024_composition] [--comparison wang2024_comparison] [--keep DIR] [--json F]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor

PARTS = ("composition", "comparison", "phi")


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
    cfg = replace(cfg, seed=seed, log=LogConfig(figure=False, report=False, progress=False))
    with tempfile.TemporaryDirectory() as tmp:
        label = "-".join([name, str(seed), *(f"{k.split('.')[-1]}{v}" for k, v in overrides.items())])
        r = grokscope.train(cfg, os.path.join(keep, label) if keep else os.path.join(tmp, "run"))
    m = r.metrics
    mem, t90 = first_step(m, "train_acc", 0.99), first_step(m, "test_iid_acc", 0.9)
    last = m[-1]
    return {"part": part, "preset": name, "seed": seed, "phi": cfg.task.options.get("phi"), "memorized": mem,
            "iid_at_mem": next((x["test_iid_acc"] for x in m if mem is not None and x["step"] >= mem), None),
            "t90": t90, "t95": first_step(m, "test_iid_acc", 0.95),
            "ratio_0.9": t90 / mem if t90 is not None and mem else None, "outcome": r.summary.get("phase"),
            "final_train": last["train_acc"], "final_iid": last["test_iid_acc"],
            "final_ood": last.get("test_ood_acc"), "final_inferred": last.get("train_inferred_acc"),
            "train_seconds": r.summary["timing"]["session_seconds"]}


def _f(v, spec=".3f") -> str:
    return "-" if v is None else format(v, spec)


def _table(rows: list[dict]) -> None:
    print(f"{'preset':24} {'seed':>4} {'phi':>5} {'mem':>6} {'iid@mem':>7} {'t0.9':>6} {'t0.95':>6} "
          f"{'ratio':>6} {'outcome':>13} {'train':>6} {'iid':>6} {'ood':>6} {'inf':>6} {'sec':>6}")
    for r in rows:
        print(f"{r['preset']:24} {r['seed']:>4} {_f(r['phi'], '.1f'):>5} {_f(r['memorized'], 'd'):>6} "
              f"{_f(r['iid_at_mem']):>7} {_f(r['t90'], 'd'):>6} {_f(r['t95'], 'd'):>6} "
              f"{_f(r['ratio_0.9'], '.1f'):>6} {r['outcome'] or '-':>13} {r['final_train']:6.3f} "
              f"{r['final_iid']:6.3f} {_f(r['final_ood']):>6} {_f(r['final_inferred']):>6} "
              f"{r['train_seconds']:6.1f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--parts", default=",".join(PARTS))
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--phis", default="5.4,7.2,9.0")
    ap.add_argument("--phi-seeds", type=int, default=1)
    ap.add_argument("--composition", default="wang2024_composition")
    ap.add_argument("--comparison", default="wang2024_comparison")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--json", default=None, help="also write every row to this file")
    ap.add_argument("--keep", default=None, help="keep the run directories under this folder")
    a = ap.parse_args()
    parts, seeds = a.parts.split(","), range(a.seeds)
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"load {os.getloadavg()[0]:.2f}, python {sys.version.split()[0]}; {a.workers} runs at a time, "
          f"1 thread each")
    jobs: list[tuple] = []
    if "composition" in parts:
        jobs += [("composition", a.composition, s, {}) for s in seeds]
    if "comparison" in parts:
        jobs += [("comparison", a.comparison, s, {}) for s in seeds]
    if "phi" in parts:
        jobs += [("phi", a.composition, s, {"task.options.phi": p}) for p in a.phis.split(",")
                 for s in range(a.phi_seeds)]
    with ProcessPoolExecutor(a.workers) as pool:
        rows = list(pool.map(run, [(*job, a.keep) for job in jobs]))
    for part in PARTS:
        these = [r for r in rows if r["part"] == part]
        if not these:
            continue
        print(f"\n## {part}")
        _table(these)
        if part == "phi":
            by_phi = sorted(these, key=lambda r: r["phi"])
            t = [float("inf") if r["t90"] is None else r["t90"] for r in by_phi]  # never = slowest
            falls = all(b <= a for a, b in zip(t, t[1:]))
            print(f"steps to test_iid 0.9 {'fall' if falls else 'do not fall'} as phi grows: "
                  + ", ".join(f"phi {r['phi']}: {_f(r['t90'], 'd')}" for r in by_phi))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
