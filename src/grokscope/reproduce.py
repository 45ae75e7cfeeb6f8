"""Reproduce presets: train each for a few seeds, check what it claims, and say PASS or FAIL.

    OUT/PRESET/            a sweep directory per preset (sweep.json, runs/seed-N/, results.csv)
    OUT/reproduce.json     every run of every preset under OUT: its checks and verdict
    OUT/reproduce.md       the same as a Markdown table (one row per run)
    OUT/reproduce.html     the table and, per preset, its seeds' curves overlaid

Each preset is a sweep over seeds of its config with its expectation's `overrides`
(`presets.expect.Expect`), trained by the sweep machinery (`sweep.runner.run_sweep`): the same
command again trains only the missing runs, a killed run is trained again, a preset directory
being trained by another process is refused. The verdicts are recomputed from the runs and the
expectations in the code each time, so a changed expectation is re-checked without training.

    from grokscope.reproduce import reproduce
    result = reproduce(["demo", "speedrun"], "repro", seeds=3)
    result["ok"]          # every check of every selected run passed
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from grokscope.errors import ConfigError
from grokscope.presets.expect import row_text
from grokscope.tracking.rundir import RunDir, atomic_write_json, atomic_write_text, read_json

__all__ = ["QUICK_SECONDS", "collect", "default_seeds", "reproduce", "select", "text_table"]

QUICK_SECONDS = 40.0
"""`--quick` runs the presets whose expectation says one run trains in at most this many seconds."""
LONG_SECONDS = 600.0
"""Presets longer than this get one seed by default, the others three."""
REPRODUCE_FORMAT = 1


def _expectations() -> dict:
    from grokscope.presets.registry import EXPECTATIONS

    return EXPECTATIONS


def select(names: list[str] = (), *, all_: bool = False, quick: bool = False) -> list[str]:
    """The presets to reproduce: `names` (each must state an expectation), every preset with one
    (`all_`), or those that train in seconds (`quick`); ConfigError in one line otherwise."""
    from grokscope.presets.registry import PRESETS

    expectations = _expectations()
    if sum((bool(names), all_, quick)) != 1:
        raise ConfigError("reproduce: name presets, or give --all or --quick (one of the three)")
    if all_:
        return [n for n in PRESETS if n in expectations]
    if quick:
        return [n for n in PRESETS if n in expectations and (expectations[n].seconds or 1e9) <= QUICK_SECONDS]
    out = []
    for n in names:
        if n not in PRESETS:
            raise ConfigError(f"preset: unknown preset {n!r}; choose one of {', '.join(PRESETS)}")
        if n not in expectations:
            raise ConfigError(f"preset: {n} states no expectations to check; "
                              f"these do: {', '.join(p for p in PRESETS if p in expectations)}")
        if n not in out:
            out.append(n)
    return out


def default_seeds(name: str, seeds: int | None = None, *, quick: bool = False) -> tuple[int, ...]:
    """Seeds 0..N-1: `seeds` when given, else 1 for --quick and for presets of more than
    LONG_SECONDS a run, 3 for the others."""
    if seeds is not None:
        if seeds < 1:
            raise ConfigError(f"seeds: must be >= 1, got {seeds}")
        return tuple(range(seeds))
    e = _expectations()[name]
    return (0,) if quick or (e.seconds or 0) > LONG_SECONDS else (0, 1, 2)


def spec_for(name: str, seeds: tuple[int, ...]):
    """The sweep spec reproducing preset `name`: its config with the expectation's overrides."""
    from grokscope.sweep.spec import SweepSpec

    overrides = tuple((k, str(v)) for k, v in _expectations()[name].overrides.items())
    return SweepSpec(preset=name, overrides=overrides, seeds=seeds)


