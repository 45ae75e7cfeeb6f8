"""Sparse parity end to end: an MLP memorizes 300 strings of 16 bits, then learns the parity, and the
hidden-progress measures move first (merrill2023_parity shrunk to ~3 s)."""

from __future__ import annotations

from dataclasses import replace

import grokscope
from grokscope.config import LogConfig, apply_overrides
from grokscope.detect import first_step


def test_finite_sample_parity_memorizes_first_then_generalizes_with_hidden_progress(tmp_path):
    cfg = apply_overrides(grokscope.get_preset("merrill2023_parity"),
                          {"task.options.n_bits": "16", "task.options.n_train": "300",
                           "task.options.n_test": "1000", "model.d_mlp": "256", "train.steps": "4000",
                           "train.eval_every": "50"})
    quiet = LogConfig(figure=False, report=False, progress=False)
    r = grokscope.train(replace(cfg, log=quiet), tmp_path / "run")
    m, ev = r.metrics, r.summary["events"]
    assert r.summary["measures"] == ["fourier_gap", "subset_weight_share"]
    mem, gen = ev["memorized_step"], ev["generalized_step"]
    assert mem is not None and gen is not None and gen >= 2 * mem  # the jump comes well after the fit
    assert next(x["test_acc"] for x in m if x["step"] >= mem) <= 0.65  # memorized, near chance
    assert m[-1]["test_acc"] >= 0.99
    assert abs(m[0]["fourier_gap"]) < 0.2 and m[-1]["fourier_gap"] > 0.8
    assert m[0]["subset_weight_share"] < 0.3 and m[-1]["subset_weight_share"] > 0.6
    half_gap = first_step(m, "fourier_gap", 0.5 * m[-1]["fourier_gap"])
    assert half_gap <= first_step(m, "test_acc", 0.75)  # the Fourier gap moves no later than accuracy
