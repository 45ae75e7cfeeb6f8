"""Commands that read run directories: show, report, compare, analyze; and presets.

show/report read files only: a run of a plug-in task kind shows without the plug-in importable.
"""

from __future__ import annotations

import re
from pathlib import Path

from grokscope.cli.errors import UsageError, reading
from grokscope.cli.parsing import Parsed, int_option

METRICS = ("train_acc", "test_acc", "train_loss", "test_loss", "weight_norm", "lr")


def require_run(path: str):
    from grokscope.tracking.rundir import RunDir

    rd = RunDir(path)
    if not rd.config.is_file():
        raise UsageError(f"run: {path!r} is not a run directory (no config.json)")
    return rd


def is_sweep(path: str) -> bool:
    return (Path(path) / "sweep.json").is_file()


def _no_sweep_options(command, name: str) -> None:
    for key in ("x", "y"):
        if getattr(command, key, None) is not None:
            raise UsageError(f"{key}: only for a sweep directory (grokscope {name} SWEEP --{key} FIELD)")


def cmd_show(parsed: Parsed) -> int:
    c = parsed.command
    gap = int_option(c.gap, "gap", 0)
    if is_sweep(c.path):
        from grokscope.cli.sweep import show_sweep

        return show_sweep(c.path, gap=gap)
    rd = require_run(c.path)
    from grokscope import detect
    from grokscope.predict import forecast_text

    with reading(rd.path):
        cfg = rd.read_config_dict()
        summary = rd.read_summary() if rd.summary.is_file() else {}
        records = rd.read_metrics()
    t = cfg.get("task") or {}
    split = summary.get("generalization_split") or t.get("generalization_split") or "test"
    gap = detect.DEFAULT_GAP if gap is None else gap
    analysis = detect.analyze(records, gap=gap, split=split, n_eval=detect.eval_size(summary, split))
    ev, verdict = analysis["events"], analysis["verdict"]
    timeline = " -> ".join(f"{p['label']} {p['start']}-{p['end']}" for p in analysis["phases"])
    last = records[-1] if records else {}
    model, optim, train = cfg.get("model") or {}, cfg.get("optim") or {}, cfg.get("train") or {}
    ratio95 = ev.get("delay_ratio_0.95")
    rows = [
        ("run", str(rd.path)),
        ("name", cfg.get("name") or "-"),
        ("task", task_text(t)),
        ("model", f"{model.get('arch', '?')}, {summary.get('n_parameters', '?')} parameters"),
        ("optimizer", f"{optim.get('name', '?')} lr {optim.get('lr', '?')} "
                      f"wd {optim.get('weight_decay', '?')}"),
        ("status", summary.get("status", "unknown")),
        ("steps", f"{last.get('step', 0)} of {train.get('steps', '?')}"),
        ("wall seconds", _fmt(summary.get("wall_seconds"))),
        *((f"{s} acc / loss", f"{_fmt(last.get(f'{s}_acc'))} / {_fmt(last.get(f'{s}_loss'))}")
          for s in splits(summary, records)),
        ("generalization", split) if split != "test" else None,
        ("verdict", verdict["label"]),
        ("events", f"memorized: train acc >= {detect.MEMORIZED_ACC}; generalized: {split} acc >= "
                   f"{detect.GENERALIZED_ACC} (smoothed, running median of 5)"),
        ("memorized step", detect.dated(ev["memorized_step"], ev.get("memorized_resolution"))),
        ("generalized step", detect.dated(ev["generalized_step"], ev.get("generalized_resolution"))),
        (f"{split} errors", verdict["errors_label"] or f"- (size of {split} unknown)"),
        ("delay ratio", _fmt(ev["delay_ratio"]) + (f" ({_fmt(ratio95)} at {split} acc {detect.GROKKED_ACC})"
                                                   if ratio95 is not None else "")),
        ("sharpness", f"{_fmt(ev['sharpness'])} steps ({split} acc 10% -> 90% of its rise)"),
        ("outcome class", f"{detect.OUTCOME_RULE}, gap {gap} steps (not the events' 0.99)"),
        ("outcome", analysis["phase"]),
        ("phases", timeline or "-"),
        ("early stopping", _early_stopping_text(records, split)),
        ("forecast", forecast_text(records, train.get("steps"), split))
        if ev["generalized_step"] is None and len(records) >= 3 else None,
        ("checkpoints", str(len(rd.list_checkpoints()))),
    ]
    rows = [r for r in rows if r is not None]
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"{k:<{width}}  {v}")
    return 0


