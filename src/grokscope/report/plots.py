"""Figures (matplotlib, Agg backend; imported only when a figure is drawn).

Every function draws one PNG (dpi 100), writes it atomically, closes the figure and returns the
path. Steps go on a log x axis, where step 0 is drawn at step 1.
"""

from __future__ import annotations

import io
import math
from pathlib import Path

from grokscope import detect

DPI = 100
TRAIN_COLOR, TEST_COLOR = "tab:blue", "tab:red"
# light background colours of the phases (also used by the HTML timeline)
PHASE_COLORS = {
    "memorization": "#cfe2f3",
    "plateau": "#fbe7b5",
    "rising": "#f6cfae",
    "grokking": "#c9ecc9",
    "converged": "#e3d5f0",
}
_PAIRED = ("acc", "loss")  # metrics that exist for every split: train_X, test_X, test_ood_X, ...
_OTHER_COLORS = ("tab:orange", "tab:green", "tab:purple", "tab:brown", "tab:pink", "tab:olive",
                 "tab:cyan", "tab:gray")  # splits other than train and the generalization split


def pyplot():
    """matplotlib.pyplot on the Agg backend (imported here so `import grokscope` stays light)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _x(step) -> float:
    """Position of a step on the log x axis (step 0 at 1)."""
    return float(max(step, 1))


def series(records: list[dict], key: str, *, positive: bool = False) -> tuple[list[float], list[float]]:
    """(x, y) of `key` over the records; missing, non-finite (and with `positive`, <= 0) values
    become NaN so that matplotlib leaves a gap instead of warning."""
    xs, ys = [], []
    for r in records:
        v = r.get(key)
        ok = isinstance(v, (int, float)) and math.isfinite(v) and (v > 0 or not positive)
        xs.append(_x(r["step"]))
        ys.append(float(v) if ok else math.nan)
    return xs, ys


def _has(records: list[dict], key: str) -> bool:
    return any(isinstance(r.get(key), (int, float)) for r in records)


def save_png(fig, plt, path: str | Path) -> Path:
    """Render `fig` to PNG bytes, close it, and write them atomically to `path`."""
    from grokscope.tracking.rundir import atomic_write_bytes

    buf = io.BytesIO()
    try:
        fig.savefig(buf, format="png", dpi=DPI)
    finally:
        plt.close(fig)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, buf.getvalue())
    return path


def shade_phases(axes, phases: list[dict]) -> list:
    """Shade each phase segment (`detect.analyze`'s phases) as a background span on every axis;
    returns legend handles, labelled with each segment's `label` (its name, level and threshold,
    the same text as the report's phase table), one per distinct label."""
    from matplotlib.patches import Patch

    handles, seen = [], set()
    for seg in phases:
        name = seg["name"]
        label = seg.get("label") or name
        color = PHASE_COLORS.get(name, "#eeeeee")
        lo, hi = _x(seg["start"]), _x(seg["end"])
        if hi <= lo:
            continue
        for ax in axes:
            ax.axvspan(lo, hi, color=color, alpha=0.8, lw=0, zorder=0)
        if label not in seen:
            seen.add(label)
            handles.append(Patch(facecolor=color, edgecolor="none", label=label))
    return handles


def _mark_events(ax_acc, axes, events: dict) -> None:
    """Dashed vertical lines at the memorization / generalization steps, labelled on ax_acc."""
    for key, label, color in (("memorized_step", "memorized", TRAIN_COLOR),
                              ("generalized_step", "generalized", TEST_COLOR)):
        s = events.get(key)
        if s is None:
            continue
        for ax in axes:
            ax.axvline(_x(s), color=color, ls="--", lw=1, alpha=0.8, zorder=2)
        ax_acc.annotate(f"{label} @ {s:,}", (_x(s), 0.5), rotation=90, fontsize=8, color=color,
                        xytext=(3, 0), textcoords="offset points", va="center")


def _curves_title(title: str, analysis: dict | None) -> str:
    """The title, and on a second line the verdict and the outcome class, each with its threshold."""
    if not analysis:
        return title
    v = analysis.get("verdict") or detect.verdict(analysis)
    lines = [title] if title else []
    lines.append(v["label"])
    if v.get("outcome"):
        lines.append(f"outcome class ({detect.OUTCOME_RULE}): {v['outcome']}")
    return "\n".join(lines)


def _no_data(ax) -> None:
    ax.text(0.5, 0.5, "no evaluations yet", ha="center", va="center", transform=ax.transAxes,
            color="gray")


def split_styles(splits: list[str], gen: str) -> dict[str, dict]:
    """Line style of each split's curves: train blue, the generalization split red, thicker and
    labelled "(generalization)", the other splits in further colours."""
    others = iter(_OTHER_COLORS * (1 + len(splits) // len(_OTHER_COLORS)))
    out = {}
    for s in splits:
        if s == "train":
            out[s] = {"color": TRAIN_COLOR, "lw": 1.6, "label": s}
        elif s == gen:
            out[s] = {"color": TEST_COLOR, "lw": 2.0, "label": f"{s} (generalization)"}
        else:
            out[s] = {"color": next(others), "lw": 1.3, "label": s}
    return out


def save_curves(records: list[dict], path: str | Path, *, title: str = "",
                events: dict | None = None, analysis: dict | None = None,
                splits: list[str] | None = None, generalization_split: str = "test") -> Path:
    """Accuracy (top) and loss (bottom, log y) of every split against step on a log x axis.

    `splits`: the splits to draw (default: those the records show, see `runinfo.splits`); the
    generalization split is drawn in red and marked "(generalization)" in the legend.
    Memorization and generalization steps (from `events`, else `analysis["events"]`) are marked
    with labelled dashed lines. With `analysis` (`grokscope.detect.analyze`), its phases are shaded
    in the background (legend: their labels) and its verdict and outcome class are added to the
    title.
    """
    from grokscope.report.runinfo import splits as record_splits

    gen = generalization_split
    splits = list(splits) if splits else record_splits(records, gen=gen) or ["train", "test"]
    plt = pyplot()
    if events is None and analysis:
        events = analysis.get("events")
    fig, (ax_acc, ax_loss) = plt.subplots(2, 1, figsize=(8, 6.5), sharex=True)
    axes = (ax_acc, ax_loss)
    phase_handles = shade_phases(axes, analysis.get("phases") or []) if analysis and records else []
    for split, style in split_styles(splits, gen).items():
        ax_acc.plot(*series(records, f"{split}_acc"), **style, zorder=3)
        ax_loss.plot(*series(records, f"{split}_loss", positive=True), **style, zorder=3)
    if records:
        _mark_events(ax_acc, axes, events or {})
        ax_acc.set_xscale("log")
        if any(_has(records, f"{s}_loss") for s in splits):
            ax_loss.set_yscale("log")
        ax_acc.legend(loc="upper left", fontsize=9)
    else:
        _no_data(ax_acc)
    if phase_handles:
        ax_loss.legend(handles=phase_handles, loc="lower left", fontsize=7, title="phase",
                       title_fontsize=8, ncol=min(2, len(phase_handles)), framealpha=0.9)
    ax_acc.set_ylim(-0.02, 1.02)
    ax_acc.set_ylabel("accuracy")
    ax_acc.set_title(_curves_title(title, analysis), fontsize=9)
    ax_loss.set_ylabel("loss")
    ax_loss.set_xlabel("step")
    for ax in axes:
        ax.grid(True, which="major", alpha=0.3)
    fig.tight_layout()
    return save_png(fig, plt, path)


def save_measures(records: list[dict], path: str | Path, measures: list[str], *,
                  analysis: dict | None = None) -> Path:
    """The task's own measures (metric names logged in the records) against step on a log x axis,
    one panel each (two columns); with `analysis`, its phases shaded as in `save_curves`."""
    plt = pyplot()
    n = max(len(measures), 1)
    cols = 1 if n == 1 else 2
    rows = math.ceil(n / cols)
    fig, grid = plt.subplots(rows, cols, figsize=(8 if cols == 1 else 10, 0.6 + 2.4 * rows), squeeze=False)
    axes = list(grid.flat)
    for ax in axes[len(measures):]:
        ax.set_visible(False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (ax, key) in enumerate(zip(axes, measures)):
        if analysis and records:
            shade_phases((ax,), analysis.get("phases") or [])
        ax.plot(*series(records, key), color=colors[i % len(colors)], lw=1.6, zorder=3)
        ax.set_title(key, fontsize=9)
        ax.grid(True, which="major", alpha=0.3)
        if _has(records, key):
            ax.set_xscale("log")
        else:
            _no_data(ax)
    for ax in axes[max(0, len(measures) - cols):len(measures)]:  # the lowest panel of each column
        ax.set_xlabel("step")
    fig.suptitle("task measures", fontsize=11)
    fig.tight_layout()
    return save_png(fig, plt, path)


def save_norms(records: list[dict], path: str | Path, *, analysis: dict | None = None) -> Path:
    """Total weight norm (top) and learning rate (bottom) against step on a log x axis.

    With `analysis`, its phases are shaded in the background as in `save_curves`.
    """
    plt = pyplot()
    fig, (ax_norm, ax_lr) = plt.subplots(2, 1, figsize=(8, 5), sharex=True,
                                         gridspec_kw={"height_ratios": [3, 2]})
    if analysis and records:
        handles = shade_phases((ax_norm, ax_lr), analysis.get("phases") or [])
        if handles:
            ax_norm.legend(handles=handles, loc="best", fontsize=8, title="phase", title_fontsize=8)
    ax_norm.plot(*series(records, "weight_norm"), color="tab:green", lw=1.6, zorder=3)
    ax_lr.plot(*series(records, "lr"), color="tab:purple", lw=1.6, zorder=3)
    if records:
        ax_norm.set_xscale("log")
    else:
        _no_data(ax_norm)
    ax_norm.set_ylabel("weight norm ‖θ‖₂")
    ax_norm.set_title("total weight norm and learning rate")
    ax_lr.set_ylabel("learning rate")
    ax_lr.set_xlabel("step")
    ax_lr.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
    for ax in (ax_norm, ax_lr):
        ax.grid(True, which="major", alpha=0.3)
    fig.tight_layout()
    return save_png(fig, plt, path)


def _pair(metric: str) -> tuple[str | None, str]:
    """(dashed train metric or None, solid metric) drawn for `metric`: an evaluation split's accuracy
    or loss ('test_acc', 'test_ood_loss', ...) is drawn with the train one."""
    split, _, kind = metric.rpartition("_")
    if split and split != "train" and kind in _PAIRED:
        return f"train_{kind}", metric
    if split == "train" and kind in _PAIRED:
        return metric, f"test_{kind}"
    return None, metric


def compare(runs: list[tuple[str, list[dict]]], path: str | Path, *, metric: str = "test_acc") -> Path:
    """Overlay several runs in one figure against step (log x), one colour per run.

    For accuracy and loss metrics the split is drawn solid and train dashed (for a train metric:
    test solid, train dashed). Other metrics
    (weight_norm, lr, ...) are drawn solid. Loss uses a log y axis. Raises ValueError when there
    are no runs or no run has the metric.
    """
    if not runs:
        raise ValueError("compare: no runs given")
    dashed, solid = _pair(metric)
    if not any(_has(records, solid) for _, records in runs):
        raise ValueError(f"compare: no run has metric {metric!r}")
    plt = pyplot()
    positive = solid.endswith("loss")
    fig, ax = plt.subplots(figsize=(8, 5))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (label, records) in enumerate(runs):
        color = colors[i % len(colors)]
        ax.plot(*series(records, solid, positive=positive), color=color, lw=1.6, label=label)
        if dashed is not None:
            ax.plot(*series(records, dashed, positive=positive), color=color, lw=1.2, ls="--",
                    alpha=0.8)
    ax.set_xscale("log")
    if positive:
        ax.set_yscale("log")
    elif solid.endswith("acc"):
        ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("step")
    ax.set_ylabel({"acc": "accuracy", "loss": "loss"}[solid.rpartition("_")[2]] if dashed else metric)
    what = f"{solid} (solid) / {dashed} (dashed)" if dashed else metric
    ax.set_title(f"{what} — {len(runs)} run{'s' if len(runs) != 1 else ''}")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=9, loc="best")
    fig.tight_layout()
    return save_png(fig, plt, path)
