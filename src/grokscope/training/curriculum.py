"""Curriculum learning: reveal the training set in stages, easiest pairs first.

Training pairs (positions ``0..n_train-1`` into ``task.train_idx``) get a difficulty score,
are sorted by it (ties in a seeded random order, so that equal scores are not biased toward
small x) and split into ``n_stages`` nearly-equal consecutive chunks. Stage ``k`` (0-based)
exposes chunks ``0..k``; the last stage exposes the whole training set.

Scores: "max_operand" = max(x, y) over the operand indices, "sum" = x + y as integers,
"random" = a seeded random order. Stages advance either by step count ("steps", a pure
function of the step, hence resume-safe) or when the train accuracy on the revealed pairs
reaches ``threshold`` ("accuracy"; the stage is part of `state_dict`).
"""

from __future__ import annotations

import math
from numbers import Real

import torch

from grokscope.errors import ConfigError
from grokscope.tasks import Task

__all__ = ["ADVANCES", "SCORES", "Curriculum"]

SCORES: tuple[str, ...] = ("max_operand", "sum", "random")
ADVANCES: tuple[str, ...] = ("steps", "accuracy")


def _is_int(value: object) -> bool:
    """True for real integers (bools excluded)."""
    return isinstance(value, int) and not isinstance(value, bool)


def _choices(options: tuple[str, ...]) -> str:
    """'a', 'b', 'c' — for error messages."""
    return ", ".join(repr(o) for o in options)


def _validate(score: object, n_stages: object, advance: object, stage_steps: object,
              threshold: object, n_train: int) -> None:
    """Raise `ConfigError` naming the first invalid curriculum field."""
    if not isinstance(score, str) or score not in SCORES:
        raise ConfigError(f"train.curriculum: must be one of {_choices(SCORES)}, got {score!r}")
    if not _is_int(n_stages) or not 1 <= n_stages <= n_train:
        raise ConfigError(
            f"train.curriculum_stages: must be an integer in 1..{n_train} (the number of "
            f"training pairs), got {n_stages!r}"
        )
    if not isinstance(advance, str) or advance not in ADVANCES:
        raise ConfigError(
            f"train.curriculum_advance: must be one of {_choices(ADVANCES)}, got {advance!r}"
        )
    if not _is_int(stage_steps) or stage_steps < 1:
        raise ConfigError(f"train.curriculum_stage_steps: must be an integer >= 1, got {stage_steps!r}")
    ok = isinstance(threshold, Real) and not isinstance(threshold, bool) and math.isfinite(threshold)
    if not ok or not 0 < threshold <= 1:
        raise ConfigError(f"train.curriculum_threshold: must be in (0, 1], got {threshold!r}")


def _scores(task: Task, score: str) -> torch.Tensor:
    """(n_train,) long difficulty per training pair; constant for "random" (order = tie key)."""
    x, y = task.x[task.train_idx], task.y[task.train_idx]  # (n_train,) each
    if score == "max_operand":
        return torch.maximum(x, y)
    if score == "sum":
        return x + y
    return torch.zeros_like(x)


def _order(scores: torch.Tensor, seed: int) -> torch.Tensor:
    """(n_train,) positions sorted by score, ties in a random order drawn from ``seed``."""
    g = torch.Generator().manual_seed(seed)
    tie = torch.randperm(scores.numel(), generator=g)  # (n_train,) random tie-break order
    by_score = torch.sort(scores[tie], stable=True).indices  # (n_train,)
    return tie[by_score]


class Curriculum:
    """Reveal the training set in stages ordered by a difficulty score."""

    def __init__(self, task: Task, *, score: str = "max_operand", n_stages: int = 4,
                 advance: str = "steps", stage_steps: int = 1000, threshold: float = 0.99,
                 seed: int = 0) -> None:
        n_train = int(task.train_idx.numel())
        _validate(score, n_stages, advance, stage_steps, threshold, n_train)
        self.score, self.n_stages, self.advance = score, n_stages, advance
        self.stage_steps, self.threshold, self.seed = stage_steps, float(threshold), seed
        self.n_train = n_train
        self.order = _order(_scores(task, score), seed)  # (n_train,) easiest first
        # Cumulative chunk ends: chunk sizes differ by at most one.
        self._ends = [(k + 1) * n_train // n_stages for k in range(n_stages)]
        self.stage = 0

    def stage_sizes(self) -> list[int]:
        """Number of revealed training pairs at each stage (cumulative); the last is n_train."""
        return list(self._ends)

    def active(self) -> torch.Tensor:
        """(n_active,) long positions into the training set revealed now, sorted ascending."""
        return torch.sort(self.order[: self._ends[self.stage]]).values

    @property
    def done(self) -> bool:
        """True on the last stage, when the whole training set is revealed."""
        return self.stage == self.n_stages - 1

    def update(self, step: int, stage_train_acc: float | None = None) -> bool:
        """Move to the stage for ``step`` / ``stage_train_acc``; return True if the stage changed.

        "steps": stage = min(step // stage_steps, n_stages - 1), independent of history.
        "accuracy": one stage forward when ``stage_train_acc >= threshold`` (None: no change),
        never past the last stage.
        """
        old = self.stage
        if self.advance == "steps":
            self.stage = min(max(step, 0) // self.stage_steps, self.n_stages - 1)
        elif stage_train_acc is not None and stage_train_acc >= self.threshold and not self.done:
            self.stage += 1
        return self.stage != old

    def state_dict(self) -> dict:
        """Plain ints/strs/floats and one long tensor: safe for torch.load(weights_only=True)."""
        return {
            "stage": self.stage,
            "order": self.order.clone(),
            "n_train": self.n_train,
            "n_stages": self.n_stages,
            "score": self.score,
            "advance": self.advance,
            "stage_steps": self.stage_steps,
            "threshold": self.threshold,
            "seed": self.seed,
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore the stage (and order) saved by `state_dict` of an identically built curriculum.

        Raises ValueError when the saved settings differ from this curriculum's.
        """
        mine = self.state_dict()
        keys = ("n_train", "n_stages", "score", "advance", "stage_steps", "threshold", "seed")
        diff = [k for k in keys if state.get(k) != mine[k]]
        if diff:
            raise ValueError(
                "curriculum state does not match this curriculum: "
                + ", ".join(f"{k} saved {state.get(k)!r} != {mine[k]!r}" for k in diff)
            )
        stage = state.get("stage")
        if not _is_int(stage) or not 0 <= stage < self.n_stages:
            raise ValueError(f"curriculum state: stage must be in 0..{self.n_stages - 1}, got {stage!r}")
        order = torch.as_tensor(state["order"], dtype=torch.long)
        if not torch.equal(torch.sort(order).values, torch.arange(self.n_train)):
            raise ValueError("curriculum state: order is not a permutation of the training positions")
        self.order, self.stage = order.clone(), stage
