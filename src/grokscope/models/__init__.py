"""Models: a hooked decoder-only transformer and an MLP, built from a ModelConfig."""

from __future__ import annotations

from torch import nn

from grokscope.models.hooks import HookedModule, HookPoint
from grokscope.models.mlp import MLP
from grokscope.models.transformer import Transformer

__all__ = ["HookPoint", "HookedModule", "MLP", "Transformer", "build_model", "set_dropout"]


def build_model(cfg, task) -> nn.Module:
    """Model for `task` (a grokscope.tasks.Task) from a ModelConfig."""
    if cfg.arch == "transformer":
        return Transformer(cfg, d_vocab=task.vocab_size, d_vocab_out=task.n_classes)
    return MLP(cfg, n_values=task.n_values, n_classes=task.n_classes)


def set_dropout(model: nn.Module, p: float) -> None:
    """Set the dropout probability of every grokscope module in `model` (for dropout schedules)."""
    for m in model.modules():
        if hasattr(m, "dropout_p"):
            m.dropout_p = p
