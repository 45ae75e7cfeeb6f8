"""Run configuration: frozen dataclasses, validation, JSON round trip and dotted overrides.

Every field has a docstring (shown by ``grokscope train --help``) and a default. ``validate``
is the one place where values are checked; it raises ``ConfigError("section.field: ...")``.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from dataclasses import dataclass, field, fields, is_dataclass, replace
from typing import Any, Literal

from grokscope.errors import ConfigError
from grokscope.validation import dropout_milestones, validate  # noqa: F401  (re-exported)
from grokscope.values import (  # noqa: F401  (check_value, is_bool_type, parse_value re-exported)
    check_value,
    describe,
    is_bool_type,
    is_int,
    is_num,
    matches,
    parse_value,
    suggest,
)

CONFIG_VERSION = 1


@dataclass(frozen=True)
class TaskConfig:
    """What to learn: a registered task kind and its fields (built in: binary-operation tables)."""

    kind: str = "modular"
    """Task kind: 'modular' (arithmetic mod p), 'permutation' (the group S_n), or a registered
    plug-in kind (see docs/extending.md)."""
    op: str = "x+y"
    """Operation, e.g. 'x+y', 'x/y' (modular inverse), 'x^2+y^2'; for S_n: 'x*y', 'x*y*x^-1', 'x*y*x'."""
    p: int = 97
    """Modulus for modular tasks (a prime for ops that divide)."""
    n: int = 5
    """n of the permutation group S_n (3..6)."""
    train_fraction: float = 0.5
    """Fraction of the valid ordered pairs of the table used for training."""
    split_seed: int | None = None
    """Seed of the train/test split; None uses the run's seed."""
    label_noise: float = 0.0
    """Fraction of training labels replaced by random wrong labels."""
    skew: float = 0.0
    """Biased data (table tasks): the training pairs are drawn with probability proportional to
    ((x+1)(y+1))^-skew, so small operands are over-represented in training and large ones are
    mostly in the test split; 0 draws them uniformly."""
    augment: Literal["none", "commutative"] = "none"
    """'commutative' adds the swapped pair (y, x) of every training pair (commutative ops only);
    the effective train fraction grows (0.3 -> ~0.51), recorded in summary.json's task."""
    generalization_split: str | None = None
    """Split whose accuracy dates generalization (events, phases, stop rules, report headline,
    sweeps); None uses the task's own (test for the tables)."""
    options: dict[str, int | float | str | bool] = field(default_factory=dict)
    """Fields of a plug-in task kind, {name: value}, checked against the kind's options
    (on the command line: --task.options.NAME VALUE)."""


@dataclass(frozen=True)
class ModelConfig:
    """The network, built for the task's inputs. Transformer fields follow TransformerLens names; the
    MLP, CNN and LSTM/GRU reuse n_layers, d_model and d_mlp."""

    arch: str = "transformer"
    """'transformer' (token sequences; answer at the task's answer position), 'mlp' (tokens, vectors
    or flattened images), 'cnn' (images), 'lstm'/'gru' (token sequences), or a registered plug-in
    architecture (grokscope.models.register_model)."""
    n_layers: int = 2
    """Transformer blocks, hidden layers of the MLP and of the CNN's head, or stacked RNN layers."""
    d_model: int = 128
    """Residual width of the transformer; token-embedding width of the MLP and the RNN; RNN
    hidden size."""
    n_heads: int = 4
    """Attention heads (d_model must be divisible by n_heads)."""
    d_mlp: int = 512
    """Hidden width of each transformer MLP, or of each MLP hidden layer."""
    activation: Literal["relu", "gelu", "quadratic"] = "relu"
    """Nonlinearity: relu, gelu or quadratic (x**2, Gromov 2023)."""
    norm: Literal["none", "pre", "post"] = "post"
    """LayerNorm placement in the transformer: none, pre-LN (with a final LN) or post-LN."""
    dropout: float = 0.0
    """Dropout on the attention and MLP outputs (transformer) or hidden layers (MLP)."""
    init_scale: float = 1.0
    """Multiplier on every initial weight (Omnigrok's alpha)."""
    bias: bool = True
    """Use bias vectors in linear maps."""
    mlp_input: Literal["embed", "onehot"] = "embed"
    """MLP input for token tasks: concatenated learned embeddings of the tokens it reads (x and y for
    the tables), or concatenated one-hot vectors."""
    cnn_channels: tuple[int, ...] = (16, 32)
    """CNN: output channels of each conv layer (each conv -> activation -> pooling)."""
    kernel_size: int = 3
    """CNN: conv kernel size (padding keeps the image size)."""
    pool: Literal["max", "avg", "none"] = "max"
    """CNN: 2x2 pooling after each conv layer (skipped once the image is 1 pixel wide)."""
    share_layers: bool = False
    """Transformer: the second half of the n_layers (even) reuses the first half's blocks, layer i +
    n_layers/2 = layer i (Wang et al. 2024's cross-layer sharing, as in the Universal Transformer)."""


