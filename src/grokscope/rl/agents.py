"""Reinforcement-learning agents as steppers of the one training engine.

An `AgentStepper` is the supervised `SingleStepper` with another update: the model is the policy
(its outputs are action logits) or, for DQN, the Q-function, and it learns only from the rewards
of the task's environment (`rl/envs.py:make_env`: a contextual bandit, or the gridworld).
Everything else is the supervised run's: config, evaluation schedule, metrics, checkpoints,
resume, detection, report. The evaluation of
every split scores the greedy action (argmax of the outputs) against the hidden rule's answer, so
`train_acc` is greedy success on the training contexts and `test_acc` on held-out ones; the
`train_loss` there is the cross-entropy of the outputs against that answer (a diagnostic; the
agent's own objective is not logged). Agent metrics on the same schedule:

- `return`: mean reward per episode collected since the previous evaluation (exact_pg: the
  expected reward of the contexts it updated on);
- `expected_return`: the stochastic policy's expected reward on all training contexts
  (exact_pg, reinforce);
- `q_error`: mean |Q(s, a) - Q*(s, a)| over training contexts and every action, where a bandit's
  Q* is its reward (dqn); `epsilon`: the exploration rate (dqn).

Agents:
- exact_pg: ascend the exact expected reward sum_a pi(a|s) r(s, a) of a batch of contexts, every
  action's reward read from the environment (no sampling noise); plus an entropy bonus;
- reinforce: one sampled action per context, the reward minus the batch's mean (baseline), the
  score-function gradient, plus an entropy bonus;
- dqn: epsilon-greedy actions (linear decay), transitions into a replay buffer, a minibatch
  regression of Q(s, a) on r + gamma max_a' Q_target(s', a') (zero after the episode's end), the
  target network copied every `target_every` steps.

A resumed run continues exactly: checkpoints hold the environment's and the agent's generators,
the replay buffer, the target network and the reward tallies.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F

from grokscope.rl.envs import make_env
from grokscope.training.losses import torch_dtype
from grokscope.training.stepper import SingleStepper, eval_cost

__all__ = ["AgentStepper", "Replay", "epsilon_at"]

_ENV_SEED = 0x5BD1E995
_AGENT_SEED = 0x27D4EB2F


def epsilon_at(agent, step: int) -> float:
    """Linear decay from epsilon_start to epsilon_end over epsilon_steps, then constant."""
    frac = min(1.0, step / agent.epsilon_steps)
    return agent.epsilon_start * (1 - frac) + agent.epsilon_end * frac


class Replay:
    """A ring buffer of transitions (obs, action, reward, next obs, done) held as tensors."""

    FIELDS = ("obs", "next_obs", "action", "reward", "done")

    def __init__(self, capacity: int, obs_shape: tuple[int, ...], obs_dtype: torch.dtype):
        self.capacity, self.pos, self.size = capacity, 0, 0
        self.obs = torch.zeros((capacity, *obs_shape), dtype=obs_dtype)
        self.next_obs = torch.zeros((capacity, *obs_shape), dtype=obs_dtype)
        self.action = torch.zeros(capacity, dtype=torch.long)
        self.reward = torch.zeros(capacity)
        self.done = torch.zeros(capacity, dtype=torch.bool)

    def add(self, obs, action, reward, next_obs, done) -> None:
        k = obs.shape[0]
        idx = (self.pos + torch.arange(k)) % self.capacity
        self.obs[idx], self.action[idx], self.reward[idx] = obs.cpu(), action.cpu(), reward.cpu()
        self.next_obs[idx], self.done[idx] = next_obs.cpu(), done.cpu()
        self.pos = int((self.pos + k) % self.capacity)
        self.size = min(self.capacity, self.size + k)

    def sample(self, k: int, gen: torch.Generator):
        i = torch.randint(self.size, (k,), generator=gen)
        return self.obs[i], self.action[i], self.reward[i], self.next_obs[i], self.done[i]

    def state_dict(self) -> dict:  # only the filled part is saved
        n = self.size
        return {"pos": self.pos, "size": n, **{name: getattr(self, name)[:n].clone() for name in self.FIELDS}}

    def load_state_dict(self, s: dict) -> None:
        self.pos, self.size = int(s["pos"]), int(s["size"])
        n = self.size
        for name in self.FIELDS:
            getattr(self, name)[:n] = s[name]


class AgentStepper(SingleStepper):
    """The step of one reinforcement-learning agent on a task's contextual bandit."""

    def __init__(self, cfg, device, init_from: bool = True):
        super().__init__(cfg, device, init_from)
        self.agent = a = cfg.agent
        n = a.contexts or cfg.train.batch_size
        self.vec = make_env(self.task, n)
        self.bandit = getattr(self.vec, "bandit", None)  # None for an environment with state
        self.obs, _ = self.vec.reset(seed=cfg.seed + _ENV_SEED)
        self.gen = torch.Generator().manual_seed(cfg.seed + _AGENT_SEED)
        self.reward_sum, self.episodes = 0.0, 0
        self.target = self.replay = None
        if a.kind == "dqn":
            self.target = copy.deepcopy(self.model).requires_grad_(False)
            self.replay = Replay(a.buffer_size, tuple(self.task.input_shape), self.obs.dtype)
        own = ("q_error", "epsilon") if a.kind == "dqn" else ("expected_return",)
        self.extra_measures = ("return", *own)
        self._reuse = False  # the agent's forward is not the evaluation's
        self.eval_costs = [eval_cost(cfg, self.task, False)]

    # ------------------------------------------------------------------------------ acting
    def _policy(self, obs: torch.Tensor):
        logits = self.model(obs.to(self.device)).to(torch_dtype(self.cfg.train.loss_dtype))
        logp = F.log_softmax(logits, dim=-1)
        entropy = -(logp.exp() * logp).sum(-1)
        return logp, entropy

    def train_step(self) -> torch.Tensor:
        kind = self.agent.kind
        loss = self._dqn_loss() if kind == "dqn" else self._pg_loss(exact=kind == "exact_pg")
        if loss is not None and (self.device.type != "cpu" or torch.isfinite(loss)):
            self.update.zero_grad()
            loss.backward()
            self.update.step()
        if self.target is not None and (self.step + 1) % self.agent.target_every == 0:
            self.target.load_state_dict(self.model.state_dict())
        self.step += 1
        return (torch.zeros(1) if loss is None else loss.detach().float().cpu()).reshape(1)

    def _pg_loss(self, exact: bool) -> torch.Tensor:
        a = self.agent
        idx = self.vec.idx
        logp, entropy = self._policy(self.obs)
        if exact:
            rewards = self.bandit.reward_table(idx).to(logp)  # (k, A): every action's reward
            gain = (logp.exp() * rewards).sum(-1)  # the exact expected reward of each context
            loss = -gain.mean()
            self._tally(float(gain.detach().sum()), len(idx))
            self.obs, _ = self.vec.reset()
        else:
            actions = torch.multinomial(logp.detach().exp().float().cpu(), 1, generator=self.gen)[:, 0]
            self.obs, r, _, _, _ = self.vec.step(actions)
            self._tally(float(r.sum()), len(r))
            adv = (r - r.mean() if a.baseline == "batch" else r).to(logp)
            chosen = logp.gather(1, actions.to(self.device)[:, None])[:, 0]
            loss = -(adv.to(self.device) * chosen).mean()
        return loss - a.entropy * entropy.mean()

    def _dqn_loss(self) -> torch.Tensor | None:
        a = self.agent
        eps = epsilon_at(a, self.step)
        with torch.no_grad():
            greedy = self.model(self.obs.to(self.device)).argmax(-1).cpu()
        k = greedy.shape[0]
        explore = torch.rand(k, generator=self.gen) < eps
        random_actions = torch.randint(self.task.n_classes, (k,), generator=self.gen)
        actions = torch.where(explore, random_actions, greedy)
        obs = self.obs
        obs_next, r, terminated, truncated, info = self.vec.step(actions)
        self._tally(float(r.sum()), int((terminated | truncated).sum()))
        # the state the move led to; a truncated episode's value is still bootstrapped from it
        self.replay.add(obs, actions, r, info["final_obs"], terminated)
        self.obs = obs_next
        if self.step < a.learning_starts:
            return None
        o, act, rew, o2, done = self.replay.sample(a.replay_batch, self.gen)
        q = self.model(o.to(self.device)).gather(1, act.to(self.device)[:, None])[:, 0]
        with torch.no_grad():
            nxt = self.target(o2.to(self.device)).max(-1).values
            target = rew.to(self.device) + a.gamma * (~done.to(self.device)) * nxt
        return F.mse_loss(q.float(), target.float())

    def _tally(self, reward_sum: float, episodes: int) -> None:
        self.reward_sum += reward_sum
        self.episodes += episodes

    # ------------------------------------------------------------------------------ metrics
    def evaluate(self) -> list[dict]:
        r = super().evaluate()[0]
        r["return"] = self.reward_sum / self.episodes if self.episodes else None
        self.reward_sum, self.episodes = 0.0, 0
        with torch.no_grad():
            out = torch.cat([self.model(x).float().cpu() for x in self.splits["train"].inputs.split(1024)])
        if self.agent.kind == "dqn":
            r["q_error"] = float((out - self.vec.q_table(self.agent.gamma)).abs().mean())
            r["epsilon"] = epsilon_at(self.agent, self.step)
        else:
            r["expected_return"] = float((out.softmax(-1) * self.vec.q_table(0.0)).sum(-1).mean())
        return [r]

    # ------------------------------------------------------------------------------ checkpoints
    def extra_state(self) -> dict:
        s = {"vec": self.vec.state_dict(), "gen": self.gen.get_state(), "obs": self.obs.clone(),
             "tally": [self.reward_sum, self.episodes]}
        if self.replay is not None:
            s["replay"] = self.replay.state_dict()
            s["target"] = {k: v.detach().cpu() for k, v in self.target.state_dict().items()}
        return {"agent": s}

    def load_extra_state(self, extra: dict) -> None:
        s = extra["agent"]
        self.vec.load_state_dict(s["vec"])
        self.gen.set_state(s["gen"])
        self.obs = s["obs"].clone()
        self.reward_sum, self.episodes = float(s["tally"][0]), int(s["tally"][1])
        if self.replay is not None:
            self.replay.load_state_dict(s["replay"])
            self.target.load_state_dict(s["target"])
