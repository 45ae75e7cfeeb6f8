"""Losses and accuracy on the answer logits."""

from __future__ import annotations

import torch
import torch.nn.functional as F

_DTYPES = {"float32": torch.float32, "float64": torch.float64}


def loss_fn(logits: torch.Tensor, labels: torch.Tensor, kind: str = "ce",
            dtype: str = "float64") -> torch.Tensor:
    """Mean loss over the batch. logits (batch, classes), labels (batch,) long.

    'ce': cross-entropy computed in `dtype` (float64 avoids float32 softmax underflow on confident
    logits). 'mse': mean squared error against one-hot targets, averaged over batch and classes.
    """
    z = logits.to(_DTYPES[dtype])
    if kind == "ce":
        return F.cross_entropy(z, labels)
    target = F.one_hot(labels, z.shape[-1]).to(z.dtype)  # (batch, classes)
    return F.mse_loss(z, target)


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    return (logits.argmax(dim=-1) == labels).float().mean().item()
