"""The Task protocol: a dataset with named splits, and the registry of task kinds.

A task is what a run learns from: tensors of inputs and targets for `train` and for one or more
evaluation splits (`test` always; `test_ood`, `train_clean`, ... where a task defines them), the
kind of its inputs (token sequences, dense vectors or images), the kind of its outputs (class
labels, a regression target, or token sequences with a loss mask), the split whose accuracy dates
generalization, and JSON metadata. Everything after the task (models, the engine, detection,
reports, sweeps) reads only these fields, so a new domain is a new task kind:

    from grokscope.tasks import Split, Task, register_task

    def build(cfg):                      # cfg: the run's RunConfig
        x, y = ...                       # tensors
        return Task(kind="xor", splits={"train": Split(x[:n], y[:n]), "test": Split(x[n:], y[n:])},
                    input_kind="vector", input_shape=(x.shape[1],), n_classes=2)

    register_task("xor", build)

See docs/extending.md for a complete example.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from grokscope.errors import ConfigError

__all__ = ["INPUT_KINDS", "OUTPUT_KINDS", "Split", "Task", "TaskKind", "get_task_kind", "register_task",
           "task_kinds", "task_options"]

INPUT_KINDS = ("tokens", "vector", "image")
OUTPUT_KINDS = ("classes", "regression", "tokens")


@dataclass(frozen=True, eq=False)
class Split:
    """One named split: `inputs` (n, *input_shape) and `targets`.

    targets: (n,) long class labels for output 'classes'; (n, n_outputs) float for 'regression';
    (n, seq_len) long next tokens for 'tokens', scored where `mask` (n, seq_len) bool is True.
    `loss_mask` (tokens only; None: `mask`): the positions the training loss covers when they differ
    from the scored ones, e.g. a language-modelling loss on the whole sequence (Murty et al. 2023)
    while accuracy scores the answer.
    `accept` (classes only; None: the target alone): (n, n_classes) bool, every class that counts as
    right, for examples with several right answers (any shortest move of a gridworld); the loss
    still uses `targets`.
    """

    inputs: torch.Tensor
    targets: torch.Tensor
    mask: torch.Tensor | None = None
    loss_mask: torch.Tensor | None = None
    accept: torch.Tensor | None = None

    def __len__(self) -> int:
        return int(self.inputs.shape[0])

    def subset(self, idx: torch.Tensor) -> Split:
        """The rows `idx` (a (k,) long tensor) of this split."""
        pick = lambda t: None if t is None else t[idx]
        return Split(self.inputs[idx], self.targets[idx], pick(self.mask), pick(self.loss_mask),
                     pick(self.accept))

    def to(self, device) -> Split:
        move = lambda t: None if t is None else t.to(device)
        return Split(self.inputs.to(device), self.targets.to(device), move(self.mask), move(self.loss_mask),
                     move(self.accept))

    @property
    def train_mask(self) -> torch.Tensor | None:
        """The positions the training loss covers: `loss_mask`, else `mask`."""
        return self.mask if self.loss_mask is None else self.loss_mask


@dataclass(frozen=True, eq=False, kw_only=True)
class Task:
    """A dataset with named splits; see the module docstring.

    splits["train"] holds the training inputs and (possibly noisy) labels; every other split is
    evaluated on the eval schedule and logged as `{split}_acc` / `{split}_loss`.
    """

    kind: str
    """The registered task kind that built it, e.g. 'modular'."""
    splits: dict[str, Split]
    input_kind: str
    """'tokens' (inputs (n, seq_len) long), 'vector' (n, d) float or 'image' (n, C, H, W) float."""
    input_shape: tuple[int, ...]
    """(seq_len,), (d,) or (C, H, W): one example's input shape."""
    n_classes: int
    """Output classes ('classes'), output dimensions ('regression') or output vocabulary ('tokens')."""
    output: str = "classes"
    """'classes', 'regression' (MSE against float targets) or 'tokens' (one label per position)."""
    vocab_size: int | None = None
    """Token vocabulary of the inputs (token tasks)."""
    answer_position: int = -1
    """Position whose output is the answer, for a token task with class outputs."""
    read_positions: tuple[int, ...] | None = None
    """Token positions that carry information, for models that read tokens without attention
    (the MLP); None: all. The tables' [x, op, y, =] read (0, 2)."""
    read_vocab: int | None = None
    """Values at read_positions lie in 0..read_vocab-1 (None: vocab_size)."""
    generalization_split: str = "test"
    """The split whose accuracy dates generalization (detection, phases, stop rules, sweeps)."""
    tolerance: float = 0.5
    """Regression tasks: an example counts as correct when every output is within this of its target."""
    meta: dict = field(default_factory=dict)
    """JSON-serialisable description, written to summary.json's `task`."""
    measure_names: tuple[str, ...] = ()
    """The metric names `measures` returns (summary.json's `measures`; the report draws them)."""

    def __post_init__(self) -> None:
        check_task(self)

    @property
    def train(self) -> Split:
        return self.splits["train"]

    @property
    def eval_splits(self) -> list[str]:
        """Every split evaluated on the schedule: 'train' first, then the task's order."""
        return list(self.splits)

    def with_generalization_split(self, name: str | None) -> Task:
        """This task with another generalization split (a config override); checked."""
        if name is None or name == self.generalization_split:
            return self
        if name not in self.splits:
            raise ConfigError(f"task.generalization_split: must be one of the task's splits "
                              f"{', '.join(repr(s) for s in self.splits if s != 'train')}, got {name!r}")
        return dataclasses.replace(self, generalization_split=name)

    @property
    def measure_cost(self) -> float:
        """The compute of one call of `measures`, in forward passes of single examples (the
        evaluation budget counts it); 0 for a task without measures. Override with `measures`."""
        return 0.0

    def measures(self, model: torch.nn.Module, device: torch.device) -> dict[str, float]:
        """The task's own measures, logged on the eval schedule next to the split metrics (e.g.
        adversarial accuracy). Override in a subclass; its keys are `measure_names`."""
        return {}


