"""The contextual bandit over a task: rewards follow the hidden rule, held-out contexts are never
rewarded, seeded resets repeat, one environment agrees with the vectorized ones."""

from __future__ import annotations

import torch

from grokscope import RunConfig, TaskConfig
from grokscope.config import AgentConfig
from grokscope.rl import Bandit, ContextualBandit, VectorBandit
from grokscope.rl.agents import Replay, epsilon_at
from grokscope.tasks import task_from_config


def _bandit(op="x+y", p=11, frac=0.5, seed=0):
    cfg = RunConfig(task=TaskConfig(kind="modular", op=op, p=p, train_fraction=frac), seed=seed)
    task = task_from_config(cfg)
    return task, ContextualBandit(task)


def test_rewards_follow_the_hidden_rule():
    for op, rule in (("x+y", lambda a, b: (a + b) % 11), ("x-y", lambda a, b: (a - b) % 11)):
        task, env = _bandit(op)
        idx = env.train_contexts
        x = env.inputs[idx]
        answers = torch.tensor([rule(int(a), int(b)) for a, b in zip(x[:, 0], x[:, 2])])
        assert torch.equal(env.reward(idx, answers), torch.ones(len(idx)))
        assert torch.equal(env.reward(idx, (answers + 1) % 11), torch.zeros(len(idx)))
        table = env.reward_table(idx)
        assert table.shape == (len(idx), 11) and torch.equal(table.sum(1), torch.ones(len(idx)))
        assert torch.equal(table.argmax(1), answers)


def test_held_out_contexts_are_never_drawn_nor_rewarded():
    task, env = _bandit()
    n_train = len(task.splits["train"])
    held = torch.arange(n_train, len(env))
    assert len(held) == len(task.splits["test"]) > 0
    right = torch.cat([task.splits["test"].targets])
    assert env.reward(held, right).sum() == 0  # even the hidden rule's answer gives nothing
    assert env.reward_table(held).sum() == 0
    vec = VectorBandit(env, 64)
    seen = set()
    vec.reset(seed=3)
    for _ in range(50):
        seen |= set(vec.idx.tolist())
        vec.step(torch.randint(11, (64,)))
    assert seen <= set(range(n_train)) and len(seen) > n_train // 2
    assert set(env.split_of[i] for i in seen) == {"train"}


def test_seeded_resets_repeat():
    _, env = _bandit()
    a, b, c = VectorBandit(env, 16), VectorBandit(env, 16), VectorBandit(env, 16)
    oa, _ = a.reset(seed=7)
    ob, _ = b.reset(seed=7)
    oc, _ = c.reset(seed=8)
    assert torch.equal(oa, ob) and not torch.equal(a.idx, c.idx)
    actions = torch.randint(11, (16,))
    ra, rb = a.step(actions), b.step(actions)
    assert all(torch.equal(x, y) for x, y in zip(ra[:4], rb[:4]))


def test_single_and_vectorized_environments_agree():
    _, env = _bandit()
    vec = VectorBandit(env, 8)
    obs, info = vec.reset(seed=1)
    actions = torch.randint(11, (8,))
    _, rewards, terminated, truncated, step_info = vec.step(actions)
    assert terminated.all() and not truncated.any()
    assert torch.equal(step_info["context"], info["context"])
    one = Bandit(env)
    for k in range(8):
        o, i = one.reset(context=int(info["context"][k]))
        assert torch.equal(o, obs[k]) and env.action_space.contains(int(actions[k]))
        _, r, term, trunc, _ = one.step(int(actions[k]))
        assert r == float(rewards[k]) and term and not trunc


def test_replay_ring_and_epsilon():
    buf = Replay(5, (2,), torch.long)
    for t in range(7):
        buf.add(torch.full((1, 2), t), torch.tensor([t]), torch.tensor([float(t)]), torch.full((1, 2), t + 1),
                torch.tensor([True]))
    assert buf.size == 5 and buf.pos == 2
    assert sorted(buf.action.tolist()) == [2, 3, 4, 5, 6]  # the two oldest were overwritten
    again = Replay(5, (2,), torch.long)
    again.load_state_dict(buf.state_dict())
    g1, g2 = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
    assert all(torch.equal(x, y) for x, y in zip(buf.sample(4, g1), again.sample(4, g2)))
    a = AgentConfig(kind="dqn", epsilon_start=1.0, epsilon_end=0.1, epsilon_steps=100)
    assert [epsilon_at(a, s) for s in (0, 50, 100, 500)] == [1.0, 0.55, 0.1, 0.1]
