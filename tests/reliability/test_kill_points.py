"""kill -9 at seeded random points of train, resume, analyze and sweep; then resume / re-run and
compare with an uninterrupted run.

Each kill point is one test, drawn from random.Random(seed): the step (train, resume) or the
milestone and delay (analyze, sweep) at which the process group gets SIGKILL. A kill point only
counts when the process was still running at the kill (`kill9` returns True); the test fails
otherwise. The first seed of each command runs in the default suite, the rest under -m slow.

Exact means: metrics.jsonl equal line for line (minus `elapsed`), the same step_*.pt files, the
same final weights; analyze: analysis.json (minus `seconds`) and analysis.jsonl equal; sweep:
results.csv equal minus its volatile columns, and every run's metrics equal.
"""

from __future__ import annotations

import json
import random
import shutil
import time

import pytest

from grokscope import RunDir, train
from grokscope.cli import main
from grokscope.sweep.runner import VOLATILE_COLUMNS, read_results
from tests.reliability import faults

STEPS = 300
TRAIN_SEEDS = range(7)
RESUME_SEEDS = range(6)
ANALYZE_SEEDS = range(5)
SWEEP_SEEDS = range(4)
N_KILL_POINTS = len(TRAIN_SEEDS) + len(RESUME_SEEDS) + len(ANALYZE_SEEDS) + len(SWEEP_SEEDS)


def _seeds(seeds):
    """Seed 0 in the default suite, the others marked slow."""
    return [pytest.param(s, id=f"seed{s}", marks=() if s == 0 else pytest.mark.slow) for s in seeds]


def test_at_least_20_kill_points():
    assert N_KILL_POINTS >= 20


