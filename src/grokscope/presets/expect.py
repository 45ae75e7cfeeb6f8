"""Machine-readable expectations of a preset: what a run of it should show, and where that claim
comes from (a paper's figure, or the command that measured it here).

    @preset(expect=Expect(source="measured here: benchmarks/time_to_grok.py, seeds 0-2",
                          outcome=("grokking",), memorized=(40, 120), generalized=(1000, 3500)))
    def demo() -> RunConfig: ...

`check(expect, summary)` compares one finished run (its summary.json) with the expectation: one
row per stated quantity, {"check", "expected", "measured", "ok"}. Steps and the delay ratio are
read from the run's events (the detector's smoothed crossings): memorized = train accuracy >= 0.99,
generalized = the generalization split reaching `level`; final_acc is that split's accuracy at
the last evaluation; `metrics` are other metrics at the last evaluation (e.g. test_ood_acc).

`overrides` are dotted config fields that `grokscope reproduce` trains the preset with, stated with
the claim (e.g. {"train.stop_when": "after_generalization"} to settle a 1e5-step budget's claim
once the run has generalized): the expectation is about the preset run that way.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from grokscope.detect import OUTCOMES, THRESHOLDS

__all__ = ["CARD_FACTS", "Expect", "check", "describe", "row_text"]

def _pruned(what: str, fraction: float = 0.3):
    """The label-noise analysis's accuracy `what` after pruning `fraction` of the lowest-IPR neurons."""
    def read(a: dict):
        rows = (a.get("noise") or {}).get("prune") or []
        return next((r["low_ipr"][what] for r in rows if abs(r["fraction"] - fraction) < 1e-9), None)
    return read


CARD_FACTS = {
    "key_frequencies": lambda a: len(a["key_freqs"]) if isinstance(a.get("key_freqs"), list) else None,
    "noise_peak_acc": lambda a: ((a.get("noise") or {}).get("curves") or {}).get("peak_noisy_acc"),
    "noise_pruned_kept": _pruned("train_noisy"),
    "noise_pruned_test": _pruned("test"),
}
"""Facts read from a run's analysis.json: {name: analysis -> number or None}. The noise_* facts come
from the label-noise analysis (analysis/noise.py): the highest accuracy on the corrupted labels
during training, and the corrupted labels kept / the test accuracy after pruning the 30% of the
neurons with the lowest IPR."""


@dataclass(frozen=True)
class Expect:
    source: str
    """Where the ranges come from: a paper's figure, or 'measured here: COMMAND, seeds ...'."""
    outcome: tuple[str, ...] = ()
    """Allowed outcome classes (detect.OUTCOMES); empty: any."""
    memorized: tuple[float, float] | None = None
    """Range of the step where train accuracy reaches 0.99."""
    generalized: tuple[float, float] | None = None
    """Range of the step where the generalization split reaches `level`."""
    level: float = 0.99
    """The generalization split's accuracy that `generalized` and `delay_ratio` are read at."""
    delay_ratio: tuple[float, float] | None = None
    """Range of generalized step / memorized step (at `level`)."""
    final_acc: tuple[float, float] | None = None
    """Range of the generalization split's accuracy at the end."""
    metrics: tuple[tuple[str, float, float], ...] = ()
    """Other metrics at the last evaluation, as (name, low, high), e.g. ("test_ood_acc", 0, 0.05)."""
    card: tuple[tuple[str, float, float], ...] = ()
    """Facts of the run's analysis (`grokscope analyze`, run by reproduce), as (name, low, high);
    names: CARD_FACTS (e.g. ("key_frequencies", 3, 6))."""
    seconds: float | None = None
    """Typical training seconds of one run on one CPU thread (reproduce --quick runs the short ones)."""
    overrides: dict = field(default_factory=dict)
    """{dotted field: value text} that `grokscope reproduce` trains the preset with."""

    def __post_init__(self) -> None:
        if not self.source:
            raise ValueError("an expectation needs its source")
        bad = [o for o in self.outcome if o not in OUTCOMES]
        if bad:
            raise ValueError(f"outcome: unknown classes {bad}; choose from {OUTCOMES}")
        if self.level not in THRESHOLDS:
            raise ValueError(f"level: must be one of {THRESHOLDS}, got {self.level!r}")
        for name in ("memorized", "generalized", "delay_ratio", "final_acc"):
            r = getattr(self, name)
            if r is not None and not (len(r) == 2 and r[0] <= r[1]):
                raise ValueError(f"{name}: must be a (low, high) range, got {r!r}")
        for m in self.metrics:
            if not (len(m) == 3 and isinstance(m[0], str) and m[1] <= m[2]):
                raise ValueError(f"metrics: each must be (name, low, high), got {m!r}")
        for m in self.card:
            if not (len(m) == 3 and m[0] in CARD_FACTS and m[1] <= m[2]):
                raise ValueError(f"card: each must be (fact, low, high) with a fact in {sorted(CARD_FACTS)}, "
                                 f"got {m!r}")
        if self.seconds is not None and not self.seconds > 0:
            raise ValueError(f"seconds: must be > 0, got {self.seconds!r}")


