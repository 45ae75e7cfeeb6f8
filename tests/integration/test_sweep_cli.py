"""`grokscope sweep` end to end: run directories, results.csv, resume after a kill, bad input,
`show` and `report` of a sweep."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from grokscope.cli import main
from grokscope.errors import ConfigError
from grokscope.sweep.runner import read_results

# tiny runs (~0.5 s each): x+y mod 23, d_model 32
TINY = ["--task.p", "23", "--task.train_fraction", "0.6", "--train.steps", "150", "--train.eval_every", "10",
        "--model.d_model", "32", "--model.d_mlp", "64", "--optim.lr", "1e-2", "--log.no-figure",
        "--log.no-report"]


def run_cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _snapshot(root) -> dict:
    """{relative path: (mtime_ns, bytes)} of every file under root."""
    out = {}
    for dirpath, _, files in os.walk(root):
        for f in files:
            p = os.path.join(dirpath, f)
            with open(p, "rb") as fh:
                out[os.path.relpath(p, root)] = (os.stat(p).st_mtime_ns, fh.read())
    return out


def _hidden(runs_dir) -> list[str]:
    return [p.name for p in runs_dir.iterdir() if p.name.startswith(".")]


def test_sweep_end_to_end_rerun_show_report(tmp_path, capsys):
    out = tmp_path / "sw"
    argv = ["sweep", *TINY, "--log.report", "true", "--axis", "optim.weight_decay=0,1", "--seeds", "2",
            "--out", str(out), "--workers", "1"]
    code, stdout, err = run_cli(capsys, *argv)
    assert code == 0, err
    assert "4 runs, 0 already done, 4 to train" in stdout and "[4/4]" in stdout
    names = [f"weight_decay-{w}_seed-{s}" for w in (0, 1) for s in (0, 1)]
    assert sorted(p.name for p in (out / "runs").iterdir()) == names
    rows = read_results(out)
    assert [r["run"] for r in rows] == names
    assert [(r["optim.weight_decay"], r["seed"], r["status"]) for r in rows] == [
        ("0", "0", "completed"), ("0", "1", "completed"), ("1", "0", "completed"), ("1", "1", "completed")]
    for r in rows:
        d = out / r["run_dir"]
        cfg = json.loads((d / "config.json").read_text())
        summary = json.loads((d / "summary.json").read_text())
        assert cfg["optim"]["weight_decay"] == float(r["optim.weight_decay"])
        assert cfg["seed"] == int(r["seed"])
        assert cfg["task"]["p"] == 23 and cfg["train"]["steps"] == 150 and cfg["name"] == f"demo-{r['run']}"
        assert r["outcome"] == summary["phase"] and float(r["final_test_acc"]) == summary["final"]["test_acc"]
        assert (d / "metrics.jsonl").is_file() and list((d / "checkpoints").glob("step_*.pt"))
        report = (d / "report.html").read_text()
        assert str(d) in report and ".partial" not in report  # redrawn at its final place
    spec = json.loads((out / "sweep.json").read_text())
    assert spec["axes"] == {"optim.weight_decay": [0.0, 1.0]} and spec["seeds"] == [0, 1]
    assert spec["overrides"]["train.steps"] == "150" and len(spec["runs"]) == 4
    assert _hidden(out / "runs") == []

    before = _snapshot(out / "runs")
    code, stdout, err = run_cli(capsys, *argv)
    assert code == 0 and "4 runs, 4 already done, 0 to train" in stdout
    assert _snapshot(out / "runs") == before

    code, stdout, err = run_cli(capsys, "show", str(out))
    assert code == 0, err
    assert "axes    optim.weight_decay (2); seeds [0, 1]" in stdout and "4 runs: 4 completed" in stdout
    assert stdout.splitlines()[5].split()[:3] == ["weight_decay", "runs", "outcome"]
    code, stdout, err = run_cli(capsys, "report", str(out))
    assert code == 0 and stdout.strip() == str(out / "report.html")
    assert "Phase diagrams" in (out / "report.html").read_text()


def test_spec_file_with_command_line_on_top(tmp_path, capsys):
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"preset": "demo", "overrides": {"train.steps": 9999},
                                "axes": {"model.init_scale": "log:0.5:2:3"}, "seeds": [3]}))
    out = tmp_path / "sw"
    code, stdout, err = run_cli(capsys, "sweep", "--spec", str(spec), *TINY, "--axis", "model.init_scale=1",
                                "--out", str(out))
    assert code == 0, err
    rows = read_results(out)
    assert [(r["run"], r["model.init_scale"], r["steps_done"]) for r in rows] == [
        ("init_scale-1_seed-3", "1", "150")]


BAD = [
    (["--axis", "optim.lrr=1,2"], "optim.lrr: unknown field (did you mean 'optim.lr'?)"),
    (["--axis", "optim.lr"], "axis: expected FIELD=VALUES like optim.weight_decay=0,0.1,1, got 'optim.lr'"),
    (["--axis", "optim.lr=1e-3,0.001"], "optim.lr: axis value 0.001 is given twice"),
    (["--axis", "optim.lr=1", "--axis", "optim.lr=2"], "axis: optim.lr is given twice"),
    (["--axis", "optim.lr=-1,1"], "optim.lr: must be > 0, got -1.0 (in sweep run weight_decay-0_lr--1"),
    (["--axis", "task.train_fraction=0.2:0.8"], "task.train_fraction: range must be START:STOP:N"),
    (["--axis", "seed=1,2"], "seed: cannot be swept as an axis; use seeds"),
    (["--axis", "task.p=23,24", "--task.op", "x/y"], "task.p: must be a prime for op 'x/y'"),
    (["--seeds", "0"], "seeds: must be a count N >= 1 or a list of seeds >= 0"),
    (["--executor", "dask"], "executor: must be one of local, ray, slurm, got 'dask'"),
    (["--address", "auto"], "address: only for --executor ray"),
    (["--slurm", "x=1"], "slurm: only for --executor slurm"),
    (["--executor", "slurm", "--slurm", "nonsense"], "slurm: expected KEY=VALUE like timeout_min=120"),
    (["--pack", "0"], "pack: must be an integer >= 1, got '0'"),
    (["--workers", "many"], "workers: must be an integer >= 1, got 'many'"),
    (["--preset", "nope"], "preset: unknown preset 'nope'"),
    (["--train.steps", "many"], "train.steps: must be an integer, got 'many'"),
    (["--optim.lrr", "1"], "optim.lrr: unknown field"),
    (["--spec", "missing.json"], "spec: 'missing.json' is not a file"),
    (["positional"], "sweep: unexpected argument 'positional'"),
    (["--pack"], "pack: missing value after --pack"),
    (["--axis", "optim.lr=log:1e-4:1e-2:1000", "--axis", "task.train_fraction=0.1:0.9:1000"],
     "sweep: 2,000,000 runs (2 x 1000 x 1000 x 1 seed) is more than 10,000; pass --max-runs N to allow it"),
    (["--seeds", "2", "--max-runs", "3"], "sweep: 4 runs (2 x 2 seeds) is more than 3; pass --max-runs N"),
    (["--max-runs", "0"], "max_runs: must be an integer >= 1, got '0'"),
]


@pytest.mark.parametrize("argv,message", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path, monkeypatch, capsys, argv, message):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "sw"
    code, stdout, err = run_cli(capsys, "sweep", "--out", str(out), "--axis", "optim.weight_decay=0,1", *argv)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("grokscope: error: ") and message in lines[0], lines[0]
    assert "Traceback" not in err
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_out_must_be_new_or_the_same_sweep(tmp_path, capsys):
    code, _, err = run_cli(capsys, "sweep", "--axis", "model.init_scale=1")
    assert code == 2 and "out: give the sweep directory with --out DIR" in err
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("keep")
    code, _, err = run_cli(capsys, "sweep", *TINY, "--axis", "model.init_scale=1", "--out", str(other))
    assert code == 2 and "is not a sweep directory (no sweep.json)" in err
    assert [p.name for p in other.iterdir()] == ["notes.txt"]
    out = tmp_path / "sw"
    assert run_cli(capsys, "sweep", *TINY, "--axis", "model.init_scale=1", "--out", str(out))[0] == 0
    before = _snapshot(out)
    code, _, err = run_cli(capsys, "sweep", *TINY, "--train.steps", "160", "--axis", "model.init_scale=1",
                           "--out", str(out))
    assert code == 2
    assert "holds run init_scale-1_seed-0 trained with train.steps=150 but the spec now gives 160" in err
    assert _snapshot(out) == before


def test_a_run_trained_before_a_config_field_existed_still_resumes_its_sweep(tmp_path, capsys):
    import json

    out = tmp_path / "sw"
    assert run_cli(capsys, "sweep", *TINY, "--axis", "model.init_scale=1", "--out", str(out))[0] == 0
    cfg_file = out / "runs" / "init_scale-1_seed-0" / "config.json"
    cfg = json.loads(cfg_file.read_text())
    del cfg["task"]["skew"]  # as an older grokscope wrote it: the field held its default
    cfg_file.write_text(json.dumps(cfg))
    code, text, _ = run_cli(capsys, "sweep", *TINY, "--axis", "model.init_scale=1", "--out", str(out))
    assert code == 0 and "0 to train" in text
    cfg["task"]["skew"] = 1.0  # a real difference is still refused
    cfg_file.write_text(json.dumps(cfg))
    code, _, err = run_cli(capsys, "sweep", *TINY, "--axis", "model.init_scale=1", "--out", str(out))
    assert code == 2 and "trained with task.skew=1.0 but the spec now gives 0.0" in err


def test_vectorize_is_the_default_on_cuda(tmp_path, capsys, monkeypatch):
    import torch

    from grokscope.sweep import runner

    seen = []

    def fake_run_sweep(spec, out, executor, *, pack, vectorize, log, **kw):
        seen.append((pack, vectorize))
        out.mkdir(exist_ok=True)  # holds .lock already
        (out / "sweep.json").write_text(json.dumps(runner.sweep_json(spec, spec.expand())))
        return runner.SweepResult(out, 2, 0)

    monkeypatch.setattr(runner, "run_sweep", fake_run_sweep)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    argv = ["sweep", *TINY, "--axis", "optim.weight_decay=0,1"]
    for i, extra in enumerate([[], ["--pack", "4"], ["--no-vectorize"], ["--train.device", "cpu"]]):
        assert run_cli(capsys, *argv, *extra, "--out", str(tmp_path / f"sw{i}"))[0] == 0
    assert seen == [(32, True), (4, True), (1, False), (1, False)]


def _published(runs_dir) -> set[str]:
    return {p.name for p in runs_dir.iterdir()
            if not p.name.startswith(".") and (p / "summary.json").is_file()}


def test_killed_sweep_reruns_only_the_missing_runs(tmp_path, capsys):
    out = tmp_path / "sw"
    args = ["sweep", *TINY, "--train.steps", "300", "--axis", "optim.weight_decay=0,1,2",
            "--out", str(out), "--workers", "1"]
    with open(tmp_path / "stdout.txt", "wb") as so, open(tmp_path / "stderr.txt", "wb") as se:
        proc = subprocess.Popen([sys.executable, "-m", "grokscope", *args], stdout=so, stderr=se,
                                start_new_session=True)
    try:
        deadline = time.time() + 120
        while not ((out / "runs").is_dir() and _published(out / "runs")):
            assert proc.poll() is None, (tmp_path / "stderr.txt").read_text()
            assert time.time() < deadline, "the sweep did not progress"
            time.sleep(0.02)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    done = _published(out / "runs")
    assert 1 <= len(done) < 3
    before = {name: _snapshot(out / "runs" / name) for name in done}

    code, stdout, err = run_cli(capsys, *args)
    assert code == 0, err
    assert f"3 runs, {len(done)} already done, {3 - len(done)} to train" in stdout
    assert stdout.count("  completed  ") == 3 - len(done)
    for name in done:
        assert _snapshot(out / "runs" / name) == before[name]
    assert _published(out / "runs") == {f"weight_decay-{w}_seed-0" for w in (0, 1, 2)}
    assert _hidden(out / "runs") == []  # the killed run's partial directory is gone
    assert [r["status"] for r in read_results(out)] == ["completed"] * 3


# ----------------------------------------------------------------------------- size, lock, Ctrl-C


def test_a_huge_sweep_is_refused_at_once(tmp_path, capsys):
    out = tmp_path / "sw"
    t = time.perf_counter()
    code, stdout, err = run_cli(capsys, "sweep", "--axis", "optim.lr=log:1e-4:1e-2:1000",
                                "--axis", "optim.weight_decay=0:1:1000", "--out", str(out))
    assert time.perf_counter() - t < 5  # counted, never built (it took minutes before)
    assert code == 2 and stdout == "" and err == (
        "grokscope: error: sweep: 1,000,000 runs (1000 x 1000 x 1 seed) is more than 10,000; "
        "pass --max-runs N to allow it\n")
    assert not out.exists()


def _hold_lock(path):
    """A process holding the sweep lock of `path` (as a running sweep does) until it is killed."""
    code = ("import sys, time; from grokscope.sweep.runner import sweep_lock; sweep_lock(sys.argv[1]); "
            "print('held', flush=True); time.sleep(600)")
    proc = subprocess.Popen([sys.executable, "-c", code, str(path)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_sweep_into_a_folder_being_written_fails_at_once(tmp_path, capsys):
    import socket

    out = tmp_path / "sw"
    argv = ["sweep", *TINY, "--axis", "optim.weight_decay=0", "--out", str(out), "--workers", "1"]
    assert run_cli(capsys, *argv)[0] == 0
    assert (out / ".lock").read_text() == ""  # released at the end
    holder = _hold_lock(out)
    try:
        before = _snapshot(out)
        t = time.perf_counter()
        code, stdout, err = run_cli(capsys, *argv, "--axis", "model.init_scale=1,2")
        assert time.perf_counter() - t < 10
        assert code == 2 and stdout == ""
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(
            f"grokscope: error: sweep: {str(out)!r} is being written by pid {holder.pid} on host "
            f"{socket.gethostname()}"), err
        assert lines[0].endswith("; wait for it to end or stop it")
        assert _snapshot(out) == before  # nothing written, not even the lock file
        from grokscope.cli.parsing import parse
        from grokscope.cli.sweep import sweep_spec
        from grokscope.sweep.executors import InlineExecutor
        from grokscope.sweep.runner import run_sweep

        with pytest.raises(ConfigError, match=f"^sweep: .* is being written by pid {holder.pid} "):
            run_sweep(sweep_spec(parse(argv)), out, InlineExecutor())  # the API locks too
        assert _snapshot(out) == before
        # reading a sweep takes no lock
        assert run_cli(capsys, "show", str(out))[0] == 0
        assert run_cli(capsys, "report", str(out))[0] == 0
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()
    # the holder died without releasing: its lock is taken over, and said so
    code, stdout, err = run_cli(capsys, *argv)
    assert code == 0, err
    assert f"sweep: took over the lock of pid {holder.pid} on host {socket.gethostname()}" in stdout
    assert "1 runs, 1 already done, 0 to train" in stdout
    assert (out / ".lock").read_text() == ""


def _interruptible(args, **kw):
    """The CLI in its own session with Ctrl-C (SIGINT) handled as in a terminal."""
    return subprocess.Popen([sys.executable, "-m", "grokscope", *args], start_new_session=True, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL), **kw)


def test_ctrl_c_while_a_long_sweep_expands_is_one_line(tmp_path):
    out = tmp_path / "sw"
    args = ["sweep", "--axis", "optim.lr=log:1e-4:1e-2:300", "--axis", "optim.weight_decay=0:1:300",
            "--max-runs", "90000", "--out", str(out)]
    proc = _interruptible(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        first = proc.stderr.readline()  # a progress line after a few seconds of expanding
        assert first.startswith("sweep: checked ") and " of 90,000 runs" in first, first
        os.killpg(proc.pid, signal.SIGINT)
        stdout, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 130
    lines = [line for line in err.splitlines() if not line.startswith("sweep: checked ")]
    assert lines == ["interrupted: run the same command again to resume the interrupted runs and train the "
                     "rest"], err
    assert stdout == "" and not out.exists()


def test_ctrl_c_while_workers_train_is_one_line_and_no_traceback(tmp_path):
    out = tmp_path / "sw"
    args = ["sweep", *TINY, "--train.steps", "1000000", "--axis", "optim.weight_decay=0,1,2",
            "--out", str(out), "--workers", "2"]
    with open(tmp_path / "stdout.txt", "w") as so, open(tmp_path / "stderr.txt", "w") as se:
        proc = _interruptible(args, stdout=so, stderr=se)
    try:
        deadline = time.time() + 120
        while not ((out / "runs").is_dir() and len(_hidden(out / "runs")) == 2):  # both workers train
            assert proc.poll() is None, (tmp_path / "stderr.txt").read_text()
            assert time.time() < deadline, "the sweep did not start"
            time.sleep(0.05)
        time.sleep(0.5)
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C reaches the workers too
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    stdout, err = (tmp_path / "stdout.txt").read_text(), (tmp_path / "stderr.txt").read_text()
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "Traceback" not in stdout, err
    assert stdout.rstrip().splitlines()[-1] == (
        "interrupted: run the same command again to resume the interrupted runs and train the rest")
    # the run queued behind the two (1,000,000 steps) was not started: the sweep ended at once
    assert stdout.count("  interrupted") >= 2 and "  completed" not in stdout
    # the two interrupted runs are kept, with their checkpoints, for the next sweep to resume
    assert _published(out / "runs") == set()
    assert sorted(_hidden(out / "runs")) == [".resume.weight_decay-0_seed-0", ".resume.weight_decay-1_seed-0"]
    assert all(list((out / "runs" / h / "checkpoints").glob("step_*.pt")) for h in _hidden(out / "runs"))
    assert (out / ".lock").read_text() == ""


def _metrics(run) -> list[dict]:
    return [{k: v for k, v in json.loads(line).items() if k != "elapsed"}
            for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_a_kept_copy_of_a_run_finished_since_is_removed(tmp_path, capsys):
    import shutil

    out = tmp_path / "sw"
    args = ["sweep", *TINY, "--axis", "optim.weight_decay=1", "--out", str(out), "--workers", "1"]
    assert run_cli(capsys, *args)[0] == 0
    name = "weight_decay-1_seed-0"
    shutil.copytree(out / "runs" / name, out / "runs" / f".resume.{name}")  # as another process left it
    before = _snapshot(out / "runs" / name)
    code, stdout, _ = run_cli(capsys, *args)
    assert code == 0 and "1 runs, 1 already done, 0 to train" in stdout
    assert _hidden(out / "runs") == [] and _snapshot(out / "runs" / name) == before


def test_a_dead_workers_copy_of_a_run_finished_elsewhere_is_not_kept(tmp_path, capsys):
    """A job whose worker died is retried on another one; once the retry has published the run,
    tidying up the dead worker's partial directory must not keep it as `.resume.NAME`."""
    import shutil

    from grokscope.sweep.staging import _host, clean_partials

    out = tmp_path / "sw"
    args = ["sweep", *TINY, "--axis", "optim.weight_decay=1", "--out", str(out), "--workers", "1"]
    assert run_cli(capsys, *args)[0] == 0
    name = "weight_decay-1_seed-0"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # a PID no process has now
    partial = out / "runs" / f".partial.{_host()}.{dead.pid}.{name}"
    shutil.copytree(out / "runs" / name, partial)  # with its checkpoints, as the dead worker left it
    assert clean_partials(out / "runs") == 1
    assert _hidden(out / "runs") == []
    (out / "runs" / name / "summary.json").unlink()  # the same, had the run not been finished
    shutil.copytree(out / "runs" / name, partial)
    assert clean_partials(out / "runs") == 1
    assert _hidden(out / "runs") == [f".resume.{name}"]


