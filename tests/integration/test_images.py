"""Images end to end: a large-initialization MLP groks digits (test accuracy jumps long after train
accuracy, as the weight norm falls), the robustness measures are logged and drawn, and
`grokscope analyze` reads the run (norm vs the α = 1 reference, confusion, filters, card)."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace

import pytest

import grokscope
from grokscope.config import LogConfig, apply_overrides
from grokscope.detect import first_step

pytest.importorskip("sklearn")


@pytest.fixture(scope="module")
def grokked(tmp_path_factory):
    """omnigrok_digits shrunk to 200 training images, weight decay 0.25 and 4,000 steps (~15 s)."""
    cfg = apply_overrides(grokscope.get_preset("omnigrok_digits"),
                          {"task.options.train_size": "200", "optim.weight_decay": "0.25",
                           "train.steps": "4000",
                           "task.options.robust_n": "40", "task.options.lc_directions": "4",
                           "task.options.pgd_steps": "3"})
    cfg = replace(cfg, log=LogConfig(figure=False, report=True, progress=False))
    return grokscope.train(cfg, tmp_path_factory.mktemp("img") / "run")


def test_large_init_mlp_memorizes_digits_first_and_generalizes_later(grokked):
    m = grokked.metrics
    mem = first_step(m, "train_acc", 0.99)
    assert mem is not None and mem >= 200
    test_at_mem = next(r["test_acc"] for r in m if r["step"] >= mem)
    assert test_at_mem <= 0.6  # memorized, not generalized
    assert m[-1]["test_acc"] >= 0.85 and m[-1]["test_acc"] - test_at_mem >= 0.3  # the jump after train
    assert first_step(m, "test_acc", 0.85) >= 2 * mem
    assert m[-1]["weight_norm"] < 0.5 * m[0]["weight_norm"]  # the norm fell toward the Goldilocks zone


def test_robustness_measures_are_logged_on_the_schedule_and_drawn(grokked):
    s = grokked.summary
    assert s["measures"] == ["train_pgd_acc", "test_pgd_acc", "train_fgsm_acc", "test_fgsm_acc",
                             "train_lc", "test_lc", "random_lc"]
    logged = [r for r in grokked.metrics if "test_pgd_acc" in r]
    assert len(logged) == len(grokked.metrics) >= 10
    for r in logged:
        assert 0 <= r["test_pgd_acc"] <= r["test_acc"] + 1e-12  # measured on a subset: still an attack
        assert r["train_lc"] >= 0 and r["random_lc"] >= 0
    html = (grokked.path / "report.html").read_text()
    assert 'id="fig-measures"' in html and (grokked.path / "figures" / "measures.png").is_file()


def test_analyze_an_image_run_reports_norm_reference_confusion_filters_and_card(grokked, tmp_path):
    r = subprocess.run([sys.executable, "-m", "grokscope", "analyze", str(grokked.path)],
                       capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    out = json.loads((grokked.path / "analysis.json").read_text())
    card = out["card"]
    assert card["headline"].startswith("Memorized at step")
    assert "as the weight norm fell from" in card["headline"]
    assert any("PGD accuracy on test" in e for e in card["evidence"])
    assert any("Local complexity at training points" in e for e in card["evidence"])
    details = out["details"]
    assert 15 < details["reference_norm"] < 25  # the α = 1 network's norm (the run starts at ~120)
    conf = details["confusion"][str(out["steps"][-1])]
    assert sum(map(sum, conf)) == grokked.summary["split_sizes"]["test"]
    files = {f["file"] for f in out["figures"]}
    assert files == {"figures/image_norm.png", "figures/per_class.png", "figures/confusion.png",
                     "figures/filters.png", "figures/robustness.png"}
    assert all((grokked.path / f).read_bytes()[:4] == b"\x89PNG" for f in files)
    html = (grokked.path / "report.html").read_text()
    assert "Learned algorithm" in html and 'id="fig-filters"' in html


def test_analyze_with_a_reference_run_that_is_not_one_is_a_one_line_error(grokked, tmp_path):
    r = subprocess.run([sys.executable, "-m", "grokscope", "analyze", str(grokked.path),
                        "--reference", str(tmp_path)],
                       capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert r.returncode == 2
    assert r.stderr.strip() == f"grokscope: error: reference: {str(tmp_path)!r} is not a run directory " \
                               "(no config.json)"
