"""grid_goals: an N x N gridworld whose goal is named by arbitrary ids under a hidden layout.

    grokscope train --task.kind grid_goals --task.options.size 5 --agent.kind dqn

The agent stands at (x, y) and sees its own coordinates; the goal cell (gx, gy) is given only as
two ids, a row id R[gx] and a column id C[gy], where R and C are hidden random permutations (drawn
with the split seed). Actions: 0 up (y + 1), 1 down (y - 1), 2 left (x - 1), 3 right (x + 1); a move
into the wall stays put. Reaching the goal gives reward 1 and ends the episode; `max_steps` moves
without it truncate the episode. A share 1 - task.train_fraction of the goals is held out: never
drawn in training, so never rewarded; every row id and column id still names some training goal
(the split is redrawn until it does), so a held-out goal's cell can be worked out by composing
what the ids meant elsewhere. That composition is what the agent has to grok. (A goal named by a
single arbitrary id could not generalize at all: a held-out id would carry no information.)

As a Task, the states (agent cell != goal cell) of the training goals form `train`, those of the
held-out goals `test`; an input is the tokens [x, N + y, 2N + R[gx], 3N + C[gy], 4N] (the last a
read-out token), the target the canonical shortest move (along x first) and `accept` every move
that shortens the distance: an action counts as right when it is any shortest move. The task's
measures are greedy rollouts from every start cell: `train_success` and `test_success`, the
shares of (start, goal) pairs whose greedy policy reaches the goal within `max_steps`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from grokscope.errors import ConfigError
from grokscope.models.layers import eval_mode
from grokscope.tasks.task import Split, Task

__all__ = ["GridOptions", "GridTask", "build_grid", "move", "state_pairs", "validate_grid"]

MOVES = torch.tensor([[0, 1], [0, -1], [-1, 0], [1, 0]])  # up, down, left, right as (dx, dy)
ACTION_NAMES = ("up", "down", "left", "right")


@dataclass(frozen=True)
class GridOptions:
    size: int = 5
    """N: the grid is N x N cells, one goal per cell."""
    max_steps: int | None = None
    """Moves per episode before truncation; None: 2 N."""
    layout: str = "rows"
    """How the two goal ids name the goal cell (gx, gy), under hidden permutations R and C: 'rows'
    gives R[gx] and C[gy] (the cell is a lookup of each id); 'diagonal' gives R[(gx + gy) mod N] and
    C[(gx - gy) mod N] (N odd), so the cell is a modular computation on the two ids."""


def _opts(cfg) -> GridOptions:
    return GridOptions(**cfg.task.options)


def validate_grid(cfg) -> None:
    o = _opts(cfg)
    if not (isinstance(o.size, int) and 2 <= o.size <= 32):
        raise ConfigError(f"task.options.size: must be an integer in 2..32, got {o.size!r}")
    if o.layout not in ("rows", "diagonal"):
        raise ConfigError(f"task.options.layout: must be 'rows' or 'diagonal', got {o.layout!r}")
    if o.layout == "diagonal" and o.size % 2 == 0:
        raise ConfigError(f"task.options.size: must be odd for layout 'diagonal', got {o.size!r}")
    if o.max_steps is not None and not (isinstance(o.max_steps, int) and o.max_steps >= 1):
        raise ConfigError(f"task.options.max_steps: must be an integer >= 1 or None, got {o.max_steps!r}")
    n_goals = o.size**2
    n_train = round(cfg.task.train_fraction * n_goals)
    if not o.size <= n_train < n_goals:
        raise ConfigError(f"task.train_fraction: must leave between {o.size} and {n_goals - 1} of the "
                          f"{n_goals} goals for training, got {cfg.task.train_fraction!r} ({n_train} goals)")
    if cfg.agent.kind in ("exact_pg", "reinforce"):
        raise ConfigError(f"agent.kind: task kind 'grid_goals' is learned with 'supervised' or 'dqn', got "
                          f"{cfg.agent.kind!r}")


def move(pos: torch.Tensor, actions: torch.Tensor, size: int) -> torch.Tensor:
    """(n, 2) cells after `actions` (n,), walls included."""
    return (pos + MOVES[actions]).clamp(0, size - 1)


@dataclass(frozen=True, eq=False, kw_only=True)
class GridTask(Task):
    """The grid as a Task (see the module docstring), with its layout and greedy-rollout measures."""

    size: int = 5
    max_steps: int = 10
    layout: str = "rows"
    row_id: torch.Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.long))
    """(N,) the hidden permutation R (see GridOptions.layout); col_id is C."""
    col_id: torch.Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.long))
    train_goals: torch.Tensor = field(default_factory=lambda: torch.zeros(0, 2, dtype=torch.long))
    """(g, 2) goal cells drawn in training."""
    test_goals: torch.Tensor = field(default_factory=lambda: torch.zeros(0, 2, dtype=torch.long))

    def observe(self, pos: torch.Tensor, goal: torch.Tensor) -> torch.Tensor:
        """(n, 5) tokens of agents at `pos` (n, 2) heading for `goal` (n, 2)."""
        return _observe(self.size, self.layout, self.row_id, self.col_id, pos, goal)

    def q_star(self, pos: torch.Tensor, goal: torch.Tensor, gamma: float) -> torch.Tensor:
        """(n, 4) optimal action values: reward 1 on arrival, so Q*(s, a) = gamma ** distance(s', goal)."""
        nxt = move(pos.repeat_interleave(4, 0), torch.arange(4).repeat(len(pos)), self.size)
        d = (nxt - goal.repeat_interleave(4, 0)).abs().sum(1).reshape(-1, 4)
        return torch.as_tensor(gamma, dtype=torch.float64).pow(d).float()

    @property
    def measure_cost(self) -> float:
        return float(self.size**2 * self.size**2 * self.max_steps)

    def measures(self, model: torch.nn.Module, device: torch.device) -> dict[str, float]:
        return {f"{name}_success": self.success(model, goals, device)
                for name, goals in (("train", self.train_goals), ("test", self.test_goals))}

    @torch.no_grad()
    def success(self, model: torch.nn.Module, goals: torch.Tensor, device: torch.device) -> float:
        """Share of (start cell != goal, goal) pairs whose greedy rollout arrives within max_steps."""
        pos, goal = state_pairs(self.size, goals)
        done = torch.zeros(len(pos), dtype=torch.bool)
        with eval_mode(model):
            for _ in range(self.max_steps):
                if done.all():
                    break
                act = model(self.observe(pos, goal).to(device)).argmax(-1).cpu()
                pos = torch.where(done[:, None], pos, move(pos, act, self.size))
                done |= (pos == goal).all(1)
        return float(done.float().mean())


def state_pairs(size: int, goals: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Every (start cell, goal) with start != goal: (n, 2) starts, (n, 2) goals."""
    cells = torch.cartesian_prod(torch.arange(size), torch.arange(size))  # (N*N, 2)
    pos = cells.repeat(len(goals), 1)
    goal = goals.repeat_interleave(len(cells), 0)
    keep = (pos != goal).any(1)
    return pos[keep], goal[keep]


def goal_ids(N: int, layout: str, goal: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The coordinates that the two ids name before the hidden permutations: (gx, gy) for 'rows',
    ((gx + gy) mod N, (gx - gy) mod N) for 'diagonal'."""
    if layout == "rows":
        return goal[:, 0], goal[:, 1]
    return (goal[:, 0] + goal[:, 1]) % N, (goal[:, 0] - goal[:, 1]) % N


def _observe(N: int, layout: str, row_id: torch.Tensor, col_id: torch.Tensor, pos: torch.Tensor,
             goal: torch.Tensor) -> torch.Tensor:
    u, v = goal_ids(N, layout, goal)
    return torch.stack([pos[:, 0], N + pos[:, 1], 2 * N + row_id[u], 3 * N + col_id[v],
                        torch.full_like(pos[:, 0], 4 * N)], dim=1)


def _states(N: int, layout: str, row_id: torch.Tensor, col_id: torch.Tensor, goals: torch.Tensor) -> Split:
    pos, goal = state_pairs(N, goals)
    d = (pos - goal).abs().sum(1)
    nxt_d = torch.stack([(move(pos, torch.full((len(pos),), a), N) - goal).abs().sum(1)
                         for a in range(4)], dim=1)
    accept = nxt_d < d[:, None]  # (n, 4) every shortest move
    dx, dy = goal[:, 0] - pos[:, 0], goal[:, 1] - pos[:, 1]
    canonical = torch.where(dx > 0, 3, torch.where(dx < 0, 2, torch.where(dy > 0, 0, 1)))
    return Split(_observe(N, layout, row_id, col_id, pos, goal), canonical, accept=accept)


def build_grid(cfg) -> GridTask:
    """Goals of an N x N grid split into training and held-out goals under hidden id layouts."""
    o = _opts(cfg)
    N = o.size
    g = torch.Generator().manual_seed(cfg.effective_split_seed)
    row_id, col_id = torch.randperm(N, generator=g), torch.randperm(N, generator=g)
    cells = torch.cartesian_prod(torch.arange(N), torch.arange(N))
    n_train = round(cfg.task.train_fraction * N * N)
    while True:  # every row and column id must name some training goal
        perm = torch.randperm(N * N, generator=g)
        train, test = cells[perm[:n_train]], cells[perm[n_train:]]
        u, v = goal_ids(N, o.layout, train)
        if len(set(u.tolist())) == N and len(set(v.tolist())) == N:
            break
    order = lambda cells: cells[torch.argsort(cells[:, 0] * N + cells[:, 1])]
    train, test = order(train), order(test)
    meta = {"kind": "grid_goals", "size": N, "layout": o.layout, "n_train_goals": len(train),
            "n_test_goals": len(test),
            "test_goals": test.tolist()}
    splits = {name: _states(N, o.layout, row_id, col_id, goals)
              for name, goals in (("train", train), ("test", test))}
    return GridTask(kind="grid_goals", splits=splits, input_kind="tokens", input_shape=(5,), n_classes=4,
                    vocab_size=4 * N + 1, meta=meta, measure_names=("train_success", "test_success"),
                    size=N, max_steps=o.max_steps or 2 * N, layout=o.layout, row_id=row_id, col_id=col_id,
                    train_goals=train, test_goals=test)
