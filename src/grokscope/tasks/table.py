"""Binary-operation tables as a Task: the `TableTask` container, its split and label-noise helpers."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from grokscope.tasks.task import Split, Task


@dataclass(frozen=True, eq=False, kw_only=True)
class TableTask(Task):
    """A full binary-operation table, a train/test split of it and (noisy) train labels.

    Every row ``i`` of the table is one valid ordered pair ``(x[i], y[i])`` with true
    answer ``z[i]``. Operands and answers are indices in ``0..n_values-1``; the token
    vocabulary adds two symbols after them: ``op_token`` and ``eq_token``. Its splits are
    ``train`` (tokens [x, op, y, =] of the training rows, noisy labels), ``test`` and, with label
    noise, ``train_clean`` (the training rows with their true labels).
    """

    op: str
    n_values: int  # operand symbols; also the number of output classes
    x: torch.Tensor  # (N,) long
    y: torch.Tensor  # (N,) long
    z: torch.Tensor  # (N,) long, true answers
    train_idx: torch.Tensor  # (n_train,) long, sorted
    test_idx: torch.Tensor  # (n_test,) long, sorted
    train_labels: torch.Tensor  # (n_train,) long, z[train_idx] with label noise
    noisy: torch.Tensor  # (n_train,) bool, True where the label was replaced

    @property
    def train_mask(self) -> torch.Tensor:
        """(N,) bool over the table rows: True for the training rows."""
        mask = torch.zeros(self.z.numel(), dtype=torch.bool)
        mask[self.train_idx] = True
        return mask

    @property
    def op_token(self) -> int:
        """Token id of the operator symbol."""
        return self.n_values

    @property
    def eq_token(self) -> int:
        """Token id of the '=' symbol."""
        return self.n_values + 1

    def tokens(self, idx: torch.Tensor | None = None) -> torch.Tensor:
        """Rows ``[x, op_token, y, eq_token]`` for table indices ``idx`` (all rows when None).

        Returns a (len(idx), 4) long tensor.
        """
        x, y = (self.x, self.y) if idx is None else (self.x[idx], self.y[idx])  # (L,)
        op = torch.full_like(x, self.n_values)
        eq = torch.full_like(x, self.n_values + 1)
        return torch.stack([x, op, y, eq], dim=1)  # (L, 4)


def table_task(kind: str, op: str, n_values: int, x: torch.Tensor, y: torch.Tensor, z: torch.Tensor,
               train_idx: torch.Tensor, test_idx: torch.Tensor, train_labels: torch.Tensor,
               noisy: torch.Tensor, meta: dict) -> TableTask:
    """A `TableTask` with its splits built from the table and the split indices."""
    x4 = torch.stack([x, torch.full_like(x, n_values), y, torch.full_like(x, n_values + 1)], dim=1)  # (N, 4)
    splits = {"train": Split(x4[train_idx], train_labels), "test": Split(x4[test_idx], z[test_idx])}
    if bool(noisy.any()):
        splits.update(noise_splits(x4[train_idx], train_labels, z[train_idx], noisy))
    return TableTask(kind=kind, splits=splits, input_kind="tokens", input_shape=(4,), n_classes=n_values,
                     vocab_size=n_values + 2, answer_position=-1, read_positions=(0, 2), read_vocab=n_values,
                     meta=meta, op=op, n_values=n_values, x=x, y=y, z=z, train_idx=train_idx,
                     test_idx=test_idx, train_labels=train_labels, noisy=noisy)


def _split(
    n_table: int, train_fraction: float, split_seed: int, weights: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random train/test split of ``n_table`` rows; returns sorted (train_idx, test_idx). With
    `weights` (n_table,), rows enter the training split drawn without replacement in proportion."""
    n_train = min(max(round(train_fraction * n_table), 1), n_table - 1)
    g = torch.Generator().manual_seed(split_seed)
    if weights is None:
        perm = torch.randperm(n_table, generator=g)  # (N,)
    else:  # a weighted draw of every row without replacement: the order of entry
        perm = torch.multinomial(weights, n_table, replacement=False, generator=g)  # (N,)
    train_idx, _ = torch.sort(perm[:n_train])
    test_idx, _ = torch.sort(perm[n_train:])
    return train_idx, test_idx


def apply_label_noise(
    labels: torch.Tensor, n_values: int, label_noise: float, split_seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Replace ``round(label_noise * len(labels))`` labels by uniformly random wrong ones.

    Uses its own generator seeded with ``split_seed + 1`` so that the split and the
    noise are independent streams. Returns (noisy_labels, noisy_mask), both (n_train,).
    """
    n_train = labels.numel()
    n_noisy = round(label_noise * n_train)
    noisy = torch.zeros(n_train, dtype=torch.bool)
    out = labels.clone()
    if n_noisy == 0:
        return out, noisy
    g = torch.Generator().manual_seed(split_seed + 1)
    where = torch.randperm(n_train, generator=g)[:n_noisy]  # (n_noisy,)
    # A shift in 1..n_values-1 never maps a label onto itself.
    shift = torch.randint(1, n_values, (n_noisy,), generator=g)  # (n_noisy,)
    out[where] = (labels[where] + shift) % n_values
    noisy[where] = True
    return out, noisy


def noise_splits(inputs: torch.Tensor, given: torch.Tensor, true: torch.Tensor,
                 noisy: torch.Tensor) -> dict:
    """The splits a run with label noise adds to its training split (same inputs): `train_clean`
    (every training example with its true label), `train_noisy` (the corrupted examples with the
    labels they were given: memorizing the noise) and `train_noisy_true` (the same examples with
    their true labels: the rule winning over the noise), after Doshi et al. 2023."""
    return {"train_clean": Split(inputs, true), "train_noisy": Split(inputs[noisy], given[noisy]),
            "train_noisy_true": Split(inputs[noisy], true[noisy])}


def make_task(
    kind: str,
    op: str,
    n_values: int,
    table: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    *,
    train_fraction: float,
    split_seed: int,
    label_noise: float,
    meta: dict,
    skew: float = 0.0,
) -> TableTask:
    """Split a built ``(x, y, z)`` table (pairs weighted by ((x+1)(y+1))^-skew when skew > 0), add
    label noise and wrap everything in a `Task`."""
    x, y, z = table
    weights = ((x + 1.0) * (y + 1.0)).double() ** -skew if skew else None
    train_idx, test_idx = _split(z.numel(), train_fraction, split_seed, weights)
    train_labels, noisy = apply_label_noise(z[train_idx], n_values, label_noise, split_seed)
    meta = {
        "kind": kind,
        "op": op,
        **meta,
        "n_train": int(train_idx.numel()),
        "n_test": int(test_idx.numel()),
        "n_table": int(z.numel()),
        "n_noisy": int(noisy.sum()),
    }
    if skew:  # how biased the training split came out: both operands in the lower half
        small = (x[train_idx] < n_values / 2) & (y[train_idx] < n_values / 2)
        meta.update(skew=skew, train_small_share=round(float(small.double().mean()), 4))
    return table_task(kind, op, n_values, x, y, z, train_idx, test_idx, train_labels, noisy, meta)
