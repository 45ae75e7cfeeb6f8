"""Acceleration and steering switches in real (tiny) runs: each one changes training as claimed,
resumes exactly where it has state, and records what it did."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from grokscope import ConfigError, RunDir, train
from grokscope.training.loop import resume
from tests.conftest import tiny_grokking_config

TIMING = {"elapsed"}


def _cfg(steps=300, optim=None, train_=None, task=None, **top):
    base = tiny_grokking_config()
    return replace(base,
                   optim=replace(base.optim, **(optim or {})),
                   train=replace(base.train, steps=steps, **(train_ or {})),
                   task=replace(base.task, **(task or {})),
                   log=replace(base.log, figure=False, report=False), **top)


def _metrics(path):
    return [{k: v for k, v in json.loads(line).items() if k not in TIMING}
            for line in RunDir(path).metrics.read_text().splitlines()]


@pytest.mark.parametrize("optim", [
    {"grokfast": "ema", "grokfast_alpha": 0.9, "grokfast_lamb": 2.0},
    {"grokfast": "ma", "grokfast_window": 20, "grokfast_lamb": 2.0},
])
def test_grokfast_state_resumes_exactly(tmp_path, optim):
    full = train(_cfg(300, optim), tmp_path / "full", progress=False)
    part = train(_cfg(150, optim), tmp_path / "part", progress=False)
    resume(part.path, steps=300, progress=False)
    assert _metrics(part.path) == _metrics(full.path)
    plain = train(_cfg(300), tmp_path / "plain", progress=False)
    assert _metrics(plain.path) != _metrics(full.path)  # the filter changes training


def test_stablemax_and_orthograd_runs_log_collapse(tmp_path):
    r = train(_cfg(200, {"orthograd": True, "weight_decay": 0.0}, {"loss": "stablemax"}),
              tmp_path / "s", progress=False)
    assert r.summary["status"] == "completed"
    assert all(0.0 <= m["softmax_collapse"] <= 1.0 for m in r.metrics)
    cfg = json.loads(RunDir(r.path).config.read_text())
    assert cfg["optim"]["orthograd"] is True and cfg["train"]["loss"] == "stablemax"


def test_float32_ce_without_decay_collapses(tmp_path):
    """No weight decay, float32 loss: training logits grow until softmax collapses (Prieto et al.)."""
    r = train(_cfg(600, {"weight_decay": 0.0, "lr": 3e-2}, {"loss_dtype": "float32"}), tmp_path / "c",
              progress=False)
    assert r.metrics[0]["softmax_collapse"] == 0.0
    assert r.metrics[-1]["softmax_collapse"] > 0.5


def test_norm_constraint_in_a_run(tmp_path):
    r = train(_cfg(100, {"norm_constraint": 0.0, "weight_decay": 0.0}), tmp_path / "n", progress=False)
    norms = [m["weight_norm"] for m in r.metrics]
    assert max(norms) - min(norms) < 1e-6 * norms[0]


def test_dropout_schedules(tmp_path):
    base = _cfg(100, train_={"eval_budget": 0})  # every 10 steps (dropout makes evaluations dearer)
    lin = replace(base, model=replace(base.model, dropout=0.2),
                  train=replace(base.train, dropout_schedule="linear", dropout_final=0.0))
    r = train(lin, tmp_path / "lin", progress=False)
    drops = {m["step"]: m["dropout"] for m in r.metrics}
    assert drops[1] == pytest.approx(0.2 * (1 - 0 / 99)) and drops[100] == pytest.approx(0.0, abs=1e-9)
    assert all(a >= b for a, b in zip(list(drops.values())[1:], list(drops.values())[2:]))
    steps = replace(base, train=replace(base.train, dropout_schedule="steps",
                                        dropout_milestones="30:0.3,60:0"))
    r = train(steps, tmp_path / "steps", progress=False)
    drops = {m["step"]: m["dropout"] for m in r.metrics}
    assert drops[20] == 0.0 and drops[40] == 0.3 and drops[70] == 0.0
    with pytest.raises(ConfigError, match="train.dropout_milestones"):
        train(replace(base, train=replace(base.train, dropout_schedule="steps", dropout_milestones="x")),
              tmp_path / "bad")
    assert not (tmp_path / "bad").exists()


def test_curriculum_reveals_stages_and_resumes(tmp_path):
    cur = {"curriculum": "max_operand", "curriculum_stages": 3, "curriculum_stage_steps": 60,
           "eval_budget": 0}  # every 10 steps
    r = train(_cfg(240, train_=cur), tmp_path / "cur", progress=False)
    stages = {m["step"]: m["stage"] for m in r.metrics}
    assert stages[50] == 0 and stages[70] == 1 and stages[130] == 2 and stages[240] == 2
    events = [json.loads(line) for line in (r.path / "events.jsonl").read_text().splitlines()]
    assert [e["step"] for e in events if e["name"] == "stage"] == [60, 120]
    part = train(_cfg(90, train_=cur), tmp_path / "part", progress=False)
    resume(part.path, steps=240, progress=False)
    assert _metrics(part.path) == _metrics(r.path)


def test_curriculum_by_accuracy(tmp_path):
    cur = {"curriculum": "random", "curriculum_stages": 2, "curriculum_advance": "accuracy",
           "curriculum_threshold": 0.9}
    r = train(_cfg(200, train_=cur), tmp_path / "acc", progress=False)
    first_stage1 = next(m for m in r.metrics if m["stage"] == 1)
    before = [m for m in r.metrics if m["step"] < first_stage1["step"]]
    assert before[-1]["stage_train_acc"] >= 0.9


def test_commutative_augmentation_is_recorded(tmp_path):
    r = train(_cfg(50, task={"augment": "commutative", "train_fraction": 0.3}), tmp_path / "aug",
              progress=False)
    meta = r.summary["task"]
    assert meta["augmented"] == "commutative" and meta["n_train"] > meta["n_train_before"]
    assert meta["effective_train_fraction"] == pytest.approx(meta["n_train"] / meta["n_table"])
    with pytest.raises(ConfigError, match="task.augment: op 'x-y' is not commutative"):
        train(_cfg(50, task={"augment": "commutative", "op": "x-y"}), tmp_path / "bad")
    assert not (tmp_path / "bad").exists()


def test_transfer_from_another_run(tmp_path):
    src = train(_cfg(700), tmp_path / "plus", progress=False)
    assert src.summary["events"]["generalized_step"] is not None
    ft = train(_cfg(50, task={"op": "x-y"}, train_={"init_from": str(src.path)}), tmp_path / "minus",
               progress=False)
    lineage = ft.summary["lineage"]
    assert lineage["init_from"] == str(src.path) and lineage["step"] == 700
    assert lineage["source_task"]["op"] == "x+y"
    scratch = train(_cfg(50, task={"op": "x-y"}), tmp_path / "scratch", progress=False)
    assert ft.metrics[0]["train_loss"] != scratch.metrics[0]["train_loss"]  # started from src weights
    bigger = replace(_cfg(50), model=replace(_cfg(50).model, d_mlp=128),
                     train=replace(_cfg(50).train, init_from=str(src.path)))
    with pytest.raises(ConfigError, match=r"train.init_from: parameter 'blocks.0.mlp.W_in' has shape"):
        train(bigger, tmp_path / "bad")
    assert not (tmp_path / "bad").exists()


def test_orthograd_generalizes_where_plain_adamw_only_memorizes(tmp_path):
    """Prieto et al.'s setup, smaller (x+y mod 47): without weight decay ⊥AdamW reaches test accuracy
    0.9 within 3x the memorization step; plain AdamW memorizes and stays near zero test accuracy."""
    from grokscope import get_preset

    base = get_preset("prieto2025_orthograd")
    base = replace(base, task=replace(base.task, p=47), train=replace(base.train, steps=300, eval_every=10),
                   log=replace(base.log, figure=False, report=False, progress=False))
    runs = {}
    for og in (True, False):
        cfg = replace(base, optim=replace(base.optim, orthograd=og))
        runs[og] = train(cfg, tmp_path / f"orthograd-{og}", progress=False).metrics
    ortho, plain = runs[True], runs[False]
    mem = next(r["step"] for r in ortho if r["train_acc"] >= 0.99)
    t90 = next(r["step"] for r in ortho if r["test_acc"] >= 0.9)
    assert t90 < 3 * mem, (mem, t90)
    assert ortho[-1]["test_acc"] >= 0.9
    assert any(r["train_acc"] >= 0.99 for r in plain) and max(r["test_acc"] for r in plain) < 0.05
