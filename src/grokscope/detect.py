"""Events, phases, the verdict and the outcome class of a run, from its metrics records alone.

All crossings are read on a smoothed curve: the centered running median over 5 evaluations
(3 next to the ends; the first and last points are averaged with their one neighbour). Inside a
monotone curve that is the curve itself; a single spike (one evaluation far above its
neighbours) never passes it, so a lone spike in test accuracy is not grokking.

Every label says what it measured and at which threshold:

- memorized: train accuracy >= MEMORIZED_ACC (0.99);
- a "grokking" phase (and a "generalized"/"grokked" verdict) needs the generalization split to
  reach GROKKED_ACC (0.95); a rise that stops short of it is "rising" (then "plateau" at its
  level), however large;
- generalized / "converged": generalization accuracy >= GENERALIZED_ACC (0.99); "converged" never
  starts before the generalized step;
- the outcome class (`phase`) is Liu et al. 2022's, at OUTCOME_ACC (0.9) and a gap in steps: a
  different threshold from the events, always shown with it.

`verdict(analysis)` turns one analysis (or a summary.json, which holds the same keys) into the
labels the report headline, its phase table, the figures' shading and `grokscope show` print, so
they cannot disagree.
"""

from __future__ import annotations

import math
import statistics

THRESHOLDS = (0.5, 0.9, 0.95, 0.99)
MEMORIZED_ACC = 0.99
GENERALIZED_ACC = 0.99
GROKKED_ACC = 0.95  # the generalization split must reach this for a "grokking" phase
OUTCOME_ACC = 0.9  # Liu et al. 2022 phase-diagram threshold
DEFAULT_GAP = 1000  # steps between train and test reaching OUTCOME_ACC that make it "grokking"
MIN_RISE = 0.1  # a test-accuracy rise smaller than this is no rise (no "rising"/"grokking" start)
RISING_GAIN = 0.05  # gain over the last quarter of the post-memorization steps: "still rising"
SMALL_EVAL_SET = 100  # fewer generalization-split examples than this: flagged small_eval_set
Z95 = 1.959964  # two-sided 95% normal quantile of the Wilson interval
OUTCOMES = ("comprehension", "grokking", "memorization", "confusion")
PHASES = ("memorization", "plateau", "rising", "grokking", "converged")
VERDICTS = ("none", "unfitted", "plateau", "rising", "generalized")
OUTCOME_RULE = "Liu et al. 2022, accuracy 0.9"


def smooth(values: list[float], window: int = 5) -> list[float]:
    """Centered running median; the window shrinks symmetrically near the ends (to 3, then 2)."""
    half = window // 2
    n = len(values)
    out = []
    for i in range(n):
        h = min(half, max(1, min(i, n - 1 - i))) if n >= 3 else 0
        out.append(statistics.median(values[max(0, i - h): i + h + 1]))
    return out


def smoothed_series(records: list[dict], key: str) -> tuple[list[int], list[float]]:
    """(steps, smoothed values) of `key` over the records that log it."""
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
    steps, values = smoothed_series(records, key)
    return crossing(steps, values, threshold)


