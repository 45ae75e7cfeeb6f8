"""Tasks: the Task protocol (`grokscope.tasks.task`), its registry, and the built-in kinds.

Built in: binary-operation tables on Z_p ('modular') and S_n ('permutation'), split into
train/test (`build_task`; `validate_task` is the same argument check on its own). A new kind is
registered with `register_task` (see docs/extending.md); `task_from_config` builds any kind from a
RunConfig and `validate_task_config` checks it before anything is written.
"""

from __future__ import annotations

import math
from numbers import Real

from grokscope.errors import ConfigError
from grokscope.tasks.modular import MODULAR_OPS, PRIME_OPS, is_prime, modular_table
from grokscope.tasks.permutations import PERMUTATION_OPS, permutation_table
from grokscope.tasks.table import TableTask, make_task
from grokscope.tasks.task import Split, Task, TaskKind, get_task_kind, register_task, task_kinds, task_options

__all__ = ["MODULAR_OPS", "PERMUTATION_OPS", "Split", "TableTask", "Task", "TaskKind", "build_task",
           "get_task_kind", "register_task", "task_from_config", "task_kinds", "task_options",
           "validate_task", "validate_task_config"]

KINDS: tuple[str, ...] = ("modular", "permutation")
"""The built-in table kinds."""
MAX_P = 10_000
MIN_N, MAX_N = 3, 6
MAX_SKEW = 4.0
"""Largest task.skew: at 4 the training split is nearly all small operands."""


def _choices(options: tuple[str, ...]) -> str:
    """'a', 'b', 'c' — for error messages."""
    return ", ".join(repr(o) for o in options)


def _is_int(value: object) -> bool:
    """True for real integers (bools excluded)."""
    return isinstance(value, int) and not isinstance(value, bool)


def _is_real(value: object) -> bool:
    """True for finite int/float numbers (bools excluded)."""
    return isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(value)


def _validate_op(kind: str, op: object) -> None:
    """``op`` must be one of the ops defined for ``kind``."""
    ops = MODULAR_OPS if kind == "modular" else PERMUTATION_OPS
    if not isinstance(op, str) or op not in ops:
        raise ConfigError(f"task.op: unknown {kind} op {op!r}; choose one of {_choices(ops)}")


def _validate_p(op: str, p: object) -> None:
    """Modulus: an int in 3..MAX_P, and prime when ``op`` needs inverses."""
    if not _is_int(p) or p < 3:
        raise ConfigError(f"task.p: must be an integer >= 3, got {p!r}")
    if p > MAX_P:
        raise ConfigError(f"task.p: must be <= {MAX_P} (the p*p table gets too large), got {p!r}")
    if op in PRIME_OPS and not is_prime(p):
        raise ConfigError(f"task.p: must be a prime for op {op!r}, got {p!r}")


def _validate_n(n: object) -> None:
    """Degree of S_n: an int in MIN_N..MAX_N."""
    if not _is_int(n) or not MIN_N <= n <= MAX_N:
        raise ConfigError(
            f"task.n: must be between {MIN_N} and {MAX_N} for permutation tasks, got {n!r}"
        )


def validate_task(
    kind: object,
    op: object,
    p: object,
    n: object,
    train_fraction: object,
    label_noise: object,
    skew: object = 0.0,
) -> None:
    """Raise `ConfigError` naming the first invalid field; return None when all are valid.

    Only the size field that matters for ``kind`` is checked: ``p`` for modular tasks,
    ``n`` for permutation tasks.
    """
    if not isinstance(kind, str) or kind not in KINDS:
        get_task_kind(kind)  # names every registered kind
        raise ConfigError(f"task.kind: must be one of {_choices(KINDS)}, got {kind!r}")
    _validate_op(kind, op)
    if kind == "modular":
        _validate_p(op, p)
    else:
        _validate_n(n)
    if not _is_real(train_fraction) or not 0 < train_fraction < 1:
        raise ConfigError(f"task.train_fraction: must be in (0, 1), got {train_fraction!r}")
    if not _is_real(label_noise) or not 0 <= label_noise < 1:
        raise ConfigError(f"task.label_noise: must be in [0, 1), got {label_noise!r}")
    if not _is_real(skew) or not 0 <= skew <= MAX_SKEW:
        raise ConfigError(f"task.skew: must be in [0, {MAX_SKEW:g}], got {skew!r}")


def build_task(
    kind: str,
    op: str,
    *,
    p: int = 97,
    n: int = 5,
    train_fraction: float = 0.5,
    split_seed: int = 0,
    label_noise: float = 0.0,
    skew: float = 0.0,
) -> TableTask:
    """Build the full table for ``op``, split it with ``split_seed`` (pairs weighted by
    ((x+1)(y+1))^-skew) and add label noise.

    Raises `ConfigError` for invalid arguments (see `validate_task`).
    """
    validate_task(kind, op, p, n, train_fraction, label_noise, skew)
    if not _is_int(split_seed):
        raise ConfigError(f"task.split_seed: must be an integer, got {split_seed!r}")
    if kind == "modular":
        table = modular_table(op, p)
        n_values, meta = p, {"p": p}
    else:
        x, y, z, elements = permutation_table(op, n)
        table = (x, y, z)
        n_values, meta = len(elements), {"n": n, "elements": elements}
    return make_task(
        kind,
        op,
        n_values,
        table,
        train_fraction=float(train_fraction),
        split_seed=split_seed,
        label_noise=float(label_noise),
        skew=float(skew),
        meta=meta,
    )