@dataclass(frozen=True)
class OptimConfig:
    """Optimizer and learning-rate schedule."""

    name: Literal["adamw", "adam", "sgd", "rmsprop"] = "adamw"
    """Update rule: adamw/adam (Adam; they differ only in the default weight_decay_mode), sgd
    (with momentum), rmsprop."""
    lr: float = 1e-3
    """Peak learning rate."""
    betas: tuple[float, float] = (0.9, 0.98)
    """Adam betas."""
    eps: float = 1e-8
    """Adam/RMSprop epsilon."""
    weight_decay: float = 1.0
    """Weight decay strength (see weight_decay_mode)."""
    weight_decay_mode: Literal["auto", "decoupled", "coupled", "to_init"] = "auto"
    """decoupled: w -= lr*wd*w (AdamW); coupled: L2 added to the gradient (torch Adam/SGD
    weight_decay); to_init: w -= lr*wd*(w - w_init), decay toward the initialization. auto is
    decoupled for adamw, coupled otherwise; the saved config.json records the resolved mode."""
    decay_params: Literal["all", "matrices"] = "all"
    """Which parameters decay: all, or only matrices (>= 2-D: no biases, no LayerNorm)."""
    fused: bool = False
    """adam/adamw only: torch's fused kernel (about 5x faster optimizer step on one CPU thread,
    benchmarks/throughput.py). Its rounding differs in the last bit, so a run is not bit-identical
    to the unfused one; off by default so every preset reproduces its measured numbers."""
    orthograd: bool = False
    """Wrap the optimizer in ⊥Grad (Prieto et al. 2025): drop each gradient's component along its
    weights, rescaled to the original norm (adamw + orthograd = ⊥AdamW)."""
    grokfast: Literal["none", "ema", "ma"] = "none"
    """Grokfast gradient filter (Lee et al. 2024): ema (g += lamb*EMA(g)) or ma (g += lamb*mean of
    the last window gradients)."""
    grokfast_alpha: float = 0.98
    """Grokfast-EMA momentum alpha."""
    grokfast_lamb: float = 2.0
    """Grokfast amplification lambda of the slow gradient."""
    grokfast_window: int = 100
    """Grokfast-MA window (gradients averaged)."""
    grokfast_filter: Literal["mean", "sum"] = "mean"
    """Grokfast-MA: mean or sum over the window."""
    norm_constraint: float | None = None
    """Rescale all parameters after every step to this global L2 norm (Omnigrok's constrained
    runs); 0 holds the norm at initialization (after init_scale); None disables."""
    momentum: float = 0.9
    """Momentum for sgd and rmsprop."""
    warmup_steps: int = 10
    """Linear warmup steps from lr/warmup to lr."""
    schedule: Literal["constant", "cosine", "linear"] = "constant"
    """Learning rate after warmup: constant, cosine decay or linear decay to min_lr_ratio*lr."""
    min_lr_ratio: float = 0.0
    """Final lr as a fraction of lr for the cosine and linear schedules."""
    grad_clip: float | None = None
    """Clip the global gradient norm to this value; None disables clipping."""

    @property
    def decay_mode(self) -> str:
        """weight_decay_mode with 'auto' resolved: decoupled for adamw, coupled otherwise."""
        if self.weight_decay_mode != "auto":
            return self.weight_decay_mode
        return "decoupled" if self.name == "adamw" else "coupled"


