"""Gromov (2023)'s analytic solution of modular addition by a one-hot MLP with x^2 activation.

Neuron k has a frequency s_k in 1..(p-1)//2 and two phases; with w = 2 pi s_k / p,
  W1[x, k] = cos(w x + phi1_k),  W1[p + y, k] = cos(w y + phi2_k),  W2[k, q] = cos(-w q - phi1_k - phi2_k).
Squaring (a + b) gives the cross term 2 a b = cos(w(x+y) + phi1 + phi2) + cos(w(x-y) + phi1 - phi2); W2
adds the first coherently at q = x + y mod p and the rest cancel on average over the phases, so the
logits are ~ (N_s / 2) sum_s cos(w_s(x + y - q)) plus noise that shrinks as the width grows.
"""

from __future__ import annotations

import math

import torch

from grokscope.config import ModelConfig
from grokscope.models import MLP


def gromov_mlp(p: int, n_neurons: int, *, freqs: list[int] | None = None, seed: int = 0) -> MLP:
    """A grokscope one-hot MLP (x^2 activation, no bias) with Gromov's analytic weights for x+y mod p.

    Neuron frequencies are drawn uniformly from `freqs` (default: all 1..(p-1)//2) and phases
    uniformly from [0, 2 pi), with a seeded generator. `model.planted_freqs` is the set used.
    """
    if p < 3:
        raise ValueError(f"p: must be >= 3, got {p}")
    allowed = list(range(1, (p - 1) // 2 + 1))
    freqs = allowed if freqs is None else list(freqs)
    bad = [f for f in freqs if f not in allowed]
    if bad or not freqs:
        raise ValueError(f"freqs: must be a non-empty subset of 1..{(p - 1) // 2}, got {freqs}")
    cfg = ModelConfig(
        arch="mlp",
        mlp_input="onehot",
        n_layers=1,
        d_mlp=n_neurons,
        activation="quadratic",
        bias=False,
        norm="none",
    )
    model = MLP(cfg, n_values=p, n_classes=p)
    g = torch.Generator().manual_seed(seed)
    s = torch.tensor(freqs)[torch.randint(len(freqs), (n_neurons,), generator=g)]  # (N,)
    phi1 = torch.rand(n_neurons, generator=g, dtype=torch.float64) * 2 * math.pi
    phi2 = torch.rand(n_neurons, generator=g, dtype=torch.float64) * 2 * math.pi
    w = 2 * math.pi * s.to(torch.float64) / p  # (N,)
    v = torch.arange(p, dtype=torch.float64)[:, None]  # (p, 1)
    W1 = torch.cat([torch.cos(w * v + phi1), torch.cos(w * v + phi2)])  # (2p, N)
    W2 = torch.cos(-w * v - phi1 - phi2).T  # (N, p)
    with torch.no_grad():
        model.layers[0].W.copy_(W1.float())
        model.W_U.copy_(W2.float())
    model.planted_freqs = sorted(set(s.tolist()))
    return model
