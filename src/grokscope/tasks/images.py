"""Image tasks: scikit-learn's handwritten digits (1,797 8x8 images shipped inside its wheel, so
nothing is downloaded), split by class so every digit keeps its share of the training set.

    grokscope train --task.kind digits --task.options.train_size 1000 --model.arch mlp

Pixels are scaled to [0, 1] (the data set's 0..16 divided by 16); inputs are (n, 1, 8, 8).
`task.label_noise` replaces that fraction of the training labels by random wrong ones (seeded) and
adds a `train_clean` split with the true labels, as for the tables.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from grokscope.errors import ConfigError
from grokscope.tasks.task import Split, Task

N_DIGITS = 1797
N_CLASSES = 10


@dataclass(frozen=True)
class DigitsOptions:
    train_size: float = 1000
    """Training images: a count (> 1) or a fraction of the 1,797 (<= 1), drawn class by class with
    the split seed (every class keeps its share); the remaining images are the test split."""


def load_digits() -> tuple[torch.Tensor, torch.Tensor]:
    """(images (1797, 1, 8, 8) float32 in [0, 1], labels (1797,) long) from scikit-learn."""
    try:
        from sklearn.datasets import load_digits as sk_load
    except ImportError:
        raise ConfigError("task.kind: 'digits' needs scikit-learn "
                          "(pip install 'grokscope[images]')") from None
    d = sk_load()
    images = torch.tensor(d.images, dtype=torch.float32).unsqueeze(1) / 16.0
    return images, torch.tensor(d.target, dtype=torch.long)


def n_train_of(train_size: float, n: int = N_DIGITS) -> int:
    """The number of training images `train_size` asks for (a count, or a fraction when <= 1)."""
    return round(train_size * n) if train_size <= 1 else int(train_size)


def stratified_split(labels: torch.Tensor, n_train: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(train indices, test indices): each class gives round-to-total shares of `n_train` in
    proportion to its size (largest remainders), its images chosen by a seeded permutation."""
    g = torch.Generator().manual_seed(seed)
    classes = torch.unique(labels).tolist()
    members = {c: (labels == c).nonzero().flatten() for c in classes}
    exact = {c: n_train * len(members[c]) / len(labels) for c in classes}
    take = {c: math.floor(v) for c, v in exact.items()}
    for c in sorted(classes, key=lambda c: (take[c] - exact[c], c))[:n_train - sum(take.values())]:
        take[c] += 1  # the largest remainders first
    train, test = [], []
    for c in classes:
        idx = members[c][torch.randperm(len(members[c]), generator=g)]
        train.append(idx[:take[c]])
        test.append(idx[take[c]:])
    return torch.sort(torch.cat(train)).values, torch.sort(torch.cat(test)).values


def noisy_labels(labels: torch.Tensor, fraction: float, n_classes: int,
                 seed: int) -> tuple[torch.Tensor, int]:
    """(labels with round(fraction * n) of them replaced by a random *other* class, how many)."""
    g = torch.Generator().manual_seed(seed + 0x5EED)
    k = round(fraction * len(labels))
    idx = torch.randperm(len(labels), generator=g)[:k]
    shift = torch.randint(1, n_classes, (k,), generator=g)
    out = labels.clone()
    out[idx] = (labels[idx] + shift) % n_classes
    return out, k


def _size(cfg) -> float:
    return cfg.task.options.get("train_size", DigitsOptions.train_size)


def validate_digits(cfg) -> None:
    size = _size(cfg)
    if not (size > 0 and math.isfinite(size)):
        raise ConfigError(f"task.options.train_size: must be > 0 (a count, or a fraction <= 1), got {size!r}")
    if size > 1 and size != int(size):
        raise ConfigError(f"task.options.train_size: a count must be a whole number, got {size!r}")
    n = n_train_of(size)
    if not N_CLASSES <= n <= N_DIGITS - N_CLASSES:
        raise ConfigError(f"task.options.train_size: must give {N_CLASSES}..{N_DIGITS - N_CLASSES} of the "
                          f"{N_DIGITS} images, got {size!r} ({n} images)")
    noise = cfg.task.label_noise
    if not 0 <= noise < 1:
        raise ConfigError(f"task.label_noise: must be in [0, 1), got {noise!r}")


def build_digits(cfg) -> Task:
    """scikit-learn's digits, split class by class into train_size training images and the rest."""
    images, labels = load_digits()
    n_train = n_train_of(_size(cfg))
    train_idx, test_idx = stratified_split(labels, n_train, cfg.effective_split_seed)
    train_labels = labels[train_idx]
    splits = {"train": Split(images[train_idx], train_labels),
              "test": Split(images[test_idx], labels[test_idx])}
    n_noisy = 0
    if cfg.task.label_noise > 0:
        noisy, n_noisy = noisy_labels(train_labels, cfg.task.label_noise, N_CLASSES, cfg.effective_split_seed)
        splits = {"train": Split(images[train_idx], noisy), "train_clean": splits["train"],
                  "test": splits["test"]}
    meta = {"kind": "digits", "source": "sklearn.datasets.load_digits", "image_shape": [1, 8, 8],
            "n_train": n_train, "n_test": len(test_idx), "n_noisy": n_noisy,
            "train_class_counts": torch.bincount(train_labels, minlength=N_CLASSES).tolist()}
    return Task(kind="digits", splits=splits, input_kind="image", input_shape=(1, 8, 8), n_classes=N_CLASSES,
                meta=meta)
