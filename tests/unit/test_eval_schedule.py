"""The adaptive evaluation schedule: denser while accuracies move, within a compute budget, and a
pure function of the records (so a resumed run evaluates at the uninterrupted run's steps)."""

from __future__ import annotations

import re

import pytest
import torch

from grokscope import ModelConfig, RunConfig, TaskConfig, TrainConfig, detect
from grokscope.config import validate
from grokscope.errors import ConfigError
from grokscope.training.schedules import EvalSchedule
from grokscope.training.stepper import (
    SingleStepper,
    eval_cost,
    reuses_train_forward,
    same_in_train_and_eval,
)


def _curve(step: int) -> dict:
    """Train accuracy rises over steps 0-500; test accuracy from 2,000 to 2,500."""
    return {"step": step, "train_acc": min(1.0, step / 500),
            "test_acc": 0.0 if step < 2000 else min(1.0, (step - 2000) / 500)}


def _run(schedule: EvalSchedule, total: int, start: int = 0) -> list[int]:
    hits = []
    for step in range(start, total + 1):
        if step in schedule:
            hits.append(step)
            schedule.observe(_curve(step))
    return hits


def test_without_refinement_or_budget_it_is_the_base_schedule():
    hits = _run(EvalSchedule(1000, 4, 300, refine=0.0, budget=0.0), 1000)
    assert hits == [0, 1, 2, 3, 6, 10, 18, 32, 56, 100, 178, 300, 316, 562, 600, 900, 1000]


def test_refinement_is_dense_where_the_curve_moves_and_sparse_on_the_plateau():
    hits = _run(EvalSchedule(3000, 0, 250, refine=0.05), 3000)
    gaps = lambda lo, hi: [b - a for a, b in zip(hits, hits[1:]) if lo <= a < hi]
    assert max(gaps(250, 500)) <= 25  # train moves 0.05 per 25 steps: each interval moves <= 0.05
    assert set(gaps(750, 2000)) == {250}  # the plateau: the base schedule
    assert max(gaps(2250, 2500)) <= 25  # the test rise, once an evaluation has seen it move
    # a threshold crossing is dated to within the refined interval
    gen = next(s for s in hits if _curve(s)["test_acc"] >= 0.99)
    assert gen - max(s for s in hits if s < gen) <= 25


def test_budget_caps_the_evaluations_and_still_refines():
    cost, budget = 6.0, 0.04  # one evaluation = 6 steps; at most 4% of the compute
    hits = _run(EvalSchedule(3000, 20, 250, refine=0.05, budget=budget, cost=cost), 3000)
    spent = (len(hits) - 2) * cost  # steps 0 and 3,000 are free
    assert spent <= budget * 3000 + EvalSchedule.BURST * cost
    assert len(_run(EvalSchedule(3000, 20, 250, refine=0.05), 3000)) > 2 * len(hits)
    rise = [s for s in hits if 2000 < s <= 2500]
    assert len(rise) >= EvalSchedule.BURST  # credit saved on the plateau is spent on the rise
    assert 0 in hits and 3000 in hits


def test_replaying_records_restores_the_schedule():
    """A schedule rebuilt from the records up to any step continues with the same steps."""
    args = (3000, 20, 250, 0.05, 0.04, 6.0)
    full = _run(EvalSchedule(*args), 3000)
    for cut in (7, 160, 1010, 2100, 2301):
        resumed = EvalSchedule(*args)
        for s in full:
            if s <= cut:
                resumed.observe(_curve(s))
        assert [s for s in full if s <= cut] + _run(resumed, 3000, start=cut + 1) == full, cut


