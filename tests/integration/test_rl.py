"""Reinforcement-learning agents in the one run lifecycle: a killed DQN run resumes exactly (replay
buffer, epsilon, target network, generators), agent metrics are logged, bad agent fields fail."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from grokscope import RunDir, train
from grokscope.config import AgentConfig, apply_overrides, validate
from grokscope.errors import ConfigError
from grokscope.training.checkpoint import load_checkpoint
from grokscope.training.loop import resume
from tests.conftest import tiny_grokking_config
from tests.integration.test_resume import _killed_at

TIMING = {"elapsed"}


def _dqn(steps=400):
    base = tiny_grokking_config()
    return replace(base, agent=AgentConfig(kind="dqn", contexts=64, replay_batch=128, buffer_size=2000,
                                           epsilon_steps=300, target_every=25, gamma=0.0),
                   train=replace(base.train, steps=steps, checkpoint_every=50),
                   log=replace(base.log, figure=False, report=False))


def _metrics(path):
    return [{k: v for k, v in json.loads(line).items() if k not in TIMING}
            for line in RunDir(path).metrics.read_text().splitlines()]


def test_a_killed_dqn_run_resumes_exactly(tmp_path):
    ref = train(_dqn(), tmp_path / "ref", progress=False)
    last = ref.metrics[-1]
    assert {"q_error", "epsilon", "return"} <= set(last) and last["epsilon"] == pytest.approx(0.05)
    assert ref.metrics[0]["return"] is None and 0 <= last["return"] <= 1
    assert ref.metrics[-1]["q_error"] < ref.metrics[1]["q_error"]  # it learns the rewards
    out = tmp_path / "killed"
    rd, killed_at = _killed_at(_dqn(), tmp_path, out, 170)
    assert killed_at < 400
    state = load_checkpoint(rd.list_checkpoints()[-1][1])
    assert state["extra"]["agent"]["replay"]["size"] > 0  # the buffer travels in the checkpoint
    resumed = resume(out, progress=False)
    assert resumed.summary["resumed_from"][0] <= killed_at
    assert _metrics(out) == _metrics(ref.path)
    a = load_checkpoint(rd.checkpoint_path(400))
    b = load_checkpoint(RunDir(ref.path).checkpoint_path(400))
    assert all((a["model"][k] == b["model"][k]).all() for k in a["model"])
    assert all((a["extra"]["agent"]["target"][k] == b["extra"]["agent"]["target"][k]).all()
               for k in a["extra"]["agent"]["target"])


def test_reinforce_resumes_exactly_and_logs_its_returns(tmp_path):
    cfg = replace(_dqn(200), agent=AgentConfig(kind="reinforce", contexts=64, entropy=0.01))
    ref = train(cfg, tmp_path / "ref", progress=False)
    assert "expected_return" in ref.metrics[-1] and "q_error" not in ref.metrics[-1]
    short = train(replace(cfg, train=replace(cfg.train, steps=120)), tmp_path / "short", progress=False)
    resume(short.path, steps=200, progress=False)
    a = load_checkpoint(RunDir(short.path).checkpoint_path(200))
    b = load_checkpoint(RunDir(ref.path).checkpoint_path(200))
    assert all((a["model"][k] == b["model"][k]).all() for k in a["model"])  # same actions sampled
    # the shorter budget evaluated at other steps (the schedule follows the budget), which only
    # restarts the `return` tally
    later = lambda path: {r["step"]: {k: v for k, v in r.items() if k != "return"} for r in _metrics(path)
                          if r["step"] > 120}
    x, y = later(short.path), later(ref.path)
    both = sorted(set(x) & set(y))
    assert 200 in both and [x[s] for s in both] == [y[s] for s in both]


@pytest.mark.parametrize("field,value,needle", [
    ("agent.kind", "ppo", "agent.kind"),
    ("agent.gamma", "1.5", "agent.gamma: must be in [0, 1]"),
    ("agent.epsilon_steps", "0", "agent.epsilon_steps: must be >= 1"),
    ("train.curriculum", "sum", "train.curriculum: must be 'none' for agent.kind 'dqn'"),
])
def test_bad_agent_fields_are_one_line_errors(field, value, needle):
    with pytest.raises(ConfigError) as e:
        validate(apply_overrides(_dqn(), {field: value}))
    assert needle in str(e.value) and "\n" not in str(e.value)


def test_grid_runs_learn_and_analyze_names_the_strategy(tmp_path):
    from grokscope import analyze, get_preset

    cfg = get_preset("rl_grid_supervised")
    cfg = replace(cfg, train=replace(cfg.train, steps=400), log=replace(cfg.log, figure=False, report=False))
    r = train(cfg, tmp_path / "sup", progress=False)
    last = r.metrics[-1]
    assert last["train_acc"] == 1.0 and last["train_success"] == 1.0
    assert last["test_success"] >= 0.9  # the 'rows' layout composes at once: held-out goals reached
    out = analyze(r.path, report=False)
    assert out["kind"] == "grid" and out["card"]["headline"].startswith("Strategy generalizing")
    maps = out["details"]["policy_maps"]
    assert maps["final"]["goal"] in r.summary["task"]["test_goals"]
    assert all(all(row) for row in maps["final"]["optimal"])  # every cell takes a shortest move
    assert {"grid-curves", "grid-policy"} == {f["id"] for f in out["figures"]}
    first = json.loads((r.path / "analysis.jsonl").read_text().splitlines()[0])
    assert first["test_success"] < 0.5 and len(first["id_fourier"]) == 2
    dqn = get_preset("rl_grid_dqn")
    dqn = replace(dqn, train=replace(dqn.train, steps=300), log=replace(dqn.log, figure=False, report=False))
    d = train(dqn, tmp_path / "dqn", progress=False)
    assert d.metrics[-1]["q_error"] < d.metrics[1]["q_error"] and d.metrics[-1]["return"] is not None
    assert d.metrics[-1]["train_success"] > d.metrics[0]["train_success"]


def test_agents_are_refused_where_they_do_not_apply(tmp_path):
    from grokscope import get_preset
    from grokscope.training.ensemble import train_ensemble

    grid = apply_overrides(get_preset("rl_grid_dqn"), {"agent.kind": "reinforce"})
    with pytest.raises(ConfigError, match="agent.kind: task kind 'grid_goals' is learned with"):
        validate(grid)
    cfg = _dqn(50)
    with pytest.raises(ConfigError, match="agent.kind: not supported by ensemble training"):
        train_ensemble([cfg, replace(cfg, seed=2)], [tmp_path / "a", tmp_path / "b"])
    assert not (tmp_path / "a").exists()


@pytest.mark.slow
def test_the_policy_gradient_preset_groks_and_its_policy_logits_have_key_frequencies(tmp_path):
    """rl_bandit_pg as shipped (15,000 steps, ~5 minutes on one thread): the agent fits its training
    contexts from rewards alone, held-out success rises long after, and the Fourier analysis of the
    policy logits finds the key frequencies."""
    from grokscope import analyze, get_preset

    cfg = get_preset("rl_bandit_pg")
    r = train(replace(cfg, log=replace(cfg.log, figure=False, report=False)), tmp_path / "pg", progress=False)
    ev = r.summary["events"]
    assert ev["memorized_step"] is not None and ev["test_0.9"] is not None
    assert ev["test_0.9"] >= 3 * ev["memorized_step"]
    at_mem = next(m for m in r.metrics if m["step"] >= ev["memorized_step"])
    assert at_mem["test_acc"] <= 0.6
    out = analyze(r.path, report=False)
    assert out["key_freqs"] and out["card"]["headline"].startswith("Agent's policy logits (exact_pg)")
