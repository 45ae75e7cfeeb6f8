"""Figures (matplotlib, Agg backend; imported only when a figure is drawn).

Every function draws one PNG (dpi 100), writes it atomically, closes the figure and returns the
path. Steps go on a log x axis, where step 0 is drawn at step 1.
"""

from __future__ import annotations

import io
import math
from pathlib import Path

DPI = 100
TRAIN_COLOR, TEST_COLOR = "tab:blue", "tab:red"
# light background colours of the phases (also used by the HTML timeline)
PHASE_COLORS = {
    "memorization": "#cfe2f3",
    "plateau": "#fbe7b5",
    "grokking": "#c9ecc9",
    "converged": "#e3d5f0",
}
_PAIRED = ("acc", "loss")  # metrics that exist as train_X and test_X


def _pyplot():
    """matplotlib.pyplot on the Agg backend (imported here so `import grokscope` stays light)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _x(step) -> float:
    """Position of a step on the log x axis (step 0 at 1)."""
    return float(max(step, 1))


def _series(records: list[dict], key: str, *, positive: bool = False) -> tuple[list[float], list[float]]:
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


def _save(fig, plt, path: str | Path) -> Path:
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


def _shade_phases(axes, phases: list[dict]) -> list:
    """Shade each phase segment as a background span on every axis; returns legend handles."""
    from matplotlib.patches import Patch

    handles, seen = [], set()
    for seg in phases:
        name = seg["name"]
        color = PHASE_COLORS.get(name, "#eeeeee")
        lo, hi = _x(seg["start"]), _x(seg["end"])
        if hi <= lo:
            continue
        for ax in axes:
            ax.axvspan(lo, hi, color=color, alpha=0.8, lw=0, zorder=0)
        if name not in seen:
            seen.add(name)
            handles.append(Patch(facecolor=color, edgecolor="none", label=name))
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
    if not analysis:
        return title
    outcome = f"outcome: {analysis.get('phase', '?')}"
    if analysis.get("still_on_plateau"):
        outcome += " (still on plateau)"
    return f"{title} — {outcome}" if title else outcome


def _no_data(ax) -> None:
    ax.text(0.5, 0.5, "no evaluations yet", ha="center", va="center", transform=ax.transAxes,
            color="gray")


def save_curves(records: list[dict], path: str | Path, *, title: str = "",
                events: dict | None = None, analysis: dict | None = None) -> Path:
    """Train/test accuracy (top) and loss (bottom, log y) against step on a log x axis.

    Memorization and generalization steps (from `events`, else `analysis["events"]`) are marked
    with labelled dashed lines. With `analysis` (`grokscope.detect.analyze`), its phases are shaded
    in the background and its outcome class is added to the title.
    """
    plt = _pyplot()
    if events is None and analysis:
        events = analysis.get("events")
    fig, (ax_acc, ax_loss) = plt.subplots(2, 1, figsize=(8, 6.5), sharex=True)
    axes = (ax_acc, ax_loss)
    phase_handles = _shade_phases(axes, analysis.get("phases") or []) if analysis and records else []
    for split, color in (("train", TRAIN_COLOR), ("test", TEST_COLOR)):
        ax_acc.plot(*_series(records, f"{split}_acc"), label=split, color=color, lw=1.6, zorder=3)
        ax_loss.plot(*_series(records, f"{split}_loss", positive=True), label=split, color=color,
                     lw=1.6, zorder=3)
    if records:
        _mark_events(ax_acc, axes, events or {})
        ax_acc.set_xscale("log")
        ax_loss.set_yscale("log")
        ax_acc.legend(loc="upper left", fontsize=9)
    else:
        _no_data(ax_acc)
    if phase_handles:
        ax_loss.legend(handles=phase_handles, loc="lower left", fontsize=8, title="phase",
                       title_fontsize=8, ncol=len(phase_handles), framealpha=0.9)
    ax_acc.set_ylim(-0.02, 1.02)
    ax_acc.set_ylabel("accuracy")
    ax_acc.set_title(_curves_title(title, analysis))
    ax_loss.set_ylabel("loss")
    ax_loss.set_xlabel("step")
    for ax in axes:
        ax.grid(True, which="major", alpha=0.3)
    fig.tight_layout()
    return _save(fig, plt, path)


def save_norms(records: list[dict], path: str | Path, *, analysis: dict | None = None) -> Path:
    """Total weight norm (top) and learning rate (bottom) against step on a log x axis.

    With `analysis`, its phases are shaded in the background as in `save_curves`.
    """
    plt = _pyplot()
    fig, (ax_norm, ax_lr) = plt.subplots(2, 1, figsize=(8, 5), sharex=True,
                                         gridspec_kw={"height_ratios": [3, 2]})
    if analysis and records:
        handles = _shade_phases((ax_norm, ax_lr), analysis.get("phases") or [])
        if handles:
            ax_norm.legend(handles=handles, loc="best", fontsize=8, title="phase", title_fontsize=8)
    ax_norm.plot(*_series(records, "weight_norm"), color="tab:green", lw=1.6, zorder=3)
    ax_lr.plot(*_series(records, "lr"), color="tab:purple", lw=1.6, zorder=3)
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
    return _save(fig, plt, path)


def _pair(metric: str) -> tuple[str | None, str]:
    """(dashed train metric or None, solid metric) drawn for `metric`."""
    split, _, kind = metric.partition("_")
    if split in ("train", "test") and kind in _PAIRED:
        return f"train_{kind}", f"test_{kind}"
    return None, metric


def compare(runs: list[tuple[str, list[dict]]], path: str | Path, *, metric: str = "test_acc") -> Path:
    """Overlay several runs in one figure against step (log x), one colour per run.

    For accuracy and loss metrics both splits are drawn: train dashed, test solid. Other metrics
    (weight_norm, lr, ...) are drawn solid. Loss uses a log y axis. Raises ValueError when there
    are no runs or no run has the metric.
    """
    if not runs:
        raise ValueError("compare: no runs given")
    dashed, solid = _pair(metric)
    if not any(_has(records, solid) for _, records in runs):
        raise ValueError(f"compare: no run has metric {metric!r}")
    plt = _pyplot()
    positive = solid.endswith("loss")
    fig, ax = plt.subplots(figsize=(8, 5))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (label, records) in enumerate(runs):
        color = colors[i % len(colors)]
        ax.plot(*_series(records, solid, positive=positive), color=color, lw=1.6, label=label)
        if dashed is not None:
            ax.plot(*_series(records, dashed, positive=positive), color=color, lw=1.2, ls="--",
                    alpha=0.8)
    ax.set_xscale("log")
    if positive:
        ax.set_yscale("log")
    elif solid.endswith("acc"):
        ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("step")
    ax.set_ylabel({"acc": "accuracy", "loss": "loss"}[solid[5:]] if dashed else metric)
    what = f"{solid} (solid) / {dashed} (dashed)" if dashed else metric
    ax.set_title(f"{what} — {len(runs)} run{'s' if len(runs) != 1 else ''}")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=9, loc="best")
    fig.tight_layout()
    return _save(fig, plt, path)
