"""HookPoint: an identity module at every interpretable activation (TransformerLens style)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from torch import nn


class HookPoint(nn.Module):
    """Identity; forward hooks registered on it see (and may replace) the activation."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


class HookedModule(nn.Module):
    """Base class giving `hook_points()`, `hooks(...)` and `run_with_cache(...)`."""

    def hook_points(self) -> dict[str, HookPoint]:
        """All hook points by their dotted name, e.g. 'blocks.0.attn.hook_pattern'."""
        return {name: m for name, m in self.named_modules() if isinstance(m, HookPoint)}

    @contextmanager
    def hooks(self, fwd_hooks: list[tuple[str, Callable]]) -> Iterator[None]:
        """Temporarily attach `hook(activation, name) -> activation | None` to named hook points."""
        points = self.hook_points()
        handles = []
        try:
            for name, fn in fwd_hooks:
                if name not in points:
                    raise KeyError(f"unknown hook point {name!r}; have {sorted(points)}")
                handles.append(points[name].register_forward_hook(
                    lambda _m, _inp, out, fn=fn, name=name: fn(out, name)))
            yield
        finally:
            for h in handles:
                h.remove()

    def run_with_cache(self, *args, names: list[str] | None = None, detach: bool = True, **kwargs):
        """Run forward and return (output, cache) with every (or the named) hook activation."""
        cache: dict[str, torch.Tensor] = {}

        def save(act: torch.Tensor, name: str) -> None:
            cache[name] = act.detach() if detach else act

        wanted = names if names is not None else list(self.hook_points())
        with self.hooks([(n, save) for n in wanted]):
            out = self(*args, **kwargs)
        return out, cache
