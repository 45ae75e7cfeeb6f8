"""What a report needs to know about a run besides its curves: the splits it evaluates, the split
that dates generalization, the task's own measures, and a one-line task description.

Old run directories (written before tasks had named splits) lack the summary fields; these
functions then fall back to what the metrics records show (train and test).
"""

from __future__ import annotations

_SCALARS = (str, int, float, bool)
_MAX_FIELDS = 4  # fields of a plug-in task shown in its description


def generalization_split(summary: dict | None, cfg: dict | None = None) -> str:
    """summary.json's `generalization_split`, else config.json's task.generalization_split, else 'test'."""
    gen = (summary or {}).get("generalization_split")
    if not gen:
        task = (cfg or {}).get("task")
        gen = task.get("generalization_split") if isinstance(task, dict) else None
    return str(gen) if gen else "test"


def _has(records: list[dict], key: str) -> bool:
    return any(isinstance(r.get(key), (int, float)) and not isinstance(r.get(key), bool) for r in records)


def measures(summary: dict | None) -> list[str]:
    """The task's own metric names (summary.json `measures`; [] when absent or malformed)."""
    m = (summary or {}).get("measures")
    if not isinstance(m, (list, tuple)):
        return []
    return [str(k) for k in m if isinstance(k, str) and k]


def splits(records: list[dict], summary: dict | None = None, gen: str = "test") -> list[str]:
    """The run's evaluated splits, train first, then test, then the others.

    From summary.json's `splits` when present; else every `X` with both `X_acc` and `X_loss` in the
    records (train and test also when only one of the two is logged). The generalization split
    `gen` is included whenever the records have its accuracy.
    """
    declared = (summary or {}).get("splits")
    skip = set(measures(summary))
    if isinstance(declared, (list, tuple)) and declared:
        found = [str(s) for s in declared]
    else:
        keys: dict[str, None] = {}
        for r in records:
            for k in r:
                if k.endswith("_acc") and (k not in skip or k in ("train_acc", "test_acc")):
                    keys.setdefault(k[: -len("_acc")])
        found = [s for s in keys if s in ("train", "test") or _has(records, f"{s}_loss")]
    if gen not in found and _has(records, f"{gen}_acc"):
        found.append(gen)
    first = [s for s in ("train", "test") if s in found]
    return first + [s for s in found if s not in first]


def _brief(v) -> str:
    text = str(v)
    return text if len(text) <= 24 else text[:23] + "…"


def task_description(task) -> str:
    """'x/y mod 97' for modular tasks, 'x*y on S_5' for permutation tasks, 'xor (bits=8, ...)' for a
    plug-in kind (its options, or else its other scalar metadata, briefly); '' when unknown."""
    if not task:
        return ""
    if not isinstance(task, dict):
        return _brief(task)
    kind, op = task.get("kind"), task.get("op", "?")
    if kind == "modular":
        return f"{op} mod {task.get('p', '?')}"
    if kind in ("permutation", "permutations"):  # "permutations": a spelling some old runs may hold
        return f"{op} on S_{task.get('n', '?')}"
    if kind is None:
        return str(op) if "op" in task else ""
    options = task.get("options")
    # config.json's task section carries the table fields (op, p, n) for every kind: show only the
    # plug-in's options there; summary.json's task is the kind's own metadata
    fields = options if isinstance(options, dict) else {k: v for k, v in task.items() if k != "kind"}
    items = [f"{k}={_brief(v)}" for k, v in fields.items() if isinstance(v, _SCALARS)]
    if len(items) > _MAX_FIELDS:
        items = [*items[:_MAX_FIELDS], "…"]
    return f"{kind} ({', '.join(items)})" if items else str(kind)
