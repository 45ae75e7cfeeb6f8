"""Phase diagrams of a sweep: the outcome class and the steps to generalize over two axes.

A *cell* is one combination of axis values; its runs are the seeds. Per cell (sweep/cells.py):
- outcome: the class most seeds share (comprehension / grokking / memorization / confusion, from
  `grokscope.detect`) and the agreement, the fraction of seeds in that class;
- steps to generalize (test accuracy >= 0.99): median and interquartile range over seeds, where a
  seed that never generalized counts as infinitely slow ('never'), so the median is 'never' when
  most seeds never generalized;
- the fraction of seeds whose outcome is grokking, and the fraction that generalized at all.

With more than two axes, the figure draws one panel per value combination of the other axes.
"""

from __future__ import annotations

import itertools
import math
import os
from collections import Counter
from pathlib import Path

from grokscope.detect import OUTCOMES
from grokscope.errors import ConfigError
from grokscope.sweep.cells import (  # noqa: F401  (re-exported: the cell statistics)
    Cell,
    axis_values,
    cell_stats,
    cell_text,
    fmt_step,
    group,
    quantile,
)

OUTCOME_COLORS = {"comprehension": "#4daf4a", "grokking": "#377eb8", "memorization": "#f2b134",
                  "confusion": "#d94841"}
MISSING_COLOR = "#e4e6e9"
_MAX_PANELS = 12


def pick_axes(meta: dict, x: str | None = None, y: str | None = None) -> tuple[str | None, str | None]:
    """The two axes of the diagram: given ones (checked) or the sweep's first two."""
    axes = list(meta["axes"])
    for name, f in (("x", x), ("y", y)):
        if f is not None and f not in axes:
            raise ConfigError(f"{name}: {f!r} is not an axis of this sweep; axes: "
                              f"{', '.join(axes) or 'none'}")
    if x is not None and x == y:
        raise ConfigError(f"y: must differ from x ({x!r})")
    rest = [a for a in axes if a not in (x, y)]
    x = x or (rest.pop(0) if rest else None)
    y = y or (rest.pop(0) if rest else None)
    return x, y


# ------------------------------------------------------------------------------------ figures


def _panels(meta: dict, rows: list[dict], x: str | None, y: str | None):
    """[(title, {(xtext, ytext): Cell})] one panel per value combination of the other axes."""
    others = [a for a in meta["axes"] if a not in (x, y)]
    combos = list(itertools.product(*(axis_values(meta, a) for a in others)))
    if len(combos) > _MAX_PANELS:
        raise ConfigError(f"x: {len(combos)} panels for the other axes ({', '.join(others)}); pick x and y "
                          f"among the axes with the most values, or sweep fewer values")
    by = group(rows, [*others, *(f for f in (x, y) if f)])
    panels = []
    xs = axis_values(meta, x) if x else [""]
    ys = axis_values(meta, y) if y else [""]
    for combo in combos:
        cells = {}
        for xv, yv in itertools.product(xs, ys):
            key = (*combo, *((xv,) if x else ()), *((yv,) if y else ()))
            cells[(xv, yv)] = cell_stats(by.get(key, []))
        title = ", ".join(f"{_short(a)}={v}" for a, v in zip(others, combo))
        panels.append((title, cells))
    return panels, xs, ys


def _short(field: str) -> str:
    return field.rsplit(".", 1)[-1]