def reproduce(names: list[str], out: str | os.PathLike, *, seeds: int | None = None, quick: bool = False,
              executor: str = "local", workers: int | None = None, address: str | None = None,
              slurm: dict | None = None, log: Callable[[str], None] = print) -> dict:
    """Train (or resume) every selected preset's seeds under `out`, then check them; writes
    OUT/reproduce.{json,md,html} and returns the reproduce.json content restricted to `names`
    (its "ok": every check of every selected run passed and none failed to finish)."""
    from grokscope.sweep.executors import make_executor
    from grokscope.sweep.runner import check_out, is_finished, run_sweep

    out = Path(out).resolve()
    if out.exists() and not out.is_dir():
        raise ConfigError(f"out: {str(out)!r} is a file; give a directory")
    plans = []
    for name in names:  # everything is checked before anything is trained
        spec = spec_for(name, default_seeds(name, seeds, quick=quick))
        runs = spec.expand()
        check_out(out / name, runs)
        plans.append((name, spec, runs))
    interrupted, summary = False, None
    for i, (name, spec, runs) in enumerate(plans, 1):
        path = out / name
        todo = sum(1 for r in runs if not is_finished(path / "runs" / r.name))
        e = _expectations()[name]
        log(f"[{i}/{len(plans)}] {name}: {len(runs)} seed{'s' * (len(runs) != 1)}, {todo} to train"
            + (f" (~{e.seconds:g} s each)" if e.seconds and todo else ""))
        if todo:
            ex = make_executor(executor, workers=workers, jobs=todo, address=address, folder=path / "slurm",
                               slurm=slurm)
            with ex:
                result = run_sweep(spec, path, ex, runs=runs, log=lambda m: log("    " + m))
            interrupted |= result.interrupted
        if e.card and not interrupted:
            _analyze_missing(path, runs, log)
        summary = write(out)
        if interrupted:
            break
    wanted = {str(out / name / "runs" / r.name) for name, _, runs in plans for r in runs}
    rows = [r for r in summary["runs"] if r["run_dir"] in wanted]  # this command's runs only
    return {**summary, "runs": rows, "selected": list(names), "interrupted": interrupted,
            "missing": sorted(wanted - {r["run_dir"] for r in rows}),
            "ok": not interrupted and len(rows) == len(wanted) and all(r["ok"] for r in rows)}


def _analyze_missing(path: Path, runs: list, log: Callable[[str], None]) -> None:
    """Run `grokscope analyze` (5 checkpoints) on the finished runs that have no analysis yet: the
    expectation states facts of it."""
    from grokscope.analysis.run import analyze
    from grokscope.sweep.runner import is_finished

    for r in runs:
        d = path / "runs" / r.name
        if is_finished(d) and not RunDir(d).analysis.is_file():
            log(f"    analyzing {r.name} ...")
            try:
                analyze(d, max_checkpoints=5)
            except ConfigError as e:  # the facts then fail as missing, with the reason logged
                log(f"    {r.name}: not analysed: {e}")


# ------------------------------------------------------------------------------ checking runs


def collect(out: str | os.PathLike) -> list[dict]:
    """One row per run directory under OUT/PRESET/runs/ for every preset directory in OUT, checked
    against the preset's expectation as the code states it now."""
    from grokscope.presets.expect import check
    from grokscope.presets.registry import PRESETS
    from grokscope.sweep.runner import is_finished

    out, rows = Path(out), []
    for name in PRESETS:
        e = _expectations().get(name)
        runs_dir = out / name / "runs"
        if e is None or not runs_dir.is_dir():
            continue
        for d in sorted((p for p in runs_dir.iterdir() if p.is_dir() and not p.name.startswith(".")),
                        key=lambda p: (len(p.name), p.name)):
            if not is_finished(d):
                continue
            rd = RunDir(d)
            summary = rd.read_summary()
            records = rd.read_metrics()
            analysis = read_json(rd.analysis) if rd.analysis.is_file() else None
            checks = check(e, summary, records[-1] if records else None, analysis)
            if summary.get("status") != "completed":
                checks.insert(0, {"check": "status", "expected": "completed",
                                  "measured": summary.get("status"), "ok": False})
            rows.append({"preset": name, "seed": summary.get("seed", _seed(d.name)), "run_dir": str(d),
                         "status": summary.get("status"), "phase": summary.get("phase"),
                         "generalization_split": summary.get("generalization_split", "test"),
                         "wall_seconds": summary.get("wall_seconds"), "steps_done": summary.get("steps_done"),
                         "checks": checks, "ok": all(c["ok"] for c in checks)})
    return rows


