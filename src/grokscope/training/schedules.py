"""Which steps are evaluated and checkpointed: dense early (log-spaced), then every N, plus the last."""

from __future__ import annotations


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
