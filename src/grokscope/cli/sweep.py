"""`grokscope sweep`, and `grokscope show | report SWEEP` for a sweep directory.

Bad input is reported as one line naming the field (ConfigError/UsageError, exit code 2) before
anything is written or any cluster is contacted; so is a sweep of more than --max-runs runs
(counted before any is built) and a sweep directory another process is training into (its
.lock). Ctrl-C at any point ends with one line and exit code 130.
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path

from grokscope.cli.errors import UsageError, reading
from grokscope.cli.parsing import Parsed, int_option

CUDA_PACK = 32  # default runs per job when vectorizing on CUDA: tiny models leave a GPU idle
INTERRUPTED = "interrupted: run the same command again to resume the interrupted runs and train the rest"


def _slurm_params(items: tuple[str, ...]) -> dict:
    out = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise UsageError(f"slurm: expected KEY=VALUE like timeout_min=120, got {item!r}")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def check_executor_options(c) -> None:
    """--address goes with --executor ray, --slurm with --executor slurm (UsageError otherwise)."""
    if c.address is not None and c.executor != "ray":
        raise UsageError("address: only for --executor ray")
    if c.slurm and c.executor != "slurm":
        raise UsageError("slurm: only for --executor slurm")


def _axes(items: tuple[str, ...]) -> list:
    from grokscope.sweep.spec import parse_axis

    axes, fields = [], set()
    for text in items:
        field, eq, values = text.partition("=")
        field = field.strip()
        if not eq or not field:
            raise UsageError(f"axis: expected FIELD=VALUES like optim.weight_decay=0,0.1,1, got {text!r}")
        if field in fields:
            raise UsageError(f"axis: {field} is given twice")
        fields.add(field)
        axes.append(parse_axis(field, values))
    return axes


def sweep_spec(parsed: Parsed):
    """The SweepSpec of a `grokscope sweep` command line: --spec FILE with the options on top."""
    from grokscope.sweep.spec import SweepSpec, load_spec, merge, parse_seeds

    c = parsed.command
    overrides = dict(parsed.overrides)
    if c.steps is not None:  # --steps N: short for --train.steps N
        overrides["train.steps"] = c.steps
    spec = load_spec(c.spec) if c.spec is not None else SweepSpec()
    return merge(spec, preset=c.preset, config=c.config, overrides=overrides, axes=_axes(c.axis),
                 seeds=parse_seeds(c.seeds) if c.seeds is not None else None)


def cmd_sweep(parsed: Parsed) -> int:
    """`grokscope sweep ...`: run (or resume) a sweep; prints progress and the per-cell table.
    Ctrl-C anywhere (expanding, checking, training, printing) ends with one line, exit code 130."""
    try:
        return _sweep(parsed)
    except KeyboardInterrupt:
        print(INTERRUPTED, file=sys.stderr, flush=True)
        return 130


def _sweep(parsed: Parsed) -> int:
    from grokscope.errors import ConfigError
    from grokscope.sweep.executors import make_executor
    from grokscope.sweep.phases import text_table
    from grokscope.sweep.runner import check_out, collect, is_finished, run_sweep, sweep_lock
    from grokscope.sweep.spec import MAX_RUNS

    c = parsed.command
    check_executor_options(c)
    workers, pack = int_option(c.workers, "workers", 1), int_option(c.pack, "pack", 1)
    retries = int_option(c.max_retries, "max_retries", 0)
    max_runs = int_option(c.max_runs, "max_runs", 1) or MAX_RUNS
    if c.out is None:
        raise UsageError("out: give the sweep directory with --out DIR (the same DIR resumes the sweep)")
    if not c.out.strip():
        raise UsageError("out: must be a directory path, got '' (an empty path would mean the current "
                         "directory)")
    spec = sweep_spec(parsed)
    path = Path(c.out).resolve()
    log = (lambda m: None) if c.quiet else (lambda m: print(m, flush=True))
    runs = spec.expand(max_runs=max_runs, progress=None if c.quiet else _expanding(spec.count()))
    vectorize = _on_cuda(spec) if c.vectorize is None else c.vectorize
    if vectorize and not _ensemble_available():
        raise ConfigError("vectorize: ensemble training (grokscope.training.ensemble) is not available")
    pack = pack or (CUDA_PACK if vectorize and _on_cuda(spec) else 1)
    slurm = _slurm_params(c.slurm)
    check_out(path, runs)
    created = not path.exists()
    lock = sweep_lock(path, log)  # before any executor: a second sweep contacts no cluster
    try:
        todo = sum(1 for r in runs if not is_finished(path / "runs" / r.name))
        try:
            executor = make_executor(c.executor, workers=workers, jobs=math.ceil(todo / pack) or 1,
                                     address=c.address, folder=path / "slurm", slurm=slurm,
                                     max_retries=3 if retries is None else retries)
        except BaseException:
            if created:  # refused before anything was trained: leave no directory behind
                _remove_new(path)
            raise
        with executor:
            result = run_sweep(spec, path, executor, pack=pack, vectorize=vectorize, log=log, runs=runs,
                               lock=False)
    finally:
        lock.release()
    meta, rows = collect(path)
    print(text_table(meta, rows))
    print(f"results: {path / 'results.csv'}")
    print(f"report:  grokscope report {path}")
    if result.interrupted:
        print(INTERRUPTED)
        return 130
    if result.failed:
        print(f"{len(result.failed)} runs failed: " + "; ".join(f"{r['run']}: {r.get('error') or r['status']}"
                                                          for r in result.failed[:3]))
        return 1
    return 0


def _remove_new(path: Path) -> None:
    """Remove the sweep directory this command created (for its lock) if it holds nothing else."""
    import shutil

    leftovers = [p for p in path.iterdir() if p.name != ".lock"]
    if all(p.name == "slurm" and p.is_dir() and not any(p.iterdir()) for p in leftovers):
        shutil.rmtree(path, ignore_errors=True)


def _expanding(total: int):
    """Progress of a long expansion: a line on stderr every few seconds, with the time left."""
    start = time.monotonic()

    def report(done: int, total: int = total) -> None:
        spent = time.monotonic() - start
        left = spent * (total - done) / done if done else 0
        print(f"sweep: checked {done:,} of {total:,} runs ({done / total:.0%}), about {left:.0f} s left",
              file=sys.stderr, flush=True)

    return report


def _ensemble_available() -> bool:
    import importlib.util

    return any(importlib.util.find_spec(m) is not None
               for m in ("grokscope.training.ensemble", "grokscope.sweep.ensemble"))


def _on_cuda(spec) -> bool:
    """Whether the sweep's runs train on CUDA here (train.device auto or cuda, and a GPU present)."""
    import torch

    return spec.base_config().train.device in ("auto", "cuda") and torch.cuda.is_available()


