"""Events from metrics.jsonl alone: when the run memorized and when it generalized."""

from __future__ import annotations

MEMORIZED_ACC = 0.99
GENERALIZED_ACC = 0.99


def first_step(records: list[dict], key: str, threshold: float) -> int | None:
    """First evaluated step whose `key` is >= threshold, or None."""
    for r in records:
        v = r.get(key)
        if v is not None and v >= threshold:
            return r["step"]
    return None


def events(records: list[dict]) -> dict:
    """memorized_step (train acc >= 0.99), generalized_step (test acc >= 0.99), and the delay ratio
    generalized/memorized (None unless both happened and memorized_step > 0)."""
    mem = first_step(records, "train_acc", MEMORIZED_ACC)
    gen = first_step(records, "test_acc", GENERALIZED_ACC)
    ratio = gen / mem if (mem and gen is not None) else None
    return {"memorized_step": mem, "generalized_step": gen, "delay_ratio": ratio}
