"""The preset registry: named RunConfig factories, listed in the order they were registered."""

from __future__ import annotations

import inspect
from collections.abc import Callable

from grokscope.config import RunConfig
from grokscope.errors import ConfigError

__all__ = ["EXPECTATIONS", "get_expectation", "get_preset", "list_presets", "preset"]

PRESETS: dict[str, Callable[[], RunConfig]] = {}
EXPECTATIONS: dict = {}
"""{preset name: presets.expect.Expect} for the presets that state machine-readable expectations."""


def preset(fn: Callable[[], RunConfig] | None = None, *, expect=None):
    """Register `fn` (no arguments -> RunConfig) as the preset named after it; `@preset` or
    `@preset(expect=Expect(...))` (see presets/expect.py)."""
    def register(f: Callable[[], RunConfig]) -> Callable[[], RunConfig]:
        PRESETS[f.__name__] = f
        if expect is not None:
            EXPECTATIONS[f.__name__] = expect
        return f

    return register if fn is None else register(fn)


def get_expectation(name: str):
    """The preset's Expect, or None when it states none (ConfigError for an unknown preset)."""
    if name not in PRESETS:
        raise ConfigError(f"preset: unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    return EXPECTATIONS.get(name)


def list_presets() -> dict[str, str]:
    """{name: docstring} for every preset."""
    return {name: inspect.getdoc(fn) or "" for name, fn in PRESETS.items()}


def get_preset(name: str) -> RunConfig:
    """The RunConfig of preset `name`; ConfigError for an unknown name."""
    if name not in PRESETS:
        raise ConfigError(f"preset: unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    return PRESETS[name]()
