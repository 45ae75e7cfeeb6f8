"""A self-contained HTML report of one run directory, and the figure comparing several runs.

The report embeds its figures as base64 `data:` URIs and its CSS inline; it references no URL, so
it opens offline, from an e-mail attachment or a CI artifact alike. All text is HTML-escaped.
"""

from __future__ import annotations

import base64
import json
import math
import os
from html import escape
from pathlib import Path

from grokscope import detect
from grokscope.errors import ConfigError
from grokscope.report.plots import PHASE_COLORS
from grokscope.tracking.rundir import RunDir, atomic_write_text

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;margin:0;
 background:#f6f7f9;color:#1d232b;line-height:1.45}
main{max-width:1040px;margin:0 auto;padding:24px 28px 48px}
h1{font-size:1.6em;margin:0 0 4px}h2{font-size:1.15em;margin:28px 0 10px;border-bottom:1px solid #d6dbe1;
 padding-bottom:4px}
.sub{color:#5b6673;margin:0 0 16px}
#headline{font-size:1.15em;background:#fff;border-left:6px solid #3b7dd8;padding:12px 16px;margin:14px 0;
 border-radius:4px}
#headline.grokking,#headline.comprehension{border-color:#2e9d4f}
#headline.memorization{border-color:#d9a21b}#headline.confusion{border-color:#c0392b}
#algorithm-card{background:#fff;border-left:6px solid #8a949f;padding:10px 14px;border-radius:4px}
#algorithm-card.claim-fourier{border-color:#2e9d4f}
table{border-collapse:collapse;background:#fff;font-size:.92em}
th,td{border:1px solid #dfe3e8;padding:4px 10px;text-align:left;vertical-align:top}
th{background:#eef1f4;font-weight:600}td.num{text-align:right;font-variant-numeric:tabular-nums}
td.code{font-family:ui-monospace,"DejaVu Sans Mono",Menlo,Consolas,monospace;font-size:.9em}
#config table{align-self:flex-start}
.grid{display:flex;flex-wrap:wrap;gap:24px}
figure{margin:0 0 16px;background:#fff;padding:8px;border:1px solid #dfe3e8;border-radius:4px}
figure img{max-width:100%;height:auto;display:block}figcaption{color:#5b6673;font-size:.88em}
.tl-row{display:flex;align-items:center;gap:10px;margin:6px 0}
.tl-name{width:92px;color:#5b6673;font-size:.85em;text-align:right}
.tl-bar{position:relative;flex:1;height:34px;background:#fff;border:1px solid #b9c1ca;border-radius:3px;
 overflow:hidden}
.tl-seg{position:absolute;top:0;bottom:0;border-right:1px solid #fff;font-size:.8em;padding:0 4px;
 line-height:34px;white-space:nowrap;overflow:hidden;text-overflow:clip;color:#1d232b}
.tl-axis{position:relative;flex:1;height:16px;font-size:.72em;color:#5b6673}
.tl-tick{position:absolute;top:0;transform:translateX(-50%);white-space:nowrap}
.swatch{display:inline-block;width:12px;height:12px;border-radius:2px;vertical-align:-1px;margin-right:6px;
 border:1px solid #b9c1ca}
.muted{color:#5b6673}footer{margin-top:32px;color:#8a949f;font-size:.8em}
"""
_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"


def _run_dir(run_dir) -> RunDir:
    rd = RunDir(run_dir)
    if not rd.config.is_file() and not rd.metrics.is_file():
        raise ConfigError(f"run: {str(run_dir)!r} is not a run directory (no config.json)")
    return rd


def _fmt_step(s) -> str:
    return "—" if s is None else f"{int(s):,}"


def _fmt(v, digits: int = 4) -> str:
    """A number for a table: ints with separators, floats with `digits` significant digits."""
    if v is None:
        return "—"
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return str(v)
    if isinstance(v, int):
        return f"{v:,}"
    if not math.isfinite(v):
        return str(v)
    return f"{v:.{digits}g}"


def task_description(task: dict) -> str:
    """'x/y mod 97' for modular tasks, 'x*y on S_5' for permutation tasks, '' when unknown."""
    if not task:
        return ""
    op = task.get("op", "?")
    if task.get("kind") == "modular":
        return f"{op} mod {task.get('p', '?')}"
    if task.get("kind") == "permutations":
        return f"{op} on S_{task.get('n', '?')}"
    return str(op)


def headline(analysis: dict, summary: dict, records: list[dict], *, gap: int = detect.DEFAULT_GAP) -> str:
    """One sentence saying what happened in the run, from `detect.analyze(records, gap)` (plain text)."""
    if not records:
        return "No evaluations recorded yet."
    ev, outcome = analysis["events"], analysis["phase"]
    last = records[-1]
    end = last["step"]
    mem = ev.get("memorized_step")
    thr = 0.99 if mem is not None else detect.OUTCOME_ACC
    mem = mem if mem is not None else ev.get(f"train_{detect.OUTCOME_ACC}")
    gen = ev.get(f"test_{thr}")
    test_acc = last.get("test_acc")
    if analysis.get("still_on_plateau"):
        text = (f"Still on plateau at step {end:,}: train accuracy reached {thr} at step {mem:,}, "
                f"test accuracy is {_fmt(test_acc, 3)}.")
    elif outcome in ("grokking", "comprehension") and gen is not None:
        verb = "Grokked" if outcome == "grokking" else "Generalized"
        ratio = f" ({gen / mem:.1f}x later)" if mem else ""
        text = (f"{verb}: train accuracy reached {thr} at step {mem:,}, "
                f"test accuracy at step {gen:,}{ratio}.")
        if outcome == "comprehension":
            text += (f" Outcome class comprehension: test accuracy reached {detect.OUTCOME_ACC} within "
                     f"{gap:,} steps of train accuracy.")
    elif outcome in ("grokking", "comprehension"):
        t90 = ev.get(f"test_{detect.OUTCOME_ACC}")
        text = (f"Partly generalized ({outcome}): train accuracy reached {thr} at step {mem:,}, test "
                f"accuracy {detect.OUTCOME_ACC} at step {t90:,} but never {thr}.")
    elif outcome == "memorization":
        text = (f"Memorized without generalizing: train accuracy reached {thr} at step {mem:,}; "
                f"test accuracy ended at {_fmt(test_acc, 3)} at step {end:,}.")
    else:
        text = (f"Did not fit the training set: train accuracy ended at "
                f"{_fmt(last.get('train_acc'), 3)} at step {end:,}.")
    status = summary.get("status")
    if status and status != "completed":
        reason = summary.get("stop_reason")
        text += f" Run status: {status}" + (f" ({reason})." if reason else ".")
    return text


def _table(rows, *, id_: str | None = None, head: tuple = (), cls: str = "num") -> str:
    """HTML table of (cells...) rows, escaping every cell; the first cell of a row is a <th> and the
    others get class `cls`."""
    out = [f'<table id="{id_}">' if id_ else "<table>"]
    if head:
        out.append("<tr>" + "".join(f"<th>{escape(str(h))}</th>" for h in head) + "</tr>")
    for row in rows:
        key, *vals = row
        cells = "".join(f'<td class="{cls}">{escape(str(v))}</td>' for v in vals)
        out.append(f"<tr><th>{escape(str(key))}</th>{cells}</tr>")
    out.append("</table>")
    return "\n".join(out)


def _key_numbers(summary: dict, analysis: dict, records: list[dict]) -> str:
    ev, final = analysis["events"], summary.get("final") or {}
    last = records[-1] if records else {}
    wall = summary.get("wall_seconds", last.get("elapsed"))
    ratio = ev.get("delay_ratio")
    sharp = ev.get("sharpness")
    rows = [
        ("status", "status", summary.get("status", "unknown")),
        ("steps", "steps", _fmt_step(summary.get("steps_done", last.get("step")))),
        ("wall_seconds", "wall seconds", _fmt(wall, 4)),
        ("n_parameters", "parameters", _fmt(summary.get("n_parameters"))),
    ]
    for k in ("train_acc", "test_acc", "train_loss", "test_loss"):
        v = final.get(k, last.get(k))
        shown = f"{v:.4f}" if k.endswith("acc") and isinstance(v, (int, float)) else _fmt(v, 4)
        rows.append((f"final_{k}", f"final {k.replace('_', ' ')}", shown))
    rows += [
        ("memorized_step", "memorized step (train acc ≥ 0.99)", _fmt_step(ev.get("memorized_step"))),
        ("generalized_step", "generalized step (test acc ≥ 0.99)", _fmt_step(ev.get("generalized_step"))),
        ("delay_ratio", "delay ratio (generalized / memorized)", "—" if ratio is None else f"{ratio:.2f}x"),
        ("sharpness", "sharpness (steps for 10%→90% of the test rise)",
         "—" if sharp is None else f"{sharp:,} steps"),
        ("outcome", "outcome class", analysis["phase"] + (" (still on plateau)"
                                                          if analysis.get("still_on_plateau") else "")),
    ]
    body = "".join(f'<tr data-key="{k}"><th>{escape(label)}</th><td class="num">{escape(v)}</td></tr>'
                   for k, label, v in rows)
    return f'<table id="key-numbers">{body}</table>'


def _bar(phases: list[dict], last: int, scale: str) -> str:
    """One timeline bar: absolutely placed coloured segments, plus an axis with step ticks."""
    if scale == "log":
        pos = lambda s: 100 * math.log10(1 + s) / math.log10(1 + last) if last > 0 else 0.0
        ticks = [10**k for k in range(int(math.log10(last)) + 1)] if last >= 1 else []
    else:
        pos = lambda s: 100 * s / last if last > 0 else 0.0
        ticks = [round(last * f) for f in (0, 0.25, 0.5, 0.75, 1)]
    segs = []
    for seg in phases:
        left, right = pos(seg["start"]), pos(seg["end"])
        color = PHASE_COLORS.get(seg["name"], "#eeeeee")
        title = f"{seg['name']}: steps {seg['start']:,}–{seg['end']:,}"
        segs.append(f'<div class="tl-seg" data-phase="{escape(seg["name"])}" title="{escape(title)}" '
                    f'style="left:{left:.3f}%;width:{max(right - left, 0.3):.3f}%;background:{color}">'
                    f'{escape(seg["name"]) if right - left >= 7 else ""}</div>')
    axis = "".join(f'<span class="tl-tick" style="left:{pos(t):.3f}%">{t:,}</span>' for t in ticks)
    return (f'<div class="tl-row"><div class="tl-name">step ({scale})</div><div class="tl-bar">'
            f'{"".join(segs)}</div></div><div class="tl-row"><div class="tl-name"></div>'
            f'<div class="tl-axis">{axis}</div></div>')


def _timeline(analysis: dict, records: list[dict]) -> str:
    phases = analysis.get("phases") or []
    if not records or not phases:
        return '<div id="timeline"><p class="muted">No phases yet.</p></div>'
    last = max(records[-1]["step"], phases[-1]["end"])
    rows = []
    for seg in phases:
        color = PHASE_COLORS.get(seg["name"], "#eeeeee")
        rows.append(f'<tr><th><span class="swatch" style="background:{color}"></span>'
                    f'{escape(seg["name"])}</th><td class="num">{seg["start"]:,}</td>'
                    f'<td class="num">{seg["end"]:,}</td>'
                    f'<td class="num">{seg["end"] - seg["start"]:,}</td></tr>')
    table = ("<table><tr><th>phase</th><th>from step</th><th>to step</th><th>steps</th></tr>"
             + "".join(rows) + "</table>")
    return (f'<div id="timeline">{_bar(phases, last, "linear")}{_bar(phases, last, "log")}'
            f'<div style="margin-top:10px">{table}</div></div>')


def _events(ev: dict) -> str:
    rows = []
    for t in detect.THRESHOLDS:
        tr, te = ev.get(f"train_{t}"), ev.get(f"test_{t}")
        gap = _fmt_step(te - tr) if tr is not None and te is not None else "—"
        rows.append((f"accuracy ≥ {t}", _fmt_step(tr), _fmt_step(te), gap))
    thresholds = _table(rows, head=("threshold", "train reaches at step", "test reaches at step",
                                    "test − train (steps)"))
    derived = _table([
        ("delay (generalized − memorized)", _fmt_step(ev.get("delay"))),
        ("delay ratio", "—" if ev.get("delay_ratio") is None else f"{ev['delay_ratio']:.2f}x"),
        ("test rise starts (10%)", _fmt_step(ev.get("rise_start"))),
        ("test rise ends (90%)", _fmt_step(ev.get("rise_end"))),
        ("sharpness (steps)", _fmt_step(ev.get("sharpness"))),
    ])
    return f'<div id="events" class="grid">{thresholds}{derived}</div>'


def _config(cfg: dict) -> str:
    """The config as one key/value table per section (task, model, ...), side by side."""
    top = [(k, json.dumps(v)) for k, v in cfg.items() if not isinstance(v, dict)]
    tables = [_table(top, head=("run", ""), cls="code")] if top else []
    for section, value in cfg.items():
        if isinstance(value, dict):
            rows = [(k, json.dumps(v)) for k, v in value.items()]
            tables.append(_table(rows, head=(section, ""), cls="code"))
    return f'<div id="config" class="grid">{"".join(tables)}</div>'


def _figure(path: Path, id_: str, caption: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return (f'<figure id="{id_}"><img alt="{escape(caption)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{escape(caption)}</figcaption></figure>")


def _algorithm(rd: RunDir) -> list[str]:
    """The "Learned algorithm" section from RUN/analysis.json (written by `grokscope analyze`)."""
    path = rd.path / "analysis.json"
    if not path.is_file():
        return []
    try:
        an = json.loads(path.read_text())
        card = an["card"]
    except (json.JSONDecodeError, KeyError, TypeError):
        return ['<h2>Learned algorithm</h2><p id="algorithm-card" class="muted">analysis.json is '
                "unreadable; run <code>grokscope analyze</code> again.</p>"]
    steps = an.get("steps") or []
    evidence = "".join(f"<li>{escape(e)}</li>" for e in card.get("evidence", []))
    figures = "".join(_figure(rd.path / f["file"], f["id"], f["caption"])
                      for f in an.get("figures", []) if (rd.path / f["file"]).is_file())
    span = f"{len(steps)} checkpoints, steps {steps[0]:,}–{steps[-1]:,}" if steps else "no checkpoints"
    return [
        "<h2>Learned algorithm</h2>",
        f'<p id="algorithm-card" class="claim-{escape(str(card.get("claim")))}">'
        f'{escape(card.get("headline", ""))}</p>',
        f'<ul id="algorithm-evidence">{evidence}</ul>',
        f'<p class="muted">From <code>grokscope analyze</code> over {escape(span)}; per-checkpoint '
        "numbers in analysis.jsonl.</p>",
        f'<div id="analysis-figures">{figures}</div>',
    ]


def write_report(run_dir, *, gap: int = detect.DEFAULT_GAP) -> Path:
    """Write RUN/report.html (self-contained) and redraw RUN/figures/{curves,norms}.png.

    Reads config.json, metrics.jsonl and summary.json (each may be missing while a run starts),
    analyses the metrics with `detect.analyze(records, gap)` and returns the report's path.
    """
    from grokscope import __version__
    from grokscope.report.plots import save_curves, save_norms

    rd = _run_dir(run_dir)
    records = rd.read_metrics()
    summary = rd.read_summary() if rd.summary.is_file() else {}
    cfg = rd.read_config_dict() if rd.config.is_file() else {}
    analysis = detect.analyze(records, gap)
    name = summary.get("name") or cfg.get("name") or rd.path.resolve().name
    task = task_description(summary.get("task") or cfg.get("task") or {})
    title = f"{name} — {task}" if task else name
    if records:
        curves = save_curves(records, rd.figures / "curves.png", title=title, analysis=analysis)
        norms = save_norms(records, rd.figures / "norms.png", analysis=analysis)
        figures = (_figure(curves, "fig-curves", "Accuracy and loss vs step (log x); phases shaded, "
                           "memorization and generalization marked.")
                   + _figure(norms, "fig-norms", "Total weight norm and learning rate vs step (log x)."))
    else:
        figures = ('<p id="fig-curves" class="muted">No evaluations yet.</p>'
                   '<p id="fig-norms" class="muted"></p>')
    versions = summary.get("versions") or {}
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<link rel="icon" href="data:,">',
        f"<title>{escape(title)} · grokscope report</title><style>{_CSS}</style></head><body><main>",
        f'<h1 id="title">{escape(title)}</h1>',
        f'<p class="sub">grokscope run report · {escape(str(rd.path))}</p>',
        f'<p id="headline" class="{escape(analysis["phase"])}">'
        f"{escape(headline(analysis, summary, records, gap=gap))}</p>",
        "<h2>Key numbers</h2>", _key_numbers(summary, analysis, records),
        "<h2>Phases</h2>", _timeline(analysis, records),
        "<h2>Figures</h2>", figures,
        "<h2>Events</h2>", _events(analysis["events"]),
        *_algorithm(rd),
        "<h2>Config</h2>", _config(cfg),
        "<h2>Versions</h2>",
        _table(sorted(versions.items()), id_="versions", head=("package", "version"), cls="code"),
        f"<footer>Written by grokscope {escape(__version__)}; outcome gap {gap:,} steps.</footer>",
        "</main></body></html>",
    ]
    out = rd.path / "report.html"
    atomic_write_text(out, "\n".join(parts) + "\n")
    return out


def write_compare(run_dirs: list, out_path: str | os.PathLike, *, metric: str = "test_acc") -> Path:
    """Draw `metric` of several run directories in one PNG (`plots.compare`), labelled by directory
    name; returns its path."""
    from grokscope.report.plots import compare

    runs = []
    for d in run_dirs:
        rd = _run_dir(d)
        runs.append((rd.path.resolve().name, rd.read_metrics()))
    return compare(runs, Path(out_path), metric=metric)
