"""The training loop: RunConfig -> run directory; and resuming a run from its last checkpoint.

A resumed run continues exactly as an uninterrupted one: checkpoints hold the model, optimizer,
sampler (batch order) and torch RNG states, and resuming first drops the metric lines written
after the checkpoint it starts from.
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from grokscope import detect
from grokscope.config import RunConfig, from_dict, to_dict, validate
from grokscope.errors import ConfigError
from grokscope.models import build_model, set_dropout
from grokscope.tasks import task_from_config
from grokscope.tracking.rundir import FORMAT_VERSION, RunDir, atomic_write_json, atomic_write_text, read_jsonl
from grokscope.training.checkpoint import load_checkpoint, save_checkpoint
from grokscope.training.common import (
    Sampler,
    check_out,
    default_out,
    evaluate,
    evaluate_stats,
    resolve_device,
    versions,
    weight_norm,
)
from grokscope.training.losses import loss_fn
from grokscope.training.monitor import Monitor, publish
from grokscope.training.optim import UpdateRule, lr_at
from grokscope.training.schedules import StepSchedule, dropout_at


@dataclass
class RunResult:
    """What `train` and `resume` return: the run directory, its summary and its metric records."""

    path: Path
    summary: dict
    metrics: list[dict]


def train(config: RunConfig, out: str | os.PathLike | None = None, *,
          progress: bool | None = None) -> RunResult:
    """Train one run into `out` (default runs/<time>-<name>) and return its result.

    Everything is checked before the directory is created, so bad input leaves nothing behind.
    """
    cfg = validate(config)
    _check_sinks(cfg)
    device = resolve_device(cfg.train.device)
    rd = RunDir(check_out(out) if out is not None else default_out(cfg))
    run = _Run(cfg, rd, device)
    rd.path.mkdir(parents=True, exist_ok=True)
    rd.checkpoints.mkdir(exist_ok=True)
    atomic_write_json(rd.config, to_dict(cfg))
    return run.go(progress, resumed_from=None)


def resume(run_dir: str | os.PathLike, *, steps: int | None = None,
           progress: bool | None = None) -> RunResult:
    """Continue a run from its newest checkpoint; `steps` raises the budget (train.steps)."""
    rd = RunDir(run_dir)
    if not rd.config.is_file():
        raise ConfigError(f"run: {str(run_dir)!r} is not a run directory (no config.json)")
    ckpts = rd.list_checkpoints(include_latest=True)
    if not ckpts:
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
    step, path = ckpts[-1]
    if step >= cfg.train.steps:
        raise ConfigError(f"steps: the run already has {step} of {cfg.train.steps} steps; "
                          f"pass --steps N with N > {step} to continue it")
    device = resolve_device(cfg.train.device)
    run = _Run(cfg, rd, device)
    run.restore(load_checkpoint(path, map_location=device))
    atomic_write_json(rd.config, to_dict(cfg))
    return run.go(progress, resumed_from=step)


def _check_sinks(cfg: RunConfig) -> None:
    from grokscope.tracking.sinks import check_sinks

    check_sinks(cfg.log)


class _Run:
    """One training session over a run directory (fresh or restored)."""

    def __init__(self, cfg: RunConfig, rd: RunDir, device: torch.device):
        self.cfg, self.rd, self.device = cfg, rd, device
        if cfg.train.threads:
            torch.set_num_threads(cfg.train.threads)
        tr = cfg.train
        self.task = task_from_config(cfg)
        torch.manual_seed(cfg.seed)
        self.model = build_model(cfg.model, self.task).to(device)
        self.lineage = _init_from(self.model, tr.init_from) if tr.init_from else None
        self.update = UpdateRule(cfg.optim, self.model)
        tokens = self.task.tokens().to(device)  # (n_table, 4)
        self.train_x = tokens[self.task.train_idx.to(device)]
        self.train_y = self.task.train_labels.to(device)
        self.test_x = tokens[self.task.test_idx.to(device)]
        self.test_y = self.task.z.to(device)[self.task.test_idx.to(device)]
        self.curriculum = None
        if tr.curriculum != "none":
            from grokscope.training.curriculum import Curriculum

            self.curriculum = Curriculum(self.task, score=tr.curriculum, n_stages=tr.curriculum_stages,
                                         advance=tr.curriculum_advance, stage_steps=tr.curriculum_stage_steps,
                                         threshold=tr.curriculum_threshold, seed=cfg.seed)
        self._new_sampler()
        self.dropout = cfg.model.dropout
        self.step, self.elapsed0, self.records = 0, 0.0, []
        self.monitor = Monitor(tr)
        self.stop_signal: int | None = None

    def _new_sampler(self) -> None:
        """Batches over the revealed training pairs (all of them without a curriculum)."""
        self.active = None if self.curriculum is None else self.curriculum.active().to(self.device)
        n = self.train_x.shape[0] if self.active is None else self.active.shape[0]
        stage = 0 if self.curriculum is None else self.curriculum.stage
        self.sampler = Sampler(n, self.cfg.train.batch_size, self.cfg.seed + 7919 * stage)

    def _batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        idx = self.sampler.next()  # positions into the active set, or None for all of it
        if self.active is not None:
            idx = self.active if idx is None else self.active[idx.to(self.device)]
        if idx is None:
            return self.train_x, self.train_y
        return self.train_x[idx], self.train_y[idx]

    def restore(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.update.optimizer.load_state_dict(state["optimizer"])
        self.update.load_state_dict(state["extra"].get("update", {}))
        if self.curriculum is not None:
            self.curriculum.load_state_dict(state["extra"]["curriculum"])
            self._new_sampler()
        self.sampler.load_state(state["extra"]["sampler"])
        torch.set_rng_state(state["extra"]["torch_rng"].cpu())
        self.step = state["step"]
        self.elapsed0 = state["extra"].get("elapsed", 0.0)
        # forget what was logged after the checkpoint: it will be recomputed identically
        self.records = [r for r in self.rd.read_metrics() if r["step"] <= self.step]
        atomic_write_text(self.rd.metrics, "".join(_line(r) for r in self.records))
        events = [e for e in read_jsonl(self.rd.path / "events.jsonl") if e["step"] <= self.step]
        atomic_write_text(self.rd.path / "events.jsonl", "".join(_line(e) for e in events))
        for r in self.records:  # replay silently so live events and stop rules continue
            self.monitor.update(r)
        for ckpt_step, path in self.rd.list_checkpoints():
            if ckpt_step > self.step:
                path.unlink()

    def go(self, progress: bool | None, resumed_from: int | None) -> RunResult:
        from grokscope.tracking.sinks import MultiTracker, build_trackers

        cfg, rd = self.cfg, self.rd
        previous = rd.read_summary() if resumed_from is not None and rd.summary.is_file() else {}
        base = {"format_version": FORMAT_VERSION, "name": cfg.name, "task": self.task.meta,
                "n_parameters": sum(p.numel() for p in self.model.parameters()),
                "device": str(self.device), "versions": versions(), "lineage": self.lineage,
                "resumed_from": previous.get("resumed_from", []) + ([resumed_from] if resumed_from is not None
                                                                     else [])}
        atomic_write_json(rd.summary, {**base, "status": "running"})
        self.tracker = MultiTracker(build_trackers(cfg.log, rd.path))
        self.tracker.start(to_dict(cfg), rd.path)
        show = progress if progress is not None else (
            cfg.log.progress if cfg.log.progress is not None else sys.stderr.isatty())
        with self._signals():
            status, reason = self._loop(show)
        wall = self._elapsed()
        if status == "diverged":  # a timed latest.pt may hold the diverging weights
            (rd.checkpoints / "latest.pt").unlink(missing_ok=True)
        analysis = detect.analyze(self.records)
        last = self.records[-1] if self.records else {}
        summary = {**base, "status": status, "stop_reason": reason,
                   "wall_seconds": wall, "steps_done": self.step,
                   "final": {k: last.get(k) for k in ("train_acc", "test_acc", "train_loss", "test_loss")},
                   "events": analysis["events"], "phase": analysis["phase"],
                   "phases": analysis["phases"], "still_on_plateau": analysis["still_on_plateau"]}
        atomic_write_json(rd.summary, summary)
        self.tracker.finish(summary)
        if self.records and cfg.log.report:
            from grokscope.report.html import write_report

            write_report(rd.path)  # draws figures/curves.png and norms.png too
        elif self.records and cfg.log.figure:
            from grokscope.report.plots import save_curves

            save_curves(self.records, rd.figures / "curves.png", title=cfg.name or rd.path.name,
                        events=summary["events"], analysis=analysis)
        return RunResult(rd.path, summary, self.records)

    @contextlib.contextmanager
    def _signals(self):
        """SIGINT/SIGTERM finish the current step, checkpoint, and end the run as 'interrupted'.

        A second SIGINT interrupts at once (KeyboardInterrupt)."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def handler(signum, frame):
            if self.stop_signal is not None and signum == signal.SIGINT:
                raise KeyboardInterrupt
            self.stop_signal = signum

        old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for s, h in old.items():
                signal.signal(s, h)

    def _checkpoint(self, path: Path) -> None:
        extra = {"sampler": self.sampler.state(), "torch_rng": torch.get_rng_state(),
                 "elapsed": self._elapsed(), "update": self.update.state_dict()}
        if self.curriculum is not None:
            extra["curriculum"] = self.curriculum.state_dict()
        save_checkpoint(path, step=self.step, model=self.model, optimizer=self.update.optimizer,
                        config=to_dict(self.cfg), extra=extra)

    def _elapsed(self) -> float:
        return self.elapsed0 + time.perf_counter() - self.t0

    def _evaluate(self, lr: float, bar) -> dict:
        tr = self.cfg.train
        train = evaluate_stats(self.model, self.train_x, self.train_y, tr.loss, tr.loss_dtype)
        test_loss, test_acc = evaluate(self.model, self.test_x, self.test_y, tr.loss, tr.loss_dtype)
        r = {"step": self.step, "train_loss": train["loss"], "train_acc": train["acc"],
             "test_loss": test_loss, "test_acc": test_acc, "weight_norm": weight_norm(self.model), "lr": lr,
             "softmax_collapse": train["collapse"], "elapsed": self._elapsed()}
        if tr.dropout_schedule != "constant":
            r["dropout"] = self.dropout
        if self.curriculum is not None:
            r["stage"] = self.curriculum.stage
            if self.active is not None and not self.curriculum.done:
                _, r["stage_train_acc"] = evaluate(self.model, self.train_x[self.active],
                                                   self.train_y[self.active], tr.loss, tr.loss_dtype)
        train_loss, train_acc = r["train_loss"], r["train_acc"]
        publish(r, tracker=self.tracker, records=self.records, monitor=self.monitor, bar=bar)
        bar.set_postfix({"train acc": f"{train_acc:.3f}", "test acc": f"{test_acc:.3f}",
                         "loss": f"{train_loss:.3g}"}, refresh=False)
        return r

    def _set_dropout(self, p: float) -> None:
        if p != self.dropout:
            set_dropout(self.model, p)
            self.dropout = p

    def _advance_curriculum(self, bar, stage_acc: float | None) -> None:
        if self.curriculum.update(self.step, stage_acc):
            self._new_sampler()
            n = self.active.shape[0]
            message = (f"curriculum stage {self.curriculum.stage} at step {self.step}: "
                       f"{n} of {self.train_x.shape[0]} training pairs revealed")
            self.tracker.event("stage", self.step, message)
            if not bar.disable:
                bar.write(f"[grokscope] {message}")

    def _loop(self, show: bool) -> tuple[str, str | None]:
        from tqdm import tqdm

        cfg, tr, rd = self.cfg, self.cfg.train, self.rd
        evals = StepSchedule(tr.steps, tr.eval_per_decade, tr.eval_every)
        ckpts = StepSchedule(tr.steps, tr.checkpoint_per_decade, tr.checkpoint_every)
        check_every_step = self.device.type == "cpu"
        self.t0 = time.perf_counter()
        last_save = self.t0
        bar = tqdm(total=tr.steps, initial=self.step, disable=not show, dynamic_ncols=True,
                   desc=cfg.name or "train")
        lr = lr_at(cfg.optim, max(self.step - 1, 0), tr.steps)
        if self.step == 0:
            self._evaluate(lr, bar)
            self._checkpoint(rd.checkpoint_path(0))
        self.model.train()
        status, reason = "completed", None
        try:
            while self.step < tr.steps:
                if self.stop_signal is not None:
                    status = "interrupted"
                    reason = f"signal {signal.Signals(self.stop_signal).name}"
                    self._checkpoint(rd.checkpoint_path(self.step))
                    break
                lr = lr_at(cfg.optim, self.step, tr.steps)
                self.update.set_lr(lr)
                self._set_dropout(dropout_at(tr, cfg.model.dropout, self.step))
                if self.curriculum is not None and tr.curriculum_advance == "steps":
                    self._advance_curriculum(bar, None)
                x, y = self._batch()
                loss = loss_fn(self.model(x), y, tr.loss, tr.loss_dtype)
                if check_every_step and not math.isfinite(loss.item()):
                    status, reason = "diverged", f"non-finite training loss at step {self.step + 1}"
                    break
                self.update.zero_grad()
                loss.backward()
                self.update.step()
                self.step += 1
                bar.update(1)
                stop = None
                if self.step in evals:
                    r = self._evaluate(lr, bar)
                    if not (math.isfinite(r["train_loss"]) and math.isfinite(r["weight_norm"])):
                        status, reason = "diverged", f"non-finite loss or weights at step {self.step}"
                        break
                    if self.curriculum is not None and tr.curriculum_advance == "accuracy":
                        self._advance_curriculum(bar, r.get("stage_train_acc"))
                stop = self.monitor.stop_reason(self.step)
                if stop is not None and self.records[-1]["step"] != self.step:
                    self._evaluate(lr, bar)
                if self.step in ckpts or stop is not None:
                    self._checkpoint(rd.checkpoint_path(self.step))
                elif tr.resume_every_seconds and time.perf_counter() - last_save >= tr.resume_every_seconds:
                    self._checkpoint(rd.checkpoints / "latest.pt")
                    last_save = time.perf_counter()
                if stop is not None:
                    reason = stop
                    break
        finally:
            bar.close()
        return status, reason


