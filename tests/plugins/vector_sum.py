"""A task kind defined outside src/ (the plug-in test and docs/extending.md): (x + y) mod p as dense
vectors [one_hot(x), one_hot(y)], for the MLP; split by task.train_fraction with the split seed."""

from dataclasses import dataclass

import torch

from grokscope import ConfigError, Split, Task, register_task


@dataclass(frozen=True)
class VectorSumOptions:
    p: int = 23
    """Modulus: inputs are two one-hot blocks of size p."""


def build(cfg) -> Task:
    p = cfg.task.options.get("p", VectorSumOptions.p)
    x, y = torch.arange(p).repeat_interleave(p), torch.arange(p).repeat(p)  # (p*p,) each
    inputs = torch.cat([torch.eye(p)[x], torch.eye(p)[y]], dim=1)  # (p*p, 2p)
    g = torch.Generator().manual_seed(cfg.effective_split_seed)
    perm = torch.randperm(p * p, generator=g)
    n = round(cfg.task.train_fraction * p * p)
    split = lambda idx: Split(inputs[idx], (x[idx] + y[idx]) % p)  # noqa: E731
    return Task(kind="vector_sum", splits={"train": split(perm[:n]), "test": split(perm[n:])},
                input_kind="vector", input_shape=(2 * p,), n_classes=p, meta={"kind": "vector_sum", "p": p})


def validate(cfg) -> None:
    p = cfg.task.options.get("p", VectorSumOptions.p)
    if p < 2:
        raise ConfigError(f"task.options.p: must be >= 2, got {p}")


register_task("vector_sum", build, validate=validate, options=VectorSumOptions, replace=True)
