"""Read what analysis needs out of a grokscope model: embeddings, unembeddings, grid logits, neurons."""

from __future__ import annotations

import torch
from torch import nn

from grokscope.models import MLP, Transformer
from grokscope.tasks import Task


def embeddings(model: nn.Module, n_values: int) -> dict[str, torch.Tensor]:
    """Input representations of the operand values, rows indexed by value: {'x': (n, d), 'y': (n, d)}.

    Transformer and embedding MLP: both operands share W_E[:n_values]. One-hot MLP: the first
    layer's rows for the x block and for the y block (the weights each value switches on).
    """
    if isinstance(model, Transformer):
        E = model.embed.W_E[:n_values]
        return {"x": E, "y": E}
    if isinstance(model, MLP):
        if model.W_E is not None:
            return {"x": model.W_E, "y": model.W_E}
        W = model.layers[0].W  # (2 n, d_mlp)
        return {"x": W[:n_values], "y": W[n_values : 2 * n_values]}
    raise TypeError(f"unsupported model {type(model).__name__}")


def unembedding(model: nn.Module) -> torch.Tensor:
    """Read-out weights as (n_classes, d): row c is what produces class c's logit."""
    return model.unembed.W_U.T if isinstance(model, Transformer) else model.W_U.T


def neuron_hook(model: nn.Module) -> str:
    """Hook with the neurons analysed: the last MLP block's output (MLP: the first hidden layer's)."""
    if isinstance(model, Transformer):
        return f"blocks.{len(model.blocks) - 1}.mlp.hook_post"
    return "layers.0.hook_post"


@torch.no_grad()
def run_table(
    model: nn.Module, task: Task, *, neurons: bool = True, batch: int = 8192
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Logits (N, n_classes) on every row of the task table and, optionally, neuron activations (N, n)."""
    model.eval()
    device = next(model.parameters()).device
    tokens = task.tokens().to(device)
    logits, acts = [], []
    name = neuron_hook(model)
    for start in range(0, tokens.shape[0], batch):
        chunk = tokens[start : start + batch]
        if neurons:
            out, cache = model.run_with_cache(chunk, names=[name])
            a = cache[name]
            acts.append(a[:, -1] if a.dim() == 3 else a)  # transformer: (batch, pos, n) -> answer position
        else:
            out = model(chunk)
        logits.append(out)
    return torch.cat(logits).cpu(), (torch.cat(acts).cpu() if neurons else None)


def grid_index(task: Task) -> torch.Tensor:
    """(n_values, n_values) long: table row of the pair (x, y), or -1 where the pair is not in the table."""
    n = task.n_values
    grid = torch.full((n, n), -1, dtype=torch.long)
    grid[task.x, task.y] = torch.arange(task.x.numel())
    return grid


def error_map(logits: torch.Tensor, task: Task) -> dict[str, torch.Tensor]:
    """(n_values, n_values) grids: 'correct' 1/0 (-1 where no pair), 'train' True for training pairs."""
    grid = grid_index(task)
    ok = (logits.argmax(dim=1) == task.z).long()
    correct = torch.where(grid >= 0, ok[grid.clamp_min(0)], torch.full_like(grid, -1))
    train = (grid >= 0) & task.train_mask[grid.clamp_min(0)]
    return {"correct": correct, "train": train}


@torch.no_grad()
def attention_to_positions(model: nn.Module, task: Task, layer: int = 0) -> torch.Tensor | None:
    """Mean attention of the answer position to each input position per head: (heads, pos). None for MLPs."""
    if not isinstance(model, Transformer):
        return None
    model.eval()
    device = next(model.parameters()).device
    name = f"blocks.{layer}.attn.hook_pattern"
    _, cache = model.run_with_cache(task.tokens().to(device), names=[name])
    pattern = cache[name]  # (batch, head, q_pos, pos)
    return pattern[:, :, -1].mean(dim=0).cpu()
