"""Critical data size: along a sweep's data-size axis, where the outcome changes.

    grokscope sweep --preset demo --axis task.train_fraction=0.2,0.25,0.3,0.35,0.4,0.5,0.6 --seeds 3 --out cds
    grokscope show cds        # prints the critical data size line(s)

Zhu et al. 2024 ("Critical data size of language models from a grokking perspective") describe
generalization appearing only above a critical data size. For every value of the data-size axis
(`task.train_fraction`, or a task's `train_size` / `n_train` option) this module pools the seeds
(per combination of the other axes) and reports each value's majority outcome class, the share of
seeds that generalized (the generalization split at 0.99) and the median generalized step; the
critical size is the smallest value from which on every larger value has most seeds generalizing,
with the largest smaller value as the bracket below it.
"""

from __future__ import annotations

import math

from grokscope.sweep.cells import cell_stats, cell_text, fmt_step

__all__ = ["DATA_AXES", "critical_sizes", "data_axis", "describe"]

DATA_AXES = ("task.train_fraction", "task.options.train_size", "task.options.n_train")


def data_axis(meta: dict) -> str | None:
    """The sweep's data-size axis (the first of DATA_AXES it sweeps), or None."""
    return next((a for a in DATA_AXES if a in meta.get("axes", {})), None)


def _sort_key(text: str):
    try:
        return (0, float(text), text)
    except ValueError:
        return (1, 0.0, text)


def critical_sizes(meta: dict, rows: list[dict], field: str | None = None) -> list[dict]:
    """One entry per combination of the other axes: {"others": {field: value}, "field", "values":
    [{value, n, outcome, outcomes, generalized, median_step}], "critical": value or None,
    "below": the largest value under it or None, "transitions": [(value, outcome, next value,
    outcome)] where the majority class changes}."""
    field = field or data_axis(meta)
    if field is None:
        return []
    others = [a for a in meta["axes"] if a != field]
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault(tuple(cell_text(r.get(a)) for a in others), []).append(r)
    out = []
    for key, grp in groups.items():
        by_value: dict[str, list[dict]] = {}
        for r in grp:
            by_value.setdefault(cell_text(r.get(field)), []).append(r)
        values = []
        for v in sorted(by_value, key=_sort_key):
            c = cell_stats(by_value[v])
            values.append({"value": v, "n": c.n, "outcome": c.outcome, "outcomes": c.outcomes,
                           "generalized": c.generalized, "median_step": c.median})
        done = [v for v in values if v["n"]]
        ok = [v["generalized"] is not None and v["generalized"] > 0.5 for v in done]
        critical = below = None
        for i in range(len(done)):
            if all(ok[i:]):
                critical = done[i]["value"]
                below = done[i - 1]["value"] if i else None
                break
        transitions = [(a["value"], a["outcome"], b["value"], b["outcome"])
                       for a, b in zip(done, done[1:]) if a["outcome"] != b["outcome"]]
        out.append({"others": dict(zip(others, key)), "field": field, "values": values,
                    "critical": critical, "below": below, "transitions": transitions})
    return out


def describe(entry: dict) -> str:
    """'critical task.train_fraction: 0.35 (most seeds generalize from 0.35 on; not at 0.3) ...'."""
    name = entry["field"].rsplit(".", 1)[-1]
    where = ", ".join(f"{k.rsplit('.', 1)[-1]}={v}" for k, v in entry["others"].items())
    head = f"critical {name}" + (f" ({where})" if where else "")
    if not any(v["n"] for v in entry["values"]):
        what = "pending (no finished runs yet)"
    elif entry["critical"] is None:
        what = "not reached: no value from which on most seeds generalize"
    elif entry["below"] is None:
        what = f"at or below {entry['critical']} (the smallest value swept generalizes)"
    else:
        what = (f"between {entry['below']} and {entry['critical']} (most seeds generalize from "
                f"{entry['critical']} on)")
    cells = "; ".join(f"{v['value']}: {v['outcome'] or 'pending'} "
                      f"({_share(v['generalized'])} generalized, median {fmt_step(v['median_step'])})"
                      for v in entry["values"])
    return f"{head}: {what}\n  {cells}"


def _share(v) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.0%}"
