"""Convolutional network for image inputs (batch, C, H, W): conv stages, then an MLP head."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from grokscope.models.hooks import HookedModule, HookPoint
from grokscope.models.layers import Hidden, activation_fn, linear, param, scale_parameters

__all__ = ["CNN", "ConvLayer"]


class ConvLayer(HookedModule):
    """conv (kernel_size, stride 1, 'same' zero padding) -> activation -> 2x2 pooling.

    Hooks: `hook_pre` (conv output) and `hook_post` (after the activation), both (batch, c_out, H, W).
    Pooling halves each dimension (floor) that is more than 1 pixel; a 1-pixel dimension is not
    pooled, and a 1x1 map not at all. `out_hw` is the output map size.
    """

    def __init__(self, c_in: int, c_out: int, kernel_size: int, act: str, bias: bool, pool: str,
                 in_hw: tuple[int, int]):
        super().__init__()
        k = kernel_size
        # 'same' padding: (k-1)//2 before and k//2 after each dimension (asymmetric for an even k,
        # padded by hand so that no padding='same' copy warning is raised); F.pad order (left, right,
        # top, bottom)
        self.pad = None if k % 2 else ((k - 1) // 2, k // 2, (k - 1) // 2, k // 2)
        self.conv = nn.Conv2d(c_in, c_out, k, padding=k // 2 if k % 2 else 0, bias=bias)
        self.act = activation_fn(act)
        H, W = in_hw
        kernel = (2 if H > 1 else 1, 2 if W > 1 else 1)
        self.pool = None if pool == "none" or kernel == (1, 1) else pool
        self.pool_kernel = kernel
        self.out_hw = (H // kernel[0], W // kernel[1]) if self.pool else (H, W)
        self.hook_pre = HookPoint()
        self.hook_post = HookPoint()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, c_in, H, W) -> (batch, c_out, *out_hw)."""
        if self.pad is not None:
            x = F.pad(x, self.pad)  # (batch, c_in, H + k - 1, W + k - 1)
        h = self.hook_post(self.act(self.hook_pre(self.conv(x))))  # (batch, c_out, H, W)
        if self.pool == "max":
            h = F.max_pool2d(h, self.pool_kernel)  # (batch, c_out, H // 2, W // 2)
        elif self.pool == "avg":
            h = F.avg_pool2d(h, self.pool_kernel)
        return h


class CNN(HookedModule):
    """forward(images (batch, C, H, W)) -> logits (batch, n_classes).

    One ConvLayer per entry of cfg.cnn_channels (`convs.i`), the map flattened (`hook_features`,
    (batch, c_last * H' * W')), n_layers hidden layers of width d_mlp (`layers.i`, dropout after each)
    and a linear read-out W_U. Init: PyTorch's default for the convolutions, N(0, 1/fan_in) for the
    head's weights, zero head biases; then every parameter times init_scale.
    """

    def __init__(self, cfg, input_shape: tuple[int, int, int], n_classes: int):
        super().__init__()
        self.cfg = cfg
        self.dropout_p = cfg.dropout  # mutable: dropout schedules change it during training
        c, H, W = input_shape
        convs = []
        for c_out in cfg.cnn_channels:
            conv = ConvLayer(c, c_out, cfg.kernel_size, cfg.activation, cfg.bias, cfg.pool, (H, W))
            convs.append(conv)
            c, (H, W) = c_out, conv.out_hw
        self.convs = nn.ModuleList(convs)
        self.hook_features = HookPoint()
        d_in = c * H * W
        layers = []
        for _ in range(cfg.n_layers):
            layers.append(Hidden(d_in, cfg.d_mlp, cfg.activation, cfg.bias, 1 / math.sqrt(d_in)))
            d_in = cfg.d_mlp
        self.layers = nn.ModuleList(layers)
        self.W_U = param(d_in, n_classes, std=1 / math.sqrt(d_in))  # (d_in, n_classes)
        self.b_U = param(n_classes, std=0) if cfg.bias else None  # (n_classes,)
        scale_parameters(self, cfg.init_scale)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """images (batch, C, H, W) -> logits (batch, n_classes)."""
        h = images.to(self.W_U.dtype)
        for conv in self.convs:
            h = conv(h)  # (batch, c_i, H_i, W_i)
        h = self.hook_features(h.flatten(1))  # (batch, c_last * H' * W')
        for layer in self.layers:
            h = F.dropout(layer(h), self.dropout_p, self.training)  # (batch, d_mlp)
        return linear(h, self.W_U, self.b_U)  # (batch, n_classes)
