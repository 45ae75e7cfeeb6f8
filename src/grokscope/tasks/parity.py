"""Sparse parity (Barak et al. 2022; Merrill, Tsilivis & Shukla 2023): x in {-1, +1}^n, the label is
the product of the k bits at a hidden subset S (class 1 when it is -1, class 0 when +1).

    grokscope train --task.kind parity --task.options.n_bits 40 --task.options.k 3 --model.arch mlp

`n_train` distinct training strings and `n_test` fresh test strings (distinct, none in the training
set) are drawn with the split seed, which also draws S; a finite training set is what turns
Barak et al.'s abrupt learning into grokking (Merrill et al.). Inputs are float vectors of ±1.

Measures (hidden progress, logged on the evaluation schedule):
- `fourier_gap`: the network's output margin f(x) = z_1 - z_0 on the test strings, centred and
  scaled to unit RMS, correlated with the parity χ_S(x) = Π_{i∈S} x_i (its Fourier coefficient on
  S), minus the largest |coefficient| over `gap_subsets` random k-subsets S' ≠ S (fixed per run);
- `subset_weight_share`: the share of the first layer's squared weight norm on the k relevant
  inputs, ‖W1[S, :]‖² / ‖W1‖² (k / n for an unstructured layer; MLPs on vector inputs only).

`--task.options.inputs tokens` gives the strings as tokens (0/1 bits, then a read-out token) for
the transformer and the LSTM/GRU; the Fourier gap reads their output the same way.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from grokscope.errors import ConfigError
from grokscope.models.layers import eval_mode
from grokscope.tasks.task import Split, Task, check_generated

__all__ = ["ParityOptions", "ParityTask", "build_parity", "fourier_coefficients", "validate_parity"]

MAX_BITS = 62  # strings are drawn as integers below 2**n


@dataclass(frozen=True)
class ParityOptions:
    n_bits: int = 40
    """Length n of the bit strings."""
    k: int = 3
    """Size of the hidden subset S whose parity is the label."""
    n_train: int = 1000
    """Distinct training strings."""
    n_test: int = 5000
    """Fresh test strings (distinct, disjoint from the training set)."""
    gap_subsets: int = 100
    """Random k-subsets S' != S whose Fourier coefficients the Fourier gap compares against (0: no
    hidden-progress measures)."""
    inputs: str = "vector"
    """'vector': the ±1 string as a float vector (for the MLP); 'tokens': bit tokens 0/1 followed by
    a read-out token 2, answered at the last position (for the transformer or an RNN)."""


def _opts(cfg) -> ParityOptions:
    return ParityOptions(**cfg.task.options)


def validate_parity(cfg) -> None:
    o = _opts(cfg)
    check_generated(cfg, o.n_train, o.n_test)
    if not 2 <= o.n_bits <= MAX_BITS:
        raise ConfigError(f"task.options.n_bits: must be an integer in 2..{MAX_BITS}, got {o.n_bits!r}")
    if not 1 <= o.k <= o.n_bits:
        raise ConfigError(f"task.options.k: must be an integer in 1..n_bits ({o.n_bits}), got {o.k!r}")
    if o.n_train + o.n_test > 2 ** o.n_bits // 2:
        raise ConfigError(f"task.options.n_train: n_train + n_test must be at most half of the 2^{o.n_bits} "
                          f"strings ({2 ** o.n_bits // 2}), got {o.n_train + o.n_test}")
    if o.inputs not in ("vector", "tokens"):
        raise ConfigError(f"task.options.inputs: must be 'vector' or 'tokens', got {o.inputs!r}")
    if o.gap_subsets < 0:
        raise ConfigError(f"task.options.gap_subsets: must be an integer >= 0, got {o.gap_subsets!r}")


def _distinct_strings(count: int, n: int, g: torch.Generator) -> torch.Tensor:
    """`count` distinct integers in [0, 2^n), seeded: (count,) int64."""
    seen: set[int] = set()
    out: list[int] = []
    while len(out) < count:
        draw = torch.randint(0, 2 ** n, (2 * (count - len(out)),), generator=g, dtype=torch.int64).tolist()
        for v in draw:
            if v not in seen:
                seen.add(v)
                out.append(v)
                if len(out) == count:
                    break
    return torch.tensor(out, dtype=torch.int64)


def bits_of(codes: torch.Tensor, n: int) -> torch.Tensor:
    """(m,) integers -> (m, n) float ±1 (bit i of the code: 1 -> -1, 0 -> +1)."""
    bits = (codes.unsqueeze(1) >> torch.arange(n)) & 1  # (m, n)
    return 1.0 - 2.0 * bits.float()


def parity_of(x: torch.Tensor, subset: list[int]) -> torch.Tensor:
    """χ_S(x) = Π_{i∈S} x_i: (m, n) ±1 -> (m,) ±1."""
    return x[:, subset].prod(dim=1)


def fourier_coefficients(f: torch.Tensor, x: torch.Tensor, subsets: torch.Tensor) -> torch.Tensor:
    """E_x[f(x) χ_S(x)] for each row of `subsets` (s, k) over the sample x (m, n), f (m,): (s,)."""
    chi = x[:, subsets].prod(dim=2)  # (m, s)
    return (f.unsqueeze(1) * chi).mean(0)


@dataclass(frozen=True, eq=False, kw_only=True)
class ParityTask(Task):
    """A sparse-parity Task whose measures are the Fourier gap and the relevant-weight share."""

    subset: tuple[int, ...] = ()
    test_signs: torch.Tensor = field(default_factory=lambda: torch.zeros(0, 1))
    """(n_test, n_bits) the test strings as ±1 (the Fourier basis reads these, whatever the inputs)."""
    others: torch.Tensor = field(default_factory=lambda: torch.zeros(0, 1, dtype=torch.long))
    """(gap_subsets, k) random k-subsets other than S."""

    @property
    def measure_cost(self) -> float:
        return float(len(self.splits["test"])) if self.measure_names else 0.0

    def measures(self, model: torch.nn.Module, device: torch.device) -> dict[str, float]:
        if not self.measure_names:
            return {}
        test = self.splits["test"]
        with eval_mode(model), torch.no_grad():
            out = model(test.inputs.to(device)).double().cpu()  # (m, 2)
        f = out[:, 1] - out[:, 0]
        f = f - f.mean()
        f = f / f.pow(2).mean().sqrt().clamp_min(1e-300)  # unit RMS: coefficients are correlations
        x = self.test_signs.double()
        true = float(fourier_coefficients(f, x, torch.tensor([self.subset])).abs()[0])
        rest = float(fourier_coefficients(f, x, self.others).abs().max())
        r: dict[str, float] = {"fourier_gap": true - rest}
        layers = getattr(model, "layers", None)
        if self.input_kind == "vector" and layers is not None and len(layers) and hasattr(layers[0], "W"):
            W = layers[0].W.detach().double()  # (n_bits, d_mlp)
            total = float(W.pow(2).sum())
            r["subset_weight_share"] = float(W[list(self.subset)].pow(2).sum()) / total if total else 0.0
        return r


def build_parity(cfg) -> ParityTask:
    """Sparse parity strings split into n_train training and n_test fresh test strings."""
    o = _opts(cfg)
    g = torch.Generator().manual_seed(cfg.effective_split_seed)
    subset = sorted(torch.randperm(o.n_bits, generator=g)[: o.k].tolist())
    codes = _distinct_strings(o.n_train + o.n_test, o.n_bits, g)
    x = bits_of(codes, o.n_bits)  # (n_train + n_test, n)
    y = ((1 - parity_of(x, subset)) / 2).long()  # class 1 where the parity is -1
    others = []
    seen = {tuple(subset)}
    for _ in range(min(o.gap_subsets, math.comb(o.n_bits, o.k) - 1)):
        while (s := tuple(sorted(torch.randperm(o.n_bits, generator=g)[: o.k].tolist()))) in seen:
            pass
        seen.add(s)
        others.append(s)
    inputs = x
    kind = {"input_kind": "vector", "input_shape": (o.n_bits,)}
    if o.inputs == "tokens":  # (m, n + 1): bits as tokens 0 (+1) / 1 (-1), then the read-out token 2
        inputs = torch.cat([((1 - x) / 2).long(), torch.full((len(x), 1), 2)], dim=1)
        kind = {"input_kind": "tokens", "input_shape": (o.n_bits + 1,), "vocab_size": 3,
                "answer_position": -1}
    splits = {"train": Split(inputs[: o.n_train], y[: o.n_train]),
              "test": Split(inputs[o.n_train:], y[o.n_train:])}
    share = o.inputs == "vector" and cfg.model.arch == "mlp"
    names = (("fourier_gap", "subset_weight_share") if share else ("fourier_gap",)) if others else ()
    meta = {"kind": "parity", "n_bits": o.n_bits, "k": o.k, "subset": subset, "n_train": o.n_train,
            "n_test": o.n_test}
    return ParityTask(kind="parity", splits=splits, n_classes=2, meta=meta, measure_names=names,
                      subset=tuple(subset), test_signs=x[o.n_train:], **kind,
                      others=torch.tensor(others, dtype=torch.long).reshape(len(others), o.k))
