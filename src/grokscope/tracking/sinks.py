"""Experiment-tracking sinks: metrics.jsonl (always), TensorBoard and Weights & Biases (optional).

Modelled on huggingface accelerate's ``tracking.py``: a small ``Tracker`` protocol and one class
per backend. ``build_trackers`` turns a ``LogConfig`` into a list of trackers and ``MultiTracker``
fans calls out to them. tensorboardX and wandb are imported only inside functions, so importing
grokscope stays light and both remain optional extras (``grokscope[tb]``, ``grokscope[wandb]``).
"""

from __future__ import annotations

import importlib.util
import json
import re
import warnings
from pathlib import Path
from typing import Any, Protocol

from grokscope.errors import ConfigError
from grokscope.tracking.rundir import RunDir, dumps

# Metric key -> tag shared by TensorBoard and W&B; unknown keys go under "metrics/<key>".
_TAGS = {
    "train_acc": "accuracy/train",
    "test_acc": "accuracy/test",
    "train_loss": "loss/train",
    "test_loss": "loss/test",
    "weight_norm": "weight_norm",
    "lr": "lr",
    "elapsed": "time/elapsed",
}
# Parts of the run's summary dict that W&B gets as run.summary entries.
_SUMMARY_KEYS = ("status", "steps_done", "wall_seconds", "final", "events")


class Tracker(Protocol):
    """One destination for a run's config, metrics, events and summary."""

    name: str

    def start(self, config: dict, run_dir: Path) -> None:
        """Open the sink; ``config`` is the JSON dict of the RunConfig."""

    def log(self, values: dict[str, float], step: int) -> None:
        """Record scalar metrics at ``step``."""

    def event(self, name: str, step: int, message: str) -> None:
        """Record a named event, e.g. ("memorized", 71, "train acc reached 0.99")."""

    def finish(self, summary: dict) -> None:
        """Record the run's summary dict and close the sink."""


def _tag(key: str) -> str:
    """Grouped tag of a metric key: 'train_acc' -> 'accuracy/train', 'foo' -> 'metrics/foo'."""
    return _TAGS.get(key, f"metrics/{key}")


def _scalars(values: dict[str, Any]) -> dict[str, float]:
    """Values keyed by grouped tag; a stray 'step' key is dropped (the step is its own argument)."""
    return {_tag(k): float(v) for k, v in values.items() if k != "step"}


class JsonlTracker:
    """Always on: RUN/metrics.jsonl (one object per log call, step first) and RUN/events.jsonl."""

    name = "jsonl"

    def __init__(self, run_dir: str | Path):
        self.run_dir = RunDir(run_dir)
        self.events_path = self.run_dir.events

    def start(self, config: dict, run_dir: Path) -> None:
        """Nothing to open: the training loop writes config.json itself."""

    def log(self, values: dict[str, float], step: int) -> None:
        self.run_dir.append_metrics({"step": step, **{k: v for k, v in values.items() if k != "step"}})

    def event(self, name: str, step: int, message: str) -> None:
        with open(self.events_path, "a") as f:
            f.write(dumps({"step": step, "name": name, "message": message}) + "\n")

    def finish(self, summary: dict) -> None:
        """Nothing to close: every line is written and closed at once."""


class TensorBoardTracker:
    """TensorBoard event files in RUN/tensorboard, written with tensorboardX."""

    name = "tensorboard"

    def __init__(self) -> None:
        self.writer = None

    def start(self, config: dict, run_dir: Path) -> None:
        from tensorboardX import SummaryWriter

        self.writer = SummaryWriter(logdir=str(RunDir(run_dir).tensorboard))
        text = "```json\n" + json.dumps(config, indent=2) + "\n```"
        self.writer.add_text("config", text, 0)

    def log(self, values: dict[str, float], step: int) -> None:
        for tag, value in _scalars(values).items():
            self.writer.add_scalar(tag, value, step)

    def event(self, name: str, step: int, message: str) -> None:
        self.writer.add_text("events", f"{name}: {message}", step)

    def finish(self, summary: dict) -> None:
        self.writer.flush()
        self.writer.close()


