"""The training engine: one loop for a single run and for K vectorized runs.

The engine owns the run lifecycle around the step: the evaluation and checkpoint schedules,
divergence, stop rules, SIGINT/SIGTERM, timed resume checkpoints, live events and the end of
each member's run (its RunWriter writes summary.json once and the report). The step itself is
pluggable: a `Stepper` does the updates and evaluations of its K members (K = 1 for a single
run; the supervised batch step by default, an agent's step later).
"""

from __future__ import annotations

import contextlib
import math
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import torch

from grokscope.config import TrainConfig
from grokscope.errors import ConfigError
from grokscope.predict import live_text, load_model
from grokscope.tracking.writer import RunWriter
from grokscope.training.monitor import Monitor
from grokscope.training.schedules import EvalSchedule, StepSchedule

Announce = "Callable[[int, str, str], None]"


@dataclass
class RunResult:
    """What `train` and `resume` return: the run directory, its summary and its metric records."""

    path: Path
    summary: dict
    metrics: list[dict]


class Stepper(Protocol):
    """The step of K runs trained together (K = 1 for a single run)."""

    step: int
    """Optimizer steps done (shared by every member)."""

    def prepare(self, announce) -> None:
        """Before each step: learning rate, dropout, curriculum stage. `announce(i, name, message)`
        records an event of member i."""

    def train_step(self) -> torch.Tensor:
        """One update of every member; returns the (K,) training losses seen by it. A stepper may
        skip the update of a member whose loss is not finite (the engine ends that member)."""

    eval_costs: list[float]
    """Per member: compute of one evaluation in training steps (the evaluation budget's unit; 1 if
    absent), as its single run counts it, so a member evaluates at its single run's steps."""

    def evaluate(self) -> list[dict]:
        """Per member: the metric record of this step without 'step' and 'elapsed'
        ({split}_loss/{split}_acc of every split, weight_norm, lr, softmax_collapse, ...)."""

    def after_eval(self, i: int, record: dict, announce) -> None:
        """After member i's record is logged (e.g. advance a curriculum on accuracy)."""

    def save(self, i: int, path: Path, elapsed: float) -> None:
        """Checkpoint member i (everything resume needs) to `path`."""


@dataclass
class Member:
    """One run of the engine: its writer, live monitor and records."""

    writer: RunWriter
    monitor: Monitor
    records: list = field(default_factory=list)
    label: str = ""
    elapsed0: float = 0.0  # training seconds before this session (resume)
    status: str | None = None  # None while training
    reason: str | None = None
    summary: dict | None = None
    evals: EvalSchedule | None = None  # this member's evaluation steps (set by the engine)
    eval_seconds: float = 0.0  # this session's time in evaluations (shared ones count in full)
    checkpoint_seconds: float = 0.0  # and in writing checkpoints


def show_progress(cfg, progress: bool | None) -> bool:
    if progress is not None:
        return progress
    return cfg.log.progress if cfg.log.progress is not None else sys.stderr.isatty()


@contextlib.contextmanager
def stop_signals():
    """Yields a list that receives the signal number on SIGINT/SIGTERM (main thread only); the
    engine then checkpoints every member and ends them 'interrupted'. A second SIGINT interrupts
    at once (KeyboardInterrupt)."""
    got: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield got
        return

    def handler(signum, frame):
        if got and signum == signal.SIGINT:
            raise KeyboardInterrupt
        got.append(signum)

    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield got
    finally:
        for s, h in old.items():
            signal.signal(s, h)


BAR_FORMAT = "{desc} {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} {remaining}{postfix}"


def progress_bar(total: int, initial: int, show: bool, desc: str):
    """A tqdm bar that stays on one line of a 70-column terminal: a short name, the step, the time
    left and the last evaluation's accuracies (train / generalization split) and training loss."""
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, disable=not show, dynamic_ncols=True, desc=short_name(desc),
                bar_format=BAR_FORMAT)


def short_name(desc: str) -> str:
    """At most 10 characters of the run's name for the bar."""
    return desc if len(desc) <= 10 else desc[:9] + "…"


def bar_text(record: dict, split: str, forecast: str = "") -> str:
    """'acc 1.000/0.234 loss 1.2e-05': train and `split` accuracy, then the training loss, or in its
    place the live forecast ('P(gen) 0.62', `predict.live_text`) while the run sits on a plateau."""
    def num(v, spec):
        return "-" if v is None or v != v else format(v, spec)

    tail = forecast or f"loss {num(record.get('train_loss'), '.2g')}"
    return f"acc {num(record.get('train_acc'), '.3f')}/{num(record.get(f'{split}_acc'), '.3f')} {tail}"


def _forecaster() -> dict | None:
    """The shipped early-warning model for the bar's live forecast (None when it cannot be read)."""
    try:
        return load_model()
    except ConfigError:
        return None


