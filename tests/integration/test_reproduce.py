"""`grokscope reproduce`: presets trained over seeds, checked against their expectations, PASS/FAIL
with the exit code; resumable; bad input is one line with exit code 2 and nothing written."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from grokscope.cli import main
from grokscope.presets.registry import EXPECTATIONS, PRESETS
from grokscope.reproduce import QUICK_SECONDS, select


def test_a_wrong_expectation_fails_then_the_right_one_passes_without_training(tmp_path, monkeypatch, capsys):
    out = tmp_path / "repro"
    right = EXPECTATIONS["speedrun"]
    # deliberately wrong: speedrun generalizes at ~430, not before step 100
    monkeypatch.setitem(EXPECTATIONS, "speedrun", replace(right, generalized=(1, 100)))
    assert main(["reproduce", "speedrun", "--seeds", "1", "--out", str(out), "--quiet"]) == 1
    text = capsys.readouterr().out
    assert "speedrun  seed 0  FAIL" in text and "test 0.99 step" in text and "[1-100] ✗" in text
    data = json.loads((out / "reproduce.json").read_text())
    (row,) = data["runs"]
    bad = [c for c in row["checks"] if not c["ok"]]
    assert not row["ok"] and [c["check"] for c in bad] == ["test 0.99 step"]
    assert 300 <= bad[0]["measured"] <= 700
    assert "**FAIL**" in (out / "reproduce.md").read_text()
    html = (out / "reproduce.html").read_text()
    assert "0 of 1 runs pass" in html and 'id="fig-speedrun"' in html
    trained = (out / "speedrun" / "runs" / "seed-0" / "summary.json").stat().st_mtime

    monkeypatch.setitem(EXPECTATIONS, "speedrun", right)  # the same command: checked again, not retrained
    assert main(["reproduce", "speedrun", "--seeds", "1", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "0 to train" in text and "speedrun  seed 0  PASS" in text and "1 of 1 runs pass" in text
    assert (out / "speedrun" / "runs" / "seed-0" / "summary.json").stat().st_mtime == trained
    assert json.loads((out / "reproduce.json").read_text())["runs"][0]["ok"]


def test_an_interrupted_reproduce_counts_finished_runs_and_names_the_others(tmp_path, monkeypatch, capsys):
    import grokscope.sweep.runner as runner

    def cut_off(spec, path, executor, *, runs, log):  # as if Ctrl-C reached the only run at once
        return runner.SweepResult(path, len(runs), 0, interrupted=True)

    monkeypatch.setattr(runner, "run_sweep", cut_off)
    assert main(["reproduce", "speedrun", "--seeds", "1", "--out", str(tmp_path / "r")]) == 130
    text = capsys.readouterr().out
    assert "0 of 0 finished runs pass" in text
    assert "1 runs not finished yet: speedrun/seed-0" in text and "FAIL" not in text
    assert "run the same command again to resume" in text


def test_reproduce_trains_with_the_overrides_and_checks_facts_of_an_analysis_it_runs(tmp_path, monkeypatch):
    e = replace(EXPECTATIONS["speedrun"], overrides={"train.stop_after": 25},
                card=(("key_frequencies", 0, 48),))
    monkeypatch.setitem(EXPECTATIONS, "speedrun", e)
    assert main(["reproduce", "speedrun", "--seeds", "1", "--out", str(tmp_path / "r"), "--quiet"]) == 0
    run = tmp_path / "r" / "speedrun" / "runs" / "seed-0"
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["train"]["stop_after"] == 25 and cfg["seed"] == 0
    keys = json.loads((run / "analysis.json").read_text())["key_freqs"]
    (row,) = json.loads((tmp_path / "r" / "reproduce.json").read_text())["runs"]
    fact = next(c for c in row["checks"] if c["check"] == "analysis key frequencies")
    assert fact["ok"] and fact["measured"] == len(keys)


@pytest.mark.parametrize("argv,needle", [
    (["reproduce", "nosuch"], "preset: unknown preset 'nosuch'"),
    (["reproduce", "no_expectation"], "preset: no_expectation states no expectations"),
    (["reproduce"], "name presets, or give --all or --quick"),
    (["reproduce", "demo", "--all"], "one of the three"),
    (["reproduce", "demo", "--seeds", "0"], "seeds: must be an integer >= 1"),
    (["reproduce", "demo", "--workers", "x"], "workers: must be an integer"),
])
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, monkeypatch, capsys, argv, needle):
    monkeypatch.setitem(PRESETS, "no_expectation", PRESETS["demo"])
    out = tmp_path / "r"
    assert main([*argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) == 1
    assert not out.exists()


def test_a_directory_holding_other_runs_of_a_preset_is_refused(tmp_path, monkeypatch, capsys):
    out = tmp_path / "r"
    assert main(["reproduce", "speedrun", "--seeds", "1", "--out", str(out), "--quiet"]) == 0
    e = replace(EXPECTATIONS["speedrun"], overrides={"train.stop_after": 25})
    monkeypatch.setitem(EXPECTATIONS, "speedrun", e)
    before = (out / "reproduce.json").read_text()
    assert main(["reproduce", "speedrun", "--seeds", "1", "--out", str(out)]) == 2
    assert "train.stop_after" in capsys.readouterr().err
    assert (out / "reproduce.json").read_text() == before


def test_quick_selects_the_presets_that_train_in_seconds():
    quick = select(quick=True)
    assert "demo" in quick and "speedrun" in quick and "nanda2023" not in quick
    assert all(EXPECTATIONS[n].seconds <= QUICK_SECONDS for n in quick)
    assert set(select(all_=True)) == set(EXPECTATIONS) and len(EXPECTATIONS) == len(PRESETS)