def check_task(task: Task) -> None:
    """Raise ValueError when a task's fields do not fit together (a bug in the task's builder)."""
    where = f"task kind {task.kind!r}"
    if task.input_kind not in INPUT_KINDS:
        raise ValueError(f"{where}: input_kind must be one of {INPUT_KINDS}, got {task.input_kind!r}")
    if task.output not in OUTPUT_KINDS:
        raise ValueError(f"{where}: output must be one of {OUTPUT_KINDS}, got {task.output!r}")
    if "train" not in task.splits or len(task.splits) < 2:
        raise ValueError(f"{where}: needs a 'train' split and at least one evaluation split")
    if task.generalization_split not in task.splits or task.generalization_split == "train":
        raise ValueError(f"{where}: generalization_split {task.generalization_split!r} is not an "
                         "evaluation split")
    if task.input_kind == "tokens" and not task.vocab_size:
        raise ValueError(f"{where}: token inputs need vocab_size")
    for name, s in task.splits.items():
        if tuple(s.inputs.shape[1:]) != tuple(task.input_shape):
            raise ValueError(f"{where}: split {name!r} has inputs of shape {tuple(s.inputs.shape)}, "
                             f"expected (n, {', '.join(map(str, task.input_shape))})")
        if s.targets.shape[0] != s.inputs.shape[0]:
            raise ValueError(f"{where}: split {name!r} has {s.inputs.shape[0]} inputs and "
                             f"{s.targets.shape[0]} targets")
        shape = (len(s), task.n_classes)
        if s.accept is not None and (task.output != "classes" or tuple(s.accept.shape) != shape):
            raise ValueError(f"{where}: split {name!r} has an accept mask of shape {tuple(s.accept.shape)}, "
                             f"expected ({len(s)}, {task.n_classes}) for class outputs")
        if task.output == "tokens" and s.mask is None:
            raise ValueError(f"{where}: split {name!r} needs a loss mask for token outputs")


# ------------------------------------------------------------------------------------ registry


