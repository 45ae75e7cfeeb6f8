"""Sequence presets end to end, shrunk: the synthetic-sentiment LSTM at 6x init memorizes its reviews
with test accuracy near chance and generalizes much later; at 1x init it generalizes as it fits."""

from __future__ import annotations

from dataclasses import replace

import grokscope
from grokscope.config import LogConfig, apply_overrides

TINY = {"task.options.n_words": "40", "task.options.n_train": "400", "task.options.n_test": "500",
        "model.d_model": "32", "optim.lr": "3e-3", "optim.weight_decay": "0.5", "train.eval_every": "100"}
QUIET = LogConfig(figure=False, report=False, progress=False)


def _run(name, steps, path):
    cfg = apply_overrides(grokscope.get_preset(name), {**TINY, "train.steps": str(steps)})
    r = grokscope.train(replace(cfg, log=QUIET), path)
    return r.metrics, r.summary


def test_sentiment_lstm_at_large_init_groks_and_its_control_does_not(tmp_path):
    m, s = _run("omnigrok_sentiment_lstm", 3000, tmp_path / "lstm")
    mem, gen = s["events"]["memorized_step"], s["events"]["test_0.9"]
    assert mem is not None and gen is not None and gen >= 4 * mem, (mem, gen)
    assert next(x["test_acc"] for x in m if x["step"] >= mem) <= 0.65  # memorized near chance
    assert m[-1]["test_acc"] >= 0.9 and s["phase"] == "grokking"
    assert m[-1]["weight_norm"] < 0.2 * m[0]["weight_norm"]  # weight decay brought the norm down
    m, s = _run("omnigrok_sentiment_control", 800, tmp_path / "control")
    mem = s["events"]["memorized_step"]
    assert mem is not None and next(x["test_acc"] for x in m if x["step"] >= mem) >= 0.8
    assert s["phase"] == "comprehension"
