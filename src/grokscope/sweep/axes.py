"""Sweep axes: a dotted config field and its values, from text or lists, typed by the field.

    a,b,c              a list; each value is read like the field's command-line value
    START:STOP:N       N evenly spaced numbers from START to STOP, both included (numeric fields)
    log:START:STOP:N   N log-spaced numbers from START to STOP, both included (START, STOP > 0)

Integer fields round range values to the nearest integer; `value_text` is the canonical text of a
value (run names, sweep.json). A plug-in task option (task.options.NAME) is typed by its task kind
when the runs are expanded (`grokscope.sweep.spec`).
"""

from __future__ import annotations

import math
import typing
from dataclasses import dataclass
from typing import Any

from grokscope.config import RunConfig, apply_overrides, leaf_types, parse_value
from grokscope.errors import ConfigError

__all__ = ["Axis", "field_type", "parse_axis", "parse_seeds", "typed_value", "value_text"]

_RESERVED = {"seed": "use seeds (a count like 3, or a list like 0,4,7) to sweep seeds",
             "name": "run names are made by the sweep from the axis values"}


@dataclass(frozen=True)
class Axis:
    """One swept field and its values, each as canonical text (parsed like a command-line value)."""

    field: str
    values: tuple[str, ...]

    @property
    def typed(self) -> list[Any]:
        """The values converted to the field's type (floats, ints, None, strings, ...)."""
        tp = field_type(self.field)
        return [parse_value(self.field, tp, v) for v in self.values]


def parse_axis(field: str, values: Any) -> Axis:
    """Axis from `field` and its values: a list, or text in the list/range syntax of this module."""
    tp = field_type(field)
    if isinstance(values, (list, tuple)):
        texts = [value_text(v) for v in values]
    elif isinstance(values, str):
        texts = _expand_text(field, tp, values.strip())
    elif values is None or isinstance(values, (int, float, bool)):
        texts = [value_text(values)]
    else:
        raise ConfigError(f"{field}: axis values must be a list or text like 0,0.1,1 or 0.2:0.8:7, "
                          f"got {values!r}")
    if not texts or any(t == "" for t in texts):
        raise ConfigError(f"{field}: empty axis value in {values!r}; give values like 0,0.1,1")
    canon = []
    for t in texts:
        value = parse_value(field, tp, t)
        if field == "task.kind":  # an open str field: the registered kinds are the choices
            from grokscope.tasks import get_task_kind

            get_task_kind(value)
        c = value_text(value)
        if c in canon:
            raise ConfigError(f"{field}: axis value {c} is given twice")
        canon.append(c)
    return Axis(field, tuple(canon))


def parse_seeds(value: Any) -> tuple[int, ...]:
    """A count N (-> 0..N-1), a list of seeds, or text: '3' (a count) or '0,4,7' (a list)."""
    bad = ConfigError(f"seeds: must be a count N >= 1 or a list of seeds >= 0 like 0,4,7, got {value!r}")
    if isinstance(value, str):
        parts = [p.strip() for p in value.split(",")]
        if len(parts) > 1:
            parts = [p for p in parts if p] if parts[-1] == "" else parts
            try:
                value = [int(p) for p in parts]
            except ValueError:
                raise bad from None
        else:
            try:
                value = int(value)
            except ValueError:
                raise bad from None
    if isinstance(value, int) and not isinstance(value, bool):
        if not 1 <= value <= 100_000:
            raise bad
        return tuple(range(value))
    if isinstance(value, (list, tuple)) and value and all(
            isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in value):
        if len(set(value)) != len(value):
            raise ConfigError(f"seeds: a seed is given twice in {list(value)}")
        return tuple(value)
    raise bad


def field_type(field: str) -> Any:
    if field in _RESERVED:
        raise ConfigError(f"{field}: cannot be swept as an axis; {_RESERVED[field]}")
    if field.startswith("task.options.") and len(field) > len("task.options."):
        return str  # typed by the task kind's options when the runs are expanded
    types = leaf_types()
    if field not in types:
        apply_overrides(RunConfig(), {field: ""})  # raises "FIELD: unknown field (did you mean ...)"
    return types[field]


def _numeric(tp: Any) -> type | None:
    """float or int when the field holds a number (possibly also None), else None."""
    args = set(typing.get_args(tp)) if typing.get_args(tp) else {tp}
    args.discard(type(None))
    if float in args:
        return float
    if int in args and bool not in args:
        return int
    return None


def _number(text: str) -> float | None:
    try:
        v = float(text)
    except ValueError:
        return None
    return v if math.isfinite(v) else None


def _expand_text(field: str, tp: Any, text: str) -> list[str]:
    """List or range text -> the values' texts."""
    kind = _numeric(tp)
    is_log = text.lower().startswith("log:")
    parts = text[4:].split(":") if is_log else text.split(":")
    numbers = len(parts) == 3 and all(_number(p) is not None for p in parts)
    looks_range = is_log or ("," not in text and ":" in text and (kind is not None or numbers))
    if not looks_range:
        return [p.strip() for p in text.split(",")]
    usage = "START:STOP:N or log:START:STOP:N with N >= 1 points"
    if kind is None:
        raise ConfigError(f"{field}: a range needs a numeric field; give a list like a,b,c, got {text!r}")
    nums = [_number(p) for p in parts]
    if len(parts) != 3 or None in nums or not float(nums[2]).is_integer() or nums[2] < 1 or nums[2] > 10_000:
        raise ConfigError(f"{field}: range must be {usage}, got {text!r}")
    start, stop, n = nums[0], nums[1], int(nums[2])
    if is_log and (start <= 0 or stop <= 0):
        raise ConfigError(f"{field}: a log range needs START > 0 and STOP > 0, got {text!r}")
    fracs = [i / (n - 1) if n > 1 else 0.0 for i in range(n)]
    if is_log:
        vals = [math.exp(math.log(start) + f * (math.log(stop) - math.log(start))) for f in fracs]
    else:
        vals = [start + f * (stop - start) for f in fracs]
    if kind is int:
        out = [str(round(v)) for v in vals]
        if len(set(out)) != len(out):
            raise ConfigError(f"{field}: range {text!r} repeats integers after rounding; use fewer points")
        return out
    return [format(v, ".12g") for v in vals]


def value_text(v: Any) -> str:
    """A JSON/YAML or typed config value as command-line text (0.001, none, true, x+y, 0.9,0.98)."""
    if v is None:
        return "none"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (list, tuple)):
        return ",".join(value_text(x) for x in v)
    if isinstance(v, float):
        return format(v, ".12g") if math.isfinite(v) else repr(v)
    return str(v)


def typed_value(field: str, text: str, cell: RunConfig | None = None) -> Any:
    """The typed value of an axis field (a plug-in task option: as the expanded run holds it)."""
    if field.startswith("task.options.") and cell is not None:
        return cell.task.options[field[len("task.options."):]]
    return parse_value(field, field_type(field), text)
