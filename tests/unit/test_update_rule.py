"""UpdateRule: weight-decay modes against torch and hand computation, decayed sets, norm constraint."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from grokscope import OptimConfig
from grokscope.training.optim import UpdateRule


def _model(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))


def _steps(rule_or_opt, model, n=5, seed=1):
    g = torch.Generator().manual_seed(seed)
    for _ in range(n):
        x = torch.randn(16, 4, generator=g)
        y = torch.randint(0, 3, (16,), generator=g)
        loss = nn.functional.cross_entropy(model(x), y)
        rule_or_opt.zero_grad()
        loss.backward()
        rule_or_opt.step()


def _params(model):
    return [p.detach().clone() for p in model.parameters()]


def test_decoupled_equals_torch_adamw():
    a, b = _model(), _model()
    rule = UpdateRule(OptimConfig(name="adamw", lr=1e-2, weight_decay=0.3), a)
    rule.set_lr(1e-2)
    opt = torch.optim.AdamW(b.parameters(), lr=1e-2, betas=(0.9, 0.98), weight_decay=0.3)
    _steps(rule, a)
    _steps(opt, b)
    for x, y in zip(_params(a), _params(b)):
        torch.testing.assert_close(x, y, rtol=0, atol=0)


def test_coupled_equals_torch_adam_and_sgd():
    makers = (("adam", lambda ps: torch.optim.Adam(ps, lr=1e-2, betas=(0.9, 0.98), weight_decay=0.3)),
              ("sgd", lambda ps: torch.optim.SGD(ps, lr=1e-2, momentum=0.9, weight_decay=0.3)))
    for name, make in makers:
        a, b = _model(), _model()
        rule = UpdateRule(OptimConfig(name=name, lr=1e-2, weight_decay=0.3), a)
        assert rule.mode == "coupled"
        rule.set_lr(1e-2)
        _steps(rule, a)
        _steps(make(b.parameters()), b)
        for x, y in zip(_params(a), _params(b)):
            torch.testing.assert_close(x, y, rtol=1e-6, atol=1e-7)


def test_to_init_pulls_toward_initialization():
    """SGD without momentum on a zero gradient: w <- w - lr*wd*(w - w0), by hand."""
    model = _model()
    w0 = _params(model)
    rule = UpdateRule(OptimConfig(name="sgd", lr=0.1, momentum=0.0, weight_decay=0.5,
                                  weight_decay_mode="to_init"), model)
    rule.set_lr(0.1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)  # move away from init
    moved = _params(model)
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    rule.step()
    for now, before, init in zip(_params(model), moved, w0):
        torch.testing.assert_close(now, before - 0.1 * 0.5 * (before - init))


def test_matrices_only_leaves_biases_alone():
    model = _model()
    rule = UpdateRule(OptimConfig(name="sgd", lr=0.1, momentum=0.0, weight_decay=0.5,
                                  weight_decay_mode="decoupled", decay_params="matrices"), model)
    rule.set_lr(0.1)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    rule.step()
    for n, p in model.named_parameters():
        expected = before[n] * (1 - 0.05) if p.ndim >= 2 else before[n]
        torch.testing.assert_close(p.detach(), expected, msg=n)


@pytest.mark.parametrize("target", [0.0, 3.0])
def test_norm_constraint_holds_after_every_step(target):
    model = _model()
    init_norm = math.sqrt(sum(float(p.detach().pow(2).sum()) for p in model.parameters()))
    rule = UpdateRule(OptimConfig(name="adamw", lr=0.05, weight_decay=0.0, norm_constraint=target), model)
    rule.set_lr(0.05)
    want = target or init_norm
    for seed in range(5):
        _steps(rule, model, n=1, seed=seed)
        norm = math.sqrt(sum(float(p.detach().double().pow(2).sum()) for p in model.parameters()))
        assert norm == pytest.approx(want, rel=1e-5)


def test_grokfast_and_orthograd_wiring():
    model = _model()
    rule = UpdateRule(OptimConfig(name="adamw", weight_decay=0.0, orthograd=True, grokfast="ema"), model)
    from grokscope.training.filters import GrokfastEMA
    from grokscope.training.orthograd import OrthoGrad

    assert isinstance(rule.filter, GrokfastEMA) and isinstance(rule.optimizer, OrthoGrad)
    _steps(rule, model, n=3)
    state = rule.state_dict()
    assert state["filter"] is not None
    fresh = UpdateRule(OptimConfig(name="adamw", weight_decay=0.0, orthograd=True, grokfast="ema"), model)
    fresh.load_state_dict(state)
    for a, b in zip(fresh.filter.state_dict()["ema"], rule.filter.state_dict()["ema"]):
        torch.testing.assert_close(a, b)
