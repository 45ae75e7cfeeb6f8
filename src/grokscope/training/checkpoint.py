"""Checkpoints: one self-describing dict per file, loadable with torch.load(weights_only=True)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from grokscope.tracking.rundir import FORMAT_VERSION, atomic_torch_save


def save_checkpoint(path: Path, *, step: int, model: torch.nn.Module,
                    optimizer: torch.optim.Optimizer | None, config: dict,
                    extra: dict[str, Any] | None = None) -> None:
    """Atomically write model (and optimizer) state, step, config and any extra state (RNGs, sampler)."""
    state = {
        "format_version": FORMAT_VERSION,
        "step": step,
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "config": config,
        "extra": extra or {},
    }
    atomic_torch_save(path, state)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """Read a checkpoint without executing code (weights_only=True)."""
    return torch.load(path, map_location=map_location, weights_only=True)
