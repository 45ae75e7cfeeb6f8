"""Truncation and byte flips of every file kind of a run directory, read by every command that
reads it (show, resume --steps N, report, analyze).

Each case corrupts one file of a copy of a finished, reported and analysed tiny run, in one mode
(`faults.MODES`: flip one byte at a seeded position, truncate to half, empty it) and runs one
command in this process. The command must never raise (a traceback); it either

- refuses: exit 2, one line `grokscope: error: ...` naming the file, and writes nothing; or
- copes: exit 0, and does exactly what it does on a *control* copy where the corrupt file holds
  only its intact lines (JSON-lines logs: a torn line is skipped) or is absent (checkpoints and
  their sidecars: a corrupt checkpoint is skipped and named on stderr; derived outputs such as
  report.html, analysis.json, figures: they are rewritten), without touching the training files.

config.json and summary.json must be refused. Most flips run in the default suite (`_param`);
truncations under -m slow.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import socket
import subprocess
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from grokscope import RunDir, train
from grokscope.cli import main
from tests.reliability import faults

STEPS = 200
READERS = ("show", "resume", "report", "analyze")
TRAINING_FILES = (RunDir.CONFIG, RunDir.METRICS, RunDir.EVENTS, RunDir.SUMMARY, RunDir.CHECKPOINTS)


@dataclass(frozen=True)
class Kind:
    path: str  # relative to the run directory
    readers: tuple[str, ...]
    refuse: bool = False  # must be refused (no way to read a run without it)
    lines: bool = False  # a JSON-lines log: a reader may keep its intact lines
    named: bool = False  # skipping it must be said on stderr, naming it
    variant: str = "finished"  # "latest": step checkpoints after latest.pt removed (a killed run)
    clean: bool = False  # a sidecar, the lock or a derived output: the control is the intact run


KINDS = {
    "config.json": Kind(RunDir.CONFIG, READERS, refuse=True),
    "summary.json": Kind(RunDir.SUMMARY, READERS, refuse=True),
    "metrics.jsonl": Kind(RunDir.METRICS, READERS, lines=True),
    "events.jsonl": Kind(RunDir.EVENTS, ("resume",), lines=True),
    "step_*.pt": Kind(f"checkpoints/step_{STEPS:08d}.pt", ("resume", "analyze"), named=True),
    "step_*.pt.sha256": Kind(f"checkpoints/step_{STEPS:08d}.pt.sha256", ("resume", "analyze"), clean=True),
    "latest.pt": Kind("checkpoints/latest.pt", ("resume", "analyze"), named=True, variant="latest"),
    "latest.pt.sha256": Kind("checkpoints/latest.pt.sha256", ("resume", "analyze"), variant="latest",
                             clean=True),
    "report.html": Kind(RunDir.REPORT, ("report", "analyze"), clean=True),
    "analysis.json": Kind(RunDir.ANALYSIS, ("report", "analyze"), clean=True),
    "analysis.jsonl": Kind(RunDir.ANALYSIS_RECORDS, ("analyze",), clean=True),
    "figures/curves.png": Kind("figures/curves.png", ("report", "analyze"), clean=True),
    ".lock": Kind(RunDir.LOCK, ("resume", "analyze"), clean=True),
}
CASES = [(kind, mode, cmd) for kind, k in KINDS.items() for mode in faults.MODES for cmd in k.readers]


def test_every_file_kind_is_corrupted_in_every_mode():
    assert len(CASES) >= 80
    assert {mode for _, mode, _ in CASES} == set(faults.MODES)


def _argv(cmd: str, run: Path) -> list[str]:
    return {"show": ["show", str(run)], "resume": ["resume", str(run), "--steps", str(STEPS + 10), "--quiet"],
            "report": ["report", str(run)], "analyze": ["analyze", str(run)]}[cmd]


def _run(capsys, cmd: str, run: Path) -> tuple[int, str, str]:
    capsys.readouterr()
    try:
        code = main(_argv(cmd, run))
    except BaseException as e:  # what would be a traceback on the command line
        pytest.fail(f"grokscope {cmd} raised {type(e).__name__}: {e}")
    out, err = capsys.readouterr()
    return code, out.replace(str(run), "RUN"), err.replace(str(run), "RUN")


@pytest.fixture(scope="module")
def bases(tmp_path_factory):
    """{variant: run directory}: a finished run with a report and an analysis (and latest.pt), and
    the same run as a kill would leave it after writing latest.pt (later step checkpoints gone)."""
    root = tmp_path_factory.mktemp("corrupt")
    cfg = faults.config(STEPS, latest_every=0.05, checkpoint_per_decade=1)
    cfg = replace(cfg, train=replace(cfg.train, checkpoint_every=100))  # 6 checkpoints: a quick analyze
    run = train(cfg, root / "finished", progress=False).path
    assert main(["report", str(run)]) == 0 and main(["analyze", str(run)]) == 0
    rd = RunDir(run)
    assert rd.latest.is_file() and rd.report.is_file() and rd.analysis.is_file()
    dead = _dead_pid()
    rd.path.joinpath(RunDir.LOCK).write_text(json.dumps(
        {"pid": dead, "host": socket.gethostname(), "command": "grokscope train (killed)"}) + "\n")
    latest = root / "latest"
    shutil.copytree(run, latest)
    latest_step = json.loads(RunDir.checksum_path(RunDir(latest).latest).read_text())["step"]
    for step, path in RunDir(latest).list_checkpoints():
        if step > latest_step:
            path.unlink()
            RunDir.checksum_path(path).unlink()
    assert main(["analyze", str(latest)]) == 0  # its own analysis, report and figures
    return {"finished": run, "latest": latest}


def _training(run: Path) -> dict[str, str]:
    return {k: v for k, v in faults.snapshot(run).items() if k.startswith(TRAINING_FILES)}


def _dead_pid() -> int:
    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid


def _outcome(cmd: str, run: Path, out: str) -> dict:
    """What a command produced, to compare a corrupted run with its control."""
    rd = RunDir(run)
    if cmd == "show":
        return {"stdout": out}
    if cmd == "resume":
        return {"metrics": faults.metrics(run), "events": rd.events.read_text(),
                "status": rd.read_summary()["status"], "checkpoints": faults.checkpoint_names(run),
                "final": hashlib.sha256(str(sorted(
                    (k, v.tolist()) for k, v in _weights(rd.checkpoint_path(STEPS + 10)).items())).encode()
                ).hexdigest()}
    if cmd == "report":
        return {"complete": "</html>" in rd.report.read_text()[-200:]}
    an = json.loads(rd.analysis.read_text())
    an.pop("seconds")
    return {"analysis": an, "records": rd.analysis_records.read_text()}


def _weights(path: Path) -> dict:
    from grokscope.training.checkpoint import load_checkpoint

    return load_checkpoint(path)["model"]


@pytest.fixture(scope="module")
def controls():
    return {}


def _control(capsys, tmp_path, base: Path, kind: Kind, original: bytes, corrupted: bytes, cmd: str,
             cache: dict) -> dict:
    """The outcome of `cmd` on a copy where the corrupt file holds its intact lines or is absent."""
    repaired = b"\n".join(faults.intact_lines(corrupted)) + b"\n" if kind.lines else None
    if repaired == b"\n":
        repaired = b""
    if kind.clean:
        key = (str(base), cmd)
        if cmd == "analyze":  # the base was analysed by the same code: its outputs are the control's
            cache.setdefault(key, _outcome(cmd, base, ""))
    else:
        key = (str(base), kind.path, cmd, repaired and hashlib.sha256(repaired).hexdigest())
    if key not in cache:
        run = tmp_path / "control"
        shutil.copytree(base, run)
        target = run / kind.path
        if kind.clean:
            pass
        elif repaired is None:
            target.unlink()
        else:
            target.write_bytes(repaired)
        code, out, err = _run(capsys, cmd, run)
        assert code == 0, err
        cache[key] = _outcome(cmd, run, out)
    return cache[key]


def _param(kind, mode, cmd):
    """Flips in the default suite, except `analyze` over a rewritten output, the lock, a sidecar or
    metrics.jsonl (1.5-3 s each); truncations slow."""
    quick = mode == "flip" and not (cmd == "analyze" and (KINDS[kind].clean or KINDS[kind].lines))
    return pytest.param(kind, mode, cmd, id=f"{kind}-{mode}-{cmd}", marks=() if quick else pytest.mark.slow)


@pytest.mark.parametrize("kind_name,mode,cmd", [_param(*c) for c in CASES])
def test_corruption_is_refused_in_one_line_or_harmless(kind_name, mode, cmd, bases, controls, tmp_path,
                                                       capsys):
    kind = KINDS[kind_name]
    base = bases[kind.variant]
    run = tmp_path / "run"
    shutil.copytree(base, run)
    target = run / kind.path
    original = faults.corrupt(target, mode, f"{kind_name}-{mode}")
    corrupted = target.read_bytes()
    assert corrupted != original
    before = faults.snapshot(run, skip=(RunDir.LOCK,))
    training = _training(run)
    code, out, err = _run(capsys, cmd, run)
    name = Path(kind.path).name
    if kind.refuse or code != 0:
        # one line naming the file (a sidecar's checkpoint counts as naming it); nothing written
        faults.assert_one_error(code, err)
        assert name in err or name.removesuffix(RunDir.CHECKSUM) in err, err
        assert faults.snapshot(run, skip=(RunDir.LOCK,)) == before
        return
    lines = err.strip().splitlines()
    if kind.named:
        assert any(line.startswith("grokscope: skipped ") and name in line for line in lines), err
    assert all(name in line for line in lines), err  # nothing else said
    if cmd != "resume":  # readers leave the training files (the corrupt one included) as they were
        assert _training(run) == training
    if kind_name == "analysis.json" and cmd == "report":
        assert "analysis.json is unreadable" in RunDir(run).report.read_text()
        return
    assert _outcome(cmd, run, out) == _control(capsys, tmp_path, base, kind, original, corrupted, cmd,
                                               controls)


def test_a_changed_step_in_latest_sidecar_is_not_trusted(bases, tmp_path, capsys):
    """latest.pt's step is read from its sidecar (the checksum does not cover the sidecar): a sidecar
    that parses but names another step (one bit: '1' <-> '9') must not decide where resume starts."""
    run = tmp_path / "run"
    shutil.copytree(bases["latest"], run)
    sidecar = RunDir.checksum_path(RunDir(run).latest)
    meta = json.loads(sidecar.read_text())
    true_step = meta["step"]
    sidecar.write_text(json.dumps({**meta, "step": true_step + 800}))
    code, out, err = _run(capsys, "resume", run)
    if code == 2:  # refused: naming the sidecar's file
        faults.assert_one_error(code, err, "latest.pt")
        assert "already has" not in err, err  # not a claim about steps the run never trained
    else:
        assert code == 0, err
        assert RunDir(run).read_summary()["resumed_from"][-1] == true_step
