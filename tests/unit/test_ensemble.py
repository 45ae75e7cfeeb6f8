"""Ensemble training pieces: the batched update against UpdateRule, eligibility, and bad input."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from torch import nn

from grokscope import ConfigError, LogConfig, ModelConfig, OptimConfig, RunConfig, TaskConfig, TrainConfig
from grokscope.training.batched import BatchedUpdate as _BatchedUpdate
from grokscope.training.ensemble import Ensemble, can_ensemble, ensemble_groups, train_ensemble
from grokscope.training.losses import loss_fn
from grokscope.training.losses import per_example_loss as _per_example_loss
from grokscope.training.optim import UpdateRule


def _models(k: int) -> list[nn.Module]:
    out = []
    for seed in range(k):
        torch.manual_seed(seed)
        out.append(nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3)))
    return out


UPDATES = {
    "adamw": dict(name="adamw"),
    "adam_coupled": dict(name="adam"),
    "sgd_momentum": dict(name="sgd", momentum=0.9),
    "sgd_plain": dict(name="sgd", momentum=0.0),
    "rmsprop": dict(name="rmsprop", momentum=0.5),
    "rmsprop_plain": dict(name="rmsprop", momentum=0.0),
    "to_init_matrices": dict(name="adamw", weight_decay_mode="to_init", decay_params="matrices"),
    "grokfast_ema_clip": dict(name="adamw", grokfast="ema", grad_clip=0.05),
    "grokfast_ma_norm": dict(name="adamw", grokfast="ma", grokfast_window=3, norm_constraint=0.0),
    "grokfast_ma_sum": dict(name="sgd", grokfast="ma", grokfast_window=2, grokfast_filter="sum",
                            norm_constraint=5.0),
}


@pytest.mark.parametrize("kind", list(UPDATES))
def test_batched_update_matches_update_rule(kind):
    """K=3 stacked models with different lr, weight decay and Grokfast lambda take the same steps as
    three UpdateRules fed the same gradients; the exported state equals each rule's own state."""
    lrs, wds, lambs = [1e-2, 3e-2, 5e-3], [0.0, 0.5, 2.0], [0.5, 2.0, 4.0]
    cfgs = [OptimConfig(lr=lr, weight_decay=wd, grokfast_lamb=lamb, **UPDATES[kind])
            for lr, wd, lamb in zip(lrs, wds, lambs)]
    singles = _models(3)
    rules = [UpdateRule(c, m) for c, m in zip(cfgs, singles)]
    stacked, _ = torch.func.stack_module_state(_models(3))
    params = list(stacked.values())
    batched = _BatchedUpdate(cfgs, params, [r.norm_target for r in rules])
    g = torch.Generator().manual_seed(0)
    for step in range(6):
        step_lrs = [lr * (step + 1) / 6 for lr in lrs]  # a changing schedule
        for p in params:
            p.grad = torch.randn(p.shape, generator=g)
        for i, (rule, model) in enumerate(zip(rules, singles)):
            rule.set_lr(step_lrs[i])
            for p, s in zip(model.parameters(), params):
                p.grad = s.grad[i].clone()
            rule.step()
        batched.step(step_lrs)
    for i, model in enumerate(singles):
        for p, s in zip(model.parameters(), params):
            torch.testing.assert_close(s[i], p.detach(), rtol=1e-6, atol=1e-6)
    # export: member 1's optimizer and filter state, loaded into a fresh rule, equals rule 1's
    fresh = UpdateRule(cfgs[1], _models(3)[1])
    batched.export(1, fresh, step_lrs[1])
    want, got = rules[1].optimizer.state_dict(), fresh.optimizer.state_dict()
    assert want["param_groups"] == got["param_groups"]
    assert want["state"].keys() == got["state"].keys()
    for j in want["state"]:
        assert want["state"][j].keys() == got["state"][j].keys()
        for key in want["state"][j]:
            torch.testing.assert_close(got["state"][j][key], want["state"][j][key], rtol=1e-5, atol=1e-7)
    if rules[1].filter is not None:
        sw, sg = rules[1].filter.state_dict(), fresh.filter.state_dict()
        assert sw.keys() == sg.keys() and sw["lamb"] == sg["lamb"]
        torch.testing.assert_close(sg.get("ema", sg.get("grads")), sw.get("ema", sw.get("grads")))


def _cfg(**optim) -> RunConfig:
    return RunConfig(task=TaskConfig(op="x+y", p=23, train_fraction=0.5),
                     model=ModelConfig(n_layers=1, d_model=32, n_heads=4, d_mlp=64, norm="none"),
                     optim=OptimConfig(**optim), train=TrainConfig(steps=5, eval_every=5),
                     log=LogConfig(progress=False, figure=False, report=False))


