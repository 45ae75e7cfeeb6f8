"""Grokfast gradient filters (Lee et al. 2024, "Grokfast: Accelerated Grokking by Amplifying Slow
Gradients"): add a low-pass-filtered copy of the gradient back onto it, amplifying the slow
component that drives generalisation. Drop-in for any PyTorch loop, between backward and step::

    filt = GrokfastEMA(model.parameters(), alpha=0.98, lamb=2.0)
    loss.backward(); filt.step(); opt.step()

Per parameter tensor with gradient g_t (same shape as the parameter):

    EMA:  ema_1 = g_1,  ema_t = alpha * ema_{t-1} + (1 - alpha) * g_t,   g_t <- g_t + lamb * ema_t
    MA:   q_t = last `window` gradients (g_t included),
          g_t <- g_t + lamb * mean(q_t)  (or sum(q_t));  with warmup, only once q_t is full

Parameters whose ``.grad`` is None at a step are skipped and their state is left untouched. State is
indexed by position in the ``params`` list, and ``state_dict()`` holds only tensors, numbers,
strings, lists and None, so it survives ``torch.save`` / ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable
from typing import Any

import torch

__all__ = ["GrokfastEMA", "GrokfastMA"]


def _param_list(params: Iterable[torch.Tensor]) -> list[torch.Tensor]:
    if isinstance(params, torch.Tensor):
        params = [params]
    out = list(params)
    for i, p in enumerate(out):
        if not isinstance(p, torch.Tensor):
            raise TypeError(f"params must be an iterable of tensors; item {i} is {type(p).__name__}")
    return out


def _check_finite(name: str, value: float) -> float:
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value}")
    return float(value)


def _check_state(kind: str, sd: dict[str, Any], key: str, params: list[torch.Tensor]) -> list:
    if sd.get("kind") != kind:
        raise ValueError(f"not a {kind} state dict (kind={sd.get('kind')!r})")
    entries = sd[key]
    if len(entries) != len(params):
        raise ValueError(f"state dict is for {len(entries)} parameter(s), this filter has {len(params)}")
    return entries


def _restore(t: torch.Tensor, p: torch.Tensor, i: int) -> torch.Tensor:
    """A private copy of saved tensor ``t`` on ``p``'s device and dtype, shape-checked."""
    if t.shape != p.shape:
        raise ValueError(f"parameter {i}: saved shape {tuple(t.shape)} != parameter shape {tuple(p.shape)}")
    return t.to(device=p.device, dtype=p.dtype, copy=True)


class GrokfastEMA:
    """Grokfast-EMA: g <- g + lamb * ema, ema an exponential moving average of past gradients.

    Args:
        params: iterable of tensors (e.g. ``model.parameters()``); materialized to a list.
        alpha: EMA momentum in [0, 1); the filter's time constant is ~1 / (1 - alpha) steps.
        lamb: amplification factor of the slow component.
    On a parameter's first step ema = g, so the gradient becomes (1 + lamb) * g.
    """

    def __init__(self, params: Iterable[torch.Tensor], alpha: float = 0.98, lamb: float = 2.0) -> None:
        if not 0.0 <= alpha < 1.0:
            raise ValueError(f"alpha must be in [0, 1), got {alpha}")
        self.params = _param_list(params)
        self.alpha = float(alpha)
        self.lamb = _check_finite("lamb", lamb)
        self._ema: list[torch.Tensor | None] = [None] * len(self.params)

    @torch.no_grad()
    def step(self) -> None:
        """Filter every ``p.grad`` in place (call after backward, before the optimizer step)."""
        for i, p in enumerate(self.params):
            g = p.grad
            if g is None:
                continue
            ema = self._ema[i]
            if ema is None:
                ema = self._ema[i] = g.detach().clone()
            else:
                ema.mul_(self.alpha).add_(g, alpha=1.0 - self.alpha)
            g.add_(ema, alpha=self.lamb)

    def reset(self) -> None:
        """Forget all filter state (the next step behaves like the first)."""
        self._ema = [None] * len(self.params)

    def state_dict(self) -> dict[str, Any]:
        """{'kind', 'alpha', 'lamb', 'ema': list (one per param) of tensor copies or None}."""
        ema = [None if e is None else e.detach().clone() for e in self._ema]
        return {"kind": "GrokfastEMA", "alpha": self.alpha, "lamb": self.lamb, "ema": ema}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore state and hyper-parameters; tensors are copied to each parameter's device/dtype."""
        entries = _check_state("GrokfastEMA", state_dict, "ema", self.params)
        alpha = float(state_dict["alpha"])
        if not 0.0 <= alpha < 1.0:
            raise ValueError(f"alpha must be in [0, 1), got {alpha}")
        lamb = _check_finite("lamb", state_dict["lamb"])
        self._ema = [None if e is None else _restore(e, p, i)
                     for i, (e, p) in enumerate(zip(entries, self.params))]
        self.alpha, self.lamb = alpha, lamb

    def __repr__(self) -> str:
        return f"GrokfastEMA(n_params={len(self.params)}, alpha={self.alpha}, lamb={self.lamb})"


