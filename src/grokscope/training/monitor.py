"""Live view of a run: events announced as they happen, and grokking-aware stopping rules."""

from __future__ import annotations

import statistics

from grokscope.config import TrainConfig

_MEMORIZED, _GENERALIZED, _RISE_MARGIN = 0.99, 0.99, 0.15


class Monitor:
    """Feed it each evaluation record; it returns the events to announce and when to stop.

    Events (first occurrence only): 'memorized' (train acc >= 0.99), 'rising' (after
    memorization, test acc above its plateau median + 0.15 at two evaluations in a row) and
    'generalized' (test acc >= 0.99). These are live hints; summary.json's events come from
    grokscope.detect on the whole curve.
    """

    def __init__(self, cfg: TrainConfig, split: str = "test"):
        self.cfg = cfg
        self.split = split  # the generalization split: its accuracy is "test acc" here
        self.seen: dict[str, int] = {}
        self._plateau: list[float] = []
        self._above = 0
        self._target_run = 0
        self._held_since: int | None = None  # first step of the current run of test acc >= 0.99
        self._held = 0
        self.generalized_at: int | None = None  # first step of 3 evaluations in a row at >= 0.99

    def update(self, r: dict) -> list[tuple[str, str]]:
        out = []
        step, train, test = r["step"], r["train_acc"], r[f"{self.split}_acc"]
        if "memorized" not in self.seen and train >= _MEMORIZED:
            out.append(("memorized", f"memorized at step {step}: train acc {train:.3f} >= {_MEMORIZED}, "
                                     f"{self.split} acc {test:.3f}"))
        elif "memorized" in self.seen and "rising" not in self.seen and self._plateau:
            level = statistics.median(self._plateau)
            self._above = self._above + 1 if test >= level + _RISE_MARGIN else 0
            if self._above >= 2:
                out.append(("rising", f"{self.split} accuracy rising at step {step}: {test:.3f} "
                                      f"(plateau {level:.3f} + {_RISE_MARGIN}; not generalized "
                                      f"until >= {_GENERALIZED})"))
        if "memorized" in self.seen or out:
            self._plateau.append(test)
        if "generalized" not in self.seen and test >= _GENERALIZED:
            out.append(("generalized", f"generalized at step {step}: {self.split} acc {test:.4f} "
                                       f">= {_GENERALIZED} (live, unsmoothed)"))
        for name, _ in out:
            self.seen[name] = step
        if test >= _GENERALIZED:
            self._held_since = step if self._held == 0 else self._held_since
            self._held += 1
            if self._held >= 3 and self.generalized_at is None:
                self.generalized_at = self._held_since
        else:
            self._held = 0
        self._target_run = self._target_run + 1 if test >= self.cfg.stop_target else 0
        return out

    def stop_reason(self, step: int) -> str | None:
        """Why to stop now (after the update of `step`), or None to go on."""
        c = self.cfg
        if c.stop_when == "target" and self._target_run >= c.stop_patience:
            return f"test acc >= {c.stop_target} at {c.stop_patience} evaluations in a row"
        if (c.stop_when == "after_generalization" and self.generalized_at is not None
                and step >= self.generalized_at + c.stop_after):
            return f"{c.stop_after} steps after generalization at step {self.generalized_at}"
        return None
