"""Killed runs resume exactly; SIGTERM interrupts cleanly; grokking-aware stopping rules."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from dataclasses import replace

import pytest

from grokscope import RunDir, train
from grokscope.config import save_json
from grokscope.training.checkpoint import load_checkpoint
from grokscope.training.loop import resume
from tests.conftest import tiny_grokking_config

TIMING = {"elapsed"}


def _config(**train):
    base = tiny_grokking_config()
    return replace(base, train=replace(base.train, checkpoint_every=50, **train),
                   log=replace(base.log, figure=False))


def _metrics(path):
    return [{k: v for k, v in json.loads(line).items() if k not in TIMING}
            for line in RunDir(path).metrics.read_text().splitlines()]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    return train(_config(), tmp_path_factory.mktemp("ref") / "run", progress=False)


def _start(cfg, tmp_path, out):
    cfg_file = tmp_path / "cfg.json"
    cfg_file.write_text(save_json(cfg))
    with open(tmp_path / "stdout.txt", "wb") as so, open(tmp_path / "stderr.txt", "wb") as se:
        proc = subprocess.Popen([sys.executable, "-m", "grokscope", "train", "--config", str(cfg_file),
                                 "--out", str(out), "--quiet"], stdout=so, stderr=se)
    proc.stderr_path = tmp_path / "stderr.txt"
    return proc


def _wait_for_step(proc, out, step, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert proc.poll() is None, proc.stderr_path.read_text()
        records = RunDir(out).read_metrics()
        if records and records[-1]["step"] >= step:
            return
        time.sleep(0.05)
    raise AssertionError("run did not progress")


def _killed_at(cfg, tmp_path, out, step) -> tuple[RunDir, int]:
    """Train `cfg` in a subprocess, SIGKILL it once it has logged `step`; (its RunDir, last logged step)."""
    proc = _start(cfg, tmp_path, out)
    _wait_for_step(proc, out, step)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    rd = RunDir(out)
    assert rd.read_summary()["status"] == "running"  # killed: nobody wrote the end
    return rd, rd.read_metrics()[-1]["step"]


def test_sigkill_then_resume_equals_uninterrupted(tmp_path, uninterrupted):
    out = tmp_path / "killed"
    rd, killed_at = _killed_at(_config(), tmp_path, out, 330)
    assert killed_at < 700
    result = resume(out, progress=False)
    assert result.summary["status"] == "completed" and result.summary["resumed_from"]
    assert result.summary["resumed_from"][0] <= killed_at
    assert _metrics(out) == _metrics(uninterrupted.path)
    assert result.summary["events"] == uninterrupted.summary["events"]
    a = load_checkpoint(rd.checkpoint_path(700))["model"]
    b = load_checkpoint(RunDir(uninterrupted.path).checkpoint_path(700))["model"]
    assert all((a[k] == b[k]).all() for k in a)


def test_a_run_cut_off_before_its_first_step_resumes_without_a_second_step_0_record(tmp_path, uninterrupted):
    """Killed after its step-0 evaluation and checkpoint: resuming from step 0 logs step 0 once."""
    import shutil

    out = tmp_path / "at0"
    shutil.copytree(uninterrupted.path, out)
    rd = RunDir(out)
    for step, path in rd.list_checkpoints(include_latest=True):
        if step > 0:
            path.unlink()
            path.with_name(path.name + ".sha256").unlink(missing_ok=True)
    rd.metrics.write_text(rd.metrics.read_text().splitlines()[0] + "\n")  # the step-0 record only
    summary = rd.read_summary()
    rd.summary.write_text(json.dumps({**summary, "status": "running", "steps_done": 0}))
    result = resume(out, progress=False)
    assert result.summary["resumed_from"] == [0]
    assert _metrics(out) == _metrics(uninterrupted.path)


def test_sigterm_interrupts_with_loadable_checkpoint_and_resumes(tmp_path, uninterrupted):
    out = tmp_path / "term"
    proc = _start(_config(), tmp_path, out)
    _wait_for_step(proc, out, 200)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 143  # 128 + SIGTERM (15), as a shell reports a process ended by SIGTERM
    rd = RunDir(out)
    summary = rd.read_summary()
    assert summary["status"] == "interrupted" and "SIGTERM" in summary["stop_reason"]
    step, path = rd.list_checkpoints()[-1]
    assert step == summary["steps_done"] and 200 <= step < 700
    state = load_checkpoint(path)
    assert state["step"] == step and state["optimizer"] is not None
    resume(out, progress=False)
    assert _metrics(out) == _metrics(uninterrupted.path)


def test_resume_errors(tmp_path, uninterrupted, capsys):
    from grokscope.cli import main

    assert main(["resume", str(uninterrupted.path)]) == 2
    assert "already completed" in capsys.readouterr().err
    assert main(["resume", str(tmp_path)]) == 2
    assert "is not a run directory" in capsys.readouterr().err


def test_resume_extends_the_budget(tmp_path):
    short = train(_config(steps=300), tmp_path / "short", progress=False)
    assert short.summary["steps_done"] == 300
    longer = resume(short.path, steps=400, progress=False)
    assert longer.summary["steps_done"] == 400 and longer.metrics[-1]["step"] == 400
    assert json.loads(RunDir(short.path).config.read_text())["train"]["steps"] == 400


def test_stop_at_target(tmp_path, uninterrupted):
    r = train(_config(stop_when="target", stop_target=0.99, stop_patience=3), tmp_path / "t", progress=False)
    assert r.summary["status"] == "completed" and "3 evaluations in a row" in r.summary["stop_reason"]
    last3 = r.metrics[-3:]
    assert all(m["test_acc"] >= 0.99 for m in last3) and r.summary["steps_done"] < 700
    assert r.summary["steps_done"] == last3[-1]["step"]
    assert RunDir(r.path).list_checkpoints()[-1][0] == r.summary["steps_done"]
    # identical to the uninterrupted run up to the stop
    assert _metrics(r.path) == _metrics(uninterrupted.path)[: len(r.metrics)]


def test_stop_after_generalization(tmp_path):
    r = train(_config(stop_when="after_generalization", stop_after=60), tmp_path / "g", progress=False)
    gen = next(m["step"] for m in r.metrics if m["test_acc"] >= 0.99)
    assert r.summary["steps_done"] >= gen + 60 and r.summary["steps_done"] <= gen + 60 + 40
    assert r.metrics[-1]["step"] == r.summary["steps_done"]


def test_live_events_are_logged(uninterrupted):
    events = [json.loads(line) for line in (uninterrupted.path / "events.jsonl").read_text().splitlines()]
    names = [e["name"] for e in events]
    assert names[0] == "memorized" and "generalized" in names
    steps = {e["name"]: e["step"] for e in events}
    assert steps["memorized"] < steps["generalized"]
    if "rising" in steps:
        assert steps["memorized"] < steps["rising"] <= steps["generalized"]
