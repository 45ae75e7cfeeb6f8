"""Progress measures of Nanda et al. 2023 on the full (x, y) grid of x+y or x-y mod p.

For key frequencies K the logits L (p*p inputs, p classes) are split along the input-space
directions u = cos(w_k(x + s*y)) and sin(w_k(x + s*y)) (unit norm over the grid, s = +1 for x+y,
-1 for x-y): P L = sum_{k in K} [u_cos u_cos^T L + u_sin u_sin^T L].
  restricted logits: P L + mean over inputs of (L - P L)   (cross-entropy on the test points)
  excluded logits:   L - P L                               (cross-entropy on the train points)
Cross-entropy and accuracy use the true labels, in float64.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

SIGNS = {"x+y": 1, "x-y": -1}


def directions(p: int, freqs: list[int], sign: int = 1) -> torch.Tensor:
    """Unit vectors (2 * len(freqs), p * p) cos/sin(w_k(x + sign*y)) over the grid, x outer."""
    v = torch.arange(p, dtype=torch.float64)
    s = (v[:, None] + sign * v[None, :]).reshape(-1)  # (p*p,)
    rows = []
    for k in freqs:
        w = 2 * math.pi * k / p
        rows += [torch.cos(w * s), torch.sin(w * s)]
    if not rows:
        return torch.zeros(0, p * p, dtype=torch.float64)
    U = torch.stack(rows)
    return U / U.norm(dim=1, keepdim=True)


def _ce_acc(logits: torch.Tensor, labels: torch.Tensor) -> tuple[float, float]:
    if labels.numel() == 0:
        return float("nan"), float("nan")
    loss = F.cross_entropy(logits, labels).item()
    acc = (logits.argmax(dim=1) == labels).double().mean().item()
    return loss, acc


def progress_measures(
    logits: torch.Tensor,
    labels: torch.Tensor,
    train_mask: torch.Tensor,
    p: int,
    freqs: list[int],
    sign: int = 1,
) -> dict:
    """Restricted / excluded loss and accuracy, and the full-model losses, from grid logits.

    logits: (p*p, p) for inputs in x-outer order; labels: (p*p,) true answers; train_mask (p*p,) bool.
    """
    L = logits.detach().to(torch.float64).cpu()
    labels, train_mask = labels.cpu(), train_mask.cpu()
    U = directions(p, freqs, sign)  # (2K, p*p)
    PL = U.T @ (U @ L)  # (p*p, p)
    restricted = PL + (L - PL).mean(dim=0, keepdim=True)
    excluded = L - PL
    test_mask = ~train_mask
    out = {}
    out["train_loss"], out["train_acc"] = _ce_acc(L[train_mask], labels[train_mask])
    out["test_loss"], out["test_acc"] = _ce_acc(L[test_mask], labels[test_mask])
    out["restricted_loss"], out["restricted_acc"] = _ce_acc(restricted[test_mask], labels[test_mask])
    out["excluded_loss"], out["excluded_acc"] = _ce_acc(excluded[train_mask], labels[train_mask])
    r = out["restricted_loss"]
    out["test_restricted_ratio"] = out["test_loss"] / r if r and math.isfinite(r) else float("nan")
    return out


def sum_squared_weights(state: dict[str, torch.Tensor]) -> float:
    """Total sum of squared parameters of a state dict (floating tensors only)."""
    return float(
        sum(t.detach().to(torch.float64).pow(2).sum() for t in state.values() if torch.is_floating_point(t))
    )
