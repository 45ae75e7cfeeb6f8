"""Models built from a ModelConfig for a task's inputs and outputs.

transformer (hooked decoder-only, token sequences), mlp (tokens, vectors or flattened images), cnn
(images) and lstm / gru (token sequences). What forward returns, per task output:

- 'classes' / 'regression': (batch, n_classes) logits or predictions, read at the task's
  answer_position for token models;
- 'tokens' (transformer, lstm, gru): (batch, seq_len, n_classes), one prediction per position
  (causal: position t sees tokens 0..t).
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from grokscope.errors import ConfigError
from grokscope.models.cnn import CNN
from grokscope.models.hooks import HookedModule, HookPoint
from grokscope.models.mlp import MLP
from grokscope.models.rnn import RNN
from grokscope.models.transformer import Transformer

__all__ = ["ARCH_INPUTS", "ARCH_OUTPUTS", "CNN", "HookPoint", "HookedModule", "MLP", "RNN", "Transformer",
           "build_model", "check_arch", "check_model_task", "register_model", "set_dropout"]

ARCH_INPUTS: dict[str, tuple[str, ...]] = {
    "transformer": ("tokens",),
    "mlp": ("tokens", "vector", "image"),
    "cnn": ("image",),
    "lstm": ("tokens",),
    "gru": ("tokens",),
}
"""The task input kinds each architecture takes."""
ARCH_OUTPUTS: dict[str, tuple[str, ...]] = {
    "transformer": ("classes", "regression", "tokens"),
    "mlp": ("classes", "regression"),
    "cnn": ("classes", "regression"),
    "lstm": ("classes", "regression", "tokens"),
    "gru": ("classes", "regression", "tokens"),
}
"""The task output kinds each architecture produces."""


def _either(items: list[str]) -> str:
    """'a', 'a or b', 'a, b or c'."""
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} or {items[-1]}"


def _fitting(task) -> str:
    fit = [a for a in ARCH_INPUTS if task.input_kind in ARCH_INPUTS[a] and task.output in ARCH_OUTPUTS[a]]
    return f" (use {_either(fit)})" if fit else ""


_PLUGINS: dict[str, Callable] = {}


def register_model(name: str, build: Callable, *, inputs: tuple[str, ...],
                   outputs: tuple[str, ...] = ("classes",),
                   replace: bool = False) -> None:
    """Register an architecture under `name` (the value of model.arch): `build(cfg: ModelConfig, task)
    -> nn.Module` mapping a batch of the task's inputs to its outputs (see the module docstring);
    `inputs`/`outputs`: the task input and output kinds it accepts."""
    if name in ARCH_INPUTS and not replace:
        raise ValueError(f"model arch {name!r} is already registered (pass replace=True to redefine it)")
    ARCH_INPUTS[name], ARCH_OUTPUTS[name] = tuple(inputs), tuple(outputs)
    _PLUGINS[name] = build


def check_arch(arch: object) -> None:
    """ConfigError unless `arch` is a registered architecture."""
    if not isinstance(arch, str) or arch not in ARCH_INPUTS:
        raise ConfigError(f"model.arch: must be one of {', '.join(map(repr, ARCH_INPUTS))}, got {arch!r}")


def check_model_task(cfg, task) -> None:
    """Raise a one-line ConfigError when model `cfg.arch` cannot take the task's inputs or produce
    its outputs; None when it can."""
    arch = cfg.arch
    check_arch(arch)
    if task.input_kind not in ARCH_INPUTS[arch]:
        raise ConfigError(f"model.arch: {arch!r} needs {_either(list(ARCH_INPUTS[arch]))} inputs; task kind "
                          f"{task.kind!r} gives {task.input_kind} inputs{_fitting(task)}")
    if task.output not in ARCH_OUTPUTS[arch]:
        raise ConfigError(f"model.arch: {arch!r} cannot produce {task.output} outputs; task kind "
                          f"{task.kind!r} has output {task.output!r}{_fitting(task)}")
    if arch in ("lstm", "gru") and cfg.n_layers < 1:
        raise ConfigError(f"model.n_layers: {arch!r} needs at least 1 layer, got {cfg.n_layers}")
    if task.input_kind == "image" and len(task.input_shape) != 3:
        raise ValueError(f"task kind {task.kind!r}: image inputs need input_shape (C, H, W), "
                         f"got {task.input_shape}")
    if task.input_kind == "tokens":
        T = task.input_shape[0]
        positions = [task.answer_position, *(task.read_positions or ())]
        if any(not -T <= p < T for p in positions):
            raise ValueError(f"task kind {task.kind!r}: answer_position / read_positions {positions} "
                             f"out of range for sequences of {T} tokens")


def build_model(cfg, task) -> nn.Module:
    """Model for `task` (a grokscope.tasks.Task) from a ModelConfig; ConfigError for a model that
    cannot take the task's inputs or produce its outputs."""
    check_model_task(cfg, task)
    arch = cfg.arch
    if arch in _PLUGINS:
        return _PLUGINS[arch](cfg, task)
    if arch == "transformer":
        return Transformer(cfg, d_vocab=task.vocab_size, d_vocab_out=task.n_classes,
                           n_ctx=task.input_shape[0],
                           answer_position=task.answer_position, output=task.output)
    if arch == "mlp":
        n_values = (task.read_vocab or task.vocab_size) if task.input_kind == "tokens" else None
        return MLP(cfg, n_values=n_values, n_classes=task.n_classes, input_kind=task.input_kind,
                   input_shape=tuple(task.input_shape), read_positions=task.read_positions)
    if arch == "cnn":
        return CNN(cfg, tuple(task.input_shape), task.n_classes)
    return RNN(cfg, task.vocab_size, task.n_classes, answer_position=task.answer_position, output=task.output)


def set_dropout(model: nn.Module, p: float) -> None:
    """Set the dropout probability of every grokscope module in `model` (for dropout schedules)."""
    for m in model.modules():
        if hasattr(m, "dropout_p"):
            m.dropout_p = p
