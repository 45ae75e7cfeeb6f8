"""Image tasks: scikit-learn's handwritten digits (1,797 8x8 images shipped inside its wheel, so
nothing is downloaded), split by class so every digit keeps its share of the training set.

    grokscope train --task.kind digits --task.options.train_size 1000 --model.arch mlp

Pixels are scaled to [0, 1] (the data set's 0..16 divided by 16); inputs are (n, 1, 8, 8).
`task.label_noise` replaces that fraction of the training labels by random wrong ones (seeded) and
adds the splits `train_clean` (true labels), `train_noisy` and `train_noisy_true` (the corrupted
images with their given and their true labels), as for the tables.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from grokscope.errors import ConfigError
from grokscope.tasks.image_measures import RobustnessOptions, check_robustness_options, image_task
from grokscope.tasks.table import apply_label_noise, noise_splits
from grokscope.tasks.task import Split, Task

N_DIGITS = 1797
N_CLASSES = 10


@dataclass(frozen=True)
class DigitsOptions(RobustnessOptions):
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
    check_robustness_options(cfg.task.options, 64)


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
        noisy, flipped = apply_label_noise(train_labels, N_CLASSES, cfg.task.label_noise,
                                           cfg.effective_split_seed)
        n_noisy = int(flipped.sum())
        splits = {"train": Split(images[train_idx], noisy),
                  **noise_splits(images[train_idx], noisy, train_labels, flipped), "test": splits["test"]}
    meta = {"kind": "digits", "source": "sklearn.datasets.load_digits", "image_shape": [1, 8, 8],
            "n_train": n_train, "n_test": len(test_idx), "n_noisy": n_noisy,
            "train_class_counts": torch.bincount(train_labels, minlength=N_CLASSES).tolist()}
    return image_task(cfg.task.options, kind="digits", splits=splits, input_kind="image",
                      input_shape=(1, 8, 8), n_classes=N_CLASSES, meta=meta)


# ------------------------------------------------------------------------------ a user's image files

IDX_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
             "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")


@dataclass(frozen=True)
class ImageFilesOptions(RobustnessOptions):
    path: str = ""
    """A .npz file with arrays x_train, y_train, x_test, y_test (images (n, H, W) or (n, H, W, C)
    or (n, C, H, W), labels (n,)), or a folder with MNIST-style IDX files (train-images-idx3-ubyte,
    train-labels-idx1-ubyte, t10k-..., optionally .gz). Read only; never downloaded; no pickles."""
    train_size: int = 0
    """Training images: a class-balanced subset of this many (0: all of them), seeded by the split seed."""


def read_idx(path) -> torch.Tensor:
    """An IDX array (the MNIST format: magic 0 0 type ndim, big-endian dims, data), .gz allowed."""
    import gzip
    import struct
    from pathlib import Path

    path = Path(path)
    raw = gzip.open(path).read() if path.suffix == ".gz" else path.read_bytes()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise ConfigError(f"task.options.path: {str(path)!r} is not an unsigned-byte IDX file")
    ndim = raw[3]
    dims = struct.unpack(f">{ndim}I", raw[4:4 + 4 * ndim])
    data = raw[4 + 4 * ndim:]
    if len(data) != math.prod(dims):
        raise ConfigError(f"task.options.path: {str(path)!r} holds {len(data)} bytes, its header says "
                          f"{math.prod(dims)}")
    return torch.frombuffer(bytearray(data), dtype=torch.uint8).reshape(dims)


def _find(folder, name):
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    raise ConfigError(f"task.options.path: {str(folder)!r} has no {name} (or {name}.gz)")


def read_image_files(path: str) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """{"train": (images (n, C, H, W) float in [0, 1], labels (n,) long), "test": (...)}."""
    from pathlib import Path

    import numpy as np

    p = Path(path)
    if p.is_dir():
        arrays = {split: (read_idx(_find(p, im)), read_idx(_find(p, lab)))
                  for split, (im, lab) in IDX_FILES.items()}
    elif p.is_file() and p.suffix == ".npz":
        try:
            with np.load(p, allow_pickle=False) as z:
                missing = [k for k in NPZ_KEYS if k not in z.files]
                if missing:
                    raise ConfigError(f"task.options.path: {path!r} lacks arrays {missing} "
                                      f"(needs {list(NPZ_KEYS)})")
                arrays = {s: (torch.from_numpy(z[f"x_{s}"].copy()), torch.from_numpy(z[f"y_{s}"].copy()))
                          for s in ("train", "test")}
        except (ValueError, OSError) as e:
            raise ConfigError(f"task.options.path: {path!r} is not a readable .npz without pickles "
                              f"({e})") from None
    else:
        raise ConfigError(f"task.options.path: must be a .npz file or a folder of IDX files, got {path!r}")
    out = {}
    for split, (x, y) in arrays.items():
        if x.ndim == 3:
            x = x.unsqueeze(1)  # (n, 1, H, W)
        elif x.ndim == 4 and x.shape[-1] in (1, 3) and x.shape[1] not in (1, 3):
            x = x.permute(0, 3, 1, 2)  # channels last -> (n, C, H, W)
        if x.ndim != 4 or y.ndim != 1 or len(x) != len(y) or len(y) == 0:
            raise ConfigError(f"task.options.path: {split} images {tuple(x.shape)} and labels "
                              f"{tuple(y.shape)} must be (n, H, W) or (n, C, H, W) and (n,)")
        x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
        out[split] = (x.contiguous(), y.long())
    return out


def validate_image_files(cfg) -> None:
    opts = cfg.task.options
    path, size = opts.get("path", ""), opts.get("train_size", 0)
    if not path:
        raise ConfigError("task.options.path: the image_files kind needs a .npz file or a folder of "
                          "IDX files")
    if not isinstance(size, int) or size < 0:
        raise ConfigError(f"task.options.train_size: must be an integer >= 0, got {size!r}")
    data = read_image_files(path)
    if size > len(data["train"][1]):
        raise ConfigError(f"task.options.train_size: the files have {len(data['train'][1])} training images, "
                          f"got {size}")
    check_robustness_options(opts, data["train"][0][0].numel())


def build_image_files(cfg) -> Task:
    """A user's image files; train_size > 0 keeps a class-balanced seeded subset of the training images."""
    opts = cfg.task.options
    data = read_image_files(opts["path"])
    (x_tr, y_tr), (x_te, y_te) = data["train"], data["test"]
    size = opts.get("train_size", 0)
    if size:
        keep, _ = stratified_split(y_tr, size, cfg.effective_split_seed)
        x_tr, y_tr = x_tr[keep], y_tr[keep]
    n_classes = int(max(y_tr.max(), y_te.max())) + 1
    meta = {"kind": "image_files", "path": str(opts["path"]), "image_shape": list(x_tr.shape[1:]),
            "n_train": len(y_tr), "n_test": len(y_te),
            "train_class_counts": torch.bincount(y_tr, minlength=n_classes).tolist()}
    box = (0.0, 1.0) if float(x_tr.min()) >= 0 and float(x_tr.max()) <= 1 else \
        (float(min(x_tr.min(), x_te.min())), float(max(x_tr.max(), x_te.max())))
    splits = {"train": Split(x_tr, y_tr), "test": Split(x_te, y_te)}
    return image_task(opts, kind="image_files", splits=splits,
                      input_kind="image", input_shape=tuple(x_tr.shape[1:]), n_classes=n_classes, meta=meta,
                      box=box)