@dataclass(frozen=True)
class TaskKind:
    """A registered task kind: how to build it from a RunConfig and how to check its fields."""

    name: str
    build: Callable[[Any], Task]
    """RunConfig -> Task (the split seed is cfg.effective_split_seed)."""
    validate: Callable[[Any], None] | None = None
    """RunConfig -> None, raising ConfigError('task.FIELD: ...') for a bad value; runs before
    anything is written."""
    options: type | None = None
    """A frozen dataclass of the kind's own fields, set as task.options {name: value} and on the
    command line as --task.options.NAME VALUE; None: the kind has none."""
    fields: tuple[str, ...] = ()
    """The TaskConfig fields this kind reads besides the common ones (for messages and docs)."""
    doc: str = ""


_REGISTRY: dict[str, TaskKind] = {}
_PLUGINS_LOADED = False


def register_task(name: str, build: Callable[[Any], Task], *, validate: Callable[[Any], None] | None = None,
                  options: type | None = None, fields: tuple[str, ...] = (), doc: str = "",
                  replace: bool = False) -> TaskKind:
    """Register a task kind under `name` (the value of task.kind). Returns the TaskKind."""
    if not isinstance(name, str) or not name.replace("_", "").isalnum():
        raise ValueError(f"task kind name must be letters, digits and '_', got {name!r}")
    if name in _REGISTRY and not replace:
        raise ValueError(f"task kind {name!r} is already registered (pass replace=True to redefine it)")
    if options is not None and not (dataclasses.is_dataclass(options) and isinstance(options, type)):
        raise ValueError("options must be a dataclass type")
    kind = TaskKind(name, build, validate, options, tuple(fields), doc or (build.__doc__ or "").strip())
    _REGISTRY[name] = kind
    return kind


def _load_plugins() -> None:
    """Task kinds of installed packages: entry points in the group 'grokscope.tasks' (each a
    callable run once, which calls register_task)."""
    global _PLUGINS_LOADED
    if _PLUGINS_LOADED:
        return
    _PLUGINS_LOADED = True
    from importlib.metadata import entry_points

    for ep in entry_points(group="grokscope.tasks"):
        ep.load()()


def task_kinds() -> dict[str, TaskKind]:
    """Every registered task kind by name (built-in ones and plug-ins)."""
    _load_plugins()
    return dict(_REGISTRY)


def get_task_kind(name: object) -> TaskKind:
    kinds = task_kinds()
    if not isinstance(name, str) or name not in kinds:
        raise ConfigError(f"task.kind: must be one of {', '.join(repr(k) for k in kinds)}, got {name!r}")
    return kinds[name]


def task_options(task_cfg) -> Any:
    """task.options as the kind's options dataclass (defaults filled in), checked by type; None when
    the kind declares no options (then task.options must be empty)."""
    kind = get_task_kind(task_cfg.kind)
    given = dict(task_cfg.options)
    if kind.options is None:
        if given:
            raise ConfigError(f"task.options: task kind {kind.name!r} has no options, got {sorted(given)}")
        return None
    from grokscope.values import check_value, parse_value

    hints = _hints(kind.options)
    for key, value in given.items():
        if key not in hints:
            import difflib

            close = difflib.get_close_matches(key, list(hints), n=1)
            hint = f" (did you mean 'task.options.{close[0]}'?)" if close else ""
            raise ConfigError(f"task.options.{key}: unknown option of task kind {kind.name!r}{hint}")
        if isinstance(value, str) and hints[key] is not str:
            value = parse_value(f"task.options.{key}", hints[key], value)
        check_value(f"task.options.{key}", hints[key], value)
        given[key] = float(value) if hints[key] is float and isinstance(value, int) else value
    return kind.options(**given)


def _hints(cls: type) -> dict[str, Any]:
    import typing

    return typing.get_type_hints(cls)


def check_generated(cfg, n_train: int, n_test: int, noise_hint: str = "") -> None:
    """The checks every generated task kind shares: at least 2 training and 1 test examples
    (task.options.n_train / n_test) and no task.label_noise (such kinds draw their own labels;
    `noise_hint` names the kind's own noise option). ConfigError naming the field."""
    if n_train < 2 or n_test < 1:
        raise ConfigError(f"task.options.n_train: must be >= 2 (and n_test >= 1), got {n_train!r} and "
                          f"{n_test!r}")
    if cfg.task.label_noise != 0:
        raise ConfigError(f"task.label_noise: task kind {cfg.task.kind!r} has no label noise{noise_hint}; "
                          "use 0")


def finite(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
