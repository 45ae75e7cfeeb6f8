"""results.csv, per-cell statistics, phase diagrams and the sweep report, on a hand-made sweep
directory (summary.json files written by the test, no training)."""

from __future__ import annotations

import json
import math
import re

import pytest

from grokscope.config import to_dict
from grokscope.errors import ConfigError
from grokscope.sweep import phases
from grokscope.sweep.runner import RESULT_COLUMNS, collect, read_results, sweep_json, write_results
from grokscope.sweep.spec import SweepSpec, parse_axis

# (weight_decay, train_fraction, seed) -> (outcome, memorized_step, generalized_step); absent = pending
OUTCOMES = {
    (0.0, 0.3, 0): ("memorization", 50, None), (0.0, 0.3, 1): ("memorization", 60, None),
    (0.0, 0.5, 0): ("memorization", 40, None), (0.0, 0.5, 1): ("grokking", 40, 900),
    (0.0, 0.7, 0): ("grokking", 30, 700),
    (1.0, 0.3, 0): ("grokking", 50, 1500), (1.0, 0.3, 1): ("grokking", 50, 2500),
    (1.0, 0.5, 0): ("comprehension", 40, 200), (1.0, 0.5, 1): ("comprehension", 40, 400),
    (1.0, 0.7, 0): ("confusion", None, None), (1.0, 0.7, 1): ("comprehension", 30, 100),
}


def _make_sweep(root, axes=("optim.weight_decay=0,1", "task.train_fraction=0.3:0.7:3"), outcomes=OUTCOMES):
    spec = SweepSpec(axes=tuple(parse_axis(*a.split("=")) for a in axes), seeds=(0, 1),
                     overrides=(("train.steps", "3000"),))
    runs = spec.expand()
    (root / "runs").mkdir(parents=True)
    (root / "sweep.json").write_text(json.dumps(sweep_json(spec, runs)))
    for r in runs:
        key = (*r.values.values(), r.seed)
        if key not in outcomes:
            continue
        outcome, mem, gen = outcomes[key]
        d = root / "runs" / r.name
        d.mkdir()
        (d / "config.json").write_text(json.dumps(to_dict(r.config)))
        final = {"train_acc": 1.0 if mem else 0.5, "test_acc": 1.0 if gen else 0.1, "train_loss": 0.01,
                 "test_loss": 3.0}
        (d / "summary.json").write_text(json.dumps({
            "status": "completed", "phase": outcome, "steps_done": 3000, "wall_seconds": 12.5,
            "events": {"memorized_step": mem, "generalized_step": gen,
                       "delay_ratio": gen / mem if gen and mem else None},
            "final": final}))
    return root


def test_quantile_with_never():
    assert phases.quantile([1, 2, 3, 4], 0.5) == 2.5
    assert phases.quantile([1, math.inf], 0.0) == 1 and phases.quantile([1, math.inf], 0.5) == math.inf
    assert phases.quantile([1, 2, math.inf], 0.25) == 1.5
    assert phases.quantile([1, 2, math.inf], 0.75) == math.inf
    assert phases.quantile([7], 0.75) == 7


def test_cell_stats():
    rows = [{"outcome": "grokking", "generalized_step": 1500},
            {"outcome": "grokking", "generalized_step": 2500},
            {"outcome": "memorization", "generalized_step": None}, {"outcome": None}]
    c = phases.cell_stats(rows)
    assert (c.n, c.n_total, c.outcome, c.agreement) == (3, 4, "grokking", pytest.approx(2 / 3))
    assert (c.median, c.q25, c.q75) == (2500, 2000, math.inf)
    assert c.grokked == pytest.approx(2 / 3) and c.generalized == pytest.approx(2 / 3)
    tie = phases.cell_stats([{"outcome": "memorization"}, {"outcome": "grokking", "generalized_step": 9}])
    assert tie.outcome == "grokking" and tie.agreement == 0.5  # ties: the earlier class of detect.OUTCOMES
    empty = phases.cell_stats([{"outcome": None}])
    assert (empty.n, empty.outcome, empty.median) == (0, None, None)


def test_cells_match_numbers_by_value():
    # a task option's axis is stored as text ('9.0') while its runs hold the typed value (9.0)
    meta = {"axes": {"task.options.phi": ["5.4", "9.0"]}}
    rows = [{"task.options.phi": 5.4, "outcome": "memorization"},
            {"task.options.phi": 9.0, "outcome": "grokking", "generalized_step": 100}]
    by = phases.group(rows, ["task.options.phi"])
    cells = {v: phases.cell_stats(by.get((v,), [])) for v in phases.axis_values(meta, "task.options.phi")}
    assert [c.outcome for c in cells.values()] == ["memorization", "grokking"]
    assert phases.cell_text("x+y") == "x+y" and phases.cell_text(3) == phases.cell_text("3.0") == "3"


