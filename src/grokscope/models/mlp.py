"""MLP over token inputs (learned embeddings or one-hot vectors of the tokens it reads), dense
vectors or flattened images."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from grokscope.models.hooks import HookedModule, HookPoint
from grokscope.models.layers import Hidden, linear, param

__all__ = ["MLP", "Hidden"]


class MLP(HookedModule):
    """forward(inputs) -> logits (batch, n_classes).

    Token inputs (batch, seq_len) long: the tokens at `read_positions` (None: all; the tables'
    [x, op, y, =] read (0, 2), i.e. x and y), each in 0..n_values-1. 'embed' concatenates their
    rows of a shared learned table W_E (n_values, d_model); 'onehot' concatenates their one-hot
    vectors (n_read * n_values). Vector inputs (batch, d) are used as they are, image inputs
    (batch, C, H, W) flattened. Then n_layers hidden layers of width d_mlp with the activation, and a
    linear read-out W_U. Weights are N(0, init_scale²/fan_in) (fan_in = n_read for one-hot inputs:
    one active unit per token read), biases zero.

    `MLP(cfg, n_values=p, n_classes=p)` is the tables' MLP (tokens, reading positions 0 and 2).
    """

    def __init__(self, cfg, n_values: int | None, n_classes: int, *, input_kind: str = "tokens",
                 input_shape: tuple[int, ...] | None = None, read_positions: tuple[int, ...] | None = (0, 2)):
        super().__init__()
        self.cfg = cfg
        self.dropout_p = cfg.dropout  # mutable: dropout schedules change it during training
        self.input_kind = input_kind
        s = cfg.init_scale
        if input_kind == "tokens":
            if n_values is None:
                raise TypeError("MLP on tokens needs n_values (the vocabulary it reads)")
            if read_positions is None:
                if input_shape is None:
                    raise TypeError("MLP reading every position needs input_shape")
                read_positions = tuple(range(input_shape[0]))
            self.n_values, self.read_positions = n_values, tuple(read_positions)
            n_read = len(self.read_positions)
        else:
            self.n_values, self.read_positions, n_read = None, None, 0
        if input_kind != "tokens":  # the mlp_input choice is for token inputs only
            self.W_E = None
            d_in = fan_in = math.prod(input_shape)  # d, or C*H*W flattened
        elif cfg.mlp_input == "embed":
            self.W_E = param(n_values, cfg.d_model, std=s)  # (n_values, d_model)
            d_in, fan_in = n_read * cfg.d_model, n_read * cfg.d_model
        else:
            self.W_E = None
            d_in, fan_in = n_read * n_values, n_read
        layers = []
        for _ in range(cfg.n_layers):
            layers.append(Hidden(d_in, cfg.d_mlp, cfg.activation, cfg.bias, s / math.sqrt(fan_in)))
            d_in = fan_in = cfg.d_mlp
        self.layers = nn.ModuleList(layers)
        self.hook_input = HookPoint()
        self.W_U = param(d_in, n_classes, std=s / math.sqrt(fan_in))  # (d_mlp, n_classes)
        self.b_U = param(n_classes, std=0) if cfg.bias else None  # (n_classes,)

    def features(self, inputs: torch.Tensor) -> torch.Tensor:
        """The input vector of the first layer: (batch, d_in)."""
        if self.input_kind != "tokens":
            return inputs.flatten(1).to(self.W_U.dtype)  # (batch, d) or (batch, C*H*W)
        cols = [inputs[:, i] for i in self.read_positions]  # n_read x (batch,)
        if self.W_E is not None:
            return torch.cat([self.W_E[c] for c in cols], dim=-1)  # (batch, n_read*d_model)
        h = torch.cat([F.one_hot(c, self.n_values) for c in cols], dim=-1)  # (batch, n_read*n_values)
        return h.to(self.W_U.dtype)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """inputs (batch, *input_shape) -> logits (batch, n_classes)."""
        h = self.hook_input(self.features(inputs))
        for layer in self.layers:
            h = F.dropout(layer(h), self.dropout_p, self.training)  # (batch, d_mlp)
        return linear(h, self.W_U, self.b_U)  # (batch, n_classes)
