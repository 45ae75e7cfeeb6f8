"""`grokscope analyze` on tiny real runs: every checkpoint analysed, the card, figures and the report."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from grokscope import RunDir, train
from grokscope.analysis.run import analyze
from grokscope.cli import main
from grokscope.config import ModelConfig, OptimConfig, RunConfig, TaskConfig, TrainConfig
from tests.conftest import tiny_grokking_config

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def grokked(tmp_path_factory):
    result = train(tiny_grokking_config(checkpoint_every=50), tmp_path_factory.mktemp("an") / "tiny",
                   progress=False)
    assert result.summary["events"]["generalized_step"] is not None
    return result


@pytest.fixture(scope="module")
def analysed(grokked):
    assert main(["analyze", str(grokked.path)]) == 0
    return grokked.path


def test_every_checkpoint_is_analysed(grokked, analysed):
    rd = RunDir(analysed)
    ckpt_steps = sorted({s for s, _ in rd.list_checkpoints(include_latest=True)})
    records = [json.loads(line) for line in (analysed / "analysis.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == ckpt_steps
    metrics = {r["step"]: r for r in grokked.metrics}
    for r in records:  # the analysis recomputes the accuracies the training loop logged
        if r["step"] in metrics:
            assert r["test_acc"] == pytest.approx(metrics[r["step"]]["test_acc"], abs=1e-6)
            assert r["train_acc"] == pytest.approx(metrics[r["step"]]["train_acc"], abs=1e-6)
    for key in ("restricted_loss", "excluded_loss", "restricted_acc", "excluded_acc", "W_E_gini",
                "W_E_ipr", "sum_sq_weights", "rqi", "W_E_spectrum", "test_restricted_ratio"):
        assert key in records[-1], key
    assert len(records[-1]["W_E_spectrum"]) == 11  # (23 - 1) / 2 frequencies


def test_card_claims_the_fourier_algorithm_with_evidence(analysed):
    an = json.loads((analysed / "analysis.json").read_text())
    final = an["final"]
    assert an["fourier_task"] and 1 <= len(an["key_freqs"]) <= 6
    assert final["test_acc"] >= 0.99
    assert final["restricted_acc"] >= 0.9 and final["excluded_acc"] <= 0.5
    assert an["card"]["claim"] == "fourier"
    keys = "{" + ", ".join(str(k) for k in an["key_freqs"]) + "}"
    assert keys in an["card"]["headline"]
    # the embedding has become sparse in frequency while training generalized
    first, last = (json.loads(line) for line in
                   (analysed / "analysis.jsonl").read_text().splitlines()[::len(an["steps"]) - 1])
    assert last["W_E_gini"] > first["W_E_gini"] + 0.2
    assert last["W_E_key_mass"] > 0.5


def test_figures_and_report_section(analysed):
    an = json.loads((analysed / "analysis.json").read_text())
    ids = {f["id"] for f in an["figures"]}
    assert {"fig-spectrum", "fig-progress", "fig-geometry", "fig-errors", "fig-neurons",
            "fig-attention"} <= ids, ids
    for f in an["figures"]:
        assert (analysed / f["file"]).read_bytes()[:4] == b"\x89PNG"
    html = (analysed / "report.html").read_text()
    assert '<h2>Learned algorithm</h2>' in html and 'id="algorithm-card" class="claim-fourier"' in html
    for i in ids:
        assert f'<figure id="{i}">' in html
    assert "https://" not in html and "http://" not in html


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
def test_chromium_shows_the_card(analysed, tmp_path):
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
           "--disable-background-networking", f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom",
           (analysed / "report.html").resolve().as_uri()]
    dom = subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd=tmp_path).stdout
    an = json.loads((analysed / "analysis.json").read_text())
    assert 'id="algorithm-card"' in dom and 'id="fig-progress"' in dom
    assert "embeds x and y on" in dom and str(an["key_freqs"][0]) in dom


def test_max_checkpoints_subsamples_and_keeps_the_ends(grokked, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(grokked.path, copy, ignore=shutil.ignore_patterns("analysis*", "progress_measures.png"))
    out = analyze(copy, max_checkpoints=4, figures=False, report=False)
    steps = sorted({s for s, _ in RunDir(copy).list_checkpoints(include_latest=True)})
    assert len(out["steps"]) == 4 and out["steps"][0] == steps[0] and out["steps"][-1] == steps[-1]
    assert out["figures"] == [] and not (copy / "figures" / "progress_measures.png").exists()


def test_permutation_run_gets_the_generic_parts(tmp_path):
    cfg = RunConfig(name="perm", task=TaskConfig(kind="permutation", op="x*y", n=3, train_fraction=0.5),
                    model=ModelConfig(n_layers=1, d_model=32, n_heads=2, d_mlp=64, norm="none"),
                    optim=OptimConfig(lr=3e-3, weight_decay=1.0), train=TrainConfig(steps=30, eval_every=10))
    run = train(cfg, tmp_path / "perm", progress=False)
    out = analyze(run.path)
    assert out["card"]["claim"] == "none" and "permutations" in out["card"]["headline"]
    ids = {f["id"] for f in out["figures"]}
    assert "fig-errors" in ids and "fig-geometry" in ids and "fig-spectrum" not in ids
    rec = json.loads((run.path / "analysis.jsonl").read_text().splitlines()[-1])
    assert "restricted_loss" not in rec and "test_loss" in rec


def test_cli_errors_are_one_line_and_write_nothing(tmp_path, capsys, grokked):
    assert main(["analyze", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not a run directory" in err
    assert main(["analyze", str(grokked.path), "--max-checkpoints", "1"]) == 2
    assert "max-checkpoints: must be an integer >= 2" in capsys.readouterr().err
    assert main(["analyze", str(grokked.path), "--bogus", "3"]) == 2
    assert "unknown option --bogus" in capsys.readouterr().err
    assert main(["analyze"]) == 2
    empty = tmp_path / "empty"
    shutil.copytree(grokked.path, empty, ignore=shutil.ignore_patterns("*.pt", "analysis*"))
    assert main(["analyze", str(empty)]) == 2
    assert "no checkpoints" in capsys.readouterr().err
    assert not (empty / "analysis.json").exists() and not (empty / "analysis.jsonl").exists()


def test_a_generalized_run_gets_no_forecast(grokked, capsys):
    assert 'id="forecast"' not in (grokked.path / "report.html").read_text()
    capsys.readouterr()
    assert main(["show", str(grokked.path)]) == 0
    assert "forecast" not in capsys.readouterr().out
