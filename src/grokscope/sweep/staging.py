"""Where a sweep's runs live while they train, and how they are published, kept or cleaned up.

    SWEEP/runs/NAME/                       a finished run (status completed or diverged), only
    SWEEP/runs/.partial.HOST.PID.NAME/     a run training in process PID of HOST
    SWEEP/runs/.epartial.HOST.PID.NAME/    a member of a vectorized ensemble training there
    SWEEP/runs/.resume.NAME/               a run cut off mid-way, resumed by the next sweep
    SWEEP/runs/.trash.HOST.PID.NAME/       a stale directory on its way out

A run is published with one `os.replace` of its partial directory, so `runs/NAME/` never holds a
half-written run. An interrupted run with a checkpoint is kept (`keep`) and taken back by the next
sweep when its config still matches (`take_kept`, `config_diff`); directories left by dead
processes of this host are tidied by `clean_partials`.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
from pathlib import Path
from typing import Any

from grokscope.config import flat_dict, to_dict
from grokscope.errors import ConfigError
from grokscope.sweep.results import FINISHED, is_finished, run_status
from grokscope.tracking.lock import pid_alive
from grokscope.tracking.rundir import RunDir, atomic_write_text


def take_kept(cfg, out: Path, tmp: Path) -> bool:
    """Move the kept run of `out` (interrupted or killed earlier) to `tmp` when it is this run (its
    config equals `cfg`); a kept run of another config is discarded. True when one was taken."""
    kept = kept_dir(out)
    if not kept.is_dir():
        return False
    try:
        same = config_diff(RunDir(kept).read_config_dict(), cfg) is None
    except (OSError, ConfigError, ValueError):
        same = False
    if not same:
        remove(kept)
        return False
    try:
        os.replace(kept, tmp)
    except OSError:  # another process took it first
        return False
    return True


def publish(tmp: Path, out: Path) -> dict:
    """Move a finished run from its partial directory to `out` (atomic); discard unfinished ones."""
    status = run_status(tmp)
    if status not in FINISHED:  # interrupted: kept to be resumed (an ensemble member: trained again)
        keep(tmp, out)
        return {"run": out.name, "status": status or "failed", "error": None, "skipped": False}
    if out.exists() and not is_finished(out):  # a stale unfinished directory in the way
        trash = out.parent / f".trash.{_host()}.{os.getpid()}.{out.name}"
        os.replace(out, trash)
        remove(trash)
    try:
        os.replace(tmp, out)
    except OSError:  # another process published this run first: keep that one
        remove(tmp)
        return {**record(out), "skipped": True}
    report = RunDir(out).report
    if report.is_file():  # the report names the run's directory: the partial one until now
        from html import escape

        atomic_write_text(report, report.read_text().replace(escape(str(tmp)), escape(str(out))))
    return {**record(out), "skipped": False}


def record(out: Path) -> dict:
    s = json.loads(RunDir(out).summary.read_text())
    return {"run": out.name, "status": s.get("status"), "outcome": s.get("phase"),
            "generalized_step": (s.get("events") or {}).get("generalized_step"),
            "wall_seconds": s.get("wall_seconds"), "error": None}


def failed(out: Path, e: Exception) -> dict:
    return {"run": out.name, "status": "failed", "error": f"{type(e).__name__}: {e}".splitlines()[0],
            "skipped": False}


def _host() -> str:
    return "".join(c if c.isalnum() else "_" for c in socket.gethostname()) or "host"


def partial_dir(out: Path, ensemble: bool = False) -> Path:
    return out.parent / f".{'e' if ensemble else ''}partial.{_host()}.{os.getpid()}.{out.name}"


def kept_dir(out: Path) -> Path:
    return out.parent / f".resume.{out.name}"


def keep(tmp: Path, out: Path) -> None:
    """Keep an unfinished run directory as `.resume.NAME` when it can be resumed (a single run with
    a checkpoint) and the run has not been finished by another process meanwhile (a job retried
    after its worker died); otherwise remove it."""
    if (tmp.name.startswith(".partial.") and not is_finished(out)
            and RunDir(tmp).list_checkpoints(include_latest=True)):
        kept = kept_dir(out)
        remove(kept)
        try:
            os.replace(tmp, kept)
            return
        except OSError:
            pass
    remove(tmp)


def remove(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def clean_partials(runs_dir: str | os.PathLike) -> int:
    """Tidy partial/trash directories left by dead processes of this host: a single run with a
    checkpoint is kept as `.resume.NAME` (resumed by the next sweep), the others are removed;
    returns how many were tidied."""
    n = 0
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        return 0
    for p in runs_dir.iterdir():
        parts = p.name.split(".", 4)  # ['', 'partial', HOST, PID, NAME]
        if (len(parts) == 5 and parts[0] == "" and parts[1] in ("partial", "epartial", "trash")
                and parts[3].isdigit()):
            if parts[2] == _host() and int(parts[3]) != os.getpid() and not pid_alive(int(parts[3])):
                if parts[1] == "partial":
                    keep(p, runs_dir / parts[4])
                else:
                    remove(p)
                n += 1
    return n


def config_diff(raw: dict, cfg) -> tuple[str, Any, Any] | None:
    """The first field (dotted key, value in `raw`, value in `cfg`) where a run's config.json
    differs from `cfg`, read with defaults for fields it predates; None when they agree."""
    old = flat_dict(_with_defaults(raw))
    new = flat_dict(_as_json(cfg))
    for key in sorted(set(old) | set(new)):
        if old.get(key) != new.get(key) and key != "config_version":
            return key, old.get(key), new.get(key)
    return None


def _with_defaults(raw: dict) -> dict:
    """A run's config.json with the fields it predates at their defaults (a run trained by an older
    grokscope has no key for a field added since, which then held its default); as written when
    it does not read as a config."""
    from grokscope.config import from_dict

    try:
        return _as_json(from_dict(raw))
    except (ConfigError, TypeError, ValueError):
        return raw


def _as_json(cfg) -> dict:
    """`to_dict(cfg)` as it reads back from config.json (tuples as lists), to compare with one."""
    return json.loads(json.dumps(to_dict(cfg)))
