"""The HTML report of a real tiny run: self-contained, complete, and rendered by headless Chromium;
and of hand-written run directories (no training): extra splits, a generalization split other than
test, task measures, a plug-in task kind, hostile text."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
from html import escape
from html.parser import HTMLParser
from pathlib import Path

import pytest

from grokscope import RunDir, detect, train
from grokscope.config import to_dict
from grokscope.presets import get_preset
from grokscope.report import plots
from grokscope.report.html import write_compare, write_report
from tests.conftest import tiny_grokking_config
from tests.unit.test_plots import _sigmoid, synthetic_records

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
IDS = ("headline", "key-numbers", "timeline", "fig-curves", "fig-norms", "events", "config")
SHOT_COPY = Path("/tmp/grokscope_report_shot.png")
CHROMIUM = shutil.which("chromium")
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")


class _Collect(HTMLParser):
    """Every start tag's attributes, by tag; ids; and the text of the key-numbers table."""

    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.ids: set[str] = set()
        self.key_text: list[str] = []
        self._in_key = 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append((tag, a))
        if "id" in a:
            self.ids.add(a["id"])
        if a.get("id") == "key-numbers":
            self._in_key = 1
        elif self._in_key and tag == "table":
            self._in_key += 1

    def handle_endtag(self, tag):
        if self._in_key and tag == "table":
            self._in_key -= 1

    def handle_data(self, data):
        if self._in_key:
            self.key_text.append(data)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A tiny grokking run (about 4 s) with its report written."""
    result = train(tiny_grokking_config(), tmp_path_factory.mktemp("report") / "run", progress=False)
    report = write_report(result.path)
    return result, report


def _key_number(html: str, key: str) -> str:
    m = re.search(rf'<tr data-key="{key}"><th>[^<]*</th><td class="num">([^<]*)</td>', html)
    assert m, key
    return m.group(1)


def test_report_is_written_with_figures(run):
    result, report = run
    assert report == result.path / "report.html"
    for name in ("curves.png", "norms.png"):
        assert (result.path / "figures" / name).read_bytes()[:8] == PNG_MAGIC
    assert not [p for p in result.path.rglob("*") if p.name.endswith(".tmp")]


def test_report_html_is_self_contained_and_complete(run):
    result, report = run
    text = report.read_text()
    parser = _Collect()
    parser.feed(text)
    assert set(IDS) <= parser.ids
    imgs = [a["src"] for tag, a in parser.tags if tag == "img"]
    assert len(imgs) == 2
    for src in imgs:
        assert src.startswith("data:image/png;base64,")
        data = base64.b64decode(src.split(",", 1)[1], validate=True)
        assert data[:8] == PNG_MAGIC and len(data) > 10_000
    for tag, attrs in parser.tags:  # nothing is fetched from anywhere
        for name in ("src", "href", "action", "poster", "srcset"):
            value = attrs.get(name) or ""
            assert not value.startswith(("http:", "https:", "//", "file:")), (tag, name, value)
    assert not re.search(r"url\(\s*['\"]?\s*(https?:|//)", text)
    assert "http://" not in text and "https://" not in text
    assert not [t for t, _ in parser.tags if t in ("script", "iframe", "object", "embed")]

    ev, analysis = result.summary["events"], detect.analyze(result.metrics)
    assert analysis["events"]["memorized_step"] == ev["memorized_step"] is not None
    assert analysis["events"]["generalized_step"] == ev["generalized_step"] is not None
    assert _key_number(text, "memorized_step") == detect.dated(ev["memorized_step"],
                                                               ev["memorized_resolution"])
    assert _key_number(text, "generalized_step") == detect.dated(ev["generalized_step"],
                                                                 ev["generalized_resolution"])
    assert ev["generalized_resolution"] > 0
    assert _key_number(text, "outcome") == analysis["phase"]
    assert analysis["phase"] in ("grokking", "comprehension")  # depends on the gap (default 1000)
    assert _key_number(text, "status") == "completed"
    key_text = "".join(parser.key_text)
    assert f"{ev['memorized_step']:,}" in key_text and f"{ev['generalized_step']:,}" in key_text
    assert "tiny — x+y mod 23" in text
    assert re.search(rf"(Grokked|Generalized): train accuracy reached 0.99 at step {ev['memorized_step']:,}, "
                     rf"test accuracy reached 0.99 at step {ev['generalized_step']:,} \(\d+\.\dx later", text)
    n_test = result.summary["task"]["n_test"]  # the headline says how many errors 0.99 allows
    assert f"On {n_test:,} test examples, 0.99 allows at most {n_test // 100} error" in text
    for seg in analysis["phases"]:
        assert f'data-phase="{seg["name"]}"' in text
        assert f'<td>{escape(seg["label"])}</td>' in text  # the phase table states each threshold


def test_report_is_rewritten_in_place(run):
    result, report = run
    before = report.read_text()
    assert write_report(result.path, gap=100) == report  # mem ~45, gen ~510: grokking at this gap
    after = report.read_text()
    assert "outcome gap 100 steps" in after and before != after
    assert _key_number(after, "outcome") == "grokking"
    assert '<p id="headline" class="grokking">Grokked: ' in after
    write_report(result.path)  # back to the default for the other tests


def test_write_compare(run, tmp_path):
    result, _ = run
    out = write_compare([result.path, result.path], tmp_path / "cmp.png", metric="test_loss")
    assert out == tmp_path / "cmp.png" and out.read_bytes()[:8] == PNG_MAGIC


def _chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={tmp_path / 'chromium-profile'}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd=tmp_path)


@needs_chromium
def test_chromium_renders_the_dom(run, tmp_path):
    result, report = run
    proc = _chromium(tmp_path, "--dump-dom", report.resolve().as_uri())
    assert proc.returncode == 0, proc.stderr[-2000:]
    dom = proc.stdout
    for id_ in IDS:
        assert f'id="{id_}"' in dom, id_
    ev = RunDir(result.path).read_summary()["events"]
    assert f"{ev['memorized_step']:,}" in dom and f"{ev['generalized_step']:,}" in dom
    assert "data:image/png;base64," in dom


@needs_chromium
def test_chromium_screenshot_is_not_blank(run, tmp_path):
    _, report = run
    shot = tmp_path / "shot.png"
    proc = _chromium(tmp_path, f"--screenshot={shot}", "--window-size=1200,2400", report.resolve().as_uri())
    assert proc.returncode == 0, proc.stderr[-2000:]
    data = shot.read_bytes()
    assert data[:8] == PNG_MAGIC
    assert len(data) > 30_000, len(data)  # a blank page is a few kB
    try:  # a copy to look at by hand; best effort
        shutil.copyfile(shot, SHOT_COPY)
    except OSError:
        pass


# ------------------------------------------------------------------ hand-written run directories


def _ood_records() -> list[dict]:
    """synthetic_records plus a test_ood split that generalizes later (around step 4200) and a task
    measure `adv_acc`."""
    out = []
    for r in synthetic_records(steps=6000):
        ood = 0.02 + 0.98 * _sigmoid((r["step"] - 4200) / 150)
        out.append({**r, "test_ood_acc": ood, "test_ood_loss": 4.0 * (1 - ood) + 1e-3,
                    "adv_acc": 0.5 * ood})
    return out


def _write_run(path: Path, records: list[dict], summary: dict | None, *, task: dict | None = None,
               name: str = "synthetic") -> Path:
    cfg = to_dict(get_preset("demo"))
    cfg["name"] = name
    if task is not None:
        cfg["task"] = {**cfg["task"], **task}
    path.mkdir(parents=True)
    (path / "config.json").write_text(json.dumps(cfg))
    (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    if summary is not None:
        (path / "summary.json").write_text(json.dumps(summary))
    return path


def _spy_figures(monkeypatch) -> dict[str, dict]:
    """{file name: {"lines": legend labels, "titles": axes titles}} of every figure drawn from now on."""
    drawn = {}
    save_png = plots.save_png

    def spy(fig, plt, path):
        labels = [ln.get_label() for ax in fig.axes for ln in ax.get_lines()]
        drawn[Path(path).name] = {"lines": [lab for lab in labels if not lab.startswith("_")],
                                  "titles": [ax.get_title() for ax in fig.axes if ax.get_visible()]}
        return save_png(fig, plt, path)

    monkeypatch.setattr(plots, "save_png", spy)
    return drawn


def _summary(**fields) -> dict:
    return {"status": "completed", "name": "synthetic", "task": {"kind": "modular", "op": "x+y", "p": 31},
            **fields}


def test_report_reads_the_generalization_split(tmp_path, monkeypatch):
    records = _ood_records()
    on_test = detect.analyze(records)["events"]
    on_ood = detect.analyze(records, split="test_ood")["events"]
    assert on_ood["generalized_step"] > on_test["generalized_step"] + 500
    drawn = _spy_figures(monkeypatch)
    run = _write_run(tmp_path / "ood", records, _summary(
        generalization_split="test_ood", splits=["train", "test", "test_ood"], measures=["adv_acc"]))
    text = write_report(run).read_text()
    assert _key_number(text, "generalized_step") == detect.dated(on_ood["generalized_step"],
                                                                 on_ood["generalized_resolution"])
    assert _key_number(text, "generalization_split") == "test_ood"
    assert _key_number(text, "final_test_ood_acc") == f"{records[-1]['test_ood_acc']:.4f}"
    assert _key_number(text, "final_test_acc") == f"{records[-1]['test_acc']:.4f}"
    assert re.search(rf"Grokked: train accuracy reached 0.99 at step {on_ood['memorized_step']:,}, "
                     rf"test_ood accuracy reached 0.99 at step {on_ood['generalized_step']:,} ", text)
    assert "<th>test_ood reaches at step</th>" in text
    for seg in detect.analyze(records, split="test_ood")["phases"]:
        assert f'title="{escape(seg["label"])}: steps {seg["start"]:,}–{seg["end"]:,}"' in text
        assert seg["label"].startswith(seg["name"])
        assert seg["name"] == "memorization" or "test_ood acc" in seg["label"]
    assert drawn["curves.png"]["lines"] == ["train", "test", "test_ood (generalization)"] * 2  # acc, loss
    assert drawn["measures.png"]["titles"] == ["adv_acc"]  # the task measure gets its own figure
    assert 'id="fig-measures"' in text and "adv_acc" in text
    assert len(re.findall(r'<img alt="[^"]*" src="data:image/png;base64,', text)) == 3
    assert (run / "figures" / "measures.png").read_bytes()[:8] == PNG_MAGIC


def test_report_infers_splits_of_an_old_run(tmp_path, monkeypatch):
    """Without summary.json's splits: every X with X_acc and X_loss in the records; generalization
    split test; a measure listed but never logged is skipped."""
    drawn = _spy_figures(monkeypatch)
    records = [{**r, "stage_train_acc": 0.5} for r in _ood_records()]  # not a split: no stage_train_loss
    run = _write_run(tmp_path / "old", records, _summary(measures=["never_logged"]))
    text = write_report(run).read_text()
    assert drawn["curves.png"]["lines"] == ["train", "test (generalization)", "test_ood"] * 2
    assert "measures.png" not in drawn and 'id="fig-measures"' not in text
    ev = detect.analyze(records)["events"]
    assert _key_number(text, "generalized_step") == detect.dated(ev["generalized_step"],
                                                                 ev["generalized_resolution"])
    assert "test accuracy reached 0.99 at step" in text
    assert _key_number(text, "generalization_split") == "test"


def test_report_of_a_plug_in_kind(tmp_path):
    records = synthetic_records(steps=800, grok_at=None)
    run = _write_run(tmp_path / "xor", records, {"status": "running", "task": {"kind": "xor", "n_bits": 6}},
                     task={"kind": "xor", "options": {"bits": 6}})
    text = write_report(run).read_text()
    assert "synthetic — xor (n_bits=6)" in text and "Run status: running." in text
    (run / "summary.json").unlink()  # a run that is starting: the config's task describes it
    text = write_report(run).read_text()
    assert "synthetic — xor (bits=6)" in text
    for id_ in IDS:
        assert f'id="{id_}"' in text, id_


def test_report_escapes_hostile_text(tmp_path):
    hostile = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    run = _write_run(tmp_path / "bad", _ood_records(), _summary(
        name=hostile, generalization_split="test_ood", measures=["adv_acc"],
        versions={"<b>pkg</b>": "1 & 2"}), name=hostile)
    text = write_report(run).read_text()
    parser = _Collect()
    parser.feed(text)
    assert not [t for t, _ in parser.tags if t in ("script", "b")]
    assert [a["src"][:22] for t, a in parser.tags if t == "img"] == ["data:image/png;base64,"] * 3
    assert "&lt;script&gt;alert(" in text and "&lt;img src=x onerror=alert(1)&gt;" in text
    assert "&lt;b&gt;pkg&lt;/b&gt;" in text and "1 &amp; 2" in text
    csp = [a for t, a in parser.tags if t == "meta" and a.get("http-equiv") == "Content-Security-Policy"]
    assert csp and csp[0]["content"] == "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
