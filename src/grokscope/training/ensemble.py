"""Ensemble training: K runs that differ only in a few hyper-parameters train together in one process.

Member i is built exactly as a single run of config i (same task split, same initial weights), then
the K parameter sets are stacked with a leading model axis (K, ...) and the model is run once for
all of them with ``torch.func.vmap`` over ``functional_call``. Each member has its own split (padded
to the longest member's), learning rate, weight decay, gradient clipping, Grokfast lambda and
optimizer state (`BatchedUpdate`). `Ensemble` is the engine's stepper for K members, so the run
lifecycle (schedules, stop rules, signals, summary, report) is the single run's: every member
writes a normal run directory, and ``grokscope resume`` continues a member as a single run.

    from grokscope.training.ensemble import can_ensemble, train_ensemble
    assert can_ensemble(configs) is None
    train_ensemble(configs, [Path(f"runs/m{i}") for i in range(len(configs))])
"""

from __future__ import annotations

import contextlib
import copy
from pathlib import Path

import torch

from grokscope.config import RunConfig, flat_dict, to_dict, validate
from grokscope.errors import ConfigError
from grokscope.models import build_model
from grokscope.tasks import Task, task_from_config
from grokscope.tracking.lock import RunLock
from grokscope.tracking.writer import RunWriter, check_out
from grokscope.training.batched import BatchedUpdate
from grokscope.training.checkpoint import save_checkpoint
from grokscope.training.common import Sampler, resolve_device
from grokscope.training.engine import Member, RunResult, run_engine, show_progress
from grokscope.training.losses import per_example_correct, per_example_loss, torch_dtype
from grokscope.training.monitor import Monitor
from grokscope.training.optim import UpdateRule, lr_at

__all__ = ["VARYING_FIELDS", "Ensemble", "can_ensemble", "ensemble_groups", "train_ensemble"]

VARYING_FIELDS = ("seed", "name", "task.train_fraction", "optim.lr", "optim.weight_decay",
                  "model.init_scale", "optim.grokfast_lamb")
"""Config fields that may differ between the members of one ensemble."""

_EVAL_ELEMENTS = 1 << 24  # activation elements per evaluation chunk of models


def _fields(cfg: RunConfig) -> dict:
    return flat_dict(to_dict(cfg), whole=("options",))  # a task's options compare as one value


def can_ensemble(configs: list[RunConfig]) -> str | None:
    """None if `configs` can train as one ensemble, else the reason (e.g. "optim.name differs")."""
    if not configs:
        return "no configs"
    try:
        for c in configs:
            validate(c)
    except ConfigError as e:
        return str(e)
    first = _fields(configs[0])
    for c in configs[1:]:
        for name, value in _fields(c).items():
            if name not in VARYING_FIELDS and value != first[name]:
                return f"{name} differs between members ({first[name]!r} vs {value!r}); only " \
                       f"{', '.join(VARYING_FIELDS)} may differ"
    c = configs[0]
    unsupported = [("model.arch", c.model.arch in ("lstm", "gru")),  # vmap has no rule for aten::lstm/gru
                   ("optim.orthograd", c.optim.orthograd),
                   ("model.dropout", c.model.dropout != 0 or c.train.dropout_schedule != "constant"),
                   ("train.curriculum", c.train.curriculum != "none"),
                   ("train.init_from", c.train.init_from is not None),
                   ("agent.kind", c.agent.kind != "supervised")]
    for name, used in unsupported:
        if used:
            return f"{name}: not supported by ensemble training; train these runs one by one"
    return None


def ensemble_groups(configs: list[RunConfig], max_size: int | None = None) -> list[list[int]]:
    """Indices of `configs` grouped into ensembles (equal in every field but VARYING_FIELDS, at most
    `max_size` each), in order of first appearance; a config that cannot ensemble is a group of one."""
    groups: dict[str, list[list[int]]] = {}
    for i, c in enumerate(configs):
        key = repr(sorted((k, repr(v)) for k, v in _fields(c).items() if k not in VARYING_FIELDS))
        if can_ensemble([c]) is not None:
            key = f"#{i}"
        runs = groups.setdefault(key, [[]])
        if max_size is not None and len(runs[-1]) >= max_size:
            runs.append([])
        runs[-1].append(i)
    return sorted((g for runs in groups.values() for g in runs), key=lambda g: g[0])


def _stack(tensors: list[torch.Tensor]) -> torch.Tensor:
    """(n_i, ...) tensors -> (K, n_max, ...), zero padded."""
    return torch.nn.utils.rnn.pad_sequence(tensors, batch_first=True)


