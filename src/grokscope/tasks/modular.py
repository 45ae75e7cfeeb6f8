"""Binary operations on Z_p (the classic grokking tables)."""

from __future__ import annotations

import numpy as np
import torch

MODULAR_OPS: tuple[str, ...] = (
    "x+y",
    "x-y",
    "x*y",
    "x/y",
    "x/y if y odd else x-y",
    "x^2+y^2",
    "x^2+xy+y^2",
    "x^2+xy+y^2+x",
    "x^3+xy",
    "x^3+xy^2+y",
)

# Ops that use a modular inverse and therefore need p prime.
PRIME_OPS: frozenset[str] = frozenset({"x/y", "x/y if y odd else x-y"})


def is_prime(p: int) -> bool:
    """Trial-division primality test (p is at most a few thousand here)."""
    if p < 2:
        return False
    d = 2
    while d * d <= p:
        if p % d == 0:
            return False
        d += 1
    return True


def _inverses(p: int) -> np.ndarray:
    """(p,) int64 array with inv[y] = y^-1 mod p for y >= 1; inv[0] is unused (0)."""
    inv = np.zeros(p, dtype=np.int64)
    inv[1:] = [pow(int(v), -1, p) for v in range(1, p)]
    return inv


def _apply(op: str, x: np.ndarray, y: np.ndarray, p: int) -> np.ndarray:
    """z = op(x, y) mod p, elementwise over int64 arrays (reducing often to avoid overflow)."""
    x2 = x * x % p
    y2 = y * y % p
    xy = x * y % p
    if op == "x+y":
        return (x + y) % p
    if op == "x-y":
        return (x - y) % p
    if op == "x*y":
        return xy
    if op == "x/y":
        return x * _inverses(p)[y] % p
    if op == "x/y if y odd else x-y":
        return np.where(y % 2 == 1, x * _inverses(p)[y] % p, (x - y) % p)
    if op == "x^2+y^2":
        return (x2 + y2) % p
    if op == "x^2+xy+y^2":
        return (x2 + xy + y2) % p
    if op == "x^2+xy+y^2+x":
        return (x2 + xy + y2 + x) % p
    if op == "x^3+xy":
        return (x2 * x + xy) % p
    if op == "x^3+xy^2+y":
        return (x2 * x + x * y2 + y) % p
    raise ValueError(f"unknown modular op {op!r}")


def modular_table(op: str, p: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """All valid ordered pairs of ``op`` on Z_p, row-major (x outer, y inner).

    Returns (x, y, z), each (N,) long, with N = p*(p-1) for "x/y" (y != 0) and p*p otherwise.
    Arguments are assumed valid (see `grokscope.tasks.validate_task`).
    """
    x, y = np.divmod(np.arange(p * p, dtype=np.int64), p)  # (p*p,) each, x outer
    if op == "x/y":
        keep = y != 0
        x, y = x[keep], y[keep]  # (p*(p-1),)
    z = _apply(op, x, y, p)
    return torch.from_numpy(x), torch.from_numpy(y), torch.from_numpy(np.ascontiguousarray(z))
