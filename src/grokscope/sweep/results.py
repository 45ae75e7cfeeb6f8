"""A sweep's results, read from its directory: sweep.json, the run directories, results.csv.

Reading takes no lock (a sweep being trained can be shown); every number comes from the runs'
own summary.json, or with `gap` is recomputed from their metrics.jsonl.
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from typing import Any

from grokscope.errors import ConfigError
from grokscope.sweep.spec import value_text
from grokscope.tracking.rundir import RunDir, atomic_write_text

__all__ = ["FINISHED", "RESULT_COLUMNS", "VOLATILE_COLUMNS", "collect", "is_finished", "read_results",
           "read_sweep", "run_status", "write_results"]

FINISHED = ("completed", "diverged")
RESULT_COLUMNS = ("seed", "status", "outcome", "memorized_step", "generalized_step", "delay_ratio",
                  "final_train_acc", "final_test_acc", "final_train_loss", "final_test_loss",
                  "es_loss_step", "es_loss_acc", "es_acc_step", "es_acc_acc",
                  "steps_done", "wall_seconds", "run_dir")
"""Columns of results.csv after `run` and the axis fields. final_test_*: the generalization split's;
es_loss_* / es_acc_*: the step where Lightning's default early stopping on the validation loss / a
patience-3 stopper on the validation accuracy would have ended the run, and the accuracy kept there
(empty: it never triggers; see grokscope.early_stop)."""
VOLATILE_COLUMNS = ("wall_seconds", "run_dir")
"""Columns that differ between identical sweeps (timing, paths)."""


def run_status(path: str | os.PathLike) -> str | None:
    """The status in PATH/summary.json, or None when there is none (yet)."""
    try:
        return json.loads(RunDir(path).summary.read_text()).get("status")
    except (OSError, json.JSONDecodeError):
        return None


def is_finished(path: str | os.PathLike) -> bool:
    return run_status(path) in FINISHED


def read_sweep(path: str | os.PathLike) -> dict:
    """sweep.json of a sweep directory (ConfigError when there is none)."""
    f = Path(path) / "sweep.json"
    if not f.is_file():
        raise ConfigError(f"sweep: {str(path)!r} is not a sweep directory (no sweep.json)")
    return json.loads(f.read_text())


def collect(path: str | os.PathLike, gap: int | None = None) -> tuple[dict, list[dict]]:
    """(sweep.json, one row per run) read from the run directories; unfinished runs have status
    'pending' and None in the result columns. Events and outcome come from each summary.json, or
    with `gap` are recomputed from metrics.jsonl by `detect.analyze(records, gap)`."""
    path = Path(path)
    meta = read_sweep(path)
    rows = []
    for r in meta["runs"]:
        d = path / "runs" / r["name"]
        row: dict[str, Any] = {"run": r["name"], **r["values"]}
        row.update(dict.fromkeys(RESULT_COLUMNS))
        row.update(seed=r["seed"], status="pending", run_dir=f"runs/{r['name']}")
        if is_finished(d):
            s = json.loads(RunDir(d).summary.read_text())
            if gap is not None:
                from grokscope import detect
                from grokscope.tracking.rundir import read_jsonl

                split = s.get("generalization_split", "test")
                analysis = detect.analyze(read_jsonl(RunDir(d).metrics), gap, split=split,
                                          n_eval=detect.eval_size(s, split))
                s = {**s, "events": analysis["events"], "phase": analysis["phase"]}
            ev, final = s.get("events") or {}, s.get("final") or {}
            gen = s.get("generalization_split", "test")
            stops = {r["rule"]: r for r in (s.get("early_stopping") or {}).get("rules", [])}
            row.update(status=s.get("status"), outcome=s.get("phase"), steps_done=s.get("steps_done"),
                       wall_seconds=s.get("wall_seconds"),
                       **{k: ev.get(k) for k in ("memorized_step", "generalized_step", "delay_ratio")},
                       **{f"final_{k}": final.get(k) for k in ("train_acc", "train_loss")},
                       final_test_acc=final.get(f"{gen}_acc"), final_test_loss=final.get(f"{gen}_loss"),
                       **{f"es_{short}_{what}": stops.get(rule, {}).get(key)
                          for short, rule in (("loss", "lightning_loss"), ("acc", "acc_3"))
                          for what, key in (("step", "stopped_step"), ("acc", "kept_acc"))})
        rows.append(row)
    return meta, rows


def write_results(path: str | os.PathLike) -> Path:
    """Rebuild SWEEP/results.csv from the run directories (atomic write); returns its path."""
    path = Path(path)
    meta, rows = collect(path)
    columns = ["run", *meta["axes"], *RESULT_COLUMNS]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(columns)
    for row in rows:
        w.writerow(["" if row.get(c) is None and c not in meta["axes"] else
                    value_text(row.get(c)) if c in meta["axes"] else row[c] for c in columns])
    out = path / "results.csv"
    atomic_write_text(out, buf.getvalue())
    return out


def read_results(path: str | os.PathLike) -> list[dict[str, str]]:
    """results.csv as a list of {column: text} rows."""
    with open(Path(path) / "results.csv", newline="") as f:
        return list(csv.DictReader(f))
