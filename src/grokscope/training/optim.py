"""Optimizers and learning-rate schedules built from an OptimConfig."""

from __future__ import annotations

import math

import torch

from grokscope.config import OptimConfig


def build_optimizer(cfg: OptimConfig, params) -> torch.optim.Optimizer:
    """adamw: decoupled decay; adam, sgd, rmsprop: coupled L2 (torch's `weight_decay`).

    rmsprop uses betas[1] as its squared-gradient smoothing constant and `momentum`.
    """
    params = list(params)
    wd = cfg.weight_decay
    if cfg.name == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps, weight_decay=wd)
    if cfg.name == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps, weight_decay=wd)
    if cfg.name == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=wd)
    if cfg.name == "rmsprop":
        return torch.optim.RMSprop(params, lr=cfg.lr, alpha=cfg.betas[1], eps=cfg.eps,
                                   weight_decay=wd, momentum=cfg.momentum)
    raise ValueError(f"optim.name: unknown optimizer {cfg.name!r}")


def lr_at(cfg: OptimConfig, step: int, total_steps: int) -> float:
    """Learning rate for update number `step` (0-based).

    Linear warmup: update s < warmup uses lr*(s+1)/warmup (the first update already moves,
    the warmup-th uses the full lr). Afterwards constant, or cosine/linear decay that reaches
    lr*min_lr_ratio at the last update.
    """
    w = cfg.warmup_steps
    if step < w:
        return cfg.lr * (step + 1) / w
    if cfg.schedule == "constant":
        return cfg.lr
    span = max(1, total_steps - 1 - w)
    progress = min(1.0, (step - w) / span)
    if cfg.schedule == "cosine":
        shape = 0.5 * (1.0 + math.cos(math.pi * progress))
    else:
        shape = 1.0 - progress
    return cfg.lr * (cfg.min_lr_ratio + (1.0 - cfg.min_lr_ratio) * shape)
