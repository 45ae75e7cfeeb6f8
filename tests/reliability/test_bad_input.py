"""The bad-input catalogue, one test each, at the command line: a one-line error and exit 2 (or the
correct behaviour), no traceback, and nothing lost or clobbered (SHA-256 of every file before and
after). Numbers refer to the catalogue in docs/reliability.md.
"""

from __future__ import annotations

import json
import math
import os
import pickle
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from grokscope import RunDir, train
from grokscope.cli import main
from grokscope.tracking.rundir import read_jsonl
from tests.reliability import faults

BIG = str(2**70)  # 1180591620717411303424
TINY = ["--task.p", "23", "--train.steps", "5", "--model.d_model", "32", "--model.d_mlp", "64",
        "--log.no-figure", "--log.no-report", "--quiet"]
LONG = 800  # steps of a run that is still training while the others try to write (~3 s)


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """A finished 300-step run (the uninterrupted reference); tests work on copies of it."""
    return train(faults.config(300, latest_every=60.0), tmp_path_factory.mktemp("bad") / "ref",
                 progress=False).path


def _copy(finished: Path, tmp_path: Path) -> Path:
    run = tmp_path / "run"
    shutil.copytree(finished, run)
    return run


# ------------------------------------------------------------------------------ 1. two writers


def test_1_two_trains_into_one_new_out_at_once(tmp_path):
    cfg = faults.write_config(faults.config(LONG, latest_every=60.0), tmp_path / "cfg.json")
    out = tmp_path / "run"
    argv = ["train", "--config", str(cfg), "--out", str(out), "--quiet"]
    procs = [faults.start(argv, tmp_path / "logs") for _ in range(2)]
    for p in procs:
        p.wait(timeout=300)
    codes = sorted(p.returncode for p in procs)
    assert codes == [0, 2], [faults.output(p) for p in procs]
    loser = next(p for p in procs if p.returncode == 2)
    _, err = faults.output(loser)
    line = faults.assert_one_error(2, err, str(out), "is being written by pid")
    winner = next(p for p in procs if p.returncode == 0)
    assert f"pid {winner.pid} " in line
    steps = faults.steps_of(out)
    assert steps == sorted(set(steps)) and steps[-1] == LONG  # one writer: no duplicate lines
    assert RunDir(out).read_summary()["status"] == "completed"


def test_1_resume_analyze_train_while_training_are_refused_then_sigterm(tmp_path, capsys):
    """While a run trains: resume and analyze exit 2 naming the holder, train into it exit 2; the
    run is not disturbed. Then SIGTERM: exit 143, a `resume:` line, a checkpoint it resumes from."""
    cfg = faults.write_config(faults.config(LONG, latest_every=60.0), tmp_path / "cfg.json")
    out = tmp_path / "run"
    proc = faults.start(["train", "--config", str(cfg), "--out", str(out), "--quiet"], tmp_path / "logs")
    try:
        faults.wait_until(proc, lambda: faults.last_step(out) >= 20, what="step 20")
        for argv in (["resume", str(out)], ["resume", str(out), "--steps", str(LONG + 10)],
                     ["analyze", str(out)]):
            code, _, err = run_cli(capsys, *argv)
            faults.assert_one_error(code, err, str(out), f"is being written by pid {proc.pid} ")
        code, _, err = run_cli(capsys, "train", "--out", str(out), *TINY)
        faults.assert_one_error(code, err, "already exists and is not empty")
        assert proc.poll() is None, "the run ended before the others tried"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=120) == 143
    finally:
        if proc.poll() is None:
            faults.kill9(proc)
    stdout, _ = faults.output(proc)
    assert f"resume:  grokscope resume {out}" in stdout.splitlines()
    summary = RunDir(out).read_summary()
    assert summary["status"] == "interrupted" and "SIGTERM" in summary["stop_reason"]
    steps = faults.steps_of(out)
    assert steps == sorted(set(steps))
    stopped = summary["steps_done"]
    assert RunDir(out).list_checkpoints()[-1][0] == stopped
    code, _, err = run_cli(capsys, "resume", str(out), "--steps", str(stopped + 10), "--quiet")
    assert code == 0 and err == "", err
    assert faults.steps_of(out)[-1] == stopped + 10


