"""A self-contained HTML report of one run directory, and the figure comparing several runs.

The page is rendered from `report/templates/run.html.j2` (Jinja2, autoescaping on: every text is
HTML-escaped). It embeds its figures as base64 `data:` URIs and its CSS inline and references no
URL, so it opens offline, from an e-mail attachment or a CI artifact alike.

Every split the run evaluates is shown; the headline, the events and the phases are read on the
generalization split (summary.json's `generalization_split`, 'test' for older runs).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

from grokscope import detect
from grokscope.errors import ConfigError
from grokscope.report import runinfo
from grokscope.report.htmlkit import config_tables, figure, fmt, fmt_step, write_page
from grokscope.report.plots import PHASE_COLORS
from grokscope.report.runinfo import task_description
from grokscope.tracking.rundir import RunDir

__all__ = ["headline", "task_description", "write_compare", "write_report"]


def _run_dir(run_dir) -> RunDir:
    rd = RunDir(run_dir)
    if not rd.config.is_file() and not rd.metrics.is_file():
        raise ConfigError(f"run: {str(run_dir)!r} is not a run directory (no config.json)")
    return rd


def headline(analysis: dict, summary: dict, records: list[dict], *, gap: int = detect.DEFAULT_GAP,
             split: str | None = None) -> str:
    """One sentence saying what happened in the run, from `detect.analyze(records, gap, split=split)`
    (plain text): its verdict (`detect.verdict`), with the thresholds, so that it agrees with the
    phase table and the shading. `split`: the generalization split the analysis was read on
    (default: the summary's `generalization_split`, else 'test')."""
    if not records:
        return "No evaluations recorded yet."
    gen = split or runinfo.generalization_split(summary)
    v = _verdict(analysis, gen, gap)
    ev, outcome, state = analysis["events"], analysis["phase"], v["state"]
    end = records[-1]["step"]
    mem = ev.get("memorized_step")
    final, lo = ev.get("final_level"), ev.get("plateau_level")
    acc = detect.fmt_acc
    mem_acc, gen_acc, out_acc = detect.MEMORIZED_ACC, detect.GENERALIZED_ACC, detect.OUTCOME_ACC
    level = detect.GROKKED_ACC
    train_final = records[-1].get("train_acc")
    if state == "none":
        text = "No evaluations recorded yet."
    elif state == "unfitted":
        text = (f"Did not fit the training set: train accuracy never reached {mem_acc} (ended at "
                f"{fmt(train_final, 3)}); {gen} accuracy ended at {acc(final)} at step {end:,}.")
    elif state == "generalized":
        verb = "Grokked" if outcome == "grokking" else "Generalized"
        gen_step, t95 = ev.get("generalized_step"), ev.get("test_0.95")
        if mem is None:
            text = (f"{verb} without fitting the training labels: train accuracy never reached "
                    f"{mem_acc} (ended at {fmt(train_final, 3)}); {gen} accuracy reached "
                    + (f"{gen_acc} at step {gen_step:,}." if gen_step is not None
                       else f"{level} at step {t95:,}, never {gen_acc}."))
        elif gen_step is not None and gen_step <= mem:
            text = (f"{verb}: train accuracy reached {mem_acc} at step {mem:,}, {gen} accuracy reached "
                    f"{gen_acc} at step {gen_step:,}, before train accuracy did.")
        elif gen_step is not None:
            ratio = f"{gen_step / mem:.1f}x later" if mem else ""
            if t95 is not None and t95 < gen_step and mem:
                ratio += f"; {level} at step {t95:,}, {t95 / mem:.1f}x"
            text = (f"{verb}: train accuracy reached {mem_acc} at step {mem:,}, {gen} accuracy reached "
                    f"{gen_acc} at step {gen_step:,}" + (f" ({ratio})." if ratio else "."))
        else:
            ratio = f" ({t95 / mem:.1f}x later)" if mem and t95 else ""
            text = (f"{verb} to {level}: train accuracy reached {mem_acc} at step {mem:,}, {gen} accuracy "
                    f"reached {level} at step {t95:,}{ratio} but never {gen_acc} (final {acc(final)}).")
        if final is not None and final < level:
            text += f" It then fell to {acc(final)} by step {end:,}."
        if outcome == "comprehension":
            text += (f" Outcome class comprehension: {gen} accuracy reached {out_acc} within "
                     f"{gap:,} steps of train accuracy.")
    elif state == "rising":
        text = (f"Still rising at step {end:,}: train accuracy reached {mem_acc} at step {mem:,}; "
                f"{gen} accuracy is {acc(final)} and rising (plateau {acc(lo)}), not yet {level}.")
    else:  # plateau
        plateau = acc(v["level"])
        rose = any(p.get("name") == "rising" for p in analysis.get("phases") or [])
        t90 = ev.get(f"test_{out_acc}")
        if outcome in ("grokking", "comprehension") and t90 is not None:
            text = (f"Partly generalized (outcome class {outcome} at {out_acc}): train accuracy reached "
                    f"{mem_acc} at step {mem:,}, {gen} accuracy reached {out_acc} at step {t90:,} but never "
                    f"{level}; on a plateau at {plateau} at step {end:,}.")
        else:
            how = (f"rose from {acc(lo)} to a plateau at {plateau}" if rose
                   else f"sits on a plateau at {plateau}")
            text = (f"Memorized without generalizing: train accuracy reached {mem_acc} at step {mem:,}; "
                    f"{gen} accuracy {how}, still there at step {end:,} (never {level}).")
    text += _counts_sentence(ev, gen)
    status = summary.get("status")
    if status and status != "completed":
        reason = summary.get("stop_reason")
        text += f" Run status: {status}" + (f" ({reason})." if reason else ".")
    return text


def _verdict(analysis: dict, gen: str, gap: int) -> dict:
    v = analysis.get("verdict")
    return v if isinstance(v, dict) and "state" in v else detect.verdict(analysis, split=gen, gap=gap)


def _counts_sentence(ev: dict, gen: str) -> str:
    """How many examples the generalization threshold rests on (empty when the size is unknown)."""
    n, allowed = ev.get("eval_size"), ev.get("generalized_max_errors")
    if not n:
        return ""
    text = ""
    step, errors, ci = ev.get("generalized_step"), ev.get("generalized_errors"), ev.get("generalized_ci")
    if step is not None and errors is not None:
        text = (f" On {n:,} {gen} example{'s' * (n != 1)}, {detect.GENERALIZED_ACC} allows at most {allowed} "
                f"error{'s' * (allowed != 1)}; at step {step:,} there {'was' if errors == 1 else 'were'} "
                f"{errors}" + (f" (95% CI of the accuracy {ci[0]:.3f}–{ci[1]:.3f})." if ci else "."))
    if ev.get("small_eval_set"):
        text += (f" Only {n:,} {gen} example{'s' * (n != 1)}: a small evaluation set (< "
                 f"{detect.SMALL_EVAL_SET}), one example is {100 / n:.3g}% of the accuracy.")
    return text


def _key_numbers(summary: dict, analysis: dict, records: list[dict], splits: list[str], gen: str,
                 gap: int = detect.DEFAULT_GAP):
    """[(data-key, label, value)] rows of the key-numbers table."""
    ev, final = analysis["events"], summary.get("final") or {}
    v = _verdict(analysis, gen, gap)
    last = records[-1] if records else {}
    wall = summary.get("wall_seconds", last.get("elapsed"))
    ratio, ratio95 = ev.get("delay_ratio"), ev.get("delay_ratio_0.95")
    sharp = ev.get("sharpness")
    rows = [
        ("status", "status", summary.get("status", "unknown")),
        ("steps", "steps", fmt_step(summary.get("steps_done", last.get("step")))),
        ("wall_seconds", "wall seconds", fmt(wall, 4)),
        ("n_parameters", "parameters", fmt(summary.get("n_parameters"))),
        ("generalization_split", "generalization split", gen),
    ]
    for kind in ("acc", "loss"):
        for s in splits:
            k = f"{s}_{kind}"
            v_ = final.get(k, last.get(k))
            shown = f"{v_:.4f}" if kind == "acc" and isinstance(v_, (int, float)) else fmt(v_, 4)
            rows.append((f"final_{k}", f"final {s} {kind}", shown))
    mem_acc, gen_acc = detect.MEMORIZED_ACC, detect.GENERALIZED_ACC
    rows += [
        ("verdict", f"verdict (grokking: {gen} acc reaches {detect.GROKKED_ACC}; converged: "
                    f"≥ {gen_acc})", v["label"]),
        ("memorized_step", f"memorized step (train acc ≥ {mem_acc})",
         detect.dated(ev.get("memorized_step"), ev.get("memorized_resolution"), "—")),
        ("generalized_step", f"generalized step ({gen} acc ≥ {gen_acc})",
         detect.dated(ev.get("generalized_step"), ev.get("generalized_resolution"), "—")),
        ("generalized_errors", f"{gen} errors at the {gen_acc} threshold",
         v.get("errors_label") or f"— (size of {gen} unknown)"),
        ("delay_ratio", "delay ratio (generalized / memorized)", "—" if ratio is None else f"{ratio:.2f}x"),
        ("delay_ratio_0.95", f"delay ratio at {gen} acc {detect.GROKKED_ACC}",
         "—" if ratio95 is None else f"{ratio95:.2f}x"),
        ("sharpness", f"sharpness (steps for 10%→90% of the {gen} rise)",
         "—" if sharp is None else f"{sharp:,} steps"),
        ("outcome", f"outcome class ({detect.OUTCOME_RULE}, gap {gap:,} steps)", analysis["phase"]),
    ]
    return rows


def _bar(phases: list[dict], last: int, scale: str) -> dict:
    """One timeline bar: {scale, segments: [{name, title, left, width, color, label}], ticks}."""
    if scale == "log":
        pos = lambda s: 100 * math.log10(1 + s) / math.log10(1 + last) if last > 0 else 0.0
        ticks = [10**k for k in range(int(math.log10(last)) + 1)] if last >= 1 else []
    else:
        pos = lambda s: 100 * s / last if last > 0 else 0.0
        ticks = [round(last * f) for f in (0, 0.25, 0.5, 0.75, 1)]
    segs = []
    for seg in phases:
        left, right = pos(seg["start"]), pos(seg["end"])
        label = seg.get("label") or seg["name"]
        segs.append({"name": seg["name"], "title": f"{label}: steps {seg['start']:,}–{seg['end']:,}",
                     "left": f"{left:.3f}", "width": f"{max(right - left, 0.3):.3f}",
                     "color": PHASE_COLORS.get(seg["name"], "#eeeeee"),
                     "label": seg["name"] if right - left >= 7 else ""})
    return {"scale": scale, "segments": segs,
            "ticks": [{"left": f"{pos(t):.3f}", "text": f"{t:,}"} for t in ticks]}


def _timeline(analysis: dict, records: list[dict]) -> dict | None:
    phases = analysis.get("phases") or []
    if not records or not phases:
        return None
    last = max(records[-1]["step"], phases[-1]["end"])
    rows = [{"name": s["name"], "label": s.get("label") or s["name"], "start": s["start"],
             "color": PHASE_COLORS.get(s["name"], "#eeeeee"), "end": s["end"],
             "steps": s["end"] - s["start"]} for s in phases]
    return {"bars": [_bar(phases, last, "linear"), _bar(phases, last, "log")], "rows": rows}


def _events(ev: dict, gen: str) -> dict:
    rows = []
    for t in detect.THRESHOLDS:
        tr, te = ev.get(f"train_{t}"), ev.get(f"test_{t}")
        gap = fmt_step(te - tr) if tr is not None and te is not None else "—"
        rows.append((f"accuracy ≥ {t}", fmt_step(tr), fmt_step(te), gap))
    head = ("threshold", "train reaches at step", f"{gen} reaches at step", f"{gen} − train (steps)")
    acc = detect.fmt_acc
    derived = [
        (f"delay (generalized − memorized, at {detect.GENERALIZED_ACC})", fmt_step(ev.get("delay"))),
        ("delay ratio", "—" if ev.get("delay_ratio") is None else f"{ev['delay_ratio']:.2f}x"),
        (f"delay ratio at {detect.GROKKED_ACC}",
         "—" if ev.get("delay_ratio_0.95") is None else f"{ev['delay_ratio_0.95']:.2f}x"),
        (f"{gen} plateau level after memorization", acc(ev.get("plateau_level"))),
        (f"{gen} rise starts (10%)", fmt_step(ev.get("rise_start"))),
        (f"{gen} rise ends (90%)", fmt_step(ev.get("rise_end"))),
        ("sharpness (steps)", fmt_step(ev.get("sharpness"))),
        (f"{gen} accuracy at the last step / best",
         f"{acc(ev.get('final_level'))} / {acc(ev.get('best_level'))}"),
        (f"{gen} examples",
         fmt(ev.get("eval_size")) + (" (small evaluation set)" if ev.get("small_eval_set") else "")),
    ]
    return {"head": head, "thresholds": rows, "derived": derived}


def _early_stopping(records: list[dict], gen: str) -> dict | None:
    """Where the usual early stoppers would have ended this run (the generalization split as the
    validation set), what they would have kept, and what the run reached."""
    from grokscope.early_stop import counterfactual

    if not records:
        return None
    acc = detect.fmt_acc
    final = records[-1].get(f"{gen}_acc")
    accs = [r[f"{gen}_acc"] for r in records if isinstance(r.get(f"{gen}_acc"), (int, float))]
    best = max(accs, default=None)
    rows = [(r["label"], "never" if r["stopped_step"] is None else fmt_step(r["stopped_step"]),
             "—" if r["stopped_step"] is None else acc(r["kept_acc"])) for r in counterfactual(records, gen)]
    rows.append(("this run", fmt_step(records[-1]["step"]), f"{acc(final)} (best {acc(best)})"))
    return {"split": gen, "head": ("early stopper", "would stop at step", f"{gen} accuracy kept"),
            "rows": rows}


def _algorithm(rd: RunDir) -> dict | None:
    """The "Learned algorithm" section from RUN/analysis.json (written by `grokscope analyze`):
    None without one, {"error": True} when it is unreadable."""
    path = rd.analysis
    if not path.is_file():
        return None
    try:
        an = json.loads(path.read_text())
        card = an["card"]
        steps = an.get("steps") or []
        figures = [figure(rd.path / f["file"], f["id"], f["caption"])
                   for f in an.get("figures", []) if (rd.path / f["file"]).is_file()]
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, AttributeError):
        return {"error": True}
    span = f"{len(steps)} checkpoints, steps {steps[0]:,}–{steps[-1]:,}" if steps else "no checkpoints"
    return {"error": False, "claim": str(card.get("claim")), "headline": card.get("headline", ""),
            "evidence": list(card.get("evidence", [])), "span": span, "figures": figures}