class WandbTracker:
    """Weights & Biases run in RUN/wandb; offline mode needs no account and sends nothing."""

    name = "wandb"

    def __init__(self, project: str = "grokscope", mode: str = "offline"):
        self.project, self.mode = project, mode
        self.run = None

    def start(self, config: dict, run_dir: Path) -> None:
        import wandb

        # console="off": leave stdout/stderr (progress bar, pytest capture) alone.
        settings = wandb.Settings(console="off", silent=self.mode == "offline")
        self.run = wandb.init(project=self.project, mode=self.mode, dir=str(run_dir), config=config,
                              name=Path(run_dir).name, reinit=_reinit(wandb.__version__),
                              settings=settings)

    def log(self, values: dict[str, float], step: int) -> None:
        self.run.log(_scalars(values), step=step)

    def event(self, name: str, step: int, message: str) -> None:
        self.run.log({f"events/{name}": step}, step=step)

    def finish(self, summary: dict) -> None:
        self.run.summary.update(_flatten({k: summary[k] for k in _SUMMARY_KEYS if k in summary}))
        self.run.finish()


def _reinit(version: str) -> str | bool:
    """wandb's reinit option for one more run in this process.

    'create_new' (wandb >= 0.19.10) starts an independent run and leaves wandb.run, and any run
    the user has open, alone; older versions only know True (finish the active run first).
    """
    return "create_new" if tuple(int(x) for x in re.findall(r"\d+", version)[:3]) >= (0, 19, 10) else True


def _flatten(d: dict, prefix: str = "") -> dict[str, float | int | str]:
    """Nested dict -> {"a/b": leaf}; keeps numbers and strings, skips None and anything else."""
    out: dict[str, float | int | str] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "/"))
        elif isinstance(v, (int, float, str)):
            out[key] = v
    return out


def is_tensorboard_available() -> bool:
    """True when tensorboardX can be imported (it is not imported here)."""
    return importlib.util.find_spec("tensorboardX") is not None


def is_wandb_available() -> bool:
    """True when wandb can be imported (it is not imported here)."""
    return importlib.util.find_spec("wandb") is not None


def check_sinks(log_cfg) -> None:
    """Raise ConfigError naming the field when an enabled backend is not installed."""
    if log_cfg.tensorboard and not is_tensorboard_available():
        raise ConfigError("log.tensorboard: needs tensorboardX; pip install grokscope[tb]")
    if log_cfg.wandb and not is_wandb_available():
        raise ConfigError("log.wandb: needs wandb; pip install grokscope[wandb]")


def build_trackers(log_cfg, run_dir: Path) -> list[Tracker]:
    """[JsonlTracker] plus TensorBoard and W&B trackers as ``log_cfg`` enables them."""
    check_sinks(log_cfg)
    trackers: list[Tracker] = [JsonlTracker(run_dir)]
    if log_cfg.tensorboard:
        trackers.append(TensorBoardTracker())
    if log_cfg.wandb:
        trackers.append(WandbTracker(project=log_cfg.wandb_project, mode=log_cfg.wandb_mode))
    return trackers


class MultiTracker:
    """Fans every call out to a list of trackers.

    ``start`` errors propagate (a sink that cannot open fails the run before training). After
    that, a failing optional sink is reported once with a RuntimeWarning and disabled: a sink
    must never kill a training run. Errors of the jsonl tracker (the run's own record) propagate.
    """

    name = "multi"

    def __init__(self, trackers: list[Tracker]):
        self.trackers = list(trackers)

    def start(self, config: dict, run_dir: Path) -> None:
        for t in self.trackers:
            t.start(config, run_dir)

    def log(self, values: dict[str, float], step: int) -> None:
        self._call("log", values, step)

    def event(self, name: str, step: int, message: str) -> None:
        self._call("event", name, step, message)

    def finish(self, summary: dict) -> None:
        self._call("finish", summary)

    def _call(self, method: str, *args: Any) -> None:
        """Call ``method`` on every live tracker; disable (and warn about) failing optional ones."""
        for t in list(self.trackers):
            try:
                getattr(t, method)(*args)
            except Exception as e:
                if t.name == JsonlTracker.name:
                    raise
                self.trackers.remove(t)
                warnings.warn(f"{t.name} tracker failed in {method}() and is disabled: "
                              f"{type(e).__name__}: {e}", RuntimeWarning, stacklevel=3)
