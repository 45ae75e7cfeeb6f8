"""Ensemble training: K runs that differ only in a few hyper-parameters train together in one process.

Member i is built exactly as a single run of config i (same task split, same initial weights), then
the K parameter sets are stacked with a leading model axis (K, ...) and the model is run once for
all of them with ``torch.func.vmap`` over ``functional_call``. Each member has its own training
rows (padded index sets into the shared table), learning rate, weight decay, gradient clipping,
Grokfast lambda and optimizer state; the update mirrors ``UpdateRule`` and torch's Adam/AdamW, SGD
and RMSprop per model. Every member writes a normal run directory (config.json, metrics.jsonl,
events.jsonl, summary.json, checkpoints in the single-run format, so ``grokscope resume`` continues
a member as a single run).

    from grokscope.sweep.ensemble import can_ensemble, train_ensemble
    assert can_ensemble(configs) is None
    train_ensemble(configs, [Path(f"runs/m{i}") for i in range(len(configs))])
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import math
import signal
import sys
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from grokscope import detect
from grokscope.config import OptimConfig, RunConfig, to_dict, validate
from grokscope.errors import ConfigError
from grokscope.models import build_model
from grokscope.tasks import task_from_config
from grokscope.tracking.rundir import FORMAT_VERSION, RunDir, atomic_write_json
from grokscope.training.checkpoint import save_checkpoint
from grokscope.training.common import Sampler, check_out, resolve_device, versions
from grokscope.training.loop import RunResult
from grokscope.training.losses import _dtype, _s
from grokscope.training.monitor import Monitor, publish
from grokscope.training.optim import UpdateRule, lr_at
from grokscope.training.schedules import StepSchedule

__all__ = ["VARYING_FIELDS", "Ensemble", "can_ensemble", "ensemble_groups", "train_ensemble"]

VARYING_FIELDS = ("seed", "name", "task.train_fraction", "optim.lr", "optim.weight_decay",
                  "model.init_scale", "optim.grokfast_lamb")
"""Config fields that may differ between the members of one ensemble."""

_EVAL_ELEMENTS = 1 << 24  # activation elements per evaluation chunk of models


def _leaves(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        out.update(_leaves(v, f"{prefix}{k}.") if isinstance(v, dict) else {prefix + k: v})
    return out


def can_ensemble(configs: list[RunConfig]) -> str | None:
    """None if `configs` can train as one ensemble, else the reason (e.g. "optim.name differs")."""
    if not configs:
        return "no configs"
    try:
        for c in configs:
            validate(c)
    except ConfigError as e:
        return str(e)
    first = _leaves(to_dict(configs[0]))
    for c in configs[1:]:
        for name, value in _leaves(to_dict(c)).items():
            if name not in VARYING_FIELDS and value != first[name]:
                return f"{name} differs between members ({first[name]!r} vs {value!r}); only " \
                       f"{', '.join(VARYING_FIELDS)} may differ"
    c = configs[0]
    unsupported = [("optim.orthograd", c.optim.orthograd),
                   ("model.dropout", c.model.dropout != 0 or c.train.dropout_schedule != "constant"),
                   ("train.curriculum", c.train.curriculum != "none"),
                   ("train.init_from", c.train.init_from is not None)]
    for name, used in unsupported:
        if used:
            return f"{name}: not supported by ensemble training; train these runs one by one"
    return None


def ensemble_groups(configs: list[RunConfig], max_size: int | None = None) -> list[list[int]]:
    """Indices of `configs` grouped into ensembles (equal in every field but VARYING_FIELDS, at most
    `max_size` each), in order of first appearance; a config that cannot ensemble is a group of one."""
    groups: dict[str, list[list[int]]] = {}
    for i, c in enumerate(configs):
        key = repr(sorted((k, v) for k, v in _leaves(to_dict(c)).items() if k not in VARYING_FIELDS))
        if can_ensemble([c]) is not None:
            key = f"#{i}"
        runs = groups.setdefault(key, [[]])
        if max_size is not None and len(runs[-1]) >= max_size:
            runs.append([])
        runs[-1].append(i)
    return sorted((g for runs in groups.values() for g in runs), key=lambda g: g[0])


def _view(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """(K,) -> (K, 1, ..., 1) broadcasting against a stacked tensor `like` (K, ...)."""
    return v.view(-1, *([1] * (like.ndim - 1))).to(like.dtype)


class _BatchedUpdate:
    """UpdateRule for stacked parameters (K, ...): Grokfast, per-model clipping, weight decay by
    mode, the optimizer step (adam/adamw, sgd, rmsprop as torch computes them) and the norm
    constraint, each with per-model lr, weight decay and Grokfast lambda."""

    def __init__(self, cfgs: list[OptimConfig], params: list[torch.Tensor], norm_targets: list[float | None]):
        o = self.o = cfgs[0]
        dev = params[0].device
        self.params = params
        self.wd = torch.tensor([c.weight_decay for c in cfgs], dtype=torch.float64)  # (K,)
        self.lamb = torch.tensor([c.grokfast_lamb for c in cfgs], device=dev)  # (K,)
        self.decayed = [o.decay_params == "all" or p.ndim >= 3 for p in params]
        self.init = [p.detach().clone() for p in params] if o.decay_mode == "to_init" else None
        self.norm_target = (torch.tensor(norm_targets, dtype=torch.float64, device=dev)
                            if o.norm_constraint is not None else None)
        self.steps = [0] * len(params)
        self.state: list[dict[str, torch.Tensor]] = [{} for _ in params]
        self.ema: list[torch.Tensor | None] = [None] * len(params)
        self.window: list[deque] = [deque(maxlen=o.grokfast_window) for _ in params]

    def _k(self, values: torch.Tensor) -> torch.Tensor:
        return values.to(device=self.params[0].device, dtype=torch.float32)

    @torch.no_grad()
    def step(self, lrs: list[float]) -> None:
        o, lr64 = self.o, torch.tensor(lrs, dtype=torch.float64)  # (K,)
        live = [(j, p) for j, p in enumerate(self.params) if p.grad is not None]
        for j, p in live:  # 1. Grokfast
            g = p.grad
            if o.grokfast == "ema":
                if self.ema[j] is None:
                    self.ema[j] = g.clone()
                else:
                    self.ema[j].mul_(o.grokfast_alpha).add_(g, alpha=1 - o.grokfast_alpha)
                g.add_(self.ema[j] * _view(self.lamb, g))
            elif o.grokfast == "ma":
                q = self.window[j]
                q.append(g.clone())
                if len(q) == q.maxlen:
                    total = q[0].clone()
                    for h in list(q)[1:]:
                        total.add_(h)
                    if o.grokfast_filter == "mean":
                        total.div_(len(q))
                    g.add_(total * _view(self.lamb, g))
        if o.grad_clip is not None and live:  # 2. clip each model's global norm, as clip_grad_norm_
            dims = lambda p: tuple(range(1, p.ndim))
            norms = torch.stack([torch.linalg.vector_norm(p.grad, dim=dims(p)) for _, p in live], 1)  # (K, P)
            coef = (o.grad_clip / (torch.linalg.vector_norm(norms, dim=1) + 1e-6)).clamp(max=1.0)  # (K,)
            for _, p in live:
                p.grad.mul_(_view(coef, p))
        if bool((self.wd != 0).any()):  # 3. weight decay
            keep, shift = self._k(1 - lr64 * self.wd), self._k(lr64 * self.wd)  # (K,)
            for j, p in live:
                if not self.decayed[j]:
                    continue
                if o.decay_mode == "coupled":
                    p.grad.add_(p * _view(self._k(self.wd), p))
                elif o.decay_mode == "decoupled":
                    p.mul_(_view(keep, p))
                else:
                    p.mul_(_view(keep, p)).add_(self.init[j] * _view(shift, p))
        for j, p in live:  # 4. the optimizer step
            self._optimizer_step(j, p, lr64)
        if self.norm_target is not None:  # 5. norm constraint
            norm = torch.sqrt(sum(p.double().pow(2).flatten(1).sum(1) for p in self.params))  # (K,)
            scale = (self.norm_target / norm.clamp(min=1e-30)).float()
            for p in self.params:
                p.mul_(_view(scale, p))

    def _optimizer_step(self, j: int, p: torch.Tensor, lr64: torch.Tensor) -> None:
        o, g, st = self.o, p.grad, self.state[j]
        self.steps[j] += 1
        t = self.steps[j]
        if o.name in ("adam", "adamw"):
            b1, b2 = o.betas
            if not st:
                st["exp_avg"], st["exp_avg_sq"] = torch.zeros_like(p), torch.zeros_like(p)
            m, v = st["exp_avg"], st["exp_avg_sq"]
            m.lerp_(g, 1 - b1)
            v.mul_(b2).addcmul_(g, g, value=1 - b2)
            step_size = self._k(lr64 / (1 - b1 ** t))  # (K,)
            denom = (v.sqrt() / ((1 - b2 ** t) ** 0.5)).add_(o.eps)
            p.addcdiv_(m * _view(-step_size, p), denom)
        elif o.name == "sgd":
            if o.momentum != 0:
                if "momentum_buffer" not in st:
                    st["momentum_buffer"] = g.clone()
                else:
                    st["momentum_buffer"].mul_(o.momentum).add_(g)
                g = st["momentum_buffer"]
            p.add_(g * _view(self._k(-lr64), p))
        else:  # rmsprop, alpha = betas[1]
            alpha = o.betas[1]
            if not st:
                st["square_avg"] = torch.zeros_like(p)
                if o.momentum > 0:
                    st["momentum_buffer"] = torch.zeros_like(p)
            st["square_avg"].mul_(alpha).addcmul_(g, g, value=1 - alpha)
            avg = st["square_avg"].sqrt().add_(o.eps)
            if o.momentum > 0:
                st["momentum_buffer"].mul_(o.momentum).addcdiv_(g, avg)
                p.add_(st["momentum_buffer"] * _view(self._k(-lr64), p))
            else:
                p.addcdiv_(g * _view(self._k(-lr64), p), avg)

    def export(self, i: int, rule: UpdateRule, lr: float) -> None:
        """Load member i's optimizer and filter state into its single-run UpdateRule `rule`."""
        o, opt = self.o, rule.optimizer
        rule.set_lr(lr)
        opt.state.clear()
        for j, p in enumerate(rule.params):
            st = {k: v[i].clone() for k, v in self.state[j].items()}
            if st and o.name != "sgd":
                st = {"step": torch.tensor(float(self.steps[j])), **st}
            if st:
                opt.state[p] = st
        if o.grokfast == "ema":
            rule.filter.load_state_dict({"kind": "GrokfastEMA", "alpha": o.grokfast_alpha,
                                         "lamb": float(self.lamb[i]),
                                         "ema": [None if e is None else e[i] for e in self.ema]})
        elif o.grokfast == "ma":
            rule.filter.load_state_dict({"kind": "GrokfastMA", "window": o.grokfast_window,
                                         "lamb": float(self.lamb[i]), "filter": o.grokfast_filter,
                                         "warmup": True, "grads": [[g[i] for g in q] for q in self.window]})


