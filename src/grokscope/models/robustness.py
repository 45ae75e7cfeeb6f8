"""Robustness and local complexity of a classifier on inputs in a box (images in [0, 1]).

- `pgd_accuracy`: accuracy under the untargeted L∞ PGD attack (Madry et al.; Humayun et al. 2024 use
  10 steps with a random start): x' starts uniform in the eps-ball, takes `steps` signed-gradient
  steps of `step_size` on the cross-entropy of the outputs, each projected back onto the ball and
  the box. An example counts as robust only when every iterate (the start included) is still
  classified correctly, so a longer attack never reports more robustness than a shorter one.
- `fgsm_accuracy`: the one-step attack x + eps * sign(grad), clipped to the box.
- `local_complexity` (Humayun et al. 2024): around each point x, the 2P vertices x ± r v_p of a
  cross-polytope on P orthonormal directions; the count of neurons (every entry of every
  `hook_pre` activation: hidden units, or conv channels at each pixel) whose pre-activation sign is
  not the same at all vertices, summed over layers. A network without hidden layers counts 0.

Every function takes a `torch.Generator` for its randomness, so measuring never touches the global
RNG (a resumed run continues exactly), sets the model to eval mode and restores its mode, and
never writes parameter gradients.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from grokscope.models.layers import eval_mode

__all__ = ["fgsm_accuracy", "local_complexity", "ortho_directions", "pgd_accuracy", "pre_activation_names"]


def _correct(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(x).argmax(-1) == y  # (n,) bool


def _input_grad(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """d CE(model(x), y) / dx, without touching parameter gradients. (n, *shape)."""
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        loss = F.cross_entropy(model(x).double(), y, reduction="sum")
        (grad,) = torch.autograd.grad(loss, x)
    return grad


def pgd_accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: float, steps: int = 10,
                 step_size: float | None = None, box: tuple[float, float] = (0.0, 1.0),
                 generator: torch.Generator | None = None) -> float:
    """Share of (x (n, *shape), y (n,)) classified correctly at every iterate of an L∞ PGD attack of
    radius `eps` (random start, `steps` steps of `step_size`, default eps / 4), inside `box`.
    eps = 0 gives the clean accuracy."""
    if eps < 0 or steps < 0:
        raise ValueError(f"pgd_accuracy: eps and steps must be >= 0, got {eps}, {steps}")
    step_size = eps / 4 if step_size is None else step_size
    lo, hi = box
    with eval_mode(model):
        x = x.detach()
        noise = torch.rand(x.shape, generator=generator, dtype=x.dtype).to(x.device)
        adv = (x + eps * (2 * noise - 1)).clamp(lo, hi)  # uniform random start in the ball and the box
        robust = _correct(model, adv, y)
        for _ in range(steps):
            adv = adv + step_size * _input_grad(model, adv, y).sign()
            adv = torch.minimum(torch.maximum(adv, x - eps), x + eps).clamp(lo, hi)  # project: ball, box
            robust &= _correct(model, adv, y)
    return float(robust.double().mean())


def fgsm_accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: float,
                  box: tuple[float, float] = (0.0, 1.0)) -> float:
    """Accuracy on x + eps * sign(grad CE), clipped to `box` (the fast gradient sign method)."""
    with eval_mode(model):
        adv = (x.detach() + eps * _input_grad(model, x, y).sign()).clamp(*box)
        return float(_correct(model, adv, y).double().mean())


def pre_activation_names(model: torch.nn.Module) -> list[str]:
    """The hook points whose activations are pre-activations of a nonlinearity ('…hook_pre')."""
    points = getattr(model, "hook_points", None)
    return [] if points is None else [n for n in points() if n.endswith("hook_pre")]


def ortho_directions(n: int, d: int, p: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """n independent sets of p orthonormal directions in R^d (QR of Gaussian matrices): (n, p, d)."""
    if not 1 <= p <= d:
        raise ValueError(f"ortho_directions: need 1 <= directions <= input size {d}, got {p}")
    q, _ = torch.linalg.qr(torch.randn(n, d, p, generator=generator, dtype=torch.float64))  # (n, d, p)
    return q.transpose(1, 2)  # (n, p, d)


def local_complexity(model: torch.nn.Module, x: torch.Tensor, *, radius: float, directions: int = 25,
                     generator: torch.Generator | None = None, chunk: int = 16_384) -> torch.Tensor:
    """Per point of x (n, *shape): the number of neurons whose pre-activation changes sign across the
    2P vertices x ± radius * v_p (P = `directions` orthonormal v_p, drawn per point), summed over the
    model's `hook_pre` layers. (n,) float64; zeros for a model without such layers."""
    names = pre_activation_names(model)
    n, shape = x.shape[0], tuple(x.shape[1:])
    if not names or n == 0:
        return torch.zeros(n, dtype=torch.float64)
    d = x[0].numel()
    v = ortho_directions(n, d, directions, generator).to(x.device, x.dtype)  # (n, P, d)
    frame = torch.cat([v, -v], dim=1) * radius  # (n, 2P, d)
    vertices = (x.reshape(n, 1, d) + frame).reshape(n * 2 * directions, *shape)  # (n*2P, *shape)
    counts = torch.zeros(n, dtype=torch.float64, device=x.device)
    per_chunk = max(1, chunk // (2 * directions)) * 2 * directions  # whole frames per forward pass
    with eval_mode(model), torch.no_grad():
        for start in range(0, vertices.shape[0], per_chunk):
            part = vertices[start:start + per_chunk]
            _, cache = model.run_with_cache(part, names=names)
            k = part.shape[0] // (2 * directions)  # frames in this chunk
            first = start // (2 * directions)
            for name in names:
                pre = cache[name].reshape(k, 2 * directions, -1)  # (frames, 2P, neurons)
                pos = pre > 0
                cut = pos.any(1) & ~pos.all(1)  # (frames, neurons): the neuron's hyperplane cuts the frame
                counts[first:first + k] += cut.sum(1).double()
    return counts.cpu()
