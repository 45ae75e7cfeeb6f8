"""OUT/reproduce.html of `grokscope reproduce`: the verdict table, then per preset its expectation
and its seeds' curves overlaid (the generalization split solid, train dashed)."""

from __future__ import annotations

import os
from pathlib import Path

from grokscope.presets.expect import row_text
from grokscope.report.htmlkit import figure, write_page
from grokscope.tracking.rundir import RunDir

__all__ = ["write_reproduce_report"]


def _curves(png: Path, rows: list[dict]) -> Path | None:
    """Draw (or keep, when newer than every run) the preset's overlaid curves."""
    from grokscope.report.plots import compare

    dirs = [Path(r["run_dir"]) for r in rows]
    newest = max((RunDir(d).summary.stat().st_mtime for d in dirs if RunDir(d).summary.exists()), default=0)
    if png.exists() and png.stat().st_mtime >= newest:
        return png
    runs = [(f"seed {r['seed']}", RunDir(r["run_dir"]).read_metrics()) for r in rows]
    try:
        return compare(runs, png, metric=f"{rows[0]['generalization_split']}_acc")
    except ValueError:  # no run has the metric
        return None


def write_reproduce_report(out: str | os.PathLike, data: dict) -> Path:
    """Write OUT/reproduce.html from reproduce.json's content `data`; returns its path."""
    out = Path(out)
    rows = data["runs"]
    passed = sum(r["ok"] for r in rows)
    table = [[r["preset"], r["seed"], "PASS" if r["ok"] else "FAIL",
              "; ".join(f"{c['check']} {row_text(c)}" for c in r["checks"]),
              f"{r['wall_seconds']:.0f}" if r.get("wall_seconds") is not None else "—"] for r in rows]
    sections = []
    for name, p in data["presets"].items():
        mine = [r for r in rows if r["preset"] == name]
        png = _curves(out / "figures" / f"{name}.png", mine)
        fig = figure(png, f"fig-{name}", f"{name}: accuracy of each seed (generalization split solid, "
                     "train dashed)") if png else None
        sections.append({"name": name, "expects": p["expects"], "passed": p["passed"], "failed": p["failed"],
                         "figure": fig})
    headline = (f"{passed} of {len(rows)} runs pass every check, over {len(data['presets'])} presets."
                if rows else "No finished runs yet.")
    return write_page(out / "reproduce.html", "reproduce.html.j2", title="Reproduce", location=str(out),
                      headline=headline, head=["preset", "seed", "verdict", "checks: measured [expected]",
                                               "train s"], rows=table, sections=sections)
