from __future__ import annotations

import math

import pytest
import torch

from grokscope import OptimConfig
from grokscope.training.common import Sampler as _Sampler
from grokscope.training.losses import loss_fn
from grokscope.training.optim import build_optimizer, lr_at
from grokscope.training.schedules import StepSchedule, log_spaced


def test_warmup_then_constant():
    cfg = OptimConfig(lr=1e-3, warmup_steps=10)
    assert lr_at(cfg, 0, 100) == pytest.approx(1e-4)
    assert lr_at(cfg, 9, 100) == pytest.approx(1e-3)
    assert lr_at(cfg, 50, 100) == pytest.approx(1e-3)


@pytest.mark.parametrize("schedule", ["cosine", "linear"])
def test_decay_schedules_reach_min(schedule):
    cfg = OptimConfig(lr=1.0, warmup_steps=0, schedule=schedule, min_lr_ratio=0.1)
    assert lr_at(cfg, 0, 101) == pytest.approx(1.0)
    assert lr_at(cfg, 100, 101) == pytest.approx(0.1)
    mid = 0.1 + 0.9 * (0.5 if schedule == "linear" else 0.5 * (1 + math.cos(math.pi / 2)))
    assert lr_at(cfg, 50, 101) == pytest.approx(mid)
    lrs = [lr_at(cfg, s, 101) for s in range(101)]
    assert all(a >= b for a, b in zip(lrs, lrs[1:]))


def test_log_spaced_is_dense_early():
    steps = sorted(log_spaced(100_000, 20))
    assert steps[:12] == list(range(12))
    assert steps[-1] <= 100_000 and len(steps) < 120
    sched = StepSchedule(1000, 4, 300)
    hits = [s for s in range(1001) if s in sched]
    assert hits == [0, 1, 2, 3, 6, 10, 18, 32, 56, 100, 178, 300, 316, 562, 600, 900, 1000]


def test_sampler_is_seeded_and_covers_epochs():
    a, b = _Sampler(10, 4, seed=3), _Sampler(10, 4, seed=3)
    seq_a = [a.next() for _ in range(6)]
    seq_b = [b.next() for _ in range(6)]
    for x, y in zip(seq_a, seq_b):
        assert torch.equal(x, y)
    assert len(set(torch.cat(seq_a[:2]).tolist())) == 8  # no repeats within an epoch
    assert _Sampler(10, None, 0).next() is None and _Sampler(10, 64, 0).next() is None
    c = _Sampler(10, 4, seed=4)
    assert not all(torch.equal(x, c.next()) for x in seq_a)


def test_losses():
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.0, 3.0, 0.0]])
    labels = torch.tensor([0, 1])
    expected = -torch.log_softmax(logits.double(), -1)[[0, 1], [0, 1]].mean()
    assert loss_fn(logits, labels, "ce", "float64").dtype == torch.float64
    torch.testing.assert_close(loss_fn(logits, labels, "ce", "float64"), expected)
    assert loss_fn(logits, labels, "ce", "float32").dtype == torch.float32
    onehot = torch.tensor([[1.0, 0, 0], [0, 1.0, 0]])
    torch.testing.assert_close(loss_fn(logits, labels, "mse", "float64"),
                               ((logits.double() - onehot) ** 2).mean())


def test_float32_ce_underflows_where_float64_does_not():
    # collapse thresholds with 113 classes: gap ~20.7 in float32, ~40.1 in float64 (40 is too close)
    logits = torch.zeros(1, 113)
    logits[0, 0] = 30.0
    labels = torch.tensor([0])
    assert loss_fn(logits, labels, "ce", "float32").item() == 0.0
    assert loss_fn(logits, labels, "ce", "float64").item() > 0.0


@pytest.mark.parametrize("name", ["adamw", "adam", "sgd", "rmsprop"])
def test_weight_decay_coupling(name):
    """One step on a zero gradient: decoupled decay shrinks by lr*wd; coupled L2 goes through the rule."""
    w = torch.nn.Parameter(torch.ones(3))
    opt = build_optimizer(OptimConfig(name=name, lr=0.1, weight_decay=0.5, momentum=0.0), [w])
    w.grad = torch.zeros(3)
    opt.step()
    if name == "adamw":
        torch.testing.assert_close(w.data, torch.full((3,), 1 - 0.1 * 0.5))
    elif name == "sgd":
        torch.testing.assert_close(w.data, torch.full((3,), 1 - 0.1 * 0.5 * 1.0))
    else:  # adam / rmsprop: the L2 gradient 0.5 is normalised, so the first step is ~lr-sized
        assert (1 - w.data).min() > 0.09
