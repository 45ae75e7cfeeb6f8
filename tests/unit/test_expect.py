"""Preset expectations: validated, described, checked against a run's summary; shown by `presets`."""

from __future__ import annotations

import pytest

from grokscope.presets import get_preset
from grokscope.presets.expect import Expect, check, describe
from grokscope.presets.registry import EXPECTATIONS, get_expectation


def _summary(mem=100, t90=900, t99=2000, final=0.995, phase="grokking", split="test"):
    return {"phase": phase, "generalization_split": split, "final": {f"{split}_acc": final},
            "events": {"memorized_step": mem, "test_0.9": t90, "test_0.99": t99}}


def test_check_reads_events_at_the_stated_level():
    e = Expect(source="a test", outcome=("grokking",), memorized=(50, 150), generalized=(1500, 2500),
               delay_ratio=(10, 30), final_acc=(0.99, 1.0))
    rows = check(e, _summary())
    assert [r["check"] for r in rows] == ["outcome", "memorized step", "test 0.99 step", "delay ratio",
                                          "final test accuracy"]
    assert all(r["ok"] for r in rows) and rows[3]["measured"] == 20
    bad = {r["check"]: r["ok"] for r in check(e, _summary(mem=300, t99=None, phase="memorization"))}
    assert bad == {"outcome": False, "memorized step": False, "test 0.99 step": False, "delay ratio": False,
                   "final test accuracy": True}  # a step that never came fails its range
    at90 = check(Expect(source="s", generalized=(800, 1000), level=0.9), _summary(split="test_iid"))
    assert at90[0]["check"] == "test_iid 0.9 step" and at90[0]["ok"]


@pytest.mark.parametrize("kwargs,needle", [
    ({"source": ""}, "needs its source"),
    ({"source": "s", "outcome": ("grokked",)}, "unknown classes"),
    ({"source": "s", "level": 0.8}, "level"),
    ({"source": "s", "memorized": (200, 100)}, "memorized"),
    ({"source": "s", "metrics": (("test_ood_acc", 0.5),)}, "metrics"),
    ({"source": "s", "seconds": 0}, "seconds"),
    ({"source": "s", "card": (("neurons", 1, 2),)}, "card"),
])
def test_bad_expectations_are_refused(kwargs, needle):
    with pytest.raises(ValueError, match=needle):
        Expect(**kwargs)


def test_presets_carry_expectations_that_are_described_and_listed(capsys):
    assert {"demo", "speedrun", "rl_bandit_dqn", "wang2024_composition"} <= set(EXPECTATIONS)
    for name, e in EXPECTATIONS.items():
        get_preset(name)  # every expectation belongs to a preset
        assert e.source and describe(e).endswith(f"({e.source})")
    from grokscope.presets.registry import PRESETS

    assert set(EXPECTATIONS) == set(PRESETS)  # every preset states what it expects
    assert get_expectation("demo") is EXPECTATIONS["demo"]
    long = get_expectation("power2022")  # a 1e5-step budget is reproduced up to generalization
    assert long.overrides == {"train.stop_when": "after_generalization"}
    assert "reproduced with --train.stop_when after_generalization" in describe(long)
    from grokscope.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown preset"):
        get_expectation("nosuch")
    from grokscope.cli import main

    assert main(["presets"]) == 0
    out = capsys.readouterr().out
    assert "expects: outcome grokking or comprehension; memorized at 40-150" in out


def test_other_metrics_are_read_from_the_summary_or_the_last_record():
    e = Expect(source="s", metrics=(("test_ood_acc", 0.0, 0.05), ("test_pgd_acc", 0.3, 0.7)))
    summary = {**_summary(), "final": {"test_acc": 0.99, "test_ood_acc": 0.01}}
    rows = check(e, summary, {"step": 10, "test_pgd_acc": 0.9, "test_ood_acc": 0.5})
    assert [(r["check"], r["measured"], r["ok"]) for r in rows] == [
        ("final test_ood_acc", 0.01, True), ("final test_pgd_acc", 0.9, False)]
    unlogged = check(e, summary)[1]  # a metric the run never logged fails
    assert not unlogged["ok"] and unlogged["measured"] == "not logged"
    assert "final test_ood_acc 0-0.05" in describe(e)


def test_card_facts_are_read_from_the_analysis():
    e = Expect(source="s", card=(("key_frequencies", 3, 6),))
    (row,) = check(e, _summary(), None, {"key_freqs": [1, 15, 42, 49]})
    assert (row["check"], row["measured"], row["ok"]) == ("analysis key frequencies", 4, True)
    missing = check(e, _summary())[0]  # not analysed: the fact is missing
    assert not missing["ok"] and missing["measured"] == "not analysed"
    assert "analysis: key frequencies 3-6" in describe(e)