def _figures(rd: RunDir, records: list[dict], analysis: dict, *, title: str, splits: list[str],
             gen: str, measures: list[str]) -> list[dict]:
    """Draw figures/{curves,norms}.png (and measures.png when the task logs measures); their entries."""
    from grokscope.report.plots import save_curves, save_measures, save_norms

    curves = save_curves(records, rd.figures / "curves.png", title=title, analysis=analysis, splits=splits,
                         generalization_split=gen)
    norms = save_norms(records, rd.figures / "norms.png", analysis=analysis)
    out = [figure(curves, "fig-curves", f"Accuracy and loss of every split vs step (log x); {gen} is the "
                  "generalization split; phases shaded, memorization and generalization marked."),
           figure(norms, "fig-norms", "Total weight norm and learning rate vs step (log x).")]
    drawn = [m for m in measures if any(isinstance(r.get(m), (int, float)) for r in records)]
    if drawn:
        path = save_measures(records, rd.figures / "measures.png", drawn, analysis=analysis)
        out.append(figure(path, "fig-measures", "The task's own measures vs step (log x): "
                          + ", ".join(drawn) + "."))
    return out


def _headline_class(analysis: dict, records: list[dict]) -> str:
    """CSS class of the headline, from the verdict (so a plateau is never shown in grokking green)."""
    state = _verdict(analysis, "test", detect.DEFAULT_GAP)["state"]
    if not records or state == "none":
        return "none"
    if state == "generalized":
        return analysis["phase"] if analysis["phase"] in ("grokking", "comprehension") else "comprehension"
    return {"unfitted": "confusion", "rising": "rising"}.get(state, "memorization")