@dataclass(frozen=True)
class TrainConfig:
    """Training loop: budget, batches, loss, evaluation and checkpoint schedules, device."""

    steps: int = 10_000
    """Optimizer steps (the budget)."""
    batch_size: int | None = None
    """Minibatch size; None trains full batch. Minibatches are drawn by seeded epoch permutations."""
    loss: Literal["ce", "mse", "stablemax"] = "ce"
    """Cross-entropy, mean squared error against one-hot targets, or StableMax cross-entropy
    (Prieto et al. 2025: s(x) = x+1 for x >= 0, 1/(1-x) for x < 0 instead of exp)."""
    loss_dtype: Literal["float32", "float64"] = "float64"
    """Precision of the loss computation (float32 softmax underflows on confident logits)."""
    eval_every: int = 100
    """Evaluate every this many steps (besides the dense-early log-spaced evaluations)."""
    eval_per_decade: int = 20
    """Log-spaced evaluations per decade of steps (dense early: with 20, every step up to 11)."""
    eval_refine: float = 0.05
    """Adaptive evaluation: while an accuracy (any split) changes by more than this between two
    evaluations, evaluate sooner, so each interval moves about this much; back to the base schedule
    on a plateau. 0 turns it off. Events are dated to the interval before them (summary.json)."""
    eval_budget: float = 0.04
    """At most this share of the training compute goes to evaluations (counted from the split
    sizes: evaluating n examples costs n/3 training examples); evaluations of the schedule wait for
    budget (step 0 and the last step never do). 0: no cap."""
    checkpoint_per_decade: int = 4
    """Log-spaced checkpoints per decade of steps; the last step is always checkpointed."""
    checkpoint_every: int | None = None
    """Also checkpoint every this many steps; None for log-spaced only."""
    dropout_schedule: Literal["constant", "linear", "steps"] = "constant"
    """Dropout over training: constant (model.dropout), linear (model.dropout -> dropout_final
    over the budget) or steps (values set at the steps in dropout_milestones)."""
    dropout_final: float = 0.0
    """Final dropout of the linear schedule."""
    dropout_milestones: str = ""
    """For dropout_schedule=steps: 'STEP:VALUE,...', e.g. '1000:0.1,5000:0' (model.dropout before)."""
    curriculum: Literal["none", "max_operand", "sum", "random"] = "none"
    """Reveal the training set in stages ordered by this difficulty score (none: all at once)."""
    curriculum_stages: int = 4
    """Number of curriculum stages (stage k shows the k+1 easiest chunks)."""
    curriculum_advance: Literal["steps", "accuracy"] = "steps"
    """Advance every curriculum_stage_steps steps, or when train acc on the current stage >=
    curriculum_threshold (checked at evaluations)."""
    curriculum_stage_steps: int = 1000
    """Steps per curriculum stage (advance=steps)."""
    curriculum_threshold: float = 0.99
    """Train accuracy on the revealed pairs needed to advance (advance=accuracy)."""
    init_from: str | None = None
    """Start from the weights of another run directory (its newest checkpoint), e.g. pretrain on
    x+y and fine-tune on x-y; shapes must match. The source is recorded in summary.json's lineage."""
    stop_when: Literal["budget", "target", "after_generalization"] = "budget"
    """When to stop: 'budget' (all steps), 'target' (test acc >= stop_target at stop_patience
    consecutive evaluations) or 'after_generalization' (stop_after steps after test acc first
    holds >= 0.99). Never on a validation plateau: a grokking run's plateau is where it grows."""
    stop_target: float = 0.99
    """Test accuracy for stop_when='target'."""
    stop_patience: int = 3
    """Consecutive evaluations at or above stop_target needed to stop."""
    stop_after: int = 1000
    """Steps to keep training after generalization for stop_when='after_generalization'."""
    resume_every_seconds: float = 60.0
    """Also write checkpoints/latest.pt at most this often (for resume after a crash); 0 disables."""
    device: Literal["auto", "cpu", "cuda", "mps"] = "auto"
    """Device; auto picks cuda, then mps, then cpu."""
    threads: int = 1
    """CPU threads for torch (0 keeps torch's default). One thread is fastest for small models."""


