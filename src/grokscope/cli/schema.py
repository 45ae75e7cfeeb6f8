"""The command line as tyro schemas: one frozen dataclass per command, their docstrings are the help.

`Train` and `Sweep` embed the whole `RunConfig` flattened (`--optim.lr`, `--task.p`, ...) through the
field `fields`, marked `OVERRIDE`: tyro reads those tokens and renders their help and defaults, and
`grokscope.config.apply_overrides` types them (see `parsing`). Numbers of the commands' own options
are read as text and checked by the command, so that every message names the option as today.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Literal, Union

import tyro
from tyro.conf import Positional, _markers, arg

from grokscope.config import RunConfig
from grokscope.sweep.executors import EXECUTORS


class _OverrideMarker(_markers._Marker):  # tyro markers are singletons found by type in Annotated
    def __repr__(self) -> str:
        return "grokscope.cli.OVERRIDE"


OVERRIDE = _OverrideMarker()
"""Marks the run-config subtree: its leaves are read as raw tokens, typed by config.apply_overrides."""

RunFields = Annotated[RunConfig, arg(name=""), tyro.conf.FlagConversionOff, OVERRIDE]
Flag = Annotated[bool, tyro.conf.FlagCreatePairsOff]


@dataclass(frozen=True)
class Train:
    """Train one run into a new (or empty) directory; prints where it went and what happened.

    Defaults below are the chosen preset's (--preset NAME, default demo) or those of --config JSON.
    Any config field is set as --section.field VALUE or --section.field=VALUE, with hyphens or
    underscores. Booleans: --log.figure, --log.figure false, --log.no-figure. Tuples: values
    like 0.9,0.98 or 0.9 0.98. None: None. Plug-in task options: --task.options.NAME VALUE.
    """

    preset: Annotated[str, arg(metavar="NAME")] = "demo"
    """Preset to start from (`grokscope presets` lists them)."""
    config: Annotated[str | None, arg(metavar="JSON")] = None
    """A saved config (a run's config.json works) to start from instead of a preset."""
    out: Annotated[str | None, arg(metavar="DIR")] = None
    """Run directory (new or empty); default runs/<time>-<name>."""
    init_from: Annotated[str | None, arg(metavar="RUN")] = None
    """Short for --train.init_from RUN: start from the weights of another run."""
    quiet: Flag = False
    """No progress bar."""
    fields: RunFields = field(default_factory=RunConfig)


@dataclass(frozen=True)
class Resume:
    """Continue a run from its last checkpoint (exactly: same batches, same state)."""

    run: Annotated[Positional[str], arg(metavar="RUN")]
    """The run directory."""
    steps: Annotated[str | None, arg(metavar="N")] = None
    """New step budget (default: the run's own)."""
    quiet: Flag = False
    """No progress bar."""


@dataclass(frozen=True)
class Show:
    """Summary table of a run (events, outcome, phases), or of a sweep directory (per-cell table)."""

    path: Annotated[Positional[str], arg(metavar="RUN|SWEEP")]
    """A run directory, or a sweep directory (it holds sweep.json)."""
    gap: Annotated[str | None, arg(metavar="STEPS")] = None
    """Steps between train and generalization accuracy that count as grokking (default: detect's)."""


@dataclass(frozen=True)
class Report:
    """Write RUN/report.html (self-contained), or SWEEP/report.html with phase diagrams."""

    path: Annotated[Positional[str], arg(metavar="RUN|SWEEP")]
    """A run directory, or a sweep directory (it holds sweep.json)."""
    gap: Annotated[str | None, arg(metavar="STEPS")] = None
    """Steps between train and generalization accuracy that count as grokking (default: detect's)."""
    x: Annotated[str | None, arg(metavar="FIELD")] = None
    """Sweeps: the axis on the x axis of the phase diagrams."""
    y: Annotated[str | None, arg(metavar="FIELD")] = None
    """Sweeps: the axis on the y axis of the phase diagrams."""


@dataclass(frozen=True)
class Compare:
    """Overlay two or more runs in one figure."""

    runs: Annotated[Positional[tuple[str, ...]], arg(metavar="RUN...", help_behavior_hint="(required)")]
    """Two or more run directories."""
    out: Annotated[str, arg(metavar="PNG")] = "compare.png"
    """The figure to write."""
    metric: Annotated[str, arg(metavar="KEY")] = "test_acc"
    """train_acc, test_acc, train_loss, test_loss (or any SPLIT_acc / SPLIT_loss), weight_norm, lr."""


@dataclass(frozen=True)
class Analyze:
    """Fourier/progress/geometry analysis of every checkpoint, the algorithm card; adds to the report."""

    run: Annotated[Positional[str], arg(metavar="RUN")]
    """The run directory."""
    max_checkpoints: Annotated[str | None, arg(metavar="N")] = None
    """Analyze at most N checkpoints (evenly spaced, first and last included)."""
    rqi_every: Annotated[str | None, arg(metavar="N")] = None
    """Compute the representation quality index on every N-th analyzed checkpoint (default 1)."""
    reference: Annotated[str | None, arg(metavar="RUN")] = None
    """Image runs: a run (e.g. the α = 1 control) whose final weight norm is the reference norm
    (default: the same network's norm at α = 1 initialization)."""


@dataclass(frozen=True)
class Presets:
    """List the presets, their sources and what to expect."""


@dataclass(frozen=True)
class Sweep:
    """Train a sweep (a grid of runs); the same command again trains only the missing runs.

    Every combination of the axis values (times the seeds) is trained into DIR/runs/NAME, with
    DIR/sweep.json and DIR/results.csv. Then: grokscope show DIR (per-cell table), grokscope report
    DIR (DIR/report.html).

    Defaults of the config fields below are the base config's (--preset, --config, or the spec's).
    """

    axis: Annotated[tuple[str, ...], tyro.conf.UseAppendAction, arg(metavar="FIELD=VALUES")] = ()
    """A dotted config field and its values: a,b,c | START:STOP:N | log:START:STOP:N (N points,
    ends included), e.g. optim.weight_decay=0,0.1,1 task.train_fraction=0.2:0.8:7
    optim.lr=log:1e-4:1e-2:5."""
    seeds: Annotated[str | None, arg(metavar="N|LIST")] = None
    """N seeds 0..N-1, or a list like 0,4,7 (default: the base config's seed)."""
    out: Annotated[str | None, arg(metavar="DIR")] = None
    """The sweep directory (required; the same DIR resumes the sweep)."""
    preset: Annotated[str | None, arg(metavar="NAME")] = None
    """Preset of the base config (default demo, or the spec's)."""
    config: Annotated[str | None, arg(metavar="JSON")] = None
    """A config JSON as the base config instead of a preset."""
    spec: Annotated[str | None, arg(metavar="FILE")] = None
    """A sweep spec in JSON (or YAML with PyYAML): {"preset", "config", "overrides", "axes",
    "seeds"}; command-line options override it."""
    steps: Annotated[str | None, arg(metavar="N")] = None
    """Short for --train.steps N."""
    executor: Literal[EXECUTORS] = "local"
    """local (a process per core, in-process for one job), ray (an existing Ray cluster, see
    --address), slurm (submitit job array)."""
    address: Annotated[str | None, arg(metavar="auto|HOST:PORT")] = None
    """Ray cluster: auto (started on this machine with `ray start`) or HOST:PORT."""
    workers: Annotated[str | None, arg(metavar="N")] = None
    """local: processes (default: one per core); slurm: array parallelism."""
    pack: Annotated[str | None, arg(metavar="K")] = None
    """Runs per job (default 1; 32 when vectorizing on CUDA)."""
    vectorize: Annotated[bool | None, tyro.conf.DisallowNone] = None
    """Train each job's runs as one ensemble when they differ only in fields the ensemble supports
    (seed, train fraction, lr, weight decay, init scale, ...); default: on when the runs train on
    CUDA."""
    slurm: Annotated[tuple[str, ...], tyro.conf.UseAppendAction, arg(metavar="KEY=VALUE")] = ()
    """A submitit parameter (timeout_min=120, slurm_partition=gpu, mem_gb=4, ...); cluster=local|debug
    runs the jobs through submitit on this machine."""
    max_retries: Annotated[str | None, arg(metavar="N")] = None
    """Ray: times a job is retried when its worker process dies (default 3)."""
    max_runs: Annotated[str | None, arg(metavar="N")] = None
    """Refuse a sweep of more than N runs (default 10,000); they are counted before any is built."""
    quiet: Flag = False
    """No progress lines."""
    fields: RunFields = field(default_factory=RunConfig)


@dataclass(frozen=True)
class Reproduce:
    """Train presets for a few seeds and check what each claims (its expectation); PASS or FAIL.

    Each preset trains as a sweep over seeds into DIR/PRESET (the same command again trains only
    the missing runs); DIR/reproduce.json, reproduce.md and reproduce.html hold the checks, the
    table and the curves. Exit code 1 when a check fails. `grokscope presets` shows what each
    preset expects.
    """

    presets: Annotated[Positional[tuple[str, ...]], arg(metavar="NAME...")] = ()
    """Presets to reproduce (or --all, or --quick)."""
    all: Flag = False
    """Every preset that states expectations."""
    quick: Flag = False
    """The presets that train in seconds, one seed each (for CI)."""
    seeds: Annotated[str | None, arg(metavar="N")] = None
    """Seeds 0..N-1 per preset (default 3; 1 for presets of more than 10 minutes and for --quick)."""
    out: Annotated[str, arg(metavar="DIR")] = "reproduce"
    """Where the runs and the tables go (the same DIR resumes)."""
    executor: Literal[EXECUTORS] = "local"
    """local (a process per core, in-process for one job), ray, slurm (as grokscope sweep)."""
    workers: Annotated[str | None, arg(metavar="N")] = None
    """local: processes (default: one per core, at most one per seed); slurm: array parallelism."""
    address: Annotated[str | None, arg(metavar="auto|HOST:PORT")] = None
    """Ray cluster: auto or HOST:PORT."""
    slurm: Annotated[tuple[str, ...], tyro.conf.UseAppendAction, arg(metavar="KEY=VALUE")] = ()
    """A submitit parameter (as grokscope sweep)."""
    quiet: Flag = False
    """No progress lines."""


@dataclass(frozen=True)
class Predict:
    """Forecast whether a run will generalize within its budget, and when (from its curves so far).

    `grokscope predict RUN...` prints P(the generalization split reaches 0.99 within the budget)
    and the expected step for each run, from its metrics up to its last evaluation (or --step).
    `grokscope predict --fit SWEEP... --held_out SWEEP... --out MODEL.json` fits a model on the
    runs of training sweeps and prints its ROC-AUC and step error on held-out sweeps at 10%, 25%
    and 50% of the budget. docs/predict.md has the method and its numbers.
    """

    runs: Annotated[Positional[tuple[str, ...]], arg(metavar="RUN...")] = ()
    """Run directories to forecast (finished or still training)."""
    model: Annotated[str | None, arg(metavar="JSON")] = None
    """A fitted model (default: the one shipped with grokscope, fitted on demo-preset sweeps)."""
    step: Annotated[str | None, arg(metavar="N")] = None
    """Forecast from the run as it was at step N (default: its last evaluation)."""
    fit: Annotated[tuple[str, ...], tyro.conf.UseAppendAction, arg(metavar="SWEEP")] = ()
    """Fit a model on these sweeps' (or run directories') finished runs. (repeatable)"""
    held_out: Annotated[tuple[str, ...], tyro.conf.UseAppendAction, arg(metavar="SWEEP")] = ()
    """With --fit: evaluate the model on these sweeps' runs. (repeatable)"""
    out: Annotated[str | None, arg(metavar="JSON")] = None
    """With --fit: where to write the model (with its evaluation)."""


COMMANDS: dict[str, type] = {"train": Train, "resume": Resume, "show": Show, "report": Report,
                             "compare": Compare, "analyze": Analyze, "sweep": Sweep, "reproduce": Reproduce,
                             "predict": Predict, "presets": Presets}
"""Command name -> its dataclass, in the order of `grokscope --help`."""

RUN_COMMANDS = ("train", "sweep")
"""Commands that take run-config fields (their defaults depend on the base config)."""


def command_union(defaults: dict[str, object], *, listing: bool = False) -> object:
    """The union of all commands as tyro subcommands; `defaults` gives default instances by name
    (the base config of train/sweep). `listing`: describe each command by its docstring's first
    paragraph (for `grokscope --help`; a command's own --help shows all of it)."""
    members = []
    for name, cls in COMMANDS.items():
        kw: dict = {"default": defaults[name]} if name in defaults else {}
        if listing:
            kw["description"] = " ".join((cls.__doc__ or "").strip().split("\n\n")[0].split())
        members.append(Annotated[cls, tyro.conf.subcommand(name, **kw)])
    return Union[tuple(members)]  # noqa: UP007 - a runtime Union of Annotated members