def write_report(run_dir, *, gap: int = detect.DEFAULT_GAP) -> Path:
    """Write RUN/report.html (self-contained) and redraw RUN/figures/{curves,norms}.png (and
    measures.png when summary.json lists task measures).

    Reads config.json, metrics.jsonl and summary.json (each may be missing while a run starts),
    analyses the metrics with `detect.analyze(records, gap, split=generalization split, n_eval=its
    size from summary.json, see detect.eval_size)` and returns the report's path.
    """
    rd = _run_dir(run_dir)
    records = rd.read_metrics()
    summary = rd.read_summary() if rd.summary.is_file() else {}
    cfg = rd.read_config_dict() if rd.config.is_file() else {}
    gen = runinfo.generalization_split(summary, cfg)
    splits = runinfo.splits(records, summary, gen) or ["train", gen]
    measures = runinfo.measures(summary)
    analysis = detect.analyze(records, gap, split=gen, n_eval=detect.eval_size(summary, gen))
    name = summary.get("name") or cfg.get("name") or rd.path.resolve().name
    task = task_description(summary.get("task") or cfg.get("task") or {})
    title = f"{name} — {task}" if task else str(name)
    figures = (_figures(rd, records, analysis, title=title, splits=splits, gen=gen, measures=measures)
               if records else [])
    verdict = _verdict(analysis, gen, gap)
    return write_page(
        rd.report, "run.html.j2",
        title=title, location=str(rd.path), phase=_headline_class(analysis, records),
        headline=headline(analysis, summary, records, gap=gap, split=gen),
        key_numbers=_key_numbers(summary, analysis, records, splits, gen, gap),
        timeline=_timeline(analysis, records), figures=figures, verdict=verdict["label"],
        outcome=verdict["outcome_label"] or "—", events=_events(analysis["events"], gen),
        early_stopping=_early_stopping(records, gen),
        forecast=_forecast(records, analysis, cfg, gen),
        algorithm=_algorithm(rd), config=config_tables(cfg),
        versions=sorted((summary.get("versions") or {}).items()), gap=f"{gap:,}",
    )


def _forecast(records: list[dict], analysis: dict, cfg: dict, gen: str) -> str | None:
    """The early warning (grokscope.predict) for a run that has not generalized, else None."""
    if analysis["events"].get("generalized_step") is not None or len(records) < 3:
        return None
    from grokscope.predict import forecast_text

    return forecast_text(records, (cfg.get("train") or {}).get("steps"), gen)


def write_compare(run_dirs: list, out_path: str | os.PathLike, *, metric: str = "test_acc") -> Path:
    """Draw `metric` of several run directories in one PNG (`plots.compare`), labelled by directory
    name; returns its path."""
    from grokscope.report.plots import compare

    runs = []
    for d in run_dirs:
        rd = _run_dir(d)
        runs.append((rd.path.resolve().name, rd.read_metrics()))
    return compare(runs, Path(out_path), metric=metric)