class GrokfastMA:
    """Grokfast-MA: g <- g + lamb * mean (or sum) of the last ``window`` gradients, g included.

    Args:
        params: iterable of tensors; materialized to a list.
        window: number of past gradients kept per parameter (>= 1); memory is window x params.
        lamb: amplification factor.
        filter: "mean" (sum / number currently held) or "sum".
        warmup: if True, gradients pass unchanged until ``window`` gradients have been seen.
    """

    def __init__(self, params: Iterable[torch.Tensor], window: int = 100, lamb: float = 5.0,
                 filter: str = "mean", warmup: bool = True) -> None:
        if isinstance(window, bool) or not isinstance(window, int) or window < 1:
            raise ValueError(f"window must be an integer >= 1, got {window!r}")
        if filter not in ("mean", "sum"):
            raise ValueError(f"filter must be 'mean' or 'sum', got {filter!r}")
        self.params = _param_list(params)
        self.window = window
        self.lamb = _check_finite("lamb", lamb)
        self.filter = filter
        self.warmup = bool(warmup)
        self._grads: list[deque[torch.Tensor]] = [deque(maxlen=window) for _ in self.params]

    @torch.no_grad()
    def step(self) -> None:
        """Filter every ``p.grad`` in place (call after backward, before the optimizer step)."""
        for p, q in zip(self.params, self._grads):
            g = p.grad
            if g is None:
                continue
            q.append(g.detach().clone())  # evicts the oldest once len == window
            if self.warmup and len(q) < self.window:
                continue
            total = q[0].clone()
            for h in list(q)[1:]:
                total.add_(h)  # exact re-summation each step: no drift from a running sum
            if self.filter == "mean":
                total.div_(len(q))
            g.add_(total, alpha=self.lamb)

    def reset(self) -> None:
        """Forget all stored gradients."""
        self._grads = [deque(maxlen=self.window) for _ in self.params]

    def state_dict(self) -> dict[str, Any]:
        """{'kind', 'window', 'lamb', 'filter', 'warmup', 'grads': per param a list, oldest first}.

        The stored gradient tensors are never modified in place, so they are not copied."""
        return {"kind": "GrokfastMA", "window": self.window, "lamb": self.lamb, "filter": self.filter,
                "warmup": self.warmup, "grads": [list(q) for q in self._grads]}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore state and hyper-parameters; tensors are copied to each parameter's device/dtype."""
        entries = _check_state("GrokfastMA", state_dict, "grads", self.params)
        fresh = GrokfastMA(self.params, int(state_dict["window"]), state_dict["lamb"],
                           state_dict["filter"], state_dict["warmup"])  # validates the values
        for i, (saved, p, q) in enumerate(zip(entries, self.params, fresh._grads)):
            if len(saved) > fresh.window:
                raise ValueError(f"parameter {i}: {len(saved)} saved gradients > window {fresh.window}")
            q.extend(_restore(t, p, i) for t in saved)
        self.__dict__.update(fresh.__dict__)

    def __repr__(self) -> str:
        return (f"GrokfastMA(n_params={len(self.params)}, window={self.window}, lamb={self.lamb}, "
                f"filter={self.filter!r}, warmup={self.warmup})")
