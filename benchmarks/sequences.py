"""The sequence presets' numbers (docs/sequences.md and the presets' docstrings), measured in one go.

Parts (each run is its own process on one thread, two at a time on a 2-core machine):

- parity: merrill2023_parity for --seeds seeds: memorized step (train acc >= 0.99), test accuracy
  there, generalized step (test >= 0.99), delay ratio, and the hidden-progress lead: the step where
  the Fourier gap crosses half its final value against the step where test accuracy crosses 0.75;
- sentiment: omnigrok_sentiment_lstm and omnigrok_sentiment_control for the seeds: memorized step,
  test accuracy there, steps to test accuracy 0.9 / 0.95, delay ratio at 0.95, outcome class,
  weight norm at the start and the end;
- question: murty2023_question for the seeds: the step where in-domain questions saturate
  (test_id_seq_acc >= 0.99, the whole question right), the first-word accuracy on test_gen (the
  main auxiliary moved) and the linear rule's share there, at its best and at the end, and the rise
  after saturation;
- depth: murty2023_question over --depths (seed 0 unless --depth-seeds; the preset's own depth is
  taken from the question part when it ran): the same numbers per depth, and the depth whose
  test_gen first-word accuracy ends highest;
- tense: murty2023_question's settings on tense inflection (--task.kind tense_inflection) for the
  seeds, as question (the main verb instead of the first word).

    python benchmarks/sequences.py [--parts parity,sentiment,question,depth,tense] [--seeds 3]
        [--depths 1,2,4] [--depth-seeds 1] [--json rows.json] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor

PARTS = ("parity", "sentiment", "question", "depth", "tense")


def run(job: tuple[str, str, int, dict, str | None]) -> dict:
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
    m, ev, gen = r.metrics, r.summary["events"], r.summary["generalization_split"]
    mem = first_step(m, "train_acc", 0.99)
    at = lambda step, key: next((x.get(key) for x in m if step is not None and x["step"] >= step), None)
    row = {"part": part, "preset": name, "seed": seed, "overrides": overrides, "memorized": mem,
           "gen_at_mem": at(mem, f"{gen}_acc"), "t90": first_step(m, f"{gen}_acc", 0.9),
           "t95": first_step(m, f"{gen}_acc", 0.95), "t99": first_step(m, f"{gen}_acc", 0.99),
           "delay_ratio_0.95": ev.get("delay_ratio_0.95"), "outcome": r.summary.get("phase"),
           "final_train": m[-1]["train_acc"], "final_gen": m[-1][f"{gen}_acc"],
           "norm_start": m[0]["weight_norm"], "norm_end": m[-1]["weight_norm"],
           "train_seconds": r.summary["timing"]["session_seconds"]}
    if part == "parity":
        steps, gaps = [x["step"] for x in m], [x["fourier_gap"] for x in m]
        half = gaps[-1] / 2
        row["gap_half"] = next((s for s, g in zip(steps, gaps) if g >= half), None)
        row["test_075"] = first_step(m, "test_acc", 0.75)
    key = {"question": "first", "depth": "first", "tense": "verb"}.get(part)
    if key:
        sat = first_step(m, "test_id_seq_acc", 0.99)
        curve = [x[f"test_gen_{key}_acc"] for x in m]
        best = max(range(len(m)), key=lambda i: curve[i])
        row.update({"key": key, "n_layers": cfg.model.n_layers, "saturated": sat,
                    "key_at_sat": at(sat, f"test_gen_{key}_acc"),
                    "linear_at_sat": at(sat, f"test_gen_{key}_linear_acc"),
                    "key_best": curve[best], "key_best_step": m[best]["step"], "key_final": curve[-1],
                    "linear_final": m[-1][f"test_gen_{key}_linear_acc"],
                    "seq_final": m[-1]["test_gen_seq_acc"],
                    "rise": None if sat is None else curve[-1] - at(sat, f"test_gen_{key}_acc")})
    return row


def _f(v, spec=".3f") -> str:
    return "-" if v is None else format(v, spec)


def _table(rows: list[dict]) -> None:
    print(f"{'preset':28} {'seed':>4} {'mem':>6} {'gen@mem':>7} {'t0.9':>6} {'t0.95':>6} {'t0.99':>6} "
          f"{'ratio':>6} {'outcome':>13} {'train':>6} {'gen':>6} {'norm0':>6} {'normT':>6} {'sec':>6}")
    for r in rows:
        print(f"{r['preset']:28} {r['seed']:>4} {_f(r['memorized'], 'd'):>6} {_f(r['gen_at_mem']):>7} "
              f"{_f(r['t90'], 'd'):>6} {_f(r['t95'], 'd'):>6} {_f(r['t99'], 'd'):>6} "
              f"{_f(r['delay_ratio_0.95'], '.1f'):>6} {r['outcome'] or '-':>13} {r['final_train']:6.3f} "
              f"{r['final_gen']:6.3f} {r['norm_start']:6.1f} {r['norm_end']:6.1f} {r['train_seconds']:6.1f}")


def _structure(rows: list[dict]) -> None:
    print(f"{'layers':>6} {'seed':>4} {'id sat':>7} {'gen@sat':>7} {'lin@sat':>7} {'best':>6} {'at':>6} "
          f"{'final':>6} {'lin':>6} {'rise':>6} {'seq':>6}")
    for r in rows:
        print(f"{r['n_layers']:>6} {r['seed']:>4} {_f(r['saturated'], 'd'):>7} {_f(r['key_at_sat']):>7} "
              f"{_f(r['linear_at_sat']):>7} {_f(r['key_best']):>6} {r['key_best_step']:>6} "
              f"{_f(r['key_final']):>6} {_f(r['linear_final']):>6} {_f(r['rise'], '+.3f'):>6} "
              f"{_f(r['seq_final']):>6}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--parts", default=",".join(PARTS))
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--depths", default="1,2,4")
    ap.add_argument("--depth-seeds", type=int, default=1)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--json", default=None, help="also write every row to this file")
    ap.add_argument("--keep", default=None, help="keep the run directories under this folder")
    a = ap.parse_args()
    parts = a.parts.split(",")
    seeds = range(a.seeds)
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"load {os.getloadavg()[0]:.2f}, python {sys.version.split()[0]}; {a.workers} runs at a time, "
          f"1 thread each")
    jobs: list[tuple] = []
    if "parity" in parts:
        jobs += [("parity", "merrill2023_parity", s, {}) for s in seeds]
    if "sentiment" in parts:
        jobs += [("sentiment", n, s, {}) for n in ("omnigrok_sentiment_lstm", "omnigrok_sentiment_control")
                 for s in seeds]
    if "question" in parts:
        jobs += [("question", "murty2023_question", s, {}) for s in seeds]
    if "depth" in parts:
        jobs += [("depth", "murty2023_question", s, {"model.n_layers": d}) for d in a.depths.split(",")
                 for s in range(a.depth_seeds)]
    if "tense" in parts:
        jobs += [("tense", "murty2023_question", s, {"task.kind": "tense_inflection"}) for s in seeds]
    with ProcessPoolExecutor(a.workers) as pool:
        rows = list(pool.map(run, [(*job, a.keep) for job in jobs]))
    for part in PARTS:
        these = [r for r in rows if r["part"] == part]
        if not these:
            continue
        print(f"\n## {part}")
        _table(these)
        if part == "parity":
            for r in these:
                print(f"seed {r['seed']}: Fourier gap at half its final value at step {r['gap_half']}, "
                      f"test accuracy >= 0.75 at step {r['test_075']}")
        if part == "depth":  # the preset's own depth comes from the question part's runs of the same seeds
            these = sorted(these + [r for r in rows if r["part"] == "question" and r["seed"] < a.depth_seeds],
                           key=lambda r: (r["n_layers"], r["seed"]))
        if part in ("question", "depth", "tense"):
            _structure(these)
        if part == "depth":
            best = max(these, key=lambda r: r["key_final"])
            print(f"best depth: {best['n_layers']} layers (test_gen first-word accuracy at the end "
                  f"{best['key_final']:.3f})")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
