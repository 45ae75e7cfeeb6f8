"""Environments an agent learns from, vectorized over many contexts at once.

`ContextualBandit` turns any classification Task into a contextual bandit: a context is one of
the task's inputs, an action is a class, and the reward is 1 when the action is the training
label. Only training contexts are ever drawn, and a held-out context (an evaluation split's input)
never gives a reward, even for the right action: the agent can learn the hidden rule's answer on
held-out contexts only by generalizing. On the modular tables (task kind 'modular') this is the
*modular bandit*: context (a, b), action c in Z_p, reward 1 when c = a op b.

`VectorBandit` and `Bandit` follow the Gymnasium API (`reset(seed=...)`, `step(action)` ->
(observation, reward, terminated, truncated, info), `observation_space`, `action_space`) for n
environments or one; a bandit episode ends after one step.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from grokscope.tasks import Task

__all__ = ["Bandit", "ContextualBandit", "Discrete", "TokenBox", "VectorBandit"]


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
    training context per copy from the seeded generator; every step ends the episode and the next
    reset draws again (autoreset)."""

    def __init__(self, bandit: ContextualBandit, n: int):
        self.bandit, self.num_envs = bandit, n
        self.observation_space, self.action_space = bandit.observation_space, bandit.action_space
        self.gen = torch.Generator().manual_seed(0)
        self.idx = torch.zeros(n, dtype=torch.long)

    def reset(self, *, seed: int | None = None, contexts: torch.Tensor | None = None):
        """(observations (n, ...), info {'context': indices}). `contexts` sets them instead of drawing."""
        if seed is not None:
            self.gen.manual_seed(seed)
        if contexts is None:
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
        info = {"context": done_idx}
        return obs, rewards, torch.ones(self.num_envs, dtype=torch.bool), \
            torch.zeros(self.num_envs, dtype=torch.bool), info

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
