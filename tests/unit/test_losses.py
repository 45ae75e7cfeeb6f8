"""StableMax, stablemax cross-entropy, softmax collapse and float32 cross-entropy precision limits.

Measured on CPU (torch 2.13), logits z = [gap, 0, ..., 0] with 113 classes, label 0:
- float32 F.cross_entropy is exactly 0, and so is its gradient on the correct logit, from
  gap = 20.660885 (float32) on; at 20.660883 it is still log(1 + 2^-23). The kernel adds a partial
  sum of 56 tail terms to 1, so the boundary is 56 e^-gap = 2^-24, gap = ln 56 + 24 ln 2. Any
  summation order must put it in [24 ln 2, ln 112 + 24 ln 2] = [16.64, 21.36], which is what the
  tests assert. The gradient on the other 112 logits is e^-gap / batch: tiny but not zero.
- The whole float32 gradient is exactly 0 only once e^-gap underflows: gap > 150 ln 2 = 103.972
  (half the smallest subnormal, 2^-150).
- float64 cross-entropy reaches exact zero at gap ~= 40.07 (in [53 ln 2, ln 112 + 53 ln 2]).
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from grokscope.training.losses import (
    loss_fn,
    softmax_collapse_fraction,
    stablemax,
    stablemax_cross_entropy,
)

N_CLASSES = 113


def _gap_logits(gap: float, dtype=torch.float32, rows: int = 1) -> torch.Tensor:
    z = torch.zeros(rows, N_CLASSES, dtype=dtype)
    z[:, 0] = gap
    return z


def _ce_grad(gap: float, dtype=torch.float32, kind: str = "ce") -> tuple[float, torch.Tensor]:
    z = _gap_logits(gap, dtype).requires_grad_(True)
    labels = torch.zeros(1, dtype=torch.long)
    if kind == "ce":
        loss = F.cross_entropy(z, labels)
    else:
        loss = stablemax_cross_entropy(z, labels, dtype)
    loss.backward()
    return loss.item(), z.grad[0]


def _s(x: float) -> float:
    """s(x) read off stablemax([x, 0]) = [s(x), 1] / (s(x) + 1), since s(0) = 1."""
    p = stablemax(torch.tensor([x, 0.0], dtype=torch.float64))
    return (p[0] / p[1]).item()


# ---------------------------------------------------------------- StableMax


@pytest.mark.parametrize("shape, dim", [((5, 7), -1), ((3, 4, 9), -1), ((6, 4), 0)])
def test_stablemax_rows_sum_to_one(shape, dim):
    torch.manual_seed(0)
    p = stablemax(torch.randn(shape) * 10, dim=dim)
    assert p.shape == shape and (p > 0).all()
    torch.testing.assert_close(p.sum(dim), torch.ones(p.sum(dim).shape))


def test_stablemax_values_and_uniform_at_zero():
    # s(2) = 3, s(-3) = 1/4, s(0) = 1
    p = stablemax(torch.tensor([2.0, -3.0, 0.0], dtype=torch.float64))
    torch.testing.assert_close(p, torch.tensor([3.0, 0.25, 1.0], dtype=torch.float64) / 4.25)
    torch.testing.assert_close(stablemax(torch.zeros(3, 7)), torch.full((3, 7), 1 / 7))


def test_s_monotone_and_continuous_at_zero():
    xs = [-1e6, -100.0, -3.0, -1.0, -0.5, -1e-9, 0.0, 1e-9, 0.5, 1.0, 3.0, 100.0, 1e6]
    ss = [_s(x) for x in xs]
    assert all(a < b for a, b in zip(ss, ss[1:]))
    assert _s(0.0) == 1.0
    assert _s(1e-9) == pytest.approx(1 + 1e-9, rel=1e-15)
    assert _s(-1e-9) == pytest.approx(1 / (1 + 1e-9), rel=1e-15)
    assert _s(1e-9) - _s(-1e-9) == pytest.approx(2e-9, rel=1e-6)  # slope 1 on both sides


def test_stablemax_cross_entropy_value_and_dtype():
    logits = torch.tensor([[2.0, -3.0, 0.0], [0.0, 1.0, -1.0]])
    labels = torch.tensor([0, 2])
    # row 0: s = [3, 1/4, 1] -> -log(3/4.25);  row 1: s = [1, 2, 1/2] -> -log(0.5/3.5)
    expected = (-math.log(3 / 4.25) - math.log(0.5 / 3.5)) / 2
    loss = stablemax_cross_entropy(logits, labels)
    assert loss.dtype == torch.float64 and loss.item() == pytest.approx(expected, rel=1e-14)
    assert stablemax_cross_entropy(logits, labels, "float32").dtype == torch.float32
    assert stablemax_cross_entropy(logits, labels, torch.float32).dtype == torch.float32
    torch.testing.assert_close(loss_fn(logits, labels, "stablemax", "float64"), loss)
    with pytest.raises(ValueError, match="dtype"):
        stablemax_cross_entropy(logits, labels, "float8")


def test_loss_fn_kinds():
    logits, labels = torch.randn(4, 5), torch.tensor([0, 1, 2, 3])
    torch.testing.assert_close(loss_fn(logits, labels, "ce", "float32"), F.cross_entropy(logits, labels))
    assert loss_fn(logits, labels, "stablemax", "float32").dtype == torch.float32
    with pytest.raises(ValueError, match="loss kind"):
        loss_fn(logits, labels, "hinge")


def test_gradcheck_float64():
    torch.manual_seed(1)
    logits = (torch.randn(4, 6, dtype=torch.float64) * 3).requires_grad_(True)
    labels = torch.tensor([0, 5, 2, 2])
    assert torch.autograd.gradcheck(lambda z: stablemax_cross_entropy(z, labels), (logits,))
    assert torch.autograd.gradcheck(lambda z: stablemax(z, dim=-1), (logits,))


def test_s_has_slope_one_at_and_around_zero_and_matches_its_two_branches():
    from grokscope.training.losses import _s as s_torch

    x = torch.tensor([-3.0, -1e-12, -0.0, 0.0, 1e-12, 2.5], dtype=torch.float64, requires_grad=True)
    y = s_torch(x)
    y.sum().backward()
    expected = torch.where(x >= 0, x + 1, 1 / (1 - x)).detach()
    assert torch.equal(y.detach(), expected)  # each branch exactly, the boundary included
    assert x.grad.tolist() == pytest.approx([1 / 16, 1.0, 1.0, 1.0, 1.0, 1.0], rel=1e-11)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_no_nan_gradients_for_extreme_logits(dtype):
    z = torch.tensor([[1e30, -1e30, 0.0, 1e4], [-1e4, -1e30, 1.0, -2.0], [5.0, 1e30, -1e30, 3.0]],
                     dtype=dtype, requires_grad=True)
    labels = torch.tensor([1, 0, 2])
    loss = stablemax_cross_entropy(z, labels, dtype)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(z.grad).all()
    p = stablemax(z.detach())
    assert torch.isfinite(p).all()


# ------------------------------------------------------- precision limits


def test_float32_cross_entropy_gradient_vanishes_where_float64_and_stablemax_do_not():
    loss, grad = _ce_grad(15.0)
    assert loss > 0 and grad[0].item() != 0.0
    loss, grad = _ce_grad(25.0)
    assert loss == 0.0 and grad[0].item() == 0.0  # the correct class gets exactly nothing
    assert grad[1:].eq(torch.tensor(math.exp(-25.0), dtype=torch.float32)).all()  # e^-25, not 0
    loss64, grad64 = _ce_grad(25.0, torch.float64)
    assert grad64[0].item() == pytest.approx(-112 * math.exp(-25.0), rel=1e-6)
    for dtype in (torch.float32, torch.float64):
        for gap in (25.0, 104.0, 1e4):
            loss_s, grad_s = _ce_grad(gap, dtype, kind="stablemax")
            # d/dz0 [log(sum s) - log s(z0)] = 1/(gap + 113) - 1/(gap + 1)
            rel = 1e-4 if dtype == torch.float32 else 1e-10  # float32 cancellation at gap 1e4
            assert grad_s[0].item() == pytest.approx(1 / (gap + 113) - 1 / (gap + 1), rel=rel)
            assert loss_s > 0


def _boundary(pred, lo: float, hi: float) -> float:
    """Smallest gap (to 1e-9) in (lo, hi] with pred(gap) True, pred(lo) False, pred(hi) True."""
    assert not pred(lo) and pred(hi)
    while hi - lo > 1e-9:
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if pred(mid) else (mid, hi)
    return hi


def test_float32_cross_entropy_zero_boundary():
    gap = _boundary(lambda g: _ce_grad(g)[1][0].item() == 0.0, 15.0, 25.0)
    assert 24 * math.log(2) <= gap <= math.log(112) + 24 * math.log(2)


def test_float32_full_gradient_zero_only_after_exp_underflow():
    threshold = 150 * math.log(2)  # 103.972: e^-gap < 2^-150 rounds to 0
    assert _ce_grad(103.9)[1].abs().max().item() > 0
    assert _ce_grad(104.0)[1].abs().max().item() == 0.0
    gap = _boundary(lambda g: _ce_grad(g)[1].abs().max().item() == 0.0, 100.0, 110.0)
    assert gap == pytest.approx(threshold, abs=1e-5)


def test_softmax_collapse_fraction_float32():
    for gap in (25.0, 104.0, 1e3):
        assert softmax_collapse_fraction(_gap_logits(gap, rows=3)) == 1.0
    assert softmax_collapse_fraction(_gap_logits(15.0)) == 0.0
    torch.manual_seed(2)
    assert softmax_collapse_fraction(torch.randn(64, N_CLASSES) * 3) == 0.0
    mixed = torch.cat([_gap_logits(30.0, rows=3), _gap_logits(5.0)])
    assert softmax_collapse_fraction(mixed) == 0.75
    assert softmax_collapse_fraction(torch.zeros(0, N_CLASSES)) == 0.0


def test_softmax_collapse_matches_exact_zero_cross_entropy():
    """Collapse <=> float32 F.cross_entropy on the argmax label is exactly 0, gap by gap."""
    for gap in [15.0 + 0.25 * k for k in range(30)]:
        collapsed = softmax_collapse_fraction(_gap_logits(gap)) == 1.0
        assert collapsed == (_ce_grad(gap)[0] == 0.0), gap


def test_softmax_collapse_fraction_float64():
    assert softmax_collapse_fraction(_gap_logits(25.0), "float64") == 0.0
    assert softmax_collapse_fraction(_gap_logits(25.0), torch.float64) == 0.0
    gap = _boundary(lambda g: softmax_collapse_fraction(_gap_logits(g, torch.float64), "float64") == 1.0,
                    30.0, 60.0)
    assert 53 * math.log(2) <= gap <= math.log(112) + 53 * math.log(2)
    # so at gap 104 float64 has collapsed too: 112 e^-104 ~ 1e-43 is far below 2^-53
    assert softmax_collapse_fraction(_gap_logits(104.0, torch.float64), "float64") == 1.0
