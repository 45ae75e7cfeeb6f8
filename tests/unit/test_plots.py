"""Figures and report helpers on synthetic metric records (no training)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from grokscope import detect
from grokscope.report import html as report_html
from grokscope.report.plots import compare, save_curves, save_norms

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def synthetic_records(steps: int = 5000, grok_at: float | None = 3000, every: int = 50) -> list[dict]:
    """Train accuracy rises around step 300, test accuracy around `grok_at` (None: never)."""
    out = []
    for s in [0, 1, 2, 5, 10, 20, 50] + list(range(100, steps + 1, every)):
        train = _sigmoid((s - 300) / 40)
        test = 0.02 + 0.98 * _sigmoid((s - grok_at) / 150) if grok_at is not None else 0.03
        out.append({"step": s, "train_acc": train, "test_acc": test,
                    "train_loss": 4.0 * (1 - train) + 1e-3, "test_loss": 4.0 * (1 - test) + 1e-3,
                    "weight_norm": 50 - 10 * test, "lr": 1e-3 * min(1.0, (s + 1) / 10),
                    "elapsed": s / 100})
    return out


def assert_png(path: Path, min_bytes: int = 10_000) -> None:
    data = Path(path).read_bytes()
    assert data[:8] == PNG_MAGIC, path
    assert len(data) > min_bytes, (path, len(data))
    assert not [p for p in Path(path).parent.iterdir() if p.name.endswith(".tmp")], "temp file left"


@pytest.fixture(scope="module")
def grokking():
    records = synthetic_records()
    return records, detect.analyze(records)


def test_save_curves_plain_signature(tmp_path, grokking):
    records, analysis = grokking
    out = save_curves(records, tmp_path / "sub" / "curves.png", title="t", events=analysis["events"])
    assert out == tmp_path / "sub" / "curves.png"
    assert_png(out)


def test_save_curves_with_analysis(tmp_path, grokking):
    records, analysis = grokking
    assert [p["name"] for p in analysis["phases"]] == ["memorization", "plateau", "grokking", "converged"]
    plain = save_curves(records, tmp_path / "plain.png", title="run")
    shaded = save_curves(records, tmp_path / "shaded.png", title="run", analysis=analysis)
    assert_png(shaded)
    assert shaded.read_bytes() != plain.read_bytes()  # phases and markers drawn


def test_save_norms_and_compare(tmp_path, grokking):
    records, analysis = grokking
    assert_png(save_norms(records, tmp_path / "norms.png"))
    assert_png(save_norms(records, tmp_path / "norms_phases.png", analysis=analysis))
    other = synthetic_records(grok_at=None)
    runs = [("grokking", records), ("plateau", other)]
    for metric in ("test_acc", "train_acc", "test_loss", "weight_norm", "lr"):
        assert_png(compare(runs, tmp_path / f"cmp_{metric}.png", metric=metric))


def test_compare_rejects_nothing_to_draw(tmp_path, grokking):
    with pytest.raises(ValueError, match="no runs"):
        compare([], tmp_path / "x.png")
    with pytest.raises(ValueError, match="no run has metric"):
        compare([("a", grokking[0])], tmp_path / "x.png", metric="nope")
    assert not list(tmp_path.iterdir())


def test_odd_records_do_not_break_figures(tmp_path):
    records = synthetic_records(steps=400, grok_at=None)
    records[5]["test_loss"] = float("nan")
    records[6]["train_loss"] = float("inf")
    records[7]["train_loss"] = 0.0
    del records[8]["weight_norm"]
    assert_png(save_curves(records, tmp_path / "c.png", analysis=detect.analyze(records)))
    assert_png(save_norms(records, tmp_path / "n.png"))
    assert_png(save_curves([], tmp_path / "empty.png", analysis=detect.analyze([])), min_bytes=2_000)
    assert_png(save_norms([], tmp_path / "empty_n.png"), min_bytes=2_000)


def test_import_grokscope_does_not_import_matplotlib():
    code = ("import grokscope, grokscope.report.plots, grokscope.report.html, grokscope.report.htmlkit, "
            "grokscope.report.runinfo, sys; "
            "assert 'matplotlib' not in sys.modules, 'matplotlib imported'; "
            "assert 'jinja2' not in sys.modules, 'jinja2 imported'")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_report_does_not_import_analysis():
    """The dependency goes one way: grokscope.analysis draws through grokscope.report, never back."""
    report_dir = Path(report_html.__file__).parent
    for path in sorted(report_dir.rglob("*.py")):
        assert "grokscope.analysis" not in path.read_text(), path
    code = ("import grokscope.report.html, grokscope.report.plots, grokscope.report.analysis_plots, sys; "
            "assert not [m for m in sys.modules if m.startswith('grokscope.analysis')]")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_task_description():
    assert report_html.task_description({"kind": "modular", "op": "x/y", "p": 97}) == "x/y mod 97"
    assert report_html.task_description({"kind": "permutation", "op": "x*y", "n": 5}) == "x*y on S_5"
    assert report_html.task_description({}) == ""


def test_task_description_of_a_plug_in_kind():
    describe = report_html.task_description
    assert describe({"kind": "xor"}) == "xor"
    assert describe({"kind": "xor", "n_bits": 8, "n_train": 200}) == "xor (n_bits=8, n_train=200)"
    # config.json's task section: the table fields are defaults there, only the options describe it
    cfg_task = {"kind": "xor", "op": "x+y", "p": 97, "n": 5, "train_fraction": 0.5, "options": {"bits": 12}}
    assert describe(cfg_task) == "xor (bits=12)"
    many = describe({"kind": "k", **{f"f{i}": i for i in range(9)}, "nested": {"a": 1}, "items": [1, 2]})
    assert many == "k (f0=0, f1=1, f2=2, f3=3, …)"
    assert describe({"kind": "k", "long": "y" * 100}).endswith("…)") and len(describe({"kind": "k"})) == 1
    assert describe({"op": "x+y"}) == "x+y"


def _headline(records, summary=None):
    return report_html.headline(detect.analyze(records), summary or {"status": "completed"}, records)


def test_headlines():
    grok = _headline(synthetic_records())
    assert grok.startswith("Grokked: train accuracy reached 0.99 at step ")
    assert "test accuracy reached 0.99 at step 3," in grok and "x later; 0.95 at step 3," in grok
    plateau = _headline(synthetic_records(grok_at=None))
    assert plateau.startswith("Memorized without generalizing: train accuracy reached 0.99 at step ")
    assert "sits on a plateau at 0.03, still there at step 5,000 (never 0.95)" in plateau
    confused = [dict(r, train_acc=0.1) for r in synthetic_records(steps=500)]
    assert _headline(confused).startswith("Did not fit the training set")
    assert _headline([]) == "No evaluations recorded yet."
    stopped = _headline(synthetic_records(), {"status": "interrupted", "stop_reason": "signal SIGINT"})
    assert stopped.endswith("Run status: interrupted (signal SIGINT).")


def test_report_of_a_synthetic_run_escapes_text(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    records = synthetic_records(grok_at=None)
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    cfg = {"name": "<script>alert(1)</script>", "seed": 0,
           "task": {"kind": "modular", "op": "x-y", "p": 31}}
    (run / "config.json").write_text(json.dumps(cfg))
    out = report_html.write_report(run)  # no summary.json yet: a run that is starting
    text = out.read_text()
    assert "<script" not in text and "&lt;script&gt;" in text
    assert "x-y mod 31" in text and "Memorized without generalizing" in text
    assert_png(run / "figures" / "curves.png")
    assert_png(run / "figures" / "norms.png")
    assert not [p for p in run.iterdir() if p.name.endswith(".tmp")]


def test_report_needs_a_run_directory(tmp_path):
    from grokscope.errors import ConfigError

    with pytest.raises(ConfigError, match="not a run directory"):
        report_html.write_report(tmp_path)


def test_analysis_figures_draw_given_arrays(tmp_path):
    """report.analysis_plots only draws what it is given (the analysis package computes it)."""
    import torch

    from grokscope.report import analysis_plots

    g = torch.Generator().manual_seed(0)
    records = [{"step": s, "train_acc": a, "test_acc": a / 2, "train_loss": 1 - a + 1e-3,
                "test_loss": 1.1 - a / 2, "sum_sq_weights": 10 - a, "W_E_spectrum": [1.0, 2.0 * a, 0.5]}
               for s, a in ((0, 0.1), (10, 0.5), (100, 0.9))]
    xy = torch.randn(7, 2, generator=g)
    panels = ([("PC1", "PC2", xy[:, 0], xy[:, 1]), ("cos 1 plane", "sin 1", xy[:, 1], xy[:, 0])], [0.6, 0.3])
    correct = torch.tensor([[1, 0, -1], [1, 1, 0], [0, 1, 1]])
    maps = {"final: step 100": {"correct": correct, "train": torch.rand(3, 3, generator=g) < 0.5}}
    nf = {"clusters": {"1": 5, "3": 2, "noise": 4}, "frac": torch.rand(11, generator=g)}
    att = torch.rand(2, 3, generator=g)
    phase = detect.analyze([{"step": r["step"], "train_acc": r["train_acc"], "test_acc": r["test_acc"]}
                            for r in records])
    entries = analysis_plots.draw_all(tmp_path, records=records, keys=[1], phase=phase,
                                      geometry_panels=panels, maps=maps, neuron_freqs=nf,
                                      attention_weights=att)
    assert [e["id"] for e in entries] == ["fig-spectrum", "fig-progress", "fig-geometry", "fig-errors",
                                          "fig-neurons", "fig-attention"]
    for e in entries:
        assert e["file"].startswith("figures/")
        assert_png(tmp_path / Path(e["file"]).name, min_bytes=5_000)
    plain = [{k: v for k, v in r.items() if k != "W_E_spectrum"} for r in records]
    only = analysis_plots.draw_all(tmp_path / "few", records=plain, keys=[], phase=None)
    assert [e["id"] for e in only] == ["fig-progress"]


def test_geometry_labels_are_readable_at_the_report_width(tmp_path, monkeypatch):
    """Six embedding panels used to share one 19-inch row, shown ~1,000 px wide: 4 px labels. The
    report shows a figure at most ~966 px wide; every label must stay >= 9 px there."""
    import torch

    from grokscope.report import analysis_plots

    seen = {}
    save_png = analysis_plots.save_png

    def spy(fig, plt, path):
        width_px = fig.get_figwidth() * fig.dpi
        scale = min(1.0, 966 / width_px)
        sizes = [t.get_fontsize() for ax in fig.axes if ax.get_visible()
                 for t in (ax.xaxis.label, ax.yaxis.label, *ax.texts, *ax.get_xticklabels())]
        seen["px"] = [s * fig.dpi / 72 * scale for s in sizes]
        seen["rows"] = len({round(ax.get_position().y0, 3) for ax in fig.axes if ax.get_visible()})
        return save_png(fig, plt, path)

    monkeypatch.setattr(analysis_plots, "save_png", spy)
    xy = torch.randn(31, 2, generator=torch.Generator().manual_seed(0))
    panels = [(f"cos {k}", f"sin {k}", xy[:, 0], xy[:, 1]) for k in range(6)]
    assert_png(tmp_path / Path(analysis_plots.geometry(panels, [0.3] * 6, tmp_path / "g.png")["file"]).name)
    assert seen["rows"] == 2 and min(seen["px"]) >= 9, seen
