"""Grokfast EMA / MA filters: hand-computed values, state handling, plain-PyTorch use."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from grokscope.training.filters import GrokfastEMA, GrokfastMA


def _run(filt, p: torch.Tensor, grads: list[float]) -> list[float]:
    """Feed scalar grads one step at a time; return the filtered grads."""
    out = []
    for g in grads:
        p.grad = torch.tensor([g], dtype=p.dtype)
        filt.step()
        out.append(p.grad.item())
    return out


def _roundtrip(sd: dict, tmp_path) -> dict:
    torch.save(sd, tmp_path / "filt.pt")
    return torch.load(tmp_path / "filt.pt", weights_only=True)


def test_ema_by_hand():
    # alpha 0.5, lamb 2, grads 1, 3, -2, 4:
    #   ema 1            -> 1 + 2*1 = 3
    #   ema .5*1+.5*3=2  -> 3 + 2*2 = 7
    #   ema .5*2-.5*2=0  -> -2 + 0  = -2
    #   ema .5*0+.5*4=2  -> 4 + 2*2 = 8
    p = torch.zeros(1, requires_grad=True)
    assert _run(GrokfastEMA([p], alpha=0.5, lamb=2.0), p, [1.0, 3.0, -2.0, 4.0]) == [3.0, 7.0, -2.0, 8.0]


def test_ema_first_step_is_one_plus_lamb_and_alpha_zero():
    p = torch.zeros(2, 3, requires_grad=True)
    g = torch.randn(2, 3)
    p.grad = g.clone()
    GrokfastEMA([p], alpha=0.9, lamb=1.5).step()
    torch.testing.assert_close(p.grad, 2.5 * g)
    # alpha = 0: ema is the current grad, so every step multiplies by 1 + lamb
    q = torch.zeros(1)
    assert _run(GrokfastEMA([q], alpha=0.0, lamb=1.0), q, [1.0, -3.0]) == [2.0, -6.0]


def test_ma_mean_by_hand_with_warmup_and_eviction():
    # window 3, lamb 2, mean, warmup: unchanged until 3 grads are held.
    #   1 -> 1;  2 -> 2;  [1,2,3] mean 2 -> 3+4 = 7;  [2,3,6] mean 11/3 -> 6+22/3;
    #   [3,6,-3] mean 2 -> -3+4 = 1   (the 1 and then the 2 were evicted)
    p = torch.zeros(1, dtype=torch.float64)
    out = _run(GrokfastMA([p], window=3, lamb=2.0), p, [1.0, 2.0, 3.0, 6.0, -3.0])
    assert out == pytest.approx([1.0, 2.0, 7.0, 6.0 + 22.0 / 3.0, 1.0], abs=1e-12)


def test_ma_sum_and_no_warmup():
    # sum, no warmup, window 2, lamb 0.5:  1 -> 1+.5*1 = 1.5;  [1,3] -> 3+2 = 5;  [3,-2] -> -2+.5 = -1.5
    p = torch.zeros(1)
    out = _run(GrokfastMA([p], window=2, lamb=0.5, filter="sum", warmup=False), p, [1.0, 3.0, -2.0])
    assert out == [1.5, 5.0, -1.5]
    # mean without warmup divides by the number held so far: 1 -> 1+1 = 2; [1,3] -> 3+2 = 5
    q = torch.zeros(1)
    assert _run(GrokfastMA([q], window=5, lamb=1.0, warmup=False), q, [1.0, 3.0]) == [2.0, 5.0]
    # with warmup the same sequence is untouched until the window is full
    r = torch.zeros(1)
    assert _run(GrokfastMA([r], window=5, lamb=1.0), r, [1.0, 3.0]) == [1.0, 3.0]


def test_ma_window_one_is_constant_gain():
    p = torch.zeros(1)
    assert _run(GrokfastMA([p], window=1, lamb=3.0), p, [1.0, -2.0]) == [4.0, -8.0]


@pytest.mark.parametrize("make", [lambda ps: GrokfastEMA(ps, 0.5, 2.0), lambda ps: GrokfastMA(ps, 2, 1.0)])
def test_grad_none_is_skipped_and_state_untouched(make):
    a, b = torch.zeros(2), torch.zeros(3)
    filt = make(iter([a, b]))  # a generator is materialized
    a.grad = torch.ones(2)
    filt.step()
    sd = filt.state_dict()
    key = "ema" if "ema" in sd else "grads"
    assert b.grad is None
    assert sd[key][1] in (None, [])  # no state for b
    assert sd[key][0] is not None and len(sd[key][0]) > 0
    b.grad, a.grad = torch.ones(3), None
    filt.step()
    assert filt.state_dict()[key][0] is not None
    torch.testing.assert_close(filt.state_dict()[key][0], sd[key][0])  # a's state untouched


@pytest.mark.parametrize("make", [
    lambda ps: GrokfastEMA(ps, alpha=0.9, lamb=2.0),
    lambda ps: GrokfastMA(ps, window=3, lamb=1.5, filter="mean"),
    lambda ps: GrokfastMA(ps, window=4, lamb=0.5, filter="sum", warmup=False),
])
def test_state_dict_roundtrip_continues_identically(make, tmp_path):
    torch.manual_seed(0)
    shapes = [(3, 4), (4,), (2, 2, 2)]
    grads = [[torch.randn(s) for s in shapes] for _ in range(7)]
    ref_ps = [torch.zeros(s) for s in shapes]
    ref = make(ref_ps)
    ps = [torch.zeros(s) for s in shapes]
    first = make(ps)

    def feed(filt, params, gs):
        for p, g in zip(params, gs):
            p.grad = g.clone()
        filt.step()
        return [p.grad.clone() for p in params]

    ref_out = [feed(ref, ref_ps, gs) for gs in grads]
    for gs in grads[:4]:
        feed(first, ps, gs)
    loaded = _roundtrip(first.state_dict(), tmp_path)
    second = make(ps)
    second.load_state_dict(loaded)
    assert second.__dict__.keys() == first.__dict__.keys()
    for step, gs in enumerate(grads[4:], start=4):
        out = feed(second, ps, gs)
        for a, b in zip(out, ref_out[step]):
            assert torch.equal(a, b)


def test_load_restores_hyperparameters_and_validates():
    p = torch.zeros(2)
    src = GrokfastEMA([p], alpha=0.7, lamb=3.0)
    dst = GrokfastEMA([p])
    dst.load_state_dict(src.state_dict())
    assert (dst.alpha, dst.lamb) == (0.7, 3.0)
    with pytest.raises(ValueError, match=r"for 1 parameter\(s\), this filter has 2"):
        GrokfastEMA([p, torch.zeros(1)]).load_state_dict(src.state_dict())
    with pytest.raises(ValueError, match="not a GrokfastMA"):
        GrokfastMA([p]).load_state_dict(src.state_dict())
    p.grad = torch.ones(2)
    src.step()
    with pytest.raises(ValueError, match="shape"):
        GrokfastEMA([torch.zeros(3)]).load_state_dict(src.state_dict())
    ma = GrokfastMA([p], window=3, lamb=1.0, filter="sum", warmup=False)
    dst_ma = GrokfastMA([p])
    dst_ma.load_state_dict(ma.state_dict())
    assert (dst_ma.window, dst_ma.lamb, dst_ma.filter, dst_ma.warmup) == (3, 1.0, "sum", False)


def test_state_dict_is_a_snapshot():
    p = torch.zeros(1)
    filt = GrokfastEMA([p], alpha=0.5, lamb=1.0)
    p.grad = torch.ones(1)
    filt.step()
    sd = copy.copy(filt.state_dict())
    p.grad = torch.full((1,), 5.0)
    filt.step()
    assert sd["ema"][0].item() == 1.0


def test_reset():
    p = torch.zeros(1)
    for filt in (GrokfastEMA([p], 0.5, 2.0), GrokfastMA([p], 1, 2.0)):
        _run(filt, p, [1.0, 1.0])
        filt.reset()
        assert _run(filt, p, [2.0]) == [6.0]  # behaves like a first step


@pytest.mark.parametrize("kwargs, match", [
    ({"alpha": 1.0}, "alpha"), ({"alpha": -0.1}, "alpha"), ({"alpha": float("nan")}, "alpha"),
    ({"lamb": float("inf")}, "lamb"),
])
def test_ema_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        GrokfastEMA([torch.zeros(1)], **kwargs)


@pytest.mark.parametrize("kwargs, match", [
    ({"window": 0}, "window"), ({"window": 2.5}, "window"), ({"filter": "median"}, "filter"),
    ({"lamb": float("nan")}, "lamb"),
])
def test_ma_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        GrokfastMA([torch.zeros(1)], **kwargs)


def test_params_must_be_tensors():
    with pytest.raises(TypeError, match="tensors"):
        GrokfastEMA([{"params": [torch.zeros(1)]}])


@pytest.mark.parametrize("make", [lambda m: GrokfastEMA(m.parameters(), 0.98, 2.0),
                                  lambda m: GrokfastMA(m.parameters(), window=5, lamb=5.0)])
def test_plain_pytorch_loop(make):
    """The README recipe with nn.Linear and torch.optim only; the filter changes the trajectory."""

    def train(use_filter: bool) -> torch.Tensor:
        torch.manual_seed(0)
        model = nn.Linear(4, 3)
        x, y = torch.randn(32, 4), torch.randint(0, 3, (32,))
        filt = make(model) if use_filter else None
        opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
        for _ in range(20):
            loss = nn.functional.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            if filt is not None:
                filt.step()
            opt.step()
        assert torch.isfinite(loss)
        return model.weight.detach().clone()

    assert not torch.equal(train(True), train(False))
