"""Statistics of a sweep's cells: a *cell* is one combination of axis values; its runs are the seeds.

Per cell: the outcome class most seeds share (comprehension / grokking / memorization / confusion,
from `grokscope.detect`) and the agreement, the fraction of seeds in that class; the steps to
generalize (test accuracy >= 0.99): median and interquartile range over seeds, where a seed that
never generalized counts as infinitely slow ('never'); the fraction of seeds whose outcome is
grokking, and the fraction that generalized at all. The phase diagrams (`phases`) and the critical
data size (`critical`) read them.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

from grokscope.detect import OUTCOMES
from grokscope.sweep.spec import value_text

__all__ = ["Cell", "axis_values", "cell_stats", "cell_text", "fmt_step", "group", "quantile"]


@dataclass
class Cell:
    """Statistics of the runs (seeds) of one cell."""

    n: int
    """Finished runs."""
    n_total: int
    """Runs in the cell (finished or not)."""
    outcome: str | None
    """Majority outcome class (ties go to the earlier class in detect.OUTCOMES)."""
    agreement: float | None
    """Fraction of finished runs in the majority class."""
    outcomes: dict[str, int]
    median: float | None
    """Median generalized step (math.inf: most seeds never generalized); None without runs."""
    q25: float | None
    q75: float | None
    grokked: float | None
    """Fraction of finished runs whose outcome class is grokking."""
    generalized: float | None
    """Fraction of finished runs that reached test accuracy 0.99."""


def quantile(values: list[float], q: float) -> float:
    """Linear-interpolation quantile of sorted `values` (may hold math.inf; inf wins a blend)."""
    pos = q * (len(values) - 1)
    lo, hi = math.floor(pos), math.ceil(pos)
    w = pos - lo
    if w == 0 or values[lo] == values[hi]:
        return values[lo]
    if math.isinf(values[hi]):
        return math.inf
    return values[lo] * (1 - w) + values[hi] * w


def cell_stats(rows: list[dict]) -> Cell:
    """Statistics of one cell's rows (rows of `runner.collect`)."""
    done = [r for r in rows if r.get("outcome") is not None]
    if not done:
        return Cell(0, len(rows), None, None, {}, None, None, None, None, None)
    counts = Counter(r["outcome"] for r in done)
    best = max(counts.values())
    outcome = next(o for o in (*OUTCOMES, *sorted(counts)) if counts.get(o) == best)
    steps = sorted(math.inf if r.get("generalized_step") is None else float(r["generalized_step"])
                   for r in done)
    n = len(done)
    return Cell(n, len(rows), outcome, best / n, dict(counts), quantile(steps, 0.5), quantile(steps, 0.25),
                quantile(steps, 0.75), counts.get("grokking", 0) / n,
                sum(1 for s in steps if math.isfinite(s)) / n)


def cell_text(v) -> str:
    """One text per axis value, whichever way it was written: a task option's axis is stored as
    typed text ('9.0') while its runs hold the typed value (9.0, written '9'); numbers are compared
    by value."""
    text = value_text(v)
    if isinstance(v, str):
        try:
            number = float(v)
        except ValueError:
            return text
        if math.isfinite(number):
            return value_text(number)
    return value_text(float(v)) if isinstance(v, int) and not isinstance(v, bool) else text


def group(rows: list[dict], fields: list[str]) -> dict[tuple[str, ...], list[dict]]:
    """Rows by the text of their values of `fields` (all seeds and other axes pooled)."""
    out: dict[tuple[str, ...], list[dict]] = {}
    for r in rows:
        out.setdefault(tuple(cell_text(r.get(f)) for f in fields), []).append(r)
    return out


def axis_values(meta: dict, field: str) -> list[str]:
    return [cell_text(v) for v in meta["axes"][field]]


def fmt_step(v: float | None) -> str:
    if v is None:
        return "-"
    return "never" if math.isinf(v) else f"{v:,.0f}"
