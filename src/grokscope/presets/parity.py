"""Presets on sparse parity (Barak et al. 2022; Merrill, Tsilivis & Shukla 2023)."""

from __future__ import annotations

from grokscope.config import ModelConfig, OptimConfig, RunConfig, TaskConfig, TrainConfig
from grokscope.presets.registry import preset


@preset
def merrill2023_parity() -> RunConfig:
    """DRAFT (numbers to be measured)."""
    return RunConfig(
        name="merrill2023_parity",
        task=TaskConfig(kind="parity", options={"n_bits": 40, "k": 3, "n_train": 1000, "n_test": 5000}),
        model=ModelConfig(arch="mlp", n_layers=1, d_mlp=1000, activation="relu"),
        optim=OptimConfig(name="sgd", lr=0.1, momentum=0.0, weight_decay=0.01, warmup_steps=0),
        # evaluations are cheap next to 32-example steps: every 100 steps, no budget cap
        train=TrainConfig(steps=20_000, batch_size=32, loss="ce", eval_every=100, eval_budget=0.0),
    )
