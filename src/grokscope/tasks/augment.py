"""Commutative augmentation: add the swapped partner (y, x) of every training pair (x, y).

For a commutative operation, z(x, y) == z(y, x), so once (x, y) is a training example its
swap carries no new information about the operation — but if the swap sits in the test set,
test accuracy partly measures the trivial symmetry instead of generalisation. `augment_commutative`
moves every such partner from the test set into the training set.

Effect on the effective train fraction
--------------------------------------
Take a commutative table of N rows, D of them diagonal (x == y; for the full Z_p table
N = p*p and D = p), and a training set of m rows drawn uniformly without replacement
(f = m / N). A diagonal row is its own partner: it is in train afterwards with probability
m / N. An off-diagonal row (x, y) is in train afterwards if it or (y, x) was drawn, i.e. unless
both were left out, which happens with probability q = (N - m)(N - m - 1) / (N (N - 1)).
So the expected train fraction after augmentation is exactly

    E[n_train_after] / N = (D / N) * (m / N) + (1 - D / N) * (1 - q).

For the full Z_p table (D / N = 1 / p) and large N this is

    1 - (1 - f)^2 - f (1 - f) / p,

i.e. 1 - (1 - f)^2 with a diagonal correction; e.g. f = 0.3 gives 0.51 - 0.21 / p, which is
0.5078 for p = 97. `expected_augmented_fraction` evaluates the exact formula.
"""

from __future__ import annotations

import torch

from grokscope.errors import ConfigError
from grokscope.tasks.table import TableTask as Task
from grokscope.tasks.table import table_task

__all__ = ["augment_commutative", "expected_augmented_fraction"]


def _row_lookup(task: Task) -> torch.Tensor:
    """(n_values, n_values) long array: table row of pair (x, y), or -1 where the pair is missing."""
    n = task.n_values
    index = torch.full((n, n), -1, dtype=torch.long)
    index[task.x, task.y] = torch.arange(task.z.numel(), dtype=torch.long)
    return index


def _swap_rows(task: Task) -> torch.Tensor:
    """(N,) long: the row of (y, x) for every row (x, y); raises if the table is not commutative."""
    partner = _row_lookup(task)[task.y, task.x]  # (N,), -1 where (y, x) is missing
    present = partner >= 0
    commutative = bool(present.all()) and bool(torch.equal(task.z[partner], task.z))
    if not commutative:
        raise ConfigError(
            f"task.augment: op {task.op!r} is not commutative; "
            "augmentation needs z(x, y) == z(y, x)"
        )
    return partner


def augment_commutative(task: Task) -> Task:
    """Return a new `Task` whose training set also holds the swap (y, x) of each train pair (x, y).

    Each added pair takes the training label and the ``noisy`` flag of its partner, so label
    noise propagates. ``meta`` gains "augmented", "n_train_before" and
    "effective_train_fraction" and has "n_train", "n_test" and "n_noisy" updated. Raises
    `ConfigError` (field ``task.augment``) when the table is not commutative or when no
    test pair would be left.
    """
    n_table = task.z.numel()
    partner = _swap_rows(task)  # (N,)
    in_train = task.train_mask

    partner_of_train = partner[task.train_idx]  # (n_train,)
    # Swap is an involution, so distinct train rows have distinct partners: no duplicates here.
    new = ~in_train[partner_of_train]  # (n_train,) True where the partner is a test row
    rows = torch.cat([task.train_idx, partner_of_train[new]])  # (n_train_after,)
    labels = torch.cat([task.train_labels, task.train_labels[new]])
    noisy = torch.cat([task.noisy, task.noisy[new]])
    rows, order = torch.sort(rows)
    labels, noisy = labels[order], noisy[order]

    in_train[rows] = True
    test_idx = torch.nonzero(~in_train).flatten()  # (n_test_after,), sorted
    if test_idx.numel() == 0:
        raise ConfigError(
            "task.augment: augmentation moved every test pair into training; "
            "lower task.train_fraction"
        )
    meta = {
        **task.meta,
        "augmented": "commutative",
        "n_train_before": int(task.train_idx.numel()),
        "n_train": int(rows.numel()),
        "n_test": int(test_idx.numel()),
        "n_noisy": int(noisy.sum()),
        "effective_train_fraction": rows.numel() / n_table,
    }
    return table_task(task.kind, task.op, task.n_values, task.x, task.y, task.z, rows, test_idx, labels,
                      noisy, meta)


def expected_augmented_fraction(n_table: int, n_diagonal: int, n_train: int) -> float:
    """Exact expected train fraction after augmentation (see the module docstring).

    ``n_table`` rows of which ``n_diagonal`` have x == y, ``n_train`` drawn uniformly without
    replacement before augmentation.
    """
    if not 0 <= n_diagonal <= n_table or not 0 <= n_train <= n_table or n_table < 2:
        raise ValueError(
            f"need 0 <= n_diagonal, n_train <= n_table and n_table >= 2, got "
            f"{n_table=}, {n_diagonal=}, {n_train=}"
        )
    f = n_train / n_table
    both_out = (n_table - n_train) * (n_table - n_train - 1) / (n_table * (n_table - 1))
    d = n_diagonal / n_table
    return d * f + (1 - d) * (1 - both_out)