def wilson(right: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval (95% by default) of an accuracy of `right` out of `n` examples."""
    p = right / n
    denom = 1 + z * z / n
    center = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, center - half), min(1.0, center + half)


def fmt_acc(v: float | None) -> str:
    """An accuracy for a label, never rounded up past a threshold: floored to 3 decimals at 0.9 and
    above (0.9896 -> '0.989', not '0.990'), to 2 below; '-' for None."""
    if v is None:
        return "-"
    v = round(v, 6)  # 0.2299999 is 0.23
    digits = 3 if v >= 0.9 else 2
    return f"{math.floor(v * 10**digits + 1e-9) / 10**digits:.{digits}f}"


def dated(step: int | None, resolution: int | None, none: str = "-") -> str:
    """'2,700 (to within 50 steps)': an event's step with its dating resolution; `none` for None."""
    if step is None:
        return none
    return f"{step:,}" + (f" (to within {resolution:,} steps)" if resolution else "")


def eval_size(summary: dict | None, split: str = "test") -> int | None:
    """Number of examples of the generalization split `split`, from a summary.json: its
    `split_sizes[split]`, else (for 'test') `task.n_test`; None when unknown."""
    summary = summary or {}
    sizes = summary.get("split_sizes")
    n = sizes.get(split) if isinstance(sizes, dict) else None
    if n is None and split == "test" and isinstance(summary.get("task"), dict):
        n = summary["task"].get("n_test")
    return n if isinstance(n, int) and not isinstance(n, bool) and n > 0 else None


def analyze(records: list[dict], gap: int = DEFAULT_GAP, split: str = "test",
            n_eval: int | None = None) -> dict:
    """Everything detect knows about a run, read on the generalization split `split` (its
    `{split}_acc` curve; the event names say "test" for whichever split that is). `n_eval`: the
    number of examples of that split (see `eval_size`), for the error counts; optional.

    Returns {"events", "phase", "phases", "still_on_plateau", "verdict"}:
    - events: train/test crossings of 0.5/0.9/0.95/0.99 ({"train_0.9": step, ...}),
      memorized_step (train 0.99), generalized_step (test 0.99), memorized_resolution /
      generalized_resolution (steps from the evaluation before that step: the crossing lies in
      between), delay (steps), delay_ratio,
      delay_ratio_0.95 (test_0.95 / memorized_step), sharpness (steps for test accuracy to go
      from 10% to 90% of its rise after memorization), rise_start / rise_end (those two steps);
      test_0.95_after_memorized / converged_step (first step at or after memorization with test
      >= 0.95 / >= 0.99, where the grokking / converged phases can start; without memorization
      the plain crossings); plateau_level (median test accuracy
      after memorization, before the rise), final_level, best_level (smoothed test accuracy at
      the last evaluation / its maximum), rising_at_end (test gained >= RISING_GAIN over the last
      quarter of the post-memorization steps, and is still gaining over the last eighth);
      eval_size, small_eval_set (eval_size < SMALL_EVAL_SET), generalized_max_errors (most
      errors still >= 0.99), generalized_errors and generalized_ci (errors and Wilson 95%
      interval of the accuracy at generalized_step), final_errors: None without `n_eval`.
    - phase: the outcome class of Liu et al. 2022 at threshold 0.9: comprehension (test within
      `gap` steps of train), grokking (test more than `gap` steps after train), memorization
      (train only), confusion (train never reaches it).
    - phases: [{"name", "start", "end", "level", "label"}] segments memorization -> plateau ->
      grokking -> converged, or memorization -> plateau -> rising [-> plateau] when the rise stops
      short of GROKKED_ACC (only those that occur; `end` of the last one is the last evaluated
      step). `level`: smoothed test accuracy at the segment's end (a plateau: its median);
      `label`: the name with what it measured, e.g. "plateau (test acc ~ 0.23)".
    - still_on_plateau: the run ended fitted, with test accuracy below GROKKED_ACC and not rising.
    - verdict: `verdict(...)` of the above.
    """
    steps, train = smoothed_series(records, "train_acc")
    tsteps, test = smoothed_series(records, f"{split}_acc")
    n_eval = n_eval if isinstance(n_eval, int) and not isinstance(n_eval, bool) and n_eval > 0 else None
    events: dict = {}
    for t in THRESHOLDS:
        events[f"train_{t}"] = crossing(steps, train, t)
        events[f"test_{t}"] = crossing(tsteps, test, t)
    mem, gen = events["train_0.99"], events["test_0.99"]
    events["memorized_step"], events["generalized_step"] = mem, gen
    # the crossing lies in (previous evaluation, step]: its dating resolution in steps
    events["memorized_resolution"], events["generalized_resolution"] = _gap_before(steps, mem), \
        _gap_before(tsteps, gen)
    events["delay"] = gen - mem if mem is not None and gen is not None else None
    events["delay_ratio"] = gen / mem if mem and gen is not None else None
    t95 = events["test_0.95"]
    events["delay_ratio_0.95"] = t95 / mem if mem and t95 is not None else None
    rise_start, rise_end, lo = _rise(tsteps, test, mem)
    events["rise_start"], events["rise_end"] = rise_start, rise_end
    events["sharpness"] = rise_end - rise_start if rise_start is not None and rise_end is not None else None
    after = -1 if mem is None else mem - 1
    grokked = crossing(tsteps, test, GROKKED_ACC, after=after)
    converged = crossing(tsteps, test, GENERALIZED_ACC, after=after)
    events["test_0.95_after_memorized"], events["converged_step"] = grokked, converged
    events["plateau_level"] = _r(lo)
    events["final_level"] = _r(test[-1]) if test else None
    events["best_level"] = _r(max(test)) if test else None
    events["rising_at_end"] = _rising_at_end(tsteps, test, mem)
    events.update(_errors(tsteps, test, gen, n_eval))

    t_train, t_test = events[f"train_{OUTCOME_ACC}"], events[f"test_{OUTCOME_ACC}"]
    if t_train is None:
        outcome = "confusion"
    elif t_test is None:
        outcome = "memorization"
    elif t_test - t_train > gap:
        outcome = "grokking"
    else:
        outcome = "comprehension"
    last = max(steps[-1] if steps else 0, tsteps[-1] if tsteps else 0)
    cuts = _cuts(mem, grokked, converged, rise_start, rise_end, events["rising_at_end"], last)
    phases = _label(_segments(cuts, last), tsteps, test, split, mem)
    out = {"events": events, "phase": outcome, "phases": phases}
    out["verdict"] = verdict(out, split=split, gap=gap)
    out["still_on_plateau"] = out["verdict"]["state"] == "plateau"
    return out


def _gap_before(steps: list[int], step: int | None) -> int | None:
    """Steps between `step` and the evaluation before it (0 for the first one); None for None."""
    if step is None:
        return None
    i = steps.index(step)
    return step - steps[i - 1] if i else 0


def _r(v: float | None) -> float | None:
    return None if v is None else round(float(v), 6)


def _rise(steps: list[int], test: list[float], mem: int | None
          ) -> tuple[int | None, int | None, float | None]:
    """Steps where smoothed test accuracy passes 10% and 90% of its final rise after memorization,
    and the plateau level the rise starts from.

    The rise goes from the plateau level (median test accuracy between memorization and the
    first crossing of the halfway mark) to the best test accuracy after memorization, so a
    quick partial gain right after memorization is counted as plateau, not as a rise. A rise
    smaller than MIN_RISE gives no steps.
    """
    if mem is None or not steps:
        return None, None, None
    idx = next((i for i, s in enumerate(steps) if s >= mem), None)
    if idx is None:
        return None, None, None
    hi = max(test[idx:])
    half = crossing(steps, test, (test[idx] + hi) / 2, after=mem - 1)
    plateau = [v for s, v in zip(steps[idx:], test[idx:]) if half is None or s < half]
    lo = statistics.median(plateau) if plateau else test[idx]
    if hi - lo < MIN_RISE:
        return None, None, lo
    start = crossing(steps, test, lo + 0.1 * (hi - lo), after=mem - 1)
    end = crossing(steps, test, lo + 0.9 * (hi - lo), after=mem - 1)
    return start, end, lo


def _at(steps: list[int], values: list[float], step: int) -> float | None:
    """Smoothed value at the first evaluation at or after `step` (else the last one)."""
    if not steps:
        return None
    i = next((i for i, s in enumerate(steps) if s >= step), len(steps) - 1)
    return values[i]


def _rising_at_end(steps: list[int], test: list[float], mem: int | None) -> bool:
    if mem is None or not steps or steps[-1] <= mem:
        return False
    span = steps[-1] - mem
    gain = lambda frac: test[-1] - _at(steps, test, steps[-1] - frac * span)
    return gain(1 / 4) >= RISING_GAIN and gain(1 / 8) >= RISING_GAIN / 4


def _errors(steps: list[int], test: list[float], gen: int | None, n: int | None) -> dict:
    out = {"eval_size": n, "small_eval_set": None if n is None else n < SMALL_EVAL_SET,
           "generalized_max_errors": None, "generalized_errors": None, "generalized_ci": None,
           "final_errors": None}
    if n is None:
        return out
    out["generalized_max_errors"] = math.floor(n * (1 - GENERALIZED_ACC) + 1e-9)
    if test:
        out["final_errors"] = n - round(test[-1] * n)
    if gen is not None:
        right = round(_at(steps, test, gen) * n)
        out["generalized_errors"] = n - right
        out["generalized_ci"] = [round(v, 4) for v in wilson(right, n)]
    return out


def _cuts(mem, grokked, converged, rise_start, rise_end, rising_at_end, last) -> list[tuple[str, int]]:
    """(name, start) of each phase, in order."""
    cuts = [("memorization", 0)]
    if mem is None:  # never fitted: no later phase, unless the generalization split converged anyway
        if converged is not None:
            cuts.append(("converged", converged))
        return cuts
    if grokked is not None:  # the generalization split reached GROKKED_ACC after memorization
        start = rise_start if rise_start is not None and mem < rise_start <= grokked else mem
        if start > mem:
            cuts.append(("plateau", mem))
        cuts.append(("grokking", start))
        if converged is not None:
            cuts.append(("converged", max(converged, start)))
        return cuts
    cuts.append(("plateau", mem))
    if rise_start is not None:  # a rise that stopped short of GROKKED_ACC (so far)
        cuts.append(("rising", max(rise_start, mem)))
        if rise_end is not None and rise_end > rise_start and rise_end < last and not rising_at_end:
            cuts.append(("plateau", rise_end))
    return cuts


def _segments(cuts: list[tuple[str, int]], last: int) -> list[dict]:
    out = []
    for i, (name, start) in enumerate(cuts):
        end = cuts[i + 1][1] if i + 1 < len(cuts) else last
        if end > start or i + 1 == len(cuts):
            if out and out[-1]["name"] == name:  # a dropped segment between two of the same name
                out[-1]["end"] = end
            else:
                out.append({"name": name, "start": start, "end": max(end, start)})
    return out


def _label(phases: list[dict], steps: list[int], test: list[float], split: str,
           mem: int | None) -> list[dict]:
    prev = None
    for seg in phases:
        inside = [v for s, v in zip(steps, test) if seg["start"] <= s <= seg["end"]]
        a, b = _at(steps, test, seg["start"]), _at(steps, test, seg["end"])
        if prev is not None and prev["name"] == "plateau":  # a rise starts from the plateau's level
            a = prev["level"]
        prev = seg
        name = seg["name"]
        level = _r(statistics.median(inside) if name == "plateau" and inside else b)
        seg["level"] = level
        acc = f"{split} acc"
        if name == "memorization":
            text = (f"until train acc >= {MEMORIZED_ACC}" if mem is not None
                    else f"train acc never >= {MEMORIZED_ACC}")
        elif name == "plateau":
            text = f"{acc} ~ {fmt_acc(level)}"
        elif name == "rising":
            text = f"{acc} {fmt_acc(a)} -> {fmt_acc(b)}, below {GROKKED_ACC}"
        elif name == "grokking":
            top = max(inside) if inside else b
            text = (f"{acc} {fmt_acc(a)} -> {GENERALIZED_ACC}" if top is not None and top >= GENERALIZED_ACC
                    else f"{acc} {fmt_acc(a)} -> {fmt_acc(top)}, >= {GROKKED_ACC}, never {GENERALIZED_ACC}")
        else:  # converged
            text = f"{acc} >= {GENERALIZED_ACC}"
        seg["label"] = f"{name} ({text})"
    return phases


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}" + ("" if n == 1 else "s")