# ------------------------------------------------------------------------------ 2. sweep size


def test_2_sweep_help_lists_max_runs(capsys):
    code, stdout, _ = run_cli(capsys, "sweep", "--help")
    assert code == 0
    if not re.search(r"--max[-_]runs", stdout):
        pytest.skip("grokscope sweep has no --max-runs (the sweep size cap is tested with the sweep)")


# ------------------------------------------------------------------------------ 3. torn newest checkpoint


def test_3_truncated_newest_checkpoint_resume_falls_back_exactly(finished, tmp_path, capsys):
    run = _copy(finished, tmp_path)
    rd = RunDir(run)
    newest = rd.checkpoint_path(300)
    faults.corrupt(newest, "half", "")
    older = faults.snapshot(run / "checkpoints", skip=("step_00000300",))
    code, _, err = run_cli(capsys, "resume", str(run), "--steps", "300", "--quiet")  # the last 50 again
    assert code == 0, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("grokscope: skipped ") and str(newest) in lines[0], err
    assert lines[0].endswith("resuming from step 250"), lines[0]
    assert faults.metrics(run) == faults.metrics(finished)  # the uninterrupted run's metrics
    assert faults.same_weights(newest, RunDir(finished).checkpoint_path(300))
    now = faults.snapshot(run / "checkpoints")
    assert all(now[k] == v for k, v in older.items() if int(k[5:13]) <= 250)  # nothing older touched


def test_3_truncated_newest_checkpoint_analyze_falls_back(finished, tmp_path, capsys):
    """analyze names the torn checkpoint in one line and analyses the others."""
    run = _copy(finished, tmp_path)
    newest = RunDir(run).checkpoint_path(300)
    faults.corrupt(newest, "half", "")
    trained = faults.snapshot(run, skip=("analysis", "figures", "report.html", ".lock"))
    code, _, err = run_cli(capsys, "analyze", str(run))
    assert code == 0, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("grokscope: skipped ") and str(newest) in lines[0], err
    steps = json.loads(RunDir(run).analysis.read_text())["steps"]
    assert steps[-1] == 250 and 300 not in steps
    assert faults.snapshot(run, skip=("analysis", "figures", "report.html", ".lock")) == trained


# ------------------------------------------------------------------------------ 4. planted pickle


