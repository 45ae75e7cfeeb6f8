"""Representation geometry: PCA of embeddings, Fourier circles, and Liu et al.'s RQI."""

from __future__ import annotations

import math

import torch


def pca(E: torch.Tensor, n_components: int = 6) -> tuple[torch.Tensor, torch.Tensor]:
    """Principal components of the rows of E (n, d): (projections (n, c), explained variance ratios (c,))."""
    X = E.detach().to(torch.float64).cpu()
    X = X - X.mean(dim=0, keepdim=True)
    U, S, _ = torch.linalg.svd(X, full_matrices=False)
    c = min(n_components, S.numel())
    var = S.pow(2)
    ratio = var / var.sum().clamp_min(1e-300)
    return U[:, :c] * S[:c], ratio[:c]


def frequency_plane(E: torch.Tensor, p: int, k: int) -> tuple[torch.Tensor, float]:
    """Embeddings E (p, d) projected onto the plane their cos/sin(w_k x) components span.

    Returns (coordinates (p, 2), fraction of E's centred variance in that plane). For a Fourier
    embedding the p points lie on an ellipse (a circle up to scaling), ordered by w_k x mod 2 pi.
    """
    X = E.detach().to(torch.float64).cpu()
    X = X - X.mean(dim=0, keepdim=True)
    v = torch.arange(p, dtype=torch.float64)
    w = 2 * math.pi * k / p
    B = torch.stack([torch.cos(w * v), torch.sin(w * v)])  # (2, p)
    B = B / B.norm(dim=1, keepdim=True)
    dirs = B @ X  # (2, d): the directions in embedding space
    Q, _ = torch.linalg.qr(dirs.T)  # (d, 2) orthonormal basis of the plane
    coords = X @ Q  # (p, 2)
    total = float(X.pow(2).sum())
    # the variance share is that of the cos/sin(w_k x) components over the values (B has orthonormal
    # rows); it does not depend on Q, which is arbitrary when frequency k is absent from E
    return coords, (float(dirs.pow(2).sum()) / total if total else 0.0)


def _standardize(E: torch.Tensor) -> torch.Tensor:
    X = E.detach().to(torch.float64).cpu()
    std = X.std(dim=0, keepdim=True)
    return (X - X.mean(dim=0, keepdim=True)) / torch.where(std > 0, std, torch.ones_like(std))


def rqi(E: torch.Tensor, *, threshold: float = 0.01, modulus: int | None = None) -> float:
    """Representation quality index (Liu et al. 2022).

    Over all parallelograms: pairs of distinct unordered pairs {i, j} != {m, n} with i + j = m + n
    (or i + j = m + n mod `modulus`), the fraction whose per-dimension standardized embeddings
    satisfy mean((E_i + E_j - E_m - E_n)^2) < threshold. E: (n, d), row i = embedding of value i.
    """
    X = _standardize(E)
    n, d = X.shape
    i, j = torch.triu_indices(n, n)  # unordered pairs i <= j
    s = i + j if modulus is None else (i + j) % modulus
    sums = (X[i] + X[j]).to(torch.float32)  # (n_pairs, d)
    # group the pairs by their sum, padded into (groups, max group size, d), one batched distance
    values, group, counts = torch.unique(s, return_inverse=True, return_counts=True)
    order = torch.argsort(group, stable=True)
    starts = torch.cumsum(counts, 0) - counts
    slot = torch.arange(order.numel()) - starts[group[order]]  # position inside its group
    G, M = values.numel(), int(counts.max())
    padded = torch.zeros(G, M, d)
    padded[group[order], slot] = sums[order]
    dist = torch.cdist(padded, padded).pow(2) / d  # (G, M, M)
    iu = torch.triu_indices(M, M, offset=1)
    valid = iu[1][None, :] < counts[:, None]  # (G, n_upper): both slots are real pairs
    vals = dist[:, iu[0], iu[1]]
    total = int(valid.sum())
    good = int(((vals < threshold) & valid).sum())
    return good / total if total else float("nan")