# ------------------------------------------------------------------------------ train and resume


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted run."""
    return train(faults.config(STEPS), tmp_path_factory.mktemp("ref") / "run", progress=False).path


def _train_proc(tmp_path, out):
    cfg = faults.write_config(faults.config(STEPS), tmp_path / "cfg.json")
    return faults.start(["train", "--config", str(cfg), "--out", str(out), "--quiet"], tmp_path / "logs")


def _kill_at_step(proc, out, step) -> int:
    """SIGKILL `proc` once metrics.jsonl reaches `step`; returns the last step it logged."""
    faults.wait_until(proc, lambda: faults.last_step(out) >= step, what=f"step {step}")
    assert faults.kill9(proc), "the run ended before its kill point"
    return faults.last_step(out)


def _tear_newest(out) -> str:
    """Truncate the newest checkpoint (step_*.pt or latest.pt) to half: a torn write."""
    step, path = RunDir(out).list_checkpoints(include_latest=True)[-1]
    faults.corrupt(path, "half", "tear")
    return str(path)


def _resume_to_end_and_compare(capsys, out, reference, torn: str | None):
    capsys.readouterr()
    code = main(["resume", str(out), "--quiet"])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "Traceback" not in err
    if torn:  # the torn checkpoint is named in one line and skipped
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("grokscope: skipped ") and torn in lines[0], err
    else:
        assert err.strip() == ""
    rd, ref = RunDir(out), RunDir(reference)
    assert rd.read_summary()["status"] == "completed"
    assert faults.metrics(out) == faults.metrics(reference)
    steps = faults.steps_of(out)
    assert steps == sorted(set(steps))  # no duplicate or reordered metric lines
    assert faults.checkpoint_names(out) == faults.checkpoint_names(reference)
    assert faults.same_weights(rd.checkpoint_path(STEPS), ref.checkpoint_path(STEPS))
    assert rd.read_summary()["events"] == ref.read_summary()["events"]
    return rd.read_summary()


@pytest.mark.parametrize("seed", _seeds(TRAIN_SEEDS))
def test_kill_train_then_resume_is_exact(seed, tmp_path, reference, capsys):
    r = random.Random(f"train-{seed}")
    kill_step = r.randrange(5, int(STEPS * 0.8))
    tear = seed % 3 == 2  # and the newest checkpoint torn as well
    out = tmp_path / "run"
    proc = _train_proc(tmp_path, out)
    killed_at = _kill_at_step(proc, out, kill_step)
    assert RunDir(out).read_summary()["status"] == "running"  # nobody wrote the end
    torn = _tear_newest(out) if tear else None
    summary = _resume_to_end_and_compare(capsys, out, reference, torn)
    assert summary["resumed_from"][0] <= killed_at


@pytest.mark.parametrize("seed", _seeds(RESUME_SEEDS))
def test_kill_resume_again_then_resume_is_exact(seed, tmp_path, reference, capsys):
    r = random.Random(f"resume-{seed}")
    out = tmp_path / "run"
    killed_at = _kill_at_step(_train_proc(tmp_path, out), out, r.randrange(5, int(STEPS * 0.5)))
    # the resumed process is killed again, past the first kill point
    second = r.randrange(killed_at + 10, int(STEPS * 0.9))
    proc = faults.start(["resume", str(out), "--quiet"], tmp_path / "logs")
    _kill_at_step(proc, out, second)
    assert len(RunDir(out).read_summary()["resumed_from"]) == 1
    summary = _resume_to_end_and_compare(capsys, out, reference, None)
    assert len(summary["resumed_from"]) == 2


# ------------------------------------------------------------------------------ analyze


def _analysis(run) -> tuple[dict, str, list[str]]:
    rd = RunDir(run)
    an = json.loads(rd.analysis.read_text())
    an.pop("seconds")
    return an, rd.analysis_records.read_text(), sorted(f["file"] for f in an["figures"])


@pytest.fixture(scope="module")
def analyzed(reference, tmp_path_factory):
    """(the trained run before analysis, the outputs of one uninterrupted analyze of a copy)."""
    base = tmp_path_factory.mktemp("an") / "base"
    shutil.copytree(reference, base)
    done = base.parent / "done"
    shutil.copytree(base, done)
    assert main(["analyze", str(done)]) == 0
    return base, _analysis(done)


@pytest.mark.parametrize("seed", _seeds(ANALYZE_SEEDS))
def test_kill_analyze_then_rerun_is_complete_and_equal(seed, tmp_path, analyzed, capsys):
    base, (ref_json, ref_records, ref_figures) = analyzed
    run = tmp_path / "run"
    shutil.copytree(base, run)
    trained = faults.snapshot(run, skip=("analysis", "figures", "report.html", ".lock"))
    r = random.Random(f"analyze-{seed}")
    # the moment of the kill: after analysis.jsonl, a figure or analysis.json appears (+ up to 20 ms),
    # or a random time after the start (while it computes)
    milestones = ["time", RunDir.ANALYSIS_RECORDS, *ref_figures, RunDir.ANALYSIS]
    first = {0: RunDir.ANALYSIS_RECORDS, 1: "time", 2: r.choice(ref_figures), 3: RunDir.ANALYSIS}
    milestone = first.get(seed) or r.choice(milestones)
    proc = faults.start(["analyze", str(run)], tmp_path / "logs")
    if milestone == "time":
        time.sleep(r.uniform(1.0, 2.5))
    else:
        faults.wait_until(proc, (run / milestone).is_file, what=milestone)
        time.sleep(r.uniform(0, 0.02))
    assert faults.kill9(proc), f"analyze ended before its kill point ({milestone})"
    # what the killed analysis left is whole: every output present parses
    if RunDir(run).analysis.is_file():
        assert json.loads(RunDir(run).analysis.read_text())["seconds"] is not None
    if RunDir(run).analysis_records.is_file():
        assert all(json.loads(line) for line in RunDir(run).analysis_records.read_text().splitlines())
    for png in (run / "figures").glob("*.png") if (run / "figures").is_dir() else []:
        data = png.read_bytes()
        assert data.startswith(b"\x89PNG") and data.endswith(b"IEND\xaeB`\x82"), png
    capsys.readouterr()
    assert main(["analyze", str(run)]) == 0, capsys.readouterr().err
    assert _analysis(run) == (ref_json, ref_records, ref_figures)
    assert "</html>" in RunDir(run).report.read_text()[-200:]
    assert faults.snapshot(run, skip=("analysis", "figures", "report.html", ".lock")) == trained


# ------------------------------------------------------------------------------ sweep

SWEEP = ["sweep", "--task.p", "23", "--task.train_fraction", "0.6", "--train.steps", "150",
         "--train.eval_every", "10", "--model.d_model", "32", "--model.d_mlp", "64", "--optim.lr", "1e-2",
         "--log.no-figure", "--log.no-report", "--axis", "optim.weight_decay=0,1", "--seeds", "2",
         "--workers", "1"]
SWEEP_RUNS = [f"weight_decay-{w}_seed-{s}" for w in (0, 1) for s in (0, 1)]


def _rows(out) -> list[dict]:
    return [{k: v for k, v in row.items() if k not in VOLATILE_COLUMNS} for row in read_results(out)]


def _published(out) -> list[str]:
    runs = out / "runs"
    return sorted(p.name for p in runs.iterdir() if not p.name.startswith(".")) if runs.is_dir() else []


def _partial(out) -> bool:
    runs = out / "runs"
    return runs.is_dir() and any(p.name.startswith(".partial") for p in runs.iterdir())


@pytest.fixture(scope="module")
def sweep_reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep") / "ref"
    assert main([*SWEEP, "--out", str(out)]) == 0
    assert _published(out) == SWEEP_RUNS
    return out


@pytest.mark.parametrize("seed", _seeds(SWEEP_SEEDS))
def test_kill_sweep_then_rerun_trains_the_rest_and_equals(seed, tmp_path, sweep_reference, capsys):
    r = random.Random(f"sweep-{seed}")
    done_before_kill = seed % 4  # 0..3 runs published, then a random moment within the next
    out = tmp_path / "sw"
    proc = faults.start([*SWEEP, "--out", str(out)], tmp_path / "logs")
    if done_before_kill == 0:
        faults.wait_until(proc, lambda: _partial(out), what="the first run")
    else:
        faults.wait_until(proc, lambda: len(_published(out)) >= done_before_kill, what="published runs")
    time.sleep(r.uniform(0, 0.3))
    assert faults.kill9(proc), "the sweep ended before its kill point"
    published = _published(out)
    kept = {name: faults.snapshot(out / "runs" / name) for name in published}
    capsys.readouterr()
    assert main([*SWEEP, "--out", str(out)]) == 0, capsys.readouterr().err
    assert _published(out) == SWEEP_RUNS
    assert [p.name for p in (out / "runs").iterdir() if p.name.startswith(".")] == []
    for name, files in kept.items():  # finished runs are not trained again
        assert faults.snapshot(out / "runs" / name) == files
    assert _rows(out) == _rows(sweep_reference)
    for name in SWEEP_RUNS:
        assert faults.metrics(out / "runs" / name) == faults.metrics(sweep_reference / "runs" / name)
