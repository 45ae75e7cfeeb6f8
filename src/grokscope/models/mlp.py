"""MLP over concatenated learned embeddings or one-hot vectors of the two operands."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from grokscope.models.hooks import HookedModule, HookPoint
from grokscope.models.transformer import _param, activation_fn


class Hidden(HookedModule):
    """act(x @ W + b) with W of shape (d_in, d_out); hooks `hook_pre` and `hook_post`."""

    def __init__(self, d_in: int, d_out: int, act: str, bias: bool, std: float):
        super().__init__()
        self.W = _param(d_in, d_out, std=std)  # (d_in, d_out)
        self.b = _param(d_out, std=0) if bias else None
        self.act = activation_fn(act)
        self.hook_pre = HookPoint()
        self.hook_post = HookPoint()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = x @ self.W if self.b is None else torch.addmm(self.b, x, self.W)  # (batch, d_out)
        return self.hook_post(self.act(self.hook_pre(pre)))


class MLP(HookedModule):
    """forward(tokens (batch, 4)) -> logits (batch, n_classes), reading x = tokens[:, 0], y = tokens[:, 2].

    Inputs: 'embed' concatenates rows of a shared learned table W_E (n_values, d_model);
    'onehot' concatenates one-hot(x) and one-hot(y) (2 * n_values). Then n_layers hidden
    layers of width d_mlp with the activation, and a linear read-out W_U. Weights are
    N(0, init_scale²/fan_in) (fan_in = 2 for one-hot inputs: two active units).
    """

    def __init__(self, cfg, n_values: int, n_classes: int):
        super().__init__()
        self.cfg = cfg
        self.dropout_p = cfg.dropout  # mutable: dropout schedules change it during training
        self.n_values = n_values
        s = cfg.init_scale
        if cfg.mlp_input == "embed":
            self.W_E = _param(n_values, cfg.d_model, std=s)  # (n_values, d_model)
            d_in, fan_in = 2 * cfg.d_model, 2 * cfg.d_model
        else:
            self.W_E = None
            d_in, fan_in = 2 * n_values, 2
        layers = []
        for _ in range(cfg.n_layers):
            layers.append(Hidden(d_in, cfg.d_mlp, cfg.activation, cfg.bias, s / math.sqrt(fan_in)))
            d_in = fan_in = cfg.d_mlp
        self.layers = nn.ModuleList(layers)
        self.hook_input = HookPoint()
        self.W_U = _param(d_in, n_classes, std=s / math.sqrt(fan_in))  # (d_mlp, n_classes)
        self.b_U = _param(n_classes, std=0) if cfg.bias else None

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x, y = tokens[:, 0], tokens[:, 2]  # (batch,)
        if self.W_E is not None:
            h = torch.cat([self.W_E[x], self.W_E[y]], dim=-1)  # (batch, 2*d_model)
        else:
            h = torch.cat([F.one_hot(x, self.n_values), F.one_hot(y, self.n_values)], dim=-1)
            h = h.to(self.W_U.dtype)  # (batch, 2*n_values)
        h = self.hook_input(h)
        for layer in self.layers:
            h = F.dropout(layer(h), self.dropout_p, self.training)  # (batch, d_mlp)
        return h @ self.W_U if self.b_U is None else torch.addmm(self.b_U, h, self.W_U)