def _grid(plt, n: int):
    cols = min(n, 3)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(1.3 + 5.2 * cols, 0.9 + 4.3 * rows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, list(axes.flat[:n])


def _frame(ax, xs: list[str], ys: list[str], x: str | None, y: str | None, title: str) -> None:
    ax.set_xticks(range(len(xs)), xs)
    ax.set_yticks(range(len(ys)), ys)
    ax.set_xlim(-0.5, len(xs) - 0.5)
    ax.set_ylim(-0.5, len(ys) - 0.5)
    ax.set_xlabel(x or "")
    ax.set_ylabel(y or "")
    if title:
        ax.set_title(title, fontsize=10)


def save_outcome_diagram(meta: dict, rows: list[dict], path: str | os.PathLike, *, x: str | None = None,
                         y: str | None = None) -> Path:
    """Heatmap of each cell's majority outcome class, annotated with the seeds agreeing (k/n)."""
    from matplotlib.patches import Patch, Rectangle

    from grokscope.report.plots import pyplot, save_png

    x, y = pick_axes(meta, x, y)
    panels, xs, ys = _panels(meta, rows, x, y)
    plt = pyplot()
    fig, axes = _grid(plt, len(panels))
    for ax, (title, cells) in zip(axes, panels):
        for i, j in itertools.product(range(len(xs)), range(len(ys))):
            c = cells[(xs[i], ys[j])]
            color = OUTCOME_COLORS.get(c.outcome, MISSING_COLOR)
            ax.add_patch(Rectangle((i - 0.5, j - 0.5), 1, 1, facecolor=color, edgecolor="white", lw=1.5,
                                   alpha=1.0 if c.agreement in (None, 1.0) else 0.55 + 0.45 * c.agreement))
            label = "pending" if c.outcome is None else f"{c.outcome}\n{round(c.agreement * c.n)}/{c.n}"
            ax.text(i, j, label, ha="center", va="center", fontsize=_fontsize(xs, ys), color="#1d232b")
        _frame(ax, xs, ys, x, y, title)
    handles = [Patch(facecolor=OUTCOME_COLORS[o], label=o) for o in OUTCOMES]
    fig.suptitle("outcome class: majority over seeds (k/n seeds agree)", fontsize=11)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    fig.legend(handles=handles, loc="lower center", ncol=4, fontsize=9, frameon=False)
    return save_png(fig, plt, path)


def _fontsize(xs: list, ys: list) -> float:
    """Cell annotation size: larger for small grids."""
    n = max(len(xs), len(ys))
    return 10 if n <= 4 else 8 if n <= 7 else 6.5


def save_steps_diagram(meta: dict, rows: list[dict], path: str | os.PathLike, *, x: str | None = None,
                       y: str | None = None) -> Path:
    """Heatmap of the median generalized step over seeds, annotated with the median and IQR."""
    import numpy as np

    from grokscope.report.plots import pyplot, save_png

    x, y = pick_axes(meta, x, y)
    panels, xs, ys = _panels(meta, rows, x, y)
    plt = pyplot()
    finite = [c.median for _, cells in panels for c in cells.values()
              if c.median is not None and math.isfinite(c.median)]
    lo, hi = (min(finite), max(finite)) if finite else (0.0, 1.0)
    if hi <= lo:  # one value: a range around it (lo + 1 would make the colorbar print an offset)
        lo, hi = (0.5 * lo, 1.5 * lo) if lo > 0 else (0.0, 1.0)
    norm = plt.Normalize(vmin=lo, vmax=hi)
    cmap = plt.get_cmap("viridis_r").with_extremes(bad=MISSING_COLOR)
    fig, axes = _grid(plt, len(panels))
    image = None
    for ax, (title, cells) in zip(axes, panels):
        grid = np.full((len(ys), len(xs)), np.nan)
        for i, j in itertools.product(range(len(xs)), range(len(ys))):
            c = cells[(xs[i], ys[j])]
            if c.median is not None and math.isfinite(c.median):
                grid[j, i] = c.median
            if c.median is None:
                label = "pending"
            elif math.isinf(c.median):
                label = "never" + (f"\n{c.generalized * c.n:.0f}/{c.n} gen." if c.generalized else "")
            else:
                label = f"{fmt_step(c.median)}\n[{fmt_step(c.q25)}–{fmt_step(c.q75)}]"
            dark = not np.isnan(grid[j, i]) and _luminance(cmap(norm(grid[j, i]))) < 0.45
            ax.text(i, j, label, ha="center", va="center", fontsize=_fontsize(xs, ys),
                    color="white" if dark else "#1d232b")
        image = ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, norm=norm, origin="lower", aspect="auto")
        _frame(ax, xs, ys, x, y, title)
    bar = fig.colorbar(image, ax=axes, shrink=0.9)
    bar.set_label("median step to test accuracy 0.99 (grey: never / pending)")
    fig.suptitle("steps to generalize: median [IQR] over seeds", fontsize=11)
    return save_png(fig, plt, path)


def _luminance(rgba) -> float:
    r, g, b = rgba[:3]
    return 0.299 * r + 0.587 * g + 0.114 * b


# ---------------------------------------------------------------------------------- the table


