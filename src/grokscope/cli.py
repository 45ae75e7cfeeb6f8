"""Command line: `grokscope train | resume | presets | show | report | compare | analyze | sweep`.

Overrides are dotted config fields, `--optim.lr 3e-3` or `--optim.lr=3e-3`; `train --help` lists
them with their docstrings (rendered by tyro). Values are parsed and checked by grokscope itself
so every mistake is reported as one line naming the field, with exit code 2 and nothing written.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

USAGE = """usage: grokscope <command> [options]

commands:
  train [--preset NAME | --config JSON] [--init-from RUN] [--out DIR] [--FIELD VALUE ...]
                                                          train one run (default preset: demo)
  resume RUN [--steps N]                                  continue a run from its last checkpoint
  presets                                                 list presets and what to expect
  show RUN                                                summary table of a run (events, phases)
  report RUN                                              write RUN/report.html (self-contained)
  compare RUN RUN... [--out PNG] [--metric KEY]           overlay runs in one figure
  analyze RUN [--max-checkpoints N] [--rqi-every N]       Fourier/progress/geometry analysis of every
                                                          checkpoint, algorithm card, adds to report
  sweep --axis FIELD=VALUES ... [--seeds N] --out DIR     train a sweep (grid of runs); `sweep --help`
  show SWEEP | report SWEEP [--x FIELD --y FIELD]         per-cell table / phase diagrams of a sweep

