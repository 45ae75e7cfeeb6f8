"""The optimizer update of K stacked models (K, ...): UpdateRule for an ensemble.

Grokfast, per-model gradient clipping, weight decay by mode, the optimizer step (adam/adamw, sgd,
rmsprop as torch computes them) and the norm constraint, each with per-model lr, weight decay and
Grokfast lambda; `export` hands one member's state to its single-run UpdateRule (checkpoints).
"""

from __future__ import annotations

from collections import deque

import torch

from grokscope.config import OptimConfig
from grokscope.training.optim import UpdateRule

__all__ = ["BatchedUpdate"]


def _view(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """(K,) -> (K, 1, ..., 1) broadcasting against a stacked tensor `like` (K, ...)."""
    return v.view(-1, *([1] * (like.ndim - 1))).to(like.dtype)


class BatchedUpdate:
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