def _check_common(t) -> None:
    """The fields every kind shares: train_fraction, label_noise, split_seed, options."""
    if not _is_real(t.train_fraction) or not 0 < t.train_fraction < 1:
        raise ConfigError(f"task.train_fraction: must be in (0, 1), got {t.train_fraction!r}")
    if not _is_real(t.label_noise) or not 0 <= t.label_noise < 1:
        raise ConfigError(f"task.label_noise: must be in [0, 1), got {t.label_noise!r}")
    task_options(t)


def validate_task_config(cfg) -> None:
    """Check the task section of a RunConfig for its kind (registered kinds validate their own
    fields); raises ConfigError naming the field."""
    kind = get_task_kind(cfg.task.kind)
    _check_common(cfg.task)
    if cfg.task.skew != 0 and "skew" not in kind.fields:
        raise ConfigError(f"task.skew: only the table tasks draw skewed training pairs; task kind "
                          f"{kind.name!r} has no skew, use 0")
    if kind.validate is not None:
        kind.validate(cfg)


def task_from_config(cfg) -> Task:
    """The task a run trains on, from its RunConfig: built by its kind, with task.generalization_split
    applied."""
    kind = get_task_kind(cfg.task.kind)
    task = kind.build(cfg)
    if not isinstance(task, Task):
        raise TypeError(f"task kind {kind.name!r}: build() returned {type(task).__name__}, not a Task")
    return task.with_generalization_split(cfg.task.generalization_split)


def _validate_table(cfg) -> None:
    t = cfg.task
    validate_task(t.kind, t.op, t.p, t.n, t.train_fraction, t.label_noise, t.skew)
    if t.skew and t.augment != "none":
        raise ConfigError("task.skew: draws the training pairs itself; use it with task.augment none")


def _build_table(cfg) -> TableTask:
    """A binary-operation table split by the run's split seed, with label noise and, when
    task.augment asks for it, commutative augmentation."""
    t = cfg.task
    task = build_task(t.kind, t.op, p=t.p, n=t.n, train_fraction=t.train_fraction,
                      split_seed=cfg.effective_split_seed, label_noise=t.label_noise, skew=t.skew)
    if t.augment == "commutative":
        from grokscope.tasks.augment import augment_commutative

        task = augment_commutative(task)
    return task


register_task("modular", _build_table, validate=_validate_table,
              fields=("op", "p", "train_fraction", "label_noise", "skew", "augment"),
              doc="Binary operation tables on Z_p (Power et al. 2022): tokens [x, op, y, =] -> x op y.")
register_task("permutation", _build_table, validate=_validate_table,
              fields=("op", "n", "train_fraction", "label_noise", "skew", "augment"),
              doc="Binary operation tables on the symmetric group S_n.")

from grokscope.tasks.images import DigitsOptions, build_digits, validate_digits  # noqa: E402

register_task("digits", build_digits, validate=validate_digits, options=DigitsOptions,
              fields=("label_noise",),
              doc="scikit-learn's 8x8 handwritten digits (1,797 images, 10 classes), split by class.")

from grokscope.tasks.images import ImageFilesOptions, build_image_files, validate_image_files  # noqa: E402

register_task("image_files", build_image_files, validate=validate_image_files, options=ImageFilesOptions,
              doc="Your own MNIST/CIFAR-style files: a .npz (x_train, y_train, x_test, y_test) or IDX files.")

from grokscope.tasks.parity import ParityOptions, build_parity, validate_parity  # noqa: E402

register_task("parity", build_parity, validate=validate_parity, options=ParityOptions,
              doc="Sparse parity: the product of k hidden bits of an n-bit ±1 string (Merrill et al. 2023).")

from grokscope.tasks.sentiment import SentimentOptions, build_sentiment, validate_sentiment  # noqa: E402

register_task("sentiment", build_sentiment, validate=validate_sentiment, options=SentimentOptions,
              doc="Synthetic sentiment: reviews of words with hidden polarities, labelled by their sum "
                  "plus noise.")

from grokscope.tasks.grammar import (  # noqa: E402
    GrammarOptions,
    build_question_formation,
    validate_question_formation,
)

register_task("question_formation", build_question_formation, validate=validate_question_formation,
              options=GrammarOptions,
              doc="Question formation on a generated grammar: move the main auxiliary (McCoy et al. 2020).")

from grokscope.tasks.tense import build_tense_inflection, validate_tense_inflection  # noqa: E402

register_task("tense_inflection", build_tense_inflection, validate=validate_tense_inflection,
              options=GrammarOptions,
              doc="Tense inflection on a generated grammar: past -> present, each verb agreeing with its "
                  "subject (McCoy et al. 2020).")

from grokscope.tasks.knowledge import (  # noqa: E402
    ComparisonOptions,
    CompositionOptions,
    build_comparison,
    build_composition,
    validate_comparison,
    validate_composition,
)

register_task("composition", build_composition, validate=validate_composition, options=CompositionOptions,
              doc="Two-hop queries over a generated knowledge graph (Wang et al. 2024).")
register_task("comparison", build_comparison, validate=validate_comparison, options=ComparisonOptions,
              doc="Attribute comparisons over a generated knowledge base (Wang et al. 2024).")

from grokscope.tasks.grid import GridOptions, build_grid, validate_grid  # noqa: E402

register_task("grid_goals", build_grid, validate=validate_grid, options=GridOptions,
              fields=("train_fraction",),
              doc="An N x N gridworld whose goals are named by ids under a hidden layout (for agents).")
