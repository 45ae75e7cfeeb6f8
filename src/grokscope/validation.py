"""`validate(cfg)`: the one place where a RunConfig's values are checked.

Raises ConfigError("section.field: ...") naming the first bad field; the task section is checked
by its task kind (grokscope.tasks).
"""

from __future__ import annotations

import functools
import typing
from dataclasses import fields, is_dataclass
from typing import Any

from grokscope.errors import ConfigError
from grokscope.values import describe, matches

MAX_SEED = 2**63 - 1
"""Seeds (and split seeds) are used with small offsets by torch generators, which take < 2**64."""


def _check(ok: bool, name: str, msg: str, value: Any) -> None:
    if not ok:
        raise ConfigError(f"{name}: {msg}, got {value!r}")


def validate(cfg):
    """Check every field; return cfg unchanged or raise ConfigError naming the first bad field."""
    from grokscope.tasks import validate_task_config

    _check_types(cfg, "")
    _check(cfg.task.split_seed is None or 0 <= cfg.task.split_seed <= MAX_SEED, "task.split_seed",
           f"must be an integer in 0..{MAX_SEED} (2**63 - 1) or None", cfg.task.split_seed)
    validate_task_config(cfg)
    m = cfg.model
    from grokscope.models import check_arch

    check_arch(m.arch)
    for name in ("n_layers", "d_model", "n_heads", "d_mlp"):
        v = getattr(m, name)
        _check(v >= 1 and v <= 65_536, f"model.{name}", "must be an integer in 1..65536", v)
    _check(m.d_model % m.n_heads == 0 or m.arch == "mlp", "model.n_heads",
           f"must divide model.d_model={m.d_model}", m.n_heads)
    _check(not m.share_layers or (m.arch == "transformer" and m.n_layers % 2 == 0), "model.share_layers",
           f"needs model.arch 'transformer' and an even model.n_layers (arch {m.arch!r}, n_layers "
           f"{m.n_layers})", m.share_layers)
    _check(0 <= m.dropout < 1, "model.dropout", "must be in [0, 1)", m.dropout)
    _check(m.init_scale > 0, "model.init_scale", "must be > 0", m.init_scale)
    _check(all(1 <= c <= 65_536 for c in m.cnn_channels), "model.cnn_channels",
           "must be integers in 1..65536", m.cnn_channels)
    _check(1 <= m.kernel_size <= 31 and m.kernel_size % 2 == 1, "model.kernel_size",
           "must be an odd integer in 1..31", m.kernel_size)
    o = cfg.optim
    _check(o.lr > 0, "optim.lr", "must be > 0", o.lr)
    _check(all(0 <= b < 1 for b in o.betas), "optim.betas", "must be two numbers in [0, 1)", o.betas)
    _check(o.eps > 0, "optim.eps", "must be > 0", o.eps)
    _check(o.weight_decay >= 0, "optim.weight_decay", "must be >= 0", o.weight_decay)
    _check(0 <= o.momentum < 1, "optim.momentum", "must be in [0, 1)", o.momentum)
    _check(o.warmup_steps >= 0, "optim.warmup_steps", "must be >= 0", o.warmup_steps)
    _check(0 <= o.min_lr_ratio <= 1, "optim.min_lr_ratio", "must be in [0, 1]", o.min_lr_ratio)
    _check(o.grad_clip is None or o.grad_clip > 0, "optim.grad_clip", "must be > 0 or None", o.grad_clip)
    _check(0 <= o.grokfast_alpha < 1, "optim.grokfast_alpha", "must be in [0, 1)", o.grokfast_alpha)
    _check(o.grokfast_lamb >= 0, "optim.grokfast_lamb", "must be >= 0", o.grokfast_lamb)
    _check(not o.fused or o.name in ("adam", "adamw"), "optim.fused", "needs optim.name adam or adamw",
           f"{o.fused} with {o.name}")
    _check(o.grokfast_window >= 1, "optim.grokfast_window", "must be >= 1", o.grokfast_window)
    _check(o.norm_constraint is None or o.norm_constraint >= 0, "optim.norm_constraint",
           "must be >= 0 (0 = norm at init) or None", o.norm_constraint)
    tr = cfg.train
    _check(1 <= tr.steps <= 100_000_000, "train.steps", "must be an integer in 1..1e8", tr.steps)
    _check(tr.batch_size is None or tr.batch_size >= 1, "train.batch_size",
           "must be >= 1 or None (full batch)", tr.batch_size)
    _check(tr.eval_every >= 1, "train.eval_every", "must be >= 1", tr.eval_every)
    _check(tr.eval_per_decade >= 0, "train.eval_per_decade", "must be >= 0", tr.eval_per_decade)
    _check(0 <= tr.eval_refine < 1, "train.eval_refine", "must be in [0, 1)", tr.eval_refine)
    _check(0 <= tr.eval_budget < 1, "train.eval_budget", "must be in [0, 1)", tr.eval_budget)
    _check(tr.checkpoint_per_decade >= 0, "train.checkpoint_per_decade", "must be >= 0",
           tr.checkpoint_per_decade)
    _check(tr.checkpoint_every is None or tr.checkpoint_every >= 1, "train.checkpoint_every",
           "must be >= 1 or None", tr.checkpoint_every)
    _check(0 <= tr.dropout_final < 1, "train.dropout_final", "must be in [0, 1)", tr.dropout_final)
    dropout_milestones(tr.dropout_milestones)
    _check(tr.dropout_schedule != "steps" or tr.dropout_milestones != "", "train.dropout_milestones",
           "must be set for dropout_schedule=steps, like '1000:0.1,5000:0'", tr.dropout_milestones)
    _check(tr.curriculum_stages >= 1, "train.curriculum_stages", "must be >= 1", tr.curriculum_stages)
    _check(tr.curriculum_stage_steps >= 1, "train.curriculum_stage_steps", "must be >= 1",
           tr.curriculum_stage_steps)
    _check(0 < tr.curriculum_threshold <= 1, "train.curriculum_threshold", "must be in (0, 1]",
           tr.curriculum_threshold)
    _check(tr.init_from is None or tr.init_from != "", "train.init_from", "must be a run directory or None",
           tr.init_from)
    _check(0 < tr.stop_target <= 1, "train.stop_target", "must be in (0, 1]", tr.stop_target)
    _check(tr.stop_patience >= 1, "train.stop_patience", "must be >= 1", tr.stop_patience)
    _check(tr.stop_after >= 0, "train.stop_after", "must be >= 0", tr.stop_after)
    _check(tr.resume_every_seconds >= 0, "train.resume_every_seconds", "must be >= 0 (0 disables)",
           tr.resume_every_seconds)
    _check(0 <= tr.threads <= 1024, "train.threads", "must be in 0..1024 (0 = torch default)", tr.threads)
    _check_agent(cfg)
    _check(0 <= cfg.seed <= MAX_SEED, "seed", f"must be an integer in 0..{MAX_SEED} (2**63 - 1)", cfg.seed)
    return cfg