@dataclass(frozen=True)
class AgentConfig:
    """Who learns: supervised (the default), or a reinforcement-learning agent that sees only
    rewards. An agent treats a classification task as a contextual bandit (context = a training
    input, action = a class, reward 1 when the action is the training label, held-out inputs never
    rewarded; the modular tables make the modular bandit); `grid_goals` is an environment with
    state and episodes. See docs/rl.md."""

    kind: Literal["supervised", "exact_pg", "reinforce", "dqn"] = "supervised"
    """supervised (cross-entropy on the labels), exact_pg (policy gradient of the exact expected
    reward, no sampling noise), reinforce (sampled actions, a baseline and an entropy bonus) or dqn
    (epsilon-greedy, replay buffer, target network; the model's outputs are Q-values)."""
    contexts: int | None = None
    """Contexts (bandit) or environments (grid) acted on per step; None: train.batch_size (all
    training contexts when that is None)."""
    entropy: float = 0.0
    """exact_pg, reinforce: weight of the policy's entropy bonus."""
    baseline: Literal["none", "batch"] = "batch"
    """reinforce: subtract the batch's mean reward from each reward (variance reduction)."""
    gamma: float = 0.9
    """dqn: discount of the next state's value (a bandit's episodes end after one step)."""
    epsilon_start: float = 1.0
    """dqn: exploration rate at step 0."""
    epsilon_end: float = 0.05
    """dqn: exploration rate after agent.epsilon_steps (linear in between)."""
    epsilon_steps: int = 1000
    """dqn: steps over which epsilon falls from epsilon_start to epsilon_end."""
    buffer_size: int = 50_000
    """dqn: replay buffer capacity (transitions; the oldest are overwritten)."""
    replay_batch: int = 256
    """dqn: transitions per update, drawn uniformly from the buffer."""
    target_every: int = 100
    """dqn: steps between copies of the network into the target network."""
    learning_starts: int = 0
    """dqn: steps that only collect transitions before the first update."""


@dataclass(frozen=True)
class LogConfig:
    """What the run writes besides metrics.jsonl."""

    progress: bool | None = None
    """Show a progress bar; None shows it only when stderr is a terminal."""
    figure: bool = True
    """Save figures/curves.png at the end of the run."""
    report: bool = True
    """Write RUN/report.html (self-contained HTML report) at the end of the run."""
    tensorboard: bool = False
    """Also write TensorBoard event files to RUN/tensorboard (needs: pip install grokscope[tb])."""
    wandb: bool = False
    """Also log to Weights & Biases (needs: pip install grokscope[wandb])."""
    wandb_project: str = "grokscope"
    """W&B project name."""
    wandb_mode: Literal["offline", "online"] = "offline"
    """W&B mode: offline writes RUN/wandb and needs no account; online needs `wandb login`."""