`grokscope train --help` lists every config field."""


class UsageError(Exception):
    """Bad command line; printed as one line, exit code 2."""


def _split_train_args(argv: list[str]) -> tuple[str, str | None, dict[str, str], bool]:
    """-> (preset or 'config:PATH', out, {dotted field: text}, quiet)."""
    from grokscope.config import is_bool_type, leaf_types

    hints = leaf_types()
    names = set(hints)
    preset, out, quiet, overrides = "demo", None, False, {}
    i = 0
    while i < len(argv):
        arg = argv[i]
        if not arg.startswith("--"):
            raise UsageError(f"train: unexpected argument {arg!r}; options look like --optim.lr 3e-3")
        key, eq, value = arg[2:].partition("=")
        key = key.replace("-", "_")  # --task.train-fraction == --task.train_fraction
        if key == "quiet":
            quiet = True
            i += 1
            continue
        negated = _negated(key)
        if negated in names and is_bool_type(hints.get(negated)) and not eq:
            overrides[negated] = "false"
            i += 1
            continue
        if not eq:
            nxt = argv[i + 1] if i + 1 < len(argv) else None
            if key in names and is_bool_type(hints.get(key)) and (
                    nxt is None or nxt.startswith("--")):
                value = "true"
                i += 1
            elif nxt is None or (nxt.startswith("--") and not _is_number(nxt)):
                raise UsageError(f"{key}: missing value after --{key}")
            else:
                value = nxt
                i += 2
        else:
            i += 1
        if key == "preset":
            preset = value
        elif key == "config":
            preset = "config:" + value
        elif key == "init_from":  # --init-from RUN, short for --train.init_from RUN
            overrides["train.init_from"] = value
        elif key == "out":
            out = value
        else:
            overrides[key] = value
    return preset, out, overrides, quiet


def _negated(key: str) -> str | None:
    """'log.no_figure' -> 'log.figure' (tyro's spelling of a false boolean flag)."""
    head, _, leaf = key.rpartition(".")
    if not leaf.startswith("no_"):
        return None
    return f"{head}.{leaf[3:]}" if head else leaf[3:]


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def cmd_train(argv: list[str]) -> int:
    from grokscope.config import apply_overrides
    from grokscope.presets import get_preset

    if "-h" in argv or "--help" in argv:
        return _train_help(argv)
    preset, out, overrides, quiet = _split_train_args(argv)
    if preset.startswith("config:"):
        from grokscope.config import load_json

        path = Path(preset[len("config:"):])
        if not path.is_file():
            raise UsageError(f"config: {str(path)!r} is not a file")
        base = load_json(path.read_text())
    else:
        base = get_preset(preset)
    cfg = apply_overrides(base, overrides)

    from grokscope.training.loop import train

    result = train(cfg, out, progress=False if quiet else None)
    return _print_result(result)


def _print_result(result) -> int:
    s = result.summary
    ev = s["events"]
    print(f"run:     {result.path}")
    print(f"status:  {s['status']} after {s['steps_done']} steps, {s['wall_seconds']:.1f} s")
    print(f"final:   train acc {s['final']['train_acc']:.3f}, test acc {s['final']['test_acc']:.3f}")
    print(f"events:  memorized at step {ev['memorized_step']}, generalized at step {ev['generalized_step']}")
    print(f"phase:   {s['phase']}" + (" (still on plateau)" if s.get("still_on_plateau") else ""))
    if s.get("stop_reason"):
        print(f"stopped: {s['stop_reason']}")
    fig = result.path / "figures" / "curves.png"
    if fig.exists():
        print(f"figure:  {fig}")
    if (result.path / "report.html").exists():
        print(f"report:  {result.path / 'report.html'}")
    return {"completed": 0, "interrupted": 130}.get(s["status"], 1)


def _train_help(argv: list[str]) -> int:
    import tyro

    from grokscope.config import RunConfig
    from grokscope.presets import get_preset

    preset = "demo"
    for i, a in enumerate(argv):
        if a == "--preset" and i + 1 < len(argv):
            preset = argv[i + 1]
        elif a.startswith("--preset="):
            preset = a.split("=", 1)[1]
    print("usage: grokscope train [--preset NAME | --config JSON] [--out DIR] [--quiet] [--FIELD VALUE ...]\n"
          "Defaults below are those of the preset; booleans also take true/false.\n")
    try:
        tyro.cli(RunConfig, default=get_preset(preset), args=["--help"], prog="grokscope train",
                 use_underscores=True)
    except SystemExit:
        pass
    return 0


def _options(argv: list[str], allowed: dict[str, type], command: str) -> tuple[list[str], dict]:
    """Split `argv` into positionals and --name VALUE options of the given types."""
    pos, opts, i = [], {}, 0
    while i < len(argv):
        a = argv[i]
        if a.startswith("--"):
            key, eq, value = a[2:].partition("=")
            if key == "quiet":
                opts["quiet"], i = True, i + 1
                continue
            if key not in allowed:
                raise UsageError(f"{command}: unknown option --{key}; allowed: "
                                 + ", ".join(f"--{k}" for k in [*allowed, "quiet"]))
            if not eq:
                if i + 1 >= len(argv):
                    raise UsageError(f"{key}: missing value after --{key}")
                value, i = argv[i + 1], i + 1
            try:
                opts[key] = allowed[key](value)
            except ValueError:
                raise UsageError(f"{key}: must be {allowed[key].__name__}, got {value!r}") from None
        else:
            pos.append(a)
        i += 1
    return pos, opts


def cmd_resume(argv: list[str]) -> int:
    pos, opts = _options(argv, {"steps": int}, "resume")
    if len(pos) != 1:
        raise UsageError("resume: give exactly one run directory: grokscope resume RUN [--steps N]")
    from grokscope.training.loop import resume

    result = resume(pos[0], steps=opts.get("steps"), progress=False if opts.get("quiet") else None)
    return _print_result(result)


def cmd_report(argv: list[str]) -> int:
    from grokscope.sweep.cli import is_sweep_argv, report_sweep_argv

    if is_sweep_argv(argv):
        return report_sweep_argv(argv)
    pos, opts = _options(argv, {"gap": int}, "report")
    if len(pos) != 1:
        raise UsageError("report: give exactly one run directory: grokscope report RUN")
    _require_run(pos[0])
    from grokscope.report.html import write_report

    print(write_report(pos[0], **({"gap": opts["gap"]} if "gap" in opts else {})))
    return 0


def cmd_compare(argv: list[str]) -> int:
    pos, opts = _options(argv, {"out": str, "metric": str}, "compare")
    if len(pos) < 2:
        raise UsageError("compare: give two or more run directories: grokscope compare RUN RUN ...")
    for p in pos:
        _require_run(p)
    metric = opts.get("metric", "test_acc")
    if metric not in ("train_acc", "test_acc", "train_loss", "test_loss", "weight_norm", "lr"):
        raise UsageError(f"metric: must be one of train_acc, test_acc, train_loss, test_loss, "
                         f"weight_norm, lr, got {metric!r}")
    from grokscope.report.html import write_compare

    print(write_compare(pos, opts.get("out", "compare.png"), metric=metric))
    return 0


def cmd_analyze(argv: list[str]) -> int:
    pos, opts = _options(argv, {"max-checkpoints": int, "rqi-every": int}, "analyze")
    if len(pos) != 1:
        raise UsageError("analyze: give exactly one run directory: grokscope analyze RUN")
    for key, low in (("max-checkpoints", 2), ("rqi-every", 1)):
        if key in opts and opts[key] < low:
            raise UsageError(f"{key}: must be an integer >= {low}, got {opts[key]}")
    rd = _require_run(pos[0])
    from grokscope.analysis.run import analyze

    out = analyze(rd.path, max_checkpoints=opts.get("max-checkpoints"), rqi_every=opts.get("rqi-every", 1))
    print(f"analysis: {rd.path / 'analysis.json'} ({len(out['steps'])} checkpoints, {out['seconds']:.1f} s)")
    if out["key_freqs"]:
        print(f"key frequencies: {out['key_freqs']} (from the {out['key_source']})")
    print(f"card:     {out['card']['headline']}")
    for f in out["figures"]:
        print(f"figure:   {rd.path / f['file']}")
    print(f"report:   {rd.path / 'report.html'}")
    return 0


def _require_run(path: str):
    from grokscope.tracking.rundir import RunDir

    rd = RunDir(path)
    if not rd.config.is_file():
        raise UsageError(f"run: {path!r} is not a run directory (no config.json)")
    return rd


def cmd_presets(argv: list[str]) -> int:
    from grokscope.presets import list_presets

    if argv:
        raise UsageError(f"presets: takes no arguments, got {' '.join(argv)!r}")
    for name, doc in list_presets().items():
        lines = doc.splitlines()
        print(f"{name}\n  " + "\n  ".join(lines) + "\n")
    return 0


def cmd_show(argv: list[str]) -> int:
    from grokscope.sweep.cli import is_sweep_argv, show_sweep_argv

    if is_sweep_argv(argv):
        return show_sweep_argv(argv)
    pos, opts = _options(argv, {"gap": int}, "show")
    if len(pos) != 1:
        raise UsageError("show: give exactly one run directory: grokscope show RUN")
    rd = _require_run(pos[0])
    from grokscope import detect

    cfg = rd.read_config_dict()
    summary = rd.read_summary() if rd.summary.is_file() else {}
    records = rd.read_metrics()
    analysis = detect.analyze(records, gap=opts.get("gap", detect.DEFAULT_GAP))  # recomputed
    ev = analysis["events"]
    timeline = " -> ".join(f"{p['name']} {p['start']}-{p['end']}" for p in analysis["phases"])
    last = records[-1] if records else {}
    t = cfg["task"]
    what = f"{t['op']} mod {t['p']}" if t["kind"] == "modular" else f"{t['op']} in S_{t['n']}"
    rows = [
        ("run", str(rd.path)),
        ("name", cfg.get("name") or "-"),
        ("task", f"{what}, train fraction {t['train_fraction']}"),
        ("model", f"{cfg['model']['arch']}, {summary.get('n_parameters', '?')} parameters"),
        ("optimizer", f"{cfg['optim']['name']} lr {cfg['optim']['lr']} wd {cfg['optim']['weight_decay']}"),
        ("status", summary.get("status", "unknown")),
        ("steps", f"{last.get('step', 0)} of {cfg['train']['steps']}"),
        ("wall seconds", _fmt(summary.get("wall_seconds"))),
        ("train acc / loss", f"{_fmt(last.get('train_acc'))} / {_fmt(last.get('train_loss'))}"),
        ("test acc / loss", f"{_fmt(last.get('test_acc'))} / {_fmt(last.get('test_loss'))}"),
        ("memorized step", _fmt(ev["memorized_step"])),
        ("generalized step", _fmt(ev["generalized_step"])),
        ("delay ratio", _fmt(ev["delay_ratio"])),
        ("sharpness", f"{_fmt(ev['sharpness'])} steps (test acc 10% -> 90% of its rise)"),
        ("outcome", analysis["phase"] + (" (still on plateau)" if analysis["still_on_plateau"] else "")),
        ("phases", timeline or "-"),
        ("checkpoints", str(len(rd.list_checkpoints()))),
    ]
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"{k:<{width}}  {v}")
    return 0


def _fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def _cmd_sweep(argv: list[str]) -> int:
    from grokscope.sweep.cli import cmd_sweep

    return cmd_sweep(argv)


COMMANDS = {"train": cmd_train, "resume": cmd_resume, "presets": cmd_presets, "show": cmd_show,
            "report": cmd_report, "compare": cmd_compare, "analyze": cmd_analyze, "sweep": _cmd_sweep}


def main(argv: list[str] | None = None) -> int:
    try:
        return _main(argv)
    except BrokenPipeError:  # `grokscope ... | head` closed stdout early: not an error
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # silence the flush at exit
        return 0


def _main(argv: list[str] | None = None) -> int:
    from grokscope.errors import ConfigError

    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if argv else 2
    cmd, rest = argv[0], argv[1:]
    if cmd not in COMMANDS:
        print(f"grokscope: error: unknown command {cmd!r}; choose one of {', '.join(COMMANDS)}",
              file=sys.stderr)
        return 2
    try:
        return COMMANDS[cmd](rest)
    except (ConfigError, UsageError) as e:
        print(f"grokscope: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        raise  # handled in main(): the reader went away, not an error of the command
    except (json.JSONDecodeError, OSError) as e:
        print(f"grokscope: error: {type(e).__name__}: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

