"""Binary operations on the symmetric group S_n.

Element ``i`` is ``list(itertools.permutations(range(n)))[i]``. Products are function
compositions: ``(x*y)[i] = x[y[i]]``, i.e. apply y first, then x.
"""

from __future__ import annotations

import itertools

import numpy as np
import torch

PERMUTATION_OPS: tuple[str, ...] = ("x*y", "x*y*x^-1", "x*y*x")


class _Group:
    """The elements of S_n with index-level composition and inversion."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.elements = np.array(list(itertools.permutations(range(n))), dtype=np.int64)  # (m, n)
        self._weights = n ** np.arange(n - 1, -1, -1, dtype=np.int64)  # (n,) base-n digits
        self._lookup = np.full(n**n, -1, dtype=np.int64)  # base-n code -> element index
        self._lookup[self._encode(self.elements)] = np.arange(len(self.elements))
        self.inverse = self.index_of(np.argsort(self.elements, axis=1))  # (m,)

    def _encode(self, perms: np.ndarray) -> np.ndarray:
        """(k, n) permutations -> (k,) base-n integer codes."""
        return perms @ self._weights

    def index_of(self, perms: np.ndarray) -> np.ndarray:
        """(k, n) permutations -> (k,) element indices."""
        return self._lookup[self._encode(perms)]

    def compose(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Element indices (k,), (k,) -> (k,) indices of a∘b, where (a∘b)[i] = a[b[i]]."""
        pa, pb = self.elements[a], self.elements[b]  # (k, n) each
        return self.index_of(np.take_along_axis(pa, pb, axis=1))


def permutation_table(
    op: str, n: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[list[int]]]:
    """All (n!)^2 ordered pairs of ``op`` on S_n, row-major (x outer, y inner).

    Returns (x, y, z, elements): three (N,) long tensors and the permutations in index order.
    """
    group = _Group(n)
    m = len(group.elements)
    x, y = np.divmod(np.arange(m * m, dtype=np.int64), m)  # (m*m,) each
    xy = group.compose(x, y)
    if op == "x*y":
        z = xy
    elif op == "x*y*x^-1":
        z = group.compose(xy, group.inverse[x])
    elif op == "x*y*x":
        z = group.compose(xy, x)
    else:
        raise ValueError(f"unknown permutation op {op!r}")
    elements = group.elements.tolist()
    return torch.from_numpy(x), torch.from_numpy(y), torch.from_numpy(z), elements