def _range(r) -> str:
    fmt = lambda v: f"{v:,.0f}" if float(v).is_integer() and abs(v) >= 10 else f"{v:g}"
    return f"{fmt(r[0])}-{fmt(r[1])}"


def describe(e: Expect) -> str:
    """One line: 'outcome grokking; memorized 40-120; test 0.99 at 1,000-3,500; ... (source)'."""
    parts = []
    if e.outcome:
        parts.append("outcome " + " or ".join(e.outcome))
    if e.memorized:
        parts.append(f"memorized at {_range(e.memorized)}")
    if e.generalized:
        parts.append(f"generalization split {e.level} at {_range(e.generalized)}")
    if e.delay_ratio:
        parts.append(f"delay ratio {_range(e.delay_ratio)}")
    if e.final_acc:
        parts.append(f"final accuracy {_range(e.final_acc)}")
    parts += [f"final {name} {_range((lo, hi))}" for name, lo, hi in e.metrics]
    parts += [f"analysis: {name.replace('_', ' ')} {_range((lo, hi))}" for name, lo, hi in e.card]
    if e.seconds is not None:
        parts.append(f"~{e.seconds:g} s")
    if e.overrides:
        parts.append("reproduced with " + " ".join(f"--{k} {v}" for k, v in e.overrides.items()))
    return "; ".join(parts) + f" ({e.source})"


def _within(v, r) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v) and r[0] <= v <= r[1]


def check(e: Expect, summary: dict, last: dict | None = None, analysis: dict | None = None) -> list[dict]:
    """One row per stated quantity of `e` for the run whose summary.json is `summary`; `last` is the
    run's last metrics record, where `metrics` not in the summary's `final` are read; `analysis` its
    analysis.json, where the `card` facts are read (a missing analysis fails them)."""
    ev = summary.get("events") or {}
    gen = summary.get("generalization_split", "test")
    mem, reached = ev.get("memorized_step"), ev.get(f"test_{e.level}")
    rows = []
    if e.outcome:
        phase = summary.get("phase")
        rows.append({"check": "outcome", "expected": " or ".join(e.outcome), "measured": phase,
                     "ok": phase in e.outcome})
    ratio = reached / mem if mem and reached is not None else None
    final = (summary.get("final") or {}).get(f"{gen}_acc")
    quantities = (("memorized step", mem, e.memorized), (f"{gen} {e.level} step", reached, e.generalized),
                  ("delay ratio", ratio, e.delay_ratio), (f"final {gen} accuracy", final, e.final_acc))
    ends = {**(last or {}), **{k: v for k, v in (summary.get("final") or {}).items() if v is not None}}
    quantities += tuple((f"final {name}", ends.get(name, "not logged"), (lo, hi))
                        for name, lo, hi in e.metrics)
    for name, lo, hi in e.card:
        fact = CARD_FACTS[name](analysis) if analysis else "not analysed"
        fact = "not found" if fact is None else fact
        quantities += ((f"analysis {name.replace('_', ' ')}", fact, (lo, hi)),)
    for name, value, r in quantities:
        if r is not None:
            rows.append({"check": name, "expected": _range(r), "measured": value, "ok": _within(value, r)})
    return rows


def _num(v) -> str:
    if v is None:
        return "never"
    if isinstance(v, float) and not v.is_integer():
        return f"{v:.3g}" if abs(v) < 10 else f"{v:,.1f}"
    return f"{int(v):,}" if isinstance(v, (int, float)) else str(v)


def row_text(c: dict) -> str:
    """A check row as '2,700 [1,000-3,500]', with a ✗ when out of range."""
    return f"{_num(c['measured'])} [{c['expected']}]" + ("" if c["ok"] else " ✗")
