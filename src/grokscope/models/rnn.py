"""LSTM / GRU over token sequences, read out at the answer position or at every position."""

from __future__ import annotations

import math

import torch
from torch import nn

from grokscope.models.hooks import HookedModule, HookPoint
from grokscope.models.layers import linear, param, scale_parameters

__all__ = ["RNN"]


class RNN(HookedModule):
    """forward(tokens (batch, pos)) -> logits (batch, n_classes) at `answer_position`, or
    (batch, pos, n_classes) at every position (output 'tokens', or all_positions=True).

    Embedding W_E (d_vocab, d_model) (`hook_embed`, (batch, pos, d_model)), `cell` n_layers stacked
    torch.nn.LSTM or GRU layers of hidden size d_model (batch_first; dropout dropout_p between
    layers), `hook_rnn_out` (batch, pos, d_model) the top layer's outputs, and a linear read-out W_U.
    Init: N(0, 1) embeddings (nn.Embedding's default), PyTorch's default for the recurrent layers,
    N(0, 1/d_model) read-out and zero read-out bias; then every parameter times init_scale.
    """

    def __init__(self, cfg, d_vocab: int, n_classes: int, *, answer_position: int = -1,
                 output: str = "classes"):
        super().__init__()
        self.cfg = cfg
        self.answer_position, self.output = answer_position, output
        d = cfg.d_model
        self.W_E = nn.Parameter(torch.randn(d_vocab, d))  # (d_vocab, d_model)
        cell = {"lstm": nn.LSTM, "gru": nn.GRU}[cfg.arch]
        # inter-layer dropout only exists with >= 2 layers (torch warns about it otherwise)
        self.cell = cell(d, d, num_layers=cfg.n_layers, bias=cfg.bias, batch_first=True,
                         dropout=cfg.dropout if cfg.n_layers > 1 else 0.0)
        self.W_U = param(d, n_classes, std=1 / math.sqrt(d))  # (d_model, n_classes)
        self.b_U = param(n_classes, std=0) if cfg.bias else None  # (n_classes,)
        self.hook_embed = HookPoint()
        self.hook_rnn_out = HookPoint()
        self._dropout_p = cfg.dropout
        scale_parameters(self, cfg.init_scale)

    @property
    def dropout_p(self) -> float:
        """Dropout between the stacked layers; setting it (dropout schedules) updates the cell."""
        return self._dropout_p

    @dropout_p.setter
    def dropout_p(self, p: float) -> None:
        self._dropout_p = p
        self.cell.dropout = float(p) if self.cell.num_layers > 1 else 0.0

    def forward(self, tokens: torch.Tensor, all_positions: bool = False) -> torch.Tensor:
        """tokens (batch, pos) -> logits (batch, n_classes), or (batch, pos, n_classes)."""
        h = self.hook_embed(self.W_E[tokens])  # (batch, pos, d_model)
        out, _ = self.cell(h)  # (batch, pos, d_model)
        out = self.hook_rnn_out(out)
        if all_positions or self.output == "tokens":
            logits = out @ self.W_U  # (batch, pos, n_classes)
            return logits if self.b_U is None else logits + self.b_U
        return linear(out[:, self.answer_position], self.W_U, self.b_U)  # (batch, n_classes)