class _Stacked:
    """One split of every member, padded: inputs (K, n, ...), targets (K, n, ...), mask (K, n, T) or
    None, valid (K, n) bool, sizes (K,)."""

    def __init__(self, splits, device):
        self.inputs = _stack([s.inputs for s in splits]).to(device)
        self.targets = _stack([s.targets for s in splits]).to(device)
        self.mask = None if splits[0].mask is None else _stack([s.mask for s in splits]).to(device)
        self.train_mask = (self.mask if splits[0].loss_mask is None
                           else _stack([s.train_mask for s in splits]).to(device))
        self.sizes = torch.tensor([len(s) for s in splits], device=device)
        self.valid = torch.arange(self.inputs.shape[1], device=device) < self.sizes[:, None]  # (K, n)


class Ensemble:
    """K members' tasks, stacked parameters (K, ...) and batched update: the engine's stepper.

    `train_step()` does one update of every member (the single run's lr schedule, batch order and
    update); `evaluate()` returns each member's metric record as a single run computes it.
    """

    def __init__(self, configs: list[RunConfig], device: torch.device | str = "cpu"):
        why = can_ensemble(configs)
        if why is not None:
            raise ConfigError(why)
        self.cfgs, self.device, self.K = configs, torch.device(device), len(configs)
        self.tasks: list[Task] = [task_from_config(c) for c in configs]
        names = list(self.tasks[0].splits)
        if any(list(t.splits) != names for t in self.tasks):
            raise ConfigError("task: the members' tasks have different splits; train them one by one")
        if any(s.accept is not None for t in self.tasks for s in t.splits.values()):
            raise ConfigError(f"task.kind: {configs[0].task.kind!r} scores several right answers per "
                              "example, which ensemble training does not; train these runs one by one")
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
        self.update = BatchedUpdate([c.optim for c in configs], list(self.params.values()),
                                    [r.norm_target for r in self.rules])
        self.splits = {n: _Stacked([t.splits[n] for t in self.tasks], self.device) for n in names}
        self.train = self.splits["train"]
        self.samplers = [Sampler(len(t.train), c.train.batch_size, c.seed)
                         for t, c in zip(self.tasks, configs)]
        self.step = 0
        self.lrs = [lr_at(c.optim, 0, c.train.steps) for c in configs]
        self._measures = [type(t).measures is not Task.measures for t in self.tasks]
        from grokscope.training.stepper import eval_cost, reuses_train_forward

        # as each member's single run counts it, so members evaluate at their single runs' steps
        self.eval_costs = [eval_cost(c, t, reuses_train_forward(c, t, mod))
                           for c, t, mod in zip(configs, self.tasks, self.modules)]

    def _forward(self, params: dict, inputs: torch.Tensor, shared: bool = False) -> torch.Tensor:
        """params name -> (k, ...); inputs (n, ...) for every model if shared, else (k, n, ...) ->
        (k, n, ...outputs)."""
        call = lambda p, x: torch.func.functional_call(self.base, p, (x,))
        return torch.func.vmap(call, in_dims=(0, None if shared else 0))(params, inputs)

    def _batch(self):
        """(inputs (K, b, ...), targets, mask, weights (K, b)) of this step; weights 1/b_i or 0 (padding)."""
        idx = [s.next() for s in self.samplers]
        tr = self.train
        if all(i is None for i in idx):
            inputs, targets, mask, sizes = tr.inputs, tr.targets, tr.train_mask, tr.sizes
        else:
            idx = [torch.arange(s.n) if i is None else i for i, s in zip(idx, self.samplers)]
            pos = _stack(idx).to(self.device)  # (K, b_max)
            k = torch.arange(self.K, device=self.device)[:, None]
            inputs, targets = tr.inputs[k, pos], tr.targets[k, pos]
            mask = None if tr.train_mask is None else tr.train_mask[k, pos]
            sizes = torch.tensor([len(i) for i in idx], device=self.device)
        valid = torch.arange(inputs.shape[1], device=self.device) < sizes[:, None]  # (K, b)
        dtype = torch_dtype(self.cfgs[0].train.loss_dtype)
        return inputs, targets, mask, valid.to(dtype) / sizes[:, None].to(dtype)

    # ---------------------------------------------------------------------------- Stepper
    def prepare(self, announce=None) -> None:
        tr = self.cfgs[0].train
        self.lrs = [lr_at(c.optim, self.step, tr.steps) for c in self.cfgs]

    def train_step(self) -> torch.Tensor:
        """One update of every member; returns the (K,) training losses before it."""
        tr, task = self.cfgs[0].train, self.tasks[0]
        self.prepare()
        inputs, targets, mask, weights = self._batch()
        self.base.train()
        out = self._forward(self.params, inputs)  # (K, b, ...)
        per = per_example_loss(out, targets, tr.loss, tr.loss_dtype, task.output, mask)  # (K, b)
        losses = (per * weights).sum(1)  # (K,)
        for p in self.params.values():
            p.grad = None
        losses.sum().backward()
        self.update.step(self.lrs)
        self.step += 1
        return losses.detach()

    @torch.no_grad()
    def evaluate(self) -> list[dict]:
        """Per member {"{split}_loss", "{split}_acc" for every split, "weight_norm", "lr",
        "softmax_collapse"} on its own splits, in eval mode, as the single run computes them."""
        tr, task = self.cfgs[0].train, self.tasks[0]
        self.base.eval()
        out: list[dict] = [{} for _ in range(self.K)]
        collapse = [0.0] * self.K
        m = self.cfgs[0].model
        for name, s in self.splits.items():
            rows = s.inputs.shape[1] * max(1, int(torch.tensor(s.inputs.shape[2:]).prod()))
            chunk = max(1, _EVAL_ELEMENTS // (rows * max(task.n_classes, m.d_mlp, 4 * m.d_model)))
            for a in range(0, self.K, chunk):
                b = min(a + chunk, self.K)
                z = self._forward({k: v[a:b] for k, v in self.params.items()}, s.inputs[a:b])  # (k, n, ...)
                mask = None if s.mask is None else s.mask[a:b]
                # (k, n) per-example losses and hits
                loss = per_example_loss(z, s.targets[a:b], tr.loss, tr.loss_dtype, task.output, mask)
                hit = per_example_correct(z, s.targets[a:b], task.output, mask, task.tolerance).double()
                v = s.valid[a:b].double()
                n = v.sum(1).clamp(min=1)
                mean_loss, acc = ((loss.double() * v).sum(1) / n).tolist(), ((hit * v).sum(1) / n).tolist()
                if name == "train" and task.output != "regression":
                    top = torch.log_softmax(z.to(torch_dtype(tr.loss_dtype)), -1).amax(-1)  # (k, n[, T])
                    col = (top == 0).double().flatten(2).mean(2) if top.ndim > 2 else (top == 0).double()
                    collapse[a:b] = ((col * v).sum(1) / n).tolist()
                for j, i in enumerate(range(a, b)):
                    out[i][f"{name}_loss"], out[i][f"{name}_acc"] = mean_loss[j], acc[j]
        norm = torch.sqrt(sum(p.double().pow(2).flatten(1).sum(1) for p in self.params.values()))  # (K,)
        for i, w in enumerate(norm.tolist()):
            out[i].update({"weight_norm": w, "lr": self.lrs[i], "softmax_collapse": collapse[i]})
            if self._measures[i]:
                out[i].update(self.tasks[i].measures(self._member_module(i), self.device))
        return out

    def after_eval(self, i: int, record: dict, announce) -> None:
        pass

    @torch.no_grad()
    def _member_module(self, i: int) -> torch.nn.Module:
        module = self.modules[i]
        for name, p in module.named_parameters():
            p.copy_(self.params[name][i])
        return module

    @torch.no_grad()
    def save(self, i: int, path: Path, elapsed: float) -> None:
        """Checkpoint of member i in the single-run format (model, optimizer, sampler, filter state)."""
        module, rule = self._member_module(i), self.rules[i]
        self.update.export(i, rule, self.lrs[i])
        # rule was built with the member's initial weights: its to_init copy and norm target are right
        extra = {"sampler": self.samplers[i].state(), "torch_rng": torch.get_rng_state(), "elapsed": elapsed,
                 "update": rule.state_dict()}
        save_checkpoint(path, step=self.step, model=module, optimizer=rule.optimizer,
                        config=to_dict(self.cfgs[i]), extra=extra)
        rule.optimizer.state.clear()

    def save_member(self, i: int, path: Path, extra: dict) -> None:
        self.save(i, path, extra.get("elapsed", 0.0))


def train_ensemble(configs: list[RunConfig], outs: list[Path],
                   progress: bool | None = False) -> list[RunResult]:
    """Train `configs` together (see can_ensemble), member i into the run directory outs[i].

    Everything is checked before any directory is created. Returns one RunResult per member.
    """
    from grokscope.tracking.sinks import check_sinks
    from grokscope.training.stepper import check_task_fits, run_info

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
    for c, t in zip(configs, ens.tasks):
        check_task_fits(c, t)
    with contextlib.ExitStack() as locks:
        for out in outs:  # one writer per run directory: every member's is ours, or nothing starts
            locks.enter_context(RunLock(out, "out"))
            check_out(out)
        members = []
        for i, (c, out, task, module) in enumerate(zip(configs, outs, ens.tasks, ens.modules)):
            writer = RunWriter.create(c, out)
            writer.begin({**run_info(task, module, device, None), "ensemble": {"members": ens.K, "index": i}})
            members.append(Member(writer, Monitor(c.train, split=task.generalization_split),
                                  label=f"{c.name or i}: "))
        return run_engine(ens, members, tr, show=show_progress(c0, progress),
                          desc=f"{c0.name or 'ensemble'} x{ens.K}",
                          check_finite=device.type == "cpu")