def test_an_interrupted_run_is_resumed_by_the_next_sweep_and_equals_one_trained_at_once(tmp_path, capsys):
    """Hours of a long run are not lost to Ctrl-C: the next sweep continues it from its checkpoint."""
    args = ["sweep", *TINY, "--train.steps", "3000", "--axis", "optim.weight_decay=1", "--workers", "1"]
    out, ref = tmp_path / "sw", tmp_path / "ref"
    with open(tmp_path / "stdout.txt", "w") as so, open(tmp_path / "stderr.txt", "w") as se:
        proc = _interruptible([*args, "--out", str(out)], stdout=so, stderr=se)
    name = "weight_decay-1_seed-0"
    try:
        deadline = time.time() + 120
        while True:
            partial = [p for p in (out / "runs").iterdir() if p.name.startswith(".partial.")] \
                if (out / "runs").is_dir() else []
            lines = (partial[0] / "metrics.jsonl").read_text().splitlines() \
                if partial and (partial[0] / "metrics.jsonl").is_file() else []
            if len(lines) > 1 and json.loads(lines[-2])["step"] >= 300:
                break
            assert proc.poll() is None, (tmp_path / "stderr.txt").read_text()
            assert time.time() < deadline, "the sweep did not progress"
            time.sleep(0.02)
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 130, (tmp_path / "stderr.txt").read_text()
    kept = out / "runs" / f".resume.{name}"
    stopped_at = json.loads((kept / "summary.json").read_text())["steps_done"]
    assert 300 <= stopped_at < 3000
    code, stdout, err = run_cli(capsys, *args, "--out", str(out))
    assert code == 0, err
    assert "1 runs, 0 already done, 1 to train" in stdout and "  completed  " in stdout
    assert _hidden(out / "runs") == []
    summary = json.loads((out / "runs" / name / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["steps_done"] == 3000
    assert summary["resumed_from"] and summary["resumed_from"][0] >= 300  # not trained again from 0
    assert run_cli(capsys, *args, "--out", str(ref))[0] == 0
    assert _metrics(out / "runs" / name) == _metrics(ref / "runs" / name)


def test_empty_out_is_refused(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(capsys, "sweep", "--axis", "optim.weight_decay=0,1", "--out", "")
    assert code == 2 and err.strip() == ("grokscope: error: out: must be a directory path, got '' (an empty "
                                         "path would mean the current directory)")
    assert not any(tmp_path.iterdir())