def test_eval_cost_counts_the_splits_and_frees_the_full_batch_train_split():
    cfg = validate(RunConfig(task=TaskConfig(op="x+y", p=23, train_fraction=0.5),
                             model=ModelConfig(n_layers=1, d_model=32, n_heads=4, d_mlp=64),
                             train=TrainConfig(steps=10, batch_size=None)))
    st = SingleStepper(cfg, torch.device("cpu"))
    n_train, n_test = len(st.task.splits["train"]), len(st.task.splits["test"])
    assert same_in_train_and_eval(st.model)
    assert st.eval_costs == [pytest.approx(n_test / (3 * n_train))]
    mini = validate(RunConfig(task=cfg.task, model=cfg.model, train=TrainConfig(steps=10, batch_size=64)))
    assert not reuses_train_forward(mini, st.task, st.model)
    assert eval_cost(mini, st.task, False) == pytest.approx((n_train + n_test) / (3 * 64))
    dropout = validate(RunConfig(task=cfg.task, model=ModelConfig(**{**cfg.model.__dict__, "dropout": 0.1}),
                                 train=cfg.train))
    st_d = SingleStepper(dropout, torch.device("cpu"))
    assert not same_in_train_and_eval(st_d.model)
    assert st_d.eval_costs == [pytest.approx((n_train + n_test) / (3 * n_train))]


def test_full_batch_train_metrics_come_from_the_next_steps_forward():
    """The reused forward gives the same train metrics and the same next update as a separate pass."""
    cfg = validate(RunConfig(task=TaskConfig(op="x+y", p=23, train_fraction=0.5),
                             model=ModelConfig(n_layers=1, d_model=32, n_heads=4, d_mlp=64, norm="none"),
                             train=TrainConfig(steps=20, batch_size=None)))
    a, b = SingleStepper(cfg, torch.device("cpu")), SingleStepper(cfg, torch.device("cpu"))
    b._reuse = False  # b evaluates the train split in its own pass
    for _ in range(5):
        for st in (a, b):
            st.prepare(lambda *x: None)
            st.train_step()
        ra, rb = a.evaluate()[0], b.evaluate()[0]
        assert a._pending is not None and b._pending is None
        assert ra == rb
    for st in (a, b):
        st.prepare(lambda *x: None)
        st.train_step()
    for pa, pb in zip(a.model.parameters(), b.model.parameters()):
        assert torch.equal(pa, pb)


def test_event_resolution_is_the_interval_before_the_crossing():
    records = [{"step": s, "train_acc": min(1.0, s / 100), "test_acc": 1.0 if s >= 700 else 0.1}
               for s in (0, 10, 50, 100, 150, 200, 400, 600, 700, 710, 720, 730, 800)]
    ev = detect.analyze(records)["events"]
    assert ev["memorized_step"] == 100 and ev["memorized_resolution"] == 50
    assert ev["generalized_step"] == 700 and ev["generalized_resolution"] == 100
    assert detect.dated(710, 10) == "710 (to within 10 steps)" and detect.dated(None, None) == "-"


@pytest.mark.parametrize("field, value, message", [
    ("eval_budget", 1.5, "train.eval_budget: must be in [0, 1), got 1.5"),
    ("eval_refine", -0.1, "train.eval_refine: must be in [0, 1), got -0.1"),
])
def test_bad_schedule_settings_name_the_field(field, value, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        validate(RunConfig(train=TrainConfig(**{field: value})))


def test_summary_times_evaluations_and_checkpoints(tmp_path):
    from grokscope import LogConfig, train

    cfg = RunConfig(task=TaskConfig(op="x+y", p=23, train_fraction=0.5),
                    model=ModelConfig(n_layers=1, d_model=32, n_heads=4, d_mlp=64),
                    train=TrainConfig(steps=30, eval_every=10), log=LogConfig(progress=False, figure=False,
                                                                             report=False))
    t = train(cfg, tmp_path / "run").summary["timing"]
    assert set(t) == {"session_seconds", "eval_seconds", "checkpoint_seconds"}
    assert 0 < t["eval_seconds"] < t["session_seconds"] and 0 < t["checkpoint_seconds"] < t["session_seconds"]


def test_fused_adam_uses_torchs_fused_kernel_and_is_refused_elsewhere():
    from grokscope import OptimConfig
    from grokscope.training.optim import build_optimizer

    w = torch.nn.Parameter(torch.ones(3))
    assert build_optimizer(OptimConfig(name="adamw", fused=True), [w]).defaults["fused"] is True
    assert not build_optimizer(OptimConfig(name="adamw"), [w]).defaults.get("fused")
    with pytest.raises(ConfigError, match=r"^optim\.fused: needs optim\.name adam or adamw"):
        validate(RunConfig(optim=OptimConfig(name="sgd", fused=True)))
