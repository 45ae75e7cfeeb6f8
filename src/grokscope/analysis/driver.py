"""The parts every per-domain analysis (images, reasoning) shares: reading checkpoints, dating the
key checkpoints from the run's metrics, and writing analysis.jsonl / analysis.json / the report."""

from __future__ import annotations

import json
import sys
import time

from grokscope import detect
from grokscope.errors import ConfigError

__all__ = ["finish", "key_checkpoints", "readable_states"]


def readable_states(ckpts: list):
    """(step, model state dict) of every checkpoint in `ckpts` ([(step, path)]) that loads; corrupt
    ones are named on stderr and skipped."""
    from grokscope.training.checkpoint import CheckpointError, load_checkpoint

    for step, path in ckpts:
        try:
            yield step, load_checkpoint(path)["model"]
        except CheckpointError as e:
            print(f"grokscope: skipped {str(e).removeprefix('checkpoint: ')}", file=sys.stderr)


def key_checkpoints(rd, records: list[dict], summary: dict, gen: str) -> tuple[list[dict], dict | None, dict]:
    """(metrics, phase, key steps) of an analysis: the run's metric records, its detected phases, and
    the first analysed checkpoint at or after memorization and generalization, and the last one.
    ConfigError when no checkpoint could be read."""
    if not records:
        raise ConfigError(f"run: {str(rd.path)!r} has no readable checkpoint to analyse")
    metrics = rd.read_metrics()
    phase = detect.analyze(metrics, split=gen, n_eval=detect.eval_size(summary, gen)) if metrics else None
    events = (phase or {}).get("events", {})
    steps = [r["step"] for r in records]
    after = lambda s: None if s is None else next((c for c in steps if c >= s), None)
    return metrics, phase, {"memorized": after(events.get("memorized_step")),
                            "generalized": after(events.get("test_0.95_after_memorized",
                                                            events.get("test_0.95"))),
                            "final": steps[-1]}


def finish(rd, out: dict, records: list[dict], t0: float, report: bool) -> dict:
    """Write analysis.jsonl (the records) and analysis.json (`out` with its seconds since `t0`), then
    the report if asked; returns `out`."""
    from grokscope.tracking.rundir import atomic_write_json, atomic_write_text

    atomic_write_text(rd.analysis_records, "".join(json.dumps(r) + "\n" for r in records))
    out["seconds"] = round(time.perf_counter() - t0, 2)
    atomic_write_json(rd.analysis, out)
    if report:
        from grokscope.report.html import write_report

        write_report(rd.path)
    return out
