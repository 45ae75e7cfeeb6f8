"""Optimizers and learning-rate schedules built from an OptimConfig."""

from __future__ import annotations

import math

import torch

from grokscope.config import OptimConfig


def build_optimizer(cfg: OptimConfig, params, weight_decay: float | None = None) -> torch.optim.Optimizer:
    """The torch optimizer of `cfg.name` with torch's own `weight_decay` argument set to
    `weight_decay` (default cfg.weight_decay: decoupled for adamw, coupled L2 for the others).

    grokscope's trainer passes weight_decay=0 and applies decay itself (see UpdateRule), so the
    mode and the decayed parameters are explicit. rmsprop uses betas[1] as its smoothing constant.
    """
    params = list(params)
    wd = cfg.weight_decay if weight_decay is None else weight_decay
    fused = {"fused": True} if cfg.fused else {}
    if cfg.name == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps, weight_decay=wd, **fused)
    if cfg.name == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps, weight_decay=wd, **fused)
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


class UpdateRule:
    """Everything between `loss.backward()` and the next forward pass, in this order:

    1. Grokfast filter on the raw gradients (optim.grokfast),
    2. gradient clipping (optim.grad_clip),
    3. weight decay by mode (decay_params: all or matrices only):
       coupled   g += wd * w                      (torch Adam/SGD weight_decay)
       decoupled w -= lr * wd * w                 (torch AdamW, before its update)
       to_init   w -= lr * wd * (w - w_init)      (decay toward the initialization)
    4. the optimizer step, through ⊥Grad if optim.orthograd,
    5. the norm constraint: rescale all parameters to a fixed global L2 norm.
    With decoupled decay on all parameters this is exactly torch's AdamW.
    """

    def __init__(self, cfg: OptimConfig, model: torch.nn.Module):
        self.cfg = cfg
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.decayed = [p for p in self.params if cfg.decay_params == "all" or p.ndim >= 2]
        self.mode = cfg.decay_mode
        self.init = [p.detach().clone() for p in self.decayed] if self.mode == "to_init" else None
        base = build_optimizer(cfg, self.params, weight_decay=0.0)
        if cfg.orthograd:
            from grokscope.training.orthograd import OrthoGrad

            base = OrthoGrad(base)
        self.optimizer = base
        self.filter = None
        if cfg.grokfast == "ema":
            from grokscope.training.filters import GrokfastEMA

            self.filter = GrokfastEMA(self.params, alpha=cfg.grokfast_alpha, lamb=cfg.grokfast_lamb)
        elif cfg.grokfast == "ma":
            from grokscope.training.filters import GrokfastMA

            self.filter = GrokfastMA(self.params, window=cfg.grokfast_window, lamb=cfg.grokfast_lamb,
                                     filter=cfg.grokfast_filter)
        self.norm_target = None
        if cfg.norm_constraint is not None:
            self.norm_target = cfg.norm_constraint or _global_norm(self.params)

    def set_lr(self, lr: float) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def zero_grad(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)

    @torch.no_grad()
    def step(self) -> None:
        cfg = self.cfg
        if self.filter is not None:
            self.filter.step()
        if cfg.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(self.params, cfg.grad_clip)
        wd, lr = cfg.weight_decay, self.optimizer.param_groups[0]["lr"]
        if wd:
            with_grad = [p for p in self.decayed if p.grad is not None]
            if self.mode == "coupled":
                torch._foreach_add_([p.grad for p in with_grad], with_grad, alpha=wd)
            elif self.mode == "decoupled":
                torch._foreach_mul_(with_grad, 1 - lr * wd)
            else:  # to_init
                for p, p0 in zip(self.decayed, self.init):
                    if p.grad is not None:
                        p.mul_(1 - lr * wd).add_(p0, alpha=lr * wd)
        self.optimizer.step()
        if self.norm_target is not None:
            scale = self.norm_target / max(_global_norm(self.params), 1e-30)
            torch._foreach_mul_(self.params, scale)

    def state_dict(self) -> dict:
        return {"filter": self.filter.state_dict() if self.filter is not None else None,
                "init": self.init, "norm_target": self.norm_target}

    def load_state_dict(self, state: dict) -> None:
        if self.filter is not None and state.get("filter") is not None:
            self.filter.load_state_dict(state["filter"])
        if state.get("init") is not None:
            self.init = [t.to(p.device) for t, p in zip(state["init"], self.decayed)]
        self.norm_target = state.get("norm_target", self.norm_target)


def _global_norm(params: list[torch.Tensor]) -> float:
    return math.sqrt(sum(float(p.detach().double().pow(2).sum()) for p in params))
