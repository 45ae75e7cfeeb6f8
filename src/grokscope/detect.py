"""Events, phases and the outcome class of a run, from its metrics records alone.

All crossings are read on a smoothed curve: the centered running median over 5 evaluations
(3 next to the ends; the first and last points are averaged with their one neighbour). Inside a
monotone curve that is the curve itself; a single spike (one evaluation far above its
neighbours) never passes it, so a lone spike in test accuracy is not grokking.
"""

from __future__ import annotations

import statistics

THRESHOLDS = (0.5, 0.9, 0.95, 0.99)
MEMORIZED_ACC = 0.99
GENERALIZED_ACC = 0.99
OUTCOME_ACC = 0.9  # Liu et al. 2022 phase-diagram threshold
DEFAULT_GAP = 1000  # steps between train and test reaching OUTCOME_ACC that make it "grokking"
MIN_RISE = 0.1  # a test-accuracy rise smaller than this is not a grokking transition
OUTCOMES = ("comprehension", "grokking", "memorization", "confusion")
PHASES = ("memorization", "plateau", "grokking", "converged")


def smooth(values: list[float], window: int = 5) -> list[float]:
    """Centered running median; the window shrinks symmetrically near the ends (to 3, then 2)."""
    half = window // 2
    n = len(values)
    out = []
    for i in range(n):
        h = min(half, max(1, min(i, n - 1 - i))) if n >= 3 else 0
        out.append(statistics.median(values[max(0, i - h): i + h + 1]))
    return out


def _series(records: list[dict], key: str) -> tuple[list[int], list[float]]:
    pairs = [(r["step"], r[key]) for r in records if r.get(key) is not None]
    return [p[0] for p in pairs], smooth([p[1] for p in pairs])


def crossing(steps: list[int], values: list[float], threshold: float, after: int = -1) -> int | None:
    """First step (> after) whose smoothed value is >= threshold, or None."""
    for s, v in zip(steps, values):
        if s > after and v >= threshold:
            return s
    return None


def first_step(records: list[dict], key: str, threshold: float) -> int | None:
    """First evaluated step whose smoothed `key` is >= threshold, or None."""
    steps, values = _series(records, key)
    return crossing(steps, values, threshold)


def analyze(records: list[dict], gap: int = DEFAULT_GAP, split: str = "test") -> dict:
    """Everything detect knows about a run, read on the generalization split `split` (its
    `{split}_acc` curve; the event names say "test" for whichever split that is).

    Returns {"events": {...}, "phase": outcome, "phases": [segments], "still_on_plateau": bool}:
    - events: train/test crossings of 0.5/0.9/0.95/0.99 ({"train_0.9": step, ...}),
      memorized_step (train 0.99), generalized_step (test 0.99), delay (steps), delay_ratio,
      sharpness (steps for test accuracy to go from 10% to 90% of its rise after memorization),
      rise_start / rise_end (those two steps).
    - phase: the outcome class of Liu et al. 2022 at threshold 0.9: comprehension (test within
      `gap` steps of train), grokking (test more than `gap` steps after train), memorization
      (train only), confusion (train never reaches it).
    - phases: [{"name", "start", "end"}] segments memorization -> plateau -> grokking -> converged
      (only those that occur; `end` of the last one is the last evaluated step).
    - still_on_plateau: the run ended with train fitted and test accuracy not (yet) risen.
    """
    steps, train = _series(records, "train_acc")
    tsteps, test = _series(records, f"{split}_acc")
    events: dict = {}
    for t in THRESHOLDS:
        events[f"train_{t}"] = crossing(steps, train, t)
        events[f"test_{t}"] = crossing(tsteps, test, t)
    mem, gen = events["train_0.99"], events["test_0.99"]
    events["memorized_step"], events["generalized_step"] = mem, gen
    events["delay"] = gen - mem if mem is not None and gen is not None else None
    events["delay_ratio"] = gen / mem if mem and gen is not None else None
    rise_start, rise_end = _rise(tsteps, test, mem)
    events["rise_start"], events["rise_end"] = rise_start, rise_end
    events["sharpness"] = rise_end - rise_start if rise_start is not None and rise_end is not None else None

    t_train, t_test = events[f"train_{OUTCOME_ACC}"], events[f"test_{OUTCOME_ACC}"]
    if t_train is None:
        outcome = "confusion"
    elif t_test is None:
        outcome = "memorization"
    elif t_test - t_train > gap:
        outcome = "grokking"
    else:
        outcome = "comprehension"
    last = steps[-1] if steps else 0
    phases = _segments(last, mem, rise_start, rise_end)
    still = bool(phases) and phases[-1]["name"] == "plateau"
    return {"events": events, "phase": outcome, "phases": phases, "still_on_plateau": still}


def _rise(steps: list[int], test: list[float], mem: int | None) -> tuple[int | None, int | None]:
    """Steps where smoothed test accuracy passes 10% and 90% of its final rise after memorization.

    The rise goes from the plateau level (median test accuracy between memorization and the
    first crossing of the halfway mark) to the best test accuracy after memorization, so a
    quick partial gain right after memorization is counted as plateau, not as grokking.
    """
    if mem is None or not steps:
        return None, None
    idx = next((i for i, s in enumerate(steps) if s >= mem), None)
    if idx is None:
        return None, None
    hi = max(test[idx:])
    half = crossing(steps, test, (test[idx] + hi) / 2, after=mem - 1)
    plateau = [v for s, v in zip(steps[idx:], test[idx:]) if half is None or s < half]
    lo = statistics.median(plateau) if plateau else test[idx]
    if hi - lo < MIN_RISE:
        return None, None
    start = crossing(steps, test, lo + 0.1 * (hi - lo), after=mem - 1)
    end = crossing(steps, test, lo + 0.9 * (hi - lo), after=mem - 1)
    return start, end


def _segments(last: int, mem: int | None, rise_start: int | None, rise_end: int | None) -> list[dict]:
    cuts = [("memorization", 0)]
    if mem is not None:
        if rise_start is None or rise_start > mem:
            cuts.append(("plateau", mem))
        if rise_start is not None:
            cuts.append(("grokking", max(mem, rise_start) if rise_start > mem else mem))
        if rise_end is not None and rise_end < last:
            cuts.append(("converged", max(rise_end, mem)))
    out = []
    for i, (name, start) in enumerate(cuts):
        end = cuts[i + 1][1] if i + 1 < len(cuts) else last
        if end > start or i + 1 == len(cuts):
            out.append({"name": name, "start": start, "end": end})
    return out


def events(records: list[dict], split: str = "test") -> dict:
    """The headline events: memorized_step, generalized_step, delay_ratio (see analyze)."""
    ev = analyze(records, split=split)["events"]
    return {k: ev[k] for k in ("memorized_step", "generalized_step", "delay_ratio")}
