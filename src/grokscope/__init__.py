"""grokscope: reproduce, watch and explain grokking.

The public API is listed in `__all__`; importing grokscope does not import matplotlib.
"""

from __future__ import annotations

from grokscope.config import (
    AgentConfig,
    LogConfig,
    ModelConfig,
    OptimConfig,
    RunConfig,
    TaskConfig,
    TrainConfig,
)
from grokscope.errors import ConfigError
from grokscope.presets import get_preset, list_presets
from grokscope.tasks.task import Split, Task, register_task
from grokscope.tracking.rundir import RunDir
from grokscope.training.loop import RunResult, resume, train
from grokscope.version import __version__

__all__ = [
    "ConfigError",
    "AgentConfig",
    "LogConfig",
    "ModelConfig",
    "OptimConfig",
    "RunConfig",
    "RunDir",
    "RunResult",
    "Split",
    "Task",
    "TaskConfig",
    "TrainConfig",
    "__version__",
    "analyze",
    "get_preset",
    "list_presets",
    "load_run",
    "register_task",
    "resume",
    "train",
]


def analyze(run_dir, **kwargs) -> dict:
    """The analyses over every checkpoint of a run (grokscope.analysis.run.analyze): key
    frequencies, progress measures, the algorithm card, figures; returns analysis.json's dict."""
    from grokscope.analysis.run import analyze as _analyze

    return _analyze(run_dir, **kwargs)


def load_run(path) -> dict:
    """Config, summary and metrics of a run directory: {'config', 'summary', 'metrics', 'path'}."""
    from grokscope.config import from_dict

    rd = RunDir(path)
    return {"path": rd.path, "config": from_dict(rd.read_config_dict()),
            "summary": rd.read_summary() if rd.summary.exists() else None,
            "metrics": rd.read_metrics()}
