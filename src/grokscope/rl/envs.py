"""Environments an agent learns from, vectorized over many contexts at once.

`ContextualBandit` turns any classification Task into a contextual bandit: a context is one of
the task's inputs, an action is a class, and the reward is 1 when the action is the training
label. Only training contexts are ever drawn, and a held-out context (an evaluation split's input)
never gives a reward, even for the right action: the agent can learn the hidden rule's answer on
held-out contexts only by generalizing. On the modular tables (task kind 'modular') this is the
*modular bandit*: context (a, b), action c in Z_p, reward 1 when c = a op b.

`GridGoals` is the grid_goals task's world (tasks/grid.py) as n environments with state: an
episode starts at a random cell with a random training goal and ends on reaching it (reward 1) or
after `max_steps` moves (truncated); held-out goals are never drawn.

`VectorBandit`, `GridGoals` (n environments) and `Bandit`, `Grid` (one) follow the Gymnasium API
(`reset(seed=...)`, `step(action)` -> (observation, reward, terminated, truncated, info),
`observation_space`, `action_space`); the vector ones reset finished environments at once, as
Gymnasium's autoreset, with the observation the episode ended in under info['final_obs']. Each
has `q_table(gamma)`: the optimal action values of the task's training split, row for row (a
bandit's are its rewards), for the agents' Q-value error.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from grokscope.tasks import Task
from grokscope.tasks.grid import GridTask, move, state_pairs

__all__ = ["Bandit", "ContextualBandit", "Discrete", "Grid", "GridGoals", "TokenBox", "VectorBandit",
           "make_env"]


@dataclass(frozen=True)
class Discrete:
    """Gymnasium's Discrete(n): actions 0..n-1."""

    n: int

    def contains(self, x) -> bool:
        return 0 <= int(x) < self.n


@dataclass(frozen=True)
class TokenBox:
    """Observations: integer token arrays of `shape`, values in 0..high-1 (or float vectors when
    high is None)."""

    shape: tuple[int, ...]
    high: int | None


