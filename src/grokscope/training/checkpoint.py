"""Checkpoints: one self-describing dict per file, loadable with torch.load(weights_only=True).

Each checkpoint has a sidecar (RunDir.checksum_path) with its SHA-256, size and step, written after
it. Loading verifies the checksum when the sidecar is there, never executes code (weights_only),
and turns every failure into one line naming the file (`CheckpointError`); `newest_good` falls
back over a run's checkpoints to the newest one that loads.
"""

from __future__ import annotations

import hashlib
import io
import json
import pickle
import warnings
from pathlib import Path
from typing import Any

import torch

from grokscope.errors import ConfigError
from grokscope.tracking.rundir import FORMAT_VERSION, RunDir, atomic_write_bytes, atomic_write_json


class CheckpointError(ConfigError):
    """A checkpoint cannot be used: truncated, failing its checksum, or not a weights-only file."""


def save_checkpoint(path: Path, *, step: int, model: torch.nn.Module,
                    optimizer: torch.optim.Optimizer | None, config: dict,
                    extra: dict[str, Any] | None = None) -> None:
    """Atomically write model (and optimizer) state, step, config and any extra state (RNGs, sampler)."""
    state = {
        "format_version": FORMAT_VERSION,
        "step": step,
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "config": config,
        "extra": extra or {},
    }
    buf = io.BytesIO()
    torch.save(state, buf)
    data = buf.getvalue()
    path = Path(path)
    atomic_write_bytes(path, data)
    atomic_write_json(RunDir.checksum_path(path), {"sha256": hashlib.sha256(data).hexdigest(),
                                                   "bytes": len(data), "step": step})


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """Read a checkpoint without executing code (weights_only=True), verifying its checksum when
    its sidecar exists. Raises CheckpointError (one line naming the file) when it cannot be used."""
    path = Path(path)
    name = str(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise CheckpointError(f"checkpoint: {name!r} cannot be read ({e.strerror or e})") from None
    try:
        meta = json.loads(RunDir.checksum_path(path).read_text())
    except (OSError, ValueError):
        meta = None  # written before checksums, or the run died between the two writes
    if isinstance(meta, dict) and "sha256" in meta and hashlib.sha256(data).hexdigest() != meta["sha256"]:
        raise CheckpointError(f"checkpoint: {name!r} fails its checksum ({len(data)} bytes, "
                              f"{meta.get('bytes', '?')} written): corrupt")
    try:
        with warnings.catch_warnings():  # torch warns about plain pickles before refusing them
            warnings.simplefilter("ignore")
            state = torch.load(io.BytesIO(data), map_location=map_location, weights_only=True)
    except pickle.UnpicklingError:
        raise CheckpointError(f"checkpoint: {name!r} is not a weights-only checkpoint; not loaded "
                              "(loading it could run code)") from None
    except Exception as e:
        why = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"checkpoint: {name!r} is truncated or corrupt ({why[:120]})") from None
    if not isinstance(state, dict) or "model" not in state or "step" not in state:
        raise CheckpointError(f"checkpoint: {name!r} is not a grokscope checkpoint (no model and step)")
    return state


def newest_good(rd: RunDir, *, include_latest: bool = True, map_location: str | torch.device = "cpu",
                what: str = "run") -> tuple[int, Path, dict, list[str]]:
    """(step, path, state, skipped) of the newest checkpoint of `rd` that loads; `skipped` holds one
    line per newer checkpoint that did not. ConfigError when none loads."""
    skipped: list[str] = []
    ckpts = rd.list_checkpoints(include_latest=include_latest)
    for _listed, path in reversed(ckpts):
        try:
            state = load_checkpoint(path, map_location)
            return int(state["step"]), path, state, skipped  # the verified file's step, not a listing's
        except CheckpointError as e:
            skipped.append(str(e))
    if not ckpts:
        raise ConfigError(f"{what}: {str(rd.path)!r} has no checkpoint")
    raise ConfigError(f"{what}: {str(rd.path)!r} has no readable checkpoint ({len(ckpts)} tried; newest: "
                      f"{skipped[0].removeprefix('checkpoint: ')})")
