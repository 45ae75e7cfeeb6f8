"""Presets on images: scikit-learn's 8x8 digits with an MLP and a CNN (Omnigrok's large
initialization; Humayun et al.'s delayed robustness)."""

from __future__ import annotations

from grokscope.config import ModelConfig, OptimConfig, RunConfig, TaskConfig, TrainConfig
from grokscope.presets.registry import preset

NO_MEASURES = {"robust_n": 0}


def _omnigrok(name: str, alpha: float, **options) -> RunConfig:
    return RunConfig(
        name=name,
        task=TaskConfig(kind="digits", options={"train_size": 300, **NO_MEASURES, **options}),
        model=ModelConfig(arch="mlp", n_layers=2, d_mlp=200, activation="relu", init_scale=alpha),
        optim=OptimConfig(name="adamw", lr=3e-3, betas=(0.9, 0.999), weight_decay=0.02, warmup_steps=0),
        train=TrainConfig(steps=35_000, batch_size=200, loss="mse", eval_every=250, eval_budget=0.04),
    )


@preset
def omnigrok_digits() -> RunConfig:
    """DRAFT (numbers to be measured)."""
    return _omnigrok("omnigrok_digits", 6.0)


@preset
def omnigrok_digits_control() -> RunConfig:
    """DRAFT (numbers to be measured)."""
    return _omnigrok("omnigrok_digits_control", 1.0)


@preset
def humayun_digits() -> RunConfig:
    """DRAFT (numbers to be measured)."""
    return RunConfig(
        name="humayun_digits",
        task=TaskConfig(kind="digits", options={"train_size": 1000, "robust_n": 200, "pgd_eps": 0.1,
                                                "lc_radius": 0.1, "lc_directions": 16}),
        model=ModelConfig(arch="mlp", n_layers=2, d_mlp=200, activation="relu", init_scale=1.0),
        optim=OptimConfig(name="adamw", lr=1e-3, betas=(0.9, 0.999), weight_decay=0.01, warmup_steps=0),
        train=TrainConfig(steps=30_000, batch_size=200, loss="mse", eval_every=1000, eval_budget=0.15),
    )


@preset
def digits_cnn() -> RunConfig:
    """DRAFT (numbers to be measured)."""
    return RunConfig(
        name="digits_cnn",
        task=TaskConfig(kind="digits", options={"train_size": 200, **NO_MEASURES}),
        model=ModelConfig(arch="cnn", cnn_channels=(16, 32), kernel_size=3, pool="max", n_layers=1, d_mlp=64,
                          activation="relu", init_scale=3.0),
        optim=OptimConfig(name="adamw", lr=3e-3, betas=(0.9, 0.999), weight_decay=0.1, warmup_steps=0),
        train=TrainConfig(steps=20_000, batch_size=200, loss="mse", eval_every=200, eval_budget=0.04),
    )