def _early_stopping_text(records: list[dict], split: str) -> str:
    """'val loss, patience 3 (Lightning ...) at step 18 (test acc 0.004); ...' (grokscope.early_stop)."""
    from grokscope.early_stop import counterfactual

    parts = [f"{r['label']}: " + ("never" if r["stopped_step"] is None else
                                  f"step {r['stopped_step']:,} ({split} acc {_fmt(r['kept_acc'])})")
             for r in counterfactual(records, split)]
    return "; ".join(parts) or "-"


def task_text(t: dict) -> str:
    """'x+y mod 23, train fraction 0.5' for the tables; 'KIND (name=value, ...)' for other kinds."""
    kind = t.get("kind", "?")
    if kind == "modular":
        return f"{t.get('op')} mod {t.get('p')}, train fraction {t.get('train_fraction')}"
    if kind == "permutation":
        return f"{t.get('op')} in S_{t.get('n')}, train fraction {t.get('train_fraction')}"
    options = t.get("options") or {}
    return str(kind) + (f" ({', '.join(f'{k}={v}' for k, v in options.items())})" if options else "")


def splits(summary: dict, records: list[dict]) -> list[str]:
    """The run's splits: train, test, then the others (summary.json's, else the metric keys)."""
    names = list(summary.get("splits") or [])
    if not names:
        for r in records:
            for key in r:
                if key.endswith("_acc") and key[:-4] not in names:
                    names.append(key[:-4])
    names = [s for s in dict.fromkeys(names) if isinstance(s, str)]
    head = ["train"] + [s for s in ("test",) if s in names or not names]
    return head + [s for s in names if s not in head]


def _fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def cmd_report(parsed: Parsed) -> int:
    c = parsed.command
    gap = int_option(c.gap, "gap", 0)
    if is_sweep(c.path):
        from grokscope.cli.sweep import report_sweep

        return report_sweep(c.path, x=c.x, y=c.y, gap=gap)
    _no_sweep_options(c, "report")
    rd = require_run(c.path)
    from grokscope.report.html import write_report

    with reading(rd.path):
        print(write_report(c.path, **({} if gap is None else {"gap": gap})))
    return 0


def cmd_compare(parsed: Parsed) -> int:
    c = parsed.command
    extra = [t for t in parsed.extra if not t.startswith("-")]  # runs given after an option
    if len(extra) != len(parsed.extra):
        bad = next(t for t in parsed.extra if t.startswith("-"))
        raise UsageError(f"compare: unknown option {bad.partition('=')[0]}; allowed: --out, --metric")
    run_dirs = [*c.runs, *extra]
    if len(run_dirs) < 2:
        raise UsageError("compare: give two or more run directories: grokscope compare RUN RUN ...")
    if c.metric not in METRICS and not re.fullmatch(r"\w+_(acc|loss)", c.metric):
        raise UsageError(f"metric: must be one of {', '.join(METRICS)} or SPLIT_acc / SPLIT_loss, "
                         f"got {c.metric!r}")
    for p in run_dirs:
        require_run(p)
    from grokscope.report.html import write_compare

    try:
        print(write_compare(run_dirs, c.out, metric=c.metric))
    except ValueError as e:  # no run has the metric
        raise UsageError(str(e)) from None
    return 0


def cmd_analyze(parsed: Parsed) -> int:
    c = parsed.command
    max_checkpoints = int_option(c.max_checkpoints, "max-checkpoints", 2)
    rqi_every = int_option(c.rqi_every, "rqi-every", 1)
    rd = require_run(c.run)
    from grokscope.analysis.run import analyze

    out = analyze(rd.path, max_checkpoints=max_checkpoints, rqi_every=1 if rqi_every is None else rqi_every,
                  reference=c.reference)
    print(f"analysis: {rd.path / 'analysis.json'} ({len(out['steps'])} checkpoints, {out['seconds']:.1f} s)")
    if out["key_freqs"]:
        print(f"key frequencies: {out['key_freqs']} (from the {out['key_source']})")
    print(f"card:     {out['card']['headline']}")
    for f in out["figures"]:
        print(f"figure:   {rd.path / f['file']}")
    print(f"report:   {rd.path / 'report.html'}")
    return 0


def cmd_presets(parsed: Parsed) -> int:
    from grokscope.presets import list_presets
    from grokscope.presets.expect import describe
    from grokscope.presets.registry import EXPECTATIONS

    for name, doc in list_presets().items():
        lines = doc.splitlines()
        expect = EXPECTATIONS.get(name)
        tail = f"\n  expects: {describe(expect)}" if expect is not None else ""
        print(f"{name}\n  " + "\n  ".join(lines) + tail + "\n")
    return 0
