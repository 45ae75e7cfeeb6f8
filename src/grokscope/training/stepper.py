"""The supervised batch step of one model on any Task (`SingleStepper`, the engine's K = 1 stepper),
and what the single-run and ensemble loops share about it: whether a task fits the config, what
an evaluation costs, whether the train split's evaluation can reuse the training forward pass,
the summary fields known before training, and warm starts from another run (`train.init_from`).
The reinforcement-learning agents (`rl.agents.AgentStepper`) are this stepper with another update.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from grokscope.config import RunConfig, to_dict
from grokscope.errors import ConfigError
from grokscope.models import build_model, set_dropout
from grokscope.tasks import Task, task_from_config
from grokscope.tracking.rundir import RunDir
from grokscope.training.checkpoint import newest_good, save_checkpoint
from grokscope.training.common import (
    Sampler,
    evaluate,
    evaluate_stats,
    output_totals,
    stats_of,
    weight_norm,
)
from grokscope.training.losses import task_loss
from grokscope.training.optim import UpdateRule, lr_at
from grokscope.training.schedules import dropout_at


def run_info(task: Task, model: torch.nn.Module, device: torch.device, lineage: dict | None) -> dict:
    """The summary.json fields known before training: task, splits, parameters, device, lineage."""
    return {"task": task.meta, "splits": list(task.splits), "generalization_split": task.generalization_split,
            "split_sizes": {name: len(s) for name, s in task.splits.items()},
            "measures": list(task.measure_names), "n_parameters": sum(p.numel() for p in model.parameters()),
            "device": str(device),
            "lineage": lineage}


def check_task_fits(cfg: RunConfig, task: Task) -> None:
    """ConfigError when the loss or a training switch cannot apply to this task."""
    tr = cfg.train
    if task.output == "regression" and tr.loss != "mse":
        raise ConfigError(f"train.loss: task kind {task.kind!r} has regression targets; use 'mse', "
                          f"got {tr.loss!r}")
    if task.output == "tokens" and tr.loss == "mse":
        raise ConfigError(f"train.loss: task kind {task.kind!r} has token outputs; use 'ce' or 'stablemax'")
    if tr.curriculum != "none" and not hasattr(task, "train_idx"):
        raise ConfigError(f"train.curriculum: needs a binary-operation table task, got kind {task.kind!r}")


class SingleStepper:
    """The supervised batch step of one model on a Task (the engine's K = 1 stepper)."""

    def __init__(self, cfg: RunConfig, device: torch.device, init_from: bool = True):
        self.cfg, self.device = cfg, device
        if cfg.train.threads:
            torch.set_num_threads(cfg.train.threads)
        tr = cfg.train
        self.task = task_from_config(cfg)
        check_task_fits(cfg, self.task)
        torch.manual_seed(cfg.seed)
        self.model = build_model(cfg.model, self.task).to(device)
        self.lineage = _init_from(self.model, tr.init_from) if tr.init_from and init_from else None
        self.update = UpdateRule(cfg.optim, self.model)
        self.splits = {name: s.to(device) for name, s in self.task.splits.items()}
        self.train_split = self.splits["train"]
        self.curriculum = None
        if tr.curriculum != "none":
            from grokscope.training.curriculum import Curriculum

            self.curriculum = Curriculum(self.task, score=tr.curriculum, n_stages=tr.curriculum_stages,
                                         advance=tr.curriculum_advance, stage_steps=tr.curriculum_stage_steps,
                                         threshold=tr.curriculum_threshold, seed=cfg.seed)
        self._new_sampler()
        self.dropout = cfg.model.dropout
        self.step = 0
        self.lr = lr_at(cfg.optim, 0, tr.steps)
        self._reuse = reuses_train_forward(cfg, self.task, self.model)
        self.eval_costs = [eval_cost(cfg, self.task, self._reuse)]
        self._pending: tuple[int, torch.Tensor] | None = None  # (step, train-split forward kept for it)

    # ------------------------------------------------------------------------------ batches
    def _new_sampler(self) -> None:
        """Batches over the revealed training examples (all of them without a curriculum)."""
        self.active = None if self.curriculum is None else self.curriculum.active().to(self.device)
        n = len(self.train_split) if self.active is None else self.active.shape[0]
        stage = 0 if self.curriculum is None else self.curriculum.stage
        self.sampler = Sampler(n, self.cfg.train.batch_size, self.cfg.seed + 7919 * stage)

    def _batch(self):
        idx = self.sampler.next()  # positions into the active set, or None for all of it
        if self.active is not None:
            idx = self.active if idx is None else self.active[idx.to(self.device)]
        s = self.train_split
        mask = s.train_mask
        if idx is None:
            return s.inputs, s.targets, mask
        return s.inputs[idx], s.targets[idx], None if mask is None else mask[idx]

    # ------------------------------------------------------------------------------ Stepper
    def prepare(self, announce) -> None:
        tr = self.cfg.train
        self.lr = lr_at(self.cfg.optim, self.step, tr.steps)
        self.update.set_lr(self.lr)
        p = dropout_at(tr, self.cfg.model.dropout, self.step)
        if p != self.dropout:
            set_dropout(self.model, p)
            self.dropout = p
        if self.curriculum is not None and tr.curriculum_advance == "steps":
            self._advance_curriculum(announce, None)

    def train_step(self) -> torch.Tensor:
        tr = self.cfg.train
        x, y, mask = self._batch()
        pending, self._pending = self._pending, None
        out = pending[1] if pending is not None and pending[0] == self.step else self.model(x)
        loss = task_loss(out, y, tr.loss, tr.loss_dtype, self.task.output, mask)
        if self.device.type != "cpu" or torch.isfinite(loss):  # the engine ends a non-finite run
            self.update.zero_grad()
            loss.backward()
            self.update.step()
        self.step += 1
        return loss.detach().reshape(1)

    def evaluate(self) -> list[dict]:
        tr, task = self.cfg.train, self.task
        r: dict = {}
        collapse = 0.0
        for name, s in self.splits.items():
            if name == "train" and self._reuse and self.step < tr.steps:
                # the next step's full-batch forward is this evaluation's: run it once, keep its graph
                out = self.model(s.inputs)
                self._pending = (self.step, out)
                totals = output_totals(out, s.targets, tr.loss, tr.loss_dtype, output=task.output,
                                       mask=s.mask, tolerance=task.tolerance, accept=s.accept)
                stats = stats_of(totals, len(s))
            else:
                stats = evaluate_stats(self.model, s.inputs, s.targets, tr.loss, tr.loss_dtype,
                                       output=task.output, mask=s.mask, tolerance=task.tolerance,
                                       accept=s.accept)
            r[f"{name}_loss"], r[f"{name}_acc"] = stats["loss"], stats["acc"]
            if name == "train":
                collapse = stats["collapse"]
        r.update({"weight_norm": weight_norm(self.model), "lr": self.lr, "softmax_collapse": collapse})
        r.update(task.measures(self.model, self.device))
        if tr.dropout_schedule != "constant":
            r["dropout"] = self.dropout
        if self.curriculum is not None:
            r["stage"] = self.curriculum.stage
            if self.active is not None and not self.curriculum.done:
                s = self.train_split
                _, r["stage_train_acc"] = evaluate(self.model, s.inputs[self.active], s.targets[self.active],
                                                   tr.loss, tr.loss_dtype)
        return [r]

    def after_eval(self, i: int, record: dict, announce) -> None:
        if self.curriculum is not None and self.cfg.train.curriculum_advance == "accuracy":
            self._advance_curriculum(announce, record.get("stage_train_acc"))

    def _advance_curriculum(self, announce, stage_acc: float | None) -> None:
        if self.curriculum.update(self.step, stage_acc):
            self._new_sampler()
            announce(0, "stage", f"curriculum stage {self.curriculum.stage} at step {self.step}: "
                                 f"{self.active.shape[0]} of {len(self.train_split)} training pairs revealed")

    def save(self, i: int, path: Path, elapsed: float) -> None:
        extra = {"sampler": self.sampler.state(), "torch_rng": torch.get_rng_state(),
                 "elapsed": elapsed, "update": self.update.state_dict(), **self.extra_state()}
        if self.curriculum is not None:
            extra["curriculum"] = self.curriculum.state_dict()
        save_checkpoint(path, step=self.step, model=self.model, optimizer=self.update.optimizer,
                        config=to_dict(self.cfg), extra=extra)

    extra_measures: tuple[str, ...] = ()
    """Metric names a subclass logs besides the task's measures (the report draws them)."""

    def extra_state(self) -> dict:
        """More checkpoint state of a subclass (an agent's buffers and generators); {} here."""
        return {}

    def load_extra_state(self, extra: dict) -> None:
        """Restore what `extra_state` saved."""

    def restore(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.update.optimizer.load_state_dict(state["optimizer"])
        self.update.load_state_dict(state["extra"].get("update", {}))
        if self.curriculum is not None:
            self.curriculum.load_state_dict(state["extra"]["curriculum"])
            self._new_sampler()
        self.sampler.load_state(state["extra"]["sampler"])
        torch.set_rng_state(state["extra"]["torch_rng"].cpu())
        self.load_extra_state(state["extra"])
        self.step = state["step"]
        self.lr = lr_at(self.cfg.optim, max(self.step - 1, 0), self.cfg.train.steps)


def _batch_size(cfg: RunConfig, task: Task) -> int:
    n = len(task.splits["train"])
    return n if cfg.train.batch_size is None else min(cfg.train.batch_size, n)


def reuses_train_forward(cfg: RunConfig, task: Task, model: torch.nn.Module) -> bool:
    """The train split's evaluation is the next training step's forward pass: full batch, no
    curriculum, dropout 0 throughout, and a model that computes the same in train and eval mode."""
    tr = cfg.train
    return (_batch_size(cfg, task) >= len(task.splits["train"]) and tr.curriculum == "none"
            and cfg.model.dropout == 0 and tr.dropout_schedule == "constant"
            and same_in_train_and_eval(model))


def eval_cost(cfg: RunConfig, task: Task, reuse: bool) -> float:
    """One evaluation's compute in training steps, counted from the sizes: a forward pass over n
    examples costs n/3 training examples (forward + backward ~ 3 forwards). The train split is free
    when `reuse` (see reuses_train_forward). The task's own measures add their `measure_cost`."""
    n = sum(len(s) for s in task.splits.values()) - (len(task.splits["train"]) if reuse else 0)
    n += task.measure_cost
    return n / (3 * max(1, _batch_size(cfg, task)))


def same_in_train_and_eval(model: torch.nn.Module) -> bool:
    """True when `model` computes the same in train and eval mode: only torch.nn and grokscope
    modules, no batch norm, no dropout left on (p > 0). Unknown module classes count as different."""
    for mod in model.modules():
        kind = type(mod).__module__
        if not (kind.startswith("torch.nn") or kind.startswith("grokscope.models")):
            return False
        if isinstance(mod, torch.nn.modules.batchnorm._NormBase):
            return False
        if isinstance(mod, torch.nn.modules.dropout._DropoutNd) and mod.p > 0:
            return False
        if isinstance(mod, torch.nn.RNNBase) and mod.dropout > 0:
            return False
        if getattr(mod, "dropout_p", 0) > 0:
            return False
    return True


def _init_from(model: torch.nn.Module, source: str) -> dict:
    """Load the newest checkpoint of run `source` into `model`; returns the lineage record."""
    src = RunDir(source)
    if not (src.config.is_file() and src.list_checkpoints(include_latest=True)):
        raise ConfigError(f"train.init_from: {source!r} is not a run directory with checkpoints")
    step, path, state, skipped = newest_good(src, what="train.init_from")
    for line in skipped:
        print(f"grokscope: skipped {line.removeprefix('checkpoint: ')}; starting from step {step}",
              file=sys.stderr)
    weights = state["model"]
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