def verdict(analysis: dict, split: str | None = None, gap: int = DEFAULT_GAP) -> dict:
    """The labels every reader shows, from one `analyze` result or a summary.json (both hold
    `events`, `phase` and `phases`); `split`: the generalization split's name (default: the
    summary's `generalization_split`, else 'test').

    Returns {"state", "label", "grokked", "level", "events_label", "errors_label",
    "outcome", "outcome_label", "thresholds"}:
    - state: 'none' (no evaluations), 'unfitted' (train acc never >= 0.99 and the generalization
      split never >= 0.95), 'plateau' (memorized; that split never >= 0.95 after memorization and
      not rising), 'rising' (the same, still rising at the end), 'generalized' (it reached 0.95
      after memorization, or without memorization);
    - label: one line with the state, its level and its threshold, e.g. "memorization (test
      plateau at 0.23; never >= 0.95)" ("partly generalized (...)" for a plateau at >= 0.9),
      "grokked (test acc >= 0.99 at step 2,750)"; 'grokked' when
      the outcome class is grokking, else 'generalized'; small evaluation sets flagged;
    - events_label: the memorized / generalized steps with their thresholds;
    - errors_label: the generalization split's errors at the generalized step (or at the last
      step) with the Wilson 95% interval, or None when the split size is unknown;
    - outcome_label: the outcome class with its threshold and gap.
    """
    ev = analysis.get("events") or {}
    split = split or analysis.get("generalization_split") or "test"
    outcome = analysis.get("phase")
    phases = analysis.get("phases") or []
    mem, gen = ev.get("memorized_step"), ev.get("generalized_step")
    grokked = ev.get("test_0.95_after_memorized", ev.get("test_0.95"))
    final = ev.get("final_level")
    acc = f"{split} acc"
    thresholds = {"memorized": MEMORIZED_ACC, "grokking": GROKKED_ACC, "generalized": GENERALIZED_ACC,
                  "outcome": OUTCOME_ACC, "gap": gap}
    if not ev or ("final_level" in ev and final is None and mem is None):
        state, label, level = "none", "no evaluations yet", None
    elif grokked is not None:
        state, level = "generalized", final
        word = "grokked" if outcome == "grokking" else "generalized"
        if mem is None:
            word += f" without fitting the training labels (train acc never >= {MEMORIZED_ACC})"
        conv = gen if gen is not None else ev.get("converged_step")
        if conv is not None:
            label = f"{word} ({acc} >= {GENERALIZED_ACC} at step {conv:,})"
        else:
            label = (f"{word} to {GROKKED_ACC} ({acc} >= {GROKKED_ACC} at step {grokked:,}, never "
                     f">= {GENERALIZED_ACC}; final {fmt_acc(final)})")
        if final is not None and final < GROKKED_ACC:
            label += f", then fell to {fmt_acc(final)}"
    elif mem is None:
        state, level = "unfitted", final
        label = f"not fitted (train acc never >= {MEMORIZED_ACC}; {acc} {fmt_acc(final)})"
    elif ev.get("rising_at_end"):
        state, level = "rising", final
        label = f"still rising ({acc} {fmt_acc(final)} at the last step, not yet >= {GROKKED_ACC})"
    else:
        state = "plateau"
        last = phases[-1] if phases else {}
        level = last.get("level", final) if last.get("name") == "plateau" else final
        rose = any(p.get("name") == "rising" for p in phases)
        word = "partly generalized" if level is not None and level >= OUTCOME_ACC else "memorization"
        label = (f"{word} ({split} plateau at {fmt_acc(level)}"
                 + (f" after a partial rise from {fmt_acc(ev.get('plateau_level'))}" if rose else "")
                 + f"; never >= {GROKKED_ACC})")
    n = ev.get("eval_size")
    if ev.get("small_eval_set") and n:
        label += f"; only {_plural(n, split + ' example')}: small evaluation set"
    return {"state": state, "label": label, "grokked": state == "generalized" and outcome == "grokking",
            "level": level, "events_label": _events_label(ev, split),
            "errors_label": _errors_label(ev, split), "outcome": outcome,
            "outcome_label": f"{outcome} ({OUTCOME_RULE}, gap {gap:,} steps)" if outcome else None,
            "thresholds": thresholds}


