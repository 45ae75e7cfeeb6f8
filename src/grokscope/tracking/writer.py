"""RunWriter: the one lifecycle of a run directory, shared by single runs and ensemble members.

open (or reopen on resume) -> config.json -> summary.json 'running' -> metric records and events
through the trackers -> checkpoints at the paths RunDir names -> summary.json written once with
its final status -> report.html (or the curves figure).
"""

from __future__ import annotations

import os
from pathlib import Path

from grokscope import detect
from grokscope.config import RunConfig, to_dict
from grokscope.early_stop import counterfactual
from grokscope.errors import ConfigError
from grokscope.tracking.rundir import (
    FORMAT_VERSION,
    RunDir,
    atomic_write_json,
    atomic_write_text,
    dumps,
    read_jsonl,
)

FINAL_KEYS = ("train_acc", "test_acc", "train_loss", "test_loss")


def check_out(out: str | os.PathLike) -> Path:
    """A run may only go into a new or empty directory: never clobber results."""
    if str(out).strip() == "":
        raise ConfigError("out: must be a directory path, got '' (an empty path would mean the current "
                          "directory)")
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"out: {str(path)!r} is a file; give a directory path for the run")
    if path.is_dir() and any(p.name != RunDir.LOCK for p in path.iterdir()):
        raise ConfigError(f"out: {str(path)!r} already exists and is not empty; choose a new directory")
    return path


def versions() -> dict:
    import platform

    import numpy as np
    import torch

    from grokscope.version import __version__

    return {"grokscope": __version__, "torch": torch.__version__, "numpy": np.__version__,
            "python": platform.python_version()}


def _line(obj: dict) -> str:
    return dumps(obj) + "\n"


class RunWriter:
    """Writes one run directory. Build it after every check has passed: `create` makes the
    directory, `reopen` continues an existing one (resume)."""

    def __init__(self, cfg: RunConfig, rd: RunDir):
        from grokscope.tracking.sinks import MultiTracker, build_trackers

        self.cfg, self.rd = cfg, rd
        self.tracker = MultiTracker(build_trackers(cfg.log, rd.path))
        self.base: dict = {}
        self.say = None  # set by the engine when a progress bar is shown: one-line notes for the user

    @classmethod
    def create(cls, cfg: RunConfig, out: str | os.PathLike) -> RunWriter:
        rd = RunDir(out)
        rd.path.mkdir(parents=True, exist_ok=True)
        rd.checkpoints.mkdir(exist_ok=True)
        atomic_write_json(rd.config, to_dict(cfg))
        return cls(cfg, rd)

    @classmethod
    def reopen(cls, cfg: RunConfig, rd: RunDir) -> RunWriter:
        atomic_write_json(rd.config, to_dict(cfg))
        return cls(cfg, rd)

    def truncate(self, step: int) -> list[dict]:
        """Resume at `step`: forget metric lines and events after it (they will be recomputed
        identically) and checkpoints past it; returns the records kept."""
        rd = self.rd
        records = [r for r in rd.read_metrics() if r["step"] <= step]
        atomic_write_text(rd.metrics, "".join(_line(r) for r in records))
        events = [e for e in read_jsonl(rd.events) if e["step"] <= step]
        atomic_write_text(rd.events, "".join(_line(e) for e in events))
        for ckpt_step, path in rd.list_checkpoints():
            if ckpt_step > step:
                path.unlink()
                RunDir.checksum_path(path).unlink(missing_ok=True)
        return records

    def begin(self, info: dict, resumed_from: int | None = None) -> None:
        """summary.json 'running' (format, name, task, versions, lineage, resumes) and trackers on."""
        previous = self.read_previous() if resumed_from is not None else {}
        self.base = {"format_version": FORMAT_VERSION, "name": self.cfg.name, **info,
                     "versions": versions(),
                     "resumed_from": previous.get("resumed_from", []) + (
                         [resumed_from] if resumed_from is not None else [])}
        atomic_write_json(self.rd.summary, {**self.base, "status": "running"})
        self.tracker.start(to_dict(self.cfg), self.rd.path)

    def read_previous(self) -> dict:
        return self.rd.read_summary() if self.rd.summary.is_file() else {}

    def log(self, record: dict) -> None:
        self.tracker.log({k: v for k, v in record.items() if k != "step"}, record["step"])

    def event(self, name: str, step: int, message: str) -> None:
        self.tracker.event(name, step, message)

    def finish(self, records: list[dict], *, status: str, reason: str | None, steps_done: int,
               wall: float, timing: dict | None = None) -> dict:
        """Write summary.json once with the final status, events and phases on the generalization
        split; then the report (or the curves figure). `timing`: this session's seconds in total,
        in evaluations and in checkpoints. Returns the summary."""
        rd, cfg = self.rd, self.cfg
        if status == "diverged":  # a timed latest.pt may hold the diverging weights
            rd.latest.unlink(missing_ok=True)
            RunDir.checksum_path(rd.latest).unlink(missing_ok=True)
        split = self.base.get("generalization_split", "test")
        analysis = detect.analyze(records, split=split, n_eval=detect.eval_size(self.base, split))
        last = records[-1] if records else {}
        final = {k: last.get(k) for k in FINAL_KEYS}
        for name in self.base.get("splits", []):
            for metric in ("acc", "loss"):
                final.setdefault(f"{name}_{metric}", last.get(f"{name}_{metric}"))
        summary = {**self.base, "status": status, "stop_reason": reason, "wall_seconds": wall,
                   "steps_done": steps_done, "timing": timing, "final": final, "events": analysis["events"],
                   "phase": analysis["phase"], "phases": analysis["phases"],
                   "still_on_plateau": analysis["still_on_plateau"], "verdict": analysis.get("verdict"),
                   "early_stopping": {"split": split, "rules": counterfactual(records, split)}}
        atomic_write_json(rd.summary, summary)
        self.tracker.finish(summary)
        if records and cfg.log.report:
            from grokscope.report.html import write_report

            if self.say is not None:
                self.say(f"writing {rd.report} ...")
            write_report(rd.path)  # draws figures/curves.png and norms.png too
        elif records and cfg.log.figure:
            from grokscope.report.plots import save_curves

            save_curves(records, rd.figures / "curves.png", title=cfg.name or rd.path.name,
                        events=summary["events"], analysis=analysis, splits=self.base.get("splits"),
                        generalization_split=split)
        return summary
