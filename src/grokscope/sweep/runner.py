"""Run a sweep into a directory, resumably; rebuild its results table from the run directories.

    SWEEP/sweep.json          the spec, the resolved base config and the list of runs
    SWEEP/results.csv         one row per run (rebuilt from the run directories)
    SWEEP/runs/NAME/          a normal run directory per run (config.json, metrics.jsonl, ...)
    SWEEP/.lock               held (flock) by the one process training the sweep: PID and host

A run trains into a hidden partial directory and is moved to `runs/NAME/` in one step once it has
finished (status completed or diverged), so `runs/NAME/` only ever holds a finished run
(`sweep.staging`). A run that was interrupted (Ctrl-C, SIGTERM) or whose process died (killed,
machine cut off) after its first checkpoint is kept as `runs/.resume.NAME/`; running the same sweep
again skips finished runs and resumes kept ones from their newest checkpoint (exactly, as
`grokscope resume`: a run trained to its end in pieces equals one trained at once), so hours of a
long run are not lost. Members of a vectorized ensemble are trained again from the start instead.
Two processes training the same run is harmless: the first to finish publishes it, the other
discards its copy. Two sweeps into one folder at once are not: `run_sweep` holds SWEEP/.lock while
it trains (`sweep_lock`), and a second one fails at once naming the holder. Reading a sweep
(`collect`, show, report) takes no lock.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from grokscope.config import to_dict
from grokscope.errors import ConfigError
from grokscope.sweep.executors import LocalExecutor
from grokscope.sweep.results import (  # noqa: F401  (re-exported: the results of a sweep)
    FINISHED,
    RESULT_COLUMNS,
    VOLATILE_COLUMNS,
    collect,
    is_finished,
    read_results,
    read_sweep,
    run_status,
    write_results,
)
from grokscope.sweep.spec import MAX_RUNS, SweepRun, SweepSpec
from grokscope.sweep.staging import (
    clean_partials,
    config_diff,
    failed,
    kept_dir,
    partial_dir,
    publish,
    record,
    remove,
    take_kept,
)
from grokscope.tracking.lock import LOCK_NAME, RunLock
from grokscope.tracking.rundir import RunDir, atomic_write_json

SWEEP_FORMAT = 1
_EXECUTOR_DIRS = ("slurm",)  # submitit's job files, created with the executor before sweep.json
_NOT_CONTENT = (*_EXECUTOR_DIRS, LOCK_NAME)  # a directory holding only these is still empty
_GRACE_S = 30.0  # after Ctrl-C, how long to wait for local workers to end their interrupted runs


# ------------------------------------------------------------------------------------ one job


def run_pack(items: list[tuple[dict, str]], vectorize: bool = False) -> list[dict]:
    """Job body: train each (config dict, run directory) not finished yet; never raises.

    With `vectorize`, runs that `grokscope.training.ensemble.can_ensemble` accepts train together as
    one ensemble; otherwise one after the other. Returns one record per run: name, status,
    outcome, generalized_step, wall_seconds, error (a one-line message or None), skipped. Once a
    run of this process was interrupted (Ctrl-C, SIGTERM), its later runs are not started: they
    come back 'interrupted' at once."""
    from grokscope.config import from_dict

    _catch_sigint()
    records, todo = [], []
    for cfg_dict, out in items:
        out = Path(out)
        if is_finished(out):
            records.append({**record(out), "skipped": True})
        else:
            todo.append((from_dict(cfg_dict), out))
    if _stop.is_set():
        return records + [_not_started(out) for _, out in todo]
    fresh = [(c, out) for c, out in todo if not kept_dir(out).is_dir()]  # kept runs resume alone
    if vectorize and len(fresh) > 1:
        from grokscope.training.ensemble import can_ensemble

        if can_ensemble([c for c, _ in fresh]) is None:
            records += [_noted(r) for r in _train_together(fresh)]
            together = {out for _, out in fresh}
            todo = [(c, out) for c, out in todo if out not in together]
    for cfg, out in todo:
        records.append(_not_started(out) if _stop.is_set() else _noted(_train_one(cfg, out)))
    return records


_stop = threading.Event()
"""Set in a process once one of its runs was interrupted, or Ctrl-C reached a pool worker between
runs: it starts no more runs (the sweep's own process clears it when a sweep starts)."""


def _noted(rec: dict) -> dict:
    if rec.get("status") == "interrupted":
        _stop.set()
    return rec


def _not_started(out: Path) -> dict:
    return {"run": out.name, "status": "interrupted", "error": None, "skipped": False}


def _on_sigint(signum, frame) -> None:
    _stop.set()


def _catch_sigint() -> None:
    """In a local pool worker, Ctrl-C outside a run (waiting for a job, between runs) stops its
    later runs instead of killing the worker with a traceback; during a run, training's own
    handler stops the run (and restores this one)."""
    import multiprocessing
    import signal

    if multiprocessing.parent_process() is None or threading.current_thread() is not threading.main_thread():
        return  # the sweep's own process, or a Ray/Slurm worker: signals as they are
    if signal.getsignal(signal.SIGINT) is not _on_sigint:
        signal.signal(signal.SIGINT, _on_sigint)


def _train_one(cfg, out: Path) -> dict:
    from grokscope.training.loop import resume, train

    tmp = partial_dir(out)
    remove(tmp)
    try:
        if take_kept(cfg, out, tmp):
            if is_finished(tmp):  # it had finished when its process died, before it was published
                return publish(tmp, out)
            try:
                resume(tmp, progress=False)
                return publish(tmp, out)
            except ConfigError:  # no checkpoint that loads: train it again from the start
                remove(tmp)
        train(cfg, tmp, progress=False)
    except Exception as e:  # one bad run must not take its pack down
        remove(tmp)
        return failed(out, e)
    return publish(tmp, out)


def _train_together(todo: list[tuple[Any, Path]]) -> list[dict]:
    from grokscope.training.ensemble import train_ensemble

    tmps = [partial_dir(out, ensemble=True) for _, out in todo]
    for t in tmps:
        remove(t)
    try:
        train_ensemble([c for c, _ in todo], tmps, progress=False)
    except Exception as e:
        for t in tmps:
            remove(t)
        return [failed(out, e) for _, out in todo]
    return [{**publish(t, out), "vectorized": True} for t, (_, out) in zip(tmps, todo)]


# ---------------------------------------------------------------------------------- the driver


@dataclass
class SweepResult:
    """What `run_sweep` returns."""

    path: Path
    n_runs: int
    n_done_before: int
    trained: list[dict] = field(default_factory=list)
    failed: list[dict] = field(default_factory=list)
    interrupted: bool = False


def check_out(path: Path, runs: list[SweepRun]) -> None:
    """A sweep goes into a new or empty directory, or one holding this same sweep: finished runs
    there must have exactly the configs the spec gives them now."""
    if path.exists() and not path.is_dir():
        raise ConfigError(f"out: {str(path)!r} is a file; give a directory for the sweep")
    if not path.is_dir() or all(p.name in _NOT_CONTENT for p in path.iterdir()):
        return
    if not (path / "sweep.json").is_file():
        raise ConfigError(f"out: {str(path)!r} exists and is not a sweep directory (no sweep.json); "
                          "choose a new directory")
    for r in runs:
        d = path / "runs" / r.name
        if not is_finished(d):
            continue
        try:
            raw = RunDir(d).read_config_dict()
        except (OSError, ConfigError):  # unreadable: not this sweep's to judge (take_kept reads the same way)
            continue
        diff = config_diff(raw, r.config)
        if diff is not None:
            key, was, now = diff
            raise ConfigError(f"out: {str(path)!r} holds run {r.name} trained with {key}="
                              f"{was!r} but the spec now gives {now!r}; "
                              "use a new --out for a different sweep")


def sweep_lock(path: str | os.PathLike, log: Callable[[str], None] = print) -> RunLock:
    """The lock of a sweep directory, taken: ConfigError naming the holder when another process
    trains into it. A lock left by a process that died is taken over (the kernel dropped its flock)."""
    lock = RunLock(path, what="sweep").acquire()
    h = lock.taken_over
    if h:
        log(f"sweep: took over the lock of pid {h.get('pid', '?')} on host {h.get('host', '?')}, "
            "which ended without releasing it")
    return lock


def run_sweep(spec: SweepSpec, out: str | os.PathLike, executor, *, pack: int = 1,
              vectorize: bool = False, log: Callable[[str], None] = print,
              runs: list[SweepRun] | None = None, max_runs: int | None = MAX_RUNS,
              lock: bool = True) -> SweepResult:
    """Train every run of `spec` not yet finished under `out` with `executor`, `pack` runs per job.

    Checks everything before writing (a sweep of more than `max_runs` runs is refused; `runs`:
    `spec.expand()` done already); holds OUT/.lock while it writes (`lock=False`: the caller holds
    it); writes sweep.json, then results.csv after every job."""
    if pack < 1:
        raise ConfigError(f"pack: must be >= 1, got {pack}")
    path = Path(out).resolve()
    runs = spec.expand(max_runs=max_runs) if runs is None else runs
    check_out(path, runs)
    held = sweep_lock(path, log) if lock else None
    try:
        return _run_sweep(spec, path, executor, runs, pack=pack, vectorize=vectorize, log=log)
    finally:
        if held is not None:
            held.release()


def _run_sweep(spec: SweepSpec, path: Path, executor, runs: list[SweepRun], *, pack: int,
               vectorize: bool, log: Callable[[str], None]) -> SweepResult:
    check_out(path, runs)  # again, under the lock: another sweep may have written before it ended
    _stop.clear()
    todo = [r for r in runs if not is_finished(path / "runs" / r.name)]
    (path / "runs").mkdir(parents=True, exist_ok=True)
    atomic_write_json(path / "sweep.json", sweep_json(spec, runs))
    clean_partials(path / "runs")
    pending = {r.name for r in todo}
    for r in runs:  # a kept copy of a run finished since (by another process) is of no use
        if r.name not in pending:
            remove(kept_dir(path / "runs" / r.name))
    packs = [todo[i:i + pack] for i in range(0, len(todo), pack)]
    result = SweepResult(path, len(runs), len(runs) - len(todo))
    log(f"sweep {path}: {len(runs)} runs, {result.n_done_before} already done, {len(todo)} to train"
        + (f" in {len(packs)} job{'s' * (len(packs) != 1)} of up to {pack}" if pack > 1 else "")
        + (" (vectorized where possible)" if vectorize else "") + f" on {executor.describe()}")
    lock, done = threading.Lock(), [0]

    def finished(future, names: list[str]) -> None:
        if future.cancelled() and result.interrupted:  # dropped after Ctrl-C unstarted: runs stay pending
            return
        try:
            records = future.result()
        except BaseException as e:  # the job itself died (worker lost beyond retries, cancelled, ...)
            records = [{**failed(Path(n), e), "error": f"job lost: {type(e).__name__}: {e}".splitlines()[0]}
                       for n in names]
        with lock:
            for rec in records:
                done[0] += 1
                _log_record(log, rec, done[0], len(todo))
                (result.failed if rec["status"] not in FINISHED else result.trained).append(rec)
                result.interrupted |= rec["status"] == "interrupted"
            write_results(path)

    args = [([(to_dict(r.config), str(path / "runs" / r.name)) for r in p], vectorize) for p in packs]
    futures = []
    try:
        if getattr(executor, "batched", False):
            futures = executor.submit_batch(run_pack, args)
            for f, p in zip(futures, packs):
                f.add_done_callback(lambda f, n=[r.name for r in p]: finished(f, n))
        else:
            for a, p in zip(args, packs):
                if result.interrupted:
                    break
                futures.append(executor.submit(run_pack, *a))
                futures[-1].add_done_callback(lambda f, n=[r.name for r in p]: finished(f, n))
        wait(futures)  # job errors are recorded by `finished`
    except KeyboardInterrupt:
        result.interrupted = True
        executor.shutdown(wait=False, cancel_futures=True)
        if isinstance(executor, LocalExecutor):  # its workers got the Ctrl-C too: they end at once
            _settle(futures, _GRACE_S)
    with lock:
        write_results(path)
    clean_partials(path / "runs")
    return result


def _settle(futures: list, timeout: float) -> None:
    """Wait until every future has finished or was cancelled (`wait` never counts a future that
    was cancelled before it started), at most `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not all(f.done() for f in futures) and time.monotonic() < deadline:
        time.sleep(0.05)


def _log_record(log, rec: dict, i: int, n: int) -> None:
    width = len(str(n))
    what = rec.get("outcome") or ""
    if rec.get("generalized_step") is not None:
        what += f", generalized at step {rec['generalized_step']:,}"
    if rec.get("wall_seconds") is not None:
        what += f" ({rec['wall_seconds']:.1f} s)"
    if rec.get("skipped"):
        what += " (already done)"
    if rec.get("error"):
        what += f" {rec['error']}"
    log(f"[{i:>{width}}/{n}] {rec['run']}  {rec['status']}  {what}".rstrip())


def sweep_json(spec: SweepSpec, runs: list[SweepRun]) -> dict:
    from grokscope.version import __version__

    return {"format_version": SWEEP_FORMAT, "grokscope_version": __version__, **spec.to_dict(),
            "base_config": to_dict(spec.base_config()),
            "runs": [{"name": r.name, "seed": r.seed,
                      "values": {k: _jsonable(v) for k, v in r.values.items()}} for r in runs]}


def _jsonable(v: Any) -> Any:
    return list(v) if isinstance(v, tuple) else v
