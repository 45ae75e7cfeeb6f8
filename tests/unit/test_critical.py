"""Critical data size over a sweep's data-size axis (sweep/critical.py), on planted sweep rows."""

from __future__ import annotations

from grokscope.sweep.critical import critical_sizes, data_axis, describe


def _rows(table, wd=None):
    """table: {fraction: [generalized step or None per seed]}."""
    rows = []
    for frac, steps in table.items():
        for seed, step in enumerate(steps):
            outcome = "memorization" if step is None else "grokking"
            rows.append({"task.train_fraction": frac, "seed": seed, "outcome": outcome,
                         "generalized_step": step, **({"optim.weight_decay": wd} if wd is not None else {})})
    return rows


def test_the_critical_fraction_is_where_most_seeds_start_to_generalize_for_good():
    meta = {"axes": {"task.train_fraction": [0.2, 0.3, 0.4, 0.5]}}
    rows = _rows({0.2: [None, None, None], 0.3: [None, 3000, None], 0.4: [2500, None, 2000],
                  0.5: [1500, 1200, 1300]})
    (e,) = critical_sizes(meta, rows)
    assert data_axis(meta) == "task.train_fraction"
    assert (e["below"], e["critical"]) == ("0.3", "0.4")
    assert [v["generalized"] for v in e["values"]] == [0, 1 / 3, 2 / 3, 1]
    assert e["values"][3]["median_step"] == 1300
    assert e["transitions"] == [("0.3", "memorization", "0.4", "grokking")]
    text = describe(e)
    assert text.startswith("critical train_fraction: between 0.3 and 0.4") and "0.5: grokking (100%" in text


def test_a_dip_above_the_threshold_moves_the_critical_size_up_and_other_axes_are_separate():
    meta = {"axes": {"task.train_fraction": [0.3, 0.4, 0.5], "optim.weight_decay": [0, 1]}}
    rows = (_rows({0.3: [100, 100], 0.4: [None, None], 0.5: [200, 300]}, wd=1)
            + _rows({0.3: [None], 0.4: [None], 0.5: [None]}, wd=0))
    by = {e["others"]["optim.weight_decay"]: e for e in critical_sizes(meta, rows)}
    assert (by["1"]["below"], by["1"]["critical"]) == ("0.4", "0.5")
    assert by["0"]["critical"] is None and "not reached" in describe(by["0"])
    assert "(weight_decay=0)" in describe(by["0"])


def test_no_data_axis_no_entry():
    assert critical_sizes({"axes": {"optim.lr": [1e-3]}}, []) == []
