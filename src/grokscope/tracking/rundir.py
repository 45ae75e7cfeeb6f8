"""Run directory layout and atomic writes. See docs/run-format.md."""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

FORMAT_VERSION = 1


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _temp_in(path: Path) -> tuple[int, str]:
    """A temp file beside `path`, with the permissions a plain open() would give (mkstemp: 0600)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.chmod(tmp, 0o666 & ~_umask())
    return fd, tmp


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write via a temp file in the same directory, then os.replace (never a half-written file)."""
    path = Path(path)
    fd, tmp = _temp_in(path)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def strict(obj: Any) -> Any:
    """obj with every non-finite float (NaN, inf) replaced by None: strict JSON, which every parser
    reads (json.dumps would write bare NaN/Infinity). Readers accept both."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: strict(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [strict(v) for v in obj]
    return obj


def dumps(obj: Any, **kwargs) -> str:
    """json.dumps of strict(obj), refusing anything non-finite left."""
    return json.dumps(strict(obj), allow_nan=False, **kwargs)


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, dumps(obj, indent=2, sort_keys=False) + "\n")


def atomic_torch_save(path: Path, obj: Any) -> None:
    path = Path(path)
    fd, tmp = _temp_in(path)
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def read_json(path: Path) -> Any:
    """A JSON file; ConfigError naming the file and the line when it does not parse."""
    from grokscope.errors import ConfigError

    path = Path(path)
    data = path.read_bytes()
    try:
        return json.loads(data.decode())
    except UnicodeDecodeError as e:
        raise ConfigError(f"file: {str(path)!r} is not valid JSON (byte {e.start}: not UTF-8)") from None
    except json.JSONDecodeError as e:
        raise ConfigError(f"file: {str(path)!r} is not valid JSON (line {e.lineno}, column {e.colno}: "
                          f"{e.msg})") from None


def read_jsonl(path: Path) -> list[dict]:
    """Every line of a JSON-lines file that parses (a torn last line is skipped); [] if missing."""
    path = Path(path)
    if not path.is_file():
        return []
    out = []
    for line in path.read_bytes().splitlines():
        try:
            record = json.loads(line.decode())
        except (UnicodeDecodeError, json.JSONDecodeError):
            continue  # a torn or damaged line: skipped
        if isinstance(record, dict):
            out.append(record)
    return out


def _latest_step(path: Path) -> int | None:
    """The step of a rolling checkpoint: from its sidecar, else from the file; None if unreadable."""
    try:
        return int(json.loads(RunDir.checksum_path(path).read_text())["step"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    try:
        return int(torch.load(path, map_location="cpu", weights_only=True)["step"])
    except Exception:
        return None


class RunDir:
    """Paths of one run directory and its append-only metrics log: every file name of a run is
    defined here (docs/run-format.md)."""

    CONFIG = "config.json"
    METRICS = "metrics.jsonl"
    EVENTS = "events.jsonl"
    SUMMARY = "summary.json"
    REPORT = "report.html"
    ANALYSIS = "analysis.json"
    ANALYSIS_RECORDS = "analysis.jsonl"
    CHECKPOINTS = "checkpoints"
    FIGURES = "figures"
    TENSORBOARD = "tensorboard"
    WANDB = "wandb"
    LATEST = "latest.pt"
    LOCK = ".lock"
    CHECKSUM = ".sha256"
    """Suffix of a checkpoint's sidecar: {"sha256", "bytes", "step"} of the file beside it."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    config = property(lambda self: self.path / RunDir.CONFIG)
    metrics = property(lambda self: self.path / RunDir.METRICS)
    events = property(lambda self: self.path / RunDir.EVENTS)
    summary = property(lambda self: self.path / RunDir.SUMMARY)
    report = property(lambda self: self.path / RunDir.REPORT)
    analysis = property(lambda self: self.path / RunDir.ANALYSIS)
    analysis_records = property(lambda self: self.path / RunDir.ANALYSIS_RECORDS)
    checkpoints = property(lambda self: self.path / RunDir.CHECKPOINTS)
    figures = property(lambda self: self.path / RunDir.FIGURES)
    tensorboard = property(lambda self: self.path / RunDir.TENSORBOARD)
    wandb = property(lambda self: self.path / RunDir.WANDB)
    latest = property(lambda self: self.path / RunDir.CHECKPOINTS / RunDir.LATEST)

    def checkpoint_path(self, step: int) -> Path:
        return self.checkpoints / f"step_{step:08d}.pt"

    @staticmethod
    def checksum_path(checkpoint: Path) -> Path:
        """The sidecar holding a checkpoint's checksum and step: step_00000010.pt.sha256."""
        return checkpoint.with_name(checkpoint.name + RunDir.CHECKSUM)

    def list_checkpoints(self, include_latest: bool = False) -> list[tuple[int, Path]]:
        """(step, path) for every step_*.pt checkpoint by step; with include_latest also the rolling
        checkpoints/latest.pt (its step is read from the file)."""
        if not self.checkpoints.is_dir():
            return []
        out = []
        for p in self.checkpoints.glob("step_*.pt"):
            try:
                out.append((int(p.stem.split("_")[1]), p))
            except ValueError:
                continue
        latest = self.latest
        if include_latest and latest.is_file():
            step = _latest_step(latest)
            if step is not None:  # an unreadable latest.pt is left out (resume falls back)
                out.append((step, latest))
        return sorted(out)

    def append_metrics(self, record: dict) -> None:
        """One JSON object per line; flushed at once so a crash loses at most the last line."""
        with open(self.metrics, "a") as f:
            f.write(dumps(record) + "\n")

    def read_metrics(self) -> list[dict]:
        """All complete lines of metrics.jsonl (a torn last line is ignored)."""
        return read_jsonl(self.metrics)

    def read_summary(self) -> dict:
        return read_json(self.summary)

    def read_config_dict(self) -> dict:
        return read_json(self.config)
