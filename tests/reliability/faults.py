"""Shared tools of the fault-injection suite: tiny configs, CLI subprocesses that can be killed,
file snapshots (SHA-256 of every file), corruptions, and one-line-error checks.

Every training here is tiny (x+y mod 23, a 1-layer d32 transformer, one thread) so that the
suite runs on a 2-core machine; the kill points and corruptions are seeded (random.Random).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

from grokscope import RunConfig, RunDir
from grokscope.config import save_json
from tests.conftest import tiny_grokking_config

TIMING = {"elapsed"}  # the only metrics key that differs between an interrupted and an uninterrupted run
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def config(steps: int = 300, *, latest_every: float = 0.1, **train) -> RunConfig:
    """The suite's run: tiny_grokking_config with d_model 32 (about 4 ms a step on one thread),
    checkpoints every 50 steps (besides the log-spaced ones), checkpoints/latest.pt every
    `latest_every` seconds, no figure, no report (the CLI can still write one)."""
    base = tiny_grokking_config()
    return replace(
        base,
        model=replace(base.model, d_model=32, d_mlp=64),
        train=replace(base.train, steps=steps, checkpoint_every=50, resume_every_seconds=latest_every,
                      threads=1, **train),
        log=replace(base.log, figure=False, report=False, progress=False),
    )


def write_config(cfg: RunConfig, path: Path) -> Path:
    path.write_text(save_json(cfg))
    return path


# ------------------------------------------------------------------------------ processes


def start(argv: list[str], logs: Path) -> subprocess.Popen:
    """`python -m grokscope ARGV` in its own session (so that killpg reaches every child), with its
    stdout/stderr in files under `logs` (read them with `output(proc)`)."""
    logs.mkdir(parents=True, exist_ok=True)
    tag = f"{time.monotonic_ns()}"
    out, err = logs / f"{tag}.stdout", logs / f"{tag}.stderr"
    with open(out, "wb") as so, open(err, "wb") as se:
        proc = subprocess.Popen([sys.executable, "-m", "grokscope", *argv], stdout=so, stderr=se,
                                env=ENV, start_new_session=True)
    proc.stdout_path, proc.stderr_path = out, err
    return proc


def output(proc: subprocess.Popen) -> tuple[str, str]:
    return proc.stdout_path.read_text(errors="replace"), proc.stderr_path.read_text(errors="replace")


def cli(argv: list[str], *, cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """`python -m grokscope ARGV` to its end: (returncode, stdout, stderr)."""
    return subprocess.run([sys.executable, "-m", "grokscope", *argv], capture_output=True, text=True,
                          env=ENV, cwd=cwd, timeout=timeout)


def wait_until(proc: subprocess.Popen, done, *, timeout: float = 240, what: str = "progress") -> None:
    """Poll `done()` every few ms while `proc` runs; AssertionError if it ends or times out first."""
    deadline = time.time() + timeout
    while not done():
        if proc.poll() is not None:
            raise AssertionError(f"the process ended (rc {proc.returncode}) before {what}: "
                                 f"{output(proc)[1][-2000:]}")
        if time.time() > deadline:
            raise AssertionError(f"no {what} within {timeout} s")
        time.sleep(0.005)


def kill9(proc: subprocess.Popen) -> bool:
    """SIGKILL the process group of `proc`; True when it was still running (a real kill point)."""
    alive = proc.poll() is None
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=60)
    return alive and proc.returncode == -signal.SIGKILL


def last_step(run: Path) -> int:
    records = RunDir(run).read_metrics()
    return records[-1]["step"] if records else -1


# ------------------------------------------------------------------------------ run contents


def metrics(run: Path) -> list[dict]:
    """metrics.jsonl without the timing key (what 'exact' compares)."""
    return [{k: v for k, v in r.items() if k not in TIMING} for r in RunDir(run).read_metrics()]


def steps_of(run: Path) -> list[int]:
    return [json.loads(line)["step"] for line in RunDir(run).metrics.read_text().splitlines()]


def checkpoint_names(run: Path) -> list[str]:
    return sorted(p.name for p in RunDir(run).checkpoints.glob("step_*.pt"))


def same_weights(a: Path, b: Path) -> bool:
    from grokscope.training.checkpoint import load_checkpoint

    wa, wb = load_checkpoint(a)["model"], load_checkpoint(b)["model"]
    return wa.keys() == wb.keys() and all(bool((wa[k] == wb[k]).all()) for k in wa)


def snapshot(root: Path, *, skip: tuple[str, ...] = ()) -> dict[str, str]:
    """{relative path: sha256} of every file under `root` (names starting with one of `skip` left out)."""
    out = {}
    for dirpath, _, files in os.walk(root):
        for f in files:
            p = Path(dirpath) / f
            rel = str(p.relative_to(root))
            if not rel.startswith(skip):
                out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def temp_files(root: Path) -> list[str]:
    """Leftover temp files of atomic writes (.NAME.XXXX.tmp) under root."""
    return sorted(str(p.relative_to(root)) for p in root.rglob(".*.tmp"))


# ------------------------------------------------------------------------------ corruptions

MODES = ("flip", "half", "empty")
"""flip: one byte XOR 0xFF at a seeded position; half: truncated to half its size; empty: 0 bytes."""


def corrupt(path: Path, mode: str, seed: str) -> bytes:
    """Corrupt `path` in place; returns its original bytes."""
    data = path.read_bytes()
    if mode == "flip":
        b = bytearray(data)
        if b:
            b[random.Random(seed).randrange(len(b))] ^= 0xFF
        new = bytes(b)
    elif mode == "half":
        new = data[: len(data) // 2]
    elif mode == "empty":
        new = b""
    else:
        raise ValueError(mode)
    path.write_bytes(new)
    return data


def intact_lines(data: bytes) -> list[bytes]:
    """The lines of a JSON-lines file that still decode and parse (what a reader may keep)."""
    keep = []
    for line in data.split(b"\n"):
        try:
            json.loads(line.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            continue
        keep.append(line)
    return keep


# ------------------------------------------------------------------------------ one-line errors


def assert_one_error(code: int, err: str, *names: str) -> str:
    """Exit 2 and exactly one stderr line `grokscope: error: ...` naming each of `names`; no traceback."""
    assert "Traceback" not in err, err[-3000:]
    lines = err.strip().splitlines()
    assert code == 2, (code, err[-3000:])
    assert len(lines) == 1, err
    assert lines[0].startswith("grokscope: error: "), lines[0]
    for name in names:
        assert name in lines[0], (name, lines[0])
    return lines[0]


def assert_no_traceback(code: int, err: str) -> None:
    assert "Traceback" not in err, err[-3000:]
    assert code in (0, 2), (code, err[-3000:])
