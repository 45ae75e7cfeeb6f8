"""`grokscope sweep`, and `grokscope show | report SWEEP` for a sweep directory.

Bad input is reported as one line naming the field (ConfigError/UsageError, exit code 2) before
anything is written or any cluster is contacted.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

SWEEP_USAGE = """usage: grokscope sweep [--preset NAME | --config JSON] [--spec FILE] --axis FIELD=VALUES ...
                       [--seeds N|LIST] --out DIR [--executor local|ray|slurm] [--address auto|HOST:PORT]
                       [--workers N] [--pack K] [--[no-]vectorize] [--slurm KEY=VALUE ...] [--max-retries N]
                       [--quiet] [--FIELD VALUE ...]

Trains every combination of the axis values (times the seeds) into DIR/runs/NAME, writes
DIR/sweep.json and DIR/results.csv; the same command again trains only the missing runs.

  --axis FIELD=VALUES   a dotted config field and its values: a,b,c | START:STOP:N | log:START:STOP:N
                        (N points, ends included), e.g. --axis optim.weight_decay=0,0.1,1
                        --axis task.train_fraction=0.2:0.8:7 --axis optim.lr=log:1e-4:1e-2:5
  --seeds N|LIST        N seeds 0..N-1, or a list like 0,4,7 (default: the base config's seed)
  --spec FILE           a sweep spec in JSON (or YAML with PyYAML): {"preset", "config",
                        "overrides", "axes", "seeds"}; command-line options override it
  --executor            local (default: a process per core, in-process for one job), ray (an
                        existing Ray cluster, see --address), slurm (submitit job array)
  --address             Ray cluster: auto (started on this machine with `ray start`) or HOST:PORT
  --workers N           local: processes (default: one per core); slurm: array parallelism
  --pack K              runs per job (default 1; 32 when vectorizing on CUDA)
  --vectorize           train each job's runs as one ensemble when they differ only in fields the
                        ensemble supports (seed, train fraction, lr, weight decay, init scale, ...);
                        on by default when the runs train on CUDA (--no-vectorize turns it off)
  --slurm KEY=VALUE     submitit parameter (timeout_min=120, slurm_partition=gpu, mem_gb=4, ...);
                        cluster=local|debug runs the jobs through submitit on this machine
  --max-retries N       Ray: times a job is retried when its worker process dies (default 3)
  --FIELD VALUE         override of the base config, as for `grokscope train` (--train.steps 3000)

Then: grokscope show DIR (per-cell table), grokscope report DIR (DIR/report.html)."""

_VALUED = {"axis", "seeds", "spec", "executor", "address", "workers", "pack", "slurm", "max_retries"}
_FLAGS = {"vectorize", "no_vectorize"}
CUDA_PACK = 32  # default runs per job when vectorizing on CUDA: tiny models leave a GPU idle


def _usage_error(message: str) -> Exception:
    from grokscope.cli import UsageError

    return UsageError(message)


def _split(argv: list[str]) -> tuple[dict, list[str]]:
    """Pull the sweep's own options out of argv; the rest are train-style options."""
    opts: dict = {"axis": [], "slurm": []}
    rest: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        key, eq, value = arg[2:].partition("=") if arg.startswith("--") else ("", "", "")
        key = key.replace("-", "_")
        if key in _FLAGS:
            opts["vectorize"] = key == "vectorize"
            i += 1
            continue
        if key not in _VALUED and key != "steps":
            rest.append(arg)
            i += 1
            continue
        if not eq:
            if i + 1 >= len(argv):
                raise _usage_error(f"{key}: missing value after --{key.replace('_', '-')}")
            value, i = argv[i + 1], i + 1
        i += 1
        if key == "steps":  # --steps N: short for --train.steps N
            rest += ["--train.steps", value]
        elif key in ("axis", "slurm"):
            opts[key].append(value)
        elif key in opts:
            raise _usage_error(f"{key}: given twice")
        else:
            opts[key] = value
    return opts, rest


def _int(opts: dict, key: str, low: int) -> int | None:
    if key not in opts:
        return None
    try:
        v = int(opts[key])
    except ValueError:
        v = None
    if v is None or v < low:
        raise _usage_error(f"{key}: must be an integer >= {low}, got {opts[key]!r}")
    return v


def _slurm_params(items: list[str]) -> dict:
    out = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise _usage_error(f"slurm: expected KEY=VALUE like timeout_min=120, got {item!r}")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def cmd_sweep(argv: list[str]) -> int:
    """`grokscope sweep ...`: run (or resume) a sweep; prints progress and the per-cell table."""
    from grokscope.cli import UsageError, _split_train_args
    from grokscope.errors import ConfigError
    from grokscope.sweep.executors import EXECUTORS, make_executor
    from grokscope.sweep.phases import text_table
    from grokscope.sweep.runner import check_out, collect, is_finished, run_sweep
    from grokscope.sweep.spec import SweepSpec, load_spec, merge, parse_axis, parse_seeds

    if "-h" in argv or "--help" in argv:
        print(SWEEP_USAGE)
        return 0
    opts, rest = _split(argv)
    try:
        preset, out, overrides, quiet = _split_train_args(rest)
    except UsageError as e:
        raise UsageError(str(e).replace("train: ", "sweep: ", 1)) from None
    explicit = any(a == "--preset" or a.startswith(("--preset=", "--config")) for a in rest)
    kind = opts.get("executor", "local")
    if kind not in EXECUTORS:
        raise UsageError(f"executor: must be one of {', '.join(EXECUTORS)}, got {kind!r}")
    if "address" in opts and kind != "ray":
        raise UsageError("address: only for --executor ray")
    if opts["slurm"] and kind != "slurm":
        raise UsageError("slurm: only for --executor slurm")
    workers, pack = _int(opts, "workers", 1), _int(opts, "pack", 1)
    retries = _int(opts, "max_retries", 0)
    if out is None:
        raise UsageError("out: give the sweep directory with --out DIR (the same DIR resumes the sweep)")
    spec = load_spec(opts["spec"]) if "spec" in opts else SweepSpec()
    axes, fields = [], set()
    for text in opts["axis"]:
        field, eq, values = text.partition("=")
        field = field.strip()
        if not eq or not field:
            raise UsageError(f"axis: expected FIELD=VALUES like optim.weight_decay=0,0.1,1, got {text!r}")
        if field in fields:
            raise UsageError(f"axis: {field} is given twice")
        fields.add(field)
        axes.append(parse_axis(field, values))
    spec = merge(spec, preset=preset if explicit and not preset.startswith("config:") else None,
                 config=preset[len("config:"):] if explicit and preset.startswith("config:") else None,
                 overrides=overrides, axes=axes,
                 seeds=parse_seeds(opts["seeds"]) if "seeds" in opts else None)
    path = Path(out).resolve()
    runs = spec.expand()  # validates every run's config
    vectorize = opts.get("vectorize", _on_cuda(spec))
    if vectorize:
        import importlib.util

        if importlib.util.find_spec("grokscope.sweep.ensemble") is None:
            raise ConfigError("vectorize: ensemble training (grokscope.sweep.ensemble) is not available")
    pack = pack or (CUDA_PACK if vectorize and _on_cuda(spec) else 1)
    check_out(path, runs)
    todo = sum(1 for r in runs if not is_finished(path / "runs" / r.name))
    executor = make_executor(kind, workers=workers, jobs=math.ceil(todo / pack) or 1,
                             address=opts.get("address"), folder=path / "slurm",
                             slurm=_slurm_params(opts["slurm"]),
                             max_retries=3 if retries is None else retries)
    log = (lambda m: None) if quiet else (lambda m: print(m, flush=True))
    with executor:
        result = run_sweep(spec, path, executor, pack=pack, vectorize=vectorize, log=log)
    meta, rows = collect(path)
    print(text_table(meta, rows))
    print(f"results: {path / 'results.csv'}")
    print(f"report:  grokscope report {path}")
    if result.interrupted:
        print("interrupted: run the same command again to train the missing runs")
        return 130
    if result.failed:
        print(f"{len(result.failed)} runs failed: " + "; ".join(f"{r['run']}: {r.get('error') or r['status']}"
                                                          for r in result.failed[:3]))
        return 1
    return 0


def _on_cuda(spec) -> bool:
    """Whether the sweep's runs train on CUDA here (train.device auto or cuda, and a GPU present)."""
    import torch

    return spec.base_config().train.device in ("auto", "cuda") and torch.cuda.is_available()


# ------------------------------------------------------------------------- show / report SWEEP


def is_sweep_argv(argv: list[str]) -> bool:
    """True when the first positional argument is a sweep directory (holds sweep.json)."""
    pos = [a for a in argv if not a.startswith("--")]
    return bool(pos) and (Path(pos[0]) / "sweep.json").is_file()


def _sweep_options(argv: list[str], command: str) -> tuple[str, dict]:
    from grokscope.cli import UsageError, _options

    pos, opts = _options(argv, {"gap": int, "x": str, "y": str}, command)
    if len(pos) != 1:
        raise UsageError(f"{command}: give exactly one sweep directory: grokscope {command} SWEEP")
    return pos[0], opts


def show_sweep_argv(argv: list[str]) -> int:
    return show_sweep(*_sweep_options(argv, "show"))


def report_sweep_argv(argv: list[str]) -> int:
    return report_sweep(*_sweep_options(argv, "report"))


def show_sweep(path: str, opts: dict) -> int:
    """Print a sweep's status and the per-cell table: outcome, agreement over seeds, median and
    IQR of generalized_step, fraction of seeds that grokked and that generalized."""
    from grokscope.sweep.phases import summary_line, text_table
    from grokscope.sweep.runner import collect

    meta, rows = collect(path, gap=opts.get("gap"))
    base = meta.get("base_config") or {}
    axes = " x ".join(f"{a} ({len(v)})" for a, v in meta["axes"].items()) or "none"
    seeds = meta.get("seeds")
    print(f"sweep   {Path(path)}")
    print(f"base    {meta.get('preset') or meta.get('config') or '-'} ({base.get('name') or '-'})")
    print(f"axes    {axes}; seeds {seeds if seeds else [base.get('seed', 0)]}")
    print(f"runs    {summary_line(rows)}\n")
    print(text_table(meta, rows))
    return 0


def report_sweep(path: str, opts: dict) -> int:
    """Write SWEEP/report.html (phase diagrams, per-cell table, runs) and print its path."""
    from grokscope.sweep.phases import write_sweep_report

    print(write_sweep_report(path, x=opts.get("x"), y=opts.get("y"), gap=opts.get("gap")))
    return 0