def test_can_ensemble_names_what_blocks_it():
    a = _cfg()
    ok = [a, replace(a, seed=1, name="b", task=replace(a.task, train_fraction=0.3),
                     model=replace(a.model, init_scale=2.0),
                     optim=replace(a.optim, lr=3e-3, weight_decay=0.1, grokfast_lamb=5.0))]
    assert can_ensemble(ok) is None
    assert can_ensemble([]) == "no configs"
    assert can_ensemble([a, replace(a, optim=replace(a.optim, name="sgd"))]).startswith("optim.name differs")
    assert can_ensemble([a, replace(a, model=replace(a.model, d_mlp=32))]).startswith("model.d_mlp differs")
    assert can_ensemble([a, replace(a, train=replace(a.train, steps=6))]).startswith("train.steps differs")
    ortho = replace(a, optim=replace(a.optim, orthograd=True))
    assert can_ensemble([ortho, ortho]).startswith("optim.orthograd: not supported")
    drop = replace(a, model=replace(a.model, dropout=0.1))
    assert can_ensemble([drop]).startswith("model.dropout: not supported")
    assert can_ensemble([replace(a, optim=replace(a.optim, lr=-1.0))]).startswith("optim.lr: must be > 0")


def test_ensemble_groups_pack_compatible_configs():
    a = _cfg()
    sgd = replace(a, optim=replace(a.optim, name="sgd"))
    ortho = replace(a, optim=replace(a.optim, orthograd=True))
    cfgs = [a, sgd, replace(a, seed=1), ortho, replace(sgd, seed=1), replace(a, seed=2), ortho]
    assert ensemble_groups(cfgs) == [[0, 2, 5], [1, 4], [3], [6]]
    assert ensemble_groups(cfgs, max_size=2) == [[0, 2], [1, 4], [3], [5], [6]]
    for group in ensemble_groups(cfgs):
        assert can_ensemble([cfgs[i] for i in group]) is None or len(group) == 1


def test_train_ensemble_rejects_before_writing(tmp_path):
    a = _cfg()
    outs = [tmp_path / "a", tmp_path / "b"]
    with pytest.raises(ConfigError, match=r"^optim\.betas differs"):
        train_ensemble([a, replace(a, optim=replace(a.optim, betas=(0.9, 0.99)))], outs)
    with pytest.raises(ConfigError, match="2 output directories for 1 configs"):
        train_ensemble([a], outs)
    with pytest.raises(ConfigError, match="distinct"):
        train_ensemble([a, a], [outs[0], outs[0]])
    assert not any(tmp_path.iterdir())


def test_members_start_from_single_run_init_and_split():
    """Member i has the initial weights and training rows a single run of config i builds."""
    from grokscope.models import build_model
    from grokscope.tasks import task_from_config

    a = _cfg()
    cfgs = [a, replace(a, seed=3, task=replace(a.task, train_fraction=0.3),
                       model=replace(a.model, init_scale=2.0))]
    ens = Ensemble(cfgs)
    for i, c in enumerate(cfgs):
        task = task_from_config(c)
        torch.manual_seed(c.seed)
        model = build_model(c.model, task)
        for name, p in model.named_parameters():
            assert torch.equal(ens.params[name][i], p.detach())
        n = task.train_idx.numel()
        train = task.splits["train"]
        assert torch.equal(ens.train.inputs[i, :n], train.inputs) and int(ens.train.sizes[i]) == n
        assert torch.equal(ens.train.targets[i, :n], task.train_labels)
        tokens = task.tokens()
        logits = ens._forward(ens.params, tokens, shared=True)  # (K, N, C)
        torch.testing.assert_close(logits[i], model(tokens).detach(), rtol=1e-5, atol=1e-5)
    assert ens.train.inputs.shape[1] == max(int(ens.train.sizes[i]) for i in range(2))


@pytest.mark.parametrize("kind", ["ce", "mse", "stablemax"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_per_example_loss_averages_to_loss_fn(kind, dtype):
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 7, 5, generator=g) * 4  # (K, n, C)
    labels = torch.randint(0, 5, (3, 7), generator=g)
    per = _per_example_loss(logits, labels, kind, dtype)  # (K, n)
    assert per.shape == (3, 7) and per.dtype == getattr(torch, dtype)
    for i in range(3):
        torch.testing.assert_close(per[i].mean(), loss_fn(logits[i], labels[i], kind, dtype))
