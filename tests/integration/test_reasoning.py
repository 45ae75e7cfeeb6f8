"""A tiny composition run end to end: it groks in distribution; then `analyze` with the logit lens and causal
tracing."""

from __future__ import annotations

import json

import grokscope
from grokscope import ModelConfig, OptimConfig, RunConfig, TaskConfig, TrainConfig
from grokscope.config import LogConfig

# complete out-degree: 180 atomic facts and 900 two-hop facts (phi 5 -> 855 of them trained on);
# seeds 0 / 1 / 2 memorize at step 200 and pass test_iid 0.9 at 1,100 / 1,200 / 1,000
TINY = {"n_entities": 30, "n_relations": 6, "out_degree": 6, "phi": 5.0, "n_test": 60}


def test_a_tiny_composition_run_groks_in_distribution_and_its_lens_finds_the_bridge(tmp_path):
    cfg = RunConfig(task=TaskConfig(kind="composition", options=TINY),
                    model=ModelConfig(n_layers=2, d_model=64, n_heads=4, d_mlp=256, norm="pre"),
                    optim=OptimConfig(lr=3e-3, weight_decay=1.0, warmup_steps=100, grad_clip=1.0),
                    train=TrainConfig(steps=1500, batch_size=256, eval_every=100, eval_budget=0.0,
                                      eval_per_decade=0, eval_refine=0.0),
                    log=LogConfig(figure=False, report=False, progress=False))
    r = grokscope.train(cfg, tmp_path / "run")
    ev, by_step = r.summary["events"], {m["step"]: m for m in r.metrics if "test_iid_acc" in m}
    # grokking in distribution: the training facts fit early, held-out two-hop queries much later
    assert ev["memorized_step"] <= 300 and by_step[ev["memorized_step"]]["test_iid_acc"] <= 0.5
    assert ev["test_0.9"] is not None and ev["test_0.9"] >= 3 * ev["memorized_step"]
    assert r.metrics[-1]["id_atomic_acc"] >= 0.95 and r.metrics[-1]["train_inferred_acc"] >= 0.95
    assert r.metrics[-1]["test_ood_acc"] <= 0.5  # OOD two-hop queries are not learned
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
    assert final["trace_h"][-1] <= 0.02  # position h after the last layer is not read again (rare ties aside)
    assert out["card"]["headline"].startswith("Bridge entity decoded at layer 1 at position r1")
    rows = [json.loads(line) for line in (tmp_path / "run" / "analysis.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == out["steps"] and "test_ood_acc" in rows[-1]
