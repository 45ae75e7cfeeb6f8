"""Which steps are evaluated and checkpointed: dense early (log-spaced), then every N, plus the last.

Evaluations are also adaptive (`EvalSchedule`): while an accuracy moves fast they come sooner,
so that no interval between two evaluations sees an accuracy change much more than
`train.eval_refine`; on a plateau they fall back to the base schedule. The schedule is a
function of the steps and of the records already logged, so a resumed run (which replays its
records) evaluates at exactly the steps of an uninterrupted one.
"""

from __future__ import annotations

import bisect
import math


def log_spaced(total: int, per_decade: int) -> set[int]:
    """Integer steps round(10**(k/per_decade)) <= total, plus 0. per_decade=20 gives every step
    up to 11, then about 12% apart; per_decade=0 gives only {0}."""
    out = {0}
    if per_decade <= 0:
        return out
    k = 0
    while True:
        s = round(10 ** (k / per_decade))
        if s > total:
            return out
        out.add(s)
        k += 1


class StepSchedule:
    """Membership test for steps: log-spaced ∪ multiples of `every` ∪ {0, total}."""

    def __init__(self, total: int, per_decade: int, every: int | None):
        self.total = total
        self.every = every
        self.logs = log_spaced(total, per_decade)

    def __contains__(self, step: int) -> bool:
        return (step in self.logs or step == self.total
                or (self.every is not None and step % self.every == 0))


class EvalSchedule(StepSchedule):
    """StepSchedule(total, per_decade, every), refined while accuracies move, within a budget.

    Refinement: after each evaluation, `observe(record)` compares every accuracy of the record
    (keys ending in '_acc') with the previous evaluation's. When the largest change D over an
    interval of g steps exceeds `refine` (> 0), the next evaluation is wanted after
    max(1, floor(g * refine / D)) steps (the interval that would have moved about `refine`);
    intervals keep that length until a change of at most `refine` / 2 lets them double, back to
    the base schedule.

    Budget: an evaluation costs `cost` steps of training compute (the stepper's `eval_cost`), and
    evaluations may spend at most `budget` of the compute: credit accrues at budget / cost
    evaluations per step, up to BURST, and each evaluation spends one. A wanted evaluation without
    credit waits until there is; log-spaced evaluations also leave RESERVE credit for the
    refinement. Step 0 and the last step are always evaluated. budget=0: no cap.
    """

    BURST, RESERVE = 3.0, 1.0

    def __init__(self, total: int, per_decade: int, every: int | None, refine: float = 0.0,
                 budget: float = 0.0, cost: float = 1.0):
        super().__init__(total, per_decade, every)
        self.refine = refine
        self.rate = budget / cost if budget > 0 and cost > 0 else math.inf  # credit per step
        self.credit = self.BURST  # after the last evaluation
        self.prev: tuple[int, dict] | None = None  # (step, accuracies) of the last evaluation
        self.gap: int | None = None  # refined interval, None on the base schedule
        self.next: int | None = None  # the refined step after prev, if any
        self.sorted_logs = sorted(self.logs)

    def wanted(self, step: int) -> float | None:
        """The credit an evaluation at `step` needs (1 refined or every N, 1 + RESERVE log-spaced), or
        None when no step in (last evaluation, step] wants one; an evaluation that waited for credit
        is still wanted. A function of the last evaluation, so resume restores it."""
        if self.next is not None and step >= self.next:
            return 1.0
        last = -1 if self.prev is None else self.prev[0]
        if self.every is not None and step // self.every > last // self.every:
            return 1.0
        i = bisect.bisect_right(self.sorted_logs, last)
        return 1.0 + self.RESERVE if i < len(self.sorted_logs) and self.sorted_logs[i] <= step else None

    def _credit_at(self, step: int) -> float:
        if self.prev is None or math.isinf(self.rate):
            return self.BURST
        return min(self.BURST, self.credit + self.rate * (step - self.prev[0]))

    def __contains__(self, step: int) -> bool:
        if step in (0, self.total):
            return True
        need = self.wanted(step)
        return need is not None and (math.isinf(self.rate) or self._credit_at(step) >= need)

    def observe(self, record: dict) -> None:
        step = record["step"]
        accs = {k: v for k, v in record.items() if k.endswith("_acc") and isinstance(v, (int, float))}
        if self.prev is not None and step > self.prev[0]:
            self.credit = self._credit_at(step) - 1
            last, before = self.prev
            moved = max((abs(v - before[k]) for k, v in accs.items()
                         if k in before and math.isfinite(v) and math.isfinite(before[k])), default=0.0)
            if self.refine > 0 and moved > self.refine:
                self.gap = max(1, math.floor((step - last) * self.refine / moved))
            elif self.gap is not None and moved <= self.refine / 2:
                self.gap *= 2
            if self.gap is not None and self.every is not None and self.gap >= self.every:
                self.gap = None
        self.prev = (step, accs)
        self.next = None if self.gap is None else step + self.gap


def dropout_at(cfg, base: float, step: int) -> float:
    """Dropout for update number `step` (0-based) under cfg.dropout_schedule (a TrainConfig).

    constant: `base` (model.dropout); linear: base -> cfg.dropout_final over the budget;
    steps: `base` until the first milestone, then each milestone's value from its step on.
    """
    if cfg.dropout_schedule == "linear":
        frac = min(1.0, step / max(1, cfg.steps - 1))
        return base + (cfg.dropout_final - base) * frac
    if cfg.dropout_schedule == "steps":
        from grokscope.config import dropout_milestones

        value = base
        for at, v in dropout_milestones(cfg.dropout_milestones):
            if step >= at:
                value = v
        return value
    return base
