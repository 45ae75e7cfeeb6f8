"""⊥Grad: keep only the gradient component orthogonal to the weights (Prieto et al. 2025).

"Grokking at the edge of numerical stability" shows that, once the training set is fit, the
cross-entropy gradient mostly points along the weights themselves ("naive loss minimisation":
scaling w up lowers the loss without changing predictions), which drives the logits towards
softmax collapse. ⊥Grad removes that radial component, per parameter tensor::

    w = p.flatten(),  g = p.grad.flatten()                         (n,)
    g_perp = g - (w·g) / (w·w + eps) * w                            (n,)   so g_perp·w ≈ 0
    g_new  = g_perp * ||g|| / (||g_perp|| + eps)                    (n,)   so ||g_new|| = ||g||

and writes ``g_new`` back into ``p.grad`` with its original shape. Works with any optimizer:

    opt = OrthoGrad(torch.optim.AdamW(model.parameters(), lr=1e-3))
    loss.backward(); opt.step()

Numerics: arithmetic is in the parameter's dtype (float16/bfloat16 are promoted to float32). The
projection is applied twice (Gram-Schmidt with re-orthogonalisation), so ``g_new·w`` stays at
rounding level even when ``g`` is nearly parallel to ``w``. If ``g`` is parallel to ``w`` up to
rounding (``||g_perp|| <= 4·eps_dtype·sqrt(n)·||g||``) there is no meaningful orthogonal direction
and the gradient is set to exactly zero instead of rescaling rounding noise to full norm. A
zero weight tensor (``w·w = 0``) leaves its gradient unchanged. No host synchronisation.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch

__all__ = ["OrthoGrad", "orthogonalize_"]


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    return dtype if dtype in (torch.float32, torch.float64) else torch.float32


def _dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a·b for flat (n,) tensors as a cascade-summed reduction: on CPU torch.dot and
    linalg.vector_norm accumulate float32 with ~1e-5 relative error at n = 1e6, this ~1e-8."""
    return (a * b).sum()


def _remove_radial(w: torch.Tensor, g: torch.Tensor, ww: torch.Tensor, eps: float) -> torch.Tensor:
    """g - (w·g)/(ww + eps) * w for flat (n,) tensors, ww = w·w; w = 0 gives g back exactly."""
    return g - (_dot(w, g) / (ww + eps)) * w


@torch.no_grad()
def _orthogonalize_one(p: torch.Tensor, eps: float) -> None:
    grad = p.grad
    if grad.is_sparse:
        raise ValueError("orthogonalize_ does not support sparse gradients")
    cdt = _compute_dtype(p.dtype)
    w = p.detach().reshape(-1).to(cdt)  # (n,)
    g = grad.reshape(-1).to(cdt)  # (n,)
    ww = _dot(w, w)
    g_perp = _remove_radial(w, _remove_radial(w, g, ww, eps), ww, eps)  # (n,)
    g_norm = _dot(g, g).sqrt()
    perp_norm = _dot(g_perp, g_perp).sqrt()
    scale = g_norm / (perp_norm + eps)
    noise_floor = 4.0 * torch.finfo(cdt).eps * math.sqrt(max(w.numel(), 1))
    scale = torch.where(perp_norm <= noise_floor * g_norm, torch.zeros_like(scale), scale)
    scale = torch.where(ww == 0, torch.ones_like(scale), scale)  # w = 0: unchanged
    grad.copy_((g_perp * scale).view(grad.shape))


def orthogonalize_(params: Iterable[torch.Tensor], eps: float = 1e-30) -> None:
    """Replace, in place, each ``p.grad`` (any shape) by its part orthogonal to ``p``, rescaled to
    the original norm (see module docstring). Parameters whose grad is None are skipped."""
    if isinstance(params, torch.Tensor):
        params = [params]
    for p in params:
        if p.grad is not None:
            _orthogonalize_one(p, eps)


class OrthoGrad(torch.optim.Optimizer):
    """Wrap any ``torch.optim.Optimizer`` so that every ``step`` first applies :func:`orthogonalize_`
    to the gradients of all parameters in ``base.param_groups``, then runs the base update.

    ``param_groups``, ``state``, ``defaults``, ``zero_grad``, ``state_dict``, ``load_state_dict`` and
    ``add_param_group`` are the base optimizer's (setting ``opt.param_groups[i]["lr"]`` changes the
    base's learning rate; the state dict is exactly the base's, so checkpoints are interchangeable).
    Being an ``Optimizer`` subclass, it works with ``torch.optim.lr_scheduler``. Other attributes
    (e.g. hook registration) are forwarded to the base.

    With a closure (e.g. LBFGS), the closure is wrapped so the gradients it recomputes are
    orthogonalized after every evaluation.
    """

    def __init__(self, base_optimizer: torch.optim.Optimizer, eps: float = 1e-30) -> None:
        # Optimizer.__init__ is deliberately not called: all state lives in the base optimizer.
        if not isinstance(base_optimizer, torch.optim.Optimizer):
            raise TypeError(f"OrthoGrad wraps a torch.optim.Optimizer, got {type(base_optimizer).__name__}")
        if not (eps >= 0.0 and math.isfinite(eps)):
            raise ValueError(f"eps must be a finite number >= 0, got {eps}")
        self._base = base_optimizer
        self.eps = float(eps)

    @property
    def base_optimizer(self) -> torch.optim.Optimizer:
        return self._base

    @property
    def param_groups(self) -> list[dict[str, Any]]:  # type: ignore[override]
        return self._base.param_groups

    @property
    def state(self):  # type: ignore[override]
        return self._base.state

    @property
    def defaults(self) -> dict[str, Any]:  # type: ignore[override]
        return self._base.defaults

    def _params(self) -> list[torch.Tensor]:
        return [p for group in self._base.param_groups for p in group["params"]]

    def step(self, closure: Callable[[], Any] | None = None) -> Any:  # type: ignore[override]
        if closure is None:
            orthogonalize_(self._params(), self.eps)
            return self._base.step()

        def _closure() -> Any:
            loss = closure()
            orthogonalize_(self._params(), self.eps)
            return loss

        return self._base.step(_closure)

    def zero_grad(self, set_to_none: bool = True) -> None:
        self._base.zero_grad(set_to_none=set_to_none)

    def state_dict(self) -> dict[str, Any]:  # type: ignore[override]
        return self._base.state_dict()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:  # type: ignore[override]
        self._base.load_state_dict(state_dict)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        self._base.add_param_group(param_group)

    def __getattr__(self, name: str) -> Any:
        # Only reached when normal lookup fails; never recurse before _base exists (unpickling).
        if name == "_base" or (name.startswith("__") and name.endswith("__")):
            raise AttributeError(name)
        return getattr(self._base, name)

    def __getstate__(self) -> dict[str, Any]:
        return {"_base": self._base, "eps": self.eps}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    def __repr__(self) -> str:
        return f"OrthoGrad(eps={self.eps}, base={self._base!r})"
