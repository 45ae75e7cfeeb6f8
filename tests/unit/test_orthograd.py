"""⊥Grad: orthogonalize_ numerics and the OrthoGrad optimizer wrapper."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from grokscope.training.orthograd import OrthoGrad, orthogonalize_

SHAPES = [(1,), (7,), (3, 5), (4, 3, 2, 2), (64, 128)]


def _reference(w: torch.Tensor, g: torch.Tensor, eps: float = 1e-30) -> torch.Tensor:
    """The ⊥Grad formula written out in float64: g_perp = g - (w·g)/(w·w) w, rescaled to ||g||."""
    w64, g64 = w.double().flatten(), g.double().flatten()
    perp = g64 - (w64 @ g64) / (w64 @ w64 + eps) * w64
    return (perp * g64.norm() / (perp.norm() + eps)).view(g.shape)


def _cos(a: torch.Tensor, b: torch.Tensor) -> float:
    a64, b64 = a.double().flatten(), b.double().flatten()
    return (a64 @ b64 / (a64.norm() * b64.norm())).item()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape", SHAPES[1:])
@pytest.mark.parametrize("radial", [0.0, 3.0, 100.0])
def test_orthogonal_and_norm_preserving(dtype, shape, radial):
    torch.manual_seed(sum(shape))
    w = torch.randn(shape, dtype=dtype)
    g = torch.randn(shape, dtype=dtype) + radial * w  # radial: a large component along w
    w.grad = g.clone()
    orthogonalize_([w])
    assert w.grad.shape == shape and w.grad.dtype == dtype
    assert abs(_cos(w.grad, w)) < 1e-6
    assert w.grad.double().norm().item() == pytest.approx(g.double().norm().item(), rel=1e-6)
    # against the exact formula: error ~ eps_dtype * cond, cond = ||g|| / ||g_perp|| (cancellation)
    ref = _reference(w, g)
    w64, g64 = w.double().flatten(), g.double().flatten()
    cond = (g64.norm() / (g64 - (w64 @ g64) / (w64 @ w64) * w64).norm()).item()
    err = ((w.grad.double() - ref).norm() / ref.norm()).item()
    assert err <= 16 * torch.finfo(dtype).eps * cond  # measured <= 2.5


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("c", [3.0, -0.37, 1e-3, 1e4])
def test_parallel_gradient_becomes_zero(dtype, shape, c):
    torch.manual_seed(1)
    w = torch.randn(shape, dtype=dtype)
    w.grad = c * w
    orthogonalize_([w])
    assert torch.isfinite(w.grad).all()
    assert w.grad.abs().max().item() == 0.0


def test_single_element_tensor_loses_its_gradient():
    """For a scalar weight every gradient is parallel to it."""
    w = torch.tensor([2.0])
    w.grad = torch.tensor([-5.0])
    orthogonalize_([w])
    assert w.grad.item() == 0.0


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_zero_weight_leaves_gradient_unchanged(dtype):
    w = torch.zeros(4, 5, dtype=dtype)
    g = torch.randn(4, 5).to(dtype)
    w.grad = g.clone()
    orthogonalize_([w])
    assert torch.equal(w.grad, g)


def test_zero_gradient_and_none_gradient():
    w, v = torch.randn(3, 3), torch.randn(2)
    w.grad = torch.zeros(3, 3)
    orthogonalize_([w, v])  # v.grad is None: skipped
    assert v.grad is None
    assert torch.equal(w.grad, torch.zeros(3, 3))


def test_half_precision_is_orthogonal_to_its_resolution():
    torch.manual_seed(2)
    w = torch.randn(16, 16, dtype=torch.bfloat16)
    w.grad = torch.randn(16, 16, dtype=torch.bfloat16) + 2 * w
    orthogonalize_([w])
    assert torch.isfinite(w.grad).all()
    assert abs(_cos(w.grad, w)) < 1e-2  # bf16 rounding of the result, ~2^-8


def _model_and_data(seed: int = 0):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 3))
    return model, torch.randn(16, 5), torch.randint(0, 3, (16,))


def _loss(model, x, y):
    return nn.functional.cross_entropy(model(x), y)


def test_orthograd_adamw_equals_adamw_on_hand_orthogonalized_grads():
    m1, x, y = _model_and_data()
    m2, m3 = copy.deepcopy(m1), copy.deepcopy(m1)
    wrapped = OrthoGrad(torch.optim.AdamW(m1.parameters(), lr=1e-2, weight_decay=0.1))
    by_hand = torch.optim.AdamW(m2.parameters(), lr=1e-2, weight_decay=0.1)
    manual = torch.optim.AdamW(m3.parameters(), lr=1e-2, weight_decay=0.1)
    for _ in range(5):
        for m, opt in ((m1, wrapped), (m2, by_hand), (m3, manual)):
            opt.zero_grad()
            _loss(m, x, y).backward()
        for p in m2.parameters():
            p.grad = _reference(p.detach(), p.grad).to(p.dtype)
        orthogonalize_(m3.parameters())
        wrapped.step()
        by_hand.step()
        manual.step()
    for p1, p2, p3 in zip(m1.parameters(), m2.parameters(), m3.parameters()):
        assert torch.equal(p1, p3)
        torch.testing.assert_close(p1, p2, rtol=1e-5, atol=1e-6)
    assert not torch.equal(next(m1.parameters()), next(_model_and_data()[0].parameters()))


def test_orthograd_sgd_step_and_norm_grows_only_at_second_order():
    """w' = w - lr * g_perp with g_perp ⊥ w, so ||w'||² = ||w||² + lr² ||g||² (to rounding)."""
    torch.manual_seed(3)
    w = nn.Parameter(torch.randn(6, 4, dtype=torch.float64))
    opt = OrthoGrad(torch.optim.SGD([w], lr=0.1))
    w0 = w.detach().clone()
    loss = (w * torch.randn(6, 4, dtype=torch.float64)).sum() + (w ** 2).sum()
    loss.backward()
    g = w.grad.clone()
    opt.step()
    torch.testing.assert_close(w.detach(), w0 - 0.1 * _reference(w0, g))
    expected = w0.norm() ** 2 + 0.01 * g.norm() ** 2
    assert (w.detach().norm() ** 2).item() == pytest.approx(expected.item(), rel=1e-12)


def test_closure_grads_are_orthogonalized():
    w = nn.Parameter(torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64))
    opt = OrthoGrad(torch.optim.SGD([w], lr=1.0))
    target = torch.tensor([3.0, 4.0, 0.0], dtype=torch.float64)

    def closure():
        opt.zero_grad()
        loss = -(w * target).sum()  # grad = -target = -3 e0 - 4 e1; radial part -3 e0 removed
        loss.backward()
        return loss

    loss = opt.step(closure)
    assert loss.item() == -3.0
    torch.testing.assert_close(w.detach(), torch.tensor([1.0, 5.0, 0.0], dtype=torch.float64))


def test_delegation_lr_param_groups_and_schedulers():
    model, x, y = _model_and_data()
    base = torch.optim.AdamW(model.parameters(), lr=1e-3)
    opt = OrthoGrad(base)
    assert isinstance(opt, torch.optim.Optimizer)
    assert opt.param_groups is base.param_groups and opt.state is base.state
    assert opt.defaults is base.defaults
    for group in opt.param_groups:
        group["lr"] = 0.5
    assert base.param_groups[0]["lr"] == 0.5
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0 / (step + 1))
    for _ in range(3):
        opt.zero_grad()
        _loss(model, x, y).backward()
        opt.step()
        sched.step()
    assert base.param_groups[0]["lr"] == pytest.approx(0.5 / 4)
    extra = nn.Parameter(torch.ones(2))
    opt.add_param_group({"params": [extra], "lr": 0.1})
    assert base.param_groups[-1]["params"] == [extra]
    opt.zero_grad()
    assert all(p.grad is None for g in base.param_groups for p in g["params"])
    assert "OrthoGrad" in repr(opt) and "AdamW" in repr(opt)


def test_state_dict_roundtrip(tmp_path):
    m1, x, y = _model_and_data()
    m2 = copy.deepcopy(m1)
    opt1 = OrthoGrad(torch.optim.AdamW(m1.parameters(), lr=1e-2))
    for _ in range(3):
        opt1.zero_grad()
        _loss(m1, x, y).backward()
        opt1.step()
    sd = opt1.state_dict()
    base_sd = opt1.base_optimizer.state_dict()
    assert sd.keys() == base_sd.keys() and sd["param_groups"] == base_sd["param_groups"]
    torch.testing.assert_close(sd["state"], base_sd["state"])
    torch.save(sd, tmp_path / "opt.pt")
    m2.load_state_dict(m1.state_dict())
    opt2 = OrthoGrad(torch.optim.AdamW(m2.parameters(), lr=1e-2))
    opt2.load_state_dict(torch.load(tmp_path / "opt.pt", weights_only=True))
    # the checkpoint also loads into a plain AdamW (same format)
    torch.optim.AdamW(copy.deepcopy(m1).parameters()).load_state_dict(sd)
    for _ in range(3):
        for m, opt in ((m1, opt1), (m2, opt2)):
            opt.zero_grad()
            _loss(m, x, y).backward()
            opt.step()
    for p1, p2 in zip(m1.parameters(), m2.parameters()):
        assert torch.equal(p1, p2)


def test_deepcopy_and_validation():
    model, _, _ = _model_and_data()
    opt = OrthoGrad(torch.optim.SGD(model.parameters(), lr=0.1), eps=1e-20)
    clone = copy.deepcopy(opt)
    assert clone.eps == 1e-20 and clone.param_groups[0]["lr"] == 0.1
    assert clone.param_groups is not opt.param_groups
    with pytest.raises(TypeError, match="torch.optim.Optimizer"):
        OrthoGrad(model)
    with pytest.raises(ValueError, match="eps"):
        OrthoGrad(torch.optim.SGD(model.parameters(), lr=0.1), eps=-1.0)