def dropout_milestones(text: str) -> list[tuple[int, float]]:
    """Parse 'STEP:VALUE,...' into sorted (step, dropout) pairs; ConfigError names the field."""
    out = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        step, sep, value = part.partition(":")
        try:
            pair = (int(step), float(value))
        except ValueError:
            pair = None
        if not sep or pair is None or pair[0] < 0 or not 0 <= pair[1] < 1:
            raise ConfigError(f"train.dropout_milestones: expected 'STEP:VALUE,...' with VALUE in [0, 1), "
                              f"got {text!r}")
        out.append(pair)
    return sorted(out)


@functools.cache
def type_hints(cls: type) -> dict[str, Any]:
    """typing.get_type_hints of a config class, resolved once (resolving the string annotations
    was 0.8 of validate's 0.9 ms; a 10,000-run sweep validates every run)."""
    return typing.get_type_hints(cls)


def _check_types(obj: Any, prefix: str) -> None:
    """Check that every leaf value matches its annotation (catches JSON/Python misuse)."""
    hints = type_hints(type(obj))
    for f in fields(obj):
        value = getattr(obj, f.name)
        name = f"{prefix}{f.name}"
        tp = hints[f.name]
        if is_dataclass(tp):
            if not isinstance(value, tp):
                raise ConfigError(f"{name}: must be a {tp.__name__}, got {value!r}")
            _check_types(value, name + ".")
        elif not matches(tp, value):
            raise ConfigError(f"{name}: must be {describe(tp)}, got {value!r}")


def _check_agent(cfg) -> None:
    a = cfg.agent
    _check(a.contexts is None or a.contexts >= 1, "agent.contexts", "must be >= 1 or None", a.contexts)
    _check(a.entropy >= 0, "agent.entropy", "must be >= 0", a.entropy)
    _check(0 <= a.gamma <= 1, "agent.gamma", "must be in [0, 1]", a.gamma)
    for name in ("epsilon_start", "epsilon_end"):
        _check(0 <= getattr(a, name) <= 1, f"agent.{name}", "must be in [0, 1]", getattr(a, name))
    for name in ("epsilon_steps", "buffer_size", "replay_batch", "target_every"):
        _check(getattr(a, name) >= 1, f"agent.{name}", "must be >= 1", getattr(a, name))
    _check(a.learning_starts >= 0, "agent.learning_starts", "must be >= 0", a.learning_starts)
    if a.kind == "supervised":
        return
    tr = cfg.train
    _check(tr.curriculum == "none", "train.curriculum", f"must be 'none' for agent.kind {a.kind!r}",
           tr.curriculum)
    _check(tr.loss == "ce", "train.loss", f"must be 'ce' for agent.kind {a.kind!r} (it scores the greedy "
           "action; the agent has its own objective)", tr.loss)