@dataclass(frozen=True)
class RunConfig:
    """One training run: everything needed to reproduce it."""

    task: TaskConfig = field(default_factory=TaskConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    agent: AgentConfig = field(default_factory=AgentConfig)
    log: LogConfig = field(default_factory=LogConfig)
    seed: int = 0
    """One seed fixes the split (unless task.split_seed is set), the initialization and the batch order."""
    name: str = ""
    """Free-form name (the preset's name by default)."""

    @property
    def effective_split_seed(self) -> int:
        return self.seed if self.task.split_seed is None else self.task.split_seed


# ------------------------------------------------------------------------------ JSON round trip


def to_dict(cfg: RunConfig) -> dict:
    """Plain JSON-ready dict; optim.weight_decay_mode is written resolved (never 'auto')."""
    d = dataclasses.asdict(cfg)
    d["optim"]["weight_decay_mode"] = cfg.optim.decay_mode  # 'auto' resolved: explicit in every run
    d["config_version"] = CONFIG_VERSION
    return d


def from_dict(d: dict) -> RunConfig:
    """Inverse of to_dict; unknown keys raise ConfigError."""
    d = {k: v for k, v in d.items() if k != "config_version"}
    return _build(RunConfig, d, "")


def _build(cls: type, d: Any, prefix: str) -> Any:
    if not isinstance(d, dict):
        raise ConfigError(f"{prefix.rstrip('.') or 'config'}: must be an object, got {d!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in fields(cls)}
    kwargs = {}
    for key, value in d.items():
        if key not in names:
            raise ConfigError(f"{prefix}{key}: unknown field{suggest(key, names)}")
        tp = hints[key]
        if is_dataclass(tp):
            kwargs[key] = _build(tp, value, f"{prefix}{key}.")
        elif typing.get_origin(tp) is tuple and isinstance(value, list):
            kwargs[key] = tuple(value)
        elif typing.get_origin(tp) is dict and isinstance(value, dict):
            kwargs[key] = dict(value)
        elif tp is float or float in typing.get_args(tp):
            kwargs[key] = float(value) if is_int(value) else value
        else:
            kwargs[key] = value
    return cls(**kwargs)


def flat_dict(d: dict, prefix: str = "", whole: tuple[str, ...] = ()) -> dict[str, Any]:
    """A nested config dict as {dotted key: leaf value}; a dict under a key in `whole` stays one leaf."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        out.update(flat_dict(v, f"{prefix}{k}.", whole) if isinstance(v, dict) and k not in whole
                   else {prefix + k: v})
    return out


def save_json(cfg: RunConfig) -> str:
    return json.dumps(to_dict(cfg), indent=2)


def load_json(text: str) -> RunConfig:
    return validate(from_dict(json.loads(text)))


# ---------------------------------------------------------------------------- dotted overrides


def leaf_types(cls: type = RunConfig, prefix: str = "") -> dict[str, Any]:
    """{dotted leaf field name: annotation}, e.g. {'task.kind': Literal[...], ..., 'name': str}."""
    out: dict[str, Any] = {}
    hints = typing.get_type_hints(cls)
    for f in fields(cls):
        if is_dataclass(hints[f.name]):
            out.update(leaf_types(hints[f.name], f"{prefix}{f.name}."))
        else:
            out[prefix + f.name] = hints[f.name]
    return out


def field_names(cls: type = RunConfig) -> list[str]:
    """All dotted leaf field names, e.g. ['task.kind', ..., 'seed', 'name']."""
    return list(leaf_types(cls))


def apply_overrides(cfg: RunConfig, overrides: dict[str, str]) -> RunConfig:
    """Return cfg with dotted string overrides ({'optim.lr': '3e-3'}) applied and typed."""
    names = field_names()
    if "task.kind" in overrides:  # options of the new kind are typed by that kind
        cfg = _replace_path(cfg, ["task", "kind"], overrides["task.kind"], "task.kind")
    for key, text in overrides.items():
        if key.startswith("task.options.") and len(key) > len("task.options."):
            name = key[len("task.options."):]
            value = _option_value(cfg.task.kind, name, text)
            cfg = replace(cfg, task=replace(cfg.task, options={**cfg.task.options, name: value}))
            continue
        if key not in names:
            raise ConfigError(f"{key}: unknown field{suggest(key, names)}")
        cfg = _replace_path(cfg, key.split("."), text, key)
    return cfg


def _option_value(kind: str, name: str, text: str) -> Any:
    """A command-line value of task.options.NAME, typed by the kind's options dataclass."""
    from grokscope.tasks import get_task_kind

    options = get_task_kind(kind).options
    hints = typing.get_type_hints(options) if options is not None else {}
    if name not in hints:
        if options is None:
            raise ConfigError(f"task.options.{name}: task kind {kind!r} has no options")
        raise ConfigError(f"task.options.{name}: unknown option of task kind {kind!r}"
                          f"{suggest(name, hints)}")
    return parse_value(f"task.options.{name}", hints[name], text)


def is_override_field(name: str) -> bool:
    """Whether `name` can be overridden (a dotted leaf field, or task.options.NAME)."""
    return name in field_names() or (name.startswith("task.options.") and len(name) > len("task.options."))


def _replace_path(obj: Any, path: list[str], text: str, full: str) -> Any:
    hints = typing.get_type_hints(type(obj))
    head = path[0]
    if len(path) == 1:
        return replace(obj, **{head: parse_value(full, hints[head], text)})
    return replace(obj, **{head: _replace_path(getattr(obj, head), path[1:], text, full)})