def cell_rows(meta: dict, rows: list[dict]) -> tuple[list[str], list[list[str]]]:
    """(header, rows) of the per-cell table over all axes, in the sweep's axis order."""
    axes = list(meta["axes"])
    by = group(rows, axes)
    head = [*(_short(a) for a in axes), "runs", "outcome", "agree", "gen. median", "gen. IQR",
            "grokked", "generalized"]
    out = []
    for combo in itertools.product(*(axis_values(meta, a) for a in axes)):
        c = cell_stats(by.get(combo, []))
        out.append([*combo, f"{c.n}/{c.n_total}", c.outcome or "pending", _frac(c.agreement),
                    fmt_step(c.median), "-" if c.q25 is None else f"{fmt_step(c.q25)}–{fmt_step(c.q75)}",
                    _frac(c.grokked), _frac(c.generalized)])
    return head, out


def _frac(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}"


def text_table(meta: dict, rows: list[dict]) -> str:
    """The per-cell table as aligned text (for `grokscope show SWEEP`)."""
    head, body = cell_rows(meta, rows)
    widths = [max(len(str(r[i])) for r in [head, *body]) for i in range(len(head))]
    lines = ["  ".join(str(v).ljust(w) for v, w in zip(r, widths)).rstrip() for r in [head, *body]]
    return "\n".join(lines)


def summary_line(rows: list[dict]) -> str:
    """'50 runs: 48 completed, 2 pending; outcomes: grokking 30, memorization 18'."""
    status = Counter(r["status"] for r in rows)
    outcomes = Counter(r["outcome"] for r in rows if r.get("outcome"))
    text = f"{len(rows)} runs: " + ", ".join(f"{n} {s}" for s, n in status.most_common())
    if outcomes:
        text += "; outcomes: " + ", ".join(f"{o} {outcomes[o]}" for o in OUTCOMES if outcomes.get(o))
    return text


# --------------------------------------------------------------------------------- the report


def write_sweep_report(path: str | os.PathLike, *, x: str | None = None, y: str | None = None,
                       gap: int | None = None) -> Path:
    """Write SWEEP/report.html (self-contained) with the phase diagrams over axes x and y (default:
    the first two), the per-cell table and the table of runs; the figures are also saved under
    SWEEP/figures/. `gap` recomputes the outcome classes with that gap (see detect.analyze).
    Also rebuilds SWEEP/results.csv. Returns the report's path.

    The page is rendered from report/templates/sweep.html.j2 (see grokscope.report.htmlkit)."""
    import json

    from grokscope.report.htmlkit import config_tables, figure, fmt, write_page
    from grokscope.report.runinfo import task_description
    from grokscope.sweep.runner import collect, write_results

    path = Path(path)
    write_results(path)
    meta, rows = collect(path, gap=gap)
    x, y = pick_axes(meta, x, y)
    outcome_png = save_outcome_diagram(meta, rows, path / "figures" / "phase_outcome.png", x=x, y=y)
    steps_png = save_steps_diagram(meta, rows, path / "figures" / "phase_steps.png", x=x, y=y)
    base = meta.get("base_config") or {}
    task = task_description(base.get("task") or {})
    title = f"Sweep {path.resolve().name}" + (f" — {task}" if task else "")
    seeds = meta.get("seeds")
    head, cells = cell_rows(meta, rows)
    run_cols = ["run", *meta["axes"], "seed", "status", "outcome", "memorized_step", "generalized_step",
                "final_test_acc", "wall_seconds"]
    run_rows = [[f"{r[c]:.4f}" if c == "final_test_acc" and isinstance(r.get(c), float) else fmt(r.get(c))
                 for c in run_cols] for r in rows]
    spec = {k: meta.get(k) for k in ("preset", "config", "overrides", "axes", "seeds")}
    figures = [
        figure(outcome_png, "fig-outcome", f"Outcome class per cell over {x or '-'} × {y or '-'}: the "
               "class most seeds share, with the number of seeds that agree."),
        figure(steps_png, "fig-steps", "Steps to generalize (accuracy ≥ 0.99 on the generalization "
               "split): median over seeds with the interquartile range; a seed that never generalized "
               "counts as never."),
    ]
    from grokscope.sweep.critical import critical_sizes, describe

    critical = [describe(e) for e in critical_sizes(meta, rows)]
    return write_page(
        path / "report.html", "sweep.html.j2", critical=critical,
        title=title, location=str(path), summary=summary_line(rows),
        axes=" × ".join(f"{a} ({len(v)})" for a, v in meta["axes"].items()) or "no axes",
        n_seeds=len(seeds) if seeds else 1, figures=figures, cell_head=head, cells=cells,
        run_head=run_cols, runs=run_rows, spec=json.dumps(spec, indent=2), config=config_tables(base),
    )