class _Planted:
    """Unpickling this object would create `marker` (pickle calls open(marker, 'w')). Never unpickled."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def _plant(run: Path, marker: Path, how: str) -> Path:
    """A checkpoint newer than every other one that would run code when loaded with plain pickle."""
    path = RunDir(run).checkpoint_path(400)
    payload = {"step": 400, "model": _Planted(marker)}
    if how == "pickle":
        path.write_bytes(pickle.dumps(payload, protocol=2))
    elif how == "pickle-protocol-4":
        path.write_bytes(pickle.dumps(payload, protocol=4))
    else:  # torch.save's zip format, with a sidecar that matches it (only weights_only stops it)
        import hashlib
        import io

        import torch

        buf = io.BytesIO()
        torch.save(payload, buf)
        data = buf.getvalue()
        path.write_bytes(data)
        RunDir.checksum_path(path).write_text(json.dumps(
            {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data), "step": 400}))
    assert not marker.exists()
    return path


PLANTED = [pytest.param("pickle", marks=pytest.mark.slow), "pickle-protocol-4",
           pytest.param("torch-zip-with-sidecar", marks=pytest.mark.slow)]
"""pickle.dumps' default protocol (4) in the default suite; protocol 2 and torch.save's zip: slow."""


@pytest.mark.parametrize("how", PLANTED)
def test_4_planted_pickle_resume_and_init_from_refuse_it(finished, tmp_path, how):
    run = _copy(finished, tmp_path)
    marker = tmp_path / "MARKER"
    planted = _plant(run, marker, how)
    source = faults.snapshot(run)
    # --train.init_from reads the run: skips the planted file in one line, starts from step 300
    dst = tmp_path / "dst"
    r = faults.cli(["train", "--out", str(dst), *TINY, "--train.init_from", str(run)])
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.strip().splitlines() == [
        f"grokscope: skipped {str(planted)!r} is not a weights-only checkpoint; not loaded (loading it "
        "could run code); starting from step 300"], r.stderr
    assert RunDir(dst).read_summary()["lineage"]["step"] == 300
    assert faults.snapshot(run) == source  # a reader: the source run is untouched
    # resume skips it the same way and trains on from step 300
    r = faults.cli(["resume", str(run), "--steps", "310", "--quiet"])
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.strip().splitlines() == [
        f"grokscope: skipped {str(planted)!r} is not a weights-only checkpoint; not loaded (loading it "
        "could run code); resuming from step 300"], r.stderr
    assert RunDir(run).read_summary()["resumed_from"] == [300]
    assert not marker.exists()


@pytest.mark.parametrize("how", PLANTED)
def test_4_planted_pickle_analyze_never_runs_it(finished, tmp_path, how):
    run = _copy(finished, tmp_path)
    marker = tmp_path / "MARKER"
    planted = _plant(run, marker, how)
    r = faults.cli(["analyze", str(run)])
    assert "Traceback" not in r.stderr and r.returncode in (0, 2), r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and str(planted) in lines[0] and "not a weights-only checkpoint" in lines[0]
    assert not marker.exists()


# ------------------------------------------------------------------------------ 5-7. the command line


@pytest.mark.parametrize("field", ["--seed", "--task.split_seed"])
def test_5_seed_beyond_int64_is_one_line(field, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "run"
    code, _, err = run_cli(capsys, "train", "--out", str(out), *TINY, field, BIG)
    faults.assert_one_error(code, err, field.lstrip("-"), BIG)
    assert list(tmp_path.iterdir()) == []


def test_5_seed_beyond_int64_in_a_config_file(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    from grokscope.config import to_dict

    cfg = to_dict(faults.config(5))
    cfg["seed"] = 2**70
    (tmp_path / "cfg.json").write_text(json.dumps(cfg))
    code, _, err = run_cli(capsys, "train", "--config", "cfg.json", "--out", "run", "--quiet")
    faults.assert_one_error(code, err, "seed", BIG)
    assert [p.name for p in tmp_path.iterdir()] == ["cfg.json"]


def test_6_empty_out_is_one_line_and_writes_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(capsys, "train", "--out", "", *TINY)
    faults.assert_one_error(code, err, "out: ")
    assert list(tmp_path.iterdir()) == []


def test_7_field_given_twice_warns_and_the_last_wins(tmp_path, capsys):
    out = tmp_path / "run"
    code, _, err = run_cli(capsys, "train", "--out", str(out), *TINY, "--task.p", "7", "--task.p", "11")
    assert code == 0, err
    assert err.strip().splitlines() == [
        "grokscope: warning: --task.p is given more than once; the last value is used"]
    assert json.loads(RunDir(out).config.read_text())["task"]["p"] == 11


# ------------------------------------------------------------------------------ 8. broken JSON files


@pytest.mark.parametrize("name", [RunDir.CONFIG, RunDir.SUMMARY])
@pytest.mark.parametrize("cmd", ["show", "resume", "report", "analyze"])
def test_8_broken_json_names_the_file_and_line(finished, tmp_path, capsys, name, cmd):
    run = _copy(finished, tmp_path)
    path = run / name
    lines = path.read_text().splitlines()
    lines[4] = lines[4].replace(":", ": ,", 1)  # line 5: `"key": , value`
    path.write_text("\n".join(lines) + "\n")
    before = faults.snapshot(run, skip=(".lock",))
    argv = [cmd, str(run)] + (["--steps", "310", "--quiet"] if cmd == "resume" else [])
    code, _, err = run_cli(capsys, *argv)
    line = faults.assert_one_error(code, err, str(path))
    assert "line 5" in line, line
    assert faults.snapshot(run, skip=(".lock",)) == before


# ------------------------------------------------------------------------------ smaller


def test_killed_before_its_first_checkpoint_resume_is_one_line(tmp_path, capsys):
    """A run killed between its config and its first checkpoint cannot resume: one line, exit 2."""
    out = tmp_path / "run"
    assert run_cli(capsys, "train", "--out", str(out), *TINY)[0] == 0
    shutil.rmtree(RunDir(out).checkpoints)
    RunDir(out).checkpoints.mkdir()
    summary = RunDir(out).read_summary()
    RunDir(out).summary.write_text(json.dumps({**summary, "status": "running"}))
    before = faults.snapshot(out)
    code, _, err = run_cli(capsys, "resume", str(out))
    faults.assert_one_error(code, err, str(out), "no checkpoint")
    assert faults.snapshot(out) == before


def _strict(text: str, name: str) -> list:
    def refuse(constant):
        pytest.fail(f"{name} holds the non-JSON constant {constant}")

    return [json.loads(line, parse_constant=refuse) for line in text.splitlines() if line.strip()]


def test_a_diverged_run_writes_strict_json(tmp_path, capsys):
    out = tmp_path / "run"
    code, _, err = run_cli(capsys, "train", "--out", str(out), *TINY, "--train.steps", "50",
                           "--optim.name", "sgd", "--optim.lr", "1e6")
    assert code == 1, err  # a diverged run "failed"
    rd = RunDir(out)
    records = _strict(rd.metrics.read_text(), "metrics.jsonl")
    assert rd.read_summary()["status"] == "diverged"
    assert any(v is None for r in records for v in r.values())  # the non-finite values became null
    _strict(rd.events.read_text() if rd.events.is_file() else "", "events.jsonl")
    _strict(rd.summary.read_text().replace("\n", " "), "summary.json")
    code, stdout, err = run_cli(capsys, "show", str(out))
    assert code == 0 and "diverged" in stdout, err


def test_old_files_with_bare_nan_still_read(finished, tmp_path, capsys):
    run = _copy(finished, tmp_path)
    rd = RunDir(run)
    lines = rd.metrics.read_text().splitlines()
    last = json.loads(lines[-1])
    lines[-1] = json.dumps({**last, "train_loss": float("nan"), "test_loss": float("inf")})  # bare NaN
    assert "NaN" in lines[-1] and "Infinity" in lines[-1]
    rd.metrics.write_text("\n".join(lines) + "\n")
    records = read_jsonl(rd.metrics)
    assert len(records) == len(lines) and math.isnan(records[-1]["train_loss"])
    assert math.isinf(records[-1]["test_loss"])
    code, stdout, err = run_cli(capsys, "show", str(run))
    assert code == 0 and "Traceback" not in err, err
    assert run_cli(capsys, "report", str(run))[0] == 0


def test_the_installed_command_gives_the_same_single_line(tmp_path):
    """Bad input through a real process: the one line is all of stderr (no warnings, no traceback)."""
    r = subprocess.run([sys.executable, "-m", "grokscope", "train", "--out", str(tmp_path / "r"),
                        "--seed", BIG], capture_output=True, text=True, env=faults.ENV, timeout=120)
    faults.assert_one_error(r.returncode, r.stderr, "seed")
    assert not (tmp_path / "r").exists() and os.listdir(tmp_path) == []