def _events_label(ev: dict, split: str) -> str:
    mem, gen = ev.get("memorized_step"), ev.get("generalized_step")
    first = (f"memorized at step {mem:,} (train acc >= {MEMORIZED_ACC})" if mem is not None
             else f"never memorized (train acc never >= {MEMORIZED_ACC})")
    if gen is not None:
        second = f"generalized at step {gen:,} ({split} acc >= {GENERALIZED_ACC})"
    else:
        best = ev.get("best_level")
        second = f"never generalized ({split} acc never >= {GENERALIZED_ACC}" + (
            f"; best {fmt_acc(best)})" if best is not None else ")")
    return f"{first}; {second}"


def _errors_label(ev: dict, split: str) -> str | None:
    n = ev.get("eval_size")
    if not n:
        return None
    allowed = ev.get("generalized_max_errors")
    what = _plural(n, split + " example")
    if ev.get("generalized_step") is not None and ev.get("generalized_errors") is not None:
        lo, hi = ev.get("generalized_ci") or (None, None)
        text = (f"{ev['generalized_errors']} of {what} wrong at step {ev['generalized_step']:,} "
                f"(>= {GENERALIZED_ACC} allows at most {allowed}"
                + (f"; 95% CI of the accuracy {lo:.3f}-{hi:.3f})" if lo is not None else ")"))
    else:
        text = (f"{ev.get('final_errors')} of {what} wrong at the last step (>= {GENERALIZED_ACC} "
                f"allows at most {allowed})")
    if ev.get("small_eval_set"):
        text += f"; small evaluation set (< {SMALL_EVAL_SET})"
    return text


def events(records: list[dict], split: str = "test") -> dict:
    """The headline events: memorized_step, generalized_step, delay_ratio (see analyze)."""
    ev = analyze(records, split=split)["events"]
    return {k: ev[k] for k in ("memorized_step", "generalized_step", "delay_ratio")}
