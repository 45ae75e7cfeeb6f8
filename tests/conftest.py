"""Shared fixtures: tiny configs that really grok on a CPU in a few seconds."""

from __future__ import annotations

import contextlib

import pytest
import torch

from grokscope import ModelConfig, OptimConfig, RunConfig, TaskConfig, TrainConfig


def tiny_grokking_config(**train_overrides) -> RunConfig:
    """x+y mod 23, 60% train, 1-layer d64 transformer, AdamW lr 1e-2 wd 2, seed 1, 700 steps.

    Measured: memorizes at step ~45, generalizes (test acc >= 0.99) at step ~510.
    """
    return RunConfig(
        name="tiny",
        seed=1,
        task=TaskConfig(kind="modular", op="x+y", p=23, train_fraction=0.6),
        model=ModelConfig(n_layers=1, d_model=64, n_heads=4, d_mlp=256, norm="none"),
        optim=OptimConfig(lr=1e-2, weight_decay=2.0, warmup_steps=10),
        train=TrainConfig(steps=700, eval_every=10, **train_overrides),
    )


@contextlib.contextmanager
def option_only_task_kinds(**kinds):
    """Register task kinds {name: options dataclass} whose build is never called (for parsing and
    validation tests); unregistered afterwards. Yields the names."""
    from grokscope.tasks import register_task
    from grokscope.tasks.task import _REGISTRY

    def build(cfg):  # never called: nothing trains here
        raise AssertionError("not built in this test")

    for name, options in kinds.items():
        register_task(name, build, options=options, replace=True)
    try:
        yield tuple(kinds)
    finally:
        for name in kinds:
            _REGISTRY.pop(name, None)


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)
    yield
