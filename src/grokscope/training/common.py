"""Pieces the training loop is built from: device, output directory, sampler, evaluation."""

from __future__ import annotations

import math
import os
from datetime import datetime
from pathlib import Path

import torch

from grokscope.config import RunConfig
from grokscope.errors import ConfigError
from grokscope.tracking.writer import check_out, versions  # noqa: F401  (re-exported)
from grokscope.training.losses import loss_fn

_EVAL_CHUNK = 65_536
_BATCH_SEED_OFFSET = 0x9E3779B9  # keeps the batch-order stream apart from the init stream


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("train.device: 'cuda' requested but no CUDA device is available; use auto or cpu")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ConfigError("train.device: 'mps' requested but MPS is not available; use auto or cpu")
    return torch.device(name)


def default_out(cfg: RunConfig, root: str | os.PathLike = "runs") -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    base = Path(root) / f"{stamp}-{cfg.name or 'run'}"
    path, i = base, 1
    while path.exists():
        path, i = Path(f"{base}-{i}"), i + 1
    return path


class Sampler:
    """Seeded minibatches: successive slices of per-epoch permutations of the training set."""

    def __init__(self, n: int, batch_size: int | None, seed: int):
        self.n = n
        self.batch = n if batch_size is None else min(batch_size, n)
        self.gen = torch.Generator().manual_seed(seed + _BATCH_SEED_OFFSET)
        self.perm = torch.arange(n)
        self.pos = n  # forces a fresh permutation on the first draw

    def next(self) -> torch.Tensor | None:
        """Indices into the training set, or None for the full batch."""
        if self.batch >= self.n:
            return None
        if self.pos + self.batch > self.n:
            self.perm = torch.randperm(self.n, generator=self.gen)
            self.pos = 0
        idx = self.perm[self.pos:self.pos + self.batch]
        self.pos += self.batch
        return idx

    def state(self) -> dict:
        return {"gen": self.gen.get_state(), "perm": self.perm.clone(), "pos": self.pos}

    def load_state(self, state: dict) -> None:
        # checkpoints load onto the run's device; generator states and indices live on the CPU
        self.gen.set_state(state["gen"].cpu())
        self.perm, self.pos = state["perm"].cpu(), state["pos"]


@torch.no_grad()
def evaluate_stats(model: torch.nn.Module, inputs: torch.Tensor, targets: torch.Tensor,
                   loss: str = "ce", dtype: str = "float64", *, output: str = "classes",
                   mask: torch.Tensor | None = None, tolerance: float = 0.5) -> dict:
    """{"loss", "acc", "collapse"} of `model` on inputs (n, ...) with targets, in chunks: mean loss,
    accuracy (see losses.per_example_correct for regression and token outputs), and the
    softmax-collapse fraction (rows whose sum exp(z - max z) is exactly 1 in `dtype`; Prieto et al.
    2025; 0 for regression)."""
    from grokscope.training.losses import per_example_correct, per_example_loss, softmax_collapse_fraction

    was_training = model.training
    model.eval()
    total_loss, correct, collapsed, n = 0.0, 0, 0.0, inputs.shape[0]
    for i in range(0, n, _EVAL_CHUNK):
        out = model(inputs[i:i + _EVAL_CHUNK])  # (chunk, classes) | (chunk, D) | (chunk, T, classes)
        lab = targets[i:i + _EVAL_CHUNK]
        if output == "classes":
            total_loss += loss_fn(out, lab, loss, dtype).item() * lab.shape[0]
            correct += (out.argmax(-1) == lab).sum().item()
        else:
            m = None if mask is None else mask[i:i + _EVAL_CHUNK]
            total_loss += per_example_loss(out, lab, loss, dtype, output, m).sum().item()
            correct += per_example_correct(out, lab, output, m, tolerance).sum().item()
        if output != "regression":
            collapsed += softmax_collapse_fraction(out, dtype) * lab.shape[0]
    model.train(was_training)
    n = max(n, 1)
    return {"loss": total_loss / n, "acc": correct / n, "collapse": collapsed / n}


def evaluate(model: torch.nn.Module, inputs: torch.Tensor, targets: torch.Tensor,
             loss: str = "ce", dtype: str = "float64", **kwargs) -> tuple[float, float]:
    """(mean loss, accuracy) of `model` on inputs (n, ...) with targets (n, ...), in chunks."""
    stats = evaluate_stats(model, inputs, targets, loss, dtype, **kwargs)
    return stats["loss"], stats["acc"]


def weight_norm(model: torch.nn.Module) -> float:
    """Global L2 norm of all parameters."""
    with torch.no_grad():
        return math.sqrt(sum(p.double().pow(2).sum().item() for p in model.parameters()))