def run_engine(stepper: Stepper, members: list[Member], tr: TrainConfig, *, show: bool, desc: str,
               check_finite: bool) -> list[RunResult]:
    """Train every member of `stepper` to the budget (or its stop rule); returns their results."""
    costs = getattr(stepper, "eval_costs", None) or [1.0] * len(members)
    for m, cost in zip(members, costs):  # replaying a resumed run's records restores the adaptive schedule
        m.evals = EvalSchedule(tr.steps, tr.eval_per_decade, tr.eval_every, tr.eval_refine,
                               tr.eval_budget, cost)
        for r in m.records:
            m.evals.observe(r)
    ckpts = StepSchedule(tr.steps, tr.checkpoint_per_decade, tr.checkpoint_every)
    bar = progress_bar(tr.steps, stepper.step, show, desc)
    forecaster = _forecaster() if show and len(members) == 1 else None
    for m in members:
        m.writer.say = (lambda message: bar.write(f"[grokscope] {message}")) if show else None
    t0 = time.perf_counter()
    elapsed = lambda i: members[i].elapsed0 + time.perf_counter() - t0
    active = lambda: [i for i, m in enumerate(members) if m.status is None]

    def announce(i: int, name: str, message: str) -> None:
        m = members[i]
        m.writer.event(name, stepper.step, message)
        if not bar.disable:
            bar.write(f"[grokscope] {m.label}{message}")

    def record(i: int, stats: dict) -> dict:
        m = members[i]
        r = {"step": stepper.step, **stats, "elapsed": elapsed(i)}
        m.writer.log(r)
        m.records.append(r)
        m.evals.observe(r)
        for name, message in m.monitor.update(r):
            announce(i, name, message)
        if len(members) == 1 and not bar.disable:
            forecast = live_text(forecaster, m.records, tr.steps, m.monitor.split)
            bar.set_postfix_str(bar_text(r, m.monitor.split, forecast), refresh=False)
        return r

    def evaluate() -> list[dict]:
        t = time.perf_counter()
        stats = stepper.evaluate()
        dt = time.perf_counter() - t
        for i in active():
            members[i].eval_seconds += dt
        return stats

    def save(i: int, path: Path) -> None:
        t = time.perf_counter()
        stepper.save(i, path, elapsed(i))
        members[i].checkpoint_seconds += time.perf_counter() - t

    def end(i: int, status: str, reason: str | None, steps_done: int | None = None) -> None:
        m = members[i]
        m.status, m.reason = status, reason
        timing = {"session_seconds": time.perf_counter() - t0, "eval_seconds": m.eval_seconds,
                  "checkpoint_seconds": m.checkpoint_seconds}
        m.summary = m.writer.finish(m.records, status=status, reason=reason, wall=elapsed(i),
                                    steps_done=stepper.step if steps_done is None else steps_done,
                                    timing=timing)

    if stepper.step == 0 and any(not m.records for m in members):  # a run resumed at step 0 has it
        for i, stats in enumerate(evaluate()):
            if not members[i].records:
                record(i, stats)
                save(i, members[i].writer.rd.checkpoint_path(0))
    last_save = time.perf_counter()
    with stop_signals() as got:
        try:
            while stepper.step < tr.steps and active():
                if got:
                    for i in active():
                        save(i, members[i].writer.rd.checkpoint_path(stepper.step))
                        end(i, "interrupted", f"signal {signal.Signals(got[0]).name}")
                    break
                stepper.prepare(announce)
                before = stepper.step
                losses = stepper.train_step()
                bar.update(1)
                if check_finite:  # one sync per step; the run stops before the update that saw it
                    finite = torch.isfinite(losses).tolist()
                    for i in active():
                        if not finite[i]:
                            end(i, "diverged", f"non-finite training loss at step {before + 1}", before)
                step = stepper.step
                due = [i for i in active() if step in members[i].evals]
                if due:  # every member is evaluated; those whose schedule has this step log it
                    stats = evaluate()
                    for i in due:
                        r = record(i, stats[i])
                        if not (math.isfinite(r["train_loss"]) and math.isfinite(r["weight_norm"])):
                            end(i, "diverged", f"non-finite loss or weights at step {step}")
                        else:
                            stepper.after_eval(i, r, announce)
                stops = {i: s for i in active() if (s := members[i].monitor.stop_reason(step)) is not None}
                if any(members[i].records[-1]["step"] != step for i in stops):
                    stats = evaluate()
                    for i in stops:
                        if members[i].records[-1]["step"] != step:
                            record(i, stats[i])
                every = tr.resume_every_seconds
                due = bool(every) and time.perf_counter() - last_save >= every
                for i in active():
                    if step in ckpts or i in stops:
                        save(i, members[i].writer.rd.checkpoint_path(step))
                    elif due:
                        save(i, members[i].writer.rd.latest)
                if due and step not in ckpts:
                    last_save = time.perf_counter()
                for i, stop in stops.items():
                    end(i, "completed", stop)
        finally:
            bar.close()
    for i in active():
        end(i, "completed", None)
    return [RunResult(m.writer.rd.path, m.summary, m.records) for m in members]
