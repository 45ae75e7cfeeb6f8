"""The README's Python example runs as written (on a shortened demo budget)."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

import grokscope

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_python_example_runs(tmp_path, monkeypatch, capsys):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "README has a python example"
    code = blocks[0]
    assert len(code.strip().splitlines()) <= 12
    real = grokscope.get_preset

    def short(name):
        cfg = real(name)
        return replace(cfg, train=replace(cfg.train, steps=40), log=replace(cfg.log, figure=False))

    monkeypatch.setattr(grokscope, "get_preset", short)
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README.md", "exec"), {})
    out = capsys.readouterr().out
    assert "memorized_step" in out
    assert (tmp_path / "runs" / "my-demo" / "summary.json").exists()
    card = json.loads((tmp_path / "runs" / "my-demo" / "analysis.json").read_text())["card"]
    assert card["headline"] in out  # the algorithm card's headline was printed


def test_readme_drop_in_example_runs():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    code = next(b for b in blocks if "GrokfastEMA" in b)
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    assert namespace["loss"].dtype.is_floating_point and namespace["step"] == 99
