"""A single run: RunConfig -> run directory, and resuming a run from its last checkpoint.

`train` and `resume` build a `SingleStepper` (the supervised batch step of one model on any Task)
and hand it to the engine with the run's `RunWriter`. A resumed run continues exactly as an
uninterrupted one: checkpoints hold the model, optimizer, sampler (batch order) and torch RNG
states, and resuming first drops the metric lines written after the checkpoint it starts from.
"""

from __future__ import annotations

import os
import sys
from dataclasses import replace

import torch

from grokscope.config import RunConfig, from_dict, validate
from grokscope.errors import ConfigError
from grokscope.tracking.lock import RunLock
from grokscope.tracking.rundir import RunDir
from grokscope.tracking.writer import RunWriter, check_out
from grokscope.training.checkpoint import newest_good
from grokscope.training.common import default_out, resolve_device
from grokscope.training.engine import Member, RunResult, run_engine, show_progress
from grokscope.training.monitor import Monitor
from grokscope.training.stepper import SingleStepper, run_info

__all__ = ["RunResult", "make_stepper", "resume", "train"]


def train(config: RunConfig, out: str | os.PathLike | None = None, *,
          progress: bool | None = None) -> RunResult:
    """Train one run into `out` (default runs/<time>-<name>) and return its result.

    Everything is checked before the directory is created, so bad input leaves nothing behind.
    """
    cfg = validate(config)
    _check_sinks(cfg)
    device = resolve_device(cfg.train.device)
    path = check_out(out) if out is not None else default_out(cfg)
    stepper = make_stepper(cfg, device)
    with RunLock(path, "out"):  # one writer per run directory
        check_out(path)  # still empty now that it is ours
        writer = RunWriter.create(cfg, path)
        return _go(stepper, writer, progress, resumed_from=None, records=[], elapsed0=0.0)


def resume(run_dir: str | os.PathLike, *, steps: int | None = None,
           progress: bool | None = None) -> RunResult:
    """Continue a run from its newest checkpoint; `steps` raises the budget (train.steps)."""
    rd = RunDir(run_dir)
    if not rd.config.is_file():
        raise ConfigError(f"run: {str(run_dir)!r} is not a run directory (no config.json)")
    if not rd.list_checkpoints(include_latest=True):
        raise ConfigError(f"run: {str(run_dir)!r} has no checkpoint to resume from")
    cfg = from_dict(rd.read_config_dict())
    previous = rd.read_summary() if rd.summary.is_file() else {}
    if steps is None and previous.get("status") == "completed":
        why = previous.get("stop_reason") or "budget"
        raise ConfigError(f"run: {str(run_dir)!r} already completed ({why}); "
                          "pass --steps N to train it further")
    if steps is not None:
        cfg = replace(cfg, train=replace(cfg.train, steps=steps))
    cfg = validate(cfg)
    _check_sinks(cfg)
    device = resolve_device(cfg.train.device)
    with RunLock(rd.path, "run"):  # one writer per run directory
        step, path, state, skipped = newest_good(rd, map_location=device)
        if step >= cfg.train.steps:
            raise ConfigError(f"steps: the run already has {step} of {cfg.train.steps} steps; "
                              f"pass --steps N with N > {step} to continue it")
        for line in skipped:  # corrupt newer checkpoints: named, skipped
            print(f"grokscope: skipped {line.removeprefix('checkpoint: ')}; resuming from step {step}",
                  file=sys.stderr)
        stepper = make_stepper(cfg, device, init_from=False)
        stepper.restore(state)
        stepper.lineage = previous.get("lineage")
        writer = RunWriter.reopen(cfg, rd)
        records = writer.truncate(stepper.step)
        return _go(stepper, writer, progress, resumed_from=step, records=records,
                   elapsed0=state["extra"].get("elapsed", 0.0))


def make_stepper(cfg: RunConfig, device: torch.device, init_from: bool = True) -> SingleStepper:
    """The step of a single run: supervised, or the reinforcement-learning agent of cfg.agent."""
    if cfg.agent.kind == "supervised":
        return SingleStepper(cfg, device, init_from)
    from grokscope.rl.agents import AgentStepper

    return AgentStepper(cfg, device, init_from)


def _go(stepper: SingleStepper, writer: RunWriter, progress, *, resumed_from, records, elapsed0) -> RunResult:
    cfg = stepper.cfg
    monitor = Monitor(cfg.train, split=stepper.task.generalization_split)
    for r in records:  # replay silently so live events and stop rules continue
        monitor.update(r)
    info = run_info(stepper.task, stepper.model, stepper.device, stepper.lineage)
    info["measures"] += list(stepper.extra_measures)  # an agent's returns and Q-value error are drawn too
    writer.begin(info, resumed_from)
    member = Member(writer, monitor, records=records, elapsed0=elapsed0)
    return run_engine(stepper, [member], cfg.train, show=show_progress(cfg, progress),
                      desc=cfg.name or "train",
                      check_finite=stepper.device.type == "cpu")[0]


def _check_sinks(cfg: RunConfig) -> None:
    from grokscope.tracking.sinks import check_sinks

    check_sinks(cfg.log)
