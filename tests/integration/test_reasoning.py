"""A tiny composition run end to end: training, then `analyze` with the logit lens and causal tracing."""

from __future__ import annotations

import json

import grokscope
from grokscope import ModelConfig, OptimConfig, RunConfig, TaskConfig, TrainConfig
from grokscope.config import LogConfig

TINY = {"n_entities": 40, "n_relations": 6, "out_degree": 3, "phi": 2.0, "n_test": 40}


def test_lens_and_tracing_on_a_tiny_trained_composition_run(tmp_path):
    cfg = RunConfig(task=TaskConfig(kind="composition", options=TINY),
                    model=ModelConfig(n_layers=2, d_model=64, n_heads=4, d_mlp=128, norm="pre"),
                    optim=OptimConfig(lr=3e-3, weight_decay=0.0),
                    train=TrainConfig(steps=300, batch_size=256, eval_every=100),
                    log=LogConfig(figure=False, report=False, progress=False))
    r = grokscope.train(cfg, tmp_path / "run")
    assert r.metrics[-1]["id_atomic_acc"] >= 0.95  # the atomic facts are learned
    out = grokscope.analyze(tmp_path / "run", max_checkpoints=3, report=False)
    assert out["kind"] == "reasoning" and {f["id"] for f in out["figures"]} == {"lens", "tracing"}
    assert all((tmp_path / "run" / f["file"]).is_file() for f in out["figures"])
    final = out["final"]
    assert len(final["bridge_top1"]) == 3 and len(final["trace_r1"]) == 3  # embedding + 2 layers
    # the last state at position r1 is the model's answer to the atomic fact (h, r1): the bridge
    assert final["bridge_top1"][-1] >= 0.9
    assert final["bridge_top1"][0] <= 0.1  # the embedding of r1 alone cannot name h's bridge
    # corrupting r2 at the last layer at position r2 (the read position) is running the corrupted query
    assert final["trace_r2"][-1] >= 0.5
    assert final["trace_h"][-1] == 0.0  # position h after the last layer is never read again
    assert out["card"]["headline"].startswith("Bridge entity decoded at layer 1 at position r1")
    rows = [json.loads(line) for line in (tmp_path / "run" / "analysis.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == out["steps"] and "test_ood_acc" in rows[-1]