def _init_from(model: torch.nn.Module, source: str) -> dict:
    """Load the newest checkpoint of run `source` into `model`; returns the lineage record."""
    src = RunDir(source)
    ckpts = src.list_checkpoints(include_latest=True) if src.config.is_file() else []
    if not ckpts:
        raise ConfigError(f"train.init_from: {source!r} is not a run directory with checkpoints")
    step, path = ckpts[-1]
    weights = load_checkpoint(path)["model"]
    own = model.state_dict()
    for name, tensor in own.items():
        if name not in weights:
            raise ConfigError(f"train.init_from: {source!r} has no parameter {name!r}; architectures differ")
        if tuple(weights[name].shape) != tuple(tensor.shape):
            raise ConfigError(f"train.init_from: parameter {name!r} has shape {tuple(weights[name].shape)} "
                              f"in {source!r} but {tuple(tensor.shape)} here")
    extra = sorted(set(weights) - set(own))
    if extra:
        raise ConfigError(f"train.init_from: {source!r} has parameters this model lacks: {extra[:3]}")
    model.load_state_dict(weights)
    src_cfg = src.read_config_dict()
    return {"init_from": str(src.path), "step": step, "source_name": src_cfg.get("name"),
            "source_task": src_cfg.get("task")}


def _line(obj: dict) -> str:
    import json

    return json.dumps(obj) + "\n"