def _per_example_loss(logits: torch.Tensor, labels: torch.Tensor, kind: str, dtype: str) -> torch.Tensor:
    """logits (K, n, C), labels (K, n) -> (K, n) losses in `dtype`, as loss_fn before its mean."""
    z = logits.to(_dtype(dtype))
    if kind == "ce":
        return F.cross_entropy(z.flatten(0, 1), labels.flatten(), reduction="none").view(labels.shape)
    if kind == "mse":
        return F.mse_loss(z, F.one_hot(labels, z.shape[-1]).to(z.dtype), reduction="none").mean(-1)
    s = _s(z)  # stablemax: log(sum_j s(z_j)) - log s(z_label)
    return s.sum(-1).log() - s.gather(-1, labels.unsqueeze(-1)).squeeze(-1).log()


class Ensemble:
    """K members' tasks, stacked parameters (K, ...) and batched update; no files.

    `train_step()` does one update of every member (the single run's lr schedule, batch order and
    UpdateRule); `evaluate()` returns each member's metric record as a single run computes it.
    """

    def __init__(self, configs: list[RunConfig], device: torch.device | str = "cpu"):
        why = can_ensemble(configs)
        if why is not None:
            raise ConfigError(why)
        self.cfgs, self.device, self.K = configs, torch.device(device), len(configs)
        self.tasks = [task_from_config(c) for c in configs]
        self.modules, self.rules = [], []
        for c, task in zip(configs, self.tasks):  # member i = the single run's init with seed i
            torch.manual_seed(c.seed)
            module = build_model(c.model, task).to(self.device)
            self.modules.append(module)
            self.rules.append(UpdateRule(c.optim, module))
        params, _ = torch.func.stack_module_state(self.modules)
        self.names = list(params)
        self.params = {k: params[k] for k in self.names}  # name -> (K, ...) leaf tensors
        self.base = copy.deepcopy(self.modules[0]).to("meta")
        self.update = _BatchedUpdate([c.optim for c in configs], list(self.params.values()),
                                     [r.norm_target for r in self.rules])
        t0 = self.tasks[0]
        self.tokens = t0.tokens().to(self.device)  # (N, 4), the shared full table
        N, dev = t0.z.numel(), self.device
        n = [t.train_idx.numel() for t in self.tasks]
        self.n_train = torch.tensor(n, device=dev)
        self.rows = torch.zeros(self.K, max(n), dtype=torch.long)  # (K, n_max) training rows, padded
        self.labels = torch.zeros(self.K, max(n), dtype=torch.long)
        self.train_mask = torch.zeros(self.K, N, dtype=torch.bool)  # (K, N) per-model train masks
        self.eval_labels = t0.z.repeat(self.K, 1)  # (K, N): noisy labels on train rows, true on test
        for i, t in enumerate(self.tasks):
            self.rows[i, :n[i]], self.labels[i, :n[i]] = t.train_idx, t.train_labels
            self.train_mask[i, t.train_idx] = True
            self.eval_labels[i, t.train_idx] = t.train_labels
        self.rows, self.labels = self.rows.to(dev), self.labels.to(dev)
        self.train_mask, self.eval_labels = self.train_mask.to(dev), self.eval_labels.to(dev)
        self.samplers = [Sampler(k, c.train.batch_size, c.seed) for k, c in zip(n, configs)]
        self.step = 0
        self.lrs = [lr_at(c.optim, 0, c.train.steps) for c in configs]

    def _forward(self, params: dict, tokens: torch.Tensor, shared: bool) -> torch.Tensor:
        """params name -> (k, ...); tokens (n, 4) for every model if shared, else (k, n, 4) -> (k, n, C)."""
        call = lambda p, x: torch.func.functional_call(self.base, p, (x,))
        return torch.func.vmap(call, in_dims=(0, None if shared else 0))(params, tokens)

    def _batch(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(rows (K, b), labels (K, b), weights (K, b)) of this step; weights are 1/b_i or 0 (padding)."""
        idx = [s.next() for s in self.samplers]
        if all(i is None for i in idx):
            rows, labels, sizes = self.rows, self.labels, self.n_train
        else:
            idx = [torch.arange(s.n) if i is None else i for i, s in zip(idx, self.samplers)]
            pos = torch.nn.utils.rnn.pad_sequence(idx, batch_first=True).to(self.device)  # (K, b_max)
            rows, labels = self.rows.gather(1, pos), self.labels.gather(1, pos)
            sizes = torch.tensor([len(i) for i in idx], device=self.device)
        valid = torch.arange(rows.shape[1], device=self.device) < sizes[:, None]  # (K, b)
        dtype = _dtype(self.cfgs[0].train.loss_dtype)
        return rows, labels, valid.to(dtype) / sizes[:, None].to(dtype)

    def train_step(self) -> torch.Tensor:
        """One update of every member; returns the (K,) training losses before it."""
        tr = self.cfgs[0].train
        self.lrs = [lr_at(c.optim, self.step, tr.steps) for c in self.cfgs]
        rows, labels, weights = self._batch()
        self.base.train()
        logits = self._forward(self.params, self.tokens[rows], shared=False)  # (K, b, C)
        losses = (_per_example_loss(logits, labels, tr.loss, tr.loss_dtype) * weights).sum(1)  # (K,)
        for p in self.params.values():
            p.grad = None
        losses.sum().backward()
        self.update.step(self.lrs)
        self.step += 1
        return losses.detach()

    @torch.no_grad()
    def evaluate(self) -> list[dict]:
        """Per member {"train_loss", "train_acc", "test_loss", "test_acc", "weight_norm",
        "softmax_collapse"} on its own split, in eval mode, as evaluate_stats/weight_norm compute them."""
        tr = self.cfgs[0].train
        self.base.eval()
        N, m = self.tokens.shape[0], self.cfgs[0].model
        chunk = max(1, _EVAL_ELEMENTS // (N * max(self.tasks[0].n_classes, m.d_mlp, 4 * m.d_model)))
        parts = []
        for a in range(0, self.K, chunk):
            logits = self._forward({k: v[a:a + chunk] for k, v in self.params.items()}, self.tokens,
                                   shared=True)  # (k, N, C)
            labels, train = self.eval_labels[a:a + chunk], self.train_mask[a:a + chunk]
            loss = _per_example_loss(logits, labels, tr.loss, tr.loss_dtype)  # (k, N)
            correct = (logits.argmax(-1) == labels).double()
            collapse = (torch.log_softmax(logits.to(_dtype(tr.loss_dtype)), -1).amax(-1) == 0).double()
            n_tr, n_te = train.sum(1).double(), (~train).sum(1).double()
            tm, em = train.double(), (~train).double()
            parts.append(torch.stack([(loss * tm).sum(1) / n_tr, (correct * tm).sum(1) / n_tr,
                                      (loss * em).sum(1) / n_te, (correct * em).sum(1) / n_te,
                                      (collapse * tm).sum(1) / n_tr], dim=1))  # (k, 5)
        norm = torch.sqrt(sum(p.double().pow(2).flatten(1).sum(1) for p in self.params.values()))  # (K,)
        stats = torch.cat(parts).tolist()
        return [{"train_loss": s[0], "train_acc": s[1], "test_loss": s[2], "test_acc": s[3],
                 "weight_norm": w, "softmax_collapse": s[4]} for s, w in zip(stats, norm.tolist())]

    @torch.no_grad()
    def save_member(self, i: int, path: Path, extra: dict) -> None:
        """Checkpoint of member i in the single-run format (model, optimizer, sampler, filter state)."""
        module, rule = self.modules[i], self.rules[i]
        for name, p in module.named_parameters():
            p.copy_(self.params[name][i])
        self.update.export(i, rule, self.lrs[i])
        # rule was built with the member's initial weights: its to_init copy and norm target are right
        extra = {"sampler": self.samplers[i].state(), "torch_rng": torch.get_rng_state(), **extra,
                 "update": rule.state_dict()}
        save_checkpoint(path, step=self.step, model=module, optimizer=rule.optimizer,
                        config=to_dict(self.cfgs[i]), extra=extra)
        rule.optimizer.state.clear()


@dataclasses.dataclass
class _Member:
    rd: RunDir
    tracker: Any  # MultiTracker
    monitor: Monitor
    records: list = dataclasses.field(default_factory=list)
    status: str | None = None  # None while training
    reason: str | None = None
    wall: float = 0.0
    steps_done: int = 0


def train_ensemble(configs: list[RunConfig], outs: list[Path],
                   progress: bool | None = False) -> list[RunResult]:
    """Train `configs` together (see can_ensemble), member i into the run directory outs[i].

    Everything is checked before any directory is created. Returns one RunResult per member.
    """
    from tqdm import tqdm

    from grokscope.tracking.sinks import MultiTracker, build_trackers, check_sinks

    configs = [validate(c) for c in configs]
    if len(outs) != len(configs):
        raise ConfigError(f"out: {len(outs)} output directories for {len(configs)} configs")
    if len({Path(o).resolve() for o in outs}) != len(outs):
        raise ConfigError("out: the members' output directories must be distinct")
    outs = [check_out(o) for o in outs]
    why = can_ensemble(configs)
    if why is not None:
        raise ConfigError(why)
    check_sinks(configs[0].log)
    c0, tr = configs[0], configs[0].train
    device = resolve_device(tr.device)
    if tr.threads:
        torch.set_num_threads(tr.threads)
    ens = Ensemble(configs, device)
    members = []
    for c, out in zip(configs, outs):
        rd = RunDir(out)
        rd.path.mkdir(parents=True, exist_ok=True)
        rd.checkpoints.mkdir(exist_ok=True)
        atomic_write_json(rd.config, to_dict(c))
        members.append(_Member(rd, MultiTracker(build_trackers(c.log, rd.path)), Monitor(c.train)))
    bases = [{"format_version": FORMAT_VERSION, "name": c.name, "task": t.meta,
              "n_parameters": sum(p.numel() for p in m.parameters()), "device": str(device),
              "versions": versions(), "lineage": None, "resumed_from": [],
              "ensemble": {"members": ens.K, "index": i}}
             for i, (c, t, m) in enumerate(zip(configs, ens.tasks, ens.modules))]
    for c, m, base in zip(configs, members, bases):
        atomic_write_json(m.rd.summary, {**base, "status": "running"})
        m.tracker.start(to_dict(c), m.rd.path)
    evals = StepSchedule(tr.steps, tr.eval_per_decade, tr.eval_every)
    ckpts = StepSchedule(tr.steps, tr.checkpoint_per_decade, tr.checkpoint_every)
    show = progress if progress is not None else (
        c0.log.progress if c0.log.progress is not None else sys.stderr.isatty())
    bar = tqdm(total=tr.steps, disable=not show, dynamic_ncols=True, desc=f"{c0.name or 'ensemble'} x{ens.K}")
    t0 = time.perf_counter()
    elapsed = lambda: time.perf_counter() - t0

    def record(i: int, stats: dict) -> dict:
        m = members[i]
        r = {"step": ens.step, **{k: stats[k] for k in ("train_loss", "train_acc", "test_loss", "test_acc",
                                                        "weight_norm")},
             "lr": ens.lrs[i], "softmax_collapse": stats["softmax_collapse"], "elapsed": elapsed()}
        publish(r, tracker=m.tracker, records=m.records, monitor=m.monitor, bar=bar,
                label=f"{configs[i].name or i}: ")
        return r

    def save(i: int, path: Path) -> None:
        ens.save_member(i, path, {"elapsed": elapsed()})

    results: dict[int, RunResult] = {}

    def end(i: int, status: str, reason: str | None, steps_done: int | None = None) -> None:
        """Member i is done: its summary (and report) is written now, the others train on."""
        m = members[i]
        m.status, m.reason, m.wall = status, reason, elapsed()
        m.steps_done = ens.step if steps_done is None else steps_done
        results[i] = _finish(configs[i], m, bases[i])

    active = lambda: [i for i, m in enumerate(members) if m.status is None]
    for i, stats in enumerate(ens.evaluate()):
        record(i, stats)
        save(i, members[i].rd.checkpoint_path(0))
    last_save = time.perf_counter()
    with _signals() as stop_signal:
        try:
            while ens.step < tr.steps and active():
                if stop_signal:
                    for i in active():
                        save(i, members[i].rd.checkpoint_path(ens.step))
                        end(i, "interrupted", f"signal {signal.Signals(stop_signal[0]).name}")
                    break
                losses = ens.train_step()
                bar.update(1)
                if device.type == "cpu":  # as the single run: stop before the update that saw it
                    finite = torch.isfinite(losses).tolist()
                    for i in active():
                        if not finite[i]:
                            end(i, "diverged", f"non-finite training loss at step {ens.step}", ens.step - 1)
                stops: dict[int, str] = {}
                if ens.step in evals:
                    stats = ens.evaluate()
                    for i in active():
                        r = record(i, stats[i])
                        if not (math.isfinite(r["train_loss"]) and math.isfinite(r["weight_norm"])):
                            end(i, "diverged", f"non-finite loss or weights at step {ens.step}")
                for i in active():
                    stop = members[i].monitor.stop_reason(ens.step)
                    if stop is not None:
                        stops[i] = stop
                if stops and any(members[i].records[-1]["step"] != ens.step for i in stops):
                    all_stats = ens.evaluate()
                    for i in stops:
                        if members[i].records[-1]["step"] != ens.step:
                            record(i, all_stats[i])
                every = tr.resume_every_seconds
                due = bool(every) and time.perf_counter() - last_save >= every
                for i in active():
                    if ens.step in ckpts or i in stops:
                        save(i, members[i].rd.checkpoint_path(ens.step))
                    elif due:
                        save(i, members[i].rd.checkpoints / "latest.pt")
                if due and ens.step not in ckpts:
                    last_save = time.perf_counter()
                for i, stop in stops.items():
                    end(i, "completed", stop)
        finally:
            bar.close()
    for i in active():
        end(i, "completed", None)
    return [results[i] for i in range(ens.K)]


def _finish(cfg: RunConfig, m: _Member, base: dict) -> RunResult:
    """Write member m's summary (and report or figure), as the single-run loop ends a run."""
    rd = m.rd
    if m.status == "diverged":
        (rd.checkpoints / "latest.pt").unlink(missing_ok=True)
    analysis = detect.analyze(m.records)
    last = m.records[-1] if m.records else {}
    summary = {**base, "status": m.status, "stop_reason": m.reason, "wall_seconds": m.wall,
               "steps_done": m.steps_done,
               "final": {k: last.get(k) for k in ("train_acc", "test_acc", "train_loss", "test_loss")},
               "events": analysis["events"], "phase": analysis["phase"], "phases": analysis["phases"],
               "still_on_plateau": analysis["still_on_plateau"]}
    atomic_write_json(rd.summary, summary)
    m.tracker.finish(summary)
    if m.records and cfg.log.report:
        from grokscope.report.html import write_report

        write_report(rd.path)
    elif m.records and cfg.log.figure:
        from grokscope.report.plots import save_curves

        save_curves(m.records, rd.figures / "curves.png", title=cfg.name or rd.path.name,
                    events=summary["events"], analysis=analysis)
    return RunResult(rd.path, summary, m.records)


@contextlib.contextmanager
def _signals():
    """Yields a list that receives the signal number on SIGINT/SIGTERM (main thread only); the
    loop then checkpoints every member and ends them 'interrupted'. A second SIGINT interrupts."""
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