def test_results_csv(tmp_path):
    root = _make_sweep(tmp_path / "sw")
    out = write_results(root)
    rows = read_results(root)
    assert out == root / "results.csv"
    assert list(rows[0]) == ["run", "optim.weight_decay", "task.train_fraction", *RESULT_COLUMNS]
    assert len(rows) == 12
    first = rows[0]
    assert first["run"] == "weight_decay-0_train_fraction-0.3_seed-0"
    assert (first["optim.weight_decay"], first["task.train_fraction"], first["seed"]) == ("0", "0.3", "0")
    assert (first["status"], first["outcome"], first["memorized_step"], first["generalized_step"]) == (
        "completed", "memorization", "50", "")
    assert first["run_dir"] == "runs/weight_decay-0_train_fraction-0.3_seed-0"
    grok = next(r for r in rows if r["run"] == "weight_decay-1_train_fraction-0.3_seed-1")
    assert (grok["outcome"], grok["generalized_step"], grok["delay_ratio"]) == ("grokking", "2500", "50.0")
    assert grok["final_test_acc"] == "1.0" and grok["steps_done"] == "3000" and grok["wall_seconds"] == "12.5"
    pending = next(r for r in rows if r["run"] == "weight_decay-0_train_fraction-0.7_seed-1")
    assert pending["status"] == "pending" and pending["outcome"] == "" and pending["seed"] == "1"
    meta, typed = collect(root)
    assert typed[0]["optim.weight_decay"] == 0.0 and typed[0]["memorized_step"] == 50


def test_text_table(tmp_path):
    meta, rows = collect(_make_sweep(tmp_path / "sw"))
    lines = phases.text_table(meta, rows).splitlines()
    assert lines[0].split() == ["weight_decay", "train_fraction", "runs", "outcome", "agree", "gen.",
                                "median", "gen.", "IQR", "grokked", "generalized"]
    cells = {tuple(line.split()[:2]): line.split()[2:] for line in lines[1:]}
    assert cells[("0", "0.3")] == ["2/2", "memorization", "1.00", "never", "never–never", "0.00", "0.00"]
    assert cells[("1", "0.3")] == ["2/2", "grokking", "1.00", "2,000", "1,750–2,250", "1.00", "1.00"]
    assert cells[("0", "0.7")] == ["1/2", "grokking", "1.00", "700", "700–700", "1.00", "1.00"]
    assert cells[("1", "0.7")] == ["2/2", "comprehension", "0.50", "never", "never–never", "0.00", "0.50"]
    assert phases.summary_line(rows) == ("12 runs: 11 completed, 1 pending; outcomes: comprehension 3, "
                                         "grokking 4, memorization 3, confusion 1")


def _is_png(path) -> bool:
    return path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5000


def test_diagrams_one_two_and_three_axes(tmp_path):
    meta, rows = collect(_make_sweep(tmp_path / "two"))
    assert _is_png(phases.save_outcome_diagram(meta, rows, tmp_path / "o.png"))
    assert _is_png(phases.save_steps_diagram(meta, rows, tmp_path / "s.png", x="task.train_fraction",
                                             y="optim.weight_decay"))
    one = {(wd, s): v for (wd, _, s), v in OUTCOMES.items() if _ == 0.3}
    meta, rows = collect(_make_sweep(tmp_path / "one", axes=("optim.weight_decay=0,1",), outcomes=one))
    assert _is_png(phases.save_steps_diagram(meta, rows, tmp_path / "s1.png"))
    three = {(wd, fr, lr, s): v for (wd, fr, s), v in OUTCOMES.items() for lr in (0.001, 0.01)}
    meta, rows = collect(_make_sweep(tmp_path / "three", outcomes=three,
                                     axes=("optim.weight_decay=0,1", "task.train_fraction=0.3:0.7:3",
                                           "optim.lr=1e-3,1e-2")))
    assert _is_png(phases.save_outcome_diagram(meta, rows, tmp_path / "o3.png"))  # one panel per lr
    with pytest.raises(ConfigError, match=r"^x: 'optim.wd' is not an axis of this sweep; axes: optim.weight"):
        phases.save_outcome_diagram(meta, rows, tmp_path / "bad.png", x="optim.wd")
    with pytest.raises(ConfigError, match="^y: must differ from x"):
        phases.pick_axes(meta, "optim.lr", "optim.lr")


def test_sweep_report_is_self_contained(tmp_path):
    root = _make_sweep(tmp_path / "sw")
    path = phases.write_sweep_report(root)
    html = path.read_text()
    assert path == root / "report.html" and (root / "results.csv").is_file()
    assert _is_png(root / "figures" / "phase_outcome.png") and _is_png(root / "figures" / "phase_steps.png")
    assert len(re.findall(r'<img alt="[^"]*" src="data:image/png;base64,', html)) == 2
    assert not re.search(r'(src|href)="(https?:)?//', html)
    assert 'id="cells"' in html and 'id="runs"' in html and "x+y mod 31" in html
    assert "12 runs: 11 completed, 1 pending" in html and "weight_decay-1_train_fraction-0.5_seed-1" in html
    # rendered from report/templates/sweep.html.j2: the CSP frame, escaped text, no script
    assert """<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src data:""" in html
    assert "<script" not in html and '<pre id="spec">{\n  &#34;preset&#34;' in html
