"""The image presets' numbers (docs/images.md and the presets' docstrings), measured in one go.

Parts (each run is its own process on one thread, two at a time on a 2-core machine):

- presets (control: the control alone): omnigrok_digits and omnigrok_digits_control for --seeds
  seeds: memorized step (train acc >= 0.99), test accuracy there, the steps where test accuracy
  reaches 0.9 / 0.95, the delay ratio at 0.95 (summary.json's delay_ratio_0.95), the outcome
  class, final accuracies, weight norm at the start and the end, training seconds;
- wd: omnigrok_digits over weight decays --wd (seeds as above): steps to test accuracy 0.9 and
  0.95, and the exponent b of the least-squares fit t = a * wd^b on log-log axes (Omnigrok's law
  says b = -1);
- humayun: humayun_digits for the seeds: clean-test saturation step, PGD/FGSM accuracy there, at
  its best and at the end, the local-complexity phases at training points;
- cost: humayun_digits with and without its measures (robust_n 0), side by side: the measures'
  share of the training session's wall time;
- cnn: digits_cnn and its alpha = 1 control (the same CNN at init_scale 1) for the seeds.

    python benchmarks/images.py [--parts presets,wd,humayun,cost,cnn] [--seeds 3] [--wd 0.05,0.1,0.2,0.4]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor

PARTS = ("presets", "control", "wd", "humayun", "cost", "cnn")


def run(job: tuple[str, int, dict, str | None]) -> dict:
    """Train preset `name` with seed and dotted overrides in this process (one thread); its numbers.
    With `keep`, the run directory is kept under that folder (named preset-seed[-overrides])."""
    name, seed, overrides, keep = job
    import torch

    torch.set_num_threads(1)
    from dataclasses import replace

    import grokscope
    from grokscope.analysis.images import lc_phases, robustness_summary
    from grokscope.config import LogConfig, apply_overrides
    from grokscope.detect import first_step

    cfg = apply_overrides(grokscope.get_preset(name), {k: str(v) for k, v in overrides.items()})
    cfg = replace(cfg, seed=seed, log=LogConfig(figure=False, report=False, progress=False))
    with tempfile.TemporaryDirectory() as tmp:
        label = "-".join([name, str(seed), *(f"{k.split('.')[-1]}{v}" for k, v in overrides.items())])
        r = grokscope.train(cfg, os.path.join(keep, label) if keep else os.path.join(tmp, "run"))
    m, ev = r.metrics, r.summary["events"]
    mem = first_step(m, "train_acc", 0.99)
    at_mem = next((x["test_acc"] for x in m if mem is not None and x["step"] >= mem), None)
    return {"preset": name, "seed": seed, "overrides": overrides, "memorized": mem, "test_at_mem": at_mem,
            "t90": first_step(m, "test_acc", 0.9), "t95": first_step(m, "test_acc", 0.95),
            "delay_ratio_0.95": ev.get("delay_ratio_0.95"), "outcome": r.summary.get("phase"),
            "final_train": m[-1]["train_acc"], "final_test": m[-1]["test_acc"],
            "norm_start": m[0]["weight_norm"], "norm_end": m[-1]["weight_norm"],
            "train_seconds": r.summary["timing"]["session_seconds"],
            "eval_seconds": r.summary["timing"]["eval_seconds"],
            "robustness": robustness_summary(m), "lc": lc_phases(m)}


def _f(v, spec=".3f") -> str:
    return "-" if v is None else format(v, spec)


def _table(rows: list[dict]) -> None:
    print(f"{'preset':26} {'seed':>4} {'mem':>6} {'test@mem':>8} {'t0.9':>6} {'t0.95':>6} {'ratio':>6} "
          f"{'outcome':>13} {'train':>6} {'test':>6} {'norm0':>6} {'normT':>6} {'sec':>6}")
    for r in rows:
        print(f"{r['preset']:26} {r['seed']:>4} {_f(r['memorized'], 'd'):>6} {_f(r['test_at_mem']):>8} "
              f"{_f(r['t90'], 'd'):>6} {_f(r['t95'], 'd'):>6} {_f(r['delay_ratio_0.95'], '.1f'):>6} "
              f"{r['outcome'] or '-':>13} {r['final_train']:6.3f} {r['final_test']:6.3f} "
              f"{r['norm_start']:6.1f} "
              f"{r['norm_end']:6.1f} {r['train_seconds']:6.1f}")


def fit_exponent(xs: list[float], ys: list[float]) -> float | None:
    """b of the least-squares line log y = log a + b log x (None with fewer than 2 distinct x)."""
    if len(set(xs)) < 2:
        return None
    lx, ly = [math.log(x) for x in xs], [math.log(y) for y in ys]
    mx, my = statistics.fmean(lx), statistics.fmean(ly)
    return sum((a - mx) * (b - my) for a, b in zip(lx, ly)) / sum((a - mx) ** 2 for a in lx)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--parts", default=",".join(PARTS))
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--wd", default="0.05,0.1,0.2,0.4")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--json", default=None, help="also write every row to this file")
    ap.add_argument("--keep", default=None, help="keep the run directories under this folder")
    a = ap.parse_args()
    parts = a.parts.split(",")
    seeds = range(a.seeds)
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"load {os.getloadavg()[0]:.2f}, "
          f"python {sys.version.split()[0]}; {a.workers} runs at a time, 1 thread each")
    jobs: dict[str, list] = {}
    if "presets" in parts:
        jobs["presets"] = [(n, s, {}) for n in ("omnigrok_digits", "omnigrok_digits_control") for s in seeds]
    if "control" in parts:  # the control alone (the wd part's first value runs omnigrok_digits itself)
        jobs["control"] = [("omnigrok_digits_control", s, {}) for s in seeds]
    if "wd" in parts:
        jobs["wd"] = [("omnigrok_digits", s, {"optim.weight_decay": w})
                      for w in a.wd.split(",") for s in seeds]
    if "humayun" in parts:
        jobs["humayun"] = [("humayun_digits", s, {}) for s in seeds]
    if "cost" in parts:
        jobs["cost"] = [("humayun_digits", 0, o) for o in ({}, {"task.options.robust_n": 0})]
    if "cnn" in parts:
        jobs["cnn"] = [("digits_cnn", s, o) for o in ({}, {"model.init_scale": 1.0}) for s in seeds]
    flat = [(part, job) for part, js in jobs.items() for job in js]
    with ProcessPoolExecutor(a.workers) as pool:
        results = list(pool.map(run, [(*job, a.keep) for _, job in flat]))
    by_part: dict[str, list] = {}
    for (part, _), res in zip(flat, results):
        by_part.setdefault(part, []).append(res)
    for part, rows in by_part.items():
        print(f"\n## {part}")
        _table(rows)
        if part == "wd":
            for key in ("t90", "t95"):
                pts = [(float(r["overrides"]["optim.weight_decay"]), r[key]) for r in rows if r[key]]
                b = fit_exponent([p[0] for p in pts], [p[1] for p in pts])
                print(f"fit {key} = a * wd^b over {len(pts)} runs: b = {_f(b, '.2f')}")
        if part == "humayun":
            for r in rows:
                rob, lc = r["robustness"] or {}, r["lc"] or {}
                print(f"seed {r['seed']}: clean test saturated at step {rob.get('saturation_step')} "
                      f"(clean {_f(rob.get('clean_at_saturation'))}); "
                      f"test PGD acc there {_f(rob.get('pgd_at_saturation'))}, "
                      f"best {_f(rob.get('pgd_best'))} at step {rob.get('pgd_best_step')}, "
                      f"end {_f(rob.get('pgd_final'))}; "
                      f"FGSM there {_f(rob.get('fgsm_at_saturation'))}, end {_f(rob.get('fgsm_final'))}; "
                      f"train LC {_f(lc.get('start'), '.1f')} -> min {_f(lc.get('min'), '.1f')} "
                      f"at {lc.get('min_step')} -> max {_f(lc.get('max'), '.1f')} at {lc.get('max_step')} "
                      f"-> {_f(lc.get('final'), '.1f')} "
                      f"({' -> '.join(lc.get('phases') or [])})")
        if part == "cost":
            on, off = rows[0]["train_seconds"], rows[1]["train_seconds"]
            print(f"measures' share of the training session: {(on - off) / on:.1%} ({on:.1f} s with, "
                  f"{off:.1f} s "
                  f"without); evaluations (measures included) {rows[0]['eval_seconds']:.1f} s")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