# ------------------------------------------------------------------------- show / report SWEEP


def show_sweep(path: str, *, gap: int | None = None) -> int:
    """Print a sweep's status and the per-cell table: outcome, agreement over seeds, median and
    IQR of generalized_step, fraction of seeds that grokked and that generalized."""
    from grokscope.sweep.phases import summary_line, text_table
    from grokscope.sweep.runner import collect

    with reading(path):
        meta, rows = collect(path, gap=gap)
    base = meta.get("base_config") or {}
    axes = " x ".join(f"{a} ({len(v)})" for a, v in meta["axes"].items()) or "none"
    seeds = meta.get("seeds")
    print(f"sweep   {Path(path)}")
    print(f"base    {meta.get('preset') or meta.get('config') or '-'} ({base.get('name') or '-'})")
    print(f"axes    {axes}; seeds {seeds if seeds else [base.get('seed', 0)]}")
    print(f"runs    {summary_line(rows)}\n")
    print(text_table(meta, rows))
    from grokscope.sweep.critical import critical_sizes, describe

    for entry in critical_sizes(meta, rows):
        print("\n" + describe(entry))
    return 0


def report_sweep(path: str, *, x: str | None = None, y: str | None = None, gap: int | None = None) -> int:
    """Write SWEEP/report.html (phase diagrams, per-cell table, runs) and print its path."""
    from grokscope.sweep.phases import write_sweep_report

    with reading(path):
        print(write_sweep_report(path, x=x, y=y, gap=gap))
    return 0