def _seed(name: str):
    head, _, tail = name.rpartition("seed-")
    return int(tail) if tail.isdigit() else None


def write(out: str | os.PathLike) -> dict:
    """Rebuild OUT/reproduce.json, .md and .html from every preset directory in OUT; returns the JSON."""
    from grokscope.version import __version__

    out = Path(out)
    rows = collect(out)
    data = {"format_version": REPRODUCE_FORMAT, "grokscope_version": __version__, "runs": rows,
            "presets": _per_preset(rows)}
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "reproduce.json", data)
    atomic_write_text(out / "reproduce.md", markdown_table(rows))
    from grokscope.report.reproduce_page import write_reproduce_report

    write_reproduce_report(out, data)
    return data


def _per_preset(rows: list[dict]) -> dict:
    from grokscope.presets.expect import describe

    out: dict = {}
    for r in rows:
        p = out.setdefault(r["preset"], {"expects": describe(_expectations()[r["preset"]]), "seeds": [],
                                         "passed": 0, "failed": 0, "wall_seconds": 0.0})
        p["seeds"].append(r["seed"])
        p["passed" if r["ok"] else "failed"] += 1
        p["wall_seconds"] += r["wall_seconds"] or 0.0
    return out


# ----------------------------------------------------------------------------------- tables


def text_table(rows: list[dict]) -> str:
    """One line per run: preset, seed, PASS/FAIL, each check measured [expected], seconds."""
    if not rows:
        return "no finished runs"
    w = max(len(r["preset"]) for r in rows)
    lines = []
    for r in rows:
        checks = "; ".join(f"{c['check']} {row_text(c)}" for c in r["checks"])
        secs = f"{r['wall_seconds']:.0f} s" if r.get("wall_seconds") is not None else "-"
        verdict = "PASS" if r["ok"] else "FAIL"
        lines.append(f"{r['preset']:<{w}}  seed {r['seed']}  {verdict}  {checks}; {secs}")
    return "\n".join(lines)


def markdown_table(rows: list[dict]) -> str:
    """The docs' table: preset, seed, outcome, memorized, generalized, delay ratio, final accuracy,
    other checks, seconds, verdict; measured [expected]."""
    head = ["preset", "seed", "outcome", "memorized", "generalized", "delay ratio", "final acc", "other",
            "train s", "verdict"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        by = {c["check"]: c for c in r["checks"]}
        gen = next((c for k, c in by.items() if k.endswith(" step") and k != "memorized step"), None)
        final = next((c for k, c in by.items() if k.startswith("final ") and k.endswith(" accuracy")), None)
        known = {"outcome", "memorized step", "delay ratio", "status"}
        known |= {c["check"] for c in (gen, final) if c}
        other = "; ".join(f"{k} {row_text(c)}" for k, c in by.items() if k not in known)
        outcome = by.get("outcome")
        cells = [r["preset"], str(r["seed"]),
                 (f"{outcome['measured']} [{outcome['expected']}]" + ("" if outcome["ok"] else " ✗"))
                 if outcome else (r.get("phase") or "-"),
                 *(row_text(by[k]) if k in by else "-" for k in ("memorized step",)),
                 (f"{gen['check'].rsplit(' ', 2)[-2]}: " + row_text(gen)) if gen else "-",
                 row_text(by["delay ratio"]) if "delay ratio" in by else "-",
                 row_text(final) if final else "-", other or "-",
                 f"{r['wall_seconds']:.0f}" if r.get("wall_seconds") is not None else "-",
                 "PASS" if r["ok"] else "**FAIL**"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
