"""Typed values of config fields: annotation checks, descriptions and command-line parsing.

Shared by the run config (`grokscope.config`) and task kinds' own options (`grokscope.tasks`);
depends on nothing else in grokscope but its errors.
"""

from __future__ import annotations

import difflib
import math
import types
import typing
from typing import Any, Literal

from grokscope.errors import ConfigError

_UNIONS = (typing.Union, types.UnionType)


def is_bool_type(tp: Any) -> bool:
    """bool, or bool | None."""
    return tp is bool or (typing.get_origin(tp) in _UNIONS and set(typing.get_args(tp)) == {bool, type(None)})


def is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def is_num(v: Any) -> bool:
    return (isinstance(v, (int, float)) and not isinstance(v, bool)) and math.isfinite(v)


def check_value(name: str, tp: Any, value: Any) -> None:
    """Raise ConfigError('name: must be ...') unless `value` matches the annotation `tp`."""
    if not matches(tp, value):
        raise ConfigError(f"{name}: must be {describe(tp)}, got {value!r}")


def matches(tp: Any, value: Any) -> bool:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in _UNIONS:
        return any(matches(a, value) for a in args)
    if origin is Literal:
        return value in args and not isinstance(value, bool)
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return isinstance(value, tuple) and len(value) >= 1 and all(matches(args[0], v) for v in value)
        return (isinstance(value, tuple) and len(value) == len(args)
                and all(matches(a, v) for a, v in zip(args, value)))
    if origin is dict:
        return isinstance(value, dict) and all(isinstance(k, str) and matches(args[1], v)
                                               for k, v in value.items())
    if tp is type(None):
        return value is None
    if tp is bool:
        return isinstance(value, bool)
    if tp is int:
        return is_int(value)
    if tp is float:
        return is_num(value)
    if tp is str:
        return isinstance(value, str)
    return isinstance(value, tp)


def describe(tp: Any) -> str:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in _UNIONS:
        return " or ".join(describe(a) for a in args)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return "one or more integers like 16,32"
        return f"{len(args)} numbers like 0.9,0.98"
    if origin is dict:
        return "an object of names to values"
    if tp is type(None):
        return "None"
    return {int: "an integer", float: "a finite number", bool: "true or false", str: "a string"}.get(
        tp, getattr(tp, "__name__", str(tp)))


def suggest(key: str, names: Any) -> str:
    close = difflib.get_close_matches(key, list(names), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def parse_value(name: str, tp: Any, text: str) -> Any:
    """Convert a command-line string to the annotated type of field `name`."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in _UNIONS:
        if type(None) in args and text.lower() in ("none", "null"):
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return parse_value(name, a, text)
            except ConfigError as e:
                errors.append(e)
        raise ConfigError(f"{name}: must be {describe(tp)}, got {text!r}")
    if origin is Literal:
        if text not in args:
            raise ConfigError(f"{name}: must be {describe(tp)}, got {text!r}")
        return text
    if origin is tuple:
        parts = [s for s in text.replace(",", " ").split() if s]
        if len(args) == 2 and args[1] is Ellipsis:
            if not parts:
                raise ConfigError(f"{name}: must be {describe(tp)}, got {text!r}")
            return tuple(parse_value(name, args[0], s) for s in parts)
        if len(parts) != len(args):
            raise ConfigError(f"{name}: must be {describe(tp)}, got {text!r}")
        return tuple(parse_value(name, a, s) for a, s in zip(args, parts))
    if tp is bool:
        low = text.lower()
        if low in ("true", "1", "yes", "on"):
            return True
        if low in ("false", "0", "no", "off"):
            return False
        raise ConfigError(f"{name}: must be true or false, got {text!r}")
    if tp is int:
        try:
            f = float(text)
            if not f.is_integer():
                raise ValueError
            return int(f)
        except (ValueError, OverflowError):
            raise ConfigError(f"{name}: must be an integer, got {text!r}") from None
    if tp is float:
        try:
            v = float(text)
        except ValueError:
            raise ConfigError(f"{name}: must be a number, got {text!r}") from None
        if not math.isfinite(v):
            raise ConfigError(f"{name}: must be a finite number, got {text!r}")
        return v
    return text
