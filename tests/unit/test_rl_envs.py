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


def _grid(layout="rows", size=5, frac=0.6, seed=0):
    from grokscope.tasks.grid import GridTask

    cfg = RunConfig(task=TaskConfig(kind="grid_goals", train_fraction=frac,
                                    options={"size": size, "layout": layout}), seed=seed)
    task = task_from_config(cfg)
    assert isinstance(task, GridTask)
    return task


def test_grid_states_targets_and_ids():
    from grokscope.tasks.grid import goal_ids, move, state_pairs

    for layout in ("rows", "diagonal"):
        task = _grid(layout)
        N = task.size
        for name, goals in (("train", task.train_goals), ("test", task.test_goals)):
            s = task.splits[name]
            pos, goal = state_pairs(N, goals)
            assert len(s) == len(goals) * (N * N - 1) and (pos != goal).any(1).all()
            d = (pos - goal).abs().sum(1)
            # the canonical target is a shortest move, and accept holds every shortest move
            assert ((move(pos, s.targets, N) - goal).abs().sum(1) == d - 1).all()
            for a in range(4):
                shorter = (move(pos, torch.full((len(pos),), a), N) - goal).abs().sum(1) < d
                assert torch.equal(s.accept[:, a], shorter)
            u, v = goal_ids(N, layout, goal)
            assert torch.equal(s.inputs[:, 2], 2 * N + task.row_id[u])
            assert torch.equal(s.inputs[:, 3], 3 * N + task.col_id[v])
        # held-out goals are disjoint from training goals, and every id names some training goal
        train = {tuple(g) for g in task.train_goals.tolist()}
        assert not train & {tuple(g) for g in task.test_goals.tolist()}
        u, v = goal_ids(N, layout, task.train_goals)
        assert set(u.tolist()) == set(range(N)) == set(v.tolist())


def test_grid_environment_rewards_resets_and_single_agrees():
    from grokscope.rl import Grid, GridGoals
    from grokscope.tasks.grid import move

    task = _grid()
    held = {tuple(g) for g in task.test_goals.tolist()}
    vec = GridGoals(task, 32)
    vec.reset(seed=5)
    seen, rewards = set(), 0.0
    for _ in range(200):  # random walks: episodes end on the goal (reward 1) or by truncation
        seen |= {tuple(g) for g in vec.goal.tolist()}
        before_pos, before_goal = vec.pos.clone(), vec.goal.clone()
        actions = torch.randint(4, (32,))
        _, r, term, trunc, info = vec.step(actions)
        arrived = (move(before_pos, actions, task.size) == before_goal).all(1)
        assert torch.equal(term, arrived) and torch.equal(r, arrived.float()) and not (term & trunc).any()
        rewards += float(r.sum())
    assert rewards > 0 and not seen & held  # held-out goals are never drawn, so never rewarded
    a, b = GridGoals(task, 8), GridGoals(task, 8)
    oa, _ = a.reset(seed=1)
    ob, _ = b.reset(seed=1)
    assert torch.equal(oa, ob)
    acts = torch.randint(4, (8,))
    assert all(torch.equal(x, y) for x, y in zip(a.step(acts)[:4], b.step(acts)[:4]))
    # one environment steps as the vectorized ones do
    vec = GridGoals(task, 4)
    obs, info = vec.reset(seed=2)
    starts, goals = vec.pos.clone(), vec.goal.clone()
    acts = torch.tensor([0, 1, 2, 3])
    vo, vr, vt, vtr, vinfo = vec.step(acts)
    for k in range(4):
        one = Grid(task)
        o, _ = one.reset(start=starts[k].tolist(), goal=goals[k].tolist())
        assert torch.equal(o, obs[k])
        o2, r, term, trunc, _ = one.step(int(acts[k]))
        assert r == float(vr[k]) and term == bool(vt[k]) and torch.equal(o2, vinfo["final_obs"][k])


def test_grid_q_star_and_rollout_success():
    task = _grid()
    from grokscope.rl import GridGoals
    from grokscope.tasks.grid import move, state_pairs

    q = GridGoals(task, 1).q_table(0.9)
    s = task.splits["train"]
    pos, goal = state_pairs(task.size, task.train_goals)
    for a in range(4):  # reward 1 on arrival: Q*(s, a) = 0.9 ** (distance from the next cell)
        d = (move(pos, torch.full((len(pos),), a), task.size) - goal).abs().sum(1)
        assert torch.allclose(q[:, a], 0.9 ** d.float())
    assert s.accept.gather(1, q.argmax(1, keepdim=True)).all()  # the greedy action of Q* is a shortest move

    class Oracle(torch.nn.Module):  # a model that outputs Q*: it reaches every goal
        def forward(self, x):
            N = task.size
            pos = torch.stack([x[:, 0], x[:, 1] - N], 1)
            gx = [int(torch.nonzero(task.row_id == (t - 2 * N))[0]) for t in x[:, 2].tolist()]
            gy = [int(torch.nonzero(task.col_id == (t - 3 * N))[0]) for t in x[:, 3].tolist()]
            return task.q_star(pos, torch.tensor([gx, gy]).T, 0.9)

    assert task.success(Oracle(), task.test_goals, torch.device("cpu")) == 1.0
    assert task.measures(Oracle(), torch.device("cpu")) == {"train_success": 1.0, "test_success": 1.0}


def test_full_batch_agents_act_on_the_contexts_they_are_rewarded_for():
    # contexts None (and no batch size): every training context at every step, for every agent;
    # the observations the agent acts on are those of the contexts the environment rewards
    import dataclasses

    from grokscope.rl import make_env
    from grokscope.rl.agents import AgentStepper
    from tests.conftest import tiny_grokking_config

    task, env = _bandit()
    vec = make_env(task, None)
    assert torch.equal(vec.fixed, env.train_contexts)
    vec.reset(seed=3)
    for _ in range(3):
        obs, *_ = vec.step(torch.zeros(vec.num_envs, dtype=torch.long))
        assert torch.equal(vec.idx, env.train_contexts) and torch.equal(obs, env.inputs[env.train_contexts])
    for kind in ("exact_pg", "reinforce", "dqn"):
        cfg = dataclasses.replace(tiny_grokking_config(), agent=AgentConfig(kind=kind, gamma=0.0))
        stepper = AgentStepper(cfg, torch.device("cpu"))
        for _ in range(3):
            stepper.prepare(lambda *a: None)
            stepper.train_step()
            assert torch.equal(stepper.obs, stepper.bandit.inputs[stepper.vec.idx]), kind
