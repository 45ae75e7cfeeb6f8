"""Detection on synthetic curves: the four outcome classes, plateau, noise and a single spike."""

from __future__ import annotations

import math
import random

import pytest

from grokscope import detect

STEPS = list(range(0, 21)) + list(range(50, 8001, 50))


def sigmoid(s, center, width):
    return 1 / (1 + math.exp(-(s - center) / width))


def curve(train_center=None, test_center=None, test_floor=0.02, test_top=1.0, train_top=1.0,
          width=60, noise=0.0, seed=0):
    rng = random.Random(seed)
    out = []
    for s in STEPS:
        tr = 0.02 + (train_top - 0.02) * sigmoid(s, train_center, 15) if train_center else 0.05
        te = test_floor
        if test_center:
            te += (test_top - test_floor) * sigmoid(s, test_center, width)
        if noise:
            tr = min(1.0, max(0.0, tr + rng.gauss(0, noise)))
            te = min(1.0, max(0.0, te + rng.gauss(0, noise)))
        out.append({"step": s, "train_acc": tr, "test_acc": te})
    return out


def test_grokking():
    a = detect.analyze(curve(train_center=100, test_center=4000))
    ev = a["events"]
    assert a["phase"] == "grokking" and not a["still_on_plateau"]
    assert 100 <= ev["memorized_step"] <= 200
    assert 4200 <= ev["generalized_step"] <= 4400
    assert ev["train_0.5"] <= ev["train_0.9"] <= ev["train_0.95"] <= ev["memorized_step"]
    assert ev["test_0.5"] == pytest.approx(4000, abs=50)
    assert ev["delay"] == ev["generalized_step"] - ev["memorized_step"]
    assert ev["delay_ratio"] == pytest.approx(ev["generalized_step"] / ev["memorized_step"])
    # logistic: 10% -> 90% of the rise takes 2*ln(9)*width steps
    assert ev["sharpness"] == pytest.approx(2 * math.log(9) * 60, abs=100)
    names = [p["name"] for p in a["phases"]]
    assert names == ["memorization", "plateau", "grokking", "converged"]
    plateau = a["phases"][1]
    assert plateau["start"] == ev["memorized_step"] and plateau["end"] == ev["rise_start"]
    assert a["phases"][-1]["end"] == 8000
    for left, right in zip(a["phases"], a["phases"][1:]):
        assert left["end"] == right["start"]
    # grokking runs to the generalized step; converged starts there, never before it
    assert a["phases"][2]["end"] == a["phases"][3]["start"] == ev["generalized_step"] == ev["converged_step"]
    assert [p["label"] for p in a["phases"]] == [
        "memorization (until train acc >= 0.99)", "plateau (test acc ~ 0.02)",
        "grokking (test acc 0.02 -> 0.99)", "converged (test acc >= 0.99)"]
    assert a["verdict"]["state"] == "generalized" and a["verdict"]["grokked"]
    assert a["verdict"]["label"] == f"grokked (test acc >= 0.99 at step {ev['generalized_step']:,})"


def test_comprehension():
    a = detect.analyze(curve(train_center=100, test_center=300))
    assert a["phase"] == "comprehension"
    assert a["events"]["generalized_step"] is not None


def test_gap_is_configurable():
    records = curve(train_center=100, test_center=800)
    assert detect.analyze(records)["phase"] == "comprehension"
    assert detect.analyze(records, gap=300)["phase"] == "grokking"


def test_memorization_and_still_on_plateau():
    a = detect.analyze(curve(train_center=100))
    assert a["phase"] == "memorization" and a["still_on_plateau"]
    assert a["events"]["generalized_step"] is None and a["events"]["sharpness"] is None
    assert [p["name"] for p in a["phases"]] == ["memorization", "plateau"]


def test_confusion():
    a = detect.analyze(curve(train_center=None))
    assert a["phase"] == "confusion" and a["events"]["memorized_step"] is None
    assert [p["name"] for p in a["phases"]] == ["memorization"] and not a["still_on_plateau"]


def test_noise_does_not_move_events_much():
    clean = detect.analyze(curve(train_center=100, test_center=4000))["events"]
    for seed in range(5):
        noisy = detect.analyze(curve(train_center=100, test_center=4000, test_top=0.995, noise=0.02,
                                     seed=seed))
        assert noisy["phase"] == "grokking"
        assert abs(noisy["events"]["test_0.9"] - clean["test_0.9"]) <= 150
        assert abs(noisy["events"]["rise_start"] - clean["rise_start"]) <= 250


def test_single_spike_is_not_grokking():
    records = curve(train_center=100)
    for r in records:
        if r["step"] == 3000:
            r["test_acc"] = 1.0
    raw_first = next(r["step"] for r in records if r["test_acc"] >= 0.99)
    assert raw_first == 3000
    a = detect.analyze(records)
    assert a["phase"] == "memorization" and a["events"]["generalized_step"] is None
    assert a["still_on_plateau"]


def test_partial_gain_after_memorization_counts_as_plateau():
    """Test acc jumps to ~0.4 right after memorization, sits there, then groks (the demo's shape)."""
    records = curve(train_center=100, test_center=3000)
    for r in records:
        if 150 <= r["step"] < 2500:
            r["test_acc"] = max(r["test_acc"], 0.4)
    a = detect.analyze(records)
    assert a["events"]["rise_start"] > 2000 and a["phase"] == "grokking"


def test_smooth_is_a_centered_median():
    assert detect.smooth([0, 0, 1, 0, 0]) == [0, 0, 0, 0, 0]
    assert detect.smooth([1, 2, 3, 4, 5, 6]) == [1.5, 2, 3, 4, 5, 5.5]
    assert detect.smooth([0, 0, 0, 0, 1]) == [0, 0, 0, 0, 0.5]  # a last-point spike does not pass 0.99
    assert detect.smooth([]) == [] and detect.smooth([0.5]) == [0.5]


def test_rise_to_0_95_only_is_grokking_without_converged():
    a = detect.analyze(curve(train_center=100, test_center=4000, test_top=0.97))
    assert [p["name"] for p in a["phases"]] == ["memorization", "plateau", "grokking"]
    assert a["events"]["generalized_step"] is None and a["events"]["test_0.95_after_memorized"] is not None
    assert a["verdict"]["label"].startswith("grokked to 0.95 (test acc >= 0.95 at step ")
    assert "never >= 0.99; final 0.97" in a["verdict"]["label"] and not a["still_on_plateau"]


def test_generalized_before_memorization_is_not_a_plateau():
    """Test accuracy at 1.0 before train accuracy reaches 0.99: no plateau after memorization."""
    records = curve(train_center=100, test_center=60, width=5)
    a = detect.analyze(records)
    assert [p["name"] for p in a["phases"]] == ["memorization", "converged"]
    assert not a["still_on_plateau"] and a["verdict"]["state"] == "generalized"


def test_confusion_verdict():
    a = detect.analyze(curve(train_center=None))
    assert a["verdict"]["state"] == "unfitted"
    assert a["verdict"]["label"] == "not fitted (train acc never >= 0.99; test acc 0.02)"
    assert a["phases"][0]["label"] == "memorization (train acc never >= 0.99)"
    assert detect.analyze([])["verdict"]["state"] == "none"