class ContextualBandit:
    """A classification task as a contextual bandit (see the module docstring).

    contexts: every split's inputs, training ones first; `train_contexts` their indices that are
    drawn and rewarded. `reward(idx, actions)` is the one place rewards come from.
    """

    def __init__(self, task: Task):
        if task.output != "classes":
            raise ValueError(f"a contextual bandit needs a task with class outputs, got {task.output!r}")
        names = list(task.splits)
        self.inputs = torch.cat([task.splits[n].inputs for n in names])
        answers = torch.cat([task.splits[n].targets for n in names])
        self.split_of = [n for n in names for _ in range(len(task.splits[n]))]
        n_train = len(task.splits["train"])
        self.rewarded = torch.zeros(len(answers), dtype=torch.bool)
        self.rewarded[:n_train] = True
        # the training labels are the rewarded answers; held-out contexts have none
        self._answers = torch.where(self.rewarded, answers, torch.full_like(answers, -1))
        self.train_contexts = torch.arange(n_train)
        self.n_actions = task.n_classes
        self.observation_space = TokenBox(tuple(task.input_shape),
                                          task.vocab_size if task.input_kind == "tokens" else None)
        self.action_space = Discrete(task.n_classes)

    def __len__(self) -> int:
        return len(self.inputs)

    def reward(self, idx: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """(k,) float rewards of `actions` in contexts `idx` (both (k,) long)."""
        return (self._answers[idx] == actions).to(torch.float32)

    def reward_table(self, idx: torch.Tensor) -> torch.Tensor:
        """(k, n_actions) rewards of every action in contexts `idx` (exact expected-reward gradient)."""
        return (self._answers[idx, None] == torch.arange(self.n_actions)).to(torch.float32)


class VectorBandit:
    """n copies of a ContextualBandit stepped together (Gymnasium vector API). Each reset draws a
    training context per copy from the seeded generator, or, with `fixed` ((n,) context indices),
    sets those same contexts every time (one copy per training context: the full batch); every
    step ends the episode and the next reset follows (autoreset)."""

    def __init__(self, bandit: ContextualBandit, n: int, fixed: torch.Tensor | None = None):
        if fixed is not None and len(fixed) != n:
            raise ValueError(f"fixed: {len(fixed)} contexts for {n} environments")
        self.bandit, self.num_envs, self.fixed = bandit, n, fixed
        self.observation_space, self.action_space = bandit.observation_space, bandit.action_space
        self.gen = torch.Generator().manual_seed(0)
        self.idx = torch.zeros(n, dtype=torch.long)

    def reset(self, *, seed: int | None = None, contexts: torch.Tensor | None = None):
        """(observations (n, ...), info {'context': indices}). `contexts` sets them instead of drawing."""
        if seed is not None:
            self.gen.manual_seed(seed)
        if contexts is None and self.fixed is not None:
            contexts = self.fixed
        elif contexts is None:
            pick = torch.randint(len(self.bandit.train_contexts), (self.num_envs,), generator=self.gen)
            contexts = self.bandit.train_contexts[pick]
        self.idx = contexts.clone()
        return self.bandit.inputs[self.idx], {"context": self.idx.clone()}

    def step(self, actions: torch.Tensor):
        """(next observations, rewards (n,), terminated (n,), truncated (n,), info) with autoreset:
        the observations are the next episodes' contexts, info['context'] the finished ones."""
        actions = torch.as_tensor(actions, dtype=torch.long).reshape(self.num_envs)
        rewards = self.bandit.reward(self.idx, actions)
        done_idx = self.idx
        obs, _ = self.reset()
        info = {"context": done_idx, "final_obs": self.bandit.inputs[done_idx]}
        return obs, rewards, torch.ones(self.num_envs, dtype=torch.bool), \
            torch.zeros(self.num_envs, dtype=torch.bool), info

    def q_table(self, gamma: float) -> torch.Tensor:
        return self.bandit.reward_table(self.bandit.train_contexts)

    def state_dict(self) -> dict:
        return {"gen": self.gen.get_state(), "idx": self.idx.clone()}

    def load_state_dict(self, state: dict) -> None:
        self.gen.set_state(state["gen"])
        self.idx = state["idx"].clone()


class Bandit:
    """One environment (Gymnasium's Env API) over a ContextualBandit."""

    def __init__(self, bandit: ContextualBandit):
        self.vec = VectorBandit(bandit, 1)
        self.observation_space, self.action_space = bandit.observation_space, bandit.action_space

    def reset(self, *, seed: int | None = None, context: int | None = None):
        obs, info = self.vec.reset(seed=seed, contexts=None if context is None else torch.tensor([context]))
        return obs[0], {"context": int(info["context"][0])}

    def step(self, action: int):
        context = int(self.vec.idx[0])
        reward = float(self.vec.bandit.reward(self.vec.idx, torch.tensor([int(action)]))[0])
        return self.vec.bandit.inputs[context], reward, True, False, {"context": context}


class GridGoals:
    """n grid_goals environments stepped together (see the module docstring)."""

    def __init__(self, task: GridTask, n: int):
        self.task, self.num_envs, self.size = task, n, task.size
        self.observation_space = TokenBox(tuple(task.input_shape), task.vocab_size)
        self.action_space = Discrete(4)
        self.gen = torch.Generator().manual_seed(0)
        self.pos = torch.zeros(n, 2, dtype=torch.long)
        self.goal = torch.zeros(n, 2, dtype=torch.long)
        self.t = torch.zeros(n, dtype=torch.long)

    def _draw(self, which: torch.Tensor) -> None:
        """New episodes in the environments `which` (bool (n,)): a training goal, a start cell != it."""
        k, N = int(which.sum()), self.size
        goals = self.task.train_goals[torch.randint(len(self.task.train_goals), (k,), generator=self.gen)]
        cell = torch.randint(N * N - 1, (k,), generator=self.gen)
        cell = cell + (cell >= goals[:, 0] * N + goals[:, 1]).long()  # skip the goal's cell
        self.goal[which], self.pos[which] = goals, torch.stack([cell // N, cell % N], dim=1)
        self.t[which] = 0

    def observe(self) -> torch.Tensor:
        return self.task.observe(self.pos, self.goal)

    def reset(self, *, seed: int | None = None, starts: torch.Tensor | None = None,
              goals: torch.Tensor | None = None):
        """(observations (n, 5), info). `starts` and `goals` (n, 2) set the episodes instead of drawing."""
        if seed is not None:
            self.gen.manual_seed(seed)
        if goals is None:
            self._draw(torch.ones(self.num_envs, dtype=torch.bool))
        else:
            self.pos, self.goal = starts.clone(), goals.clone()
            self.t = torch.zeros(self.num_envs, dtype=torch.long)
        return self.observe(), {"goal": self.goal.clone()}

    def step(self, actions: torch.Tensor):
        actions = torch.as_tensor(actions, dtype=torch.long).reshape(self.num_envs)
        self.pos = move(self.pos, actions, self.size)
        self.t += 1
        terminated = (self.pos == self.goal).all(1)
        truncated = ~terminated & (self.t >= self.task.max_steps)
        info = {"final_obs": self.observe(), "goal": self.goal.clone()}
        done = terminated | truncated
        if done.any():
            self._draw(done)
        return self.observe(), terminated.float(), terminated, truncated, info

    def q_table(self, gamma: float) -> torch.Tensor:
        pos, goal = state_pairs(self.size, self.task.train_goals)  # the train split's states, in order
        return self.task.q_star(pos, goal, gamma)

    def state_dict(self) -> dict:
        return {"gen": self.gen.get_state(), "pos": self.pos.clone(), "goal": self.goal.clone(),
                "t": self.t.clone()}

    def load_state_dict(self, state: dict) -> None:
        self.gen.set_state(state["gen"])
        self.pos, self.goal, self.t = state["pos"].clone(), state["goal"].clone(), state["t"].clone()


class Grid:
    """One grid_goals environment (Gymnasium's Env API)."""

    def __init__(self, task: GridTask):
        self.vec = GridGoals(task, 1)
        self.observation_space, self.action_space = self.vec.observation_space, self.vec.action_space
        self._done = False

    def reset(self, *, seed: int | None = None, start=None, goal=None):
        if goal is None:
            obs, info = self.vec.reset(seed=seed)
        else:
            obs, info = self.vec.reset(seed=seed, starts=torch.tensor([start]), goals=torch.tensor([goal]))
        return obs[0], {"goal": info["goal"][0].tolist()}

    def step(self, action: int):
        v = self.vec
        v.pos = move(v.pos, torch.tensor([int(action)]), v.size)
        v.t += 1
        terminated = bool((v.pos == v.goal).all())
        truncated = not terminated and int(v.t[0]) >= v.task.max_steps
        return v.observe()[0], float(terminated), terminated, truncated, {"goal": v.goal[0].tolist()}


def make_env(task: Task, n: int | None):
    """The vector environment of a task for n environments (None: a bandit's every training
    context at every step; a grid's 64)."""
    if isinstance(task, GridTask):
        return GridGoals(task, n or 64)
    bandit = ContextualBandit(task)
    if n is None:
        return VectorBandit(bandit, len(bandit.train_contexts), fixed=bandit.train_contexts)
    return VectorBandit(bandit, n)
