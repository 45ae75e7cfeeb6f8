"""Pieces shared by every architecture: parameter init, activations, LayerNorm, the dense hidden layer."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from grokscope.models.hooks import HookedModule, HookPoint

__all__ = ["ACTIVATIONS", "Hidden", "LayerNorm", "activation_fn", "eval_mode", "linear", "param",
           "scale_parameters"]

ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "relu": F.relu,
    "gelu": F.gelu,
    "quadratic": lambda x: x * x,
}


def activation_fn(name: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """The nonlinearity `name` (relu, gelu or quadratic: x**2)."""
    return ACTIVATIONS[name]


def param(*shape: int, std: float) -> nn.Parameter:
    """A parameter of `shape` drawn N(0, std²) from the global RNG, or zeros (no RNG draw) when std is 0."""
    return nn.Parameter(torch.randn(*shape) * std if std > 0 else torch.zeros(*shape))


def linear(x: torch.Tensor, W: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
    """x (batch, d_in) @ W (d_in, d_out) (+ b (d_out,)) -> (batch, d_out), bias fused with addmm."""
    return x @ W if b is None else torch.addmm(b, x, W)


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[None]:
    """`model` in eval mode inside the block; its previous mode restored after it (errors included)."""
    was = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was)


@torch.no_grad()
def scale_parameters(module: nn.Module, scale: float) -> None:
    """Multiply every parameter of `module` by `scale` in place (Omnigrok's alpha on top of an init)."""
    if scale != 1.0:
        for p in module.parameters():
            p.mul_(scale)


class LayerNorm(nn.Module):
    """LayerNorm over the last dimension with TransformerLens parameter names `w`, `b`."""

    def __init__(self, d: int, eps: float = 1e-5):
        super().__init__()
        self.w = nn.Parameter(torch.ones(d))  # (d,)
        self.b = nn.Parameter(torch.zeros(d))  # (d,)
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x, x.shape[-1:], self.w, self.b, self.eps)  # (..., d)


class Hidden(HookedModule):
    """act(x @ W + b), W (d_in, d_out) drawn N(0, std²), b zero; hooks `hook_pre` and `hook_post`."""

    def __init__(self, d_in: int, d_out: int, act: str, bias: bool, std: float):
        super().__init__()
        self.W = param(d_in, d_out, std=std)  # (d_in, d_out)
        self.b = param(d_out, std=0) if bias else None  # (d_out,)
        self.act = activation_fn(act)
        self.hook_pre = HookPoint()
        self.hook_post = HookPoint()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, d_in) -> (batch, d_out)."""
        return self.hook_post(self.act(self.hook_pre(linear(x, self.W, self.b))))
